//! The background poll that keeps a [`CertStore`] in step with its files.
//!
//! Polling by path and comparing content, rather than watching inodes, is
//! what survives kubelet's `..data` symlink swap: the paths stay the same
//! while everything behind them is replaced at once.

use std::{sync::Arc, time::Duration};

use tokio::{task::JoinHandle, time::MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{CertStore, ReloadOutcome, TlsError};

/// `tokio::time::interval` panics on zero; nothing needs a faster poll.
const MIN_RELOAD_INTERVAL: Duration = Duration::from_millis(10);

impl CertStore {
    /// Spawns [`run_reloader`](Self::run_reloader) on the current runtime.
    pub fn spawn_reloader(
        self: &Arc<Self>,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        crate::tasks::spawn(
            "certificates.reload",
            Arc::clone(self).run_reloader(interval, shutdown),
        )
    }

    /// Calls [`reload`](Self::reload) every `interval` (at least 10 ms) until
    /// `shutdown` is cancelled. A failure keeps the served certificate, is
    /// logged at warn and counted in [`failures`](Self::failures) once per
    /// distinct error, so a Secret that stays broken does not flood the log.
    pub(crate) async fn run_reloader(
        self: Arc<Self>,
        interval: Duration,
        shutdown: CancellationToken,
    ) {
        let mut ticks = tokio::time::interval(interval.max(MIN_RELOAD_INTERVAL));
        // After a stall, one catch-up poll is enough; a burst would re-read
        // the same bytes.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let store = Arc::clone(&self);
            match tokio::task::spawn_blocking(move || store.reload()).await {
                Ok(outcome) => self.record(outcome),
                // Only a panic in the parsers lands here; keep polling, the
                // next update may well be fine.
                Err(join) => error!(error = %join, "certificate reload task failed"),
            }
        }
    }

    pub(super) fn record(&self, outcome: Result<ReloadOutcome, TlsError>) {
        let mut last_error = self
            .last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match outcome {
            Ok(ReloadOutcome::Reloaded) => {
                *last_error = None;
                info!(
                    cert = %self.paths.cert.display(),
                    not_after_unix = self.not_after_unix(),
                    "serving a new TLS certificate"
                );
            }
            Ok(ReloadOutcome::Unchanged) => {
                if last_error.take().is_some() {
                    info!(
                        cert = %self.paths.cert.display(),
                        "TLS files match the served certificate again"
                    );
                }
            }
            Err(err) => {
                let message = err.to_string();
                if last_error.as_deref() != Some(message.as_str()) {
                    self.failures
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    warn!(
                        error = %message,
                        serving = self.is_loaded(),
                        "TLS reload failed; keeping the current certificate"
                    );
                    *last_error = Some(message);
                }
            }
        }
    }
}
