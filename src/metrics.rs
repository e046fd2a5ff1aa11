//! Prometheus metrics, one sub-registry per subsystem, named
//! `scale_governor_<subsystem>_<what>_<unit>`, plus `scale_governor_build_info`
//! and the standard `process_*` metrics.

pub(crate) mod exposition;
mod process;

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::recommend::risk::RiskStatus;

/// Labels of `scale_governor_admission_reviews_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReviewLabels {
    /// `mutate` or `validate`.
    pub endpoint: &'static str,
    /// `deployments`, `statefulsets` or `other`.
    pub kind: &'static str,
    /// CREATE, UPDATE, SCALE or `other`.
    pub operation: &'static str,
    /// `ungoverned`, `unchanged`, `clamped`, `denied`, `audited`, `paused`.
    pub outcome: &'static str,
    /// The rule that set the final count, or `none`.
    pub rule: &'static str,
}

/// Labels naming one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct EndpointLabels {
    /// `mutate` or `validate`.
    pub endpoint: &'static str,
}

/// Labels naming one workload kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct KindLabels {
    /// `deployments` or `statefulsets`.
    pub(crate) kind: &'static str,
}

/// Labels of `scale_governor_admission_policy_edits_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct EditLabels {
    /// `loosened`, `refused` or `invalid`.
    pub(crate) kind: &'static str,
}

/// Labels of `scale_governor_recommender_samples_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct SampleLabels {
    /// The source's name.
    pub(crate) source: String,
    /// `ok`, or the error's kind (`timeout`, `empty`, `nan`, ...).
    pub(crate) result: &'static str,
}

/// Labels naming a source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct SourceLabels {
    /// The source's name.
    pub(crate) source: String,
}

/// Labels of `scale_governor_recommender_writes_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct WriteLabels {
    /// `recommendation`, `scale` or `deletion-cost`.
    pub(crate) kind: &'static str,
    /// `ok` or `error`.
    pub(crate) result: &'static str,
}

/// Labels naming one workload: `scale_governor_recommender_risk_*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct WorkloadLabels {
    /// `deployments` or `statefulsets`.
    pub(crate) kind: &'static str,
    /// The workload's namespace.
    pub(crate) namespace: String,
    /// The workload's name.
    pub(crate) name: String,
}

/// Labels of `scale_governor_build_info`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct BuildLabels {
    /// The crate version.
    pub(crate) version: &'static str,
    /// The source revision the binary was built from (the build's
    /// `SCALE_GOVERNOR_REVISION`), or `unknown`.
    pub(crate) revision: &'static str,
}

/// Labels naming a result.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok` or `error`.
    pub result: &'static str,
}

/// Every metric the process exports, one struct per subsystem, each
/// registered under its own prefix.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `scale_governor_admission_*`: what the webhook answered.
    pub admission: Admission,
    /// `scale_governor_cache_*`: the watch-fed cache and its ledgers.
    pub(crate) cache: CacheMetrics,
    /// `scale_governor_recommender_*`: the leader's loop.
    pub(crate) recommender: Recommender,
    /// `scale_governor_tls_*`: the serving certificate.
    pub(crate) tls: Tls,
    /// `scale_governor_clock_offset_seconds`: the apiserver's clock minus
    /// this replica's, as measured from its responses.
    pub(crate) clock_offset: Gauge<f64, AtomicU64>,
}

/// `scale_governor_admission_*`.
#[derive(Debug)]
pub struct Admission {
    /// Reviews answered, by endpoint, kind, operation, outcome and rule.
    pub reviews: Family<ReviewLabels, Counter>,
    /// Request bodies that were not an AdmissionReview (HTTP 400).
    pub(crate) bad_reviews: Family<EndpointLabels, Counter>,
    /// Time from body received to response ready.
    pub duration: Family<EndpointLabels, Histogram>,
    /// Events published, by result (`dropped` when the queue was full).
    pub events: Family<ResultLabels, Counter>,
    /// Event series held for writing.
    pub(crate) event_series: Gauge,
    /// Policy edits found loosening, refused, or invalid.
    pub(crate) policy_edits: Family<EditLabels, Counter>,
}

