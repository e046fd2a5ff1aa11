//! Kubernetes Events for decisions, so `kubectl describe` explains every
//! clamp, denial and audit, on the workload and on the HPA that targets it.
//! Published off the request path: the webhook only folds a report into a
//! pending series ([`pending`]); a background task writes each series at
//! most once per interval, within a budget of writes a second, and the
//! series' message and count stay current ([`series`]).

pub(crate) mod pending;
pub(crate) mod series;

use std::{sync::Arc, time::Instant};

use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event as K8sEvent, events::v1::EventSeries},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use self::{
    pending::{Limits, Part, Pending},
    series::{SeriesCache, SeriesKey, Write},
};
use crate::{
    cache::hpa::HpaIndex,
    engine::Outcome,
    metrics::{Metrics, ResultLabels},
    report::{MAX_NOTE, Report},
};

/// The Events API limits an action to 128 bytes.
const MAX_ACTION: usize = 128;

/// Who publishes: `reportingController` and `reportingInstance`.
#[derive(Debug, Clone)]
pub(crate) struct Reporter {
    pub(crate) controller: String,
    /// This replica's identity.
    pub(crate) instance: String,
}

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    /// Something the governor did as designed.
    Normal,
    /// Something a person should look at.
    Warning,
}

/// One Event to publish about the report's workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Note {
    /// Normal or Warning.
    pub(crate) type_: EventType,
    /// E.g. `ScaleClamped`, `PolicyLoosened`.
    pub(crate) reason: String,
    /// The rule, or `EditPolicy`: what the series folds on.
    pub(crate) action: String,
    /// The message, with the actor and the numbers.
    pub(crate) note: String,
}

/// The webhook's handle for Events.
#[derive(Debug, Clone)]
pub struct EventSink {
    pending: Arc<Pending>,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
}

impl EventSink {
    /// A sink whose series nobody publishes (tests, and `start`).
    pub fn new(limits: Limits, metrics: Arc<Metrics>) -> EventSink {
        EventSink {
            pending: Arc::new(Pending::new(limits, Instant::now())),
            wake: Arc::new(Notify::new()),
            metrics,
        }
    }

    /// Folds the Events of a report into their series, unless it is a dry
    /// run or a repeat, or has none. Never waits on the apiserver.
    pub(crate) fn emit(&self, report: &Report) {
        if report.dry_run || report.repeat {
            return;
        }
        let added = self.pending.add(report);
        if added.new > 0 {
            self.wake.notify_one();
        }
        if added.dropped > 0 {
            self.metrics
                .admission
                .events
                .get_or_create(&ResultLabels { result: "dropped" })
                .inc_by(added.dropped as u64);
        }
    }

    /// The pending series.
    #[cfg(any(test, feature = "test-support"))]
    pub fn pending(&self) -> &Pending {
        &self.pending
    }
}

/// Starts the publisher; returns the sink the webhook uses.
pub(crate) fn start(
    client: Client,
    reporter: Reporter,
    hpas: Arc<HpaIndex>,
    metrics: Arc<Metrics>,
    limits: Limits,
    shutdown: CancellationToken,
) -> EventSink {
    let sink = EventSink::new(limits, metrics.clone());
    let (pending, wake) = (sink.pending.clone(), sink.wake.clone());
    crate::tasks::spawn("events", async move {
        let mut publisher = Publisher {
            client,
            reporter,
            series: SeriesCache::default(),
        };
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = wake.notified() => {}
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
            let due = pending.due(Instant::now());
            metrics.admission.event_series.set(pending.len() as i64);
            for due in due {
                let folded = u64::from(due.count.saturating_sub(1));
                if folded > 0 {
                    metrics
                        .admission
                        .events
                        .get_or_create(&ResultLabels { result: "folded" })
                        .inc_by(folded);
                }
                publisher.publish_due(&due, &hpas, &metrics).await;
            }
        }
    });
    sink
}

struct Publisher {
    client: Client,
    reporter: Reporter,
    series: SeriesCache,
}

impl Publisher {
    /// Writes a due series' Event on the workload, and for a decision on
    /// every HPA that targets it (the HPA's own status does not say its
    /// write was cut).
    async fn publish_due(&mut self, due: &pending::Due, hpas: &HpaIndex, metrics: &Metrics) {
        let targeting = hpas.targeting(due.report.kind, &due.report.namespace, &due.report.name);
        let names: Vec<String> = targeting.iter().map(|h| h.name.clone()).collect();
        let named;
        let due = match crate::cache::hpa::hpa_actor(&due.report.actor, &names) {
            Some(actor) => {
                named = pending::Due {
                    report: Report {
                        actor,
                        ..due.report.clone()
                    },
                    ..*due
                };
                &named
            }
            None => due,
        };
        let report = &due.report;
        let count = i32::try_from(due.count).unwrap_or(i32::MAX);
        let Some(note) = note_of(due) else {
            return;
        };
        let mut targets = vec![(reference(report), note.clone())];
        if due.part == Part::Decision {
            let on_hpa = on_hpa(report, note);
            targets.extend(targeting.into_iter().map(|hpa| {
                let regarding = ObjectReference {
                    api_version: Some("autoscaling/v2".to_owned()),
                    kind: Some("HorizontalPodAutoscaler".to_owned()),
                    name: Some(hpa.name),
                    namespace: Some(report.namespace.clone()),
                    uid: hpa.uid,
                    ..ObjectReference::default()
                };
                (regarding, on_hpa.clone())
            }));
        }
        for (regarding, note) in targets {
            let result = match self.publish(&note, &regarding, count).await {
                Ok(()) => "ok",
                Err(err) => {
                    tracing::warn!(error = %err, namespace = %report.namespace, name = ?regarding.name, "publishing Event failed");
                    "error"
                }
            };
            metrics
                .admission
                .events
                .get_or_create(&ResultLabels { result })
                .inc();
        }
    }

