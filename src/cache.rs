//! The in-memory index of governed workloads that the webhook reads on every
//! request: a lock-free map from `namespace/name` to the workload's parsed
//! policy and its ledger. Watches feed it ([`watch`]); nothing on the request
//! path talks to the apiserver.

pub mod hpa;
pub mod pods;
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
/// taken to be that change rather than a new one, and how long an admitted
/// change (or a workload admitted by a CREATE) waits for the watch to show
/// it stored before it is taken never to have happened.
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
    /// The field manager that last wrote `spec.replicas`, from
    /// `managedFields`, e.g. `scale-governor (scale)`.
    pub replicas_writer: Option<String>,
    /// The governor's own `state` annotation, as stored.
    pub state: Option<String>,
}

/// One governed workload.
#[derive(Debug)]
pub struct Entry {
    observed: ArcSwap<Observed>,
    ledger: Mutex<LedgerState>,
    dirty: AtomicBool,
    /// Whether the watch has shown this workload stored. An entry made by
    /// the admission of a CREATE is not, until the watch delivers it: the
    /// apiserver may still refuse the create.
    stored: AtomicBool,
    /// When the entry was made, to expire one the watch never confirms.
    since: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct LedgerState {
    /// Stored changes, plus this replica's admitted changes still pending
    /// confirmation by the watch ([`Change::pending`]).
    ledger: Ledger,
    /// The last admission decided here, so a re-sent review (same uid and
    /// body) gets the same answer instead of spending the budget twice.
    last: Option<Last>,
}

#[derive(Debug)]
struct Last {
    uid: String,
    digest: u64,
    decision: Decision,
    /// What it recorded, to replace when the same uid comes back changed.
    change: Option<Change>,
}

/// Which review a decision answers: its uid, and a digest of its body and
/// endpoint. The apiserver gives every round trip its own uid and resends
/// one only with the same body, so a uid with another body is not a repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewKey<'a> {
    /// `request.uid`.
    pub uid: &'a str,
    /// A hash of the endpoint and the review body.
    pub digest: u64,
}

impl Entry {
    fn new(observed: Observed, ledger: Ledger, stored: bool, since: DateTime<Utc>) -> Entry {
        Entry {
            observed: ArcSwap::from_pointee(observed),
            ledger: Mutex::new(LedgerState { ledger, last: None }),
            dirty: AtomicBool::new(false),
            stored: AtomicBool::new(stored),
            since,
        }
    }

