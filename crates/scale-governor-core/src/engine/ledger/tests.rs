use super::*;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn change(t: &str, from: u32, to: u32) -> Change {
    Change {
        at: at(t),
        from,
        to,
        requested: to,
        actor: "hpa".into(),
        pending: false,
        watched: false,
        generation: None,
        span: None,
    }
}

#[test]
fn keeps_time_order_and_counts_strictly_after_cutoff() {
    let mut ledger = Ledger::new();
    ledger.record(change("2026-11-21T12:01:00Z", 4, 8));
    ledger.record(change("2026-11-21T12:00:00Z", 2, 4));
    assert_eq!(ledger.changes()[0].to, 4);
    assert_eq!(ledger.since(at("2026-11-21T12:00:00Z")).len(), 1);
    ledger.prune(at("2026-11-21T12:00:30Z"));
    assert_eq!(ledger.changes().len(), 1);
}

#[test]
fn is_capped() {
    let mut ledger = Ledger::new();
    let start = at("2026-11-21T12:00:00Z");
    for i in 0..(MAX_ENTRIES as i64 + 10) {
        let mut c = change("2026-11-21T12:00:00Z", 1, 2);
        c.at = start + chrono::Duration::seconds(i);
        ledger.record(c);
    }
    assert_eq!(ledger.changes().len(), MAX_ENTRIES);
    assert_eq!(
        ledger.changes()[0].at,
        start + chrono::Duration::seconds(10)
    );
}

#[test]
fn pending_changes_are_confirmed_retracted_or_expire() {
    let pending = |t: &str, from, to| Change {
        pending: true,
        ..change(t, from, to)
    };
    let mut ledger = Ledger::new();
    ledger.record(change("2026-11-21T12:00:00Z", 2, 4));
    ledger.record(pending("2026-11-21T12:00:10Z", 4, 8));
    ledger.record(pending("2026-11-21T12:00:20Z", 8, 9));
    let tolerance = chrono::Duration::seconds(30);
    let later = "2026-11-21T12:01:00Z";
    assert!(
        !ledger.confirm(&change(later, 2, 4), tolerance),
        "a stored change from long ago is not this one"
    );
    assert!(
        ledger.confirm(&change(later, 4, 8), tolerance),
        "pending: any age"
    );
    assert_eq!(ledger.stored().changes().len(), 2);
    assert!(ledger.has_pending());
    assert_eq!(
        ledger.retract_pending(|c| c.from == 8).map(|c| c.to),
        Some(9)
    );
    ledger.record(pending("2026-11-21T12:00:30Z", 8, 12));
    assert_eq!(ledger.expire_pending(at("2026-11-21T12:00:29Z")), 0);
    assert_eq!(ledger.expire_pending(at("2026-11-21T12:00:30Z")), 1);
    assert!(!ledger.has_pending());
    assert_eq!(ledger.changes().len(), 2);
}

#[test]
fn persisted_entries_merge_one_to_one_within_the_tolerance() {
    let tolerance = chrono::Duration::seconds(30);
    let mut ledger = Ledger::new();
    ledger.record(Change {
        pending: true,
        ..change("2026-11-21T12:00:00Z", 9, 6)
    });
    ledger.record(change("2026-11-21T12:00:20Z", 6, 9));
    // Another replica saw the same two changes a few seconds later, and
    // a second 9 -> 6 this replica missed.
    let mut persisted = Ledger::new();
    persisted.record(change("2026-11-21T12:00:02Z", 9, 6));
    persisted.record(change("2026-11-21T12:00:21Z", 6, 9));
    persisted.record(change("2026-11-21T12:00:25Z", 9, 6));
    assert!(ledger.merge(&persisted, tolerance));
    assert_eq!(ledger.changes().len(), 3, "{ledger:?}");
    assert!(
        !ledger.has_pending(),
        "the persisted copy confirms the pending change"
    );
    // Merging the same again changes nothing.
    assert!(!ledger.merge(&persisted, tolerance));
    assert_eq!(ledger.changes().len(), 3);
    // Outside the tolerance it is another change.
    let mut late = Ledger::new();
    late.record(change("2026-11-21T12:05:00Z", 9, 6));
    assert!(ledger.merge(&late, tolerance));
    assert_eq!(ledger.changes().len(), 4);
}

