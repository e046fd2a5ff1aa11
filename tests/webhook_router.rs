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
            ready: None,
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

/// The fixture's CREATE with `annotations` in place of its own.
fn create_with(annotations: Value) -> Vec<u8> {
    let mut review = json(&fixture("deployment-create-bad-windows.json"));
    review["request"]["object"]["metadata"]["annotations"] = annotations;
    serde_json::to_vec(&review).unwrap()
}

/// Hostile annotations over HTTP: the refusal the apiserver relays to
/// `kubectl` names every error with its key, quotes at most 80 characters
/// of each token, and carries no raw control or bidi character, whatever
/// the annotations hold (a 200 KB token, U+202E, ESC, a C1 CSI).
#[tokio::test]
async fn hostile_annotations_are_refused_with_a_short_escaped_message() {
    let wh = webhook(&[]);
    let long = format!("\u{202e}{}", "é".repeat(100_000));
    let annotations = serde_json::json!({
        keys::MODE: format!("strict\u{1b}[2J"),
        keys::MAX_REPLICAS: long,
        keys::WINDOWS: format!("Mon-Fry 08:00-20:00 min=1\nMon-Fri 08:00-20:00 Europe/Berlin\u{9b}31m min=1"),
        keys::SCALE_UP: "4 pods/60x, select=\u{2067}Max",
    });
    let (status, body) = post(&wh, "/validate", create_with(annotations)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.len() < 2500, "{} bytes", body.len());
    let text = String::from_utf8(body.clone()).unwrap();
    for raw in ['\u{202e}', '\u{1b}', '\u{9b}', '\u{2067}'] {
        assert!(!text.contains(raw), "raw {raw:?} in {text}");
    }
    let response = &json(&body)["response"];
    assert_eq!(response["status"]["code"], 422);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("scale-governor: invalid policy: 6 errors: "),
        "{message}"
    );
    for part in [
        format!(
            "scale-governor.io/max-replicas: at \"\\u{{202e}}{}…\" (column 1)",
            "é".repeat(72)
        ),
        "scale-governor.io/mode: at \"strict\\u{1b}[2J\" (column 1)".to_owned(),
        "scale-governor.io/scale-up: at \"60x\" (column 8)".to_owned(),
        "scale-governor.io/scale-up: at \"\\u{2067}Max\" (column 20)".to_owned(),
        "scale-governor.io/windows: at \"Fry\" (line 1, column 5)".to_owned(),
        "scale-governor.io/windows: at \"Europe/Berlin\\u{9b}31m\" (line 2, column 21)".to_owned(),
    ] {
        assert!(message.contains(&part), "{part}\nin {message}");
    }
    assert!(
        wh.metrics
            .encode()
            .contains("scale_governor_admission_policy_edits_total{kind=\"invalid\"} 1")
    );
}

/// Removing the governed label in the same request as a scale-up lands at
/// the stored bound, and the response says the stored policy governs it.
#[tokio::test]
async fn removing_the_label_with_a_scale_is_told_the_stored_policy_governs_it() {
    let wh = webhook(&[]);
    let mut review = json(&fixture("deployment-create-bad-windows.json"));
    let request = &mut review["request"];
    request["operation"] = "UPDATE".into();
    let mut old = request["object"].clone();
    old["metadata"]["annotations"] = serde_json::json!({ keys::MAX_REPLICAS: "20" });
    old["spec"]["replicas"] = 10.into();
    let mut new = old.clone();
    new["metadata"]["labels"] = serde_json::json!({ "app": "web" });
    new["spec"]["replicas"] = 1000.into();
    request["object"] = new;
    request["oldObject"] = old;
    let (status, body) = post(&wh, "/mutate", serde_json::to_vec(&review).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let response = &json(&body)["response"];
    assert_eq!(response["patchType"], "JSONPatch");
    assert_eq!(
        response["warnings"],
        serde_json::json!([
            "scale-governor: max-replicas 20: asked 1000, allowed 20",
            "scale-governor: this request also edits the policy; the stored policy governs it, the new one governs from the next request on"
        ])
    );
}
