//! Which workloads a pass can leave out, and for how long.

use chrono::{DateTime, Utc};

use super::Memory;
use crate::{
    cache::Observed,
    engine::Bounds,
    policy::{Mode, Policy},
};

/// Until when a workload has nothing to do, decided without I/O or
/// allocation; `None` when it has something now. Nothing to do means: no
/// `recommend`, nothing remembered that needs a follow-up (a window's raise,
/// a recommendation to watch expire, a failed write), and replicas inside
/// the user's bounds (or a mode that never moves them). The executor would
/// do nothing for it either. The answer holds until the bounds could next
/// change by the clock alone ([`quiet_until`]); a change the watch sees
/// ends it sooner ([`crate::cache::Entry::is_quiet`]).
pub(super) fn idle(
    observed: &Observed,
    memory: Option<&Memory>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let Ok(policy) = &observed.policy else {
        // Only a new observation can fix an unparseable policy.
        return Some(DateTime::<Utc>::MAX_UTC);
    };
    let until = quiet_until(policy, now);
    if policy.is_paused(now) {
        return Some(until);
    }
    if policy.recommend.is_some() {
        return None;
    }
    match memory.filter(|m| m.plan.restored) {
        Some(m) => {
            let p = &m.plan;
            if p.raise.is_some() || m.failures > 0 || p.written.is_some() && !p.expired_reported {
                return None;
            }
        }
        // Not yet restored: what the last leader persisted may need work.
        None => {
            if observed.state.is_some() || policy.recommendation.is_some() {
                return None;
            }
        }
    }
    if policy.mode != Mode::Enforce {
        return Some(until);
    }
    let bounds = Bounds::own(policy, now, &mut Vec::new());
    (bounds.lower()..=bounds.upper())
        .contains(&observed.replicas)
        .then_some(until)
}

/// How far ahead a quiet workload's next look is planned at most.
const QUIET_HORIZON_HOURS: i64 = 6;

/// The next instant after `now` at which the clock alone could change what
/// the policy allows: a window's edge or an offset change in its zone
/// ([`crate::policy::Windows::next_change`]), or the end of a suspension.
fn quiet_until(policy: &Policy, now: DateTime<Utc>) -> DateTime<Utc> {
    let horizon = now + chrono::Duration::hours(QUIET_HORIZON_HOURS);
    let mut until = policy.windows.next_change(now, horizon);
    if let Some(end) = policy.suspend_until.filter(|&end| end > now) {
        until = until.min(end);
    }
    until
}

#[cfg(test)]
mod tests;
