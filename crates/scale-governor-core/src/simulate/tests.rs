use super::*;
use crate::policy::keys;

fn t(minute: i64) -> DateTime<Utc> {
    "2026-11-23T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::minutes(minute)
}

fn config(actors: &[Actor]) -> Config {
    Config {
        capacity: 10.0,
        startup: Duration::seconds(60),
        tick: Duration::seconds(60),
        hpa_target: 10.0,
        tolerance: 0.1,
        actors: actors.to_vec(),
        metric_delay: Duration::zero(),
        hpa: None,
        interpolation: Interpolation::Step,
    }
}

/// 10 minutes: steady 20, a spike to 60 for three minutes, back to 20.
fn spike() -> Trace {
    let values = [20.0, 20.0, 20.0, 60.0, 60.0, 60.0, 20.0, 20.0, 20.0, 20.0];
    Trace::from_points(
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (t(i as i64), *v))
            .collect(),
    )
    .unwrap()
}

fn workload(pairs: &[(&str, &str)]) -> Vec<Workload> {
    vec![Workload {
        name: "web".into(),
        policy: Policy::from_annotations(pairs.iter().copied()).unwrap(),
    }]
}

#[test]
fn oracle_starts_pods_one_startup_ahead() {
    let sim = simulate(&spike(), &workload(&[]), &config(&[Actor::Oracle]));
    let run = &sim.runs[0];
    // Need 2 pods, 6 during the spike; pods start one tick (60 s) early and
    // leave at once.
    assert_eq!(run.replicas, [2, 2, 6, 6, 6, 6, 2, 2, 2, 2]);
    assert_eq!(run.ready, [2, 2, 2, 6, 6, 6, 2, 2, 2, 2]);
    let s = &sim.summaries()[0];
    assert_eq!(s.under_provisioned_time_pct, 0.0);
    // 36 pod-minutes.
    assert!((s.pod_hours - 0.6).abs() < 1e-12);
    assert_eq!(s.cost_vs_oracle, Some(1.0));
}

#[test]
fn hpa_reacts_after_the_spike_arrives_and_pays_the_startup() {
    let sim = simulate(
        &spike(),
        &workload(&[(keys::MAX_REPLICAS, "20")]),
        &config(&[Actor::Hpa, Actor::Oracle]),
    );
    let hpa = &sim.runs[0];
    // At minute 3 demand triples: 60 / (2 × 10) = 3, desired 6; the default
    // scale-up allows max(2 + 4, 2 × 2) = 6. Ready one minute later.
    assert_eq!(&hpa.replicas[..5], &[2, 2, 2, 6, 6]);
    assert_eq!(&hpa.ready[..5], &[2, 2, 2, 2, 6]);
    // The 300 s scale-down stabilization keeps 6 to the end of the trace.
    assert_eq!(&hpa.replicas[5..], &[6, 6, 6, 6, 6]);
    let summaries = sim.summaries();
    let s = &summaries[0];
    // One minute short by 40 of 320 total demand.
    assert!((s.under_provisioned_time_pct - 10.0).abs() < 1e-9);
    assert!((s.under_provisioned_demand_pct - 12.5).abs() < 1e-9);
    assert_eq!((s.peak_shortfall, s.longest_recovery_seconds), (40.0, 60));
    assert_eq!((s.changes, s.largest_step), (1, 4));
    // 2+2+2 + 6×7 = 48 pod-minutes against the oracle's 36.
    assert!((s.pod_hours - 0.8).abs() < 1e-12);
    assert!((s.cost_vs_oracle.unwrap() - 48.0 / 36.0).abs() < 1e-12);
}

#[test]
fn a_metric_delay_makes_the_hpa_see_the_spike_late_and_the_oracle_not_at_all() {
    let mut late = config(&[Actor::Hpa, Actor::Oracle]);
    late.metric_delay = Duration::seconds(120);
    let sim = simulate(&spike(), &workload(&[(keys::MAX_REPLICAS, "20")]), &late);
    // The spike lands at minute 3; the HPA reads it two minutes later.
    assert_eq!(&sim.runs[0].replicas[..6], &[2, 2, 2, 2, 2, 6]);
    // Demand as scored, and the oracle, are not delayed.
    assert_eq!(sim.demand[3], 60.0);
    assert_eq!(sim.runs[1].replicas[2], 6);
    // A delay shorter than a tick is not rounded away: at minute 3 the HPA
    // still reads minute 2's demand.
    late.metric_delay = Duration::seconds(1);
    let sim = simulate(&spike(), &workload(&[(keys::MAX_REPLICAS, "20")]), &late);
    assert_eq!(&sim.runs[0].replicas[..5], &[2, 2, 2, 2, 6]);
}