    async fn publish(
        &mut self,
        note: &Note,
        regarding: &ObjectReference,
        occurrences: i32,
    ) -> Result<(), kube::Error> {
        let namespace = regarding.namespace.clone().unwrap_or_default();
        let key = SeriesKey {
            namespace: namespace.clone(),
            kind: regarding.kind.clone().unwrap_or_default(),
            name: regarding.name.clone().unwrap_or_default(),
            reason: note.reason.clone(),
            action: note.action.clone(),
        };
        let now = crate::clock::now();
        let write = self.series.next(&key, &note.note, now, occurrences);
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
    crate::clock::timestamp()
}

/// The action of notices (policy edits, the recommender's findings): not a
/// scaling decision, so not published on the HPA.
const EDIT_ACTION: &str = "Notice";

/// The Events a report becomes: one for a decision that changed or
/// refused something, one for a notice about the policy.
pub(crate) fn notes_for(report: &Report) -> Vec<Note> {
    let mut notes = Vec::new();
    for notice in &report.notices {
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

/// The Event a due series writes on the workload: the note of its part.
pub(crate) fn note_of(due: &pending::Due) -> Option<Note> {
    let wanted = |n: &Note| match due.part {
        Part::Notice(kind) => n.action == EDIT_ACTION && n.reason == kind.event_reason(),
        Part::Decision => n.action != EDIT_ACTION,
    };
    notes_for(&due.report).into_iter().find(wanted)
}

/// A decision's Event as the HPA that targets the workload gets it: the
/// note names the workload.
pub(crate) fn on_hpa(report: &Report, note: Note) -> Note {
    Note {
        note: truncate(
            format!("{} {}: {}", report.kind.as_str(), report.name, note.note),
            MAX_NOTE,
        ),
        ..note
    }
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
    use crate::policy::keys;

    fn report(annotations: &[(&str, &str)], requested: u32, dry_run: bool) -> Report {
        crate::report::sample(annotations, 5, requested, dry_run)
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
    fn a_deny_mode_step_toward_the_bounds_is_a_normal_event_with_the_numbers() {
        let annotations = [(keys::MODE, "deny"), (keys::MIN_REPLICAS, "2")];
        let note = note_for(&crate::report::sample(&annotations, 0, 1, false)).unwrap();
        assert_eq!(
            note,
            Note {
                type_: EventType::Normal,
                reason: "ScaleStepped".into(),
                action: "min-replicas".into(),
                note: "alice asked 1 replicas (current 0): min-replicas 2: asked 1 (current 0), still below the floor 2; allowed as a step toward it".into(),
            }
        );
    }

    #[test]
    fn a_notice_is_a_warning_event_naming_the_actor() {
        let mut r = report(&[(keys::MAX_REPLICAS, "20")], 10, false);
        r.notices.push(crate::report::Notice {
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

    #[test]
    fn a_risk_missed_for_a_day_is_a_warning_event() {
        let mut r = report(&[], 5, false);
        r.decision = None;
        let kind = crate::recommend::plan::NoticeKind::RiskMissed;
        r.notices.push(crate::report::Notice {
            kind: kind.into(),
            message: "short of capacity 3 % of the last 24 h against a stated risk of 1 %".into(),
        });
        let note = note_for(&r).unwrap();
        assert_eq!(
            (note.reason.as_str(), note.type_, note.action.as_str()),
            ("RecommendationRiskMissed", EventType::Warning, "Notice")
        );
        assert_eq!(r.notices[0].kind.as_str(), "risk-missed");
    }

    #[test]
    fn dry_runs_repeats_and_unchanged_decisions_are_not_folded() {
        let sink = EventSink::new(Limits::default(), Arc::new(Metrics::new()));
        sink.emit(&report(&[(keys::MAX_REPLICAS, "20")], 100, true));
        sink.emit(&report(&[(keys::MAX_REPLICAS, "20")], 10, false));
        let mut repeat = report(&[(keys::MAX_REPLICAS, "20")], 100, false);
        repeat.repeat = true;
        sink.emit(&repeat);
        assert!(sink.pending().is_empty());
        sink.emit(&report(&[(keys::MAX_REPLICAS, "20")], 100, false));
        let due = sink.pending().due(Instant::now());
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].report.decision.as_ref().unwrap().requested, 100);
    }
}
