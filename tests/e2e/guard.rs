//! The guard's holes, tried against the real apiserver the way a careless
//! operator and a hostile user would: scale to zero, writes that never land,
//! policies loosened in the same request, bodies at the size limit.

use serial_test::parallel;

use crate::support::{
    self,
    e2e::{
        WAIT, create, describe, events, grant_scaler, patch, replicas, scale, setup, setup_with,
        workload,
    },
    eventually,
};

/// `autoscaling/v1` `Scale.spec.replicas` is `omitempty`: a scale to 0 reaches
/// the webhook as `"spec": {}`. It must be read as 0, not as the 1 a
/// Deployment defaults to.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn scale_to_zero_respects_min_replicas_in_every_mode() {
    let Some(s) = setup("zero").await else { return };
    create(
        &s,
        &workload("Deployment", "web", 3, &[("min-replicas", "1")]),
    )
    .await;
    let (ok, stderr) = scale(s.cluster, &s.ns, "deploy/web", 0, &[]).await;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("min-replicas 1: asked 0, allowed 1"),
        "no clamp warning: {stderr}"
    );
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 1);

    create(
        &s,
        &workload(
            "Deployment",
            "api",
            3,
            &[("mode", "deny"), ("min-replicas", "1")],
        ),
    )
    .await;
    let (ok, stderr) = scale(s.cluster, &s.ns, "deploy/api", 0, &[]).await;
    assert!(!ok, "deny mode let a scale to 0 through");
    assert!(
        stderr.contains("min-replicas 1: asked 0, allowed 1"),
        "{stderr}"
    );
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/api").await, 3);
}

/// A Scale *from* 0 starts from 0: the rate budget and the Event say so.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn scale_from_zero_counts_from_zero() {
    let Some(s) = setup("fromzero").await else {
        return;
    };
    create(
        &s,
        &workload("Deployment", "web", 0, &[("scale-up", "2 pods/60s")]),
    )
    .await;
    let (ok, stderr) = scale(s.cluster, &s.ns, "deploy/web", 10, &[]).await;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("scale-up 2 pods/60s: asked 10, allowed 2 (0 at period start)"),
        "{stderr}"
    );
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 2);
    let text = eventually("the ScaleClamped Event", WAIT, || async {
        let text = describe(s.cluster, &s.ns, "deploy/web").await;
        text.contains("ScaleClamped").then_some(text)
    })
    .await;
    assert!(text.contains("asked 10 replicas (current 0)"), "{text}");
}

/// `kubectl create` of a workload that already exists is admitted, then
/// refused with AlreadyExists. It must leave no trace on the existing
/// workload: a clamped create counted as a scale-down would free budget.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn a_create_that_fails_with_already_exists_spends_and_frees_nothing() {
    let Some(s) = setup("exists").await else {
        return;
    };
    let policy = [("max-replicas", "20"), ("scale-up", "4 pods/60s")];
    create(&s, &workload("Deployment", "web", 3, &policy)).await;
    let (ok, e) = scale(s.cluster, &s.ns, "deploy/web", 7, &[]).await;
    assert!(ok, "{e}");
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 7);

    let again = workload("Deployment", "web", 100, &policy);
    let path = std::env::temp_dir().join(format!("{}-again.yaml", s.ns.name()));
    std::fs::write(&path, again).unwrap();
    let out = s
        .cluster
        .kubectl(["create", "-n", s.ns.name(), "-f", path.to_str().unwrap()])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("AlreadyExists"),
        "{stderr}"
    );

    let (ok, e) = scale(s.cluster, &s.ns, "deploy/web", 10, &[]).await;
    assert!(
        ok && e.contains("budget spent"),
        "the failed create freed budget: {e}"
    );
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 7);
}

