//! A GitOps controller's server-side apply beside the real HPA.

use super::*;

/// Server-side apply of the manifest under a GitOps controller's field
/// manager, as Argo CD and Flux do.
async fn gitops_apply(sc: &Scenario, replicas: Option<u32>) -> String {
    let policy: Vec<(&str, &str)> = sc
        .annotations
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    let mut manifest = workload("Deployment", "web", replicas.unwrap_or(0), &policy);
    if replicas.is_none() {
        manifest = manifest.replace("  replicas: 0\n", "");
    }
    let flags = [
        "--server-side",
        "--force-conflicts",
        "--field-manager=argocd-controller",
    ];
    apply_ok(sc.s.cluster, &sc.s.ns, &manifest, &flags).await
}

/// A GitOps controller re-applying `replicas: 50` every 2 s is clamped to
/// `max-replicas` every time, and the object does not churn: a clamp to
/// what is stored stores nothing. With an HPA on the same Deployment the
/// two fight (every apply lands 6, the HPA takes it back to 3); with
/// `replicas` left out of the applied manifest, as docs/operations.md
/// advises, the fight stops.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn a_gitops_apply_is_clamped_without_churn_and_fights_an_hpa_unless_replicas_is_left_out() {
    let policy = [("max-replicas", "6".to_owned())];
    let Some(sc) = Scenario::start("hpagitops", &[], 6, &policy).await else {
        return;
    };
    // The GitOps controller takes the manifest over (from the client-side
    // apply that created it: that drops kubectl's last-applied annotation,
    // and a Deployment's generation moves with its annotations).
    gitops_apply(&sc, Some(50)).await;
    let recorder = sc.record();
    // Alone: clamped every time, stored never.
    for _ in 0..3 {
        let warning = gitops_apply(&sc, Some(50)).await;
        assert!(
            warning.contains("max-replicas 6: asked 50, allowed 6"),
            "{warning}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let alone = recorder.finish(&sc.metric, TARGET as f64).await;
    assert_eq!(alone.sequence(), [6]);
    assert_eq!(
        alone.generations(),
        0,
        "a clamp to the stored count stores nothing"
    );

    // Beside an HPA that wants 3: every apply is a round of the fight.
    let recorder = sc.record();
    sc.metric.set(300);
    sc.hpa(DOWN).await;
    sc.until(&recorder, 3, "the HPA to settle at 3").await;
    for _ in 0..3 {
        gitops_apply(&sc, Some(50)).await;
        sc.until(&recorder, 3, "the HPA to take it back to 3").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let fight = recorder.finish(&sc.metric, TARGET as f64).await;
    assert_eq!(fight.sequence(), [6, 3, 6, 3, 6, 3, 6, 3]);
    assert!(
        fight.generations() >= 7,
        "{} spec changes",
        fight.generations()
    );

    // Replicas left out of Git: the same applies change nothing.
    let recorder = sc.record();
    for _ in 0..3 {
        let warning = gitops_apply(&sc, None).await;
        assert!(!warning.contains("asked"), "{warning}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let peace = recorder.finish(&sc.metric, TARGET as f64).await;
    assert_eq!(peace.sequence(), [3]);
    assert_eq!(peace.generations(), 0);
    sc.conclude(
        fight,
        "gitops-fight",
        "A GitOps apply of replicas: 50 every few seconds beside an HPA that wants 3",
        false,
    );
}

/// The trap on the way out: replicas dropped from a manifest whose applier
/// was the field's only owner are reset by the apiserver to the default, 1.
/// A policy's `min-replicas` turns that reset into a clamp.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn replicas_dropped_from_git_fall_to_one_unless_the_policy_holds_them() {
    let policy = [("min-replicas", "3".to_owned())];
    let Some(sc) = Scenario::start("gitopsdrop", &[], 5, &policy).await else {
        return;
    };
    gitops_apply(&sc, Some(5)).await;
    let warning = gitops_apply(&sc, None).await;
    assert!(
        warning.contains("min-replicas 3: asked 1, allowed 3"),
        "the reset to 1 reaches the governor as a request for 1: {warning}"
    );
    let replicas =
        sc.s.cluster
            .kubectl_ok([
                "get",
                "-n",
                sc.s.ns.name(),
                "deploy/web",
                "-o",
                "jsonpath={.spec.replicas}",
            ])
            .await;
    assert_eq!(replicas.trim(), "3");
}
