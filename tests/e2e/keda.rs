//! KEDA under the governor, end to end: KEDA v2.20.2's real operator and
//! metrics adapter (`support::keda`, on a control plane of their own, since
//! KEDA's adapter owns the cluster's one External metrics APIService) scale
//! a governed Deployment. KEDA writes `/scale` two ways, and the governor
//! sees both: its operator as `keda-operator` (activation `0 → 1`,
//! deactivation to 0, paused replicas), and the HPA it creates,
//! `keda-hpa-<name>`, as the HPA controller.
//!
//! Each scenario asserts the replica sequence and writes its timeline
//! (`target/e2e-timelines/<name>.{csv,svg}`), as `tests/e2e/hpa.rs` does;
//! docs/hpa.md shows the charts. They are not replayed through the
//! simulator, which does not model KEDA's operator. Every test is
//! `#[serial]`: the second control plane and KEDA are heavy, and the
//! scenarios hang on KEDA's one-second polling.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serial_test::serial;

use crate::support::{
    e2e::{patch, replicas, scale},
    eventually,
    keda::{self, OPERATOR, ScaledObject, Source},
    timeline::{Recorder, Review},
};

mod scenario;

use scenario::{STEP, Scenario, minute_of};

/// A cron ScaledObject asks for 8 while a governor window says `max=3`:
/// KEDA's HPA reaches 8 before the window, the governor's loop lowers
/// `web` to 3 when it opens, every write the HPA makes for 8 meanwhile is
/// clamped to 3 (one a sync, no stored change, no `FailedRescale`, and the
/// operator never joins in), and the HPA's first write after the window's
/// end lands 8. The Events and `status` name KEDA's HPA.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[serial]
async fn a_cron_scaled_object_is_held_at_a_windows_max_without_a_write_storm_and_released_after() {
    let start = DateTime::<Utc>::from_timestamp(Utc::now().timestamp() + 16, 0).unwrap();
    let end = start + chrono::Duration::seconds(15);
    let stamp = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let window = format!("{}/{} UTC max=3", stamp(start), stamp(end));
    let flags = ["--recommend-interval=1s"];
    let Some(sc) = Scenario::start("kedacron", &flags, 2, &[("windows", &window)]).await else {
        return;
    };
    let recorder = sc.record();
    // Active from this minute (its next start is tomorrow) until the
    // minute three from now: longer than the scenario.
    let now = Utc::now();
    let trigger = keda::cron(
        &minute_of(now),
        &minute_of(now + chrono::Duration::minutes(3)),
        8,
    );
    sc.scaled_object(&ScaledObject {
        target: "web",
        min: 1,
        max: 10,
        polling: 1,
        cooldown: 5,
        trigger,
        annotations: Vec::new(),
    })
    .await;
    sc.until(&recorder, 8, "KEDA's HPA to reach the cron's 8")
        .await;
    assert!(
        Utc::now() < start,
        "KEDA must reach 8 before the window opens"
    );
    sc.until(&recorder, 3, "the window to cap web at 3").await;
    let capped = Utc::now();
    sc.until(&recorder, 8, "KEDA's HPA to get 8 back after the window")
        .await;
    let timeline = recorder.finish_read(1.0).await;
    assert_eq!(timeline.sequence(), [2, 8, 3, 8]);

    let held: Vec<&Review> = timeline
        .reviews
        .iter()
        .filter(|r| r.at > capped && r.at < end)
        .collect();
    assert!(
        !held.is_empty()
            && held.iter().all(|r| r.by_hpa()
                && r.asked == 8
                && r.granted == 3
                && r.message.contains("max=3")),
        "while held, only KEDA's HPA writes, and each write is clamped: {held:#?}"
    );
    // One write a sync (1 s here), not a storm.
    let seconds = (end - capped).num_seconds();
    assert!(
        held.len() as i64 <= seconds + 2,
        "{} writes in {seconds} s",
        held.len()
    );
    let generations: Vec<i64> = timeline
        .samples
        .iter()
        .filter(|s| s.at > capped && s.at < end)
        .map(|s| s.generation)
        .collect();
    assert!(
        generations.windows(2).all(|g| g[0] == g[1]),
        "a clamp to the stored count stores nothing: generations {generations:?}"
    );
    let released = timeline
        .reviews
        .iter()
        .find(|r| r.granted == 8 && r.at > capped)
        .unwrap();
    assert!(released.by_hpa() && released.at >= end, "{released:?}");

    let hpa = keda::hpa_name("web");
    assert_eq!(
        sc.events("HorizontalPodAutoscaler", "FailedRescale")
            .await
            .trim(),
        ""
    );
    let clamped = sc.events("HorizontalPodAutoscaler", "ScaleClamped").await;
    assert!(
        clamped.lines().count() == 1
            && clamped.contains(&format!(
                "{hpa}: Deployment web: hpa/{hpa} (system:kube-controller-manager) asked 8 replicas (current 3)"
            )),
        "one Event series on KEDA's HPA, naming it:\n{clamped}"
    );
    let status = sc.status().await;
    assert_eq!(status["hpas"], serde_json::json!([hpa]), "{status}");
    assert!(
        status["lastChanges"][0]
            .as_str()
            .unwrap_or("")
            .ends_with(&format!("hpa/{hpa} (system:kube-controller-manager) 3->8")),
        "{status}"
    );
    sc.conclude(
        timeline,
        "keda-cron-window",
        "A KEDA cron asking for 8 under a time window's max=3",
    );
}

