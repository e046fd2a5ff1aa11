//! The guard's holes, tried against the real apiserver the way a careless
//! operator and a hostile user would: scale to zero, writes that never land,
//! policies loosened in the same request, bodies at the size limit.

mod support;

use support::{
    e2e::{WAIT, create, describe, replicas, scale, setup, workload},
    eventually,
};

/// `autoscaling/v1` `Scale.spec.replicas` is `omitempty`: a scale to 0 reaches
/// the webhook as `"spec": {}`. It must be read as 0, not as the 1 a
/// Deployment defaults to.
#[tokio::test]
async fn scale_to_zero_respects_min_replicas_in_every_mode() {
    let Some(s) = setup("zero").await else { return };
    create(
        &s,
        &workload("Deployment", "web", 3, &[("min-replicas", "1")]),
    )
    .await;
    let (ok, stderr) = scale(s.cluster, &s.ns, "deploy/web", 0, &[]).await;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("min-replicas 1: asked 0, allowed 1"),
        "no clamp warning: {stderr}"
    );
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 1);

    create(
        &s,
        &workload(
            "Deployment",
            "api",
            3,
            &[("mode", "deny"), ("min-replicas", "1")],
        ),
    )
    .await;
    let (ok, stderr) = scale(s.cluster, &s.ns, "deploy/api", 0, &[]).await;
    assert!(!ok, "deny mode let a scale to 0 through");
    assert!(
        stderr.contains("min-replicas 1: asked 0, allowed 1"),
        "{stderr}"
    );
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/api").await, 3);
}

/// A Scale *from* 0 starts from 0: the rate budget and the Event say so.
#[tokio::test]
async fn scale_from_zero_counts_from_zero() {
    let Some(s) = setup("fromzero").await else {
        return;
    };
    create(
        &s,
        &workload("Deployment", "web", 0, &[("scale-up", "2 pods/60s")]),
    )
    .await;
    let (ok, stderr) = scale(s.cluster, &s.ns, "deploy/web", 10, &[]).await;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("scale-up 2 pods/60s: asked 10, allowed 2 (0 at period start)"),
        "{stderr}"
    );
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 2);
    let text = eventually("the ScaleClamped Event", WAIT, || async {
        let text = describe(s.cluster, &s.ns, "deploy/web").await;
        text.contains("ScaleClamped").then_some(text)
    })
    .await;
    assert!(text.contains("asked 10 replicas (current 0)"), "{text}");
}

/// `kubectl create` of a workload that already exists is admitted, then
/// refused with AlreadyExists. It must leave no trace on the existing
/// workload: a clamped create counted as a scale-down would free budget.
#[tokio::test]
async fn a_create_that_fails_with_already_exists_spends_and_frees_nothing() {
    let Some(s) = setup("exists").await else {
        return;
    };
    let policy = [("max-replicas", "20"), ("scale-up", "4 pods/60s")];
    create(&s, &workload("Deployment", "web", 3, &policy)).await;
    let (ok, e) = scale(s.cluster, &s.ns, "deploy/web", 7, &[]).await;
    assert!(ok, "{e}");
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 7);

    let again = workload("Deployment", "web", 100, &policy);
    let path = std::env::temp_dir().join(format!("{}-again.yaml", s.ns.name()));
    std::fs::write(&path, again).unwrap();
    let out = s
        .cluster
        .kubectl(["create", "-n", s.ns.name(), "-f", path.to_str().unwrap()])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("AlreadyExists"),
        "{stderr}"
    );

    let (ok, e) = scale(s.cluster, &s.ns, "deploy/web", 10, &[]).await;
    assert!(
        ok && e.contains("budget spent"),
        "the failed create freed budget: {e}"
    );
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 7);
}

/// A governed CREATE that the apiserver refuses after the mutating webhook
/// (here: a selector that does not match the template) never existed: no
/// workload stays in the cache, and nothing tries to write its history.
#[tokio::test]
async fn a_create_the_apiserver_refuses_leaves_no_phantom_workload() {
    let Some(s) = setup("phantom").await else {
        return;
    };
    // One good workload first, so the webhook is known to be in the path.
    create(&s, &workload("Deployment", "web", 1, &[])).await;
    let broken = workload("Deployment", "broken", 100, &[("max-replicas", "20")])
        .replace("matchLabels: {app: broken}", "matchLabels: {app: other}");
    let out = support::e2e::apply(s.cluster, &s.ns, &broken).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("selector"),
        "{stderr}"
    );
    // Long enough for a sweep and several persist ticks.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let metrics = s.governor.metrics().await;
    let gauge = metrics
        .lines()
        .find(|l| l.starts_with("scale_governor_cache_workloads{kind=\"deployments\"}"))
        .unwrap_or_default()
        .to_owned();
    assert!(gauge.ends_with(" 1"), "phantom in the cache: {gauge}");
    assert!(
        !metrics.contains("scale_governor_cache_history_writes_total{result=\"error\"}"),
        "history writes for a workload that does not exist:\n{metrics}"
    );
}

/// An UPDATE review carries object and oldObject. A Deployment whose create
/// request was 2.5 MB of JSON (control characters, which JSON escapes
/// six-fold while etcd stores them raw) makes a 5 MB review; refusing it
/// with 413 would block every write to it under `failurePolicy: Fail`.
#[tokio::test]
async fn a_review_twice_the_apiserver_request_size_is_answered() {
    let Some(s) = setup("large").await else {
        return;
    };
    create(&s, &workload("Deployment", "probe", 1, &[])).await;
    let value: String = "\u{1}".repeat(420_000);
    let manifest = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "big", "labels": {"app": "big", "scale-governor.io/governed": "true"},
                     "annotations": {"scale-governor.io/max-replicas": "5"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "big"}},
                 "template": {"metadata": {"labels": {"app": "big"}},
                              "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                                                       "env": [{"name": "BLOB", "value": value}]}]}}}
    });
    let text = serde_json::to_string(&manifest).unwrap();
    assert!(text.len() > 2_500_000, "{} bytes", text.len());
    let path = std::env::temp_dir().join(format!("{}-big.json", s.ns.name()));
    std::fs::write(&path, &text).unwrap();
    let out = s
        .cluster
        .kubectl(["create", "-n", s.ns.name(), "-f", path.to_str().unwrap()])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s
        .cluster
        .kubectl([
            "patch",
            "-n",
            s.ns.name(),
            "deploy/big",
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":50}}"#,
        ])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("max-replicas 5: asked 50, allowed 5"),
        "{stderr}"
    );
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/big").await, 5);
}
