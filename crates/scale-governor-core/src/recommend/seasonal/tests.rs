use chrono::{DateTime, Duration, Utc};

use super::{summary::SeasonalSummary, *};
use crate::{
    policy::{Policy, RecommendConfig, keys},
    recommend::{Recommender, bounded},
};

/// Monday 2026-01-05, 00:00 UTC.
fn t0() -> DateTime<Utc> {
    "2026-01-05T00:00:00Z".parse().unwrap()
}

fn at(day: i64, hour: i64, minute: i64) -> DateTime<Utc> {
    t0() + Duration::days(day) + Duration::hours(hour) + Duration::minutes(minute)
}

/// Calls `f` at every `step` over `[from, to)`.
fn each(from: DateTime<Utc>, to: DateTime<Utc>, step: Duration, mut f: impl FnMut(DateTime<Utc>)) {
    let mut t = from;
    while t < to {
        f(t);
        t += step;
    }
}

/// Feeds `demand(t)` every minute over `[from, to)`.
fn feed(
    s: &mut Seasonal,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    demand: impl Fn(DateTime<Utc>) -> f64,
) {
    each(from, to, Duration::minutes(1), |t| s.observe(t, demand(t)));
}

fn sine(t: DateTime<Utc>) -> f64 {
    let day = (t - t0()).num_seconds() as f64 / 86_400.0;
    100.0 + 50.0 * (std::f64::consts::TAU * day).sin()
}

#[test]
fn a_pure_daily_sine_is_forecast_to_within_a_bin_of_its_rise() {
    let mut s = Seasonal::new(300);
    // Nothing to forecast from before a day has passed.
    feed(&mut s, at(0, 0, 0), at(1, 3, 0), sine);
    assert!(s.forecast(at(0, 23, 0), 0.95).is_none() || s.span_bins() > DAY_BINS);
    // 03:00 on day 2, the steepest part of the rise (+50·2π per day, about
    // 0.22 per minute). The last sample is 02:59's; the highest demand
    // within the next 5 minutes is 03:05's.
    let now = at(1, 3, 0) - Duration::seconds(1);
    let f = s.forecast(now, 0.95).unwrap();
    let truth = sine(at(1, 3, 5));
    let last = sine(at(1, 2, 59));
    // Anchored on the last sample, plus yesterday's rise from this bin's
    // mean to the highest of the bins the lead reaches (02:55-03:00 and
    // 03:00-03:05): a bin's width of slope at most.
    assert!(f.peak >= truth - 1e-3, "{} < {truth}", f.peak);
    assert!(f.peak <= truth + 0.22 * 5.0, "{} vs {truth}", f.peak);
    assert!(f.peak > last, "a rise is forecast");
    assert!(
        (f.level - 1.0).abs() < 1e-3,
        "same as yesterday: {}",
        f.level
    );
    assert!(!f.weekly && !f.outage);
    // Every forecast so far was at or above what came: no headroom.
    assert_eq!(f.headroom, 0.0);
}

/// 10 until 09:00, 100 until 12:00, then 10 again, every day.
fn step(t: DateTime<Utc>) -> f64 {
    let minute = (t - t0()).num_minutes().rem_euclid(1440);
    if (540..720).contains(&minute) {
        100.0
    } else {
        10.0
    }
}

fn recommender(lead: u32) -> Recommender {
    Recommender::new(
        RecommendConfig::parse(&format!(
            r#"{{"targetPerPod":10,"leadSeconds":{lead},"trend":"seasonal","tolerance":0}}"#
        ))
        .unwrap(),
    )
}

/// Feeds `demand(t)` every loop period (15 s) over `[from, to)`.
fn feed_recommender(
    r: &mut Recommender,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    demand: impl Fn(DateTime<Utc>) -> f64,
) {
    each(from, to, Duration::seconds(15), |t| r.observe(t, demand(t)));
}

