//! One AdmissionReview in, one AdmissionResponse out. No I/O: the policy of a
//! `/scale` request comes from the in-memory cache, the decision from the
//! engine, and what should be reported (Event, metric, log) is returned to
//! the caller.

use std::{collections::BTreeMap, sync::Arc};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use json_patch::{AddOperation, Patch, PatchOperation, jsonptr::PointerBuf};
use serde::Deserialize;

use super::review::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use crate::{
    cache::{self, Cache},
    engine::{self, Decision, Ledger, Outcome, Request},
    policy::{Mode, PREFIX, Policy},
    workload::{WorkloadKind, is_governed, policy_of},
};

/// Which webhook the apiserver called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/mutate`: clamps in `enforce` mode, warns in `audit` mode.
    Mutate,
    /// `/validate`: refuses in `deny` mode; rejects unparseable policies.
    Validate,
}

impl Endpoint {
    /// Whether this endpoint applies a policy of `mode`; every mode has
    /// exactly one, so a change is never decided (and counted) twice.
    fn handles(self, mode: Mode) -> bool {
        matches!(
            (self, mode),
            (Endpoint::Mutate, Mode::Enforce | Mode::Audit) | (Endpoint::Validate, Mode::Deny)
        )
    }
}

/// A review that cannot be answered: no uid to echo.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BadReview {
    /// The body is not an AdmissionReview.
    #[error("body is not an admission.k8s.io/v1 AdmissionReview: {0}")]
    Malformed(String),
    /// The review carries no request or no uid.
    #[error("AdmissionReview has no request.uid")]
    NoUid,
}

/// A governed decision, for Events, metrics and logs.
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
    /// Who asked.
    pub actor: String,
    /// `--dry-run=server`: report nothing outside the response.
    pub dry_run: bool,
    /// What the engine decided.
    pub decision: Decision,
}

/// The answer plus what to report about it.
#[derive(Debug)]
pub struct Reviewed {
    /// Goes back to the apiserver.
    pub response: AdmissionResponse,
    /// Metric label: `deployments`, `statefulsets`, or `other`.
    pub resource: &'static str,
    /// Metric label: CREATE, UPDATE, SCALE, or `other`.
    pub operation: &'static str,
    /// Set for governed decisions.
    pub report: Option<Report>,
}

#[derive(Debug, Default, Deserialize)]
struct Object {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: Spec,
}

#[derive(Debug, Default, Deserialize)]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
struct Spec {
    replicas: Option<i64>,
}

impl Object {
    fn replicas(&self) -> Option<u32> {
        // The apiserver defaults spec.replicas to 1 before admission.
        u32::try_from(self.spec.replicas.unwrap_or(1)).ok()
    }
}

/// Answers one review body.
pub fn review(
    endpoint: Endpoint,
    body: &[u8],
    cache: &Cache,
    now: DateTime<Utc>,
) -> Result<Reviewed, BadReview> {
    let review: AdmissionReview<'_> =
        serde_json::from_slice(body).map_err(|e| BadReview::Malformed(e.to_string()))?;
    let req = review.request.ok_or(BadReview::NoUid)?;
    if req.uid.is_empty() {
        return Err(BadReview::NoUid);
    }
    let kind = (req.resource.group == "apps")
        .then(|| WorkloadKind::from_resource(&req.resource.resource))
        .flatten();
    let mut reviewed = Reviewed {
        response: AdmissionResponse::allow(&req.uid),
        resource: kind.map_or("other", |k| match k {
            WorkloadKind::Deployment => "deployments",
            WorkloadKind::StatefulSet => "statefulsets",
        }),
        operation: match (req.operation.as_str(), req.sub_resource.as_deref()) {
            ("UPDATE", Some("scale")) => "SCALE",
            ("CREATE", None) => "CREATE",
            ("UPDATE", None) => "UPDATE",
            _ => "other",
        },
        report: None,
    };
    let Some(kind) = kind else {
        reviewed.response.warnings.push(format!(
            "scale-governor governs only apps/v1 deployments and statefulsets, not {}/{}; check the webhook configuration's rules",
            req.resource.group, req.resource.resource
        ));
        return Ok(reviewed);
    };
    if reviewed.operation == "other" {
        return Ok(reviewed);
    }
    let response = match governed(endpoint, kind, &req, cache, now) {
        Ok(Some((response, report))) => {
            reviewed.report = Some(report);
            response
        }
        Ok(None) => reviewed.response,
        Err(response) => *response,
    };
    reviewed.response = response;
    Ok(reviewed)
}

/// The early answer is boxed: it is the rare path, and keeps the Result small.
type Answer = Result<Option<(AdmissionResponse, Report)>, Box<AdmissionResponse>>;

