//! Which windows may cover an instant, without trying every one: the
//! engine asks on every decision, and a policy with hundreds of holiday
//! windows made a month of simulation take seconds.
//!
//! - Absolute windows are sorted by a UTC envelope of their local range
//!   (any offset lies within −12 h..+14 h, so an instant outside the
//!   envelope cannot be covered); a binary search finds the candidates.
//!   Ranges longer than a week are few and tried one by one.
//! - Weekly windows are grouped by zone: the instant is read on each zone's
//!   wall clock once, and a binary search over the minutes of the week each
//!   window covers finds the candidates.
//!
//! Candidates are then checked exactly with [`Window::contains`], so the
//! index only ever saves work and never changes an answer.

use chrono::{DateTime, Datelike as _, Timelike as _, Utc};
use chrono_tz::Tz;

use super::{Span, Window};

/// Any zone's offset is within these bounds.
const EARLIEST_OFFSET_SECONDS: i64 = -12 * 3600;
const LATEST_OFFSET_SECONDS: i64 = 14 * 3600;
/// Absolute windows longer than this are tried one by one.
const LONG_SECONDS: i64 = 8 * 86_400;
const WEEK_MINUTES: u32 = 7 * 1440;

/// `(from, to, entry)`: minutes of the week (Monday 00:00 = 0) a weekly
/// window covers on its zone's wall clock.
type WeekSpan = (u32, u32, usize);

/// The candidates for each kind of window.
#[derive(Debug, Clone, Default)]
pub(super) struct Index {
    /// `(lo, hi, entry)`: the UTC seconds outside which the absolute window
    /// `entry` cannot be active, sorted by `lo`.
    absolute: Vec<(i64, i64, usize)>,
    /// The widest envelope in `absolute`.
    widest: i64,
    /// Absolute windows too long for the envelope search.
    long: Vec<usize>,
    /// Per zone, the spans of its weekly windows, sorted by `from`.
    weekly: Vec<(Tz, Vec<WeekSpan>)>,
}

impl Index {
    pub(super) fn build(entries: &[Window]) -> Index {
        let mut index = Index::default();
        for (i, w) in entries.iter().enumerate() {
            match w.span {
                Span::Absolute { start, end } => {
                    let lo = start.and_utc().timestamp() - LATEST_OFFSET_SECONDS;
                    let hi = end.and_utc().timestamp() - EARLIEST_OFFSET_SECONDS;
                    if hi - lo > LONG_SECONDS {
                        index.long.push(i);
                    } else {
                        index.absolute.push((lo, hi, i));
                        index.widest = index.widest.max(hi - lo);
                    }
                }
                Span::Weekly { days, start, end } => {
                    let zone = match index.weekly.iter().position(|(tz, _)| *tz == w.tz) {
                        Some(z) => z,
                        None => {
                            index.weekly.push((w.tz, Vec::new()));
                            index.weekly.len() - 1
                        }
                    };
                    let spans = &mut index.weekly[zone].1;
                    let (start, end) = (u32::from(start.0), u32::from(end.0));
                    // The window opens on each of its days; one crossing
                    // midnight runs into the next, and Sunday's into Monday.
                    let length = if end > start {
                        end - start
                    } else {
                        1440 - start + end
                    };
                    for day in 0..7u32 {
                        if !days.contains(weekday(day)) {
                            continue;
                        }
                        let from = day * 1440 + start;
                        let to = from + length;
                        spans.push((from, to.min(WEEK_MINUTES), i));
                        if to > WEEK_MINUTES {
                            spans.push((0, to - WEEK_MINUTES, i));
                        }
                    }
                }
            }
        }
        index.absolute.sort_unstable();
        for (_, spans) in &mut index.weekly {
            spans.sort_unstable();
        }
        index
    }

    /// Entries of `windows` that may be active at `now`: a superset of the
    /// active ones, absolute windows in `absolute`, weekly in `weekly`.
    pub(super) fn candidates(
        &self,
        now: DateTime<Utc>,
        absolute: &mut Vec<usize>,
        weekly: &mut Vec<usize>,
    ) {
        let s = now.timestamp();
        let end = self.absolute.partition_point(|(lo, _, _)| *lo <= s);
        for &(lo, hi, i) in self.absolute[..end].iter().rev() {
            if lo < s - self.widest {
                break;
            }
            if hi > s {
                absolute.push(i);
            }
        }
        absolute.extend_from_slice(&self.long);
        for (tz, spans) in &self.weekly {
            let local = super::dst::wall_clock(*tz, now);
            let minute =
                local.weekday().num_days_from_monday() * 1440 + local.hour() * 60 + local.minute();
            let end = spans.partition_point(|(from, _, _)| *from <= minute);
            // A weekly window covers at most a day at a time.
            for &(from, to, i) in spans[..end].iter().rev() {
                if from + 1440 < minute {
                    break;
                }
                if to > minute {
                    weekly.push(i);
                }
            }
        }
    }
}

fn weekday(day: u32) -> chrono::Weekday {
    chrono::Weekday::try_from(day as u8).unwrap_or(chrono::Weekday::Mon)
}
