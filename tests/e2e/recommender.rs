//! The recommender loop against the real control plane: windows that move
//! replicas with nobody else writing, HTTP JSON and Prometheus sources,
//! a warm pool with the real ReplicaSet controller, failing sources, a
//! leader killed mid-ramp, and refusals at admission.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{Json, Router, extract::State, routing::get};
use chrono::{SecondsFormat, Utc};
use serial_test::parallel;

use crate::support::{
    self, Cluster, TestNamespace,
    e2e::{Setup, apply, apply_ok, create, events, replicas, setup_in, workload},
    eventually,
};

/// Long enough for a few loop periods and a webhook round trip.
const LOOP_WAIT: Duration = Duration::from_secs(30);

/// A governor whose loop runs every second, with `sources` (YAML, `{ns}`
/// standing for the namespace) if given.
async fn setup(prefix: &str, sources: Option<&str>) -> Option<Setup> {
    let cluster = support::require_cluster!(None);
    let ns = cluster.namespace(prefix).await;
    let mut flags = vec!["--recommend-interval=1s".to_owned()];
    if let Some(text) = sources {
        let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("sources-{}.yaml", ns.name()));
        std::fs::write(&path, text.replace("{ns}", ns.name())).unwrap();
        flags.push(format!("--sources={}", path.display()));
    }
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Some(setup_in(cluster, ns, &flags).await)
}

/// Records a workload's `spec.replicas` as it changes.
struct Sequence {
    seen: Arc<std::sync::Mutex<Vec<u32>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sequence {
    fn start(cluster: &'static Cluster, ns: &TestNamespace, resource: &str) -> Sequence {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (ns, resource, record) = (ns.name().to_owned(), resource.to_owned(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let out = cluster
                    .kubectl([
                        "get",
                        "-n",
                        &ns,
                        &resource,
                        "-o",
                        "jsonpath={.spec.replicas}",
                    ])
                    .await;
                if let Ok(n) = String::from_utf8_lossy(&out.stdout).trim().parse::<u32>() {
                    let mut seen = record.lock().unwrap();
                    if seen.last() != Some(&n) {
                        seen.push(n);
                    }
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        });
        Sequence { seen, task }
    }

