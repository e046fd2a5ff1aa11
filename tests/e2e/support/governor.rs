//! Runs the real `scale-governor serve` binary against the test control
//! plane and registers it as the cluster's webhooks for one namespace.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::Stdio,
    sync::OnceLock,
    time::{Duration, Instant},
};

use scale_governor::testing::cli::certs;
use tokio::process::{Child, Command};

use super::{
    Cluster, DeleteOnDrop, TestNamespace,
    identity::{Identity, governor_identity},
};

/// One CA and serving certificate for every governor in a test binary.
pub struct TestCerts {
    dir: PathBuf,
    /// The `caBundle` for webhook configurations.
    pub ca_bundle: String,
}

/// Certificates written under `target/`, made once per test binary.
pub fn certs() -> &'static TestCerts {
    static CERTS: OnceLock<TestCerts> = OnceLock::new();
    CERTS.get_or_init(|| {
        let generated =
            certs::generate(&certs::Args::default()).expect("generating test certificates");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("governor-certs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tls.crt"), &generated.cert_pem).unwrap();
        std::fs::write(dir.join("tls.key"), &generated.key_pem).unwrap();
        TestCerts {
            dir,
            ca_bundle: generated.ca_bundle(),
        }
    })
}

/// The binary the tests run: this build's, or `SCALE_GOVERNOR_TEST_BIN` (an
/// older build, to see a test fail before its fix). Flags the binary does
/// not know are left out, so an older one still starts.
struct Binary {
    path: PathBuf,
    help: String,
}

fn binary() -> &'static Binary {
    static BINARY: OnceLock<Binary> = OnceLock::new();
    BINARY.get_or_init(|| {
        let path = std::env::var_os("SCALE_GOVERNOR_TEST_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_scale-governor")));
        let help = std::process::Command::new(&path)
            .args(["serve", "--help"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        Binary { path, help }
    })
}

impl TestCerts {
    /// The directory holding `tls.crt` and `tls.key`.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

impl Binary {
    fn known(&self, flags: &[&str]) -> Vec<String> {
        flags
            .iter()
            .filter(|f| {
                let name = f.split('=').next().unwrap_or(f);
                self.help.contains(&format!("{name} "))
            })
            .map(|f| (*f).to_owned())
            .collect()
    }
}

/// A running `scale-governor serve`, killed on drop.
pub struct Governor {
    child: Option<Child>,
    extra: Vec<String>,
    env: Vec<(String, String)>,
    certs_dir: PathBuf,
    /// HTTPS port of `/mutate` and `/validate`.
    pub https_port: u16,
    /// Plain-HTTP port of `/readyz` and `/metrics`.
    pub admin_port: u16,
    /// Both ports, held for as long as this governor lives.
    _ports: [ReservedPort; 2],
    identity: String,
    lease_namespace: String,
    kubeconfig: PathBuf,
    log: PathBuf,
    /// The ServiceAccount identity it runs under (as deploy/base grants).
    _identity: Identity,
}

/// A GET on a governor's plain-HTTP admin port: (status, body).
pub async fn admin_request(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}

/// libfaketime's preload library (Debian's package `faketime`, which
/// `.ci/tools.sh faketime` installs), if present.
pub fn libfaketime() -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
        "/usr/local/lib/faketime/libfaketime.so.1",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// A port on 127.0.0.1 kept for one process for as long as this lives, as
/// a pod's own port is: a socket bound to it with `SO_REUSEADDR` that never
/// listens. `serve` binds with `SO_REUSEADDR` too, so it can listen there,
/// and again after a restart in place; in between, no outgoing connection
/// can take the port as its local one (Linux gives a connection only a port
/// nothing was bound to). A port that was merely free a moment ago can be
/// taken: a replica restarted on one failed with "binding 127.0.0.1:42647:
/// Address already in use".
pub struct ReservedPort {
    /// The port.
    pub port: u16,
    _socket: tokio::net::TcpSocket,
}

/// A port on 127.0.0.1 picked by the kernel and kept (see [`ReservedPort`]).
pub fn reserve_port() -> ReservedPort {
    let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket
        .bind((std::net::Ipv4Addr::LOCALHOST, 0).into())
        .expect("binding a port on 127.0.0.1");
    let port = socket.local_addr().expect("the bound port").port();
    ReservedPort {
        port,
        _socket: socket,
    }
}

/// A port free on 127.0.0.1 a moment ago; anything may take it since (see
/// [`reserve_port`] for one that stays free).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Governor {
    /// Starts one replica; the Lease lives in `lease_namespace` so tests do
    /// not contend for one leader.
    pub async fn start(cluster: &Cluster, lease_namespace: &str, identity: &str) -> Governor {
        Governor::start_with(cluster, lease_namespace, identity, &[]).await
    }

