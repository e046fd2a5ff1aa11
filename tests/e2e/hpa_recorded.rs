//! The HPA emulation of `simulate` (`scale_governor::simulate::hpa::Hpa`)
//! against the real HPA controller: a recorded run of kube-controller-manager
//! v1.35.4 on the local control plane, replayed through the emulation. Same
//! demand sequence, same replica sequence.
//!
//! The real HPA scales a Deployment on an `External` metric with an
//! `AverageValue` target, served from this process (`support::external_metrics`);
//! that metric does not depend on pod usage, and it ignores pod readiness, so the
//! emulation runs with every replica ready. The very same `behavior` JSON
//! configures the HPA and, as `scale-up`/`scale-down` annotations, the
//! emulation.
//!
//! The behavior keeps the run deterministic despite real-time jitter: no
//! stabilization, and rate policies with 600 s periods, so every change of the
//! run falls within one period and the budget accounting does not depend on
//! when exactly the controller synced.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use k8s_openapi::api::{apps::v1::Deployment, autoscaling::v2::HorizontalPodAutoscaler};
use kube::{Api, api::PostParams};
use scale_governor::{
    policy::{Policy, keys},
    simulate::{self, Actor, Config, Interpolation, Trace, Workload, hpa::Hpa},
};
use serde_json::{Value, json};
use serial_test::{parallel, serial};

use crate::support::{self, external_metrics::ExternalMetrics};

/// The HPA's `AverageValue` target: demand one replica serves.
const TARGET: u64 = 100;
/// kube-controller-manager's default `--horizontal-pod-autoscaler-tolerance`.
const TOLERANCE: f64 = 0.1;
const MIN_REPLICAS: u32 = 1;
const MAX_REPLICAS: u32 = 20;
/// `behavior.scaleUp` of the HPA and `scale-up` of the emulation.
const SCALE_UP: &str = r#"{"policies":[{"type":"Pods","value":4,"periodSeconds":600}],"selectPolicy":"Max","stabilizationWindowSeconds":0}"#;
/// `behavior.scaleDown` of the HPA and `scale-down` of the emulation.
const SCALE_DOWN: &str = r#"{"policies":[{"type":"Pods","value":2,"periodSeconds":600}],"selectPolicy":"Max","stabilizationWindowSeconds":0}"#;
/// The shortest policy period: the whole run must fit in it.
const PERIOD: Duration = Duration::from_secs(600);

/// The demand of each step. 100 is the baseline (1 replica exactly on
/// target). 310 on 3 replicas is within the tolerance. 60 scales down to 1
/// only because the scale-down budget nets the period's scale-ups, and the
/// last 1200 is held to 5 only because the scale-up budget nets its
/// scale-downs.
const DEMAND: [u64; 10] = [100, 150, 150, 900, 900, 250, 310, 60, 1200, 1200];

/// The replicas the real HPA settled on, as quoted in `docs/simulate.md`.
const DOCUMENTED: [u32; 10] = [1, 2, 2, 5, 5, 3, 3, 1, 5, 5];

/// Syncs the emulation runs per step; the real HPA syncs every second.
const SYNCS_PER_STEP: i64 = 4;

/// How long one step may take to settle (normally 3–6 s).
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[serial]
async fn emulated_hpa_matches_recorded_real_hpa() {
    let cluster = support::require_cluster!();
    let metrics = ExternalMetrics::shared(cluster);
    let ns = cluster.namespace("hparec").await;
    let client = cluster.client();
    let deployments: Api<Deployment> = ns.api(client.clone());
    let hpas: Api<HorizontalPodAutoscaler> = ns.api(client);

    // The metric must answer through the aggregator before the HPA reads it.
    metrics.set(DEMAND[0]);
    let raw = format!(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{}",
        metrics.metric()
    );
    let out = cluster.kubectl_ok(["get", "--raw", raw.as_str()]).await;
    let list: Value = serde_json::from_str(&out).expect("ExternalMetricValueList JSON");
    assert_eq!(list["items"][0]["value"], DEMAND[0].to_string(), "{out}");

    deployments
        .create(&PostParams::default(), &support::deployment("web", 1))
        .await
        .expect("creating deployment web");
    hpas.create(&PostParams::default(), &hpa_manifest(metrics.metric()))
        .await
        .expect("creating the HPA");
    let started = Instant::now();

    let mut recorded = Vec::new();
    for demand in DEMAND {
        metrics.set(demand);
        let replicas = settle(metrics, &deployments, &hpas, demand).await;
        eprintln!("hpa_recorded: demand {demand:>5} -> {replicas} replicas");
        recorded.push(replicas);
    }
    let elapsed = started.elapsed();
    eprintln!(
        "hpa_recorded: recorded run {:?} -> {recorded:?} in {:.1} s ({} metric queries)",
        DEMAND,
        elapsed.as_secs_f64(),
        metrics.queries()
    );
    assert!(
        elapsed < PERIOD,
        "the run took {elapsed:?}, longer than the {PERIOD:?} rate-policy period, so its \
         budget accounting depended on timing; the comparison is void"
    );

    let emulated = emulate(&DEMAND);
    assert_eq!(
        emulated, recorded,
        "the HPA emulation differs from the real HPA\n  demand:   {DEMAND:?}\n  real:     \
         {recorded:?}\n  emulated: {emulated:?}\n  behavior: scaleUp {SCALE_UP}, scaleDown \
         {SCALE_DOWN}"
    );
    assert_eq!(
        recorded, DOCUMENTED,
        "the real HPA now behaves differently from the run quoted in docs/simulate.md \
         (\"Checked against the real HPA\"); update the page and DOCUMENTED"
    );
}

