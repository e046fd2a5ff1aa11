//! The recommender's strategies, pure: inputs in, a [`Recommendation`] out.
//! The background loop feeds them from metric sources and pods; `simulate`
//! feeds them from a trace. Same code either way.
//!
//! - **Proportional control**, as the HPA: `ceil(demand / targetPerPod)`,
//!   left alone within `tolerance`.
//! - **Velocity and acceleration**: demand is extrapolated `leadSeconds`
//!   ahead (the pods' start-up time) from smoothed first and second
//!   derivatives, so capacity is ready when a ramp arrives. Extrapolation
//!   only ever raises a recommendation, and only once the velocity (or
//!   acceleration) crosses its threshold.
//! - **Warm pool** ([`pool`]): reserved pods plus `targetReady` idle ones.
//! - **Time windows** ([`schedule`]): replicas moved into the bounds of the
//!   window in force, and back when it ends.
//!
//! Each strategy's own result is held at its highest of the last
//! `holdSeconds` (so a dip does not give back pods the next rise needs);
//! then the highest strategy wins ([`combine`]), as the HPA takes the
//! highest of its metrics. The policy's bounds come after, in the engine.

pub mod pool;
pub mod schedule;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::policy::{
    MAX_REPLICA_COUNT, RECOMMENDATION_VERSION, RecommendConfig, Recommendation, Trend,
};

/// One strategy's answer, before the strategies are combined.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// `proportional`, `velocity`, `acceleration`, `warm-pool`.
    pub strategy: &'static str,
    /// What it asks for.
    pub replicas: u32,
    /// Why, with the numbers.
    pub reason: String,
    /// Its inputs, for the annotation.
    pub inputs: BTreeMap<String, String>,
}

/// The highest of the candidates, as a recommendation of `config`'s kind
/// computed at `now`; `None` when there is no candidate.
pub fn combine(
    candidates: Vec<Candidate>,
    config: &RecommendConfig,
    now: DateTime<Utc>,
) -> Option<Recommendation> {
    let mut best: Option<Candidate> = None;
    for candidate in candidates {
        if best
            .as_ref()
            .is_none_or(|b| candidate.replicas > b.replicas)
        {
            best = Some(candidate);
        }
    }
    best.map(|b| b.into_recommendation(config, now))
}

impl Candidate {
    /// This candidate as a recommendation of `config`'s kind and lifetime.
    pub fn into_recommendation(
        self,
        config: &RecommendConfig,
        now: DateTime<Utc>,
    ) -> Recommendation {
        Recommendation {
            version: RECOMMENDATION_VERSION,
            replicas: self.replicas,
            reason: self.reason,
            computed_at: now,
            expires_at: now + Duration::seconds(i64::from(config.ttl_seconds)),
            kind: config.kind,
            strategy: self.strategy.to_owned(),
            inputs: self.inputs,
        }
    }
}

/// A number for a reason: whole when it is whole, one decimal otherwise.
pub(crate) fn num(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// The highest of a strategy's answers over the last `hold` seconds.
#[derive(Debug, Clone, Default)]
pub struct Hold {
    held: VecDeque<(DateTime<Utc>, u32)>,
}

impl Hold {
    /// Records `wanted` at `now` and returns the highest within `hold`.
    pub fn apply(&mut self, wanted: u32, hold_seconds: u32, now: DateTime<Utc>) -> u32 {
        let cutoff = now - Duration::seconds(i64::from(hold_seconds));
        while self.held.front().is_some_and(|(at, _)| *at <= cutoff) {
            self.held.pop_front();
        }
        self.held.push_back((now, wanted));
        self.held.iter().map(|(_, r)| *r).max().unwrap_or(wanted)
    }
}

/// What a new leader needs to carry on where the last one left off: the
/// smoothed demand trend, persisted in the governor's state annotation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrendSummary {
    /// When the last sample was taken.
    pub at: DateTime<Utc>,
    /// The last demand sample.
    pub demand: f64,
    /// Smoothed demand per second.
    pub velocity: f64,
    /// Smoothed demand per second².
    pub acceleration: f64,
}

/// The demand strategies' state for one workload.
#[derive(Debug, Clone)]
pub struct Recommender {
    config: RecommendConfig,
    last: Option<(DateTime<Utc>, f64)>,
    velocity: f64,
    acceleration: f64,
    hold: Hold,
}

impl Recommender {
    /// A recommender with no history.
    pub fn new(config: RecommendConfig) -> Recommender {
        Recommender {
            config,
            last: None,
            velocity: 0.0,
            acceleration: 0.0,
            hold: Hold::default(),
        }
    }

