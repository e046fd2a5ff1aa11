use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::policy::RecommendationKind;

fn config(trend: Trend) -> RecommendConfig {
    RecommendConfig::parse(&format!(
        r#"{{"targetPerPod":10,"leadSeconds":60,"trend":"{}","smoothingSeconds":1,"holdSeconds":120}}"#,
        match trend {
            Trend::None => "none",
            Trend::Velocity => "velocity",
            Trend::Acceleration => "acceleration",
            Trend::Seasonal => "seasonal",
        }
    ))
    .unwrap()
}

fn t(secs: i64) -> DateTime<Utc> {
    "2026-11-23T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::seconds(secs)
}

#[test]
fn proportional_with_tolerance() {
    let mut r = Recommender::new(config(Trend::None));
    r.observe(t(0), 105.0);
    // 105 / (10 × 10) = 1.05: within 10 %, keep 10 rather than 11.
    let rec = r.recommend(10, t(0));
    assert_eq!(rec.replicas, 10);
    assert_eq!(
        rec.reason,
        "proportional: demand 105, 10 per pod -> 10 (within the 10% tolerance of 10)"
    );
    r.observe(t(15), 250.0);
    let rec = r.recommend(10, t(15));
    assert_eq!((rec.replicas, rec.strategy.as_str()), (25, "proportional"));
}

#[test]
fn velocity_scales_ahead_of_a_ramp() {
    let mut plain = Recommender::new(config(Trend::None));
    let mut ahead = Recommender::new(config(Trend::Velocity));
    for i in 0..10 {
        // +1 per second: in 60 s demand will be 60 higher.
        plain.observe(t(i * 15), 100.0 + 15.0 * i as f64);
        ahead.observe(t(i * 15), 100.0 + 15.0 * i as f64);
    }
    let now = t(135);
    assert_eq!(plain.recommend(1, now).replicas, 24); // 235 / 10
    let rec = ahead.recommend(1, now);
    assert_eq!(rec.replicas, 30); // (235 + 60) / 10, smoothing converged
    assert_eq!(rec.strategy, "velocity");
    assert_eq!(
        rec.reason,
        "velocity: demand 235 rising 1/s, projected 295 in 60s, 10 per pod -> 30"
    );
    assert_eq!(rec.inputs["predicted"], "295");
}

#[test]
fn a_flat_demand_or_one_below_the_threshold_is_not_extrapolated() {
    let mut flat = Recommender::new(config(Trend::Velocity));
    let mut noisy = Recommender::new(
        RecommendConfig::parse(
            r#"{"targetPerPod":10,"leadSeconds":60,"smoothingSeconds":1,"velocityThreshold":0.5}"#,
        )
        .unwrap(),
    );
    for i in 0..10 {
        flat.observe(t(i * 15), 500.0);
        // +0.2/s: below the threshold.
        noisy.observe(t(i * 15), 500.0 + 3.0 * i as f64);
    }
    assert_eq!(flat.recommend(50, t(135)).strategy, "proportional");
    let rec = noisy.recommend(50, t(135));
    assert_eq!((rec.strategy.as_str(), rec.replicas), ("proportional", 50));
}

#[test]
fn falling_demand_is_not_extrapolated_down_and_peaks_are_held() {
    let mut r = Recommender::new(config(Trend::Acceleration));
    r.observe(t(0), 300.0);
    assert_eq!(r.recommend(1, t(0)).replicas, 30);
    r.observe(t(60), 100.0);
    let rec = r.recommend(30, t(60));
    assert_eq!(rec.replicas, 30, "held for 120 s");
    assert!(
        rec.reason.ends_with("held at 30 for 120s"),
        "{}",
        rec.reason
    );
    r.observe(t(180), 100.0);
    assert_eq!(r.recommend(30, t(180)).replicas, 10);
}

#[test]
fn a_resumed_recommender_carries_the_trend_on() {
    let mut first = Recommender::new(config(Trend::Velocity));
    for i in 0..10 {
        first.observe(t(i * 15), 100.0 + 15.0 * i as f64);
    }
    let summary = first.summary().unwrap();
    let json = serde_json::to_string(&summary).unwrap();
    let back: TrendSummary = serde_json::from_str(&json).unwrap();
    assert_eq!(back, summary);
    // A new leader with one fresh sample projects like the old one would.
    let mut resumed = Recommender::resume(config(Trend::Velocity), back);
    let mut blind = Recommender::new(config(Trend::Velocity));
    resumed.observe(t(150), 250.0);
    blind.observe(t(150), 250.0);
    assert_eq!(resumed.recommend(1, t(150)).strategy, "velocity");
    assert!(resumed.recommend(1, t(150)).replicas > blind.recommend(1, t(150)).replicas);
}

#[test]
fn the_highest_strategy_wins_and_names_itself() {
    let config =
        RecommendConfig::parse(r#"{"targetPerPod":10,"kind":"target","ttlSeconds":60}"#).unwrap();
    let candidate = |strategy, replicas| Candidate {
        strategy,
        replicas,
        reason: format!("{strategy} says {replicas}"),
        inputs: Default::default(),
    };
    let rec = combine(
        vec![candidate("proportional", 4), candidate("warm-pool", 7)],
        &config,
        t(0),
    )
    .unwrap();
    assert_eq!((rec.replicas, rec.strategy.as_str()), (7, "warm-pool"));
    assert_eq!((rec.kind, rec.version), (RecommendationKind::Target, 1));
    assert_eq!(rec.expires_at, t(60));
    assert!(combine(vec![], &config, t(0)).is_none());
}
