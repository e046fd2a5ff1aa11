//! What reasons and phrases echo of a policy that parses: a window's text,
//! a recommendation's reason, rate rules. A valid value can still be long
//! (a list of days written out thousands of times) or, for the governor's
//! own annotations, hold anything: each is bounded and escaped.

use super::*;
use crate::{engine::loosenings, quoting::needs_escape};

/// A reason is short and holds nothing a terminal would act on.
fn assert_safe(text: &str, max: usize) {
    assert!(
        text.chars().count() <= max,
        "{} characters: {text}",
        text.chars().count()
    );
    assert!(!text.chars().any(needs_escape), "{text:?}");
}

#[test]
fn a_long_valid_window_is_named_by_its_start() {
    let days = vec!["Mon"; 20_000].join(",");
    let text = format!("{days} 00:00-24:00 Europe/Berlin max=3");
    let p = policy(&[(keys::WINDOWS, &text)]);
    let d = ask(&p, &Ledger::new(), 2, 10);
    assert_eq!(d.replicas, 3);
    let reason = &d.reasons[0].message;
    assert_safe(reason, 220);
    assert!(
        reason.starts_with(&format!(
            "window \"{}…\": asked 10, allowed 3",
            &days[..160]
        )),
        "{reason}"
    );
    assert_safe(&d.summary(), 220);
}

#[test]
fn a_recommendations_reason_is_escaped_and_bounded() {
    let why = format!("\\u202e\\u0007{}", "é".repeat(5000));
    let rec = format!(
        r#"{{"replicas":12,"reason":"{why}","computedAt":"2026-11-23T09:58:00Z","expiresAt":"2026-11-23T10:05:00Z","kind":"floor"}}"#
    );
    let p = policy(&[(keys::RECOMMENDATION, &rec)]);
    let d = ask(&p, &Ledger::new(), 12, 5);
    let reason = &d.reasons[0].message;
    assert_safe(reason, 460);
    assert!(
        reason.starts_with("recommendation floor 12 (\\u{202e}\\u{7}éé"),
        "{reason}"
    );
    assert!(reason.ends_with("éé): asked 5, allowed 12"), "{reason}");
}

#[test]
fn removed_or_looser_rules_are_named_within_a_bound() {
    let many = vec!["1 pods/60s"; 5000].join(", ");
    let stored = policy(&[(keys::SCALE_UP, &many)]);
    let found = loosenings(&stored, Some(&Policy::default()), at(NOW));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("scale-up rules removed (1 pods/60s, 1 pods/60s"));
    assert_safe(&found[0], 200);
    let looser = policy(&[(keys::SCALE_UP, &format!("{many}, 100 pods/60s"))]);
    let found = loosenings(&stored, Some(&looser), at(NOW));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("scale-up from 0 replicas: 1 -> 100 in one step ("));
    assert_safe(&found[0], 420);
}
