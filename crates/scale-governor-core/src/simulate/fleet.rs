//! Pods of one simulated workload: each becomes ready a start-up delay after
//! it is created; scaling down removes the youngest first, as the ReplicaSet
//! controller prefers pods that are not ready.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};

/// The pods of one workload.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// When each pod is (or was) ready, oldest first; creation order is
    /// readiness order because the delay is the same for every pod.
    ready_at: VecDeque<DateTime<Utc>>,
    startup: Duration,
}

impl Fleet {
    /// `replicas` pods, all ready at `now`.
    pub fn new(replicas: u32, now: DateTime<Utc>, startup: Duration) -> Fleet {
        Fleet {
            ready_at: std::iter::repeat_n(now, replicas as usize).collect(),
            startup,
        }
    }

    /// Pods that exist, ready or not.
    pub fn replicas(&self) -> u32 {
        self.ready_at.len() as u32
    }

    /// Pods ready at `now`.
    pub fn ready(&self, now: DateTime<Utc>) -> u32 {
        self.ready_at.partition_point(|at| *at <= now) as u32
    }

    /// Creates or deletes pods to reach `replicas`.
    pub fn scale_to(&mut self, replicas: u32, now: DateTime<Utc>) {
        let target = replicas as usize;
        while self.ready_at.len() > target {
            self.ready_at.pop_back();
        }
        let ready_at = now + self.startup;
        while self.ready_at.len() < target {
            self.ready_at.push_back(ready_at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_become_ready_after_the_delay_and_the_youngest_go_first() {
        let t0: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let mut fleet = Fleet::new(2, t0, Duration::seconds(60));
        fleet.scale_to(5, t0 + Duration::seconds(10));
        assert_eq!(
            (fleet.replicas(), fleet.ready(t0 + Duration::seconds(69))),
            (5, 2)
        );
        assert_eq!(fleet.ready(t0 + Duration::seconds(70)), 5);
        fleet.scale_to(3, t0 + Duration::seconds(20));
        assert_eq!(
            fleet.ready(t0 + Duration::seconds(20)),
            2,
            "the two old pods stay"
        );
        assert_eq!(fleet.ready(t0 + Duration::seconds(70)), 3);
    }
}
