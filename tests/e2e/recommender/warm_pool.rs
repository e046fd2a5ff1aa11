//! A warm pool with the real ReplicaSet controller: ready pods kept on top
//! of the reserved, and a reserved pod never deleted.

use super::*;

/// Marks a pool pod reserved by a session, or frees it.
async fn reserve(s: &Setup, pod: &str, reserved: bool) {
    let value = if reserved {
        "sessions.example.com/reserved=true"
    } else {
        "sessions.example.com/reserved-"
    };
    s.cluster
        .kubectl_ok([
            "label",
            "--overwrite",
            "-n",
            s.ns.name(),
            &format!("pod/{pod}"),
            value,
        ])
        .await;
}

async fn pool_pods(s: &Setup) -> Vec<(String, bool)> {
    let out = s
        .cluster
        .kubectl_ok([
            "get",
            "pods",
            "-n",
            s.ns.name(),
            "-l",
            "scale-governor.io/warm-pool=sessions",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}|{.metadata.labels.sessions\\.example\\.com/reserved}|{.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ])
        .await;
    out.lines()
        .filter_map(|l| {
            let mut fields = l.split('|');
            let (name, reserved, deleting) = (fields.next()?, fields.next()?, fields.next()?);
            (!name.is_empty() && deleting.trim().is_empty())
                .then(|| (name.to_owned(), reserved == "true"))
        })
        .collect()
}

/// A warm pool of pre-warmed pods on real pod lifecycles (kwok: Running
/// at once, Ready after the pods' start-up delay) with the real ReplicaSet
/// controller: the recommendation is reserved + targetReady, pods still
/// warming (Running, not Ready) count as on their way, and when the pool
/// shrinks the controller deletes idle pods, never a reserved one (the
/// governor keeps their deletion cost high).
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn a_warm_pool_keeps_ready_pods_on_top_of_the_reserved_and_never_deletes_one() {
    let Some(s) = setup("warmpool", None).await else {
        return;
    };
    let recommend = r#"{"source":"pods","warmPool":{"reserved":"sessions.example.com/reserved","targetReady":2},"holdSeconds":0,"kind":"target"}"#;
    // Pods take 6 s from Running to Ready, as a slow-starting server would.
    let manifest = workload("Deployment", "sessions", 2, &[("recommend", recommend)]).replace(
        "      labels: {app: sessions}\n",
        "      labels: {app: sessions, scale-governor.io/warm-pool: sessions}\n      annotations: {pod-ready.stage.kwok.x-k8s.io/delay: 6s}\n",
    );
    create(&s, &manifest).await;
    let pods = eventually("the first two pods", LOOP_WAIT, || async {
        let pods = pool_pods(&s).await;
        (pods.len() == 2).then_some(pods)
    })
    .await;
    eventually("the first two pods Ready", LOOP_WAIT, || async {
        (status_row(&s, "sessions")["pool"] == serde_json::json!([0, 2, 0])).then_some(())
    })
    .await;
    // Two sessions take both pods: the pool grows to 2 reserved + 2 ready.
    for (pod, _) in &pods {
        reserve(&s, pod, true).await;
    }
    eventually("4 replicas", LOOP_WAIT, || async {
        (replicas(s.cluster, &s.ns, "deploy/sessions").await == 4).then_some(())
    })
    .await;
    let rec = eventually("the warm pool's recommendation", LOOP_WAIT, || async {
        annotation(&s, "deploy/sessions", "scale-governor.io/recommendation")
            .await
            .filter(|r| r["replicas"] == 4)
    })
    .await;
    assert_eq!(rec["strategy"].as_str(), Some("warm-pool"));
    // The two new pods run and warm up: they count as on their way, and
    // nothing more is added while they do, nor once they are ready.
    eventually("2 reserved and 2 warming", LOOP_WAIT, || async {
        (status_row(&s, "sessions")["pool"] == serde_json::json!([2, 0, 2])).then_some(())
    })
    .await;
    eventually("2 reserved and 2 ready", LOOP_WAIT, || async {
        (status_row(&s, "sessions")["pool"] == serde_json::json!([2, 2, 0])).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/sessions").await, 4);
    let all = pool_pods(&s).await;
    assert_eq!(all.len(), 4, "{all:?}");
    // The reserved pods carry a high deletion cost.
    let reserved: Vec<String> = all.iter().filter(|p| p.1).map(|p| p.0.clone()).collect();
    for pod in &reserved {
        let cost = eventually("the deletion cost", LOOP_WAIT, || async {
            let cost = s
                .cluster
                .kubectl_ok([
                    "get",
                    "-n",
                    s.ns.name(),
                    &format!("pod/{pod}"),
                    "-o",
                    "jsonpath={.metadata.annotations.controller\\.kubernetes\\.io/pod-deletion-cost}",
                ])
                .await;
            (cost.trim() == "1000").then_some(cost)
        })
        .await;
        assert_eq!(cost.trim(), "1000");
    }
    // Sessions move: both first pods are freed and one of the newest pods
    // is taken. Left to its own ranking the controller deletes the newest
    // pods first; only the deletion cost keeps the reserved one.
    let newest: Vec<String> = all
        .iter()
        .filter(|p| !reserved.contains(&p.0))
        .map(|p| p.0.clone())
        .collect();
    reserve(&s, &newest[0], true).await;
    for pod in &reserved {
        reserve(&s, pod, false).await;
    }
    eventually("3 replicas", LOOP_WAIT, || async {
        (replicas(s.cluster, &s.ns, "deploy/sessions").await == 3).then_some(())
    })
    .await;
    let left = eventually("the controller to delete one pod", LOOP_WAIT, || async {
        let pods = pool_pods(&s).await;
        (pods.len() == 3).then_some(pods)
    })
    .await;
    assert!(
        left.iter().any(|(name, r)| *r && *name == newest[0]),
        "the reserved pod {} was deleted: {left:?}",
        newest[0]
    );
    // And the deleted pod is really gone, not left terminating.
    eventually("the deleted pod to be gone", LOOP_WAIT, || async {
        let names = s
            .cluster
            .kubectl_ok(["get", "pods", "-n", s.ns.name(), "-o", "name"])
            .await;
        (names.lines().count() == 3).then_some(())
    })
    .await;
}
