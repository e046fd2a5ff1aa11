use super::*;
use crate::{engine::Request, policy::keys};

fn now() -> DateTime<Utc> {
    "2026-11-23T10:00:00Z".parse().unwrap()
}

fn policy() -> Policy {
    Policy::from_annotations([(keys::SCALE_UP, "4 pods/60s"), (keys::MAX_REPLICAS, "50")]).unwrap()
}

fn update<'a>(
    key: &'a str,
    replicas: u32,
    history: Option<&'a str>,
    actor: Option<&'a str>,
) -> Update<'a> {
    Update {
        kind: WorkloadKind::Deployment,
        key,
        uid: Some("uid-1".into()),
        policy: Ok(policy()),
        replicas,
        ready: None,
        history,
        written_at: None,
        generation: None,
        actor,
        state: None,
    }
}

fn ask(
    entry: &Entry,
    current: u32,
    requested: u32,
    uid: &str,
    dry_run: bool,
    at: DateTime<Utc>,
) -> u32 {
    let request = Request {
        current,
        requested,
        actor: "alice",
    };
    entry
        .decide(&[&policy()], request, review(uid), dry_run, at)
        .0
        .replicas
}

/// A review key whose digest is the uid's: one body per uid.
fn review(uid: &str) -> ReviewKey<'_> {
    ReviewKey {
        uid,
        digest: uid.len() as u64,
    }
}

#[test]
fn admitted_changes_spend_the_budget_and_dry_runs_do_not() {
    let cache = Cache::new();
    cache.apply(update("shop/web", 10, None, None), now());
    let entry = cache.get(WorkloadKind::Deployment, "shop/web").unwrap();
    assert_eq!(ask(&entry, 10, 40, "a", true, now()), 14);
    assert!(entry.ledger().changes().is_empty(), "dry run left a trace");
    assert!(!entry.take_dirty());
    assert_eq!(ask(&entry, 10, 40, "b", false, now()), 14);
    assert!(
        !entry.take_dirty(),
        "a change the watch has not shown stored is not persisted"
    );
    assert_eq!(
        ask(&entry, 14, 40, "c", false, now() + Duration::seconds(5)),
        14
    );
}

#[test]
fn a_resent_review_gets_the_same_answer_without_spending_twice() {
    let cache = Cache::new();
    let entry = cache.get_or_insert(WorkloadKind::Deployment, "shop/web", &policy(), 10, now());
    assert_eq!(ask(&entry, 10, 40, "same", false, now()), 14);
    assert_eq!(ask(&entry, 10, 40, "same", false, now()), 14);
    assert_eq!(entry.ledger().changes().len(), 1);
}

/// The apiserver re-invokes a mutating webhook (same uid, another body)
/// when a later webhook changed the object: the new decision replaces what
/// that uid recorded.
#[test]
fn the_same_uid_with_another_body_replaces_its_change() {
    let cache = Cache::new();
    cache.apply(update("shop/web", 10, None, None), now());
    let entry = cache.get(WorkloadKind::Deployment, "shop/web").unwrap();
    let request = |requested| Request {
        current: 10,
        requested,
        actor: "alice",
    };
    let first = ReviewKey {
        uid: "u",
        digest: 1,
    };
    let (d, repeat) = entry.decide(&[&policy()], request(12), first, false, now());
    assert_eq!((d.replicas, repeat), (12, false));
    let (_, repeat) = entry.decide(&[&policy()], request(12), first, false, now());
    assert!(repeat, "the same review again is a repeat");
    let again = ReviewKey {
        uid: "u",
        digest: 2,
    };
    let (d, repeat) = entry.decide(&[&policy()], request(13), again, false, now());
    assert_eq!((d.replicas, repeat), (13, false));
    let ledger = entry.ledger();
    assert_eq!(ledger.changes().len(), 1, "{ledger:?}");
    assert_eq!(ledger.changes()[0].to, 13);
}

