//! One workload, once: sample, recommend, write what changed, move
//! replicas where the schedule or a target recommendation says.

use std::time::Instant;

use chrono::{DateTime, Utc};

use super::{
    Loop, Memory, SourceBackoff, backoff,
    state::{CounterSample, LoopState, SourceState},
    write::{self, WriteError},
};
use crate::{
    cache::Entry,
    engine::Bounds,
    leader::FIELD_MANAGER,
    metrics::{SampleLabels, SourceLabels, WriteLabels},
    policy::{Mode, Policy, RecommendConfig, Recommendation, RecommendationKind},
    recommend::{Recommender, bounded, combine, pool, schedule},
    report::{Notice, NoticeKind, Report},
    sources::{SourceError, Target},
    workload::WorkloadKind,
};

/// Evaluates one workload, with its memory taken out of the shared map for
/// the time, and backs off after a failed write.
pub(super) async fn one(state: &Loop, kind: WorkloadKind, key: &str, entry: &Entry) {
    let mut memory = state
        .memories
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_mut(&kind)
        .and_then(|m| m.remove(key))
        .unwrap_or_default();
    let due = memory.next_try.is_none_or(|t| Instant::now() >= t);
    if due {
        match evaluate(state, kind, key, entry, &mut memory).await {
            Ok(()) => {
                memory.failures = 0;
                memory.next_try = None;
            }
            Err(err) => {
                memory.failures += 1;
                let wait = backoff(memory.failures);
                memory.next_try = Some(Instant::now() + wait);
                tracing::warn!(workload = %key, error = %err, retry_in = ?wait, "recommender write failed");
            }
        }
    }
    state
        .memories
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(kind)
        .or_default()
        .insert(key.to_owned(), memory);
}

