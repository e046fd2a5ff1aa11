//! The seasonal strategy's history against real servers: the range query
//! that backfills it, against the real Prometheus the e2e tests run, and
//! the summary the leader stores beside the ledger, which a new leader
//! brings back after the old one is SIGKILLed; a backfill that failed is
//! tried again.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::{RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use scale_governor::{
    policy::RecommendConfig,
    recommend::seasonal::{Seasonal, summary::SeasonalSummary},
    testing::ledgers::{SEASONAL_KEY, object_name},
    testing::sources::{HttpClient, Sources, Target},
    workload::WorkloadKind,
};
use serial_test::parallel;

use crate::support::{
    self,
    e2e::{Setup, create, setup_in, workload},
    eventually,
};

/// `query_range` reads back, in order, what Prometheus scraped: a gauge set
/// to 10, then 50, then 20, at a step of one second; a range longer than
/// one request may hold is split, and the time before Prometheus had data
/// is simply empty.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn a_range_query_reads_back_what_prometheus_scraped() {
    let Some(_) = support::try_cluster() else {
        return;
    };
    let prom = support::prometheus::Prometheus::start("prometheus-range").await;
    let series = "test_demand{workload=\"web\"}";
    let started = Utc::now();
    for value in [10.0, 50.0, 20.0] {
        prom.gauges.set(series, value);
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    eventually(
        "the last value scraped",
        Duration::from_secs(20),
        || async { (prom.query("test_demand{workload=\"web\"}").await? == [20.0]).then_some(()) },
    )
    .await;
    let sources = Sources::parse(&format!(
        "sources:\n  - name: prom\n    namespaces: [\"*\"]\n    prometheus:\n      url: {}\n      queries:\n        demand: 'test_demand{{workload=\"{{{{name}}}}\"}}'\n",
        prom.url
    ))
    .unwrap();
    let config = RecommendConfig::parse(
        r#"{"source":"prom","query":"demand","targetPerPod":1,"trend":"seasonal"}"#,
    )
    .unwrap();
    let target = Target {
        namespace: "shop",
        name: "web",
    };
    let http = HttpClient::new().unwrap();
    // Four hours at one second: 14,400 points, two requests.
    let now = Utc::now();
    let range = (now - chrono::Duration::hours(4), now);
    let points = sources
        .sample_range(&http, &config, target, range, 1)
        .await
        .unwrap()
        .expect("Prometheus keeps history");
    let values: Vec<f64> = points.iter().map(|(_, v)| *v).collect();
    let mut changes = values.clone();
    changes.dedup();
    assert_eq!(changes, [10.0, 50.0, 20.0], "{points:?}");
    assert!(points.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(points[0].0 >= started - chrono::Duration::seconds(2));
    // What the backfill makes of them: a history with that peak in it.
    let history = Seasonal::from_samples(135, &points);
    assert_eq!(history.highest_at(points[0].0).map(f64::round), Some(50.0));
}

/// Demand served as `{"demand": N}` on 127.0.0.1.
async fn demand_endpoint() -> (String, Arc<AtomicU64>) {
    async fn serve(State(v): State<Arc<AtomicU64>>) -> axum::Json<serde_json::Value> {
        axum::Json(serde_json::json!({ "demand": v.load(Ordering::Relaxed) }))
    }
    let value = Arc::new(AtomicU64::new(100));
    let app = Router::new()
        .route("/demand/{name}", get(serve))
        .with_state(value.clone());
    (support::serve_http(app).await, value)
}

/// The seasonal summary stored in the workload's ledger object, if any.
async fn stored(api: &Api<ConfigMap>, name: &str) -> Option<Seasonal> {
    let cm = api.get_opt(name).await.ok()??;
    let text = cm.data?.get(SEASONAL_KEY)?.clone();
    SeasonalSummary::parse(&text)
        .unwrap()
        .restore(Utc::now(), 30)
        .ok()
}

fn seasonal_writes(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "scale_governor_recommender_writes_total{kind=\"seasonal\",result=\"ok\"} ",
            )
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Creates Deployment `web` with `recommend`; its ledger ConfigMaps' API
/// and the name of its own.
async fn create_web(s: &Setup, recommend: &str) -> (Api<ConfigMap>, String) {
    create(
        s,
        &workload("Deployment", "web", 1, &[("recommend", recommend)]),
    )
    .await;
    let api = Api::namespaced(s.cluster.client(), s.ns.name());
    let name = object_name(WorkloadKind::Deployment, &format!("{}/web", s.ns.name()));
    (api, name)
}

/// `serve`'s flags for these tests: the loop and the summary store every
/// second, with one source (`source`, a YAML mapping's body after
/// `name: ...`) allowed in the namespace.
fn flags(ns: &str, source: &str) -> Vec<String> {
    let path =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sources-{ns}.yaml"));
    let yaml = format!("sources:\n  - namespaces: [\"{ns}\"]\n{source}");
    std::fs::write(&path, yaml).unwrap();
    vec![
        "--recommend-interval=1s".to_owned(),
        "--summary-interval=1s".to_owned(),
        format!("--sources={}", path.display()),
    ]
}

/// Two `serve` replicas storing the seasonal history every second. The
/// leader sees a peak of 5,000 and stores it; after it is SIGKILLed, the
/// other becomes leader and stores the history again, with the peak it
/// never saw itself: it brought back what the first one stored.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn the_seasonal_history_survives_a_leader_change() {
    let Some(cluster) = support::try_cluster() else {
        return;
    };
    let (url, demand) = demand_endpoint().await;
    let ns = cluster.namespace("seasonal").await;
    let source = format!("    name: demand\n    http:\n      url: {url}/demand/{{{{name}}}}\n");
    let flags = flags(ns.name(), &source);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut s = setup_in(cluster, ns, &flags).await;
    let b = support::governor::Governor::start_with(s.cluster, s.ns.name(), "b", &flags).await;
    let recommend = r#"{"source":"demand","pointer":"/demand","targetPerPod":10,"trend":"seasonal","leadSeconds":30}"#;
    let (api, name) = create_web(&s, recommend).await;
    let wait = Duration::from_secs(30);
    eventually("the first stored history", wait, || async {
        stored(&api, &name).await.map(drop)
    })
    .await;
    // A peak only the leader sees, sampled within seconds of `peak` (the
    // bin may end in between: both are looked at).
    let peak: DateTime<Utc> = Utc::now();
    let has_peak = |h: &Seasonal| {
        [peak, peak + chrono::Duration::seconds(10)]
            .iter()
            .any(|t| h.highest_at(*t).unwrap_or(0.0) >= 5000.0)
    };
    demand.store(5000, Ordering::Relaxed);
    eventually("the peak in the stored history", wait, || async {
        has_peak(&stored(&api, &name).await?).then_some(())
    })
    .await;
    demand.store(100, Ordering::Relaxed);
    assert_eq!(
        seasonal_writes(&b.metrics().await),
        0,
        "b is not the leader"
    );
    s.governor.kill().await;
    support::governor::repoint(s.cluster, &s.ns, &b.url()).await;
    eventually(
        "b to lead and store the history",
        Duration::from_secs(40),
        || async { (seasonal_writes(&b.metrics().await) > 0).then_some(()) },
    )
    .await;
    let history = stored(&api, &name).await.expect("b's stored history");
    assert!(
        has_peak(&history),
        "b stored a history without the peak a saw: it did not bring it back"
    );
}