/// `web` at 0 under `min-replicas: "2"` in `mode`, with a `metrics-api`
/// ScaledObject (`minReplicaCount: 0`) on a value the test sets, still 0.
/// In enforce mode nothing leaves a workload below its floor: a create, or
/// a policy edit that tightens, is clamped at once, and the loop lifts it.
/// So `web` is created in mode `off` and switched to `mode` together with a
/// `suspend-until` a few seconds ahead, as if KEDA had scaled it to 0
/// during a break-glass suspension, and the suspension runs out.
async fn at_zero_under_a_floor(mode: &str, prefix: &str) -> Option<(Scenario, Recorder, Source)> {
    // The loop would lift `web` to the floor itself in enforce mode; a long
    // interval leaves the first move to KEDA.
    let flags = ["--recommend-interval=10m"];
    let policy = [("mode", "off"), ("min-replicas", "2")];
    let sc = Scenario::start(prefix, &flags, 0, &policy).await?;
    let until = Utc::now() + chrono::Duration::seconds(5);
    let edit = format!(
        r#"{{"metadata":{{"annotations":{{"scale-governor.io/mode":"{mode}","scale-governor.io/suspend-until":"{}"}}}}}}"#,
        until.format("%Y-%m-%dT%H:%M:%SZ")
    );
    let (ok, e) = patch(&sc.s, "deploy/web", &edit, &[]).await;
    assert!(ok, "{e}");
    eventually("the suspension to run out", STEP, || async {
        let (_, e) = scale(
            sc.s.cluster,
            &sc.s.ns,
            "deploy/web",
            1,
            &["--dry-run=server"],
        )
        .await;
        e.contains("min-replicas 2").then_some(())
    })
    .await;
    assert_eq!(replicas(sc.s.cluster, &sc.s.ns, "deploy/web").await, 0);
    let source = Source::start(0).await;
    let recorder = sc.record();
    sc.scaled_object(&ScaledObject {
        target: "web",
        min: 0,
        max: 10,
        polling: 1,
        cooldown: 3,
        trigger: source.trigger(),
        annotations: Vec::new(),
    })
    .await;
    Some((sc, recorder, source))
}

/// Turns the metric on and checks KEDA's activation: its operator asks
/// for 1 from 0 and gets `granted`, with `why` in the answer. Once `web`
/// has `granted` (and KEDA has settled), turns the metric off; returns the
/// activation and KEDA's first request for 0.
async fn activate_then_deactivate(
    sc: &Scenario,
    recorder: &Recorder,
    source: &Source,
    granted: u32,
    why: &str,
) -> (Review, Review) {
    source.set(1);
    let activation = sc
        .review(recorder, "KEDA's activation", |r| {
            r.actor == OPERATOR && r.current == 0
        })
        .await;
    assert_eq!(
        (activation.asked, activation.granted, activation.allowed),
        (1, granted, true)
    );
    assert!(activation.message.contains(why), "{}", activation.message);
    sc.until(recorder, granted, "web at what the activation got")
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    source.set(0);
    let deactivation = sc
        .review(recorder, "KEDA's deactivation", |r| {
            r.actor == OPERATOR && r.asked == 0
        })
        .await;
    (activation, deactivation)
}

