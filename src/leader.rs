//! Leadership of the work only one replica should do (deleting the ledger
//! objects of workloads that are gone, issuing certificates, the
//! recommender loop), through a `coordination.k8s.io` Lease.
//!
//! - The lease task never ends the process: when the apiserver is away it
//!   retries with back-off, and the webhook keeps serving meanwhile.
//! - Expiry is judged by each replica's own observation (how long the
//!   Lease record has stayed unchanged on its monotonic clock), never by
//!   comparing another node's `renewTime` with its own wall clock
//!   ([`election`]): replicas whose clocks differ by minutes still agree.
//! - A replica counts as leading only while its last successful renewal is
//!   younger than a renew deadline shorter than the Lease's duration: a
//!   leader cut off from the apiserver stops leading before anyone could
//!   take over, instead of writing on beside the replica that did.
//! - Gaining and losing leadership are logged; on shutdown the Lease is
//!   released, so the other replica takes over at once.

use std::time::{Duration, Instant};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use tokio::{sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use self::election::{Observation, Record, Step};

mod election;

/// Lease name shared by every replica.
pub const LEASE_NAME: &str = "scale-governor-leader";
/// How long a Lease lasts without renewal, as the other replicas observe it.
pub(crate) const LEASE_SECONDS: u64 = 15;
/// The leader renews this often.
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// A leader that has not renewed for this long stops acting as leader,
/// well before another replica could see its Lease expire.
const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How often a replica that does not lead looks at the Lease.
const RETRY_EVERY: Duration = Duration::from_secs(2);
/// Longest one read or write of the Lease may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) use crate::managed::FIELD_MANAGER;

/// Leader election settings.
#[derive(Debug, Clone)]
pub(crate) struct LeaderConfig {
    /// Namespace of the Lease.
    pub(crate) namespace: String,
    /// This replica's identity (pod name).
    pub(crate) identity: String,
}

/// Whether this replica leads.
#[derive(Debug, Clone)]
pub(crate) struct Leadership {
    rx: watch::Receiver<bool>,
}

impl Leadership {
    pub(crate) fn is_leading(&self) -> bool {
        *self.rx.borrow()
    }

    /// Waits for the next change; `false` once the leader task has stopped.
    pub(crate) async fn changed(&mut self) -> bool {
        self.rx.changed().await.is_ok()
    }
}

/// Starts the election; it runs until `shutdown`, then releases the Lease
/// (await the handle, so the release is written before the process ends).
pub(crate) fn spawn(
    client: Client,
    config: LeaderConfig,
    shutdown: CancellationToken,
) -> (Leadership, JoinHandle<()>) {
    let (leading_tx, leading_rx) = watch::channel(false);
    let task = crate::tasks::spawn(
        "leader",
        run(
            Api::namespaced(client, &config.namespace),
            config,
            leading_tx,
            shutdown,
        ),
    );
    (Leadership { rx: leading_rx }, task)
}

/// The election loop: read the Lease, take the step [`election::step`]
/// gives, and lead while the last renewal is within [`RENEW_DEADLINE`].
/// Failures are retried at the next round; the process never ends for
/// them.
async fn run(
    api: Api<Lease>,
    config: LeaderConfig,
    leading: watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    let me = config.identity.as_str();
    let mut seen: Option<Observation> = None;
    let mut renewed: Option<Instant> = None;
    loop {
        let read = bounded(api.get_opt(LEASE_NAME)).await;
        let now = Instant::now();
        match read {
            Ok(lease) => {
                let spec = lease.as_ref().and_then(|l| l.spec.clone());
                seen = spec.map(|spec| {
                    Observation::update(seen.take(), Record::of(&spec, lease_duration()), now)
                });
                let step = election::step(seen.as_ref(), me, now);
                if step != Step::Wait {
                    match write(&api, lease, step, me).await {
                        Ok(()) => renewed = Some(Instant::now()),
                        Err(err) => {
                            tracing::debug!(error = %err, ?step, "writing the leader Lease failed")
                        }
                    }
                }
                if step == Step::Wait {
                    renewed = None;
                }
            }
            Err(err) => tracing::debug!(error = %err, "reading the leader Lease failed"),
        }
        let lead_until = renewed.map(|r| election::leads_until(r, RENEW_DEADLINE));
        publish(&leading, lead_until.is_some_and(|u| Instant::now() < u), me);
        let pause = if *leading.borrow() {
            RENEW_EVERY
        } else {
            jittered(RETRY_EVERY)
        };
        let wake = lead_until.map_or(tokio::time::Instant::now() + pause, |u| {
            tokio::time::Instant::from_std(u).min(tokio::time::Instant::now() + pause)
        });
        tokio::select! {
            () = shutdown.cancelled() => {
                publish(&leading, false, me);
                if renewed.is_some() {
                    release(&api, me).await;
                }
                return;
            }
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}

fn publish(leading: &watch::Sender<bool>, now: bool, me: &str) {
    if *leading.borrow() != now {
        tracing::info!(identity = %me, leading = now, "leadership changed");
        let _ = leading.send(now);
    }
}

fn lease_duration() -> Duration {
    Duration::from_secs(LEASE_SECONDS)
}

async fn bounded<T>(
    call: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, LeaseError> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| LeaseError::Timeout)?
        .map_err(LeaseError::Kube)
}

/// Why a read or write of the Lease failed.
#[derive(Debug, thiserror::Error)]
enum LeaseError {
    #[error(transparent)]
    Kube(kube::Error),
    #[error("no answer within {CALL_TIMEOUT:?}")]
    Timeout,
}

/// Creates, takes over or renews the Lease as `step` says. Every write
/// carries the resourceVersion that was read, so of two replicas that saw
/// the same expired Lease only one takes it.
async fn write(
    api: &Api<Lease>,
    lease: Option<Lease>,
    step: Step,
    me: &str,
) -> Result<(), LeaseError> {
    let now = MicroTime(crate::clock::timestamp());
    match (step, lease) {
        (Step::Create, _) | (_, None) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE_NAME.to_owned()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me.to_owned()),
                    lease_duration_seconds: Some(LEASE_SECONDS as i32),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PostParams::default()
            };
            bounded(api.create(&params, &lease)).await?;
        }
        (step, Some(lease)) => {
            let spec = lease.spec.unwrap_or_default();
            let mut changed = serde_json::json!({
                "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": now,
            });
            if step == Step::Acquire {
                changed["holderIdentity"] = serde_json::json!(me);
                changed["acquireTime"] = serde_json::json!(now);
                changed["leaseTransitions"] =
                    serde_json::json!(spec.lease_transitions.unwrap_or(0) + 1);
                tracing::info!(identity = %me, "taking over the leader Lease");
            }
            bounded(patch(api, &lease.metadata, changed)).await?;
        }
    }
    Ok(())
}