impl Admission {
    fn register(registry: &mut Registry) -> Admission {
        let m = Admission {
            reviews: Family::default(),
            bad_reviews: Family::default(),
            duration: Family::new_with_constructor(|| {
                // 25 µs .. ~0.8 s: the interesting range is well under a millisecond.
                Histogram::new(exponential_buckets(0.000_025, 2.0, 16))
            }),
            events: Family::default(),
            event_series: Gauge::default(),
            policy_edits: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("admission");
        r.register("reviews", "Admission reviews answered", m.reviews.clone());
        r.register(
            "bad_reviews",
            "Bodies that were not an AdmissionReview",
            m.bad_reviews.clone(),
        );
        r.register(
            "duration_seconds",
            "Time to answer a review",
            m.duration.clone(),
        );
        r.register(
            "events",
            "Kubernetes Events for decisions",
            m.events.clone(),
        );
        r.register(
            "event_series",
            "Event series held for writing, at most five minutes of --event-rate",
            m.event_series.clone(),
        );
        r.register(
            "policy_edits",
            "Policy edits that loosened a policy, were refused, or did not parse",
            m.policy_edits.clone(),
        );
        m
    }
}

/// `scale_governor_cache_*`.
#[derive(Debug, Default)]
pub(crate) struct CacheMetrics {
    /// Governed workloads in the cache.
    pub(crate) workloads: Family<KindLabels, Gauge>,
    /// Ledger object writes by result (`ok`, `conflict`, `error`).
    pub(crate) ledger_writes: Family<ResultLabels, Counter>,
}

impl CacheMetrics {
    fn register(registry: &mut Registry) -> CacheMetrics {
        let m = CacheMetrics::default();
        let r = registry.sub_registry_with_prefix("cache");
        r.register(
            "workloads",
            "Governed workloads in the cache",
            m.workloads.clone(),
        );
        r.register(
            "ledger_writes",
            "Writes of ledger objects, by result: ok, conflict (another replica wrote first) or error",
            m.ledger_writes.clone(),
        );
        m
    }
}

/// `scale_governor_recommender_*`.
#[derive(Debug)]
pub(crate) struct Recommender {
    /// 1 while this replica leads (and runs the recommender loop).
    pub(crate) leading: Gauge,
    /// Time one pass over every workload took.
    pub(crate) cycle_duration: Histogram,
    /// Workloads evaluated in the last pass.
    pub(crate) cycle_workloads: Gauge,
    /// Samples taken, by source and result.
    pub(crate) samples: Family<SampleLabels, Counter>,
    /// Time a sample took, by source.
    pub(crate) sample_duration: Family<SourceLabels, Histogram>,
    /// The loop's writes, by kind and result.
    pub(crate) writes: Family<WriteLabels, Counter>,
    /// Recommendations that expired without a new one.
    pub(crate) expirations: Counter,
    /// With `risk`: the stated share of time short, per workload.
    pub(crate) risk_stated: Family<WorkloadLabels, Gauge<f64, AtomicU64>>,
    /// With `risk`: the share of the trailing day the ready capacity was
    /// below demand, per workload.
    pub(crate) risk_achieved: Family<WorkloadLabels, Gauge<f64, AtomicU64>>,
}

impl Recommender {
    fn register(registry: &mut Registry) -> Recommender {
        let m = Recommender {
            leading: Gauge::default(),
            cycle_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            cycle_workloads: Gauge::default(),
            samples: Family::default(),
            sample_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 14))
            }),
            writes: Family::default(),
            expirations: Counter::default(),
            risk_stated: Family::default(),
            risk_achieved: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("recommender");
        r.register(
            "leading",
            "1 while this replica leads the recommender loop",
            m.leading.clone(),
        );
        r.register(
            "cycle_duration_seconds",
            "Time one pass over every governed workload took",
            m.cycle_duration.clone(),
        );
        r.register(
            "cycle_workloads",
            "Workloads evaluated in the last pass",
            m.cycle_workloads.clone(),
        );
        r.register(
            "samples",
            "Metric samples taken, by source and result",
            m.samples.clone(),
        );
        r.register(
            "sample_duration_seconds",
            "Time a metric sample took, by source",
            m.sample_duration.clone(),
        );
        r.register(
            "writes",
            "The loop's writes, by kind and result",
            m.writes.clone(),
        );
        r.register(
            "expirations",
            "Recommendations that expired without a new one",
            m.expirations.clone(),
        );
        r.register(
            "risk_stated_ratio",
            "With risk: the share of time the workload may be short of capacity, as stated",
            m.risk_stated.clone(),
        );
        r.register(
            "risk_achieved_ratio",
            "With risk: the share of the trailing day the ready capacity was below demand",
            m.risk_achieved.clone(),
        );
        m
    }
}

