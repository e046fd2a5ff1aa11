//! Deny mode's steps toward the bounds: what it lets through from outside
//! the bounds, what it still refuses, and how that relates to enforce mode.

use proptest::prelude::*;

use super::*;

/// The outcome, the count admitted and what enforce mode would make of the
/// request, in one tuple.
fn verdict(d: &Decision) -> (bool, Outcome, u32, u32) {
    (d.allowed, d.outcome, d.replicas, d.governed)
}

/// KEDA scales to 0 and asks for 1 on activation: refusing it would leave
/// the workload at 0 for good.
#[test]
fn deny_mode_lets_a_step_toward_the_floor_through() {
    let p = policy(&[(keys::MODE, "deny"), (keys::MIN_REPLICAS, "2")]);
    let d = ask(&p, &Ledger::new(), 0, 1);
    assert_eq!(verdict(&d), (true, Outcome::Stepped, 1, 2));
    assert_eq!(
        messages(&d),
        [
            "min-replicas 2: asked 1 (current 0), still below the floor 2; allowed as a step toward it"
        ]
    );
    assert_eq!(d.reasons[0].rule, Rule::MinReplicas);
    assert!(d.warnings.is_empty());
    // It is a change like any other: the ledger books it.
    let c = d.change("alice", at(NOW)).unwrap();
    assert_eq!((c.from, c.to, c.requested), (0, 1, 1));
    // Then into the bounds, as usual; back down is refused.
    assert_eq!(
        verdict(&ask(&p, &Ledger::new(), 1, 2)),
        (true, Outcome::Unchanged, 2, 2)
    );
    let d = ask(&p, &Ledger::new(), 2, 1);
    assert_eq!(verdict(&d), (false, Outcome::Denied, 2, 2));
    assert_eq!(messages(&d), ["min-replicas 2: asked 1, allowed 2"]);
}

#[test]
fn deny_mode_below_the_floor_refuses_what_is_not_a_step_toward_it() {
    let p = policy(&[
        (keys::MODE, "deny"),
        (keys::MIN_REPLICAS, "5"),
        (keys::MAX_REPLICAS, "10"),
    ]);
    let d = ask(&p, &Ledger::new(), 2, 4);
    assert_eq!(verdict(&d), (true, Outcome::Stepped, 4, 5));
    assert_eq!(
        messages(&d),
        [
            "min-replicas 5: asked 4 (current 2), still below the floor 5; allowed as a step toward it"
        ]
    );
    // Into the bounds: allowed as it always was.
    assert_eq!(
        verdict(&ask(&p, &Ledger::new(), 2, 6)),
        (true, Outcome::Unchanged, 6, 6)
    );
    // Past the other bound, away from the floor, or no change at all.
    let d = ask(&p, &Ledger::new(), 2, 12);
    assert_eq!(verdict(&d), (false, Outcome::Denied, 2, 10));
    assert_eq!(messages(&d), ["max-replicas 10: asked 12, allowed 10"]);
    let d = ask(&p, &Ledger::new(), 2, 1);
    assert_eq!(verdict(&d), (false, Outcome::Denied, 2, 5));
    assert_eq!(messages(&d), ["min-replicas 5: asked 1, allowed 5"]);
    let d = ask(&p, &Ledger::new(), 2, 2);
    assert_eq!(verdict(&d), (false, Outcome::Denied, 2, 5));
    assert_eq!(messages(&d), ["min-replicas 5: asked 2, allowed 5"]);
}

#[test]
fn deny_mode_above_the_ceiling_lets_a_step_down_through() {
    let p = policy(&[
        (keys::MODE, "deny"),
        (keys::MIN_REPLICAS, "5"),
        (keys::MAX_REPLICAS, "10"),
    ]);
    let d = ask(&p, &Ledger::new(), 30, 20);
    assert_eq!(verdict(&d), (true, Outcome::Stepped, 20, 10));
    assert_eq!(
        messages(&d),
        [
            "max-replicas 10: asked 20 (current 30), still above the ceiling 10; allowed as a step toward it"
        ]
    );
    assert_eq!(d.reasons[0].rule, Rule::MaxReplicas);
    assert_eq!(
        verdict(&ask(&p, &Ledger::new(), 30, 8)),
        (true, Outcome::Unchanged, 8, 8)
    );
    // Further up, or down past the floor, is refused.
    let d = ask(&p, &Ledger::new(), 30, 31);
    assert_eq!(verdict(&d), (false, Outcome::Denied, 30, 10));
    let d = ask(&p, &Ledger::new(), 30, 3);
    assert_eq!(verdict(&d), (false, Outcome::Denied, 30, 5));
    assert_eq!(messages(&d), ["min-replicas 5: asked 3, allowed 5"]);
}

