//! The harness of the KEDA scenarios: a governor behind the recording
//! proxy for a namespace of the KEDA cluster, and the waits, reads and
//! charts every scenario shares.

use std::time::Duration;

use chrono::{DateTime, Utc};
use scale_governor::policy::{Policy, keys};
use serde_json::Value;

use crate::support::{
    DeleteOnDrop,
    e2e::{Setup, create},
    eventually,
    governor::Governor,
    keda::{self, ScaledObject},
    spread::Spread,
    timeline::{Recorder, Review, Timeline},
};

/// Longer than the recorder's window for pairing a mutating answer with
/// the validating answer to the same request (300 ms).
const PAIRING: Duration = Duration::from_millis(500);

/// How long one scenario step may take.
pub(super) const STEP: Duration = Duration::from_secs(30);

/// One scenario: a namespace of the KEDA cluster, its governor behind the
/// recording proxy, and a governed Deployment `web`.
pub(super) struct Scenario {
    pub(super) s: Setup,
    pub(super) spread: Spread,
    windows: Option<String>,
    _webhooks: [DeleteOnDrop; 2],
}

impl Scenario {
    /// A governor (with `flags`) for a fresh namespace of the KEDA cluster,
    /// and `web` created at `replicas` with `policy`.
    pub(super) async fn start(
        prefix: &str,
        flags: &[&str],
        replicas: u32,
        policy: &[(&str, &str)],
    ) -> Option<Scenario> {
        let cluster = keda::cluster()?;
        let ns = cluster.namespace(prefix).await;
        let governor = Governor::start_with(cluster, ns.name(), "a", flags).await;
        let (spread, webhooks) = Spread::register_over(cluster, &ns, &[&governor]).await;
        let s = Setup::adopt(cluster, ns, governor);
        let workload = crate::support::e2e::workload("Deployment", "web", replicas, policy);
        create(&s, &workload).await;
        let windows = policy
            .iter()
            .find(|(k, _)| *k == "windows")
            .map(|(_, v)| (*v).to_owned());
        Some(Scenario {
            s,
            spread,
            windows,
            _webhooks: webhooks,
        })
    }

    /// Records `web`, its KEDA HPA and the External metric that HPA reads.
    pub(super) fn record(&self) -> Recorder {
        Recorder::start_for(
            self.s.cluster.client(),
            self.s.ns.name(),
            "web",
            &keda::hpa_name("web"),
            &self.spread,
            true,
        )
    }

    pub(super) async fn scaled_object(&self, so: &ScaledObject<'_>) {
        keda::apply(self.s.cluster, &self.s.ns, &so.manifest()).await;
    }

    /// Waits until `web` has `n` replicas.
    pub(super) async fn until(&self, recorder: &Recorder, n: u32, what: &str) {
        eventually(what, STEP, || async {
            (recorder.sequence().last() == Some(&n)).then_some(())
        })
        .await;
    }

    /// Waits for the first review that `matches` and returns it once the
    /// recorder has paired it with the validating webhook's answer; on
    /// timeout, panics with every review so far.
    pub(super) async fn review(
        &self,
        recorder: &Recorder,
        what: &str,
        matches: impl Fn(&Review) -> bool,
    ) -> Review {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            if recorder.reviews().iter().any(&matches) {
                // The mutating webhook answers first; in deny mode its entry
                // says allowed until the validating answer, up to the
                // recorder's pairing window later, replaces it in place.
                tokio::time::sleep(PAIRING).await;
                if let Some(r) = recorder.reviews().into_iter().find(&matches) {
                    return r;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {STEP:?} waiting for {what}; the reviews: {:#?}",
                recorder.reviews()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Events in the namespace with `reason` about `kind`, as
    /// `name: note` lines.
    pub(super) async fn events(&self, kind: &str, reason: &str) -> String {
        self.s
            .cluster
            .kubectl_ok([
                "get",
                "events.events.k8s.io",
                "-n",
                self.s.ns.name(),
                "--field-selector",
                &format!("regarding.kind={kind},reason={reason}"),
                "-o",
                "jsonpath={range .items[*]}{.regarding.name}: {.note}{\"\\n\"}{end}",
            ])
            .await
    }

    /// `web`'s row of `scale-governor status -o json`.
    pub(super) async fn status(&self) -> Value {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scale-governor"))
            .args(["status", "-n", self.s.ns.name(), "-o", "json"])
            .args(["--governor-namespace", self.s.ns.name()])
            .env("KUBECONFIG", self.s.cluster.kubeconfig())
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
        rows.as_array()
            .and_then(|rows| rows.iter().find(|r| r["name"] == "web").cloned())
            .unwrap_or_else(|| panic!("web in status: {rows}"))
    }

    /// Writes the timeline, shading the policy's time window.
    pub(super) fn conclude(&self, mut timeline: Timeline, name: &str, title: &str) {
        if let Some(windows) = &self.windows {
            let policy = Policy::from_annotations([(keys::WINDOWS, windows.as_str())]).unwrap();
            let active: Vec<DateTime<Utc>> = timeline
                .samples
                .iter()
                .filter(|s| policy.windows.active(s.at).next().is_some())
                .map(|s| s.at)
                .collect();
            if let (Some(from), Some(to)) = (active.first(), active.last()) {
                timeline.spans = vec![(*from, *to)];
            }
        }
        let csv = timeline.write(name, title);
        eprintln!(
            "{name}: {} reviews, replicas {:?}; timeline in {}",
            timeline.reviews.len(),
            timeline.sequence(),
            csv.display()
        );
    }
}

/// A five-field cron expression for the minute of `t` (UTC), every day.
pub(super) fn minute_of(t: DateTime<Utc>) -> String {
    t.format("%-M %-H * * *").to_string()
}
