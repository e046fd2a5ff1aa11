//! A governed review with the workload and actor it is about: what the
//! webhook hands to the reporters (Events, metrics, logs). It belongs to
//! neither side, so `webhook` and `events` both depend on it and not on each
//! other.

pub(crate) mod fold;
pub(crate) mod logs;

use crate::{engine::Decision, quoting, workload::WorkloadKind};

/// The most of a username an Event, a log line or a refusal shows: longer
/// than any a cluster issues (a service account's is at most about 330).
const MAX_ACTOR: usize = 400;

/// A username as the governor writes it into what people read: a name
/// from an OIDC claim or a certificate's CN may hold controls or bidi
/// characters, which are escaped (`\u{202e}`) so it cannot hide or
/// reorder the text around it, and bounded.
pub(crate) fn shown_actor(username: &str) -> String {
    quoting::escape(username, MAX_ACTOR)
}

/// A governed review, for Events, metrics and logs.
#[derive(Debug, Clone)]
pub struct Report {
    /// Deployment or StatefulSet.
    pub kind: WorkloadKind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.uid`, when known.
    pub uid: Option<String>,
    /// Who asked, as shown ([`shown_actor`]).
    pub actor: String,
    /// `--dry-run=server`: report nothing outside the response.
    pub dry_run: bool,
    /// The same review answered again (an apiserver retry): already
    /// reported once.
    pub repeat: bool,
    /// What the engine decided; `None` when the review was answered before
    /// a decision (an invalid policy, a refused edit).
    pub decision: Option<Decision>,
    /// Findings about the policy itself (an edit that loosens it, what its
    /// windows do on the days the clock changes), each its own Event.
    pub(crate) notices: Vec<Notice>,
}

/// The Events API limits a note to 1 kB: a notice's message is written to
/// fit, so a cut never falls in the middle of what it lists.
pub(crate) const MAX_NOTE: usize = 1000;

/// `parts` joined with `; `, as many whole ones as fit in `max_bytes` and
/// the rest counted (`; and 3 more`); the first cut on a character boundary
/// when not even it fits.
pub(crate) fn within(parts: &[String], max_bytes: usize) -> String {
    let mut out = String::new();
    for (shown, part) in parts.iter().enumerate() {
        let sep = if shown == 0 { "" } else { "; " };
        let left = parts.len() - shown - 1;
        let more = if left > 0 {
            format!("; and {left} more")
        } else {
            String::new()
        };
        if out.len() + sep.len() + part.len() + more.len() > max_bytes {
            if shown == 0 {
                // Not even the first fits whole: its start, marked.
                let mut end = max_bytes.saturating_sub(more.len() + '…'.len_utf8());
                while !part.is_char_boundary(end) {
                    end -= 1;
                }
                out.push_str(&part[..end]);
                out.push('…');
                out.push_str(&more);
            } else {
                out.push_str(&format!("; and {} more", parts.len() - shown));
            }
            return out;
        }
        out.push_str(sep);
        out.push_str(part);
    }
    out
}

/// A finding about a workload's policy, reported beside (or instead of) a
/// decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    /// What kind of finding.
    pub(crate) kind: NoticeKind,
    /// For the Event and the log line; names the actor and the numbers.
    pub(crate) message: String,
}

/// The kinds of [`Notice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum NoticeKind {
    /// The policy does not parse: refused, or (unchanged) not enforced.
    InvalidPolicy,
    /// An edit loosened the policy, by someone allowed to.
    Loosened,
    /// An edit that would loosen the policy (or pause it too long) was
    /// refused.
    EditRefused,
    /// The recommender's strategy changed (e.g. proportional to velocity).
    StrategyChanged,
    /// A recommendation expired without a new one: only the static policy
    /// holds.
    RecommendationExpired,
    /// A metric source failed; the last recommendation stands until it
    /// expires.
    SourceFailed,
    /// A failing source answers again.
    SourceRecovered,
    /// Windows with a boundary at a local time the clock skips or repeats
    /// on a coming day: what they do then.
    ClockChange,
    /// A written policy has warnings it did not have (an unknown key, a
    /// `state` the loop cannot read).
    PolicyWarning,
    /// With `risk`: the share of time short has stayed above twice the
    /// stated risk for a day.
    RiskMissed,
}

impl From<crate::recommend::plan::NoticeKind> for NoticeKind {
    fn from(kind: crate::recommend::plan::NoticeKind) -> NoticeKind {
        use crate::recommend::plan::NoticeKind as Loop;
        match kind {
            Loop::StrategyChanged => NoticeKind::StrategyChanged,
            Loop::RecommendationExpired => NoticeKind::RecommendationExpired,
            Loop::SourceFailed => NoticeKind::SourceFailed,
            Loop::SourceRecovered => NoticeKind::SourceRecovered,
            Loop::RiskMissed => NoticeKind::RiskMissed,
        }
    }
}

impl NoticeKind {
    /// The Event reason.
    pub(crate) fn event_reason(self) -> &'static str {
        match self {
            NoticeKind::InvalidPolicy => "PolicyInvalid",
            NoticeKind::Loosened => "PolicyLoosened",
            NoticeKind::EditRefused => "PolicyEditRefused",
            NoticeKind::StrategyChanged => "RecommendationStrategyChanged",
            NoticeKind::RecommendationExpired => "RecommendationExpired",
            NoticeKind::SourceFailed => "SourceFailed",
            NoticeKind::SourceRecovered => "SourceRecovered",
            NoticeKind::ClockChange => "WindowsOnClockChange",
            NoticeKind::PolicyWarning => "PolicyWarning",
            NoticeKind::RiskMissed => "RecommendationRiskMissed",
        }
    }

    /// Whether a person should look: a Warning Event rather than Normal.
    pub(crate) fn is_warning(self) -> bool {
        !matches!(
            self,
            NoticeKind::StrategyChanged | NoticeKind::SourceRecovered | NoticeKind::ClockChange
        )
    }

    /// The metric label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NoticeKind::InvalidPolicy => "invalid",
            NoticeKind::Loosened => "loosened",
            NoticeKind::EditRefused => "refused",
            NoticeKind::StrategyChanged => "strategy-changed",
            NoticeKind::RecommendationExpired => "expired",
            NoticeKind::SourceFailed => "source-failed",
            NoticeKind::SourceRecovered => "source-recovered",
            NoticeKind::ClockChange => "clock-change",
            NoticeKind::PolicyWarning => "warning",
            NoticeKind::RiskMissed => "risk-missed",
        }
    }
}

/// A report of `alice` asking `requested` replicas of Deployment shop/web at
/// `current`, decided by a policy of `annotations`.
#[cfg(test)]
pub(crate) fn sample(
    annotations: &[(&str, &str)],
    current: u32,
    requested: u32,
    dry_run: bool,
) -> Report {
    use crate::{
        engine::{Ledger, Request, decide},
        policy::Policy,
    };
    let policy = Policy::from_annotations(annotations.iter().copied()).unwrap();
    let request = Request {
        current,
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
        notices: Vec::new(),
    }
}
