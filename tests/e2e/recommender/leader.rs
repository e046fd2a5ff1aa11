//! The loop under two replicas: only the leader writes, and a new leader
//! resumes the persisted trend.

use super::*;

/// Two `serve` replicas: only the leader writes recommendations. SIGKILL of
/// the leader moves the writes to the other within the Lease's duration
/// plus a retry, and its first recommendation resumes the persisted trend
/// (it names the velocity strategy at once, which a blank history cannot).
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn the_leader_alone_writes_and_a_new_leader_resumes_the_trend() {
    let (url, orders) = orders_endpoint().await;
    let sources = format!(
        "sources:\n  - name: orders\n    namespaces: [\"{{ns}}\"]\n    http:\n      url: {url}/stats/{{{{name}}}}\n"
    );
    let Some(mut s) = setup("failover", Some(&sources)).await else {
        return;
    };
    let flags = [
        "--recommend-interval=1s".to_owned(),
        format!(
            "--sources={}",
            std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("sources-{}.yaml", s.ns.name()))
                .display()
        ),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let b = support::governor::Governor::start_with(s.cluster, s.ns.name(), "b", &flags).await;
    // Smoothing over 10 s with a threshold of 2.5/s: on this +5/s ramp a
    // blind recommender needs about 7 samples to pass it; one that resumed
    // the persisted trend is past it from its first.
    let recommend = r#"{"source":"orders","pointer":"/orders","targetPerPod":10,"tolerance":0,"trend":"velocity","leadSeconds":20,"smoothingSeconds":10,"velocityThreshold":2.5,"holdSeconds":0}"#;
    create(
        &s,
        &workload("Deployment", "web", 1, &[("recommend", recommend)]),
    )
    .await;
    // A steady ramp, +5 a second, for the whole test.
    let ramp = {
        let orders = orders.clone();
        tokio::spawn(async move {
            for i in 0u64.. {
                orders.value.store(100 + 5 * i, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let writes = |metrics: String| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("scale_governor_recommender_writes_total{kind=\"recommendation\",result=\"ok\"} "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    eventually("a recommendation with a trend", LOOP_WAIT, || async {
        let rec = annotation(&s, "deploy/web", "scale-governor.io/recommendation").await?;
        (rec["strategy"] == "velocity").then_some(())
    })
    .await;
    let (a_writes, b_writes) = (
        writes(s.governor.metrics().await),
        writes(b.metrics().await),
    );
    assert!(
        a_writes > 0 && b_writes == 0,
        "a (first, the leader) wrote {a_writes}, b wrote {b_writes}"
    );
    // The leader dies without a goodbye; the Service would now send the
    // apiserver's calls to b alone.
    s.governor.kill().await;
    let killed = std::time::Instant::now();
    support::governor::repoint(s.cluster, &s.ns, &b.url()).await;
    eventually(
        "b to take over and write",
        Duration::from_secs(40),
        || async { (writes(b.metrics().await) > 0).then_some(()) },
    )
    .await;
    let took = killed.elapsed();
    let rec = annotation(&s, "deploy/web", "scale-governor.io/recommendation")
        .await
        .unwrap();
    assert_eq!(
        rec["strategy"], "velocity",
        "b's first recommendation did not resume the trend: {rec}"
    );
    assert!(
        took < Duration::from_secs(15 + 10),
        "took {took:?}: Lease 15 s plus retries"
    );
    ramp.abort();
}