/// Activation and deactivation in `enforce` mode, as docs/policy.md says:
/// the operator's `0 → 1` is raised to the floor at once (`0 → 2`), and
/// its scale to 0 after the cooldown is clamped to the floor, which stores
/// nothing. KEDA's HPA, whose `minReplicas` is 1, asks for 1 at every sync
/// meanwhile and is clamped as well.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[serial]
async fn keda_activation_and_deactivation_land_on_the_floor_in_enforce_mode() {
    let Some((sc, recorder, source)) = at_zero_under_a_floor("enforce", "kedaenf").await else {
        return;
    };
    let (activation, deactivation) = activate_then_deactivate(
        &sc,
        &recorder,
        &source,
        2,
        "min-replicas 2: asked 1, allowed 2",
    )
    .await;
    assert_eq!((deactivation.granted, deactivation.allowed), (2, true));
    assert!(
        deactivation
            .message
            .contains("min-replicas 2: asked 0, allowed 2"),
        "{}",
        deactivation.message
    );
    // KEDA keeps asking; nothing lands.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let timeline = recorder.finish_read(1.0).await;
    assert_eq!(timeline.sequence(), [0, 2]);
    let after = |r: &&Review| r.at > activation.at;
    let generations: Vec<i64> = timeline
        .samples
        .iter()
        .filter(|s| s.at > activation.at + chrono::Duration::milliseconds(500))
        .map(|s| s.generation)
        .collect();
    assert!(
        generations.windows(2).all(|g| g[0] == g[1]),
        "{generations:?}"
    );
    let operator = timeline
        .reviews
        .iter()
        .filter(after)
        .filter(|r| r.actor == OPERATOR)
        .count();
    let hpa = timeline
        .reviews
        .iter()
        .filter(after)
        .filter(|r| r.by_hpa())
        .count();
    eprintln!("after the activation: {operator} writes by the operator, {hpa} by KEDA's HPA");
    assert!(
        timeline
            .reviews
            .iter()
            .filter(after)
            .all(|r| r.granted == 2),
        "{:#?}",
        timeline.reviews
    );
    let clamped = sc.events("Deployment", "ScaleClamped").await;
    assert!(
        clamped.contains("keda-operator asked 1 replicas (current 0)")
            || clamped.contains("keda-operator asked 0 replicas (current 2)"),
        "the Events name KEDA's operator:\n{clamped}"
    );
    sc.conclude(
        timeline,
        "keda-activation-enforce",
        "KEDA activates and deactivates web under min-replicas 2 (enforce)",
    );
}

