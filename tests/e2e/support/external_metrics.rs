//! An External metrics API (`external.metrics.k8s.io/v1beta1`) served from
//! the test process and registered with the cluster's aggregator, so a real
//! HPA can scale on a number the test sets. There is no metrics-server and no
//! kubelet here; an `External` metric with `AverageValue` is the one HPA
//! metric that needs neither (see `/work/shared/controlplane-facts.md`).
//!
//! Registration: an `APIService` names a Service of `type: ExternalName`,
//! `externalName: localhost`. With aggregator routing off (the apiserver's
//! default) the aggregator dials `localhost:<APIService port>` and checks the
//! certificate against `<svc>.<ns>.svc`, a DNS SAN of the test certificate.
//!
//! One adapter serves every metric name: tests that run side by side each
//! scale on a metric of their own ([`ExternalMetrics::metric_named`]), and
//! every query is logged with its time, so a test knows when the HPA synced
//! and what it saw.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use axum::{Json, Router, extract::Path, http::StatusCode, routing::get};
use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::{
    api::core::v1::{Namespace, Service},
    jiff::Timestamp,
    kube_aggregator::pkg::apis::apiregistration::v1::APIService,
};
use kube::{
    Api,
    api::{DeleteParams, PostParams},
};
use serde_json::{Value, json};

use super::{Cluster, DeleteOnDrop, HttpsServer, TestNamespace, TestTls, eventually};

/// Annotation on the APIService naming the test process that serves it, so
/// a later run can tell a registration whose process is gone.
const OWNER_PID: &str = "scale-governor.io/test-owner-pid";

/// The group-version every External metrics adapter serves.
pub const GROUP_VERSION: &str = "external.metrics.k8s.io/v1beta1";

/// The one APIService name for that group-version: one adapter per cluster.
pub const APISERVICE: &str = "v1beta1.external.metrics.k8s.io";

const SERVICE: &str = "external-metrics";

/// An APIService left behind by a killed test run: not Available after this
/// long. A younger one may belong to a test that is still registering.
const STALE_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Series {
    value: u64,
    /// Every value set: when, and what.
    sets: Vec<(DateTime<Utc>, u64)>,
    /// Every query answered: when, and the value it returned.
    queries: Vec<(DateTime<Utc>, u64)>,
}

/// Every metric served, by name; a name is served once it is set.
type State = Arc<Mutex<HashMap<String, Series>>>;

/// A registered External metrics API serving any metric that was set, in
/// every namespace. Dropping it deletes the APIService and its namespace and
/// stops the server.
pub struct ExternalMetrics {
    metric: String,
    // One lock for values and query logs, so a query logged after `set`
    // returns saw the new value.
    state: State,
    // Field order is drop order: unregister before the server goes away.
    _apiservice: DeleteOnDrop,
    _server: HttpsServer,
    _namespace: TestNamespace,
}