    /// [`Governor::start`] with extra `serve` flags.
    pub async fn start_with(
        cluster: &Cluster,
        lease_namespace: &str,
        identity: &str,
        extra: &[&str],
    ) -> Governor {
        Governor::start_in(cluster, lease_namespace, identity, extra, &certs().dir).await
    }

    /// [`Governor::start_with`] serving `certs_dir/tls.{crt,key}` instead of
    /// the shared test certificate.
    pub async fn start_in(
        cluster: &Cluster,
        lease_namespace: &str,
        identity: &str,
        extra: &[&str],
        certs_dir: &std::path::Path,
    ) -> Governor {
        let extra = extra.iter().map(|s| (*s).to_owned()).collect();
        Governor::launch(
            cluster,
            lease_namespace,
            identity,
            extra,
            Vec::new(),
            certs_dir,
        )
        .await
    }

    /// Starts `serve` with `extra` flags and `env` for a new identity.
    async fn launch(
        cluster: &Cluster,
        lease_namespace: &str,
        identity: &str,
        extra: Vec<String>,
        env: Vec<(String, String)>,
        certs_dir: &std::path::Path,
    ) -> Governor {
        let account = governor_identity(cluster, lease_namespace, identity).await;
        let ports = [reserve_port(), reserve_port()];
        let mut g = Governor {
            child: None,
            extra,
            env,
            certs_dir: certs_dir.to_owned(),
            https_port: ports[0].port,
            admin_port: ports[1].port,
            _ports: ports,
            identity: identity.to_owned(),
            lease_namespace: lease_namespace.to_owned(),
            kubeconfig: account.kubeconfig.clone(),
            log: cluster
                .dir()
                .join(format!("governor-{lease_namespace}-{identity}.log")),
            _identity: account,
        };
        g.spawn().await;
        g
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let binary = binary();
        let child = Command::new(&binary.path)
            .args([
                "serve",
                "--persist-interval-ms=200",
                "--cert-reload-seconds=1",
            ])
            // Short, so a test sees a refused create forgotten quickly.
            .args(binary.known(&["--confirm-timeout=2s", "--ledger-cleanup-interval=1s"]))
            .arg(format!("--addr=127.0.0.1:{}", self.https_port))
            .arg(format!("--admin-addr=127.0.0.1:{}", self.admin_port))
            .arg("--tls-cert")
            .arg(self.certs_dir.join("tls.crt"))
            .arg("--tls-key")
            .arg(self.certs_dir.join("tls.key"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg(format!("--lease-namespace={}", self.lease_namespace))
            // Tests run side by side in one cluster: each governor keeps to
            // its own namespace, as one Lease holder per cluster would.
            .arg(format!("--watch-namespace={}", self.lease_namespace))
            .arg(format!("--identity={}", self.identity))
            // The configurations `register` makes for this namespace.
            .args(binary.known(&[&format!(
                "--webhook-configuration=scale-governor-{}",
                self.lease_namespace
            )]))
            .args(binary.known(&self.extra.iter().map(String::as_str).collect::<Vec<_>>()))
            .env("RUST_LOG", "info,scale_governor=debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("starting scale-governor serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.get("/readyz").await.as_deref() != Some("ok") {
            assert!(
                Instant::now() < deadline,
                "governor not ready; see {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// [`Governor::start`] with this process's clock shifted by `offset`
    /// (libfaketime's syntax: `+3m`, `-3m`), as on a node whose time is
    /// off; `libfaketime` is the library to preload ([`libfaketime`]).
    pub async fn start_skewed(
        cluster: &Cluster,
        lease_namespace: &str,
        identity: &str,
        offset: &str,
        libfaketime: &std::path::Path,
    ) -> Governor {
        let env = vec![
            ("LD_PRELOAD".into(), libfaketime.display().to_string()),
            ("FAKETIME".into(), offset.to_owned()),
            // Every call reads the fake clock afresh.
            ("FAKETIME_NO_CACHE".into(), "1".into()),
        ];
        Governor::launch(
            cluster,
            lease_namespace,
            identity,
            Vec::new(),
            env,
            &certs().dir,
        )
        .await
    }

    /// SIGTERM and wait: a graceful stop, which releases the Lease.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
        }
    }

    /// SIGKILL: no graceful drain, no last persist. Returns once the
    /// process is reaped, so its ports are free to bind again.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts again after [`Governor::kill`], on the same ports (kept for it
    /// meanwhile) and with the same identity, as a container restarted in
    /// place would.
    pub async fn start_again(&mut self) {
        self.spawn().await;
    }

    /// Kills and starts again on the same ports, with an empty memory.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    /// `https://127.0.0.1:<port>` for webhook configurations.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.https_port)
    }

    /// A kubeconfig that authenticates as this governor's ServiceAccount.
    pub fn identity_kubeconfig(&self) -> &std::path::Path {
        &self._identity.kubeconfig
    }

    /// The admin `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.unwrap_or_default()
    }

    /// Sum of `scale_governor_admission_reviews_total` samples.
    pub async fn reviews(&self) -> u64 {
        self.metrics()
            .await
            .lines()
            .filter(|l| l.starts_with("scale_governor_admission_reviews_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// `/readyz`: (HTTP status, body).
    pub async fn readyz(&self) -> (u16, String) {
        self.request("/readyz").await.unwrap_or((0, String::new()))
    }

    /// The log written so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn request(&self, path: &str) -> Option<(u16, String)> {
        admin_request(self.admin_port, path).await
    }

    async fn get(&self, path: &str) -> Option<String> {
        let (code, body) = self.request(path).await?;
        (code == 200).then_some(body)
    }
}

/// Registers mutating and validating webhooks that send this namespace's
/// workload and scale requests to `url`; deleted when the guards drop.
/// `failurePolicy: Fail`, so a test can never pass because the webhook was
/// silently skipped.
pub async fn register(cluster: &Cluster, ns: &TestNamespace, url: &str) -> [DeleteOnDrop; 2] {
    register_with_ca(cluster, ns, url, &certs().ca_bundle).await
}

/// [`register`] with another `caBundle`, for a governor serving a
/// certificate of its own (or to register the wrong one on purpose).
pub async fn register_with_ca(
    cluster: &Cluster,
    ns: &TestNamespace,
    url: &str,
    ca_bundle: &str,
) -> [DeleteOnDrop; 2] {
    let name = format!("scale-governor-{}", ns.name());
    let config = write_config(cluster, &name, ns.name(), url, ca_bundle).await;
    cluster.kubectl_ok(["apply", "-f", &config]).await;
    [
        cluster.delete_on_drop("mutatingwebhookconfiguration", &name),
        cluster.delete_on_drop("validatingwebhookconfiguration", &name),
    ]
}

/// Points an existing registration at another replica.
pub async fn repoint(cluster: &Cluster, ns: &TestNamespace, url: &str) {
    let name = format!("scale-governor-{}", ns.name());
    let config = write_config(cluster, &name, ns.name(), url, &certs().ca_bundle).await;
    cluster.kubectl_ok(["apply", "-f", &config]).await;
}

/// Renders `deploy/local` for this namespace with `deploy/local/render.sh`,
/// so the tests register exactly the configuration the project ships, only
/// pointed at this test's governor, limited to its namespace and with
/// `failurePolicy: Fail`.
async fn write_config(
    cluster: &Cluster,
    name: &str,
    namespace: &str,
    url: &str,
    ca_bundle: &str,
) -> String {
    let rendered = super::install::render_local(
        cluster,
        &[
            "--name",
            name,
            "--namespace",
            namespace,
            "--url",
            url,
            "--ca-bundle",
            ca_bundle,
            "--failure-policy",
            "Fail",
            "--timeout",
            "10",
        ],
    )
    .await;
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.yaml"));
    std::fs::write(&file, rendered).unwrap();
    file.to_string_lossy().into_owned()
}
