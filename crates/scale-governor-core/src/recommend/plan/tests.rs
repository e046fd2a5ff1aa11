use chrono::Duration;

use super::*;
use crate::policy::keys;

fn t0() -> DateTime<Utc> {
    // Monday 2026-11-23 10:00 UTC.
    "2026-11-23T10:00:00Z".parse().unwrap()
}

fn policy(pairs: &[(&str, &str)]) -> Policy {
    Policy::from_annotations(pairs.iter().copied()).unwrap()
}

const METRIC: &str = r#"{"source":"orders","pointer":"/n","targetPerPod":10,"tolerance":0,"trend":"none","holdSeconds":0}"#;

fn inputs(policy: &Policy, current: u32, sample: Sample) -> Inputs<'_> {
    Inputs {
        policy,
        current,
        replicas_by_governor: false,
        sample,
        pool: None,
        ready: None,
        metric_delay: Duration::zero(),
        deletion_costs_changed: false,
    }
}

fn kinds(plan: &Plan) -> Vec<NoticeKind> {
    plan.notices.iter().map(|n| n.kind).collect()
}

fn rec(replicas: u32, strategy: &str, at: DateTime<Utc>) -> Recommendation {
    Recommendation {
        version: 1,
        replicas,
        reason: String::new(),
        computed_at: at,
        expires_at: at + Duration::seconds(1800),
        kind: RecommendationKind::Floor,
        strategy: strategy.into(),
        inputs: Default::default(),
    }
}

#[test]
fn a_steady_recommendation_is_written_only_near_its_expiry() {
    let written = rec(5, "proportional", t0());
    let at = |m: i64| t0() + Duration::minutes(m);
    assert!(should_write(None, &rec(5, "proportional", at(0)), at(0)));
    assert!(!should_write(
        Some(&written),
        &rec(5, "proportional", at(1)),
        at(1)
    ));
    assert!(!should_write(
        Some(&written),
        &rec(5, "proportional", at(19)),
        at(19)
    ));
    assert!(
        should_write(Some(&written), &rec(5, "proportional", at(21)), at(21)),
        "10 of 30 minutes left"
    );
    assert!(should_write(
        Some(&written),
        &rec(6, "proportional", at(1)),
        at(1)
    ));
    assert!(should_write(
        Some(&written),
        &rec(5, "velocity", at(1)),
        at(1)
    ));
}

#[test]
fn a_counter_gives_a_rate_and_skips_its_first_sample_and_resets() {
    let mut memory = Memory::default();
    assert_eq!(rate(&mut memory, 100.0, t0()), None);
    assert_eq!(
        rate(&mut memory, 130.0, t0() + Duration::seconds(10)),
        Some(3.0)
    );
    assert_eq!(
        rate(&mut memory, 5.0, t0() + Duration::seconds(20)),
        None,
        "reset"
    );
    assert_eq!(
        rate(&mut memory, 25.0, t0() + Duration::seconds(30)),
        Some(2.0)
    );
    assert_eq!(
        rate(&mut memory, 25.0, t0() + Duration::seconds(30)),
        None,
        "no time passed"
    );
}

#[test]
fn a_floor_above_the_count_is_met_at_once_and_written_with_the_state() {
    let p = policy(&[(keys::RECOMMEND, METRIC)]);
    let mut memory = Memory::default();
    let plan = plan(&mut memory, &inputs(&p, 2, Sample::Value(75.0)), t0());
    let scale = plan.scale.expect("a move to the floor");
    assert_eq!(scale.to, 8, "ceil(75 / 10)");
    assert!(
        scale
            .reason
            .contains("floor recommendation by proportional: 8"),
        "{}",
        scale.reason
    );
    let state = LoopState::parse(plan.annotations.as_deref().expect("a write")).unwrap();
    assert!(state.source.unwrap().ok);
    assert_eq!(memory.written.as_ref().unwrap().replicas, 8);
    assert!(plan.notices.is_empty(), "{:?}", plan.notices);

    // A floor below the count never moves it down.
    let mut memory = Memory::default();
    let plan = super::plan(&mut memory, &inputs(&p, 12, Sample::Value(75.0)), t0());
    assert_eq!(plan.scale, None);
}

#[test]
fn a_target_is_followed_down_unless_deletion_costs_just_changed() {
    let target = METRIC.replace("\"trend\"", "\"kind\":\"target\",\"trend\"");
    let p = policy(&[(keys::RECOMMEND, &target)]);
    let mut memory = Memory::default();
    let plan = plan(&mut memory, &inputs(&p, 12, Sample::Value(75.0)), t0());
    assert_eq!(plan.scale.map(|s| s.to), Some(8));

    let mut memory = Memory::default();
    let mut waiting = inputs(&p, 12, Sample::Value(75.0));
    waiting.deletion_costs_changed = true;
    let plan = super::plan(&mut memory, &waiting, t0());
    assert_eq!(plan.scale, None);
    assert!(plan.scale_down_waits);
    // An increase never waits for deletion costs.
    let mut memory = Memory::default();
    waiting.current = 3;
    assert_eq!(
        super::plan(&mut memory, &waiting, t0()).scale.map(|s| s.to),
        Some(8)
    );
}

