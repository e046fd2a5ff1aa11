//! Helpers the end-to-end test files share: a namespace with its own
//! governor, workload manifests, and kubectl wrappers.

use std::time::Duration;

use super::{
    Cluster, DeleteOnDrop, TestNamespace, eventually,
    governor::{self, Governor},
};

/// How long an e2e step may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// A governed workload manifest with `scale-governor.io/` annotations.
pub fn workload(kind: &str, name: &str, replicas: u32, annotations: &[(&str, &str)]) -> String {
    let annotations: String = annotations
        .iter()
        .map(|(k, v)| format!("    scale-governor.io/{k}: {v:?}\n"))
        .collect();
    let service = if kind == "StatefulSet" {
        format!("  serviceName: {name}\n")
    } else {
        String::new()
    };
    format!(
        "apiVersion: apps/v1\nkind: {kind}\nmetadata:\n  name: {name}\n  labels:\n    app: {name}\n    scale-governor.io/governed: \"true\"\n  annotations:\n{annotations}spec:\n  replicas: {replicas}\n{service}  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers: [{{name: app, image: registry.k8s.io/pause:3.10}}]\n"
    )
}

/// `kubectl apply` of a manifest into the namespace.
pub async fn apply(cluster: &Cluster, ns: &TestNamespace, yaml: &str) -> std::process::Output {
    apply_with(cluster, ns, yaml, &[]).await
}

/// [`apply`] with more flags (`--dry-run=server`, `--server-side`, ...).
pub async fn apply_with(
    cluster: &Cluster,
    ns: &TestNamespace,
    yaml: &str,
    flags: &[&str],
) -> std::process::Output {
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{}-{}-{}.yaml",
        ns.name(),
        yaml.len(),
        flags.len()
    ));
    std::fs::write(&path, yaml).unwrap();
    let mut args = vec!["apply", "-n", ns.name(), "-f", path.to_str().unwrap()];
    args.extend_from_slice(flags);
    cluster.kubectl(args).await
}

/// [`apply_with`] that must succeed; returns what kubectl printed on
/// stderr (the apiserver's warnings).
pub async fn apply_ok(cluster: &Cluster, ns: &TestNamespace, yaml: &str, flags: &[&str]) -> String {
    let out = apply_with(cluster, ns, yaml, flags).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "kubectl apply {flags:?}: {stderr}");
    stderr
}

/// The stored `spec.replicas` of `resource`.
pub async fn replicas(cluster: &Cluster, ns: &TestNamespace, resource: &str) -> u32 {
    cluster
        .kubectl_ok([
            "get",
            "-n",
            ns.name(),
            resource,
            "-o",
            "jsonpath={.spec.replicas}",
        ])
        .await
        .trim()
        .parse()
        .expect("spec.replicas")
}

/// `kubectl scale`, returning (success, stderr).
pub async fn scale(
    cluster: &Cluster,
    ns: &TestNamespace,
    resource: &str,
    to: u32,
    extra: &[&str],
) -> (bool, String) {
    let to = format!("--replicas={to}");
    let mut args = vec!["scale", "-n", ns.name(), resource, to.as_str()];
    args.extend_from_slice(extra);
    let out = cluster.kubectl(&args).await;
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `kubectl describe`.
pub async fn describe(cluster: &Cluster, ns: &TestNamespace, resource: &str) -> String {
    cluster
        .kubectl_ok(["describe", "-n", ns.name(), resource])
        .await
}

/// A namespace with its own governor registered as its webhooks.
pub struct Setup {
    /// The shared local control plane.
    pub cluster: &'static Cluster,
    /// This test's namespace.
    pub ns: TestNamespace,
    /// The governor serving it.
    pub governor: Governor,
    _webhooks: Option<[DeleteOnDrop; 2]>,
}

impl Setup {
    /// A setup from parts made by hand (a governor with its own
    /// certificate); the caller keeps the webhook registrations alive.
    pub fn adopt(cluster: &'static Cluster, ns: TestNamespace, governor: Governor) -> Setup {
        Setup {
            cluster,
            ns,
            governor,
            _webhooks: None,
        }
    }
}

/// A fresh namespace, a governor for it, and its webhooks registered.
pub async fn setup(prefix: &str) -> Option<Setup> {
    setup_with(prefix, &[]).await
}

/// [`setup`] with extra `serve` flags for the governor.
pub async fn setup_with(prefix: &str, serve_flags: &[&str]) -> Option<Setup> {
    let cluster = super::require_cluster!(None);
    let ns = cluster.namespace(prefix).await;
    Some(setup_in(cluster, ns, serve_flags).await)
}

/// [`setup_with`] in a namespace made beforehand (e.g. to name it in a
/// sources file the governor reads at start).
pub async fn setup_in(cluster: &'static Cluster, ns: TestNamespace, serve_flags: &[&str]) -> Setup {
    let governor = Governor::start_with(cluster, ns.name(), "a", serve_flags).await;
    let webhooks = governor::register(cluster, &ns, &governor.url()).await;
    Setup {
        cluster,
        ns,
        governor,
        _webhooks: Some(webhooks),
    }
}

/// A create through freshly registered webhooks can race the apiserver's
/// webhook informer; retry until the governor has seen it.
pub async fn create(s: &Setup, yaml: &str) {
    eventually("the create to pass through the webhook", WAIT, || async {
        let before = s.governor.reviews().await;
        let out = apply(s.cluster, &s.ns, yaml).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (s.governor.reviews().await > before).then_some(())
    })
    .await;
}

/// Lets `user` get, patch and scale Deployments in the namespace (the
/// built-in roles are empty without the aggregation controller).
pub async fn grant_scaler(s: &Setup, user: &str) {
    let ns = s.ns.name();
    let role = format!("scaler-{user}");
    s.cluster
        .kubectl_ok([
            "create",
            "role",
            &role,
            "--verb=get,list,patch,update",
            "--resource=deployments,deployments/scale",
            "-n",
            ns,
        ])
        .await;
    s.cluster
        .kubectl_ok([
            "create",
            "rolebinding",
            &role,
            &format!("--role={role}"),
            &format!("--user={user}"),
            "-n",
            ns,
        ])
        .await;
}

/// `kubectl patch --type=merge`, returning (success, stderr).
pub async fn patch(s: &Setup, resource: &str, json: &str, extra: &[&str]) -> (bool, String) {
    let mut args = vec![
        "patch",
        "-n",
        s.ns.name(),
        resource,
        "--type=merge",
        "-p",
        json,
    ];
    args.extend_from_slice(extra);
    let out = s.cluster.kubectl(&args).await;
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Events in the namespace with this reason, as `reason: message` lines.
pub async fn events(s: &Setup, reason: &str) -> String {
    s.cluster
        .kubectl_ok([
            "get",
            "events",
            "-n",
            s.ns.name(),
            &format!("--field-selector=reason={reason}"),
            "-o",
            "jsonpath={range .items[*]}{.reason}: {.note}{.message}{\"\\n\"}{end}",
        ])
        .await
}
