//! What a window does on the days the clock changes, and that the notes
//! say exactly that: each instant a note names is checked against
//! [`Window::contains`].

use chrono::{DateTime, Duration, Utc};

use crate::policy::windows::{Window, Windows};

fn window(text: &str) -> Window {
    Windows::parse(text).unwrap().entries()[0].clone()
}

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn notes(text: &str, now: &str) -> Vec<String> {
    Windows::parse(text).unwrap().dst_notes(utc(now))
}

/// Whether the window is open at each minute of `[from, to)`.
fn minutes(w: &Window, from: &str, to: &str) -> Vec<bool> {
    let (mut t, end) = (utc(from), utc(to));
    let mut out = Vec::new();
    while t < end {
        out.push(w.contains(t));
        t += Duration::minutes(1);
    }
    out
}

/// The instants at which the window opens or closes in `[from, to)`, to
/// the second.
fn edges(w: &Window, from: &str, to: &str) -> Vec<(bool, DateTime<Utc>)> {
    let (mut t, end) = (utc(from), utc(to));
    let mut was = w.contains(t);
    let mut out = Vec::new();
    while t < end {
        t += Duration::seconds(1);
        let now = w.contains(t);
        if now != was {
            out.push((now, t));
            was = now;
        }
    }
    out
}

/// The note's claim, checked: the window opens (or closes) exactly at the
/// instant in parentheses, and nowhere else that day.
fn check_note(w: &Window, note: &str, day_from: &str, day_to: &str) {
    let at = note
        .rsplit_once("Z)")
        .and_then(|(head, _)| head.rsplit_once(['(', ' ']))
        .map(|(_, at)| utc(&format!("{at}Z")))
        .unwrap_or_else(|| panic!("no instant in {note}"));
    let opens = note.contains("the window opens");
    assert_eq!(
        edges(w, day_from, day_to),
        [(opens, at)],
        "{note}\nthe only edge that day must be the one the note names"
    );
}

#[test]
fn berlin_spring_forward_a_start_the_clock_skips_opens_at_the_jump() {
    let text = "Sun 02:30-05:00 Europe/Berlin max=4";
    let found = notes(text, "2026-01-01T00:00:00Z");
    assert_eq!(
        found,
        [
            "window \"Sun 02:30-05:00 Europe/Berlin max=4\": on 2026-03-29 02:30 does not exist in Europe/Berlin (the clock jumps from 02:00 to 03:00); the window opens at 03:00 (2026-03-29T01:00:00Z)",
            "window \"Sun 02:30-05:00 Europe/Berlin max=4\": on 2026-10-25 02:30 occurs twice in Europe/Berlin (the clock goes back from 03:00 to 02:00); the window opens at the first 02:30 (CEST, 2026-10-25T00:30:00Z), not again while the clock repeats 02:00-03:00",
        ]
    );
    let w = window(text);
    check_note(
        &w,
        &found[0],
        "2026-03-28T23:00:00Z",
        "2026-03-29T02:00:00Z",
    );
    check_note(
        &w,
        &found[1],
        "2026-10-24T23:00:00Z",
        "2026-10-25T03:00:00Z",
    );
    // Fall back: open from the first 02:30 to 05:00 CET without a break.
    let open = minutes(&w, "2026-10-25T00:30:00Z", "2026-10-25T04:00:00Z");
    assert!(open.iter().all(|o| *o), "no hole in the repeated hour");
}

#[test]
fn berlin_an_end_the_clock_skips_or_repeats() {
    // Saturday night to Sunday 02:30: the end falls on the day the clock changes.
    let text = "Sat 22:00-02:30 Europe/Berlin max=4";
    let found = notes(text, "2026-01-01T00:00:00Z");
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].ends_with("on 2026-03-29 02:30 does not exist in Europe/Berlin (the clock jumps from 02:00 to 03:00); the window closes at 03:00 (2026-03-29T01:00:00Z)"),
        "{}",
        found[0]
    );
    assert!(
        found[1].ends_with("on 2026-10-25 02:30 occurs twice in Europe/Berlin (the clock goes back from 03:00 to 02:00); the window closes at the first 02:30 (CEST, 2026-10-25T00:30:00Z), not again while the clock repeats 02:00-03:00"),
        "{}",
        found[1]
    );
    let w = window(text);
    check_note(
        &w,
        &found[0],
        "2026-03-28T22:00:00Z",
        "2026-03-29T12:00:00Z",
    );
    check_note(
        &w,
        &found[1],
        "2026-10-24T21:00:00Z",
        "2026-10-25T12:00:00Z",
    );
    // It does not open again when 02:00-02:30 comes round a second time.
    let night = minutes(&w, "2026-10-25T00:30:00Z", "2026-10-25T20:00:00Z");
    assert!(night.iter().all(|o| !o));
}

