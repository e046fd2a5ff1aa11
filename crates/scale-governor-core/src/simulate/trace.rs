//! Demand traces: CSV `timestamp,value`, timestamps ISO-8601 or unix seconds.
//! A timestamp without an offset is read in the zone given (UTC when none
//! is), through chrono-tz: an hour the clock repeats when daylight saving
//! time ends is resolved in time order, an hour it skips cannot occur.
//! Between samples demand is either held ([`Interpolation::Step`]) or drawn
//! linearly between the samples' midpoints ([`Interpolation::Linear`]):
//! a sample is the mean over its bucket, and a 30-minute bucket held flat
//! turns a gradual rise into a jump only foresight can meet.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone as _, Utc};
use chrono_tz::Tz;

/// How demand between two samples is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interpolation {
    /// A sample's value holds until the next sample: a value set at an
    /// instant (a metric a test sets), or fine samples.
    Step,
    /// A sample is the mean over its bucket, placed at the bucket's
    /// midpoint; demand is drawn linearly between midpoints, and held
    /// before the first and after the last.
    #[default]
    Linear,
}

/// Why a trace cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// No data rows.
    #[error("trace is empty: expected CSV rows of timestamp,value")]
    Empty,
    /// A row that does not parse, with its 1-based line number.
    #[error("line {line}: {message}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Demand over time, in time order; the value holds until the next sample,
/// so gaps simply extend the last value.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    points: Vec<(DateTime<Utc>, f64)>,
    /// The smallest gap between samples, computed once.
    step: chrono::Duration,
    warnings: Vec<String>,
}

fn smallest_gap(points: &[(DateTime<Utc>, f64)]) -> chrono::Duration {
    points
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .min()
        .unwrap_or_else(|| chrono::Duration::seconds(60))
}

/// A timestamp as written: with an offset, or on a wall clock.
enum Stamp {
    Instant(DateTime<Utc>),
    Naive(NaiveDateTime),
}

impl Trace {
    /// Parses CSV text, reading timestamps without an offset as UTC (with a
    /// warning). Blank lines and `#` comments are skipped; a first row whose
    /// timestamp is the word `timestamp` (or `time`) is a header.
    pub fn parse(text: &str) -> Result<Trace, TraceError> {
        Trace::parse_in(text, None)
    }

