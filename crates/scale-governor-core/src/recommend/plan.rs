//! The recommender loop's decision for one workload in one cycle, apart
//! from its I/O: given what the cycle read (a sample or why there is none,
//! the warm pool's pods), what the loop remembers of the workload, its
//! policy and `now`, [`plan`] says which notices to emit, where to move
//! `spec.replicas`, and whether to write the `recommendation` and `state`
//! annotations. The loop's executor samples, writes and reports; this
//! decides, so every rule of the loop is unit-tested here without a
//! cluster.

use chrono::{DateTime, Duration, Utc};

use super::{
    Hold, Recommender, bounded, combine, pool,
    pool::PoolCounts,
    schedule::{self, WindowRaise},
    state::{CounterSample, LoopState, STATE_VERSION, SourceState, StateError},
};
use crate::{
    engine::Bounds,
    policy::{Mode, Policy, RecommendConfig, Recommendation, RecommendationKind},
};

/// What the loop remembers about one workload between cycles, in the
/// leader only; a new leader restores it from the `state` annotation
/// ([`restore`]).
#[derive(Debug, Default)]
pub struct Memory {
    /// Whether [`restore`] ran this leadership.
    pub restored: bool,
    /// The trend strategies' state.
    pub recommender: Option<Recommender>,
    /// The warm pool's hold.
    pub pool_hold: Hold,
    /// A counter source's last raw sample.
    pub counter: Option<CounterSample>,
    /// A raise a window made, to take back when it ends.
    pub raise: Option<WindowRaise>,
    /// The source's health.
    pub source: Option<SourceState>,
    /// The recommendation last written (or found written).
    pub written: Option<Recommendation>,
    /// Whether the expiry of `written` was already reported.
    pub expired_reported: bool,
    /// The state annotation last written (or found).
    pub persisted: Option<String>,
}

/// What this cycle read from the workload's metric source.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    /// The policy reads no metric (a schedule or a warm pool only).
    NotRead,
    /// A value: demand, or a counter's raw value.
    Value(f64),
    /// The source failed; the message says why.
    Failed(String),
}

/// Everything [`plan`] needs besides the memory and `now`.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The workload's policy.
    pub policy: &'a Policy,
    /// Its `spec.replicas`.
    pub current: u32,
    /// Whether the governor made the last change of `spec.replicas`.
    pub replicas_by_governor: bool,
    /// The metric source's answer.
    pub sample: Sample,
    /// The warm pool's pods, when the policy has a pool the loop can count.
    pub pool: Option<PoolCounts>,
    /// Pods ready now (`status.readyReplicas`), when known: with `risk`,
    /// each sample is scored against them.
    pub ready: Option<u32>,
    /// How late the source shows demand: a sample is scored against the
    /// pods ready that long before.
    pub metric_delay: Duration,
    /// Whether pods' deletion costs changed this cycle (a scale-down then
    /// waits a cycle, so the ReplicaSet controller sees them first).
    pub deletion_costs_changed: bool,
}

/// A notice the loop reports as an Event and a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// The strategy behind the recommendation changed.
    StrategyChanged,
    /// The recommendation expired without a new one.
    RecommendationExpired,
    /// The metric source failed.
    SourceFailed,
    /// A failing source answers again.
    SourceRecovered,
    /// The share of time short has stayed above twice the stated risk for
    /// a day.
    RiskMissed,
}

/// One notice, with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Which.
    pub kind: NoticeKind,
    /// What happened, with the numbers.
    pub message: String,
}

/// A move of `spec.replicas` through `/scale`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    /// The count to ask for.
    pub to: u32,
    /// Why, naming the rule or recommendation and the numbers.
    pub reason: String,
}

/// What the executor does for one workload this cycle, in this order:
/// report the notices, make the move, write the annotations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Events and log lines.
    pub notices: Vec<Notice>,
    /// At most one move per cycle.
    pub scale: Option<Scale>,
    /// A scale-down toward the recommendation was put off a cycle for new
    /// deletion costs.
    pub scale_down_waits: bool,
    /// The `state` annotation to write together with the recommendation
    /// in memory; `None`: nothing to write. Once written, the executor
    /// stores it as [`Memory::persisted`].
    pub annotations: Option<String>,
}