#[test]
fn annotation_round_trip() {
    let mut ledger = Ledger::new();
    ledger.record(Change {
        requested: 40,
        ..change("2026-11-21T12:00:00Z", 10, 14)
    });
    let text = ledger.to_compact();
    assert_eq!(text, r#"[[1795262400,10,14,40,"hpa"]]"#);
    assert_eq!(Ledger::from_compact(&text).unwrap(), ledger);
    assert!(Ledger::from_compact("{").is_err());
}

#[test]
fn history_text_accepts_json_lines_and_csv() {
    let text = "time,from,to,actor\n2026-11-21T12:00:00Z,10,14,alice\n\n# note\n{\"time\":\"2026-11-21T12:00:30Z\",\"from\":14,\"to\":18,\"actor\":\"bob\",\"requested\":30}\n";
    let ledger = Ledger::from_history_text(text).unwrap();
    assert_eq!(ledger.changes().len(), 2);
    assert_eq!(ledger.changes()[1].requested, 30);
    assert_eq!(&*ledger.changes()[0].actor, "alice");
    // Standard CSV quoting: an actor with a comma, quoted numbers.
    let quoted = "\"2026-11-21T12:00:00Z\",\"10\",14,\"kubectl, by bob\",\"20\"\n";
    let ledger = Ledger::from_history_text(quoted).unwrap();
    let c = &ledger.changes()[0];
    assert_eq!(
        (c.from, c.to, c.requested, &*c.actor),
        (10, 14, 20, "kubectl, by bob")
    );
}

#[test]
fn history_text_errors_carry_the_line_number() {
    let err = Ledger::from_history_text(
        "2026-11-21T12:00:00Z,10,14,alice\n2026-11-21T12:00:00Z,ten,14,bob\n",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 2: from \"ten\" is not a replica count"
    );
    let err = Ledger::from_history_text("{\"time\":1}").unwrap_err();
    assert!(err.to_string().starts_with("line 1: "), "{err}");
}

fn now() -> DateTime<Utc> {
    at("2026-06-01T12:00:00Z")
}

#[test]
fn a_persisted_ledger_keeps_what_is_usable_and_says_what_it_dropped() {
    let now = now();
    let ok = now.timestamp() - 30;
    let skewed = now.timestamp() + 30;
    let year_ahead = now.timestamp() + 365 * 86_400;
    let text = format!(
        r#"[[{ok},3,7,7,"hpa"],[{skewed},7,9,9,"kubectl"],[{year_ahead},9,10,10,"forger"],
           [{ok},1,4294967295,4,"big"],[{ok},"x",2,2,"a"],{{"at":1}},[{ok},2,3],
           [99999999999999,1,2,2,"far"]]"#
    );
    let (ledger, warning) = Ledger::read_persisted(&text, now);
    let kept: Vec<(u32, u32)> = ledger.changes().iter().map(|c| (c.from, c.to)).collect();
    assert_eq!(kept, [(3, 7), (7, 9)], "within the clock skew is kept");
    assert_eq!(
        warning.as_deref(),
        Some(
            "dropped ledger entries: 1 dated in the future, 2 with a count or time out of range, \
             3 of an unknown shape (kept 2)"
        )
    );
}

#[test]
fn a_clean_persisted_ledger_draws_no_warning() {
    let now = now();
    let written = Ledger {
        changes: vec![change("2026-06-01T11:59:00Z", 2, 5)],
    };
    let (read, warning) = Ledger::read_persisted(&written.to_compact(), now);
    assert_eq!(read, written);
    assert_eq!(warning, None);
}

#[test]
fn a_persisted_ledger_that_is_not_a_list_is_empty_with_a_warning() {
    for text in ["{}", "\"[]\"", "not json", ""] {
        let (read, warning) = Ledger::read_persisted(text, now());
        assert!(read.changes().is_empty(), "{text}");
        let warning = warning.unwrap_or_default();
        assert!(
            warning.starts_with("the ledger is not"),
            "{text}: {warning}"
        );
    }
}

