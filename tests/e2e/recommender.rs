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

mod leader;
mod prometheus;
mod warm_pool;

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
