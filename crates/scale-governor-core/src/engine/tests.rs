use chrono::Duration;
use proptest::prelude::*;

use super::*;
use crate::policy::keys;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

const NOW: &str = "2026-11-23T10:00:00Z"; // a Monday

fn policy(pairs: &[(&str, &str)]) -> Policy {
    Policy::from_annotations(pairs.iter().copied()).unwrap()
}

fn ask(p: &Policy, ledger: &Ledger, current: u32, requested: u32) -> Decision {
    decide(
        p,
        ledger,
        Request {
            current,
            requested,
            actor: "alice",
        },
        at(NOW),
    )
}

fn change(secs_ago: i64, from: u32, to: u32, requested: u32) -> Change {
    Change {
        at: at(NOW) - Duration::seconds(secs_ago),
        from,
        to,
        requested,
        actor: "bob".into(),
        pending: false,
        watched: false,
        generation: None,
        span: None,
    }
}

fn messages(d: &Decision) -> Vec<&str> {
    d.reasons.iter().map(|r| r.message.as_str()).collect()
}

#[test]
fn max_replicas_clamps_with_the_numbers() {
    let p = policy(&[(keys::MAX_REPLICAS, "20")]);
    let d = ask(&p, &Ledger::new(), 5, 100);
    assert_eq!(
        (d.allowed, d.replicas, d.outcome),
        (true, 20, Outcome::Clamped)
    );
    assert_eq!(messages(&d), ["max-replicas 20: asked 100, allowed 20"]);
    assert_eq!(d.reasons[0].rule.as_str(), "max-replicas");
}

#[test]
fn unchanged_request_has_no_reasons() {
    let p = policy(&[(keys::MIN_REPLICAS, "2"), (keys::MAX_REPLICAS, "20")]);
    let d = ask(&p, &Ledger::new(), 5, 8);
    assert_eq!((d.replicas, d.outcome), (8, Outcome::Unchanged));
    assert!(d.reasons.is_empty() && d.warnings.is_empty());
    assert_eq!(d.change("alice", at(NOW)).unwrap().to, 8);
}

#[test]
fn scale_up_rate_limit_names_rule_and_numbers() {
    let p = policy(&[(keys::SCALE_UP, "4 pods/60s")]);
    let d = ask(&p, &Ledger::new(), 20, 40);
    assert_eq!(d.replicas, 24);
    assert_eq!(
        messages(&d),
        ["scale-up 4 pods/60s: asked 40, allowed 24 (20 at period start)"]
    );
}

#[test]
fn rate_budget_is_shared_across_actors() {
    let p = policy(&[(keys::SCALE_UP, "4 pods/60s")]);
    let mut ledger = Ledger::new();
    ledger.record(change(30, 10, 12, 12));
    // Alice asks for 40 with 12 now; bob already spent 2 of the 4 pods.
    let d = ask(&p, &ledger, 12, 40);
    assert_eq!(d.replicas, 14);
    ledger.record(change(10, 12, 14, 40));
    let d = ask(&p, &ledger, 14, 40);
    assert_eq!(d.replicas, 14);
    assert_eq!(
        messages(&d),
        ["scale-up 4 pods/60s: asked 40, allowed 14 (budget spent: 10 at period start)"]
    );
}

/// A change admitted but not yet seen stored may never land (AlreadyExists,
/// a later webhook, a conflict): it may only tighten a limit.
#[test]
fn a_pending_change_spends_budget_but_never_frees_it() {
    let p = policy(&[
        (keys::SCALE_UP, "4 pods/60s"),
        (keys::SCALE_DOWN, "4 pods/60s"),
    ]);
    let pending = |from, to| Change {
        pending: true,
        ..change(10, from, to, to)
    };
    // A pending 7 -> 3 that did not land: current is still 7. Counted, it
    // would make the period start 11 and allow 15; ignored, it allows 11.
    let mut ledger = Ledger::new();
    ledger.record(pending(7, 3));
    assert_eq!(ask(&p, &ledger, 7, 20).replicas, 11);
    // The same change confirmed (it landed, current is 3) frees the budget
    // it took, as the HPA counts it.
    let mut confirmed = Ledger::new();
    confirmed.record(change(10, 7, 3, 3));
    assert_eq!(ask(&p, &confirmed, 3, 20).replicas, 11);
    // A pending scale-up spends scale-up budget at once, so a burst cannot
    // slip through before the watch confirms it.
    let mut ledger = Ledger::new();
    ledger.record(pending(10, 14));
    assert_eq!(ask(&p, &ledger, 14, 40).replicas, 14);
    // ... and frees no scale-down budget: 14 -> 10 -> 6 stays 10.
    assert_eq!(ask(&p, &ledger, 14, 2).replicas, 10);
}

