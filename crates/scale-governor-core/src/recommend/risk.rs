//! Headroom calibrated to a stated risk: with `"risk": "1%"`, the
//! recommender adds to every trend's forecast (proportional, velocity,
//! acceleration, seasonal) a headroom it adjusts itself, so that the share
//! of time the workload is short of capacity tracks the risk.
//!
//! What is scored is what the risk speaks of: each loop period, whether the
//! ready capacity (ready pods × `targetPerPod`) was below the demand that
//! arrived. A metric shows demand late (a scrape interval, a rate window):
//! a sample is paired with the capacity that was ready when that demand
//! arrived, the metric's delay earlier, not with the pods ready now, which
//! would meet a rise with pods started for it and count too few
//! shortfalls. The headroom is a fraction of the forecast (with a pod's worth
//! as the least scale), moved by online quantile tracking, the update of
//! adaptive conformal inference (Gibbs & Candès, *Adaptive Conformal
//! Inference Under Distribution Shift*, NeurIPS 2021): after every period,
//! `fraction += STEP × (short − risk)`. A period short raises it by
//! `STEP × (1 − risk)`; a period covered lowers it by `STEP × risk`, so a
//! long run without a shortfall gives headroom back, slowly. Whatever the
//! demand, the sum of the steps is the fraction's net change, which is
//! bounded, so the share of periods short converges to the risk: over `T`
//! periods it is within `range / (STEP × T)` of it.
//!
//! - **Bounded steps**: one period moves the fraction by at most [`STEP`]
//!   (a longer period counts for at most four: [`MAX_STEP`]), so a spike
//!   cannot make the headroom jump.
//! - **Never below half the forecast**: the fraction stays within
//!   [`FLOOR`]..[`CEILING`], and the headroom is never below −½ forecast. A
//!   loose risk on a forecast that errs high may take headroom away.
//! - **Shown**: the share short over the trailing day ([`WINDOW_SECONDS`],
//!   in 5-minute bins), the headroom now and the stated risk, in the
//!   recommendation's reason, `status` and a metric; and, once, when the
//!   share has stayed above twice the risk for a day ([`Calibration::missed`]).
//! - **Persisted** ([`RiskSummary`]) beside the seasonal history, so a new
//!   leader carries on.

mod summary;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

pub use self::summary::{RiskSummary, SUMMARY_VERSION, SummaryError};
use super::{Recommender, num};

/// How far one loop period of 15 s moves the fraction at most.
pub const STEP: f64 = 0.01;
/// The loop period a step is sized for; a longer one weighs more.
const REFERENCE_SECONDS: f64 = 15.0;
/// One observation counts for at most this many reference periods (a
/// minute), so a gap (a leader change) is not one huge step.
const MAX_WEIGHT: f64 = 4.0;
/// The most one observation moves the fraction.
pub const MAX_STEP: f64 = STEP * MAX_WEIGHT;
/// The least fraction: never below half the forecast.
pub const FLOOR: f64 = -0.5;
/// The most fraction: three forecasts' worth on top.
pub const CEILING: f64 = 3.0;
/// Where a workload with no history starts: a tenth on top, the safe side.
pub const START: f64 = 0.1;
/// The trailing window the achieved share is taken over: a day.
pub const WINDOW_SECONDS: i64 = 86_400;
/// Width of a window bin.
pub(crate) const BIN_SECONDS: i64 = 300;
/// Bins in the window.
pub(crate) const WINDOW_BINS: usize = (WINDOW_SECONDS / BIN_SECONDS) as usize;
/// The achieved share is judged against twice the risk only once the
/// window holds this much: an hour.
const JUDGED_AFTER_SECONDS: f64 = 3600.0;
/// How long the share must stay above twice the risk to be reported.
const MISSED_FOR: Duration = Duration::days(1);

/// Seconds scored and seconds short in one bin of the window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct WindowBin {
    pub(crate) scored: f32,
    pub(crate) short: f32,
}

fn index_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(BIN_SECONDS)
}

/// The calibrated headroom of one workload, and what it achieved.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// The stated risk, a share from 0.001 to 0.2.
    stated: f64,
    /// The headroom as a fraction of the forecast's scale.
    fraction: f64,
    /// The trailing window, oldest first; `bins[0]` is bin `first`.
    bins: VecDeque<WindowBin>,
    first: i64,
    /// The last observation's instant.
    last: Option<DateTime<Utc>>,
    /// Since when the achieved share has been above twice the risk.
    above_since: Option<DateTime<Utc>>,
    /// Whether that stretch was reported.
    reported: bool,
    /// The forecast and headroom of the last recommendation, for `status`.
    applied: Option<(f64, f64)>,
    /// How late the metric shows demand.
    delay: Duration,
    /// Capacity ready over the last delay, oldest first, to pair with the
    /// demand the metric shows now.
    ready: VecDeque<(DateTime<Utc>, f64)>,
}

