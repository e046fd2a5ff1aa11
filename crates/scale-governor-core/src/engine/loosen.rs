//! Whether a policy edit loosens what the stored policy allows. A request
//! that edits the policy is still governed by the stored one; this says what
//! the edit would allow from the next request on, so it can be reported
//! (and, with policy admins configured, refused).
//!
//! Bounds and rates are compared by what they allow, not by how they are
//! written: the bounds at every hour of the coming week, and the rate
//! limits from a spread of replica counts. Anything the new policy allows
//! that the stored one did not is a loosening.

use chrono::{DateTime, Duration, Utc};

use super::{Bounds, Ledger, Request, decide};
use crate::{
    policy::{Direction, MAX_REPLICA_COUNT, Mode, Policy, ScalingRules},
    quoting,
};

/// Replica counts the rate limits are compared from.
const PROBE_COUNTS: [u32; 8] = [0, 1, 2, 5, 10, 50, 100, 1000];
/// Hours ahead the bounds are compared over: one week, every hour.
const PROBE_HOURS: i64 = 7 * 24;

/// What the edit from `stored` to `new` would allow that `stored` does not,
/// one phrase each (empty when nothing is loosened). `new = None` means the
/// workload stops being governed (its label was removed).
pub fn loosenings(stored: &Policy, new: Option<&Policy>, now: DateTime<Utc>) -> Vec<String> {
    let Some(new) = new else {
        return vec!["removed the scale-governor.io/governed label".to_owned()];
    };
    let mut found = Vec::new();
    let enforcing = |mode: Mode| matches!(mode, Mode::Enforce | Mode::Deny);
    if enforcing(stored.mode) && !enforcing(new.mode) {
        found.push(format!("mode {} -> {}", stored.mode, new.mode));
    }
    if let Some(until) = new.suspend_until
        && until > now
        && stored.suspend_until.is_none_or(|old| until > old)
    {
        found.push(format!("suspended until {}", until.to_rfc3339()));
    }
    if let Some(phrase) = wider_bounds(stored, new, now) {
        found.push(phrase);
    }
    for (name, old, newer) in [
        ("scale-up", &stored.scale_up, &new.scale_up),
        ("scale-down", &stored.scale_down, &new.scale_down),
    ] {
        if let Some(old) = old
            && let Some(phrase) = looser_rules(name, old, newer.as_ref())
        {
            found.push(phrase);
        }
    }
    found
}

/// The first instant of the coming week where the new bounds are wider.
/// Recommendations are left out: they change all the time, and only the
/// governor writes them.
fn wider_bounds(stored: &Policy, new: &Policy, now: DateTime<Utc>) -> Option<String> {
    let strip = |p: &Policy| Policy {
        recommendation: None,
        ..p.clone()
    };
    let (stored, new) = (strip(stored), strip(new));
    for hour in 0..=PROBE_HOURS {
        let at = now + Duration::hours(hour);
        let old = Bounds::at(&stored, at, &mut Vec::new());
        let newer = Bounds::at(&new, at, &mut Vec::new());
        if newer.lower() < old.lower() || newer.upper() > old.upper() {
            let when = if hour == 0 {
                "now".to_owned()
            } else {
                format!("at {}", at.to_rfc3339())
            };
            return Some(format!(
                "bounds {when} {} -> {}",
                range(old.lower(), old.upper()),
                range(newer.lower(), newer.upper())
            ));
        }
    }
    None
}

fn range(lower: u32, upper: u32) -> String {
    if upper == MAX_REPLICA_COUNT {
        format!("{lower}..unbounded")
    } else {
        format!("{lower}..{upper}")
    }
}

/// Rules as a phrase names them: bounded, since a valid annotation can
/// still list thousands of rate policies.
fn rules(rules: &ScalingRules) -> String {
    quoting::escape(&rules.to_string(), 2 * quoting::MAX_QUOTED)
}

