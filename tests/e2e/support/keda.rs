//! KEDA under the governor: a control plane of the binary's own started
//! with `cluster.sh up --with keda` (KEDA's operator and metrics adapter,
//! built from source and cached, see docs/testing.md), ScaledObjects, and
//! a metric the test sets for KEDA's `metrics-api` scaler.
//!
//! KEDA's adapter owns the cluster's one `v1beta1.external.metrics.k8s.io`
//! APIService, which the shared cluster's suites register for their own
//! adapter ([`super::external_metrics`]), so KEDA runs on a cluster of its
//! own. Its operator writes `/scale` as `keda-operator` (activation and
//! deactivation, paused replicas), and the HPA it creates writes as the HPA
//! controller.

use std::{
    io::Write as _,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{Json, Router, extract::State, routing::get};
use serde_json::json;

use super::{Cluster, REQUIRE_CLUSTER_ENV, TestNamespace};

/// The username KEDA's operator writes under (its client certificate's CN).
pub const OPERATOR: &str = "keda-operator";

/// The HPA KEDA creates for a ScaledObject.
pub fn hpa_name(scaled_object: &str) -> String {
    format!("keda-hpa-{scaled_object}")
}

/// The KEDA control plane, started on first use and torn down when the
/// binary exits; `None` (after the banner) when Go is missing and nothing
/// is cached, as [`super::try_cluster`]. Every other failure panics.
pub fn cluster() -> Option<&'static Cluster> {
    static KEDA: OnceLock<Result<Option<Cluster>, String>> = OnceLock::new();
    let started = KEDA.get_or_init(|| {
        super::install_crypto_provider();
        let prefix = format!("cluster-keda-{}-", env!("CARGO_CRATE_NAME"));
        match super::start_private(&prefix, &["--with", "keda"]) {
            Ok(None) if std::env::var(REQUIRE_CLUSTER_ENV).is_ok_and(|v| v == "1") => {
                Err(format!("Go is not on PATH and {REQUIRE_CLUSTER_ENV}=1"))
            }
            Ok(cluster) => Ok(cluster),
            Err(e) => Err(format!("{e:#}")),
        }
    });
    match started {
        Ok(Some(cluster)) => Some(cluster),
        Ok(None) => {
            let _ = std::io::stderr().write_all(super::skip_banner().as_bytes());
            None
        }
        Err(e) => panic!("KEDA control plane unavailable: {e}"),
    }
}

/// A ScaledObject for Deployment `target`, named after it, with short
/// intervals for tests (KEDA's defaults are 30 s and 300 s) and an HPA
/// behavior with no stabilization, as `tests/e2e/hpa.rs` uses.
pub struct ScaledObject<'a> {
    /// The Deployment it scales, and its name.
    pub target: &'a str,
    /// `minReplicaCount` (0: KEDA activates and deactivates).
    pub min: u32,
    /// `maxReplicaCount`.
    pub max: u32,
    /// `pollingInterval`, seconds.
    pub polling: u32,
    /// `cooldownPeriod`, seconds: from inactive to 0.
    pub cooldown: u32,
    /// The trigger, a JSON object (`type`, `metadata`).
    pub trigger: serde_json::Value,
    /// Annotations, such as `autoscaling.keda.sh/paused-replicas`.
    pub annotations: Vec<(&'a str, &'a str)>,
}

impl ScaledObject<'_> {
    /// The manifest, as JSON (which `kubectl apply` reads).
    pub fn manifest(&self) -> String {
        let rules = |policy: serde_json::Value| json!({"policies": [policy], "selectPolicy": "Max", "stabilizationWindowSeconds": 0});
        let annotations: serde_json::Map<String, serde_json::Value> = self
            .annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        json!({
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": self.target, "annotations": annotations},
            "spec": {
                "scaleTargetRef": {"name": self.target},
                "minReplicaCount": self.min,
                "maxReplicaCount": self.max,
                "pollingInterval": self.polling,
                "cooldownPeriod": self.cooldown,
                "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                    "scaleUp": rules(json!({"type": "Pods", "value": 100, "periodSeconds": 15})),
                    "scaleDown": rules(json!({"type": "Percent", "value": 100, "periodSeconds": 15})),
                }}},
                "triggers": [self.trigger],
            }
        })
        .to_string()
    }
}

/// A `cron` trigger asking for `replicas` from `start` to `end`, two
/// five-field cron expressions (minutes at the finest) in UTC.
pub fn cron(start: &str, end: &str, replicas: u32) -> serde_json::Value {
    json!({"type": "cron", "metadata": {
        "timezone": "Etc/UTC", "start": start, "end": end,
        "desiredReplicas": replicas.to_string(),
    }})
}

/// A number the test sets, served as `{"value": N}` for KEDA's
/// `metrics-api` scaler; the operator polls it from this machine.
#[derive(Clone)]
pub struct Source {
    value: Arc<AtomicU64>,
    url: String,
}

impl Source {
    /// Serves `value` until the test's runtime ends.
    pub async fn start(value: u64) -> Source {
        let shared = Arc::new(AtomicU64::new(value));
        let app = Router::new()
            .route(
                "/value",
                get(|State(v): State<Arc<AtomicU64>>| async move {
                    Json(json!({"value": v.load(Ordering::Relaxed)}))
                }),
            )
            .with_state(shared.clone());
        let url = super::serve_http(app).await;
        Source {
            value: shared,
            url: format!("{url}/value"),
        }
    }

    /// Sets the value the next poll reads.
    pub fn set(&self, value: u64) {
        self.value.store(value, Ordering::Relaxed);
    }

    /// A `metrics-api` trigger on this value: one replica per unit
    /// (`targetValue: 1`), active above 0.
    pub fn trigger(&self) -> serde_json::Value {
        json!({"type": "metrics-api", "metricType": "AverageValue", "metadata": {
            "url": self.url, "valueLocation": "value", "targetValue": "1",
        }})
    }
}

/// `kubectl apply` of a ScaledObject (or any manifest) into `ns`.
pub async fn apply(cluster: &Cluster, ns: &TestNamespace, manifest: &str) {
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "keda-{}-{}.json",
        ns.name(),
        manifest.len()
    ));
    std::fs::write(&path, manifest).unwrap();
    cluster
        .kubectl_ok(["apply", "-n", ns.name(), "-f", path.to_str().unwrap()])
        .await;
}