/// A request that raises max-replicas and scales in one go is decided by
/// the stored policy too; the looser one governs from the next request on.
#[test]
fn an_edit_and_a_scale_together_must_satisfy_both_policies() {
    let stored = policy(&[(keys::MAX_REPLICAS, "20"), (keys::SCALE_UP, "4 pods/60s")]);
    let loosened = policy(&[(keys::MAX_REPLICAS, "1000")]);
    let request = Request {
        current: 18,
        requested: 1000,
        actor: "mallory",
    };
    let d = decide_all(&[&stored, &loosened], &Ledger::new(), request, at(NOW));
    assert_eq!((d.replicas, d.outcome), (20, Outcome::Clamped));
    assert_eq!(
        messages(&d),
        [
            "scale-up 4 pods/60s: asked 1000, allowed 22 (18 at period start)",
            "max-replicas 20: asked 1000, allowed 20"
        ]
    );
    // Tightening in the same request applies at once.
    let tighter = policy(&[(keys::MAX_REPLICAS, "10")]);
    let d = decide_all(&[&stored, &tighter], &Ledger::new(), request, at(NOW));
    assert_eq!(d.replicas, 10);
    // Paused by the edit (mode off, suspend-until): the stored policy holds.
    let off = policy(&[(keys::MODE, "off")]);
    let d = decide_all(&[&stored, &off], &Ledger::new(), request, at(NOW));
    assert_eq!((d.replicas, d.outcome), (20, Outcome::Clamped));
    // A deny in either refuses.
    let deny = policy(&[(keys::MODE, "deny"), (keys::MAX_REPLICAS, "20")]);
    let d = decide_all(&[&loosened, &deny], &Ledger::new(), request, at(NOW));
    assert_eq!(
        (d.allowed, d.outcome, d.replicas),
        (false, Outcome::Denied, 18)
    );
    // One policy, or the same twice, is plain `decide`.
    let once = decide(&stored, &Ledger::new(), request, at(NOW));
    assert_eq!(
        decide_all(&[&stored, &stored], &Ledger::new(), request, at(NOW)),
        once
    );
}

#[test]
fn scale_down_percent_and_select_min() {
    let p = policy(&[(keys::SCALE_DOWN, "50%/60s, 2 pods/60s, select=Min")]);
    // Max would take the larger change (50% -> 5); Min takes 2 pods -> 8.
    let d = ask(&p, &Ledger::new(), 10, 1);
    assert_eq!(d.replicas, 8);
    let p = policy(&[(keys::SCALE_DOWN, "50%/60s, 2 pods/60s")]);
    assert_eq!(ask(&p, &Ledger::new(), 10, 1).replicas, 5);
}

#[test]
fn disabled_direction_holds_current() {
    let p = policy(&[(keys::SCALE_DOWN, "select=Disabled")]);
    let d = ask(&p, &Ledger::new(), 10, 3);
    assert_eq!(d.replicas, 10);
    assert_eq!(
        messages(&d),
        ["scale-down disabled (selectPolicy Disabled): asked 3, allowed 10"]
    );
}

#[test]
fn scale_down_stabilization_holds_the_highest_recent_request() {
    let p = policy(&[(keys::SCALE_DOWN, "stabilization=300s")]);
    let mut ledger = Ledger::new();
    ledger.record(change(100, 12, 20, 25));
    let d = ask(&p, &ledger, 20, 5);
    assert_eq!(d.replicas, 20);
    assert_eq!(d.reasons[0].rule, Rule::ScaleDownStabilization);
    // Once the request leaves the window, the scale-down goes through.
    let mut old = Ledger::new();
    old.record(change(301, 12, 20, 25));
    assert_eq!(ask(&p, &old, 20, 5).replicas, 5);
}

#[test]
fn bounds_win_over_rate_limits() {
    let p = policy(&[(keys::MIN_REPLICAS, "10"), (keys::SCALE_UP, "1 pod/60s")]);
    let d = ask(&p, &Ledger::new(), 2, 3);
    assert_eq!(d.replicas, 10);
    assert_eq!(messages(&d), ["min-replicas 10: asked 3, allowed 10"]);
}

