//! The days a zone's clock changes. Windows follow the wall clock, and each
//! boundary happens once a day:
//!
//! - a boundary at a time the clock skips (02:30 when it springs from 02:00
//!   to 03:00) happens when the clock jumps past it, at 03:00;
//! - a boundary at a time the clock repeats (02:30 when it falls back from
//!   03:00 to 02:00) happens at its first occurrence only. While the clock
//!   repeats those times, the windows stay as they were when it went back,
//!   so a window does not close and open again, or the reverse.
//!
//! [`wall_clock`] is the time the windows are matched against, and
//! [`notes`] says what that means for a policy's windows on the coming
//! days the clock changes, at admission and in `explain`.

use chrono::{
    DateTime, Datelike as _, Duration, FixedOffset, NaiveDate, NaiveDateTime, Offset as _,
    TimeZone as _, Timelike as _, Utc,
};
use chrono_tz::Tz;

use super::{Span, Window};

/// The longest a clock has ever gone back, with room to spare.
const LONGEST_FALL_BACK: Duration = Duration::hours(3);
/// How notes name an instant.
const UTC: &str = "%Y-%m-%dT%H:%M:%SZ";
/// How far ahead [`notes`] looks.
const NOTES_AHEAD: Duration = Duration::days(366);

fn offset(tz: Tz, t: DateTime<Utc>) -> FixedOffset {
    tz.offset_from_utc_datetime(&t.naive_utc()).fix()
}

/// The local time of `tz` at `now` that windows are matched against: the
/// wall clock, except while it repeats times it went back over; then the
/// time just before it went back (the windows stay as they were).
pub(super) fn wall_clock(tz: Tz, now: DateTime<Utc>) -> NaiveDateTime {
    let at_now = offset(tz, now);
    let local = now.naive_utc() + at_now;
    let before = offset(tz, now - LONGEST_FALL_BACK);
    if before.local_minus_utc() <= at_now.local_minus_utc() {
        return local;
    }
    // The clock went back within the last hours: when, to the second?
    let back = last_change(tz, now - LONGEST_FALL_BACK, now);
    let repeated = i64::from(before.local_minus_utc() - at_now.local_minus_utc());
    if now < back + Duration::seconds(repeated) {
        back.naive_utc() + before - Duration::seconds(1)
    } else {
        local
    }
}

/// The first instant in `(from, to]` with `to`'s offset, when `from`'s
/// differs (one change between them).
fn last_change(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> DateTime<Utc> {
    let target = offset(tz, to);
    let (mut lo, mut hi) = (from.timestamp(), to.timestamp());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let at = DateTime::from_timestamp(mid, 0).unwrap_or(to);
        if offset(tz, at) == target {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0).unwrap_or(to)
}

/// One change of a zone's offset.
#[derive(Debug, Clone, Copy)]
struct Change {
    at: DateTime<Utc>,
    before: FixedOffset,
    after: FixedOffset,
}

impl Change {
    /// The local times it skips or repeats, `[from, to)`.
    fn local_range(&self) -> (NaiveDateTime, NaiveDateTime) {
        let (a, b) = (
            self.at.naive_utc() + self.before,
            self.at.naive_utc() + self.after,
        );
        (a.min(b), a.max(b))
    }

    fn skips(&self) -> bool {
        self.after.local_minus_utc() > self.before.local_minus_utc()
    }
}

/// The changes of `tz`'s offset from `from` for [`NOTES_AHEAD`].
fn changes(tz: Tz, from: DateTime<Utc>) -> Vec<Change> {
    let mut out = Vec::new();
    let mut t = from;
    while t < from + NOTES_AHEAD {
        let next = t + Duration::days(1);
        let (before, after) = (offset(tz, t), offset(tz, next));
        if before != after {
            let at = last_change(tz, t, next);
            out.push(Change { at, before, after });
        }
        t = next;
    }
    out
}

/// A boundary of one opening of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edge {
    Opens,
    Closes,
}

