use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;

use super::super::{Change, Ledger, Reads};

fn t0() -> DateTime<Utc> {
    "2026-12-05T12:00:00Z".parse().unwrap()
}

fn entry(secs: i64, from: u32, to: u32, requested: u32, pending: bool) -> Change {
    Change {
        at: t0() + Duration::seconds(secs),
        from,
        to,
        requested,
        actor: "hpa".into(),
        pending,
        watched: false,
        generation: None,
        span: None,
    }
}

fn wish(secs: i64, at: u32, requested: u32) -> Change {
    entry(secs, at, at, requested, false)
}

#[test]
fn a_clamp_storm_of_one_wish_keeps_two_copies_not_all() {
    let mut ledger = Ledger::new();
    for s in 0..300 {
        ledger.record(wish(s, 10, 40));
    }
    // The newest stands in for nothing until the next one comes, so the
    // one before it is kept too.
    let kept: Vec<i64> = ledger
        .changes()
        .iter()
        .map(|c| (c.at - t0()).num_seconds())
        .collect();
    assert_eq!(kept, [298, 299]);
}

#[test]
fn a_wish_is_kept_while_no_newer_entry_asks_as_little() {
    let mut ledger = Ledger::new();
    ledger.record(wish(0, 10, 12));
    ledger.record(wish(1, 10, 14));
    ledger.record(wish(2, 10, 16));
    // 12 and 14 are the lowest of every window that holds them: scale-up
    // stabilization needs each.
    assert_eq!(ledger.changes().len(), 3);
    ledger.record(wish(3, 10, 11));
    ledger.record(wish(4, 10, 20));
    // Now 11 is below 12 and 14, and 16 and 20 are above them: only the
    // newest (20) stands in for nothing yet, so 12 and 14 go (11 <= x <= 16).
    let asked: Vec<u32> = ledger.changes().iter().map(|c| c.requested).collect();
    assert_eq!(asked, [16, 11, 20]);
}

#[test]
fn changes_are_never_dropped_and_pending_ones_stand_in_for_nothing() {
    let mut ledger = Ledger::new();
    ledger.record(wish(0, 10, 30));
    ledger.record(entry(1, 10, 14, 30, true));
    ledger.record(entry(2, 14, 18, 30, true));
    ledger.record(wish(3, 10, 30));
    // Both changes are pending: they may never land, so the first wish stays.
    assert_eq!(ledger.changes().len(), 4);
    ledger.record(entry(4, 18, 22, 30, false));
    ledger.record(wish(5, 22, 30));
    // A landed change asking 30 now stands for both wishes of 30; the
    // newest wish and every change remain.
    let kept: Vec<(u32, u32)> = ledger.changes().iter().map(|c| (c.from, c.to)).collect();
    assert_eq!(kept, [(10, 14), (14, 18), (18, 22), (22, 22)]);
}

#[test]
fn a_policy_that_stabilizes_only_scaling_down_keeps_only_the_highest() {
    let reads = Reads {
        lowest: false,
        highest: true,
    };
    let mut ledger = Ledger::new();
    // An HPA stepping up one pod at a time, clamped each time.
    for (s, asked) in (11..40).enumerate() {
        ledger.record_for(wish(s as i64, 10, asked), reads);
    }
    let asked: Vec<u32> = ledger.changes().iter().map(|c| c.requested).collect();
    assert_eq!(asked, [38, 39]);
    // Under both, every step is the lowest of some window and is kept.
    let mut both = Ledger::new();
    for (s, asked) in (11..40).enumerate() {
        both.record(wish(s as i64, 10, asked));
    }
    assert_eq!(both.changes().len(), 29);
}

#[test]
fn pruning_gives_back_a_burst_s_capacity() {
    let mut ledger = Ledger::new();
    for s in 0..200 {
        ledger.record(entry(s, 1, 2, 2, false));
    }
    assert!(ledger.changes.capacity() >= 200);
    ledger.prune(t0() + Duration::seconds(196));
    assert_eq!(ledger.changes().len(), 3);
    assert!(
        ledger.changes.capacity() <= 8,
        "{}",
        ledger.changes.capacity()
    );
    ledger.prune(t0() + Duration::seconds(1000));
    assert_eq!(ledger.changes.capacity(), 0);
}

#[test]
fn entries_by_one_actor_share_one_name() {
    let mut ledger = Ledger::new();
    ledger.record(entry(0, 1, 2, 2, false));
    ledger.record(entry(1, 2, 3, 3, false));
    let [a, b] = ledger.changes() else {
        panic!("two entries")
    };
    assert!(std::sync::Arc::ptr_eq(&a.actor, &b.actor));
}

/// One recorded entry: seconds after the previous one, from, to,
/// requested, pending. Half are wishes, and requests are drawn from a few
/// values, so that one often stands in for another.
fn arb_entry() -> impl Strategy<Value = (i64, u32, u32, u32, bool)> {
    (
        0i64..20,
        0u32..8,
        0u32..8,
        any::<bool>(),
        0u32..6,
        any::<bool>(),
    )
        .prop_map(|(dt, from, to, wish, requested, pending)| {
            let to = if wish { from } else { to };
            (dt, from, to, requested, pending && from != to)
        })
}

proptest! {
    /// What stabilization and the rate limits read is the same with and
    /// without dropping: the lowest and highest request of every window
    /// ending now (those the policy reads), and every change, even when pending changes expire or
    /// the last entry is retracted afterwards.
    #[test]
    fn dropping_wishes_changes_no_window(
        run in prop::collection::vec(arb_entry(), 1..120),
        retract_last in any::<bool>(),
        expire in any::<bool>(),
        lowest in any::<bool>(),
        highest in any::<bool>(),
    ) {
        let reads = Reads { lowest, highest };
        let mut ledger = Ledger::new();
        let mut all: Vec<Change> = Vec::new();
        let mut secs = 0;
        for (dt, from, to, requested, pending) in run {
            secs += dt;
            let c = entry(secs, from, to, requested, pending);
            ledger.record_for(c.clone(), reads);
            all.push(c);
        }
        if retract_last {
            let last = all.pop().unwrap();
            ledger.retract(&last);
        }
        if expire {
            ledger.expire_pending(t0() + Duration::seconds(secs));
            all.retain(|c| !c.pending);
        }
        let now = t0() + Duration::seconds(secs);
        for back in 0..=secs + 1 {
            let cutoff = now - Duration::seconds(back);
            let want: Vec<u32> = all.iter().filter(|c| c.at > cutoff).map(|c| c.requested).collect();
            let got: Vec<u32> = ledger.since(cutoff).iter().map(|c| c.requested).collect();
            if lowest {
                prop_assert_eq!(want.iter().min(), got.iter().min(), "lowest after {}", cutoff);
            }
            if highest {
                prop_assert_eq!(want.iter().max(), got.iter().max(), "highest after {}", cutoff);
            }
        }
        let changes = |v: &[Change]| -> Vec<(DateTime<Utc>, u32, u32, bool)> {
            v.iter().filter(|c| c.from != c.to).map(|c| (c.at, c.from, c.to, c.pending)).collect()
        };
        prop_assert_eq!(changes(&all), changes(ledger.changes()));
    }
}
