//! Metrics, a log line and an Event for each answered review. The log
//! fields go on the event itself rather than a per-review span: a span costs
//! more than the decision, and most reviews log nothing.

use super::{Webhook, admit::Reviewed};
use crate::{
    metrics::{EditLabels, ReviewLabels},
    report::{NoticeKind, Report},
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
    match (&report.decision, &report.notice) {
        (Some(d), _) => (
            d.outcome.as_str(),
            d.reasons.last().map_or("none", |r| r.rule.as_str()),
        ),
        (None, Some(n)) => (
            match n.kind {
                NoticeKind::InvalidPolicy => "invalid-policy",
                NoticeKind::EditRefused => "edit-refused",
                NoticeKind::Loosened => "policy-loosened",
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
    if let Some(notice) = &report.notice {
        if !report.dry_run && !report.repeat {
            webhook
                .metrics
                .policy_edits
                .get_or_create(&EditLabels {
                    kind: notice.kind.as_str(),
                })
                .inc();
        }
        tracing::info!(
            endpoint,
            %uid,
            ns = %report.namespace,
            workload = %report.name,
            notice = notice.kind.event_reason(),
            actor = %report.actor,
            dry_run = report.dry_run,
            "{}",
            notice.message
        );
    }
    if let Some(d) = &report.decision {
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
            tracing::info!(
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
                reasons = %d.summary(),
                warnings = ?d.warnings,
                "{outcome}"
            );
        }
    }
    if let Some(events) = &webhook.events {
        events.emit(report);
    }
}
