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
pub use crate::report::Report;
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
    /// `mutate` or `validate`, the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Mutate => "mutate",
            Endpoint::Validate => "validate",
        }
    }

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

/// The resource a review is about, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// A governed kind.
    Workload(WorkloadKind),
    /// Anything else the webhook configuration sent by mistake.
    Other,
}

impl Resource {
    /// `deployments`, `statefulsets` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Workload(kind) => kind.resource(),
            Resource::Other => "other",
        }
    }
}

/// What the request does, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// CREATE of the workload itself.
    Create,
    /// UPDATE (PUT or PATCH) of the workload itself.
    Update,
    /// UPDATE of its `/scale` subresource.
    Scale,
    /// DELETE, CONNECT, or another subresource: never governed.
    Other,
}

impl Operation {
    fn of(operation: &str, sub_resource: Option<&str>) -> Operation {
        match (operation, sub_resource) {
            ("UPDATE", Some("scale")) => Operation::Scale,
            ("CREATE", None) => Operation::Create,
            ("UPDATE", None) => Operation::Update,
            _ => Operation::Other,
        }
    }

    /// `CREATE`, `UPDATE`, `SCALE` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Scale => "SCALE",
            Operation::Other => "other",
        }
    }
}

/// The answer plus what to report about it.
#[derive(Debug)]
pub struct Reviewed {
    /// Goes back to the apiserver.
    pub response: AdmissionResponse,
    /// Metric label.
    pub resource: Resource,
    /// Metric label.
    pub operation: Operation,
    /// Set for governed decisions.
    pub report: Option<Report>,
}

