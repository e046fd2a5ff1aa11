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
//! - **Seasonal** ([`seasonal`]): the highest demand expected within the
//!   lead, from the same time a day and a week ago scaled to the current
//!   level, plus a quantile of the forecast's own past errors. It takes over
//!   from the velocity strategy once a day of history is there.
//! - **Warm pool** ([`pool`]): reserved pods plus `targetReady` idle ones.
//! - **Time windows** ([`schedule`]): replicas moved into the bounds of the
//!   window in force, and back when it ends.
//!
//! Each strategy's own result but the seasonal one is held at its highest
//! of the last `holdSeconds` (so a dip does not give back pods the next
//! rise needs); the seasonal forecast already looks ahead over the lead, so
//! it follows demand down as soon as no rise is expected. Then the highest
//! strategy wins ([`combine`]), as the HPA takes the highest of its
//! metrics, and the result is kept within the policy's bounds and never
//! below 1 unless `min-replicas` is `"0"` ([`bounded`]).

mod packed;
pub mod plan;
pub mod pool;
pub mod risk;
pub mod schedule;
pub mod seasonal;
pub mod state;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use self::{risk::Calibration, seasonal::Seasonal};
use crate::{
    engine::Bounds,
    policy::{
        MAX_REPLICA_COUNT, Policy, RECOMMENDATION_VERSION, RecommendConfig, Recommendation, Trend,
    },
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

/// The fewest replicas a recommendation may ask for under `policy`: 1, so
/// an outage in target mode never scales a workload to zero by accident,
/// unless the policy says `min-replicas: "0"`.
pub fn least(policy: &Policy) -> u32 {
    if policy.min_replicas == Some(0) { 0 } else { 1 }
}

/// `recommendation` kept within `policy`'s own bounds at `now` (static and
/// windows) and never below [`least`]; the reason says when it was moved.
pub fn bounded(
    mut recommendation: Recommendation,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Recommendation {
    let bounds = Bounds::own(policy, now, &mut Vec::new());
    let lower = bounds.lower().max(least(policy)).min(bounds.upper());
    let asked = recommendation.replicas;
    if asked < lower {
        recommendation.replicas = lower;
        let why = if bounds.lower() >= lower {
            bounds.describe().0
        } else {
            "never below 1 unless min-replicas is \"0\"".to_owned()
        };
        recommendation
            .reason
            .push_str(&format!("; raised to {lower}: {why}"));
    } else if asked > bounds.upper() {
        recommendation.replicas = bounds.upper();
        recommendation.reason.push_str(&format!(
            "; capped at {}: {}",
            bounds.upper(),
            bounds.describe().1
        ));
    }
    recommendation
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
    /// With `trend: seasonal`: the history the forecast comes from.
    seasonal: Option<Seasonal>,
    /// With `risk`: the headroom calibrated to it.
    calibration: Option<Calibration>,
}

impl Recommender {
    /// A recommender with no history.
    pub fn new(config: RecommendConfig) -> Recommender {
        let seasonal = (config.trend == Trend::Seasonal).then(|| {
            let mut seasonal = Seasonal::new(config.lead_seconds);
            seasonal.set_zone(config.zone());
            seasonal
        });
        let calibration = config.risk().map(Calibration::new);
        Recommender {
            config,
            last: None,
            velocity: 0.0,
            acceleration: 0.0,
            hold: Hold::default(),
            seasonal,
            calibration,
        }
    }

    /// The seasonal history, with `trend: seasonal`.
    pub fn seasonal(&self) -> Option<&Seasonal> {
        self.seasonal.as_ref()
    }

    /// Takes over a persisted or backfilled seasonal history (with `trend:
    /// seasonal`; otherwise it is not needed and dropped).
    pub fn restore_seasonal(&mut self, mut history: Seasonal) {
        if self.config.trend == Trend::Seasonal {
            history.set_lead(self.config.lead_seconds);
            history.set_zone(self.config.zone());
            self.seasonal = Some(history);
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
        match (config.trend == Trend::Seasonal, self.seasonal.as_mut()) {
            (true, None) => {
                let mut seasonal = Seasonal::new(config.lead_seconds);
                seasonal.set_zone(config.zone());
                self.seasonal = Some(seasonal);
            }
            (true, Some(seasonal)) => {
                seasonal.set_lead(config.lead_seconds);
                seasonal.set_zone(config.zone());
            }
            (false, Some(_)) => self.seasonal = None,
            (false, None) => {}
        }
        self.calibration = match (config.risk(), self.calibration.take()) {
            (Some(stated), Some(mut calibration)) => {
                calibration.restate(stated);
                Some(calibration)
            }
            (Some(stated), None) => Some(Calibration::new(stated)),
            (None, _) => None,
        };
        self.config = config;
    }

    /// Takes one demand sample. Samples must come in time order; an older or
    /// equal timestamp, or a non-finite value, is ignored.
    pub fn observe(&mut self, at: DateTime<Utc>, demand: f64) {
        if !demand.is_finite() {
            return;
        }
        let demand = demand.max(0.0);
        if let Some(seasonal) = self.seasonal.as_mut() {
            seasonal.observe(at, demand);
        }
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
        if let Some(candidate) = self.seasonal_candidate(demand, current, now) {
            return Some(candidate);
        }
        let (forecast, strategy) = self.predicted();
        let headroom = self.calibrated(forecast);
        let predicted = forecast + headroom.unwrap_or(0.0);
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
        let plus = match (&self.calibration, headroom) {
            (Some(calibration), Some(h)) => format!(" + {}", calibration.describe(h)),
            _ => String::new(),
        };
        let mut reason = match strategy {
            "proportional" => format!(
                "proportional: demand {}{plus}, {} per pod -> {wanted}",
                num(demand),
                num(per_pod)
            ),
            "acceleration" => format!(
                "acceleration: demand {} rising {}/s (+{}/s²), projected {} in {}s{plus}, {} per pod -> {wanted}",
                num(demand),
                num(self.velocity),
                num(self.acceleration),
                num(forecast),
                c.lead_seconds,
                num(per_pod)
            ),
            _ => format!(
                "velocity: demand {} rising {}/s, projected {} in {}s{plus}, {} per pod -> {wanted}",
                num(demand),
                num(self.velocity),
                num(forecast),
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
        let mut inputs = BTreeMap::from([
            ("demand".to_owned(), num(demand)),
            ("velocity".to_owned(), format!("{:.3}", self.velocity)),
            ("predicted".to_owned(), num(forecast)),
        ]);
        if let Some(h) = headroom {
            inputs.insert("headroom".to_owned(), num(h));
        }
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