#[test]
fn new_york_a_start_and_an_end_on_both_days() {
    // 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
    let start = "Sun 02:30-05:00 America/New_York min=3";
    let found = notes(start, "2026-01-01T00:00:00Z");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].ends_with("on 2026-03-08 02:30 does not exist in America/New_York (the clock jumps from 02:00 to 03:00); the window opens at 03:00 (2026-03-08T07:00:00Z)"),
        "{}",
        found[0]
    );
    check_note(
        &window(start),
        &found[0],
        "2026-03-08T05:00:00Z",
        "2026-03-08T08:00:00Z",
    );
    // 01:30 is repeated in the fall: the first is EDT.
    let overlap = "Sun 01:30-04:00 America/New_York min=3; Sat 20:00-01:30 America/New_York max=2";
    let found = notes(overlap, "2026-06-01T00:00:00Z");
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].ends_with("the window opens at the first 01:30 (EDT, 2026-11-01T05:30:00Z), not again while the clock repeats 01:00-02:00"),
        "{}",
        found[0]
    );
    assert!(
        found[1].ends_with("the window closes at the first 01:30 (EDT, 2026-11-01T05:30:00Z), not again while the clock repeats 01:00-02:00"),
        "{}",
        found[1]
    );
    let windows = Windows::parse(overlap).unwrap();
    for (w, note) in windows.entries().iter().zip(&found) {
        check_note(w, note, "2026-11-01T01:00:00Z", "2026-11-01T08:00:00Z");
    }
    // An end the spring skips: the window closes at the jump.
    let end = "Sat 22:00-02:30 America/New_York max=2";
    let found = notes(end, "2026-01-01T00:00:00Z");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].ends_with("on 2026-03-08 02:30 does not exist in America/New_York (the clock jumps from 02:00 to 03:00); the window closes at 03:00 (2026-03-08T07:00:00Z)"),
        "{}",
        found[0]
    );
    check_note(
        &window(end),
        &found[0],
        "2026-03-08T05:00:00Z",
        "2026-03-08T12:00:00Z",
    );
}

#[test]
fn absolute_ranges_take_local_times_too() {
    let text = "2026-03-29T02:30/2026-03-29T06:00 Europe/Berlin max=2\n\
                2026-10-25T00:00/2026-10-25T02:30 Europe/Berlin max=2\n\
                2026-11-01T01:15:30/2026-11-01T09:00 America/New_York max=2";
    let found = notes(text, "2026-01-01T00:00:00Z");
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].contains("the window opens at 03:00 (2026-03-29T01:00:00Z)"));
    assert!(found[1].contains("the window closes at the first 02:30 (CEST, 2026-10-25T00:30:00Z)"));
    assert!(
        found[2].contains(
            "on 2026-11-01 01:15:30 occurs twice in America/New_York (the clock goes back from 02:00 to 01:00); the window opens at the first 01:15:30 (EDT, 2026-11-01T05:15:30Z)"
        ),
        "{}",
        found[2]
    );
    let windows = Windows::parse(text).unwrap();
    let days = [
        ("2026-03-28T20:00:00Z", "2026-03-29T20:00:00Z"),
        ("2026-10-24T20:00:00Z", "2026-10-25T20:00:00Z"),
        ("2026-10-31T20:00:00Z", "2026-11-01T20:00:00Z"),
    ];
    for ((w, note), (from, to)) in windows.entries().iter().zip(&found).zip(days) {
        // The absolute windows open or close once more, at their other end.
        let (open, close) = (edges(w, from, to), note.contains("opens"));
        assert!(
            open.contains(&(close, note_instant(note))),
            "{note}: {open:?}"
        );
    }
}

