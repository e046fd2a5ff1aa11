//! An emulation of the HPA v2 controller for a per-pod metric: the replica
//! calculation of `calcPlainMetricReplicas` (tolerance, ready-pod lag), then
//! the HPA's own normalization, which is our engine: stabilization, rate
//! limits over the HPA's own history, and min/max.

use chrono::{DateTime, Duration, Utc};

use crate::{
    engine::{self, Change, Ledger, Request},
    policy::{Direction, MAX_REPLICA_COUNT, Mode, Policy, ScalingRules},
};

/// The HPA's default tolerance (`--horizontal-pod-autoscaler-tolerance`).
pub const DEFAULT_TOLERANCE: f64 = 0.1;

/// `calcPlainMetricReplicas` for a metric that averages over pods, with
/// `demand` the total and `target` the per-pod target:
/// - within tolerance nothing changes;
/// - when scaling up, pods that are not ready yet count as serving nothing,
///   and if that reverses the direction, nothing changes;
/// - when scaling down, pods that are not ready are left out.
pub fn desired_replicas(current: u32, ready: u32, demand: f64, target: f64, tolerance: f64) -> u32 {
    if ready == 0 {
        // No metrics from any pod: the HPA skips the metric this sync.
        return current.max(1);
    }
    let ratio = demand / (f64::from(ready) * target);
    let unready = current.saturating_sub(ready);
    if unready == 0 || ratio < 1.0 {
        if (ratio - 1.0).abs() <= tolerance {
            return current;
        }
        return clamp_count((ratio * f64::from(ready)).ceil());
    }
    let all = f64::from(current);
    let rebalanced = demand / (all * target);
    if (rebalanced - 1.0).abs() <= tolerance || rebalanced < 1.0 {
        return current;
    }
    clamp_count((rebalanced * all).ceil())
}

fn clamp_count(n: f64) -> u32 {
    n.clamp(0.0, f64::from(MAX_REPLICA_COUNT)) as u32
}

/// The HPA object and the controller's in-memory history of it.
#[derive(Debug, Clone)]
pub struct Hpa {
    spec: Policy,
    history: Ledger,
    tolerance: f64,
    target: f64,
}

impl Hpa {
    /// An HPA whose `minReplicas`, `maxReplicas` and `behavior` come from a
    /// policy's `min-replicas`, `max-replicas`, `scale-up` and `scale-down`,
    /// with the HPA's defaults where the policy says nothing.
    pub fn new(policy: &Policy, target_per_pod: f64, tolerance: f64) -> Hpa {
        let spec = Policy {
            mode: Mode::Enforce,
            min_replicas: Some(policy.min_replicas.unwrap_or(1)),
            max_replicas: policy.max_replicas,
            scale_up: Some(
                policy
                    .scale_up
                    .clone()
                    .unwrap_or_else(|| ScalingRules::hpa_default(Direction::Up)),
            ),
            scale_down: Some(
                policy
                    .scale_down
                    .clone()
                    .unwrap_or_else(|| ScalingRules::hpa_default(Direction::Down)),
            ),
            ..Policy::default()
        };
        Hpa {
            spec,
            history: Ledger::new(),
            tolerance,
            target: target_per_pod,
        }
    }

    /// One sync: what the HPA writes to `/scale` (it writes only when the
    /// result differs from `current`). The raw recommendation and the change
    /// are remembered, as the controller does.
    pub fn sync(&mut self, now: DateTime<Utc>, current: u32, ready: u32, demand: f64) -> u32 {
        let raw = desired_replicas(current, ready, demand, self.target, self.tolerance);
        let normalized = normalize(&self.spec, &self.history, current, raw, now);
        self.history.record(Change {
            at: now,
            from: current,
            to: normalized,
            requested: raw,
            actor: "".into(),
            pending: false,
            watched: false,
            generation: None,
            span: None,
        });
        let lookback = i64::from(self.spec.lookback_seconds());
        self.history.prune(now - Duration::seconds(lookback));
        normalized
    }

    /// The write of the last sync was refused (a webhook in `deny` mode):
    /// the controller books no scale event for it, and keeps only the
    /// recommendation its stabilization looks back on.
    pub fn refused(&mut self) {
        if let Some(last) = self.history.changes().last().cloned() {
            self.history.retract(&last);
            self.history.record(Change {
                to: last.from,
                ..last
            });
        }
    }
}

/// `normalizeDesiredReplicasWithBehaviors`: stabilization over the
/// recommendations in `history`, rate limits over its scale events, then
/// min/max. It is the engine: the HPA's rules are a policy like any other.
pub fn normalize(
    spec: &Policy,
    history: &Ledger,
    current: u32,
    desired: u32,
    now: DateTime<Utc>,
) -> u32 {
    let request = Request {
        current,
        requested: desired,
        actor: "hpa",
    };
    engine::decide(spec, history, request, now).governed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::keys;

    #[test]
    fn tolerance_and_ready_pod_lag() {
        // 10 ready pods at 105 % of target: within 10 %, no change.
        assert_eq!(desired_replicas(10, 10, 1050.0, 100.0, 0.1), 10);
        // At 150 %: ceil(1.5 × 10).
        assert_eq!(desired_replicas(10, 10, 1500.0, 100.0, 0.1), 15);
        // 5 more pods are starting: they count as serving nothing; 1500 over
        // 15 pods is exactly the target, so the HPA waits for them.
        assert_eq!(desired_replicas(15, 10, 1500.0, 100.0, 0.1), 15);
        // Scaling down ignores the pods still starting.
        assert_eq!(desired_replicas(15, 10, 500.0, 100.0, 0.1), 5);
        assert_eq!(desired_replicas(3, 0, 500.0, 100.0, 0.1), 3);
    }

    #[test]
    fn sync_applies_default_behavior_and_remembers() {
        let policy = Policy::from_annotations([(keys::MAX_REPLICAS, "100")]).unwrap();
        let mut hpa = Hpa::new(&policy, 100.0, DEFAULT_TOLERANCE);
        let t0: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        // Demand for 40 pods from 2: default scale-up allows max(2+4, 2×2) = 6.
        assert_eq!(hpa.sync(t0, 2, 2, 4000.0), 6);
        // 15 s later the period has passed: 12 (100 % of 6).
        assert_eq!(hpa.sync(t0 + Duration::seconds(15), 6, 6, 4000.0), 12);
        // Demand falls: the 300 s scale-down stabilization holds 12.
        assert_eq!(hpa.sync(t0 + Duration::seconds(30), 12, 12, 100.0), 12);
        assert_eq!(hpa.sync(t0 + Duration::seconds(345), 12, 12, 100.0), 1);
    }

    #[test]
    fn a_refused_write_spends_no_budget() {
        let policy = Policy::from_annotations([(keys::SCALE_UP, "2 pods/60s")]).unwrap();
        let mut hpa = Hpa::new(&policy, 100.0, DEFAULT_TOLERANCE);
        let t0: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        assert_eq!(hpa.sync(t0, 2, 2, 1000.0), 4);
        // Booked as landed, the write spent the minute's budget: back at 2,
        // the next sync may not ask for more.
        let mut booked = hpa.clone();
        assert_eq!(booked.sync(t0 + Duration::seconds(5), 2, 2, 1000.0), 2);
        // Refused, it spent nothing: the next sync asks for 4 again.
        hpa.refused();
        assert_eq!(hpa.sync(t0 + Duration::seconds(5), 2, 2, 1000.0), 4);
    }
}