    /// Parses CSV text, reading timestamps without an offset on the wall
    /// clock of `zone` (UTC, with a warning, when `None`).
    pub fn parse_in(text: &str, zone: Option<Tz>) -> Result<Trace, TraceError> {
        let mut points: Vec<(DateTime<Utc>, f64)> = Vec::new();
        let mut warnings: Vec<String> = Vec::new();
        let mut naive_seen = false;
        // Standard CSV (quoted fields too); extra columns are ignored.
        let mut rows = csv::ReaderBuilder::new()
            .has_headers(false)
            .comment(Some(b'#'))
            .trim(csv::Trim::All)
            .flexible(true)
            .from_reader(text.as_bytes());
        for record in rows.records() {
            let record = record.map_err(|e| TraceError::Line {
                line: e.position().map_or(0, |p| p.line() as usize),
                message: e.to_string(),
            })?;
            let line = record.position().map_or(0, |p| p.line() as usize);
            let err = |message: String| TraceError::Line { line, message };
            if record.iter().all(str::is_empty) {
                continue;
            }
            let (Some(time), Some(value)) = (record.get(0), record.get(1)) else {
                return Err(err(format!(
                    "expected timestamp,value, found \"{}\"",
                    record.iter().collect::<Vec<_>>().join(",")
                )));
            };
            if points.is_empty()
                && matches!(time.to_ascii_lowercase().as_str(), "timestamp" | "time")
            {
                continue;
            }
            let stamp = parse_time(time).ok_or_else(|| {
                err(format!(
                    "timestamp \"{time}\" is neither ISO-8601 (2026-11-23T10:00:00Z) nor unix seconds"
                ))
            })?;
            let previous = points.last().map(|(t, _)| *t);
            let at = match stamp {
                Stamp::Instant(at) => at,
                Stamp::Naive(local) => {
                    naive_seen = true;
                    match zone {
                        None => local.and_utc(),
                        Some(tz) => match tz.from_local_datetime(&local) {
                            LocalResult::Single(t) => t.with_timezone(&Utc),
                            LocalResult::Ambiguous(first, second) => {
                                let first = first.with_timezone(&Utc);
                                let pick = if previous.is_none_or(|p| first > p) {
                                    first
                                } else {
                                    second.with_timezone(&Utc)
                                };
                                warnings.push(format!(
                                    "line {line}: {local} occurs twice in {tz}, as the clock falls back when daylight saving time ends; read as {}",
                                    pick.to_rfc3339()
                                ));
                                pick
                            }
                            LocalResult::None => {
                                warnings.push(format!(
                                    "line {line}: {local} does not exist in {tz}, as the clock springs forward when daylight saving time begins; row skipped"
                                ));
                                continue;
                            }
                        },
                    }
                }
            };
            let demand = value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| err(format!("value \"{value}\" is not a non-negative number")))?;
            if let Some(last) = previous
                && at <= last
            {
                // A wall clock read as UTC goes back an hour where daylight
                // saving time ends.
                let hint = if naive_seen && zone.is_none() && last - at < chrono::Duration::hours(1)
                {
                    "; timestamps without an offset that repeat an hour are a clock falling back when daylight saving time ends: give the trace's time zone (--timezone America/New_York)"
                } else {
                    ""
                };
                return Err(err(format!(
                    "timestamp {} is not after the previous row's {}{hint}",
                    at.to_rfc3339(),
                    last.to_rfc3339()
                )));
            }
            points.push((at, demand));
        }
        if points.is_empty() {
            return Err(TraceError::Empty);
        }
        if naive_seen && zone.is_none() {
            warnings.insert(
                0,
                "timestamps without an offset are read as UTC; give the trace's time zone (--timezone) if they are local".to_owned(),
            );
        }
        Ok(Trace {
            step: smallest_gap(&points),
            points,
            warnings,
        })
    }

    /// A trace from points already in strictly increasing time order (tests
    /// and benches; a user's trace comes from a file).
    #[cfg(any(test, feature = "test-support"))]
    pub fn from_points(points: Vec<(DateTime<Utc>, f64)>) -> Result<Trace, TraceError> {
        if points.is_empty() {
            return Err(TraceError::Empty);
        }
        Ok(Trace {
            step: smallest_gap(&points),
            points,
            warnings: Vec::new(),
        })
    }

    /// What reading the trace took a decision on: timestamps read as UTC,
    /// an hour repeated or skipped by a DST change.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The samples.
    pub fn points(&self) -> &[(DateTime<Utc>, f64)] {
        &self.points
    }

    /// First sample time.
    pub fn start(&self) -> DateTime<Utc> {
        self.points[0].0
    }

    /// The sampling step: the smallest gap between samples (gaps are
    /// longer), 60 s for a single sample.
    pub fn step(&self) -> chrono::Duration {
        self.step
    }

    /// The last sample time plus the sampling step, so the last value
    /// counts.
    pub fn end(&self) -> DateTime<Utc> {
        self.points[self.points.len() - 1].0 + self.step()
    }

    /// Demand at `t`: the last sample at or before it.
    pub fn at(&self, t: DateTime<Utc>) -> f64 {
        let i = self.points.partition_point(|(at, _)| *at <= t);
        self.points[i.saturating_sub(1)].1
    }

    /// Demand at `t` read as `interpolation` says.
    pub fn value(&self, t: DateTime<Utc>, interpolation: Interpolation) -> f64 {
        if interpolation == Interpolation::Step {
            return self.at(t);
        }
        // Midpoints are the samples shifted by half a step.
        let shifted = t - self.step() / 2;
        let i = self.points.partition_point(|(at, _)| *at <= shifted);
        if i == 0 {
            return self.points[0].1;
        }
        let Some(&(t1, v1)) = self.points.get(i) else {
            return self.points[i - 1].1;
        };
        let (t0, v0) = self.points[i - 1];
        let span = (t1 - t0).num_milliseconds() as f64;
        let into = (shifted - t0).num_milliseconds() as f64;
        v0 + (v1 - v0) * (into / span)
    }
}

