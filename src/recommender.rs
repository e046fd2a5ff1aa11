//! The recommender loop, inside `serve`, run by the leader only.
//!
//! Every `--recommend-interval` (jittered), each governed workload is
//! evaluated from the watch-fed cache (no LIST per cycle) by a bounded pool
//! of workers, never two evaluations of one workload at once. A cheap check
//! first leaves out the workloads with nothing to do (no `recommend`,
//! replicas inside their bounds, nothing remembered) until the clock or the
//! watch could change that, which on a steady fleet is nearly all of them.
//! It samples the workload's source, runs the same strategies `simulate`
//! runs, writes the `recommendation` annotation when it changes, moves
//! replicas into a window's bounds (and back when the window ends), and, in
//! `target` mode, to the recommendation, always through `/scale` and so
//! through the webhook. Failures back off per workload and per source and
//! never stall the others; a failing source leaves the last recommendation
//! to expire, and the loop never scales down on missing data.

mod evaluate;
mod idle;
mod seasonal;
pub(crate) mod write;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    cache::{Cache, pods::PodIndex},
    events::EventSink,
    leader::{Leadership, jittered},
    metrics::Metrics,
    recommend::plan,
    sources::{HttpClient, Sources},
    workload::WorkloadKind,
};

/// `serve`'s settings for the loop.
#[derive(Debug, Clone)]
pub(crate) struct LoopConfig {
    /// How often every workload is evaluated.
    pub(crate) interval: Duration,
    /// Evaluations at once.
    pub(crate) concurrency: usize,
    /// The username the governor's own writes arrive under in admission.
    pub(crate) identity: String,
    /// How often the seasonal strategy's history is stored beside the
    /// ledger.
    pub(crate) summary_interval: Duration,
}

/// What the loop reads and writes through.
pub(crate) struct LoopDeps {
    pub(crate) client: Client,
    /// The ledger objects in the governor's namespace, where the seasonal
    /// history is stored.
    pub(crate) ledger_api: Api<ConfigMap>,
    pub(crate) cache: Arc<Cache>,
    pub(crate) pods: Arc<PodIndex>,
    pub(crate) sources: Arc<Sources>,
    /// Their HTTP client.
    pub(crate) http: HttpClient,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) events: Option<EventSink>,
    pub(crate) config: LoopConfig,
}

/// What the loop remembers about one workload between cycles: the plan's
/// memory ([`plan::Memory`]) and the executor's own back-off and seasonal
/// bookkeeping. It lives in the leader only.
#[derive(Debug, Default)]
struct Memory {
    plan: plan::Memory,
    /// Whether the seasonal history (and a stated risk's calibration) was
    /// brought back this leadership.
    seasonal_ready: bool,
    /// When they were last stored (or brought back).
    seasonal_saved: Option<chrono::DateTime<chrono::Utc>>,
    /// When to ask the source for the seasonal history again, after a
    /// backfill failed (`None`: done, or not needed).
    backfill_due: Option<chrono::DateTime<chrono::Utc>>,
    backfill_failures: u32,
    failures: u32,
    next_try: Option<Instant>,
}

/// Back-off of one source, shared by every workload that uses it.
#[derive(Debug, Default, Clone, Copy)]
struct SourceBackoff {
    failures: u32,
    next_try: Option<Instant>,
}

/// Exponential back-off with jitter: 1 s, 2 s, 4 s … up to 5 minutes.
fn backoff(failures: u32) -> Duration {
    let base = Duration::from_secs(1u64 << failures.min(8).saturating_sub(1));
    jittered(base.min(Duration::from_secs(300)))
}

/// What the last full pass over the cache found. While the cache's epoch is
/// unchanged and the clock has not reached `wake`, the workloads it left
/// out still have nothing to do, and a pass takes only `active`: on a
/// steady fleet a pass touches none of the quiet workloads' memory, which on
/// a big fleet costs more than the evaluations themselves.
#[derive(Default)]
struct Scan {
    valid: bool,
    epoch: u64,
    wake: Option<chrono::DateTime<chrono::Utc>>,
    active: Vec<(WorkloadKind, String, Arc<crate::cache::Entry>)>,
    workloads: u64,
}

/// The loop's shared state.
struct Loop {
    deps: Arc<LoopDeps>,
    /// By kind, then `namespace/name`, so a lookup needs no key copy.
    memories: Mutex<HashMap<WorkloadKind, HashMap<String, Memory>>>,
    scan: Mutex<Scan>,
    sources: Mutex<HashMap<String, SourceBackoff>>,
}

