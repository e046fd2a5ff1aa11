//! `Windows::next_change` is never late: until the instant it names, no
//! window of the policy opens or closes, across DST jumps in zones with
//! hour and half-hour shifts, weekly windows that cross midnight, and
//! absolute windows with second precision. The recommender sleeps on it.
//! And `Windows::active`, which looks windows up through an index, finds
//! exactly what trying every window finds.

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use scale_governor_core::policy::{Policy, keys};

/// Instants near each 2026 DST change of the zones below.
const DST_2026: [&str; 6] = [
    "2026-03-29T01:00:00Z", // Europe/Berlin, spring forward
    "2026-10-25T01:00:00Z", // Europe/Berlin, fall back
    "2026-03-08T07:00:00Z", // America/New_York, spring forward
    "2026-11-01T06:00:00Z", // America/New_York, fall back
    "2026-04-04T15:00:00Z", // Australia/Lord_Howe, back 30 minutes
    "2026-10-03T15:30:00Z", // Australia/Lord_Howe, forward 30 minutes
];
const ZONES: [&str; 5] = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "UTC",
];

const DAYS: [&str; 6] = ["Mon-Sun", "Mon-Fri", "Sat,Sun", "Sun", "Fri-Mon", "Wed"];

fn weekly() -> impl Strategy<Value = String> {
    (
        0usize..5,
        0usize..DAYS.len(),
        0u32..24,
        0u32..60,
        0u32..25,
        0u32..60,
    )
        .prop_map(|(z, d, h1, m1, h2, m2)| {
            let (h2, m2) = if h2 == 24 { (24, 0) } else { (h2, m2) };
            format!(
                "{} {h1:02}:{m1:02}-{h2:02}:{m2:02} {} min=2",
                DAYS[d], ZONES[z]
            )
        })
}

fn absolute(base: DateTime<Utc>) -> impl Strategy<Value = String> {
    (0usize..5, -10_800i64..10_800, 1i64..7_200).prop_map(move |(z, from, len)| {
        // Local wall-clock strings near `base`: shifted by up to 3 hours.
        let start = (base + Duration::seconds(from)).naive_utc();
        let end = start + Duration::seconds(len);
        let f = |t: chrono::NaiveDateTime| t.format("%Y-%m-%dT%H:%M:%S").to_string();
        format!("{}/{} {} max=9", f(start), f(end), ZONES[z])
    })
}

fn case() -> impl Strategy<Value = (DateTime<Utc>, Vec<String>)> {
    (0usize..DST_2026.len(), -21_600i64..21_600).prop_flat_map(|(i, shift)| {
        let now = DST_2026[i].parse::<DateTime<Utc>>().unwrap() + Duration::seconds(shift);
        let windows = prop::collection::vec(prop_oneof![weekly(), absolute(now)], 1..8);
        (Just(now), windows)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn no_window_opens_or_closes_before_the_next_change((now, windows) in case()) {
        let text = windows.join("\n");
        // A generated absolute range may be empty or reversed; the parser
        // refuses those, and that is not what is under test here.
        let Ok(policy) = Policy::from_annotations([(keys::WINDOWS, text.as_str())]) else {
            return Ok(());
        };
        let horizon = now + Duration::hours(6);
        let next = policy.windows.next_change(now, horizon);
        prop_assert!(next >= now && next <= horizon);
        let state = |t: DateTime<Utc>| -> Vec<bool> {
            policy.windows.entries().iter().map(|w| w.contains(t)).collect()
        };
        let at_now = state(now);
        let mut t = now;
        while t < next {
            prop_assert_eq!(state(t), at_now.clone(), "changed at {} before {} ({})", t, next, text);
            t += Duration::seconds(13);
        }
        if next > now {
            let last = next - Duration::seconds(1);
            prop_assert_eq!(state(last.max(now)), at_now, "changed at {} ({})", last, text);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_index_finds_what_a_scan_finds((now, windows) in case()) {
        let text = windows.join("\n");
        let Ok(policy) = Policy::from_annotations([(keys::WINDOWS, text.as_str())]) else {
            return Ok(());
        };
        let entries = policy.windows.entries();
        let absolute = |w: &&scale_governor_core::policy::Window| w.text.starts_with(|c: char| c.is_ascii_digit());
        let mut t = now - Duration::hours(3);
        while t < now + Duration::hours(3) {
            let holiday = entries.iter().any(|w| absolute(&w) && w.contains(t));
            let scan: Vec<&str> = entries
                .iter()
                .filter(|w| absolute(w) == holiday && w.contains(t))
                .map(|w| w.text.as_str())
                .collect();
            let indexed: Vec<&str> = policy.windows.active(t).map(|w| w.text.as_str()).collect();
            prop_assert_eq!(indexed, scan, "at {} ({})", t, text);
            t += Duration::seconds(97);
        }
    }
}

#[test]
fn a_weekly_window_is_looked_at_again_at_its_next_edge_not_every_minute() {
    let policy = Policy::from_annotations([(
        keys::WINDOWS,
        "Mon-Fri 08:00-20:00 Europe/Berlin min=4\nMon-Sun 23:00-05:00 Europe/Berlin max=6",
    )])
    .unwrap();
    // 10:00 UTC is 11:00 in Berlin in November: next edge 20:00 Berlin.
    let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
    let next = policy.windows.next_change(now, now + Duration::hours(12));
    assert_eq!(
        next,
        "2026-11-23T19:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    // Before the spring-forward jump at 01:00 UTC, the answer stops there.
    let before: DateTime<Utc> = "2026-03-29T00:30:00Z".parse().unwrap();
    let next = policy
        .windows
        .next_change(before, before + Duration::hours(6));
    assert!(next <= "2026-03-29T01:00:00Z".parse::<DateTime<Utc>>().unwrap());
    assert!(next >= "2026-03-29T00:59:59Z".parse::<DateTime<Utc>>().unwrap());
}

/// The instant a DST note names (`… opens at 03:00 (2026-03-29T01:00:00Z)`).
fn named_instant(note: &str) -> Option<DateTime<Utc>> {
    let (head, _) = note.rsplit_once("Z)")?;
    let (_, at) = head.rsplit_once(['(', ' '])?;
    format!("{at}Z").parse().ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// What a note about a DST day says a window does is what it does: it
    /// is open from the instant it "opens at", and open until the instant
    /// it "closes at".
    #[test]
    fn dst_notes_say_what_the_windows_do((now, windows) in case()) {
        let text = windows.join("\n");
        let Ok(policy) = Policy::from_annotations([(keys::WINDOWS, text.as_str())]) else {
            return Ok(());
        };
        let from = now - Duration::days(1);
        for note in policy.windows.dst_notes(from) {
            let Some(at) = named_instant(&note) else {
                prop_assert!(note.ends_with("the window does not open that day"), "{}", note);
                continue;
            };
            let entry = policy
                .windows
                .entries()
                .iter()
                .find(|w| note.starts_with(&format!("window \"{}\"", w.text)));
            prop_assert!(entry.is_some(), "{}", note);
            let w = entry.unwrap();
            if note.contains("the window opens") {
                prop_assert!(w.contains(at), "{} ({})", note, text);
            } else {
                prop_assert!(w.contains(at - Duration::seconds(1)), "{} ({})", note, text);
            }
        }
    }
}
