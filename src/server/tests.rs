//! Connection-level behaviour that needs no HTTP client: stalled peers and
//! the plain-HTTP admin listener. Full TLS round trips live in `tests/tls.rs`.

use std::{net::Ipv4Addr, sync::Arc, time::Duration};

use axum::routing::get;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::*;
use crate::tls::{
    ca::{CertificateAuthority, ServingSpec},
    certified_key_from_pem, server_config,
};

/// Bound on any single step, so a bug fails the test instead of hanging it.
const STEP: Duration = Duration::from_secs(10);

fn app() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

async fn bind() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Reads until the peer closes; `Err` (e.g. a TLS close without
/// close_notify) counts as closed too.
async fn closed(stream: &mut (impl AsyncReadExt + Unpin)) -> bool {
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(STEP, stream.read(&mut buf)).await;
    matches!(read, Ok(Ok(0) | Err(_)))
}

#[tokio::test]
async fn stalled_clients_are_disconnected() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = CertificateAuthority::new(1).unwrap();
    let generated = ca.issue(&ServingSpec::loopback(&[], 1)).unwrap();
    let (cert, key) = (generated.cert_pem.as_bytes(), generated.key_pem.as_bytes());
    let key = certified_key_from_pem(cert, key).unwrap();
    let tls = server_config(Arc::new(rustls::sign::SingleCertAndKey::from(key))).unwrap();
    let opts = HttpsOptions {
        handshake_timeout: Duration::from_millis(200),
        header_read_timeout: Duration::from_millis(200),
        ..HttpsOptions::default()
    };
    let (listener, addr) = bind().await;
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve_https(listener, tls, app(), shutdown.clone(), opts));

    // Silent before the TLS handshake.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    assert!(closed(&mut tcp).await, "a silent TCP peer was kept");

    // Silent after it, on HTTP/1.1: request headers never arrive.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap())
        .unwrap();
    let mut client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    assert!(closed(&mut tls).await, "a silent HTTP/1.1 peer was kept");

    shutdown.cancel();
    let stopped = tokio::time::timeout(STEP, server).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
}

#[tokio::test]
async fn the_admin_listener_serves_http_and_idle_connections_do_not_hold_shutdown() {
    let (listener, addr) = bind().await;
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve_http(listener, app(), shutdown.clone()));

    // A kept-alive connection left idle after its response, like a
    // Prometheus scraper between scrapes: the drain must close it rather
    // than wait out the 20 s drain deadline.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\nok") {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(STEP, tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_ne!(n, 0, "closed early: {}", String::from_utf8_lossy(&response));
        response.extend_from_slice(&buf[..n]);
    }
    assert!(response.starts_with(b"HTTP/1.1 200 OK"));

    shutdown.cancel();
    let stopped = tokio::time::timeout(STEP, server).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
    assert!(closed(&mut tcp).await);
    assert!(TcpStream::connect(addr).await.is_err());
}