/// In enforce mode the bounds win over the rate rules (the HPA's order), so
/// in deny mode neither a rate rule nor `select=Disabled` refuses a step.
#[test]
fn deny_mode_steps_are_not_refused_by_rate_rules() {
    let p = policy(&[
        (keys::MODE, "deny"),
        (keys::MIN_REPLICAS, "10"),
        (keys::SCALE_UP, "1 pods/60s, stabilization=120s"),
    ]);
    let mut ledger = Ledger::new();
    // The scale-up budget is spent, and a low request is in the window.
    ledger.record(change(30, 1, 2, 2));
    let d = ask(&p, &ledger, 2, 6);
    assert_eq!(verdict(&d), (true, Outcome::Stepped, 6, 10));
    assert_eq!(
        messages(&d),
        [
            "min-replicas 10: asked 6 (current 2), still below the floor 10; allowed as a step toward it"
        ]
    );
    // Enforce mode makes the same request the floor, whatever the rates say.
    let mut enforce = p.clone();
    enforce.mode = Mode::Enforce;
    assert_eq!(ask(&enforce, &ledger, 2, 6).replicas, 10);
    // Past the floor, the rate rules govern again, as they do in enforce
    // mode: 2 -> 12 would be 10 there.
    let d = ask(&p, &ledger, 2, 12);
    assert_eq!(verdict(&d), (false, Outcome::Denied, 2, 10));
    // A disabled direction does not refuse a step either.
    let p = policy(&[
        (keys::MODE, "deny"),
        (keys::MAX_REPLICAS, "10"),
        (keys::SCALE_DOWN, "select=Disabled"),
    ]);
    assert_eq!(
        verdict(&ask(&p, &Ledger::new(), 30, 20)),
        (true, Outcome::Stepped, 20, 10)
    );
}

#[test]
fn deny_mode_steps_toward_a_window_and_a_recommendation() {
    let p = policy(&[
        (keys::MODE, "deny"),
        (keys::MIN_REPLICAS, "2"),
        (keys::WINDOWS, "Mon-Fri 08:00-20:00 Europe/Berlin min=10"),
    ]);
    let d = ask(&p, &Ledger::new(), 3, 7);
    assert_eq!(verdict(&d), (true, Outcome::Stepped, 7, 10));
    assert_eq!(
        messages(&d),
        [
            "window \"Mon-Fri 08:00-20:00 Europe/Berlin min=10\": asked 7 (current 3), still below the floor 10; allowed as a step toward it"
        ]
    );
    assert_eq!(d.reasons[0].rule, Rule::Window);
    let rec = r#"{"replicas":12,"reason":"peak ahead","computedAt":"2026-11-23T09:58:00Z","expiresAt":"2026-11-23T10:05:00Z","kind":"floor"}"#;
    let p = policy(&[(keys::MODE, "deny"), (keys::RECOMMENDATION, rec)]);
    let d = ask(&p, &Ledger::new(), 4, 8);
    assert_eq!(verdict(&d), (true, Outcome::Stepped, 8, 12));
    assert_eq!(
        messages(&d),
        [
            "recommendation floor 12 (peak ahead): asked 8 (current 4), still below the floor 12; allowed as a step toward it"
        ]
    );
    assert_eq!(ask(&p, &Ledger::new(), 4, 3).outcome, Outcome::Denied);
    // A stale recommendation is no bound: nothing to step toward.
    let stale = rec.replace("10:05", "09:59");
    let p = policy(&[(keys::MODE, "deny"), (keys::RECOMMENDATION, &stale)]);
    assert_eq!(ask(&p, &Ledger::new(), 4, 3).outcome, Outcome::Unchanged);
}

#[test]
fn enforce_and_audit_modes_are_unchanged_by_steps() {
    let enforce = policy(&[(keys::MIN_REPLICAS, "2")]);
    assert_eq!(
        verdict(&ask(&enforce, &Ledger::new(), 0, 1)),
        (true, Outcome::Clamped, 2, 2)
    );
    let audit = policy(&[(keys::MODE, "audit"), (keys::MIN_REPLICAS, "2")]);
    assert_eq!(
        verdict(&ask(&audit, &Ledger::new(), 0, 1)),
        (true, Outcome::Audited, 1, 2)
    );
}