#[test]
fn window_floor_names_the_window() {
    let p = policy(&[
        (keys::MIN_REPLICAS, "2"),
        (keys::WINDOWS, "Mon-Fri 08:00-20:00 Europe/Berlin min=10"),
    ]);
    let d = ask(&p, &Ledger::new(), 10, 3);
    assert_eq!(d.replicas, 10);
    assert_eq!(
        messages(&d),
        ["window \"Mon-Fri 08:00-20:00 Europe/Berlin min=10\": asked 3, allowed 10"]
    );
}

#[test]
fn modes_deny_audit_off_and_suspend() {
    let deny = policy(&[(keys::MODE, "deny"), (keys::MAX_REPLICAS, "20")]);
    let d = ask(&deny, &Ledger::new(), 5, 100);
    assert_eq!(
        (d.allowed, d.replicas, d.governed, d.outcome),
        (false, 5, 20, Outcome::Denied)
    );
    let audit = policy(&[(keys::MODE, "audit"), (keys::MAX_REPLICAS, "20")]);
    let d = ask(&audit, &Ledger::new(), 5, 100);
    assert_eq!(
        (d.allowed, d.replicas, d.governed, d.outcome),
        (true, 100, 20, Outcome::Audited)
    );
    let off = policy(&[(keys::MODE, "off"), (keys::MAX_REPLICAS, "20")]);
    let d = ask(&off, &Ledger::new(), 5, 100);
    assert_eq!((d.replicas, d.outcome), (100, Outcome::Paused));
    assert!(d.warnings.is_empty());
    let suspended = policy(&[
        (keys::SUSPEND_UNTIL, "2026-11-23T11:00:00Z"),
        (keys::MAX_REPLICAS, "20"),
    ]);
    let d = ask(&suspended, &Ledger::new(), 5, 100);
    assert_eq!((d.replicas, d.outcome), (100, Outcome::Paused));
    assert_eq!(
        d.warnings,
        ["policy suspended until 2026-11-23T11:00:00+00:00; request passes unchanged"]
    );
}

#[test]
fn recommendation_floor_target_and_staleness() {
    let rec = |kind: &str, expires: &str| {
        format!(
            r#"{{"replicas":12,"reason":"peak ahead","computedAt":"2026-11-23T09:58:00Z","expiresAt":"{expires}","kind":"{kind}"}}"#
        )
    };
    let fresh = rec("floor", "2026-11-23T10:05:00Z");
    let p = policy(&[(keys::RECOMMENDATION, &fresh)]);
    let d = ask(&p, &Ledger::new(), 12, 5);
    assert_eq!(
        messages(&d),
        ["recommendation floor 12 (peak ahead): asked 5, allowed 12"]
    );
    assert_eq!(ask(&p, &Ledger::new(), 12, 30).replicas, 30);
    let target = rec("target", "2026-11-23T10:05:00Z");
    let p = policy(&[(keys::RECOMMENDATION, &target)]);
    assert_eq!(ask(&p, &Ledger::new(), 12, 30).replicas, 12);
    let stale = rec("floor", "2026-11-23T09:59:00Z");
    let p = policy(&[(keys::RECOMMENDATION, &stale)]);
    let d = ask(&p, &Ledger::new(), 12, 5);
    assert_eq!(d.replicas, 5);
    assert_eq!(
        d.warnings,
        ["recommendation of 12 replicas expired at 2026-11-23T09:59:00+00:00; ignored"]
    );
}

#[test]
fn contradicting_bounds_let_the_ceiling_win_with_a_warning() {
    let p = policy(&[
        (keys::MIN_REPLICAS, "2"),
        (
            keys::WINDOWS,
            "Mon 00:00-24:00 min=30; Mon 09:00-11:00 max=20",
        ),
    ]);
    let d = ask(&p, &Ledger::new(), 10, 5);
    assert_eq!(d.replicas, 20);
    assert_eq!(
        d.warnings,
        [
            "bounds contradict: floor 30 from window \"Mon 00:00-24:00 min=30\" is above ceiling 20 from window \"Mon 09:00-11:00 max=20\"; the ceiling wins"
        ]
    );
}

