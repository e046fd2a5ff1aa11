//! The in-memory index of governed workloads that the webhook reads on every
//! request: a lock-free map from `namespace/name` to the workload's parsed
//! policy and its ledger. Watches feed it ([`watch`]); nothing on the request
//! path talks to the apiserver.

mod entry;
pub(crate) mod hpa;
mod interned;
mod persisted;
pub(crate) mod pods;
pub(crate) mod slim;
pub(crate) mod watch;

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use chrono::{DateTime, Duration, Utc};

use crate::{
    engine::{Change, Ledger},
    policy::{Policy, PolicyErrors},
    workload::WorkloadKind,
};

/// How long after admitting a change the same change seen on the watch is
/// taken to be that change rather than a new one, and how long an admitted
/// change (or a workload admitted by a CREATE) waits for the watch to show
/// it stored before it is taken never to have happened.
const SAME_CHANGE_SECONDS: i64 = 30;

use entry::Flags;
pub(crate) use entry::{Entry, Observed, ReviewKey};
pub(crate) use persisted::Persisted;

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
    pub policy: Result<Policy, PolicyErrors>,
    /// `spec.replicas`.
    pub replicas: u32,
    /// `status.readyReplicas`, when reported.
    pub ready: Option<u32>,
    /// The `history` annotation an earlier version persisted, if any: read
    /// when the workload is first seen.
    pub history: Option<&'a str>,
    /// When `spec.replicas` was last written, from `managedFields`.
    pub written_at: Option<DateTime<Utc>>,
    /// `metadata.generation`: which stored version this is.
    pub generation: Option<i64>,
    /// The field manager that last wrote `spec.replicas`, if known.
    pub actor: Option<&'a str>,
    /// The governor's `state` annotation, if any.
    pub state: Option<&'a str>,
}

/// How often every ledger is pruned, busy or not ([`Cache::trim`]).
const TRIM_PERIOD: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs [`Cache::sweep`] every few seconds, and [`Cache::trim`] every
/// minute, until `shutdown`.
pub(crate) async fn run_sweeper(
    cache: Arc<Cache>,
    timeout: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let timeout = Duration::from_std(timeout).unwrap_or(Duration::seconds(SAME_CHANGE_SECONDS));
    let period = (timeout / 4).clamp(Duration::milliseconds(200), Duration::seconds(5));
    let mut tick = tokio::time::interval(period.to_std().unwrap_or_default());
    let mut trimmed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if trimmed.elapsed() >= TRIM_PERIOD {
            trimmed = tokio::time::Instant::now();
            cache.trim(crate::clock::now());
        }
        let (entries, changes) = cache.sweep(crate::clock::now(), timeout);
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
    ledgers_synced: AtomicBool,
    flags: Arc<Flags>,
    /// The ledger objects, by the key of their workload.
    persisted_deployments: papaya::HashMap<String, Arc<Persisted>>,
    persisted_statefulsets: papaya::HashMap<String, Arc<Persisted>>,
    /// One copy of each distinct policy.
    policies: interned::Interner,
}

/// `namespace/name`, the cache key.
pub(crate) fn key(namespace: &str, name: &str) -> String {
    let mut key = String::with_capacity(namespace.len() + name.len() + 1);
    key.push_str(namespace);
    key.push('/');
    key.push_str(name);
    key
}

impl Cache {
    /// An empty cache, not yet synced.
    pub fn new() -> Cache {
        // The keys are stable (workloads come and go slowly), so a resize
        // may block writers; an incremental one would leave reads and
        // passes over the map searching two tables until writes finish it.
        let map = || {
            papaya::HashMap::builder()
                .resize_mode(papaya::ResizeMode::Blocking)
                .build()
        };
        Cache {
            deployments: map(),
            statefulsets: map(),
            ..Cache::default()
        }
    }

    fn map(&self, kind: WorkloadKind) -> &papaya::HashMap<String, Arc<Entry>> {
        match kind {
            WorkloadKind::Deployment => &self.deployments,
            WorkloadKind::StatefulSet => &self.statefulsets,
        }
    }

