use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;

use super::*;
use crate::policy::RecommendConfig;

fn t0() -> DateTime<Utc> {
    "2026-01-05T00:00:00Z".parse().unwrap()
}

#[test]
fn shortfalls_raise_the_headroom_and_a_long_run_without_lowers_it() {
    let mut c = Calibration::new(0.01);
    let at = |s: i64| t0() + Duration::seconds(s);
    assert_eq!(c.headroom(100.0, 1.0), START * 100.0);
    c.observe(at(0), 90.0, 100.0);
    let after_short = c.fraction();
    assert!((after_short - (START + STEP * 0.99)).abs() < 1e-12);
    // 100 periods covered give back about what one short period took.
    for i in 1..=100 {
        c.observe(at(15 * i), 200.0, 100.0);
    }
    assert!((c.fraction() - (after_short - 100.0 * STEP * 0.01)).abs() < 1e-9);
    let (share, seconds) = c.achieved().unwrap();
    assert!((share - 1.0 / 101.0).abs() < 1e-6 && seconds == 1515.0);
    // A gap counts for a minute at most, in the step and in the window.
    let before = c.fraction();
    c.observe(at(1515 + 3600), 0.0, 100.0);
    assert!((c.fraction() - before - MAX_WEIGHT * STEP * 0.99).abs() < 1e-9);
    // Out of order, or not a number: ignored.
    let kept = c.clone().summary();
    c.observe(at(10), 0.0, 100.0);
    c.observe(at(9999), f64::NAN, 100.0);
    assert_eq!(c.summary(), kept);
}

#[test]
fn the_headroom_never_goes_below_half_the_forecast() {
    let mut c = Calibration::new(0.2);
    for i in 0..100_000 {
        c.observe(t0() + Duration::seconds(15 * i), 1e9, 1.0);
    }
    assert_eq!(c.fraction(), FLOOR);
    assert_eq!(c.headroom(400.0, 10.0), -200.0);
    // A forecast under a pod's worth: never below half of it either.
    assert_eq!(c.headroom(4.0, 10.0), -2.0);
    assert_eq!(c.headroom(0.0, 10.0), 0.0);
}

#[test]
fn the_reason_says_the_risk_what_was_achieved_and_the_headroom() {
    let mut c = Calibration::new(0.01);
    assert_eq!(
        c.describe(38.0),
        "headroom 38 (risk 1 %, nothing scored yet)"
    );
    for i in 0..5760 {
        let short = i % 125 == 0;
        c.observe(
            t0() + Duration::seconds(15 * i),
            if short { 0.0 } else { 500.0 },
            412.0,
        );
    }
    assert_eq!(
        c.describe(38.0),
        "headroom 38 (risk 1 %, achieved 0.8 % over 24 h)"
    );
    let h = c.headroom(412.0, 10.0);
    let status = c.status();
    assert_eq!(
        (status.stated, status.window_seconds, status.headroom),
        (0.01, 86_400, Some(h))
    );
    assert!((status.achieved.unwrap() - 47.0 / 5760.0).abs() < 1e-9);
    assert_eq!(
        status.describe(),
        format!("risk 1 %, achieved 0.8 % over 24 h, headroom {}", num(h))
    );
    let fresh = Calibration::new(0.005).status();
    assert_eq!(fresh.describe(), "risk 0.5 %, nothing scored yet");
    assert_eq!(percent(0.0005), "0.05 %");
    assert_eq!(percent(0.2), "20 %");
}

#[test]
fn a_day_above_twice_the_risk_is_reported_once() {
    let mut c = Calibration::new(0.01);
    let at = |s: i64| t0() + Duration::seconds(s);
    let mut notices = Vec::new();
    // Short one period in ten for two days.
    for i in 0..11_520 {
        c.observe(at(15 * i), if i % 10 == 0 { 0.0 } else { 1e3 }, 10.0);
        notices.extend(c.missed(at(15 * i)).map(|m| (i, m)));
    }
    assert_eq!(notices.len(), 1, "{notices:?}");
    let (i, message) = &notices[0];
    // Judged from the first hour on; reported a day later.
    assert_eq!(*i, 239 + 5760);
    assert!(
        message.starts_with(
            "short of capacity 10 % of the last 24 h against a stated risk of 1 %, above twice the risk since"
        ),
        "{message}"
    );
    // Back under twice the risk re-arms it.
    for i in 11_520..20_000 {
        c.observe(at(15 * i), 1e3, 10.0);
        assert!(c.missed(at(15 * i)).is_none());
    }
    assert_eq!(c.status().achieved, Some(0.0));
}

