//! The admission router driven in-process with JSON fixtures, including
//! malformed and oversized bodies. The fixtures are the review fuzz
//! target's seeds (`fuzz/seeds/review/`), kept where cargo-fuzz reads them.

use std::sync::Arc;

use axum::{
    body::{Body, to_bytes},
    http::{Request, StatusCode, header},
};
use base64::Engine;
use chrono::Utc;
use scale_governor::{
    policy::{Policy, keys},
    testing::cache::{Cache, Update},
    testing::metrics::Metrics,
    testing::webhook::{MAX_BODY_BYTES, Webhook, router},
    workload::WorkloadKind,
};
use serde_json::Value;
use tower::ServiceExt;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/fuzz/seeds/review/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn webhook(annotations: &[(&str, &str)]) -> Arc<Webhook> {
    let cache = Arc::new(Cache::new());
    cache.apply(
        Update {
            kind: WorkloadKind::Deployment,
            key: "shop/web",
            uid: Some("2f3c0a4e-1d1b-4c57-9d3e-5a1f0e9b7c11".into()),
            policy: Policy::from_annotations(annotations.iter().copied()),
            replicas: 5,
            history: None,
            written_at: None,
            generation: None,
            actor: None,
            state: None,
        },
        Utc::now(),
    );
    Arc::new(Webhook {
        cache,
        metrics: Arc::new(Metrics::new()),
        events: None,
        config: Default::default(),
        logs: Default::default(),
    })
}

async fn post(webhook: &Arc<Webhook>, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = router(webhook.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    (
        status,
        to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

#[tokio::test]
async fn scale_review_is_answered_with_a_base64_json_patch() {
    let wh = webhook(&[(keys::MAX_REPLICAS, "20")]);
    let (status, body) = post(&wh, "/mutate", fixture("scale-web-100.json")).await;
    assert_eq!(status, StatusCode::OK);
    let review = json(&body);
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["kind"], "AdmissionReview");
    let response = &review["response"];
    assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(
            response["patch"]
                .as_str()
                .expect("patch is a base64 string"),
        )
        .unwrap();
    assert_eq!(
        json(&patch),
        serde_json::json!([{"op": "add", "path": "/spec/replicas", "value": 20}])
    );
    assert_eq!(
        response["warnings"][0],
        "scale-governor: max-replicas 20: asked 100, allowed 20"
    );
    let text = wh.metrics.encode();
    assert!(
        text.contains("scale_governor_admission_reviews_total{endpoint=\"mutate\",kind=\"deployments\",operation=\"SCALE\",outcome=\"clamped\",rule=\"max-replicas\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn deny_mode_refuses_on_validate() {
    let wh = webhook(&[(keys::MODE, "deny"), (keys::MAX_REPLICAS, "20")]);
    let (status, body) = post(&wh, "/validate", fixture("scale-web-100.json")).await;
    assert_eq!(status, StatusCode::OK);
    let response = &json(&body)["response"];
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 403);
    assert_eq!(
        response["status"]["message"],
        "scale-governor: max-replicas 20: asked 100, allowed 20"
    );
}

#[tokio::test]
async fn malformed_policy_is_rejected_with_the_parser_message() {
    let wh = webhook(&[]);
    let (status, body) = post(
        &wh,
        "/validate",
        fixture("deployment-create-bad-windows.json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let response = &json(&body)["response"];
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 422);
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .ends_with("unknown weekday \"Fry\", expected Mon..Sun")
    );
}

#[tokio::test]
async fn unknown_kind_is_allowed_with_a_warning() {
    let wh = webhook(&[]);
    let (status, body) = post(&wh, "/mutate", fixture("pod-create.json")).await;
    assert_eq!(status, StatusCode::OK);
    let response = &json(&body)["response"];
    assert_eq!(response["allowed"], true);
    assert!(
        response["warnings"][0]
            .as_str()
            .unwrap()
            .contains("governs only apps/v1 deployments and statefulsets")
    );
}

#[tokio::test]
async fn unreadable_bodies_get_400_with_a_short_message() {
    let wh = webhook(&[]);
    for (name, expected) in [
        (
            "truncated.json",
            "body is not an admission.k8s.io/v1 AdmissionReview",
        ),
        ("no-request.json", "AdmissionReview has no request.uid"),
    ] {
        let (status, body) = post(&wh, "/mutate", fixture(name)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
        assert!(
            String::from_utf8_lossy(&body).starts_with(expected),
            "{name}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let (status, _) = post(&wh, "/validate", b"not json at all".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        wh.metrics
            .encode()
            .contains("scale_governor_admission_bad_reviews_total{endpoint=\"mutate\"} 2")
    );
}

#[tokio::test]
async fn oversized_body_is_refused_without_reading_it_all() {
    let wh = webhook(&[]);
    let (status, body) = post(&wh, "/mutate", vec![b' '; MAX_BODY_BYTES + 1]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!body.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_body_that_never_finishes_times_out() {
    let wh = webhook(&[]);
    let stalled = futures::stream::pending::<Result<Vec<u8>, std::io::Error>>();
    let request = Request::post("/mutate")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stalled))
        .unwrap();
    let response = router(wh).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
}

#[tokio::test]
async fn wrong_method_and_path_are_http_errors() {
    let wh = webhook(&[]);
    let (status, _) = post(&wh, "/nope", fixture("scale-web-100.json")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let request = Request::get("/mutate").body(Body::empty()).unwrap();
    let response = router(wh.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}
