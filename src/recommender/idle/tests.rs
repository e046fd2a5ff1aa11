use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::{
    policy::{Policy, Recommendation, RecommendationKind, keys},
    recommend::{plan, schedule::WindowRaise},
    recommender::Memory,
};

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

fn observed(pairs: &[(&str, &str)], replicas: u32, state: Option<&str>) -> Observed {
    Observed {
        uid: None,
        policy: Policy::from_annotations(pairs.iter().copied()).map(Arc::new),
        replicas,
        generation: None,
        ready: None,
        replicas_writer: None,
        state: state.map(str::to_owned),
    }
}

fn restored() -> Memory {
    Memory {
        plan: plan::Memory {
            restored: true,
            ..plan::Memory::default()
        },
        ..Memory::default()
    }
}

fn remembering(plan: plan::Memory) -> Memory {
    Memory {
        plan: plan::Memory {
            restored: true,
            ..plan
        },
        ..Memory::default()
    }
}

#[test]
fn only_a_workload_with_nothing_to_do_is_left_out_of_a_pass() {
    // Monday 2026-11-23 10:00 UTC, inside a 08:00-20:00 window.
    let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
    let window = (keys::WINDOWS, "Mon-Fri 08:00-20:00 UTC min=4");
    let steady = observed(&[(keys::MIN_REPLICAS, "2"), window], 5, None);
    assert!(
        idle(&steady, None, now).is_some(),
        "inside its bounds, nothing remembered"
    );
    assert!(idle(&steady, Some(&restored()), now).is_some());

    let below = observed(&[window], 2, None);
    assert!(
        idle(&below, None, now).is_none(),
        "a window floor above replicas"
    );
    let above = observed(&[(keys::MAX_REPLICAS, "3")], 5, None);
    assert!(idle(&above, None, now).is_none(), "above a ceiling");
    let audit = observed(&[window, (keys::MODE, "audit")], 2, None);
    assert!(
        idle(&audit, None, now).is_some(),
        "audit mode never moves replicas"
    );

    let recommend = observed(
        &[(
            keys::RECOMMEND,
            r#"{"source":"s","pointer":"/x","targetPerPod":1}"#,
        )],
        5,
        None,
    );
    assert!(idle(&recommend, None, now).is_none(), "a source to sample");

    let persisted = observed(&[window], 5, Some(r#"{"v":1}"#));
    assert!(
        idle(&persisted, None, now).is_none(),
        "a last leader's state to restore"
    );
    assert!(
        idle(&persisted, Some(&restored()), now).is_some(),
        "restored, and nothing in it"
    );

    let raised = remembering(plan::Memory {
        raise: Some(WindowRaise {
            from: 2,
            to: 4,
            at: now,
        }),
        ..plan::Memory::default()
    });
    assert!(
        idle(&steady, Some(&raised), now).is_none(),
        "a raise to take back"
    );
    let failed = Memory {
        failures: 1,
        ..restored()
    };
    assert!(
        idle(&steady, Some(&failed), now).is_none(),
        "a write to retry"
    );
    let watching = || {
        remembering(plan::Memory {
            written: Some(rec(5, "proportional", now)),
            ..plan::Memory::default()
        })
    };
    assert!(
        idle(&steady, Some(&watching()), now).is_none(),
        "an expiry to report"
    );
    let mut reported = watching();
    reported.plan.expired_reported = true;
    assert!(idle(&steady, Some(&reported), now).is_some());

    let broken = observed(&[(keys::MIN_REPLICAS, "two")], 1, None);
    assert!(
        idle(&broken, None, now).is_some(),
        "an unparseable policy is not acted on"
    );
    let off = observed(&[window, (keys::MODE, "off")], 1, None);
    assert!(idle(&off, None, now).is_some());
}

#[test]
fn a_quiet_workload_is_looked_at_again_when_the_clock_could_change_its_bounds() {
    let now: DateTime<Utc> = "2026-11-23T10:00:20Z".parse().unwrap();
    let weekly = observed(
        &[(keys::WINDOWS, "Mon-Fri 08:00-20:00 Europe/Berlin min=1")],
        5,
        None,
    );
    assert_eq!(
        idle(&weekly, None, now),
        Some(now + Duration::hours(6)),
        "20:00 in Berlin is further than the horizon"
    );
    let later = now + Duration::hours(5);
    assert_eq!(
        idle(&weekly, None, later),
        Some("2026-11-23T19:00:00Z".parse().unwrap()),
        "20:00 in Berlin"
    );
    let unbounded = observed(&[(keys::MIN_REPLICAS, "1")], 5, None);
    assert_eq!(
        idle(&unbounded, None, now),
        Some(now + Duration::hours(6)),
        "no clock in the policy: the horizon"
    );

    // An absolute window 10 s away (Berlin is UTC+1 in November).
    let absolute = observed(
        &[(
            keys::WINDOWS,
            "2026-11-23T11:00:30/2026-11-23T11:05:00 Europe/Berlin min=1",
        )],
        5,
        None,
    );
    assert_eq!(
        idle(&absolute, None, now),
        Some("2026-11-23T10:00:30Z".parse().unwrap())
    );

    let suspended = observed(&[(keys::SUSPEND_UNTIL, "2026-11-23T10:00:45Z")], 5, None);
    assert_eq!(
        idle(&suspended, None, now),
        Some("2026-11-23T10:00:45Z".parse().unwrap()),
        "the end of a suspension"
    );

    let broken = observed(&[(keys::MIN_REPLICAS, "two")], 1, None);
    assert_eq!(
        idle(&broken, None, now),
        Some(DateTime::<Utc>::MAX_UTC),
        "until the watch brings a new policy"
    );
}
