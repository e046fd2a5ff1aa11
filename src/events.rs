//! Kubernetes Events for decisions, so `kubectl describe` explains every
//! clamp, denial and audit, on the workload and on the HPA that targets it.
//! Published off the request path: the webhook only queues a report; a
//! background task talks to the apiserver. Repeats fold into series whose
//! message and count stay current ([`series`]).

pub mod series;

use std::sync::Arc;

use chrono::Utc;
use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event as K8sEvent, events::v1::EventSeries},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::series::{SeriesCache, SeriesKey, Write};
use crate::{
    cache::hpa::HpaIndex,
    engine::Outcome,
    metrics::{Metrics, ResultLabels},
    report::Report,
};

/// Reports waiting beyond this are dropped (and counted) rather than letting
/// a slow apiserver build up memory in the webhook.
const QUEUE: usize = 1024;
/// The Events API limits a note to 1 kB.
const MAX_NOTE: usize = 1000;
/// The Events API limits an action to 128 bytes.
const MAX_ACTION: usize = 128;

/// Who publishes: `reportingController` and `reportingInstance`.
#[derive(Debug, Clone)]
pub struct Reporter {
    /// `scale-governor`.
    pub controller: String,
    /// This replica's identity.
    pub instance: String,
}

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Something the governor did as designed.
    Normal,
    /// Something a person should look at.
    Warning,
}

/// One Event to publish about the report's workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Normal or Warning.
    pub type_: EventType,
    /// E.g. `ScaleClamped`, `PolicyLoosened`.
    pub reason: String,
    /// The rule, or `EditPolicy`: what the series folds on.
    pub action: String,
    /// The message, with the actor and the numbers.
    pub note: String,
}

/// The webhook's handle for queueing Events.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: mpsc::Sender<Report>,
    metrics: Arc<Metrics>,
}

impl EventSink {
    /// Queues the Events of a report, unless it is a dry run or a repeat,
    /// or has none. Never waits.
    pub fn emit(&self, report: &Report) {
        if report.dry_run || report.repeat || notes_for(report).is_empty() {
            return;
        }
        if self.tx.try_send(report.clone()).is_err() {
            self.metrics
                .events
                .get_or_create(&ResultLabels { result: "dropped" })
                .inc();
        }
    }
}

