//! Fuzzes the policy parser and, whenever a policy parses, the engine on it.
//!
//! Input: segments separated by NUL bytes, each `NAME VALUE` (the name ends
//! at the first space or newline), so a seed stays readable and a new
//! annotation key never shifts what the old seeds feed:
//!
//! | name | the value is |
//! | --- | --- |
//! | `mode`, `windows`, … | the annotation `scale-governor.io/NAME`; an unknown name is an unknown key |
//! | `history` | also read as the persisted ledger |
//! | `@request` | `CURRENT REQUESTED`: one more request to decide |
//! | `@history-file` | a `--history` file (CSV or JSON lines), used as the ledger |
//! | `@manifest` | a workload manifest (YAML or JSON); its policy is decided too |
//!
//! Checked for every parsed policy, ledger, request and instant: nothing
//! panics (overflow checks are on), and outside a pause the governed count
//! lies within `Bounds::at(..)`.

#![no_main]

use chrono::{DateTime, Duration, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use scale_governor_core::{
    engine::{self, Bounds, Ledger, Request},
    policy::{MAX_REPLICA_COUNT, PREFIX, Policy, Span, keys},
    workload::Workload,
};

/// Instants every policy is decided at: both European DST transitions of
/// 2026 (01:00Z), the US (07:00Z / 06:00Z) and Sydney (16:00Z) ones, the
/// seconds around them, and the docs' reference instants.
const INSTANTS: [&str; 14] = [
    "2026-03-29T00:59:59Z",
    "2026-03-29T01:00:00Z",
    "2026-03-29T01:30:00Z",
    "2026-10-25T00:59:59Z",
    "2026-10-25T01:00:00Z",
    "2026-10-25T01:30:00Z",
    "2026-03-08T07:00:00Z",
    "2026-11-01T06:00:00Z",
    "2026-04-04T16:00:00Z",
    "2026-10-03T16:00:00Z",
    "2026-11-23T10:00:00Z",
    "2026-11-23T23:30:00Z",
    "2026-12-24T10:00:00Z",
    "2026-12-31T23:59:59Z",
];

/// Requests decided for every policy, besides the input's own.
const REQUESTS: [(u32, u32); 6] = [
    (5, 100),
    (100, 5),
    (5, 5),
    (0, 1),
    (0, u32::MAX),
    (u32::MAX, 0),
];

fuzz_target!(|data: &[u8]| {
    let mut annotations: Vec<(String, String)> = Vec::new();
    let mut requests: Vec<(u32, u32)> = Vec::new();
    let mut ledger = Ledger::new();
    let mut manifests: Vec<String> = Vec::new();

    for segment in data.split(|&b| b == 0) {
        let text = String::from_utf8_lossy(segment);
        let (name, value) = text
            .split_once([' ', '\n'])
            .unwrap_or((text.as_ref(), ""));
        let value = value.to_owned();
        match name {
            "@request" => {
                let mut numbers = value.split_whitespace().map(|s| s.parse::<u32>());
                if let (Some(Ok(c)), Some(Ok(r))) = (numbers.next(), numbers.next()) {
                    requests.push((c, r));
                }
            }
            "@history-file" => {
                if let Ok(l) = Ledger::from_history_text(&value) {
                    roundtrip(&l);
                    ledger = l;
                }
            }
            "@manifest" => manifests.push(value),
            suffix => {
                let key = format!("{PREFIX}{suffix}");
                if key == keys::HISTORY {
                    // The annotation the governor persists: must never panic.
                    if let Ok(l) = Ledger::from_compact(&value) {
                        roundtrip(&l);
                        ledger = l;
                    }
                }
                annotations.push((key, value));
            }
        }
    }
    requests.extend(REQUESTS);

    let parsed =
        Policy::from_annotations(annotations.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if let Ok(policy) = &parsed {
        check(policy, &ledger, &requests);
    }
    for manifest in &manifests {
        if let Ok(workload) = Workload::from_manifest(manifest) {
            let _ = workload.is_governed();
            let _ = workload.display_name();
            if let Ok(policy) = workload.policy() {
                check(&policy, &ledger, &requests);
            }
        }
    }
});

/// The `history` annotation the governor writes must read back.
fn roundtrip(ledger: &Ledger) {
    let text = ledger.to_compact();
    let back = Ledger::from_compact(&text).expect("to_compact output must parse");
    assert_eq!(back.changes().len(), ledger.changes().len(), "{text}");
}

fn check(policy: &Policy, ledger: &Ledger, requests: &[(u32, u32)]) {
    let mut instants: Vec<DateTime<Utc>> = INSTANTS
        .iter()
        .map(|s| s.parse().expect("instant"))
        .collect();
    // The policy's own edges: where a window, a pause or a recommendation
    // starts or ends, and one second either side.
    let mut edges = Vec::new();
    edges.extend(policy.suspend_until);
    if let Some(rec) = &policy.recommendation {
        edges.extend([rec.computed_at, rec.expires_at]);
    }
    for window in policy.windows.entries() {
        if let Span::Absolute { start, end } = window.span {
            for local in [start, end] {
                let mapped = window.tz.from_local_datetime(&local);
                edges.extend(mapped.earliest().map(|t| t.with_timezone(&Utc)));
                edges.extend(mapped.latest().map(|t| t.with_timezone(&Utc)));
            }
        }
    }
    for edge in edges {
        instants.push(edge);
        instants.extend(edge.checked_sub_signed(Duration::seconds(1)));
        instants.extend(edge.checked_add_signed(Duration::seconds(1)));
    }

    let _ = policy.lookback_seconds();
    for &now in &instants {
        let bounds = Bounds::at(policy, now, &mut vec![]);
        let (lower, upper) = (bounds.lower(), bounds.upper());
        assert!(
            lower <= upper,
            "bounds {lower}..{upper} at {now}: {policy:?}"
        );
        assert!(
            upper <= MAX_REPLICA_COUNT,
            "ceiling {upper} above int32 at {now}"
        );
        for &(current, requested) in requests {
            let request = Request {
                current,
                requested,
                actor: "fuzz",
            };
            let decision = engine::decide(policy, ledger, request, now);
            let _ = decision.summary();
            let _ = decision.change("fuzz", now);
            if policy.is_paused(now) {
                continue;
            }
            let governed = decision.governed;
            assert!(
                (lower..=upper).contains(&governed),
                "governed {governed} outside bounds {lower}..{upper} at {now} \
                 (current {current}, requested {requested}): {decision:?}\n{policy:?}"
            );
            let rules = match requested.cmp(&current) {
                std::cmp::Ordering::Greater => policy.scale_up.as_ref(),
                std::cmp::Ordering::Less => policy.scale_down.as_ref(),
                std::cmp::Ordering::Equal => None,
            };
            if rules.is_none() && (lower..=upper).contains(&requested) {
                assert_eq!(
                    governed, requested,
                    "no rule applies at {now}, yet {requested} became {governed}: {decision:?}"
                );
            }
        }
    }
}
