//! `scale-governor serve`: the admission webhook with its cache, Events,
//! metrics, the ledger objects and the leader's recommender loop, wired
//! together.

use std::{net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client, Config, config::KubeConfigOptions};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    cache::{self, Cache, hpa::HpaIndex, pods::PodIndex},
    events::{self, EventSink, Reporter, pending::Limits},
    leader::{self, LeaderConfig},
    ledgers,
    metrics::{Metrics, ResultLabels},
    recommender::{self, LoopConfig, LoopDeps},
    report::logs::LogGate,
    server::{self, HttpsOptions},
    sources::{HttpClient, Sources},
    tasks,
    tls::{self, CertPaths, CertStore, bundle::BundleStatus, selfsigned::SelfSignedConfig},
    webhook::{self, Admin, CertStatus, Webhook, guard::AdmitConfig},
};

mod args;

pub(crate) use self::args::LogFormat;
pub(crate) use self::args::{Args, CertificateMode};

impl CertStatus for CertStore {
    fn is_loaded(&self) -> bool {
        CertStore::is_loaded(self)
    }

    fn expiry_seconds(&self, now: std::time::SystemTime) -> Option<i64> {
        CertStore::expiry_seconds(self, now)
    }

    fn is_expired(&self) -> bool {
        CertStore::is_expired(self)
    }
}

/// Runs the webhook until SIGTERM/SIGINT.
pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    init_logging(args.log_format, args.log_level.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(serve(args.clone()))?;
    Ok(ExitCode::SUCCESS)
}

fn init_logging(format: LogFormat, level: Option<&str>) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(level) => EnvFilter::try_new(level)
            .with_context(|| format!("--log-level {level:?} is not a level or filter"))?,
        None => EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info,kube=warn,hyper=warn")),
    };
    // Colours only for a person at a terminal, not in a file or a log pipe.
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    Ok(())
}

/// Reads and merges a `:`-separated list of kubeconfig files, in order, as
/// kubectl does (the first file that sets a value wins).
pub(crate) fn read_kubeconfigs(
    paths: &std::ffi::OsStr,
) -> anyhow::Result<kube::config::Kubeconfig> {
    let mut merged: Option<kube::config::Kubeconfig> = None;
    for path in std::env::split_paths(paths).filter(|p| !p.as_os_str().is_empty()) {
        let kc = kube::config::Kubeconfig::read_from(&path)
            .with_context(|| format!("reading kubeconfig {}", path.display()))?;
        merged = Some(match merged {
            None => kc,
            Some(m) => m
                .merge(kc)
                .with_context(|| format!("merging kubeconfig {}", path.display()))?,
        });
    }
    merged.ok_or_else(|| anyhow::anyhow!("the kubeconfig list {paths:?} names no file"))
}

/// A client for `kubeconfig` (a `:`-separated list), or the in-cluster or
/// default configuration.
pub(crate) async fn client(kubeconfig: Option<&std::ffi::OsString>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(paths) => {
            let kc = read_kubeconfigs(paths)?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?
        }
        None => Config::infer()
            .await
            .context("no kubeconfig and not in a cluster")?,
    };
    // Every response's Date header measures this replica's clock against
    // the apiserver's (crate::clock).
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&crate::clock::DateProbe)
        .build())
}

/// What every part of `serve` shares.
struct Shared {
    identity: String,
    client: Client,
    metrics: Arc<Metrics>,
    cache: Arc<Cache>,
    shutdown: CancellationToken,
}

/// The serving certificate, how it is kept current, and the TLS config
/// that reads it.
struct Certificates {
    store: Arc<CertStore>,
    keeper: JoinHandle<()>,
    tls: Arc<rustls::ServerConfig>,
}

/// The watch-fed indexes beside the workload cache: pods for warm pools,
/// HPAs for Events on the HPA that targets a workload.
struct Indexes {
    pods: Arc<PodIndex>,
    hpas: Arc<HpaIndex>,
}

