//! Two replicas, a restart and their watches, step by step: the exact
//! interleavings the fault test (`tests/e2e_faults.rs`) found granting a
//! rate rule's budget twice.

use super::{now, persisted};
use crate::{cache::*, engine::Request, policy::keys};

/// The fault test's policy: 4 pods per 10 s either way, at most 12.
fn policy() -> Policy {
    Policy::from_annotations([
        (keys::SCALE_UP, "4 pods/10s"),
        (keys::SCALE_DOWN, "4 pods/10s"),
        (keys::MAX_REPLICAS, "12"),
    ])
    .unwrap()
}

fn at(millis: i64) -> DateTime<Utc> {
    now() + Duration::milliseconds(millis)
}

/// What the workload watch delivers: `replicas` stored at `generation`,
/// written `millis` after [`now`].
fn stored(replicas: u32, generation: i64, millis: i64) -> Update<'static> {
    listed(replicas, generation, Some(at(millis)))
}

/// The first list: `replicas` at `generation`, last written at `written`
/// (long ago when `None`).
fn listed(replicas: u32, generation: i64, written: Option<DateTime<Utc>>) -> Update<'static> {
    Update {
        kind: WorkloadKind::Deployment,
        key: "shop/web",
        uid: Some("uid-1".into()),
        policy: Ok(policy()),
        replicas,
        ready: None,
        history: None,
        written_at: written,
        generation: Some(generation),
        actor: Some("admin"),
        state: None,
    }
}

/// What a review from `current` to `requested` is allowed, decided at
/// `millis` after [`now`].
fn ask(entry: &Entry, current: u32, requested: u32, uid: &str, millis: i64) -> u32 {
    let request = Request {
        current,
        requested,
        actor: "admin",
    };
    let review = ReviewKey { uid, digest: 0 };
    entry
        .decide(&[&policy()], request, review, false, at(millis))
        .0
        .replicas
}

fn chain(entry: &Entry) -> Vec<(u32, u32)> {
    entry
        .ledger()
        .changes()
        .iter()
        .map(|c| (c.from, c.to))
        .collect()
}

/// Seed 15086875662183343741, workload w4, as the replicas logged it
/// (times after 17:13:10). Replica b admitted 4 -> 8 (generation 2) and
/// persisted it; replica a was killed, and while it was down b admitted
/// 8 -> 2 (3) and 2 -> 7 (4). Replica a came back at 12.42: its ledger
/// object held only 4 -> 8 and the list showed 7, so it counted 8 -> 7.
/// At 12.52 b's next write brought 8 -> 2 and 2 -> 7, which a added beside
/// its 8 -> 7; the watch then showed 7 -> 6. At 12.84 a was asked for
/// 6 -> 9 and let it through: "4 -> 8, 8 -> 7, 8 -> 2, 2 -> 7, 7 -> 6"
/// puts the period start at 5, when the workload stood at 4 ten seconds
/// before. The checker saw 6 -> 9 with 4 a period before.
#[test]
fn a_replica_restarted_while_changes_landed_counts_them_once() {
    let start = r#"[[1795428000,4,8,8,"admin",2]]"#;
    let later = r#"[[1795428000,4,8,8,"admin",2],[1795428002,8,2,2,"admin",3],[1795428002,2,7,7,"admin",4]]"#;
    let partial = r#"[[1795428000,4,8,8,"admin",2],[1795428002,8,2,2,"admin",3]]"#;
    // b's writes arrive whole, or one change at a time.
    for writes in [vec![later], vec![partial, later]] {
        let a = Cache::new();
        a.apply_persisted(WorkloadKind::Deployment, "shop/web", persisted(start));
        a.mark_ledgers_synced();
        a.apply(stored(7, 4, 2_000), at(2_420));
        let entry = a.get(WorkloadKind::Deployment, "shop/web").unwrap();
        assert_eq!(chain(&entry), [(4, 8), (8, 7)], "the sum, counted at start");
        for object in &writes {
            a.apply_persisted(WorkloadKind::Deployment, "shop/web", persisted(object));
        }
        a.apply(stored(6, 5, 2_560), at(2_570));
        assert_eq!(
            chain(&entry),
            [(4, 8), (8, 2), (2, 7), (7, 6)],
            "{writes:?}"
        );
        // 4 ten seconds ago: 8 at most.
        assert_eq!(ask(&entry, 6, 9, "6-to-9", 2_840), 8, "{writes:?}");
        // What a persists is that chain too.
        let landed = entry.landed_ledger();
        let persisted_here: Vec<(u32, u32)> =
            landed.changes().iter().map(|c| (c.from, c.to)).collect();
        assert_eq!(persisted_here, [(4, 8), (8, 2), (2, 7), (7, 6)]);
    }
}