/// `Ok(None)`: not governed, allow. `Err`: an early answer without a decision.
fn governed(
    endpoint: Endpoint,
    kind: WorkloadKind,
    req: &AdmissionRequest<'_>,
    cache: &Cache,
    now: DateTime<Utc>,
) -> Answer {
    let uid = req.uid.as_str();
    let unreadable = |what: &str, e: serde_json::Error| {
        let mut r = AdmissionResponse::allow(uid);
        r.warnings.push(format!(
            "scale-governor could not read the {what} ({e}); the change is not governed"
        ));
        r
    };
    let object: Object = match req.object {
        Some(raw) => serde_json::from_str(raw.get()).map_err(|e| unreadable("object", e))?,
        None => return Ok(None),
    };
    let old: Option<Object> = match req.old_object {
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
    let key = cache::key(&namespace, &name);
    let is_scale = req.sub_resource.is_some();

    let (policy, uid_of_object) = if is_scale {
        // The Scale object has no labels or annotations: read the parent.
        let Some(entry) = cache.get(kind, &key) else {
            return Ok(None);
        };
        let observed = entry.observed();
        match &observed.policy {
            Ok(policy) => (Arc::clone(policy), observed.uid.clone()),
            Err(e) => {
                let warning = format!("scale-governor: policy is invalid and not enforced: {e}");
                return Err(Box::new(warn(uid, warning)));
            }
        }
    } else {
        if !is_governed(object.metadata.labels.as_ref()) {
            return Ok(None);
        }
        match policy_of(object.metadata.annotations.as_ref()) {
            Ok(policy) => (Arc::new(policy), object.metadata.uid.clone()),
            Err(e) => {
                let response = invalid_policy(endpoint, uid, &e.to_string(), &object, old.as_ref());
                return Err(Box::new(response));
            }
        }
    };
    if !endpoint.handles(policy.mode) {
        return Ok(None);
    }
    let (Some(requested), Some(current)) = (
        object.replicas(),
        old.as_ref().map_or(object.replicas(), Object::replicas),
    ) else {
        // A negative count: apiserver validation will refuse it with a better message.
        return Ok(None);
    };
    let actor = req.user_info.username.as_deref().unwrap_or("unknown");
    let dry_run = req.dry_run.unwrap_or(false);
    let request = Request {
        current,
        requested,
        actor,
    };
    let decision = if name.is_empty() {
        // generateName CREATE: no key yet, and nothing to spend a budget on.
        engine::decide(&policy, &Ledger::new(), request, now)
    } else {
        cache
            .get_or_insert(kind, &key, &policy, current)
            .decide(&policy, request, uid, dry_run, now)
    };
    let mut response = respond(uid, &decision, &policy);
    if decision.outcome == Outcome::Denied && requested == current && req.operation == "UPDATE" {
        // The update does not touch replicas; refusing it would block unrelated
        // changes (a rollout) just because the workload is out of bounds.
        response = AdmissionResponse::allow(uid);
        response.warnings.push(format!(
            "scale-governor: replicas {current} are outside the policy ({}); allowed because this update does not change them",
            decision.summary()
        ));
    }
    let report = Report {
        kind,
        namespace,
        name,
        uid: uid_of_object,
        actor: actor.to_owned(),
        dry_run,
        decision,
    };
    Ok(Some((response, report)))
}

fn warn(uid: &str, warning: String) -> AdmissionResponse {
    let mut r = AdmissionResponse::allow(uid);
    r.warnings.push(warning);
    r
}

/// An unparseable policy is refused by the validating webhook, unless the
/// update leaves the policy annotations exactly as they were (ratcheting):
/// a policy that was already broken must not block unrelated changes.
fn invalid_policy(
    endpoint: Endpoint,
    uid: &str,
    error: &str,
    object: &Object,
    old: Option<&Object>,
) -> AdmissionResponse {
    let governed_annotations = |o: &Object| -> Vec<(String, String)> {
        o.metadata
            .annotations
            .iter()
            .flatten()
            .filter(|(k, _)| k.starts_with(PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    if endpoint == Endpoint::Mutate {
        // The validating webhook owns policy errors; one message is enough.
        return AdmissionResponse::allow(uid);
    }
    let unchanged =
        old.is_some_and(|old| governed_annotations(old) == governed_annotations(object));
    if !unchanged {
        return AdmissionResponse::deny(
            uid,
            422,
            "Invalid",
            format!("scale-governor: invalid policy: {error}"),
        );
    }
    warn(
        uid,
        format!("scale-governor: policy is invalid and not enforced: {error}"),
    )
}

fn respond(uid: &str, decision: &Decision, policy: &Policy) -> AdmissionResponse {
    let mut response = match decision.outcome {
        Outcome::Denied => AdmissionResponse::deny(
            uid,
            403,
            "Forbidden",
            format!("scale-governor: {}", decision.summary()),
        ),
        _ => AdmissionResponse::allow(uid),
    };
    let prefix = match decision.outcome {
        Outcome::Audited => "scale-governor (audit only): ",
        _ => "scale-governor: ",
    };
    if decision.outcome == Outcome::Clamped {
        let patch = Patch(vec![PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(["spec", "replicas"]),
            value: decision.replicas.into(),
        })]);
        let bytes = serde_json::to_vec(&patch).unwrap_or_default();
        response.patch = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
        response.patch_type = Some("JSONPatch".to_owned());
    }
    if decision.outcome != Outcome::Denied {
        response.warnings.extend(
            decision
                .reasons
                .iter()
                .map(|r| format!("{prefix}{}", r.message)),
        );
    }
    response.warnings.extend(
        decision
            .warnings
            .iter()
            .chain(&policy.warnings)
            .map(|w| format!("scale-governor: {w}")),
    );
    if !decision.reasons.is_empty() {
        response.audit_annotations.insert(
            "decision".to_owned(),
            format!("{}: {}", decision.outcome.as_str(), decision.summary()),
        );
    }
    response
}

#[cfg(test)]
#[path = "admit_tests.rs"]
mod tests;
