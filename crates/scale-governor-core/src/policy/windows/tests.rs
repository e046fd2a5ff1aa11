use chrono::{Duration, TimeZone};

use super::*;

fn window(text: &str) -> Window {
    let parsed = Windows::parse(text).unwrap();
    assert_eq!(parsed.entries().len(), 1);
    parsed.entries()[0].clone()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Real minutes a window is active between two UTC instants.
fn active_minutes(w: &Window, from: &str, to: &str) -> i64 {
    let (mut t, end) = (utc(from), utc(to));
    let mut minutes = 0;
    while t < end {
        minutes += i64::from(w.contains(t));
        t += Duration::minutes(1);
    }
    minutes
}

#[test]
fn parses_weekly_window_with_zone_and_bounds() {
    let w = window("  Mon-Fri   08:00-20:00 Europe/Berlin min=10 max=50 ");
    assert_eq!(w.tz, chrono_tz::Europe::Berlin);
    assert_eq!(
        w.bounds,
        WindowBounds {
            min: Some(10),
            max: Some(50)
        }
    );
    assert_eq!(w.text, "Mon-Fri 08:00-20:00 Europe/Berlin min=10 max=50");
    let Span::Weekly { days, start, end } = w.span else {
        panic!("weekly")
    };
    assert!(days.contains(Weekday::Mon) && days.contains(Weekday::Fri));
    assert!(!days.contains(Weekday::Sat));
    assert_eq!(
        (start.to_string(), end.to_string()),
        ("08:00".into(), "20:00".into())
    );
}

#[test]
fn zone_defaults_to_utc_and_days_wrap_the_week() {
    let w = window("fri-mon 00:00-24:00 max=2");
    assert_eq!(w.tz, Tz::UTC);
    let Span::Weekly { days, .. } = w.span else {
        panic!("weekly")
    };
    let set: Vec<_> = DAY_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| days.contains(Weekday::try_from(*i as u8).unwrap()))
        .map(|(_, d)| *d)
        .collect();
    assert_eq!(set, ["Mon", "Fri", "Sat", "Sun"]);
}

#[test]
fn several_entries_by_semicolon_or_newline() {
    let parsed =
        Windows::parse("Mon-Fri 08:00-20:00 min=3;\nSat,Sun 10:00-16:00 min=1\n2026-12-25 max=1;")
            .unwrap();
    assert_eq!(parsed.entries().len(), 3);
}

#[test]
fn weekly_window_follows_berlin_summer_and_winter_time() {
    let w = window("Mon-Fri 08:00-20:00 Europe/Berlin min=10");
    // Wednesday 2026-07-15: CEST, UTC+2.
    assert!(!w.contains(utc("2026-07-15T05:59:00Z")));
    assert!(w.contains(utc("2026-07-15T06:00:00Z")));
    assert!(w.contains(utc("2026-07-15T17:59:00Z")));
    assert!(!w.contains(utc("2026-07-15T18:00:00Z")));
    // Wednesday 2026-01-14: CET, UTC+1.
    assert!(!w.contains(utc("2026-01-14T06:00:00Z")));
    assert!(w.contains(utc("2026-01-14T07:00:00Z")));
}

#[test]
fn berlin_spring_forward_skips_the_missing_hour() {
    // 2026-03-29 02:00 CET jumps to 03:00 CEST: 02:xx never happens.
    let w = window("Sun 02:00-03:00 Europe/Berlin max=1");
    assert_eq!(
        active_minutes(&w, "2026-03-28T22:00:00Z", "2026-03-29T22:00:00Z"),
        0
    );
    let w = window("Sun 01:00-04:00 Europe/Berlin max=1");
    assert_eq!(
        active_minutes(&w, "2026-03-28T22:00:00Z", "2026-03-29T22:00:00Z"),
        120
    );
}

#[test]
fn berlin_fall_back_covers_the_repeated_hour_twice() {
    // 2026-10-25 03:00 CEST falls back to 02:00 CET: 02:xx happens twice.
    let w = window("Sun 02:00-03:00 Europe/Berlin max=1");
    assert_eq!(
        active_minutes(&w, "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z"),
        120
    );
    assert!(w.contains(utc("2026-10-25T00:30:00Z")));
    assert!(w.contains(utc("2026-10-25T01:30:00Z")));
    assert!(!w.contains(utc("2026-10-25T02:00:00Z")));
}

#[test]
fn new_york_window_crossing_midnight_on_dst_nights() {
    // Sat 22:00 to Sun 06:00 local; spring forward on Sun 2026-03-08 02:00.
    let w = window("Sat 22:00-06:00 America/New_York min=2");
    assert_eq!(
        active_minutes(&w, "2026-03-07T12:00:00Z", "2026-03-08T20:00:00Z"),
        7 * 60
    );
    assert!(w.contains(utc("2026-03-08T03:00:00Z"))); // Sat 22:00 EST
    assert!(w.contains(utc("2026-03-08T09:59:00Z"))); // Sun 05:59 EDT
    assert!(!w.contains(utc("2026-03-08T10:00:00Z"))); // Sun 06:00 EDT
    // Fall back on Sun 2026-11-01 02:00 EDT -> 01:00 EST: 9 real hours.
    assert_eq!(
        active_minutes(&w, "2026-10-31T12:00:00Z", "2026-11-01T20:00:00Z"),
        9 * 60
    );
}

