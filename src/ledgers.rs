//! Where each workload's ledger survives a restart: one ConfigMap per
//! governed workload in the governor's own namespace (see docs/design.md,
//! "Where the ledger lives"). Governed users cannot write there, the
//! governor's webhooks never see those writes, and nothing is copied onto
//! a ReplicaSet.
//!
//! Every replica persists the changes its own watch saw land, so the SIGKILL
//! of any one replica loses nothing another replica saw. A write is a
//! conditional replace on the object's `resourceVersion` of the union of
//! what is stored and what this replica knows, matched change by change;
//! a replica whose changes are all stored writes nothing, so a steady fleet
//! causes no writes at all.

pub(crate) mod watch;

use std::{collections::BTreeMap, hash::Hasher, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::{api::core::v1::ConfigMap, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use kube::{
    Api,
    api::{DeleteParams, PostParams, Preconditions},
};
use tokio_util::sync::CancellationToken;

use crate::{
    cache::{Cache, Entry, Persisted},
    engine::Ledger,
    leader::{FIELD_MANAGER, Leadership},
    metrics::{Metrics, ResultLabels},
    workload::WorkloadKind,
};

/// The label that marks a ledger object; its value is the workload's kind.
pub const LEDGER_LABEL: &str = "scale-governor.io/ledger";
/// The stored format this version writes; readers skip the content of a
/// format they do not know (a newer version's), and the next write of this
/// version replaces it.
pub(crate) const FORMAT: &str = "1";
/// The key of the seasonal strategy's persisted history, beside the
/// ledger (written by the leader's loop, at most once per
/// `serve --summary-interval`).
pub const SEASONAL_KEY: &str = "seasonal";
/// The key of a stated `risk`'s calibration (the headroom and the day's
/// shortfalls), stored with the seasonal history and as rarely.
pub(crate) const RISK_KEY: &str = "risk";
/// How long shutdown waits for the last writes.
const FINAL_PERSIST: Duration = Duration::from_secs(5);
/// Writes in flight at once: enough to keep up with a busy cluster, few
/// enough not to crowd the apiserver.
const CONCURRENT_WRITES: usize = 16;
/// Changes another replica stamped within this many seconds of one seen
/// here are that same change.
const SAME_CHANGE: chrono::Duration = chrono::Duration::seconds(30);

/// The ledger object's name for a workload: a stable hash, since
/// `namespace/name` may be longer than a name can be.
pub fn object_name(kind: WorkloadKind, key: &str) -> String {
    let mut hash = fnv::FnvHasher::default();
    hash.write(kind.as_str().as_bytes());
    hash.write(b"/");
    hash.write(key.as_bytes());
    format!("scale-governor-ledger-{:016x}", hash.finish())
}

/// What the leader's loop stores beside a ledger, as text: every writer of
/// the object carries it on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Summaries<'a> {
    /// The seasonal strategy's history.
    pub(crate) seasonal: Option<&'a str>,
    /// A stated risk's calibration.
    pub(crate) risk: Option<&'a str>,
}

impl Persisted {
    /// The summaries it holds, to write on unchanged.
    pub(crate) fn summaries(&self) -> Summaries<'_> {
        Summaries {
            seasonal: self.seasonal.as_deref(),
            risk: self.risk.as_deref(),
        }
    }
}

/// The ConfigMap that stores `ledger` (and the summaries, when there are
/// any) for a workload.
pub(crate) fn to_object(
    kind: WorkloadKind,
    key: &str,
    uid: Option<&str>,
    ledger: &Ledger,
    resource_version: Option<String>,
    summaries: Summaries<'_>,
) -> ConfigMap {
    let (namespace, name) = key.split_once('/').unwrap_or(("", key));
    let mut data = BTreeMap::from([
        ("format".to_owned(), FORMAT.to_owned()),
        ("kind".to_owned(), kind.as_str().to_owned()),
        ("namespace".to_owned(), namespace.to_owned()),
        ("name".to_owned(), name.to_owned()),
        ("ledger".to_owned(), ledger.to_compact()),
    ]);
    if let Some(uid) = uid {
        data.insert("uid".to_owned(), uid.to_owned());
    }
    for (field, text) in [
        (SEASONAL_KEY, summaries.seasonal),
        (RISK_KEY, summaries.risk),
    ] {
        if let Some(text) = text {
            data.insert(field.to_owned(), text.to_owned());
        }
    }
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(object_name(kind, key)),
            labels: Some(BTreeMap::from([
                (LEDGER_LABEL.to_owned(), kind.as_str().to_ascii_lowercase()),
                (
                    "app.kubernetes.io/managed-by".to_owned(),
                    FIELD_MANAGER.to_owned(),
                ),
            ])),
            resource_version,
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    }
}

