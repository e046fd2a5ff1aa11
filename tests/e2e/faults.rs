//! Fault injection on the real control plane: two `serve` replicas behind a
//! proxy that spreads reviews over both (as a Service would), a bounded
//! client changing 20 governed Deployments through `/scale` and object
//! patches, and replicas SIGKILLed at random moments (one right after it
//! admitted a change, before it could persist anything) and restarted in
//! place with the same identity. The truth is the stored objects' replica
//! history, as the test's own watch recorded it: no rate rule may be
//! exceeded over any sliding period, and no stored change may be missing
//! from the ledger objects afterwards.
//!
//! `SCALE_GOVERNOR_FAULT_SECONDS` sets how long the faults go on (20 in
//! `make test`, longer under `make soak`); `SCALE_GOVERNOR_FAULT_SEED`
//! replays a run (`make faults-repeat` runs seeds over and over). A rate
//! rule exceeded is reported with the changes of its window: which replica
//! admitted each, and the ledger it decided against.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::{apps::v1::Deployment, coordination::v1::Lease, core::v1::ConfigMap};
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::json;
use serial_test::serial;

use crate::support::{
    self,
    e2e::{Setup, WAIT, apply, workload},
    eventually,
    governor::Governor,
    spread::{Exchange, Spread},
};

const WORKLOADS: usize = 20;
/// `4 pods/10s` both ways: short enough that a run crosses many periods.
const STEP: i64 = 4;
const PERIOD: i64 = 10;
const MAX: u32 = 12;
/// The replicas, in the order the proxy knows them.
const REPLICAS: [&str; 2] = ["a", "b"];

/// Each Deployment's `spec.replicas` as stored, with when the watch saw it.
type Timeline = BTreeMap<String, Vec<(DateTime<Utc>, u32)>>;