/// A Prometheus that answers 503 to everything while `down` is set, and
/// otherwise every range with 100 except 5,000 around `peak`, and every
/// instant query with 100. Counts the range queries.
struct FlakyPrometheus {
    url: String,
    down: Arc<std::sync::atomic::AtomicBool>,
    ranges: Arc<AtomicU64>,
}

type Flaky = (Arc<std::sync::atomic::AtomicBool>, Arc<AtomicU64>, i64);

async fn flaky_prometheus(peak: DateTime<Utc>) -> FlakyPrometheus {
    fn unavailable() -> Response {
        (StatusCode::SERVICE_UNAVAILABLE, "down").into_response()
    }
    async fn range(State((down, ranges, peak)): State<Flaky>, RawQuery(q): RawQuery) -> Response {
        ranges.fetch_add(1, Ordering::SeqCst);
        if down.load(Ordering::SeqCst) {
            return unavailable();
        }
        let q = q.unwrap_or_default();
        let num = |k: &str| {
            let v = q.split('&').find_map(|p| p.strip_prefix(&format!("{k}=")));
            v.and_then(|v| v.parse::<f64>().ok()).unwrap() as i64
        };
        let (start, end, step) = (num("start"), num("end"), num("step"));
        let values: Vec<_> = (start..=end)
            .step_by(step as usize)
            .map(|t| {
                let v = if (t - peak).abs() <= 600 { 5000 } else { 100 };
                serde_json::json!([t, v.to_string()])
            })
            .collect();
        axum::Json(
            serde_json::json!({"status": "success", "data": {"resultType": "matrix",
            "result": [{"metric": {}, "values": values}]}}),
        )
        .into_response()
    }
    async fn instant(State((down, _, _)): State<Flaky>) -> Response {
        if down.load(Ordering::SeqCst) {
            return unavailable();
        }
        let now = Utc::now().timestamp();
        axum::Json(
            serde_json::json!({"status": "success", "data": {"resultType": "vector",
            "result": [{"metric": {}, "value": [now, "100"]}]}}),
        )
        .into_response()
    }
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let ranges = Arc::new(AtomicU64::new(0));
    let app = Router::new()
        .route("/api/v1/query_range", get(range))
        .route("/api/v1/query", get(instant))
        .with_state((down.clone(), ranges.clone(), peak.timestamp()));
    let url = support::serve_http(app).await;
    FlakyPrometheus { url, down, ranges }
}