impl ExternalMetrics {
    /// Serves `metric` (initially 0) and waits until the aggregator reports
    /// the APIService Available. Panics with the APIService's condition if it
    /// does not become Available within a minute. Private: a cluster has
    /// one APIService for the group-version, so the binary has one adapter,
    /// [`ExternalMetrics::shared`].
    async fn register(cluster: &Cluster, metric: &str) -> Self {
        let state = State::default();
        state
            .lock()
            .unwrap()
            .insert(metric.to_owned(), Series::default());
        let namespace = cluster.namespace("xmetrics").await;
        let host = format!("{SERVICE}.{}.svc", namespace.name());
        let server =
            HttpsServer::start_with_tls(router(metric, state.clone()), TestTls::new(&[&host]))
                .await;
        let port: i32 = server
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("server URL ends with its port");

        let services: Api<Service> = namespace.api(cluster.client());
        let service = json!({
            "metadata": {"name": SERVICE},
            "spec": {"type": "ExternalName", "externalName": "localhost"}
        });
        services
            .create(&PostParams::default(), &from_json(service))
            .await
            .expect("creating the ExternalName Service");

        let apiservices: Api<APIService> = Api::all(cluster.client());
        remove_stale(&apiservices, &Api::all(cluster.client())).await;
        let apiservice = json!({
            "metadata": {
                "name": APISERVICE,
                "annotations": {OWNER_PID: std::process::id().to_string()}
            },
            "spec": {
                "group": "external.metrics.k8s.io",
                "version": "v1beta1",
                "service": {"name": SERVICE, "namespace": namespace.name(), "port": port},
                "caBundle": server.tls.ca_bundle(),
                "groupPriorityMinimum": 100,
                "versionPriority": 100
            }
        });
        apiservices
            .create(&PostParams::default(), &from_json(apiservice))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "creating APIService {APISERVICE}: {e}; only one External metrics API can \
                     exist per cluster, is another test using it?"
                )
            });
        let guard = cluster.delete_on_drop("apiservice", APISERVICE);

        wait_available(&apiservices, cluster).await;
        ExternalMetrics {
            metric: metric.to_owned(),
            state,
            _apiservice: guard,
            _server: server,
            _namespace: namespace,
        }
    }

    /// One adapter for the whole test binary, registered on first use and
    /// served from a runtime of its own, so tests (each on its own runtime)
    /// can share it. It is never dropped: the next registration removes it
    /// once this process is gone.
    pub fn shared(cluster: &'static Cluster) -> &'static ExternalMetrics {
        static SHARED: OnceLock<ExternalMetrics> = OnceLock::new();
        SHARED.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .expect("building the metrics adapter's runtime");
                runtime.block_on(async {
                    let _ = tx.send(ExternalMetrics::register(cluster, "demand").await);
                    std::future::pending::<()>().await
                });
            });
            rx.recv()
                .expect("registering the shared External metrics API")
        })
    }

    /// Sets the value every later query returns, in whole units.
    pub fn set(&self, value: u64) {
        self.metric_named(&self.metric).set(value);
    }

    /// How many metric queries (not discovery requests) have been answered.
    /// A query counted after [`ExternalMetrics::set`] returned saw its value.
    pub fn queries(&self) -> u64 {
        self.metric_named(&self.metric).queries().len() as u64
    }

    /// Another metric served by the same adapter; it answers 0 until set.
    pub fn metric_named(&self, name: &str) -> Metric {
        self.state
            .lock()
            .unwrap()
            .entry(name.to_owned())
            .or_default();
        Metric {
            name: name.to_owned(),
            state: self.state.clone(),
        }
    }

    /// The metric's name.
    pub fn metric(&self) -> &str {
        &self.metric
    }
}

/// One metric of an [`ExternalMetrics`] adapter.
#[derive(Clone)]
pub struct Metric {
    name: String,
    state: State,
}

impl Metric {
    /// An autoscaling/v2 HPA named after and scaling the Deployment
    /// `deployment` (from 1 to `max` replicas) on this metric with an
    /// `AverageValue` of `target`, and `up`/`down` as its `behavior` (JSON).
    pub fn hpa(
        &self,
        deployment: &str,
        max: u32,
        target: u64,
        up: &str,
        down: &str,
    ) -> k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler {
        let rules = |s: &str| serde_json::from_str::<Value>(s).expect("a behavior in JSON");
        serde_json::from_value(json!({
            "metadata": {"name": deployment},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
                "minReplicas": 1,
                "maxReplicas": max,
                "metrics": [{"type": "External", "external": {
                    "metric": {"name": self.name},
                    "target": {"type": "AverageValue", "averageValue": target.to_string()}
                }}],
                "behavior": {"scaleUp": rules(up), "scaleDown": rules(down)}
            }
        }))
        .expect("a valid HPA")
    }

    /// Sets the value every later query returns, in whole units.
    pub fn set(&self, value: u64) {
        if let Some(series) = self.state.lock().unwrap().get_mut(&self.name) {
            series.value = value;
            series.sets.push((Utc::now(), value));
        }
    }

    /// Every value set so far: when, and what.
    pub fn sets(&self) -> Vec<(DateTime<Utc>, u64)> {
        self.state
            .lock()
            .unwrap()
            .get(&self.name)
            .map(|s| s.sets.clone())
            .unwrap_or_default()
    }

    /// Every query answered so far: when, and what it returned.
    pub fn queries(&self) -> Vec<(DateTime<Utc>, u64)> {
        self.state
            .lock()
            .unwrap()
            .get(&self.name)
            .map(|s| s.queries.clone())
            .unwrap_or_default()
    }
}

