//! One workload, once: the executor around [`plan::plan`]. It reads what
//! the plan needs (the source's sample, the warm pool's pods), sets pods'
//! deletion costs, and carries out the plan: Events and log lines, the
//! move through `/scale`, the annotations.

use std::time::Instant;

use super::{
    Loop, Memory, SourceBackoff, backoff,
    write::{self, WriteError},
};
use crate::{
    cache::Entry,
    leader::FIELD_MANAGER,
    metrics::{SampleLabels, SourceLabels, WorkloadLabels},
    policy::RecommendConfig,
    recommend::{
        plan::{self, Sample},
        pool,
    },
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

/// Reads what the plan needs, asks [`plan::plan`] what to do, and does it:
/// notices, then the move, then the seasonal history and the annotations.
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
    let now = crate::clock::now();
    if policy.is_paused(now) {
        return Ok(());
    }
    let (namespace, name) = key.split_once('/').unwrap_or(("", key));
    if let Err(err) = plan::restore(&mut memory.plan, observed.state.as_deref(), policy) {
        tracing::warn!(workload = %key, error = %err, "ignoring the state annotation");
    }
    let mut inputs = plan::Inputs {
        policy,
        current: observed.replicas,
        replicas_by_governor: observed
            .replicas_writer
            .as_deref()
            .is_some_and(|w| w.starts_with(FIELD_MANAGER)),
        sample: Sample::NotRead,
        pool: None,
        ready: observed.ready,
        // The source's sample is read once a period, so the demand it shows
        // arrived up to a period before: each sample is scored against the
        // pods ready then, not against those started for it since.
        metric_delay: chrono::Duration::from_std(state.deps.config.interval)
            .unwrap_or_else(|_| chrono::Duration::zero()),
        deletion_costs_changed: false,
    };
    if let Some(config) = &policy.recommend {
        super::seasonal::prepare(state, kind, key, config, memory, now).await;
        if config.reads_a_metric() {
            inputs.sample = match sample(state, config, namespace, name).await {
                Ok(raw) => Sample::Value(raw),
                Err(err) => Sample::Failed(err.to_string()),
            };
        }
        if let Some(pool) = config
            .warm_pool
            .as_ref()
            .filter(|_| kind == WorkloadKind::Deployment)
        {
            inputs.pool = Some(state.deps.pods.counts(namespace, name, &pool.reserved));
            inputs.deletion_costs_changed =
                deletion_costs(state, namespace, name, &pool.reserved).await > 0;
        }
    }
    let plan = plan::plan(&mut memory.plan, &inputs, now);

    let deps = &state.deps;
    deps.metrics.recommender.show_risk(
        &risk_labels(kind, namespace, name),
        memory
            .plan
            .recommender
            .as_ref()
            .and_then(|r| r.calibration())
            .map(|c| c.status()),
    );
    for notice in plan.notices {
        let reason = NoticeKind::from(notice.kind);
        if reason == NoticeKind::RecommendationExpired {
            deps.metrics.recommender.expirations.inc();
        }
        tracing::info!(workload = %key, notice = reason.event_reason(), message = %notice.message, "recommender");
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
                notices: vec![Notice {
                    kind: reason,
                    message: notice.message,
                }],
            });
        }
    }
    if plan.scale_down_waits {
        tracing::debug!(workload = %key, "scale-down waits for the new deletion costs");
    }
    if let Some(to) = plan.scale {
        tracing::info!(workload = %key, to = to.to, reason = %to.reason, "recommender scales");
        let result = write::scale(&deps.client, kind, namespace, name, to.to).await;
        write::count(&deps.metrics, "scale", result.is_ok());
        result?;
    }
    super::seasonal::persist(state, kind, key, observed.uid.as_deref(), memory, now).await;
    if let Some(text) = plan.annotations {
        let written = memory.plan.written.as_ref();
        let result = write::annotations(&deps.client, kind, namespace, name, written, &text).await;
        write::count(&deps.metrics, "recommendation", result.is_ok());
        result?;
        memory.plan.persisted = Some(text);
    }
    Ok(())
}

/// The labels of one workload's `risk` series.
pub(super) fn risk_labels(kind: WorkloadKind, namespace: &str, name: &str) -> WorkloadLabels {
    WorkloadLabels {
        kind: kind.resource(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}

/// One sample, unless the source is backing off after failures.
async fn sample(
    state: &Loop,
    config: &RecommendConfig,
    namespace: &str,
    name: &str,
) -> Result<f64, SourceError> {
    let source = plan::source_name(config).to_owned();
    let backing_off = state
        .sources
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&source)
        .and_then(|b| b.next_try)
        .is_some_and(|t| Instant::now() < t);
    if backing_off {
        return Err(SourceError::BackingOff);
    }
    let started = Instant::now();
    let result = state
        .deps
        .sources
        .sample(&state.deps.http, config, Target { namespace, name })
        .await;
    let m = &state.deps.metrics;
    m.recommender
        .sample_duration
        .get_or_create(&SourceLabels {
            source: source.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    m.recommender
        .samples
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
        write::count(&state.deps.metrics, "deletion-cost", result.is_ok());
        match result {
            Ok(()) => changed += 1,
            Err(err) => {
                tracing::warn!(pod = %pod.name, error = %err, "setting the pod's deletion cost failed")
            }
        }
    }
    changed
}