    /// A recommender that resumes from a persisted trend, so a new leader
    /// does not start blind.
    pub fn resume(config: RecommendConfig, summary: TrendSummary) -> Recommender {
        let ok = [summary.demand, summary.velocity, summary.acceleration]
            .iter()
            .all(|x| x.is_finite());
        let mut r = Recommender::new(config);
        if ok {
            r.last = Some((summary.at, summary.demand.max(0.0)));
            r.velocity = summary.velocity;
            r.acceleration = summary.acceleration;
        }
        r
    }

    /// The trend to persist; `None` before the first sample.
    pub fn summary(&self) -> Option<TrendSummary> {
        self.last.map(|(at, demand)| TrendSummary {
            at,
            demand,
            velocity: self.velocity,
            acceleration: self.acceleration,
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &RecommendConfig {
        &self.config
    }

    /// Replaces the configuration (the annotation changed), keeping the
    /// trend.
    pub fn reconfigure(&mut self, config: RecommendConfig) {
        self.config = config;
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

    /// Demand expected `leadSeconds` from the last sample, never below it,
    /// and the strategy that projected it. Only a rising demand above the
    /// thresholds is extrapolated: after a drop levels off, the second
    /// derivative is positive, but nothing is coming.
    pub fn predicted(&self) -> (f64, &'static str) {
        let Some((_, demand)) = self.last else {
            return (0.0, "proportional");
        };
        let c = &self.config;
        if self.velocity <= c.velocity_threshold || c.trend == Trend::None {
            return (demand, "proportional");
        }
        let lead = f64::from(c.lead_seconds);
        let with_velocity = demand + self.velocity * lead;
        let (ahead, strategy) = match c.trend {
            Trend::Acceleration if self.acceleration > c.acceleration_threshold => (
                with_velocity + 0.5 * self.acceleration * lead * lead,
                "acceleration",
            ),
            _ => (with_velocity, "velocity"),
        };
        (ahead.max(demand), strategy)
    }

    /// The demand strategies' candidate at `now` for a workload running
    /// `current` replicas, held over `holdSeconds`; `None` before the first
    /// sample.
    pub fn candidate(&mut self, current: u32, now: DateTime<Utc>) -> Option<Candidate> {
        let (_, demand) = self.last?;
        let (predicted, strategy) = self.predicted();
        let c = &self.config;
        let per_pod = c.target_per_pod();
        let ratio = if current == 0 {
            f64::INFINITY
        } else {
            predicted / (f64::from(current) * per_pod)
        };
        let raw = (predicted / per_pod)
            .ceil()
            .min(f64::from(MAX_REPLICA_COUNT)) as u32;
        let within = current > 0 && (ratio - 1.0).abs() <= c.tolerance;
        let wanted = if within { current } else { raw };
        let replicas = self.hold.apply(wanted, c.hold_seconds, now);
        let mut reason = match strategy {
            "proportional" => format!(
                "proportional: demand {}, {} per pod -> {wanted}",
                num(demand),
                num(per_pod)
            ),
            "acceleration" => format!(
                "acceleration: demand {} rising {}/s (+{}/s²), projected {} in {}s, {} per pod -> {wanted}",
                num(demand),
                num(self.velocity),
                num(self.acceleration),
                num(predicted),
                c.lead_seconds,
                num(per_pod)
            ),
            _ => format!(
                "velocity: demand {} rising {}/s, projected {} in {}s, {} per pod -> {wanted}",
                num(demand),
                num(self.velocity),
                num(predicted),
                c.lead_seconds,
                num(per_pod)
            ),
        };
        if within && raw != current {
            reason.push_str(&format!(
                " (within the {}% tolerance of {current})",
                num(c.tolerance * 100.0)
            ));
        }
        if replicas > wanted {
            reason.push_str(&format!(", held at {replicas} for {}s", c.hold_seconds));
        }
        let inputs = BTreeMap::from([
            ("demand".to_owned(), num(demand)),
            ("velocity".to_owned(), format!("{:.3}", self.velocity)),
            ("predicted".to_owned(), num(predicted)),
        ]);
        Some(Candidate {
            strategy,
            replicas,
            reason,
            inputs,
        })
    }

    /// The recommendation at `now` from the demand strategies alone (what
    /// `simulate` uses); with no sample yet, 0 replicas.
    pub fn recommend(&mut self, current: u32, now: DateTime<Utc>) -> Recommendation {
        let candidate = self.candidate(current, now).unwrap_or_else(|| Candidate {
            strategy: "proportional",
            replicas: 0,
            reason: "no demand sample yet".to_owned(),
            inputs: BTreeMap::new(),
        });
        candidate.into_recommendation(&self.config, now)
    }
}