    fn get(&self) -> Vec<u32> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Sequence {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
        .trim_end_matches('Z')
        .to_owned()
}

async fn annotation(s: &Setup, resource: &str, key: &str) -> Option<serde_json::Value> {
    let path = format!(
        "jsonpath={{.metadata.annotations.{}}}",
        key.replace('.', "\\.").replace('/', "\\/")
    );
    let text = s
        .cluster
        .kubectl_ok(["get", "-n", s.ns.name(), resource, "-o", &path])
        .await;
    serde_json::from_str(text.trim()).ok()
}

/// A window that begins raises a Deployment to its floor within a period,
/// with nobody else writing and no `recommend` annotation; a window's
/// maximum lowers another; when the raising window ends, replicas go back to
/// the count before it, as fast as the scale-down rules allow.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn windows_move_replicas_in_and_back_out_with_nobody_writing() {
    let Some(s) = setup("windows", None).await else {
        return;
    };
    let start = Utc::now() + chrono::Duration::seconds(8);
    let end = start + chrono::Duration::seconds(10);
    let window = format!("{}/{} UTC min=5", rfc3339(start), rfc3339(end));
    create(
        &s,
        &workload(
            "Deployment",
            "web",
            2,
            &[("windows", &window), ("scale-down", "1 pods/2s")],
        ),
    )
    .await;
    let cap = format!(
        "{}/{} UTC max=3",
        rfc3339(start),
        rfc3339(end + chrono::Duration::seconds(60))
    );
    create(
        &s,
        &workload(
            "Deployment",
            "api",
            8,
            &[("windows", &cap), ("scale-down", "2 pods/1s")],
        ),
    )
    .await;
    let web = Sequence::start(s.cluster, &s.ns, "deploy/web");
    let api = Sequence::start(s.cluster, &s.ns, "deploy/api");
    // Before the window nothing moves.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(web.get(), [2], "moved before the window");
    eventually("the window's floor", LOOP_WAIT, || async {
        (replicas(s.cluster, &s.ns, "deploy/web").await == 5).then_some(())
    })
    .await;
    let raised_at = Utc::now();
    assert!(
        raised_at - start < chrono::Duration::seconds(4),
        "raised {}s after the window opened",
        (raised_at - start).num_seconds()
    );
    eventually("the window's ceiling", LOOP_WAIT, || async {
        (replicas(s.cluster, &s.ns, "deploy/api").await == 3).then_some(())
    })
    .await;
    // After the window: back to 2, one pod every 2 s at most.
    eventually("the way back", LOOP_WAIT, || async {
        (replicas(s.cluster, &s.ns, "deploy/web").await == 2).then_some(())
    })
    .await;
    // Let the recorder catch up with what was just seen.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seq = web.get();
    println!(
        "web: {seq:?} (window {window}); api: {:?} ({cap})",
        api.get()
    );
    assert_eq!(seq.first(), Some(&2));
    assert_eq!(seq.iter().max(), Some(&5));
    assert_eq!(seq.last(), Some(&2));
    let down: Vec<u32> = seq.iter().skip_while(|n| **n != 5).copied().collect();
    assert!(
        down.windows(2).all(|w| w[0] > w[1] && w[0] - w[1] <= 1),
        "the way back must be paced by 1 pod/2s: {seq:?}"
    );
    // A count outside the bounds moves to the bound at once, as the HPA
    // does: bounds win over rate rules.
    assert_eq!(api.get(), [8, 3]);
}

#[derive(Clone)]
struct Orders {
    value: Arc<AtomicU64>,
    /// Counter mode: the value grows by this much per second.
    per_second: Arc<AtomicU64>,
    started: std::time::Instant,
}

async fn stats(State(o): State<Orders>) -> Json<serde_json::Value> {
    let rate = o.per_second.load(Ordering::Relaxed) as f64;
    let total = (o.started.elapsed().as_secs_f64() * rate).floor();
    Json(serde_json::json!({
        "orders": o.value.load(Ordering::Relaxed),
        "counters": {"orders_total": total},
    }))
}

/// Serves `{"orders": N, "counters": {"orders_total": C}}` on 127.0.0.1.
async fn orders_endpoint() -> (String, Orders) {
    let orders = Orders {
        value: Arc::new(AtomicU64::new(42)),
        per_second: Arc::new(AtomicU64::new(50)),
        started: std::time::Instant::now(),
    };
    let app = Router::new()
        .route("/stats/{name}", get(stats))
        .with_state(orders.clone());
    (support::serve_http(app).await, orders)
}

