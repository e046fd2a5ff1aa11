//! Kubernetes Events for decisions, so `kubectl describe` explains every
//! clamp, denial and audit. Published off the request path: the webhook only
//! queues a report; a background task talks to the apiserver.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Client,
    runtime::events::{Event, EventType, Recorder, Reporter},
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{
    engine::Outcome,
    metrics::{Metrics, ResultLabels},
    report::Report,
};

/// Reports waiting beyond this are dropped (and counted) rather than letting
/// a slow apiserver build up memory in the webhook.
const QUEUE: usize = 1024;
/// The Events API limits a note to 1 kB.
const MAX_NOTE: usize = 1000;

/// The webhook's handle for queueing Events.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: mpsc::Sender<Report>,
    metrics: Arc<Metrics>,
}

impl EventSink {
    /// Queues an Event for a report if its outcome deserves one and it is
    /// not a dry run. Never waits.
    pub fn emit(&self, report: &Report) {
        if report.dry_run || report.repeat || events_for(report).is_empty() {
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
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> EventSink {
    let (tx, mut rx) = mpsc::channel::<Report>(QUEUE);
    let recorder = Recorder::new(client, reporter);
    let task_metrics = metrics.clone();
    tokio::spawn(async move {
        loop {
            let report = tokio::select! {
                () = shutdown.cancelled() => return,
                next = rx.recv() => match next { Some(r) => r, None => return },
            };
            for event in events_for(&report) {
                let result = match recorder.publish(&event, &reference(&report)).await {
                    Ok(()) => "ok",
                    Err(err) => {
                        tracing::warn!(error = %err, namespace = %report.namespace, name = %report.name, "publishing Event failed");
                        "error"
                    }
                };
                task_metrics
                    .events
                    .get_or_create(&ResultLabels { result })
                    .inc();
            }
        }
    });
    EventSink { tx, metrics }
}

/// The Events a report becomes: one for a decision that changed or
/// refused something, one for a notice about the policy.
pub fn events_for(report: &Report) -> Vec<Event> {
    let mut events = Vec::new();
    if let Some(notice) = &report.notice {
        events.push(Event {
            type_: EventType::Warning,
            reason: notice.kind.event_reason().to_owned(),
            note: Some(truncate(notice.message.clone(), MAX_NOTE)),
            action: truncate(format!("Edit policy by {}", report.actor), MAX_ACTION),
            secondary: None,
        });
    }
    let Some(d) = &report.decision else {
        return events;
    };
    let Some(reason) = d.outcome.event_reason() else {
        return events;
    };
    let note = format!(
        "{} asked {} replicas (current {}): {}",
        report.actor,
        d.requested,
        d.current,
        d.summary()
    );
    // The Recorder folds Events with the same reason and action into one
    // series that keeps the first note; putting the actor and numbers in
    // the action folds only true repeats (an HPA re-asking every sync), not
    // new decisions.
    let action = format!("Scale {}->{} by {}", d.requested, d.replicas, report.actor);
    events.push(Event {
        type_: if d.outcome == Outcome::Denied {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.to_owned(),
        note: Some(truncate(note, MAX_NOTE)),
        action: truncate(action, MAX_ACTION),
        secondary: None,
    });
    events
}

/// The Events API limits an action to 128 bytes.
const MAX_ACTION: usize = 128;

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

    fn event_for(report: &Report) -> Option<Event> {
        let mut events = events_for(report);
        assert!(events.len() <= 1, "{} events", events.len());
        events.pop()
    }

    #[test]
    fn clamp_becomes_a_normal_event_with_the_reason() {
        let event = event_for(&report(&[(keys::MAX_REPLICAS, "20")], 100, false)).unwrap();
        assert_eq!(event.reason, "ScaleClamped");
        assert_eq!(event.action, "Scale 100->20 by alice");
        assert_eq!(event.type_, EventType::Normal);
        assert_eq!(
            event.note.as_deref(),
            Some("alice asked 100 replicas (current 5): max-replicas 20: asked 100, allowed 20")
        );
    }

    #[test]
    fn denial_is_a_warning_and_unchanged_has_no_event() {
        let event = event_for(&report(
            &[(keys::MODE, "deny"), (keys::MAX_REPLICAS, "20")],
            100,
            false,
        ))
        .unwrap();
        assert_eq!(
            (event.reason.as_str(), event.type_),
            ("ScaleDenied", EventType::Warning)
        );
        assert!(event_for(&report(&[(keys::MAX_REPLICAS, "20")], 10, false)).is_none());
    }

    #[test]
    fn a_notice_is_a_warning_event_naming_the_actor() {
        let mut r = report(&[(keys::MAX_REPLICAS, "20")], 10, false);
        r.notice = Some(crate::report::Notice {
            kind: crate::report::NoticeKind::Loosened,
            message: "alice loosened the policy: bounds now 0..20 -> 0..1000".into(),
        });
        let events = events_for(&r);
        assert_eq!(events.len(), 1, "unchanged decision, one notice");
        assert_eq!(
            (
                events[0].reason.as_str(),
                events[0].type_,
                events[0].action.as_str()
            ),
            ("PolicyLoosened", EventType::Warning, "Edit policy by alice")
        );
        assert_eq!(truncate("é".repeat(10), 7), "éé...");
    }

    #[tokio::test]
    async fn dry_runs_and_unchanged_decisions_are_not_queued() {
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
