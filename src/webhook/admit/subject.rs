//! What a review is about: the object and old object as sent, read only as
//! far as the decision needs, and the policies that govern the request.

use std::{borrow::Cow, collections::BTreeMap, sync::Arc};

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Answer, Step, warn};
use crate::{
    cache::Cache,
    engine::loosenings,
    managed::recommendation_by_governor,
    policy::{PREFIX, Policy, PolicyErrors, keys},
    quoting,
    webhook::review::{AdmissionRequest, optional_str},
    workload::{WorkloadKind, is_governed, policy_of},
};

#[derive(Debug, Default, Deserialize)]
pub(super) struct Object<'a> {
    #[serde(default, borrow)]
    pub metadata: Meta<'a>,
    pub spec: Option<Spec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Meta<'a> {
    #[serde(default, borrow, deserialize_with = "optional_str")]
    pub name: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "optional_str")]
    pub namespace: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "optional_str")]
    pub uid: Option<Cow<'a, str>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
    /// Kept raw: read only when a `recommendation` needs vetting.
    #[serde(default, borrow)]
    pub(crate) managed_fields: Option<&'a RawValue>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Spec {
    pub replicas: Option<i64>,
}

impl Object<'_> {
    /// `spec.replicas` as sent. A Scale's `replicas` is `omitempty`, so a
    /// scale to 0 arrives as `"spec": {}`: absent means 0. A Deployment's or
    /// StatefulSet's absent count was defaulted to 1 before admission, so
    /// absent there only happens in a hand-made review; 1 is what would land.
    pub(super) fn replicas(&self, scale: bool) -> Option<u32> {
        let absent = if scale { 0 } else { 1 };
        let replicas = self.spec.as_ref().and_then(|s| s.replicas);
        u32::try_from(replicas.unwrap_or(absent)).ok()
    }

    pub(super) fn is_governed(&self) -> bool {
        is_governed(self.metadata.labels.as_ref())
    }

    /// The object's own policy, its `recommendation` vetted against who
    /// wrote it. `None` when the object is not governed.
    pub(super) fn policy(&self, now: DateTime<Utc>) -> Option<Result<Policy, PolicyErrors>> {
        if !self.is_governed() {
            return None;
        }
        let mut policy = policy_of(self.metadata.annotations.as_ref());
        if let Ok(policy) = &mut policy
            && policy.recommendation.is_some()
        {
            let entries: Vec<ManagedFieldsEntry> = self
                .metadata
                .managed_fields
                .and_then(|raw| serde_json::from_str(raw.get()).ok())
                .unwrap_or_default();
            if let Some(warning) =
                policy.vet_recommendation(recommendation_by_governor(&entries), now)
            {
                policy.warnings.push(warning);
            }
        }
        Some(policy)
    }

    /// The `scale-governor.io/*` annotations the user writes, for comparing
    /// two versions of an object (the governor's own are left out).
    pub(super) fn policy_annotations(&self) -> Vec<(&str, &str)> {
        self.metadata
            .annotations
            .iter()
            .flatten()
            .filter(|(k, _)| k.starts_with(PREFIX) && *k != keys::HISTORY && *k != keys::STATE)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// The request's objects and the names it is about.
pub(super) struct Subject<'a> {
    pub object: Object<'a>,
    pub old: Option<Object<'a>>,
    pub namespace: Cow<'a, str>,
    pub name: Cow<'a, str>,
}