fn router(metric: &str, state: State) -> Router {
    let discovery = json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": GROUP_VERSION,
        "resources": [{
            "name": metric,
            "singularName": "",
            "namespaced": true,
            "kind": "ExternalMetricValueList",
            "verbs": ["get"]
        }]
    });
    Router::new()
        .route(
            "/apis/external.metrics.k8s.io/v1beta1",
            get(move || async move { Json(discovery) }),
        )
        .route(
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}",
            get(
                move |Path((_ns, name)): Path<(String, String)>| async move {
                    let value = {
                        let mut state = state.lock().unwrap();
                        let series = state.get_mut(&name).ok_or(StatusCode::NOT_FOUND)?;
                        series.queries.push((Utc::now(), series.value));
                        series.value
                    };
                    Ok::<_, StatusCode>(Json(json!({
                        "kind": "ExternalMetricValueList",
                        "apiVersion": GROUP_VERSION,
                        "metadata": {},
                        "items": [{
                            "metricName": name,
                            "metricLabels": {},
                            "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
                            "value": value.to_string()
                        }]
                    })))
                },
            ),
        )
}

/// Polls the APIService until the aggregator reports it Available; panics
/// with its last condition and the apiserver log's path after a minute.
async fn wait_available(apiservices: &Api<APIService>, cluster: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let condition = apiservices
            .get(APISERVICE)
            .await
            .ok()
            .and_then(|a| available_condition(&a));
        if condition.as_ref().is_some_and(|c| c["status"] == "True") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "APIService {APISERVICE} not Available after 60 s; last condition: {}; see {}",
            condition.unwrap_or_default(),
            cluster.dir().join("kube-apiserver.log").display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn available_condition(apiservice: &APIService) -> Option<Value> {
    let conditions = apiservice.status.as_ref()?.conditions.as_ref()?;
    let available = conditions.iter().find(|c| c.type_ == "Available")?;
    serde_json::to_value(available).ok()
}

/// Deletes an APIService an earlier run left behind, which would otherwise
/// block this one: either its Service's namespace is gone or being deleted
/// (that run ended and its own delete is still under way), or it has not
/// been Available for [`STALE_AFTER`] (that run was killed).
async fn remove_stale(apiservices: &Api<APIService>, namespaces: &Api<Namespace>) {
    let Ok(existing) = apiservices.get(APISERVICE).await else {
        return;
    };
    let owner = existing
        .spec
        .as_ref()
        .and_then(|s| s.service.as_ref())
        .and_then(|s| s.namespace.clone())
        .unwrap_or_default();
    let ended = match namespaces.get_opt(&owner).await {
        Ok(Some(ns)) => ns.metadata.deletion_timestamp.is_some(),
        Ok(None) => true,
        Err(_) => false,
    };
    let age: Duration = existing
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| Timestamp::now().duration_since(t.0).try_into().ok())
        .unwrap_or_default();
    let available = available_condition(&existing).is_some_and(|c| c["status"] == "True");
    // A process that registered for its whole life (`shared`) never
    // unregisters; its APIService is stale as soon as it is gone.
    let orphaned = existing
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(OWNER_PID))
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| {
            pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        });
    if orphaned && !ended {
        let _ = namespaces.delete(&owner, &DeleteParams::default()).await;
    }
    if ended || orphaned || (!available && age > STALE_AFTER) {
        eprintln!("external_metrics: deleting APIService {APISERVICE} left by an earlier run");
        let _ = apiservices
            .delete(APISERVICE, &DeleteParams::default())
            .await;
        eventually(
            "the old APIService gone",
            Duration::from_secs(30),
            || async {
                apiservices
                    .get_opt(APISERVICE)
                    .await
                    .ok()?
                    .is_none()
                    .then_some(())
            },
        )
        .await;
    }
}

fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("valid object")
}
