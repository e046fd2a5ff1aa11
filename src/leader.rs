//! Leadership of the work only one replica should do (deleting the ledger
//! objects of workloads that are gone, issuing certificates, the
//! recommender loop), through a `coordination.k8s.io` Lease.
//!
//! - The lease task never ends the process: when the apiserver is away it
//!   retries with back-off, and the webhook keeps serving meanwhile.
//! - A replica counts as leading only while it can *see* that it holds the
//!   Lease: the Lease names it, and its last renewal is younger than the
//!   Lease's duration. A leader cut off from the apiserver stops leading
//!   when its Lease would have expired, instead of writing on beside the
//!   replica that took over.
//! - Gaining and losing leadership are logged; on shutdown the Lease is
//!   released, so the other replica takes over at once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Lease name shared by every replica.
pub const LEASE_NAME: &str = "scale-governor-leader";
/// How long a Lease lasts without renewal.
pub(crate) const LEASE_SECONDS: u64 = 15;
/// Grace the lease manager renews ahead of expiry.
const GRACE_SECONDS: u64 = 5;
/// How often the holder check reads the Lease.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Back-off between attempts to start the lease manager.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

pub(crate) use crate::managed::FIELD_MANAGER;

/// Leader election settings.
#[derive(Debug, Clone)]
pub(crate) struct LeaderConfig {
    /// Namespace of the Lease.
    pub(crate) namespace: String,
    /// This replica's identity (pod name).
    pub(crate) identity: String,
}

/// Whether this replica leads, as both the lease manager and the holder
/// check see it.
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

/// Starts the lease tasks; they run until `shutdown`, then release the Lease.
pub(crate) fn spawn(
    client: Client,
    config: LeaderConfig,
    shutdown: CancellationToken,
) -> Leadership {
    let (manager_tx, manager_rx) = watch::channel(false);
    let (confirmed_tx, confirmed_rx) = watch::channel(false);
    let (leading_tx, leading_rx) = watch::channel(false);
    crate::tasks::spawn(
        "leader.lease",
        run_manager(client.clone(), config.clone(), manager_tx, shutdown.clone()),
    );
    crate::tasks::spawn(
        "leader.check",
        run_check(client, config.clone(), confirmed_tx, shutdown.clone()),
    );
    crate::tasks::spawn("leader", async move {
        let (mut manager, mut confirmed) = (manager_rx, confirmed_rx);
        loop {
            let leading = *manager.borrow() && *confirmed.borrow();
            if *leading_tx.borrow() != leading {
                tracing::info!(identity = %config.identity, leading, "leadership changed");
                let _ = leading_tx.send(leading);
            }
            tokio::select! {
                () = shutdown.cancelled() => {
                    let _ = leading_tx.send(false);
                    return;
                }
                r = manager.changed() => if r.is_err() { return },
                r = confirmed.changed() => if r.is_err() { return },
            }
        }
    });
    Leadership { rx: leading_rx }
}

/// The lease manager, restarted with back-off whenever it cannot start or
/// its task ends; releases the Lease on shutdown.
async fn run_manager(
    client: Client,
    config: LeaderConfig,
    leading: watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    let mut delay = RETRY_MIN;
    loop {
        let built = LeaseManagerBuilder::new(client.clone(), LEASE_NAME)
            .with_namespace(&config.namespace)
            .with_identity(&config.identity)
            .with_duration(LEASE_SECONDS)
            .with_grace(GRACE_SECONDS)
            .with_field_manager(FIELD_MANAGER)
            .build();
        let manager = tokio::select! {
            () = shutdown.cancelled() => return,
            built = built => built,
        };
        let manager = match manager {
            Ok(manager) => manager,
            Err(err) => {
                tracing::warn!(error = %err, retry_in = ?delay, "cannot reach the leader Lease; retrying");
                if sleep_or_shutdown(jittered(delay), &shutdown).await {
                    return;
                }
                delay = (delay * 2).min(RETRY_MAX);
                continue;
            }
        };
        delay = RETRY_MIN;
        let (mut rx, task) = manager.watch().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    let _ = leading.send(false);
                    // Dropping the receiver makes the task release the Lease.
                    drop(rx);
                    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
                    return;
                }
                changed = rx.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let _ = leading.send(*rx.borrow());
                }
            }
        }
        let _ = leading.send(false);
        tracing::warn!("the lease task stopped; starting it again");
        if sleep_or_shutdown(jittered(delay), &shutdown).await {
            return;
        }
    }
}

/// Reads the Lease every few seconds: leading is confirmed while it names
/// this replica and its last renewal is younger than its duration, by this
/// replica's clock. A read that fails confirms nothing new, so the last
/// confirmation runs out on its own.
async fn run_check(
    client: Client,
    config: LeaderConfig,
    confirmed: watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let mut held_until: Option<DateTime<Utc>> = None;
    loop {
        match api.get_opt(LEASE_NAME).await {
            Ok(Some(lease)) => {
                let spec = lease.spec.unwrap_or_default();
                let ours = spec.holder_identity.as_deref() == Some(config.identity.as_str());
                let duration = spec
                    .lease_duration_seconds
                    .map_or(LEASE_SECONDS as i64, i64::from);
                // The holder writes renewTime with its own clock, which is
                // this replica's when the Lease names it.
                held_until = spec
                    .renew_time
                    .filter(|_| ours)
                    .and_then(|t| DateTime::<Utc>::from_timestamp(t.0.as_second(), 0))
                    .map(|renewed| renewed + chrono::Duration::seconds(duration));
            }
            Ok(None) => held_until = None,
            Err(err) => tracing::debug!(error = %err, "reading the leader Lease failed"),
        }
        let holds = held_until.is_some_and(|until| Utc::now() < until);
        if *confirmed.borrow() != holds {
            let _ = confirmed.send(holds);
        }
        if sleep_or_shutdown(CHECK_EVERY, &shutdown).await {
            return;
        }
    }
}

/// Sleeps, or returns `true` at once when `shutdown` fires first.
async fn sleep_or_shutdown(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(delay) => false,
    }
}

/// `delay` ± 20 %, so replicas restarted together do not retry in step.
pub(crate) fn jittered(delay: Duration) -> Duration {
    let factor = 0.8 + fastrand::f64() * 0.4;
    delay.mul_f64(factor)
}
