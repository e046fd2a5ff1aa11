//! The pods of warm pools, from one label-selected watch for all of them
//! (`scale-governor.io/warm-pool: <deployment>` on the pod template), never
//! a LIST per cycle. Only what the pool needs is kept: readiness, deletion,
//! labels and annotations (to tell a reserved pod), and the deletion cost.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use tokio_util::sync::CancellationToken;

use crate::{policy::POOL_LABEL, recommend::pool::PoolCounts};

/// The annotation the ReplicaSet controller reads to pick pods to delete.
pub(crate) const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

#[derive(Debug, Clone)]
struct PodInfo {
    ready: bool,
    deleting: bool,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

impl PodInfo {
    fn is_reserved(&self, key: &str) -> bool {
        let marked = |m: &BTreeMap<String, String>| m.get(key).is_some_and(|v| v != "false");
        marked(&self.labels) || marked(&self.annotations)
    }
}

/// One pod of a pool, as the loop sees it when setting deletion costs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PoolPod {
    /// The pod's name.
    pub(crate) name: String,
    /// Whether a session holds it.
    pub(crate) reserved: bool,
    /// Its deletion cost now, if any.
    pub(crate) cost: Option<String>,
}

/// Pool pods by namespace and pool (the Deployment's name).
#[derive(Debug, Default)]
pub(crate) struct PodIndex {
    pods: Mutex<HashMap<(String, String), HashMap<String, PodInfo>>>,
    synced: std::sync::atomic::AtomicBool,
}

impl PodIndex {
    /// An empty index.
    pub(crate) fn new() -> PodIndex {
        PodIndex::default()
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, String), HashMap<String, PodInfo>>> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a pod (or forgets it when it left its pool).
    pub(crate) fn apply(&self, pod: &Pod) {
        let namespace = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let mut pods = self.lock();
        for pool in pods.values_mut() {
            pool.remove(&name);
        }
        let Some(pool) = pod.labels().get(POOL_LABEL).cloned() else {
            return;
        };
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let info = PodInfo {
            ready,
            deleting: pod.metadata.deletion_timestamp.is_some(),
            labels: pod.labels().clone(),
            annotations: pod.annotations().clone(),
        };
        pods.entry((namespace, pool))
            .or_default()
            .insert(name, info);
    }

    /// Forgets a deleted pod.
    pub(crate) fn remove(&self, pod: &Pod) {
        let name = pod.name_any();
        for pool in self.lock().values_mut() {
            pool.remove(&name);
        }
    }

    /// The pool's counts, telling reserved pods by `reserved_key`.
    pub(crate) fn counts(&self, namespace: &str, pool: &str, reserved_key: &str) -> PoolCounts {
        let pods = self.lock();
        let mut counts = PoolCounts::default();
        for pod in pods
            .get(&(namespace.to_owned(), pool.to_owned()))
            .into_iter()
            .flat_map(|p| p.values())
            .filter(|p| !p.deleting)
        {
            if pod.is_reserved(reserved_key) {
                counts.reserved += 1;
            } else if pod.ready {
                counts.idle += 1;
            } else {
                counts.warming += 1;
            }
        }
        counts
    }

    /// The pool's live pods, for their deletion costs.
    pub(crate) fn pods(&self, namespace: &str, pool: &str, reserved_key: &str) -> Vec<PoolPod> {
        let pods = self.lock();
        let mut list: Vec<PoolPod> = pods
            .get(&(namespace.to_owned(), pool.to_owned()))
            .into_iter()
            .flat_map(|p| p.iter())
            .filter(|(_, p)| !p.deleting)
            .map(|(name, p)| PoolPod {
                name: name.clone(),
                reserved: p.is_reserved(reserved_key),
                cost: p.annotations.get(DELETION_COST).cloned(),
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }
}

/// Watches pool pods until `shutdown`, cluster-wide or in one namespace.
pub(crate) async fn run(
    client: Client,
    namespace: Option<String>,
    index: Arc<PodIndex>,
    shutdown: CancellationToken,
) {
    let api: Api<Pod> = match namespace.as_deref() {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let config = watcher::Config::default().labels(POOL_LABEL);
    let mut stream = watcher(api, config).default_backoff().boxed();
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return,
            next = stream.try_next() => next,
        };
        match next {
            Ok(Some(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => {
                index.apply(&pod)
            }
            Ok(Some(watcher::Event::Delete(pod))) => index.remove(&pod),
            Ok(Some(watcher::Event::InitDone)) => index
                .synced
                .store(true, std::sync::atomic::Ordering::Release),
            Ok(Some(watcher::Event::Init)) => {}
            Ok(None) => return,
            Err(err) => tracing::debug!(error = %err, "pod watch failed; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, pool: &str, ready: bool, reserved: Option<&str>) -> Pod {
        let mut labels = serde_json::json!({ POOL_LABEL: pool });
        if let Some(v) = reserved {
            labels["sessions.example.com/reserved"] = serde_json::json!(v);
        }
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "shop", "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .unwrap()
    }

    #[test]
    fn counts_reserved_idle_and_warming_pods_of_one_pool() {
        let index = PodIndex::new();
        index.apply(&pod("a", "web", true, Some("true")));
        index.apply(&pod("b", "web", false, Some("alice")));
        index.apply(&pod("c", "web", true, Some("false")));
        index.apply(&pod("d", "web", false, None));
        index.apply(&pod("e", "api", true, None));
        let key = "sessions.example.com/reserved";
        assert_eq!(
            index.counts("shop", "web", key),
            PoolCounts {
                reserved: 2,
                idle: 1,
                warming: 1
            }
        );
        // A pod that leaves the pool, or goes, is forgotten.
        index.apply(&pod("d", "api", false, None));
        index.remove(&pod("a", "web", true, None));
        assert_eq!(
            index.counts("shop", "web", key),
            PoolCounts {
                reserved: 1,
                idle: 1,
                warming: 0
            }
        );
        let pods = index.pods("shop", "web", key);
        assert_eq!(
            pods.iter()
                .map(|p| (p.name.as_str(), p.reserved))
                .collect::<Vec<_>>(),
            [("b", true), ("c", false)]
        );
    }
}