/// The classic custom-metric scaler as a policy: orders per pod 5, a floor
/// of 3, tolerance 0, from 3 replicas: 42 orders make 9 pods, 3 orders make
/// 3; a counter's rate works the same.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn an_http_json_source_gives_the_classic_scalers_numbers() {
    let (url, orders) = orders_endpoint().await;
    let sources = format!(
        "sources:\n  - name: orders\n    namespaces: [\"{{ns}}\"]\n    http:\n      url: {url}/stats/{{{{name}}}}\n"
    );
    let Some(s) = setup("httpjson", Some(&sources)).await else {
        return;
    };
    let recommend = r#"{"source":"orders","pointer":"/orders","targetPerPod":5,"tolerance":0,"trend":"none","holdSeconds":0,"kind":"target"}"#;
    create(
        &s,
        &workload(
            "Deployment",
            "web",
            3,
            &[("min-replicas", "3"), ("recommend", recommend)],
        ),
    )
    .await;
    eventually("42 orders to make 9 pods", LOOP_WAIT, || async {
        (replicas(s.cluster, &s.ns, "deploy/web").await == 9).then_some(())
    })
    .await;
    // The loop moves replicas first and writes the annotation after.
    let rec = eventually("the recommendation annotation", LOOP_WAIT, || async {
        annotation(&s, "deploy/web", "scale-governor.io/recommendation")
            .await
            .filter(|r| r["replicas"] == 9)
    })
    .await;
    assert_eq!(rec["reason"], "proportional: demand 42, 5 per pod -> 9");
    orders.value.store(3, Ordering::Relaxed);
    eventually("3 orders to make 3 pods", LOOP_WAIT, || async {
        (replicas(s.cluster, &s.ns, "deploy/web").await == 3).then_some(())
    })
    .await;
    // The recommendation itself stays within the policy's bounds, and
    // says so; the loop writes it after the /scale it follows.
    let rec = eventually("the recommendation raised to 3", LOOP_WAIT, || async {
        annotation(&s, "deploy/web", "scale-governor.io/recommendation")
            .await
            .filter(|r| r["replicas"] == 3)
    })
    .await;
    assert_eq!(
        rec["reason"],
        "proportional: demand 3, 5 per pod -> 1; raised to 3: min-replicas 3"
    );

    // A counter: 50 orders a second, 5 per pod.
    let counter = r#"{"source":"orders","pointer":"/counters/orders_total","counter":true,"targetPerPod":5,"tolerance":0,"trend":"none","holdSeconds":0,"kind":"target"}"#;
    create(
        &s,
        &workload("Deployment", "api", 1, &[("recommend", counter)]),
    )
    .await;
    eventually("a rate of 50/s to make 10 pods", LOOP_WAIT, || async {
        let n = replicas(s.cluster, &s.ns, "deploy/api").await;
        (9..=11).contains(&n).then_some(())
    })
    .await;
}

/// A workload naming a source it may not use, or a URL instead of a source,
/// is refused at admission with the reason.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn a_source_that_is_not_allowed_or_a_url_is_refused_at_admission() {
    let sources = "sources:\n  - name: elsewhere\n    namespaces: [billing]\n    http:\n      url: http://127.0.0.1:9/x\n";
    let Some(s) = setup("srcadmit", Some(sources)).await else {
        return;
    };
    create(&s, &workload("Deployment", "probe", 1, &[])).await;
    for (recommend, expected) in [
        (
            r#"{"source":"elsewhere","pointer":"/x","targetPerPod":1}"#,
            "may not be used from namespace",
        ),
        (
            r#"{"source":"http://169.254.169.254/latest","pointer":"/x","targetPerPod":1}"#,
            "looks like a URL",
        ),
        (
            r#"{"source":"prometheus","query":"up","targetPerPod":1}"#,
            "is not defined by the governor",
        ),
    ] {
        let out = apply(
            s.cluster,
            &s.ns,
            &workload("Deployment", "web", 1, &[("recommend", recommend)]),
        )
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(expected),
            "{recommend}: {stderr}"
        );
    }
    let _ = events(&s, "PolicyInvalid").await;
}

