//! The apiserver's side of the wire: a few long-lived HTTP/2 connections over
//! TLS (trusting only the benchmark's CA) that carry many concurrent streams,
//! which is how the apiserver's Go client talks to a webhook; or, with
//! `--http1`, a pool of keep-alive HTTP/1.1 connections, one request at a
//! time each, as it does when HTTP/2 is off.

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
    client::conn::{http1, http2},
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
    connections: Connections,
    next: AtomicUsize,
}

#[derive(Debug)]
enum Connections {
    Http2(Vec<http2::SendRequest<Full<Bytes>>>),
    /// One request at a time each: a request takes the first idle one.
    Http1(Vec<tokio::sync::Mutex<http1::SendRequest<Full<Bytes>>>>),
}

impl Client {
    /// Opens `connections` connections to `url` (https, IP host), HTTP/2 or
    /// (`http1`) HTTP/1.1, verifying the server against the CA in
    /// `ca_pem_file`.
    pub async fn connect(
        url: &str,
        ca_pem_file: &str,
        connections: usize,
        http1: bool,
    ) -> anyhow::Result<Client> {
        let uri: hyper::Uri = url.parse().with_context(|| format!("bad --url {url}"))?;
        anyhow::ensure!(uri.scheme_str() == Some("https"), "--url must be https");
        let authority = uri.authority().context("--url has no host")?;
        let addr: SocketAddr = authority
            .as_str()
            .parse()
            .context("--url host must be IP:PORT, as in a webhook's clientConfig.url")?;
        let alpn: &[u8] = if http1 { b"http/1.1" } else { b"h2" };
        let connector = connector(ca_pem_file, alpn)?;
        let count = connections.max(1);
        let connections = if http1 {
            let mut all = Vec::with_capacity(count);
            for _ in 0..count {
                all.push(tokio::sync::Mutex::new(open_http1(addr, &connector).await?));
            }
            Connections::Http1(all)
        } else {
            let mut all = Vec::with_capacity(count);
            for _ in 0..count {
                all.push(open(addr, &connector).await?);
            }
            Connections::Http2(all)
        };
        Ok(Client {
            uri,
            connections,
            next: AtomicUsize::new(0),
        })
    }

    /// POSTs `body` and returns the status and response body.
    pub async fn post(&self, body: String) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request = Request::post(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let response = match &self.connections {
            Connections::Http2(all) => {
                let mut sender = all[start % all.len()].clone();
                sender.send_request(request).await?
            }
            Connections::Http1(all) => {
                if let Some(host) = self.uri.authority() {
                    request
                        .headers_mut()
                        .insert(header::HOST, host.as_str().parse()?);
                }
                let idle =
                    (0..all.len()).find_map(|k| all[(start + k) % all.len()].try_lock().ok());
                let mut sender = match idle {
                    Some(sender) => sender,
                    None => all[start % all.len()].lock().await,
                };
                sender.ready().await?;
                sender.send_request(request).await?
            }
        };
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

fn connector(ca_pem_file: &str, alpn: &[u8]) -> anyhow::Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem_file)
        .with_context(|| format!("reading CA {ca_pem_file}"))?
    {
        roots.add(cert?)?;
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

async fn handshake(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    tcp.set_nodelay(true)?;
    connector
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .context("TLS handshake")
}

async fn open_http1(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> anyhow::Result<http1::SendRequest<Full<Bytes>>> {
    let tls = handshake(addr, connector).await?;
    let (sender, connection) = http1::handshake(TokioIo::new(tls))
        .await
        .context("HTTP/1.1 handshake")?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("load: connection closed: {e}");
        }
    });
    Ok(sender)
}

async fn open(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> anyhow::Result<http2::SendRequest<Full<Bytes>>> {
    let tls = handshake(addr, connector).await?;
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