#[test]
fn only_enforce_mode_moves_replicas() {
    for mode in ["deny", "audit"] {
        let p = policy(&[
            (keys::RECOMMEND, METRIC),
            (keys::WINDOWS, "Mon-Fri 08:00-20:00 UTC min=4"),
            (keys::MODE, mode),
        ]);
        let mut memory = Memory::default();
        let plan = plan(&mut memory, &inputs(&p, 1, Sample::Value(75.0)), t0());
        assert_eq!(plan.scale, None, "{mode}");
        assert!(
            plan.annotations.is_some(),
            "{mode}: the recommendation is still written"
        );
    }
}

#[test]
fn a_window_raises_and_remembers_the_raise_until_it_is_written() {
    let p = policy(&[(keys::WINDOWS, "Mon-Fri 08:00-20:00 UTC min=4")]);
    let mut memory = Memory::default();
    let first = plan(&mut memory, &inputs(&p, 2, Sample::NotRead), t0());
    let scale = first.scale.expect("raised");
    assert_eq!(scale.to, 4);
    assert!(scale.reason.contains("raising 2 to 4"), "{}", scale.reason);
    let text = first.annotations.expect("the raise is persisted");
    assert_eq!(LoopState::parse(&text).unwrap().raise.unwrap().from, 2);

    // Until the executor confirms the write, the next cycle asks again.
    let mut raised = inputs(&p, 4, Sample::NotRead);
    raised.replicas_by_governor = true;
    let again = plan(&mut memory, &raised, t0());
    assert_eq!(again.annotations.as_deref(), Some(text.as_str()));
    memory.persisted = Some(text.clone());
    let steady = plan(&mut memory, &raised, t0());
    assert_eq!(steady, Plan::default(), "nothing to do once written");

    // After the window, back to where it was, by the governor's own write.
    let evening = t0() + Duration::hours(11);
    let back = plan(&mut memory, &raised, evening);
    assert_eq!(back.scale.map(|s| s.to), Some(2));

    // Someone else scaled meanwhile: their count stands, and the raise is
    // forgotten in the persisted state too.
    let theirs = inputs(&p, 4, Sample::NotRead);
    let plan = plan(&mut memory, &theirs, evening);
    assert_eq!(plan.scale, None);
    let state = LoopState::parse(plan.annotations.as_deref().expect("a write")).unwrap();
    assert_eq!(state.raise, None);
}

#[test]
fn a_failing_source_is_reported_once_and_its_recovery_once() {
    let p = policy(&[(keys::RECOMMEND, METRIC)]);
    let mut memory = Memory::default();
    let ok = plan(&mut memory, &inputs(&p, 8, Sample::Value(75.0)), t0());
    memory.persisted = ok.annotations;
    let failed = Sample::Failed("no answer within 5s".into());
    let first = plan(&mut memory, &inputs(&p, 8, failed.clone()), t0());
    assert_eq!(kinds(&first), [NoticeKind::SourceFailed]);
    assert!(
        first.notices[0]
            .message
            .contains("source orders failed: no answer within 5s")
    );
    assert!(first.annotations.is_some(), "the health is persisted");
    assert_eq!(first.scale, None, "no scale-down for want of data");
    memory.persisted = first.annotations;
    let second = plan(&mut memory, &inputs(&p, 8, failed), t0());
    assert!(second.notices.is_empty());
    assert_eq!(second.annotations, None);
    let other = plan(
        &mut memory,
        &inputs(&p, 8, Sample::Failed("HTTP 500".into())),
        t0(),
    );
    assert_eq!(
        kinds(&other),
        [NoticeKind::SourceFailed],
        "a new error is news"
    );
    let back = plan(&mut memory, &inputs(&p, 8, Sample::Value(75.0)), t0());
    assert_eq!(kinds(&back), [NoticeKind::SourceRecovered]);
}

#[test]
fn an_expired_recommendation_is_reported_once() {
    let p = policy(&[(keys::RECOMMEND, METRIC)]);
    let mut memory = Memory::default();
    plan(&mut memory, &inputs(&p, 8, Sample::Value(75.0)), t0());
    let failed = Sample::Failed("down".into());
    let late = t0() + Duration::hours(1);
    let first = plan(&mut memory, &inputs(&p, 8, failed.clone()), late);
    assert!(kinds(&first).contains(&NoticeKind::RecommendationExpired));
    let second = plan(&mut memory, &inputs(&p, 8, failed), late);
    assert!(!kinds(&second).contains(&NoticeKind::RecommendationExpired));
}