#[test]
fn a_step_at_the_same_hour_each_day_is_met_ahead_and_let_go_after() {
    let mut r = recommender(135);
    feed_recommender(&mut r, at(0, 0, 0), at(1, 8, 50), step);
    // Before the window reaches 09:00, 10 per pod: 1 replica.
    let rec = r.recommend(1, at(1, 8, 50));
    assert_eq!(
        (rec.strategy.as_str(), rec.replicas),
        ("seasonal", 1),
        "{}",
        rec.reason
    );
    // At 08:58, 135 s ahead reaches into 09:00: the step is forecast.
    feed_recommender(&mut r, at(1, 8, 50), at(1, 8, 58), step);
    let rec = r.recommend(1, at(1, 8, 58));
    assert_eq!(rec.replicas, 10, "{}", rec.reason);
    assert!(
        rec.reason
            .starts_with("seasonal: highest demand within 135s expected 100"),
        "{}",
        rec.reason
    );
    // The step ends at 12:00: from 12:05 on the recommendation follows
    // demand down at once, no flat hold.
    feed_recommender(&mut r, at(1, 8, 58), at(1, 12, 5), step);
    let rec = r.recommend(10, at(1, 12, 5));
    assert_eq!(rec.replicas, 1, "{}", rec.reason);
}

#[test]
fn before_a_day_of_history_the_velocity_strategy_answers() {
    let mut r = recommender(60);
    feed_recommender(&mut r, at(0, 0, 0), at(0, 6, 0), step);
    let rec = r.recommend(1, at(0, 6, 0));
    assert_eq!(rec.strategy, "proportional", "{}", rec.reason);
}

/// A daily curve between 20 and 100, peaking at 14:00.
fn daily(t: DateTime<Utc>) -> f64 {
    let hour = (t - t0()).num_seconds().rem_euclid(86_400) as f64 / 3600.0;
    60.0 + 40.0 * (std::f64::consts::TAU * (hour - 8.0) / 24.0).sin()
}

#[test]
fn an_outage_keeps_the_seasons_floor_and_is_not_learned() {
    // Two normal days, then nothing from 10:00 to 12:00 on day 3.
    let outage = |t: DateTime<Utc>| {
        if t >= at(2, 10, 0) && t < at(2, 12, 0) {
            0.0
        } else {
            daily(t)
        }
    };
    let mut r = recommender(135);
    feed_recommender(&mut r, at(0, 0, 0), at(2, 11, 0), outage);
    let rec = r.recommend(1, at(2, 11, 0));
    // 11:00 normally needs the season's highest within the lead, about
    // daily(11:05) = 88.9 → 9 replicas; the outage keeps that floor
    // instead of dropping to 1.
    assert_eq!(rec.replicas, 9, "{}", rec.reason);
    assert!(rec.reason.contains("is an outage"), "{}", rec.reason);
    // A day later the outage is not the reference: the day before it is.
    feed_recommender(&mut r, at(2, 11, 0), at(3, 11, 0), outage);
    let rec = r.recommend(1, at(3, 11, 0));
    assert_eq!(rec.replicas, 9, "{}", rec.reason);
    assert!(!rec.reason.contains("outage"), "{}", rec.reason);
    let s = r.seasonal().unwrap();
    let f = s.clone().forecast(at(3, 11, 0), 0.95).unwrap();
    assert!((f.level - 1.0).abs() < 0.05, "{}", f.level);
}

#[test]
fn all_zero_history_recommends_one_and_min_replicas_zero_allows_zero() {
    let mut r = recommender(135);
    feed_recommender(&mut r, at(0, 0, 0), at(2, 0, 0), |_| 0.0);
    let rec = r.recommend(3, at(2, 0, 0));
    assert_eq!(rec.replicas, 0, "the strategy itself asks for nothing");
    let default = Policy::from_annotations([(keys::MAX_REPLICAS, "10")]).unwrap();
    let kept = bounded(rec.clone(), &default, at(2, 0, 0));
    assert_eq!(kept.replicas, 1);
    assert!(
        kept.reason
            .ends_with("never below 1 unless min-replicas is \"0\""),
        "{}",
        kept.reason
    );
    let zero = Policy::from_annotations([(keys::MIN_REPLICAS, "0")]).unwrap();
    assert_eq!(bounded(rec, &zero, at(2, 0, 0)).replicas, 0);
}