/// A governed CREATE that the apiserver refuses after the mutating webhook
/// (here: a selector that does not match the template) never existed: no
/// workload stays in the cache, and nothing tries to write its history.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn a_create_the_apiserver_refuses_leaves_no_phantom_workload() {
    let Some(s) = setup("phantom").await else {
        return;
    };
    // One good workload first, so the webhook is known to be in the path.
    create(&s, &workload("Deployment", "web", 1, &[])).await;
    let broken = workload("Deployment", "broken", 100, &[("max-replicas", "20")])
        .replace("matchLabels: {app: broken}", "matchLabels: {app: other}");
    let out = support::e2e::apply(s.cluster, &s.ns, &broken).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("selector"),
        "{stderr}"
    );
    // Long enough for a sweep and several persist ticks.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let metrics = s.governor.metrics().await;
    let gauge = metrics
        .lines()
        .find(|l| l.starts_with("scale_governor_cache_workloads{kind=\"deployments\"}"))
        .unwrap_or_default()
        .to_owned();
    assert!(gauge.ends_with(" 1"), "phantom in the cache: {gauge}");
    assert!(
        !metrics.contains("scale_governor_cache_ledger_writes_total{result=\"error\"}"),
        "ledger writes for a workload that does not exist:\n{metrics}"
    );
}

/// An UPDATE review carries object and oldObject. A Deployment whose create
/// request was 2.5 MB of JSON (control characters, which JSON escapes
/// six-fold while etcd stores them raw) makes a 5 MB review; refusing it
/// with 413 would block every write to it under `failurePolicy: Fail`.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn a_review_twice_the_apiserver_request_size_is_answered() {
    let Some(s) = setup("large").await else {
        return;
    };
    create(&s, &workload("Deployment", "probe", 1, &[])).await;
    let value: String = "\u{1}".repeat(420_000);
    let manifest = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "big", "labels": {"app": "big", "scale-governor.io/governed": "true"},
                     "annotations": {"scale-governor.io/max-replicas": "5"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "big"}},
                 "template": {"metadata": {"labels": {"app": "big"}},
                              "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                                                       "env": [{"name": "BLOB", "value": value}]}]}}}
    });
    let text = serde_json::to_string(&manifest).unwrap();
    assert!(text.len() > 2_500_000, "{} bytes", text.len());
    let path = std::env::temp_dir().join(format!("{}-big.json", s.ns.name()));
    std::fs::write(&path, &text).unwrap();
    let out = s
        .cluster
        .kubectl(["create", "-n", s.ns.name(), "-f", path.to_str().unwrap()])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s
        .cluster
        .kubectl([
            "patch",
            "-n",
            s.ns.name(),
            "deploy/big",
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":50}}"#,
        ])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("max-replicas 5: asked 50, allowed 5"),
        "{stderr}"
    );
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/big").await, 5);
}

/// Anyone who can patch a Deployment can edit its policy. An edit that
/// loosens it (a higher max, mode off, the label removed) in the same
/// request as a scale does not govern that request; it is reported with
/// who made it, and governs from the next request on.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn a_policy_loosened_in_the_same_request_still_governs_it() {
    let Some(s) = setup("loosen").await else {
        return;
    };
    create(
        &s,
        &workload("Deployment", "web", 10, &[("max-replicas", "20")]),
    )
    .await;
    let (ok, e) = patch(
        &s,
        "deploy/web",
        r#"{"metadata":{"annotations":{"scale-governor.io/max-replicas":"100","scale-governor.io/mode":"off"}},"spec":{"replicas":100}}"#,
        &[],
    )
    .await;
    assert!(ok, "{e}");
    assert!(
        e.contains("max-replicas 20: asked 100, allowed 20")
            && e.contains("the stored policy governs it"),
        "{e}"
    );
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 20);
    let text = eventually("the PolicyLoosened Event", WAIT, || async {
        let text = events(&s, "PolicyLoosened").await;
        (!text.is_empty()).then_some(text)
    })
    .await;
    assert!(
        text.contains("admin loosened the policy: mode enforce -> off; bounds now 0..20 -> 0..100"),
        "{text}"
    );
    let metrics = s.governor.metrics().await;
    assert!(
        metrics.contains("scale_governor_admission_policy_edits_total{kind=\"loosened\"} 1"),
        "{metrics}"
    );
    // From the next request on, the new policy (off) governs.
    let (ok, e) = scale(s.cluster, &s.ns, "deploy/web", 100, &[]).await;
    assert!(ok && !e.contains("scale-governor"), "{e}");
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 100);

    // Removing the label in the same request as a scale is governed too.
    create(
        &s,
        &workload("Deployment", "api", 2, &[("max-replicas", "5")]),
    )
    .await;
    let (ok, e) = patch(
        &s,
        "deploy/api",
        r#"{"metadata":{"labels":{"scale-governor.io/governed":null}},"spec":{"replicas":50}}"#,
        &[],
    )
    .await;
    assert!(
        ok && e.contains("max-replicas 5: asked 50, allowed 5"),
        "{e}"
    );
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/api").await, 5);
}

