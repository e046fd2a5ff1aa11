//! How good a run was: under-provisioning, cost and churn, from its timeline.

use serde::Serialize;

/// One actor's replica and ready-pod counts on the simulation's ticks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Run {
    /// `hpa`, `governor`, `hpa+governor` or `oracle`, with `@workload` when
    /// several workloads are compared.
    pub actor: String,
    /// Pods that exist (and cost money) on each tick.
    pub replicas: Vec<u32>,
    /// Pods ready to serve on each tick.
    pub ready: Vec<u32>,
    /// The governor's recommendation on each tick, when the run has one
    /// (empty otherwise).
    pub recommended: Vec<u32>,
}

/// The decision-quality figures of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Which actor.
    pub actor: String,
    /// Share of time with ready capacity below demand, in percent.
    pub under_provisioned_time_pct: f64,
    /// Share of time the recommendation alone was short, in percent: the
    /// ready pods it accounts for (no more than it asked for) below demand.
    /// Beside the scored share it tells, under the HPA, the risk the floor
    /// itself took from the one the HPA's extra pods covered. `None` for a
    /// run with no recommendation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommendation_under_time_pct: Option<f64>,
    /// Demand not served by ready capacity, as a percentage of all demand.
    pub under_provisioned_demand_pct: f64,
    /// Largest gap between demand and ready capacity, in demand units.
    pub peak_shortfall: f64,
    /// Pod-hours paid for, ready or starting.
    pub pod_hours: f64,
    /// Pod-hours relative to the oracle's, when the oracle ran.
    pub cost_vs_oracle: Option<f64>,
    /// Number of replica changes.
    pub changes: u32,
    /// Largest single change, in pods.
    pub largest_step: u32,
    /// Longest stretch under-provisioned (time to recover), in seconds.
    pub longest_recovery_seconds: i64,
}

/// Figures for one run; `tick_seconds` is the timeline's step and
/// `capacity` the demand one ready pod serves.
pub fn summarize(run: &Run, demand: &[f64], capacity: f64, tick_seconds: i64) -> Summary {
    let mut under_ticks = 0u64;
    let (mut shortfall_sum, mut demand_sum, mut peak) = (0.0, 0.0, 0.0f64);
    let (mut stretch, mut longest) = (0i64, 0i64);
    for (ready, demand) in run.ready.iter().zip(demand) {
        let served = f64::from(*ready) * capacity;
        let short = (demand - served).max(0.0);
        demand_sum += demand;
        // A relative epsilon: float noise in a trace is not an outage.
        if short > 1e-9 * demand.max(1.0) {
            under_ticks += 1;
            shortfall_sum += short;
            peak = peak.max(short);
            stretch += tick_seconds;
            longest = longest.max(stretch);
        } else {
            stretch = 0;
        }
    }
    let ticks = run.ready.len().max(1) as f64;
    let recommendation_under_time_pct = (!run.recommended.is_empty()).then(|| {
        let short = run
            .ready
            .iter()
            .zip(&run.recommended)
            .zip(demand)
            .filter(|((ready, rec), demand)| {
                let served = f64::from(**ready.min(rec)) * capacity;
                **demand - served > 1e-9 * demand.max(1.0)
            })
            .count();
        100.0 * short as f64 / ticks
    });
    let steps = run.replicas.windows(2).map(|w| w[0].abs_diff(w[1]));
    let (changes, largest_step) = steps.fold((0, 0), |(n, big), step| {
        (n + u32::from(step > 0), big.max(step))
    });
    let pod_seconds: u64 =
        run.replicas.iter().map(|r| u64::from(*r)).sum::<u64>() * tick_seconds.max(0) as u64;
    Summary {
        actor: run.actor.clone(),
        under_provisioned_time_pct: 100.0 * under_ticks as f64 / ticks,
        recommendation_under_time_pct,
        under_provisioned_demand_pct: if demand_sum > 0.0 {
            100.0 * shortfall_sum / demand_sum
        } else {
            0.0
        },
        peak_shortfall: peak,
        pod_hours: pod_seconds as f64 / 3600.0,
        cost_vs_oracle: None,
        changes,
        largest_step,
        longest_recovery_seconds: longest,
    }
}

/// Fills `cost_vs_oracle` from the run named `oracle`, if there is one.
pub fn relate_to_oracle(summaries: &mut [Summary]) {
    let Some(oracle) = summaries
        .iter()
        .find(|s| s.actor == "oracle")
        .map(|s| s.pod_hours)
    else {
        return;
    };
    for s in summaries.iter_mut() {
        s.cost_vs_oracle = (oracle > 0.0).then(|| s.pod_hours / oracle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_by_hand() {
        // Capacity 10 per pod, 60 s ticks.
        let demand = [10.0, 30.0, 30.0, 30.0, 10.0, 0.0];
        let run = Run {
            actor: "hpa".into(),
            replicas: vec![1, 3, 3, 3, 1, 1],
            ready: vec![1, 1, 2, 3, 1, 1],
            recommended: Vec::new(),
        };
        let s = summarize(&run, &demand, 10.0, 60);
        assert_eq!(s.recommendation_under_time_pct, None);
        // Under a floor of 2 the floor alone is short on ticks 1 to 3: on
        // tick 3 only the third pod, which the floor did not ask for, served.
        let floored = Run {
            recommended: vec![1, 2, 2, 2, 1, 1],
            ..run.clone()
        };
        let f = summarize(&floored, &demand, 10.0, 60);
        assert_eq!(f.under_provisioned_time_pct, s.under_provisioned_time_pct);
        let alone = f.recommendation_under_time_pct.unwrap();
        assert!((alone - 100.0 * 3.0 / 6.0).abs() < 1e-9, "{alone}");
        // Short on ticks 1 (20) and 2 (10): 2 of 6 ticks, 30 of 110 demand.
        assert!((s.under_provisioned_time_pct - 100.0 * 2.0 / 6.0).abs() < 1e-9);
        assert!((s.under_provisioned_demand_pct - 100.0 * 30.0 / 110.0).abs() < 1e-9);
        assert_eq!(s.peak_shortfall, 20.0);
        // 12 pod-minutes.
        assert!((s.pod_hours - 0.2).abs() < 1e-12);
        assert_eq!(
            (s.changes, s.largest_step, s.longest_recovery_seconds),
            (2, 2, 120)
        );
        let mut all = vec![
            s,
            Summary {
                actor: "oracle".into(),
                pod_hours: 0.1,
                ..summarize(&run, &demand, 10.0, 60)
            },
        ];
        relate_to_oracle(&mut all);
        assert_eq!(all[0].cost_vs_oracle, Some(2.0));
    }
}