#[test]
fn a_new_risk_keeps_the_headroom_and_forgets_the_stretch() {
    let mut r = crate::recommend::Recommender::new(
        RecommendConfig::parse(r#"{"targetPerPod":10,"trend":"none","risk":"1%"}"#).unwrap(),
    );
    r.score(t0(), 1, 100.0, Duration::zero());
    let learnt = r.calibration().unwrap().fraction();
    r.reconfigure(
        RecommendConfig::parse(r#"{"targetPerPod":10,"trend":"none","risk":"2%"}"#).unwrap(),
    );
    let c = r.calibration().unwrap();
    assert_eq!((c.stated(), c.fraction()), (0.02, learnt));
    r.reconfigure(RecommendConfig::parse(r#"{"targetPerPod":10,"trend":"none"}"#).unwrap());
    assert!(r.calibration().is_none());
    // Without risk, scoring does nothing and the reason has no headroom.
    r.observe(t0(), 100.0);
    r.score(t0(), 1, 100.0, Duration::zero());
    let rec = r.recommend(10, t0());
    assert_eq!(rec.reason, "proportional: demand 100, 10 per pod -> 10");
}

#[test]
fn every_trend_adds_the_headroom_and_says_so() {
    let config = |trend: &str| {
        RecommendConfig::parse(&format!(
            r#"{{"targetPerPod":10,"trend":"{trend}","leadSeconds":60,"holdSeconds":0,"tolerance":0,"risk":"1%"}}"#
        ))
        .unwrap()
    };
    let mut r = crate::recommend::Recommender::new(config("none"));
    r.observe(t0(), 100.0);
    let rec = r.recommend(10, t0());
    assert_eq!(
        (rec.replicas, rec.reason.as_str()),
        (
            11,
            "proportional: demand 100 + headroom 10 (risk 1 %, nothing scored yet), 10 per pod -> 11"
        )
    );
    assert_eq!(rec.inputs["headroom"], "10");
    let mut r = crate::recommend::Recommender::new(config("velocity"));
    r.observe(t0(), 100.0);
    r.observe(t0() + Duration::seconds(15), 130.0);
    let rec = r.recommend(10, t0() + Duration::seconds(15));
    // Rising 0.2/s (smoothed), projected 144.1 in 60 s, plus a tenth.
    assert_eq!(
        (rec.replicas, rec.reason.as_str()),
        (
            16,
            "velocity: demand 130 rising 0.2/s, projected 144.1 in 60s + headroom 14.4 (risk 1 %, nothing scored yet), 10 per pod -> 16"
        )
    );
}

#[test]
fn a_calibration_survives_a_persisted_round_trip() {
    let mut c = Calibration::new(0.01);
    for i in 0..7000 {
        // A fixed wobble of ±20 %, short against 115 a few times an hour.
        let wobble = ((i * 7919) % 41) as f64 / 20.0 - 1.0;
        c.observe(
            t0() + Duration::seconds(15 * i),
            115.0,
            100.0 * (1.0 + 0.2 * wobble),
        );
    }
    let now = t0() + Duration::seconds(15 * 6999);
    let text = c.summary().to_text();
    assert!(text.len() < 2048, "{} bytes", text.len());
    let back = RiskSummary::parse(&text)
        .unwrap()
        .restore(now, 0.01)
        .unwrap();
    assert!((back.fraction() - c.fraction()).abs() < 1e-12);
    let ((a, s), (b, z)) = (c.achieved().unwrap(), back.achieved().unwrap());
    assert!(
        (a - b).abs() < 1e-3 && (s - z).abs() < 1.0,
        "{a} {s} vs {b} {z}"
    );
    assert_eq!(back.summary(), RiskSummary::parse(&text).unwrap());
    // Carries on: the next observation moves it as it would have moved the
    // original.
    let (mut x, mut y) = (c, back);
    x.observe(now + Duration::seconds(15), 0.0, 100.0);
    y.observe(now + Duration::seconds(15), 0.0, 100.0);
    assert!((x.fraction() - y.fraction()).abs() < 1e-12);
    // A day later, the window has moved past everything it held.
    let later = RiskSummary::parse(&text)
        .unwrap()
        .restore(now + Duration::days(2), 0.01)
        .unwrap();
    assert_eq!(later.achieved(), None);
}

#[test]
fn a_persisted_calibration_is_read_defensively() {
    let mut c = Calibration::new(0.01);
    c.observe(t0(), 1.0, 2.0);
    let good = c.summary();
    let now = t0() + Duration::minutes(10);
    let refused = |s: RiskSummary| s.restore(now, 0.01).unwrap_err().to_string();
    assert!(matches!(
        RiskSummary::parse(r#"{"v":1}"#),
        Err(SummaryError::Malformed(_))
    ));
    let mut v2 = serde_json::to_value(&good).unwrap();
    v2["v"] = 2.into();
    assert_eq!(
        RiskSummary::parse(&v2.to_string()).unwrap_err(),
        SummaryError::Version(2)
    );
    assert!(matches!(
        RiskSummary::parse("[]"),
        Err(SummaryError::Malformed(_))
    ));
    assert!(matches!(
        RiskSummary::parse(&"x".repeat(10_000)),
        Err(SummaryError::TooLarge(10_000))
    ));
    assert!(
        refused(RiskSummary {
            fraction: 9.0,
            ..good.clone()
        })
        .contains("fraction 9 is out of range")
    );
    assert!(
        refused(RiskSummary {
            fraction: f64::NAN,
            ..good.clone()
        })
        .contains("out of range")
    );
    assert!(
        refused(RiskSummary {
            start: t0() + Duration::days(1),
            ..good.clone()
        })
        .contains("past now")
    );
    assert!(
        refused(RiskSummary {
            short: "AAAAAA==".into(),
            ..good.clone()
        })
        .contains("1 and 2 bins")
    );
    assert!(
        refused(RiskSummary {
            start: t0() + Duration::seconds(7),
            ..good.clone()
        })
        .contains("not on a bin")
    );
    // A new stated risk is taken, the headroom kept.
    let restated = good.restore(now, 0.02).unwrap();
    assert_eq!(
        (restated.stated(), restated.fraction()),
        (0.02, good.fraction)
    );
}

/// Observations: seconds since the last one (sometimes none, sometimes
/// back in time), capacity and demand of any sign and size.
fn observations() -> impl Strategy<Value = Vec<(i64, f64, f64)>> {
    let value = prop_oneof![
        6 => 0.0..500.0f64,
        1 => Just(0.0),
        1 => Just(f64::NAN),
        1 => -1e3..0.0f64,
        1 => 1e6..1e12f64,
    ];
    let gap = prop_oneof![8 => 1..60i64, 2 => 60..100_000i64, 1 => -3600..1i64];
    prop::collection::vec((gap, value.clone(), value), 1..600)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_headroom_never_steps_by_more_than_its_bound(
        stated in 0.001..0.2f64,
        seen in observations(),
        forecast in 0.0..1e4f64,
        per_pod in 0.1..100.0f64,
    ) {
        let mut c = Calibration::new(stated);
        let mut at = t0();
        let mut before = c.headroom(forecast, per_pod);
        for (gap, capacity, demand) in seen {
            at += Duration::seconds(gap);
            let fraction = c.fraction();
            c.observe(at, capacity, demand);
            prop_assert!((c.fraction() - fraction).abs() <= MAX_STEP + 1e-12);
            prop_assert!((FLOOR..=CEILING).contains(&c.fraction()));
            let now = c.headroom(forecast, per_pod);
            prop_assert!((now - before).abs() <= MAX_STEP * forecast.max(per_pod) + 1e-9);
            prop_assert!(now >= -0.5 * forecast);
            before = now;
            if let Some((share, seconds)) = c.achieved() {
                prop_assert!((0.0..=1.0).contains(&share));
                prop_assert!(seconds <= (WINDOW_SECONDS + BIN_SECONDS + 60) as f64);
            }
        }
    }

    #[test]
    fn any_calibration_survives_a_persisted_round_trip(
        stated in 0.001..0.2f64,
        seen in observations(),
    ) {
        let mut c = Calibration::new(stated);
        let mut at = t0();
        for (gap, capacity, demand) in seen {
            at += Duration::seconds(gap);
            c.observe(at, capacity, demand);
        }
        let now = c.last.unwrap_or(at);
        let text = c.summary().to_text();
        let parsed = RiskSummary::parse(&text).unwrap();
        let back = parsed.restore(now, parsed.stated).unwrap();
        prop_assert!((back.fraction() - c.fraction()).abs() < 1e-12);
        prop_assert!((back.stated() - stated).abs() < 1e-12);
        prop_assert_eq!(back.summary(), parsed);
    }
}