/// The same behavior JSON as the emulation's `scale-up`/`scale-down`.
fn hpa_manifest(metric: &str) -> HorizontalPodAutoscaler {
    let rules = |json: &str| serde_json::from_str::<Value>(json).expect("behavior JSON");
    serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": MIN_REPLICAS,
            "maxReplicas": MAX_REPLICAS,
            "metrics": [{
                "type": "External",
                "external": {
                    "metric": {"name": metric},
                    "target": {"type": "AverageValue", "averageValue": TARGET.to_string()}
                }
            }],
            "behavior": {"scaleUp": rules(SCALE_UP), "scaleDown": rules(SCALE_DOWN)}
        }
    }))
    .expect("valid HorizontalPodAutoscaler")
}

/// Waits until the HPA has settled on the demand just set and returns the
/// Deployment's `spec.replicas`.
///
/// Settled means: `spec.replicas` equals `status.replicas` (the HPA divides by
/// `status.replicas`, so a lagging status could change its answer) and has not
/// changed since before the last 3 metric queries, all made after the change.
/// The HPA never syncs one object twice at once, so when query `n` arrives, the
/// scale written by the sync of query `n - 1` is already visible: two whole
/// syncs with the new demand kept the count.
async fn settle(
    metrics: &ExternalMetrics,
    deployments: &Api<Deployment>,
    hpas: &Api<HorizontalPodAutoscaler>,
    demand: u64,
) -> u32 {
    let base = metrics.queries();
    let deadline = Instant::now() + STEP_TIMEOUT;
    // (queries when this count was first seen settled, spec.replicas)
    let mut since: Option<(u64, i32)> = None;
    let mut last = (0, 0);
    loop {
        let queries = metrics.queries(); // before the read, see above
        if let Ok(web) = deployments.get("web").await {
            let spec = web.spec.and_then(|s| s.replicas).unwrap_or(0);
            let status = web.status.and_then(|s| s.replicas).unwrap_or(0);
            last = (spec, status);
            match since {
                Some((_, kept)) if kept == spec && status == spec => {}
                _ => since = (status == spec).then_some((queries, spec)),
            }
            if let Some((from, kept)) = since
                && queries >= from + 3
            {
                return u32::try_from(kept).expect("non-negative replicas");
            }
        }
        if Instant::now() >= deadline {
            let hpa = hpas.get("web").await.map(|h| h.status);
            panic!(
                "demand {demand}: the HPA did not settle in {STEP_TIMEOUT:?}; metric queries \
                 {base} -> {queries}, last spec/status replicas {last:?}; HPA status: {hpa:#?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Replays `demand` through the emulation: an `Hpa` from the same policy,
/// synced every second (the controller's `--horizontal-pod-autoscaler-sync-period`),
/// [`SYNCS_PER_STEP`] times per step, writing back what it decides.
/// The HPA's `minReplicas`, `maxReplicas` and `behavior` as a policy.
fn hpa_policy() -> Policy {
    let (min, max) = (MIN_REPLICAS.to_string(), MAX_REPLICAS.to_string());
    Policy::from_annotations([
        (keys::MIN_REPLICAS, min.as_str()),
        (keys::MAX_REPLICAS, max.as_str()),
        (keys::SCALE_UP, SCALE_UP),
        (keys::SCALE_DOWN, SCALE_DOWN),
    ])
    .expect("the HPA's behavior parses as a policy")
}

fn emulate(demand: &[u64]) -> Vec<u32> {
    let mut hpa = Hpa::new(&hpa_policy(), TARGET as f64, TOLERANCE);
    let mut now: DateTime<Utc> = "2026-01-05T09:00:00Z".parse().unwrap();
    let mut current = 1; // the Deployment's replicas when the HPA was created
    demand
        .iter()
        .map(|&d| {
            for _ in 0..SYNCS_PER_STEP {
                now += chrono::Duration::seconds(1);
                // External AverageValue ignores readiness: every replica counts.
                current = hpa.sync(now, current, current, d as f64);
            }
            current
        })
        .collect()
}

/// `simulate` itself, HPA actor, reproduces the recorded table at the
/// metric delays a run like the recorded one has: the real HPA synced every
/// second and read the adapter directly, so it saw each new value within a
/// second or two. Each step holds its demand for 20 s, as the recording's
/// steps lasted (it waited for three reads and two quiet syncs); the
/// replicas at the end of each step are compared.
#[test]
#[parallel]
fn simulate_at_the_recordings_metric_delay_gives_the_table() {
    let start: DateTime<Utc> = "2026-01-05T09:00:00Z".parse().unwrap();
    let hold = chrono::Duration::seconds(20);
    let points = DEMAND
        .iter()
        .enumerate()
        .map(|(i, d)| (start + hold * i as i32, *d as f64))
        .collect();
    let trace = Trace::from_points(points).unwrap();
    let hpa = hpa_policy();
    for delay in [0, 1, 2] {
        let config = Config {
            capacity: TARGET as f64,
            startup: chrono::Duration::zero(),
            tick: chrono::Duration::seconds(1),
            hpa_target: TARGET as f64,
            tolerance: TOLERANCE,
            actors: vec![Actor::Hpa],
            metric_delay: chrono::Duration::seconds(delay),
            hpa: Some(hpa.clone()),
            interpolation: Interpolation::Step,
        };
        let workloads = [Workload {
            name: "web".into(),
            policy: Policy::default(),
        }];
        let sim = simulate::simulate(&trace, &workloads, &config);
        // The first replica count is the one the HPA found: 1.
        let run = &sim.runs[0];
        let at_step_ends: Vec<u32> = (0..DEMAND.len())
            .map(|i| run.replicas[(i + 1) * 20 - 1])
            .collect();
        assert_eq!(at_step_ends, DOCUMENTED, "metric delay {delay} s");
    }
}