#[test]
fn watch_records_other_actors_but_not_our_own_change_twice() {
    let cache = Cache::new();
    cache.apply(update("shop/web", 10, None, None), now());
    let entry = cache.get(WorkloadKind::Deployment, "shop/web").unwrap();
    ask(&entry, 10, 40, "a", false, now());
    // The apiserver stores our 14; the watch reports it a moment later.
    cache.apply(
        update("shop/web", 14, None, Some("kubectl")),
        now() + Duration::seconds(1),
    );
    assert_eq!(entry.ledger().changes().len(), 1);
    assert!(!entry.ledger().has_pending(), "the watch confirmed it");
    assert!(entry.take_dirty(), "a confirmed change is persisted");
    // Someone else scales 14 -> 16 behind our back (e.g. before a webhook restart).
    cache.apply(
        update("shop/web", 16, None, Some("argocd")),
        now() + Duration::seconds(2),
    );
    let ledger = entry.ledger();
    let last = ledger.changes().last().unwrap();
    assert_eq!((last.from, last.to, &*last.actor), (14, 16, "argocd"));
    // Budget: 10 at period start, so nothing is left.
    assert_eq!(
        ask(&entry, 16, 40, "b", false, now() + Duration::seconds(3)),
        16
    );
}

#[test]
fn persisted_history_is_merged_once() {
    let cache = Cache::new();
    let history = r#"[[1795425600,10,14,40,"alice"]]"#; // 2026-11-23T09:20:00Z
    let later = "2026-11-23T09:20:30Z".parse().unwrap();
    cache.apply(update("shop/web", 14, Some(history), None), later);
    let entry = cache.get(WorkloadKind::Deployment, "shop/web").unwrap();
    assert_eq!(entry.ledger().changes().len(), 1);
    cache.apply(update("shop/web", 14, Some(history), None), later);
    assert_eq!(entry.ledger().changes().len(), 1);
    // Restarted replica: the persisted change still limits the next step.
    let request = Request {
        current: 14,
        requested: 40,
        actor: "bob",
    };
    let (d, _) = entry.decide(&[&policy()], request, review("x"), false, later);
    assert_eq!(d.replicas, 14);
}

#[test]
fn sync_and_removal() {
    let cache = Cache::new();
    assert!(!cache.is_synced());
    cache.mark_synced(WorkloadKind::Deployment);
    assert!(!cache.is_synced());
    cache.mark_synced(WorkloadKind::StatefulSet);
    assert!(!cache.is_synced(), "the ledger objects are not listed yet");
    cache.mark_ledgers_synced();
    assert!(cache.is_synced());
    cache.apply(update("shop/web", 3, None, None), now());
    assert_eq!(cache.len(WorkloadKind::Deployment), 1);
    cache.remove(WorkloadKind::Deployment, "shop/web");
    assert!(cache.get(WorkloadKind::Deployment, "shop/web").is_none());
    assert_eq!(key("shop", "web"), "shop/web");
}

#[test]
fn a_change_that_never_landed_does_not_spend_the_budget() {
    let cache = Cache::new();
    cache.apply(update("shop/web", 2, None, None), now());
    let entry = cache.get(WorkloadKind::Deployment, "shop/web").unwrap();
    // The apiserver admits 2 -> 4, hits a storage conflict and asks again
    // (new uid, same current): only one change may count.
    assert_eq!(ask(&entry, 2, 4, "first", false, now()), 4);
    assert_eq!(ask(&entry, 2, 4, "retry", false, now()), 4);
    assert_eq!(entry.ledger().changes().len(), 1);
    cache.apply(
        update("shop/web", 4, None, Some("kubectl")),
        now() + Duration::seconds(1),
    );
    // Landed and confirmed: the next step from 4 keeps it, leaving 2 of budget.
    assert_eq!(
        ask(&entry, 4, 40, "next", false, now() + Duration::seconds(2)),
        6
    );
    assert_eq!(entry.ledger().changes().len(), 2);
}

#[test]
fn an_unrelated_update_does_not_retract_a_change_in_flight() {
    let cache = Cache::new();
    cache.apply(update("shop/web", 4, None, None), now());
    let entry = cache.get(WorkloadKind::Deployment, "shop/web").unwrap();
    // bob's 4 -> 6 is admitted; before it is stored, the leader's history
    // write (an update that keeps 4 replicas) passes through admission.
    assert_eq!(ask(&entry, 4, 6, "bob", false, now()), 6);
    let keep = Request {
        current: 4,
        requested: 4,
        actor: "scale-governor",
    };
    entry.decide(&[&policy()], keep, review("history"), false, now());
    assert_eq!(
        entry.ledger().changes().len(),
        1,
        "bob's change must still count"
    );
}