/// Whether `new` rules allow more change in one period, or stabilize over a
/// shorter window, than `old`, from any of [`PROBE_COUNTS`].
fn looser_rules(name: &str, old: &ScalingRules, new: Option<&ScalingRules>) -> Option<String> {
    let Some(new) = new else {
        return Some(format!("{name} rules removed ({})", rules(old)));
    };
    if new.stabilization_seconds < old.stabilization_seconds {
        return Some(format!(
            "{name} stabilization {}s -> {}s",
            old.stabilization_seconds, new.stabilization_seconds
        ));
    }
    let now = DateTime::<Utc>::UNIX_EPOCH;
    let allowed = |rules: &ScalingRules, current: u32| {
        let policy = Policy {
            scale_up: Some(rules.clone()).filter(|r| r.direction == Direction::Up),
            scale_down: Some(rules.clone()).filter(|r| r.direction == Direction::Down),
            ..Policy::default()
        };
        let requested = match rules.direction {
            Direction::Up => MAX_REPLICA_COUNT,
            Direction::Down => 0,
        };
        let request = Request {
            current,
            requested,
            actor: "probe",
        };
        decide(&policy, &Ledger::new(), request, now).replicas
    };
    for current in PROBE_COUNTS {
        let (before, after) = (allowed(old, current), allowed(new, current));
        if before.abs_diff(current) < after.abs_diff(current) {
            return Some(format!(
                "{name} from {current} replicas: {before} -> {after} in one step ({} -> {})",
                rules(old),
                rules(new)
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::keys;

    fn policy(pairs: &[(&str, &str)]) -> Policy {
        Policy::from_annotations(pairs.iter().copied()).unwrap()
    }

    fn now() -> DateTime<Utc> {
        "2026-11-23T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn the_same_or_a_tighter_policy_loosens_nothing() {
        let stored = policy(&[
            (keys::MAX_REPLICAS, "20"),
            (keys::SCALE_UP, "4 pods/60s"),
            (keys::SCALE_DOWN, "10%/60s, stabilization=5m"),
        ]);
        assert!(loosenings(&stored, Some(&stored), now()).is_empty());
        let tighter = policy(&[
            (keys::MAX_REPLICAS, "10"),
            (keys::MIN_REPLICAS, "2"),
            (keys::SCALE_UP, "2 pods/60s"),
            (keys::SCALE_DOWN, "10%/60s, stabilization=10m"),
            (keys::MODE, "deny"),
        ]);
        assert_eq!(
            loosenings(&stored, Some(&tighter), now()),
            Vec::<String>::new()
        );
        // The same rules written the HPA's way are the same rules.
        let respelled = policy(&[
            (keys::MAX_REPLICAS, " 20"),
            (keys::SCALE_UP, "4 Pods/60"),
            (
                keys::SCALE_DOWN,
                "10 percent/1m, stabilizationWindowSeconds=300",
            ),
        ]);
        assert!(loosenings(&stored, Some(&respelled), now()).is_empty());
    }

    #[test]
    fn each_way_of_loosening_is_named() {
        let stored = policy(&[
            (keys::MAX_REPLICAS, "20"),
            (keys::SCALE_UP, "4 pods/60s"),
            (keys::SCALE_DOWN, "10%/60s, stabilization=5m"),
            (keys::WINDOWS, "Mon-Sun 22:00-06:00 UTC max=4"),
        ]);
        let cases: [(&[(&str, &str)], &str); 7] = [
            (&[(keys::MODE, "off")], "mode enforce -> off"),
            (&[(keys::MODE, "audit")], "mode enforce -> audit"),
            (
                &[(keys::SUSPEND_UNTIL, "2099-01-01T00:00:00Z")],
                "suspended until 2099-01-01T00:00:00+00:00",
            ),
            (
                &[(keys::MAX_REPLICAS, "1000")],
                "bounds now 0..20 -> 0..1000",
            ),
            (
                &[(keys::WINDOWS, "Mon-Sun 23:00-06:00 UTC max=4")],
                "bounds at 2026-11-23T22:00:00+00:00 0..4 -> 0..20",
            ),
            (
                &[(keys::SCALE_UP, "40 pods/60s")],
                "scale-up from 0 replicas: 4 -> 40",
            ),
            (
                &[(keys::SCALE_DOWN, "10%/60s")],
                "scale-down stabilization 300s -> 0s",
            ),
        ];
        for (edit, expected) in cases {
            let mut pairs = vec![
                (keys::MAX_REPLICAS, "20"),
                (keys::SCALE_UP, "4 pods/60s"),
                (keys::SCALE_DOWN, "10%/60s, stabilization=5m"),
                (keys::WINDOWS, "Mon-Sun 22:00-06:00 UTC max=4"),
            ];
            for (k, v) in edit {
                pairs.retain(|(key, _)| key != k);
                pairs.push((k, v));
            }
            let found = loosenings(&stored, Some(&policy(&pairs)), now());
            assert!(
                found.iter().any(|f| f.starts_with(expected)),
                "{edit:?}: {found:?}"
            );
        }
        let no_rules = policy(&[(keys::MAX_REPLICAS, "20")]);
        let found = loosenings(&stored, Some(&no_rules), now());
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("scale-up rules removed")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|f| f.starts_with("bounds at")),
            "{found:?}"
        );
        assert_eq!(
            loosenings(&stored, None, now()),
            ["removed the scale-governor.io/governed label"]
        );
    }
}
