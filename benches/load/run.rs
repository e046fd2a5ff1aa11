//! The two load shapes and their statistics.
//!
//! - **Fixed rate** (open loop): request `k` is due at `start + k / rate`,
//!   whether or not earlier ones have been answered, and its latency counts
//!   from that due time. A stalled server therefore shows up in the tail
//!   instead of silently slowing the generator down (coordinated omission).
//!   tokio's timer has 1 ms granularity, which alone would add up to 1 ms to
//!   every latency, so a plain thread paces with `thread::sleep` (~60 µs).
//! - **Saturation** (closed loop): `concurrency` workers each send the next
//!   request as soon as the previous one is answered; throughput is what the
//!   server (and this client, on the same cores) can sustain.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use hyper::StatusCode;

use crate::{
    Check, Shape,
    client::Client,
    fleet::{Answer, Fleet, read_answer, read_uid},
};

/// A request not answered by then is an error; the apiserver's own webhook
/// timeout is 10 s by default.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// First few error messages kept for the report.
const KEEP_ERRORS: usize = 5;

/// What every request needs.
#[derive(Debug)]
pub struct Target {
    /// The connections.
    pub client: Client,
    /// The fleet and the generator's view of its replica counts.
    pub fleet: Fleet,
    /// Distinguishes this run's uids from other runs against the same server.
    pub run_id: u32,
    /// What the reviews ask.
    pub shape: Shape,
    /// How much of each answer to check.
    pub check: Check,
}

/// Latencies in microseconds and outcome counts of the measured phase.
#[derive(Debug)]
pub struct Stats {
    /// Completion minus due time (open loop) or send time (closed loop).
    pub latency: Histogram<u64>,
    /// Completion minus the time the request was actually sent.
    pub service: Histogram<u64>,
    /// Send time minus due time: how late the generator itself was.
    pub lag: Histogram<u64>,
    /// Allowed without a patch.
    pub unchanged: u64,
    /// Allowed with a patch.
    pub clamped: u64,
    /// Anything else (transport error, non-200, wrong uid, denied, timeout).
    pub errors: u64,
    /// The first few error messages.
    pub error_samples: Vec<String>,
    /// Length of the measured phase.
    pub elapsed: Duration,
}

impl Stats {
    fn new() -> Stats {
        let histogram = || Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
        Stats {
            latency: histogram(),
            service: histogram(),
            lag: histogram(),
            unchanged: 0,
            clamped: 0,
            errors: 0,
            error_samples: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    /// Requests completed in the measured phase, errors included.
    pub fn completed(&self) -> u64 {
        self.unchanged + self.clamped + self.errors
    }

    /// Completed requests per second.
    pub fn throughput(&self) -> f64 {
        self.completed() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn record(
        &mut self,
        due: Instant,
        sent: Instant,
        done: Instant,
        result: Result<Answer, String>,
    ) {
        let micros = |d: Duration| (d.as_micros() as u64).clamp(1, 60_000_000);
        self.latency.saturating_record(micros(done - due));
        self.service.saturating_record(micros(done - sent));
        self.lag
            .saturating_record(micros(sent.saturating_duration_since(due)));
        match result {
            Ok(Answer::Unchanged) => self.unchanged += 1,
            Ok(Answer::Clamped(_)) => self.clamped += 1,
            Err(e) => {
                self.errors += 1;
                if self.error_samples.len() < KEEP_ERRORS {
                    self.error_samples.push(e);
                }
            }
        }
    }
}

/// Sends review `k` and checks the answer; also settles the fleet.
async fn one(target: &Target, k: u64) -> Result<Answer, String> {
    let ask = match target.shape {
        Shape::Mixed => target.fleet.ask(k),
        Shape::Clamp => target.fleet.clamp_ask(k),
    };
    let uid = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        target.run_id,
        (k >> 32) & 0xffff,
        (k >> 20) & 0xfff,
        (k >> 8) & 0xfff,
        k
    );
    let body = target.fleet.review(&uid, ask);
    let sent = tokio::time::timeout(REQUEST_TIMEOUT, target.client.post(body)).await;
    let (status, bytes) = match sent {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => return Err(format!("transport: {e:#}")),
        Err(_) => return Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
    };
    if status != StatusCode::OK {
        return Err(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes)
        ));
    }
    match target.check {
        Check::Full => {}
        Check::Uid => return read_uid(&bytes, &uid).map(|()| Answer::Clamped(0)),
        Check::Status => return Ok(Answer::Clamped(0)),
    }
    let answer = read_answer(&bytes, &uid)?;
    // A clamp storm asks the same of the seeded counts every time.
    if target.shape == Shape::Mixed {
        target.fleet.settle(ask, answer);
    }
    Ok(answer)
}

/// Open loop at `rate` requests/s: `warmup` unrecorded, then `duration`.
pub async fn fixed_rate(
    target: Arc<Target>,
    rate: f64,
    warmup: Duration,
    duration: Duration,
) -> Stats {
    let stats = Arc::new(Mutex::new(Stats::new()));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let runtime = tokio::runtime::Handle::current();
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let total = ((warmup + duration).as_secs_f64() * rate) as u64;
    let pacer = {
        let (stats, in_flight) = (stats.clone(), in_flight.clone());
        std::thread::spawn(move || {
            for k in 0..total {
                let due = start + Duration::from_nanos((k as f64 * 1e9 / rate) as u64);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let (target, stats, in_flight) = (target.clone(), stats.clone(), in_flight.clone());
                in_flight.fetch_add(1, Ordering::AcqRel);
                runtime.spawn(async move {
                    let sent = Instant::now();
                    let result = one(&target, k).await;
                    let done = Instant::now();
                    if due >= measure_from {
                        stats
                            .lock()
                            .expect("stats lock")
                            .record(due, sent, done, result);
                    }
                    in_flight.fetch_sub(1, Ordering::AcqRel);
                });
            }
        })
    };
    while !pacer.is_finished() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Every request has REQUEST_TIMEOUT, so this ends.
    while in_flight.load(Ordering::Acquire) > 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut stats = take(stats);
    stats.elapsed = end - measure_from;
    stats
}

/// Closed loop with `concurrency` workers: `warmup` unrecorded, then `duration`.
pub async fn saturate(
    target: Arc<Target>,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> Stats {
    let stats = Arc::new(Mutex::new(Stats::new()));
    let next = Arc::new(AtomicU64::new(0));
    let measure_from = Instant::now() + warmup;
    let end = measure_from + duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (target, stats, next) = (target.clone(), stats.clone(), next.clone());
        workers.spawn(async move {
            loop {
                let sent = Instant::now();
                if sent >= end {
                    return;
                }
                let k = next.fetch_add(1, Ordering::Relaxed);
                let result = one(&target, k).await;
                let done = Instant::now();
                // Counted when it completes inside the window, so the count
                // divided by the window is the sustained throughput.
                if done >= measure_from && done < end {
                    stats
                        .lock()
                        .expect("stats lock")
                        .record(sent, sent, done, result);
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let mut stats = take(stats);
    stats.elapsed = duration;
    stats
}

/// The recorded stats; a finished task may still hold its clone of the Arc
/// for an instant, so the contents are moved out rather than the Arc unwrapped.
fn take(stats: Arc<Mutex<Stats>>) -> Stats {
    std::mem::replace(&mut *stats.lock().expect("stats lock"), Stats::new())
}
