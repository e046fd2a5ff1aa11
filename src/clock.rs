//! One clock for every replica: the apiserver's. Replicas' own clocks may
//! differ by minutes (docs/operations.md states the tolerance), so every
//! time the governor compares across replicas (ledger entries, the `now` a
//! decision is taken at, a recommendation's `computedAt` and `expiresAt`,
//! the Lease's `renewTime`) is this replica's clock corrected by its
//! measured offset to the apiserver.
//!
//! The offset comes from the `Date` header of the apiserver's responses
//! ([`DateProbe`], a layer on the kube client): the server's time, to the
//! second, against the midpoint of the request here. One sample is good to
//! about half a second plus half the round trip; the offset in use is the
//! median of the last [`SAMPLES`], so one slow response cannot move it.
//! Reading it is one atomic load, so the request path stays lock-free.

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

/// Samples the median is taken over.
const SAMPLES: usize = 15;

static OFFSET_MS: AtomicI64 = AtomicI64::new(0);
static MEASURED: AtomicBool = AtomicBool::new(false);
static WARN_AT_MS: AtomicU64 = AtomicU64::new(30_000);
static WARNED: AtomicBool = AtomicBool::new(false);
static RECENT: Mutex<VecDeque<i64>> = Mutex::new(VecDeque::new());

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
    let Some(sample) = sample(date, sent, received) else {
        return;
    };
    let median = {
        let mut recent = RECENT.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == SAMPLES {
            recent.pop_front();
        }
        recent.push_back(sample);
        median(recent.iter().copied())
    };
    OFFSET_MS.store(median, Ordering::Relaxed);
    MEASURED.store(true, Ordering::Release);
    report(median);
}

/// One sample of the offset in milliseconds: the server's second (the
/// header truncates, so its middle), against the request's midpoint here.
fn sample(date: &str, sent: SystemTime, received: SystemTime) -> Option<i64> {
    let server = DateTime::parse_from_rfc2822(date).ok()?.with_timezone(&Utc);
    let sent = DateTime::<Utc>::from(sent);
    let received = DateTime::<Utc>::from(received);
    if received < sent {
        return None;
    }
    let midpoint = sent + (received - sent) / 2;
    Some((server - midpoint).num_milliseconds() + 500)
}

fn median(values: impl Iterator<Item = i64>) -> i64 {
    let mut v: Vec<i64> = values.collect();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
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
    fn a_sample_is_the_servers_second_against_the_requests_midpoint() {
        // Our clock is 3 minutes behind: we sent at 09:57:00.2 and got the
        // answer at 09:57:00.4; the server said 10:00:00.
        let s = sample(
            "Mon, 07 Dec 2026 10:00:00 GMT",
            at("2026-12-07T09:57:00.2Z"),
            at("2026-12-07T09:57:00.4Z"),
        );
        assert_eq!(s, Some(180_200));
        // Ahead by 3 minutes: negative.
        let s = sample(
            "Mon, 07 Dec 2026 10:00:00 GMT",
            at("2026-12-07T10:03:00.0Z"),
            at("2026-12-07T10:03:00.0Z"),
        );
        assert_eq!(s, Some(-179_500));
        assert_eq!(
            sample(
                "yesterday",
                at("2026-12-07T10:00:00Z"),
                at("2026-12-07T10:00:00Z")
            ),
            None
        );
        assert_eq!(
            sample(
                "Mon, 07 Dec 2026 10:00:00 GMT",
                at("2026-12-07T10:00:01Z"),
                at("2026-12-07T10:00:00Z")
            ),
            None,
            "a clock stepped back mid-request"
        );
    }

    #[test]
    fn the_median_ignores_a_few_slow_answers() {
        assert_eq!(median([500, 400, 600, 9_000, 450].into_iter()), 500);
        assert_eq!(median(std::iter::empty()), 0);
    }
}
