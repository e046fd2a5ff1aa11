//! The governor under the real HPA controller: kube-controller-manager's
//! HPA (synced every second, `--horizontal-pod-autoscaler-sync-period=1s`)
//! scaling a governed Deployment on an `External` metric with an
//! `AverageValue` target, served by this test (`support::external_metrics`),
//! so it does not depend on pod usage. Each scenario asserts the whole replica
//! sequence, writes its timeline (`target/e2e-timelines/<name>.{csv,svg}`),
//! and replays the recording through the simulator's HPA and guard
//! (`support::replay`), which must agree with it write by write.
//!
//! Reviews reach the governor through a recording proxy (`support::spread`)
//! so the test reads exactly what each actor asked and what it was granted.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{Json, Router, extract::State, routing::get};
use chrono::Utc;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Api, PostParams};
use scale_governor::policy::{Policy, keys};
use serde_json::json;
use serial_test::parallel;

use crate::support::{
    self, DeleteOnDrop,
    e2e::{Setup, apply_ok, create, describe, scale, workload},
    eventually,
    external_metrics::{ExternalMetrics, Metric},
    governor::Governor,
    replay::{self, Model},
    spread::Spread,
    timeline::{Recorder, Timeline},
};

mod floor;
mod gitops;

/// The HPA's `AverageValue`: demand one pod serves.
const TARGET: u64 = 100;

/// How long one scenario step may take.
const STEP: Duration = Duration::from_secs(30);

/// A behavior that never holds the HPA back, so every limit seen in a
/// scenario is the governor's: 100 pods a period up, everything down, no
/// stabilization (the HPA's default 300 s would make the test wait 5
/// minutes).
const UP: &str = r#"{"policies":[{"type":"Pods","value":100,"periodSeconds":15}],"selectPolicy":"Max","stabilizationWindowSeconds":0}"#;
const DOWN: &str = r#"{"policies":[{"type":"Percent","value":100,"periodSeconds":15}],"selectPolicy":"Max","stabilizationWindowSeconds":0}"#;
/// An HPA that never scales down, so it leaves a person's raise alone.
const NO_DOWN: &str = r#"{"selectPolicy":"Disabled"}"#;

