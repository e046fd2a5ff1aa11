//! A calibration as it is persisted beside the seasonal history (key
//! `risk` of the workload's ledger object), so a new leader carries on
//! with the headroom learnt and the trailing day's record: versioned JSON,
//! the window's seconds scored and short per 5-minute bin as
//! little-endian `u16`s in base64, about 1.7 KB. Reading is defensive, as
//! for the seasonal summary: what a person could have edited is refused
//! with the reason, and the calibration then starts afresh.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{BIN_SECONDS, CEILING, Calibration, FLOOR, WINDOW_BINS, WindowBin};
use crate::recommend::packed::{self, Refusal, pack, unpack};

/// The format's version.
pub const SUMMARY_VERSION: u32 = 1;
/// The largest summary text read: a day of bins needs under 2 KB.
const MAX_SUMMARY_BYTES: usize = 8 * 1024;

/// Why a persisted calibration is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SummaryError {
    /// Larger than any summary this version writes.
    #[error("the risk calibration is {0} bytes, more than the {MAX_SUMMARY_BYTES} allowed")]
    TooLarge(usize),
    /// Not the JSON this version writes.
    #[error("the risk calibration does not parse: {0}")]
    Malformed(String),
    /// Another version's format.
    #[error("risk calibration format v{0} is not v{SUMMARY_VERSION}")]
    Version(u32),
    /// Values that cannot be right.
    #[error("the risk calibration is not consistent: {0}")]
    Inconsistent(String),
}

impl Refusal for SummaryError {
    fn too_large(bytes: usize) -> Self {
        Self::TooLarge(bytes)
    }
    fn malformed(why: String) -> Self {
        Self::Malformed(why)
    }
    fn version(found: u32) -> Self {
        Self::Version(found)
    }
    fn inconsistent(why: String) -> Self {
        Self::Inconsistent(why)
    }
}

/// The persisted form of a [`Calibration`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RiskSummary {
    /// [`SUMMARY_VERSION`].
    #[serde(rename = "v")]
    pub version: u32,
    /// The risk it was calibrated to.
    pub stated: f64,
    /// The headroom as a fraction of the forecast's scale.
    pub fraction: f64,
    /// Width of a window bin, seconds.
    pub bin_seconds: i64,
    /// Start of the first bin.
    pub start: DateTime<Utc>,
    /// Seconds scored per bin, little-endian `u16`s, base64.
    pub scored: String,
    /// Seconds short per bin, the same way.
    pub short: String,
    /// The last observation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<DateTime<Utc>>,
    /// Since when the share short has been above twice the risk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above_since: Option<DateTime<Utc>>,
    /// Whether that was reported.
    #[serde(default)]
    pub reported: bool,
}

fn encode(values: impl Iterator<Item = f32>) -> String {
    pack(
        values.map(|v| (f64::from(v).round().clamp(0.0, f64::from(u16::MAX)) as u16).to_le_bytes()),
    )
}

impl RiskSummary {
    /// The summary's JSON.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a summary, refusing anything this version would not have
    /// written.
    pub fn parse(text: &str) -> Result<RiskSummary, SummaryError> {
        packed::read(
            text,
            MAX_SUMMARY_BYTES,
            SUMMARY_VERSION,
            |s: &RiskSummary| s.version,
        )
    }

    /// The calibration this summary holds, as of `now`, for a workload
    /// that now states `stated`: a fraction out of range, bins that are not
    /// bins or that reach past `now`, or a last observation in the future
    /// are refused; bins older than the window are dropped.
    pub fn restore(&self, now: DateTime<Utc>, stated: f64) -> Result<Calibration, SummaryError> {
        let bad = |m: String| Err(SummaryError::Inconsistent(m));
        if self.bin_seconds != BIN_SECONDS {
            return bad(format!("bins of {}s, not {BIN_SECONDS}s", self.bin_seconds));
        }
        if !(self.fraction.is_finite() && (FLOOR..=CEILING).contains(&self.fraction)) {
            return bad(format!("fraction {} is out of range", self.fraction));
        }
        if self.start.timestamp().rem_euclid(BIN_SECONDS) != 0 {
            return bad(format!("start {} is not on a bin", self.start.to_rfc3339()));
        }
        let (scored, short) = (
            unpack(&self.scored, "scored")?,
            unpack(&self.short, "short")?,
        );
        if scored.len() != short.len() || scored.len() > WINDOW_BINS {
            return bad(format!(
                "{} and {} bins; expected as many of each, at most {WINDOW_BINS}",
                scored.len(),
                short.len()
            ));
        }
        let first = self.start.timestamp().div_euclid(BIN_SECONDS);
        let now_index = now.timestamp().div_euclid(BIN_SECONDS);
        let open = first + scored.len() as i64 - 1;
        if open > now_index || self.last.is_some_and(|l| l > now) {
            return bad("it reaches past now".to_owned());
        }
        let mut calibration = Calibration::new(self.stated);
        calibration.fraction = self.fraction;
        calibration.last = self.last;
        calibration.above_since = self.above_since;
        calibration.reported = self.reported;
        calibration.first = first;
        calibration.bins = scored
            .iter()
            .zip(&short)
            .map(|(&a, &b)| WindowBin {
                scored: f32::from(a),
                // More short than scored is not believed.
                short: f32::from(b.min(a)),
            })
            .collect();
        let cutoff = now_index - WINDOW_BINS as i64;
        while calibration.first <= cutoff && !calibration.bins.is_empty() {
            calibration.bins.pop_front();
            calibration.first += 1;
        }
        calibration.restate(stated);
        Ok(calibration)
    }
}

impl Calibration {
    /// What to persist.
    pub fn summary(&self) -> RiskSummary {
        RiskSummary {
            version: SUMMARY_VERSION,
            stated: self.stated,
            fraction: self.fraction,
            bin_seconds: BIN_SECONDS,
            start: DateTime::from_timestamp(self.first * BIN_SECONDS, 0).unwrap_or_default(),
            scored: encode(self.bins.iter().map(|b| b.scored)),
            short: encode(self.bins.iter().map(|b| b.short)),
            last: self.last,
            above_since: self.above_since,
            reported: self.reported,
        }
    }
}
