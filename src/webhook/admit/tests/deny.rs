//! Deny mode at the handler: refused by the validating webhook, ignored by
//! the mutating one, a step toward the bounds let through, and an update
//! that keeps replicas never blocked.

use serde_json::json;

use super::*;

#[test]
fn deny_mode_is_refused_by_validate_and_ignored_by_mutate() {
    let cache = cache_with(&[(keys::MODE, "deny"), (keys::MAX_REPLICAS, "20")], 5);
    let b = body("UPDATE", Some("scale"), scale(100), Some(scale(5)), false);
    let m = review(Endpoint::Mutate, &b, &cache, now()).unwrap();
    assert!(m.response.allowed && m.response.patch.is_none() && m.report.is_none());
    let v = review(Endpoint::Validate, &b, &cache, now()).unwrap();
    assert!(!v.response.allowed);
    let status = v.response.status.unwrap();
    assert_eq!(
        (status.code, status.message.as_str()),
        (
            403,
            "scale-governor: max-replicas 20: asked 100, allowed 20"
        )
    );
}

/// KEDA scales a workload to 0 and on activation asks for 1. In deny mode
/// under `min-replicas: "2"`, refusing that would leave it at 0 for good: a
/// step toward the floor is allowed with a warning, and reported.
#[test]
fn deny_mode_allows_a_step_toward_the_floor_with_a_warning() {
    let cache = cache_with(&[(keys::MODE, "deny"), (keys::MIN_REPLICAS, "2")], 0);
    let mut zero = scale(0);
    zero["spec"] = json!({});
    let scaling = |uid: &str, from: Value, to: i64, dry_run: bool| {
        let mut b: Value = serde_json::from_slice(&body(
            "UPDATE",
            Some("scale"),
            scale(to),
            Some(from),
            dry_run,
        ))
        .unwrap();
        b["request"]["uid"] = uid.into();
        serde_json::to_vec(&b).unwrap()
    };
    let ledger = || {
        let entry = cache.get(WorkloadKind::Deployment, "shop/web").unwrap();
        let changes = entry.ledger().changes().to_vec();
        changes.iter().map(|c| (c.from, c.to)).collect::<Vec<_>>()
    };
    let warning = "scale-governor: min-replicas 2: asked 1 (current 0), still below the floor 2; allowed as a step toward it";
    // The mutating webhook leaves deny mode to the validating one.
    let m = review(
        Endpoint::Mutate,
        &scaling("u-0", zero.clone(), 1, false),
        &cache,
        now(),
    )
    .unwrap();
    assert!(m.response.allowed && m.response.warnings.is_empty() && m.report.is_none());
    // A dry run gets the same answer and books nothing.
    let dry = review(
        Endpoint::Validate,
        &scaling("u-dry", zero.clone(), 1, true),
        &cache,
        now(),
    )
    .unwrap();
    assert!(dry.response.allowed);
    assert_eq!(dry.response.warnings, [warning]);
    assert!(dry.report.unwrap().dry_run);
    assert_eq!(ledger(), []);
    // 0 -> 1: allowed, with the warning, no patch, and reported.
    let r = review(
        Endpoint::Validate,
        &scaling("u-1", zero, 1, false),
        &cache,
        now(),
    )
    .unwrap();
    assert!(r.response.allowed && r.response.status.is_none() && r.response.patch.is_none());
    assert_eq!(r.response.warnings, [warning]);
    assert_eq!(
        r.response.audit_annotations["decision"],
        "stepped: min-replicas 2: asked 1 (current 0), still below the floor 2; allowed as a step toward it"
    );
    let d = r.report.unwrap().decision.unwrap();
    assert_eq!(
        (d.outcome, d.current, d.requested, d.replicas),
        (Outcome::Stepped, 0, 1, 1)
    );
    assert_eq!(ledger(), [(0, 1)]);
    // 1 -> 2: into the bounds, allowed as any request inside them.
    let r = review(
        Endpoint::Validate,
        &scaling("u-2", scale(1), 2, false),
        &cache,
        now(),
    )
    .unwrap();
    assert!(r.response.allowed && r.response.warnings.is_empty());
    assert_eq!(
        r.report.unwrap().decision.unwrap().outcome,
        Outcome::Unchanged
    );
    // 2 -> 1: away from the floor, refused.
    let r = review(
        Endpoint::Validate,
        &scaling("u-3", scale(2), 1, false),
        &cache,
        now(),
    )
    .unwrap();
    assert!(!r.response.allowed);
    let status = r.response.status.unwrap();
    assert_eq!(
        (status.code, status.message.as_str()),
        (403, "scale-governor: min-replicas 2: asked 1, allowed 2")
    );
}

#[test]
fn deny_mode_does_not_block_updates_that_keep_replicas() {
    let cache = Cache::new();
    let annotations = json!({ keys::MODE: "deny", keys::MAX_REPLICAS: "5" });
    let old = deployment(10, annotations.clone(), true);
    let new = deployment(10, annotations, true);
    let r = review(
        Endpoint::Validate,
        &body("UPDATE", None, new, Some(old), false),
        &cache,
        now(),
    )
    .unwrap();
    assert!(r.response.allowed);
    assert!(
        r.response.warnings[0].contains("outside the policy"),
        "{:?}",
        r.response.warnings
    );
}