/// Brings back what the last leader persisted, once per leadership: the
/// recommendation found on the workload and the `state` annotation. A state
/// that does not read is dropped (the loop starts afresh, which is safe)
/// and its error returned for the log.
pub fn restore(
    memory: &mut Memory,
    annotation: Option<&str>,
    policy: &Policy,
) -> Result<(), StateError> {
    if memory.restored {
        return Ok(());
    }
    memory.restored = true;
    memory.written = policy.recommendation.clone();
    let Some(text) = annotation else {
        return Ok(());
    };
    let saved = LoopState::parse(text)?;
    if let (Some(config), Some(trend)) = (&policy.recommend, saved.trend) {
        memory.recommender = Some(Recommender::resume(config.clone(), trend));
    }
    memory.raise = saved.raise;
    memory.counter = saved.counter;
    memory.source = saved.source;
    memory.persisted = Some(text.to_owned());
    Ok(())
}

/// The cycle's decision for one workload whose policy is in force (not
/// paused) at `now`. Updates `memory` with what the loop learnt.
pub fn plan(memory: &mut Memory, inputs: &Inputs<'_>, now: DateTime<Utc>) -> Plan {
    let policy = inputs.policy;
    let mut plan = Plan::default();
    let fresh = policy
        .recommend
        .as_ref()
        .and_then(|config| recommend(memory, config, inputs, &mut plan.notices, now))
        .map(|r| bounded(r, policy, now));
    let mut write = remember(memory, fresh.as_ref(), &mut plan.notices, now);
    if policy.mode == Mode::Enforce {
        plan.scale = follow(memory, inputs, &mut plan.scale_down_waits, now);
        let schedule = schedule::plan(
            policy,
            inputs.current,
            inputs.replicas_by_governor,
            memory.raise.as_ref(),
            now,
        );
        memory.raise = schedule.raise;
        if plan.scale.is_none() && !plan.scale_down_waits {
            plan.scale = schedule.target.map(|m| Scale {
                to: m.to,
                reason: m.reason,
            });
        }
    }
    // The state annotation rides along with a new recommendation, and is
    // written alone when what it says about a window's raise or the
    // source's health differs from what was last written.
    let persisted = memory
        .persisted
        .as_deref()
        .and_then(|p| LoopState::parse(p).ok());
    let stale = |p: &LoopState| {
        p.raise != memory.raise
            || memory.source.is_some()
                && p.source.as_ref().map(|s| (s.ok, &s.error))
                    != memory.source.as_ref().map(|s| (s.ok, &s.error))
    };
    let differs = match &persisted {
        Some(p) => stale(p),
        None => memory.raise.is_some() || memory.source.is_some(),
    };
    write |= differs;
    if write {
        plan.annotations = Some(state(memory).to_annotation());
    }
    plan
}

/// The recommendation the strategies give this cycle, before the policy's
/// bounds; reports the source's failure or recovery.
fn recommend(
    memory: &mut Memory,
    config: &RecommendConfig,
    inputs: &Inputs<'_>,
    notices: &mut Vec<Notice>,
    now: DateTime<Utc>,
) -> Option<Recommendation> {
    let mut candidates = Vec::new();
    match &inputs.sample {
        Sample::NotRead => {}
        Sample::Value(raw) => {
            if memory.source.as_ref().is_some_and(|s| !s.ok) {
                notices.push(Notice {
                    kind: NoticeKind::SourceRecovered,
                    message: format!("source {} answers again", source_name(config)),
                });
            }
            if memory.source.as_ref().is_none_or(|s| !s.ok) {
                memory.source = Some(SourceState {
                    ok: true,
                    error: None,
                    since: now,
                });
            }
            let demand = if config.counter {
                rate(memory, *raw, now)
            } else {
                Some(*raw)
            };
            let recommender = memory
                .recommender
                .get_or_insert_with(|| Recommender::new(config.clone()));
            if recommender.config() != config {
                recommender.reconfigure(config.clone());
            }
            if let Some(demand) = demand {
                recommender.observe(now, demand);
                if let Some(ready) = inputs.ready {
                    recommender.score(now, ready, demand, inputs.metric_delay);
                }
            }
            candidates.extend(recommender.candidate(inputs.current, now));
            if let Some(message) = recommender.calibration_mut().and_then(|c| c.missed(now)) {
                notices.push(Notice {
                    kind: NoticeKind::RiskMissed,
                    message,
                });
            }
        }
        Sample::Failed(message) => {
            let changed = memory
                .source
                .as_ref()
                .is_none_or(|s| s.ok || s.error.as_deref() != Some(message.as_str()));
            if changed {
                notices.push(Notice {
                    kind: NoticeKind::SourceFailed,
                    message: format!(
                        "source {} failed: {message}; the last recommendation stands until it expires, and nothing is scaled down for want of data",
                        source_name(config)
                    ),
                });
                memory.source = Some(SourceState {
                    ok: false,
                    error: Some(message.clone()),
                    since: now,
                });
            }
        }
    }
    if let (Some(pool), Some(counts)) = (&config.warm_pool, inputs.pool) {
        candidates.push(pool::candidate(
            pool,
            counts,
            &mut memory.pool_hold,
            config.hold_seconds,
            now,
        ));
    }
    combine(candidates, config, now)
}

