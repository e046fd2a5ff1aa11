//! The admission webhook: HTTP in front of [`admit`], plus what every
//! decision is reported through (Events, metrics, logs), and the admin
//! endpoints (`/livez`, `/readyz`, `/metrics`).

pub(crate) mod admit;
pub(crate) mod guard;
mod reporting;
pub(crate) mod review;

pub(crate) use reporting::log_summaries;

use std::{sync::Arc, time::Instant};

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};

use self::{admit::Endpoint, guard::AdmitConfig, review::ReviewResponse};
use crate::{
    cache::Cache,
    events::EventSink,
    metrics::{EndpointLabels, KindLabels, Metrics, exposition},
    workload::WorkloadKind,
};
use crate::{report::logs::LogGate, tls::bundle::BundleStatus};

/// The apiserver's own limit on a request body (`MaxRequestBodyBytes`).
pub(crate) const APISERVER_REQUEST_BYTES: usize = 3 * 1024 * 1024;

/// Largest AdmissionReview accepted: an UPDATE review carries the object and
/// the old object, each as large as a request the apiserver accepted, plus
/// the envelope (userInfo, options, managedFields the apiserver added). A
/// smaller limit would refuse real reviews of large workloads with 413,
/// which under `failurePolicy: Fail` blocks them. `docs/policy.md` says
/// what happens beyond it.
pub const MAX_BODY_BYTES: usize = 2 * APISERVER_REQUEST_BYTES + 1024 * 1024;

/// Longest a review may take, body included; the apiserver gives up after
/// at most 30 s (usually 10), so a slower client is not an apiserver.
pub(crate) const REVIEW_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the admission handlers share.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Governed workloads.
    pub cache: Arc<Cache>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Where Events go; `None` in tests without a cluster.
    pub events: Option<EventSink>,
    /// Policy admins and the `suspend-until` cap.
    pub config: AdmitConfig,
    /// Which decisions are logged at INFO, and the repeats of the others.
    pub logs: Arc<LogGate>,
}

/// `/mutate` and `/validate`.
pub fn router(webhook: Arc<Webhook>) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REVIEW_TIMEOUT,
        ))
        .with_state(webhook)
}

async fn mutate(State(webhook): State<Arc<Webhook>>, body: Bytes) -> Response {
    webhook.handle(Endpoint::Mutate, &body)
}

async fn validate(State(webhook): State<Arc<Webhook>>, body: Bytes) -> Response {
    webhook.handle(Endpoint::Validate, &body)
}

impl Webhook {
    /// Answers one review body; synchronous, no I/O.
    pub fn handle(&self, endpoint: Endpoint, body: &[u8]) -> Response {
        let started = Instant::now();
        let name = endpoint.as_str();
        let labels = EndpointLabels { endpoint: name };
        let response = match admit::review(
            endpoint,
            body,
            &self.cache,
            &self.config,
            crate::clock::now(),
        ) {
            Ok(reviewed) => {
                reporting::report(self, name, &reviewed);
                encode(&ReviewResponse::new(reviewed.version, reviewed.response))
            }
            Err(bad) => {
                self.metrics
                    .admission
                    .bad_reviews
                    .get_or_create(&labels)
                    .inc();
                tracing::warn!(endpoint = name, error = %bad, "unreadable AdmissionReview");
                (
                    StatusCode::BAD_REQUEST,
                    [(header::CONTENT_TYPE, "text/plain")],
                    bad.to_string(),
                )
                    .into_response()
            }
        };
        self.metrics
            .admission
            .duration
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        response
    }
}

/// The response body, written into one buffer sized for a typical answer:
/// axum's `Json` writes through a growable `BytesMut`, a call per token.
fn encode(review: &ReviewResponse) -> Response {
    let mut body = Vec::with_capacity(512);
    match serde_json::to_writer(&mut body, review) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        // Only a map with non-string keys could fail; there is none.
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// What readiness needs from the TLS side.
pub(crate) trait CertStatus: Send + Sync + std::fmt::Debug {
    /// Whether a serving certificate is loaded.
    fn is_loaded(&self) -> bool;
    /// Seconds from `now` until the served certificate expires, negative
    /// once it has: `scale_governor_tls_cert_expiry_seconds`.
    fn expiry_seconds(&self, now: std::time::SystemTime) -> Option<i64>;
    /// Whether the served certificate has expired.
    fn is_expired(&self) -> bool;
}

/// What the admin endpoints read.
#[derive(Debug, Clone)]
pub(crate) struct Admin {
    /// Governed workloads; readiness waits for its first sync.
    pub(crate) cache: Arc<Cache>,
    /// Exported on `/metrics`.
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) certs: Arc<dyn CertStatus>,
    /// Whether the apiserver can verify the served certificate.
    pub(crate) bundle: Arc<BundleStatus>,
}

/// `/livez`, `/readyz` and `/metrics` for the plain-HTTP admin listener.
pub(crate) fn admin_router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(admin)
}

/// Ready means the apiserver can be answered correctly: a certificate it
/// can verify is served, and the cache has synced.
async fn readyz(State(admin): State<Arc<Admin>>) -> (StatusCode, String) {
    let unavailable = |why: String| (StatusCode::SERVICE_UNAVAILABLE, why);
    if !admin.certs.is_loaded() {
        return unavailable("serving certificate not loaded".into());
    }
    if admin.certs.is_expired() {
        return unavailable("serving certificate expired".into());
    }
    if let Some(problem) = admin.bundle.problem() {
        return unavailable(format!("caBundle mismatch: {problem}"));
    }
    if !admin.cache.is_synced() {
        return unavailable("cache not synced".into());
    }
    (StatusCode::OK, "ok".into())
}

/// OpenMetrics when the scraper asks for it (Prometheus does), the
/// Prometheus text format otherwise (`promtool check metrics`, curl).
async fn metrics(State(admin): State<Arc<Admin>>, headers: header::HeaderMap) -> impl IntoResponse {
    // Gauges that are cheaper to read at scrape time than to keep current.
    for kind in WorkloadKind::ALL {
        admin
            .metrics
            .cache
            .workloads
            .get_or_create(&KindLabels {
                kind: kind.resource(),
            })
            .set(admin.cache.len(kind) as i64);
    }
    if let Some(offset) = crate::clock::offset() {
        admin
            .metrics
            .clock_offset
            .set(offset.num_milliseconds() as f64 / 1000.0);
    }
    if let Some(left) = admin.certs.expiry_seconds(std::time::SystemTime::now()) {
        admin.metrics.tls.cert_expiry.set(left as f64);
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if exposition::wants_openmetrics(accept) {
        (
            [(header::CONTENT_TYPE, exposition::OPENMETRICS)],
            admin.metrics.encode(),
        )
    } else {
        (
            [(header::CONTENT_TYPE, exposition::PROMETHEUS_TEXT)],
            admin.metrics.encode_text(),
        )
    }
}
