//! One clock for every replica: the apiserver's. Replicas' own clocks may
//! differ by minutes (docs/operations.md states the tolerance), so every
//! time the governor compares across replicas (ledger entries, the `now` a
//! decision is taken at, a recommendation's `computedAt` and `expiresAt`,
//! the Lease's `renewTime`) is this replica's clock corrected by its
//! measured offset to the apiserver.
//!
//! The offset comes from the `Date` header of the apiserver's responses
//! ([`DateProbe`], a layer on the kube client). The header gives the
//! server's time to the second, written between the moment the request
//! left here and the moment the answer arrived, so each answer bounds the
//! offset: at least `Date − received`, less than `Date + 1 s − sent`. The
//! bounds of the last [`SAMPLES`] answers are intersected (answers at
//! different fractions of a second narrow it to a few milliseconds plus the
//! round trip), and the offset in use is the point of that interval nearest
//! zero: the clock is corrected only as far as the evidence demands, so a
//! replica on a well-synced node keeps its own clock exactly. An answer the
//! interval cannot hold (the clock was stepped) drops the older ones.
//! Reading the offset is one atomic load, so the request path stays
//! lock-free.

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use chrono::{DateTime, Utc};
use http::{Request, Response};
use tower::{Layer, Service};

/// Answers whose bounds are intersected.
const SAMPLES: usize = 30;

static OFFSET_MS: AtomicI64 = AtomicI64::new(0);
static MEASURED: AtomicBool = AtomicBool::new(false);
static WARN_AT_MS: AtomicU64 = AtomicU64::new(30_000);
static WARNED: AtomicBool = AtomicBool::new(false);
static RECENT: Mutex<VecDeque<Bounds>> = Mutex::new(VecDeque::new());

/// What one answer says of the offset, in milliseconds: `lo <= offset < hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bounds {
    lo: i64,
    hi: i64,
}

/// The apiserver's time now, as well as this replica can tell.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now() + chrono::Duration::milliseconds(OFFSET_MS.load(Ordering::Relaxed))
}

/// [`now`] as a Kubernetes timestamp.
pub(crate) fn timestamp() -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::from_microsecond(now().timestamp_micros())
        .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now())
}

/// The apiserver's clock minus this replica's, once measured.
pub(crate) fn offset() -> Option<chrono::Duration> {
    MEASURED
        .load(Ordering::Acquire)
        .then(|| chrono::Duration::milliseconds(OFFSET_MS.load(Ordering::Relaxed)))
}

/// Past this offset a warning is logged (`serve --clock-skew-warning`).
pub(crate) fn warn_at(threshold: Duration) {
    WARN_AT_MS.store(threshold.as_millis() as u64, Ordering::Relaxed);
}

/// Takes in one response's `Date` header, sent at `sent` and received at
/// `received` by this replica's clock.
pub(crate) fn observe(date: &str, sent: SystemTime, received: SystemTime) {
    let Some(bounds) = bounds(date, sent, received) else {
        return;
    };
    let offset = {
        let mut recent = RECENT.lock().unwrap_or_else(|p| p.into_inner());
        estimate(&mut recent, bounds)
    };
    OFFSET_MS.store(offset, Ordering::Relaxed);
    MEASURED.store(true, Ordering::Release);
    report(offset);
}

/// What one answer says: the server wrote `Date` (truncated to the second)
/// between `sent` and `received` here.
fn bounds(date: &str, sent: SystemTime, received: SystemTime) -> Option<Bounds> {
    let server = DateTime::parse_from_rfc2822(date).ok()?.with_timezone(&Utc);
    let sent = DateTime::<Utc>::from(sent);
    let received = DateTime::<Utc>::from(received);
    if received < sent {
        return None;
    }
    Some(Bounds {
        lo: (server - received).num_milliseconds(),
        hi: (server - sent).num_milliseconds() + 1000,
    })
}

/// Adds `new` to the recent answers and gives the offset they agree on:
/// the point of their common interval nearest zero. Older answers that
/// contradict the new one (a stepped clock) are dropped.
fn estimate(recent: &mut VecDeque<Bounds>, new: Bounds) -> i64 {
    if recent.len() == SAMPLES {
        recent.pop_front();
    }
    recent.push_back(new);
    let common = |r: &VecDeque<Bounds>| {
        r.iter().fold((i64::MIN, i64::MAX), |(lo, hi), b| {
            (lo.max(b.lo), hi.min(b.hi))
        })
    };
    let (mut lo, mut hi) = common(recent);
    while lo >= hi && recent.len() > 1 {
        recent.pop_front();
        (lo, hi) = common(recent);
    }
    if lo > 0 {
        lo
    } else if hi <= 0 {
        hi - 1
    } else {
        0
    }
}

