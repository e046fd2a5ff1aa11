//! Reports that match what happened, checked against the real apiserver:
//! what `kubectl describe` (workload and HPA), the metrics and the Events
//! say after a clamp, a repeat, a dry run and an allowed update in deny mode.

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serial_test::{parallel, serial};

use crate::support::{
    self,
    e2e::{WAIT, create, describe, events, patch, replicas, scale, setup, setup_with, workload},
    eventually,
};

/// A deny-mode update that leaves replicas alone is allowed (with a
/// warning) even when the count is outside the policy; it is not a denial,
/// so it is neither counted nor evented as one.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
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
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
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
        // At least 3: a storage conflict makes the apiserver ask again,
        // which is one more clamp with the same numbers.
        let out = clamp_series(&s).await;
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
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
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
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
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

/// A clamp storm: 300 `/scale` requests for 40 replicas of a workload held
/// at `max-replicas` 6, as fast as the apiserver takes them. Each is
/// clamped and answered, but the governor says so once at INFO (the
/// repeats go to DEBUG and are counted) and writes the Event series a
/// bounded number of times, its count ending at every clamp.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[serial]
async fn a_clamp_storm_is_one_log_line_and_a_few_event_writes() {
    let Some(s) = setup_with("storm", &["--event-interval=2s"]).await else {
        return;
    };
    create(
        &s,
        &workload("Deployment", "web", 6, &[("max-replicas", "6")]),
    )
    .await;
    let deployments: Api<Deployment> = s.ns.api(s.cluster.client());
    let body = serde_json::json!({"spec": {"replicas": 40}});
    let started = std::time::Instant::now();
    let answered: usize = futures::stream::iter(0..STORM)
        .map(|_| {
            let (api, body) = (&deployments, &body);
            async move {
                api.patch_scale("web", &PatchParams::default(), &Patch::Merge(body))
                    .await
                    .is_ok() as usize
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .sum();
    let storm = started.elapsed();
    assert_eq!(answered, STORM);
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 6);
    // Every clamp decision is counted in the series, no more: a patch the
    // apiserver retries on a conflict is reviewed (and clamped) again.
    let clamps: usize = s
        .governor
        .metrics()
        .await
        .lines()
        .filter(|l| {
            l.starts_with("scale_governor_admission_reviews_total{")
                && l.contains("outcome=\"clamped\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as usize;
    assert!(clamps >= STORM, "{clamps} clamps");
    eventually("the series count to reach every clamp", WAIT, || async {
        let out = clamp_series(&s).await;
        let max = out
            .lines()
            .filter_map(|l| l.split('|').next()?.parse::<usize>().ok())
            .max()?;
        assert!(max <= clamps, "series count {max} above {clamps} clamps");
        (max == clamps).then_some(())
    })
    .await;
    let metrics = s.governor.metrics().await;
    let writes = metric(
        &metrics,
        "scale_governor_admission_events_total{result=\"ok\"}",
    );
    // The first clamp at once, then one write per 2 s interval at most.
    let bound = 2 + storm.as_secs_f64() as usize / 2 + 1;
    assert!(
        (1..=bound).contains(&writes),
        "{writes} Event writes for {STORM} clamps in {storm:?} (bound {bound})\n{metrics}"
    );
    let log = s.governor.log();
    let info = log
        .lines()
        .filter(|l| l.contains(" INFO ") && l.contains(s.ns.name()) && l.contains("clamped"))
        .count();
    let repeats = log
        .lines()
        .filter(|l| l.contains(" DEBUG ") && l.contains(s.ns.name()) && l.contains(" repeat"))
        .count();
    assert_eq!(
        info, 1,
        "one INFO line for one decision repeated {STORM} times"
    );
    assert!(repeats >= STORM - 1, "{repeats} DEBUG repeats");
}

/// The `ScaleClamped` Events of the namespace, oldest first, one
/// `count|note` line each.
async fn clamp_series(s: &support::e2e::Setup) -> String {
    s.cluster
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
        .await
}

/// Clamps in the storm test.
const STORM: usize = 300;

/// The value of one sample in a Prometheus text exposition.
fn metric(text: &str, series: &str) -> usize {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as usize
}
