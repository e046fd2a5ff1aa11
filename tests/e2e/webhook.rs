//! End to end against the real local control plane: the apiserver calls the
//! real `scale-governor serve` for kubectl's writes, and we check what lands.

use serial_test::parallel;

use crate::support::{
    e2e::{WAIT, apply, create, describe, patch, replicas, scale, setup, workload},
    eventually,
    governor::{self, Governor},
};

#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn enforce_clamps_kubectl_scale_and_explains_it() {
    let Some(s) = setup("enforce").await else {
        return;
    };
    create(
        &s,
        &workload("Deployment", "web", 2, &[("max-replicas", "20")]),
    )
    .await;
    let (ok, stderr) = scale(s.cluster, &s.ns, "deploy/web", 100, &[]).await;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("Warning: scale-governor: max-replicas 20: asked 100, allowed 20"),
        "{stderr}"
    );
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 20);
    let text = eventually("the ScaleClamped Event", WAIT, || async {
        let text = describe(s.cluster, &s.ns, "deploy/web").await;
        text.contains("ScaleClamped").then_some(text)
    })
    .await;
    assert!(
        text.contains("asked 100 replicas (current 2): max-replicas 20: asked 100, allowed 20"),
        "{text}"
    );
    // At least one clamp: after a storage conflict the apiserver asks again.
    let metrics = s.governor.metrics().await;
    assert!(
        metrics.contains("operation=\"SCALE\",outcome=\"clamped\",rule=\"max-replicas\"} "),
        "{metrics}"
    );
    // And the log line, with the rule and the numbers.
    let log = s.governor.log();
    assert!(
        log.lines().any(|l| l.contains("clamped")
            && l.contains("max-replicas")
            && l.contains("requested=100")
            && l.contains("replicas=20")),
        "no log line for the clamp:\n{log}"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn deny_mode_refuses_with_the_rule() {
    let Some(s) = setup("deny").await else { return };
    create(
        &s,
        &workload(
            "Deployment",
            "web",
            2,
            &[("mode", "deny"), ("max-replicas", "20")],
        ),
    )
    .await;
    let (ok, stderr) = scale(s.cluster, &s.ns, "deploy/web", 100, &[]).await;
    assert!(!ok, "deny mode let the scale through");
    assert!(
        stderr
            .contains("denied the request: scale-governor: max-replicas 20: asked 100, allowed 20"),
        "{stderr}"
    );
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 2);
    eventually("the ScaleDenied Event", WAIT, || async {
        describe(s.cluster, &s.ns, "deploy/web")
            .await
            .contains("ScaleDenied")
            .then_some(())
    })
    .await;
}

