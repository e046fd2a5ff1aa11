//! Replicas whose clocks are minutes off the apiserver's (libfaketime),
//! beside one with a true clock, for one namespace: a `scale-up: "4
//! pods/60s"` rule must hold over every actor's changes admitted by both,
//! the skewed replica must never take the Lease the other renews, no honest
//! ledger entry may be dropped or booked twice, and a floor the skewed
//! replica recommends while it leads must hold on the true-clock replica.
//! Once 3 minutes ahead, once 3 minutes behind: the tolerance
//! docs/operations.md states.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::{apps::v1::Deployment, coordination::v1::Lease, core::v1::ConfigMap};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams},
    runtime::{WatchStreamExt, watcher},
};
use scale_governor::{
    engine::Change,
    testing::{
        leader::LEASE_NAME,
        ledgers::{LEDGER_LABEL, from_object},
    },
};
use serde_json::json;
use serial_test::serial;

use crate::support::{
    self, REQUIRE_CLUSTER_ENV, TestNamespace,
    e2e::{WAIT, apply, scale, workload},
    eventually,
    governor::{self, Governor, libfaketime},
    spread::Spread,
};

/// The rule under test, and what it allows in one period from 2 replicas.
const RULE: &str = "4 pods/60s";
const START: u32 = 2;
const MOST: u32 = START + 4;

#[tokio::test]
#[serial]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
async fn a_replica_three_minutes_ahead_shares_the_budget_and_never_takes_a_renewed_lease() {
    skewed("+3m", 180).await;
}

#[tokio::test]
#[serial]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
async fn a_replica_three_minutes_behind_shares_the_budget_and_never_takes_a_renewed_lease() {
    skewed("-3m", -180).await;
}

/// Each stored `spec.replicas` of `web`, with when the test's watch saw it.
type Timeline = Arc<Mutex<Vec<(DateTime<Utc>, u32)>>>;

