//! The admission listener over real TLS, through the public API only:
//! protocol negotiation, certificate rotation the way kubelet performs it,
//! broken updates, and graceful shutdown. Connection timeouts and the admin
//! listener are covered by `server`'s unit tests.

use std::{
    future::Future,
    net::{Ipv4Addr, SocketAddr},
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use axum::{Router, routing::get};
use http_body_util::{BodyExt, Empty};
use hyper::{Request, Version, body::Bytes};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use scale_governor::{
    testing::cli::certs::{Args, Generated, generate},
    testing::server::{HttpsOptions, ServerError, serve_https},
    testing::tls::{
        CertPaths, CertStore,
        ca::{CertificateAuthority, ServingCert},
        certified_key_from_pem, server_config,
    },
};
use tokio::{
    net::TcpStream,
    sync::{Semaphore, mpsc::UnboundedReceiver},
    task::JoinHandle,
};
use tokio_rustls::{TlsConnector, client::TlsStream};
use tokio_util::sync::CancellationToken;

/// What one probing connection saw: the server's certificate, or why it failed.
type Observation = Result<CertificateDer<'static>, String>;
/// ALPN protocols offered, the one negotiated, the HTTP version served.
type Case = (&'static [&'static [u8]], Option<&'static [u8]>, Version);

const H2: &[u8] = b"h2";
const H1: &[u8] = b"http/1.1";
/// Bound on any single network step, so a bug fails the test instead of hanging it.
const STEP: Duration = Duration::from_secs(10);

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM certificate")
}

/// Requests to `/slow` report on `entered`, then park until `release` has a permit.
#[derive(Clone)]
struct Slow {
    entered: tokio::sync::mpsc::UnboundedSender<()>,
    release: Arc<Semaphore>,
}

fn router(slow: Option<Slow>) -> Router {
    let app = Router::new().route("/", get(|| async { "ok" }));
    let Some(slow) = slow else { return app };
    app.route(
        "/slow",
        get(move || async move {
            let _ = slow.entered.send(());
            let _permit = slow.release.acquire().await.expect("semaphore open");
            "slow done"
        }),
    )
}

struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), ServerError>>,
}

async fn start(tls: Arc<rustls::ServerConfig>, app: Router, opts: HttpsOptions) -> Server {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve_https(listener, tls, app, shutdown.clone(), opts));
    Server {
        addr,
        shutdown,
        task,
    }
}

/// A server presenting a certificate minted in memory, never reloaded.
async fn fixed_server(app: Router, opts: HttpsOptions) -> (Generated, Server) {
    let generated = generate(&Args::default()).unwrap();
    let (cert, key) = (generated.cert_pem.as_bytes(), generated.key_pem.as_bytes());
    let key = certified_key_from_pem(cert, key).unwrap();
    let tls = server_config(Arc::new(rustls::sign::SingleCertAndKey::from(key))).unwrap();
    (generated, start(tls, app, opts).await)
}

/// Cancels the server's token and checks it returns `Ok` promptly.
async fn stop(server: Server) {
    server.shutdown.cancel();
    step(server.task).await.expect("no panic").expect("Ok");
}

/// Awaits `fut`, failing the test if it takes longer than [`STEP`].
async fn step<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut)
        .await
        .expect("step timed out")
}

/// A server whose `/slow` requests park until `release` gets permits; the
/// receiver yields once per request that reached the handler.
async fn slow_server(
    opts: HttpsOptions,
    release: Arc<Semaphore>,
) -> (Generated, Server, UnboundedReceiver<()>) {
    let (entered, rx) = tokio::sync::mpsc::unbounded_channel();
    let (generated, server) = fixed_server(router(Some(Slow { entered, release })), opts).await;
    (generated, server, rx)
}

