//! Persisting each workload's ledger into its `history` annotation, so a
//! restart of every replica loses no rate budget. Only the leader writes,
//! and only what changed.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{
    cache::{Cache, Entry},
    leader::{FIELD_MANAGER, Leadership},
    metrics::{Metrics, ResultLabels},
    policy::keys,
    workload::WorkloadKind,
};

/// How long shutdown waits for the last history writes.
const FINAL_PERSIST: Duration = Duration::from_secs(5);

/// Every `every`, while leading, writes the ledgers that changed; on
/// shutdown, a last bounded write if leading.
pub async fn run(
    client: Client,
    cache: Arc<Cache>,
    metrics: Arc<Metrics>,
    leadership: Leadership,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // As last seen on a tick: the leadership channel turns false as soon as
    // shutdown begins, but the leader's last admissions are still worth
    // saving.
    let mut was_leading = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {
                was_leading = leadership.is_leading();
                if was_leading {
                    persist(&client, &cache, &metrics).await;
                }
            }
        }
    }
    if !was_leading {
        return;
    }
    // Bounded, so that a backlog cannot hold the pod past its termination
    // grace period.
    let last = persist(&client, &cache, &metrics);
    if tokio::time::timeout(FINAL_PERSIST, last).await.is_err() {
        tracing::warn!("final history write cut short after {FINAL_PERSIST:?}");
    }
}

/// Writes at most this many annotations at once: enough to keep up with a
/// busy cluster, few enough not to crowd the apiserver.
const CONCURRENT_WRITES: usize = 16;

/// Writes the `history` annotation of every workload whose ledger changed.
pub async fn persist(client: &Client, cache: &Cache, metrics: &Metrics) {
    // Touching every entry each second costs more than it looks on a big
    // fleet (each one is a few cache misses), so a pass starts only after
    // some ledger changed, and visits the entries in place.
    let mut dirty: Vec<(WorkloadKind, String, Arc<Entry>)> = Vec::new();
    if !cache.take_any_dirty() {
        return;
    }
    for kind in WorkloadKind::ALL {
        cache.visit(kind, |key, entry| {
            // A workload the watch has not shown stored may never exist;
            // its history waits until it does.
            if entry.is_stored() && entry.take_dirty() {
                dirty.push((kind, key.to_owned(), entry.clone()));
            }
        });
    }
    futures::stream::iter(dirty)
        .for_each_concurrent(CONCURRENT_WRITES, |(kind, key, entry)| async move {
            let result = write(client, kind, &key, &entry).await;
            let label = if result.is_ok() { "ok" } else { "error" };
            metrics
                .history_writes
                .get_or_create(&ResultLabels { result: label })
                .inc();
            match result {
                Ok(()) => {}
                Err(kube::Error::Api(status)) if status.is_not_found() => {
                    // Deleted since: the watch will say so too, but there is
                    // nothing left to write to, so stop trying now.
                    tracing::info!(%key, "workload gone; dropping its history");
                    cache.remove(kind, &key);
                }
                Err(err) => {
                    tracing::warn!(%key, error = %err, "writing history failed; will retry");
                    entry.mark_dirty();
                }
            }
        })
        .await;
}

async fn write(
    client: &Client,
    kind: WorkloadKind,
    key: &str,
    entry: &Entry,
) -> Result<(), kube::Error> {
    let (namespace, name) = key.split_once('/').unwrap_or(("", key));
    let patch = json!({"metadata": {"annotations": {keys::HISTORY: entry.stored_ledger().to_annotation()}}});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let patch = Patch::Merge(&patch);
    match kind {
        WorkloadKind::Deployment => {
            Api::<Deployment>::namespaced(client.clone(), namespace)
                .patch_metadata(name, &params, &patch)
                .await?;
        }
        WorkloadKind::StatefulSet => {
            Api::<StatefulSet>::namespaced(client.clone(), namespace)
                .patch_metadata(name, &params, &patch)
                .await?;
        }
    }
    Ok(())
}