/// Activation and deactivation in `deny` mode, as docs/policy.md says: the
/// operator's `0 → 1` is let through as a step toward the floor, with a
/// warning and a `ScaleStepped` Event, and its `1 → 0` after the cooldown
/// is a step away, refused with the rule, every time KEDA tries again.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[serial]
async fn keda_activation_is_a_step_toward_the_floor_and_deactivation_is_refused_in_deny_mode() {
    let Some((sc, recorder, source)) = at_zero_under_a_floor("deny", "kedadeny").await else {
        return;
    };
    let (_, deactivation) = activate_then_deactivate(
        &sc,
        &recorder,
        &source,
        1,
        "min-replicas 2: asked 1 (current 0), still below the floor 2; allowed as a step toward it",
    )
    .await;
    assert_eq!((deactivation.current, deactivation.allowed), (1, false));
    assert!(
        deactivation
            .message
            .contains("min-replicas 2: asked 0, allowed 2"),
        "{}",
        deactivation.message
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let timeline = recorder.finish_read(1.0).await;
    assert_eq!(timeline.sequence(), [0, 1]);
    let refused = timeline
        .reviews
        .iter()
        .filter(|r| r.actor == OPERATOR && r.asked == 0)
        .count();
    eprintln!("the operator asked for 0 {refused} times");
    let stepped = sc.events("Deployment", "ScaleStepped").await;
    assert!(
        stepped.contains("keda-operator asked 1 replicas (current 0)"),
        "{stepped}"
    );
    let denied = sc.events("Deployment", "ScaleDenied").await;
    assert!(
        denied.contains("keda-operator asked 0 replicas (current 1)"),
        "{denied}"
    );
    let status = sc.status().await;
    assert!(
        status["lastChanges"][0]
            .as_str()
            .unwrap_or("")
            .ends_with("keda-operator 0->1"),
        "{status}"
    );
    sc.conclude(
        timeline,
        "keda-activation-deny",
        "KEDA activates and deactivates web under min-replicas 2 (deny)",
    );
}

/// KEDA's `autoscaling.keda.sh/paused-replicas` beside the governor's
/// `suspend-until`. The pause is one `/scale` write by KEDA's operator,
/// governed like any other: under `max-replicas: "3"` a pause at 5 lands 3
/// (and KEDA does not write again: it re-applies a pause only when the
/// ScaledObject changes). While `suspend-until` is in force, a pause at 6
/// lands 6; once it passes, the governor's loop moves `web` back to 3, and
/// KEDA, still paused, leaves it there. The governor wins, except while
/// it is suspended.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[serial]
async fn paused_replicas_are_governed_unless_the_governor_is_suspended() {
    let flags = ["--recommend-interval=1s"];
    let Some(sc) = Scenario::start("kedapause", &flags, 2, &[("max-replicas", "3")]).await else {
        return;
    };
    // KEDA's HPA would want 2, what web has.
    let source = Source::start(2).await;
    let recorder = sc.record();
    let paused = |n: &'static str| ScaledObject {
        target: "web",
        min: 1,
        max: 10,
        polling: 1,
        cooldown: 3,
        trigger: source.trigger(),
        annotations: vec![("autoscaling.keda.sh/paused-replicas", n)],
    };
    sc.scaled_object(&paused("5")).await;
    let pause = sc
        .review(&recorder, "KEDA's pause at 5", |r| {
            r.actor == OPERATOR && r.asked == 5
        })
        .await;
    assert_eq!((pause.current, pause.granted), (2, 3), "{pause:?}");
    assert!(
        pause.message.contains("max-replicas 3: asked 5, allowed 3"),
        "{}",
        pause.message
    );
    sc.until(&recorder, 3, "the pause clamped to 3").await;
    let condition = eventually("the ScaledObject paused", STEP, || async {
        let out = sc
            .s
            .cluster
            .kubectl_ok([
                "get",
                "-n",
                sc.s.ns.name(),
                "scaledobject/web",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Paused\")].status} {.status.pausedReplicaCount}",
            ])
            .await;
        out.starts_with("True").then_some(out)
    })
    .await;
    assert_eq!(condition.trim(), "True 5", "KEDA believes it paused at 5");
    // KEDA writes its pause on each reconcile that its own status updates
    // set off, then no more.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let pauses: Vec<Review> = recorder
        .reviews()
        .into_iter()
        .filter(|r| r.actor == OPERATOR)
        .collect();
    assert!(
        pauses
            .iter()
            .all(|r| r.at - pause.at < chrono::Duration::seconds(1) && r.granted == 3),
        "KEDA re-asserted its pause: {pauses:#?}"
    );
    eprintln!("KEDA wrote its pause at 5 {} times", pauses.len());

    // Whole seconds, as the annotation is written.
    let until = DateTime::<Utc>::from_timestamp(Utc::now().timestamp() + 12, 0).unwrap();
    let suspend = format!(
        r#"{{"metadata":{{"annotations":{{"scale-governor.io/suspend-until":"{}"}}}}}}"#,
        until.format("%Y-%m-%dT%H:%M:%SZ")
    );
    let (ok, e) = patch(&sc.s, "deploy/web", &suspend, &[]).await;
    assert!(ok, "{e}");
    eventually("the suspension in the governor's cache", STEP, || async {
        let (_, e) = scale(
            sc.s.cluster,
            &sc.s.ns,
            "deploy/web",
            9,
            &["--dry-run=server"],
        )
        .await;
        e.contains("policy suspended until").then_some(())
    })
    .await;
    sc.scaled_object(&paused("6")).await;
    sc.until(&recorder, 6, "the pause at 6 to land while suspended")
        .await;
    assert!(Utc::now() < until);
    sc.until(
        &recorder,
        3,
        "the loop to move web back to 3 after the suspension",
    )
    .await;
    let back = Utc::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let timeline = recorder.finish_read(1.0).await;
    assert_eq!(timeline.sequence(), [2, 3, 6, 3]);
    let lowered = timeline
        .reviews
        .iter()
        .find(|r| r.current == 6 && r.granted == 3)
        .expect("the write that lowered web to 3");
    assert!(
        lowered.actor.contains("scale-governor") && lowered.at >= until,
        "{lowered:?}"
    );
    assert!(
        !timeline
            .reviews
            .iter()
            .any(|r| r.actor == OPERATOR && r.at > back),
        "KEDA does not re-assert its pause"
    );
    sc.conclude(
        timeline,
        "keda-paused-suspend",
        "KEDA's paused-replicas under max-replicas 3, then during a suspend-until",
    );
}
