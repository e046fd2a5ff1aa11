//! `windows`: weekly windows (`Mon-Fri 08:00-20:00 Europe/Berlin min=10`)
//! and absolute ranges for holidays (`2026-12-24/2026-12-26 Europe/Berlin
//! max=2`), each with its own bounds. Windows are matched on the local wall
//! clock of their zone: a wall-clock range covers fewer or more real minutes
//! on the days the clock jumps, and each boundary happens once ([`dst`]).

use std::fmt;

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset as _, TimeZone as _,
    Timelike, Utc, Weekday,
};
use chrono_tz::Tz;

use super::{PolicyError, PolicyErrors, keys};
use crate::quoting::{self, Quoted, quote, quote_at_most};

const KEY: &str = keys::WINDOWS;
/// How many characters of a window's text a message quotes: more than of a
/// token (a window is a whole entry), but bounded, since a valid entry can
/// still be long (a list of days written out many times).
const MAX_QUOTED_WINDOW: usize = 2 * quoting::MAX_QUOTED;
const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A set of weekdays, bit 0 = Monday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DaySet(u8);

impl DaySet {
    /// Whether `day` is in the set.
    pub fn contains(self, day: Weekday) -> bool {
        self.0 & (1 << day.num_days_from_monday()) != 0
    }

    fn insert(&mut self, day: u32) {
        self.0 |= 1 << day;
    }
}

/// Minutes after local midnight, 0..=1440 (1440 only as an end: `24:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimeOfDay(pub u16);

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// When a window applies, on its zone's wall clock.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Span {
    /// Every listed weekday from `start` to `end`; `end <= start` crosses
    /// midnight into the next day.
    Weekly {
        /// Days on which the window opens.
        days: DaySet,
        /// Opening time.
        start: TimeOfDay,
        /// Closing time, exclusive.
        end: TimeOfDay,
    },
    /// From `start` (inclusive) to `end` (exclusive); overrides weekly windows.
    Absolute {
        /// First local instant covered.
        start: NaiveDateTime,
        /// First local instant no longer covered.
        end: NaiveDateTime,
    },
}

/// The bounds a window imposes while active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct WindowBounds {
    /// Floor while active.
    pub min: Option<u32>,
    /// Ceiling while active.
    pub max: Option<u32>,
}

/// One window entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Window {
    /// When it applies.
    pub span: Span,
    /// The IANA zone its wall clock is read in (UTC when omitted).
    pub tz: Tz,
    /// What it imposes.
    pub bounds: WindowBounds,
    /// The entry as written, whitespace normalized; reasons quote it.
    pub text: String,
}

impl Window {
    /// Its text as reasons and notes quote it (`window {}`): in quotes,
    /// escaped and bounded.
    pub fn quoted(&self) -> Quoted<'_> {
        quote_at_most(&self.text, MAX_QUOTED_WINDOW)
    }

    /// Whether the window covers the instant `now`.
    pub fn contains(&self, now: DateTime<Utc>) -> bool {
        self.contains_local(dst::wall_clock(self.tz, now))
    }

    fn contains_local(&self, local: NaiveDateTime) -> bool {
        match self.span {
            Span::Weekly { days, start, end } => {
                let minute = (local.hour() * 60 + local.minute()) as u16;
                let today = local.weekday();
                if start < end {
                    days.contains(today) && start.0 <= minute && minute < end.0
                } else {
                    (days.contains(today) && minute >= start.0)
                        || (days.contains(today.pred()) && minute < end.0)
                }
            }
            Span::Absolute { start, end } => start <= local && local < end,
        }
    }

    /// The first instant after `now` at which [`Window::contains`] may
    /// change, or `horizon` if that comes first. It may be early (a weekly
    /// edge on a day the window skips), never late: local time runs with
    /// UTC between two offset changes, so the next edge is found in local
    /// time, and an offset change (a DST jump, which can skip an edge or
    /// repeat one) before it ends the answer there instead. `horizon` should
    /// be hours, not days, from `now`: zones change offset at most twice a
    /// year, and this assumes at most once before `horizon`.
    pub fn next_change(&self, now: DateTime<Utc>, horizon: DateTime<Utc>) -> DateTime<Utc> {
        let offset = |t: DateTime<Utc>| self.tz.offset_from_utc_datetime(&t.naive_utc()).fix();
        let at_now = offset(now);
        let mut until = horizon;
        if offset(horizon) != at_now {
            // Bisect to the offset change, to a second; stop just before it.
            let (mut lo, mut hi) = (now, horizon);
            while hi - lo > Duration::seconds(1) {
                let mid = lo + (hi - lo) / 2;
                if offset(mid) == at_now {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            until = lo;
        }
        let local = now.naive_utc() + at_now;
        let edges: [NaiveDateTime; 2] = match self.span {
            Span::Weekly { start, end, .. } => [start, end].map(|t| next_local(local, t)),
            Span::Absolute { start, end } => [start, end],
        };
        for edge in edges.into_iter().filter(|&e| e > local) {
            until = until.min(now + (edge - local));
        }
        until
    }
}

/// The first local instant after `local` at the time of day `t`.
fn next_local(local: NaiveDateTime, t: TimeOfDay) -> NaiveDateTime {
    let day =
        local.date().and_hms_opt(0, 0, 0).unwrap_or(local) + Duration::minutes(i64::from(t.0));
    if day > local {
        day
    } else {
        day + Duration::days(1)
    }
}

/// All windows of a policy.
#[derive(Debug, Clone, Default)]
pub struct Windows {
    /// Entries in the order written.
    entries: Vec<Window>,
    /// Which entries may cover an instant ([`index`]).
    index: index::Index,
}

impl PartialEq for Windows {
    fn eq(&self, other: &Windows) -> bool {
        self.entries == other.entries
    }
}

impl Eq for Windows {}

impl std::hash::Hash for Windows {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.entries.hash(state);
    }
}