/// KEDA scales a workload to 0 and, on activation, asks for 1: in deny
/// mode under `min-replicas: "2"` that step toward the floor is allowed
/// with a Warning (else the workload would stay at 0, below its own floor,
/// for good), the next step reaches the floor, and a step away is refused.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn deny_mode_lets_a_step_toward_the_floor_through_and_refuses_one_away() {
    let Some(s) = setup("deny-steps").await else {
        return;
    };
    // At 0 the deny policy itself would refuse the create: it is made in
    // mode off and switched to deny, as a policy added to a scaled-in
    // workload would be.
    create(
        &s,
        &workload(
            "Deployment",
            "worker",
            0,
            &[("mode", "off"), ("min-replicas", "2")],
        ),
    )
    .await;
    let (ok, stderr) = patch(
        &s,
        "deploy/worker",
        r#"{"metadata":{"annotations":{"scale-governor.io/mode":"deny"}}}"#,
        &[],
    )
    .await;
    assert!(ok, "{stderr}");
    eventually("the deny policy in the cache", WAIT, || async {
        let (ok, _) = scale(s.cluster, &s.ns, "deploy/worker", 0, &["--dry-run=server"]).await;
        let (_, err) = scale(s.cluster, &s.ns, "deploy/worker", 1, &["--dry-run=server"]).await;
        (ok && err.contains("allowed as a step toward it")).then_some(())
    })
    .await;
    assert_eq!(
        replicas(s.cluster, &s.ns, "deploy/worker").await,
        0,
        "dry runs"
    );

    let (ok, stderr) = scale(s.cluster, &s.ns, "deploy/worker", 1, &[]).await;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(
            "Warning: scale-governor: min-replicas 2: asked 1 (current 0), still below the floor 2; allowed as a step toward it"
        ),
        "{stderr}"
    );
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/worker").await, 1);
    let (ok, stderr) = scale(s.cluster, &s.ns, "deploy/worker", 2, &[]).await;
    assert!(ok && !stderr.contains("Warning"), "{stderr}");
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/worker").await, 2);
    let (ok, stderr) = scale(s.cluster, &s.ns, "deploy/worker", 1, &[]).await;
    assert!(!ok, "a step away from the floor was let through");
    assert!(
        stderr.contains("denied the request: scale-governor: min-replicas 2: asked 1, allowed 2"),
        "{stderr}"
    );
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/worker").await, 2);
    let text = eventually("the ScaleStepped and ScaleDenied Events", WAIT, || async {
        let text = describe(s.cluster, &s.ns, "deploy/worker").await;
        (text.contains("ScaleStepped") && text.contains("ScaleDenied")).then_some(text)
    })
    .await;
    assert!(text.contains("asked 1 (current 0)"), "{text}");
    let metrics = s.governor.metrics().await;
    assert!(
        metrics.contains(r#"operation="SCALE",outcome="stepped",rule="min-replicas""#),
        "{metrics}"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn malformed_policy_is_rejected_and_dry_run_leaves_no_trace() {
    let Some(s) = setup("dryrun").await else {
        return;
    };
    let bad = workload(
        "Deployment",
        "bad",
        1,
        &[("windows", "Mon-Fry 08:00-20:00 Europe/Berlin min=2")],
    );
    let out = eventually("the validating webhook to answer", WAIT, || async {
        let out = apply(s.cluster, &s.ns, &bad).await;
        (!out.status.success()).then_some(out)
    })
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("scale-governor: invalid policy: scale-governor.io/windows: at \"Fry\" (column 5): unknown weekday \"Fry\", expected Mon..Sun"),
        "{stderr}"
    );

    create(
        &s,
        &workload("Deployment", "web", 10, &[("scale-up", "4 pods/60s")]),
    )
    .await;
    for _ in 0..3 {
        let (ok, stderr) = scale(s.cluster, &s.ns, "deploy/web", 40, &["--dry-run=server"]).await;
        assert!(ok && stderr.contains("allowed 14"), "{stderr}");
    }
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 10);
    // The full budget is still there: 10 + 4.
    let (ok, stderr) = scale(s.cluster, &s.ns, "deploy/web", 40, &[]).await;
    assert!(ok, "{stderr}");
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 14);
    let text = eventually("one ScaleClamped Event", WAIT, || async {
        let text = describe(s.cluster, &s.ns, "deploy/web").await;
        text.contains("ScaleClamped").then_some(text)
    })
    .await;
    assert_eq!(
        text.matches("ScaleClamped").count(),
        1,
        "dry runs left Events:\n{text}"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn rate_limit_spans_actors_and_survives_a_restart() {
    let Some(mut s) = setup("rate").await else {
        return;
    };
    // Without the aggregation controller the built-in "edit" role is empty.
    let role = [
        "create",
        "role",
        "scaler",
        "--verb=get,list,patch,update",
        "--resource=deployments,deployments/scale",
        "-n",
        s.ns.name(),
    ];
    s.cluster.kubectl_ok(role).await;
    s.cluster
        .kubectl_ok([
            "create",
            "rolebinding",
            "bob-scaler",
            "--role=scaler",
            "--user=bob",
            "-n",
            s.ns.name(),
        ])
        .await;
    create(
        &s,
        &workload("Deployment", "web", 2, &[("scale-up", "4 pods/60s")]),
    )
    .await;
    // Three quick steps by two users: +2, then +4 capped at 6, then nothing left.
    let (ok, e) = scale(s.cluster, &s.ns, "deploy/web", 4, &[]).await;
    assert!(ok, "{e}");
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 4);
    let (ok, e) = scale(s.cluster, &s.ns, "deploy/web", 8, &["--as=bob"]).await;
    assert!(
        ok && e.contains("scale-up 4 pods/60s: asked 8, allowed 6 (2 at period start)"),
        "{e}"
    );
    let (ok, e) = scale(s.cluster, &s.ns, "deploy/web", 10, &[]).await;
    assert!(ok && e.contains("budget spent"), "{e}");
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 6);

    // The ledger object holds what landed; then every replica dies at once.
    eventually("the ledger object", WAIT, || async {
        let history = s
            .cluster
            .kubectl_ok([
                "get",
                "configmaps",
                "-n",
                s.ns.name(),
                "-l",
                "scale-governor.io/ledger",
                "-o",
                "jsonpath={.items[*].data.ledger}",
            ])
            .await;
        (history.contains("\"bob\"") && history.matches('[').count() >= 3).then_some(())
    })
    .await;
    s.governor.restart().await;
    let (ok, e) = scale(s.cluster, &s.ns, "deploy/web", 12, &["--as=bob"]).await;
    assert!(ok && e.contains("budget spent"), "after restart: {e}");
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 6);
}

#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn statefulset_scale_is_governed_the_same_way() {
    let Some(s) = setup("sts").await else { return };
    create(
        &s,
        &workload("StatefulSet", "db", 1, &[("max-replicas", "3")]),
    )
    .await;
    let (ok, stderr) = scale(s.cluster, &s.ns, "statefulset/db", 10, &[]).await;
    assert!(
        ok && stderr.contains("max-replicas 3: asked 10, allowed 3"),
        "{stderr}"
    );
    assert_eq!(replicas(s.cluster, &s.ns, "statefulset/db").await, 3);
}

#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn two_replicas_share_one_budget() {
    let Some(s) = setup("replicas").await else {
        return;
    };
    let b = Governor::start(s.cluster, s.ns.name(), "b").await;
    create(
        &s,
        &workload("Deployment", "web", 2, &[("scale-up", "4 pods/60s")]),
    )
    .await;
    let (ok, e) = scale(s.cluster, &s.ns, "deploy/web", 6, &[]).await;
    assert!(ok, "{e}");
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 6);

    // Send the next request to replica b, which admitted nothing itself.
    governor::repoint(s.cluster, &s.ns, &b.url()).await;
    let probe = workload("Deployment", "probe", 1, &[]);
    eventually("the apiserver to call replica b", WAIT, || async {
        let before = b.reviews().await;
        apply(
            s.cluster,
            &s.ns,
            &probe.replace("replicas: 1", &format!("replicas: {}", 1 + before % 2)),
        )
        .await;
        (b.reviews().await > before).then_some(())
    })
    .await;
    let (ok, e) = scale(s.cluster, &s.ns, "deploy/web", 20, &[]).await;
    assert!(
        ok && e.contains("budget spent"),
        "replica b did not see a's change: {e}"
    );
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 6);
}
