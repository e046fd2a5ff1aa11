use serde_json::{Value, json};

use super::*;
use crate::{
    cache::Update,
    policy::{GOVERNED_LABEL, keys},
};
use crate::{report::NoticeKind, webhook::review::ReviewVersion};

/// [`super::review`] with the default admission settings.
fn review(
    endpoint: Endpoint,
    body: &[u8],
    cache: &Cache,
    now: DateTime<Utc>,
) -> Result<Reviewed, BadReview> {
    super::review(endpoint, body, cache, &AdmitConfig::default(), now)
}

fn now() -> DateTime<Utc> {
    "2026-11-23T10:00:00Z".parse().unwrap()
}

fn deployment(replicas: i64, annotations: Value, governed: bool) -> Value {
    let labels = if governed {
        json!({ GOVERNED_LABEL: "true" })
    } else {
        json!({})
    };
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "uid": "d-1", "labels": labels, "annotations": annotations},
        "spec": {"replicas": replicas}
    })
}

fn scale(replicas: i64) -> Value {
    json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
           "metadata": {"name": "web", "namespace": "shop", "uid": "d-1"},
           "spec": {"replicas": replicas}})
}

fn body(
    operation: &str,
    sub: Option<&str>,
    object: Value,
    old: Option<Value>,
    dry_run: bool,
) -> Vec<u8> {
    let kind = if sub.is_some() {
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    } else {
        json!({"group": "apps", "version": "v1", "kind": "Deployment"})
    };
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": format!("uid-{operation}-{}", object["spec"]["replicas"]),
            "kind": kind,
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "subResource": sub, "name": "web", "namespace": "shop", "operation": operation,
            "userInfo": {"username": "alice"}, "object": object, "oldObject": old, "dryRun": dry_run
        }
    }))
    .unwrap()
}

fn cache_with(annotations: &[(&str, &str)], replicas: u32) -> Cache {
    let cache = Cache::new();
    cache.apply(
        Update {
            kind: WorkloadKind::Deployment,
            key: "shop/web",
            uid: Some("d-1".into()),
            policy: Policy::from_annotations(annotations.iter().copied()),
            replicas,
            ready: None,
            history: None,
            written_at: None,
            generation: None,
            actor: None,
            state: None,
        },
        now(),
    );
    cache
}

/// Applies the response's patch to `object` as the apiserver would, and
/// returns the resulting `spec.replicas`; `None` when there is no patch.
fn patched_replicas(r: &AdmissionResponse, object: &Value) -> Option<i64> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(r.patch.as_ref()?)
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(patch.0.len(), 1, "one operation: {patch:?}");
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).expect("the patch applies to the object as sent");
    patched["spec"]["replicas"].as_i64()
}

#[test]
fn scale_beyond_max_is_clamped_with_a_json_patch() {
    let cache = cache_with(&[(keys::MAX_REPLICAS, "20")], 5);
    let r = review(
        Endpoint::Mutate,
        &body("UPDATE", Some("scale"), scale(100), Some(scale(5)), false),
        &cache,
        now(),
    )
    .unwrap();
    assert!(r.response.allowed);
    assert_eq!(r.response.patch_type.as_deref(), Some("JSONPatch"));
    assert_eq!(patched_replicas(&r.response, &scale(100)), Some(20));
    assert_eq!(
        r.response.warnings,
        ["scale-governor: max-replicas 20: asked 100, allowed 20"]
    );
    assert_eq!(
        r.response.audit_annotations["decision"],
        "clamped: max-replicas 20: asked 100, allowed 20"
    );
    assert_eq!(r.operation, Operation::Scale);
    let report = r.report.unwrap();
    assert_eq!(
        (report.actor.as_str(), report.uid.as_deref()),
        ("alice", Some("d-1"))
    );
}

#[test]
fn audit_mode_allows_and_warns() {
    let cache = cache_with(&[(keys::MODE, "audit"), (keys::MAX_REPLICAS, "20")], 5);
    let r = review(
        Endpoint::Mutate,
        &body("UPDATE", Some("scale"), scale(100), Some(scale(5)), false),
        &cache,
        now(),
    )
    .unwrap();
    assert!(r.response.allowed && r.response.patch.is_none());
    assert_eq!(
        r.response.warnings,
        ["scale-governor (audit only): max-replicas 20: asked 100, allowed 20"]
    );
    assert_eq!(
        r.report.unwrap().decision.unwrap().outcome,
        Outcome::Audited
    );
}

#[test]
fn ungoverned_scale_takes_the_fast_path() {
    let cache = Cache::new();
    let r = review(
        Endpoint::Mutate,
        &body("UPDATE", Some("scale"), scale(100), Some(scale(5)), false),
        &cache,
        now(),
    )
    .unwrap();
    assert!(
        r.response.allowed
            && r.response.patch.is_none()
            && r.response.warnings.is_empty()
            && r.report.is_none()
    );
}

