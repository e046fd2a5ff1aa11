//! HTTPS servers the apiserver can call from the test process: webhooks and
//! aggregated APIs registered with `url: https://127.0.0.1:PORT` + `caBundle`.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use base64::Engine;
use scale_governor::testing::tls::{
    ca::{CertificateAuthority, ServingSpec},
    certified_key_from_pem, server_config,
};

use super::install_crypto_provider;

/// A throwaway CA and a serving certificate for `127.0.0.1` and `localhost`,
/// for HTTPS servers the apiserver must call (webhooks, aggregated APIs).
pub struct TestTls {
    /// PEM of the CA; base64 it for a `caBundle` written as JSON.
    pub ca_pem: String,
    /// Ready-to-use rustls config presenting the serving certificate.
    pub server_config: Arc<rustls::ServerConfig>,
}

impl TestTls {
    /// Serving certificate with IP SAN 127.0.0.1 (Go ignores the CN) and the
    /// given extra DNS names, e.g. `svc.ns.svc` for an APIService.
    pub fn new(extra_dns_names: &[&str]) -> Self {
        install_crypto_provider();
        let ca = CertificateAuthority::new(1).expect("test CA");
        let leaf = ca
            .issue(&ServingSpec::loopback(extra_dns_names, 1))
            .expect("test serving certificate");
        let key = certified_key_from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes())
            .expect("test serving key");
        let server_config = server_config(Arc::new(rustls::sign::SingleCertAndKey::from(key)))
            .expect("rustls server config");
        Self {
            ca_pem: ca.cert_pem(),
            server_config,
        }
    }

    /// The CA as a `caBundle` value for JSON manifests (base64 of the PEM).
    pub fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
    }
}

/// An axum router served over HTTPS on an ephemeral 127.0.0.1 port, for
/// servers the apiserver calls. Stops when dropped.
pub struct HttpsServer {
    /// `https://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    /// The certificate it presents and the CA that signed it.
    pub tls: TestTls,
    task: tokio::task::JoinHandle<()>,
}

impl HttpsServer {
    /// Binds and starts serving `router` in the current tokio runtime, with a
    /// certificate for 127.0.0.1 and localhost.
    pub async fn start(router: axum::Router) -> Self {
        Self::start_with_tls(router, TestTls::new(&[])).await
    }

    /// Like [`HttpsServer::start`] with a given certificate, e.g. one that
    /// also names `<svc>.<ns>.svc` for an aggregated APIService.
    pub async fn start_with_tls(router: axum::Router, tls: TestTls) -> Self {
        let listener = TlsListener {
            tcp: tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .expect("binding 127.0.0.1:0"),
            acceptor: tokio_rustls::TlsAcceptor::from(tls.server_config.clone()),
        };
        let url = format!("https://{}", listener.tcp.local_addr().expect("local addr"));
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("serving HTTPS");
        });
        Self { url, tls, task }
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            // A client that fails or stalls its handshake must not stop the server.
            let handshake = tokio::time::timeout(Duration::from_secs(5), self.acceptor.accept(tcp));
            if let Ok(Ok(tls)) = handshake.await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
