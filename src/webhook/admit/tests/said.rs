//! What one review says, everywhere a person reads it: the AdmissionResponse
//! (`kubectl`'s error and warnings), the Events its report becomes, as the
//! publisher takes them from their pending series, and the log lines the
//! webhook writes about it, in both formats `serve` logs in.

use std::{
    io,
    sync::{Arc, Mutex},
    time::Instant,
};

use tracing_subscriber::fmt::MakeWriter;

use super::*;
use crate::{
    events::{EventSink, Note, note_of, on_hpa, pending::Limits},
    metrics::Metrics,
    quoting::needs_escape,
    webhook::{Webhook, reporting},
};

/// One review, as said everywhere.
pub(super) struct Said {
    pub(super) response: AdmissionResponse,
    pub(super) report: Option<Report>,
    /// The Events on the workload, and for decisions the one on an HPA.
    pub(super) events: Vec<Note>,
    /// The log lines, as a terminal shows them and as JSON.
    pub(super) logs: String,
    pub(super) json_logs: String,
}

impl Said {
    /// The response's message (a refusal), or "".
    pub(super) fn message(&self) -> &str {
        self.response
            .status
            .as_ref()
            .map_or("", |s| s.message.as_str())
    }

    /// The Event notes, one per line.
    pub(super) fn notes(&self) -> String {
        let notes: Vec<&str> = self.events.iter().map(|n| n.note.as_str()).collect();
        notes.join("\n")
    }

    /// Every text a person reads, each with where it is read.
    pub(super) fn texts(&self) -> Vec<(String, &str)> {
        let mut out = vec![("response message".to_owned(), self.message())];
        for w in &self.response.warnings {
            out.push(("response warning".to_owned(), w.as_str()));
        }
        for n in &self.events {
            out.push((format!("Event {}", n.reason), n.note.as_str()));
        }
        for line in self.logs.lines().chain(self.json_logs.lines()) {
            out.push(("log line".to_owned(), line));
        }
        out
    }

    /// No text holds a character that could hide or reorder what a
    /// terminal shows, none is longer than `max` characters, and an Event
    /// note is within the Events API's limit.
    pub(super) fn assert_safe(&self, max: usize) {
        for (place, text) in self.texts() {
            assert!(
                !text.chars().any(needs_escape),
                "{place} holds a raw control character: {text:?}"
            );
            let length = text.chars().count();
            assert!(length <= max, "{place} is {length} characters: {text}");
        }
        for n in &self.events {
            assert!(n.note.len() <= 1000, "Event note of {} bytes", n.note.len());
        }
    }

    /// Whether every place a review of this kind reports in says `what`:
    /// the response, an Event and a log line.
    pub(super) fn assert_says(&self, what: &str) {
        let response = format!("{}\n{}", self.message(), self.response.warnings.join("\n"));
        assert!(
            response.contains(what),
            "response: {response}\nwant: {what}"
        );
        self.assert_reports(what);
    }

    /// Whether an Event and a log line (in both formats) say `what`.
    pub(super) fn assert_reports(&self, what: &str) {
        assert!(
            self.notes().contains(what),
            "Events: {}\nwant: {what}",
            self.notes()
        );
        assert!(self.logs.contains(what), "log: {}\nwant: {what}", self.logs);
        let json = serde_json::to_string(what).unwrap();
        assert!(
            self.json_logs.contains(json.trim_matches('"')),
            "JSON log: {}\nwant: {what}",
            self.json_logs
        );
    }
}

/// Reviews `body` at `endpoint` against `cache`, then reports it as the
/// webhook does, capturing its log lines and pending Events.
pub(super) fn said(endpoint: Endpoint, body: &[u8], cache: Cache, now: DateTime<Utc>) -> Said {
    let metrics = Arc::new(Metrics::new());
    let sink = EventSink::new(Limits::default(), metrics.clone());
    let webhook = Webhook {
        cache: Arc::new(cache),
        metrics: metrics.clone(),
        events: Some(sink.clone()),
        config: AdmitConfig::default(),
        logs: Default::default(),
    };
    let reviewed = super::super::review(endpoint, body, &webhook.cache, &webhook.config, now)
        .expect("a review with a uid");
    let logs = captured(false, || {
        reporting::report(&webhook, endpoint.as_str(), &reviewed)
    });
    // The same lines as JSON, from a webhook that has said nothing yet.
    let json_webhook = Webhook {
        events: None,
        logs: Default::default(),
        ..webhook
    };
    let json_logs = captured(true, || {
        reporting::report(&json_webhook, endpoint.as_str(), &reviewed)
    });
    let mut events = Vec::new();
    for due in sink.pending().due(Instant::now()) {
        let Some(note) = note_of(&due) else { continue };
        if due.part == crate::events::pending::Part::Decision {
            events.push(on_hpa(&due.report, note.clone()));
        }
        events.push(note);
    }
    Said {
        response: reviewed.response,
        report: reviewed.report,
        events,
        logs,
        json_logs,
    }
}

/// What `f` logs at DEBUG and above, as text without colours or as JSON.
fn captured(json: bool, f: impl FnOnce()) -> String {
    let buffer = Buffer::default();
    let builder = tracing_subscriber::fmt()
        .with_writer(buffer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG);
    if json {
        tracing::subscriber::with_default(builder.json().flatten_event(true).finish(), f);
    } else {
        tracing::subscriber::with_default(builder.finish(), f);
    }
    let bytes = buffer.0.lock().unwrap().clone();
    String::from_utf8(bytes).expect("log lines are UTF-8")
}

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}