/// A server whose certificate comes from `volume`, polled every 100 ms.
async fn reloading_server(volume: &SecretVolume) -> (Arc<CertStore>, Server, CancellationToken) {
    let store = CertStore::load(volume.paths()).unwrap();
    let reloader = CancellationToken::new();
    store.spawn_reloader(Duration::from_millis(100), reloader.clone());
    let tls = server_config(store.clone()).unwrap();
    let server = start(tls, router(None), HttpsOptions::default()).await;
    (store, server, reloader)
}

/// A client that trusts only `ca_pem` and verifies the IP SAN 127.0.0.1.
fn connector(ca_pem: &str, alpn: &[&[u8]]) -> TlsConnector {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der(ca_pem)).unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // A resumed session skips the certificate, and the tests want to see it.
    config.resumption = rustls::client::Resumption::disabled();
    TlsConnector::from(Arc::new(config))
}

async fn connect(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await.context("TCP connect")?;
    let name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
    connector.connect(name, tcp).await.context("TLS handshake")
}

/// The leaf certificate the server presented.
fn peer_cert(tls: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref()
        .1
        .peer_certificates()
        .expect("server certificate")[0]
        .clone()
}

/// One GET over `tls`, speaking whatever protocol ALPN chose.
async fn fetch(tls: TlsStream<TcpStream>, path: &str) -> anyhow::Result<(Version, String)> {
    let h2 = tls.get_ref().1.alpn_protocol() == Some(H2);
    let io = TokioIo::new(tls);
    let request = Request::get(format!("https://127.0.0.1{path}"))
        .header(hyper::header::HOST, "127.0.0.1")
        .body(Empty::<Bytes>::new())?;
    let response = if h2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        send.send_request(request).await?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        send.send_request(request).await?
    };
    anyhow::ensure!(
        response.status().is_success(),
        "status {}",
        response.status()
    );
    let version = response.version();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((version, String::from_utf8(body.to_vec())?))
}

/// Connects, checks `/` answers, returns the certificate that was presented.
async fn probe(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> anyhow::Result<CertificateDer<'static>> {
    let attempt = async {
        let tls = connect(addr, connector).await?;
        let cert = peer_cert(&tls);
        let (_, body) = fetch(tls, "/").await?;
        anyhow::ensure!(body == "ok", "body {body:?}");
        Ok(cert)
    };
    tokio::time::timeout(STEP, attempt)
        .await
        .context("timed out")?
}

/// Polls `check` every 20 ms until it yields `Some`, panicking after `within`.
async fn eventually<T, Fut: Future<Output = Option<T>>>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Fut,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A directory laid out like a mounted Secret volume, updated the way
/// kubelet's AtomicWriter does it: files go into a fresh `..<timestamp>`
/// directory, a temporary symlink to it is renamed over `..data`, and the
/// old directory is deleted.
struct SecretVolume {
    root: PathBuf,
    current: Option<PathBuf>,
}

impl SecretVolume {
    fn new(root: &Path) -> Self {
        for file in ["tls.crt", "tls.key"] {
            symlink(Path::new("..data").join(file), root.join(file)).unwrap();
        }
        Self {
            root: root.to_owned(),
            current: None,
        }
    }

    fn publish(&mut self, version: &str, cert_pem: &str, key_pem: &str) {
        let dir_name = format!("..2026_11_21_{version}");
        let dir = self.root.join(&dir_name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("tls.crt"), cert_pem).unwrap();
        std::fs::write(dir.join("tls.key"), key_pem).unwrap();
        let tmp = self.root.join("..data_tmp");
        symlink(&dir_name, &tmp).unwrap();
        std::fs::rename(&tmp, self.root.join("..data")).unwrap();
        if let Some(old) = self.current.replace(dir) {
            std::fs::remove_dir_all(old).unwrap();
        }
    }

    fn paths(&self) -> CertPaths {
        CertPaths::in_dir(&self.root)
    }
}

