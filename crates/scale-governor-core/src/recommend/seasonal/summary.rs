//! The seasonal history as it is persisted, so a restart or a new leader
//! does not start blind: each bin's highest and mean demand and its
//! forecast error as 16-bit fractions of the largest demand, base64, in
//! versioned JSON. Two weeks of 5-minute bins is 4,033 bins × 6 bytes,
//! about 32 KB as text. Reading
//! is defensive: the text comes from an object a person could edit, so a
//! summary of another version, size or shape is refused with the reason,
//! and the strategy then starts afresh.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{BIN_SECONDS, Bin, KEEP_BINS, Seasonal};
use crate::recommend::packed::{self, Refusal, pack, unpack};

/// The format's version.
pub const SUMMARY_VERSION: u32 = 1;
/// The largest summary text read: two weeks of bins need about 32 KB.
pub const MAX_SUMMARY_BYTES: usize = 48 * 1024;
/// A quantized value meaning "no data in this bin".
const MISSING: u16 = u16::MAX;
/// The largest quantized value.
const FULL: f64 = (u16::MAX - 1) as f64;
/// A quantized error meaning "no error known".
const NO_ERROR: i16 = i16::MIN;
/// The largest quantized error, either way.
const FULL_ERROR: f64 = i16::MAX as f64;
/// Demand beyond this is not believed (and would lose all precision).
const MAX_SCALE: f64 = 1e12;

/// Why a persisted summary is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SummaryError {
    /// Larger than any summary this version writes.
    #[error("the seasonal summary is {0} bytes, more than the {MAX_SUMMARY_BYTES} allowed")]
    TooLarge(usize),
    /// Not the JSON this version writes.
    #[error("the seasonal summary does not parse: {0}")]
    Malformed(String),
    /// Another version's format.
    #[error("seasonal summary format v{0} is not v{SUMMARY_VERSION}")]
    Version(u32),
    /// Values that cannot be right.
    #[error("the seasonal summary is not consistent: {0}")]
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

/// The persisted form of a [`Seasonal`] history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeasonalSummary {
    /// [`SUMMARY_VERSION`].
    #[serde(rename = "v")]
    pub version: u32,
    /// [`BIN_SECONDS`].
    pub bin_seconds: i64,
    /// Start of the first bin.
    pub start: DateTime<Utc>,
    /// The value a quantized 65,534 stands for.
    pub scale: f64,
    /// Each bin's highest demand, little-endian `u16`s, base64.
    pub max: String,
    /// Each bin's mean demand, the same way.
    pub mean: String,
    /// Each bin's forecast error, little-endian `i16`s as fractions of
    /// `scale`, base64.
    pub error: String,
}

fn encode(values: impl Iterator<Item = Option<f64>>, scale: f64) -> String {
    pack(values.map(|v| {
        match v {
            Some(v) => ((v / scale) * FULL).round().clamp(0.0, FULL) as u16,
            None => MISSING,
        }
        .to_le_bytes()
    }))
}

fn encode_errors(values: impl Iterator<Item = f32>, scale: f64) -> String {
    pack(values.map(|e| {
        if e.is_nan() {
            NO_ERROR
        } else {
            (f64::from(e) / scale * FULL_ERROR)
                .round()
                .clamp(-FULL_ERROR, FULL_ERROR) as i16
        }
        .to_le_bytes()
    }))
}

impl SeasonalSummary {
    /// The summary's JSON.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a summary, refusing anything this version would not have
    /// written.
    pub fn parse(text: &str) -> Result<SeasonalSummary, SummaryError> {
        packed::read(
            text,
            MAX_SUMMARY_BYTES,
            SUMMARY_VERSION,
            |s: &SeasonalSummary| s.version,
        )
    }

    /// The history this summary holds, as of `now`: bins that end after
    /// `now` (a summary from the future) or a scale that is not a positive
    /// number are refused; bins older than two weeks are dropped.
    pub fn restore(&self, now: DateTime<Utc>, lead_seconds: u32) -> Result<Seasonal, SummaryError> {
        let bad = |m: String| Err(SummaryError::Inconsistent(m));
        if self.bin_seconds != BIN_SECONDS {
            return bad(format!("bins of {}s, not {BIN_SECONDS}s", self.bin_seconds));
        }
        if !(self.scale.is_finite() && self.scale > 0.0 && self.scale <= MAX_SCALE) {
            return bad(format!("scale {} is not a demand", self.scale));
        }
        if self.start.timestamp().rem_euclid(BIN_SECONDS) != 0 {
            return bad(format!("start {} is not on a bin", self.start.to_rfc3339()));
        }
        let (max, mean) = (unpack(&self.max, "max")?, unpack(&self.mean, "mean")?);
        let error = unpack(&self.error, "error")?;
        if max.len() != mean.len()
            || max.len() != error.len()
            || max.is_empty()
            || max.len() > KEEP_BINS + 1
        {
            return bad(format!(
                "{}, {} and {} bins; expected 1 to {} of each",
                max.len(),
                mean.len(),
                error.len(),
                KEEP_BINS + 1
            ));
        }
        let first = self.start.timestamp().div_euclid(BIN_SECONDS);
        let open = first + max.len() as i64 - 1;
        let now_index = now.timestamp().div_euclid(BIN_SECONDS);
        if open > now_index {
            return bad(format!("it reaches {} bins past now", open - now_index));
        }
        let value = |q: u16| (q != MISSING).then(|| f64::from(q) / FULL * self.scale);
        let bins = max
            .iter()
            .zip(&mean)
            .zip(&error)
            .map(|((&hi, &avg), &e)| match (value(hi), value(avg)) {
                (Some(hi), Some(avg)) => Bin {
                    max: hi as f32,
                    // A mean above the maximum is not believed.
                    sum: avg.min(hi) as f32,
                    count: 1,
                    error: match e as i16 {
                        NO_ERROR => f32::NAN,
                        q => (f64::from(q) / FULL_ERROR * self.scale) as f32,
                    },
                    ..Bin::default()
                },
                _ => Bin::default(),
            })
            .collect();
        let mut seasonal = Seasonal::new(lead_seconds);
        seasonal.rebuild(first, bins);
        Ok(seasonal)
    }
}

impl Seasonal {
    /// The history to persist; `None` with none.
    pub fn summary(&self) -> Option<SeasonalSummary> {
        let (first, bins) = self.bins();
        let bins: Vec<&Bin> = bins.collect();
        if bins.is_empty() {
            return None;
        }
        let scale = bins
            .iter()
            .map(|b| f64::from(b.max))
            .fold(0.0, f64::max)
            .max(f64::MIN_POSITIVE);
        let present = |b: &&Bin, v: f64| (b.count > 0).then_some(v);
        Some(SeasonalSummary {
            version: SUMMARY_VERSION,
            bin_seconds: BIN_SECONDS,
            start: DateTime::from_timestamp(first * BIN_SECONDS, 0).unwrap_or_default(),
            scale,
            max: encode(bins.iter().map(|b| present(b, f64::from(b.max))), scale),
            mean: encode(bins.iter().map(|b| present(b, b.mean())), scale),
            error: encode_errors(bins.iter().map(|b| b.error), scale),
        })
    }
}