/// What `status`, the metric and the `state` annotation show of a
/// calibration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RiskStatus {
    /// The stated risk, a share (0.01 for `"1%"`).
    pub stated: f64,
    /// The share of the trailing window short; `None` before anything was
    /// scored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub achieved: Option<f64>,
    /// Seconds the window holds (up to a day).
    pub window_seconds: i64,
    /// The headroom of the last recommendation, in demand units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headroom: Option<f64>,
}

impl Calibration {
    /// No history: the fraction at [`START`].
    pub fn new(stated: f64) -> Calibration {
        Calibration {
            stated,
            fraction: START,
            bins: VecDeque::new(),
            first: 0,
            last: None,
            above_since: None,
            reported: false,
            applied: None,
            delay: Duration::zero(),
            ready: VecDeque::new(),
        }
    }

    /// Pairs each demand sample with the capacity ready `delay` before it
    /// was taken: how late the metric shows demand.
    pub fn set_delay(&mut self, delay: Duration) {
        self.delay = delay.max(Duration::zero());
    }

    /// The stated risk.
    pub fn stated(&self) -> f64 {
        self.stated
    }

    /// Takes a new stated risk (the annotation changed), keeping the
    /// headroom learnt so far; a stretch above twice the old one no longer
    /// counts.
    pub fn restate(&mut self, stated: f64) {
        if stated != self.stated {
            self.stated = stated;
            self.above_since = None;
            self.reported = false;
        }
    }

    /// The headroom as a fraction of the forecast's scale.
    pub fn fraction(&self) -> f64 {
        self.fraction
    }

    /// Scores one loop period at `at`: whether the capacity ready when the
    /// demand the metric shows arrived (`capacity` now, ready pods ×
    /// `targetPerPod`, and what was ready the delay before) was below
    /// `demand`, and moves the headroom. An observation out of time order,
    /// or of a value that is not a number, is ignored.
    pub fn observe(&mut self, at: DateTime<Utc>, capacity: f64, demand: f64) {
        if !(capacity.is_finite() && demand.is_finite()) {
            return;
        }
        let seconds = match self.last {
            Some(last) if at <= last => return,
            Some(last) => {
                ((at - last).num_milliseconds() as f64 / 1000.0).min(REFERENCE_SECONDS * MAX_WEIGHT)
            }
            None => REFERENCE_SECONDS,
        };
        self.last = Some(at);
        let capacity = self.ready_then(at, capacity);
        // A relative epsilon, as `simulate` scores: float noise is not a
        // shortfall.
        let short = demand - capacity.max(0.0) > 1e-9 * demand.max(1.0);
        let weight = seconds / REFERENCE_SECONDS;
        let moved = STEP * weight * (f64::from(u8::from(short)) - self.stated);
        self.fraction = (self.fraction + moved).clamp(FLOOR, CEILING);
        self.count(at, seconds, short);
        self.judge(at);
    }

    /// The capacity ready at `at − delay`: the latest recorded at or before
    /// then (the oldest known, early on), after recording `capacity` at
    /// `at`.
    fn ready_then(&mut self, at: DateTime<Utc>, capacity: f64) -> f64 {
        self.ready.push_back((at, capacity));
        let then = at - self.delay;
        while self.ready.get(1).is_some_and(|(t, _)| *t <= then) {
            self.ready.pop_front();
        }
        self.ready.front().map_or(capacity, |(_, c)| *c)
    }

    /// Books `seconds` (short or not) into the window bin of `at`, and
    /// drops bins older than the window.
    fn count(&mut self, at: DateTime<Utc>, seconds: f64, short: bool) {
        let index = index_of(at);
        let open = self.first + self.bins.len() as i64 - 1;
        if self.bins.is_empty() || index < self.first || index - open > WINDOW_BINS as i64 {
            self.bins.clear();
            self.first = index;
            self.bins.push_back(WindowBin::default());
        }
        while self.first + (self.bins.len() as i64) <= index {
            self.bins.push_back(WindowBin::default());
        }
        while self.bins.len() > WINDOW_BINS {
            self.bins.pop_front();
            self.first += 1;
        }
        let bin = &mut self.bins[(index - self.first) as usize];
        bin.scored += seconds as f32;
        if short {
            bin.short += seconds as f32;
        }
    }

    /// Follows how long the achieved share has been above twice the risk.
    fn judge(&mut self, at: DateTime<Utc>) {
        let (scored, short) = self.totals();
        let above = scored >= JUDGED_AFTER_SECONDS && short > 2.0 * self.stated * scored;
        if above {
            self.above_since.get_or_insert(at);
        } else {
            self.above_since = None;
            self.reported = false;
        }
    }

    /// Seconds scored and short in the window.
    fn totals(&self) -> (f64, f64) {
        self.bins.iter().fold((0.0, 0.0), |(a, b), bin| {
            (a + f64::from(bin.scored), b + f64::from(bin.short))
        })
    }

    /// The share of the trailing window short, and the seconds it holds;
    /// `None` before anything was scored.
    pub fn achieved(&self) -> Option<(f64, f64)> {
        let (scored, short) = self.totals();
        (scored > 0.0).then(|| (short / scored, scored))
    }

