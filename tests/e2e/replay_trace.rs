//! `make replay` (out of `make test` and CI: 9 minutes): `simulate` checked
//! against the cluster. Two hours of a shipped real trace go through the
//! local control plane at 15×, since the HPA syncs every second here
//! against 15 s in a cluster: every duration is divided by the same factor
//! (the pods' start-up delay, the HPA's periods and stabilization, the
//! loop's lead, smoothing and hold). Two Deployments scale side by side on
//! the same demand, served by this test as the HPA's External metric and
//! as the loop's HTTP JSON source, with pods that kwok starts after the
//! scaled delay: one under the HPA alone, one under the HPA with the
//! governor (a `velocity` floor). The same compressed trace goes through
//! `simulate`; ready pods are compared tick by tick, and under-provisioned
//! time and pod-hours must agree within 10 % for both. The report is
//! `target/replay/report.md`, the timeline `target/replay/timeline.csv`.

mod compare;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{Json, Router, extract::State, routing::get};
use chrono::Utc;
use k8s_openapi::api::{
    apps::v1::Deployment, autoscaling::v2::HorizontalPodAutoscaler, core::v1::Pod,
};
use kube::{
    Client,
    api::{ListParams, PostParams},
};
use scale_governor::policy::Policy;
use serde_json::json;
use serial_test::serial;

use self::compare::{Agreement, Sample};
use crate::support::{
    self, Cluster, TestNamespace, eventually,
    external_metrics::{ExternalMetrics, Metric},
    governor::{self, Governor},
    timeline,
};

/// How much faster than the trace's own clock the replay runs.
const SPEEDUP: i32 = 15;
/// Demand one ready pod serves; under-provisioned means ready pods × this
/// below demand.
const CAPACITY: f64 = 200.0;
/// The HPA's `AverageValue` and the loop's `targetPerPod`: 95 % of
/// capacity, so with the HPA's tolerance it runs short on every rise and
/// the comparison has shortfalls to count (at 80 % this stretch has none).
const TARGET: u64 = 190;
/// kube-controller-manager's default tolerance.
const TOLERANCE: f64 = 0.1;
const HPA_MAX: u32 = 40;
/// Two minutes from creation to Ready, compressed: kwok's pod-ready stage
/// holds each pod this long after it runs.
const STARTUP_SECONDS: i64 = 8;
/// The loop at the HPA's cadence, which is `simulate`'s tick.
const LOOP: &str = "--recommend-interval=1s";
/// The agreement asked for, relative to `simulate`'s figure.
const AGREEMENT: f64 = 0.10;

/// The HPA's default behavior compressed: up by 100 % or 4 pods a period
/// (15 s → 1 s), down 100 % a period after a 300 s (→ 20 s) stabilization.
/// The same JSON is the HPA's `behavior` and `simulate`'s HPA spec.
fn behavior() -> (String, String) {
    let up = json!({"policies": [{"type": "Percent", "value": 100, "periodSeconds": 1},
        {"type": "Pods", "value": 4, "periodSeconds": 1}],
        "selectPolicy": "Max", "stabilizationWindowSeconds": 0});
    let down = json!({"policies": [{"type": "Percent", "value": 100, "periodSeconds": 1}],
        "selectPolicy": "Max", "stabilizationWindowSeconds": 20});
    (up.to_string(), down.to_string())
}

/// The governed Deployment's policy: `examples/quality/predictive.yaml`'s
/// velocity floor compressed (lead 120 s → 8 s, smoothing 180 s → 12 s,
/// hold 600 s → 40 s), aiming at the HPA's target.
fn governed_annotations() -> Vec<(&'static str, String)> {
    let recommend = format!(
        r#"{{"source":"replay","pointer":"/demand","targetPerPod":{TARGET},"trend":"velocity","leadSeconds":8,"smoothingSeconds":12,"holdSeconds":40,"kind":"floor","ttlSeconds":60}}"#
    );
    vec![
        ("min-replicas", "1".to_owned()),
        ("max-replicas", HPA_MAX.to_string()),
        ("recommend", recommend),
    ]
}