fn parse_time(s: &str) -> Option<Stamp> {
    if let Ok(t) = crate::units::parse_instant(s) {
        return Some(Stamp::Instant(t));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some(Stamp::Naive(t));
        }
    }
    let secs = s.parse::<f64>().ok().filter(|v| v.is_finite())?;
    DateTime::from_timestamp_millis((secs * 1000.0).round() as i64).map(Stamp::Instant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_iso_unix_header_comments_and_gaps() {
        let trace = Trace::parse(
            "timestamp,value\n# a comment\n2026-11-23T10:00:00Z,10\n1795428060,20.5\n\n2026-11-23 10:05:00,0\n",
        )
        .unwrap();
        assert_eq!(trace.points().len(), 3);
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(trace.at(t("2026-11-23T10:00:59Z")), 10.0);
        assert_eq!(
            trace.at(t("2026-11-23T10:04:00Z")),
            20.5,
            "a gap holds the last value"
        );
        assert_eq!(
            trace.at(t("2026-11-23T09:00:00Z")),
            10.0,
            "before the start: first value"
        );
        assert_eq!(trace.end(), t("2026-11-23T10:06:00Z"), "sampling step 60 s");
    }

    #[test]
    fn malformed_rows_name_their_line() {
        let err =
            Trace::parse("timestamp,value\n2026-11-23T10:00:00Z,10\n2026-11-23T10:01:00Z,lots\n")
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 3: value \"lots\" is not a non-negative number"
        );
        let err = Trace::parse("2026-11-23T10:00:00Z,10\nyesterday,3\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("line 2: timestamp \"yesterday\""),
            "{err}"
        );
        let err = Trace::parse("2026-11-23T10:00:00Z,10\n2026-11-23T09:00:00Z,3\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("line 2: timestamp 2026-11-23T09:00:00+00:00 is not after"),
            "{err}"
        );
        let err = Trace::parse("2026-11-23T10:00:00Z;10\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("line 1: expected timestamp,value"),
            "{err}"
        );
        assert!(Trace::parse("1,-3").is_err());
    }

    #[test]
    fn standard_csv_quoting_and_extra_columns_are_read() {
        let trace = Trace::parse(
            "\"timestamp\",\"value\",\"note\"\n\"2026-11-23T10:00:00Z\",\"10\",\"a, b\"\n2026-11-23T10:01:00Z , 12 ,\n",
        )
        .unwrap();
        assert_eq!(
            trace.points().iter().map(|(_, v)| *v).collect::<Vec<_>>(),
            [10.0, 12.0]
        );
    }

    #[test]
    fn linear_reads_samples_as_bucket_means_at_their_midpoints() {
        // 30-minute buckets: 10, then 40.
        let trace = Trace::parse("2026-11-23T10:00:00Z,10\n2026-11-23T10:30:00Z,40\n").unwrap();
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let linear = |s| trace.value(t(s), Interpolation::Linear);
        assert_eq!(
            linear("2026-11-23T10:00:00Z"),
            10.0,
            "held before the first midpoint"
        );
        assert_eq!(linear("2026-11-23T10:15:00Z"), 10.0);
        assert_eq!(
            linear("2026-11-23T10:30:00Z"),
            25.0,
            "halfway between midpoints"
        );
        assert_eq!(linear("2026-11-23T10:40:00Z"), 35.0);
        assert_eq!(linear("2026-11-23T10:59:00Z"), 40.0, "held after the last");
        assert_eq!(
            trace.value(t("2026-11-23T10:29:59Z"), Interpolation::Step),
            10.0
        );
        assert_eq!(
            trace.value(t("2026-11-23T10:30:00Z"), Interpolation::Step),
            40.0
        );
    }

    #[test]
    fn naive_timestamps_are_read_in_the_zone_given_and_dst_is_named() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        // New York, the night daylight saving time ends (2014-11-02): the
        // clock shows 01:00-01:59 twice.
        let fall = "2014-11-02 00:30:00,1\n2014-11-02 01:00:00,2\n2014-11-02 01:30:00,3\n\
                    2014-11-02 01:00:00,4\n2014-11-02 01:30:00,5\n2014-11-02 02:00:00,6\n";
        let tz: Tz = "America/New_York".parse().unwrap();
        let trace = Trace::parse_in(fall, Some(tz)).unwrap();
        let times: Vec<_> = trace.points().iter().map(|p| p.0).collect();
        assert_eq!(
            times,
            [
                t("2014-11-02T04:30:00Z"),
                t("2014-11-02T05:00:00Z"),
                t("2014-11-02T05:30:00Z"),
                t("2014-11-02T06:00:00Z"),
                t("2014-11-02T06:30:00Z"),
                t("2014-11-02T07:00:00Z"),
            ],
            "each repeated hour once as daylight time, once as standard time"
        );
        assert_eq!(trace.warnings().len(), 4);
        assert!(
            trace.warnings()[0].contains("occurs twice in America/New_York, as the clock falls back when daylight saving time ends"),
            "{:?}",
            trace.warnings()
        );
        // Read as UTC, the same rows go back an hour: the error says why.
        let err = Trace::parse(fall).unwrap_err().to_string();
        assert!(
            err.starts_with("line 4: timestamp 2014-11-02T01:00:00+00:00 is not after"),
            "{err}"
        );
        assert!(
            err.contains("daylight saving time ends: give the trace's time zone"),
            "{err}"
        );
        // The spring-forward night has no 02:30: the row is skipped, said so.
        let spring = "2015-03-08 01:30:00,1\n2015-03-08 02:30:00,2\n2015-03-08 03:30:00,3\n";
        let trace = Trace::parse_in(spring, Some(tz)).unwrap();
        assert_eq!(trace.points().len(), 2);
        assert!(
            trace.warnings()[0].contains("does not exist in America/New_York"),
            "{:?}",
            trace.warnings()
        );
        // Without a zone, naive timestamps are UTC, with a warning.
        let trace = Trace::parse("2026-11-23 10:00:00,1\n").unwrap();
        assert!(trace.warnings()[0].contains("read as UTC"));
        assert!(
            Trace::parse("2026-11-23T10:00:00Z,1\n")
                .unwrap()
                .warnings()
                .is_empty()
        );
    }

    #[test]
    fn empty_trace_is_a_clear_error() {
        assert_eq!(Trace::parse("").unwrap_err(), TraceError::Empty);
        assert_eq!(
            Trace::parse("timestamp,value\n# nothing\n").unwrap_err(),
            TraceError::Empty
        );
        assert_eq!(
            TraceError::Empty.to_string(),
            "trace is empty: expected CSV rows of timestamp,value"
        );
    }
}
