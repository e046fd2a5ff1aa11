//! Policy edits in the same request as a scale: the stored policy governs
//! the request and says so, and the validating webhook reports or refuses
//! the edit; each checked in the response, the Event and the log line.

use serde_json::json;

use super::{said::said, *};

/// A policy edit in the same request as a scale: the stored policy governs
/// the request (the new one from the next request on), and the loosening
/// is reported by the validating webhook.
#[test]
fn a_loosening_edit_does_not_govern_its_own_request() {
    let cache = Cache::new();
    let stored = json!({ keys::MAX_REPLICAS: "20" });
    let loosened = json!({ keys::MAX_REPLICAS: "1000", keys::MODE: "off" });
    let b = body(
        "UPDATE",
        None,
        deployment(1000, loosened.clone(), true),
        Some(deployment(10, stored.clone(), true)),
        false,
    );
    let m = review(Endpoint::Mutate, &b, &cache, now()).unwrap();
    assert_eq!(
        patched_replicas(&m.response, &deployment(1000, loosened.clone(), true)),
        Some(20)
    );
    assert!(
        m.response
            .warnings
            .iter()
            .any(|w| w.contains("the stored policy governs it")),
        "{:?}",
        m.response.warnings
    );
    let v = review(Endpoint::Validate, &b, &cache, now()).unwrap();
    assert!(v.response.allowed);
    let notice = v.report.unwrap().notices.into_iter().next().unwrap();
    assert_eq!(notice.kind, NoticeKind::Loosened);
    assert!(
        notice.message.starts_with(
            "alice loosened the policy: mode enforce -> off; bounds now 0..20 -> 0..1000"
        ),
        "{}",
        notice.message
    );
    // Removing the label in the same request as a scale is governed too.
    let b = body(
        "UPDATE",
        None,
        deployment(1000, stored.clone(), false),
        Some(deployment(10, stored, true)),
        false,
    );
    let m = review(Endpoint::Mutate, &b, &cache, now()).unwrap();
    assert_eq!(
        patched_replicas(&m.response, &deployment(1000, json!({}), false)),
        Some(20)
    );
}

/// With policy admins configured, a loosening edit by anyone else is refused
/// by the validating webhook with the reason, and reported.
#[test]
fn only_policy_admins_may_loosen() {
    let cache = Cache::new();
    let config = AdmitConfig {
        policy_admins: "group=system:masters".parse().unwrap(),
        ..AdmitConfig::default()
    };
    let b = body(
        "UPDATE",
        None,
        deployment(
            10,
            json!({ keys::SUSPEND_UNTIL: "2026-11-23T12:00:00Z" }),
            true,
        ),
        Some(deployment(10, json!({}), true)),
        false,
    );
    let v = super::super::review(Endpoint::Validate, &b, &cache, &config, now()).unwrap();
    assert!(!v.response.allowed);
    assert_eq!(
        v.response.status.unwrap().message,
        "scale-governor: only policy admins (group system:masters) may loosen this policy; alice asked for: suspended until 2026-11-23T12:00:00+00:00"
    );
    assert_eq!(
        v.report.unwrap().notices.into_iter().next().unwrap().kind,
        NoticeKind::EditRefused
    );
}

/// A governed label added to a workload whose annotations already hold a
/// broken policy is refused like writing the broken policy.
#[test]
fn labelling_a_workload_with_a_broken_policy_is_refused() {
    let cache = Cache::new();
    let bad = json!({ keys::WINDOWS: "Mon-Fry 08:00-20:00 min=1" });
    let b = body(
        "UPDATE",
        None,
        deployment(3, bad.clone(), true),
        Some(deployment(3, bad, false)),
        false,
    );
    let v = review(Endpoint::Validate, &b, &cache, now()).unwrap();
    assert_eq!(v.response.status.expect("refused").code, 422);
    assert_eq!(
        v.report.unwrap().notices.into_iter().next().unwrap().kind,
        NoticeKind::InvalidPolicy
    );
}