/// Whether a new recommendation is worth a write: a new value, strategy or
/// kind, or the written one is near its expiry. A steady workload writes
/// about three times an hour with the default 30-minute TTL.
fn should_write(
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

async fn evaluate(
    state: &Loop,
    kind: WorkloadKind,
    key: &str,
    entry: &Entry,
    memory: &mut Memory,
) -> Result<(), WriteError> {
    let observed = entry.observed();
    let Ok(policy) = &observed.policy else {
        return Ok(());
    };
    let now = Utc::now();
    if policy.is_paused(now) {
        return Ok(());
    }
    let (namespace, name) = key.split_once('/').unwrap_or(("", key));
    restore(memory, observed.state.as_deref(), policy, key);
    let current = observed.replicas;
    let deps = &state.deps;
    let notify = |kind_: NoticeKind, message: String| {
        if let Some(events) = &deps.events {
            events.emit(&Report {
                kind,
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                uid: observed.uid.clone(),
                actor: deps.config.identity.clone(),
                dry_run: false,
                repeat: false,
                decision: None,
                notice: Some(Notice {
                    kind: kind_,
                    message,
                }),
            });
        }
        tracing::info!(workload = %key, notice = kind_.event_reason(), "recommender");
    };

    let mut fresh: Option<Recommendation> = None;
    // Deletion costs changed this round: a scale-down waits a round, so the
    // ReplicaSet controller sees them before it picks pods to delete.
    let mut costs_changed = 0;
    if let Some(config) = &policy.recommend {
        let mut candidates = Vec::new();
        super::seasonal::prepare(state, kind, key, config, memory, now).await;
        if config.reads_a_metric() {
            match sample(state, config, namespace, name).await {
                Ok(raw) => {
                    if memory.source.as_ref().is_some_and(|s| !s.ok) {
                        notify(
                            NoticeKind::SourceRecovered,
                            format!("source {} answers again", source_name(config)),
                        );
                    }
                    if memory.source.as_ref().is_none_or(|s| !s.ok) {
                        memory.source = Some(SourceState {
                            ok: true,
                            error: None,
                            since: now,
                        });
                    }
                    let demand = if config.counter {
                        rate(memory, raw, now)
                    } else {
                        Some(raw)
                    };
                    let recommender = memory
                        .recommender
                        .get_or_insert_with(|| Recommender::new(config.clone()));
                    if recommender.config() != config {
                        recommender.reconfigure(config.clone());
                    }
                    if let Some(demand) = demand {
                        recommender.observe(now, demand);
                    }
                    candidates.extend(recommender.candidate(current, now));
                }
                Err(err) => {
                    let message = err.to_string();
                    let changed = memory
                        .source
                        .as_ref()
                        .is_none_or(|s| s.ok || s.error.as_deref() != Some(message.as_str()));
                    if changed {
                        notify(
                            NoticeKind::SourceFailed,
                            format!(
                                "source {} failed: {message}; the last recommendation stands until it expires, and nothing is scaled down for want of data",
                                source_name(config)
                            ),
                        );
                        memory.source = Some(SourceState {
                            ok: false,
                            error: Some(message),
                            since: now,
                        });
                    }
                }
            }
        }
        if let Some(pool) = config
            .warm_pool
            .as_ref()
            .filter(|_| kind == WorkloadKind::Deployment)
        {
            let counts = deps.pods.counts(namespace, name, &pool.reserved);
            candidates.push(pool::candidate(
                pool,
                counts,
                &mut memory.pool_hold,
                config.hold_seconds,
                now,
            ));
            costs_changed = deletion_costs(state, namespace, name, &pool.reserved).await;
        }
        fresh = combine(candidates, config, now).map(|r| bounded(r, policy, now));
    }

    // The recommendation: written when it changes, or before it expires.
    let mut write_annotations = false;
    if let Some(next) = &fresh
        && should_write(memory.written.as_ref(), next, now)
    {
        if let Some(previous) = &memory.written
            && previous.strategy != next.strategy
            && !previous.strategy.is_empty()
        {
            notify(
                NoticeKind::StrategyChanged,
                format!(
                    "recommendation by {} now, was {}: {}",
                    next.strategy, previous.strategy, next.reason
                ),
            );
        }
        memory.written = Some(next.clone());
        memory.expired_reported = false;
        write_annotations = true;
    }
    if fresh.is_none()
        && let Some(written) = &memory.written
        && !written.is_fresh(now)
        && !memory.expired_reported
    {
        memory.expired_reported = true;
        deps.metrics.recommender_expirations.inc();
        notify(
            NoticeKind::RecommendationExpired,
            format!(
                "the recommendation of {} replicas expired at {}; only the static policy holds",
                written.replicas,
                written.expires_at.to_rfc3339()
            ),
        );
    }

    // Moves of spec.replicas: enforce mode only (deny and audit never move).
    let mut moved = false;
    if policy.mode == Mode::Enforce {
        // A target is followed both ways; a floor above the count is met at
        // once rather than at the next write by someone else. Either moves
        // through /scale, where the webhook governs and the ledger counts it.
        if let Some(rec) = memory.written.as_ref().filter(|r| r.is_fresh(now)) {
            let mut ignored = Vec::new();
            let desired = Bounds::own(policy, now, &mut ignored)
                .with_recommendation(Some(rec), now, &mut ignored)
                .lower();
            let follow = rec.kind == RecommendationKind::Target || desired > current;
            if follow && desired < current && costs_changed > 0 {
                tracing::debug!(workload = %key, "scale-down waits for the new deletion costs");
                moved = true;
            } else if follow && desired != current {
                scale(state, kind, namespace, name, desired).await?;
                moved = true;
            }
        }
        let by_governor = observed
            .replicas_writer
            .as_deref()
            .is_some_and(|w| w.starts_with(FIELD_MANAGER));
        let plan = schedule::plan(policy, current, by_governor, memory.raise.as_ref(), now);
        if memory.raise != plan.raise {
            write_annotations = true;
        }
        memory.raise = plan.raise;
        if let Some(target) = plan.target.filter(|_| !moved) {
            tracing::info!(workload = %key, to = target.to, reason = %target.reason, "schedule");
            scale(state, kind, namespace, name, target.to).await?;
        }
    }

    // The state annotation rides along with the writes above, and is written
    // alone when the source's health changed since it was last written.
    let loop_state = LoopState {
        version: super::state::STATE_VERSION,
        trend: memory.recommender.as_ref().and_then(Recommender::summary),
        raise: memory.raise.clone(),
        counter: memory.counter,
        source: memory.source.clone(),
    };
    let persisted_source = memory
        .persisted
        .as_deref()
        .and_then(|p| LoopState::parse(p).ok())
        .and_then(|s| s.source.map(|s| (s.ok, s.error)));
    let now_source = memory.source.as_ref().map(|s| (s.ok, s.error.clone()));
    if persisted_source != now_source && memory.source.is_some() {
        write_annotations = true;
    }
    super::seasonal::persist(state, kind, key, observed.uid.as_deref(), memory, now).await;
    if write_annotations {
        let text = loop_state.to_annotation();
        let result = write::annotations(
            &deps.client,
            kind,
            namespace,
            name,
            memory.written.as_ref(),
            &text,
        )
        .await;
        count_write(state, "recommendation", result.is_ok());
        result?;
        memory.persisted = Some(text);
    }
    Ok(())
}

fn source_name(config: &RecommendConfig) -> &str {
    config.source.as_deref().unwrap_or("?")
}

/// Brings back what the last leader persisted, once per leadership.
fn restore(memory: &mut Memory, annotation: Option<&str>, policy: &Policy, key: &str) {
    if memory.restored {
        return;
    }
    memory.restored = true;
    memory.written = policy.recommendation.clone();
    let Some(text) = annotation else {
        return;
    };
    match LoopState::parse(text) {
        Ok(saved) => {
            if let (Some(config), Some(trend)) = (&policy.recommend, saved.trend) {
                memory.recommender = Some(Recommender::resume(config.clone(), trend));
            }
            memory.raise = saved.raise;
            memory.counter = saved.counter;
            memory.source = saved.source;
            memory.persisted = Some(text.to_owned());
        }
        Err(err) => tracing::warn!(workload = %key, error = %err, "ignoring the state annotation"),
    }
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

/// One sample, unless the source is backing off after failures.
async fn sample(
    state: &Loop,
    config: &RecommendConfig,
    namespace: &str,
    name: &str,
) -> Result<f64, SourceError> {
    let source = source_name(config).to_owned();
    let backing_off = state
        .sources
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&source)
        .and_then(|b| b.next_try)
        .is_some_and(|t| Instant::now() < t);
    if backing_off {
        return Err(SourceError::Transport(
            "backing off after failures".to_owned(),
        ));
    }
    let started = Instant::now();
    let result = state
        .deps
        .sources
        .sample(&state.deps.http, config, Target { namespace, name })
        .await;
    let m = &state.deps.metrics;
    m.recommender_sample_duration
        .get_or_create(&SourceLabels {
            source: source.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    m.recommender_samples
        .get_or_create(&SampleLabels {
            source: source.clone(),
            result: result.as_ref().map_or_else(SourceError::kind, |_| "ok"),
        })
        .inc();
    let mut sources = state.sources.lock().unwrap_or_else(|p| p.into_inner());
    let b = sources.entry(source).or_default();
    match &result {
        Ok(_) => *b = SourceBackoff::default(),
        // A source that answers wrongly (no series, NaN) is not down: only
        // transport failures and timeouts back off.
        Err(SourceError::Timeout(_) | SourceError::Transport(_) | SourceError::Status { .. }) => {
            b.failures += 1;
            b.next_try = Some(Instant::now() + backoff(b.failures));
        }
        Err(_) => {}
    }
    result
}

async fn scale(
    state: &Loop,
    kind: WorkloadKind,
    namespace: &str,
    name: &str,
    to: u32,
) -> Result<(), WriteError> {
    let result = write::scale(&state.deps.client, kind, namespace, name, to).await;
    count_write(state, "scale", result.is_ok());
    result.map(drop)
}

/// Keeps reserved pods last in line for deletion; writes only what changed,
/// and returns how many it changed.
async fn deletion_costs(state: &Loop, namespace: &str, pool: &str, reserved_key: &str) -> usize {
    let mut changed = 0;
    for pod in state.deps.pods.pods(namespace, pool, reserved_key) {
        let wanted = pool::deletion_cost(pod.reserved);
        if pod.cost.as_deref() == Some(wanted) {
            continue;
        }
        let result = write::deletion_cost(&state.deps.client, namespace, &pod.name, wanted).await;
        count_write(state, "deletion-cost", result.is_ok());
        match result {
            Ok(()) => changed += 1,
            Err(err) => {
                tracing::warn!(pod = %pod.name, error = %err, "setting the pod's deletion cost failed")
            }
        }
    }
    changed
}

pub(super) fn count_write(state: &Loop, kind: &'static str, ok: bool) {
    state
        .deps
        .metrics
        .recommender_writes
        .get_or_create(&WriteLabels {
            kind,
            result: if ok { "ok" } else { "error" },
        })
        .inc();
}

#[cfg(test)]
mod tests;
