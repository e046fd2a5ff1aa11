//! A stated risk over simulated weeks: the calibration (`recommend::risk`)
//! driving the governor in the simulator, scored as `simulate` scores. Kept
//! out of the recommender's own unit tests, which the simulator depends on.

use chrono::{DateTime, Duration, Utc};
use scale_governor_core::{
    policy::{Policy, keys},
    simulate::{self, Actor, Config, Interpolation, Trace, Workload},
};

fn t0() -> DateTime<Utc> {
    "2026-01-05T00:00:00Z".parse().unwrap()
}

/// A small deterministic generator (SplitMix64), so the noise is the same
/// on every run without a dependency.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal, by Box-Muller.
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.next().max(1e-12), self.next());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// `days` of stationary demand in 5-minute bins: 40 pods' worth, each bin
/// off by a normal 15 %.
fn stationary(days: i64, seed: u64) -> Trace {
    let mut noise = Noise(seed);
    let mut csv = String::from("timestamp,value\n");
    for i in 0..days * 288 {
        let value = (40.0 * (1.0 + 0.15 * noise.normal())).max(0.0);
        let at = t0() + Duration::minutes(5 * i);
        csv.push_str(&format!("{},{value}\n", at.to_rfc3339()));
    }
    Trace::parse(&csv).unwrap()
}

fn governed(risk: &str, trend: &str) -> Vec<Workload> {
    let recommend = format!(
        r#"{{"targetPerPod":1,"leadSeconds":120,"trend":"{trend}","holdSeconds":0,"risk":"{risk}"}}"#
    );
    vec![Workload {
        name: "web".into(),
        policy: Policy::from_annotations([
            (keys::MIN_REPLICAS, "1"),
            (keys::RECOMMEND, recommend.as_str()),
        ])
        .unwrap(),
    }]
}

fn cluster() -> Config {
    Config {
        capacity: 1.0,
        startup: Duration::seconds(90),
        tick: Duration::seconds(15),
        hpa_target: 0.8,
        tolerance: 0.1,
        actors: vec![Actor::Governor],
        metric_delay: Duration::seconds(30),
        hpa: None,
        interpolation: Interpolation::Linear,
    }
}

#[test]
fn at_one_percent_a_month_of_stationary_noise_is_short_one_percent_of_weeks_two_to_four() {
    let trace = stationary(29, 7);
    for trend in ["none", "velocity"] {
        let sim = simulate::simulate(&trace, &governed("1%", trend), &cluster());
        let scored = sim.summaries_between(Some(t0() + Duration::days(8)), None);
        let achieved = scored[0].under_provisioned_time_pct;
        assert!(
            (0.7..=1.3).contains(&achieved),
            "{trend}: {achieved:.3} % short over weeks 2-4, stated 1 %"
        );
    }
}

#[test]
fn a_looser_risk_costs_fewer_pods() {
    let trace = stationary(10, 11);
    let score = |risk: &str| {
        let sim = simulate::simulate(&trace, &governed(risk, "none"), &cluster());
        sim.summaries_between(Some(t0() + Duration::days(3)), None)
            .remove(0)
    };
    let (tight, loose) = (score("0.5%"), score("5%"));
    assert!(
        tight.pod_hours > loose.pod_hours
            && tight.under_provisioned_time_pct < loose.under_provisioned_time_pct,
        "0.5 %: {tight:?}\n5 %: {loose:?}"
    );
    assert!(
        (2.5..=7.5).contains(&loose.under_provisioned_time_pct),
        "{loose:?}"
    );
}
