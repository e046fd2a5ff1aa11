//! Installing as a user would, on a control plane nobody else uses: the
//! kustomize base and the Helm chart each in one command on a fresh
//! cluster, their pods admitted under Pod Security "restricted" by the real
//! ReplicaSet controller (and a broken variant refused), every overlay and
//! chart option that needs another project's CRDs accepted by a
//! server-side dry run, and a namespace override that keeps the governor
//! out of its own webhooks.

use std::time::Duration;

use serde_json::{Value, json};
use serial_test::serial;

use crate::support::{
    self, Cluster, eventually,
    install::{
        apply, apply_ok, documents, find, helm, helm_ok, helm_template, install_crds, kustomize,
        root,
    },
};

const WAIT: Duration = Duration::from_secs(60);

/// Pod names in `ns` with `selector`.
async fn pods(cluster: &Cluster, ns: &str, selector: &str) -> Vec<String> {
    cluster
        .kubectl_ok(["get", "pods", "-n", ns, "-l", selector, "-o", "name"])
        .await
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Messages of the `FailedCreate` Events in `ns`.
async fn failed_creates(cluster: &Cluster, ns: &str) -> Vec<String> {
    cluster
        .kubectl_ok([
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            "reason=FailedCreate",
            "-o",
            "jsonpath={range .items[*]}{.involvedObject.name}: {.message}{\"\\n\"}{end}",
        ])
        .await
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The Deployment's pod template admitted under `restricted`: the
/// ReplicaSet controller creates `replicas` pods with no FailedCreate.
async fn pods_are_admitted(cluster: &Cluster, ns: &str, selector: &str, replicas: usize) {
    eventually(
        &format!("{replicas} pods ({selector}) created in {ns}"),
        WAIT,
        || async { (pods(cluster, ns, selector).await.len() == replicas).then_some(()) },
    )
    .await;
    let failed = failed_creates(cluster, ns).await;
    assert!(failed.is_empty(), "pods were refused: {failed:?}");
}

#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[serial]
async fn the_base_installs_in_one_command_and_its_pods_pass_pod_security_restricted() {
    let cluster = support::install::fresh_cluster();
    let _one = support::install::one_at_a_time().await;
    let base = root().join("deploy/base");
    // One command on a fresh cluster: the Namespace goes first.
    cluster
        .kubectl_ok(["apply", "-k", base.to_str().unwrap()])
        .await;
    let labels = cluster
        .kubectl_ok([
            "get",
            "namespace",
            "scale-governor",
            "-o",
            "jsonpath={.metadata.labels}",
        ])
        .await;
    assert!(
        labels.contains(r#""pod-security.kubernetes.io/enforce":"restricted""#),
        "{labels}"
    );
    pods_are_admitted(
        cluster,
        "scale-governor",
        "app.kubernetes.io/name=scale-governor",
        2,
    )
    .await;

    // The same pod spec without its seccomp profile is refused.
    let docs = documents(&kustomize(cluster, "deploy/base").await);
    let mut broken = find(&docs, "Deployment", "scale-governor").clone();
    broken["metadata"]["name"] = json!("broken");
    let labels = json!({"app.kubernetes.io/name": "broken"});
    broken["spec"]["selector"]["matchLabels"] = labels.clone();
    broken["spec"]["template"]["metadata"]["labels"] = labels;
    broken["spec"]["template"]["spec"]["topologySpreadConstraints"] = json!([]);
    let security = broken["spec"]["template"]["spec"]["securityContext"]
        .as_object_mut()
        .unwrap();
    assert!(security.remove("seccompProfile").is_some());
    apply_ok(cluster, "broken", &broken.to_string(), &[]).await;
    let refused = eventually("the broken pods refused", WAIT, || async {
        failed_creates(cluster, "scale-governor")
            .await
            .into_iter()
            .find(|m| m.starts_with("broken-"))
    })
    .await;
    assert!(
        refused.contains("violates PodSecurity \"restricted:latest\"")
            && refused.contains("seccompProfile"),
        "{refused}"
    );
    assert!(
        pods(cluster, "scale-governor", "app.kubernetes.io/name=broken")
            .await
            .is_empty()
    );

    // Uninstall as docs/operations.md says: the webhooks first.
    cluster
        .kubectl_ok([
            "delete",
            "mutatingwebhookconfiguration,validatingwebhookconfiguration",
            "scale-governor",
        ])
        .await;
    cluster
        .kubectl_ok([
            "delete",
            "-k",
            base.to_str().unwrap(),
            "--ignore-not-found",
            "--wait=true",
            "--timeout=120s",
        ])
        .await;
}

#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[serial]
async fn the_chart_installs_with_default_values_in_one_command() {
    let cluster = support::install::fresh_cluster();
    let _one = support::install::one_at_a_time().await;
    let chart = support::install::chart();
    let lint = helm_ok(cluster, &["lint", chart.to_str().unwrap()]).await;
    assert!(lint.contains("0 chart(s) failed"), "{lint}");
    helm_ok(
        cluster,
        &[
            "install",
            "scale-governor",
            chart.to_str().unwrap(),
            "--namespace",
            "sg-helm",
            "--create-namespace",
        ],
    )
    .await;
    // Under "restricted", which helm's namespace does not enforce by itself.
    cluster
        .kubectl_ok([
            "label",
            "namespace",
            "sg-helm",
            "pod-security.kubernetes.io/enforce=restricted",
        ])
        .await;
    cluster
        .kubectl_ok([
            "delete",
            "pods",
            "-n",
            "sg-helm",
            "-l",
            "app.kubernetes.io/instance=scale-governor",
            "--wait=false",
        ])
        .await;
    pods_are_admitted(
        cluster,
        "sg-helm",
        "app.kubernetes.io/instance=scale-governor",
        2,
    )
    .await;
    // The release namespace is left out of its own webhooks, by name.
    let selector = cluster
        .kubectl_ok([
            "get",
            "validatingwebhookconfiguration",
            "scale-governor",
            "-o",
            "jsonpath={.webhooks[0].namespaceSelector}",
        ])
        .await;
    assert!(
        selector.contains(r#""values":["kube-system","sg-helm"]"#),
        "{selector}"
    );
    helm_ok(
        cluster,
        &["uninstall", "scale-governor", "--namespace", "sg-helm"],
    )
    .await;
    cluster
        .kubectl_ok(["delete", "namespace", "sg-helm", "--timeout=120s"])
        .await;
}

#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[serial]
async fn every_overlay_and_chart_option_passes_a_server_side_dry_run() {
    let cluster = support::install::fresh_cluster();
    let _one = support::install::one_at_a_time().await;
    install_crds(cluster).await;
    // A dry run creates no namespace, so the governor's namespace must
    // exist; deleted again at the end.
    let _ = cluster
        .kubectl(["create", "namespace", "scale-governor"])
        .await;
    for dir in [
        "deploy/base",
        "deploy/strict",
        "deploy/cert-manager",
        "deploy/monitoring",
        "deploy/local",
    ] {
        let rendered = kustomize(cluster, dir).await;
        let out = apply(cluster, dir, &rendered, &["--dry-run=server"]).await;
        assert!(
            out.status.success(),
            "{dir}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ca = support::governor::certs().ca_bundle.clone();
    let provided = format!("certificates.provided.caBundle={ca}");
    let options: [&[&str]; 5] = [
        &[],
        &[
            "certificates.mode=cert-manager",
            "metrics.serviceMonitor.enabled=true",
            "metrics.prometheusRule.enabled=true",
            "metrics.dashboard.enabled=true",
            "networkPolicy.enabled=true",
        ],
        &[
            "webhook.failurePolicy=Fail",
            "webhook.namespaces.mode=optIn",
            "policyAdmins={group=system:masters,user=alice}",
        ],
        &[
            "certificates.mode=provided",
            "certificates.provided.secretName=my-tls",
            &provided,
        ],
        &[
            "certificates.mode=cert-manager",
            "certificates.certManager.issuerRef.name=corp",
            "certificates.certManager.issuerRef.kind=ClusterIssuer",
            "confine.enabled=false",
        ],
    ];
    for set in options {
        let rendered = helm_template(cluster, "scale-governor", set).await;
        let out = apply(cluster, "chart", &rendered, &["--dry-run=server"]).await;
        assert!(
            out.status.success(),
            "helm template --set {set:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A value the chart does not know is refused at render time.
    let wrong = helm(
        cluster,
        &[
            "template",
            "x",
            support::install::chart().to_str().unwrap(),
            "--kube-version",
            "1.35.0",
            "--set",
            "webhook.failurePolicy=Sometimes",
        ],
    )
    .await;
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("must be Ignore or Fail"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    cluster
        .kubectl_ok(["delete", "namespace", "scale-governor", "--timeout=120s"])
        .await;
}

/// The kustomize base moved into another namespace by an overlay still
/// leaves the governor's own namespace out of its webhooks.
#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[serial]
async fn a_namespace_override_still_excludes_the_governors_own_namespace() {
    let cluster = support::install::fresh_cluster();
    let rendered = kustomize(cluster, "deploy/examples/other-namespace").await;
    let docs = documents(&rendered);
    let namespaces: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Namespace").collect();
    assert_eq!(namespaces.len(), 1, "{namespaces:?}");
    let namespace = namespaces[0];
    assert_eq!(namespace["metadata"]["name"], "platform");
    let labels = &namespace["metadata"]["labels"];
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let hook = &find(&docs, kind, "scale-governor")["webhooks"][0];
        assert_eq!(hook["clientConfig"]["service"]["namespace"], "platform");
        let excluded = hook["namespaceSelector"]["matchExpressions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| match e["operator"].as_str() {
                Some("DoesNotExist") => labels.get(e["key"].as_str().unwrap()).is_some(),
                Some("NotIn") => e["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| labels.get(e["key"].as_str().unwrap()) == Some(v)),
                _ => false,
            });
        assert!(excluded, "{kind} sends requests in platform: {hook}");
    }
    // The admission policies name the governor where it now runs.
    let confine = find(&docs, "ValidatingAdmissionPolicy", "scale-governor-confine");
    assert!(
        confine["spec"]["matchConditions"][0]["expression"]
            .as_str()
            .unwrap()
            .contains("system:serviceaccount:platform:scale-governor"),
        "{confine}"
    );
    let binding = find(&docs, "ClusterRoleBinding", "scale-governor");
    assert_eq!(binding["subjects"][0]["namespace"], "platform");

    // The chart derives it from the release namespace.
    let chart = documents(&helm_template(cluster, "platform", &[]).await);
    let hook = &find(&chart, "MutatingWebhookConfiguration", "scale-governor")["webhooks"][0];
    assert_eq!(
        hook["namespaceSelector"]["matchExpressions"][0]["values"],
        json!(["kube-system", "platform"])
    );
}
