//! Hard bounds at an instant: static min/max ∩ active windows ∩ a fresh
//! recommendation. Each bound remembers the rule that set it, so a clamp can
//! name that rule.

use std::fmt;

use chrono::{DateTime, Utc};

use super::{Reason, Rule};
use crate::{
    policy::{MAX_REPLICA_COUNT, Policy, Recommendation, RecommendationKind, Window},
    quoting,
};

/// How much of a recommendation's reason a reason quotes: the governor's
/// own (a seasonal forecast's) run to a few hundred characters.
const MAX_QUOTED_REASON: usize = 400;

/// Which rule set a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source<'p> {
    Unbounded,
    MinReplicas,
    MaxReplicas,
    Window(&'p Window),
    Recommendation(&'p Recommendation),
}

/// The bounds in force at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds<'p> {
    lower: u32,
    lower_by: Source<'p>,
    upper: u32,
    upper_by: Source<'p>,
}

impl<'p> Bounds<'p> {
    /// Folds every bound that applies at `now`. A contradiction between the
    /// user's bounds (a window floor above another window's ceiling) is
    /// resolved for the ceiling, with a warning: ceilings usually protect
    /// something that cannot take more. A recommendation is then clamped
    /// into what is left, so it can never break a user's bound.
    pub fn at(policy: &'p Policy, now: DateTime<Utc>, warnings: &mut Vec<String>) -> Bounds<'p> {
        Bounds::own(policy, now, warnings).with_recommendation(
            policy.recommendation.as_ref(),
            now,
            warnings,
        )
    }

    /// The user's own bounds at `now`: static min/max ∩ active windows,
    /// without the recommendation (what the schedule moves replicas into).
    pub fn own(policy: &'p Policy, now: DateTime<Utc>, warnings: &mut Vec<String>) -> Bounds<'p> {
        let mut b = Bounds {
            lower: 0,
            lower_by: Source::Unbounded,
            upper: MAX_REPLICA_COUNT,
            upper_by: Source::Unbounded,
        };
        if let Some(min) = policy.min_replicas {
            b.raise(min, Source::MinReplicas);
        }
        if let Some(max) = policy.max_replicas {
            b.lower_ceiling(max, Source::MaxReplicas);
        }
        for window in policy.windows.active(now) {
            if let Some(min) = window.bounds.min {
                b.raise(min, Source::Window(window));
            }
            if let Some(max) = window.bounds.max {
                b.lower_ceiling(max, Source::Window(window));
            }
        }
        if b.lower > b.upper {
            warnings.push(format!(
                "bounds contradict: floor {} from {} is above ceiling {} from {}; the ceiling wins",
                b.lower, b.lower_by, b.upper, b.upper_by
            ));
            b.lower = b.upper;
            b.lower_by = b.upper_by;
        }
        b
    }

    /// These bounds with `recommendation` applied, when it is fresh: a
    /// recommendation moves within the user's bounds, never past them.
    pub fn with_recommendation(
        mut self,
        recommendation: Option<&'p Recommendation>,
        now: DateTime<Utc>,
        warnings: &mut Vec<String>,
    ) -> Bounds<'p> {
        let b = &mut self;
        if let Some(rec) = recommendation {
            if rec.is_fresh(now) {
                let replicas = rec.replicas.clamp(b.lower, b.upper);
                if replicas != rec.replicas {
                    let (bound, by) = if rec.replicas > b.upper {
                        ("ceiling", b.upper_by)
                    } else {
                        ("floor", b.lower_by)
                    };
                    warnings.push(format!(
                        "recommendation of {} replicas is outside the {bound} {replicas} from {by}; using {replicas}",
                        rec.replicas
                    ));
                }
                b.raise(replicas, Source::Recommendation(rec));
                if rec.kind == RecommendationKind::Target {
                    b.lower_ceiling(replicas, Source::Recommendation(rec));
                }
            } else {
                warnings.push(format!(
                    "recommendation of {} replicas expired at {}; ignored",
                    rec.replicas,
                    rec.expires_at.to_rfc3339()
                ));
            }
        }
        self
    }

    /// The lowest replica count allowed.
    pub fn lower(&self) -> u32 {
        self.lower
    }

    /// The highest replica count allowed.
    pub fn upper(&self) -> u32 {
        self.upper
    }

    /// What set each bound, in words: `window "…"` or `min-replicas 3`.
    pub fn describe(&self) -> (String, String) {
        let name = |by: Source<'_>, n: u32| match by {
            Source::MinReplicas | Source::MaxReplicas => format!("{by} {n}"),
            other => other.to_string(),
        };
        (
            name(self.lower_by, self.lower),
            name(self.upper_by, self.upper),
        )
    }