    /// Whether the watch has shown this workload stored.
    pub fn is_stored(&self) -> bool {
        self.stored.load(Ordering::Acquire)
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

    /// Decides a request against `policies` (see [`engine::decide_all`])
    /// and, unless it is a dry run, records it, atomically per workload, so
    /// two concurrent requests cannot both spend one budget. The second
    /// value says whether this is a repeat: the same review (uid and body)
    /// answered again, which gets the same decision and records nothing.
    pub fn decide(
        &self,
        policies: &[&Policy],
        request: Request<'_>,
        review: ReviewKey<'_>,
        dry_run: bool,
        now: DateTime<Utc>,
    ) -> (Decision, bool) {
        let mut state = self.state();
        if let Some(last) = &state.last
            && last.uid == review.uid
        {
            if last.digest == review.digest {
                return (last.decision.clone(), true);
            }
            // The same uid with another body: not a retry, whatever sent
            // it. It replaces what that uid recorded, rather than adding to
            // it. (A re-invocation by the apiserver comes with a new uid;
            // `retract_unlanded` handles that.)
            if let Some(change) = state.last.take().and_then(|l| l.change) {
                state.ledger.retract(&change);
            }
        }
        if !dry_run {
            retract_unlanded(&mut state, &request);
        }
        let decision = engine::decide_all(policies, &state.ledger, request, now);
        if !dry_run {
            let mut recorded = None;
            if let Some(mut change) = decision.change(request.actor, now) {
                // A change waits for the watch to show it stored; a refused
                // or unchanged request is only a recommendation and is kept
                // for stabilization as it is.
                change.pending = change.to != change.from;
                if !change.pending {
                    self.dirty.store(true, Ordering::Release);
                }
                recorded = Some(change.clone());
                let keep = policies
                    .iter()
                    .map(|p| p.lookback_seconds())
                    .max()
                    .unwrap_or(0);
                record(&mut state.ledger, keep, change, now);
            }
            state.last = Some(Last {
                uid: review.uid.to_owned(),
                digest: review.digest,
                decision: decision.clone(),
                change: recorded,
            });
        }
        (decision, false)
    }

    /// A copy of the ledger, pending changes included.
    pub fn ledger(&self) -> Ledger {
        self.state().ledger.clone()
    }

    /// What may be persisted: the ledger without pending changes.
    pub fn stored_ledger(&self) -> Ledger {
        self.state().ledger.stored()
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

/// Every webhook round trip has its own uid, so one user request can reach
/// the governor several times: after a storage conflict (the apiserver
/// retries with the same ask), after a later mutating webhook changed the
/// object (re-invocation, with the changed count), and at the validating
/// webhook after the mutating one. Of the changes one actor makes from one
/// starting count, at most one can land (a write that lands changes the
/// count the next one starts from), so a new change by the same actor from
/// the same count supersedes the one still pending instead of spending the
/// budget twice.
///
/// A request that keeps the count (a history write, an annotation edit)
/// supersedes nothing: a change still in flight must keep counting, and the
/// watch records one that lands anyway.
fn retract_unlanded(state: &mut LedgerState, request: &Request<'_>) {
    if request.requested == request.current {
        return;
    }
    state
        .ledger
        .retract_pending(|p| p.from == request.current && p.actor == request.actor);
}

fn record(ledger: &mut Ledger, lookback_seconds: u32, change: Change, now: DateTime<Utc>) {
    ledger.record(change);
    let keep = i64::from(lookback_seconds).max(SAME_CHANGE_SECONDS);
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
    /// The governor's `state` annotation, if any.
    pub state: Option<&'a str>,
}

/// Runs [`Cache::sweep`] every few seconds until `shutdown`.
pub async fn run_sweeper(
    cache: Arc<Cache>,
    timeout: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let timeout = Duration::from_std(timeout).unwrap_or(Duration::seconds(SAME_CHANGE_SECONDS));
    let period = (timeout / 4).clamp(Duration::milliseconds(200), Duration::seconds(5));
    let mut tick = tokio::time::interval(period.to_std().unwrap_or_default());
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (entries, changes) = cache.sweep(Utc::now(), timeout);
        if entries + changes > 0 {
            tracing::info!(
                entries,
                changes,
                "forgot what the watch never showed stored (refused creates, changes that did not land)"
            );
        }
    }
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

    /// The entry for a workload the admission path is about to govern, made
    /// empty and not yet stored if the watch has not delivered it (a CREATE,
    /// or a race); [`Cache::sweep`] removes it if the watch never does.
    pub fn get_or_insert(
        &self,
        kind: WorkloadKind,
        key: &str,
        policy: &Policy,
        replicas: u32,
        now: DateTime<Utc>,
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
                replicas_writer: None,
                state: None,
            },
            Ledger::new(),
            false,
            now,
        ));
        map.get_or_insert(key.to_owned(), fresh).clone()
    }

    /// Forgets what the watch has not confirmed within `timeout`: entries
    /// made by a CREATE that the apiserver then refused, and admitted changes
    /// that never landed. Returns (entries removed, changes dropped).
    pub fn sweep(&self, now: DateTime<Utc>, timeout: Duration) -> (usize, usize) {
        let cutoff = now - timeout;
        let (mut entries, mut changes) = (0, 0);
        for kind in WorkloadKind::ALL {
            let map = self.map(kind).pin();
            for (key, entry) in map.iter() {
                if !entry.is_stored() && entry.since <= cutoff {
                    map.remove(key);
                    entries += 1;
                    continue;
                }
                let mut state = entry.state();
                if state.ledger.has_pending() {
                    changes += state.ledger.expire_pending(cutoff);
                }
            }
        }
        (entries, changes)
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
            replicas_writer: update.actor.map(str::to_owned),
            state: update.state.map(str::to_owned),
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
                Arc::new(Entry::new(observed, persisted, true, now)),
            );
            return;
        };
        entry.stored.store(true, Ordering::Release);
        let previous = entry.observed.load().replicas;
        let mut state = entry.state();
        let mut changed = false;
        if previous != update.replicas && state.ledger.confirm(previous, update.replicas) {
            // The change this replica admitted has landed.
            changed = true;
        } else if previous != update.replicas {
            // Nothing pending matches: another actor, or a change another
            // replica admitted.
            state.ledger.record(Change {
                at: now,
                from: previous,
                to: update.replicas,
                requested: update.replicas,
                actor: update.actor.unwrap_or("unknown").to_owned(),
                pending: false,
            });
            changed = true;
        }
        // After the change itself, so a persisted copy of it (another
        // replica's, or this object's own after a relist) matches it rather
        // than adding it twice.
        changed |= state
            .ledger
            .merge(&persisted, Duration::seconds(SAME_CHANGE_SECONDS));
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

#[cfg(test)]
mod tests;