/// Reads `object` and `oldObject`. No object (a DELETE sent by mistake) is
/// ungoverned; an unreadable one is allowed with a warning.
pub(super) fn read_subject<'a>(req: &AdmissionRequest<'a>) -> Step<Subject<'a>> {
    let unreadable = |what: &str, e: serde_json::Error| {
        Answer::early(warn(
            &req.uid,
            format!(
                "scale-governor could not read the {what} ({}); the change is not governed",
                quoting::foreign(&e.to_string())
            ),
        ))
    };
    let Some(raw) = req.object else {
        return Err(Answer::Ungoverned);
    };
    let object: Object<'a> =
        serde_json::from_str(raw.get()).map_err(|e| unreadable("object", e))?;
    let old = match req.old_object {
        Some(raw) => Some(serde_json::from_str(raw.get()).map_err(|e| unreadable("oldObject", e))?),
        None => None,
    };
    let namespace = req
        .namespace
        .clone()
        .or_else(|| object.metadata.namespace.clone())
        .unwrap_or_default();
    let name = req
        .name
        .clone()
        .or_else(|| object.metadata.name.clone())
        .unwrap_or_default();
    Ok(Subject {
        object,
        old,
        namespace,
        name,
    })
}

/// The policies that govern one request.
pub(super) struct Governing {
    /// The policy stored before this request: the cache's for a `/scale`,
    /// the old object's for an UPDATE. It governs this request even when
    /// the request edits it.
    pub stored: Option<Arc<Policy>>,
    /// The policy the request writes (CREATE, UPDATE); `None` when the
    /// object is not (or no longer) governed.
    pub new: Option<Arc<Policy>>,
    /// The workload's `metadata.uid`, for Events.
    pub uid: Option<String>,
    /// The request changes the stored policy: writes another one, or
    /// removes the governed label (a `/scale` never does).
    pub edits: bool,
}

impl Governing {
    /// Whether the request loosens the stored policy: its new policy (or
    /// the governed label removed) allows something the stored one did not.
    /// The new policy then governs only from the next request on.
    pub(super) fn loosens(&self, now: DateTime<Utc>) -> bool {
        match &self.stored {
            Some(stored) if self.edits => !loosenings(stored, self.new.as_deref(), now).is_empty(),
            _ => false,
        }
    }
}

/// A policy that does not parse, found on the object being written.
pub(super) struct Invalid {
    pub error: PolicyErrors,
    /// The update keeps the same broken policy on a workload that was
    /// already governed: allowed (with a warning), so it cannot block
    /// unrelated changes.
    pub(crate) ratchet: bool,
}

/// The policies governing the request, or an invalid one found on it.
/// `Err(Answer::Ungoverned)` when nothing governs it.
pub(super) fn governing(
    kind: WorkloadKind,
    req: &AdmissionRequest<'_>,
    subject: &Subject<'_>,
    key: &str,
    cache: &Cache,
    now: DateTime<Utc>,
) -> Step<Result<Governing, Invalid>> {
    if req.sub_resource.is_some() {
        // A Scale carries no labels or annotations: its parent's policy is
        // the watch's copy.
        let Some(entry) = cache.get(kind, key) else {
            return Err(Answer::Ungoverned);
        };
        let observed = entry.observed();
        return Ok(match &observed.policy {
            Ok(policy) => Ok(Governing {
                stored: Some(Arc::clone(policy)),
                new: None,
                uid: observed.uid.clone(),
                edits: false,
            }),
            Err(e) => Err(Invalid {
                error: e.clone(),
                ratchet: true,
            }),
        });
    }
    let old = subject.old.as_ref();
    let was_governed = old.is_some_and(Object::is_governed);
    // A stored policy that does not parse was never enforced: it does not
    // govern the edit either.
    let stored = old
        .and_then(|o| o.policy(now))
        .and_then(Result::ok)
        .map(Arc::new);
    let new = match subject.object.policy(now) {
        None => None,
        Some(Ok(policy)) => Some(Arc::new(policy)),
        Some(Err(error)) => {
            let unchanged =
                old.is_some_and(|o| o.policy_annotations() == subject.object.policy_annotations());
            return Ok(Err(Invalid {
                error,
                ratchet: was_governed && unchanged,
            }));
        }
    };
    if stored.is_none() && new.is_none() {
        return Err(Answer::Ungoverned);
    }
    Ok(Ok(Governing {
        edits: stored.is_some() && stored != new,
        stored,
        new,
        uid: subject.object.metadata.uid.as_deref().map(str::to_owned),
    }))
}
