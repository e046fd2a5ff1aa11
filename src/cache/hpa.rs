//! Which HorizontalPodAutoscalers target which workloads, from a watch, so
//! a clamp of an HPA's write is explained on the HPA too: the HPA's own
//! status says `SucceededRescale New size: 10` even when the governor made
//! it 6, and `kubectl describe hpa` should tell the truth.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use tokio_util::sync::CancellationToken;

use crate::workload::WorkloadKind;

/// The usernames the HPA controller writes `/scale` under: the controller
/// manager's own, and its ServiceAccount with
/// `--use-service-account-credentials` (kubeadm's default); and the field
/// manager the ledger records for a change it saw only in the watch.
const HPA_CONTROLLER: [&str; 3] = [
    "system:kube-controller-manager",
    "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
    "kube-controller-manager (scale)",
];

/// The actor of a change as a person reads it: a write by the HPA
/// controller to a workload that HPAs target is named after them,
/// `hpa/keda-hpa-web (system:kube-controller-manager)`, so KEDA's HPA (or
/// any HPA) says which one asked; `None` for every other actor. Every HPA
/// controller write has the same username, whichever HPA made it.
pub(crate) fn hpa_actor(actor: &str, hpas: &[String]) -> Option<String> {
    if hpas.is_empty() || !HPA_CONTROLLER.contains(&actor) {
        return None;
    }
    let mut names: Vec<String> = hpas.iter().map(|h| format!("hpa/{h}")).collect();
    names.sort();
    Some(format!("{} ({actor})", names.join(", ")))
}

/// An HPA, as an Event needs to name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HpaRef {
    /// Name, in the workload's namespace.
    pub(crate) name: String,
    pub(crate) uid: Option<String>,
}

/// An HPA's namespace and name.
type HpaKey = (String, String);

/// What an HPA targets (kind and name, in its namespace), and its uid.
#[derive(Debug, Clone)]
struct Target {
    kind: WorkloadKind,
    name: String,
    uid: Option<String>,
}

/// HPAs by namespace and name, with the workload each targets. Read only by
/// the Event publisher, off the request path, so a plain mutex will do.
#[derive(Debug, Default)]
pub struct HpaIndex {
    hpas: Mutex<HashMap<HpaKey, Target>>,
}

impl HpaIndex {
    /// An empty index.
    pub fn new() -> HpaIndex {
        HpaIndex::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<HpaKey, Target>> {
        self.hpas.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an HPA; one whose target is not a Deployment or StatefulSet
    /// in `apps` is forgotten.
    pub fn apply(&self, hpa: &HorizontalPodAutoscaler) {
        let key = (hpa.namespace().unwrap_or_default(), hpa.name_any());
        let target = hpa.spec.as_ref().map(|s| &s.scale_target_ref);
        let kind = target
            .filter(|t| {
                t.api_version
                    .as_deref()
                    .is_none_or(|v| v.starts_with("apps/"))
            })
            .and_then(|t| WorkloadKind::from_kind(&t.kind));
        let mut hpas = self.lock();
        match (kind, target) {
            (Some(kind), Some(target)) => {
                let target = Target {
                    kind,
                    name: target.name.clone(),
                    uid: hpa.uid(),
                };
                hpas.insert(key, target);
            }
            _ => {
                hpas.remove(&key);
            }
        }
    }

    /// Forgets a deleted HPA.
    pub fn remove(&self, namespace: &str, name: &str) {
        self.lock().remove(&(namespace.to_owned(), name.to_owned()));
    }

    /// The HPAs that target this workload.
    pub(crate) fn targeting(&self, kind: WorkloadKind, namespace: &str, name: &str) -> Vec<HpaRef> {
        self.lock()
            .iter()
            .filter(|((ns, _), t)| ns == namespace && t.kind == kind && t.name == name)
            .map(|((_, hpa), t)| HpaRef {
                name: hpa.clone(),
                uid: t.uid.clone(),
            })
            .collect()
    }
}

/// Watches HPAs until `shutdown`, cluster-wide or in one namespace. The
/// watcher retries with back-off on its own.
pub(crate) async fn run(
    client: Client,
    namespace: Option<String>,
    index: Arc<HpaIndex>,
    shutdown: CancellationToken,
) {
    let api: Api<HorizontalPodAutoscaler> = match namespace.as_deref() {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return,
            next = stream.try_next() => next,
        };
        match next {
            Ok(Some(watcher::Event::Apply(hpa) | watcher::Event::InitApply(hpa))) => {
                index.apply(&hpa)
            }
            Ok(Some(watcher::Event::Delete(hpa))) => {
                index.remove(&hpa.namespace().unwrap_or_default(), &hpa.name_any())
            }
            Ok(Some(watcher::Event::Init | watcher::Event::InitDone)) => {}
            Ok(None) => return,
            Err(err) => tracing::debug!(error = %err, "HPA watch failed; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hpa(name: &str, kind: &str, target: &str) -> HorizontalPodAutoscaler {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}")},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target}, "maxReplicas": 10}
        }))
        .unwrap()
    }

    #[test]
    fn the_hpa_controller_is_named_after_the_hpas_that_target_the_workload() {
        let keda = ["keda-hpa-web".to_owned()];
        assert_eq!(
            hpa_actor("system:kube-controller-manager", &keda).as_deref(),
            Some("hpa/keda-hpa-web (system:kube-controller-manager)")
        );
        assert_eq!(
            hpa_actor(
                "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
                &["web".to_owned(), "keda-hpa-web".to_owned()]
            )
            .as_deref(),
            Some(
                "hpa/keda-hpa-web, hpa/web (system:serviceaccount:kube-system:horizontal-pod-autoscaler)"
            )
        );
        assert_eq!(hpa_actor("keda-operator", &keda), None);
        assert_eq!(hpa_actor("system:kube-controller-manager", &[]), None);
    }

    #[test]
    fn finds_the_hpas_of_a_workload_and_follows_retargeting() {
        let index = HpaIndex::new();
        index.apply(&hpa("web-hpa", "Deployment", "web"));
        index.apply(&hpa("db-hpa", "StatefulSet", "web"));
        assert_eq!(
            index.targeting(WorkloadKind::Deployment, "shop", "web"),
            [HpaRef {
                name: "web-hpa".into(),
                uid: Some("uid-web-hpa".into())
            }]
        );
        index.apply(&hpa("web-hpa", "Deployment", "api"));
        assert!(
            index
                .targeting(WorkloadKind::Deployment, "shop", "web")
                .is_empty()
        );
        index.apply(&hpa("web-hpa", "Rollout", "api"));
        assert!(
            index
                .targeting(WorkloadKind::Deployment, "shop", "api")
                .is_empty()
        );
        index.remove("shop", "db-hpa");
        assert!(
            index
                .targeting(WorkloadKind::StatefulSet, "shop", "web")
                .is_empty()
        );
    }
}