#[test]
fn nan_negative_and_a_clock_going_back_are_survived() {
    let mut s = Seasonal::new(135);
    feed(&mut s, at(0, 0, 0), at(1, 12, 0), daily);
    let filled = s.filled_bins();
    s.observe(at(1, 12, 1), f64::NAN);
    s.observe(at(1, 12, 1), f64::INFINITY);
    assert_eq!(s.filled_bins(), filled, "non-finite samples are not data");
    s.observe(at(1, 12, 2), -5.0);
    let f = s.forecast(at(1, 12, 2), 0.95).unwrap();
    assert!(f.peak.is_finite() && f.peak >= 0.0);
    // The clock jumps back a day: what came "after" is dropped.
    s.observe(at(0, 12, 0), 50.0);
    assert_eq!(s.filled_bins(), 1);
    assert!(s.forecast(at(0, 12, 0), 0.95).is_none());
    // And a jump forward past the whole history starts afresh too.
    s.observe(at(20, 0, 0), 50.0);
    assert_eq!((s.filled_bins(), s.span_bins()), (1, 1));
}

#[test]
fn a_burst_is_not_echoed_the_next_day_but_a_repeated_one_is_learned() {
    // 50 all day, and 500 from 15:00 to 15:20 on day 2 (and on day 3 too).
    let burst = |days: &'static [i64]| {
        move |t: DateTime<Utc>| {
            let day = (t - t0()).num_days();
            let minute = (t - t0()).num_minutes().rem_euclid(1440);
            if days.contains(&day) && (900..920).contains(&minute) {
                500.0
            } else {
                50.0
            }
        }
    };
    let once = burst(&[1]);
    let mut s = Seasonal::new(135);
    feed(&mut s, at(0, 0, 0), at(2, 14, 59), once);
    let f = s.forecast(at(2, 14, 59), 0.95).unwrap();
    assert!(f.peak < 60.0, "the burst of day 2 is echoed: {}", f.peak);
    let twice = burst(&[1, 2]);
    let mut s = Seasonal::new(135);
    feed(&mut s, at(0, 0, 0), at(3, 14, 59), twice);
    let f = s.forecast(at(3, 14, 59), 0.95).unwrap();
    assert!(
        f.peak > 400.0,
        "a burst seen two days running is a pattern: {}",
        f.peak
    );
}

