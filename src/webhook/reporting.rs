//! Metrics, a log line and an Event for each answered review. The log
//! fields go on the event itself rather than a per-review span: a span costs
//! more than the decision, and most reviews log nothing. Distinct decisions
//! are logged at INFO, repeats at DEBUG and counted (`report::logs`).

use std::time::Instant;

use super::{Webhook, admit::Reviewed};
use crate::{
    engine::Decision,
    metrics::{EditLabels, ReviewLabels},
    report::{
        Notice, NoticeKind, Report,
        fold::{key, signature},
        logs::{LogGate, Verdict},
    },
};

/// The `outcome` and `rule` labels of a review. Dry runs and repeats (the
/// apiserver sending the same review again) get labels of their own, so the
/// decision counts are of decisions that were made and can land.
fn labels(report: Option<&Report>) -> (&'static str, &'static str) {
    let Some(report) = report else {
        return ("ungoverned", "none");
    };
    if report.dry_run {
        return ("dry-run", "none");
    }
    if report.repeat {
        return ("repeat", "none");
    }
    match (&report.decision, report.notices.first()) {
        (Some(d), _) => (
            d.outcome.as_str(),
            d.reasons.last().map_or("none", |r| r.rule.as_str()),
        ),
        (None, Some(n)) => (
            match n.kind {
                NoticeKind::InvalidPolicy => "invalid-policy",
                NoticeKind::EditRefused => "edit-refused",
                NoticeKind::Loosened => "policy-loosened",
                NoticeKind::ClockChange => "clock-change",
                NoticeKind::PolicyWarning => "policy-warning",
                _ => "notice",
            },
            "none",
        ),
        (None, None) => ("ungoverned", "none"),
    }
}

pub(super) fn report(webhook: &Webhook, endpoint: &'static str, reviewed: &Reviewed) {
    let (outcome, rule) = labels(reviewed.report.as_ref());
    webhook
        .metrics
        .admission
        .reviews
        .get_or_create(&ReviewLabels {
            endpoint,
            kind: reviewed.resource.as_str(),
            operation: reviewed.operation.as_str(),
            outcome,
            rule,
        })
        .inc();
    let Some(report) = &reviewed.report else {
        return;
    };
    let uid = &reviewed.response.uid;
    let now = Instant::now();
    for notice in &report.notices {
        log_notice(webhook, endpoint, uid, report, notice, now);
    }
    if let Some(decision) = &report.decision {
        log_decision(webhook, (endpoint, outcome), uid, report, decision, now);
    }
    if let Some(events) = &webhook.events {
        events.emit(report);
    }
}

/// A policy notice: counted (not for dry runs or repeats), and logged at
/// INFO unless the log gate folds it into a later line.
fn log_notice(
    webhook: &Webhook,
    endpoint: &'static str,
    uid: &str,
    report: &Report,
    notice: &Notice,
    now: Instant,
) {
    if !report.dry_run && !report.repeat {
        webhook
            .metrics
            .admission
            .policy_edits
            .get_or_create(&EditLabels {
                kind: notice.kind.as_str(),
            })
            .inc();
    }
    let sig = key(&[notice.message.as_bytes(), &[u8::from(report.dry_run)]]);
    let reason = notice.kind.event_reason();
    match webhook
        .logs
        .check(report, reason, sig, now, || notice.message.clone())
    {
        Verdict::Say { folded } => tracing::info!(
            endpoint,
            %uid,
            ns = %report.namespace,
            workload = %report.name,
            notice = reason,
            actor = %report.actor,
            dry_run = report.dry_run,
            repeats = folded,
            "{}",
            notice.message
        ),
        Verdict::Fold => tracing::debug!(
            %uid,
            ns = %report.namespace,
            workload = %report.name,
            notice = reason,
            "repeat: {}",
            notice.message
        ),
    }
}

/// A decision: a DEBUG line when nothing changed, otherwise INFO with the
/// rule and the numbers unless the log gate folds it into a later line.
fn log_decision(
    webhook: &Webhook,
    (endpoint, outcome): (&'static str, &'static str),
    uid: &str,
    report: &Report,
    d: &Decision,
    now: Instant,
) {
    if d.reasons.is_empty() && d.warnings.is_empty() {
        tracing::debug!(
            %uid,
            ns = %report.namespace,
            workload = %report.name,
            actor = %report.actor,
            current = d.current,
            requested = d.requested,
            "unchanged"
        );
    } else {
        let rule = d.reasons.last().map_or("none", |r| r.rule.as_str());
        let sig = signature(&[
            d.outcome as u64,
            u64::from(d.current),
            u64::from(d.requested),
            u64::from(d.replicas),
            u64::from(report.dry_run),
            d.warnings.len() as u64,
        ]);
        match webhook.logs.check(report, rule, sig, now, || d.summary()) {
            Verdict::Say { folded } => tracing::info!(
                endpoint,
                %uid,
                ns = %report.namespace,
                workload = %report.name,
                decision = outcome,
                rule,
                actor = %report.actor,
                kind = report.kind.as_str(),
                current = d.current,
                requested = d.requested,
                replicas = d.replicas,
                dry_run = report.dry_run,
                repeats = folded,
                reasons = %d.summary(),
                warnings = ?d.warnings,
                "{outcome}"
            ),
            Verdict::Fold => tracing::debug!(
                %uid,
                ns = %report.namespace,
                workload = %report.name,
                decision = outcome,
                rule,
                actor = %report.actor,
                current = d.current,
                requested = d.requested,
                replicas = d.replicas,
                "repeat"
            ),
        }
    }
}

/// Logs the repeats [`LogGate::sweep`] finds waiting for a line: a storm
/// that stopped, or a rule that kept repeating for a whole interval.
pub(crate) fn log_summaries(gate: &LogGate) {
    for s in gate.sweep(Instant::now()) {
        tracing::info!(
            workload = %s.workload,
            rule = s.rule,
            repeats = s.repeats,
            seconds = s.seconds,
            "repeated {} times in {} s: {}",
            s.repeats,
            s.seconds,
            s.last
        );
    }
}

#[cfg(test)]
mod tests {
    use super::labels;
    use crate::{policy::keys, report::sample};

    #[test]
    fn a_deny_mode_step_is_counted_under_its_own_outcome_and_rule() {
        let annotations = [(keys::MODE, "deny"), (keys::MIN_REPLICAS, "2")];
        let step = sample(&annotations, 0, 1, false);
        assert_eq!(labels(Some(&step)), ("stepped", "min-replicas"));
        let refused = sample(&annotations, 2, 1, false);
        assert_eq!(labels(Some(&refused)), ("denied", "min-replicas"));
        let dry = sample(&annotations, 0, 1, true);
        assert_eq!(labels(Some(&dry)), ("dry-run", "none"));
    }
}
