//! The governor's identity as deploy/base installs it, for one test
//! namespace: its ServiceAccount with the RBAC of deploy/base/rbac.yaml, the
//! admission policies of deploy/base/confine.yaml bound to the namespace,
//! and a kubeconfig with a token for it. Every e2e governor runs under it,
//! so the whole suite proves that what `serve` does fits what it is granted.

use std::path::{Path, PathBuf};

use super::{Cluster, DeleteOnDrop};

/// The ServiceAccount's name, as in deploy/base.
pub const SERVICE_ACCOUNT: &str = "scale-governor";

/// How deploy/base names the governor in a binding; kustomize adds the
/// namespace (and moves it with a `namespace:` override), these tests do.
const SUBJECT: &str = "  - kind: ServiceAccount\n    name: scale-governor\n";

/// A governor identity; its cluster-wide grants are removed on drop.
pub struct Identity {
    /// A kubeconfig that authenticates as the ServiceAccount.
    pub kubeconfig: PathBuf,
    _cleanup: Vec<DeleteOnDrop>,
}

fn deploy(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/base")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// deploy/base/rbac.yaml for namespace `ns`: its ClusterRoleBinding named
/// `binding` and naming the ServiceAccount in `ns`.
pub fn rbac_for(ns: &str, binding: &str) -> String {
    let text = deploy("rbac.yaml");
    let from = "kind: ClusterRoleBinding\nmetadata:\n  name: scale-governor\n";
    assert!(text.contains(from), "rbac.yaml changed shape");
    text.replace(
        from,
        &format!("kind: ClusterRoleBinding\nmetadata:\n  name: {binding}\n"),
    )
    .replace(SUBJECT, &format!("{SUBJECT}    namespace: {ns}\n"))
}

/// deploy/base/certificates.yaml for the governor of namespace `ns`: the
/// cluster-wide grant on its webhook configurations named after them
/// (`scale-governor-<ns>`, as [`super::governor::register`] names them).
pub fn certificates_for(ns: &str) -> String {
    let text = deploy("certificates.yaml");
    let cluster_wide = [
        "kind: ClusterRole\nmetadata:\n  name: scale-governor-webhooks\n",
        "kind: ClusterRoleBinding\nmetadata:\n  name: scale-governor-webhooks\n",
        "  kind: ClusterRole\n  name: scale-governor-webhooks\n",
        "resourceNames: [\"scale-governor\"]",
        SUBJECT,
    ];
    for s in cluster_wide {
        assert!(text.contains(s), "certificates.yaml changed shape: {s:?}");
    }
    let mut text = text.replace(
        cluster_wide[3],
        &format!("resourceNames: [\"scale-governor-{ns}\"]"),
    );
    for named in &cluster_wide[..3] {
        text = text.replace(
            named,
            &named.replace("webhooks\n", &format!("webhooks-{ns}\n")),
        );
    }
    text.replace(SUBJECT, &format!("{SUBJECT}    namespace: {ns}\n"))
}

/// deploy/base/confine.yaml for the governor of namespace `ns`, its
/// policies named with `-<ns>` and bound to that namespace only.
pub fn confine_for(ns: &str) -> String {
    let username = format!("system:serviceaccount:{ns}:{SERVICE_ACCOUNT}");
    let text = deploy("confine.yaml");
    assert!(text.contains("system:serviceaccount:scale-governor:scale-governor"));
    text.replace("system:serviceaccount:scale-governor:scale-governor", &username)
        .replace("scale-governor-confine", &format!("scale-governor-confine-{ns}"))
        .replace(
            "scale-governor-owned-state",
            &format!("scale-governor-owned-state-{ns}"),
        )
        .replace(
            "  validationActions: [Deny]\n",
            &format!(
                "  validationActions: [Deny]\n  matchResources:\n    namespaceSelector:\n      matchLabels: {{kubernetes.io/metadata.name: {ns}}}\n"
            ),
        )
}

/// `kubectl apply`, tried again when a test running beside this one
/// created the shared ClusterRole (or changed it) in the same instant.
async fn apply(cluster: &Cluster, ns: &str, file: &Path, text: &str) {
    std::fs::write(file, text).unwrap();
    let args = ["apply", "-n", ns, "-f", file.to_str().unwrap()];
    for _ in 0..10 {
        let out = cluster.kubectl(args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            return;
        }
        if !(stderr.contains("AlreadyExists") || stderr.contains("the object has been modified")) {
            panic!("kubectl {args:?} failed:\n{stderr}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    cluster.kubectl_ok(args).await;
}

/// Makes (or refreshes) the governor's identity in `ns`; `tag` tells apart
/// the cluster-wide bindings of several governors in one namespace.
pub async fn governor_identity(cluster: &Cluster, ns: &str, tag: &str) -> Identity {
    let binding = format!("scale-governor-{ns}-{tag}");
    let dir = cluster.dir().join(format!("identity-{ns}-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    apply(cluster, ns, &dir.join("rbac.yaml"), &rbac_for(ns, &binding)).await;
    apply(cluster, ns, &dir.join("confine.yaml"), &confine_for(ns)).await;
    let certificates = certificates_for(ns);
    apply(cluster, ns, &dir.join("certificates.yaml"), &certificates).await;
    let cleanup = vec![
        cluster.delete_on_drop("clusterrolebinding", &binding),
        cluster.delete_on_drop(
            "clusterrolebinding",
            &format!("scale-governor-webhooks-{ns}"),
        ),
        cluster.delete_on_drop("clusterrole", &format!("scale-governor-webhooks-{ns}")),
        cluster.delete_on_drop(
            "validatingadmissionpolicybinding",
            &format!("scale-governor-confine-{ns}"),
        ),
        cluster.delete_on_drop(
            "validatingadmissionpolicy",
            &format!("scale-governor-confine-{ns}"),
        ),
        cluster.delete_on_drop(
            "validatingadmissionpolicybinding",
            &format!("scale-governor-owned-state-{ns}"),
        ),
        cluster.delete_on_drop(
            "validatingadmissionpolicy",
            &format!("scale-governor-owned-state-{ns}"),
        ),
    ];
    let token = cluster
        .kubectl_ok([
            "create",
            "token",
            SERVICE_ACCOUNT,
            "-n",
            ns,
            "--duration=6h",
        ])
        .await;
    let cluster_info = cluster
        .kubectl_ok([
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server} {.clusters[0].cluster.certificate-authority-data}",
        ])
        .await;
    let (server, ca) = cluster_info
        .trim()
        .split_once(' ')
        .expect("a server and a CA in the kubeconfig");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: governor\n  user:\n    token: {}\ncontexts:\n- name: governor\n  context: {{cluster: local, user: governor, namespace: {ns}}}\ncurrent-context: governor\n",
            server.trim(),
            ca.trim(),
            token.trim()
        ),
    )
    .unwrap();
    Identity {
        kubeconfig,
        _cleanup: cleanup,
    }
}
