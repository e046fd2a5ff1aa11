//! The seasonal strategy's history, and a stated risk's calibration, in the
//! loop: brought back once per leadership (from the summaries the last
//! leader stored beside the ledger, then, for the history, from the
//! source's own history where it keeps one), and stored again every
//! `serve --summary-interval`.
//!
//! Stored: one key, `seasonal`, in the workload's ledger ConfigMap, about
//! 32 KB (two weeks of 5-minute bins), once an interval (1 h by default),
//! by the leader alone. A leader change loses at most that interval of
//! history, which the backfill fills again when the source is Prometheus.
//! With `risk`, the key `risk` beside it (a few KB, a day of 5-minute
//! bins) is stored with it: a new leader carries on with the headroom and
//! the day's shortfalls, losing at most the interval's.

use chrono::{DateTime, Duration, Utc};

use super::{Loop, Memory, write};
use crate::{
    cache::Persisted,
    ledgers,
    policy::{RecommendConfig, Trend},
    recommend::{
        Recommender,
        risk::RiskSummary,
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
    let seasonal = config.trend == Trend::Seasonal;
    if !(seasonal || config.risk().is_some()) || !state.deps.cache.is_synced() {
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
        let stored = state.deps.cache.persisted(kind, key);
        restore_risk(recommender, key, config, stored.as_deref(), now);
        let stored = stored.and_then(|p| p.seasonal.clone()).filter(|_| seasonal);
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
    if seasonal && answering && memory.backfill_due.is_some_and(|due| now >= due) {
        backfill(state, key, config, memory, now).await;
    }
}

/// With `risk`, brings back the calibration the last leader stored, so the
/// headroom and the day's shortfalls carry on; one that does not read is
/// dropped with a warning, and the calibration starts afresh.
fn restore_risk(
    recommender: &mut Recommender,
    key: &str,
    config: &RecommendConfig,
    stored: Option<&Persisted>,
    now: DateTime<Utc>,
) {
    let (Some(stated), Some(text)) = (config.risk(), stored.and_then(|p| p.risk.as_deref())) else {
        return;
    };
    match RiskSummary::parse(text).and_then(|s| s.restore(now, stated)) {
        Ok(calibration) => {
            tracing::info!(workload = %key, fraction = calibration.fraction(), "risk calibration restored");
            recommender.restore_calibration(calibration);
        }
        Err(err) => {
            tracing::warn!(workload = %key, error = %err, "dropping the stored risk calibration")
        }
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

/// Stores the history and the calibration beside the ledger once an
/// interval has passed since the last store.
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
    let Some(recommender) = memory.plan.recommender.as_ref() else {
        return;
    };
    let seasonal = recommender
        .seasonal()
        .and_then(Seasonal::summary)
        .map(|s| s.to_text());
    let risk = recommender.calibration().map(|c| c.summary().to_text());
    if seasonal.is_none() && risk.is_none() {
        return;
    }
    let summaries = ledgers::Summaries {
        seasonal: seasonal.as_deref(),
        risk: risk.as_deref(),
    };
    let outcome = ledgers::write_summaries(
        &state.deps.ledger_api,
        &state.deps.cache,
        kind,
        key,
        uid,
        summaries,
        now,
    )
    .await;
    let ok = outcome == ledgers::Outcome::Written;
    write::count(&state.deps.metrics, "seasonal", ok);
    if ok {
        memory.seasonal_saved = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Ledger;

    fn persisted(risk: Option<&str>) -> Persisted {
        Persisted {
            name: "ledger".into(),
            resource_version: None,
            uid: None,
            ledger: Ledger::new(),
            seasonal: None,
            risk: risk.map(std::sync::Arc::from),
        }
    }

    #[test]
    fn a_stored_calibration_carries_on_under_the_risk_stated_now() {
        let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let at = |risk: &str| {
            RecommendConfig::parse(&format!(r#"{{"targetPerPod":10,"risk":"{risk}"}}"#)).unwrap()
        };
        // The last leader's calibration, after a run of shortfalls.
        let mut old = Recommender::new(at("1%"));
        for i in 0..40 {
            old.score(
                now - Duration::seconds(600 - 15 * i),
                1,
                100.0,
                Duration::zero(),
            );
        }
        let fraction = old.calibration().unwrap().fraction();
        assert!(fraction > crate::recommend::risk::START, "{fraction}");
        let text = old.calibration().unwrap().summary().to_text();
        // A new leader, the annotation now stating 2 %.
        let mut new = Recommender::new(at("2%"));
        restore_risk(
            &mut new,
            "shop/web",
            &at("2%"),
            Some(&persisted(Some(&text))),
            now,
        );
        let c = new.calibration().unwrap();
        assert_eq!((c.fraction(), c.stated()), (fraction, 0.02));
        assert!(c.achieved().is_some_and(|(share, _)| share == 1.0));
        // A summary that does not read is dropped: the calibration starts
        // afresh, as it does with none stored.
        let mut fresh = Recommender::new(at("1%"));
        let garbled = persisted(Some("{\"v\":99}"));
        restore_risk(&mut fresh, "shop/web", &at("1%"), Some(&garbled), now);
        let c = fresh.calibration().unwrap();
        assert_eq!(
            (c.fraction(), c.achieved()),
            (crate::recommend::risk::START, None)
        );
        // Without risk nothing is restored.
        let plain = RecommendConfig::parse(r#"{"targetPerPod":10}"#).unwrap();
        let mut none = Recommender::new(plain.clone());
        restore_risk(
            &mut none,
            "shop/web",
            &plain,
            Some(&persisted(Some(&text))),
            now,
        );
        assert!(none.calibration().is_none());
    }
}
