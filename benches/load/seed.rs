//! Creates the fleet in the cluster: its namespaces and every governed
//! Deployment, many requests at a time. Objects that already exist are kept,
//! so a re-run only fills in what is missing.

use std::{path::Path, time::Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Namespace};
use kube::{
    Api, Client, Config,
    api::PostParams,
    config::{KubeConfigOptions, Kubeconfig},
};

use crate::fleet::Fleet;

/// Creates namespaces, then Deployments with `concurrency` requests in flight.
pub async fn seed(kubeconfig: &Path, fleet: &Fleet, concurrency: usize) -> anyhow::Result<()> {
    let kc = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    // 10,000 creates keep a small apiserver busy; allow a slow answer rather
    // than fail the whole seed.
    config.read_timeout = Some(std::time::Duration::from_secs(60));
    let client = Client::try_from(config)?;
    let started = Instant::now();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in fleet.namespaces() {
        let object: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": ns, "labels": {"scale-governor.io/bench": "true"}}
        }))?;
        create(&namespaces, &object)
            .await
            .with_context(|| format!("creating namespace {ns}"))?;
    }

    let created = stream::iter(0..fleet.len())
        .map(|i| {
            let client = client.clone();
            async move {
                let api: Api<Deployment> = Api::namespaced(client, &fleet.namespace(i));
                let object: Deployment = serde_json::from_value(fleet.deployment(i))?;
                let fresh = create(&api, &object)
                    .await
                    .with_context(|| format!("creating Deployment {}", Fleet::name(i)))?;
                if i > 0 && i % 2000 == 0 {
                    eprintln!("load: seed: {i}/{} Deployments", fleet.len());
                }
                anyhow::Ok(u64::from(fresh))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_fold(0u64, |n, fresh| async move { Ok(n + fresh) })
        .await?;
    eprintln!(
        "load: seed: {} Deployments in {} namespaces ({created} new) in {:.1}s",
        fleet.len(),
        fleet.namespaces().len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Creates `object`; `Ok(false)` when it already exists.
async fn create<K>(api: &Api<K>, object: &K) -> Result<bool, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}
