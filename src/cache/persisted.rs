//! What the ledger objects in the governor's namespace hold, as the ledger
//! watch last saw them (or as this replica last wrote them). Each replica
//! merges them into its entries, and writes only what they lack.

use std::sync::{Arc, atomic::Ordering};

use chrono::{DateTime, Duration, Utc};

use super::{Cache, SAME_CHANGE_SECONDS};
use crate::{engine::Ledger, workload::WorkloadKind};

/// One workload's ledger object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persisted {
    /// The object's name.
    pub name: String,
    /// Its `resourceVersion`: the next write is conditional on it.
    pub(crate) resource_version: Option<String>,
    /// The workload's `metadata.uid` it was written for; a workload of the
    /// same name created since has a ledger of its own.
    pub uid: Option<String>,
    /// The landed changes it holds.
    pub ledger: Ledger,
    /// The seasonal strategy's history the leader stored beside the ledger
    /// (its raw text, read defensively by the loop); every writer of the
    /// object carries it on.
    pub seasonal: Option<Arc<str>>,
    /// A stated risk's calibration the leader stored beside the ledger
    /// (raw text, read defensively by the loop), carried on likewise.
    pub risk: Option<Arc<str>>,
}

impl Persisted {
    /// Whether it belongs to the workload with `uid` (unknown matches).
    pub(crate) fn belongs_to(&self, uid: Option<&str>) -> bool {
        match (self.uid.as_deref(), uid) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }
}

impl Cache {
    /// Stores what a ledger object holds and merges it into the workload's
    /// entry, so a change another replica saw land counts here too.
    pub(crate) fn apply_persisted(&self, kind: WorkloadKind, key: &str, persisted: Persisted) {
        let persisted = Arc::new(persisted);
        if let Some(entry) = self.get(kind, key)
            && persisted.belongs_to(entry.observed().uid.as_deref())
        {
            let mut state = entry.state();
            if state
                .ledger
                .merge(&persisted.ledger, Duration::seconds(SAME_CHANGE_SECONDS))
            {
                tracing::debug!(
                    key,
                    object = %persisted.ledger.to_compact(),
                    "the ledger object changed the ledger"
                );
            }
        }
        self.persisted_map(kind)
            .pin()
            .insert(key.to_owned(), persisted);
    }

    /// Drops the entries at or before `cutoff` from the copy of a ledger
    /// object held here: a workload changed once keeps its object for good,
    /// and ten thousand of them would each hold a change no rule sees. The
    /// object itself is left alone; its next write carries what is left.
    pub(super) fn trim_persisted(&self, kind: WorkloadKind, key: &str, cutoff: DateTime<Utc>) {
        let map = self.persisted_map(kind).pin();
        let stale = |p: &Persisted| p.ledger.changes().first().is_some_and(|c| c.at <= cutoff);
        if map.get(key).is_some_and(|p| stale(p)) {
            // Atomic against the watch storing a newer copy meanwhile.
            map.update(key.to_owned(), |p| {
                let mut pruned = Persisted::clone(p);
                pruned.ledger.prune(cutoff);
                Arc::new(pruned)
            });
        }
    }

    /// Forgets a deleted ledger object.
    pub(crate) fn remove_persisted(&self, kind: WorkloadKind, key: &str) {
        self.persisted_map(kind).pin().remove(key);
    }

    /// The ledger object of a workload, as last seen.
    pub fn persisted(&self, kind: WorkloadKind, key: &str) -> Option<Arc<Persisted>> {
        self.persisted_map(kind).pin().get(key).cloned()
    }

    /// Keys of every ledger object of `kind`.
    pub(crate) fn persisted_keys(&self, kind: WorkloadKind) -> Vec<String> {
        self.persisted_map(kind).pin().keys().cloned().collect()
    }

    /// Keys of the ledger objects whose workload the cache does not hold:
    /// deleted, or no longer governed.
    pub(crate) fn orphaned_ledgers(&self, kind: WorkloadKind) -> Vec<(String, Arc<Persisted>)> {
        let entries = self.map(kind).pin();
        self.persisted_map(kind)
            .pin()
            .iter()
            .filter(|(key, _)| !entries.contains_key(*key))
            .map(|(key, p)| (key.clone(), p.clone()))
            .collect()
    }

    /// Marks the ledger objects' initial list as complete.
    pub(crate) fn mark_ledgers_synced(&self) {
        self.ledgers_synced.store(true, Ordering::Release);
    }

    /// Resolves once the ledger objects' initial list is complete.
    pub(crate) async fn ledgers_synced(&self) {
        while !self.ledgers_synced.load(Ordering::Acquire) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The ledger a workload first seen starts from: its ledger object's,
    /// and what an earlier version left in its `history` annotation.
    pub(super) fn starting_ledger(
        &self,
        kind: WorkloadKind,
        key: &str,
        uid: Option<&str>,
        annotation: Option<&str>,
        now: DateTime<Utc>,
    ) -> Ledger {
        let mut ledger = match annotation {
            Some(text) => {
                let (ledger, warning) = Ledger::read_persisted(text, now);
                if let Some(warning) = warning {
                    tracing::warn!(key, %warning, "reading the history annotation");
                }
                ledger
            }
            None => Ledger::new(),
        };
        if let Some(persisted) = self.persisted(kind, key)
            && persisted.belongs_to(uid)
        {
            ledger.merge(&persisted.ledger, Duration::seconds(SAME_CHANGE_SECONDS));
        }
        ledger
    }
}
