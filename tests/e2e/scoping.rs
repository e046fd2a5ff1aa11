//! What waits on the governor under `failurePolicy: Fail` while it is down,
//! against the real apiserver and the shipped webhook configurations
//! (deploy/local, pointed at a port where nothing listens): only governed
//! workloads and `/scale` requests; the deployment controller and writes to
//! ungoverned workloads never do; and in namespace opt-in mode a `/scale`
//! outside the opted-in namespaces does not either.

use serial_test::parallel;

use crate::support::{
    self, TestNamespace, eventually,
    governor::{self, free_port},
    install::{apply_ok, render_local},
};

const WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// kubectl in `ns`: (success, stderr).
async fn kubectl(cluster: &support::Cluster, ns: &TestNamespace, args: &[&str]) -> (bool, String) {
    let mut all = vec!["-n", ns.name()];
    all.extend(args);
    let out = cluster.kubectl(&all).await;
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until the apiserver calls the (dead) webhook for `args`, and
/// returns its refusal.
async fn refused(cluster: &support::Cluster, ns: &TestNamespace, args: &[&str]) -> String {
    eventually(&format!("{args:?} to be refused"), WAIT, || async {
        let (ok, stderr) = kubectl(cluster, ns, args).await;
        (!ok && stderr.contains("failed calling webhook")).then_some(stderr)
    })
    .await
}

/// An ungoverned Deployment `name` in `ns`.
async fn create_plain(cluster: &support::Cluster, ns: &TestNamespace, name: &str) {
    let mut plain = serde_json::to_value(support::deployment(name, 1)).unwrap();
    plain["metadata"]["namespace"] = ns.name().into();
    plain["apiVersion"] = "apps/v1".into();
    plain["kind"] = "Deployment".into();
    apply_ok(cluster, &format!("{ns}-{name}"), &plain.to_string(), &[]).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn with_fail_and_the_governor_down_only_governed_workloads_wait() {
    let cluster = support::require_cluster!();
    let ns = cluster.namespace("failclosed").await;
    let yaml = support::e2e::workload("Deployment", "web", 2, &[("max-replicas", "5")]);
    support::e2e::apply(cluster, &ns, &yaml).await;
    create_plain(cluster, &ns, "plain").await;
    let dead = format!("https://127.0.0.1:{}", free_port());
    let _hooks = governor::register(cluster, &ns, &dead).await;

    // A governed workload's scale is refused with the apiserver's webhook error.
    let error = refused(cluster, &ns, &["scale", "deployment/web", "--replicas=3"]).await;
    assert!(
        error.contains("scale-governor.io") && error.contains("connection refused"),
        "{error}"
    );
    // So is any other write to it, an unlabelling included (the old object
    // carries the label).
    let patch = r#"{"spec":{"replicas":4}}"#;
    refused(cluster, &ns, &["patch", "deployment/web", "-p", patch]).await;
    refused(
        cluster,
        &ns,
        &["label", "deployment/web", "scale-governor.io/governed-"],
    )
    .await;

    // A new ungoverned Deployment is created (no old object: the
    // conditions must not error on CREATE), and an existing one's image
    // change and replica patch go through, and the controller rolls it out.
    create_plain(cluster, &ns, "fresh").await;
    let (ok, e) = kubectl(
        cluster,
        &ns,
        &[
            "set",
            "image",
            "deployment/plain",
            "app=registry.k8s.io/pause:3.9",
        ],
    )
    .await;
    assert!(ok, "{e}");
    let (ok, e) = kubectl(cluster, &ns, &["patch", "deployment/plain", "-p", patch]).await;
    assert!(ok, "{e}");
    eventually("the rollout of plain", WAIT, || async {
        let status = cluster
            .kubectl_ok([
                "get",
                "-n",
                ns.name(),
                "deployment/plain",
                "-o",
                "jsonpath={.metadata.generation} {.status.observedGeneration} {.status.replicas}",
            ])
            .await;
        let images = cluster
            .kubectl_ok([
                "get",
                "replicasets",
                "-n",
                ns.name(),
                "-l",
                "app=plain",
                "-o",
                "jsonpath={.items[*].spec.template.spec.containers[0].image}",
            ])
            .await;
        let parts: Vec<&str> = status.split_whitespace().collect();
        (parts.len() == 3 && parts[0] == parts[1] && images.contains("pause:3.9")).then_some(())
    })
    .await;
    // A /scale carries no labels: the apiserver cannot tell it is not
    // governed, so it waits too (docs/operations.md; namespace opt-in below).
    refused(cluster, &ns, &["scale", "deployment/plain", "--replicas=2"]).await;
    assert_eq!(
        support::e2e::replicas(cluster, &ns, "deployment/web").await,
        2
    );
}

#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn in_namespace_opt_in_mode_a_scale_elsewhere_does_not_wait() {
    let cluster = support::require_cluster!();
    let opted = cluster.namespace("optin").await;
    let other = cluster.namespace("optout").await;
    cluster
        .kubectl_ok([
            "label",
            "namespace",
            opted.name(),
            "scale-governor.io/enabled=true",
        ])
        .await;
    for ns in [&opted, &other] {
        create_plain(cluster, ns, "app").await;
    }
    let name = format!("scale-governor-{}", opted.name());
    let dead = format!("https://127.0.0.1:{}", free_port());
    let rendered = render_local(
        cluster,
        &[
            "--name",
            &name,
            "--url",
            &dead,
            "--ca-bundle",
            &governor::certs().ca_bundle,
            "--failure-policy",
            "Fail",
            "--opt-in",
        ],
    )
    .await;
    apply_ok(cluster, &name, &rendered, &[]).await;
    let _hooks = [
        cluster.delete_on_drop("mutatingwebhookconfiguration", &name),
        cluster.delete_on_drop("validatingwebhookconfiguration", &name),
    ];
    refused(
        cluster,
        &opted,
        &["scale", "deployment/app", "--replicas=2"],
    )
    .await;
    let (ok, e) = kubectl(
        cluster,
        &other,
        &["scale", "deployment/app", "--replicas=3"],
    )
    .await;
    assert!(ok, "a /scale outside the opted-in namespaces waited: {e}");
    assert_eq!(
        support::e2e::replicas(cluster, &other, "deployment/app").await,
        3
    );
}
