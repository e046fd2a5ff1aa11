//! The seasonal strategy's history in the loop: brought back once per
//! leadership (from the summary the last leader stored beside the ledger,
//! then from the source's own history where it keeps one), and stored again
//! every `serve --summary-interval`.
//!
//! Stored: one key, `seasonal`, in the workload's ledger ConfigMap, about
//! 32 KB (two weeks of 5-minute bins), once an interval (1 h by default),
//! by the leader alone. A leader change loses at most that interval of
//! history, which the backfill fills again when the source is Prometheus.

use chrono::{DateTime, Duration, Utc};

use super::{Loop, Memory, write};
use crate::{
    ledgers,
    policy::{RecommendConfig, Trend},
    recommend::{
        Recommender,
        seasonal::{
            BIN_SECONDS, DAY_BINS, KEEP_BINS, Seasonal, WEEK_BINS, summary::SeasonalSummary,
        },
    },
    sources::Target,
    workload::WorkloadKind,
};

/// The step of a backfill: what a loop period is at most, and 20,160
/// points for two weeks (two Prometheus requests).
const BACKFILL_STEP_SECONDS: i64 = 60;

/// Brings the history back, once per leadership, before the first sample:
/// the stored summary, then, with less than a week of it, the source's own
/// history. Waits for the ledger objects' first list, so a summary not yet
/// seen is never overwritten by a blank one. A backfill that fails is tried
/// again with the sources' back-off (1 s doubling to 5 minutes), once the
/// source's live samples answer, so a Prometheus that was down when the
/// leader started still fills the history once it is back.
pub(super) async fn prepare(
    state: &Loop,
    kind: WorkloadKind,
    key: &str,
    config: &RecommendConfig,
    memory: &mut Memory,
    now: DateTime<Utc>,
) {
    if config.trend != Trend::Seasonal || !state.deps.cache.is_synced() {
        return;
    }
    if !memory.seasonal_ready {
        memory.seasonal_ready = true;
        // The first store comes an interval from now: what was just read is
        // stored already.
        memory.seasonal_saved = Some(now);
        memory.backfill_due = Some(now);
        memory.backfill_failures = 0;
        let recommender = memory
            .plan
            .recommender
            .get_or_insert_with(|| Recommender::new(config.clone()));
        let stored = state
            .deps
            .cache
            .persisted(kind, key)
            .and_then(|p| p.seasonal.clone());
        if let Some(text) = stored {
            match SeasonalSummary::parse(&text).and_then(|s| s.restore(now, config.lead_seconds)) {
                Ok(history) => {
                    tracing::info!(workload = %key, bins = history.filled_bins(), "seasonal history restored");
                    recommender.restore_seasonal(history);
                }
                Err(err) => {
                    tracing::warn!(workload = %key, error = %err, "dropping the stored seasonal summary")
                }
            }
        }
    }
    // A retry waits for the source's live samples to answer: while it is
    // down they already pay its timeouts, and a range query would add four.
    let answering = memory.plan.source.as_ref().is_none_or(|s| s.ok);
    if answering && memory.backfill_due.is_some_and(|due| now >= due) {
        backfill(state, key, config, memory, now).await;
    }
}

/// With less than eight days of history, asks the source for two weeks.
async fn backfill(
    state: &Loop,
    key: &str,
    config: &RecommendConfig,
    memory: &mut Memory,
    now: DateTime<Utc>,
) {
    let recommender = memory
        .plan
        .recommender
        .get_or_insert_with(|| Recommender::new(config.clone()));
    let have = recommender.seasonal().map_or(0, Seasonal::filled_bins);
    if have as i64 >= WEEK_BINS + DAY_BINS {
        memory.backfill_due = None;
        return;
    }
    let (namespace, name) = key.split_once('/').unwrap_or(("", key));
    let span = (now - Duration::seconds(KEEP_BINS as i64 * BIN_SECONDS), now);
    let result = state
        .deps
        .sources
        .sample_range(
            &state.deps.http,
            config,
            Target { namespace, name },
            span,
            BACKFILL_STEP_SECONDS,
        )
        .await;
    match result {
        Ok(Some(points)) => {
            memory.backfill_due = None;
            let backfilled = Seasonal::from_samples(config.lead_seconds, &points);
            let got = backfilled.filled_bins();
            tracing::info!(workload = %key, points = points.len(), bins = got, had = have, attempts = memory.backfill_failures + 1, "seasonal history backfilled from the source");
            if got > have {
                recommender.restore_seasonal(backfilled);
            }
        }
        // HTTP JSON keeps no history: the velocity strategy answers until
        // a day has been collected.
        Ok(None) => memory.backfill_due = None,
        Err(err) => {
            memory.backfill_failures += 1;
            let wait = super::backoff(memory.backfill_failures);
            memory.backfill_due =
                Some(now + Duration::from_std(wait).unwrap_or(Duration::minutes(5)));
            // One warning per leadership; the retries are at DEBUG.
            if memory.backfill_failures == 1 {
                tracing::warn!(workload = %key, error = %err, retry_in = ?wait, "backfilling the seasonal history failed; collecting it from now on, and asking the source again with back-off")
            } else {
                tracing::debug!(workload = %key, error = %err, retry_in = ?wait, attempts = memory.backfill_failures, "backfilling the seasonal history failed again")
            }
        }
    }
}

/// Stores the history beside the ledger once an interval has passed since
/// the last store.
pub(super) async fn persist(
    state: &Loop,
    kind: WorkloadKind,
    key: &str,
    uid: Option<&str>,
    memory: &mut Memory,
    now: DateTime<Utc>,
) {
    if !memory.seasonal_ready {
        return;
    }
    let interval = Duration::from_std(state.deps.config.summary_interval)
        .unwrap_or_else(|_| Duration::hours(1));
    if memory.seasonal_saved.is_some_and(|t| now - t < interval) {
        return;
    }
    let Some(summary) = memory
        .plan
        .recommender
        .as_ref()
        .and_then(Recommender::seasonal)
        .and_then(Seasonal::summary)
    else {
        return;
    };
    let outcome = ledgers::write_seasonal(
        &state.deps.ledger_api,
        &state.deps.cache,
        kind,
        key,
        uid,
        &summary.to_text(),
        now,
    )
    .await;
    let ok = outcome == ledgers::Outcome::Written;
    write::count(&state.deps.metrics, "seasonal", ok);
    if ok {
        memory.seasonal_saved = Some(now);
    }
}