/// What a ledger object says: whose it is and what it holds. Entries that
/// cannot be right (dated ahead, out of range, of another shape) are
/// dropped with one warning naming the workload; `None` for an object that
/// names no workload.
pub fn from_object(
    cm: &ConfigMap,
    now: DateTime<Utc>,
) -> Option<(WorkloadKind, String, Persisted)> {
    let data = cm.data.as_ref()?;
    let kind = WorkloadKind::from_kind(data.get("kind")?)?;
    let key = crate::cache::key(data.get("namespace")?, data.get("name")?);
    let ledger = match data.get("format").map(String::as_str) {
        Some(FORMAT) => {
            let text = data.get("ledger").map_or("[]", String::as_str);
            let (ledger, warning) = Ledger::read_persisted(text, now);
            if let Some(warning) = warning {
                tracing::warn!(workload = %key, object = ?cm.metadata.name, %warning, "reading a ledger object");
            }
            ledger
        }
        other => {
            tracing::warn!(workload = %key, format = ?other, "ledger object of an unknown format; its content is not used");
            Ledger::new()
        }
    };
    Some((
        kind,
        key,
        Persisted {
            name: cm.metadata.name.clone().unwrap_or_default(),
            resource_version: cm.metadata.resource_version.clone(),
            uid: data.get("uid").cloned(),
            ledger,
            seasonal: data.get(SEASONAL_KEY).map(|s| Arc::from(s.as_str())),
            risk: data.get(RISK_KEY).map(|s| Arc::from(s.as_str())),
        },
    ))
}

/// How often the passes over the ledger objects run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Intervals {
    /// Writing what this replica saw land.
    pub(crate) persist: Duration,
    /// Deleting the ledgers of workloads that are gone (leader only).
    pub(crate) cleanup: Duration,
}

/// Every `persist` interval, writes what this replica saw land and the
/// ledger objects lack; while leading, every `cleanup` interval, deletes the
/// ledger objects of workloads that are gone. On shutdown, a last bounded
/// write.
pub(crate) async fn run(
    api: Api<ConfigMap>,
    scope: Option<String>,
    cache: Arc<Cache>,
    metrics: Arc<Metrics>,
    leadership: Leadership,
    every: Intervals,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every.persist);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_cleanup = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {
                persist(&api, &cache, &metrics, crate::clock::now()).await;
                if leadership.is_leading()
                    && cache.is_synced()
                    && last_cleanup.elapsed() >= every.cleanup
                {
                    last_cleanup = tokio::time::Instant::now();
                    cleanup(&api, &cache, scope.as_deref()).await;
                }
            }
        }
    }
    // Bounded, so that a backlog cannot hold the pod past its termination
    // grace period.
    let last = persist(&api, &cache, &metrics, crate::clock::now());
    if tokio::time::timeout(FINAL_PERSIST, last).await.is_err() {
        tracing::warn!("final ledger write cut short after {FINAL_PERSIST:?}");
    }
}

/// How one write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Everything this replica knows is stored already.
    Unchanged,
    Written,
    /// Someone wrote first; re-read, and tried again on the next pass.
    Conflict,
    /// The apiserver refused or was away; tried again on the next pass.
    Failed,
}

/// Writes the ledger of every workload whose ledger changed, where the
/// ledger object lacks something.
pub(crate) async fn persist(
    api: &Api<ConfigMap>,
    cache: &Cache,
    metrics: &Metrics,
    now: DateTime<Utc>,
) {
    // A pass starts only after some ledger changed, and visits the entries
    // in place: touching every entry each second costs more than it looks
    // on a big fleet.
    if !cache.take_any_dirty() {
        return;
    }
    let mut dirty: Vec<(WorkloadKind, String, Arc<Entry>)> = Vec::new();
    for kind in WorkloadKind::ALL {
        cache.visit(kind, |key, entry| {
            // A workload the watch has not shown stored may never exist.
            if entry.is_stored() && entry.take_dirty() {
                dirty.push((kind, key.to_owned(), entry.clone()));
            }
        });
    }
    futures::stream::iter(dirty)
        .for_each_concurrent(CONCURRENT_WRITES, |(kind, key, entry)| async move {
            let outcome = write(api, cache, kind, &key, &entry, now).await;
            let result = match outcome {
                Outcome::Unchanged => return,
                Outcome::Written => "ok",
                Outcome::Conflict => "conflict",
                Outcome::Failed => "error",
            };
            if outcome != Outcome::Written {
                entry.mark_dirty();
            }
            metrics
                .cache
                .ledger_writes
                .get_or_create(&ResultLabels { result })
                .inc();
        })
        .await;
}

