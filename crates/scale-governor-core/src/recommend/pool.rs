//! The warm pool: pre-warmed pods for sessions that each reserve one pod.
//! The pool keeps `targetReady` unreserved ready pods on top of the
//! reserved ones; pods still warming up count as already on their way.

use std::collections::BTreeMap;

use super::{Candidate, Hold};
use crate::policy::WarmPool;

/// The workload's pods, counted the way the pool needs them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCounts {
    /// Carrying the reserved label or annotation (whatever their readiness:
    /// a session holds them).
    pub reserved: u32,
    /// Ready and not reserved: free for the next session.
    pub idle: u32,
    /// Neither ready nor reserved nor being deleted: on their way.
    pub warming: u32,
}

/// The warm pool's candidate: `reserved + targetReady`, held over `hold`.
///
/// Warming pods are not added again: the pods the Deployment already has
/// (warming ones included) count toward the pool, and the idle target is
/// met once they are ready.
pub fn candidate(
    pool: &WarmPool,
    counts: PoolCounts,
    hold: &mut Hold,
    hold_seconds: u32,
    now: chrono::DateTime<chrono::Utc>,
) -> Candidate {
    let wanted = counts.reserved.saturating_add(pool.target_ready);
    let replicas = hold.apply(wanted, hold_seconds, now);
    let mut reason = format!(
        "warm-pool: {} reserved + {} ready to keep -> {wanted} ({} idle, {} warming now)",
        counts.reserved, pool.target_ready, counts.idle, counts.warming
    );
    if replicas > wanted {
        reason.push_str(&format!(", held at {replicas} for {hold_seconds}s"));
    }
    Candidate {
        strategy: "warm-pool",
        replicas,
        reason,
        inputs: BTreeMap::from([
            ("reserved".to_owned(), counts.reserved.to_string()),
            ("idle".to_owned(), counts.idle.to_string()),
            ("warming".to_owned(), counts.warming.to_string()),
        ]),
    }
}

/// `controller.kubernetes.io/pod-deletion-cost` for a pod of the pool: the
/// ReplicaSet controller deletes the lowest cost first, so a reserved pod
/// (a live session) is the last to go.
pub fn deletion_cost(reserved: bool) -> &'static str {
    if reserved { "1000" } else { "0" }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};

    use super::*;

    #[test]
    fn keeps_target_ready_on_top_of_the_reserved_and_counts_warming_as_coming() {
        let pool = WarmPool {
            reserved: "sessions/reserved".into(),
            target_ready: 3,
        };
        let t0: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let mut hold = Hold::default();
        let counts = PoolCounts {
            reserved: 4,
            idle: 1,
            warming: 2,
        };
        let c = candidate(&pool, counts, &mut hold, 0, t0);
        assert_eq!(c.replicas, 7);
        assert_eq!(
            c.reason,
            "warm-pool: 4 reserved + 3 ready to keep -> 7 (1 idle, 2 warming now)"
        );
        // Sessions end: the pool shrinks (after the hold).
        let fewer = PoolCounts {
            reserved: 1,
            ..counts
        };
        let c = candidate(&pool, fewer, &mut hold, 60, t0 + Duration::seconds(10));
        assert_eq!(c.replicas, 7, "held");
        let c = candidate(&pool, fewer, &mut hold, 60, t0 + Duration::seconds(80));
        assert_eq!(c.replicas, 4);
        assert!(
            deletion_cost(true).parse::<i32>().unwrap() > deletion_cost(false).parse().unwrap()
        );
    }
}