    /// The headroom on top of `forecast` (in demand units, `per_pod` the
    /// demand a pod serves): the fraction of the forecast, or of a pod's
    /// worth when the forecast is smaller, and never below −½ forecast.
    /// Remembered for [`Calibration::status`].
    pub fn headroom(&mut self, forecast: f64, per_pod: f64) -> f64 {
        let forecast = forecast.max(0.0);
        let scale = forecast.max(per_pod);
        let headroom = (self.fraction * scale).max(-0.5 * forecast);
        self.applied = Some((forecast, headroom));
        headroom
    }

    /// Once per stretch: a message when the achieved share has stayed above
    /// twice the risk for a day.
    pub fn missed(&mut self, now: DateTime<Utc>) -> Option<String> {
        let since = self.above_since?;
        if self.reported || now - since < MISSED_FOR {
            return None;
        }
        self.reported = true;
        let (achieved, _) = self.achieved()?;
        Some(format!(
            "short of capacity {} of the last {} against a stated risk of {}, above twice the risk since {}; the headroom is {} now and still rising",
            percent(achieved),
            span(self.window_seconds()),
            percent(self.stated),
            since.to_rfc3339(),
            self.applied.map_or("unknown".to_owned(), |(_, h)| num(h)),
        ))
    }

    /// The seconds the window spans, up to a day.
    fn window_seconds(&self) -> f64 {
        self.achieved().map_or(0.0, |(_, s)| s)
    }

    /// What `status` and the metric show.
    pub fn status(&self) -> RiskStatus {
        RiskStatus {
            stated: self.stated,
            achieved: self.achieved().map(|(a, _)| a),
            window_seconds: self.window_seconds().round() as i64,
            headroom: self.applied.map(|(_, h)| h),
        }
    }

    /// The reason's words for `headroom`: `headroom 38 (risk 1 %, achieved
    /// 0.8 % over 24 h)`.
    pub fn describe(&self, headroom: f64) -> String {
        let achieved = match self.achieved() {
            Some((share, seconds)) => {
                format!("achieved {} over {}", percent(share), span(seconds))
            }
            None => "nothing scored yet".to_owned(),
        };
        format!(
            "headroom {} (risk {}, {achieved})",
            num(headroom),
            percent(self.stated)
        )
    }
}

impl RiskStatus {
    /// How `status` shows it: `risk 1 %, achieved 0.8 % over 24 h,
    /// headroom 38`.
    pub fn describe(&self) -> String {
        let achieved = match self.achieved {
            Some(share) => format!(
                "achieved {} over {}",
                percent(share),
                span(self.window_seconds as f64)
            ),
            None => "nothing scored yet".to_owned(),
        };
        let headroom = self
            .headroom
            .map_or(String::new(), |h| format!(", headroom {}", num(h)));
        format!("risk {}, {achieved}{headroom}", percent(self.stated))
    }
}

impl Recommender {
    /// Scores one loop period, with `risk`: `ready` pods × `targetPerPod`
    /// (as they were when the demand arrived, `delay` before the sample)
    /// against the `demand` the metric shows. Without `risk`, nothing.
    pub fn score(&mut self, at: DateTime<Utc>, ready: u32, demand: f64, delay: Duration) {
        let per_pod = self.config.target_per_pod();
        if let Some(calibration) = self.calibration.as_mut() {
            calibration.set_delay(delay);
            calibration.observe(at, f64::from(ready) * per_pod, demand);
        }
    }

    /// The calibrated headroom on top of `forecast`, with `risk`.
    pub(super) fn calibrated(&mut self, forecast: f64) -> Option<f64> {
        let per_pod = self.config.target_per_pod();
        self.calibration
            .as_mut()
            .map(|c| c.headroom(forecast, per_pod))
    }

    /// The calibration, with `risk`.
    pub fn calibration(&self) -> Option<&Calibration> {
        self.calibration.as_ref()
    }

    /// The calibration, to take its notices.
    pub fn calibration_mut(&mut self) -> Option<&mut Calibration> {
        self.calibration.as_mut()
    }

    /// Takes over a persisted calibration (with `risk`; otherwise it is not
    /// needed and dropped), stated as the configuration states it now.
    pub fn restore_calibration(&mut self, mut calibration: Calibration) {
        if let Some(stated) = self.config.risk() {
            calibration.restate(stated);
            self.calibration = Some(calibration);
        }
    }
}

/// A share as a percentage for a reason: `1 %`, `0.8 %`, `0.05 %`.
pub fn percent(share: f64) -> String {
    let p = share * 100.0;
    if p == 0.0 || p >= 10.0 || (p - p.round()).abs() < 1e-9 {
        format!("{p:.0} %")
    } else if p >= 0.095 {
        format!("{p:.1} %")
    } else {
        format!("{p:.2} %")
    }
}

/// A window's span for a reason: `24 h`, `3 h`, `45 min`.
fn span(seconds: f64) -> String {
    if seconds >= 3600.0 {
        format!("{:.0} h", seconds / 3600.0)
    } else {
        format!("{:.0} min", (seconds / 60.0).max(1.0))
    }
}