#[test]
fn what_the_watch_never_shows_stored_is_forgotten() {
    let timeout = Duration::seconds(30);
    let cache = Cache::new();
    // A CREATE's entry that the apiserver then refused.
    let created = cache.get_or_insert(WorkloadKind::Deployment, "shop/new", &policy(), 3, now());
    assert!(!created.is_stored());
    // A stored workload with a change admitted here that never landed.
    cache.apply(update("shop/web", 10, None, None), now());
    let web = cache.get(WorkloadKind::Deployment, "shop/web").unwrap();
    assert_eq!(ask(&web, 10, 40, "a", false, now()), 14);
    assert_eq!(cache.sweep(now() + Duration::seconds(29), timeout), (0, 0));
    assert_eq!(cache.sweep(now() + Duration::seconds(30), timeout), (1, 1));
    assert!(cache.get(WorkloadKind::Deployment, "shop/new").is_none());
    assert!(web.ledger().changes().is_empty());
    // The budget it held is back.
    assert_eq!(
        ask(&web, 10, 40, "b", false, now() + Duration::seconds(31)),
        14
    );
    // An entry the watch delivers in time stays.
    let soon = cache.get_or_insert(WorkloadKind::Deployment, "shop/soon", &policy(), 3, now());
    cache.apply(
        update("shop/soon", 3, None, None),
        now() + Duration::seconds(1),
    );
    assert!(soon.is_stored());
    cache.sweep(now() + Duration::seconds(60), timeout);
    assert!(cache.get(WorkloadKind::Deployment, "shop/soon").is_some());
}

fn persisted(ledger: &str) -> Persisted {
    Persisted {
        name: "ledger".into(),
        resource_version: Some("1".into()),
        uid: Some("uid-1".into()),
        ledger: Ledger::read_persisted(ledger, now()).0,
        seasonal: None,
        risk: None,
    }
}

#[test]
fn another_replicas_persisted_copy_confirms_a_pending_change() {
    // The other replica persisted 10 -> 14 (stamped by its own clock)
    // before, or after, this replica's watch showed it land: one change
    // either way, never two.
    let history = r#"[[1795428002,10,14,14,"kubectl"]]"#; // 10:00:02Z
    for persisted_first in [true, false] {
        let cache = Cache::new();
        cache.apply(update("shop/web", 10, None, None), now());
        let entry = cache.get(WorkloadKind::Deployment, "shop/web").unwrap();
        assert_eq!(ask(&entry, 10, 40, "a", false, now()), 14);
        let landed = || {
            cache.apply(
                update("shop/web", 14, None, Some("kubectl")),
                now() + Duration::seconds(3),
            )
        };
        let merge =
            || cache.apply_persisted(WorkloadKind::Deployment, "shop/web", persisted(history));
        if persisted_first {
            merge();
            landed();
        } else {
            landed();
            merge();
        }
        let ledger = entry.ledger();
        assert_eq!(ledger.changes().len(), 1, "{persisted_first}: {ledger:?}");
        assert!(!ledger.has_pending());
    }
}

#[test]
fn a_change_only_another_replica_admitted_counts_once() {
    let cache = Cache::new();
    cache.apply(update("shop/web", 10, None, None), now());
    let entry = cache.get(WorkloadKind::Deployment, "shop/web").unwrap();
    // The other replica's ledger object arrives before the watch event.
    let history = r#"[[1795428001,10,14,14,"hpa"]]"#;
    cache.apply_persisted(WorkloadKind::Deployment, "shop/web", persisted(history));
    cache.apply(
        update("shop/web", 14, None, Some("hpa")),
        now() + Duration::seconds(2),
    );
    assert_eq!(entry.ledger().changes().len(), 1);
    // Back and up again: a second 10 -> 14 is a change of its own.
    cache.apply(
        update("shop/web", 10, None, None),
        now() + Duration::seconds(4),
    );
    cache.apply(
        update("shop/web", 14, None, None),
        now() + Duration::seconds(5),
    );
    assert_eq!(entry.ledger().changes().len(), 3);
}

