//! The in-memory index of governed workloads that the webhook reads on every
//! request: a lock-free map from `namespace/name` to the workload's parsed
//! policy and its ledger. Watches feed it ([`watch`]); nothing on the request
//! path talks to the apiserver.

pub mod watch;

use std::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicBool, Ordering},
};

use arc_swap::ArcSwap;
use chrono::{DateTime, Duration, Utc};

use crate::{
    engine::{self, Change, Decision, Ledger, Request},
    policy::{Policy, PolicyError},
    workload::WorkloadKind,
};

/// How long after admitting a change the same change seen on the watch is
/// taken to be that change rather than a new one.
const SAME_CHANGE_SECONDS: i64 = 30;

/// What the watch last saw of a workload.
#[derive(Debug)]
pub struct Observed {
    /// `metadata.uid`, for Events.
    pub uid: Option<String>,
    /// The parsed policy, or why it does not parse; shared, so a review
    /// borrows it instead of copying it.
    pub policy: Result<Arc<Policy>, PolicyError>,
    /// `spec.replicas`.
    pub replicas: u32,
}

/// One governed workload.
#[derive(Debug)]
pub struct Entry {
    observed: ArcSwap<Observed>,
    ledger: Mutex<LedgerState>,
    dirty: AtomicBool,
}

#[derive(Debug, Default)]
struct LedgerState {
    ledger: Ledger,
    /// The last admission decided here, so a re-sent review (same uid) gets
    /// the same answer instead of spending the budget twice.
    last: Option<(String, Decision)>,
    /// The last change admitted here that the watch has not confirmed yet.
    pending: Option<Change>,
}

impl Entry {
    fn new(observed: Observed, ledger: Ledger) -> Entry {
        Entry {
            observed: ArcSwap::from_pointee(observed),
            ledger: Mutex::new(LedgerState {
                ledger,
                last: None,
                pending: None,
            }),
            dirty: AtomicBool::new(false),
        }
    }

    /// What the watch last saw; a lock-free read.
    pub fn observed(&self) -> Arc<Observed> {
        self.observed.load_full()
    }

    fn state(&self) -> MutexGuard<'_, LedgerState> {
        // A panic while holding the lock cannot leave a ledger half-written
        // (every mutation is a single push), so a poisoned lock is still usable.
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides a request and, unless it is a dry run, records it, atomically
    /// per workload, so two concurrent requests cannot both spend one budget.
    pub fn decide(
        &self,
        policy: &Policy,
        request: Request<'_>,
        uid: &str,
        dry_run: bool,
        now: DateTime<Utc>,
    ) -> Decision {
        let mut state = self.state();
        if let Some((last_uid, decision)) = &state.last
            && last_uid == uid
        {
            return decision.clone();
        }
        if !dry_run {
            retract_unlanded(&mut state, &request);
        }
        let decision = engine::decide(policy, &state.ledger, request, now);
        if !dry_run {
            if let Some(change) = decision.change(request.actor, now) {
                if change.to != change.from {
                    state.pending = Some(change.clone());
                }
                record(&mut state.ledger, policy, change, now);
                self.dirty.store(true, Ordering::Release);
            }
            state.last = Some((uid.to_owned(), decision.clone()));
        }
        decision
    }

    /// A copy of the ledger, e.g. to persist it.
    pub fn ledger(&self) -> Ledger {
        self.state().ledger.clone()
    }

    /// Asks for the ledger to be persisted again (after a failed write).
    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// Whether the ledger changed since [`Entry::take_dirty`] was last called.
    pub fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::AcqRel)
    }
}

/// The apiserver retries an update after a storage conflict and calls
/// admission again, with a new uid but the same actor, the same starting
/// count and the same ask. The first admission's change was never stored,
/// so it leaves the ledger instead of spending the budget twice.
///
/// Only an identical ask counts as a retry: any other update that starts
/// from the same count (a history write, a controller's annotation, another
/// actor's scale) may arrive while the change is still in flight, and the
/// change must keep counting.
fn retract_unlanded(state: &mut LedgerState, request: &Request<'_>) {
    let retried = state.pending.as_ref().is_some_and(|p| {
        p.from == request.current && p.requested == request.requested && p.actor == request.actor
    });
    if retried && let Some(pending) = state.pending.take() {
        state.ledger.retract(&pending);
    }
}

fn record(ledger: &mut Ledger, policy: &Policy, change: Change, now: DateTime<Utc>) {
    ledger.record(change);
    let keep = i64::from(policy.lookback_seconds()).max(SAME_CHANGE_SECONDS);
    ledger.prune(now - Duration::seconds(keep));
}

/// A workload as the watch reports it.
#[derive(Debug)]
pub struct Update<'a> {
    /// Which kind.
    pub kind: WorkloadKind,
    /// `namespace/name`.
    pub key: &'a str,
    /// `metadata.uid`.
    pub uid: Option<String>,
    /// Parsed policy.
    pub policy: Result<Policy, PolicyError>,
    /// `spec.replicas`.
    pub replicas: u32,
    /// The persisted `history` annotation, if any.
    pub history: Option<&'a str>,
    /// The field manager that last wrote `spec.replicas`, if known.
    pub actor: Option<&'a str>,
}

/// Governed workloads by kind and `namespace/name`.
#[derive(Debug, Default)]
pub struct Cache {
    deployments: papaya::HashMap<String, Arc<Entry>>,
    statefulsets: papaya::HashMap<String, Arc<Entry>>,
    deployments_synced: AtomicBool,
    statefulsets_synced: AtomicBool,
}

/// `namespace/name`, the cache key.
pub fn key(namespace: &str, name: &str) -> String {
    let mut key = String::with_capacity(namespace.len() + name.len() + 1);
    key.push_str(namespace);
    key.push('/');
    key.push_str(name);
    key
}