/// A request that edits the policy too must step toward the bounds of
/// both the stored and the new policy (or be allowed outright by each).
#[test]
fn a_step_with_a_policy_edit_moves_toward_both_policies() {
    let decide2 = |stored: &Policy, new: &Policy, current, requested| {
        let request = Request {
            current,
            requested,
            actor: "alice",
        };
        decide_all(&[stored, new], &Ledger::new(), request, at(NOW))
    };
    let min = |n: &str| policy(&[(keys::MODE, "deny"), (keys::MIN_REPLICAS, n)]);
    // Below both floors: a step for each, named once when they agree.
    let d = decide2(&min("5"), &min("8"), 2, 4);
    assert_eq!(verdict(&d), (true, Outcome::Stepped, 4, 8));
    assert_eq!(
        messages(&d),
        [
            "min-replicas 5: asked 4 (current 2), still below the floor 5; allowed as a step toward it",
            "min-replicas 8: asked 4 (current 2), still below the floor 8; allowed as a step toward it"
        ]
    );
    let with_rate = policy(&[
        (keys::MODE, "deny"),
        (keys::MIN_REPLICAS, "5"),
        (keys::SCALE_UP, "1 pods/60s"),
    ]);
    let d = decide2(&min("5"), &with_rate, 2, 4);
    assert_eq!(verdict(&d), (true, Outcome::Stepped, 4, 5));
    assert_eq!(d.reasons.len(), 1, "{:?}", messages(&d));
    // A step for one, inside the bounds of the other: allowed.
    let d = decide2(&min("5"), &min("3"), 2, 4);
    assert_eq!(verdict(&d), (true, Outcome::Stepped, 4, 4));
    let d = decide2(&min("3"), &min("5"), 2, 4);
    assert_eq!(verdict(&d), (true, Outcome::Stepped, 4, 5));
    // Toward the stored ceiling, away from the new floor: refused.
    let stored = policy(&[(keys::MODE, "deny"), (keys::MAX_REPLICAS, "10")]);
    let d = decide2(&stored, &min("15"), 12, 11);
    assert_eq!(verdict(&d), (false, Outcome::Denied, 12, 15));
    assert_eq!(messages(&d), ["min-replicas 15: asked 11, allowed 15"]);
}

// ---- property tests -------------------------------------------------------

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn deny_mode_never_moves_the_count_away_from_the_bounds(p in arb_policy(), start in 0u32..80, run in arb_run()) {
        let mut p = p;
        p.mode = Mode::Deny;
        for (now, current, d, _) in replay(&p, start, &run) {
            let bounds = Bounds::at(&p, now, &mut Vec::new());
            let (lower, upper) = (bounds.lower(), bounds.upper());
            let distance = |n: u32| lower.saturating_sub(n) + n.saturating_sub(upper);
            if d.allowed {
                // Closer to the bounds (or inside them), and never past the
                // bound on the far side.
                prop_assert!(distance(d.replicas) <= distance(current),
                    "{current} -> {} moves away from {bounds}", d.replicas);
                prop_assert!(current >= lower || d.replicas <= upper,
                    "{current} -> {} passes {bounds}", d.replicas);
                prop_assert!(current <= upper || d.replicas >= lower,
                    "{current} -> {} passes {bounds}", d.replicas);
            } else {
                prop_assert_eq!(d.replicas, current);
            }
        }
    }

    #[test]
    fn deny_mode_allows_what_enforce_keeps_and_steps_toward_it(p in arb_policy(), start in 0u32..80, run in arb_run()) {
        let mut deny = p.clone();
        deny.mode = Mode::Deny;
        for (now, current, d, before) in replay(&deny, start, &run) {
            let request = Request { current, requested: d.requested, actor: "a" };
            let e = decide(&p, &before, request, now);
            // Enforce keeps the request, or the request lies strictly
            // between the current count and where enforce would take it.
            let kept = e.replicas == d.requested;
            let (lo, hi) = (current.min(e.replicas), current.max(e.replicas));
            let step = lo < d.requested && d.requested < hi;
            prop_assert_eq!(d.allowed, kept || step,
                "current {} asked {}: enforce {}, deny {:?}", current, d.requested, e.replicas, d.outcome);
            prop_assert_eq!(d.governed, e.governed);
            prop_assert_eq!(d.outcome == Outcome::Stepped, step);
        }
    }
}
