//! The validating webhook's checks of what a write does to the policy:
//! an edit that loosens it, a `recommend` source the governor does not run,
//! a policy that does not parse, and what a written policy is worth a word
//! about (its windows on the days the clock changes, new warnings).

use super::{
    Answer, Context, Endpoint, Step,
    subject::{Governing, Invalid, Subject},
    warn,
};
use crate::{
    policy::MAX_REPORTED_ERRORS,
    report::{MAX_NOTE, Notice, NoticeKind, within},
    webhook::{
        guard::{EditCheck, check_edit, check_recommend},
        review::AdmissionResponse,
    },
};

/// The validating webhook checks every policy edit (see [`super::guard`]):
/// a refused one ends the review; a loosening one is reported.
pub(super) fn check_policy_edit(
    cx: &Context<'_, '_>,
    subject: &Subject<'_>,
    governing: &Governing,
) -> Step<Option<Notice>> {
    if cx.endpoint != Endpoint::Validate || cx.req.sub_resource.is_some() {
        return Ok(None);
    }
    let edited = match (&governing.stored, &governing.new) {
        (Some(stored), Some(new)) => stored != new,
        _ => true,
    };
    if !edited {
        return Ok(None);
    }
    let check = check_edit(
        cx.config,
        governing.stored.as_deref(),
        governing.new.as_deref(),
        &cx.req.user_info,
        cx.now,
    );
    match check {
        EditCheck::Fine => Ok(None),
        EditCheck::Loosened(message) => Ok(Some(Notice {
            kind: NoticeKind::Loosened,
            message,
        })),
        EditCheck::Refused(message) => {
            let response = AdmissionResponse::deny(cx.uid(), 403, "Forbidden", message.clone());
            let notice = Notice {
                kind: NoticeKind::EditRefused,
                message,
            };
            let report = cx.report(subject, governing.uid.clone(), None, vec![notice]);
            Err(Answer::Reported(Box::new((response, report))))
        }
    }
}

/// The validating webhook checks a `recommend` annotation that is new or
/// changed against the sources the governor runs (one that stays as it was
/// is not re-checked, so removing a source never blocks unrelated updates).
/// A refusal ends the review; warnings come back for the response.
pub(super) fn check_recommend_source(
    cx: &Context<'_, '_>,
    subject: &Subject<'_>,
    governing: &Governing,
) -> Step<Vec<String>> {
    let Some(new) = &governing.new else {
        return Ok(Vec::new());
    };
    let unchanged = governing
        .stored
        .as_ref()
        .is_some_and(|stored| stored.recommend == new.recommend);
    if cx.endpoint != Endpoint::Validate || unchanged {
        return Ok(Vec::new());
    }
    match check_recommend(cx.config, new, cx.kind, &subject.namespace, &subject.name) {
        Ok(warnings) => Ok(warnings),
        Err(refused) => {
            let message = refused.to_string();
            let response = AdmissionResponse::deny(cx.uid(), 422, "Invalid", message.clone());
            let notice = Notice {
                kind: NoticeKind::InvalidPolicy,
                message,
            };
            let report = cx.report(subject, governing.uid.clone(), None, vec![notice]);
            Err(Answer::Reported(Box::new((response, report))))
        }
    }
}

/// A policy that does not parse is refused by the validating webhook,
/// unless the update keeps the same broken policy on a workload that was
/// already governed (ratcheting): a policy that was already broken must not
/// block unrelated changes. Adding the governed label to a broken policy is
/// refused like writing one. The mutating webhook stays silent: one message
/// is enough. Either way the finding is reported.
pub(super) fn invalid_policy(
    cx: &Context<'_, '_>,
    subject: &Subject<'_>,
    invalid: Invalid,
) -> Answer {
    let uid = subject.object.metadata.uid.as_deref().map(str::to_owned);
    let error = invalid.error.to_string();
    let errors = &invalid.error;
    // A workload write is the validating webhook's to refuse; a /scale of a
    // workload with a broken policy is warned about once, by the first.
    let reporter = match cx.req.sub_resource {
        None => Endpoint::Validate,
        Some(_) => Endpoint::Mutate,
    };
    // The response names every error kept; the Event (and its log line)
    // as many whole ones as fit in a note, and counts the rest.
    let (response, prefix) = if cx.endpoint != reporter {
        return Answer::early(AdmissionResponse::allow(cx.uid()));
    } else if invalid.ratchet {
        let prefix = "scale-governor: policy is invalid and not enforced: ";
        (warn(cx.uid(), format!("{prefix}{error}")), prefix)
    } else {
        let prefix = "scale-governor: invalid policy: ";
        let message = format!("{prefix}{error}");
        (
            AdmissionResponse::deny(cx.uid(), 422, "Invalid", message),
            prefix,
        )
    };
    let notice = Notice {
        kind: NoticeKind::InvalidPolicy,
        message: format!("{prefix}{}", errors.summary(MAX_NOTE - prefix.len())),
    };
    Answer::Reported(Box::new((
        response,
        cx.report(subject, uid, None, vec![notice]),
    )))
}

/// What a policy's windows do on the coming year's days the clock skips or
/// repeats one of their boundaries, said when the windows are written (new
/// or changed, so an unrelated update says nothing): a warning each, up to
/// the bound, and one notice. The validating webhook says it, as it does
/// the other findings about a written policy.
pub(super) fn check_clock_changes(
    cx: &Context<'_, '_>,
    governing: &Governing,
) -> Option<(Vec<String>, Notice)> {
    let new = governing.new.as_ref()?;
    let unchanged = governing
        .stored
        .as_ref()
        .is_some_and(|stored| stored.windows == new.windows);
    if cx.endpoint != Endpoint::Validate || cx.req.sub_resource.is_some() || unchanged {
        return None;
    }
    let notes = new.windows.dst_notes(cx.now);
    if notes.is_empty() {
        return None;
    }
    let mut warnings: Vec<String> = notes
        .iter()
        .take(MAX_REPORTED_ERRORS)
        .map(|note| format!("scale-governor: {note}"))
        .collect();
    if notes.len() > MAX_REPORTED_ERRORS {
        warnings.push(format!(
            "scale-governor: and {} more such days; scale-governor explain lists them",
            notes.len() - MAX_REPORTED_ERRORS
        ));
    }
    let notice = Notice {
        kind: NoticeKind::ClockChange,
        message: within(&notes, MAX_NOTE),
    };
    Some((warnings, notice))
}

/// The warnings a written policy has that the stored one did not (an
/// unknown key, a `state` the recommender loop cannot read), as a notice:
/// the response already carries them with the decision, and the notice
/// puts them in an Event and a log line. Said once, by the validating
/// webhook, and only when they are new, so an unrelated update says nothing.
pub(super) fn check_policy_warnings(cx: &Context<'_, '_>, governing: &Governing) -> Option<Notice> {
    let new = governing.new.as_ref()?;
    if cx.endpoint != Endpoint::Validate || cx.req.sub_resource.is_some() {
        return None;
    }
    let old: &[String] = governing.stored.as_ref().map_or(&[], |p| &p.warnings);
    let fresh: Vec<String> = new
        .warnings
        .iter()
        .filter(|w| !old.contains(w))
        .cloned()
        .collect();
    (!fresh.is_empty()).then(|| Notice {
        kind: NoticeKind::PolicyWarning,
        message: within(&fresh, MAX_NOTE),
    })
}
