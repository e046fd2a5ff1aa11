//! One AdmissionReview in, one AdmissionResponse out. No I/O: the policy of a
//! `/scale` request comes from the in-memory cache, the decision from the
//! engine, and what should be reported (Event, metric, log) is returned to
//! the caller.

mod checks;
mod subject;

use std::hash::{BuildHasher, Hash};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use json_patch::{AddOperation, Patch, PatchOperation, jsonptr::PointerBuf};

use self::{
    checks::{
        check_clock_changes, check_policy_edit, check_policy_warnings, check_recommend_source,
        invalid_policy,
    },
    subject::{Subject, governing, read_subject},
};
use super::{
    guard::AdmitConfig,
    review::{AdmissionRequest, AdmissionResponse, AdmissionReview, ReviewVersion},
};
pub(crate) use crate::report::{Notice, Report};
use crate::{
    cache::{self, Cache, ReviewKey},
    engine::{self, Decision, Ledger, Outcome, Request},
    managed::FIELD_MANAGER,
    policy::{Mode, Policy},
    workload::WorkloadKind,
};

/// Which webhook the apiserver called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/mutate`: clamps in `enforce` mode, warns in `audit` mode.
    Mutate,
    /// `/validate`: refuses in `deny` mode; rejects unparseable policies
    /// and refused policy edits.
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

    /// Whether this endpoint applies a policy of `mode`: every mode has
    /// exactly one.
    fn handles(self, mode: Mode) -> bool {
        matches!(
            (self, mode),
            (Endpoint::Mutate, Mode::Enforce | Mode::Audit) | (Endpoint::Validate, Mode::Deny)
        )
    }
}

/// A review that cannot be answered: no uid to echo, or no version to
/// answer in.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BadReview {
    /// The body is not an AdmissionReview.
    #[error("body is not an admission.k8s.io/v1 AdmissionReview: {0}")]
    Malformed(String),
    /// An `apiVersion` or `kind` the webhook does not answer.
    #[error(
        "{0} is not an AdmissionReview this webhook answers; expected kind AdmissionReview in admission.k8s.io/v1 (or v1beta1): set admissionReviewVersions: [\"v1\"]"
    )]
    Version(String),
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
    /// The version to answer in: the one asked in.
    pub version: ReviewVersion,
    /// Metric label.
    pub resource: Resource,
    /// Metric label.
    pub operation: Operation,
    /// Set for governed reviews.
    pub report: Option<Report>,
}

/// Answers one review body.
pub fn review(
    endpoint: Endpoint,
    body: &[u8],
    cache: &Cache,
    config: &AdmitConfig,
    now: DateTime<Utc>,
) -> Result<Reviewed, BadReview> {
    let review: AdmissionReview<'_> =
        serde_json::from_slice(body).map_err(|e| BadReview::Malformed(e.to_string()))?;
    // An absent apiVersion is read as v1, what every current apiserver sends.
    let version = ReviewVersion::of(
        review
            .api_version
            .as_deref()
            .or(Some("admission.k8s.io/v1")),
    )
    .filter(|_| {
        review
            .kind
            .as_deref()
            .is_none_or(|k| k == "AdmissionReview")
    })
    .ok_or_else(|| {
        BadReview::Version(format!(
            "{} {}",
            review.api_version.as_deref().unwrap_or("<no apiVersion>"),
            review.kind.as_deref().unwrap_or("<no kind>")
        ))
    })?;
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
        version,
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
    let context = Context {
        endpoint,
        kind,
        req: &req,
        cache,
        config,
        digest: digest(endpoint, body),
        now,
    };
    match decide_governed(&context) {
        Ok(answer) | Err(answer) => match answer {
            Answer::Ungoverned => {}
            Answer::Early(response) => reviewed.response = *response,
            Answer::Reported(reported) => {
                let (response, report) = *reported;
                reviewed.response = response;
                reviewed.report = Some(report);
            }
        },
    }
    Ok(reviewed)
}