/// With `--policy-admins`, a loosening edit by anyone else is refused with
/// the reason; tightening stays open to anyone, and admins may loosen.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn only_policy_admins_may_loosen_a_policy() {
    let Some(s) = setup_with("admins", &["--policy-admins=group=system:masters"]).await else {
        return;
    };
    grant_scaler(&s, "bob").await;
    create(
        &s,
        &workload("Deployment", "web", 3, &[("max-replicas", "20")]),
    )
    .await;
    let raise = r#"{"metadata":{"annotations":{"scale-governor.io/max-replicas":"1000"}}}"#;
    let (ok, e) = patch(&s, "deploy/web", raise, &["--as=bob"]).await;
    assert!(!ok, "bob loosened the policy");
    assert!(
        e.contains("only policy admins (group system:masters) may loosen this policy; bob asked for: bounds now 0..20 -> 0..1000"),
        "{e}"
    );
    let far = r#"{"metadata":{"annotations":{"scale-governor.io/suspend-until":"2099-01-01T00:00:00Z"}}}"#;
    let (ok, e) = patch(&s, "deploy/web", far, &[]).await;
    assert!(!ok && e.contains("capped at 24h"), "even an admin: {e}");
    let tighten = r#"{"metadata":{"annotations":{"scale-governor.io/max-replicas":"10"}}}"#;
    let (ok, e) = patch(&s, "deploy/web", tighten, &["--as=bob"]).await;
    assert!(ok, "{e}");
    let (ok, e) = patch(&s, "deploy/web", raise, &[]).await;
    assert!(ok, "the admin may loosen: {e}");
    eventually("the PolicyEditRefused Event", WAIT, || async {
        let text = events(&s, "PolicyEditRefused").await;
        text.contains("bob asked for").then_some(())
    })
    .await;
}

/// A governed label added to a Deployment whose annotations already hold a
/// broken policy is refused like writing the broken policy: otherwise it
/// would count as governed while nothing is enforced.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn labelling_a_workload_with_a_broken_policy_is_refused() {
    let Some(s) = setup("labelbroken").await else {
        return;
    };
    create(&s, &workload("Deployment", "probe", 1, &[])).await;
    let broken = workload(
        "Deployment",
        "web",
        3,
        &[("windows", "Mon-Fry 08:00-20:00 UTC min=1")],
    )
    .replace("    scale-governor.io/governed: \"true\"\n", "");
    let out = support::e2e::apply(s.cluster, &s.ns, &broken).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s
        .cluster
        .kubectl([
            "label",
            "-n",
            s.ns.name(),
            "deploy/web",
            "scale-governor.io/governed=true",
        ])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the label was added: {stderr}");
    assert!(
        stderr.contains("scale-governor: invalid policy: scale-governor.io/windows: at \"Fry\""),
        "{stderr}"
    );
}