#[test]
fn a_recommendation_never_breaks_a_user_bound() {
    let rec = |replicas: u32, kind: &str| {
        format!(
            r#"{{"replicas":{replicas},"computedAt":"2026-11-23T09:58:00Z","expiresAt":"2026-11-23T10:05:00Z","kind":"{kind}"}}"#
        )
    };
    let high = rec(30, "floor");
    let p = policy(&[(keys::MAX_REPLICAS, "20"), (keys::RECOMMENDATION, &high)]);
    let d = ask(&p, &Ledger::new(), 10, 5);
    assert_eq!(d.replicas, 20);
    assert_eq!(
        d.warnings,
        ["recommendation of 30 replicas is outside the ceiling 20 from max-replicas; using 20"]
    );
    // A target below min-replicas keeps the floor.
    let low = rec(1, "target");
    let p = policy(&[(keys::MIN_REPLICAS, "2"), (keys::RECOMMENDATION, &low)]);
    let d = ask(&p, &Ledger::new(), 5, 1);
    assert_eq!(d.replicas, 2);
    assert_eq!(messages(&d), ["min-replicas 2: asked 1, allowed 2"]);
    assert_eq!(
        d.warnings,
        ["recommendation of 1 replicas is outside the floor 2 from min-replicas; using 2"]
    );
}

#[test]
fn current_outside_bounds_goes_to_the_bound_at_once() {
    let p = policy(&[(keys::MAX_REPLICAS, "20"), (keys::SCALE_DOWN, "1 pod/60s")]);
    // Asking to go up from 50: the bound wins even against the direction.
    assert_eq!(ask(&p, &Ledger::new(), 50, 60).replicas, 20);
}

// ---- property tests -------------------------------------------------------

fn arb_rules() -> impl Strategy<Value = String> {
    let policy = prop_oneof![
        (1u32..10, 1u32..120).prop_map(|(v, p)| format!("{v} pods/{p}s")),
        (1u32..200, 1u32..120).prop_map(|(v, p)| format!("{v}%/{p}s")),
    ];
    (
        prop::collection::vec(policy, 1..3),
        prop_oneof![Just("Max"), Just("Min")],
        0u32..120,
    )
        .prop_map(|(ps, select, stab)| {
            format!("{}, select={select}, stabilization={stab}s", ps.join(", "))
        })
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    (
        prop::option::of(0u32..20),
        prop::option::of(20u32..60),
        prop::option::of(arb_rules()),
        prop::option::of(arb_rules()),
        prop::option::of((0u32..24, 1u32..24, 0u32..20, 20u32..60)),
    )
        .prop_map(|(min, max, up, down, window)| {
            let mut pairs: Vec<(&str, String)> = Vec::new();
            if let Some(min) = min {
                pairs.push((keys::MIN_REPLICAS, min.to_string()));
            }
            if let Some(max) = max {
                pairs.push((keys::MAX_REPLICAS, max.to_string()));
            }
            if let Some(up) = up {
                pairs.push((keys::SCALE_UP, up));
            }
            if let Some(down) = down {
                pairs.push((keys::SCALE_DOWN, down));
            }
            if let Some((start, len, wmin, wmax)) = window {
                let end = (start + len) % 24;
                let text = format!(
                    "Mon-Sun {start:02}:00-{end:02}:30 Europe/Berlin min={wmin} max={wmax}"
                );
                pairs.push((keys::WINDOWS, text));
            }
            Policy::from_annotations(pairs.iter().map(|(k, v)| (*k, v.as_str())))
                .expect("generated policies are valid")
        })
}

/// A run of requests: (seconds since the previous one, requested replicas).
fn arb_run() -> impl Strategy<Value = Vec<(i64, u32)>> {
    prop::collection::vec((0i64..90, 0u32..80), 1..40)
}

/// Replays a run through the engine, recording each decision in the ledger
/// as the webhook does; yields (time, current, decision) per step.
fn replay(
    p: &Policy,
    start: u32,
    run: &[(i64, u32)],
) -> Vec<(DateTime<Utc>, u32, Decision, Ledger)> {
    let mut ledger = Ledger::new();
    let mut now = at("2026-03-29T00:00:00Z"); // a DST day in Berlin
    let mut current = start;
    let mut out = Vec::new();
    for &(dt, requested) in run {
        now += Duration::seconds(dt);
        let before = ledger.clone();
        let d = decide(
            p,
            &ledger,
            Request {
                current,
                requested,
                actor: "a",
            },
            now,
        );
        if let Some(c) = d.change("a", now) {
            ledger.record(c);
        }
        out.push((now, current, d.clone(), before));
        current = d.replicas;
    }
    out
}

/// Replicas held just after `t`, replayed from the ledger independently of
/// the engine's own period arithmetic.
fn level_at(start: u32, steps: &[(DateTime<Utc>, u32, Decision, Ledger)], t: DateTime<Utc>) -> u32 {
    steps
        .iter()
        .take_while(|(when, ..)| *when <= t)
        .last()
        .map_or(start, |(_, _, d, _)| d.replicas)
}