/// One scenario: a namespace, its governor behind the recording proxy, a
/// metric of its own, and a governed Deployment `web` with an HPA.
struct Scenario {
    s: Setup,
    spread: Spread,
    metric: Metric,
    annotations: Vec<(&'static str, String)>,
    hpa_down: &'static str,
    _webhooks: [DeleteOnDrop; 2],
}

impl Scenario {
    /// A governor (with `flags`) for a fresh namespace, and `web` created
    /// at `replicas` with `policy` (annotation names without the prefix).
    async fn start(
        prefix: &str,
        flags: &[&str],
        replicas: u32,
        policy: &[(&'static str, String)],
    ) -> Option<Scenario> {
        Scenario::start_with_sources(prefix, flags, None, replicas, policy).await
    }

    /// [`Scenario::start`] with a `--sources` file (YAML, `{ns}` standing
    /// for the namespace).
    async fn start_with_sources(
        prefix: &str,
        flags: &[&str],
        sources: Option<&str>,
        replicas: u32,
        policy: &[(&'static str, String)],
    ) -> Option<Scenario> {
        let cluster = support::require_cluster!(None);
        let metrics = ExternalMetrics::shared(cluster);
        let ns = cluster.namespace(prefix).await;
        let mut flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
        if let Some(text) = sources {
            let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("sources-{}.yaml", ns.name()));
            std::fs::write(&path, text.replace("{ns}", ns.name())).unwrap();
            flags.push(format!("--sources={}", path.display()));
        }
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let governor = Governor::start_with(cluster, ns.name(), "a", &flags).await;
        let (spread, webhooks) = Spread::register_over(cluster, &ns, &[&governor]).await;
        let metric = metrics.metric_named(ns.name());
        let s = Setup::adopt(cluster, ns, governor);
        let pairs: Vec<(&str, &str)> = policy.iter().map(|(k, v)| (*k, v.as_str())).collect();
        create(&s, &workload("Deployment", "web", replicas, &pairs)).await;
        Some(Scenario {
            s,
            spread,
            metric,
            annotations: policy.to_vec(),
            hpa_down: DOWN,
            _webhooks: webhooks,
        })
    }

    /// Creates the HPA on `web` (1..=20 replicas) and waits for its first
    /// metric read.
    async fn hpa(&self, down: &'static str) {
        let hpa = self.metric.hpa("web", 20, TARGET, UP, down);
        let hpas: Api<HorizontalPodAutoscaler> = self.s.ns.api(self.s.cluster.client());
        hpas.create(&PostParams::default(), &hpa).await.unwrap();
        eventually("the HPA's first metric read", STEP, || async {
            (!self.metric.queries().is_empty()).then_some(())
        })
        .await;
    }

    fn record(&self) -> Recorder {
        Recorder::start(
            self.s.cluster.client(),
            self.s.ns.name(),
            "web",
            &self.spread,
        )
    }

    /// Waits until `web` has `n` replicas.
    async fn until(&self, recorder: &Recorder, n: u32, what: &str) {
        eventually(what, STEP, || async {
            (recorder.sequence().last() == Some(&n)).then_some(())
        })
        .await;
    }

    /// Events with `reason` on the HPA, one note per line.
    async fn hpa_events(&self, reason: &str) -> String {
        self.s
            .cluster
            .kubectl_ok([
                "get",
                "events",
                "-n",
                self.s.ns.name(),
                "--field-selector",
                &format!("involvedObject.kind=HorizontalPodAutoscaler,reason={reason}"),
                "-o",
                "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
            ])
            .await
    }

    /// Writes the timeline and checks the simulator's replay agrees with it,
    /// and (`simulate`) that `simulate`'s own run on the metric agrees too:
    /// the scenarios whose every write comes from the HPA or the loop.
    fn conclude(&self, timeline: Timeline, name: &str, title: &str, simulate: bool) {
        let mut timeline = timeline;
        timeline.spans = self.spans(&timeline);
        let csv = timeline.write(name, title);
        eprintln!(
            "{name}: {} reviews, replicas {:?}, the HPA read each new metric value {} ms after \
             it was set on average; timeline in {}",
            timeline.reviews.len(),
            timeline.sequence(),
            timeline.metric_delay().num_milliseconds(),
            csv.display()
        );
        let mut hpa = vec![
            (keys::MIN_REPLICAS, "1"),
            (keys::MAX_REPLICAS, "20"),
            (keys::SCALE_UP, UP),
        ];
        hpa.push((keys::SCALE_DOWN, self.hpa_down));
        let hpa = Policy::from_annotations(hpa).expect("the HPA's spec as a policy");
        let keyed: Vec<(String, &str)> = self
            .annotations
            .iter()
            .map(|(k, v)| (format!("scale-governor.io/{k}"), v.as_str()))
            .collect();
        let annotations: Vec<(&str, &str)> = keyed.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let replayed = replay::replay(
            &timeline,
            &Model {
                hpa: &hpa,
                target: TARGET as f64,
                annotations: &annotations,
            },
        );
        let table = replay::side_by_side(&timeline, &replayed);
        let initial = timeline.samples.first().map_or(0, |s| s.replicas);
        assert_eq!(
            replayed.sequence(initial),
            timeline.sequence(),
            "the simulator's HPA + guard went through other counts ({})\n{table}",
            csv.display()
        );
        let recorded =
            replay::hpa_steps(timeline.hpa_writes().iter().map(|r| (r.asked, r.granted)));
        let emulated = replay::hpa_steps(
            replayed
                .writes
                .iter()
                .filter(|w| w.actor == "hpa")
                .map(|w| (w.asked, w.granted)),
        );
        assert_eq!(
            emulated,
            recorded,
            "the HPA emulation asked and was granted otherwise ({})\n{table}",
            csv.display()
        );
        if simulate {
            let model = Model {
                hpa: &hpa,
                target: TARGET as f64,
                annotations: &annotations,
            };
            assert_eq!(
                replay::simulated(&timeline, &model),
                timeline.sequence(),
                "simulate's hpa+governor run, at the recorded metric delay of {} ms, went \
                 through other counts ({})",
                timeline.metric_delay().num_milliseconds(),
                csv.display()
            );
        }
    }

    /// When a time window of the policy was active, from the samples.
    fn spans(&self, timeline: &Timeline) -> Vec<(chrono::DateTime<Utc>, chrono::DateTime<Utc>)> {
        let Some((_, windows)) = self.annotations.iter().find(|(k, _)| *k == "windows") else {
            return Vec::new();
        };
        let policy = Policy::from_annotations([(keys::WINDOWS, windows.as_str())]).unwrap();
        let mut spans = Vec::new();
        let mut open = None;
        for s in &timeline.samples {
            match (policy.windows.active(s.at).next().is_some(), open) {
                (true, None) => open = Some(s.at),
                (false, Some(from)) => {
                    spans.push((from, s.at));
                    open = None;
                }
                _ => {}
            }
        }
        spans
    }
}

/// `web` at 2 with an HPA settled on 2 pods' worth of metric, recorded from
/// the moment the metric jumps to 10 pods' worth.
async fn spike(prefix: &str, policy: &[(&'static str, String)]) -> Option<(Scenario, Recorder)> {
    let sc = Scenario::start(prefix, &[], 2, policy).await?;
    sc.metric.set(200);
    sc.hpa(DOWN).await;
    let recorder = sc.record();
    sc.metric.set(1000);
    Some((sc, recorder))
}

/// A demand spike: the HPA asks for 10 at once; the governor's `scale-up`
/// rule grants 2 pods every 5 s, and the HPA keeps asking until it gets
/// there: 2, 4, 6, 8, 10. In `enforce` mode nothing on the HPA says
/// `FailedRescale`, and `kubectl describe hpa` shows the governor's clamp.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn a_spike_is_clamped_step_by_step_and_the_hpa_converges() {
    let policy = [
        ("scale-up", "2 pods/5s".to_owned()),
        ("max-replicas", "20".to_owned()),
    ];
    let Some((sc, recorder)) = spike("hpaspike", &policy).await else {
        return;
    };
    sc.until(&recorder, 10, "the HPA to reach 10 under the rule")
        .await;
    let timeline = recorder.finish(&sc.metric, TARGET as f64).await;
    assert_eq!(timeline.sequence(), [2, 4, 6, 8, 10]);
    // Each step waited for the rule's period: no two raises within 5 s.
    let raises: Vec<_> = timeline
        .reviews
        .iter()
        .filter(|r| r.allowed && r.granted > r.current)
        .map(|r| r.at)
        .collect();
    assert_eq!(raises.len(), 4, "{:#?}", timeline.reviews);
    for pair in raises.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= chrono::Duration::milliseconds(4900),
            "raises {gap} apart"
        );
    }
    assert!(timeline.hpa_writes().iter().all(|r| r.asked == 10));
    assert_eq!(sc.hpa_events("FailedRescale").await.trim(), "");
    let text = describe(sc.s.cluster, &sc.s.ns, "hpa/web").await;
    assert!(
        text.contains("ScaleClamped") && text.contains("scale-up 2 pods/5s: asked 10, allowed"),
        "kubectl describe hpa must show the governor's clamp:\n{text}"
    );
    sc.conclude(
        timeline,
        "spike-enforce",
        "A demand spike under scale-up 2 pods/5s (enforce)",
        true,
    );
}

/// The same spike in `deny` mode: the HPA's write is refused with the
/// governor's reason, which the HPA reports as `FailedRescale`; replicas
/// stay where they were (an HPA whose own behavior asks for more than the
/// rule allows never gets anywhere in deny mode: use enforce under an HPA).
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn in_deny_mode_the_hpa_reports_failed_rescale_with_the_reason() {
    let policy = [
        ("mode", "deny".to_owned()),
        ("scale-up", "2 pods/5s".to_owned()),
    ];
    let Some((sc, recorder)) = spike("hpadeny", &policy).await else {
        return;
    };
    let failed = eventually("FailedRescale on the HPA", STEP, || async {
        let e = sc.hpa_events("FailedRescale").await;
        (!e.trim().is_empty()).then_some(e)
    })
    .await;
    assert!(
        failed.contains("New size: 10")
            && failed.contains("denied the request")
            && failed.contains("scale-up 2 pods/5s: asked 10, allowed 4"),
        "{failed}"
    );
    // A few more refused syncs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let timeline = recorder.finish(&sc.metric, TARGET as f64).await;
    assert_eq!(timeline.sequence(), [2]);
    // In deny mode the mutating webhook lets the request through and the
    // validating one refuses it; a request whose refusal had not reached
    // the recorder when it stopped reads allowed. None landed (above).
    let writes = timeline.hpa_writes();
    let refused: Vec<_> = writes.iter().filter(|r| !r.allowed).collect();
    assert!(
        refused.len() >= 2
            && refused
                .iter()
                .all(|r| r.message.contains("scale-up 2 pods/5s")),
        "{writes:#?}"
    );
    let able =
        sc.s.cluster
            .kubectl_ok([
                "get",
                "-n",
                sc.s.ns.name(),
                "hpa/web",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"AbleToScale\")].reason}",
            ])
            .await;
    assert_eq!(able.trim(), "FailedUpdateScale");
    sc.conclude(
        timeline,
        "spike-deny",
        "A demand spike under scale-up 2 pods/5s (deny)",
        true,
    );
}

/// A time window's maximum: the HPA holds 8; the window opens and the
/// governor's loop lowers `web` to 3, every HPA write for 8 is clamped to 3
/// while it lasts, and the HPA gets its 8 back once it ends.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn a_windows_maximum_caps_the_hpa_and_releases_it_after() {
    // Whole seconds, as the window is written.
    let now = Utc::now().timestamp() + 14;
    let start = chrono::DateTime::<Utc>::from_timestamp(now, 0).unwrap();
    let end = start + chrono::Duration::seconds(12);
    let stamp = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let window = format!("{}/{} UTC max=3", stamp(start), stamp(end));
    let policy = [("windows", window)];
    let flags = ["--recommend-interval=1s"];
    let Some(sc) = Scenario::start("hpawindow", &flags, 2, &policy).await else {
        return;
    };
    sc.metric.set(200);
    sc.hpa(DOWN).await;
    let recorder = sc.record();
    sc.metric.set(800);
    sc.until(&recorder, 8, "the HPA to reach 8").await;
    assert!(
        Utc::now() < start,
        "the HPA must reach 8 before the window opens"
    );
    sc.until(&recorder, 3, "the window to cap web at 3").await;
    let capped = Utc::now();
    sc.until(&recorder, 8, "the HPA to get 8 back after the window")
        .await;
    let timeline = recorder.finish(&sc.metric, TARGET as f64).await;
    assert_eq!(timeline.sequence(), [2, 8, 3, 8]);
    let writes = timeline.hpa_writes();
    let held = writes
        .iter()
        .filter(|r| r.at > capped && r.at < end && r.asked == 8)
        .collect::<Vec<_>>();
    assert!(
        !held.is_empty()
            && held
                .iter()
                .all(|r| r.granted == 3 && r.message.contains("max=3")),
        "{held:#?}"
    );
    let released = writes
        .iter()
        .find(|r| r.granted == 8 && r.at > capped)
        .unwrap();
    assert!(
        released.at >= end,
        "released at {} before the window's end {end}",
        released.at
    );
    sc.conclude(
        timeline,
        "window-max",
        "A time window's max=3 over an HPA that wants 8",
        true,
    );
}

/// `kubectl scale` by a person while the HPA is active spends the same
/// budget: the person's raise from 2 to 6 uses the 4 pods the rule gives in
/// 20 s, so the HPA's ask for 10 right after is held at 6 until the period
/// has passed.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn a_person_scaling_spends_the_budget_the_hpa_then_finds_spent() {
    let policy = [("scale-up", "4 pods/20s".to_owned())];
    let Some(mut sc) = Scenario::start("hpaperson", &[], 2, &policy).await else {
        return;
    };
    sc.hpa_down = NO_DOWN;
    sc.metric.set(200);
    sc.hpa(NO_DOWN).await;
    let recorder = sc.record();
    let (ok, e) = scale(sc.s.cluster, &sc.s.ns, "deploy/web", 6, &[]).await;
    assert!(
        ok && !e.contains("allowed"),
        "the person's raise is within the rule: {e}"
    );
    let raised = Utc::now();
    sc.metric.set(1000);
    let held = eventually("the HPA's ask held at 6", STEP, || async {
        recorder
            .reviews()
            .into_iter()
            .find(|r| r.by_hpa() && r.asked == 10)
    })
    .await;
    assert_eq!(held.granted, 6, "{held:?}");
    assert!(
        held.message
            .contains("scale-up 4 pods/20s: asked 10, allowed 6"),
        "{}",
        held.message
    );
    sc.until(&recorder, 10, "the HPA's 10 once the period passed")
        .await;
    let timeline = recorder.finish(&sc.metric, TARGET as f64).await;
    assert_eq!(timeline.sequence(), [2, 6, 10]);
    let ten = timeline.reviews.iter().find(|r| r.granted == 10).unwrap();
    assert!(ten.by_hpa());
    assert!(
        ten.at - raised >= chrono::Duration::milliseconds(19_500),
        "10 landed {} after the person's raise",
        ten.at - raised
    );
    sc.conclude(
        timeline,
        "person-and-hpa",
        "kubectl scale to 6, then the HPA asks 10, under scale-up 4 pods/20s",
        false,
    );
}
