//! Feeds the [`Cache`] from label-selected watches of Deployments and
//! StatefulSets. Each replica change seen here enters the ledger with the
//! field manager that wrote it, so changes by any actor spend the budget.

use std::{collections::HashSet, sync::Arc};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::{Cache, Update, key, slim::Slim};
use crate::{
    managed::{
        annotation_by_governor, recommendation_by_governor, replicas_writer, replicas_written_at,
    },
    policy::{GOVERNED_LABEL, keys},
    workload::{WorkloadKind, policy_of},
};

/// A workload kind the cache can watch.
pub(crate) trait Watched:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static
{
    /// Which kind this is.
    const KIND: WorkloadKind;
    /// `spec.replicas`, defaulted to 1 as the apiserver does.
    fn replicas(&self) -> u32;
    /// `status.readyReplicas`, when the controller has reported it.
    fn ready(&self) -> Option<u32>;
}

impl Watched for Deployment {
    const KIND: WorkloadKind = WorkloadKind::Deployment;
    fn replicas(&self) -> u32 {
        self.spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1)
            .max(0) as u32
    }
    fn ready(&self) -> Option<u32> {
        let ready = self.status.as_ref()?.ready_replicas?;
        Some(ready.max(0) as u32)
    }
}

impl Watched for StatefulSet {
    const KIND: WorkloadKind = WorkloadKind::StatefulSet;
    fn replicas(&self) -> u32 {
        self.spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1)
            .max(0) as u32
    }
    fn ready(&self) -> Option<u32> {
        let ready = self.status.as_ref()?.ready_replicas?;
        Some(ready.max(0) as u32)
    }
}

/// What the watches read: the kind, slim.
impl<K: Watched> Watched for Slim<K> {
    const KIND: WorkloadKind = K::KIND;
    fn replicas(&self) -> u32 {
        self.replicas.unwrap_or(1).max(0) as u32
    }
    fn ready(&self) -> Option<u32> {
        self.ready.map(|r| r.max(0) as u32)
    }
}

/// Watches both kinds until `shutdown`, cluster-wide or in one namespace;
/// the watcher retries with backoff on its own, so this only returns on
/// shutdown.
pub(crate) async fn run(
    client: Client,
    namespace: Option<String>,
    cache: Arc<Cache>,
    shutdown: CancellationToken,
) {
    let (deployments, statefulsets) = match namespace.as_deref() {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client, ns),
        ),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    // A workload first seen starts from its ledger object: list those first.
    tokio::select! {
        () = shutdown.cancelled() => return,
        () = cache.ledgers_synced() => {}
    }
    let deployments = watch::<Slim<Deployment>>(deployments, cache.clone());
    let statefulsets = watch::<Slim<StatefulSet>>(statefulsets, cache);
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = async { tokio::join!(deployments, statefulsets); } => {}
    }
}

async fn watch<K: Watched>(api: Api<K>, cache: Arc<Cache>) {
    let config = watcher::Config::default().labels(&format!("{GOVERNED_LABEL}=true"));
    let mut seen: Option<HashSet<String>> = None;
    let mut stream = watcher(api, config).default_backoff().boxed();
    loop {
        match stream.try_next().await {
            Ok(Some(event)) => handle(&cache, event, &mut seen),
            Ok(None) => return,
            Err(err) => {
                tracing::warn!(kind = K::KIND.as_str(), error = %err, "watch failed; retrying")
            }
        }
    }
}

fn handle<K: Watched>(cache: &Cache, event: watcher::Event<K>, seen: &mut Option<HashSet<String>>) {
    match event {
        watcher::Event::Init => *seen = Some(HashSet::new()),
        watcher::Event::InitApply(obj) => {
            if let Some(keys) = seen.as_mut() {
                keys.insert(object_key(&obj));
            }
            apply(cache, &obj);
        }
        watcher::Event::InitDone => {
            // A relist: whatever was not listed again is gone.
            if let Some(listed) = seen.take() {
                for (k, _) in cache.entries(K::KIND) {
                    if !listed.contains(&k) {
                        cache.remove(K::KIND, &k);
                    }
                }
            }
            cache.mark_synced(K::KIND);
            tracing::info!(
                kind = K::KIND.as_str(),
                governed = cache.len(K::KIND),
                "cache synced"
            );
        }
        watcher::Event::Apply(obj) => apply(cache, &obj),
        watcher::Event::Delete(obj) => cache.remove(K::KIND, &object_key(&obj)),
    }
}

fn object_key<K: Watched>(obj: &K) -> String {
    key(
        obj.namespace().as_deref().unwrap_or_default(),
        &obj.name_any(),
    )
}

fn apply<K: Watched>(cache: &Cache, obj: &K) {
    let meta = obj.meta();
    let annotations = meta.annotations.as_ref();
    let k = object_key(obj);
    let actor = replicas_writer(obj);
    let now = crate::clock::now();
    let managed = meta.managed_fields.as_deref().unwrap_or(&[]);
    let mut policy = policy_of(annotations);
    if let Ok(policy) = &mut policy {
        let by_governor = recommendation_by_governor(managed);
        if let Some(warning) = policy.vet_recommendation(by_governor, now) {
            tracing::debug!(key = %k, %warning, "recommendation vetted");
            policy.warnings.push(warning);
        }
    }
    cache.apply(
        Update {
            kind: K::KIND,
            key: &k,
            uid: meta.uid.clone(),
            policy,
            replicas: obj.replicas(),
            ready: obj.ready(),
            history: annotations
                .and_then(|a| a.get(keys::HISTORY))
                .map(String::as_str),
            actor: actor.as_deref(),
            written_at: replicas_written_at(obj),
            generation: meta.generation,
            // The loop resumes from its state only if it wrote it: a copy
            // carried into a CREATE or written by hand is not trusted.
            state: annotations
                .and_then(|a| a.get(keys::STATE))
                .filter(|_| annotation_by_governor(managed, keys::STATE))
                .map(String::as_str),
        },
        now,
    );
}
