//! The monitoring kit against a live `serve`: its `/metrics` passes
//! `promtool check metrics`, every series the alerts and the dashboard use
//! is exported, the alert rules pass `promtool check rules` and their unit
//! tests (one per alert), and a real Prometheus scrapes the governor and
//! loads the rules.

use std::{process::Stdio, time::Duration};

use serial_test::parallel;
use tokio::io::AsyncWriteExt;

use crate::support::{
    self, eventually,
    governor::{Governor, admin_request},
    install::root,
    prometheus::Prometheus,
};

/// A GET with an `Accept` header on the admin port: (head, body).
async fn get_with_accept(port: u16, accept: &str) -> (String, String) {
    use tokio::io::AsyncReadExt;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

#[tokio::test]
#[ignore = "needs the local control plane (make test, or cargo test -- --include-ignored)"]
#[parallel]
async fn the_live_metrics_and_the_alert_rules_pass_promtool_and_prometheus_scrapes_them() {
    let cluster = support::require_cluster!();
    let ns = cluster.namespace("monitoring").await;
    let g = Governor::start(cluster, ns.name(), "a").await;

    // Plain text unless OpenMetrics is asked for: promtool reads it.
    let (code, text) = admin_request(g.admin_port, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    let mut promtool = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (install it with .ci/tools.sh prometheus)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .await
        .unwrap();
    let checked = promtool.wait_with_output().await.unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics:\n{}{}\n---\n{text}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(text.contains(&format!(
        "scale_governor_build_info{{version=\"{}\"",
        env!("CARGO_PKG_VERSION")
    )));
    for process in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(
            text.contains(&format!("\n{process} ")),
            "{process} missing:\n{text}"
        );
    }
    let (head, open) =
        get_with_accept(g.admin_port, "application/openmetrics-text;version=1.0.0").await;
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(open.ends_with("# EOF\n"), "{open}");

    // (That every series the alerts and the dashboard read is exported is
    // checked by a unit test in src/metrics.rs, with every family filled.)
    let monitoring = root().join("deploy/monitoring");

    // promtool check rules, and a unit test per alert.
    let work = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("alert-rules");
    let out = tokio::process::Command::new(monitoring.join("check.sh"))
        .arg(&work)
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts = std::fs::read_to_string(monitoring.join("prometheusrule.yaml"))
        .unwrap()
        .matches("- alert: ")
        .count();
    assert!(
        said.contains(&format!("SUCCESS: {alerts} rules found")),
        "{said}"
    );

    // A real Prometheus scrapes serve as job scale-governor and loads them.
    let target = format!("127.0.0.1:{}", g.admin_port);
    let prometheus = Prometheus::scraping(
        "prometheus-governor",
        "scale-governor",
        &target,
        &work.join("alerts.rules.yaml"),
    )
    .await;
    eventually(
        "Prometheus to scrape serve",
        Duration::from_secs(30),
        || async {
            let up = prometheus.query("up{job=\"scale-governor\"}").await?;
            let build = prometheus.query("scale_governor_build_info").await?;
            (up == [1.0] && build == [1.0]).then_some(())
        },
    )
    .await;
    let rules = prometheus.get("/api/v1/rules").await.unwrap();
    let rules: serde_json::Value = serde_json::from_str(&rules).unwrap();
    let loaded = rules["data"]["groups"][0]["rules"].as_array().unwrap();
    assert_eq!(loaded.len(), alerts, "{rules}");
    eventually("every rule evaluated", Duration::from_secs(20), || async {
        let rules = prometheus.get("/api/v1/rules").await?;
        let rules: serde_json::Value = serde_json::from_str(&rules).ok()?;
        rules["data"]["groups"][0]["rules"]
            .as_array()?
            .iter()
            .all(|r| r["health"] == "ok")
            .then_some(())
    })
    .await;
    // A governor that is up, leads and serves is no alert's business.
    let firing = prometheus
        .query("ALERTS{alertstate=\"firing\"}")
        .await
        .unwrap();
    assert!(firing.is_empty(), "{firing:?}");
}