/// The same run seen from b, whose watch saw every change: a's ledger
/// object then arrives holding the 8 -> 7 a counted at start, as the run's
/// binary wrote it (without the generation its count was known at) or as
/// it is written now. b must not add it: in another run of the same seed
/// it did, and let 6 -> 12 through with 4 ten seconds before.
#[test]
fn a_sum_persisted_by_a_restarted_replica_adds_nothing_where_the_changes_were_seen() {
    let then = r#"[[1795428000,4,8,8,"admin",2],[1795428002,8,7,7,"unknown",4]]"#;
    let now = r#"[[1795428000,4,8,8,"admin",2],[1795428002,8,7,7,"unknown",4,2]]"#;
    for sum in [then, now] {
        let b = Cache::new();
        b.mark_ledgers_synced();
        b.apply(listed(4, 1, None), at(0));
        for (replicas, generation, millis) in [(8, 2, 738), (2, 3, 2_390), (7, 4, 2_593)] {
            b.apply(stored(replicas, generation, millis), at(millis));
        }
        let entry = b.get(WorkloadKind::Deployment, "shop/web").unwrap();
        b.apply_persisted(WorkloadKind::Deployment, "shop/web", persisted(sum));
        assert_eq!(chain(&entry), [(4, 8), (8, 2), (2, 7)], "{sum}");
        assert_eq!(ask(&entry, 7, 12, "7-to-12", 3_000), 8, "{sum}");
    }
}

/// A review's oldObject shows a change the watch has not delivered; an
/// older change of the same counts (the count went back and forth) is not
/// that change, and must not stand in for it.
#[test]
fn a_count_seen_before_the_watch_is_booked_though_an_older_change_had_those_counts() {
    let b = Cache::new();
    b.mark_ledgers_synced();
    b.apply(listed(8, 1, None), at(0));
    b.apply(stored(4, 2, 1_000), at(1_000));
    b.apply(stored(8, 3, 2_000), at(2_000));
    let entry = b.get(WorkloadKind::Deployment, "shop/web").unwrap();
    // Replica a admits 8 -> 4 again at 3 s; b is asked 4 -> 1 before its
    // watch shows it. 8 -> 4 -> 8 -> 4 leaves 8 ten seconds ago: 4 at least.
    assert_eq!(ask(&entry, 4, 1, "4-to-1", 3_100), 4);
}

/// The book-keeping above must not count twice a change another replica
/// persisted before this replica's watch delivered it.
#[test]
fn a_change_persisted_before_the_watch_delivers_it_is_not_booked_again() {
    let b = Cache::new();
    b.mark_ledgers_synced();
    b.apply(listed(8, 1, None), at(0));
    b.apply(stored(4, 2, 1_000), at(1_000));
    b.apply(stored(8, 3, 2_000), at(2_000));
    let entry = b.get(WorkloadKind::Deployment, "shop/web").unwrap();
    let object = r#"[[1795428001,8,4,4,"admin",2],[1795428002,4,8,8,"admin",3],[1795428003,8,4,4,"admin",4]]"#;
    b.apply_persisted(WorkloadKind::Deployment, "shop/web", persisted(object));
    // 8 -> 4 -> 8 -> 4: 8 ten seconds ago, so 4 -> 0 would be too far.
    assert_eq!(ask(&entry, 4, 0, "4-to-0", 3_100), 4);
    // Booked once: 4 -> 8 is then allowed (8 at the start, 12 at most).
    assert_eq!(ask(&entry, 4, 12, "4-to-12", 3_200), 12);
}