/// What each window does on the coming days its zone's clock skips or
/// repeats a boundary of it, in words: one note per boundary and day.
pub(super) fn notes(windows: &[Window], now: DateTime<Utc>) -> Vec<String> {
    let mut zones: Vec<(Tz, Vec<Change>)> = Vec::new();
    let mut out = Vec::new();
    for w in windows {
        let known = zones.iter().position(|(tz, _)| *tz == w.tz);
        let z = known.unwrap_or_else(|| {
            zones.push((w.tz, changes(w.tz, now)));
            zones.len() - 1
        });
        for change in &zones[z].1 {
            for (start, end) in openings(w, change) {
                note_opening(w, change, start, end, &mut out);
            }
        }
    }
    out
}

/// The local start and end of each opening of `w` that may have a boundary
/// in the times `change` skips or repeats.
fn openings(w: &Window, change: &Change) -> Vec<(NaiveDateTime, NaiveDateTime)> {
    match w.span {
        Span::Absolute { start, end } => vec![(start, end)],
        Span::Weekly { days, start, end } => {
            let (from, to) = change.local_range();
            let first = from.date().pred_opt().unwrap_or(from.date());
            first
                .iter_days()
                .take_while(|d| *d <= to.date())
                .filter(|d| days.contains(d.weekday()))
                .map(|d: NaiveDate| {
                    let midnight = d.and_time(chrono::NaiveTime::MIN);
                    let open = midnight + Duration::minutes(i64::from(start.0));
                    let mut close = midnight + Duration::minutes(i64::from(end.0));
                    if end <= start {
                        close += Duration::days(1);
                    }
                    (open, close)
                })
                .collect()
        }
    }
}

/// Notes for one opening `[start, end)` of `w` around `change`.
fn note_opening(
    w: &Window,
    change: &Change,
    start: NaiveDateTime,
    end: NaiveDateTime,
    out: &mut Vec<String>,
) {
    let (from, to) = change.local_range();
    let affected = |t: NaiveDateTime| from <= t && t < to;
    let name = format!("window {}", w.quoted());
    let tz = w.tz.name();
    let clock = |t: NaiveDateTime| {
        if t.second() == 0 {
            t.format("%H:%M").to_string()
        } else {
            t.format("%H:%M:%S").to_string()
        }
    };
    if change.skips() {
        let skipped: Vec<NaiveDateTime> =
            [start, end].into_iter().filter(|t| affected(*t)).collect();
        let Some(first) = skipped.first() else {
            return;
        };
        let day = first.date();
        let jump = format!("the clock jumps from {} to {}", clock(from), clock(to));
        // Both boundaries at the jump, or the end at it: never open.
        let open_at = if affected(start) { to } else { start };
        let close_at = if affected(end) { to } else { end };
        if open_at >= close_at {
            let times: Vec<String> = skipped.iter().map(|t| clock(*t)).collect();
            let verb = if times.len() > 1 { "do" } else { "does" };
            out.push(format!(
                "{name}: on {day} {} {verb} not exist in {tz} ({jump}); the window does not open that day",
                times.join(" and ")
            ));
            return;
        }
        for (edge, t) in [(Edge::Opens, start), (Edge::Closes, end)] {
            if affected(t) {
                out.push(format!(
                    "{name}: on {} {} does not exist in {tz} ({jump}); the window {} at {} ({})",
                    t.date(),
                    clock(t),
                    verb(edge),
                    clock(to),
                    change.at.format(UTC),
                ));
            }
        }
    } else {
        let back = format!("the clock goes back from {} to {}", clock(to), clock(from));
        for (edge, t) in [(Edge::Opens, start), (Edge::Closes, end)] {
            if affected(t) {
                let first = (t - change.before).and_utc();
                let zone_name = first.with_timezone(&w.tz).format("%Z");
                out.push(format!(
                    "{name}: on {} {} occurs twice in {tz} ({back}); the window {} at the first {} ({zone_name}, {}), not again while the clock repeats {}-{}",
                    t.date(),
                    clock(t),
                    verb(edge),
                    clock(t),
                    first.format(UTC),
                    clock(from),
                    clock(to),
                ));
            }
        }
    }
}

fn verb(edge: Edge) -> &'static str {
    match edge {
        Edge::Opens => "opens",
        Edge::Closes => "closes",
    }
}

#[cfg(test)]
mod tests;
