//! The decision engine: one pure function from (policy, ledger, current,
//! requested, actor, now) to a [`Decision`]. The webhook, the recommender,
//! `explain` and `simulate` all call [`decide`].
//!
//! Order, as in the HPA: stabilization, then rate limits over the ledger of
//! every actor's changes, then hard bounds (static ∩ active windows ∩ a fresh
//! recommendation). Bounds win.
//!
//! `deny` refuses what `enforce` would change, except a step toward the
//! bounds from outside them: refusing it could leave a workload outside its
//! bounds for good (scaled to 0 under a floor, by something that only ever
//! asks for one more), and in `enforce` the bounds win over rate rules too.

mod bounds;
pub mod ledger;
mod loosen;
mod rate;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use bounds::Bounds;
pub use ledger::{Change, Ledger, LedgerError, Reads};
pub use loosen::loosenings;

use crate::policy::{Direction, Mode, Policy, ScalingRules};

/// The rule behind a reason; its `as_str` is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// `scale-up` stabilization window.
    ScaleUpStabilization,
    /// `scale-down` stabilization window.
    ScaleDownStabilization,
    /// `scale-up` rate policies.
    ScaleUp,
    /// `scale-down` rate policies.
    ScaleDown,
    /// Static `min-replicas`.
    MinReplicas,
    /// Static `max-replicas`.
    MaxReplicas,
    /// An active time window.
    Window,
    /// A fresh recommendation.
    Recommendation,
}

impl Rule {
    /// Stable label for metrics and Event reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::ScaleUpStabilization => "scale-up-stabilization",
            Rule::ScaleDownStabilization => "scale-down-stabilization",
            Rule::ScaleUp => "scale-up",
            Rule::ScaleDown => "scale-down",
            Rule::MinReplicas => "min-replicas",
            Rule::MaxReplicas => "max-replicas",
            Rule::Window => "window",
            Rule::Recommendation => "recommendation",
        }
    }
}

/// Why a request was changed: the rule and the numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// Which rule.
    pub rule: Rule,
    /// E.g. `scale-up 4 pods/60s: asked 40, allowed 24 (20 at period start)`.
    pub message: String,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What happened to a request, for Events and metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// No rule changed the request.
    Unchanged,
    /// Enforce mode lowered or raised the request.
    Clamped,
    /// Deny mode refused the request.
    Denied,
    /// Deny mode let a step toward the bounds through that stops short of
    /// them: from outside the bounds, the count moves toward them without
    /// reaching them (`0 → 1` under `min-replicas: "2"`).
    Stepped,
    /// Audit mode let a request through that rules would have changed.
    Audited,
    /// Mode `off` or `suspend-until`: no rule was applied.
    Paused,
}

impl Outcome {
    /// Stable label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Unchanged => "unchanged",
            Outcome::Clamped => "clamped",
            Outcome::Denied => "denied",
            Outcome::Stepped => "stepped",
            Outcome::Audited => "audited",
            Outcome::Paused => "paused",
        }
    }

    /// The Kubernetes Event reason, for outcomes worth an Event.
    pub fn event_reason(self) -> Option<&'static str> {
        match self {
            Outcome::Clamped => Some("ScaleClamped"),
            Outcome::Denied => Some("ScaleDenied"),
            Outcome::Stepped => Some("ScaleStepped"),
            Outcome::Audited => Some("ScaleAudited"),
            Outcome::Unchanged | Outcome::Paused => None,
        }
    }
}

/// The engine's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Whether the request is admitted (false only when `deny` refuses it).
    pub allowed: bool,
    /// Replicas the workload ends up with after admission.
    pub replicas: u32,
    /// What the rules allow, whatever the mode does with it.
    pub governed: u32,
    /// Replicas before the request.
    pub current: u32,
    /// Replicas asked for.
    pub requested: u32,
    /// The policy mode that applied.
    pub mode: Mode,
    /// What happened.
    pub outcome: Outcome,
    /// Every rule that changed the request, in the order applied; in
    /// `audit` mode the rules that would have, and for a deny-mode step the
    /// bound it moves toward.
    pub reasons: Vec<Reason>,
    /// Things the user should know that did not change the result.
    pub warnings: Vec<String>,
}

impl Decision {
    /// All reasons joined by `; `, for messages and Events.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (i, reason) in self.reasons.iter().enumerate() {
            if i > 0 {
                out.push_str("; ");
            }
            out.push_str(&reason.message);
        }
        out
    }

    /// The ledger entry this decision adds, if it changes or refuses anything.
    pub fn change(&self, actor: &str, now: DateTime<Utc>) -> Option<Change> {
        (self.requested != self.current || self.replicas != self.current).then(|| Change {
            at: now,
            from: self.current,
            to: self.replicas,
            requested: self.requested,
            actor: actor.into(),
            pending: false,
            watched: false,
            generation: None,
            span: None,
        })
    }
}

/// One replica-change request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// Replicas before the request.
    pub current: u32,
    /// Replicas asked for.
    pub requested: u32,
    /// Who asks; recorded in the ledger, named in reasons.
    pub actor: &'a str,
}

