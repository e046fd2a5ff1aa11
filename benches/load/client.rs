//! The apiserver's side of the wire: a few long-lived HTTP/2 connections over
//! TLS (trusting only the benchmark's CA) that carry many concurrent streams,
//! which is how the apiserver's Go client talks to a webhook.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::{
    Request, StatusCode,
    body::Bytes,
    client::conn::http2::{self, SendRequest},
    header,
};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Connections to one webhook URL, used round-robin.
#[derive(Debug)]
pub struct Client {
    uri: hyper::Uri,
    connections: Vec<SendRequest<Full<Bytes>>>,
    next: AtomicUsize,
}

impl Client {
    /// Opens `connections` HTTP/2 connections to `url` (https, IP host),
    /// verifying the server against the CA in `ca_pem_file`.
    pub async fn connect(
        url: &str,
        ca_pem_file: &str,
        connections: usize,
    ) -> anyhow::Result<Client> {
        let uri: hyper::Uri = url.parse().with_context(|| format!("bad --url {url}"))?;
        anyhow::ensure!(uri.scheme_str() == Some("https"), "--url must be https");
        let authority = uri.authority().context("--url has no host")?;
        let addr: SocketAddr = authority
            .as_str()
            .parse()
            .context("--url host must be IP:PORT, as in a webhook's clientConfig.url")?;
        let connector = connector(ca_pem_file)?;
        let mut all = Vec::with_capacity(connections);
        for _ in 0..connections.max(1) {
            all.push(open(addr, &connector).await?);
        }
        Ok(Client {
            uri,
            connections: all,
            next: AtomicUsize::new(0),
        })
    }

    /// POSTs `body` and returns the status and response body.
    pub async fn post(&self, body: String) -> anyhow::Result<(StatusCode, Bytes)> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        let mut sender = self.connections[i].clone();
        let request = Request::post(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

fn connector(ca_pem_file: &str) -> anyhow::Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem_file)
        .with_context(|| format!("reading CA {ca_pem_file}"))?
    {
        roots.add(cert?)?;
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

async fn open(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let tcp = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    tcp.set_nodelay(true)?;
    let tls = connector
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .context("TLS handshake")?;
    anyhow::ensure!(
        tls.get_ref().1.alpn_protocol() == Some(b"h2"),
        "the server did not negotiate h2"
    );
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        // Go's HTTP/2 transport pings idle connections too; it also keeps a
        // dead connection from stalling the whole run.
        .keep_alive_interval(Duration::from_secs(30))
        .handshake(TokioIo::new(tls))
        .await
        .context("HTTP/2 handshake")?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("load: connection closed: {e}");
        }
    });
    Ok(sender)
}