/// Every loosening edit in the same request as a scale lands at the stored
/// policy's bound and is told so, the governed label removed as much as a
/// higher `max-replicas`; the decision's log line says it too. The
/// validating webhook reports each loosening in an Event and a log line.
#[test]
fn every_loosening_edit_with_a_scale_is_told_the_stored_policy_governs_it() {
    let capped = json!({ keys::MAX_REPLICAS: "20" });
    let window = json!({ keys::WINDOWS: "Mon-Sun 00:00-24:00 max=20" });
    let rated = json!({ keys::SCALE_UP: "4 pods/60s" });
    let cases = [
        (
            "the label removed",
            &capped,
            capped.clone(),
            false,
            20,
            "removed the scale-governor.io/governed label",
        ),
        (
            "a higher max-replicas",
            &capped,
            json!({ keys::MAX_REPLICAS: "1000" }),
            true,
            20,
            "bounds now 0..20 -> 0..1000",
        ),
        (
            "mode off",
            &capped,
            json!({ keys::MAX_REPLICAS: "20", keys::MODE: "off" }),
            true,
            20,
            "mode enforce -> off",
        ),
        (
            "a pause",
            &capped,
            json!({ keys::MAX_REPLICAS: "20", keys::SUSPEND_UNTIL: "2026-11-23T12:00:00Z" }),
            true,
            20,
            "suspended until 2026-11-23T12:00:00+00:00",
        ),
        (
            "a window removed",
            &window,
            json!({}),
            true,
            20,
            "bounds now 0..20 -> 0..unbounded",
        ),
        (
            "the label removed from rate rules",
            &rated,
            rated.clone(),
            false,
            14,
            "removed the scale-governor.io/governed label",
        ),
        (
            "rate rules removed",
            &rated,
            json!({}),
            true,
            14,
            "scale-up rules removed (4 pods/60s, select=Max, stabilization=0s)",
        ),
    ];
    for (what, stored, new, governed, lands, loosened) in cases {
        let object = deployment(1000, new.clone(), governed);
        let b = body(
            "UPDATE",
            None,
            object.clone(),
            Some(deployment(10, stored.clone(), true)),
            false,
        );
        let m = said(Endpoint::Mutate, &b, Cache::new(), now());
        assert_eq!(
            patched_replicas(&m.response, &object),
            Some(lands),
            "{what}"
        );
        assert!(
            m.response
                .warnings
                .contains(&format!("scale-governor: {EDITS_POLICY}")),
            "{what}: {:?}",
            m.response.warnings
        );
        assert!(m.logs.contains(EDITS_POLICY), "{what}: {}", m.logs);
        assert!(
            m.json_logs.contains(EDITS_POLICY),
            "{what}: {}",
            m.json_logs
        );
        let v = said(Endpoint::Validate, &b, Cache::new(), now());
        let notice = &v.report.as_ref().unwrap().notices[0];
        assert_eq!(notice.kind, NoticeKind::Loosened, "{what}");
        v.assert_reports(&format!("alice loosened the policy: {loosened}"));
        assert_eq!(v.events[0].reason, "PolicyLoosened", "{what}");
    }
}

/// A tighter edit, or none, says nothing of the kind: a tighter policy
/// governs its own request.
#[test]
fn a_request_that_does_not_loosen_the_policy_is_not_told_it_does() {
    let stored = json!({ keys::MAX_REPLICAS: "20" });
    for (new, lands) in [
        (stored.clone(), 20),
        (json!({ keys::MAX_REPLICAS: "15" }), 15),
        (
            json!({ keys::MAX_REPLICAS: "20", keys::SCALE_UP: "4 pods/60s" }),
            14,
        ),
    ] {
        let object = deployment(1000, new.clone(), true);
        let b = body(
            "UPDATE",
            None,
            object.clone(),
            Some(deployment(10, stored.clone(), true)),
            false,
        );
        let m = said(Endpoint::Mutate, &b, Cache::new(), now());
        assert_eq!(patched_replicas(&m.response, &object), Some(lands), "{new}");
        assert!(
            !m.response.warnings.iter().any(|w| w.contains(EDITS_POLICY)),
            "{new}"
        );
        assert!(!m.logs.contains(EDITS_POLICY), "{new}");
        let v = said(Endpoint::Validate, &b, Cache::new(), now());
        assert!(v.report.is_none_or(|r| r.notices.is_empty()), "{new}");
    }
    // A /scale never edits the policy.
    let cache = cache_with(&[(keys::MAX_REPLICAS, "20")], 5);
    let b = body("UPDATE", Some("scale"), scale(100), Some(scale(5)), false);
    let m = said(Endpoint::Mutate, &b, cache, now());
    assert_eq!(
        m.response.warnings,
        ["scale-governor: max-replicas 20: asked 100, allowed 20"]
    );
}
