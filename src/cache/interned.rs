//! One parsed policy shared by every workload that carries the same one. A
//! fleet stamped from one chart carries one policy thousands of times; each
//! copy of its windows, rules and texts is a kilobyte or so. The watch hands
//! each parsed policy here and keeps the shared one; the request path only
//! ever borrows it.

use std::{
    collections::HashMap,
    hash::{BuildHasher, BuildHasherDefault},
    sync::{Arc, Mutex, PoisonError, Weak},
};

use fnv::FnvHasher;

use crate::policy::Policy;

/// Policies alive somewhere in the cache, by a hash of their contents.
#[derive(Debug, Default)]
pub(super) struct Interner {
    map: Mutex<HashMap<u64, Vec<Weak<Policy>>, BuildHasherDefault<FnvHasher>>>,
}

impl Interner {
    /// The shared copy of `policy`: one already held by another workload if
    /// equal, else this one, now shared.
    pub(super) fn intern(&self, policy: Policy) -> Arc<Policy> {
        // Debug covers every field, and the watch is not the request path.
        let key = BuildHasherDefault::<FnvHasher>::default().hash_one(format!("{policy:?}"));
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = map.entry(key).or_default();
        bucket.retain(|w| w.strong_count() > 0);
        if let Some(shared) = bucket
            .iter()
            .filter_map(Weak::upgrade)
            .find(|p| **p == policy)
        {
            return shared;
        }
        let shared = Arc::new(policy);
        bucket.push(Arc::downgrade(&shared));
        if map.len() > 64 && map.len().is_power_of_two() {
            map.retain(|_, b| b.iter().any(|w| w.strong_count() > 0));
        }
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::keys;

    fn policy(max: &str) -> Policy {
        Policy::from_annotations([(keys::MAX_REPLICAS, max), (keys::SCALE_UP, "4 pods/60s")])
            .unwrap()
    }

    #[test]
    fn equal_policies_share_one_copy_and_a_dropped_one_is_forgotten() {
        let interner = Interner::default();
        let a = interner.intern(policy("20"));
        let b = interner.intern(policy("20"));
        assert!(Arc::ptr_eq(&a, &b));
        let c = interner.intern(policy("30"));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(*c, policy("30"));
        drop((a, b));
        // Once nobody holds it, an equal policy is a new copy.
        let d = interner.intern(policy("20"));
        assert_eq!(Arc::strong_count(&d), 1);
        assert_eq!(interner.map.lock().unwrap().len(), 2);
    }
}