/// A real Prometheus scraping a test exporter: a demand ramp makes the
/// velocity strategy recommend ahead of the proportional one (both series
/// are printed), a flat high demand does not take the velocity path, and the
/// recommendation reaches the Deployment through the webhook. A stated
/// `risk` is scored against the pods kwok makes ready, and `status -o json`
/// shows it with the share short and the headroom. Then
/// Prometheus is killed: until the last recommendation expires nothing
/// drops below it, after that only the static policy holds (an Event says
/// so), and the loop never lowers replicas for want of data.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn prometheus_a_ramp_is_met_ahead_and_a_missing_metric_never_scales_down() {
    let Some(_) = support::try_cluster() else {
        return;
    };
    let mut prom = support::prometheus::Prometheus::start("prometheus-ramp").await;
    let sources = format!(
        "sources:\n  - name: prom\n    namespaces: [\"{{ns}}\"]\n    timeout: 2s\n    prometheus:\n      url: {}\n      queries:\n        demand: 'test_demand{{workload=\"{{{{name}}}}\"}}'\n",
        prom.url
    );
    let Some(s) = setup("prom", Some(&sources)).await else {
        return;
    };
    let base = r#""source":"prom","query":"demand","targetPerPod":10,"tolerance":0,"holdSeconds":0,"ttlSeconds":12"#;
    let plain = format!(r#"{{{base},"trend":"none"}}"#);
    let ahead = format!(
        r#"{{{base},"trend":"velocity","leadSeconds":30,"smoothingSeconds":3,"velocityThreshold":1}}"#
    );
    let g = prom.gauges.clone();
    for name in ["plain", "ahead", "flat"] {
        g.set(
            &format!("test_demand{{workload=\"{name}\"}}"),
            if name == "flat" { 500.0 } else { 100.0 },
        );
    }
    create(
        &s,
        &workload("Deployment", "plain", 1, &[("recommend", &plain)]),
    )
    .await;
    create(
        &s,
        &workload(
            "Deployment",
            "ahead",
            1,
            &[("min-replicas", "1"), ("recommend", &ahead)],
        ),
    )
    .await;
    create(
        &s,
        &workload("Deployment", "flat", 1, &[("recommend", &ahead)]),
    )
    .await;
    // With a stated risk, each period is scored against the pods ready.
    let stated = format!(r#"{{{base},"trend":"none","risk":"1%"}}"#);
    g.set("test_demand{workload=\"stated\"}", 50.0);
    create(
        &s,
        &workload("Deployment", "stated", 1, &[("recommend", &stated)]),
    )
    .await;
    let rec = |name: &'static str| {
        let s = &s;
        async move {
            annotation(
                s,
                &format!("deploy/{name}"),
                "scale-governor.io/recommendation",
            )
            .await
            .map(|r| {
                (
                    r["replicas"].as_u64().unwrap_or(0),
                    r["strategy"].as_str().unwrap_or("").to_owned(),
                )
            })
        }
    };
    eventually("first recommendations", LOOP_WAIT, || async {
        (rec("plain").await.is_some() && rec("ahead").await.is_some()).then_some(())
    })
    .await;
    // The ramp: +10 a second for 15 s.
    let (mut plain_series, mut ahead_series) = (Vec::new(), Vec::new());
    for step in 0..15 {
        let demand = 100.0 + 10.0 * f64::from(step);
        g.set("test_demand{workload=\"plain\"}", demand);
        g.set("test_demand{workload=\"ahead\"}", demand);
        tokio::time::sleep(Duration::from_secs(1)).await;
        plain_series.push(rec("plain").await.map_or(0, |r| r.0));
        ahead_series.push(rec("ahead").await.map_or(0, |r| r.0));
    }
    println!("proportional: {plain_series:?}\nvelocity:     {ahead_series:?}");
    let late = |series: &[u64]| series[10..].iter().sum::<u64>();
    assert!(
        late(&ahead_series) >= late(&plain_series) + 5 * 10,
        "the velocity strategy must lead the ramp by ~30 s of demand: {ahead_series:?} vs {plain_series:?}"
    );
    let (ahead_now, strategy) = rec("ahead").await.unwrap();
    assert_eq!(strategy, "velocity");
    let (flat, flat_strategy) = rec("flat").await.unwrap();
    assert_eq!(
        (flat, flat_strategy.as_str()),
        (50, "proportional"),
        "a flat demand is not a ramp"
    );
    // A floor above the current count lifts it through the webhook.
    eventually("the floor to reach spec.replicas", LOOP_WAIT, || async {
        (u64::from(replicas(s.cluster, &s.ns, "deploy/ahead").await) >= ahead_now).then_some(())
    })
    .await;

    // `status -o json` shows the stated risk and, once ready pods were
    // scored, the share short and the headroom; the reason says the same.
    let risk = eventually("status to show the achieved risk", LOOP_WAIT, || async {
        let row = status_row(&s, "stated");
        row["risk"]["achieved"]
            .as_f64()
            .map(|_| row["risk"].clone())
    })
    .await;
    let achieved = risk["achieved"].as_f64().unwrap();
    assert_eq!(risk["stated"].as_f64(), Some(0.01), "{risk}");
    assert!((0.0..=1.0).contains(&achieved), "{risk}");
    assert!(
        risk["windowSeconds"].as_i64().is_some_and(|w| w > 0),
        "{risk}"
    );
    // It starts at a tenth of demand on top and moves by at most a
    // hundredth of it per 15 s: after half a minute it is still well above 0.
    assert!(risk["headroom"].as_f64().is_some_and(|h| h > 2.0), "{risk}");
    let reason = annotation(&s, "deploy/stated", "scale-governor.io/recommendation")
        .await
        .map(|r| r["reason"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    assert!(reason.contains("(risk 1 %, achieved "), "{reason}");
    println!("risk in status: {risk}\nreason: {reason}");

    // The source goes away.
    prom.kill().await;
    let held = replicas(s.cluster, &s.ns, "deploy/ahead").await;
    eventually("the SourceFailed Event", LOOP_WAIT, || async {
        let text = events(&s, "SourceFailed").await;
        text.contains("nothing is scaled down for want of data")
            .then_some(())
    })
    .await;
    let text = eventually("the RecommendationExpired Event", LOOP_WAIT, || async {
        let text = events(&s, "RecommendationExpired").await;
        text.contains("only the static policy holds")
            .then_some(text)
    })
    .await;
    assert!(!text.is_empty());
    // Some periods later, nothing was lowered for want of data.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/ahead").await, held);
    let status = s
        .cluster
        .kubectl_ok([
            "get",
            "-n",
            s.ns.name(),
            "deploy/ahead",
            "-o",
            "jsonpath={.metadata.annotations.scale-governor\\.io/state}",
        ])
        .await;
    assert!(status.contains("\"ok\":false"), "{status}");
}

/// Marks a pool pod reserved by a session, or frees it.
async fn reserve(s: &Setup, pod: &str, reserved: bool) {
    let value = if reserved {
        "sessions.example.com/reserved=true"
    } else {
        "sessions.example.com/reserved-"
    };
    s.cluster
        .kubectl_ok([
            "label",
            "--overwrite",
            "-n",
            s.ns.name(),
            &format!("pod/{pod}"),
            value,
        ])
        .await;
}

async fn pool_pods(s: &Setup) -> Vec<(String, bool)> {
    let out = s
        .cluster
        .kubectl_ok([
            "get",
            "pods",
            "-n",
            s.ns.name(),
            "-l",
            "scale-governor.io/warm-pool=sessions",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}|{.metadata.labels.sessions\\.example\\.com/reserved}|{.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ])
        .await;
    out.lines()
        .filter_map(|l| {
            let mut fields = l.split('|');
            let (name, reserved, deleting) = (fields.next()?, fields.next()?, fields.next()?);
            (!name.is_empty() && deleting.trim().is_empty())
                .then(|| (name.to_owned(), reserved == "true"))
        })
        .collect()
}

/// A warm pool of pre-warmed pods on real pod lifecycles (kwok: Running
/// at once, Ready after the pods' start-up delay) with the real ReplicaSet
/// controller: the recommendation is reserved + targetReady, pods still
/// warming (Running, not Ready) count as on their way, and when the pool
/// shrinks the controller deletes idle pods, never a reserved one (the
/// governor keeps their deletion cost high).
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn a_warm_pool_keeps_ready_pods_on_top_of_the_reserved_and_never_deletes_one() {
    let Some(s) = setup("warmpool", None).await else {
        return;
    };
    let recommend = r#"{"source":"pods","warmPool":{"reserved":"sessions.example.com/reserved","targetReady":2},"holdSeconds":0,"kind":"target"}"#;
    // Pods take 6 s from Running to Ready, as a slow-starting server would.
    let manifest = workload("Deployment", "sessions", 2, &[("recommend", recommend)]).replace(
        "      labels: {app: sessions}\n",
        "      labels: {app: sessions, scale-governor.io/warm-pool: sessions}\n      annotations: {pod-ready.stage.kwok.x-k8s.io/delay: 6s}\n",
    );
    create(&s, &manifest).await;
    let pods = eventually("the first two pods", LOOP_WAIT, || async {
        let pods = pool_pods(&s).await;
        (pods.len() == 2).then_some(pods)
    })
    .await;
    eventually("the first two pods Ready", LOOP_WAIT, || async {
        (status_row(&s, "sessions")["pool"] == serde_json::json!([0, 2, 0])).then_some(())
    })
    .await;
    // Two sessions take both pods: the pool grows to 2 reserved + 2 ready.
    for (pod, _) in &pods {
        reserve(&s, pod, true).await;
    }
    eventually("4 replicas", LOOP_WAIT, || async {
        (replicas(s.cluster, &s.ns, "deploy/sessions").await == 4).then_some(())
    })
    .await;
    let rec = eventually("the warm pool's recommendation", LOOP_WAIT, || async {
        annotation(&s, "deploy/sessions", "scale-governor.io/recommendation")
            .await
            .filter(|r| r["replicas"] == 4)
    })
    .await;
    assert_eq!(rec["strategy"].as_str(), Some("warm-pool"));
    // The two new pods run and warm up: they count as on their way, and
    // nothing more is added while they do, nor once they are ready.
    eventually("2 reserved and 2 warming", LOOP_WAIT, || async {
        (status_row(&s, "sessions")["pool"] == serde_json::json!([2, 0, 2])).then_some(())
    })
    .await;
    eventually("2 reserved and 2 ready", LOOP_WAIT, || async {
        (status_row(&s, "sessions")["pool"] == serde_json::json!([2, 2, 0])).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/sessions").await, 4);
    let all = pool_pods(&s).await;
    assert_eq!(all.len(), 4, "{all:?}");
    // The reserved pods carry a high deletion cost.
    let reserved: Vec<String> = all.iter().filter(|p| p.1).map(|p| p.0.clone()).collect();
    for pod in &reserved {
        let cost = eventually("the deletion cost", LOOP_WAIT, || async {
            let cost = s
                .cluster
                .kubectl_ok([
                    "get",
                    "-n",
                    s.ns.name(),
                    &format!("pod/{pod}"),
                    "-o",
                    "jsonpath={.metadata.annotations.controller\\.kubernetes\\.io/pod-deletion-cost}",
                ])
                .await;
            (cost.trim() == "1000").then_some(cost)
        })
        .await;
        assert_eq!(cost.trim(), "1000");
    }
    // Sessions move: both first pods are freed and one of the newest pods
    // is taken. Left to its own ranking the controller deletes the newest
    // pods first; only the deletion cost keeps the reserved one.
    let newest: Vec<String> = all
        .iter()
        .filter(|p| !reserved.contains(&p.0))
        .map(|p| p.0.clone())
        .collect();
    reserve(&s, &newest[0], true).await;
    for pod in &reserved {
        reserve(&s, pod, false).await;
    }
    eventually("3 replicas", LOOP_WAIT, || async {
        (replicas(s.cluster, &s.ns, "deploy/sessions").await == 3).then_some(())
    })
    .await;
    let left = eventually("the controller to delete one pod", LOOP_WAIT, || async {
        let pods = pool_pods(&s).await;
        (pods.len() == 3).then_some(pods)
    })
    .await;
    assert!(
        left.iter().any(|(name, r)| *r && *name == newest[0]),
        "the reserved pod {} was deleted: {left:?}",
        newest[0]
    );
    // And the deleted pod is really gone, not left terminating.
    eventually("the deleted pod to be gone", LOOP_WAIT, || async {
        let names = s
            .cluster
            .kubectl_ok(["get", "pods", "-n", s.ns.name(), "-o", "name"])
            .await;
        (names.lines().count() == 3).then_some(())
    })
    .await;
}

/// Two `serve` replicas: only the leader writes recommendations. SIGKILL of
/// the leader moves the writes to the other within the Lease's duration
/// plus a retry, and its first recommendation resumes the persisted trend
/// (it names the velocity strategy at once, which a blank history cannot).
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn the_leader_alone_writes_and_a_new_leader_resumes_the_trend() {
    let (url, orders) = orders_endpoint().await;
    let sources = format!(
        "sources:\n  - name: orders\n    namespaces: [\"{{ns}}\"]\n    http:\n      url: {url}/stats/{{{{name}}}}\n"
    );
    let Some(mut s) = setup("failover", Some(&sources)).await else {
        return;
    };
    let flags = [
        "--recommend-interval=1s".to_owned(),
        format!(
            "--sources={}",
            std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("sources-{}.yaml", s.ns.name()))
                .display()
        ),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let b = support::governor::Governor::start_with(s.cluster, s.ns.name(), "b", &flags).await;
    // Smoothing over 10 s with a threshold of 2.5/s: on this +5/s ramp a
    // blind recommender needs about 7 samples to pass it; one that resumed
    // the persisted trend is past it from its first.
    let recommend = r#"{"source":"orders","pointer":"/orders","targetPerPod":10,"tolerance":0,"trend":"velocity","leadSeconds":20,"smoothingSeconds":10,"velocityThreshold":2.5,"holdSeconds":0}"#;
    create(
        &s,
        &workload("Deployment", "web", 1, &[("recommend", recommend)]),
    )
    .await;
    // A steady ramp, +5 a second, for the whole test.
    let ramp = {
        let orders = orders.clone();
        tokio::spawn(async move {
            for i in 0u64.. {
                orders.value.store(100 + 5 * i, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let writes = |metrics: String| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("scale_governor_recommender_writes_total{kind=\"recommendation\",result=\"ok\"} "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    eventually("a recommendation with a trend", LOOP_WAIT, || async {
        let rec = annotation(&s, "deploy/web", "scale-governor.io/recommendation").await?;
        (rec["strategy"] == "velocity").then_some(())
    })
    .await;
    let (a_writes, b_writes) = (
        writes(s.governor.metrics().await),
        writes(b.metrics().await),
    );
    assert!(
        a_writes > 0 && b_writes == 0,
        "a (first, the leader) wrote {a_writes}, b wrote {b_writes}"
    );
    // The leader dies without a goodbye; the Service would now send the
    // apiserver's calls to b alone.
    s.governor.kill().await;
    let killed = std::time::Instant::now();
    support::governor::repoint(s.cluster, &s.ns, &b.url()).await;
    eventually(
        "b to take over and write",
        Duration::from_secs(40),
        || async { (writes(b.metrics().await) > 0).then_some(()) },
    )
    .await;
    let took = killed.elapsed();
    let rec = annotation(&s, "deploy/web", "scale-governor.io/recommendation")
        .await
        .unwrap();
    assert_eq!(
        rec["strategy"], "velocity",
        "b's first recommendation did not resume the trend: {rec}"
    );
    assert!(
        took < Duration::from_secs(15 + 10),
        "took {took:?}: Lease 15 s plus retries"
    );
    ramp.abort();
}

/// `scale-governor status` shows the workloads of a namespace with their
/// bounds, window, recommendation, source and pool.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn status_shows_what_the_loop_did() {
    let (url, _orders) = orders_endpoint().await;
    let sources = format!(
        "sources:\n  - name: orders\n    namespaces: [\"{{ns}}\"]\n    http:\n      url: {url}/stats/{{{{name}}}}\n"
    );
    let Some(s) = setup("status", Some(&sources)).await else {
        return;
    };
    let recommend = r#"{"source":"orders","pointer":"/orders","targetPerPod":5,"tolerance":0,"trend":"none","holdSeconds":0}"#;
    create(
        &s,
        &workload(
            "Deployment",
            "web",
            2,
            &[
                ("min-replicas", "2"),
                ("windows", "Mon-Sun 00:00-24:00 UTC max=40"),
                ("recommend", recommend),
            ],
        ),
    )
    .await;
    eventually("a recommendation", LOOP_WAIT, || async {
        annotation(&s, "deploy/web", "scale-governor.io/recommendation").await
    })
    .await;
    let web = status_row(&s, "web");
    assert_eq!(web["mode"], "enforce");
    assert_eq!(web["windows"][0], "Mon-Sun 00:00-24:00 UTC max=40");
    assert_eq!(web["recommendation"]["replicas"], 9);
    assert_eq!(web["recommendation"]["strategy"], "proportional");
    assert!(
        web["source"].as_str().unwrap_or("").starts_with("ok since"),
        "{web}"
    );
    assert_eq!(web["bounds"], "9..40", "{web}");
    let text = std::process::Command::new(env!("CARGO_BIN_EXE_scale-governor"))
        .args(["status", "-n", s.ns.name()])
        .env("KUBECONFIG", s.cluster.kubeconfig())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.starts_with("WORKLOAD") && text.contains("9 floor by proportional"),
        "{text}"
    );
}

/// A `target` recommendation on a workload that an HPA also scales would
/// fight it: the person who applies it sees a warning from the apiserver,
/// `status` says so, and a `floor` under the same HPA draws no warning.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn a_target_recommendation_under_an_hpa_is_warned_about() {
    let (url, _orders) = orders_endpoint().await;
    let sources = format!(
        "sources:\n  - name: orders\n    namespaces: [\"{{ns}}\"]\n    http:\n      url: {url}/stats/{{{{name}}}}\n"
    );
    let Some(s) = setup("hpafight", Some(&sources)).await else {
        return;
    };
    let hpa = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: web\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  minReplicas: 2\n  maxReplicas: 10\n  metrics:\n    - type: Resource\n      resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}\n";
    let out = apply(s.cluster, &s.ns, hpa).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = r#"{"source":"orders","pointer":"/orders","targetPerPod":5,"kind":"target"}"#;
    let floor = r#"{"source":"orders","pointer":"/orders","targetPerPod":5,"kind":"floor"}"#;
    let dry_run = |recommend: &'static str| {
        let manifest = workload("Deployment", "web", 2, &[("recommend", recommend)]);
        let s = &s;
        async move { apply_ok(s.cluster, &s.ns, &manifest, &["--dry-run=server"]).await }
    };
    // The governor learns of the HPA from its watch; ask until it has.
    let warning = eventually("a warning about the HPA", LOOP_WAIT, || async {
        let stderr = dry_run(target).await;
        stderr.contains("will fight").then_some(stderr)
    })
    .await;
    assert!(
        warning.contains("HorizontalPodAutoscaler web") && warning.contains("\"kind\":\"floor\""),
        "{warning}"
    );
    assert!(
        !dry_run(floor).await.contains("will fight"),
        "a floor under an HPA is the intended use"
    );

    create(
        &s,
        &workload("Deployment", "web", 2, &[("recommend", target)]),
    )
    .await;
    let web = status_row(&s, "web");
    assert_eq!(web["hpas"][0], "web", "{web}");
    assert!(
        web["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap_or("").contains("will fight")),
        "{web}"
    );
}

/// The `status -o json` row of one workload in the test's namespace.
fn status_row(s: &Setup, name: &str) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scale-governor"))
        .args(["status", "-n", s.ns.name(), "-o", "json"])
        .env("KUBECONFIG", s.cluster.kubeconfig())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} in status: {rows}"))
}