/// Assembles the governor from named parts and serves until a signal: the
/// certificate, the indexes and Events, the webhook and admin state, the
/// listeners, the tasks that keep the cache and the ledger current and the
/// leader's loop, then the two servers.
async fn serve(args: Args) -> anyhow::Result<()> {
    crate::clock::warn_at(args.clock_skew_warning);
    let shared = Shared {
        shutdown: server::shutdown_on_signals()?,
        identity: args
            .identity
            .clone()
            .unwrap_or_else(|| format!("scale-governor-{}", std::process::id())),
        client: client(args.kubeconfig.as_ref()).await?,
        metrics: Arc::new(Metrics::new()),
        cache: Arc::new(Cache::new()),
    };
    let (leadership, election) = leader::spawn(
        shared.client.clone(),
        LeaderConfig {
            namespace: args.lease_namespace.clone(),
            identity: shared.identity.clone(),
        },
        shared.shutdown.clone(),
    );
    let certs = certificates(&args, &shared, &leadership)?;
    let sources = Arc::new(match &args.sources {
        Some(path) => Sources::load(path)?,
        None => Sources::none(),
    });
    let indexes = indexes(&args, &shared);
    let events = events::start(
        shared.client.clone(),
        Reporter {
            controller: "scale-governor".into(),
            instance: shared.identity.clone(),
        },
        indexes.hpas.clone(),
        shared.metrics.clone(),
        Limits::new(args.event_interval, args.event_rate),
        shared.shutdown.clone(),
    );
    let webhook = admission(&args, &shared, &events, &sources, &indexes);
    let admin = admin(&args, &shared, &certs);
    let (https, http) = bind(&args)?;
    let mut background = keep_state(&args, &shared, &leadership);
    background.push(tasks::spawn(
        "recommender",
        recommender::run(
            Arc::new(LoopDeps {
                client: shared.client.clone(),
                ledger_api: Api::namespaced(shared.client.clone(), &args.lease_namespace),
                cache: shared.cache.clone(),
                pods: indexes.pods,
                sources,
                http: HttpClient::new()?,
                metrics: shared.metrics.clone(),
                events: Some(events),
                config: LoopConfig {
                    interval: args.recommend_interval.max(Duration::from_millis(200)),
                    concurrency: args.recommend_concurrency,
                    identity: leader::FIELD_MANAGER.to_owned(),
                    summary_interval: args.summary_interval,
                },
            }),
            leadership,
            shared.shutdown.clone(),
        ),
    ));
    background.push(certs.keeper);
    background.push(election);
    let admission = async {
        // Until the caches have synced, no workload's policy or ledger is
        // known here: a review answered now would go ungoverned (a replica
        // restarted in place can be sent one before the Service sees it
        // unready). The port is bound, so a clash fails at start, and a
        // connection waits in the backlog until then.
        tokio::select! {
            () = shared.cache.synced() => {}
            () = shared.shutdown.cancelled() => return Ok(()),
        }
        server::serve_https(
            https,
            certs.tls,
            webhook::router(webhook),
            shared.shutdown.clone(),
            HttpsOptions::default(),
        )
        .await
    };
    let (https, http) = tokio::join!(
        admission,
        server::serve_http(http, webhook::admin_router(admin), shared.shutdown.clone()),
    );
    for task in background {
        let _ = task.await;
    }
    https?;
    http?;
    tracing::info!("stopped");
    Ok(())
}

