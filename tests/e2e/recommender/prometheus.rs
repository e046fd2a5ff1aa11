//! The loop on a real Prometheus: a ramp met ahead, a stated risk scored
//! on kwok's pods, and a metric gone missing.

use super::*;

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