#[test]
fn a_count_the_ledger_does_not_explain_is_booked_as_a_change() {
    let now = now();
    let ledger = Ledger {
        changes: vec![
            change("2026-06-01T11:58:00Z", 6, 10),
            // A clamped wish: not a landed change.
            change("2026-06-01T11:59:00Z", 10, 10),
        ],
    };
    assert_eq!(
        ledger.unexplained(10, None, None, "x", now, 60),
        None,
        "explained"
    );
    let written = at("2026-06-01T11:59:30Z");
    let booked = ledger
        .unexplained(14, None, Some(written), "kubectl", now, 60)
        .unwrap();
    assert_eq!((booked.from, booked.to, booked.at), (10, 14, written));
    assert_eq!(&*booked.actor, "kubectl");
    // Unknown write time: now, never before the change it follows.
    let booked = ledger.unexplained(3, None, None, "x", now, 60).unwrap();
    assert_eq!((booked.from, booked.to, booked.at), (10, 3, now));
    let early = at("2026-06-01T11:00:00Z");
    let booked = ledger
        .unexplained(3, None, Some(early), "x", now, 60)
        .unwrap();
    assert_eq!(booked.at, at("2026-06-01T11:58:00Z"));
    // A write time ahead of this clock is not trusted beyond now.
    let ahead = at("2026-06-01T13:00:00Z");
    assert_eq!(
        ledger
            .unexplained(3, None, Some(ahead), "x", now, 60)
            .unwrap()
            .at,
        now
    );
}

#[test]
fn with_no_landed_change_a_recent_write_counts_from_zero() {
    let now = now();
    let empty = Ledger::new();
    let recent = at("2026-06-01T11:59:30Z");
    let booked = empty
        .unexplained(14, None, Some(recent), "hpa", now, 60)
        .unwrap();
    assert_eq!((booked.from, booked.to), (0, 14));
    let old = at("2026-06-01T11:58:00Z");
    assert_eq!(
        empty.unexplained(14, None, Some(old), "hpa", now, 60),
        None,
        "no rule sees it"
    );
    assert_eq!(
        empty.unexplained(0, None, Some(recent), "hpa", now, 60),
        None,
        "nothing added"
    );
    assert_eq!(
        empty.unexplained(14, None, None, "hpa", now, 60),
        None,
        "when is unknown"
    );
}

#[test]
fn a_change_another_replica_persisted_is_matched_by_the_watch_once() {
    let tolerance = chrono::Duration::seconds(30);
    let mut ledger = Ledger::new();
    // Merged from a ledger object before this replica's watch saw it.
    ledger.merge(
        &Ledger {
            changes: vec![change("2026-11-21T12:00:00Z", 10, 14)],
        },
        tolerance,
    );
    let seen = change("2026-11-21T12:00:01Z", 10, 14);
    assert!(ledger.confirm(&seen, tolerance), "the same change");
    assert!(
        !ledger.confirm(&seen, tolerance),
        "a second 10 -> 14 is a new change"
    );
}

fn stored_at(t: &str, from: u32, to: u32, generation: i64) -> Change {
    Change {
        generation: Some(generation),
        ..change(t, from, to)
    }
}

#[test]
fn the_generation_tells_two_changes_of_one_size_apart() {
    let tolerance = chrono::Duration::seconds(30);
    // This replica saw 7 -> 12 at generation 9; another persisted the
    // 7 -> 12 of generation 5, five seconds earlier: two changes.
    let mut ledger = Ledger::new();
    ledger.record(Change {
        watched: true,
        ..stored_at("2026-11-21T12:00:05Z", 7, 12, 9)
    });
    let persisted = Ledger {
        changes: vec![stored_at("2026-11-21T12:00:00Z", 7, 12, 5)],
    };
    assert!(ledger.merge(&persisted, tolerance));
    assert_eq!(ledger.changes().len(), 2);
    // The same generation is the same change, whatever the clocks say.
    let again = Ledger {
        changes: vec![stored_at("2026-11-21T12:00:20Z", 7, 12, 9)],
    };
    assert!(!ledger.merge(&again, tolerance));
    assert_eq!(ledger.changes().len(), 2);
    // The watch event of generation 5 confirms the merged entry, once.
    let seen = stored_at("2026-11-21T12:00:06Z", 7, 12, 5);
    assert!(ledger.confirm(&seen, tolerance));
    assert!(!ledger.confirm(&seen, tolerance));
}

#[test]
fn a_ledger_object_keeps_generations_and_still_reads_the_old_form() {
    let now = now();
    let mut ledger = Ledger::new();
    ledger.record(stored_at("2026-06-01T11:59:00Z", 2, 5, 17));
    ledger.record(change("2026-06-01T11:59:30Z", 5, 6));
    let text = ledger.to_compact();
    assert!(text.contains(r#","hpa",17]"#), "{text}");
    let (read, warning) = Ledger::read_persisted(&text, now);
    assert_eq!((read, warning), (ledger.clone(), None));
    assert_eq!(Ledger::from_compact(&text).unwrap(), ledger);
}