fn issue(ca: &CertificateAuthority, service: &str) -> ServingCert {
    let args = Args {
        service: service.into(),
        ..Args::default()
    };
    ca.issue(&args.serving_spec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_round_trip_negotiates_h2_and_http1() {
    let (generated, server) = fixed_server(router(None), HttpsOptions::default()).await;

    let cases: [Case; 4] = [
        (&[H2], Some(H2), Version::HTTP_2),
        (&[H1], Some(H1), Version::HTTP_11),
        (&[H2, H1], Some(H2), Version::HTTP_2),
        // No ALPN at all: HTTP/1.1, since HTTP/2 over TLS must be negotiated.
        (&[], None, Version::HTTP_11),
    ];
    for (offered, negotiated, version) in cases {
        let connector = connector(&generated.ca_cert_pem, offered);
        let tls = connect(server.addr, &connector).await.unwrap();
        assert_eq!(
            tls.get_ref().1.alpn_protocol(),
            negotiated,
            "offered {offered:?}"
        );
        assert_eq!(peer_cert(&tls), der(&generated.cert_pem));
        let (got, body) = fetch(tls, "/").await.unwrap();
        assert_eq!((got, body.as_str()), (version, "ok"), "offered {offered:?}");
    }

    // A client that does not trust our CA is refused.
    let other = CertificateAuthority::new(1).unwrap();
    assert!(
        connect(server.addr, &connector(&other.cert_pem(), &[H2]))
            .await
            .is_err()
    );

    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_through_a_data_symlink_swap_drops_no_connection() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::new(1).unwrap();
    let (first, second) = (issue(&ca, "first"), issue(&ca, "second"));
    let mut volume = SecretVolume::new(dir.path());
    volume.publish("1", &first.cert_pem, &first.key_pem);

    let (store, server, reloader) = reloading_server(&volume).await;

    // A client opening fresh connections back to back, alternating protocols,
    // recording what each one saw.
    let seen: Arc<Mutex<Vec<Observation>>> = Arc::default();
    let client = tokio::spawn({
        let (seen, halt, addr) = (seen.clone(), reloader.child_token(), server.addr);
        let connectors = [
            connector(&ca.cert_pem(), &[H2]),
            connector(&ca.cert_pem(), &[H1]),
        ];
        async move {
            for connector in connectors.iter().cycle() {
                if halt.is_cancelled() {
                    break;
                }
                let outcome = probe(addr, connector).await.map_err(|e| format!("{e:#}"));
                seen.lock().unwrap().push(outcome);
            }
        }
    });
    let count = |cert: &CertificateDer<'_>| {
        let seen = seen.lock().unwrap();
        seen.iter()
            .filter(|o| o.as_ref().ok() == Some(cert))
            .count()
    };
    let (old, new) = (der(&first.cert_pem), der(&second.cert_pem));
    let (count, old_ref, new_ref) = (&count, &old, &new);

    eventually(
        "connections with the first certificate",
        STEP,
        || async move { (count(old_ref) >= 5).then_some(()) },
    )
    .await;
    volume.publish("2", &second.cert_pem, &second.key_pem);
    eventually(
        "connections with the rotated certificate",
        STEP,
        || async move { (count(new_ref) >= 5).then_some(()) },
    )
    .await;
    reloader.cancel();
    step(client).await.unwrap();

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let errors: Vec<_> = seen.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(errors.is_empty(), "failed connections: {errors:?}");
    // Sequential connections: once the new certificate shows, the old never returns.
    let switch = seen
        .iter()
        .position(|o| o.as_ref().ok() == Some(&new))
        .unwrap();
    assert!(seen[..switch].iter().all(|o| o.as_ref().ok() == Some(&old)));
    assert!(seen[switch..].iter().all(|o| o.as_ref().ok() == Some(&new)));
    assert_eq!((store.reloads(), store.failures()), (1, 0));
    assert_eq!(store.current_cert(), Some(new));

    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_update_keeps_the_old_certificate_until_a_good_one_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::new(1).unwrap();
    let (first, second, third) = (
        issue(&ca, "first"),
        issue(&ca, "second"),
        issue(&ca, "third"),
    );
    let mut volume = SecretVolume::new(dir.path());
    volume.publish("1", &first.cert_pem, &first.key_pem);

    let (store, server, reloader) = reloading_server(&volume).await;
    let client = connector(&ca.cert_pem(), &[H2, H1]);

    // A new certificate with a garbage key: must be rejected as a whole.
    volume.publish(
        "2",
        &second.cert_pem,
        "-----BEGIN PRIVATE KEY-----\nZ2FyYmFnZQ==\n-----END PRIVATE KEY-----\n",
    );
    // A read racing the swap (the old directory deleted between resolving
    // `..data` and opening a file in it) is a failure too, of `tls.crt` not
    // found; the kubelet's swap has the same window. Wait for the key's.
    let store_ref = &store;
    let error = eventually("the reloader to reject the update", STEP, || async move {
        store_ref.last_error().filter(|e| e.contains("tls.key"))
    })
    .await;
    assert_eq!(
        probe(server.addr, &client).await.unwrap(),
        der(&first.cert_pem),
        "{error}"
    );
    assert!(store.is_loaded());
    assert_eq!(store.reloads(), 0);

    // The next good update is picked up: a failure does not wedge the reloader.
    volume.publish("3", &third.cert_pem, &third.key_pem);
    let (addr, client, third_der) = (server.addr, &client, &der(&third.cert_pem));
    eventually(
        "the repaired certificate to be served",
        STEP,
        || async move {
            let cert = probe(addr, client).await.unwrap();
            (cert == *third_der).then_some(())
        },
    )
    .await;
    assert_eq!(store.last_error(), None);
    assert_eq!(store.reloads(), 1);
    assert!(store.failures() >= 1);

    reloader.cancel();
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_requests_and_refuses_new_connections() {
    let release = Arc::new(Semaphore::new(0));
    let opts = HttpsOptions {
        drain_timeout: Duration::from_secs(60),
        ..HttpsOptions::default()
    };
    let (generated, server, mut entered) = slow_server(opts, release.clone()).await;

    // One slow request per protocol, so both HTTP/2's GOAWAY path and
    // HTTP/1's close-after-response path are exercised.
    let mut in_flight = Vec::new();
    for alpn in [H2, H1] {
        let tls = connect(server.addr, &connector(&generated.ca_cert_pem, &[alpn]))
            .await
            .unwrap();
        in_flight.push(tokio::spawn(fetch(tls, "/slow")));
    }
    for _ in 0..2 {
        step(entered.recv()).await.unwrap();
    }

    server.shutdown.cancel();
    let addr = server.addr;
    // A connect racing the close may be reset instead; wait for the steady state.
    eventually("new connections to be refused", STEP, || async move {
        // Bounded: a listener that is open but not accepting would hang it.
        let connect = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr));
        match connect.await {
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Some(()),
            _ => None,
        }
    })
    .await;
    // The requests are parked, so the drain cannot have finished.
    assert!(!server.task.is_finished());

    release.add_permits(2);
    let mut versions = Vec::new();
    for request in in_flight {
        let (version, body) = step(request).await.unwrap().unwrap();
        assert_eq!(body, "slow done");
        versions.push(version);
    }
    assert_eq!(versions, [Version::HTTP_2, Version::HTTP_11]);
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_deadline_bounds_shutdown() {
    let opts = HttpsOptions {
        drain_timeout: Duration::from_millis(200),
        ..HttpsOptions::default()
    };
    // Never released: this request would hold the drain forever.
    let (generated, server, mut entered) = slow_server(opts, Arc::new(Semaphore::new(0))).await;
    let tls = connect(server.addr, &connector(&generated.ca_cert_pem, &[H2]))
        .await
        .unwrap();
    let request = tokio::spawn(fetch(tls, "/slow"));
    step(entered.recv()).await.unwrap();

    stop(server).await;
    let outcome = step(request).await.unwrap();
    assert!(
        outcome.is_err(),
        "the abandoned request cannot have succeeded: {outcome:?}"
    );
}