/// Runs until `shutdown`: a cycle every interval while leading.
pub(crate) async fn run(
    deps: Arc<LoopDeps>,
    mut leadership: Leadership,
    shutdown: CancellationToken,
) {
    let state = Arc::new(Loop {
        deps,
        memories: Mutex::default(),
        scan: Mutex::default(),
        sources: Mutex::default(),
    });
    let mut was_leading = false;
    loop {
        let leading = leadership.is_leading();
        if was_leading && !leading {
            // Another replica leads now and writes on: what this one
            // remembers may go stale, so the next time it starts from the
            // annotations that replica wrote.
            state
                .memories
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            state.deps.metrics.recommender.forget_all_risks();
            state.scan.lock().unwrap_or_else(|p| p.into_inner()).valid = false;
        }
        was_leading = leading;
        state
            .deps
            .metrics
            .recommender
            .leading
            .set(i64::from(leading));
        if leading {
            cycle(&state, &shutdown).await;
        }
        let wait = jittered(state.deps.config.interval);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
            changed = leadership.changed() => if !changed { return },
        }
    }
}

/// One pass over every governed workload. Passes never overlap (the next
/// starts after this one has joined its workers), and a pass takes each
/// workload once, so no workload is evaluated twice at once.
async fn cycle(state: &Arc<Loop>, shutdown: &CancellationToken) {
    let started = Instant::now();
    let now = crate::clock::now();
    let (work, evaluated) = plan(state, now);
    let queue = Arc::new(Mutex::new(work));
    let workers = state.deps.config.concurrency.max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (state, queue) = (state.clone(), queue.clone());
        // The workers log inside the loop's own task span.
        tasks.spawn(
            async move {
                loop {
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
                    let Some((kind, key, entry)) = next else {
                        return;
                    };
                    evaluate::one(&state, kind, &key, &entry).await;
                }
            }
            .in_current_span(),
        );
    }
    tokio::select! {
        // Dropping the set aborts the workers.
        () = shutdown.cancelled() => return,
        () = async { while tasks.join_next().await.is_some() {} } => {}
    }
    let m = &state.deps.metrics;
    m.recommender
        .cycle_duration
        .observe(started.elapsed().as_secs_f64());
    m.recommender.cycle_workloads.set(evaluated as i64);
}

/// The workloads this pass evaluates, and how many governed workloads there
/// are: the last full pass's `active` ones while nothing has changed (see
/// [`Scan`]), otherwise a full pass that asks each one [`idle::idle`].
fn plan(
    state: &Loop,
    now: chrono::DateTime<chrono::Utc>,
) -> (Vec<(WorkloadKind, String, Arc<crate::cache::Entry>)>, u64) {
    let cache = &state.deps.cache;
    // Read first: anything the watch stores during the pass moves it on.
    let epoch = cache.epoch();
    let mut scan = state.scan.lock().unwrap_or_else(|p| p.into_inner());
    if scan.valid && scan.epoch == epoch && scan.wake.is_none_or(|w| now < w) {
        return (scan.active.clone(), scan.workloads);
    }
    let mut memories = state.memories.lock().unwrap_or_else(|p| p.into_inner());
    // A deleted workload's memory goes with it.
    for (kind, remembered) in memories.iter_mut() {
        remembered.retain(|key, _| {
            let kept = cache.get(*kind, key).is_some();
            if !kept {
                let (namespace, name) = key.split_once('/').unwrap_or(("", key));
                let labels = evaluate::risk_labels(*kind, namespace, name);
                state.deps.metrics.recommender.forget_risk(&labels);
            }
            kept
        });
    }
    let (mut work, mut evaluated, mut wake) = (Vec::new(), 0u64, None);
    let mut sooner = |until: chrono::DateTime<chrono::Utc>| {
        wake = Some(wake.map_or(until, |w: chrono::DateTime<chrono::Utc>| w.min(until)));
    };
    for kind in WorkloadKind::ALL {
        let remembered = memories.get(&kind);
        cache.visit(kind, |key, entry| {
            if !entry.is_stored() {
                return;
            }
            evaluated += 1;
            if let Some(until) = entry.quiet(now) {
                sooner(until);
                return;
            }
            let (generation, observed) = entry.observed_at();
            let memory = remembered.and_then(|m| m.get(key));
            match idle::idle(&observed, memory, now) {
                Some(until) => {
                    entry.stay_quiet(generation, until);
                    sooner(until);
                }
                None => work.push((kind, key.to_owned(), entry.clone())),
            }
        });
    }
    *scan = Scan {
        valid: true,
        epoch,
        wake,
        active: work.clone(),
        workloads: evaluated,
    };
    (work, evaluated)
}