/// Takes a fresh recommendation into memory when it is worth a write, and
/// reports a change of strategy or the expiry of the last one. Returns
/// whether the annotations need a write.
fn remember(
    memory: &mut Memory,
    fresh: Option<&Recommendation>,
    notices: &mut Vec<Notice>,
    now: DateTime<Utc>,
) -> bool {
    if let Some(next) = fresh {
        if !should_write(memory.written.as_ref(), next, now) {
            return false;
        }
        if let Some(previous) = &memory.written
            && previous.strategy != next.strategy
            && !previous.strategy.is_empty()
        {
            notices.push(Notice {
                kind: NoticeKind::StrategyChanged,
                message: format!(
                    "recommendation by {} now, was {}: {}",
                    next.strategy, previous.strategy, next.reason
                ),
            });
        }
        memory.written = Some(next.clone());
        memory.expired_reported = false;
        return true;
    }
    if let Some(written) = &memory.written
        && !written.is_fresh(now)
        && !memory.expired_reported
    {
        memory.expired_reported = true;
        notices.push(Notice {
            kind: NoticeKind::RecommendationExpired,
            message: format!(
                "the recommendation of {} replicas expired at {}; only the static policy holds",
                written.replicas,
                written.expires_at.to_rfc3339()
            ),
        });
    }
    false
}

/// The move toward a fresh recommendation: a target is followed both ways;
/// a floor above the count is met at once rather than at the next write by
/// someone else. Either goes through `/scale`, where the webhook governs it
/// and the ledger counts it.
fn follow(
    memory: &Memory,
    inputs: &Inputs<'_>,
    waits: &mut bool,
    now: DateTime<Utc>,
) -> Option<Scale> {
    let rec = memory.written.as_ref().filter(|r| r.is_fresh(now))?;
    let current = inputs.current;
    let mut ignored = Vec::new();
    let desired = Bounds::own(inputs.policy, now, &mut ignored)
        .with_recommendation(Some(rec), now, &mut ignored)
        .lower();
    let follows = rec.kind == RecommendationKind::Target || desired > current;
    if !follows || desired == current {
        return None;
    }
    if desired < current && inputs.deletion_costs_changed {
        *waits = true;
        return None;
    }
    Some(Scale {
        to: desired,
        reason: format!(
            "{} recommendation by {}: {} replicas, current {current}",
            match rec.kind {
                RecommendationKind::Target => "target",
                RecommendationKind::Floor => "floor",
            },
            rec.strategy,
            rec.replicas
        ),
    })
}

/// What the `state` annotation says now.
fn state(memory: &Memory) -> LoopState {
    LoopState {
        version: STATE_VERSION,
        trend: memory.recommender.as_ref().and_then(Recommender::summary),
        raise: memory.raise.clone(),
        counter: memory.counter,
        source: memory.source.clone(),
        risk: memory
            .recommender
            .as_ref()
            .and_then(Recommender::calibration)
            .map(|c| c.status()),
    }
}

/// The source's name as the policy gives it.
pub fn source_name(config: &RecommendConfig) -> &str {
    config.source.as_deref().unwrap_or("?")
}

/// Whether a new recommendation is worth a write: a new value, strategy or
/// kind, or the written one is near its expiry. A steady workload writes
/// about three times an hour with the default 30-minute TTL.
pub fn should_write(
    previous: Option<&Recommendation>,
    next: &Recommendation,
    now: DateTime<Utc>,
) -> bool {
    let Some(previous) = previous else {
        return true;
    };
    let ttl = next.expires_at - next.computed_at;
    previous.replicas != next.replicas
        || previous.strategy != next.strategy
        || previous.kind != next.kind
        || previous.expires_at - now < ttl / 3
}

/// A counter's rate since the last sample; `None` for the first sample and
/// after a reset (the counter went down).
fn rate(memory: &mut Memory, raw: f64, now: DateTime<Utc>) -> Option<f64> {
    let previous = memory.counter.replace(CounterSample {
        at: now,
        value: raw,
    })?;
    let seconds = (now - previous.at).num_milliseconds() as f64 / 1000.0;
    (seconds > 0.0 && raw >= previous.value).then(|| (raw - previous.value) / seconds)
}

#[cfg(test)]
mod tests;