#[test]
fn crossing_midnight_belongs_to_the_opening_day() {
    let w = window("Fri 22:00-06:00 UTC max=3");
    assert!(w.contains(utc("2026-11-20T22:00:00Z"))); // Fri 22:00
    assert!(w.contains(utc("2026-11-21T05:59:00Z"))); // Sat 05:59
    assert!(!w.contains(utc("2026-11-21T22:00:00Z"))); // Sat 22:00
    assert!(!w.contains(utc("2026-11-20T05:00:00Z"))); // Fri 05:00: Thu not listed
    let sunday_night = window("Sun 23:00-01:00 UTC max=3");
    assert!(sunday_night.contains(utc("2026-11-23T00:30:00Z"))); // Mon 00:30
}

#[test]
fn sydney_southern_hemisphere_dst() {
    // Australia/Sydney leaves DST on Sun 2026-04-05 03:00 AEDT -> 02:00 AEST.
    let w = window("Sun 02:00-03:00 Australia/Sydney max=1");
    assert_eq!(
        active_minutes(&w, "2026-04-04T12:00:00Z", "2026-04-05T12:00:00Z"),
        120
    );
}

#[test]
fn absolute_dates_are_whole_local_days_and_override_weekly() {
    let windows = Windows::parse(
        "Mon-Fri 08:00-20:00 Europe/Berlin min=10; 2026-12-24/2026-12-26 Europe/Berlin max=2",
    )
    .unwrap();
    let christmas_eve_noon = Europe::Berlin
        .with_ymd_and_hms(2026, 12, 24, 12, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    let active: Vec<_> = windows
        .active(christmas_eve_noon)
        .map(|w| w.text.as_str())
        .collect();
    assert_eq!(active, ["2026-12-24/2026-12-26 Europe/Berlin max=2"]);
    // The end date is inclusive: the 26th until local midnight.
    assert!(windows.entries()[1].contains(utc("2026-12-26T22:59:00Z")));
    assert!(!windows.entries()[1].contains(utc("2026-12-26T23:00:00Z")));
    let monday = utc("2026-12-28T12:00:00Z");
    let active: Vec<_> = windows.active(monday).map(|w| w.bounds.min).collect();
    assert_eq!(active, [Some(10)]);
}

#[test]
fn absolute_time_ranges_are_half_open() {
    let w = window("2026-12-31T18:00/2027-01-01T06:00 max=4");
    assert!(w.contains(utc("2026-12-31T18:00:00Z")));
    assert!(!w.contains(utc("2027-01-01T06:00:00Z")));
}

#[test]
fn overlapping_weekly_windows_are_all_active() {
    let windows =
        Windows::parse("Mon-Sun 00:00-24:00 min=2; Mon-Fri 09:00-17:00 min=6 max=20").unwrap();
    assert_eq!(windows.active(utc("2026-11-23T10:00:00Z")).count(), 2);
    assert_eq!(windows.active(utc("2026-11-22T10:00:00Z")).count(), 1);
}

#[test]
fn errors_name_the_bad_token() {
    let cases = [
        (
            "Mon-Fry 08:00-20:00 min=1",
            "at \"Fry\" (column 5): unknown weekday \"Fry\", expected Mon..Sun",
        ),
        (
            "Mon-Fri 8:00-20:00 min=1",
            "at \"8:00-20:00\" (column 9): bad start time \"8:00\"",
        ),
        ("Mon-Fri 08:00-25:00 min=1", "bad end time \"25:00\""),
        ("Mon-Fri 08:00 min=1", "\"08:00\" is not a time range"),
        ("Mon-Fri 08:00-08:00 min=1", "is empty, use 00:00-24:00"),
        ("Mon-Fri", "missing time range"),
        (
            "Mon-Fri 08:00-20:00 Europe/Berln min=1",
            "unknown time zone \"Europe/Berln\", expected an IANA name",
        ),
        ("Mon-Fri 08:00-20:00 UTC", "window sets no bound"),
        (
            "Mon-Fri 08:00-20:00 min=5 max=3",
            "window min=5 is greater than its max=3",
        ),
        (
            "Mon-Fri 08:00-20:00 min=x",
            "at \"x\" (column 25): \"x\" is not a replica count",
        ),
        ("Mon-Fri 08:00-20:00 floor=3", "unknown setting \"floor\""),
        ("Mon-Fri 08:00-20:00 min=1 min=2", "min is given twice"),
        (
            "Mon-Fri 08:00-20:00 UTC Europe/Berlin min=1",
            "unexpected \"Europe/Berlin\"",
        ),
        ("2026-13-01 max=1", "bad date \"2026-13-01\""),
        ("2026-12-26/2026-12-24 max=1", "ends before it starts"),
        ("2026-12-24T10:00 max=1", "has no end"),
    ];
    for (value, expected) in cases {
        let err = Windows::parse(value).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("scale-governor.io/windows: at \""),
            "{text}"
        );
        assert!(
            text.contains(expected),
            "{value}\n got: {text}\nwant: {expected}"
        );
    }
}

#[test]
fn error_column_points_into_the_second_entry() {
    let err = Windows::parse("Mon 08:00-09:00 min=1; Tue 08:00-09:00 max=oops").unwrap_err();
    let err = err.first();
    assert_eq!((err.token.as_str(), err.column), ("oops", 44));
}

use chrono_tz::Europe;