/// Tells one review from another with the same uid: the endpoint and body.
/// foldhash: the body is a few kilobytes hashed on every review, and SipHash
/// there cost more than the decision; the digest never leaves the process.
fn digest(endpoint: Endpoint, body: &[u8]) -> u64 {
    foldhash::fast::FixedState::with_seed(0x5ca1e).hash_one((endpoint, body))
}

/// How a workload review ends.
enum Answer {
    /// Not governed here (no label, another endpoint's mode, no count to
    /// decide on): allow, report nothing.
    Ungoverned,
    /// Answered with nothing to report: an unreadable object.
    Early(Box<AdmissionResponse>),
    /// Answered, with a report: a decision, a notice about the policy, or
    /// both.
    Reported(Box<(AdmissionResponse, Report)>),
}

impl Answer {
    fn early(response: AdmissionResponse) -> Answer {
        Answer::Early(Box::new(response))
    }
}

/// Each step either yields what the next one needs or is the review's final
/// [`Answer`] (`Err`), so the happy path reads top to bottom.
type Step<T> = Result<T, Answer>;

/// What every step of one review reads.
struct Context<'c, 'r> {
    endpoint: Endpoint,
    kind: WorkloadKind,
    req: &'c AdmissionRequest<'r>,
    cache: &'c Cache,
    config: &'c AdmitConfig,
    digest: u64,
    now: DateTime<Utc>,
}

impl Context<'_, '_> {
    fn uid(&self) -> &str {
        &self.req.uid
    }

    fn is_governors_own_write(&self) -> bool {
        self.req.sub_resource.is_none() && self.req.field_manager() == Some(FIELD_MANAGER)
    }

    fn actor(&self) -> &str {
        self.req.user_info.username.as_deref().unwrap_or("unknown")
    }

    fn report(
        &self,
        subject: &Subject<'_>,
        uid: Option<String>,
        decision: Option<Decision>,
        notices: Vec<Notice>,
    ) -> Report {
        Report {
            kind: self.kind,
            namespace: subject.namespace.clone().into_owned(),
            name: subject.name.clone().into_owned(),
            uid,
            actor: crate::report::shown_actor(self.actor()),
            dry_run: self.req.dry_run.unwrap_or(false),
            repeat: false,
            decision,
            notices,
        }
    }
}

