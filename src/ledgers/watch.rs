//! Feeds the cache with the ledger objects in the governor's namespace, so
//! every replica counts the changes the others persisted, and knows which
//! version its next write is conditional on.

use std::{collections::HashSet, sync::Arc};

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    runtime::{WatchStreamExt, watcher},
};
use tokio_util::sync::CancellationToken;

use super::{LEDGER_LABEL, from_object};
use crate::{cache::Cache, workload::WorkloadKind};

/// Watches the ledger objects until `shutdown`; the watcher retries with
/// back-off on its own while the apiserver is away.
pub(crate) async fn run(api: Api<ConfigMap>, cache: Arc<Cache>, shutdown: CancellationToken) {
    let config = watcher::Config::default().labels(LEDGER_LABEL);
    let mut stream = Box::pin(watcher(api, config).default_backoff());
    let mut listed: Option<HashSet<(WorkloadKind, String)>> = None;
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = stream.try_next() => event,
        };
        match event {
            Ok(Some(event)) => handle(&cache, event, &mut listed),
            Ok(None) => return,
            Err(err) => tracing::warn!(error = %err, "ledger watch failed; retrying"),
        }
    }
}

fn handle(
    cache: &Cache,
    event: watcher::Event<ConfigMap>,
    listed: &mut Option<HashSet<(WorkloadKind, String)>>,
) {
    match event {
        watcher::Event::Init => *listed = Some(HashSet::new()),
        watcher::Event::InitApply(cm) | watcher::Event::Apply(cm) => {
            if let Some((kind, key, persisted)) = from_object(&cm, crate::clock::now()) {
                if let Some(seen) = listed.as_mut() {
                    seen.insert((kind, key.clone()));
                }
                cache.apply_persisted(kind, &key, persisted);
            }
        }
        watcher::Event::Delete(cm) => {
            if let Some((kind, key, _)) = from_object(&cm, crate::clock::now()) {
                cache.remove_persisted(kind, &key);
            }
        }
        watcher::Event::InitDone => {
            // A relist: whatever was not listed again is gone.
            if let Some(seen) = listed.take() {
                for kind in WorkloadKind::ALL {
                    for key in cache.persisted_keys(kind) {
                        if !seen.contains(&(kind, key.clone())) {
                            cache.remove_persisted(kind, &key);
                        }
                    }
                }
            }
            cache.mark_ledgers_synced();
            tracing::info!("ledger objects synced");
        }
    }
}
