//! Reports that match what happened, checked against the real apiserver:
//! what `kubectl describe` (workload and HPA), the metrics and the Events
//! say after a clamp, a repeat, a dry run and an allowed update in deny mode.

mod support;

use support::{
    e2e::{WAIT, create, describe, events, patch, replicas, scale, setup, workload},
    eventually,
};

/// A deny-mode update that leaves replicas alone is allowed (with a
/// warning) even when the count is outside the policy; it is not a denial,
/// so it is neither counted nor evented as one.
#[tokio::test]
async fn an_allowed_update_in_deny_mode_is_not_reported_as_a_denial() {
    let Some(s) = setup("denyok").await else {
        return;
    };
    create(
        &s,
        &workload(
            "Deployment",
            "web",
            10,
            &[("mode", "deny"), ("max-replicas", "20")],
        ),
    )
    .await;
    let (ok, e) = patch(
        &s,
        "deploy/web",
        r#"{"metadata":{"annotations":{"scale-governor.io/max-replicas":"5"}}}"#,
        &[],
    )
    .await;
    assert!(
        ok && e.contains("allowed because this update does not change them"),
        "{e}"
    );
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 10);
    let metrics = s.governor.metrics().await;
    assert!(!metrics.contains("outcome=\"denied\""), "{metrics}");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(events(&s, "ScaleDenied").await.trim().is_empty());
}

/// Repeated clamps fold into one series per rule whose message and count
/// are current: an Event's note cannot change, so new numbers start a new
/// Event that carries the count on, and the same numbers bump it.
#[tokio::test]
async fn a_folded_event_series_shows_the_latest_numbers_and_count() {
    let Some(s) = setup("series").await else {
        return;
    };
    create(
        &s,
        &workload("Deployment", "web", 10, &[("scale-up", "4 pods/60s")]),
    )
    .await;
    for _ in 0..3 {
        let (ok, e) = scale(s.cluster, &s.ns, "deploy/web", 40, &[]).await;
        assert!(ok, "{e}");
    }
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 14);
    let latest = eventually("the series to count every clamp", WAIT, || async {
        let out = s
            .cluster
            .kubectl_ok([
                "get",
                "events.v1.events.k8s.io",
                "-n",
                s.ns.name(),
                "--field-selector=reason=ScaleClamped",
                "--sort-by=.eventTime",
                "-o",
                "jsonpath={range .items[*]}{.series.count}|{.note}{\"\\n\"}{end}",
            ])
            .await;
        // At least 3: a storage conflict makes the apiserver ask again,
        // which is one more clamp with the same numbers.
        let last = out.lines().last().unwrap_or_default().to_owned();
        let count: u32 = last.split('|').next()?.parse().ok()?;
        (count >= 3).then_some(last)
    })
    .await;
    assert!(
        latest.ends_with("budget spent: 10 at period start)"),
        "the newest Event of the series must carry the latest numbers: {latest}"
    );
}

/// A dry run is answered like the real request, but counted apart: it
/// decides nothing that lands.
#[tokio::test]
async fn dry_runs_are_counted_apart_from_decisions() {
    let Some(s) = setup("dryrunmetric").await else {
        return;
    };
    create(
        &s,
        &workload("Deployment", "web", 2, &[("max-replicas", "5")]),
    )
    .await;
    let (ok, e) = scale(s.cluster, &s.ns, "deploy/web", 50, &["--dry-run=server"]).await;
    assert!(ok && e.contains("allowed 5"), "{e}");
    let metrics = s.governor.metrics().await;
    assert!(
        metrics.contains("operation=\"SCALE\",outcome=\"dry-run\""),
        "{metrics}"
    );
    assert!(!metrics.contains("outcome=\"clamped\""), "{metrics}");
}

/// `kubectl describe hpa` tells the truth: a clamp of the HPA's target is
/// explained on the HPA as well as on the workload.
#[tokio::test]
async fn the_hpa_that_targets_a_workload_gets_the_event_too() {
    let Some(s) = setup("hpaevent").await else {
        return;
    };
    create(
        &s,
        &workload("Deployment", "web", 2, &[("max-replicas", "6")]),
    )
    .await;
    let hpa = format!(
        r#"{{"apiVersion":"autoscaling/v2","kind":"HorizontalPodAutoscaler","metadata":{{"name":"web","namespace":"{}"}},
            "spec":{{"scaleTargetRef":{{"apiVersion":"apps/v1","kind":"Deployment","name":"web"}},"minReplicas":1,"maxReplicas":30,
                     "metrics":[{{"type":"External","external":{{"metric":{{"name":"queue"}},"target":{{"type":"AverageValue","averageValue":"1"}}}}}}]}}}}"#,
        s.ns.name()
    );
    let path = std::env::temp_dir().join(format!("{}-hpa.json", s.ns.name()));
    std::fs::write(&path, hpa).unwrap();
    s.cluster
        .kubectl_ok(["apply", "-f", path.to_str().unwrap()])
        .await;
    // The governor's HPA watch needs a moment to see it.
    let text = eventually("the Event on the HPA", WAIT, || async {
        let (ok, e) = scale(s.cluster, &s.ns, "deploy/web", 10, &[]).await;
        assert!(ok, "{e}");
        let text = describe(s.cluster, &s.ns, "hpa/web").await;
        text.contains("ScaleClamped").then_some(text)
    })
    .await;
    assert!(
        text.contains("Deployment web: admin asked 10 replicas")
            && text.contains("max-replicas 6: asked 10, allowed 6"),
        "{text}"
    );
}