fn decide_governed(cx: &Context<'_, '_>) -> Step<Answer> {
    let subject = read_subject(cx.req)?;
    let key = cache::key(&subject.namespace, &subject.name);
    let governing = match governing(cx.kind, cx.req, &subject, &key, cx.cache, cx.now)? {
        Ok(governing) => governing,
        Err(invalid) => return Err(invalid_policy(cx, &subject, invalid)),
    };
    let mut notices: Vec<Notice> = check_policy_edit(cx, &subject, &governing)?
        .into_iter()
        .collect();
    let mut policy_warnings = check_recommend_source(cx, &subject, &governing)?;
    if let Some((warnings, notice)) = check_clock_changes(cx, &governing) {
        policy_warnings.extend(warnings);
        notices.push(notice);
    }
    notices.extend(check_policy_warnings(cx, &governing));
    let handled: Vec<&Policy> = [&governing.stored, &governing.new]
        .into_iter()
        .flatten()
        .map(|p| p.as_ref())
        .filter(|p| cx.endpoint.handles(p.mode))
        .collect();
    // The governor's own writes of its annotations keep the count as it is:
    // a count below a floor moves through /scale, where the ledger sees it,
    // and the admission policy in deploy/base/confine.yaml refuses any spec
    // change in those writes.
    let counts = replica_counts(cx, &subject)
        .filter(|(current, requested)| current != requested || !cx.is_governors_own_write());
    let (Some((current, requested)), false) = (counts, handled.is_empty()) else {
        // Nothing to decide here (another endpoint's mode, or a negative
        // count the apiserver's validation refuses with a better message),
        // but a policy edit may still be worth reporting, and a `recommend`
        // or windows checked here worth a warning (an enforce-mode policy
        // reaches this endpoint with nothing to decide).
        if notices.is_empty() && policy_warnings.is_empty() {
            return Err(Answer::Ungoverned);
        }
        let mut response = AdmissionResponse::allow(cx.uid());
        response.warnings.extend(policy_warnings);
        return Ok(Answer::Reported(Box::new((
            response,
            cx.report(&subject, governing.uid, None, notices),
        ))));
    };
    let request = Request {
        current,
        requested,
        actor: cx.actor(),
    };
    let dry_run = cx.req.dry_run.unwrap_or(false);
    let (mut decision, repeat) = if cx.req.operation == "CREATE" {
        // A new object has no history and its first count spends no budget,
        // so a CREATE is decided against an empty ledger and records
        // nothing. It never touches an existing entry: that one belongs to
        // the stored object, and this create may yet fail (AlreadyExists).
        // A not-yet-stored entry lets a /scale right after it be governed;
        // the sweep removes it if the apiserver refuses the create.
        if let Some(policy) = &governing.new
            && !dry_run
            && !subject.name.is_empty()
        {
            cx.cache
                .get_or_insert(cx.kind, &key, policy, current, cx.now);
        }
        let decision = engine::decide_all(&handled, &Ledger::new(), request, cx.now);
        (decision, false)
    } else {
        let entry_policy = governing.new.as_ref().or(governing.stored.as_ref());
        let Some(entry_policy) = entry_policy else {
            return Err(Answer::Ungoverned);
        };
        let review = ReviewKey {
            uid: cx.uid(),
            digest: cx.digest,
        };
        cx.cache
            .get_or_insert(cx.kind, &key, entry_policy, current, cx.now)
            .decide(&handled, request, review, dry_run, cx.now)
    };
    if !decision.reasons.is_empty() && governing.loosens(cx.now) {
        // Said with the decision, so its log line says it too.
        decision.warnings.push(EDITS_POLICY.to_owned());
    }
    let mut response = respond(cx.uid(), &decision, &handled, subject.object.spec.is_some());
    if decision.outcome == Outcome::Denied && requested == current && cx.req.operation == "UPDATE" {
        // The update does not touch replicas; refusing it would block unrelated
        // changes (a rollout) just because the workload is out of bounds.
        response = warn(
            cx.uid(),
            format!(
                "scale-governor: replicas {current} are outside the policy ({}); allowed because this update does not change them",
                decision.summary()
            ),
        );
        decision.allowed = true;
        decision.outcome = Outcome::Unchanged;
        decision.replicas = current;
    }
    response.warnings.extend(policy_warnings);
    let mut report = cx.report(&subject, governing.uid, Some(decision), notices);
    report.repeat = repeat;
    Ok(Answer::Reported(Box::new((response, report))))
}

/// What a request that loosens the policy (a higher `max-replicas`, the
/// governed label removed) and is held by the stored one is told. A
/// tighter edit governs its own request, so it is told nothing.
const EDITS_POLICY: &str = "this request also edits the policy; the stored policy governs it, the new one governs from the next request on";

/// The counts a request moves between; `None` for a negative count.
fn replica_counts(cx: &Context<'_, '_>, subject: &Subject<'_>) -> Option<(u32, u32)> {
    let is_scale = cx.req.sub_resource.is_some();
    let requested = subject.object.replicas(is_scale)?;
    let current = match &subject.old {
        Some(old) => old.replicas(is_scale)?,
        None => requested,
    };
    Some((current, requested))
}

fn warn(uid: &str, warning: String) -> AdmissionResponse {
    let mut r = AdmissionResponse::allow(uid);
    r.warnings.push(warning);
    r
}

/// The response for a decision; `has_spec` says whether the object as sent
/// has a `spec` the patch can add `replicas` to (a hand-made Scale may not).
fn respond(
    uid: &str,
    decision: &Decision,
    policies: &[&Policy],
    has_spec: bool,
) -> AdmissionResponse {
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
    let mut warnings: Vec<&String> = decision.warnings.iter().collect();
    for policy in policies {
        for w in &policy.warnings {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
    }
    response
        .warnings
        .extend(warnings.into_iter().map(|w| format!("scale-governor: {w}")));
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