#[derive(Debug, Default, Deserialize)]
struct Object {
    #[serde(default)]
    metadata: Meta,
    spec: Option<Spec>,
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
    /// `spec.replicas` as sent. A Scale's `replicas` is `omitempty`, so a
    /// scale to 0 arrives as `"spec": {}`: absent means 0. A Deployment's or
    /// StatefulSet's absent count was defaulted to 1 before admission, so
    /// absent there only happens in a hand-made review; 1 is what would land.
    fn replicas(&self, scale: bool) -> Option<u32> {
        let absent = if scale { 0 } else { 1 };
        let replicas = self.spec.as_ref().and_then(|s| s.replicas);
        u32::try_from(replicas.unwrap_or(absent)).ok()
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
    let operation = Operation::of(&req.operation, req.sub_resource.as_deref());
    let mut reviewed = Reviewed {
        response: AdmissionResponse::allow(&req.uid),
        resource: kind.map_or(Resource::Other, Resource::Workload),
        operation,
        report: None,
    };
    let Some(kind) = kind else {
        reviewed.response.warnings.push(format!(
            "scale-governor governs only apps/v1 deployments and statefulsets, not {}/{}; check the webhook configuration's rules",
            req.resource.group, req.resource.resource
        ));
        return Ok(reviewed);
    };
    if operation == Operation::Other {
        return Ok(reviewed);
    }
    match governed(endpoint, kind, &req, cache, now) {
        Answer::Ungoverned => {}
        Answer::Early(response) => reviewed.response = *response,
        Answer::Decided(decided) => {
            let (response, report) = *decided;
            reviewed.response = response;
            reviewed.report = Some(report);
        }
    }
    Ok(reviewed)
}

/// How a workload review ends.
enum Answer {
    /// Not governed here (no label, another endpoint's mode, no count to
    /// decide on): allow, decide nothing.
    Ungoverned,
    /// Answered without a decision: an unreadable object or a policy error.
    Early(Box<AdmissionResponse>),
    /// The engine decided.
    Decided(Box<(AdmissionResponse, Report)>),
}

/// The request's objects and the names it is about.
struct Subject {
    object: Object,
    old: Option<Object>,
    namespace: String,
    name: String,
}

impl Answer {
    fn early(response: AdmissionResponse) -> Answer {
        Answer::Early(Box::new(response))
    }
}

/// Each step either yields what the next one needs or is the review's final
/// [`Answer`] (`Err`), so the happy path reads top to bottom.
type Step<T> = Result<T, Answer>;

fn governed(
    endpoint: Endpoint,
    kind: WorkloadKind,
    req: &AdmissionRequest<'_>,
    cache: &Cache,
    now: DateTime<Utc>,
) -> Answer {
    match decide_governed(endpoint, kind, req, cache, now) {
        Ok(answer) | Err(answer) => answer,
    }
}

fn decide_governed(
    endpoint: Endpoint,
    kind: WorkloadKind,
    req: &AdmissionRequest<'_>,
    cache: &Cache,
    now: DateTime<Utc>,
) -> Step<Answer> {
    let uid = req.uid.as_str();
    let subject = read_subject(req)?;
    let key = cache::key(&subject.namespace, &subject.name);
    let (policy, object_uid) = policy_for(endpoint, kind, req, &subject, &key, cache)?;
    if !endpoint.handles(policy.mode) {
        return Err(Answer::Ungoverned);
    }
    let object = &subject.object;
    let is_scale = req.sub_resource.is_some();
    let (Some(requested), Some(current)) = (
        object.replicas(is_scale),
        subject
            .old
            .as_ref()
            .map_or(object.replicas(is_scale), |old| old.replicas(is_scale)),
    ) else {
        // A negative count: apiserver validation will refuse it with a better message.
        return Err(Answer::Ungoverned);
    };
    let actor = req.user_info.username.as_deref().unwrap_or("unknown");
    let dry_run = req.dry_run.unwrap_or(false);
    let request = Request {
        current,
        requested,
        actor,
    };
    let decision = if req.operation == "CREATE" {
        // A new object has no history and its first count spends no budget,
        // so a CREATE is decided against an empty ledger and records
        // nothing. It never touches an existing entry: that one belongs to
        // the stored object, and this create may yet fail (AlreadyExists).
        // A not-yet-stored entry lets a /scale right after it be governed;
        // the sweep removes it if the apiserver refuses the create.
        if !dry_run && !subject.name.is_empty() {
            cache.get_or_insert(kind, &key, &policy, current, now);
        }
        engine::decide(&policy, &Ledger::new(), request, now)
    } else {
        cache
            .get_or_insert(kind, &key, &policy, current, now)
            .decide(&policy, request, uid, dry_run, now)
    };
    let mut response = respond(uid, &decision, &policy, object.spec.is_some());
    if decision.outcome == Outcome::Denied && requested == current && req.operation == "UPDATE" {
        // The update does not touch replicas; refusing it would block unrelated
        // changes (a rollout) just because the workload is out of bounds.
        response = warn(
            uid,
            format!(
                "scale-governor: replicas {current} are outside the policy ({}); allowed because this update does not change them",
                decision.summary()
            ),
        );
    }
    let report = Report {
        kind,
        namespace: subject.namespace,
        name: subject.name,
        uid: object_uid,
        actor: actor.to_owned(),
        dry_run,
        decision,
    };
    Ok(Answer::Decided(Box::new((response, report))))
}

/// Reads `object` and `oldObject`. No object (a DELETE sent by mistake) is
/// ungoverned; an unreadable one is allowed with a warning.
fn read_subject(req: &AdmissionRequest<'_>) -> Step<Subject> {
    let unreadable = |what: &str, e: serde_json::Error| {
        Answer::early(warn(
            &req.uid,
            format!("scale-governor could not read the {what} ({e}); the change is not governed"),
        ))
    };
    let Some(raw) = req.object else {
        return Err(Answer::Ungoverned);
    };
    let object: Object = serde_json::from_str(raw.get()).map_err(|e| unreadable("object", e))?;
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

type Found = (Arc<Policy>, Option<String>);

/// The policy that governs the request, with the workload's uid. A Scale
/// carries no labels or annotations, so its parent's policy comes from the
/// cache; a workload write carries its own.
fn policy_for(
    endpoint: Endpoint,
    kind: WorkloadKind,
    req: &AdmissionRequest<'_>,
    subject: &Subject,
    key: &str,
    cache: &Cache,
) -> Step<Found> {
    let uid = req.uid.as_str();
    if req.sub_resource.is_some() {
        let Some(entry) = cache.get(kind, key) else {
            return Err(Answer::Ungoverned);
        };
        let observed = entry.observed();
        return match &observed.policy {
            Ok(policy) => Ok((Arc::clone(policy), observed.uid.clone())),
            Err(e) => Err(Answer::early(warn(
                uid,
                format!("scale-governor: policy is invalid and not enforced: {e}"),
            ))),
        };
    }
    let object = &subject.object;
    if !is_governed(object.metadata.labels.as_ref()) {
        return Err(Answer::Ungoverned);
    }
    match policy_of(object.metadata.annotations.as_ref()) {
        Ok(policy) => Ok((Arc::new(policy), object.metadata.uid.clone())),
        Err(e) => Err(Answer::early(invalid_policy(
            endpoint,
            uid,
            &e.to_string(),
            object,
            subject.old.as_ref(),
        ))),
    }
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

/// The response for a decision; `has_spec` says whether the object as sent
/// has a `spec` the patch can add `replicas` to (a hand-made Scale may not).
fn respond(uid: &str, decision: &Decision, policy: &Policy, has_spec: bool) -> AdmissionResponse {
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
        // `add` replaces an existing member, so it works whether or not
        // `replicas` was sent; a missing `spec` is added whole.
        let operation = if has_spec {
            AddOperation {
                path: PointerBuf::from_tokens(["spec", "replicas"]),
                value: decision.replicas.into(),
            }
        } else {
            AddOperation {
                path: PointerBuf::from_tokens(["spec"]),
                value: serde_json::json!({ "replicas": decision.replicas }),
            }
        };
        let patch = Patch(vec![PatchOperation::Add(operation)]);
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
mod tests;
