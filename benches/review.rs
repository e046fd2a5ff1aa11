//! One review through the webhook's handler, in process (no TLS, no HTTP):
//! the body parsed, the policy found in a cache of `--workloads` governed
//! Deployments, the decision made, reported (metrics, log gate, Event
//! series) and the response encoded. Every review is a clamp of a `/scale`
//! with its own uid, for a workload of its own, as in the load benchmark's
//! storm. `make bench-review` runs it under valgrind, whose instruction and
//! allocation counts per review are repeatable on a noisy machine.
//!
//! ```text
//! cargo bench --bench review -- --reviews 20000 --workloads 10000 --bodies 20000
//! ```

use std::{hint::black_box, sync::Arc, time::Instant};

use chrono::Utc;
use scale_governor::{
    policy::{Policy, keys},
    testing::cache::{Cache, Update},
    testing::metrics::Metrics,
    testing::webhook::{Webhook, admit::Endpoint},
    workload::WorkloadKind,
};

/// The README's policy shape: bounds, two windows, two rates.
const POLICY: [(&str, &str); 5] = [
    (keys::MIN_REPLICAS, "2"),
    (keys::MAX_REPLICAS, "400"),
    (
        keys::WINDOWS,
        "Mon-Fri 08:00-20:00 Europe/Berlin min=4\nMon-Sun 23:00-05:00 Europe/Berlin max=300",
    ),
    (keys::SCALE_UP, "4 pods/60s, 100%/60s"),
    (keys::SCALE_DOWN, "10%/60s, stabilization=300s"),
];

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

fn review(uid: usize, workload: usize) -> Vec<u8> {
    let (name, ns) = (format!("web-{workload}"), format!("ns-{}", workload % 100));
    let scale = |replicas: u32| {
        format!(
            r#"{{"kind":"Scale","apiVersion":"autoscaling/v1","metadata":{{"name":"{name}","namespace":"{ns}","uid":"0b5e0000-0000-4000-8000-{workload:012}","resourceVersion":"1187","creationTimestamp":"2026-11-23T09:00:00Z"}},"spec":{{"replicas":{replicas}}},"status":{{"replicas":40,"selector":"app={name}"}}}}"#
        )
    };
    format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"00000000-0000-4000-8000-{uid:012}","kind":{{"group":"autoscaling","version":"v1","kind":"Scale"}},"resource":{{"group":"apps","version":"v1","resource":"deployments"}},"subResource":"scale","requestKind":{{"group":"autoscaling","version":"v1","kind":"Scale"}},"requestResource":{{"group":"apps","version":"v1","resource":"deployments"}},"requestSubResource":"scale","name":"{name}","namespace":"{ns}","operation":"UPDATE","userInfo":{{"username":"system:serviceaccount:kube-system:horizontal-pod-autoscaler","groups":["system:serviceaccounts","system:authenticated"]}},"object":{object},"oldObject":{old},"dryRun":false,"options":{{"kind":"UpdateOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"kube-controller-manager"}}}}}}"#,
        object = scale(10_000),
        old = scale(40),
    )
    .into_bytes()
}

fn main() {
    let reviews = arg("--reviews", 20_000);
    let workloads = arg("--workloads", 10_000).max(1);
    let cache = Arc::new(Cache::new());
    let now = Utc::now();
    for i in 0..workloads {
        let key = format!("ns-{}/web-{i}", i % 100);
        cache.apply(
            Update {
                kind: WorkloadKind::Deployment,
                key: &key,
                uid: Some(format!("0b5e0000-0000-4000-8000-{i:012}")),
                policy: Policy::from_annotations(POLICY),
                replicas: 40,
                ready: None,
                history: None,
                written_at: None,
                generation: None,
                actor: None,
                state: None,
            },
            now,
        );
    }
    cache.mark_synced(WorkloadKind::Deployment);
    let webhook = Webhook {
        cache,
        metrics: Arc::new(Metrics::new()),
        events: Some(scale_governor::testing::events::EventSink::new(
            Default::default(),
            Arc::new(Metrics::new()),
        )),
        config: Default::default(),
        logs: Default::default(),
    };
    // As many bodies however many reviews, so that two runs differ only in
    // the reviews handled (benches/review.sh subtracts one from the other).
    let bodies: Vec<Vec<u8>> = (0..arg("--bodies", 4_000).max(1))
        .map(|i| review(i, i % workloads))
        .collect();
    // The first pass fills the metric families, the log gate and the Event
    // series, as a running server has; the second is measured.
    for body in bodies.iter().take(workloads) {
        black_box(webhook.handle(Endpoint::Mutate, body));
    }
    let started = Instant::now();
    for body in bodies.iter().cycle().take(reviews) {
        black_box(webhook.handle(Endpoint::Mutate, body));
    }
    let elapsed = started.elapsed();
    println!(
        "review: {reviews} clamp reviews over {workloads} cached workloads: {:.2} µs per review",
        elapsed.as_secs_f64() * 1e6 / reviews as f64
    );
}