#[test]
fn a_ledger_object_of_a_recreated_workload_is_not_used() {
    let cache = Cache::new();
    let history = r#"[[1795427990,6,10,10,"hpa"]]"#;
    let mut old = persisted(history);
    old.uid = Some("uid-0".into());
    cache.apply_persisted(WorkloadKind::Deployment, "shop/web", old);
    cache.apply(update("shop/web", 10, None, None), now());
    let entry = cache.get(WorkloadKind::Deployment, "shop/web").unwrap();
    assert!(entry.ledger().changes().is_empty());
}

#[test]
fn a_restart_counts_a_change_its_ledger_object_lacks() {
    // 10 -> 14 landed, but no replica persisted it before they all died.
    let cache = Cache::new();
    let history = r#"[[1795427970,6,10,10,"hpa"]]"#; // 09:59:30Z
    cache.apply_persisted(WorkloadKind::Deployment, "shop/web", persisted(history));
    let mut seen = update("shop/web", 14, None, Some("kubectl"));
    seen.written_at = Some(now() - Duration::seconds(5));
    cache.apply(seen, now());
    let entry = cache.get(WorkloadKind::Deployment, "shop/web").unwrap();
    let tail: Vec<(u32, u32)> = entry
        .ledger()
        .changes()
        .iter()
        .map(|c| (c.from, c.to))
        .collect();
    assert_eq!(tail, [(6, 10), (10, 14)]);
    // 4 pods/60s: 6 -> 14 spent it all.
    assert_eq!(ask(&entry, 14, 20, "a", false, now()), 14);
}

#[test]
fn a_count_seen_in_old_object_before_the_watch_is_booked() {
    let cache = Cache::new();
    cache.apply(update("shop/web", 10, None, None), now());
    let entry = cache.get(WorkloadKind::Deployment, "shop/web").unwrap();
    // The other replica admitted 10 -> 14 a moment ago; this one's watch
    // has not delivered it, but the review's oldObject holds 14.
    assert_eq!(ask(&entry, 14, 40, "b", false, now()), 14, "no budget left");
    // When the watch delivers it, it is the change already booked.
    cache.apply(
        update("shop/web", 14, None, None),
        now() + Duration::seconds(1),
    );
    let landed = entry.ledger().landed();
    assert_eq!(landed.changes().len(), 1, "{landed:?}");
}

#[test]
fn a_quiet_entry_wakes_when_the_watch_stores_anything_new() {
    let cache = Cache::new();
    cache.apply(update("shop/web", 10, None, None), now());
    let entry = cache.get(WorkloadKind::Deployment, "shop/web").unwrap();
    assert_eq!(entry.quiet(now()), None, "nobody said so yet");
    let (generation, _) = entry.observed_at();
    let until = now() + Duration::seconds(60);
    let epoch = cache.epoch();
    entry.stay_quiet(generation, until);
    assert_eq!(entry.quiet(now() + Duration::seconds(59)), Some(until));
    assert_eq!(entry.quiet(until), None, "its time is up");

    // Decided from an observation the watch has since replaced.
    cache.apply(update("shop/web", 11, None, None), now());
    assert_ne!(cache.epoch(), epoch, "the whole cache says so too");
    assert_eq!(entry.quiet(now()), None);
    entry.stay_quiet(generation, until);
    assert_eq!(
        entry.quiet(now()),
        None,
        "a stale generation never quiets it"
    );
    let epoch = cache.epoch();
    cache.remove(WorkloadKind::Deployment, "shop/web");
    assert_ne!(cache.epoch(), epoch, "a removal changes the epoch");
}

#[test]
fn the_periodic_passes_skip_a_cache_where_nothing_changed() {
    let cache = Cache::new();
    cache.apply(update("shop/web", 10, None, None), now());
    let _ = cache.take_any_dirty();
    assert!(
        !cache.take_any_dirty(),
        "a stored workload with nothing new"
    );
    // A change admitted here waits for the watch: the sweep must look.
    let entry = cache.get(WorkloadKind::Deployment, "shop/web").unwrap();
    assert_eq!(ask(&entry, 10, 12, "uid-1", false, now()), 12);
    assert_eq!(cache.sweep(now(), Duration::seconds(30)), (0, 0));
    assert_eq!(
        cache.sweep(now() + Duration::seconds(30), Duration::seconds(30)),
        (0, 1),
        "the pending change is still looked at on the next pass"
    );
    // Another actor's change, seen by the watch: the history pass must look.
    cache.apply(update("shop/web", 13, None, None), now());
    assert!(cache.take_any_dirty());
}