#[test]
fn a_summary_round_trips_and_a_forged_one_is_refused() {
    let mut s = Seasonal::new(135);
    feed(&mut s, at(0, 0, 0), at(15, 0, 0), daily);
    let now = at(15, 0, 0);
    let text = s.summary().unwrap().to_text();
    // Two weeks of bins, 6 bytes each, as base64: the size docs/design.md
    // states.
    assert_eq!(s.span_bins(), KEEP_BINS as i64 + 1);
    assert!(
        (32_000..33_000).contains(&text.len()),
        "{} bytes",
        text.len()
    );
    assert!(text.len() <= summary::MAX_SUMMARY_BYTES);
    let mut back = SeasonalSummary::parse(&text)
        .unwrap()
        .restore(now, 135)
        .unwrap();
    // The forecast starts from the last sample: the next one, on both.
    s.observe(now, daily(now));
    back.observe(now, daily(now));
    let (a, b) = (
        s.forecast(now, 0.95).unwrap(),
        back.forecast(now, 0.95).unwrap(),
    );
    assert!(
        (a.peak - b.peak).abs() < 0.01 && (a.headroom - b.headroom).abs() < 0.01,
        "{a:?} vs {b:?}"
    );

    let summary = SeasonalSummary::parse(&text).unwrap();
    let refused = |s: &SeasonalSummary| s.restore(now, 135).unwrap_err().to_string();
    assert!(
        refused(&SeasonalSummary {
            bin_seconds: 60,
            ..summary.clone()
        })
        .contains("bins of 60s")
    );
    assert!(
        refused(&SeasonalSummary {
            scale: f64::NAN,
            ..summary.clone()
        })
        .contains("not a demand")
    );
    assert!(
        refused(&SeasonalSummary {
            scale: -1.0,
            ..summary.clone()
        })
        .contains("not a demand")
    );
    assert!(
        refused(&SeasonalSummary {
            mean: "AAAAAA==".into(),
            ..summary.clone()
        })
        .contains("bins; expected")
    );
    assert!(
        refused(&SeasonalSummary {
            max: "***".into(),
            ..summary.clone()
        })
        .contains("does not parse")
    );
    let ahead = SeasonalSummary {
        start: summary.start + Duration::days(2),
        ..summary.clone()
    };
    assert!(refused(&ahead).contains("past now"));
    let odd = SeasonalSummary {
        start: summary.start + Duration::seconds(7),
        ..summary.clone()
    };
    assert!(refused(&odd).contains("not on a bin"));
    let long = "A".repeat(4 * (KEEP_BINS + 10));
    let too_many = SeasonalSummary {
        max: long.clone(),
        mean: long.clone(),
        error: long,
        ..summary
    };
    assert!(refused(&too_many).contains("bins; expected"));
    for bad in [
        "[1,2]",
        "{\"v\":2}",
        "{}",
        &"x".repeat(summary::MAX_SUMMARY_BYTES + 1),
    ] {
        assert!(SeasonalSummary::parse(bad).is_err(), "{bad:.20}");
    }
    assert_eq!(
        SeasonalSummary::parse(r#"{"v":2,"binSeconds":300,"start":"2026-01-05T00:00:00Z","scale":1,"max":"","mean":"","error":""}"#).unwrap_err().to_string(),
        "seasonal summary format v2 is not v1"
    );
}

#[test]
fn an_old_summary_restores_what_is_still_within_two_weeks() {
    let mut s = Seasonal::new(135);
    feed(&mut s, at(0, 0, 0), at(3, 0, 0), daily);
    let summary = s.summary().unwrap();
    // Read 20 days later: restored, then the next sample finds nothing
    // within reach and starts afresh.
    let mut back = summary.restore(at(23, 0, 0), 135).unwrap();
    back.observe(at(23, 0, 0), 10.0);
    assert_eq!(back.filled_bins(), 1);
}

#[test]
fn a_backfill_gives_a_forecast_at_once() {
    let samples: Vec<(DateTime<Utc>, f64)> = (0..2 * 1440)
        .map(|m| {
            let t = at(0, 0, 0) + Duration::minutes(m);
            (t, step(t))
        })
        .collect();
    let mut s = Seasonal::from_samples(135, &samples);
    assert_eq!(s.span_bins(), 2 * DAY_BINS);
    s.observe(at(2, 8, 58), 10.0);
    let f = s.forecast(at(2, 8, 58), 0.95).unwrap();
    assert!(f.peak >= 100.0, "{f:?}");
}

#[test]
fn on_the_night_the_clock_falls_back_a_wall_clock_step_is_met_in_its_zone() {
    // 100 from 09:00 to 12:00 on New York's wall clock, 10 otherwise. On
    // Sunday 1 November 2026 (EST from 02:00) the step comes an hour later
    // in UTC than the day before.
    let tz: chrono_tz::Tz = "America/New_York".parse().unwrap();
    let step = |t: DateTime<Utc>| {
        let h = chrono::Timelike::hour(&t.with_timezone(&tz));
        if (9..12).contains(&h) { 100.0 } else { 10.0 }
    };
    let at_local = |month: u32, d: u32, h: u32, m: u32| {
        chrono::TimeZone::with_ymd_and_hms(&tz, 2026, month, d, h, m, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc)
    };
    let seasonal = |zone: &str| {
        Recommender::new(
            RecommendConfig::parse(&format!(
                r#"{{"targetPerPod":10,"leadSeconds":135,"trend":"seasonal","tolerance":0{zone}}}"#
            ))
            .unwrap(),
        )
    };
    let mut local = seasonal(r#","timeZone":"America/New_York""#);
    let mut utc = seasonal("");
    for r in [&mut local, &mut utc] {
        feed_recommender(r, at_local(10, 28, 0, 0), at_local(11, 1, 8, 58), step);
    }
    // Following New York's clock, 08:58 EST is 08:58 the day before: the
    // step is met ahead.
    let rec = local.recommend(1, at_local(11, 1, 8, 58));
    assert_eq!(rec.replicas, 10, "{}", rec.reason);
    // In UTC, the day before was already at its step an hour ago and flat
    // since: the step at 09:00 EST is not forecast that day (the HPA meets
    // it), as docs/policy.md says.
    let rec = utc.recommend(1, at_local(11, 1, 8, 58));
    assert_eq!(rec.replicas, 1, "{}", rec.reason);
    assert!(
        RecommendConfig::parse(
            r#"{"targetPerPod":1,"trend":"seasonal","timeZone":"Mars/Olympus"}"#
        )
        .unwrap_err()
        .to_string()
        .contains("unknown time zone \"Mars/Olympus\"")
    );
}