#[test]
fn deployment_create_and_update_are_governed_from_their_own_annotations() {
    let cache = Cache::new();
    let obj = deployment(100, json!({ keys::MAX_REPLICAS: "20" }), true);
    let r = review(
        Endpoint::Mutate,
        &body("CREATE", None, obj.clone(), None, false),
        &cache,
        now(),
    )
    .unwrap();
    assert_eq!(patched_replicas(&r.response, &obj), Some(20));
    let unlabeled = deployment(100, json!({ keys::MAX_REPLICAS: "20" }), false);
    let r = review(
        Endpoint::Mutate,
        &body("CREATE", None, unlabeled, None, false),
        &cache,
        now(),
    )
    .unwrap();
    assert!(r.response.patch.is_none() && r.report.is_none());
}

#[test]
fn dry_run_spends_no_budget() {
    let cache = cache_with(&[(keys::SCALE_UP, "4 pods/60s")], 10);
    let b = body("UPDATE", Some("scale"), scale(40), Some(scale(10)), true);
    for _ in 0..3 {
        let r = review(Endpoint::Mutate, &b, &cache, now()).unwrap();
        assert_eq!(patched_replicas(&r.response, &scale(40)), Some(14));
        assert!(r.report.unwrap().dry_run);
    }
    let entry = cache.get(WorkloadKind::Deployment, "shop/web").unwrap();
    assert!(entry.ledger().changes().is_empty());
}

#[test]
fn malformed_policy_is_rejected_by_validate_unless_unchanged() {
    let cache = Cache::new();
    let bad = json!({ keys::WINDOWS: "Mon-Fry 08:00-20:00 min=1" });
    let b = body(
        "CREATE",
        None,
        deployment(3, bad.clone(), true),
        None,
        false,
    );
    let v = review(Endpoint::Validate, &b, &cache, now()).unwrap();
    let status = v.response.status.expect("denied");
    assert_eq!(status.code, 422);
    assert_eq!(
        status.message,
        "scale-governor: invalid policy: scale-governor.io/windows: at \"Fry\" (column 5): unknown weekday \"Fry\", expected Mon..Sun"
    );
    let m = review(Endpoint::Mutate, &b, &cache, now()).unwrap();
    assert!(m.response.allowed && m.response.warnings.is_empty());
    // Ratcheting: an update that keeps the same broken policy is allowed, with a warning.
    let b = body(
        "UPDATE",
        None,
        deployment(4, bad.clone(), true),
        Some(deployment(3, bad, true)),
        false,
    );
    let v = review(Endpoint::Validate, &b, &cache, now()).unwrap();
    assert!(v.response.allowed);
    assert!(v.response.warnings[0].contains("policy is invalid and not enforced"));
}

#[test]
fn unknown_resources_and_operations_are_allowed() {
    let cache = Cache::new();
    let mut v: Value = serde_json::from_slice(&body(
        "UPDATE",
        None,
        deployment(3, json!({}), true),
        None,
        false,
    ))
    .unwrap();
    v["request"]["resource"] = json!({"group": "", "version": "v1", "resource": "pods"});
    let r = review(
        Endpoint::Mutate,
        &serde_json::to_vec(&v).unwrap(),
        &cache,
        now(),
    )
    .unwrap();
    assert!(r.response.allowed);
    assert!(
        r.response.warnings[0].contains("not /pods"),
        "{:?}",
        r.response.warnings
    );
    let r = review(
        Endpoint::Mutate,
        &body("DELETE", None, deployment(3, json!({}), true), None, false),
        &cache,
        now(),
    )
    .unwrap();
    assert!(r.response.allowed && r.report.is_none());
}

#[test]
fn unreadable_reviews_are_errors_and_unreadable_objects_are_allowed() {
    let cache = Cache::new();
    assert!(matches!(
        review(Endpoint::Mutate, b"{", &cache, now()),
        Err(BadReview::Malformed(_))
    ));
    assert!(matches!(
        review(Endpoint::Mutate, b"{\"request\":null}", &cache, now()),
        Err(BadReview::NoUid)
    ));
    let mut v: Value = serde_json::from_slice(&body(
        "UPDATE",
        None,
        deployment(3, json!({}), true),
        None,
        false,
    ))
    .unwrap();
    v["request"]["object"] = json!({"metadata": {"labels": "not-a-map"}});
    let r = review(
        Endpoint::Mutate,
        &serde_json::to_vec(&v).unwrap(),
        &cache,
        now(),
    )
    .unwrap();
    assert!(r.response.allowed);
    assert!(r.response.warnings[0].starts_with("scale-governor could not read the object"));
}

