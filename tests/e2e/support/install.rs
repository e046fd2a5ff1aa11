//! Installing the shipped manifests as a user would: `kubectl kustomize`
//! of a `deploy/` directory, `helm` (built by `.ci/tools.sh helm`) on the
//! chart, parsing the rendered documents, and the minimal copies of other
//! projects' CRDs (cert-manager, prometheus-operator) that their objects
//! need for a server-side dry run.

use std::{
    path::{Path, PathBuf},
    process::Output,
    sync::OnceLock,
};

use serde_json::Value;

use super::Cluster;

/// A control plane nobody else uses, started once per test binary: for
/// tests that install cluster-wide objects under their shipped names (the
/// kustomize base, the Helm chart, docs/install.md) as on a fresh cluster,
/// each holding [`one_at_a_time`] and leaving nothing behind. Panics when
/// it cannot be started, Go missing included.
pub fn fresh_cluster() -> &'static Cluster {
    static FRESH: OnceLock<Result<Cluster, String>> = OnceLock::new();
    let fresh = FRESH.get_or_init(|| {
        super::install_crypto_provider();
        match super::start_private(&format!("cluster-fresh-{}-", env!("CARGO_CRATE_NAME")), &[]) {
            Ok(Some(cluster)) => Ok(cluster),
            Ok(None) => Err("Go is not on PATH and the binaries are not cached".to_owned()),
            Err(e) => Err(format!("{e:#}")),
        }
    });
    fresh
        .as_ref()
        .unwrap_or_else(|e| panic!("fresh control plane unavailable: {e}"))
}

/// The installs on the [`fresh_cluster`] use the shipped, cluster-wide
/// names: one at a time. Hold the guard until the install is gone again.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static INSTALLS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    INSTALLS.lock().await
}

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The chart's directory.
pub fn chart() -> PathBuf {
    root().join("deploy/helm/scale-governor")
}

/// The helm binary, built and cached by `.ci/tools.sh helm` on first use.
pub fn helm_bin() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let out = std::process::Command::new(root().join(".ci/tools.sh"))
            .arg("helm")
            .output()
            .expect("running .ci/tools.sh helm");
        assert!(
            out.status.success(),
            ".ci/tools.sh helm failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("helm")
    })
}

/// Runs helm against `cluster`; its chart-symlink notices on stderr are
/// dropped from the output.
pub async fn helm(cluster: &Cluster, args: &[&str]) -> Output {
    let mut out = tokio::process::Command::new(helm_bin())
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(args)
        .output()
        .await
        .expect("running helm");
    let stderr = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.contains("found symbolic link in path"))
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    out.stderr = stderr.into_bytes();
    out
}

/// [`helm`], panicking with its stderr unless it succeeds; returns stdout.
pub async fn helm_ok(cluster: &Cluster, args: &[&str]) -> String {
    let out = helm(cluster, args).await;
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `helm template` of the chart as release `scale-governor` in `namespace`
/// with `--set` values, for the apiserver version the cluster runs.
pub async fn helm_template(cluster: &Cluster, namespace: &str, set: &[&str]) -> String {
    let chart = chart();
    let mut args = vec![
        "template",
        "scale-governor",
        chart.to_str().unwrap(),
        "--namespace",
        namespace,
        "--kube-version",
        "1.35.0",
    ];
    for s in set {
        args.extend(["--set", s]);
    }
    helm_ok(cluster, &args).await
}

/// `kubectl kustomize` of `deploy/<dir>` (or any directory under the root).
pub async fn kustomize(cluster: &Cluster, dir: &str) -> String {
    let path = root().join(dir);
    cluster
        .kubectl_ok(["kustomize", path.to_str().unwrap()])
        .await
}

/// The documents of a multi-document YAML stream, empty ones left out.
pub fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .expect("rendered YAML parses")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// The one document of `kind` named `name`.
pub fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered output"))
}

/// Writes `yaml` to a scratch file and runs `kubectl apply -f` on it with
/// `extra` arguments (e.g. `--dry-run=server`).
pub async fn apply(cluster: &Cluster, name: &str, yaml: &str, extra: &[&str]) -> Output {
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("install-{}.yaml", name.replace('/', "-")));
    std::fs::write(&file, yaml).unwrap();
    let mut args = vec!["apply", "-f", file.to_str().unwrap()];
    args.extend(extra);
    cluster.kubectl(&args).await
}

/// [`apply`], panicking with kubectl's stderr unless it succeeds.
pub async fn apply_ok(cluster: &Cluster, name: &str, yaml: &str, extra: &[&str]) -> String {
    let out = apply(cluster, name, yaml, extra).await;
    assert!(
        out.status.success(),
        "kubectl apply of {name} {extra:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Installs the minimal CRDs of tests/fixtures/crds (cert-manager's
/// Issuer and Certificate, prometheus-operator's ServiceMonitor and
/// PrometheusRule) and waits until the apiserver serves them.
pub async fn install_crds(cluster: &Cluster) {
    let dir = root().join("tests/fixtures/crds");
    cluster
        .kubectl_ok(["apply", "-f", dir.to_str().unwrap()])
        .await;
    cluster
        .kubectl_ok([
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "-f",
            dir.to_str().unwrap(),
        ])
        .await;
}

/// `deploy/local/render.sh` with `args`, run with the cluster's kubectl on
/// PATH: the shipped webhook configurations pointed at this machine.
pub async fn render_local(cluster: &Cluster, args: &[&str]) -> String {
    let kubectl_dir = cluster.kubectl_path().parent().unwrap().to_owned();
    let path = std::env::join_paths(std::iter::once(kubectl_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let out = tokio::process::Command::new(root().join("deploy/local/render.sh"))
        .args(args)
        .env("PATH", path)
        .output()
        .await
        .expect("running deploy/local/render.sh");
    assert!(
        out.status.success(),
        "deploy/local/render.sh {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