/// Decides one request. Pure: same inputs, same decision.
pub fn decide(
    policy: &Policy,
    ledger: &Ledger,
    request: Request<'_>,
    now: DateTime<Utc>,
) -> Decision {
    let Request {
        current, requested, ..
    } = request;
    let mut decision = Decision {
        allowed: true,
        replicas: requested,
        governed: requested,
        current,
        requested,
        mode: policy.mode,
        outcome: Outcome::Unchanged,
        reasons: Vec::new(),
        warnings: Vec::new(),
    };
    if policy.is_paused(now) {
        decision.outcome = Outcome::Paused;
        if policy.mode != Mode::Off
            && let Some(until) = policy.suspend_until
        {
            decision.warnings.push(format!(
                "policy suspended until {}; request passes unchanged",
                until.to_rfc3339()
            ));
        }
        return decision;
    }

    let bounds = Bounds::at(policy, now, &mut decision.warnings);
    if policy.mode == Mode::Deny
        && let Some((bound, reason)) = bounds.step(current, requested)
    {
        // Bounds win over rate rules, as in enforce mode, where this request
        // would become `bound` whatever the rate rules say; deny mode lets
        // the part of that move that was asked for through.
        decision.governed = bound;
        decision.outcome = Outcome::Stepped;
        decision.reasons.push(reason);
        return decision;
    }

    let mut target = requested;
    let rules = match requested.cmp(&current) {
        std::cmp::Ordering::Greater => policy.scale_up.as_ref(),
        std::cmp::Ordering::Less => policy.scale_down.as_ref(),
        std::cmp::Ordering::Equal => None,
    };
    if let Some(rules) = rules {
        target = apply_rate_rules(
            rules,
            ledger,
            current,
            requested,
            now,
            &mut decision.reasons,
        );
    }
    target = bounds.apply(target, requested, &mut decision.reasons);

    decision.governed = target;
    decision.outcome = match (target == requested, policy.mode) {
        (true, _) => Outcome::Unchanged,
        (false, Mode::Enforce) => Outcome::Clamped,
        (false, Mode::Deny) => Outcome::Denied,
        (false, Mode::Audit | Mode::Off) => Outcome::Audited,
    };
    match decision.outcome {
        Outcome::Clamped => decision.replicas = target,
        Outcome::Denied => {
            decision.allowed = false;
            decision.replicas = current;
        }
        _ => {}
    }
    decision
}

/// Decides a request against several policies in turn, so the result
/// satisfies each: a request that edits a workload's policy is decided by
/// the stored policy and then by the new one, and a looser edit governs
/// only from the next request on. Each policy sees the count the one before
/// it allowed, so a deny-mode step must be a step (or allowed outright) by
/// each. Equal policies are applied once, and a reason two of them give is
/// kept once; an empty list allows the request unchanged.
pub fn decide_all(
    policies: &[&Policy],
    ledger: &Ledger,
    request: Request<'_>,
    now: DateTime<Utc>,
) -> Decision {
    let mut distinct: Vec<&Policy> = Vec::with_capacity(policies.len());
    for policy in policies {
        if !distinct.contains(policy) {
            distinct.push(policy);
        }
    }
    let Some((first, rest)) = distinct.split_first() else {
        return decide(&Policy::default(), ledger, request, now);
    };
    let mut combined = decide(first, ledger, request, now);
    for policy in rest {
        if !combined.allowed {
            break;
        }
        let next = Request {
            requested: combined.replicas,
            ..request
        };
        let d = decide(policy, ledger, next, now);
        if d.outcome == Outcome::Denied && combined.outcome == Outcome::Stepped {
            // The step one policy allowed does not explain the refusal.
            combined.reasons.clear();
        }
        for reason in d.reasons {
            if !combined.reasons.contains(&reason) {
                combined.reasons.push(reason);
            }
        }
        combined.warnings.extend(d.warnings);
        if d.outcome != Outcome::Paused {
            combined.mode = d.mode;
            combined.governed = d.governed;
        }
        combined.allowed = d.allowed;
        combined.replicas = d.replicas;
        combined.outcome = match (combined.outcome, d.outcome) {
            (_, Outcome::Denied) => Outcome::Denied,
            _ if d.replicas != request.requested => Outcome::Clamped,
            (Outcome::Stepped, _) | (_, Outcome::Stepped) => Outcome::Stepped,
            (Outcome::Audited, _) | (_, Outcome::Audited) => Outcome::Audited,
            (Outcome::Paused, Outcome::Paused) => Outcome::Paused,
            _ => Outcome::Unchanged,
        };
    }
    combined
}

fn apply_rate_rules(
    rules: &ScalingRules,
    ledger: &Ledger,
    current: u32,
    requested: u32,
    now: DateTime<Utc>,
    reasons: &mut Vec<Reason>,
) -> u32 {
    let (name, stabilization_rule, rate_rule, verb) = match rules.direction {
        Direction::Up => (
            "scale-up",
            Rule::ScaleUpStabilization,
            Rule::ScaleUp,
            "lowest",
        ),
        Direction::Down => (
            "scale-down",
            Rule::ScaleDownStabilization,
            Rule::ScaleDown,
            "highest",
        ),
    };
    let mut target = requested;
    if let Some(stabilized) = rate::stabilize(rules, ledger, current, requested, now) {
        target = stabilized;
        reasons.push(Reason {
            rule: stabilization_rule,
            message: format!(
                "{name} stabilization {}s: asked {requested}, allowed {target} ({verb} recommendation in the window)",
                rules.stabilization_seconds
            ),
        });
    }
    let Some(limit) = rate::limit(rules, ledger, current, now) else {
        return target;
    };
    let exceeds = match rules.direction {
        Direction::Up => target > limit.replicas,
        Direction::Down => target < limit.replicas,
    };
    if exceeds {
        target = limit.replicas;
        let message = match limit.policy {
            Some(policy) if target == current => format!(
                "{name} {policy}: asked {requested}, allowed {target} (budget spent: {} at period start)",
                limit.period_start
            ),
            Some(policy) => format!(
                "{name} {policy}: asked {requested}, allowed {target} ({} at period start)",
                limit.period_start
            ),
            None => format!(
                "{name} disabled (selectPolicy Disabled): asked {requested}, allowed {target}"
            ),
        };
        reasons.push(Reason {
            rule: rate_rule,
            message,
        });
    }
    target
}

#[cfg(test)]
mod tests;