/// Starts the publisher; returns the sink the webhook uses.
pub fn start(
    client: Client,
    reporter: Reporter,
    hpas: Arc<HpaIndex>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> EventSink {
    let (tx, mut rx) = mpsc::channel::<Report>(QUEUE);
    let task_metrics = metrics.clone();
    tokio::spawn(async move {
        let mut publisher = Publisher {
            client,
            reporter,
            series: SeriesCache::default(),
        };
        loop {
            let report = tokio::select! {
                () = shutdown.cancelled() => return,
                next = rx.recv() => match next { Some(r) => r, None => return },
            };
            let workload = reference(&report);
            let hpas: Vec<ObjectReference> = hpas
                .targeting(report.kind, &report.namespace, &report.name)
                .into_iter()
                .map(|hpa| ObjectReference {
                    api_version: Some("autoscaling/v2".to_owned()),
                    kind: Some("HorizontalPodAutoscaler".to_owned()),
                    name: Some(hpa.name),
                    namespace: Some(report.namespace.clone()),
                    uid: hpa.uid,
                    ..ObjectReference::default()
                })
                .collect();
            for note in notes_for(&report) {
                let is_decision = note.action != EDIT_ACTION;
                let mut targets = vec![(workload.clone(), note.clone())];
                if is_decision {
                    // The HPA's own status does not say its write was cut.
                    let on_hpa = Note {
                        note: truncate(
                            format!("{} {}: {}", report.kind.as_str(), report.name, note.note),
                            MAX_NOTE,
                        ),
                        ..note.clone()
                    };
                    targets.extend(hpas.iter().map(|h| (h.clone(), on_hpa.clone())));
                }
                for (regarding, note) in targets {
                    let result = match publisher.publish(&note, &regarding).await {
                        Ok(()) => "ok",
                        Err(err) => {
                            tracing::warn!(error = %err, namespace = %report.namespace, name = ?regarding.name, "publishing Event failed");
                            "error"
                        }
                    };
                    task_metrics
                        .events
                        .get_or_create(&ResultLabels { result })
                        .inc();
                }
            }
        }
    });
    EventSink { tx, metrics }
}

struct Publisher {
    client: Client,
    reporter: Reporter,
    series: SeriesCache,
}

impl Publisher {
    async fn publish(
        &mut self,
        note: &Note,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let namespace = regarding.namespace.clone().unwrap_or_default();
        let key = SeriesKey {
            namespace: namespace.clone(),
            kind: regarding.kind.clone().unwrap_or_default(),
            name: regarding.name.clone().unwrap_or_default(),
            reason: note.reason.clone(),
            action: note.action.clone(),
        };
        let now = Utc::now();
        let write = self.series.next(&key, &note.note, now);
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
        let result = match &write {
            Write::Create { event, count } => {
                let series = (*count > 1).then(|| EventSeries {
                    count: *count,
                    last_observed_time: MicroTime(now_ts()),
                });
                let event = K8sEvent {
                    metadata: ObjectMeta {
                        name: Some(event.clone()),
                        namespace: Some(namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    action: Some(note.action.clone()),
                    reason: Some(note.reason.clone()),
                    note: Some(note.note.clone()),
                    type_: Some(
                        match note.type_ {
                            EventType::Normal => "Normal",
                            EventType::Warning => "Warning",
                        }
                        .to_owned(),
                    ),
                    event_time: Some(MicroTime(now_ts())),
                    regarding: Some(regarding.clone()),
                    reporting_controller: Some(self.reporter.controller.clone()),
                    reporting_instance: Some(self.reporter.instance.clone()),
                    series,
                    ..K8sEvent::default()
                };
                api.create(&PostParams::default(), &event).await.map(drop)
            }
            Write::Bump { event, count } => {
                let patch = serde_json::json!({
                    "series": {"count": count, "lastObservedTime": MicroTime(now_ts())}
                });
                api.patch(event, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(drop)
            }
        };
        if result.is_err() {
            self.series.forget(&key);
        }
        result
    }
}

fn now_ts() -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::now()
}

/// The action of notices (policy edits, the recommender's findings): not a
/// scaling decision, so not published on the HPA.
const EDIT_ACTION: &str = "Notice";

/// The Events a report becomes: one for a decision that changed or
/// refused something, one for a notice about the policy.
pub fn notes_for(report: &Report) -> Vec<Note> {
    let mut notes = Vec::new();
    if let Some(notice) = &report.notice {
        notes.push(Note {
            type_: if notice.kind.is_warning() {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: notice.kind.event_reason().to_owned(),
            action: EDIT_ACTION.to_owned(),
            note: truncate(notice.message.clone(), MAX_NOTE),
        });
    }
    let Some(d) = &report.decision else {
        return notes;
    };
    let Some(reason) = d.outcome.event_reason() else {
        return notes;
    };
    let note = format!(
        "{} asked {} replicas (current {}): {}",
        report.actor,
        d.requested,
        d.current,
        d.summary()
    );
    // One series per rule that set the result: an HPA re-asking every sync
    // bumps its count, and new numbers show up as the latest message.
    let rule = d.reasons.last().map_or("none", |r| r.rule.as_str());
    notes.push(Note {
        type_: if d.outcome == Outcome::Denied {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.to_owned(),
        action: truncate(rule.to_owned(), MAX_ACTION),
        note: truncate(note, MAX_NOTE),
    });
    notes
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the
/// cut with `...` when there is room.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut cut = max.saturating_sub(3);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text.push_str("...");
    text
}

fn reference(report: &Report) -> ObjectReference {
    ObjectReference {
        api_version: Some("apps/v1".to_owned()),
        kind: Some(report.kind.as_str().to_owned()),
        name: Some(report.name.clone()),
        namespace: Some(report.namespace.clone()),
        uid: report.uid.clone(),
        ..ObjectReference::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        engine::{Ledger, Request, decide},
        policy::{Policy, keys},
        workload::WorkloadKind,
    };

    fn report(annotations: &[(&str, &str)], requested: u32, dry_run: bool) -> Report {
        let policy = Policy::from_annotations(annotations.iter().copied()).unwrap();
        let request = Request {
            current: 5,
            requested,
            actor: "alice",
        };
        Report {
            kind: WorkloadKind::Deployment,
            namespace: "shop".into(),
            name: "web".into(),
            uid: Some("u".into()),
            actor: "alice".into(),
            dry_run,
            repeat: false,
            decision: Some(decide(
                &policy,
                &Ledger::new(),
                request,
                "2026-11-23T10:00:00Z".parse().unwrap(),
            )),
            notice: None,
        }
    }

    fn note_for(report: &Report) -> Option<Note> {
        let mut notes = notes_for(report);
        assert!(notes.len() <= 1, "{notes:?}");
        notes.pop()
    }

    #[test]
    fn clamp_becomes_a_normal_event_with_the_reason() {
        let note = note_for(&report(&[(keys::MAX_REPLICAS, "20")], 100, false)).unwrap();
        assert_eq!(
            note,
            Note {
                type_: EventType::Normal,
                reason: "ScaleClamped".into(),
                action: "max-replicas".into(),
                note:
                    "alice asked 100 replicas (current 5): max-replicas 20: asked 100, allowed 20"
                        .into(),
            }
        );
    }

    #[test]
    fn denial_is_a_warning_and_unchanged_has_no_event() {
        let note = note_for(&report(
            &[(keys::MODE, "deny"), (keys::MAX_REPLICAS, "20")],
            100,
            false,
        ))
        .unwrap();
        assert_eq!(
            (note.reason.as_str(), note.type_),
            ("ScaleDenied", EventType::Warning)
        );
        assert!(note_for(&report(&[(keys::MAX_REPLICAS, "20")], 10, false)).is_none());
    }

    #[test]
    fn a_notice_is_a_warning_event_naming_the_actor() {
        let mut r = report(&[(keys::MAX_REPLICAS, "20")], 10, false);
        r.notice = Some(crate::report::Notice {
            kind: crate::report::NoticeKind::Loosened,
            message: "alice loosened the policy: bounds now 0..20 -> 0..1000".into(),
        });
        let notes = notes_for(&r);
        assert_eq!(notes.len(), 1, "unchanged decision, one notice");
        assert_eq!(
            (
                notes[0].reason.as_str(),
                notes[0].type_,
                notes[0].action.as_str()
            ),
            ("PolicyLoosened", EventType::Warning, "Notice")
        );
        assert_eq!(truncate("é".repeat(10), 7), "éé...");
    }

    #[tokio::test]
    async fn dry_runs_repeats_and_unchanged_decisions_are_not_queued() {
        let (tx, mut rx) = mpsc::channel(4);
        let sink = EventSink {
            tx,
            metrics: Arc::new(Metrics::new()),
        };
        sink.emit(&report(&[(keys::MAX_REPLICAS, "20")], 100, true));
        sink.emit(&report(&[(keys::MAX_REPLICAS, "20")], 10, false));
        let mut repeat = report(&[(keys::MAX_REPLICAS, "20")], 100, false);
        repeat.repeat = true;
        sink.emit(&repeat);
        sink.emit(&report(&[(keys::MAX_REPLICAS, "20")], 100, false));
        assert_eq!(rx.recv().await.unwrap().decision.unwrap().requested, 100);
        assert!(rx.try_recv().is_err());
    }
}
