//! A real Prometheus server (Debian's `prometheus`, installed by
//! `.ci/tools.sh prometheus`) scraping an exporter the test controls, once a
//! second. Killed on drop.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, extract::State, routing::get};
use tokio::process::{Child, Command};

/// Gauges the exporter serves, by their full series name
/// (`test_demand{workload="web"}`).
#[derive(Clone, Default)]
pub struct Gauges(Arc<Mutex<BTreeMap<String, f64>>>);

impl Gauges {
    /// Sets one series.
    pub fn set(&self, series: &str, value: f64) {
        self.0.lock().unwrap().insert(series.to_owned(), value);
    }
}

async fn metrics(State(g): State<Gauges>) -> String {
    let mut out = String::from("# TYPE test_demand gauge\n");
    for (series, value) in g.0.lock().unwrap().iter() {
        out.push_str(&format!("{series} {value}\n"));
    }
    out
}

/// The exporter and the server scraping it.
pub struct Prometheus {
    /// `http://127.0.0.1:PORT` of the Prometheus API.
    pub url: String,
    /// What the exporter serves.
    pub gauges: Gauges,
    child: Option<Child>,
    _exporter: tokio::task::JoinHandle<()>,
}

/// Starts Prometheus in `target/tmp/<dir>` (emptied first) with a 1 s
/// scrape and evaluation interval and `rest` of its configuration:
/// (process, API URL, directory).
fn launch(dir: &str, rest: &str) -> (Child, String, PathBuf) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(dir);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!("global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n{rest}"),
    )
    .unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("starting prometheus (install it with .ci/tools.sh prometheus)");
    (child, format!("http://127.0.0.1:{port}"), dir)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Prometheus {
    /// Starts both and waits until Prometheus has scraped the exporter.
    pub async fn start(dir: &str) -> Prometheus {
        let gauges = Gauges::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let exporter_addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/metrics", get(metrics))
            .with_state(gauges.clone());
        let exporter = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let (child, url, dir) = launch(
            dir,
            &format!(
                "scrape_configs:\n  - job_name: test\n    static_configs: [{{targets: ['{exporter_addr}']}}]\n"
            ),
        );
        let p = Prometheus {
            url,
            gauges,
            child: Some(child),
            _exporter: exporter,
        };
        p.gauges.set("test_demand{workload=\"probe\"}", 1.0);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if p.query("test_demand").await.is_some_and(|v| !v.is_empty()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus did not scrape the exporter; see {}",
                dir.display()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        p
    }

    /// Prometheus scraping `target` (`host:port` of a `/metrics`) as job
    /// `job`, evaluating the rule file `rules`; the exporter serves nothing
    /// it scrapes. Returns once the API answers.
    pub async fn scraping(
        dir: &str,
        job: &str,
        target: &str,
        rules: &std::path::Path,
    ) -> Prometheus {
        let (child, url, dir) = launch(
            dir,
            &format!(
                "rule_files: ['{}']\nscrape_configs:\n  - job_name: {job}\n    static_configs: [{{targets: ['{target}']}}]\n",
                rules.display()
            ),
        );
        let p = Prometheus {
            url,
            gauges: Gauges::default(),
            child: Some(child),
            _exporter: tokio::spawn(async {}),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while p.get("/-/ready").await.is_none() {
            assert!(
                Instant::now() < deadline,
                "prometheus not ready; see {}",
                dir.display()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        p
    }

    /// The body of a GET on the Prometheus API, when it answers 200.
    pub async fn get(&self, path: &str) -> Option<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let authority = self.url.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(authority).await.ok()?;
        // HTTP/1.0, so a large answer comes whole rather than chunked.
        let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        head.split_whitespace()
            .nth(1)
            .is_some_and(|c| c == "200")
            .then(|| body.to_owned())
    }

    /// An instant query's vector values, or `None` when Prometheus does not
    /// answer.
    pub async fn query(&self, promql: &str) -> Option<Vec<f64>> {
        let path = format!(
            "/api/v1/query?query={}",
            promql
                .replace('{', "%7B")
                .replace('}', "%7D")
                .replace('"', "%22")
        );
        let body = self.get(&path).await?;
        let json: serde_json::Value = serde_json::from_str(body.trim()).ok()?;
        Some(
            json["data"]["result"]
                .as_array()?
                .iter()
                .filter_map(|r| r["value"][1].as_str()?.parse().ok())
                .collect(),
        )
    }

    /// SIGKILL: the source goes away.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}
