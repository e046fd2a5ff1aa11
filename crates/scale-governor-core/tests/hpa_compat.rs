//! HPA compatibility: the engine reproduces the HPA controller's replica
//! normalization on cases taken from the controller's own unit tests
//! (`pkg/controller/podautoscaler/horizontal_test.go` at v1.35.4; each case in
//! `crates/scale-governor-core/tests/fixtures/hpa_cases.json` names its test function and case).
//!
//! The HPA keeps scale events and recommendations apart; our ledger holds
//! both in one list. Events become entries that change replicas, and
//! recommendations become entries that change nothing but record a request.
//! `TestScalingWithRules` calls only the rate-limit step, so its cases run
//! with stabilization windows of 0, as the Go test effectively does.

use chrono::{DateTime, Duration, Utc};
use scale_governor_core::{
    engine::{Change, Ledger, Request, decide},
    policy::{Policy, keys},
};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    name: String,
    source: String,
    current_replicas: u32,
    prenormalized_desired_replicas: u32,
    min_replicas: u32,
    max_replicas: u32,
    scale_up: Value,
    scale_down: Value,
    scale_up_events: Vec<Event>,
    scale_down_events: Vec<Event>,
    recommendations: Vec<Recommendation>,
    expected_replicas: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    age_seconds: f64,
    replica_change: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recommendation {
    age_seconds: f64,
    replicas: u32,
}

fn ago(now: DateTime<Utc>, seconds: f64) -> DateTime<Utc> {
    now - Duration::milliseconds((seconds * 1000.0) as i64)
}

fn run(case: &Case, now: DateTime<Utc>) -> u32 {
    let rate_only = case.source.ends_with("TestScalingWithRules");
    let rules = |value: &Value| {
        let mut value = value.clone();
        if rate_only {
            value["stabilizationWindowSeconds"] = 0.into();
        }
        value.to_string()
    };
    let (up, down) = (rules(&case.scale_up), rules(&case.scale_down));
    let (min, max) = (case.min_replicas.to_string(), case.max_replicas.to_string());
    let policy = Policy::from_annotations([
        (keys::MIN_REPLICAS, min.as_str()),
        (keys::MAX_REPLICAS, max.as_str()),
        (keys::SCALE_UP, up.as_str()),
        (keys::SCALE_DOWN, down.as_str()),
    ])
    .unwrap_or_else(|e| panic!("{}: {e}", case.name));

    let mut ledger = Ledger::new();
    let entry = |at, from, to, requested| Change {
        at,
        from,
        to,
        requested,
        actor: "horizontal-pod-autoscaler".into(),
        pending: false,
        watched: false,
        generation: None,
        span: None,
    };
    for e in &case.scale_up_events {
        ledger.record(entry(
            ago(now, e.age_seconds),
            0,
            e.replica_change,
            e.replica_change,
        ));
    }
    for e in &case.scale_down_events {
        ledger.record(entry(ago(now, e.age_seconds), e.replica_change, 0, 0));
    }
    for r in &case.recommendations {
        let current = case.current_replicas;
        ledger.record(entry(ago(now, r.age_seconds), current, current, r.replicas));
    }
    let request = Request {
        current: case.current_replicas,
        requested: case.prenormalized_desired_replicas,
        actor: "horizontal-pod-autoscaler",
    };
    // `simulate`'s HPA normalizes through this same call, so holding the
    // engine to the controller's expected values holds both.
    decide(&policy, &ledger, request, now).governed
}

#[test]
fn engine_matches_hpa_controller_unit_tests() {
    let cases: Vec<Case> = serde_json::from_str(include_str!("fixtures/hpa_cases.json")).unwrap();
    assert!(
        cases.len() >= 15,
        "need at least 15 cases, have {}",
        cases.len()
    );
    let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let got = run(case, now);
            (got != case.expected_replicas).then(|| {
                format!(
                    "{} [{}]: expected {}, engine gave {got}",
                    case.name, case.source, case.expected_replicas
                )
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
