//! Whatever demand the recommender has seen (NaN, negative, huge, bursts,
//! outages, a clock that jumps either way), its recommendation stays within
//! the policy's bounds and never goes below 1 unless `min-replicas` is 0.

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use scale_governor_core::{
    policy::{Policy, keys},
    recommend::{Recommender, bounded, least},
};

fn demand() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => 0.0..500.0f64,
        1 => Just(0.0),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => -1e6..0.0f64,
        1 => 1e6..1e12f64,
    ]
}

/// Seconds to the next sample: mostly a loop period, sometimes an hour or
/// a day on, sometimes back in time.
fn step() -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => 1..120i64,
        2 => 120..7200i64,
        1 => 86_000..90_000i64,
        1 => -90_000..0i64,
    ]
}

fn policy() -> impl Strategy<Value = (Option<u32>, Option<u32>, &'static str)> {
    let trend = prop_oneof![
        Just("none"),
        Just("velocity"),
        Just("seasonal"),
        Just(r#"seasonal","timeZone":"America/New_York"#),
        Just(r#"seasonal","timeZone":"Australia/Lord_Howe"#),
    ];
    (prop::option::of(0..6u32), prop::option::of(0..60u32), trend)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_recommendation_is_within_the_policys_bounds_for_any_history(
        (min, max, trend) in policy(),
        history in prop::collection::vec((step(), demand()), 1..400),
        current in 0..80u32,
    ) {
        let max = max.map(|m| m.max(min.unwrap_or(0)));
        let recommend = format!(r#"{{"targetPerPod":7.5,"leadSeconds":135,"trend":"{trend}"}}"#);
        let mut pairs = vec![(keys::RECOMMEND, recommend.clone())];
        if let Some(min) = min {
            pairs.push((keys::MIN_REPLICAS, min.to_string()));
        }
        if let Some(max) = max {
            pairs.push((keys::MAX_REPLICAS, max.to_string()));
        }
        let policy = Policy::from_annotations(pairs.iter().map(|(k, v)| (*k, v.as_str()))).unwrap();
        let mut r = Recommender::new(policy.recommend.clone().unwrap());
        let mut now: DateTime<Utc> = "2026-01-05T00:00:00Z".parse().unwrap();
        for (dt, value) in history {
            now += Duration::seconds(dt);
            r.observe(now, value);
            let rec = bounded(r.recommend(current, now), &policy, now);
            let upper = max.unwrap_or(u32::MAX);
            // A ceiling of 0 is the user's word too.
            let lower = min.unwrap_or(0).max(least(&policy)).min(upper);
            prop_assert!(
                (lower..=upper).contains(&rec.replicas),
                "{} outside {lower}..={upper}: {}",
                rec.replicas,
                rec.reason
            );
        }
    }
}
