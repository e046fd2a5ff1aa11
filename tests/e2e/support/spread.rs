//! A small HTTPS proxy in front of several governor replicas, as a Service
//! would be: each review goes to the next replica whose `/readyz` says ok,
//! and to another one if that replica is gone mid-request. It tells who
//! answered each review, so a test can strike right after an admission, and
//! it hands out every review with its answer, so a test can read what the
//! governor was asked and what it decided.

use std::{
    net::Ipv4Addr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::StatusCode, routing::post};
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::sync::broadcast;

use scale_governor::testing::tls::{certified_key_from_pem, server_config};

use super::{HttpsServer, TestTls, governor};

/// One replica behind the proxy.
pub struct Backend {
    /// HTTPS port of its webhook.
    pub https_port: u16,
    /// Plain-HTTP admin port (`/readyz`).
    pub admin_port: u16,
}

struct Shared {
    backends: Vec<Backend>,
    ready: Vec<AtomicBool>,
    next: AtomicUsize,
    connector: tokio_rustls::TlsConnector,
    answered: broadcast::Sender<usize>,
    exchanges: broadcast::Sender<Arc<Exchange>>,
}

/// One review and the answer the proxy passed back.
#[derive(Debug)]
pub struct Exchange {
    /// When the answer came back.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Which backend answered, by its place in [`Spread::start`]'s list.
    pub backend: usize,
    /// `/mutate` or `/validate`.
    pub path: String,
    /// The AdmissionReview the apiserver sent.
    pub request: Bytes,
    /// The AdmissionReview the governor answered.
    pub response: Bytes,
}

/// A change of `spec.replicas` a review let through at `/mutate`.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The review's uid, which the governor logs its decision under.
    pub uid: String,
    /// The workload's name.
    pub name: String,
    /// The stored count, from `oldObject`.
    pub from: u32,
    /// The count asked for.
    pub asked: u32,
    /// The count let through: the one asked for, or as patched.
    pub to: u32,
}

impl Exchange {
    /// The change of `spec.replicas` this review let through, if it was a
    /// `/mutate` review that allowed one.
    pub fn admitted(&self) -> Option<Admitted> {
        use serde_json::Value;
        if !self.path.ends_with("mutate") {
            return None;
        }
        let request: Value = serde_json::from_slice(&self.request).ok()?;
        let response: Value = serde_json::from_slice(&self.response).ok()?;
        let (req, resp) = (&request["request"], &response["response"]);
        if req["dryRun"] == true || resp["allowed"] != true {
            return None;
        }
        let count = |v: &Value| v["spec"]["replicas"].as_u64().map(|n| n as u32);
        let asked = count(&req["object"])?;
        let from = count(&req["oldObject"])?;
        let patched = resp["patch"]
            .as_str()
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .and_then(|ops| {
                ops.as_array()?
                    .iter()
                    .find(|op| op["path"] == "/spec/replicas")
                    .and_then(|op| op["value"].as_u64())
            });
        let to = patched.map_or(asked, |n| n as u32);
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        (from != to).then(|| Admitted {
            uid: text(&req["uid"]),
            name: text(&req["name"]),
            from,
            asked,
            to,
        })
    }
}

/// The running proxy; stops when dropped.
pub struct Spread {
    /// Where the apiserver sends reviews, and the CA to trust for it.
    pub server: HttpsServer,
    shared: Arc<Shared>,
    poller: tokio::task::JoinHandle<()>,
}

impl Drop for Spread {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

impl Spread {
    /// Starts a proxy over `backends`, which serve the shared test
    /// certificate.
    pub async fn start(backends: Vec<Backend>) -> Spread {
        let (connector, pem) = connector();
        let ready = backends.iter().map(|_| AtomicBool::new(false)).collect();
        let shared = Arc::new(Shared {
            backends,
            ready,
            next: AtomicUsize::new(0),
            connector,
            answered: broadcast::channel(1024).0,
            exchanges: broadcast::channel(4096).0,
        });
        let poller = tokio::spawn(poll_ready(shared.clone()));
        let router = Router::new()
            .route("/{*path}", post(forward))
            .with_state(shared.clone());
        // The replicas' own certificate, so each one finds the caBundle of
        // its webhook configuration matching what it serves.
        let certs = governor::certs();
        let read = |f: &str| std::fs::read(certs.dir().join(f)).expect("the test certificate");
        let key = certified_key_from_pem(&read("tls.crt"), &read("tls.key")).expect("the test key");
        let tls = TestTls {
            ca_pem: String::from_utf8(pem).expect("PEM is text"),
            server_config: server_config(Arc::new(rustls::sign::SingleCertAndKey::from(key)))
                .expect("rustls server config"),
        };
        Spread {
            server: HttpsServer::start_with_tls(router, tls).await,
            shared,
            poller,
        }
    }

