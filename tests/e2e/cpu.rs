//! A real HPA on CPU `Utilization` (metrics-server, reading the usage kwok
//! emulates from each pod's `kwok.x-k8s.io/usage-cpu` annotation) under
//! the governor, on pods that really start: Running at once, Ready after a
//! start-up delay, so the HPA counts unready pods as it does in a real
//! cluster. A usage spike is paced by the governor's rate rule, and when
//! the usage falls the loop's recommendation floor holds the HPA up.

use std::time::{Duration, Instant};

use k8s_openapi::api::{apps::v1::Deployment, autoscaling::v2::HorizontalPodAutoscaler};
use kube::Api;
use serial_test::parallel;

use crate::support::{
    e2e::{Setup, create, events, setup_with},
    eventually,
};

/// What the test waits for at most: metrics-server scrapes every 10 s and
/// a new pod's CPU shows after two scrapes.
const LONG: Duration = Duration::from_secs(180);
/// The rule under test.
const STEP: u32 = 2;
const PERIOD: Duration = Duration::from_secs(15);
/// The loop's floor: a warm pool of 3 ready pods and none reserved.
const FLOOR: u32 = 3;

#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn a_cpu_hpa_on_real_pods_is_paced_by_the_rate_rule_and_held_up_by_the_floor() {
    let Some(s) = setup_with("cpu", &["--recommend-interval=1s"]).await else {
        return;
    };
    let cluster = s.cluster;
    if cluster.env("PODS") == Some("0") {
        eprintln!("SKIPPED: the cluster runs no pods (cluster.sh --no-pods)");
        return;
    }
    create(&s, &manifest()).await;
    apply_hpa(&s).await;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), s.ns.name());
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(cluster.client(), s.ns.name());
    let replicas = || async {
        deployments
            .get("api")
            .await
            .ok()
            .and_then(|d| d.spec?.replicas)
            .unwrap_or(0) as u32
    };

    // The loop raises 2 to the floor; the HPA sees 40% of the request and
    // leaves it there.
    eventually("the floor of 3", LONG, || async {
        (replicas().await == FLOOR).then_some(())
    })
    .await;
    eventually("the HPA to read CPU from metrics-server", LONG, || async {
        let hpa = hpas.get("api").await.ok()?;
        let metrics = hpa.status?.current_metrics?;
        metrics
            .first()?
            .resource
            .as_ref()?
            .current
            .average_utilization
    })
    .await;

    // A spike: every pod at 200% of its request. The HPA asks for up to
    // 10 at once; the governor lets 2 more through per 15 s.
    set_usage(&s, "200m").await;
    let mut seen: Vec<(Instant, u32)> = vec![(Instant::now(), replicas().await)];
    let deadline = Instant::now() + LONG;
    while seen.last().is_some_and(|(_, r)| *r < 7) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = replicas().await;
        if seen.last().map(|(_, r)| *r) != Some(now) {
            seen.push((Instant::now(), now));
            // New pods start with the template's usage: the spike stays.
            set_usage(&s, "200m").await;
        }
    }
    let steps: Vec<u32> = seen.iter().map(|(_, r)| *r).collect();
    eprintln!("cpu: replicas under the spike {steps:?}");
    assert!(
        steps.last().is_some_and(|r| *r >= 7),
        "the HPA did not scale up under the spike: {steps:?}"
    );
    for (i, (at, r)) in seen.iter().enumerate() {
        // What was stored a period earlier, with a second of slack for
        // the test's polling: the most the rule allows is that plus STEP.
        let before = seen[..=i]
            .iter()
            .rev()
            .find(|(t, _)| at.duration_since(*t) + Duration::from_secs(1) >= PERIOD)
            .map_or(seen[0].1, |(_, r)| *r);
        assert!(
            *r <= before + STEP,
            "`scale-up: {STEP} pods/15s` exceeded: {r} with {before} a period before, in {steps:?}"
        );
    }
    let clamped = events(&s, "ScaleClamped").await;
    assert!(clamped.contains("scale-up 2 pods/15s"), "{clamped}");

    // The usage falls to nothing: the HPA would go to its minimum of 2;
    // the recommendation floor holds it at 3.
    set_usage(&s, "1m").await;
    eventually("the HPA to come down to the floor", LONG, || async {
        (replicas().await == FLOOR).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(replicas().await, FLOOR, "the floor let the HPA below it");
}

/// `api`: pods request 100m of CPU and use 40m (kwok), and take 3 s from
/// Running to Ready; the governor allows 2 more pods per 15 s and keeps a
/// warm pool of 3 ready pods as a floor under the HPA.
fn manifest() -> String {
    let pool = r#"{"source":"pods","warmPool":{"reserved":"example.com/reserved","targetReady":3},"holdSeconds":0}"#;
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  labels: {{app: api, scale-governor.io/governed: "true"}}
  annotations:
    scale-governor.io/scale-up: "{STEP} pods/15s"
    scale-governor.io/recommend: '{pool}'
spec:
  replicas: 2
  selector:
    matchLabels: {{app: api}}
  template:
    metadata:
      labels: {{app: api, scale-governor.io/warm-pool: api}}
      annotations:
        kwok.x-k8s.io/usage-cpu: 40m
        pod-ready.stage.kwok.x-k8s.io/delay: 3s
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: app
        image: registry.k8s.io/pause:3.10
        resources: {{requests: {{cpu: 100m}}}}
"#
    )
}

async fn apply_hpa(s: &Setup) {
    let hpa = r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: api}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: api}
  minReplicas: 2
  maxReplicas: 10
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
  behavior:
    scaleDown: {stabilizationWindowSeconds: 0}
"#;
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("hpa-{}.yaml", s.ns.name()));
    std::fs::write(&path, hpa).unwrap();
    s.cluster
        .kubectl_ok(["apply", "-n", s.ns.name(), "-f", path.to_str().unwrap()])
        .await;
}

/// Every pod of `api` uses `cpu` from now on.
async fn set_usage(s: &Setup, cpu: &str) {
    let _ = s
        .cluster
        .kubectl([
            "annotate",
            "--overwrite",
            "-n",
            s.ns.name(),
            "pods",
            "-l",
            "app=api",
            &format!("kwok.x-k8s.io/usage-cpu={cpu}"),
        ])
        .await;
}
