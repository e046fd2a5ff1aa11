//! What a policy's windows do on the days the clock skips or repeats one of
//! their boundaries, said when the windows are written, and done as said;
//! and a `state` annotation the recommender loop cannot read, warned about.

use serde_json::json;

use super::{said::said, *};
use crate::report::NoticeKind;

/// A window opening at a time Berlin skips in spring and repeats in fall,
/// one closing at a time New York repeats, one opening at a time it skips.
const WINDOWS: &str = "Sun 02:30-05:00 Europe/Berlin max=4\n\
                       Sat 20:00-01:30 America/New_York min=3\n\
                       Sun 02:30-04:00 America/New_York min=2";

const NOTES: [&str; 5] = [
    "window \"Sun 02:30-05:00 Europe/Berlin max=4\": on 2027-03-28 02:30 does not exist in Europe/Berlin (the clock jumps from 02:00 to 03:00); the window opens at 03:00 (2027-03-28T01:00:00Z)",
    "window \"Sun 02:30-05:00 Europe/Berlin max=4\": on 2027-10-31 02:30 occurs twice in Europe/Berlin (the clock goes back from 03:00 to 02:00); the window opens at the first 02:30 (CEST, 2027-10-31T00:30:00Z), not again while the clock repeats 02:00-03:00",
    "window \"Sat 20:00-01:30 America/New_York min=3\": on 2027-11-07 01:30 occurs twice in America/New_York (the clock goes back from 02:00 to 01:00); the window closes at the first 01:30 (EDT, 2027-11-07T05:30:00Z), not again while the clock repeats 01:00-02:00",
    "window \"Sun 02:30-04:00 America/New_York min=2\": on 2027-03-14 02:30 does not exist in America/New_York (the clock jumps from 02:00 to 03:00); the window opens at 03:00 (2027-03-14T07:00:00Z)",
    "window \"Sun 02:30-04:00 America/New_York min=2\": on 2027-11-07 02:30 occurs twice",
];

#[test]
fn windows_at_times_the_clock_skips_or_repeats_are_explained_when_written() {
    let b = body(
        "CREATE",
        None,
        deployment(5, json!({ keys::WINDOWS: WINDOWS }), true),
        None,
        false,
    );
    let s = said(Endpoint::Validate, &b, Cache::new(), now());
    assert!(s.response.allowed);
    s.assert_safe(1200);
    let notice = &s.report.as_ref().unwrap().notices[0];
    assert_eq!(notice.kind, NoticeKind::ClockChange);
    assert_eq!(s.events[0].reason, "WindowsOnClockChange");
    for note in &NOTES[..4] {
        s.assert_says(note);
    }
    // 02:30 in New York's fall is not a boundary of the last window's: it
    // is open then, so nothing happens at 02:30 (it is 02:30 once, EST).
    assert!(!s.response.warnings.iter().any(|w| w.contains(NOTES[4])));
    assert_eq!(s.response.warnings.len(), 4, "{:?}", s.response.warnings);
    // The mutating webhook says nothing of it: one message is enough.
    let m = said(Endpoint::Mutate, &b, Cache::new(), now());
    assert!(m.report.is_none_or(|r| r.notices.is_empty()));
    // An update that keeps the windows says nothing either.
    let kept = json!({ keys::WINDOWS: WINDOWS, keys::MAX_REPLICAS: "50" });
    let b = body(
        "UPDATE",
        None,
        deployment(5, kept.clone(), true),
        Some(deployment(5, json!({ keys::WINDOWS: WINDOWS }), true)),
        false,
    );
    let s = said(Endpoint::Validate, &b, Cache::new(), now());
    assert!(s.report.is_none_or(|r| r.notices.is_empty()));
}

/// What the notes say is what the handler does on those days: the Berlin
/// window opens at 03:00 on the day 02:30 does not exist, and stays open
/// through the repeated hour on the day 02:30 comes twice.
#[test]
fn the_handler_does_what_the_notes_say() {
    let cache = cache_with(&[(keys::WINDOWS, "Sun 02:30-05:00 Europe/Berlin max=4")], 5);
    let at = |t: &str| {
        // A review of its own each time: a repeated uid is answered as before.
        let mut b: serde_json::Value = serde_json::from_slice(&body(
            "UPDATE",
            Some("scale"),
            scale(8),
            Some(scale(5)),
            false,
        ))
        .unwrap();
        b["request"]["uid"] = json!(t);
        let b = serde_json::to_vec(&b).unwrap();
        let r = review(Endpoint::Mutate, &b, &cache, t.parse().unwrap()).unwrap();
        patched_replicas(&r.response, &scale(8)).unwrap_or(8)
    };
    // Spring: 01:59 CET, then the jump to 03:00 CEST.
    assert_eq!(at("2027-03-28T00:59:59Z"), 8);
    assert_eq!(at("2027-03-28T01:00:00Z"), 4);
    // Fall: the first 02:30 (CEST) opens it; the repeated hour keeps it
    // open; 05:00 CET closes it.
    assert_eq!(at("2027-10-31T00:29:59Z"), 8);
    assert_eq!(at("2027-10-31T00:30:00Z"), 4);
    assert_eq!(at("2027-10-31T01:15:00Z"), 4);
    assert_eq!(at("2027-10-31T03:59:59Z"), 4);
    assert_eq!(at("2027-10-31T04:00:00Z"), 8);
}

/// Many windows on such days: ten warnings, the rest counted; the Event
/// names as many as fit and counts the rest.
#[test]
fn many_notes_are_bounded() {
    let windows: Vec<String> = (0..30)
        .map(|i| format!("Sun 02:{:02}-05:00 Europe/Berlin max={}", i + 1, i + 4))
        .collect();
    let b = body(
        "CREATE",
        None,
        deployment(5, json!({ keys::WINDOWS: windows.join("\n") }), true),
        None,
        false,
    );
    let s = said(Endpoint::Validate, &b, Cache::new(), now());
    s.assert_safe(1200);
    assert_eq!(s.response.warnings.len(), 11);
    assert_eq!(
        s.response.warnings[10],
        "scale-governor: and 50 more such days; scale-governor explain lists them"
    );
    let notice = &s.report.as_ref().unwrap().notices[0].message;
    assert!(notice.len() <= 1000);
    let named = notice.matches("window \"").count();
    assert!(
        notice.ends_with(&format!("; and {} more", 60 - named)),
        "{notice}"
    );
    s.assert_reports(notice);
}

/// A `state` the loop cannot read is a warning in the response, and, when
/// an update writes it, an Event and a log line.
#[test]
fn a_state_the_loop_cannot_read_is_warned_about() {
    let warning = "the state annotation does not parse: key must be a string at line 1 column 2; it is ignored, and the recommender loop starts without the demand trend, window raise and source health it keeps there";
    let stored = json!({ keys::MAX_REPLICAS: "20" });
    let written = json!({ keys::MAX_REPLICAS: "20", keys::STATE: "{not json" });
    let b = body(
        "UPDATE",
        None,
        deployment(5, written, true),
        Some(deployment(5, stored, true)),
        false,
    );
    let m = said(Endpoint::Mutate, &b, Cache::new(), now());
    assert_eq!(m.response.warnings, [format!("scale-governor: {warning}")]);
    let v = said(Endpoint::Validate, &b, Cache::new(), now());
    assert_eq!(
        v.report.as_ref().unwrap().notices[0].kind,
        NoticeKind::PolicyWarning
    );
    assert_eq!(v.events[0].reason, "PolicyWarning");
    v.assert_reports(warning);
}
