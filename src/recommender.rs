//! The recommender loop, inside `serve`, run by the leader only.
//!
//! Every `--recommend-interval` (jittered), each governed workload is
//! evaluated ([`evaluate`]) from the watch-fed cache (no LIST per cycle), by
//! a bounded pool of workers, never two evaluations of one workload at once.
//! It samples the workload's source, runs the same strategies `simulate`
//! runs, writes the `recommendation` annotation when it changes, moves
//! replicas into a window's bounds (and back when the window ends), and, in
//! `target` mode, to the recommendation, always through `/scale` and so
//! through the webhook. Failures back off per workload and per source and
//! never stall the others; a failing source leaves the last recommendation
//! to expire, and the loop never scales down on missing data.

mod evaluate;
pub mod state;
pub mod write;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kube::Client;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::{
    cache::{Cache, pods::PodIndex},
    events::EventSink,
    leader::{Leadership, jittered},
    metrics::Metrics,
    policy::Recommendation,
    recommend::{Hold, Recommender, schedule::WindowRaise},
    sources::{HttpClient, Sources},
    workload::WorkloadKind,
};

/// `serve`'s settings for the loop.
#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// How often every workload is evaluated.
    pub interval: Duration,
    /// Evaluations at once.
    pub concurrency: usize,
    /// The username the governor's own writes arrive under in admission.
    pub identity: String,
}

/// What the loop reads and writes through.
pub struct LoopDeps {
    /// The apiserver.
    pub client: Client,
    /// Governed workloads.
    pub cache: Arc<Cache>,
    /// Warm-pool pods.
    pub pods: Arc<PodIndex>,
    /// Metric sources.
    pub sources: Arc<Sources>,
    /// Their HTTP client.
    pub http: HttpClient,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Events.
    pub events: Option<EventSink>,
    /// Settings.
    pub config: LoopConfig,
}

/// What the loop remembers about one workload between cycles. It lives in
/// the leader only; a new leader restores it from the `state` annotation.
#[derive(Debug, Default)]
struct Memory {
    restored: bool,
    recommender: Option<Recommender>,
    pool_hold: Hold,
    counter: Option<state::CounterSample>,
    raise: Option<WindowRaise>,
    source: Option<state::SourceState>,
    /// The recommendation last written (or found written).
    written: Option<Recommendation>,
    /// Whether the expiry of `written` was already reported.
    expired_reported: bool,
    /// The state annotation last written (or found).
    persisted: Option<String>,
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

/// The loop's shared state.
struct Loop {
    deps: Arc<LoopDeps>,
    memories: Mutex<HashMap<(WorkloadKind, String), Memory>>,
    in_flight: Mutex<std::collections::HashSet<(WorkloadKind, String)>>,
    sources: Mutex<HashMap<String, SourceBackoff>>,
}

/// Runs until `shutdown`: a cycle every interval while leading.
pub async fn run(deps: Arc<LoopDeps>, mut leadership: Leadership, shutdown: CancellationToken) {
    let state = Arc::new(Loop {
        deps,
        memories: Mutex::default(),
        in_flight: Mutex::default(),
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
        }
        was_leading = leading;
        state
            .deps
            .metrics
            .recommender_leading
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

/// One pass over every governed workload.
async fn cycle(state: &Arc<Loop>, shutdown: &CancellationToken) {
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(state.deps.config.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut evaluated = 0u64;
    for kind in WorkloadKind::ALL {
        for (key, entry) in state.deps.cache.entries(kind) {
            if !entry.is_stored() {
                continue;
            }
            let id = (kind, key);
            {
                let mut in_flight = state.in_flight.lock().unwrap_or_else(|p| p.into_inner());
                if !in_flight.insert(id.clone()) {
                    continue;
                }
            }
            evaluated += 1;
            let permit = tokio::select! {
                () = shutdown.cancelled() => return,
                permit = permits.clone().acquire_owned() => permit,
            };
            let state = state.clone();
            tasks.spawn(async move {
                let _permit = permit;
                evaluate::one(&state, &id.0, &id.1, &entry).await;
                state
                    .in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
            });
        }
    }
    while tasks.join_next().await.is_some() {}
    let m = &state.deps.metrics;
    m.recommender_cycle_duration
        .observe(started.elapsed().as_secs_f64());
    m.recommender_cycle_workloads.set(evaluated as i64);
}