/// `default` cases, unless `PROPTEST_CASES` asks for another number (`make
/// props`); the seed comes from `PROPTEST_RNG_SEED` when set (`make check`).
fn cases(default: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default;
    }
    config
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn result_is_always_within_active_bounds(p in arb_policy(), start in 0u32..80, run in arb_run()) {
        for (now, _, d, _) in replay(&p, start, &run) {
            let bounds = Bounds::at(&p, now, &mut Vec::new());
            prop_assert!(bounds.lower() <= d.governed && d.governed <= bounds.upper(),
                "{} outside {bounds} at {now}", d.governed);
        }
    }

    #[test]
    fn direction_never_reverses_inside_bounds(p in arb_policy(), start in 0u32..80, run in arb_run()) {
        for (now, current, d, _) in replay(&p, start, &run) {
            let bounds = Bounds::at(&p, now, &mut Vec::new());
            if bounds.lower() <= current && current <= bounds.upper() {
                let (lo, hi) = (current.min(d.requested), current.max(d.requested));
                prop_assert!(lo <= d.governed && d.governed <= hi,
                    "current {current} asked {} got {}", d.requested, d.governed);
            }
        }
    }

    #[test]
    fn no_rate_rule_is_exceeded_over_its_period(
        pods in 1u32..10, percent in 1u32..200, period in 1u32..120,
        start in 1u32..40, run in arb_run(),
    ) {
        // Pods and Percent rules, each alone, checked against the level held
        // at the start of every sliding period that ends at a decision.
        for rule in [format!("{pods} pods/{period}s"), format!("{percent}%/{period}s")] {
            let p = policy(&[(keys::SCALE_UP, &rule), (keys::SCALE_DOWN, &rule)]);
            let steps = replay(&p, start, &run);
            for (now, current, d, _) in &steps {
                let base = level_at(start, &steps, *now - Duration::seconds(i64::from(period)));
                let (up_cap, down_cap) = if rule.contains('%') {
                    let up = (f64::from(base) * (1.0 + f64::from(percent) / 100.0)).ceil() as u32;
                    let down = (f64::from(base) * (1.0 - f64::from(percent) / 100.0)).max(0.0) as u32;
                    (up, down)
                } else {
                    (base + pods, base.saturating_sub(pods))
                };
                prop_assert!(d.governed <= up_cap.max(*current), "{rule}: {base} -> {} at {now}", d.governed);
                prop_assert!(d.governed >= down_cap.min(*current), "{rule}: {base} -> {} at {now}", d.governed);
            }
        }
    }

    #[test]
    fn monotonic_scale_up_never_adds_more_than_pods_per_period(
        pods in 1u32..10, period in 1u32..120, start in 0u32..10,
        run in prop::collection::vec((0i64..90, 0u32..5), 1..40),
    ) {
        let p = policy(&[(keys::SCALE_UP, &format!("{pods} pods/{period}s"))]);
        // Requests only ever grow, so every change adds; sum additions per window.
        let mut level = start;
        let run: Vec<(i64, u32)> = run.into_iter().map(|(dt, step)| { level += step * 7; (dt, level) }).collect();
        let steps = replay(&p, start, &run);
        for (i, (t, ..)) in steps.iter().enumerate() {
            let window_start = *t - Duration::seconds(i64::from(period));
            let added: u32 = steps[..=i].iter()
                .filter(|(when, ..)| *when > window_start)
                .map(|(_, current, d, _)| d.replicas.saturating_sub(*current))
                .sum();
            prop_assert!(added <= pods, "{added} pods added within {period}s, rule allows {pods}");
        }
    }

    #[test]
    fn paused_policies_never_change_a_request(p in arb_policy(), current in 0u32..80, requested in 0u32..80, off in any::<bool>()) {
        let mut p = p;
        if off {
            p.mode = Mode::Off;
        } else {
            p.suspend_until = Some(at(NOW) + Duration::seconds(1));
        }
        let d = decide(&p, &Ledger::new(), Request { current, requested, actor: "a" }, at(NOW));
        prop_assert_eq!((d.replicas, d.governed, d.allowed), (requested, requested, true));
    }

    #[test]
    fn decisions_are_deterministic(p in arb_policy(), start in 0u32..80, run in arb_run()) {
        for (now, current, d, before) in replay(&p, start, &run) {
            let again = decide(&p, &before, Request { current, requested: d.requested, actor: "a" }, now);
            prop_assert_eq!(&again, &d);
        }
    }
}

mod deny;
mod quoted;
