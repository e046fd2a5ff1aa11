//! Shared helpers for the end-to-end tests; every module of the e2e binary
//! reaches them as `crate::support`.
//!
//! The main piece is [`try_cluster()`]: a real etcd + kube-apiserver +
//! kube-controller-manager (built from source by
//! `tests/controlplane/build.sh`), started once per test binary. Real binaries
//! because the behaviour under test (admission webhooks on `/scale`,
//! JSONPatch handling, controllers writing replicas) lives in the apiserver and
//! no fake reproduces it. See `docs/testing.md`.
//!
//! ```ignore
//! use crate::support;
//!
//! #[tokio::test]
//! #[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
//! #[parallel]
//! async fn scales() {
//!     let cluster = support::require_cluster!();
//!     let ns = cluster.namespace("scales").await;
//!     let deployments: Api<Deployment> = ns.api(cluster.client());
//!     // ...
//! }
//! ```

pub mod e2e;
pub mod external_metrics;
pub mod governor;
pub mod identity;
pub mod install;
pub mod keda;
pub mod prometheus;
pub mod replay;
pub mod spread;
pub mod timeline;

mod https;

pub use https::{HttpsServer, TestTls};

use std::{
    collections::HashMap,
    ffi::OsStr,
    fmt,
    future::Future,
    hash::{BuildHasher, RandomState},
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use k8s_openapi::{
    NamespaceResourceScope,
    api::{apps::v1::Deployment, core::v1::Namespace},
};
use kube::{
    Api, Client, Config, Resource,
    api::PostParams,
    config::{KubeConfigOptions, Kubeconfig},
};

/// Label put on every namespace made by [`Cluster::namespace`], so leftovers in
/// a shared cluster can be removed with `kubectl delete ns -l scale-governor.io/test`.
pub const TEST_NAMESPACE_LABEL: &str = "scale-governor.io/test";

/// When set to `1`, a missing Go toolchain fails the test instead of skipping:
/// CI sets it so a broken runner can never pass by skipping.
pub const REQUIRE_CLUSTER_ENV: &str = "SCALE_GOVERNOR_REQUIRE_CLUSTER";

/// cluster.sh exits with this when Go is needed to build the binaries but absent.
const EXIT_NO_GO: i32 = 3;

/// A running local control plane. Obtain it with [`try_cluster()`] or
/// [`require_cluster!`]; it lives for the whole test binary.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    kubeconfig: PathBuf,
    env: HashMap<String, String>,
    config: Config,
    kubectl: PathBuf,
    /// Whether this test binary started it (then it dies with the binary).
    owned: bool,
}

enum State {
    Ready(Box<Cluster>),
    Skipped,
    Failed(String),
}

static STATE: OnceLock<State> = OnceLock::new();

/// The control plane for this test binary, started on first use; `None`
/// (after a loud banner on stderr) when the binaries are not built and Go
/// is absent from PATH. Every other failure panics, so CI cannot pass by
/// silently skipping. Tests mostly call it through [`require_cluster!`].
pub fn try_cluster() -> Option<&'static Cluster> {
    match STATE.get_or_init(init) {
        State::Ready(c) => Some(c),
        State::Skipped => {
            // Straight to fd 2: eprintln! is captured by the test harness and
            // a passing (skipped) test would never show it.
            let _ = std::io::stderr().write_all(skip_banner().as_bytes());
            None
        }
        State::Failed(msg) => panic!("local control plane unavailable: {msg}"),
    }
}

/// Returns the shared [`Cluster`], or returns from the calling test (with a
/// loud SKIPPED banner) when Go is missing. Pass the value to return for tests
/// that return a `Result`: `require_cluster!(Ok(()))`.
macro_rules! require_cluster {
    () => {
        $crate::support::require_cluster!(())
    };
    ($skip:expr) => {
        match $crate::support::try_cluster() {
            Some(cluster) => cluster,
            None => return $skip,
        }
    };
}
pub(crate) use require_cluster;

pub(crate) fn skip_banner() -> String {
    let bar = "!".repeat(78);
    format!(
        "\n{bar}\n!! SKIPPED: this test needs the local Kubernetes control plane, but Go is\n\
         !! not on PATH and the binaries are not cached. Install Go >= 1.25 (see\n\
         !! docs/testing.md). Set {REQUIRE_CLUSTER_ENV}=1 to fail instead.\n{bar}\n"
    )
}

