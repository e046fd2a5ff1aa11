//! docs/install.md's local walk-through, run as written (by
//! tests/install-doc.sh) on a fresh control plane: from nothing to a
//! governed Deployment being clamped, with no caBundle pasted anywhere.

use std::net::TcpListener;

use serial_test::serial;

use crate::support;

#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[serial]
async fn the_install_guide_gets_a_fresh_cluster_to_a_clamped_deployment() {
    let cluster = support::install::fresh_cluster();
    let _one = support::install::one_at_a_time().await;
    // The guide uses serve's default ports.
    for port in [8443, 8080] {
        assert!(
            TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} is taken; the guide's governor needs it"
        );
    }
    let kubectl_dir = cluster.kubectl_path().parent().unwrap().to_owned();
    let path = std::env::join_paths(std::iter::once(kubectl_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let root = support::install::root();
    let out = tokio::process::Command::new(root.join("tests/install-doc.sh"))
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("PATH", path)
        .env("TMPDIR", env!("CARGO_TARGET_TMPDIR"))
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let log = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("scale-governor.log"),
    )
    .unwrap_or_default();
    assert!(
        out.status.success(),
        "the guide failed:\n{stdout}\n{stderr}\n--- serve:\n{log}"
    );
    // kubectl scale printed the governor's warning, and the stored count
    // is what the policy allowed, not the 100 asked for.
    assert!(stderr.contains("Warning: scale-governor: "), "{stderr}");
    let replicas: u32 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("replicas: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no replica count printed:\n{stdout}"));
    assert!((2..=20).contains(&replicas), "{replicas} replicas");
    assert!(log.contains("injected the caBundle"), "{log}");
    assert!(stdout.contains("deployment.apps/web annotated"), "{stdout}");
    // The guide's last step left nothing behind.
    let left = cluster
        .kubectl_ok(["get", "validatingwebhookconfigurations", "-o", "name"])
        .await;
    assert!(!left.contains("scale-governor"), "{left}");
}