impl Windows {
    /// The entries, in the order written.
    pub fn entries(&self) -> &[Window] {
        &self.entries
    }

    /// The first instant after `now` at which [`Windows::active`] may
    /// change, or `horizon` if that comes first (see [`Window::next_change`]).
    pub fn next_change(&self, now: DateTime<Utc>, horizon: DateTime<Utc>) -> DateTime<Utc> {
        self.entries
            .iter()
            .map(|w| w.next_change(now, horizon))
            .fold(horizon, DateTime::min)
    }

    /// The windows in force at `now`: the active absolute windows if any is
    /// active (holidays override the week), otherwise the active weekly ones.
    /// Overlapping windows intersect; the engine folds their bounds.
    pub fn active(&self, now: DateTime<Utc>) -> impl Iterator<Item = &Window> {
        let (mut absolute, mut weekly) = (Vec::new(), Vec::new());
        if !self.entries.is_empty() {
            self.index.candidates(now, &mut absolute, &mut weekly);
        }
        absolute.retain(|&i| self.entries[i].contains(now));
        let mut chosen = if absolute.is_empty() {
            weekly.retain(|&i| self.entries[i].contains(now));
            weekly
        } else {
            absolute
        };
        // In the order written, as a scan would find them.
        chosen.sort_unstable();
        chosen.dedup();
        chosen.into_iter().map(|i| &self.entries[i])
    }

    /// Parses entries separated by `;` or newlines; blank entries are
    /// skipped. Every entry is parsed, and the first error of each that does
    /// not parse is returned.
    pub fn parse(value: &str) -> Result<Windows, PolicyErrors> {
        let mut errors = PolicyErrors::new();
        let entries: Vec<Window> = value
            .split([';', '\n'])
            .filter(|entry| !entry.trim().is_empty())
            .filter_map(|entry| parse_entry(value, entry).map_err(|e| errors.push(e)).ok())
            .collect();
        errors.or_ok(Windows {
            index: index::Index::build(&entries),
            entries,
        })
    }

    /// What the windows do on the days in the coming year their zone's
    /// clock skips or repeats one of their boundaries, one sentence each:
    /// `window "Sun 02:30-05:00 Europe/Berlin max=4": on 2026-03-29 02:30
    /// does not exist in Europe/Berlin (…); the window opens at 03:00 …`.
    pub fn dst_notes(&self, now: DateTime<Utc>) -> Vec<String> {
        dst::notes(&self.entries, now)
    }

    /// A window whose bounds cannot meet the static ones is a contradiction.
    pub(crate) fn check_against_static(
        &self,
        min: Option<u32>,
        max: Option<u32>,
        errors: &mut PolicyErrors,
    ) {
        for w in &self.entries {
            if let (Some(wmin), Some(max)) = (w.bounds.min, max)
                && wmin > max
            {
                errors.push(PolicyError::whole(
                    KEY,
                    &w.text,
                    format!("window min={wmin} is greater than max-replicas {max}"),
                ));
            }
            if let (Some(wmax), Some(min)) = (w.bounds.max, min)
                && wmax < min
            {
                errors.push(PolicyError::whole(
                    KEY,
                    &w.text,
                    format!("window max={wmax} is less than min-replicas {min}"),
                ));
            }
        }
    }
}

