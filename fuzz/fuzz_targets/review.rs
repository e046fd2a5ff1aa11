//! Fuzzes the admission path: arbitrary bytes as an AdmissionReview body, to
//! `/mutate` and to `/validate`, against a cache that already governs a few
//! workloads, so that `/scale` requests reach the engine.
//!
//! `Err(BadReview)` is a fine answer. A panic is a bug, and so is an answer
//! that breaks what the apiserver relies on:
//! - a refusal carries a status, and a patch always says `JSONPatch`;
//! - a patch is one `add` of `/spec/replicas` with an int32 value;
//! - the same review sent twice (an apiserver retry) gets the same answer.

#![no_main]

use base64::Engine as _;
use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use scale_governor::{
    testing::cache::{Cache, Update},
    engine::Outcome,
    policy::{MAX_REPLICA_COUNT, Policy, keys},
    testing::webhook::{
        admit::{Endpoint, Reviewed, review},
        guard::AdmitConfig,
        review::ReviewResponse,
    },
    workload::WorkloadKind,
};
use serde_json::Value;

/// The instant of the seeds, which are also the router fixtures of
/// `tests/webhook_router.rs`.
const NOW: &str = "2026-11-23T10:00:00Z";

/// `(kind, namespace/name, replicas, annotations)` in the cache. `shop/web`
/// is the workload of the fixtures; the others give each mode, a pause, a
/// recommendation and a broken policy a name the fuzzer can find.
type Seeded = (
    WorkloadKind,
    &'static str,
    u32,
    &'static [(&'static str, &'static str)],
);

const WORKLOADS: &[Seeded] = &[
    (
        WorkloadKind::Deployment,
        "shop/web",
        5,
        &[
            (keys::MIN_REPLICAS, "2"),
            (keys::MAX_REPLICAS, "20"),
            (
                keys::WINDOWS,
                "Mon-Fri 08:00-20:00 Europe/Berlin min=4\nMon-Sun 23:00-05:00 Europe/Berlin max=6\n2026-12-24/2026-12-26 Europe/Berlin max=3",
            ),
            (keys::SCALE_UP, "4 pods/60s, 100%/60s"),
            (keys::SCALE_DOWN, "20%/60s, stabilization=5m"),
        ],
    ),
    (
        WorkloadKind::Deployment,
        "shop/api",
        20,
        &[
            (keys::MODE, "deny"),
            (keys::MIN_REPLICAS, "2"),
            (keys::SCALE_UP, "4 pods/60s, 50%/60s, select=Max"),
            (keys::SCALE_DOWN, "10%/60s, stabilization=5m"),
        ],
    ),
    (
        WorkloadKind::Deployment,
        "shop/audit",
        14,
        &[
            (keys::MODE, "audit"),
            (keys::MAX_REPLICAS, "50"),
            (
                keys::RECOMMENDATION,
                r#"{"replicas":14,"reason":"lunch peak","computedAt":"2026-11-23T09:58:00Z","expiresAt":"2026-11-23T10:03:00Z","kind":"target"}"#,
            ),
        ],
    ),
    (
        WorkloadKind::Deployment,
        "shop/broken",
        5,
        &[(keys::WINDOWS, "Mon-Fry 08:00-20:00 Europe/Berlin min=10")],
    ),
    (
        WorkloadKind::StatefulSet,
        "shop/db",
        3,
        &[
            (keys::MAX_REPLICAS, "5"),
            (keys::SUSPEND_UNTIL, "2026-11-23T12:00:00Z"),
            (keys::SCALE_DOWN, "select=Disabled"),
        ],
    ),
];

/// Spent budget for `shop/web` and `shop/api`: two changes in the last minute.
const HISTORY: &str = r#"[[1795427960,12,16,16,"alice"],[1795427980,16,20,20,"bob"]]"#;

fn cache(now: DateTime<Utc>) -> Cache {
    let cache = Cache::new();
    for &(kind, key, replicas, annotations) in WORKLOADS {
        cache.apply(
            Update {
                kind,
                key,
                uid: Some(format!("uid-{key}")),
                policy: Policy::from_annotations(annotations.iter().copied()),
                replicas,
                ready: None,
                history: Some(HISTORY),
                written_at: None,
                generation: None,
                actor: Some("fuzz"),
                state: None,
            },
            now,
        );
    }
    cache
}

fuzz_target!(|data: &[u8]| {
    let now: DateTime<Utc> = NOW.parse().expect("NOW");
    // A fresh cache per input: the ledger a review spends must not leak into
    // the next input, or a crash would not reproduce on its own.
    let cache = cache(now);
    let config = AdmitConfig::default();
    for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
        let Ok(first) = review(endpoint, data, &cache, &config, now) else {
            // Not an AdmissionReview, or no uid: the handler answers 400.
            continue;
        };
        check(&first, data);
        let again = review(endpoint, data, &cache, &config, now).expect("a review read once reads again");
        assert_eq!(
            first.response, again.response,
            "a re-sent review (same uid) must get the same answer"
        );
    }
});

fn check(reviewed: &Reviewed, data: &[u8]) {
    let response = &reviewed.response;
    assert!(!response.uid.is_empty(), "answered a review without a uid");
    serde_json::to_vec(&ReviewResponse::new(reviewed.version, response.clone())).expect("response serializes");
    if !response.allowed {
        assert!(
            response.status.is_some(),
            "refusal without a status: {response:?}"
        );
    }
    assert_eq!(
        response.patch.is_some(),
        response.patch_type.as_deref() == Some("JSONPatch"),
        "patch and patchType disagree: {response:?}"
    );
    if let Some(patch) = &response.patch {
        assert!(response.allowed, "a refusal carries a patch: {response:?}");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .expect("patch is base64");
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("patch is a JSON Patch");
        assert_eq!(patch.0.len(), 1, "patch is not one operation: {patch:?}");
        // The patch must apply to the object exactly as sent, as the
        // apiserver applies it.
        let review: Value = serde_json::from_slice(data).expect("an answered review is JSON");
        let mut object = review["request"]["object"].clone();
        json_patch::patch(&mut object, &patch)
            .unwrap_or_else(|e| panic!("patch {patch:?} does not apply to the object: {e}"));
        let replicas = object["spec"]["replicas"]
            .as_u64()
            .expect("the patched object has a replica count");
        assert!(
            replicas <= u64::from(MAX_REPLICA_COUNT),
            "patch sets {replicas} replicas, above int32: {response:?}"
        );
    }
    if let Some(d) = reviewed.report.as_ref().and_then(|r| r.decision.as_ref()) {
        let _ = d.summary();
        if d.outcome == Outcome::Clamped {
            assert!(response.patch.is_some(), "clamped without a patch: {d:?}");
        }
    }
}
