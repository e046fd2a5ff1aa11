//! A recommendation floor under the real HPA, from an HTTP JSON source
//! that later fails.

use super::*;

/// An HTTP JSON source on 127.0.0.1: `{"demand": N}`, or 503 once failing.
#[derive(Clone)]
struct Source {
    demand: Arc<AtomicU64>,
    failing: Arc<AtomicBool>,
}

impl Source {
    async fn start() -> (String, Source) {
        let source = Source {
            demand: Arc::new(AtomicU64::new(0)),
            failing: Arc::new(AtomicBool::new(false)),
        };
        let app = Router::new()
            .route(
                "/stats/{name}",
                get(|State(s): State<Source>| async move {
                    if s.failing.load(Ordering::Relaxed) {
                        return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                    }
                    Ok(Json(json!({"demand": s.demand.load(Ordering::Relaxed)})))
                }),
            )
            .with_state(source.clone());
        (support::serve_http(app).await, source)
    }
}

/// A floor written by the governor's loop: the source says 600 (6 pods),
/// so the loop lifts `web` to 6; the HPA's own metric then drops to 1 pod's
/// worth and every write it makes for 1 is clamped to the floor; when the
/// source fails the floor stands until it expires, then lets go and the
/// HPA's next write lands: 2, 6, 1.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn a_recommendation_floor_holds_the_hpa_up_until_it_expires() {
    let (url, source) = Source::start().await;
    source.demand.store(600, Ordering::Relaxed);
    let sources = format!(
        "sources:\n  - name: orders\n    namespaces: [\"{{ns}}\"]\n    http:\n      url: {url}/stats/{{{{name}}}}\n"
    );
    let recommend = r#"{"source":"orders","pointer":"/demand","targetPerPod":100,"tolerance":0,"trend":"none","holdSeconds":0,"kind":"floor","ttlSeconds":8}"#;
    let policy = [("recommend", recommend.to_owned())];
    let flags = ["--recommend-interval=1s"];
    let Some(sc) =
        Scenario::start_with_sources("hpafloor", &flags, Some(&sources), 2, &policy).await
    else {
        return;
    };
    let recorder = sc.record();
    sc.metric.set(600);
    sc.hpa(DOWN).await;
    sc.until(&recorder, 6, "the floor and the HPA to agree on 6")
        .await;
    sc.metric.set(100);
    // The HPA asks for 1 every second and is held at the floor.
    let held = eventually("three HPA writes held at the floor", STEP, || async {
        let held: Vec<_> = recorder
            .reviews()
            .into_iter()
            .filter(|r| r.by_hpa() && r.asked == 1 && r.granted == 6)
            .collect();
        (held.len() >= 3).then_some(held)
    })
    .await;
    assert!(
        held[0].message.contains("recommendation floor 6"),
        "{:?}",
        held[0].message
    );
    source.failing.store(true, Ordering::Relaxed);
    let failed_at = Utc::now();
    sc.until(&recorder, 1, "the floor to expire and the HPA's 1 to land")
        .await;
    let timeline = recorder.finish(&sc.metric, TARGET as f64).await;
    assert_eq!(timeline.sequence(), [2, 6, 1]);
    let landed = timeline
        .reviews
        .iter()
        .find(|r| r.granted == 1)
        .expect("the write that landed 1");
    assert!(landed.by_hpa(), "{landed:?}");
    // The last recommendation was written before the source failed and
    // lives 8 s: it cannot have let go much sooner.
    assert!(
        landed.at > failed_at + chrono::Duration::seconds(1),
        "the floor let go {} after the source failed",
        landed.at - failed_at
    );
    let expired = support::e2e::events(&sc.s, "RecommendationExpired").await;
    assert!(!expired.trim().is_empty(), "no RecommendationExpired Event");
    sc.conclude(
        timeline,
        "floor",
        "A recommendation floor of 6 under an HPA whose metric drops to 1",
        false,
    );
}