    /// A proxy over `governors`, with `ns`'s webhook configurations
    /// pointing at it: every review the apiserver sends is recorded.
    pub async fn register_over(
        cluster: &super::Cluster,
        ns: &super::TestNamespace,
        governors: &[&governor::Governor],
    ) -> (Spread, [super::DeleteOnDrop; 2]) {
        let backends = governors
            .iter()
            .map(|g| Backend {
                https_port: g.https_port,
                admin_port: g.admin_port,
            })
            .collect();
        let spread = Spread::start(backends).await;
        let webhooks = governor::register_with_ca(
            cluster,
            ns,
            &spread.server.url,
            &spread.server.tls.ca_bundle(),
        )
        .await;
        (spread, webhooks)
    }

    /// Which backend answered each review from now on.
    pub fn answered(&self) -> broadcast::Receiver<usize> {
        self.shared.answered.subscribe()
    }

    /// Every review and its answer from now on.
    pub fn exchanges(&self) -> broadcast::Receiver<Arc<Exchange>> {
        self.shared.exchanges.subscribe()
    }
}

async fn poll_ready(shared: Arc<Shared>) {
    loop {
        for (i, b) in shared.backends.iter().enumerate() {
            let ok = governor::admin_request(b.admin_port, "/readyz")
                .await
                .is_some_and(|(code, _)| code == 200);
            shared.ready[i].store(ok, Ordering::Release);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn forward(
    State(shared): State<Arc<Shared>>,
    uri: axum::http::Uri,
    body: Bytes,
) -> (StatusCode, Bytes) {
    let n = shared.backends.len();
    let first = shared.next.fetch_add(1, Ordering::Relaxed);
    // Ready replicas first, in turn; then any, as a Service's endpoints
    // would lag a replica that just died.
    let order = (0..n)
        .map(|k| (first + k) % n)
        .filter(|&i| shared.ready[i].load(Ordering::Acquire))
        .chain((0..n).map(|k| (first + k) % n));
    for i in order {
        if let Ok(answer) = send(&shared, i, uri.path(), body.clone()).await {
            let _ = shared.answered.send(i);
            let _ = shared.exchanges.send(Arc::new(Exchange {
                at: chrono::Utc::now(),
                backend: i,
                path: uri.path().to_owned(),
                request: body,
                response: answer.clone(),
            }));
            return (StatusCode::OK, answer);
        }
    }
    (
        StatusCode::BAD_GATEWAY,
        Bytes::from_static(b"no replica answered"),
    )
}

/// A TLS client trusting the test CA, and that CA's PEM.
fn connector() -> (tokio_rustls::TlsConnector, Vec<u8>) {
    super::install_crypto_provider();
    let pem = base64::engine::general_purpose::STANDARD
        .decode(&governor::certs().ca_bundle)
        .expect("the test caBundle is base64");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(&pem).expect("the test CA"))
        .unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (tokio_rustls::TlsConnector::from(Arc::new(config)), pem)
}

/// Sends one review to the governor serving the test certificate on
/// `port`, as the apiserver would, and returns its answer.
pub async fn review(port: u16, path: &str, body: Bytes) -> anyhow::Result<Bytes> {
    exchange(&connector().0, port, path, body).await
}

async fn send(shared: &Shared, i: usize, path: &str, body: Bytes) -> anyhow::Result<Bytes> {
    exchange(&shared.connector, shared.backends[i].https_port, path, body).await
}

async fn exchange(
    connector: &tokio_rustls::TlsConnector,
    port: u16,
    path: &str,
    body: Bytes,
) -> anyhow::Result<Bytes> {
    let tcp = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
    let name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
    let tls = connector.connect(name, tcp).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let request = hyper::Request::post(format!("https://127.0.0.1:{port}{path}"))
        .header(hyper::header::HOST, "127.0.0.1")
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))?;
    let response =
        tokio::time::timeout(Duration::from_secs(10), sender.send_request(request)).await??;
    anyhow::ensure!(
        response.status().is_success(),
        "status {}",
        response.status()
    );
    Ok(response.into_body().collect().await?.to_bytes())
}
