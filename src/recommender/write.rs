//! The loop's writes, all under the field manager `scale-governor`:
//! - the `recommendation` and `state` annotations, by server-side apply of
//!   those two fields only (the governor owns nothing else on the object);
//! - `spec.replicas` through `/scale`, which passes through the webhook like
//!   any actor's write, so it lands in the ledger under the governor's
//!   identity and obeys the rate limits;
//! - a pool pod's `pod-deletion-cost` annotation.
//!
//! Each is bounded in time, so a slow apiserver never stalls the loop.

use std::time::Duration;

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    core::v1::Pod,
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::json;

use crate::{
    cache::pods::DELETION_COST,
    leader::FIELD_MANAGER,
    metrics::{Metrics, WriteLabels},
    policy::{Recommendation, keys},
    workload::WorkloadKind,
};

/// Counts one of the loop's writes by kind and result.
pub(super) fn count(metrics: &Metrics, kind: &'static str, ok: bool) {
    metrics
        .recommender
        .writes
        .get_or_create(&WriteLabels {
            kind,
            result: if ok { "ok" } else { "error" },
        })
        .inc();
}

/// Longest one write may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    /// The apiserver refused or failed it.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// No answer in time.
    #[error("no answer within {WRITE_TIMEOUT:?}")]
    Timeout,
}

async fn bounded<T>(
    f: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, WriteError> {
    match tokio::time::timeout(WRITE_TIMEOUT, f).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(WriteError::Timeout),
    }
}

/// Applies the governor's two annotations. A field left out of an apply is
/// given up, so both are always sent: `recommendation` absent means none.
pub(crate) async fn annotations(
    client: &Client,
    kind: WorkloadKind,
    namespace: &str,
    name: &str,
    recommendation: Option<&Recommendation>,
    state: &str,
) -> Result<(), WriteError> {
    let mut annotations = serde_json::Map::new();
    if let Some(rec) = recommendation {
        annotations.insert(
            keys::RECOMMENDATION.to_owned(),
            serde_json::to_string(rec).unwrap_or_default().into(),
        );
    }
    annotations.insert(keys::STATE.to_owned(), state.into());
    let patch = json!({
        "apiVersion": "apps/v1",
        "kind": kind.as_str(),
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match kind {
        WorkloadKind::Deployment => {
            let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
            bounded(api.patch(name, &params, &Patch::Apply(&patch))).await?;
        }
        WorkloadKind::StatefulSet => {
            let api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
            bounded(api.patch(name, &params, &Patch::Apply(&patch))).await?;
        }
    }
    Ok(())
}

/// Asks for `replicas` through `/scale`; returns what landed (the webhook
/// may clamp the ask).
pub(crate) async fn scale(
    client: &Client,
    kind: WorkloadKind,
    namespace: &str,
    name: &str,
    replicas: u32,
) -> Result<u32, WriteError> {
    let patch = json!({"spec": {"replicas": replicas}});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let landed = match kind {
        WorkloadKind::Deployment => {
            let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
            bounded(api.patch_scale(name, &params, &Patch::Merge(&patch))).await?
        }
        WorkloadKind::StatefulSet => {
            let api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
            bounded(api.patch_scale(name, &params, &Patch::Merge(&patch))).await?
        }
    };
    Ok(landed
        .spec
        .and_then(|s| s.replicas)
        .map_or(0, |r| r.max(0) as u32))
}

/// Sets a pool pod's deletion cost.
pub(crate) async fn deletion_cost(
    client: &Client,
    namespace: &str,
    pod: &str,
    cost: &str,
) -> Result<(), WriteError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let patch = json!({"metadata": {"annotations": {DELETION_COST: cost}}});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    bounded(api.patch(pod, &params, &Patch::Merge(&patch))).await?;
    Ok(())
}
