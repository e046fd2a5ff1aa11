//! Stabilization and rate limits, computed exactly as the HPA controller does
//! (`pkg/controller/podautoscaler/horizontal.go`), but over a ledger that
//! holds every actor's changes rather than the HPA's own.

use chrono::{DateTime, Duration, Utc};

use super::ledger::Ledger;
use crate::policy::{Direction, PolicyKind, RatePolicy, ScalingRules, SelectPolicy};

/// HPA `stabilizeRecommendationWithBehaviors` for one direction: scaling up
/// goes no higher than the lowest request in the window, scaling down no
/// lower than the highest. The new request counts as part of the window.
/// Returns the stabilized count when it differs from the request.
pub(crate) fn stabilize(
    rules: &ScalingRules,
    ledger: &Ledger,
    current: u32,
    requested: u32,
    now: DateTime<Utc>,
) -> Option<u32> {
    if rules.stabilization_seconds == 0 {
        return None;
    }
    let cutoff = now - Duration::seconds(i64::from(rules.stabilization_seconds));
    let window = ledger.since(cutoff).iter().map(|c| c.requested);
    let replicas = match rules.direction {
        Direction::Up => {
            let lowest = window.fold(requested, u32::min);
            current.max(lowest)
        }
        Direction::Down => {
            let highest = window.fold(requested, u32::max);
            current.min(highest)
        }
    };
    (replicas != requested).then_some(replicas)
}

/// The limit the rate policies allow, and which policy set it.
pub(crate) struct Limit<'r> {
    pub replicas: u32,
    /// The deciding policy; `None` when the direction is `Disabled`.
    pub policy: Option<&'r RatePolicy>,
    /// Replicas at the start of the deciding policy's period.
    pub period_start: i64,
}

/// HPA `calculateScaleUpLimitWithScalingRules` /
/// `calculateScaleDownLimitWithBehaviors`, then capped at `current` so a
/// limit never reverses the direction of a request.
pub(crate) fn limit<'r>(
    rules: &'r ScalingRules,
    ledger: &Ledger,
    current: u32,
    now: DateTime<Utc>,
) -> Option<Limit<'r>> {
    if rules.select == SelectPolicy::Disabled {
        return Some(Limit {
            replicas: current,
            policy: None,
            period_start: i64::from(current),
        });
    }
    let up = rules.direction == Direction::Up;
    // For scale-up "Max" means the most replicas; for scale-down it means the
    // largest change, which is the fewest replicas.
    let prefer_more = up == (rules.select == SelectPolicy::Max);
    let mut best: Option<(i64, &RatePolicy, i64)> = None;
    for policy in &rules.policies {
        let start = period_start(ledger, current, policy.period_seconds, up, now);
        let proposed = proposal(policy, start, up);
        let better = match best {
            None => true,
            Some((b, _, _)) if prefer_more => proposed > b,
            Some((b, _, _)) => proposed < b,
        };
        if better {
            best = Some((proposed, policy, start));
        }
    }
    let (proposed, policy, period_start) = best?;
    let current_i = i64::from(current);
    let capped = if up {
        proposed.max(current_i)
    } else {
        proposed.min(current_i)
    };
    Some(Limit {
        replicas: capped.clamp(0, i64::from(crate::policy::MAX_REPLICA_COUNT)) as u32,
        policy: Some(policy),
        period_start,
    })
}

/// `periodStartReplicas = currentReplicas - added + removed` over events
/// strictly after `now - period`. A pending change (admitted, not yet seen
/// stored) counts only in the direction being limited: a scale-up it may
/// have made spends scale-up budget, but a scale-down it may not have made
/// frees none (and the other way round).
fn period_start(
    ledger: &Ledger,
    current: u32,
    period_seconds: u32,
    up: bool,
    now: DateTime<Utc>,
) -> i64 {
    let cutoff = now - Duration::seconds(i64::from(period_seconds));
    let counts =
        |c: &&super::ledger::Change| !c.pending || if up { c.added() > 0 } else { c.removed() > 0 };
    let (added, removed) = ledger
        .since(cutoff)
        .iter()
        .filter(counts)
        .fold((0i64, 0i64), |(a, r), c| {
            (a + i64::from(c.added()), r + i64::from(c.removed()))
        });
    i64::from(current) - added + removed
}

/// One policy's allowed replicas, with the HPA's float64 rounding: ceil when
/// scaling up, truncation when scaling down.
fn proposal(policy: &RatePolicy, period_start: i64, up: bool) -> i64 {
    let value = i64::from(policy.value);
    match (policy.kind, up) {
        (PolicyKind::Pods, true) => period_start + value,
        (PolicyKind::Pods, false) => period_start - value,
        (PolicyKind::Percent, true) => {
            (period_start as f64 * (1.0 + policy.value as f64 / 100.0)).ceil() as i64
        }
        (PolicyKind::Percent, false) => {
            (period_start as f64 * (1.0 - policy.value as f64 / 100.0)) as i64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_rounding_matches_hpa_float_artifacts() {
        let ten_percent = RatePolicy {
            kind: PolicyKind::Percent,
            value: 10,
            period_seconds: 60,
        };
        // float64(50) * 1.1 = 55.00000000000001, and the HPA takes its ceiling.
        assert_eq!(proposal(&ten_percent, 50, true), 56);
        assert_eq!(proposal(&ten_percent, 10, true), 11);
        // float64(10) * 0.9 = 9 exactly; truncation keeps 9.
        assert_eq!(proposal(&ten_percent, 10, false), 9);
        assert_eq!(proposal(&ten_percent, 7, false), 6);
    }
}