impl Cache {
    /// An empty cache, not yet synced.
    pub fn new() -> Cache {
        Cache::default()
    }

    fn map(&self, kind: WorkloadKind) -> &papaya::HashMap<String, Arc<Entry>> {
        match kind {
            WorkloadKind::Deployment => &self.deployments,
            WorkloadKind::StatefulSet => &self.statefulsets,
        }
    }

    /// The governed workload, if the watch has seen one.
    pub fn get(&self, kind: WorkloadKind, key: &str) -> Option<Arc<Entry>> {
        self.map(kind).pin().get(key).cloned()
    }

    /// The entry for a workload the admission path is about to govern, created
    /// empty if the watch has not delivered it yet (a CREATE, or a race).
    pub fn get_or_insert(
        &self,
        kind: WorkloadKind,
        key: &str,
        policy: &Policy,
        replicas: u32,
    ) -> Arc<Entry> {
        let map = self.map(kind).pin();
        if let Some(entry) = map.get(key) {
            return entry.clone();
        }
        let fresh = Arc::new(Entry::new(
            Observed {
                uid: None,
                policy: Ok(Arc::new(policy.clone())),
                replicas,
            },
            Ledger::new(),
        ));
        map.get_or_insert(key.to_owned(), fresh).clone()
    }

    /// Applies what the watch saw: a changed `spec.replicas` becomes a ledger
    /// entry (unless this replica admitted that very change moments ago), and
    /// entries persisted in `history` by any replica are merged in.
    pub fn apply(&self, update: Update<'_>, now: DateTime<Utc>) {
        let persisted = match update.history.map(Ledger::from_annotation) {
            Some(Ok(ledger)) => ledger,
            Some(Err(err)) => {
                // Our own data, edited by hand or truncated: start empty rather
                // than refuse to govern.
                tracing::warn!(key = update.key, error = %err, "ignoring the history annotation");
                Ledger::default()
            }
            None => Ledger::default(),
        };
        let observed = Observed {
            uid: update.uid,
            policy: update.policy.map(Arc::new),
            replicas: update.replicas,
        };
        let map = self.map(update.kind).pin();
        let Some(entry) = map.get(update.key).cloned() else {
            let mut persisted = persisted;
            if let Ok(policy) = &observed.policy {
                // A restart finds the whole persisted history; keep only what
                // a rule can still see.
                let keep = i64::from(policy.lookback_seconds()).max(SAME_CHANGE_SECONDS);
                persisted.prune(now - Duration::seconds(keep));
            }
            map.insert(
                update.key.to_owned(),
                Arc::new(Entry::new(observed, persisted)),
            );
            return;
        };
        let previous = entry.observed.load().replicas;
        let mut state = entry.state();
        if state
            .pending
            .as_ref()
            .is_some_and(|p| p.from == previous && p.to == update.replicas)
        {
            state.pending = None;
        }
        let mut changed = merge(&mut state.ledger, &persisted);
        if previous != update.replicas
            && !admitted_here(&state.ledger, previous, update.replicas, now)
        {
            state.ledger.record(Change {
                at: now,
                from: previous,
                to: update.replicas,
                requested: update.replicas,
                actor: update.actor.unwrap_or("unknown").to_owned(),
            });
            changed = true;
        }
        if let Ok(policy) = &observed.policy {
            let keep = i64::from(policy.lookback_seconds()).max(SAME_CHANGE_SECONDS);
            state.ledger.prune(now - Duration::seconds(keep));
        }
        drop(state);
        if changed {
            entry.dirty.store(true, Ordering::Release);
        }
        entry.observed.store(Arc::new(observed));
    }

    /// Forgets a deleted (or no longer governed) workload.
    pub fn remove(&self, kind: WorkloadKind, key: &str) {
        self.map(kind).pin().remove(key);
    }

    /// Marks a kind's initial list as complete.
    pub fn mark_synced(&self, kind: WorkloadKind) {
        match kind {
            WorkloadKind::Deployment => self.deployments_synced.store(true, Ordering::Release),
            WorkloadKind::StatefulSet => self.statefulsets_synced.store(true, Ordering::Release),
        }
    }

    /// Whether every kind has completed its initial list.
    pub fn is_synced(&self) -> bool {
        self.deployments_synced.load(Ordering::Acquire)
            && self.statefulsets_synced.load(Ordering::Acquire)
    }

    /// Number of governed workloads of a kind.
    pub fn len(&self, kind: WorkloadKind) -> usize {
        self.map(kind).len()
    }

    /// Whether nothing is governed.
    pub fn is_empty(&self) -> bool {
        self.deployments.is_empty() && self.statefulsets.is_empty()
    }

    /// Every entry of a kind with its key, for the persister.
    pub fn entries(&self, kind: WorkloadKind) -> Vec<(String, Arc<Entry>)> {
        self.map(kind)
            .pin()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

fn admitted_here(ledger: &Ledger, from: u32, to: u32, now: DateTime<Utc>) -> bool {
    let since = now - Duration::seconds(SAME_CHANGE_SECONDS);
    ledger
        .since(since)
        .iter()
        .any(|c| c.from == from && c.to == to)
}

/// Adds persisted entries this replica does not hold yet. Entries are the
/// same when their second, from and to agree (the annotation keeps seconds).
fn merge(ledger: &mut Ledger, persisted: &Ledger) -> bool {
    let mut changed = false;
    for entry in persisted.changes() {
        let known = ledger.changes().iter().any(|c| {
            c.at.timestamp() == entry.at.timestamp() && c.from == entry.from && c.to == entry.to
        });
        if !known {
            ledger.record(entry.clone());
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests;