fn parse_entry(value: &str, entry: &str) -> Result<Window, PolicyError> {
    let err = |token: &str, message: String| PolicyError::at(KEY, value, token, message);
    let mut tokens = entry.split_whitespace();
    let first = tokens.next().unwrap_or_default();
    let span = if first.starts_with(|c: char| c.is_ascii_digit()) {
        parse_absolute(first).map_err(|m| err(first, m))?
    } else {
        let days = parse_days(value, first)?;
        let range = tokens.next().ok_or_else(|| {
            err(
                first,
                "missing time range, expected HH:MM-HH:MM after the days".into(),
            )
        })?;
        let (start, end) = parse_time_range(range).map_err(|m| err(range, m))?;
        Span::Weekly { days, start, end }
    };
    let mut tz = None;
    let mut bounds = WindowBounds::default();
    for token in tokens {
        if let Some((name, number)) = token.split_once('=') {
            let slot = match name {
                "min" => &mut bounds.min,
                "max" => &mut bounds.max,
                _ => {
                    return Err(err(
                        token,
                        format!("unknown setting {}, expected min=N or max=N", quote(name)),
                    ));
                }
            };
            if slot.is_some() {
                return Err(err(token, format!("{name} is given twice in one window")));
            }
            let n = number
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= super::MAX_REPLICA_COUNT)
                .ok_or_else(|| {
                    err(
                        number,
                        format!(
                            "{} is not a replica count, expected {name}=N",
                            quote(number)
                        ),
                    )
                })?;
            *slot = Some(n);
        } else if tz.is_some() {
            return Err(err(
                token,
                format!("unexpected {}, expected min=N or max=N", quote(token)),
            ));
        } else {
            tz = Some(token.parse::<Tz>().map_err(|_| {
                err(
                    token,
                    format!(
                        "unknown time zone {}, expected an IANA name like Europe/Berlin",
                        quote(token)
                    ),
                )
            })?);
        }
    }
    let text = entry.split_whitespace().collect::<Vec<_>>().join(" ");
    match bounds {
        WindowBounds {
            min: None,
            max: None,
        } => Err(err(
            entry.trim(),
            "window sets no bound, expected min=N and/or max=N".into(),
        )),
        WindowBounds {
            min: Some(min),
            max: Some(max),
        } if min > max => Err(err(
            entry.trim(),
            format!("window min={min} is greater than its max={max}"),
        )),
        _ => Ok(Window {
            span,
            tz: tz.unwrap_or(Tz::UTC),
            bounds,
            text,
        }),
    }
}

fn parse_days(value: &str, token: &str) -> Result<DaySet, PolicyError> {
    let mut set = DaySet::default();
    for part in token.split(',') {
        let (from, to) = part.split_once('-').unwrap_or((part, part));
        let from = day_index(value, from)?;
        let to = day_index(value, to)?;
        // Ranges may wrap the week: Fri-Mon is Fri, Sat, Sun, Mon.
        let len = (to + 7 - from) % 7;
        for offset in 0..=len {
            set.insert((from + offset) % 7);
        }
    }
    Ok(set)
}

fn day_index(value: &str, name: &str) -> Result<u32, PolicyError> {
    DAY_NAMES
        .iter()
        .position(|d| d.eq_ignore_ascii_case(name))
        .map(|i| i as u32)
        .ok_or_else(|| {
            PolicyError::at(
                KEY,
                value,
                name,
                format!("unknown weekday {}, expected Mon..Sun", quote(name)),
            )
        })
}

fn parse_time_range(token: &str) -> Result<(TimeOfDay, TimeOfDay), String> {
    let expected = "expected HH:MM-HH:MM like 08:00-20:00 (22:00-06:00 crosses midnight)";
    let (start, end) = token
        .split_once('-')
        .ok_or_else(|| format!("{} is not a time range, {expected}", quote(token)))?;
    let start = parse_time(start, false)
        .ok_or_else(|| format!("bad start time {}, {expected}", quote(start)))?;
    let end =
        parse_time(end, true).ok_or_else(|| format!("bad end time {}, {expected}", quote(end)))?;
    if start == end {
        return Err(format!(
            "{} is empty, use 00:00-24:00 for a whole day",
            quote(token)
        ));
    }
    Ok((start, end))
}

fn parse_time(text: &str, end: bool) -> Option<TimeOfDay> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
    match (h, m) {
        (24, 0) if end => Some(TimeOfDay(1440)),
        (0..=23, 0..=59) => Some(TimeOfDay(h * 60 + m)),
        _ => None,
    }
}

fn parse_absolute(token: &str) -> Result<Span, String> {
    let (start, end) = match token.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (token, None),
    };
    let start_at = parse_instant(start, false)?;
    let end_at = match end {
        Some(end) => parse_instant(end, true)?,
        None if !start.contains('T') => parse_instant(start, true)?,
        None => {
            return Err(format!(
                "{} has no end, expected START/END like 2026-12-24T18:00/2026-12-27T06:00",
                quote(token)
            ));
        }
    };
    if end_at <= start_at {
        return Err(format!("{} ends before it starts", quote(token)));
    }
    Ok(Span::Absolute {
        start: start_at,
        end: end_at,
    })
}

/// A date alone means the start of that day; as an end, the end of that day
/// (so `2026-12-24/2026-12-26` covers three whole days).
fn parse_instant(text: &str, is_end: bool) -> Result<NaiveDateTime, String> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = if is_end {
            date.succ_opt().unwrap_or(date)
        } else {
            date
        };
        return Ok(day.and_time(NaiveTime::MIN));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| {
            format!(
                "bad date {}, expected YYYY-MM-DD or YYYY-MM-DDTHH:MM",
                quote(text)
            )
        })
}

mod dst;
mod index;
#[cfg(test)]
mod tests;