/// Logs the offset when it crosses the warning threshold, either way.
fn report(offset_ms: i64) {
    let limit = WARN_AT_MS.load(Ordering::Relaxed) as i64;
    let beyond = offset_ms.abs() > limit;
    if beyond != WARNED.swap(beyond, Ordering::Relaxed) {
        let offset = offset_ms as f64 / 1000.0;
        if beyond {
            tracing::warn!(
                offset_seconds = offset,
                threshold_seconds = limit as f64 / 1000.0,
                "this replica's clock is off the apiserver's by more than the threshold; the governor corrects for it (up to 3 minutes is tested), but fix the node's time sync"
            );
        } else {
            tracing::info!(
                offset_seconds = offset,
                "the clock offset to the apiserver is back under the threshold"
            );
        }
    }
}

/// A layer for the kube client that feeds every response's `Date` header to
/// [`observe`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DateProbe;

impl<S> Layer<S> for DateProbe {
    type Service = Probed<S>;

    fn layer(&self, inner: S) -> Probed<S> {
        Probed { inner }
    }
}

/// The kube client's service, probed.
#[derive(Debug, Clone)]
pub(crate) struct Probed<S> {
    inner: S,
}

type Pending<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> Service<Request<B>> for Probed<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pending<Response<R>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let sent = SystemTime::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            if let Some(date) = response
                .headers()
                .get(http::header::DATE)
                .and_then(|v| v.to_str().ok())
            {
                observe(date, sent, SystemTime::now());
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        DateTime::parse_from_rfc3339(s).unwrap().into()
    }

    #[test]
    fn an_answer_bounds_the_offset() {
        // Our clock is 3 minutes behind: we sent at 09:57:00.2 and got the
        // answer at 09:57:00.4; the server wrote 10:00:00 (truncated).
        let b = bounds(
            "Mon, 07 Dec 2026 10:00:00 GMT",
            at("2026-12-07T09:57:00.2Z"),
            at("2026-12-07T09:57:00.4Z"),
        );
        assert_eq!(
            b,
            Some(Bounds {
                lo: 179_600,
                hi: 180_800
            })
        );
        assert_eq!(
            bounds(
                "yesterday",
                at("2026-12-07T10:00:00Z"),
                at("2026-12-07T10:00:00Z")
            ),
            None
        );
        assert_eq!(
            bounds(
                "Mon, 07 Dec 2026 10:00:00 GMT",
                at("2026-12-07T10:00:01Z"),
                at("2026-12-07T10:00:00Z")
            ),
            None,
            "a clock stepped back mid-request"
        );
    }

    /// Answers from a server whose clock is `offset_ms` ahead, sent at
    /// `phase_ms` past a second, with a 5 ms round trip.
    fn answer(offset_ms: i64, phase_ms: i64) -> Bounds {
        let sent = 1_000_000 + phase_ms;
        let server = sent + 2 + offset_ms;
        let date = server.div_euclid(1000) * 1000;
        Bounds {
            lo: date - (sent + 5),
            hi: date + 1000 - sent,
        }
    }

    #[test]
    fn a_synced_clock_is_kept_exactly_and_a_skewed_one_is_found_to_the_milliseconds() {
        let mut recent = VecDeque::new();
        for phase in [100, 730, 410, 990, 5] {
            assert_eq!(estimate(&mut recent, answer(0, phase)), 0);
        }
        let mut recent = VecDeque::new();
        let mut last = 0;
        for phase in [100, 730, 410, 990, 5, 260, 880, 555] {
            last = estimate(&mut recent, answer(-180_000, phase));
        }
        assert!((last + 180_000).abs() <= 20, "{last}");
        let mut recent = VecDeque::new();
        for phase in [100, 730, 410, 990, 5, 260, 880, 555] {
            last = estimate(&mut recent, answer(180_000, phase));
        }
        assert!((last - 180_000).abs() <= 20, "{last}");
    }

    #[test]
    fn a_stepped_clock_drops_the_answers_that_contradict_it() {
        let mut recent = VecDeque::new();
        for phase in [100, 730, 410] {
            estimate(&mut recent, answer(0, phase));
        }
        let mut last = 0;
        for phase in [990, 5, 260, 880] {
            last = estimate(&mut recent, answer(60_000, phase));
        }
        assert!((last - 60_000).abs() <= 100, "{last}");
    }
}