fn note_instant(note: &str) -> DateTime<Utc> {
    let (head, _) = note.rsplit_once("Z)").unwrap();
    let (_, at) = head.rsplit_once(['(', ' ']).unwrap();
    utc(&format!("{at}Z"))
}

#[test]
fn a_window_inside_the_skipped_hour_never_opens_and_inside_the_repeated_one_opens_once() {
    for text in [
        "Sun 02:15-02:45 Europe/Berlin max=1",
        "Sun 02:00-03:00 Europe/Berlin max=1",
    ] {
        let found = notes(text, "2026-03-01T00:00:00Z");
        assert!(
            found[0].contains("on 2026-03-29 ")
                && found[0].ends_with("the window does not open that day"),
            "{found:?}"
        );
        let spring = minutes(
            &window(text),
            "2026-03-28T22:00:00Z",
            "2026-03-29T22:00:00Z",
        );
        assert!(spring.iter().all(|o| !o), "{text}");
    }
    let found = notes(
        "Sun 02:15-02:45 Europe/Berlin max=1",
        "2026-03-01T00:00:00Z",
    );
    assert!(
        found[0].contains("on 2026-03-29 02:15 and 02:45 do not exist in Europe/Berlin"),
        "{found:?}"
    );
    // In the fall, 02:15-02:45 comes round twice; the window opens the first time.
    let w = window("Sun 02:15-02:45 Europe/Berlin max=1");
    let fall = minutes(&w, "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z");
    assert_eq!(fall.iter().filter(|o| **o).count(), 30);
    assert!(w.contains(utc("2026-10-25T00:15:00Z")) && !w.contains(utc("2026-10-25T01:15:00Z")));
}

#[test]
fn windows_the_clock_change_does_not_touch_have_no_notes() {
    for text in [
        "Mon-Fri 08:00-20:00 Europe/Berlin min=10",
        "Mon-Sun 22:00-06:00 Europe/Berlin max=4",
        "Sun 02:30-05:00 UTC max=4",
        "Sun 02:30-05:00 Asia/Tokyo max=4",
        // Saturday's 02:30 is not on a day the clock changes.
        "Sat 02:30-05:00 Europe/Berlin max=4",
        "2026-12-24/2026-12-26 Europe/Berlin max=3",
    ] {
        assert!(
            notes(text, "2026-01-01T00:00:00Z").is_empty(),
            "{text}: {:?}",
            notes(text, "2026-01-01T00:00:00Z")
        );
    }
    // Only the coming year: from November 2026, the next days are in 2027.
    let found = notes(
        "Sun 02:30-05:00 Europe/Berlin max=4",
        "2026-11-01T00:00:00Z",
    );
    assert!(found[0].contains("on 2027-03-28 02:30"), "{found:?}");
    assert!(found[1].contains("on 2027-10-31 02:30"), "{found:?}");
}

/// Lord Howe goes back 30 minutes: the same rules at half an hour.
#[test]
fn a_half_hour_change_is_described_the_same_way() {
    let text = "Sun 01:45-02:15 Australia/Lord_Howe max=2";
    let found = notes(text, "2026-01-01T00:00:00Z");
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].contains("on 2026-04-05 01:45 occurs twice in Australia/Lord_Howe (the clock goes back from 02:00 to 01:30); the window opens at the first 01:45"),
        "{}",
        found[0]
    );
    assert!(
        found[1].contains("on 2026-10-04 02:15 does not exist in Australia/Lord_Howe (the clock jumps from 02:00 to 02:30); the window closes at 02:30"),
        "{}",
        found[1]
    );
    let w = window(text);
    check_note(
        &w,
        &found[0],
        "2026-04-04T12:00:00Z",
        "2026-04-04T15:00:00Z",
    );
    check_note(
        &w,
        &found[1],
        "2026-10-03T15:20:00Z",
        "2026-10-03T18:00:00Z",
    );
}