/// The policy admins' backstop: the ValidatingAdmissionPolicy in
/// deploy/policy-admins refuses loosening edits by anyone else with no
/// governor running at all, and lets unrelated changes through.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn the_admission_policy_refuses_loosening_while_the_governor_is_down() {
    let Some(mut s) = setup("vap").await else {
        return;
    };
    grant_scaler(&s, "bob").await;
    create(
        &s,
        &workload("Deployment", "web", 3, &[("max-replicas", "20")]),
    )
    .await;
    // The governor goes away entirely: no webhook, no process.
    s.governor.kill().await;
    for kind in [
        "mutatingwebhookconfiguration",
        "validatingwebhookconfiguration",
    ] {
        s.cluster
            .kubectl_ok(["delete", kind, &format!("scale-governor-{}", s.ns.name())])
            .await;
    }
    // deploy/policy-admins as shipped (its list: group system:masters),
    // bound to this namespace only.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/policy-admins");
    let ns = s.ns.name();
    let name = format!("scale-governor-policy-edits-{ns}");
    let policy = std::fs::read_to_string(root.join("policy.yaml"))
        .unwrap()
        .replace(
            "name: scale-governor-policy-edits",
            &format!("name: {name}"),
        );
    let binding = std::fs::read_to_string(root.join("binding.yaml"))
        .unwrap()
        .replace("scale-governor-policy-edits", &name)
        .replace(
            "operator: NotIn\n          values: [\"kube-system\", \"scale-governor\"]",
            &format!("operator: In\n          values: [\"{ns}\"]"),
        );
    let dir = std::env::temp_dir().join(format!("{ns}-vap"));
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text) in [("policy.yaml", policy), ("binding.yaml", binding)] {
        std::fs::write(dir.join(file), text).unwrap();
        s.cluster
            .kubectl_ok(["apply", "-f", dir.join(file).to_str().unwrap()])
            .await;
    }
    let _policy = s.cluster.delete_on_drop("validatingadmissionpolicy", &name);
    let _binding = s
        .cluster
        .delete_on_drop("validatingadmissionpolicybinding", &name);

    // Until the apiserver has loaded the policy a raise goes through, so
    // each try asks for more than the last.
    let tries = std::sync::atomic::AtomicU32::new(1000);
    let e = eventually("the admission policy to take effect", WAIT, || async {
        let max = tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let raise = format!(
            r#"{{"metadata":{{"annotations":{{"scale-governor.io/max-replicas":"{max}"}}}}}}"#
        );
        let (ok, e) = patch(&s, "deploy/web", &raise, &["--as=bob"]).await;
        (!ok).then_some(e)
    })
    .await;
    assert!(
        e.contains("only policy admins may raise or remove scale-governor.io/max-replicas"),
        "{e}"
    );
    for (edit, message) in [
        (
            r#"{"metadata":{"labels":{"scale-governor.io/governed":null}}}"#,
            "may remove the scale-governor.io/governed label",
        ),
        (
            r#"{"metadata":{"annotations":{"scale-governor.io/mode":"off"}}}"#,
            "may set scale-governor.io/mode to audit or off",
        ),
        (
            r#"{"metadata":{"annotations":{"scale-governor.io/suspend-until":"2026-12-31T00:00:00Z"}}}"#,
            "may change scale-governor.io/windows, scale-up, scale-down or suspend-until",
        ),
    ] {
        let (ok, e) = patch(&s, "deploy/web", edit, &["--as=bob"]).await;
        assert!(!ok && e.contains(message), "{edit}: {e}");
    }
    // Unrelated changes and tightening pass; an admin may loosen.
    let unrelated = r#"{"metadata":{"annotations":{"team":"shop"}},"spec":{"replicas":4}}"#;
    let (ok, e) = patch(&s, "deploy/web", unrelated, &["--as=bob"]).await;
    assert!(ok, "{e}");
    let tighten = r#"{"metadata":{"annotations":{"scale-governor.io/max-replicas":"10"}}}"#;
    let (ok, e) = patch(&s, "deploy/web", tighten, &["--as=bob"]).await;
    assert!(ok, "{e}");
    let raise = r#"{"metadata":{"annotations":{"scale-governor.io/max-replicas":"5000"}}}"#;
    let (ok, e) = patch(&s, "deploy/web", raise, &[]).await;
    assert!(ok, "the admin may loosen: {e}");
}