/// Writes one workload's ledger object if it lacks a change this replica
/// knows landed.
pub(crate) async fn write(
    api: &Api<ConfigMap>,
    cache: &Cache,
    kind: WorkloadKind,
    key: &str,
    entry: &Entry,
    now: DateTime<Utc>,
) -> Outcome {
    let observed = entry.observed();
    let keep = observed
        .policy
        .as_ref()
        .map_or(0, |p| p.lookback_seconds())
        .max(SAME_CHANGE.num_seconds() as u32);
    let cutoff = now - chrono::Duration::seconds(i64::from(keep));
    let mut ours = entry.landed_ledger();
    ours.prune(cutoff);
    let stored = cache.persisted(kind, key);
    let mut merged = stored
        .as_ref()
        .filter(|p| p.belongs_to(observed.uid.as_deref()))
        .map(|p| p.ledger.clone())
        .unwrap_or_default();
    if !merged.merge(&ours, SAME_CHANGE) {
        return Outcome::Unchanged;
    }
    merged.prune(cutoff);
    let object = to_object(
        kind,
        key,
        observed.uid.as_deref(),
        &merged,
        stored.as_ref().and_then(|p| p.resource_version.clone()),
        stored
            .as_deref()
            .map(Persisted::summaries)
            .unwrap_or_default(),
    );
    store(api, cache, kind, key, stored.is_some(), &object, now).await
}

/// Stores the loop's summaries beside the workload's ledger (a summary
/// not given stays as stored), keeping the ledger as this replica last saw
/// it: conditional on that version, so a ledger another replica wrote since
/// is never lost (the write conflicts, and is tried again on the loop's
/// next pass).
pub(crate) async fn write_summaries(
    api: &Api<ConfigMap>,
    cache: &Cache,
    kind: WorkloadKind,
    key: &str,
    uid: Option<&str>,
    new: Summaries<'_>,
    now: DateTime<Utc>,
) -> Outcome {
    let stored = cache.persisted(kind, key);
    let object = match &stored {
        Some(p) => {
            let kept = p.summaries();
            let summaries = Summaries {
                seasonal: new.seasonal.or(kept.seasonal),
                risk: new.risk.or(kept.risk),
            };
            to_object(
                kind,
                key,
                p.uid.as_deref(),
                &p.ledger,
                p.resource_version.clone(),
                summaries,
            )
        }
        None => to_object(kind, key, uid, &Ledger::new(), None, new),
    };
    store(api, cache, kind, key, stored.is_some(), &object, now).await
}

/// Writes `object`: a conditional replace of the stored one, or a create;
/// after a conflict, re-reads what is there for the next try.
async fn store(
    api: &Api<ConfigMap>,
    cache: &Cache,
    kind: WorkloadKind,
    key: &str,
    exists: bool,
    object: &ConfigMap,
    now: DateTime<Utc>,
) -> Outcome {
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    let name = object_name(kind, key);
    let result = if exists {
        api.replace(&name, &params, object).await
    } else {
        api.create(&params, object).await
    };
    match result {
        Ok(written) => {
            if let Some((kind, key, persisted)) = from_object(&written, now) {
                cache.apply_persisted(kind, &key, persisted);
            }
            Outcome::Written
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            // Another replica wrote first (or the object exists unseen):
            // read what is there, and merge into that on the next pass.
            match api.get_opt(&name).await {
                Ok(Some(current)) => {
                    if let Some((kind, key, persisted)) = from_object(&current, now) {
                        cache.apply_persisted(kind, &key, persisted);
                    }
                }
                Ok(None) => cache.remove_persisted(kind, key),
                Err(err) => tracing::debug!(%key, error = %err, "re-reading a ledger object"),
            }
            Outcome::Conflict
        }
        Err(kube::Error::Api(status)) if status.code == 404 => {
            // Deleted under us (the workload went, or by hand): create anew.
            cache.remove_persisted(kind, key);
            Outcome::Conflict
        }
        Err(err) => {
            tracing::warn!(%key, error = %err, "writing a ledger object failed; will retry");
            Outcome::Failed
        }
    }
}

/// Deletes the ledger objects of workloads in `scope` (a namespace, or
/// all) that the synced cache no longer holds: deleted, or no longer
/// governed. Conditional on the version seen, so a ledger rewritten since
/// (the workload is back) stays.
async fn cleanup(api: &Api<ConfigMap>, cache: &Cache, scope: Option<&str>) {
    for kind in WorkloadKind::ALL {
        for (key, persisted) in cache.orphaned_ledgers(kind) {
            if let Some(ns) = scope
                && key.split_once('/').map(|(n, _)| n) != Some(ns)
            {
                continue;
            }
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: persisted.resource_version.clone(),
                    uid: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(&persisted.name, &params).await {
                Ok(_) => {
                    tracing::info!(workload = %key, "workload gone; deleted its ledger");
                    cache.remove_persisted(kind, &key);
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    cache.remove_persisted(kind, &key);
                }
                Err(err) => tracing::debug!(workload = %key, error = %err, "deleting a ledger"),
            }
        }
    }
}

#[cfg(test)]
mod tests;