    fn persisted_map(&self, kind: WorkloadKind) -> &papaya::HashMap<String, Arc<Persisted>> {
        match kind {
            WorkloadKind::Deployment => &self.persisted_deployments,
            WorkloadKind::StatefulSet => &self.persisted_statefulsets,
        }
    }

    /// The governed workload, if the watch has seen one.
    pub fn get(&self, kind: WorkloadKind, key: &str) -> Option<Arc<Entry>> {
        self.map(kind).pin().get(key).cloned()
    }

    /// The entry for a workload the admission path is about to govern, made
    /// empty and not yet stored if the watch has not delivered it (a CREATE,
    /// or a race); [`Cache::sweep`] removes it if the watch never does.
    pub(crate) fn get_or_insert(
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
                generation: None,
                ready: None,
                replicas_writer: None,
                state: None,
            },
            Ledger::new(),
            false,
            now,
            self.flags.clone(),
        ));
        map.get_or_insert(key.to_owned(), fresh).clone()
    }

    /// Forgets what the watch has not confirmed within `timeout`: entries
    /// made by a CREATE that the apiserver then refused, and admitted changes
    /// that never landed. Returns (entries removed, changes dropped).
    pub fn sweep(&self, now: DateTime<Utc>, timeout: Duration) -> (usize, usize) {
        if !self.flags.sweep.swap(false, Ordering::AcqRel) {
            return (0, 0);
        }
        let cutoff = now - timeout;
        let (mut entries, mut changes, mut left) = (0, 0, false);
        for kind in WorkloadKind::ALL {
            let map = self.map(kind).pin();
            for (key, entry) in map.iter() {
                if !entry.is_stored() {
                    if entry.since <= cutoff {
                        map.remove(key);
                        entries += 1;
                        continue;
                    }
                    left = true;
                }
                let mut state = entry.state();
                if state.ledger.has_pending() {
                    changes += state.ledger.expire_pending(cutoff);
                    left |= state.ledger.has_pending();
                }
            }
        }
        if left {
            self.flags.sweep.store(true, Ordering::Release);
        }
        (entries, changes)
    }

    /// Prunes every workload's ledger, forgets its last answer once no
    /// resend can come, and prunes its ledger object's copy here at the
    /// same cutoff; a pass over the whole cache, so it runs rarely.
    pub fn trim(&self, now: DateTime<Utc>) {
        for kind in WorkloadKind::ALL {
            self.visit(kind, |key, entry| {
                if let Some(cutoff) = entry.trim(now) {
                    self.trim_persisted(kind, key, cutoff);
                }
            });
        }
    }

    /// Takes the flag that some ledger changed since the last call: the
    /// history pass runs only when it was raised.
    pub(crate) fn take_any_dirty(&self) -> bool {
        self.flags.dirty.swap(false, Ordering::AcqRel)
    }

    /// Applies what the watch saw: a changed `spec.replicas` becomes a ledger
    /// entry (unless this replica admitted that very change moments ago). A
    /// workload seen for the first time starts from its ledger object.
    pub fn apply(&self, update: Update<'_>, now: DateTime<Utc>) {
        let observed = Observed {
            uid: update.uid,
            policy: update.policy.map(|p| self.policies.intern(p)),
            replicas: update.replicas,
            generation: update.generation,
            ready: update.ready,
            replicas_writer: update.actor.map(str::to_owned),
            state: update.state.map(str::to_owned),
        };
        let keep = match &observed.policy {
            Ok(policy) => policy.lookback_seconds().max(SAME_CHANGE_SECONDS as u32),
            Err(_) => SAME_CHANGE_SECONDS as u32,
        };
        let map = self.map(update.kind).pin();
        let Some(entry) = map.get(update.key).cloned() else {
            // A restart, or a workload newly governed: start from what was
            // persisted, and count what landed that it does not explain.
            let mut ledger = self.starting_ledger(
                update.kind,
                update.key,
                observed.uid.as_deref(),
                update.history,
                now,
            );
            let actor = update.actor.unwrap_or("unknown");
            if let Some(change) = ledger.unexplained(
                update.replicas,
                update.generation,
                update.written_at,
                actor,
                now,
                keep,
            ) {
                tracing::info!(
                    key = update.key,
                    from = change.from,
                    to = change.to,
                    at = %change.at,
                    actor,
                    "replicas changed with no ledger entry to explain it; counting the change"
                );
                ledger.record(change);
            }
            ledger.prune(now - Duration::seconds(i64::from(keep)));
            let worth_a_look = !ledger.changes().is_empty();
            let fresh = Entry::new(observed, ledger, true, now, self.flags.clone());
            if worth_a_look {
                // What came from an annotation or was just booked may be
                // missing from the ledger object; the pass writes only if so.
                fresh.mark_dirty();
            }
            map.insert(update.key.to_owned(), Arc::new(fresh));
            self.flags.epoch.fetch_add(1, Ordering::AcqRel);
            return;
        };
        entry.stored.store(true, Ordering::Release);
        let (previous, previous_generation) = {
            let before = entry.observed.load();
            (before.replicas, before.generation)
        };
        let mut state = entry.state();
        let mut changed = false;
        if previous != update.replicas {
            let mut seen = Change {
                at: now,
                from: previous,
                to: update.replicas,
                requested: update.replicas,
                actor: update.actor.unwrap_or("unknown").into(),
                pending: false,
                watched: true,
                generation: update.generation,
                span: None,
            };
            // A watch that resumed after missing versions (a relist) saw
            // their sum.
            seen.set_from_generation(previous_generation);
            // The change this replica admitted has landed, or one another
            // replica persisted first; else another actor's, or a change
            // another replica admitted.
            let (from, to, generation) = (seen.from, seen.to, seen.generation);
            let confirmed = state
                .ledger
                .confirm(&seen, Duration::seconds(SAME_CHANGE_SECONDS));
            if !confirmed {
                state.ledger.record(seen);
            }
            tracing::debug!(
                key = update.key,
                from,
                to,
                generation,
                confirmed,
                "the watch saw replicas change"
            );
            changed = true;
        }
        state.ledger.prune(now - Duration::seconds(i64::from(keep)));
        drop(state);
        if changed {
            entry.mark_dirty();
        }
        entry.observed.store(Arc::new(observed));
        entry.generation.fetch_add(1, Ordering::AcqRel);
        self.flags.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Forgets a deleted (or no longer governed) workload.
    pub fn remove(&self, kind: WorkloadKind, key: &str) {
        self.map(kind).pin().remove(key);
        self.flags.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// A number that changes whenever the watch stores or removes a
    /// workload: a pass that saw epoch `n` has seen everything stored up to
    /// then, so while it is still `n`, only the clock can change anything.
    pub(crate) fn epoch(&self) -> u64 {
        self.flags.epoch.load(Ordering::Acquire)
    }

    /// Marks a kind's initial list as complete.
    pub fn mark_synced(&self, kind: WorkloadKind) {
        match kind {
            WorkloadKind::Deployment => self.deployments_synced.store(true, Ordering::Release),
            WorkloadKind::StatefulSet => self.statefulsets_synced.store(true, Ordering::Release),
        }
    }

    /// Whether every kind, and the ledger objects, have completed their
    /// initial list: before that, a workload's budget may look unspent.
    pub(crate) fn is_synced(&self) -> bool {
        self.deployments_synced.load(Ordering::Acquire)
            && self.statefulsets_synced.load(Ordering::Acquire)
            && self.ledgers_synced.load(Ordering::Acquire)
    }

    /// Resolves once [`Cache::is_synced`].
    pub(crate) async fn synced(&self) {
        while !self.is_synced() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Number of governed workloads of a kind.
    pub fn len(&self, kind: WorkloadKind) -> usize {
        self.map(kind).len()
    }

    /// Whether nothing is governed.
    #[cfg(any(test, feature = "test-support"))]
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

    /// Calls `f` on every entry of `kind`, without copying the map: for a
    /// pass that looks at every workload and acts on few.
    pub(crate) fn visit(&self, kind: WorkloadKind, mut f: impl FnMut(&str, &Arc<Entry>)) {
        for (k, v) in self.map(kind).pin().iter() {
            f(k, v);
        }
    }
}

#[cfg(test)]
mod tests;