impl Recommender {
    /// Shows one workload's calibration (`Some` with `risk`), or drops its
    /// series when it has none, so a workload that no longer states a risk
    /// does not keep its last share.
    pub(crate) fn show_risk(&self, workload: &WorkloadLabels, status: Option<RiskStatus>) {
        let Some(status) = status else {
            self.forget_risk(workload);
            return;
        };
        self.risk_stated.get_or_create(workload).set(status.stated);
        match status.achieved {
            Some(share) => {
                self.risk_achieved.get_or_create(workload).set(share);
            }
            None => {
                self.risk_achieved.remove(workload);
            }
        }
    }

    /// Drops one workload's `risk` series (it is deleted).
    pub(crate) fn forget_risk(&self, workload: &WorkloadLabels) {
        self.risk_stated.remove(workload);
        self.risk_achieved.remove(workload);
    }

    /// Drops every workload's `risk` series: another replica leads and
    /// exports them now.
    pub(crate) fn forget_all_risks(&self) {
        self.risk_stated.clear();
        self.risk_achieved.clear();
    }
}

/// `scale_governor_tls_*`.
#[derive(Debug, Default)]
pub(crate) struct Tls {
    /// Seconds until the serving certificate expires.
    pub(crate) cert_expiry: Gauge<f64, AtomicU64>,
    /// 1 when the served certificate does not verify against the caBundle
    /// of the governor's own webhook configurations.
    pub(crate) ca_bundle_mismatch: Gauge,
    /// Certificate reloads by result.
    pub(crate) cert_reloads: Family<ResultLabels, Counter>,
}

impl Tls {
    fn register(registry: &mut Registry) -> Tls {
        let m = Tls::default();
        let r = registry.sub_registry_with_prefix("tls");
        r.register(
            "cert_expiry_seconds",
            "Seconds until the serving certificate expires",
            m.cert_expiry.clone(),
        );
        r.register(
            "ca_bundle_mismatch",
            "1 when the serving certificate does not verify against the webhook configurations' caBundle",
            m.ca_bundle_mismatch.clone(),
        );
        r.register(
            "cert_reloads",
            "Serving certificate reloads",
            m.cert_reloads.clone(),
        );
        m
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every subsystem under the `scale_governor` prefix, and the
    /// process metrics under their standard names.
    pub fn new() -> Metrics {
        let mut root = Registry::default();
        root.register_collector(Box::new(process::ProcessCollector));
        let registry = root.sub_registry_with_prefix("scale_governor");
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                revision: option_env!("SCALE_GOVERNOR_REVISION").unwrap_or("unknown"),
            })
            .set(1);
        registry.register(
            "build_info",
            "Always 1; the labels say which build is running",
            build_info,
        );
        let admission = Admission::register(registry);
        let cache = CacheMetrics::register(registry);
        let recommender = Recommender::register(registry);
        let tls = Tls::register(registry);
        let clock_offset = Gauge::<f64, AtomicU64>::default();
        registry.sub_registry_with_prefix("clock").register(
            "offset_seconds",
            "The apiserver's clock minus this replica's, from the Date header of its responses",
            clock_offset.clone(),
        );
        Metrics {
            registry: root,
            admission,
            cache,
            recommender,
            tls,
            clock_offset,
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// The Prometheus text format 0.0.4 exposition, for scrapers that do not
    /// ask for OpenMetrics.
    pub(crate) fn encode_text(&self) -> String {
        exposition::to_prometheus_text(&self.encode())
    }
}

#[cfg(test)]
mod tests;