#[test]
fn a_persisted_change_like_one_seen_here_counts_apart_by_generation() {
    // Seen here: 7 -> 12 at generation 9. The other replica's ledger object
    // then arrives with the 7 -> 12 of generation 5, five seconds earlier,
    // which this replica (restarted since) never saw: two changes, and the
    // persist pass must find its own one missing from the object.
    let cache = Cache::new();
    cache.apply(update("shop/web", 7, None, None), now());
    let mut seen = update("shop/web", 12, None, Some("hpa"));
    seen.generation = Some(9);
    cache.apply(seen, now() + Duration::seconds(5));
    let other = r#"[[1795428000,7,12,12,"hpa",5]]"#; // 10:00:00Z
    cache.apply_persisted(WorkloadKind::Deployment, "shop/web", persisted(other));
    let entry = cache.get(WorkloadKind::Deployment, "shop/web").unwrap();
    let generations: Vec<Option<i64>> = entry
        .ledger()
        .changes()
        .iter()
        .map(|c| c.generation)
        .collect();
    assert_eq!(generations, [Some(5), Some(9)]);
}

#[test]
fn a_quiet_workload_gives_back_its_ledger_and_last_answer() {
    let cache = Cache::new();
    cache.apply(update("shop/web", 10, None, None), now());
    let entry = cache.get(WorkloadKind::Deployment, "shop/web").unwrap();
    assert_eq!(ask(&entry, 10, 40, "a", false, now()), 14);
    cache.apply(
        update("shop/web", 14, None, None),
        now() + Duration::seconds(1),
    );
    let resend = |at| {
        let request = Request {
            current: 10,
            requested: 40,
            actor: "alice",
        };
        entry.decide(&[&policy()], request, review("a"), true, at).1
    };
    let soon = now() + Duration::seconds(30);
    cache.trim(soon);
    assert_eq!(
        entry.ledger().changes().len(),
        1,
        "inside the 60 s lookback"
    );
    assert!(
        resend(soon),
        "a resend within a minute gets the same answer"
    );
    let quiet = now() + Duration::seconds(600);
    cache.trim(quiet);
    assert!(entry.ledger().changes().is_empty());
    assert!(!resend(quiet), "the last answer was forgotten");
}

#[test]
fn the_copy_of_a_ledger_object_is_pruned_with_its_workload() {
    let cache = Cache::new();
    cache.apply(update("shop/web", 10, None, None), now());
    cache.apply_persisted(
        WorkloadKind::Deployment,
        "shop/web",
        persisted(r#"[[1795428000,8,10,10,"hpa"]]"#),
    );
    let held = |cache: &Cache| {
        cache
            .persisted(WorkloadKind::Deployment, "shop/web")
            .unwrap()
            .ledger
            .changes()
            .len()
    };
    // 2026-11-23T10:00:00Z is 1795428000: inside the 60 s lookback.
    cache.trim(now() + Duration::seconds(30));
    assert_eq!(held(&cache), 1);
    cache.trim(now() + Duration::seconds(120));
    assert_eq!(held(&cache), 0);
    let kept = cache
        .persisted(WorkloadKind::Deployment, "shop/web")
        .unwrap();
    assert_eq!(
        kept.resource_version.as_deref(),
        Some("1"),
        "the rest is kept"
    );
}

#[test]
fn wishes_no_stabilization_reads_are_not_kept_for_the_lookback() {
    // The policy has no stabilization: a clamped wish is never read again,
    // so a storm of them leaves the change and the last two wishes.
    let cache = Cache::new();
    cache.apply(update("shop/web", 10, None, None), now());
    let entry = cache.get(WorkloadKind::Deployment, "shop/web").unwrap();
    assert_eq!(ask(&entry, 10, 40, "first", false, now()), 14);
    for i in 0..20 {
        let at = now() + Duration::seconds(1 + i);
        let uid = format!("storm-{i}");
        assert_eq!(ask(&entry, 14, 40, &uid, false, at), 14);
    }
    let ledger = entry.ledger();
    let kept: Vec<(u32, u32)> = ledger.changes().iter().map(|c| (c.from, c.to)).collect();
    assert_eq!(kept, [(10, 14), (14, 14), (14, 14)]);
}

mod interleavings;