/// Loads the serving certificate from files and watches them, or issues it
/// from the governor's own CA (nothing is served, and /readyz says so,
/// until the first leaf is issued).
fn certificates(
    args: &Args,
    shared: &Shared,
    leadership: &leader::Leadership,
) -> anyhow::Result<Certificates> {
    let paths = CertPaths {
        cert: args.tls_cert.clone(),
        key: args.tls_key.clone(),
    };
    let check_every = Duration::from_secs(args.cert_reload_seconds.max(1));
    let shutdown = shared.shutdown.clone();
    let (store, keeper) = match args.certificates {
        CertificateMode::Files => {
            let store = CertStore::load(paths).context("loading the serving certificate")?;
            let reloader = store.spawn_reloader(check_every, shutdown.clone());
            (store, reloader)
        }
        CertificateMode::SelfSigned => {
            let store = CertStore::new(paths);
            let issuer = tasks::spawn(
                "certificates.issue",
                tls::selfsigned::run(
                    shared.client.clone(),
                    SelfSignedConfig {
                        namespace: args.lease_namespace.clone(),
                        ca_secret: args.ca_secret.clone(),
                        service: args.service.clone(),
                        webhook_configuration: args.webhook_configuration.clone(),
                        leaf_validity: args.certificate_validity.max(Duration::from_secs(3)),
                        check_every,
                    },
                    store.clone(),
                    leadership.clone(),
                    shutdown.clone(),
                ),
            );
            (store, issuer)
        }
    };
    tasks::spawn(
        "certificates.metrics",
        reload_metrics(store.clone(), shared.metrics.clone(), shutdown.clone()),
    );
    let tls = tls::server_config(store.clone())?;
    Ok(Certificates { store, keeper, tls })
}

fn indexes(args: &Args, shared: &Shared) -> Indexes {
    let pods = Arc::new(PodIndex::new());
    tasks::spawn(
        "watch.pods",
        cache::pods::run(
            shared.client.clone(),
            args.watch_namespace.clone(),
            pods.clone(),
            shared.shutdown.clone(),
        ),
    );
    let hpas = Arc::new(HpaIndex::new());
    tasks::spawn(
        "watch.hpas",
        cache::hpa::run(
            shared.client.clone(),
            args.watch_namespace.clone(),
            hpas.clone(),
            shared.shutdown.clone(),
        ),
    );
    Indexes { pods, hpas }
}

/// The admission state the request path reads, and the task that logs the
/// repeats it counted.
fn admission(
    args: &Args,
    shared: &Shared,
    events: &EventSink,
    sources: &Arc<Sources>,
    indexes: &Indexes,
) -> Arc<Webhook> {
    let webhook = Arc::new(Webhook {
        cache: shared.cache.clone(),
        metrics: shared.metrics.clone(),
        events: Some(events.clone()),
        config: AdmitConfig {
            policy_admins: args.policy_admins.clone(),
            max_suspend: chrono::Duration::from_std(args.max_suspend)
                .unwrap_or(chrono::Duration::hours(24)),
            sources: sources.clone(),
            hpas: indexes.hpas.clone(),
        },
        logs: Arc::new(LogGate::default()),
    });
    tasks::spawn(
        "logs.repeats",
        summarize_repeats(webhook.logs.clone(), shared.shutdown.clone()),
    );
    webhook
}

/// The admin endpoints' state, and the task that checks the webhook
/// configurations' caBundle against the served certificate.
fn admin(args: &Args, shared: &Shared, certs: &Certificates) -> Arc<Admin> {
    let bundle = Arc::new(BundleStatus::default());
    tasks::spawn(
        "certificates.bundle",
        tls::bundle::run(
            shared.client.clone(),
            args.webhook_configuration.clone(),
            certs.store.clone(),
            bundle.clone(),
            shared.metrics.clone(),
            Duration::from_secs(args.cert_reload_seconds.max(1)),
            shared.shutdown.clone(),
        ),
    );
    Arc::new(Admin {
        cache: shared.cache.clone(),
        metrics: shared.metrics.clone(),
        certs: certs.store.clone(),
        bundle,
    })
}

fn bind(args: &Args) -> anyhow::Result<(TcpListener, TcpListener)> {
    let https = listen(args.addr).with_context(|| format!("binding {}", args.addr))?;
    let http = listen(args.admin_addr).with_context(|| format!("binding {}", args.admin_addr))?;
    Ok((https, http))
}

