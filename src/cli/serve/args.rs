//! `serve`'s command line: every flag, its environment variable and its
//! default.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use crate::webhook::guard::PolicyAdmins;

/// `serve` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Admission (HTTPS) listen address.
    #[arg(long, env = "SCALE_GOVERNOR_ADDR", default_value = "0.0.0.0:8443")]
    pub addr: SocketAddr,
    /// Admin (plain HTTP: /livez, /readyz, /metrics) listen address.
    #[arg(
        long,
        env = "SCALE_GOVERNOR_ADMIN_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub(crate) admin_addr: SocketAddr,
    /// PEM certificate chain; reloaded when its content changes.
    #[arg(long, env = "SCALE_GOVERNOR_TLS_CERT", default_value = "certs/tls.crt")]
    pub(crate) tls_cert: PathBuf,
    /// PEM private key; reloaded together with the certificate.
    #[arg(long, env = "SCALE_GOVERNOR_TLS_KEY", default_value = "certs/tls.key")]
    pub(crate) tls_key: PathBuf,
    /// Name of this governor's Mutating- and ValidatingWebhookConfiguration:
    /// the served certificate is checked against their caBundle.
    #[arg(
        long,
        env = "SCALE_GOVERNOR_WEBHOOK_CONFIGURATION",
        default_value = "scale-governor"
    )]
    pub(crate) webhook_configuration: String,
    /// How often to check the certificate files for changes, in seconds.
    #[arg(long, default_value_t = 5)]
    pub(crate) cert_reload_seconds: u64,
    /// Kubeconfig to use instead of the in-cluster or default one; like
    /// kubectl's KUBECONFIG, several files separated by `:` are merged.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<std::ffi::OsString>,
    /// Govern only this namespace (default: every namespace the webhook
    /// configuration sends). The persisted history then has one writer per
    /// namespace instead of one per cluster.
    #[arg(long, env = "SCALE_GOVERNOR_WATCH_NAMESPACE")]
    pub(crate) watch_namespace: Option<String>,
    /// The governor's own namespace: its leader-election Lease and its
    /// ledger objects.
    #[arg(long, env = "POD_NAMESPACE", default_value = "scale-governor")]
    pub lease_namespace: String,
    /// This replica's identity in the Lease and in Events.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// How often each replica writes the changes it saw land to the ledger
    /// objects in its namespace (`--lease-namespace`), in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub(crate) persist_interval_ms: u64,
    /// How often the leader deletes the ledger objects of workloads that
    /// are gone or no longer governed, e.g. `60s`.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(crate) ledger_cleanup_interval: Duration,
    /// How long an admitted change (or CREATE) may wait for the watch to
    /// show it stored before it is taken never to have happened, e.g. `30s`.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) confirm_timeout: Duration,
    /// Who may loosen a policy, e.g. `group=system:masters,user=alice`. When
    /// set, a loosening edit by anyone else is refused; when empty (the
    /// default) it is allowed and reported. deploy/strict sets it from the
    /// same ConfigMap its ValidatingAdmissionPolicy reads.
    #[arg(long, env = "SCALE_GOVERNOR_POLICY_ADMINS", default_value = "")]
    pub(crate) policy_admins: PolicyAdmins,
    /// The furthest ahead `suspend-until` may be set, e.g. `24h`.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub(crate) max_suspend: Duration,
    /// The recommender's metric sources (YAML; see docs/policy.md,
    /// "Sources"). Without it only warm pools and time windows work.
    #[arg(long, env = "SCALE_GOVERNOR_SOURCES", value_name = "FILE")]
    pub sources: Option<PathBuf>,
    /// How often the leader evaluates every governed workload, e.g. `15s`.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub(crate) recommend_interval: Duration,
    /// Workloads the leader evaluates at once.
    #[arg(long, default_value_t = 8)]
    pub(crate) recommend_concurrency: usize,
    /// The longest an Event series waits for its next write: repeats of a
    /// decision in between are folded into one write that carries their
    /// count and the latest numbers, e.g. `10s`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) event_interval: Duration,
    /// Event writes per second at most, across every workload (twice as
    /// many at once after a quiet spell); at most five minutes of writes
    /// wait, and a new series beyond that is dropped and counted.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) event_rate: f64,
    /// How often the leader stores a workload's seasonal history (about
    /// 32 KB) beside its ledger; a new leader loses at most this much.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub(crate) summary_interval: Duration,
    /// Log a warning when this replica's clock is off the apiserver's by
    /// more than this, e.g. `30s` (the governor corrects for the offset
    /// either way; docs/operations.md says how much it tolerates).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) clock_skew_warning: Duration,
    /// Log format: `text` for a terminal, `json` in a cluster.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    /// Log level, or per-module levels in tracing's filter syntax, e.g.
    /// `debug` or `info,scale_governor::webhook=debug`. Takes precedence
    /// over RUST_LOG; without either, `info` (kube and hyper at `warn`).
    #[arg(long, env = "SCALE_GOVERNOR_LOG_LEVEL")]
    pub(crate) log_level: Option<String>,
    /// Where the serving certificate comes from: `files` (--tls-cert and
    /// --tls-key, e.g. a Secret cert-manager renews) or `self-signed`
    /// (issued from a CA the governor keeps in the Secret --ca-secret, with
    /// the caBundle injected into its webhook configurations by the leader).
    #[arg(long, env = "SCALE_GOVERNOR_CERTIFICATES", value_enum, default_value_t = CertificateMode::Files)]
    pub certificates: CertificateMode,
    /// self-signed: the Secret in --lease-namespace that holds the CA.
    #[arg(
        long,
        env = "SCALE_GOVERNOR_CA_SECRET",
        default_value = "scale-governor-ca"
    )]
    pub(crate) ca_secret: String,
    /// self-signed: the Service the apiserver calls, in --lease-namespace;
    /// the certificate's DNS names derive from it.
    #[arg(long, env = "SCALE_GOVERNOR_SERVICE", default_value = "scale-governor")]
    pub service: String,
    /// self-signed: how long an issued serving certificate is valid; a new
    /// one is issued after two thirds of it, e.g. `2160h` (90 days).
    #[arg(long, default_value = "2160h", value_parser = parse_duration)]
    pub(crate) certificate_validity: Duration,
}

/// Where the serving certificate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CertificateMode {
    /// Files, reloaded when their content changes.
    Files,
    /// Issued by the governor itself from a CA kept in a Secret.
    SelfSigned,
}

fn parse_duration(s: &str) -> Result<Duration, crate::units::DurationError> {
    crate::units::parse_seconds(s).map(Duration::from_secs)
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}