/// Prometheus is down when the leader first asks for the history: while it
/// stays down the backfill is not retried (the live samples already pay
/// its timeouts); once it answers, the backfill is tried again, brings in a
/// peak from two hours ago that the loop never sampled, and stops asking
/// once it has.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn a_failed_backfill_is_tried_again_once_the_source_answers() {
    let Some(cluster) = support::try_cluster() else {
        return;
    };
    let peak = Utc::now() - chrono::Duration::hours(2);
    let prom = flaky_prometheus(peak).await;
    let ns = cluster.namespace("backfill").await;
    let source = format!(
        "    name: prom\n    timeout: 2s\n    prometheus:\n      url: {}\n      queries:\n        demand: 'demand'\n",
        prom.url
    );
    let flags = flags(ns.name(), &source);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let s = setup_in(cluster, ns, &flags).await;
    let recommend = r#"{"source":"prom","query":"demand","targetPerPod":10,"trend":"seasonal","leadSeconds":30}"#;
    let (api, name) = create_web(&s, recommend).await;
    eventually("the first backfill", Duration::from_secs(20), || async {
        (prom.ranges.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        prom.ranges.load(Ordering::SeqCst),
        1,
        "retried while the source was down"
    );
    prom.down.store(false, Ordering::SeqCst);
    let history = eventually(
        "a stored history with the backfilled peak",
        Duration::from_secs(40),
        || async {
            let h = stored(&api, &name).await?;
            (h.highest_at(peak).unwrap_or(0.0) >= 5000.0).then_some(h)
        },
    )
    .await;
    let before = peak - chrono::Duration::hours(1);
    assert_eq!(history.highest_at(before).map(f64::round), Some(100.0));
    // The failed one, then the one that filled the history (two requests
    // for two weeks at a minute's step), and no more after that.
    let asked = prom.ranges.load(Ordering::SeqCst);
    assert!((2..=5).contains(&asked), "{asked} range queries");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        prom.ranges.load(Ordering::SeqCst),
        asked,
        "it kept asking after the history was full"
    );
}
