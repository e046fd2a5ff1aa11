//! Work only one replica should do, behind a `coordination.k8s.io` Lease:
//! persisting each workload's ledger into its `history` annotation, so a
//! restart of every replica loses no rate budget.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use kube_lease_manager::LeaseManagerBuilder;
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub use crate::managed::FIELD_MANAGER;
use crate::{
    cache::{Cache, Entry},
    metrics::{Metrics, ResultLabels},
    policy::keys,
    workload::WorkloadKind,
};

/// Lease name shared by every replica.
pub const LEASE_NAME: &str = "scale-governor-leader";
/// How long shutdown waits for the last history writes.
const FINAL_PERSIST: Duration = Duration::from_secs(5);

/// Leader election settings.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// This replica's identity (pod name).
    pub identity: String,
    /// How often the leader writes changed ledgers.
    pub persist_every: Duration,
}

/// Runs until `shutdown`: campaigns for the Lease and, while leading,
/// persists changed ledgers. Returns an error if the lease task itself fails,
/// so the process can exit and be restarted.
pub async fn run(
    client: Client,
    cache: Arc<Cache>,
    metrics: Arc<Metrics>,
    config: LeaderConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let manager = LeaseManagerBuilder::new(client.clone(), LEASE_NAME)
        .with_namespace(&config.namespace)
        .with_identity(&config.identity)
        .with_duration(15)
        .with_grace(5)
        .build()
        .await?;
    let (mut leading, task) = manager.watch().await;
    let mut tick = tokio::time::interval(config.persist_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            changed = leading.changed() => {
                if changed.is_err() {
                    anyhow::bail!("leader election task stopped");
                }
                tracing::info!(leader = *leading.borrow(), identity = %config.identity, "leadership changed");
            }
            _ = tick.tick() => {
                if *leading.borrow() {
                    persist(&client, &cache, &metrics).await;
                }
            }
        }
    }
    if *leading.borrow() {
        // Last chance to save what this replica admitted, bounded so that a
        // backlog cannot hold the pod past its termination grace period.
        let last = persist(&client, &cache, &metrics);
        if tokio::time::timeout(FINAL_PERSIST, last).await.is_err() {
            tracing::warn!("final history write cut short after {FINAL_PERSIST:?}");
        }
    }
    drop(leading);
    // Dropping the receiver makes the task release the Lease for a fast handover.
    match tokio::time::timeout(Duration::from_secs(5), task).await {
        Ok(Ok(Ok(_))) | Err(_) => Ok(()),
        Ok(Ok(Err(e))) => Err(e.into()),
        Ok(Err(e)) => Err(e.into()),
    }
}

/// Writes at most this many annotations at once: enough to keep up with a
/// busy cluster, few enough not to crowd the apiserver.
const CONCURRENT_WRITES: usize = 16;

/// Writes the `history` annotation of every workload whose ledger changed.
pub async fn persist(client: &Client, cache: &Cache, metrics: &Metrics) {
    let dirty: Vec<(WorkloadKind, String, Arc<Entry>)> =
        [WorkloadKind::Deployment, WorkloadKind::StatefulSet]
            .into_iter()
            .flat_map(|kind| {
                cache
                    .entries(kind)
                    .into_iter()
                    // A workload the watch has not shown stored may never
                    // exist; its history waits until it does.
                    .filter(|(_, entry)| entry.is_stored() && entry.take_dirty())
                    .map(move |(key, entry)| (kind, key, entry))
            })
            .collect();
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