#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[serial]
async fn no_rate_rule_is_exceeded_and_no_stored_change_is_lost_when_replicas_die() {
    let cluster = support::require_cluster!();
    let seconds: u64 = std::env::var("SCALE_GOVERNOR_FAULT_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("SCALE_GOVERNOR_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("fault injection: {seconds}s, SCALE_GOVERNOR_FAULT_SEED={seed}");
    let rng = Arc::new(Mutex::new(fastrand::Rng::with_seed(seed)));
    let ns = cluster.namespace("faults").await;
    let mut replicas = vec![
        Governor::start(cluster, ns.name(), "a").await,
        Governor::start(cluster, ns.name(), "b").await,
    ];
    let (spread, _webhooks) =
        Spread::register_over(cluster, &ns, &replicas.iter().collect::<Vec<_>>()).await;
    let policy = [
        ("scale-up", "4 pods/10s"),
        ("scale-down", "4 pods/10s"),
        ("max-replicas", "12"),
    ];
    let s = Setup::adopt(cluster, ns, replicas.remove(0));
    let mut b = replicas.remove(0);
    for i in 0..WORKLOADS {
        let out = apply(
            cluster,
            &s.ns,
            &workload("Deployment", &format!("w{i}"), 4, &policy),
        )
        .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let client = cluster.client();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), s.ns.name());
    // Until the apiserver calls the proxy, a change would land ungoverned.
    eventually("reviews through the proxy", WAIT, || async {
        let before = s.governor.reviews().await + b.reviews().await;
        let probe = json!({"metadata": {"annotations": {"probe": before.to_string()}}});
        let _ = deployments
            .patch("w0", &PatchParams::default(), &Patch::Merge(&probe))
            .await;
        (s.governor.reviews().await + b.reviews().await > before).then_some(())
    })
    .await;
    let timeline: Arc<Mutex<Timeline>> = Arc::default();
    let recorder = tokio::spawn(record(deployments.clone(), timeline.clone()));
    let reviews: Arc<Mutex<Vec<Arc<Exchange>>>> = Arc::default();
    let reading = tokio::spawn(keep_reviews(spread.exchanges(), reviews.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;

    let until = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let clients: Vec<_> = (0..4)
        .map(|_| tokio::spawn(change_replicas(deployments.clone(), rng.clone(), until)))
        .collect();

    // The killer: one replica down at a time, restarted in place.
    let leases: Api<Lease> = Api::namespaced(client.clone(), s.ns.name());
    let mut answered = spread.answered();
    let mut a = s.governor;
    let mut kills = 0;
    while tokio::time::Instant::now() < until {
        let (pause, leader_first, right_after, down_for) = {
            let mut r = rng.lock().unwrap();
            (r.u64(1000..3000), r.bool(), r.bool(), r.u64(0..1500))
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let holder = leases
            .get_opt(scale_governor::testing::leader::LEASE_NAME)
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity);
        let a_leads = holder.as_deref() == Some("a");
        let victim_is_a = a_leads == leader_first;
        let victim: &mut Governor = if victim_is_a { &mut a } else { &mut b };
        if right_after {
            // Strike right after the victim answers a review: a change it
            // admitted may have landed, and it has persisted nothing yet.
            let index = usize::from(!victim_is_a);
            let wait = async {
                while let Ok(i) = answered.recv().await {
                    if i == index {
                        return;
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(3), wait).await;
        }
        victim.kill().await;
        kills += 1;
        tokio::time::sleep(Duration::from_millis(down_for)).await;
        victim.start_again().await;
        answered = answered.resubscribe();
    }
    for c in clients {
        c.await.unwrap();
    }
    // Both replicas up; let the last changes land and be persisted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    recorder.abort();
    reading.abort();
    let timeline = timeline.lock().unwrap().clone();
    let changes: usize = timeline.values().map(|t| t.len().saturating_sub(1)).sum();
    eprintln!("{kills} kills, {changes} stored changes");
    assert!(
        kills >= 3 && changes >= 20,
        "too little happened to prove anything"
    );

    let violations = rate_violations(&timeline);
    if !violations.is_empty() {
        let reviews = reviews.lock().unwrap().clone();
        let logs = [a.log(), b.log()];
        let report: Vec<String> = violations
            .iter()
            .map(|v| explain(v, &timeline, &reviews, &logs))
            .collect();
        panic!("seed {seed}: rate rules exceeded:\n{}", report.join("\n"));
    }

    let ledgers: Api<ConfigMap> = Api::namespaced(client, s.ns.name());
    let missing = missing_from_ledgers(&ledgers, &timeline, Utc::now()).await;
    assert!(
        missing.is_empty(),
        "seed {seed}: stored changes missing from the ledger objects:\n{}",
        missing.join("\n")
    );
    drop(b);
    drop(a);
}

async fn record(api: Api<Deployment>, timeline: Arc<Mutex<Timeline>>) {
    let mut events = watcher(api, watcher::Config::default())
        .applied_objects()
        .boxed();
    while let Ok(Some(d)) = events.try_next().await {
        let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1) as u32;
        let mut t = timeline.lock().unwrap();
        let history = t.entry(d.name_any()).or_default();
        if history.last().map(|(_, r)| *r) != Some(replicas) {
            history.push((Utc::now(), replicas));
        }
    }
}

async fn change_replicas(
    api: Api<Deployment>,
    rng: Arc<Mutex<fastrand::Rng>>,
    until: tokio::time::Instant,
) {
    while tokio::time::Instant::now() < until {
        let (name, to, through_scale, pause) = {
            let mut r = rng.lock().unwrap();
            (
                format!("w{}", r.usize(..WORKLOADS)),
                r.u32(1..=MAX + 4),
                r.bool(),
                r.u64(50..300),
            )
        };
        let patch = json!({"spec": {"replicas": to}});
        let params = PatchParams::default();
        // Refusals, clamps and webhook failures while a replica is down
        // are all fine: only what was stored counts.
        let _ = if through_scale {
            api.patch_scale(&name, &params, &Patch::Merge(&patch))
                .await
                .map(drop)
        } else {
            api.patch(&name, &params, &Patch::Merge(&patch))
                .await
                .map(drop)
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// A change that went further than a rate rule allows.
struct Violation {
    name: String,
    from: u32,
    to: u32,
    at: DateTime<Utc>,
    /// The count a period before, as the checker takes it.
    start: i64,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Violation {
            name,
            from,
            to,
            at,
            start,
        } = self;
        write!(
            f,
            "{name}: {from} -> {to} at {at} with {start} a period before"
        )
    }
}

/// How far the checker's "a period before" reaches back past the period.
const SLACK: chrono::Duration = chrono::Duration::seconds(2);

/// The governor allows at most `STEP` pods more (or fewer) than the count
/// a period ago. The watch sees each change a little after admission, so
/// the count "a period ago" is taken as any count stored within two seconds
/// of that moment.
fn rate_violations(timeline: &Timeline) -> Vec<Violation> {
    let slack = SLACK;
    let period = chrono::Duration::seconds(PERIOD);
    let mut out = Vec::new();
    for (name, history) in timeline {
        let at = |t: DateTime<Utc>| {
            history
                .iter()
                .take_while(|(when, _)| *when <= t)
                .last()
                .map(|(_, r)| i64::from(*r))
        };
        for window in history.windows(2) {
            let ((_, from), (t, to)) = (window[0], window[1]);
            let (lo, hi) = (t - period - slack, t - period + slack);
            let mut around: Vec<i64> = history
                .iter()
                .filter(|(when, _)| *when > lo && *when <= hi)
                .map(|(_, r)| i64::from(*r))
                .collect();
            around.extend(at(lo));
            let Some(start) = (if to > from {
                around.iter().max()
            } else {
                around.iter().min()
            }) else {
                continue; // Before the recording began.
            };
            let (to, from) = (i64::from(to), i64::from(from));
            if (to > from && to > start + STEP) || (to < from && to < start - STEP) {
                out.push(Violation {
                    name: name.clone(),
                    from: from as u32,
                    to: to as u32,
                    at: t,
                    start: *start,
                });
            }
        }
    }
    out
}

/// Keeps every review the proxy passes on, with its answer and replica.
async fn keep_reviews(
    mut exchanges: tokio::sync::broadcast::Receiver<Arc<Exchange>>,
    into: Arc<Mutex<Vec<Arc<Exchange>>>>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match exchanges.recv().await {
            Ok(x) => into.lock().unwrap().push(x),
            Err(RecvError::Lagged(n)) => eprintln!("the report misses {n} reviews"),
            Err(RecvError::Closed) => return,
        }
    }
}

/// A violation with the changes stored in its window (from a period and
/// the slack before it): for each, the replica that admitted it (the last
/// review at `/mutate` from that count to that one before the watch saw
/// it) and the ledger that replica decided against, from its log.
fn explain(
    v: &Violation,
    timeline: &Timeline,
    reviews: &[Arc<Exchange>],
    logs: &[String],
) -> String {
    let since = v.at - chrono::Duration::seconds(PERIOD) - SLACK;
    let mut out = format!("{v}; stored since {}:", since.format("%H:%M:%S%.3f"));
    let history = timeline.get(&v.name).map_or(&[][..], Vec::as_slice);
    for window in history.windows(2) {
        let ((_, from), (t, to)) = (window[0], window[1]);
        if t <= since || t > v.at {
            continue;
        }
        out += &format!("\n  {} {from} -> {to}: ", t.format("%H:%M:%S%.3f"));
        let admitted = reviews
            .iter()
            .rev()
            .filter(|x| x.at <= t + chrono::Duration::seconds(1))
            .filter_map(|x| Some((x, x.admitted()?)))
            .find(|(_, a)| a.name == v.name && a.from == from && a.to == to);
        let Some((x, a)) = admitted else {
            out += "no review at /mutate let it through";
            continue;
        };
        let needle = format!("uid={} ", a.uid);
        let ledger = logs[x.backend]
            .lines()
            .find(|l| l.contains("admitted a change against this ledger") && l.contains(&needle))
            .and_then(|l| l.split_once(" ledger="))
            .map_or("(not in its log)", |(_, l)| l);
        out += &format!(
            "replica {} admitted it at {} (review {}, asked {}) against {ledger}",
            REPLICAS[x.backend],
            x.at.format("%H:%M:%S%.3f"),
            a.uid,
            a.asked
        );
    }
    out
}

/// Every change stored recently enough for the ledger to keep it must be in
/// the ledger object of its workload.
async fn missing_from_ledgers(
    api: &Api<ConfigMap>,
    timeline: &Timeline,
    now: DateTime<Utc>,
) -> Vec<String> {
    let list = api
        .list(&ListParams::default().labels(scale_governor::testing::ledgers::LEDGER_LABEL))
        .await
        .unwrap();
    let mut ledgers = BTreeMap::new();
    for cm in &list {
        if let Some((_, key, persisted)) = scale_governor::testing::ledgers::from_object(cm, now) {
            let name = key
                .split_once('/')
                .map(|(_, n)| n.to_owned())
                .unwrap_or(key);
            ledgers.insert(name, persisted.ledger);
        }
    }
    // The ledger keeps 30 s (the longest of the rule's period and the
    // confirmation window); allow for the last writes' delay.
    let since = now - chrono::Duration::seconds(20);
    let mut out = Vec::new();
    for (name, history) in timeline {
        for window in history.windows(2) {
            let ((_, from), (t, to)) = (window[0], window[1]);
            if t < since {
                continue;
            }
            let found = ledgers.get(name).is_some_and(|l| {
                l.changes().iter().any(|c| {
                    c.from == from && c.to == to && (c.at - t).abs() <= chrono::Duration::seconds(5)
                })
            });
            if !found {
                let held: Vec<String> = ledgers
                    .get(name)
                    .map(|l| {
                        l.changes()
                            .iter()
                            .map(|c| format!("{}->{} at {} by {}", c.from, c.to, c.at, c.actor))
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(format!(
                    "{name}: {from} -> {to} at {t}; its ledger holds {held:?}"
                ));
            }
        }
    }
    out
}