    /// Clamps `target` into the bounds, adding a reason when it moves.
    pub(crate) fn apply(&self, target: u32, requested: u32, reasons: &mut Vec<Reason>) -> u32 {
        let (allowed, by) = if target < self.lower {
            (self.lower, self.lower_by)
        } else if target > self.upper {
            (self.upper, self.upper_by)
        } else {
            return target;
        };
        reasons.push(Reason {
            rule: by.rule(),
            message: format!(
                "{}: asked {requested}, allowed {allowed}",
                by.named(allowed)
            ),
        });
        allowed
    }

    /// A step toward the bounds from outside them that stops short of them:
    /// `requested` is above `current` but still below the floor, or below
    /// `current` but still above the ceiling. Returns the bound it moves
    /// toward and the reason that names it; `None` for any other request
    /// (one that stays, moves away, or reaches or passes a bound).
    pub(crate) fn step(&self, current: u32, requested: u32) -> Option<(u32, Reason)> {
        let (bound, by, side) = if current < requested && requested < self.lower {
            (self.lower, self.lower_by, "below the floor")
        } else if self.upper < requested && requested < current {
            (self.upper, self.upper_by, "above the ceiling")
        } else {
            return None;
        };
        let reason = Reason {
            rule: by.rule(),
            message: format!(
                "{}: asked {requested} (current {current}), still {side} {bound}; allowed as a step toward it",
                by.named(bound)
            ),
        };
        Some((bound, reason))
    }

    fn raise(&mut self, min: u32, by: Source<'p>) {
        if min > self.lower {
            self.lower = min;
            self.lower_by = by;
        }
    }

    fn lower_ceiling(&mut self, max: u32, by: Source<'p>) {
        if max < self.upper {
            self.upper = max;
            self.upper_by = by;
        }
    }
}

impl Source<'_> {
    /// The rule a bound from this source is reported under.
    fn rule(self) -> Rule {
        match self {
            Source::MinReplicas | Source::Unbounded => Rule::MinReplicas,
            Source::MaxReplicas => Rule::MaxReplicas,
            Source::Window(_) => Rule::Window,
            Source::Recommendation(_) => Rule::Recommendation,
        }
    }

    /// How a reason names this source of the bound `bound`: `min-replicas
    /// 3`, `window "…"` or `recommendation floor 12 (why)`.
    fn named(self, bound: u32) -> String {
        match self {
            Source::Recommendation(rec) => {
                let kind = match rec.kind {
                    RecommendationKind::Floor => "floor",
                    RecommendationKind::Target => "target",
                };
                match rec.reason.as_str() {
                    "" => format!("recommendation {kind} {}", rec.replicas),
                    // Only the governor's own is kept (`vet_recommendation`),
                    // but a reason is text in an annotation: escaped, bounded.
                    why => format!(
                        "recommendation {kind} {} ({})",
                        rec.replicas,
                        quoting::escape(why, MAX_QUOTED_REASON)
                    ),
                }
            }
            Source::Window(_) => self.to_string(),
            Source::MinReplicas | Source::MaxReplicas | Source::Unbounded => {
                format!("{self} {bound}")
            }
        }
    }
}

impl fmt::Display for Bounds<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {}]", self.lower, self.upper)
    }
}

impl fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Unbounded => f.write_str("no rule"),
            Source::MinReplicas => f.write_str("min-replicas"),
            Source::MaxReplicas => f.write_str("max-replicas"),
            Source::Window(w) => write!(f, "window {}", w.quoted()),
            Source::Recommendation(r) => write!(f, "recommendation {}", r.replicas),
        }
    }
}
