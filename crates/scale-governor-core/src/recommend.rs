//! The recommender's strategies, pure: demand samples in, a
//! [`Recommendation`] out. The background loop feeds it from a metric source;
//! `simulate` feeds it from a trace. Same code either way.
//!
//! - **Proportional control**, as the HPA: `ceil(demand / targetPerPod)`,
//!   left alone within `tolerance`.
//! - **Velocity and acceleration**: demand is extrapolated `leadSeconds`
//!   ahead (the pods' start-up time) from smoothed first and second
//!   derivatives, so capacity is ready when a ramp arrives. Extrapolation
//!   only ever raises a recommendation.
//! - **Hold**: the highest recommendation of the last `holdSeconds` is kept,
//!   so a dip does not give back pods that the next rise needs.

use std::collections::VecDeque;

use crate::policy::{MAX_REPLICA_COUNT, RecommendConfig, Recommendation, Trend};
use chrono::{DateTime, Duration, Utc};

/// Recommender state for one workload.
#[derive(Debug, Clone)]
pub struct Recommender {
    config: RecommendConfig,
    last: Option<(DateTime<Utc>, f64)>,
    velocity: f64,
    acceleration: f64,
    held: VecDeque<(DateTime<Utc>, u32)>,
}

impl Recommender {
    /// A recommender with no history.
    pub fn new(config: RecommendConfig) -> Recommender {
        Recommender {
            config,
            last: None,
            velocity: 0.0,
            acceleration: 0.0,
            held: VecDeque::new(),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &RecommendConfig {
        &self.config
    }

    /// Takes one demand sample. Samples must come in time order; an older or
    /// equal timestamp, or a non-finite value, is ignored.
    pub fn observe(&mut self, at: DateTime<Utc>, demand: f64) {
        if !demand.is_finite() {
            return;
        }
        let demand = demand.max(0.0);
        if let Some((prev_at, prev)) = self.last {
            let dt = (at - prev_at).num_milliseconds() as f64 / 1000.0;
            if dt <= 0.0 {
                return;
            }
            let alpha = 1.0 - (-dt / f64::from(self.config.smoothing_seconds.max(1))).exp();
            let velocity = (demand - prev) / dt;
            let previous_velocity = self.velocity;
            self.velocity += alpha * (velocity - self.velocity);
            self.acceleration +=
                alpha * ((self.velocity - previous_velocity) / dt - self.acceleration);
        }
        self.last = Some((at, demand));
    }

    /// Demand expected `leadSeconds` from the last sample; never below it.
    /// Only a rising demand is extrapolated: after a drop levels off, the
    /// second derivative is positive, but nothing is coming.
    pub fn predicted(&self) -> f64 {
        let Some((_, demand)) = self.last else {
            return 0.0;
        };
        if self.velocity <= 0.0 {
            return demand;
        }
        let lead = f64::from(self.config.lead_seconds);
        let ahead = match self.config.trend {
            Trend::None => demand,
            Trend::Velocity => demand + self.velocity * lead,
            Trend::Acceleration => {
                demand + self.velocity * lead + 0.5 * self.acceleration * lead * lead
            }
        };
        ahead.max(demand)
    }

    /// The recommendation at `now` for a workload running `current` replicas.
    pub fn recommend(&mut self, current: u32, now: DateTime<Utc>) -> Recommendation {
        let c = &self.config;
        let demand = self.last.map_or(0.0, |(_, d)| d);
        let predicted = self.predicted();
        let ratio = if current == 0 {
            f64::INFINITY
        } else {
            predicted / (f64::from(current) * c.target_per_pod)
        };
        let raw = (predicted / c.target_per_pod)
            .ceil()
            .min(f64::from(MAX_REPLICA_COUNT)) as u32;
        let wanted = if current > 0 && (ratio - 1.0).abs() <= c.tolerance {
            current
        } else {
            raw
        };
        let cutoff = now - Duration::seconds(i64::from(c.hold_seconds));
        while self.held.front().is_some_and(|(at, _)| *at <= cutoff) {
            self.held.pop_front();
        }
        self.held.push_back((now, wanted));
        let replicas = self.held.iter().map(|(_, r)| *r).max().unwrap_or(wanted);
        let mut reason = format!(
            "demand {demand:.1}, predicted {predicted:.1} in {}s, {:.1} per pod: {wanted}",
            c.lead_seconds, c.target_per_pod
        );
        if replicas > wanted {
            reason.push_str(&format!(", held at {replicas} for {}s", c.hold_seconds));
        }
        Recommendation {
            replicas,
            reason,
            computed_at: now,
            expires_at: now + Duration::seconds(i64::from(c.ttl_seconds)),
            kind: c.kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(trend: Trend) -> RecommendConfig {
        RecommendConfig::parse(&format!(
            r#"{{"targetPerPod":10,"leadSeconds":60,"trend":"{}","smoothingSeconds":1,"holdSeconds":120}}"#,
            match trend {
                Trend::None => "none",
                Trend::Velocity => "velocity",
                Trend::Acceleration => "acceleration",
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
        r.observe(t(0), 95.0);
        // 95 / (10 × 10) = 0.95: within 10 %, keep 10.
        assert_eq!(r.recommend(10, t(0)).replicas, 10);
        r.observe(t(15), 250.0);
        assert_eq!(r.recommend(10, t(15)).replicas, 25);
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
        assert!(
            rec.reason
                .starts_with("demand 235.0, predicted 295.0 in 60s"),
            "{}",
            rec.reason
        );
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
}
