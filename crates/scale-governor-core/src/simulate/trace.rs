//! Demand traces: CSV `timestamp,value`, timestamps ISO-8601 or unix seconds.

use chrono::{DateTime, NaiveDateTime, Utc};

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
}

impl Trace {
    /// Parses CSV text. Blank lines and `#` comments are skipped; a first row
    /// whose timestamp is the word `timestamp` (or `time`) is a header.
    pub fn parse(text: &str) -> Result<Trace, TraceError> {
        let mut points: Vec<(DateTime<Utc>, f64)> = Vec::new();
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
            let at = parse_time(time).ok_or_else(|| {
                err(format!(
                    "timestamp \"{time}\" is neither ISO-8601 (2026-11-23T10:00:00Z) nor unix seconds"
                ))
            })?;
            let demand = value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| err(format!("value \"{value}\" is not a non-negative number")))?;
            if let Some((last, _)) = points.last()
                && at <= *last
            {
                return Err(err(format!(
                    "timestamp {} is not after the previous row's {}",
                    at.to_rfc3339(),
                    last.to_rfc3339()
                )));
            }
            points.push((at, demand));
        }
        if points.is_empty() {
            return Err(TraceError::Empty);
        }
        Ok(Trace { points })
    }

    /// A trace from points already in strictly increasing time order.
    pub fn from_points(points: Vec<(DateTime<Utc>, f64)>) -> Result<Trace, TraceError> {
        if points.is_empty() {
            return Err(TraceError::Empty);
        }
        Ok(Trace { points })
    }

    /// The samples.
    pub fn points(&self) -> &[(DateTime<Utc>, f64)] {
        &self.points
    }

    /// First sample time.
    pub fn start(&self) -> DateTime<Utc> {
        self.points[0].0
    }

    /// The last sample time plus the sampling step (the smallest gap
    /// between samples, as gaps are longer), so the last value counts.
    pub fn end(&self) -> DateTime<Utc> {
        let last = self.points[self.points.len() - 1].0;
        let step = self
            .points
            .windows(2)
            .map(|w| w[1].0 - w[0].0)
            .min()
            .unwrap_or_else(|| chrono::Duration::seconds(60));
        last + step
    }

    /// Demand at `t` (the last sample at or before it).
    pub fn at(&self, t: DateTime<Utc>) -> f64 {
        let i = self.points.partition_point(|(at, _)| *at <= t);
        self.points[i.saturating_sub(1)].1
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = crate::units::parse_instant(s) {
        return Some(t);
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some(t.and_utc());
        }
    }
    let secs = s.parse::<f64>().ok().filter(|v| v.is_finite())?;
    DateTime::from_timestamp_millis((secs * 1000.0).round() as i64)
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