/// A listener on `addr` with `SO_REUSEADDR`, stated rather than left to
/// tokio's default: a container restarted in place must get its port back
/// while the killed process's connections linger in `TIME_WAIT`.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// The tasks that keep the cache and the ledger current: the workload
/// watch, the ledger objects' watch, the sweeper of unconfirmed changes, and
/// the persister (and, as leader, the cleaner) of ledger objects. `serve`
/// waits for them on shutdown.
fn keep_state(
    args: &Args,
    shared: &Shared,
    leadership: &leader::Leadership,
) -> Vec<JoinHandle<()>> {
    let (client, cache, shutdown) = (&shared.client, &shared.cache, &shared.shutdown);
    let ledger_api: Api<ConfigMap> = Api::namespaced(client.clone(), &args.lease_namespace);
    tasks::spawn(
        "cache.sweeper",
        cache::run_sweeper(cache.clone(), args.confirm_timeout, shutdown.clone()),
    );
    tasks::spawn(
        "watch.ledgers",
        ledgers::watch::run(ledger_api.clone(), cache.clone(), shutdown.clone()),
    );
    let watch = tasks::spawn(
        "watch.workloads",
        cache::watch::run(
            client.clone(),
            args.watch_namespace.clone(),
            cache.clone(),
            shutdown.clone(),
        ),
    );
    let persister = tasks::spawn(
        "ledgers",
        ledgers::run(
            ledger_api,
            args.watch_namespace.clone(),
            cache.clone(),
            shared.metrics.clone(),
            leadership.clone(),
            ledgers::Intervals {
                persist: Duration::from_millis(args.persist_interval_ms.max(100)),
                cleanup: args.ledger_cleanup_interval.max(Duration::from_secs(1)),
            },
            shutdown.clone(),
        ),
    );
    vec![watch, persister]
}

/// Logs the repeats of decisions that have waited a while for a line.
async fn summarize_repeats(gate: Arc<LogGate>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => webhook::log_summaries(&gate),
        }
    }
}

/// Mirrors the certificate store's reload counters into Prometheus.
async fn reload_metrics(certs: Arc<CertStore>, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let (mut ok, mut failed) = (0, 0);
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (now_ok, now_failed) = (certs.reloads(), certs.failures());
        metrics
            .tls
            .cert_reloads
            .get_or_create(&ResultLabels { result: "ok" })
            .inc_by(now_ok.saturating_sub(ok));
        metrics
            .tls
            .cert_reloads
            .get_or_create(&ResultLabels { result: "error" })
            .inc_by(now_failed.saturating_sub(failed));
        (ok, failed) = (now_ok, now_failed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A --log-level that is neither a level nor a filter stops `serve`
    /// with the reason, before anything else starts.
    #[test]
    fn a_bad_log_level_is_refused_with_the_reason() {
        let err = init_logging(LogFormat::Json, Some("info,scale_governor=loud")).unwrap_err();
        assert!(
            format!("{err:#}")
                .contains("--log-level \"info,scale_governor=loud\" is not a level or filter"),
            "{err:#}"
        );
    }

    /// KUBECONFIG may list several files, as kubectl allows: here the
    /// cluster and user in one, the context in another.
    #[tokio::test]
    async fn a_kubeconfig_list_is_merged_like_kubectl_does() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(
            &a,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"https://127.0.0.1:6443\"}\nusers:\n- name: u\n  user: {token: t}\n",
        )
        .unwrap();
        std::fs::write(
            &b,
            "apiVersion: v1\nkind: Config\ncurrent-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n",
        )
        .unwrap();
        let list = std::env::join_paths([&a, &b]).unwrap();
        let kc = read_kubeconfigs(&list).unwrap();
        let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .unwrap();
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:6443/");
        let err = read_kubeconfigs(std::ffi::OsStr::new(":")).unwrap_err();
        assert!(err.to_string().contains("names no file"), "{err}");
    }
}