#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[serial]
async fn two_hours_of_a_real_trace_agree_with_simulate() {
    let cluster = support::require_cluster!();
    let metrics = ExternalMetrics::shared(cluster);
    // The loop's first samples must already read the trace: a 0 before it
    // would look like a surge to the velocity trend.
    let first = compare::compressed(Utc::now()).points()[0].1;
    let demand = Arc::new(AtomicU64::new(first as u64));
    let source = support::serve_http(
        Router::new()
            .route(
                "/stats/{name}",
                get(|State(d): State<Arc<AtomicU64>>| async move {
                    Json(json!({"demand": d.load(Ordering::Relaxed)}))
                }),
            )
            .with_state(demand.clone()),
    )
    .await;

    let alone = cluster.namespace("replay-hpa").await;
    let governed = cluster.namespace("replay-gov").await;
    let sources = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sources-{}.yaml", governed.name()));
    std::fs::write(
        &sources,
        format!(
            "sources:\n  - name: replay\n    namespaces: [\"{}\"]\n    http:\n      url: {source}/stats/{{{{name}}}}\n",
            governed.name()
        ),
    )
    .unwrap();
    let governor = Governor::start_with(
        cluster,
        governed.name(),
        "a",
        &[LOOP, &format!("--sources={}", sources.display())],
    )
    .await;
    let _webhooks = governor::register(cluster, &governed, &governor.url()).await;

    // The trace starts once both Deployments stand ready at what its first
    // minute needs, as `simulate`'s fleets start.
    let annotations = governed_annotations();
    let keyed: Vec<(String, &str)> = annotations
        .iter()
        .map(|(k, v)| (format!("scale-governor.io/{k}"), v.as_str()))
        .collect();
    let policy = Policy::from_annotations(keyed.iter().map(|(k, v)| (k.as_str(), *v)))
        .expect("the governed policy");
    let initial = (first / CAPACITY).ceil() as u32;
    let client = cluster.client();
    let plain: Vec<(&str, String)> = Vec::new();
    for (ns, annotations) in [(&alone, &plain), (&governed, &annotations)] {
        create(cluster, ns, initial, annotations).await;
    }
    for ns in [&alone, &governed] {
        eventually("the first pods Ready", Duration::from_secs(60), || async {
            (sample(&client, ns).await?.ready == initial).then_some(())
        })
        .await;
    }
    let series: Vec<Metric> = [&alone, &governed]
        .iter()
        .map(|ns| metrics.metric_named(ns.name()))
        .collect();
    for metric in &series {
        metric.set(first as u64);
    }
    for (ns, metric) in [(&alone, &series[0]), (&governed, &series[1])] {
        create_hpa(&client, ns, metric).await;
    }

    let trace = compare::compressed(Utc::now() + chrono::Duration::seconds(2));
    let end = trace.end() + trace.step();
    let driver = tokio::spawn({
        let points = trace.points().to_vec();
        let (series, demand) = (series.clone(), demand.clone());
        async move {
            for (at, value) in points {
                sleep_until(at).await;
                for metric in &series {
                    metric.set(value as u64);
                }
                demand.store(value as u64, Ordering::Relaxed);
            }
        }
    });
    let mut samples: BTreeMap<&str, Vec<Sample>> = BTreeMap::new();
    while Utc::now() < end {
        for (actor, ns) in [("hpa", &alone), ("hpa+governor", &governed)] {
            if let Some(s) = sample(&client, ns).await {
                samples.entry(actor).or_default().push(s);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    driver.await.unwrap();

    // The HPA reads a new value at its next sync, not the moment it is
    // set: `simulate` is told how late it read, as `--metric-delay`.
    let delays: Vec<i64> = series
        .iter()
        .map(|m| timeline::read_delay(&m.sets(), &m.queries()).num_milliseconds())
        .collect();
    let read_delay = chrono::Duration::milliseconds(delays.iter().sum::<i64>() / 2);
    let sim = compare::simulate(&trace, &policy, read_delay);
    let mut cluster_runs = Vec::new();
    let mut agreements = Vec::new();
    for (actor, simulated) in ["hpa", "hpa+governor"].into_iter().zip(&sim.runs) {
        assert_eq!(simulated.actor, actor);
        let run = compare::on_ticks(actor, &samples[actor], &sim.times);
        agreements.push(Agreement::new(actor, &run, simulated, &sim));
        cluster_runs.push(run);
    }
    let lag = |actor: &str| {
        compare::write_to_ready(&samples[actor]).map_or("none".to_owned(), |s| format!("{s:.1} s"))
    };
    let notes = vec![
        format!(
            "The HPA read each new value {} ms after it was set, on average (its 1 s sync), \
             and `simulate` ran with that as `--metric-delay`.",
            read_delay.num_milliseconds()
        ),
        format!(
            "The cluster was sampled {} times (hpa) and {} times (hpa+governor), 200 ms apart plus the requests' time; the governor answered {} reviews.",
            samples["hpa"].len(),
            samples["hpa+governor"].len(),
            governor.reviews().await
        ),
        format!(
            "From a raise of `spec.replicas` seen to as many pods Ready, on average: {} (hpa), {} (hpa+governor), against the {STARTUP_SECONDS} s `simulate` is given.",
            lag("hpa"),
            lag("hpa+governor")
        ),
    ];
    let mut report = compare::report(&agreements, &notes);
    report.push_str("\n![The cluster's ready pods against simulate's](quality/replay.svg)\n");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("target/replay");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("report.md"), &report).unwrap();
    std::fs::write(
        out.join("timeline.csv"),
        compare::timeline_csv(&sim, &cluster_runs),
    )
    .unwrap();
    std::fs::write(
        root.join("docs/quality/replay.svg"),
        compare::chart(&sim, &cluster_runs),
    )
    .unwrap();
    let doc = root.join("docs/quality.md");
    let text = std::fs::read_to_string(&doc).unwrap();
    std::fs::write(&doc, compare::splice(&text, report.trim_end())).unwrap();
    eprintln!("{report}");
    for a in &agreements {
        let (under, cost) = a.gaps();
        assert!(
            under <= AGREEMENT && cost <= AGREEMENT,
            "{}: the cluster and simulate disagree by {:.1} % on under-provisioned time and \
             {:.1} % on pod-hours:\n{report}",
            a.actor,
            100.0 * under,
            100.0 * cost
        );
    }
}

async fn sleep_until(at: chrono::DateTime<Utc>) {
    if let Ok(left) = (at - Utc::now()).to_std() {
        tokio::time::sleep(left).await;
    }
}

/// `web`, its pods Ready `STARTUP_SECONDS` after they run, deleted at once.
async fn create(
    cluster: &Cluster,
    ns: &TestNamespace,
    replicas: u32,
    annotations: &[(&str, String)],
) {
    let governed = !annotations.is_empty();
    let annotations: String = annotations
        .iter()
        .map(|(k, v)| format!("    scale-governor.io/{k}: {v:?}\n"))
        .collect();
    let manifest = format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web, scale-governor.io/governed: "{governed}"}}
  annotations:
{annotations}    replay: "true"
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
      annotations:
        pod-ready.stage.kwok.x-k8s.io/delay: {STARTUP_SECONDS}s
    spec:
      terminationGracePeriodSeconds: 0
      containers: [{{name: app, image: registry.k8s.io/pause:3.10}}]
"#
    );
    support::e2e::apply_ok(cluster, ns, &manifest, &[]).await;
}

async fn create_hpa(client: &Client, ns: &TestNamespace, metric: &Metric) {
    let (up, down) = behavior();
    let hpa = metric.hpa("web", HPA_MAX, TARGET, &up, &down);
    ns.api::<HorizontalPodAutoscaler>(client.clone())
        .create(&PostParams::default(), &hpa)
        .await
        .unwrap();
}

/// `web`'s replicas and its Ready pods that are not being deleted.
async fn sample(client: &Client, ns: &TestNamespace) -> Option<Sample> {
    let deployment = ns.api::<Deployment>(client.clone()).get("web").await.ok()?;
    let pods = ns
        .api::<Pod>(client.clone())
        .list(&ListParams::default().labels("app=web"))
        .await
        .ok()?;
    let ready = pods
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count() as u32;
    Some(Sample {
        at: Utc::now(),
        replicas: deployment.spec?.replicas? as u32,
        ready,
    })
}
