//! A replica that starts while changes land counts their sum as one change
//! (`Ledger::unexplained`); the changes themselves arrive later from a
//! replica that saw them. One chain must come out, whichever way round.

use chrono::{DateTime, Duration, Utc};

use super::super::{Change, Ledger};

fn at(secs: i64) -> DateTime<Utc> {
    "2026-12-07T17:13:10Z".parse::<DateTime<Utc>>().unwrap() + Duration::seconds(secs)
}

/// A change stored at `generation`, `from` being the count just before.
fn stored(secs: i64, from: u32, to: u32, generation: i64) -> Change {
    let mut c = Change::stored(at(secs), from, to, to, "admin");
    c.generation = Some(generation);
    c
}

/// A change counted at start: `from` is the count the last change known,
/// of generation `known`, ended at.
fn summed(secs: i64, from: u32, to: u32, generation: i64, known: i64) -> Change {
    let mut c = stored(secs, from, to, generation);
    c.set_from_generation(Some(known));
    c
}

fn ledger(changes: &[Change]) -> Ledger {
    let mut l = Ledger::new();
    for c in changes {
        l.record(c.clone());
    }
    l
}

/// (from, to, generation) of each change, oldest first.
fn chain(l: &Ledger) -> Vec<(u32, u32, Option<i64>)> {
    l.changes()
        .iter()
        .map(|c| (c.from, c.to, c.generation))
        .collect()
}

const SAME: Duration = Duration::seconds(30);

/// The interleaving of the fault test (seed 15086875662183343741): the
/// restarted replica knew 4 -> 8 (generation 2) and found 7 stored at
/// generation 4, so it counted 8 -> 7; the other replica then persisted
/// the 8 -> 2 and 2 -> 7 that made it. Kept side by side, the 8 -> 7 was a
/// scale-down that never happened, and freed a pod of scale-up budget.
#[test]
fn a_sum_counted_at_start_gives_way_to_the_changes_it_summed() {
    let mut here = ledger(&[stored(0, 4, 8, 2), summed(2, 8, 7, 4, 2)]);
    let persisted = ledger(&[stored(0, 4, 8, 2), stored(2, 8, 2, 3), stored(2, 2, 7, 4)]);
    assert!(here.merge(&persisted, SAME));
    assert_eq!(
        chain(&here),
        [(4, 8, Some(2)), (8, 2, Some(3)), (2, 7, Some(4))]
    );
    assert!(
        here.changes().iter().all(|c| c.span.is_none()),
        "every count is now the one just before"
    );
    assert!(!here.merge(&persisted, SAME), "merged once");
}

#[test]
fn a_change_learned_in_between_moves_the_start_of_the_sum() {
    // Only the 8 -> 2 has been persisted yet: the sum now starts at 2.
    let mut here = ledger(&[stored(0, 4, 8, 2), summed(2, 8, 7, 4, 2)]);
    assert!(here.merge(&ledger(&[stored(2, 8, 2, 3)]), SAME));
    assert_eq!(
        chain(&here),
        [(4, 8, Some(2)), (8, 2, Some(3)), (2, 7, Some(4))]
    );
    // The 2 -> 7 itself is then the same change.
    assert!(!here.merge(&ledger(&[stored(2, 2, 7, 4)]), SAME));
    assert_eq!(here.changes().len(), 3);
}

#[test]
fn a_sum_that_the_changes_in_between_made_all_of_goes() {
    // Counted 8 -> 7 at generation 5; the 8 -> 7 of generation 3 made all
    // of it (generation 4 changed something else).
    let mut here = ledger(&[stored(0, 4, 8, 2), summed(3, 8, 7, 5, 2)]);
    assert!(here.merge(&ledger(&[stored(2, 8, 7, 3)]), SAME));
    assert_eq!(chain(&here), [(4, 8, Some(2)), (8, 7, Some(3))]);
}

