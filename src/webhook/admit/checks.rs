//! The validating webhook's checks of what a write does to the policy:
//! an edit that loosens it, a `recommend` source the governor does not run,
//! and a policy that does not parse.

use super::{
    Answer, Context, Endpoint, Step,
    subject::{Governing, Invalid, Subject},
    warn,
};
use crate::{
    report::{Notice, NoticeKind},
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
            let report = cx.report(subject, governing.uid.clone(), None, Some(notice));
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
            let report = cx.report(subject, governing.uid.clone(), None, Some(notice));
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
    // A workload write is the validating webhook's to refuse; a /scale of a
    // workload with a broken policy is warned about once, by the first.
    let reporter = match cx.req.sub_resource {
        None => Endpoint::Validate,
        Some(_) => Endpoint::Mutate,
    };
    let (response, message) = if cx.endpoint != reporter {
        return Answer::early(AdmissionResponse::allow(cx.uid()));
    } else if invalid.ratchet {
        let message = format!("scale-governor: policy is invalid and not enforced: {error}");
        (warn(cx.uid(), message.clone()), message)
    } else {
        let message = format!("scale-governor: invalid policy: {error}");
        (
            AdmissionResponse::deny(cx.uid(), 422, "Invalid", message.clone()),
            message,
        )
    };
    let notice = Notice {
        kind: NoticeKind::InvalidPolicy,
        message,
    };
    Answer::Reported(Box::new((
        response,
        cx.report(subject, uid, None, Some(notice)),
    )))
}
