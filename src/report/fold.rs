//! The map that folds repeated reports: keyed by a 64-bit hash of what a
//! report is about (the workload and the rule), split into shards so that
//! reviews of different workloads rarely wait on the same lock, and the
//! critical section is a hash lookup. A clamp storm repeats one decision
//! thousands of times a second; folding it costs a lookup, not a log line
//! or an apiserver write.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
    sync::{Mutex, PoisonError},
};

use fnv::FnvHasher;

use super::Report;

const SHARDS: usize = 16;

type Shard<V> = HashMap<u64, V, BuildHasherDefault<FnvHasher>>;

/// A map from a report key to `V`, in shards.
#[derive(Debug)]
pub(crate) struct Folds<V> {
    shards: [Mutex<Shard<V>>; SHARDS],
}

impl<V> Default for Folds<V> {
    fn default() -> Self {
        Folds {
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
        }
    }
}

impl<V> Folds<V> {
    /// Runs `f` on the shard holding `key`.
    pub(crate) fn with<R>(&self, key: u64, f: impl FnOnce(&mut Shard<V>) -> R) -> R {
        let shard = &self.shards[(key as usize) % SHARDS];
        // A panic while holding a shard leaves plain data behind: keep going.
        f(&mut shard.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Visits every entry, shard by shard, keeping those `f` returns true for.
    pub(crate) fn retain(&self, mut f: impl FnMut(u64, &mut V) -> bool) {
        for shard in &self.shards {
            shard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|k, v| f(*k, v));
        }
    }

    #[cfg(any(test, feature = "test-support"))]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Whether none is held.
    #[cfg(any(test, feature = "test-support"))]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A hash of `parts`, each delimited so that `("ab", "c")` and `("a", "bc")`
/// differ. FNV: short keys, no adversary who gains from a collision (two
/// workloads would only share a log or Event series).
pub(crate) fn key(parts: &[&[u8]]) -> u64 {
    let mut h = FnvHasher::default();
    for part in parts {
        h.write(part);
        h.write_u8(0xff);
    }
    h.finish()
}

/// The workload a report is about.
pub(crate) fn workload_key(report: &Report) -> u64 {
    key(&[
        report.kind.as_str().as_bytes(),
        report.namespace.as_bytes(),
        report.name.as_bytes(),
    ])
}

/// The numbers of a decision: two decisions with the same signature say
/// the same thing.
pub(crate) fn signature(parts: &[u64]) -> u64 {
    let mut h = FnvHasher::default();
    for part in parts {
        h.write_u64(*part);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_delimit_their_parts_and_shards_hold_their_own() {
        assert_ne!(key(&[b"ab", b"c"]), key(&[b"a", b"bc"]));
        assert_eq!(key(&[b"a", b"b"]), key(&[b"a", b"b"]));
        let folds: Folds<u32> = Folds::default();
        for k in 0..100u64 {
            folds.with(k, |m| *m.entry(k).or_default() += 1);
        }
        folds.with(7, |m| *m.get_mut(&7).unwrap() += 1);
        assert_eq!(folds.with(7, |m| m[&7]), 2);
        assert_eq!(folds.len(), 100);
        folds.retain(|k, _| k % 2 == 0);
        assert_eq!(folds.len(), 50);
    }
}
