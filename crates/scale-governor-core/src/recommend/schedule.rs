//! Time windows as a strategy: a user who writes `Mon-Fri 08:00-20:00
//! Europe/Berlin min=4` expects 4 pods at 08:00 even if nobody scales. The
//! loop is level-triggered: whenever replicas lie outside the bounds in
//! force (a window opened, or the governor restarted mid-window), it moves
//! them in. When a window that raised them ends, it returns them to the
//! count before the window (or the new floor, if higher), unless another
//! actor changed replicas meanwhile; with a `recommend` source the
//! recommendation governs instead. Every move is a `/scale` write through
//! the webhook, so the scale-down rules pace the way back.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    engine::Bounds,
    policy::{MAX_REPLICA_COUNT, Policy},
};

/// What the loop remembers about a raise it made for a window, persisted in
/// the governor's state annotation so a new leader can take it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowRaise {
    /// Replicas before the window raised them.
    pub from: u32,
    /// What the window raised them to.
    pub to: u32,
    /// When.
    pub at: DateTime<Utc>,
}

/// A move of `spec.replicas` the loop should make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// The count to ask for.
    pub to: u32,
    /// Why, naming the window or bound and the numbers.
    pub reason: String,
}

/// The loop's plan for one workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The move to make now, if any.
    pub target: Option<Move>,
    /// What to remember from now on.
    pub raise: Option<WindowRaise>,
}

/// Plans the schedule's move at `now` for a workload at `current`
/// replicas. `last_write_by_governor` says whether the governor made the
/// last change of `spec.replicas` (from `managedFields`).
pub fn plan(
    policy: &Policy,
    current: u32,
    last_write_by_governor: bool,
    raise: Option<&WindowRaise>,
    now: DateTime<Utc>,
) -> Plan {
    // The recommendation binds through the webhook; the schedule moves by
    // the user's own bounds.
    let bounds = Bounds::own(policy, now, &mut Vec::new());
    let (lower, upper) = (bounds.lower(), bounds.upper());
    if current < lower {
        let from = raise.map_or(current, |r| r.from);
        return Plan {
            target: Some(Move {
                to: lower,
                reason: format!(
                    "{} requires at least {lower}: raising {current} to {lower}",
                    bounds.describe().0
                ),
            }),
            raise: Some(WindowRaise {
                from,
                to: lower,
                at: raise.map_or(now, |r| r.at),
            }),
        };
    }
    if current > upper {
        let upper_text = if upper == MAX_REPLICA_COUNT {
            "unbounded".to_owned()
        } else {
            upper.to_string()
        };
        return Plan {
            target: Some(Move {
                to: upper,
                reason: format!(
                    "{} allows at most {upper_text}: lowering {current} to {upper}",
                    bounds.describe().1
                ),
            }),
            raise: None,
        };
    }
    let Some(raise) = raise else {
        return Plan {
            target: None,
            raise: None,
        };
    };
    // Someone else scaled since (an HPA, a person): their count stands.
    // With a recommend source, the recommendation governs the way back.
    if !last_write_by_governor || policy.recommend.is_some() {
        return Plan {
            target: None,
            raise: None,
        };
    }
    if lower >= raise.to {
        // The window (or a later one) still holds the floor.
        return Plan {
            target: None,
            raise: Some(raise.clone()),
        };
    }
    let back = raise.from.max(lower).min(upper);
    if current <= back {
        return Plan {
            target: None,
            raise: None,
        };
    }
    Plan {
        target: Some(Move {
            to: back,
            reason: format!(
                "the window that raised {} to {} has ended: returning to {back}",
                raise.from, raise.to
            ),
        }),
        // Kept until the way back is done: the scale-down rules may pace it.
        raise: Some(raise.clone()),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::policy::keys;

    fn policy(pairs: &[(&str, &str)]) -> Policy {
        Policy::from_annotations(pairs.iter().copied()).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_window_raises_then_returns_to_the_count_before_it() {
        // Monday 2026-11-23, 08:00-20:00 UTC.
        let p = policy(&[
            (keys::MIN_REPLICAS, "1"),
            (keys::WINDOWS, "Mon-Fri 08:00-20:00 UTC min=4"),
        ]);
        let open = at("2026-11-23T08:00:05Z");
        let plan1 = plan(&p, 2, false, None, open);
        assert_eq!(
            plan1.target,
            Some(Move {
                to: 4,
                reason:
                    "window \"Mon-Fri 08:00-20:00 UTC min=4\" requires at least 4: raising 2 to 4"
                        .into()
            })
        );
        let raise = plan1.raise.unwrap();
        assert_eq!((raise.from, raise.to), (2, 4));
        // Inside the window, at the floor: nothing to do, still remembered.
        let mid = plan(&p, 4, true, Some(&raise), open + Duration::hours(2));
        assert_eq!((mid.target, mid.raise.as_ref()), (None, Some(&raise)));
        // The window ends: back to 2, and remembered until there.
        let closed = at("2026-11-23T20:00:01Z");
        let back = plan(&p, 4, true, Some(&raise), closed);
        assert_eq!(back.target.unwrap().to, 2);
        let halfway = plan(&p, 3, true, Some(&raise), closed + Duration::seconds(60));
        assert_eq!(
            halfway.target.unwrap().to,
            2,
            "paced by scale-down, still going"
        );
        let done = plan(&p, 2, true, Some(&raise), closed + Duration::seconds(120));
        assert_eq!((done.target, done.raise), (None, None));
    }

    #[test]
    fn another_actors_count_stands_and_a_maximum_lowers() {
        let p = policy(&[(keys::WINDOWS, "Mon-Fri 08:00-20:00 UTC min=4")]);
        let raise = WindowRaise {
            from: 2,
            to: 4,
            at: at("2026-11-23T08:00:00Z"),
        };
        // The HPA scaled to 9 during the window: at its end, nothing moves.
        let after = plan(&p, 9, false, Some(&raise), at("2026-11-23T20:00:01Z"));
        assert_eq!((after.target, after.raise), (None, None));
        // A night window's maximum lowers a workload above it.
        let night = policy(&[(keys::WINDOWS, "Mon-Sun 23:00-05:00 UTC max=6")]);
        let lower = plan(&night, 10, false, None, at("2026-11-23T23:00:30Z"));
        assert_eq!(
            lower.target,
            Some(Move {
                to: 6,
                reason:
                    "window \"Mon-Sun 23:00-05:00 UTC max=6\" allows at most 6: lowering 10 to 6"
                        .into()
            })
        );
        // Outside every window and with no memory: nothing to do.
        assert_eq!(
            plan(&night, 10, false, None, at("2026-11-23T12:00:00Z")).target,
            None
        );
        // A static floor is a bound too (a workload created below it).
        let floor = policy(&[(keys::MIN_REPLICAS, "3")]);
        let up = plan(&floor, 1, false, None, at("2026-11-23T12:00:00Z"));
        assert_eq!(
            up.target.unwrap().reason,
            "min-replicas 3 requires at least 3: raising 1 to 3"
        );
    }
}