async fn skewed(offset: &str, ahead_seconds: i64) {
    let Some(preload) = libfaketime() else {
        assert!(
            !std::env::var(REQUIRE_CLUSTER_ENV).is_ok_and(|v| v == "1"),
            "libfaketime is missing: install it with `.ci/tools.sh faketime` (Debian's faketime)"
        );
        eprintln!("SKIPPED: libfaketime is missing (.ci/tools.sh faketime)");
        return;
    };
    let cluster = support::require_cluster!();
    let ns = cluster.namespace("skew").await;
    let leases: Api<Lease> = Api::namespaced(cluster.client(), ns.name());
    let mut honest = Governor::start(cluster, ns.name(), "true-clock").await;
    let holder = || async {
        let lease = leases.get_opt(LEASE_NAME).await.ok().flatten()?;
        let spec = lease.spec?;
        Some((spec.holder_identity?, spec.lease_transitions.unwrap_or(0)))
    };
    let (_, transitions) = eventually("the true-clock replica to lead", WAIT, || async {
        holder().await.filter(|(h, _)| h == "true-clock")
    })
    .await;
    let mut skewed = Governor::start_skewed(cluster, ns.name(), "skewed", offset, &preload).await;

    let (_spread, webhooks) = Spread::register_over(cluster, &ns, &[&honest, &skewed]).await;
    let yaml = workload("Deployment", "web", START, &[("scale-up", RULE)]);
    eventually("web to be created through both replicas", WAIT, || async {
        apply(cluster, &ns, &yaml)
            .await
            .status
            .success()
            .then_some(())
    })
    .await;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), ns.name());
    let timeline: Timeline = Arc::default();
    let recorder = tokio::spawn(record(deployments.clone(), timeline.clone()));

    // Both replicas admit: every request asks for more than the budget, by
    // /scale and by the object, for 20 s, well inside one period.
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut lease_seen = Vec::new();
    let mut i = 0u32;
    while tokio::time::Instant::now() < until {
        let ask = json!({"spec": {"replicas": 20 + i % 5}});
        let params = PatchParams::default();
        let _ = if i.is_multiple_of(2) {
            deployments
                .patch_scale("web", &params, &Patch::Merge(&ask))
                .await
                .map(drop)
        } else {
            deployments
                .patch("web", &params, &Patch::Merge(&ask))
                .await
                .map(drop)
        };
        i += 1;
        if i.is_multiple_of(4) {
            lease_seen.extend(holder().await);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stored: Vec<(DateTime<Utc>, u32)> = timeline.lock().unwrap().clone();
    assert!(
        i > 50 && spread_answered_by_both(&honest, &skewed).await,
        "{i} requests; both replicas must have answered reviews"
    );
    assert!(
        stored.iter().all(|(_, r)| *r <= MOST),
        "{offset}: `scale-up: {RULE}` from {START} allows at most {MOST} in the period, \
         but the stored replicas went {:?}\n{}",
        stored.iter().map(|(_, r)| r).collect::<Vec<_>>(),
        who_admitted(&honest, &skewed)
    );
    assert_eq!(
        stored.last().map(|(_, r)| *r),
        Some(MOST),
        "the budget is used: {stored:?}"
    );
    assert!(
        lease_seen
            .iter()
            .all(|(h, t)| h == "true-clock" && *t == transitions),
        "{offset}: the skewed replica took the renewed Lease: {lease_seen:?}"
    );
    booked_once(cluster.client(), &ns, &stored).await;
    offset_measured(&skewed, ahead_seconds).await;

    // The skewed replica leads and writes a floor of 5 with a short life;
    // the true-clock replica alone then answers a scale to 1.
    honest.stop().await;
    eventually(
        "the skewed replica to lead",
        Duration::from_secs(60),
        || async { holder().await.filter(|(h, _)| h == "skewed") },
    )
    .await;
    let pool = r#"{"source":"pods","warmPool":{"reserved":"example.com/reserved","targetReady":5},"ttlSeconds":120,"holdSeconds":0}"#;
    cluster
        .kubectl_ok([
            "annotate",
            "-n",
            ns.name(),
            "deployment/web",
            &format!("scale-governor.io/recommend={pool}"),
        ])
        .await;
    eventually("the skewed leader's floor", WAIT, || async {
        let d = deployments.get("web").await.ok()?;
        let text = d
            .metadata
            .annotations?
            .get("scale-governor.io/recommendation")?
            .clone();
        text.contains("\"replicas\":5").then_some(())
    })
    .await;
    skewed.stop().await;
    honest.start_again().await;
    governor::repoint(cluster, &ns, &honest.url()).await;
    drop(webhooks);
    let _webhooks = governor::register(cluster, &ns, &honest.url()).await;
    let (ok, stderr) = eventually("a scale through the true-clock replica", WAIT, || async {
        let before = honest.reviews().await;
        let out = scale(cluster, &ns, "deploy/web", 1, &[]).await;
        (honest.reviews().await > before).then_some(out)
    })
    .await;
    assert!(ok, "{stderr}");
    let now = deployments.get("web").await.unwrap();
    assert_eq!(
        now.spec.and_then(|s| s.replicas),
        Some(5),
        "{offset}: the floor the skewed leader wrote holds on the true clock: {stderr}"
    );
    recorder.abort();
}

async fn record(api: Api<Deployment>, timeline: Timeline) {
    let config = watcher::Config::default().fields("metadata.name=web");
    let mut events = watcher(api, config).applied_objects().boxed();
    while let Ok(Some(d)) = events.try_next().await {
        let replicas = d.spec.and_then(|s| s.replicas).unwrap_or(1) as u32;
        let mut t = timeline.lock().unwrap();
        if t.last().map(|(_, r)| *r) != Some(replicas) {
            t.push((Utc::now(), replicas));
        }
    }
}

async fn spread_answered_by_both(a: &Governor, b: &Governor) -> bool {
    a.reviews().await > 0 && b.reviews().await > 0
}

/// For a failure: what each replica's log says it admitted.
fn who_admitted(a: &Governor, b: &Governor) -> String {
    let mut out = String::new();
    for (name, g) in [("true-clock", a), ("skewed", b)] {
        out.push_str(&format!("--- {name}:\n"));
        for line in g
            .log()
            .lines()
            .filter(|l| l.contains("clamped") || l.contains("allowed"))
        {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Every stored change is in the ledger object once, with a time within a
/// few seconds of when the watch saw it (both on the apiserver's clock).
async fn booked_once(client: kube::Client, ns: &TestNamespace, stored: &[(DateTime<Utc>, u32)]) {
    let ledgers: Api<ConfigMap> = Api::namespaced(client, ns.name());
    let changes: Vec<(u32, u32, DateTime<Utc>)> = stored
        .windows(2)
        .map(|w| (w[0].1, w[1].1, w[1].0))
        .collect();
    eventually("each stored change in the ledger once", WAIT, || async {
        let list = ledgers
            .list(&ListParams::default().labels(LEDGER_LABEL))
            .await
            .ok()?;
        let now = Utc::now();
        let ledger = list
            .iter()
            .filter_map(|cm| from_object(cm, now))
            .find(|(_, key, _)| key.ends_with("/web"))?
            .2
            .ledger;
        let held: Vec<_> = ledger.changes().iter().filter(|c| c.from != c.to).collect();
        let near = |c: &&Change, from: u32, to: u32, at: DateTime<Utc>| {
            c.from == from && c.to == to && (c.at - at).abs() <= chrono::Duration::seconds(5)
        };
        let each_once = changes
            .iter()
            .all(|(from, to, at)| held.iter().filter(|c| near(c, *from, *to, *at)).count() == 1);
        // Nothing booked that did not land (the create's own entry aside).
        let first = stored.first().map(|(t, _)| *t)?;
        let invented = held.iter().any(|c| {
            c.at > first + chrono::Duration::seconds(1)
                && !changes.iter().any(|(f, t, at)| near(c, *f, *t, *at))
        });
        (each_once && !invented).then_some(())
    })
    .await;
}

/// The skewed replica's measured offset is the skew, within 5 s.
async fn offset_measured(skewed: &Governor, ahead_seconds: i64) {
    let metrics = skewed.metrics().await;
    let offset: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("scale_governor_clock_offset_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no offset metric:\n{metrics}"));
    // The apiserver minus the replica: negative for a replica ahead.
    assert!(
        (offset + ahead_seconds as f64).abs() <= 5.0,
        "measured {offset} s for a replica {ahead_seconds} s ahead"
    );
}