/// The apiserver re-invokes a mutating webhook (`reinvocationPolicy:
/// IfNeeded`) after a later one changed the object, with a new uid. The
/// governor's second decision on the same request replaces its first,
/// instead of spending the budget twice (before, the second was clamped
/// against the first's pending change: "asked 19, allowed 10").
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn a_reinvoked_review_replaces_its_change_instead_of_adding_one() {
    use axum::{Json, Router, routing::post};
    use base64::Engine;
    let Some(s) = setup("reinvoke").await else {
        return;
    };
    // A later mutating webhook that adds one replica to every /scale.
    let bump = Router::new().route(
        "/bump",
        post(|Json(review): Json<serde_json::Value>| async move {
            let request = &review["request"];
            let replicas = request["object"]["spec"]["replicas"].as_i64().unwrap_or(0);
            let patch = serde_json::json!([{"op": "add", "path": "/spec/replicas", "value": replicas + 1}]);
            Json(serde_json::json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": request["uid"], "allowed": true, "patchType": "JSONPatch",
                             "patch": base64::engine::general_purpose::STANDARD.encode(patch.to_string())}
            }))
        }),
    );
    let server = support::HttpsServer::start(bump).await;
    let ns = s.ns.name();
    let name = format!("zz-bump-{ns}");
    let config = format!(
        r#"{{"apiVersion":"admissionregistration.k8s.io/v1","kind":"MutatingWebhookConfiguration","metadata":{{"name":"{name}"}},
            "webhooks":[{{"name":"bump.test.io","admissionReviewVersions":["v1"],"sideEffects":"None","failurePolicy":"Fail",
              "clientConfig":{{"url":"{}/bump","caBundle":"{}"}},
              "namespaceSelector":{{"matchLabels":{{"kubernetes.io/metadata.name":"{ns}"}}}},
              "rules":[{{"apiGroups":["apps"],"apiVersions":["v1"],"operations":["UPDATE"],"resources":["deployments/scale"]}}]}}]}}"#,
        server.url,
        server.tls.ca_bundle()
    );
    let policy = [("scale-up", "8 pods/60s")];
    create(&s, &workload("Deployment", "web", 10, &policy)).await;
    let path = std::env::temp_dir().join(format!("{name}.json"));
    std::fs::write(&path, config).unwrap();
    s.cluster
        .kubectl_ok(["apply", "-f", path.to_str().unwrap()])
        .await;
    let _bump = s
        .cluster
        .delete_on_drop("mutatingwebhookconfiguration", &name);
    // Until the apiserver knows the bump webhook, a scale lands at 18; with
    // it, the governor clamps to 18, the bump makes 19, and the governor,
    // re-invoked with the same uid, clamps to 18 again.
    let probe = workload("Deployment", "probe", 1, &[]);
    create(&s, &probe).await;
    let bumped = eventually("the bump webhook to be called", WAIT, || async {
        let (ok, e) = scale(s.cluster, &s.ns, "deploy/probe", 2, &[]).await;
        assert!(ok, "{e}");
        let now = replicas(s.cluster, &s.ns, "deploy/probe").await;
        let (ok, e) = scale(s.cluster, &s.ns, "deploy/probe", 1, &[]).await;
        assert!(ok, "{e}");
        (now == 3).then_some(())
    })
    .await;
    let () = bumped;
    let (ok, e) = scale(s.cluster, &s.ns, "deploy/web", 100, &[]).await;
    assert!(ok && e.contains("scale-up 8 pods/60s"), "{e}");
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 18);
    // One change of +8 in the ledger: 10 at period start, not 2.
    let (ok, e) = scale(s.cluster, &s.ns, "deploy/web", 100, &[]).await;
    assert!(ok && e.contains("budget spent: 10 at period start"), "{e}");
}

/// A webhook configuration that asks for `admission.k8s.io/v1beta1` reviews
/// gets its answers in v1beta1; an answer in v1 would make the apiserver
/// fail the request.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn a_v1beta1_webhook_configuration_is_answered_in_v1beta1() {
    let Some(s) = setup("v1beta1").await else {
        return;
    };
    let ns = s.ns.name();
    for kind in [
        "mutatingwebhookconfiguration",
        "validatingwebhookconfiguration",
    ] {
        s.cluster
            .kubectl_ok([
                "patch",
                kind,
                &format!("scale-governor-{ns}"),
                "--type=json",
                "-p",
                r#"[{"op":"replace","path":"/webhooks/0/admissionReviewVersions","value":["v1beta1"]}]"#,
            ])
            .await;
    }
    let probe = workload("Deployment", "web", 2, &[("max-replicas", "5")]);
    let text = eventually("a v1beta1 review to be answered", WAIT, || async {
        let out = support::e2e::apply(s.cluster, &s.ns, &probe).await;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains("conversion"), "{stderr}");
        out.status.success().then_some(())
    })
    .await;
    let () = text;
    let (ok, e) = scale(s.cluster, &s.ns, "deploy/web", 50, &[]).await;
    assert!(
        ok && e.contains("max-replicas 5: asked 50, allowed 5"),
        "{e}"
    );
    assert_eq!(replicas(s.cluster, &s.ns, "deploy/web").await, 5);
}