/// A Scale to 0 arrives as `"spec": {}` (`replicas` is `omitempty`); a
/// hand-made Scale may have no `spec` at all. Both mean 0, and the patch
/// must apply to the object exactly as sent.
#[test]
fn a_scale_without_replicas_is_a_scale_to_zero() {
    let cache = cache_with(&[(keys::MIN_REPLICAS, "1")], 3);
    let mut no_replicas = scale(0);
    no_replicas["spec"] = json!({});
    let mut no_spec = scale(0);
    no_spec.as_object_mut().unwrap().remove("spec");
    for object in [no_replicas, no_spec] {
        let r = review(
            Endpoint::Mutate,
            &body(
                "UPDATE",
                Some("scale"),
                object.clone(),
                Some(scale(3)),
                false,
            ),
            &cache,
            now(),
        )
        .unwrap();
        assert_eq!(patched_replicas(&r.response, &object), Some(1), "{object}");
        assert_eq!(
            r.response.warnings,
            ["scale-governor: min-replicas 1: asked 0, allowed 1"]
        );
        let d = r.report.unwrap().decision.unwrap();
        assert_eq!((d.current, d.requested, d.replicas), (3, 0, 1));
    }
    // And a scale *from* 0 starts from 0.
    let cache = cache_with(&[(keys::SCALE_UP, "2 pods/60s")], 0);
    let mut from_zero = scale(0);
    from_zero["spec"] = json!({});
    let r = review(
        Endpoint::Mutate,
        &body("UPDATE", Some("scale"), scale(10), Some(from_zero), false),
        &cache,
        now(),
    )
    .unwrap();
    assert_eq!(patched_replicas(&r.response, &scale(10)), Some(2));
    assert_eq!(
        r.response.warnings,
        ["scale-governor: scale-up 2 pods/60s: asked 10, allowed 2 (0 at period start)"]
    );
}

/// The apiserver cannot read an answer in another version than it asked in
/// (`unknown conversion`): a v1beta1 review is answered in v1beta1, and
/// anything else is refused with a message that says what to configure.
#[test]
fn a_review_is_answered_in_its_own_version_or_refused() {
    let cache = cache_with(&[(keys::MAX_REPLICAS, "20")], 5);
    let mut v: Value = serde_json::from_slice(&body(
        "UPDATE",
        Some("scale"),
        scale(100),
        Some(scale(5)),
        false,
    ))
    .unwrap();
    v["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let r = review(
        Endpoint::Mutate,
        &serde_json::to_vec(&v).unwrap(),
        &cache,
        now(),
    )
    .unwrap();
    assert_eq!(r.version, ReviewVersion::V1beta1);
    assert_eq!(patched_replicas(&r.response, &scale(100)), Some(20));
    for (api_version, kind) in [
        ("admission.k8s.io/v2", "AdmissionReview"),
        ("admission.k8s.io/v1", "TokenReview"),
    ] {
        v["apiVersion"] = json!(api_version);
        v["kind"] = json!(kind);
        let err = review(
            Endpoint::Mutate,
            &serde_json::to_vec(&v).unwrap(),
            &cache,
            now(),
        )
        .unwrap_err();
        assert!(
            matches!(err, BadReview::Version(_))
                && err.to_string().contains("admissionReviewVersions"),
            "{err}"
        );
    }
}

/// The governor's own annotation write keeps the count as it is, even below
/// a floor (the floor is met through /scale); anyone else's write of the
/// object is clamped into bounds, whatever field manager it names, and a
/// body that escapes the manager's name is still read.
#[test]
fn the_governors_own_annotation_write_is_not_clamped() {
    let cache = Cache::new();
    let obj = deployment(1, json!({ keys::MIN_REPLICAS: "5" }), true);
    let with_manager = |manager: &str| {
        let mut review: Value =
            serde_json::from_slice(&body("UPDATE", None, obj.clone(), Some(obj.clone()), false))
                .unwrap();
        review["request"]["options"] = json!({"kind": "PatchOptions", "fieldManager": manager});
        serde_json::to_vec(&review).unwrap()
    };
    let own = review(
        Endpoint::Mutate,
        &with_manager(FIELD_MANAGER),
        &cache,
        now(),
    )
    .unwrap();
    assert_eq!(patched_replicas(&own.response, &obj), None);
    let escaped =
        serde_json::to_vec(&serde_json::from_slice::<Value>(&with_manager("x")).unwrap()).unwrap();
    let escaped = String::from_utf8(escaped).unwrap().replace(
        "\"fieldManager\":\"x\"",
        "\"fieldManager\":\"scale-gov\\u0065rnor\"",
    );
    let own = review(Endpoint::Mutate, escaped.as_bytes(), &cache, now()).unwrap();
    assert_eq!(patched_replicas(&own.response, &obj), None, "escaped name");
    for other in ["kubectl-patch", "scale-governor-ish"] {
        let r = review(Endpoint::Mutate, &with_manager(other), &cache, now()).unwrap();
        assert_eq!(patched_replicas(&r.response, &obj), Some(5), "{other}");
    }
}

mod clock;
mod deny;
mod edits;
mod hostile;
mod said;