#[test]
fn the_recommender_sees_demand_as_late_as_the_hpa() {
    let rec = r#"{"targetPerPod":10,"trend":"none","holdSeconds":0,"tolerance":0}"#;
    let mut late = config(&[Actor::Governor]);
    late.metric_delay = Duration::seconds(120);
    let sim = simulate(&spike(), &workload(&[(keys::RECOMMEND, rec)]), &late);
    // The spike lands at minute 3; the recommendation follows two minutes
    // later, and so does the way down.
    assert_eq!(sim.runs[0].replicas, [2, 2, 2, 2, 2, 6, 6, 6, 2, 2]);
}

#[test]
fn the_hpa_can_have_a_spec_of_its_own() {
    let policy = workload(&[(keys::SCALE_UP, "1 pods/60s")]);
    // Without a spec of its own the HPA takes the workload's rules.
    let sim = simulate(&spike(), &policy, &config(&[Actor::Hpa]));
    assert_eq!(&sim.runs[0].replicas[2..5], &[2, 3, 4]);
    // Its own behavior allows 10 pods a minute, its maxReplicas is 5.
    let mut own = config(&[Actor::Hpa]);
    own.hpa = Some(
        Policy::from_annotations([(keys::MAX_REPLICAS, "5"), (keys::SCALE_UP, "10 pods/60s")])
            .unwrap(),
    );
    let sim = simulate(&spike(), &policy, &own);
    assert_eq!(&sim.runs[0].replicas[2..5], &[2, 5, 5]);
}

#[test]
fn a_guard_books_every_actor_in_one_ledger() {
    let policy = Policy::from_annotations([(keys::SCALE_UP, "4 pods/60s")]).unwrap();
    let mut guard = Guard::new(&policy);
    let d = guard.decide(&policy, 2, 5, "alice", t(0));
    assert_eq!((d.replicas, d.outcome), (5, engine::Outcome::Unchanged));
    // Bob's request in the same minute finds 3 of the 4 pods spent.
    let d = guard.decide(&policy, 5, 10, "bob", t(0) + Duration::seconds(30));
    assert_eq!((d.replicas, d.outcome), (6, engine::Outcome::Clamped));
    assert!(
        d.summary().contains("asked 10, allowed 6"),
        "{}",
        d.summary()
    );
    // A minute after the first change only Bob's pod is still counted.
    let d = guard.decide(&policy, 6, 10, "hpa", t(1) + Duration::seconds(1));
    assert_eq!(d.replicas, 9);
}

/// The guard decides as the webhook does in deny mode: a step toward the
/// floor from below it goes through, a step away does not.
#[test]
fn a_guard_in_deny_mode_lets_steps_toward_the_floor_through() {
    let policy = Policy::from_annotations([
        (keys::MODE, "deny"),
        (keys::MIN_REPLICAS, "2"),
        (keys::SCALE_UP, "select=Disabled"),
    ])
    .unwrap();
    let mut guard = Guard::new(&policy);
    let mut fleet = Fleet::new(0, t(0), Duration::seconds(60));
    assert!(guard.scale(&policy, &mut fleet, 1, "keda", t(0)));
    assert_eq!(fleet.replicas(), 1);
    assert!(guard.scale(&policy, &mut fleet, 2, "keda", t(1)));
    assert!(!guard.scale(&policy, &mut fleet, 1, "keda", t(2)));
    assert_eq!(fleet.replicas(), 2);
}

#[test]
fn governor_floor_is_applied_between_hpa_syncs() {
    let rec = r#"{"targetPerPod":10,"leadSeconds":60,"trend":"none","holdSeconds":0}"#;
    let sim = simulate(
        &spike(),
        &workload(&[(keys::RECOMMEND, rec), (keys::SCALE_UP, "2 pods/60s")]),
        &config(&[Actor::HpaGovernor, Actor::Governor]),
    );
    let both = &sim.runs[0];
    // The floor (6 at the spike) is a bound: it wins over the 2-pod rate
    // limit that holds back the HPA's own request.
    assert_eq!(both.replicas[3], 6);
    let governor = &sim.runs[1];
    assert_eq!(&governor.replicas[..4], &[2, 2, 2, 6]);
    assert_eq!(
        governor.replicas[6], 2,
        "target follows demand down with no hold"
    );
}

#[test]
fn without_a_recommend_annotation_the_governor_only_guards_the_hpa() {
    let sim = simulate(
        &spike(),
        &workload(&[(keys::SCALE_UP, "2 pods/60s")]),
        &config(&[Actor::HpaGovernor]),
    );
    // No floor jumps to the spike: the HPA's ask for 6 is held to 2 more
    // pods a minute.
    assert_eq!(&sim.runs[0].replicas[2..6], &[2, 4, 6, 6]);
}

#[test]
fn timeline_csv_has_a_column_pair_per_run() {
    let sim = simulate(&spike(), &workload(&[]), &config(&[Actor::Oracle]));
    let csv = sim.timeline_csv();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("timestamp,demand,oracle_replicas,oracle_ready")
    );
    assert_eq!(lines.next(), Some("2026-11-23T10:00:00+00:00,20,2,2"));
    assert_eq!(csv.lines().count(), 11);
}