#[test]
fn a_sum_still_counts_what_no_replica_persisted() {
    // Of the 8 -> 2 -> 7 -> 9 that made the sum 8 -> 9, only the 8 -> 2
    // reaches this replica: 2 -> 9 is left, which is what the unknown
    // changes add up to.
    let mut here = ledger(&[stored(0, 4, 8, 2), summed(3, 8, 9, 5, 2)]);
    assert!(here.merge(&ledger(&[stored(1, 8, 2, 3)]), SAME));
    assert_eq!(
        chain(&here),
        [(4, 8, Some(2)), (8, 2, Some(3)), (2, 9, Some(5))]
    );
    assert_eq!(here.changes()[2].from_generation(), Some(3));
}

#[test]
fn the_replica_that_saw_the_changes_keeps_them_over_a_persisted_sum() {
    // The other side: its watch saw each change; the restarted replica's
    // ledger object then arrives with its sum. Nothing is added.
    let watched = |c: Change| Change { watched: true, ..c };
    let mut here = ledger(&[
        watched(stored(0, 4, 8, 2)),
        watched(stored(2, 8, 2, 3)),
        watched(stored(2, 2, 7, 4)),
    ]);
    let before = here.clone();
    let object = ledger(&[stored(0, 4, 8, 2), summed(2, 8, 7, 4, 2)]);
    assert!(!here.merge(&object, SAME));
    assert_eq!(here, before);
}

#[test]
fn a_write_replaces_a_stored_sum_with_the_changes() {
    // The ledger object holds the restarted replica's sum; a replica that
    // saw the changes merges what it knows into it before writing: the
    // object must come out as the chain, and the write must happen.
    let mut object = ledger(&[stored(0, 4, 8, 2), summed(2, 8, 7, 4, 2)]);
    let ours = ledger(&[stored(0, 4, 8, 2), stored(2, 8, 2, 3), stored(2, 2, 7, 4)]);
    assert!(object.merge(&ours, SAME));
    assert_eq!(
        chain(&object),
        [(4, 8, Some(2)), (8, 2, Some(3)), (2, 7, Some(4))]
    );
}

#[test]
fn two_changes_of_one_size_and_sure_counts_are_never_linked() {
    // 7 -> 12 at generations 5 and 9, each seen with the count just before:
    // a change back down in between is unknown here, and both count.
    let mut here = ledger(&[stored(0, 7, 12, 5)]);
    assert!(here.merge(&ledger(&[stored(5, 7, 12, 9)]), SAME));
    assert_eq!(chain(&here), [(7, 12, Some(5)), (7, 12, Some(9))]);
}

#[test]
fn a_sum_is_persisted_with_the_generation_its_count_was_known_at() {
    let l = ledger(&[stored(0, 4, 8, 2), summed(2, 8, 7, 4, 2)]);
    let text = l.to_compact();
    assert!(
        text.ends_with(r#","admin",2],[1796663592,8,7,7,"admin",4,2]]"#),
        "{text}"
    );
    let (read, warning) = Ledger::read_persisted(&text, at(10));
    assert_eq!((&read, warning), (&l, None));
    assert_eq!(Ledger::from_compact(&text).unwrap(), l);
    // Nothing lies between 6 and 7: no gap is written.
    let adjacent = summed(3, 7, 5, 7, 6);
    assert_eq!(adjacent.span, None);
}

#[test]
fn a_scale_from_zero_counted_at_start_gives_way_to_the_change_itself() {
    // No ledger object yet: a recent write to 8 at generation 2 counts as
    // 0 -> 8 (a scale-down budget counted from 0 would free everything).
    // The other replica then persists the 4 -> 8 it saw.
    let now = at(3);
    let mut here = Ledger::new();
    let booked = here
        .unexplained(8, Some(2), Some(at(2)), "admin", now, 10)
        .unwrap();
    assert_eq!((booked.from, booked.from_generation()), (0, Some(0)));
    here.record(booked);
    assert!(here.merge(&ledger(&[stored(2, 4, 8, 2)]), SAME));
    assert_eq!(chain(&here), [(4, 8, Some(2))]);
}