/// Hands the Lease back on shutdown (no holder, a one-second duration), so
/// another replica takes over at once instead of after the Lease's
/// duration.
async fn release(api: &Api<Lease>, me: &str) {
    let Ok(Some(lease)) = bounded(api.get_opt(LEASE_NAME)).await else {
        return;
    };
    let holder = lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref());
    if holder != Some(me) {
        return;
    }
    let changed = serde_json::json!({
        "holderIdentity": null,
        "leaseDurationSeconds": 1,
        "renewTime": MicroTime(crate::clock::timestamp()),
    });
    match bounded(patch(api, &lease.metadata, changed)).await {
        Ok(_) => tracing::info!(identity = %me, "released the leader Lease"),
        Err(err) => tracing::warn!(error = %err, "releasing the leader Lease failed"),
    }
}

/// A merge patch of the Lease's spec, conditional on the resourceVersion
/// that was read: a replica that lost a race gets a conflict, not the Lease.
async fn patch(
    api: &Api<Lease>,
    read: &ObjectMeta,
    spec: serde_json::Value,
) -> Result<Lease, kube::Error> {
    let body = serde_json::json!({
        "metadata": {"resourceVersion": read.resource_version},
        "spec": spec,
    });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch(LEASE_NAME, &params, &Patch::Merge(&body)).await
}

/// `delay` ± 20 %, so replicas restarted together do not retry in step.
pub(crate) fn jittered(delay: Duration) -> Duration {
    let factor = 0.8 + fastrand::f64() * 0.4;
    delay.mul_f64(factor)
}