#[test]
fn a_change_of_strategy_is_reported() {
    let p = policy(&[(keys::RECOMMEND, METRIC)]);
    let mut memory = Memory {
        written: Some(rec(3, "warm-pool", t0())),
        ..Memory::default()
    };
    let plan = plan(&mut memory, &inputs(&p, 8, Sample::Value(75.0)), t0());
    assert_eq!(kinds(&plan), [NoticeKind::StrategyChanged]);
    assert!(
        plan.notices[0]
            .message
            .starts_with("recommendation by proportional now, was warm-pool")
    );
}

#[test]
fn a_warm_pool_counts_reserved_pods_plus_the_idle_target() {
    let pool = r#"{"source":"pods","warmPool":{"reserved":"r","targetReady":2},"holdSeconds":0}"#;
    let p = policy(&[(keys::RECOMMEND, pool)]);
    let mut memory = Memory::default();
    let mut with_pods = inputs(&p, 3, Sample::NotRead);
    with_pods.pool = Some(PoolCounts {
        reserved: 3,
        idle: 0,
        warming: 0,
    });
    assert_eq!(
        plan(&mut memory, &with_pods, t0()).scale.map(|s| s.to),
        Some(5)
    );
    // No pool counted (a kind the loop cannot count pods for): no candidate.
    let mut memory = Memory::default();
    let plan = plan(&mut memory, &inputs(&p, 3, Sample::NotRead), t0());
    assert_eq!(plan, Plan::default());
}

#[test]
fn restore_brings_back_the_last_leaders_state_once() {
    let p = policy(&[(keys::RECOMMEND, METRIC)]);
    let saved = LoopState {
        version: STATE_VERSION,
        raise: Some(WindowRaise {
            from: 2,
            to: 4,
            at: t0(),
        }),
        ..LoopState::default()
    }
    .to_annotation();
    let mut memory = Memory::default();
    restore(&mut memory, Some(&saved), &p).unwrap();
    assert_eq!(memory.raise.as_ref().map(|r| r.from), Some(2));
    assert_eq!(memory.persisted.as_deref(), Some(saved.as_str()));
    memory.raise = None;
    restore(&mut memory, Some(&saved), &p).unwrap();
    assert_eq!(memory.raise, None, "once per leadership");

    let mut memory = Memory::default();
    let err = restore(&mut memory, Some("{not json"), &p).unwrap_err();
    assert!(matches!(err, StateError::Json(_)));
    assert!(memory.restored && memory.persisted.is_none());
}

#[test]
fn with_risk_each_sample_is_scored_against_the_ready_pods_and_shown() {
    let config = r#"{"source":"orders","pointer":"/n","targetPerPod":10,"tolerance":0,"trend":"none","holdSeconds":0,"risk":"1%"}"#;
    let p = policy(&[(keys::RECOMMEND, config)]);
    // Nothing ready is known: nothing is scored, the reason says so.
    let mut memory = Memory::default();
    let first = plan(&mut memory, &inputs(&p, 2, Sample::Value(100.0)), t0());
    assert_eq!(
        memory.written.as_ref().map(|r| r.reason.as_str()),
        Some(
            "proportional: demand 100 + headroom 10 (risk 1 %, nothing scored yet), 10 per pod -> 11"
        )
    );
    let state = LoopState::parse(&first.annotations.unwrap()).unwrap();
    assert_eq!(
        state.risk.map(|r| (r.stated, r.achieved, r.headroom)),
        Some((0.01, None, Some(10.0)))
    );
    // Two pods ready (20) against 100, every period for a day and more:
    // the headroom rises in bounded steps, the share short is shown, and
    // once it has stayed above twice the risk for a day, one notice says so.
    let mut memory = Memory::default();
    let (mut missed, mut last) = (Vec::new(), None);
    for i in 0..6200 {
        let mut short = inputs(&p, 2, Sample::Value(100.0));
        short.ready = Some(2);
        let plan = plan(&mut memory, &short, t0() + Duration::seconds(15 * i));
        missed.extend(
            plan.notices
                .iter()
                .filter(|n| n.kind == NoticeKind::RiskMissed)
                .map(|n| (i, n.message.clone())),
        );
        last = plan.annotations.or(last);
    }
    assert_eq!(missed.len(), 1, "{missed:?}");
    assert_eq!(missed[0].0, 239 + 5760);
    assert!(
        missed[0]
            .1
            .starts_with("short of capacity 100 % of the last 24 h against a stated risk of 1 %"),
        "{}",
        missed[0].1
    );
    let state = LoopState::parse(&last.unwrap()).unwrap();
    let risk = state.risk.unwrap();
    assert_eq!((risk.stated, risk.achieved), (0.01, Some(1.0)));
    // At its ceiling: three forecasts' worth on top.
    assert_eq!(risk.headroom, Some(300.0));
    assert!(
        memory.written.as_ref().is_some_and(|r| r
            .reason
            .contains("headroom 300 (risk 1 %, achieved 100 % over 24 h)")),
        "{:?}",
        memory.written
    );
}