fn init() -> State {
    install_crypto_provider();
    match start() {
        Ok(Some(cluster)) => {
            eprintln!(
                "support: using control plane {} ({}, {})",
                cluster.dir.display(),
                cluster.env("APISERVER_URL").unwrap_or("?"),
                if cluster.owned {
                    "started by this test binary"
                } else {
                    "shared"
                }
            );
            State::Ready(Box::new(cluster))
        }
        Ok(None) if std::env::var(REQUIRE_CLUSTER_ENV).is_ok_and(|v| v == "1") => {
            State::Failed(format!("Go is not on PATH and {REQUIRE_CLUSTER_ENV}=1"))
        }
        Ok(None) => State::Skipped,
        Err(e) => State::Failed(format!("{e:#}")),
    }
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Reuses `target/cluster` (what `make test` starts once for every binary)
/// when it answers, else starts a private cluster supervised by our pid.
/// `Ok(None)` means "skip: no Go".
fn start() -> anyhow::Result<Option<Cluster>> {
    let shared = repo_root().join("target/cluster");
    if shared.join("kubeconfig").exists() {
        match Cluster::open(&shared, false) {
            Ok(c) if c.is_ready() => return Ok(Some(c)),
            _ => eprintln!(
                "support: {} does not answer /readyz; starting a private cluster",
                shared.display()
            ),
        }
    }

    start_private(&format!("cluster-{}-", env!("CARGO_CRATE_NAME")), &[])
}

/// Starts a control plane of this binary's own in `target/<prefix><pid>`,
/// with more `cluster.sh up` arguments (`--with keda`), torn down when the
/// binary exits. `Ok(None)` means "skip: no Go".
pub(crate) fn start_private(prefix: &str, up_args: &[&str]) -> anyhow::Result<Option<Cluster>> {
    let pid = std::process::id();
    prune_torn_down(prefix);
    let dir = repo_root().join(format!("target/{prefix}{pid}"));
    let script = repo_root().join("tests/controlplane/cluster.sh");
    let begun = Instant::now();
    // stderr is inherited so a cold build (minutes) shows its progress.
    let out = Command::new("bash")
        .arg(&script)
        .args([OsStr::new("up"), OsStr::new("--dir"), dir.as_os_str()])
        .args(["--watch-pid", &pid.to_string()])
        .args(up_args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    match out.status.code() {
        Some(0) => {}
        Some(EXIT_NO_GO) => return Ok(None),
        _ => bail!(
            "`{} up --dir {}` failed ({}); its output is above, daemon logs are in {}",
            script.display(),
            dir.display(),
            out.status,
            dir.display()
        ),
    }
    let cluster = Cluster::open(&dir, true)?;
    eprintln!(
        "support: control plane up in {:.1}s",
        begun.elapsed().as_secs_f64()
    );
    Ok(Some(cluster))
}

/// Deletes earlier runs' directories (only logs remain once torn down) so
/// they do not pile up; the latest run's logs survive until the next run.
fn prune_torn_down(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(repo_root().join("target")) else {
        return;
    };
    for dir in entries.flatten().map(|e| e.path()) {
        let ours = dir
            .file_name()
            .and_then(OsStr::to_str)
            .is_some_and(|n| n.starts_with(prefix));
        // A running or starting cluster always has pid files.
        let idle = std::fs::read_dir(&dir)
            .map(|mut files| {
                !files.any(|f| f.is_ok_and(|f| f.path().extension() == Some(OsStr::new("pid"))))
            })
            .unwrap_or(false);
        if ours && idle {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

impl Cluster {
    fn open(dir: &Path, owned: bool) -> anyhow::Result<Self> {
        let env_file = dir.join("env");
        let env = std::fs::read_to_string(&env_file)
            .with_context(|| format!("reading {}", env_file.display()))?
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect::<HashMap<_, _>>();
        let kubeconfig = dir.join("kubeconfig");
        let raw = Kubeconfig::read_from(&kubeconfig)
            .with_context(|| format!("reading {}", kubeconfig.display()))?;
        let config = block_on(Config::from_custom_kubeconfig(
            raw,
            &KubeConfigOptions::default(),
        ))
        .with_context(|| format!("loading {}", kubeconfig.display()))?;
        let kubectl = std::env::var_os("KUBECTL")
            .map(PathBuf::from)
            .or_else(|| {
                let built = Path::new(env.get("BIN_DIR")?).join("kubectl");
                built.exists().then_some(built)
            })
            .unwrap_or_else(|| "kubectl".into());
        Ok(Self {
            dir: dir.to_owned(),
            kubeconfig,
            env,
            config,
            kubectl,
            owned,
        })
    }

    fn is_ready(&self) -> bool {
        let mut config = self.config.clone();
        config.connect_timeout = Some(Duration::from_secs(2));
        config.read_timeout = Some(Duration::from_secs(5));
        block_on(async move {
            let request = axum::http::Request::get("/readyz").body(Vec::new())?;
            Client::try_from(config)?.request_text(request).await?;
            anyhow::Ok(())
        })
        .is_ok()
    }

    /// A fresh client. Call it inside the test's tokio runtime: a kube
    /// `Client` is bound to the runtime it was created in.
    pub fn client(&self) -> Client {
        Client::try_from(self.config.clone())
            .expect("building a kube client from the test kubeconfig")
    }

    /// The admin kubeconfig (client certificate in group system:masters).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The cluster's state directory; daemon logs are `<dir>/<component>.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The kubectl binary [`Cluster::kubectl`] runs.
    pub fn kubectl_path(&self) -> &Path {
        &self.kubectl
    }

    /// A value from the cluster's `env` file, e.g. `APISERVER_URL`, `BIN_DIR`.
    pub fn env(&self, key: &str) -> Option<&str> {
        self.env.get(key).map(String::as_str)
    }

    /// Runs kubectl against this cluster (`$KUBECTL`, else the one built
    /// next to the control plane, else `kubectl` on PATH).
    ///
    /// Async on purpose: a blocking call would stall a current-thread test
    /// runtime, and with it any in-process webhook the apiserver is calling.
    pub async fn kubectl<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        tokio::process::Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "running {}: {e} (set KUBECTL to its path)",
                    self.kubectl.display()
                )
            })
    }

    /// Runs kubectl, panics with its stderr unless it succeeds, returns stdout.
    pub async fn kubectl_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let out = self.kubectl(&args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("kubectl printed non-UTF-8")
    }

    /// Creates a namespace named `<prefix>-<random>` (prefix: a DNS label
    /// start, keep it short), deleted when the returned guard drops.
    pub async fn namespace(&self, prefix: &str) -> TestNamespace {
        let name = format!(
            "{prefix}-{:08x}",
            RandomState::new().hash_one(Instant::now()) as u32
        );
        let mut ns = Namespace::default();
        ns.metadata.name = Some(name.clone());
        ns.metadata.labels = Some([(TEST_NAMESPACE_LABEL.to_owned(), "true".to_owned())].into());
        Api::<Namespace>::all(self.client())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        let delete = self.delete_on_drop("namespace", &name);
        TestNamespace {
            name,
            _delete: delete,
        }
    }

    /// Guard that deletes `resource/name` (e.g. a webhook configuration)
    /// when dropped; keep it alive for as long as the object is needed.
    pub fn delete_on_drop(&self, resource: &str, name: &str) -> DeleteOnDrop {
        DeleteOnDrop {
            kubectl: self.kubectl.clone(),
            kubeconfig: self.kubeconfig.clone(),
            resource: resource.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// A namespace that exists for one test; deleted (in the background) on drop.
#[derive(Debug)]
pub struct TestNamespace {
    name: String,
    _delete: DeleteOnDrop,
}

impl TestNamespace {
    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An `Api` for a namespaced resource in this namespace.
    pub fn api<K>(&self, client: Client) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(client, &self.name)
    }
}

impl fmt::Display for TestNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Deletes a cluster-scoped object when dropped, even if the test panicked.
/// It starts a background `kubectl delete` that outlives the test binary and
/// is never waited for: Drop cannot await, and the test's runtime is being
/// torn down as it runs.
#[derive(Debug)]
#[must_use = "the object is deleted when this guard drops"]
pub struct DeleteOnDrop {
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    resource: String,
    name: String,
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        let _ = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args([
                "delete",
                &self.resource,
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

/// Polls `check` every 100 ms until it yields `Some`, panicking after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A minimal Deployment (`app: <name>` selector, one pause container); its
/// pods run on the fake Node (kwok) where the cluster runs pods.
pub fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}
            }
        }
    }))
    .expect("valid Deployment")
}

/// Serves `app` over plain HTTP on 127.0.0.1 until the test's runtime
/// ends (a metric source, an exporter); returns its `http://` URL.
pub async fn serve_http(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// Installs ring as rustls's process-wide provider; idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs a future to completion on a private thread and runtime, so it works
/// whether or not the caller is already inside a tokio runtime.
fn block_on<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building a tokio runtime")
                .block_on(fut)
        })
        .join()
        .expect("support thread panicked")
    })
}
