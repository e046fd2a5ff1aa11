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
