//! What happened to one governed workload during a scenario: the metric the
//! HPA read, what the HPA wanted, every review the governor answered, and the
//! replicas that landed. Written as a CSV and an SVG drawn by the same chart
//! code as `simulate`, and replayed through the simulator's HPA and guard to
//! check they agree with the real controllers.

use std::{
    fmt::Write as _,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::Engine;
use chrono::{DateTime, Utc};
use k8s_openapi::api::{apps::v1::Deployment, autoscaling::v2::HorizontalPodAutoscaler};
use kube::Api;
use scale_governor::testing::chart::{self, Figure, Panel, Series, Style};
use serde_json::Value;

use super::{external_metrics::Metric, spread::Spread};

/// The identity kube-controller-manager's HPA writes `/scale` under here.
pub const HPA_USER: &str = "system:kube-controller-manager";

/// One review the governor answered, about the recorded workload.
#[derive(Debug, Clone)]
pub struct Review {
    /// When the answer came back.
    pub at: DateTime<Utc>,
    /// `userInfo.username`.
    pub actor: String,
    /// `scale` for a `/scale` write, empty for the object itself.
    pub subresource: String,
    /// The stored count before the request.
    pub current: u32,
    /// The count asked for.
    pub asked: u32,
    /// Whether the governor let it through.
    pub allowed: bool,
    /// What it lets through: the patched count, the asked one, or (denied)
    /// the current one.
    pub granted: u32,
    /// The refusal or the warnings, as the requester saw them.
    pub message: String,
}

impl Review {
    /// A write by the HPA controller.
    pub fn by_hpa(&self) -> bool {
        self.actor == HPA_USER && self.subresource == "scale"
    }

    /// Whether the governor changed or refused what was asked.
    pub fn governed(&self) -> bool {
        !self.allowed || self.granted != self.asked
    }
}

/// One look at the workload and its HPA.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When.
    pub at: DateTime<Utc>,
    /// `spec.replicas`.
    pub replicas: u32,
    /// `metadata.generation`: it moves with every stored spec change.
    pub generation: i64,
    /// The HPA's `status.desiredReplicas`, when it has one.
    pub hpa_desired: Option<u32>,
    /// The `scale-governor.io/recommendation` annotation.
    pub recommendation: Option<String>,
}

/// Values read with their time, shared with the task that reads them.
type Readings = Arc<Mutex<Vec<(DateTime<Utc>, u64)>>>;

/// Records a workload while a scenario runs; [`Recorder::finish`] returns
/// the [`Timeline`].
pub struct Recorder {
    samples: Arc<Mutex<Vec<Sample>>>,
    reviews: Arc<Mutex<Vec<Review>>>,
    /// What the HPA's External metric said, when the recorder reads it.
    metric: Readings,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Recorder {
    /// Starts sampling `deployments/<name>` (and the HPA of that name) every
    /// 100 ms and reading every review `spread` passes about it.
    pub fn start(client: kube::Client, ns: &str, name: &str, spread: &Spread) -> Recorder {
        Recorder::start_for(client, ns, name, name, spread, false)
    }

    /// [`Recorder::start`] for a workload whose HPA is named `hpa` (KEDA
    /// names its own `keda-hpa-<ScaledObject>`), reading the HPA's External
    /// metric itself every 500 ms when `read_metric` (the metric is served
    /// by someone else's adapter, which logs no query for the chart).
    pub fn start_for(
        client: kube::Client,
        ns: &str,
        name: &str,
        hpa: &str,
        spread: &Spread,
        read_metric: bool,
    ) -> Recorder {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let reviews = Arc::new(Mutex::new(Vec::new()));
        let metric = Arc::new(Mutex::new(Vec::new()));
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
        let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), ns);
        let (name, hpa_name, store) = (name.to_owned(), hpa.to_owned(), samples.clone());
        let (values, namespace) = (metric.clone(), ns.to_owned());
        let poll = tokio::spawn(async move {
            for round in 0u64.. {
                if let Ok(d) = deployments.get(&name).await {
                    let hpa = hpas.get_opt(&hpa_name).await.ok().flatten();
                    if read_metric && round % 5 == 0 {
                        let read = hpa.as_ref().and_then(external_metric);
                        if let Some(v) = read_external(&client, &namespace, read).await {
                            values.lock().unwrap().push((Utc::now(), v));
                        }
                    }
                    // Before its first sync an HPA's status says 0 and
                    // has no conditions: it wants nothing yet.
                    let desired = hpa
                        .and_then(|h| h.status)
                        .filter(|s| s.conditions.is_some())
                        .map(|s| s.desired_replicas as u32);
                    store.lock().unwrap().push(Sample {
                        at: Utc::now(),
                        replicas: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1) as u32,
                        generation: d.metadata.generation.unwrap_or(0),
                        hpa_desired: desired,
                        recommendation: d
                            .metadata
                            .annotations
                            .and_then(|mut a| a.remove("scale-governor.io/recommendation")),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let mut exchanges = spread.exchanges();
        let (ns, store) = (ns.to_owned(), reviews.clone());
        let read = tokio::spawn(async move {
            while let Ok(x) = exchanges.recv().await {
                if let Some(review) = parse(&x.path, &x.request, &x.response, &ns, x.at) {
                    let validating = x.path.ends_with("validate");
                    book(&mut store.lock().unwrap(), review, validating);
                }
            }
        });
        Recorder {
            samples,
            reviews,
            metric,
            tasks: vec![poll, read],
        }
    }

    /// The distinct `spec.replicas` seen so far, in order.
    pub fn sequence(&self) -> Vec<u32> {
        distinct(self.samples.lock().unwrap().iter().map(|s| s.replicas))
    }

    /// The reviews so far.
    pub fn reviews(&self) -> Vec<Review> {
        self.reviews.lock().unwrap().clone()
    }

    /// Stops recording two seconds from now, so the chart shows where
    /// things came to rest; `metric` is what the HPA scaled on, `target`
    /// its `AverageValue`.
    pub async fn finish(self, metric: &Metric, target: f64) -> Timeline {
        tokio::time::sleep(Duration::from_secs(2)).await;
        for task in &self.tasks {
            task.abort();
        }
        Timeline {
            samples: self.samples.lock().unwrap().clone(),
            reviews: self.reviews.lock().unwrap().clone(),
            queries: metric.queries(),
            sets: metric.sets(),
            target,
            spans: Vec::new(),
        }
    }

    /// [`Recorder::finish`] for a recorder that read the HPA's metric
    /// itself ([`Recorder::start_for`]); `target` is the HPA's
    /// `AverageValue`.
    pub async fn finish_read(self, target: f64) -> Timeline {
        tokio::time::sleep(Duration::from_secs(2)).await;
        for task in &self.tasks {
            task.abort();
        }
        Timeline {
            samples: self.samples.lock().unwrap().clone(),
            reviews: self.reviews.lock().unwrap().clone(),
            queries: self.metric.lock().unwrap().clone(),
            sets: Vec::new(),
            target,
            spans: Vec::new(),
        }
    }
}

/// The External metric an HPA scales on: its name and label selector.
fn external_metric(hpa: &HorizontalPodAutoscaler) -> Option<(String, String)> {
    let spec = hpa
        .spec
        .as_ref()?
        .metrics
        .as_ref()?
        .first()?
        .external
        .as_ref()?;
    let selector = spec
        .metric
        .selector
        .as_ref()
        .and_then(|s| s.match_labels.as_ref())
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    Some((spec.metric.name.clone(), selector))
}

/// Reads an External metric as the HPA does, through the aggregator; the
/// first value, rounded to a whole number.
async fn read_external(
    client: &kube::Client,
    ns: &str,
    metric: Option<(String, String)>,
) -> Option<u64> {
    let (name, selector) = metric?;
    let path = format!(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{name}?labelSelector={}",
        selector.replace('=', "%3D").replace(',', "%2C")
    );
    let request = axum::http::Request::get(path).body(Vec::new()).ok()?;
    let list: Value = client.request(request).await.ok()?;
    quantity(list["items"][0]["value"].as_str()?).map(|v| v.round() as u64)
}

/// A Kubernetes quantity as a number: `8`, `2500m`, `3k`.
fn quantity(text: &str) -> Option<f64> {
    let (digits, scale) = match text.char_indices().last()? {
        (i, 'm') => (&text[..i], 1e-3),
        (i, 'k') => (&text[..i], 1e3),
        (i, 'M') => (&text[..i], 1e6),
        (i, 'G') => (&text[..i], 1e9),
        _ => (text, 1.0),
    };
    digits.parse::<f64>().ok().map(|v| v * scale)
}

impl Drop for Recorder {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A recorded scenario.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// The workload and its HPA, every 100 ms.
    pub samples: Vec<Sample>,
    /// Every review about the workload with its answer.
    pub reviews: Vec<Review>,
    /// Every metric query of the HPA: when, and what it read.
    pub queries: Vec<(DateTime<Utc>, u64)>,
    /// Every value the test set the metric to: when, and what.
    pub sets: Vec<(DateTime<Utc>, u64)>,
    /// The HPA's `AverageValue` target.
    pub target: f64,
    /// Intervals a time window was active, shaded in the chart.
    pub spans: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Timeline {
    /// The distinct `spec.replicas`, in order.
    pub fn sequence(&self) -> Vec<u32> {
        distinct(self.samples.iter().map(|s| s.replicas))
    }

    /// How many times the stored spec changed while recording.
    pub fn generations(&self) -> i64 {
        match (self.samples.first(), self.samples.last()) {
            (Some(a), Some(b)) => b.generation - a.generation,
            _ => 0,
        }
    }

    /// How late the HPA read each new metric value, on average
    /// ([`read_delay`]).
    pub fn metric_delay(&self) -> chrono::Duration {
        read_delay(&self.sets, &self.queries)
    }

    /// The HPA's writes, in order.
    pub fn hpa_writes(&self) -> Vec<&Review> {
        self.reviews.iter().filter(|r| r.by_hpa()).collect()
    }

    /// Writes `<name>.csv` and `<name>.svg` under `target/e2e-timelines/`
    /// (and under `$SCALE_GOVERNOR_TIMELINE_DIR` too, when set) and returns
    /// the CSV's path.
    pub fn write(&self, name: &str, title: &str) -> PathBuf {
        let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let mut dirs = vec![target.parent().unwrap_or(&target).join("e2e-timelines")];
        dirs.extend(std::env::var_os("SCALE_GOVERNOR_TIMELINE_DIR").map(PathBuf::from));
        let svg = self.figure(title).svg().expect("drawing the timeline");
        let csv = self.csv();
        for dir in &dirs {
            std::fs::create_dir_all(dir).expect("creating the timeline directory");
            std::fs::write(dir.join(format!("{name}.csv")), &csv).unwrap();
            std::fs::write(dir.join(format!("{name}.svg")), &svg).unwrap();
        }
        dirs[0].join(format!("{name}.csv"))
    }

    /// One row per event, in time order, with the latest metric, HPA wish
    /// and replicas carried on every row.
    pub fn csv(&self) -> String {
        let Some(start) = self.start() else {
            return String::new();
        };
        let mut events: Vec<(DateTime<Utc>, Row)> = Vec::new();
        events.extend(self.queries.iter().map(|(at, v)| (*at, Row::Query(*v))));
        events.extend(self.reviews.iter().map(|r| (r.at, Row::Review(r))));
        let mut last = (None, None);
        for s in &self.samples {
            if last != (Some(s.replicas), s.hpa_desired) {
                events.push((s.at, Row::Sample(s)));
                last = (Some(s.replicas), s.hpa_desired);
            }
        }
        events.sort_by_key(|(at, _)| *at);
        let mut out = String::from(
            "time,seconds,event,metric,hpa_desired,replicas,actor,asked,granted,allowed,message\n",
        );
        let (mut metric, mut desired, mut replicas) = (None, None, None);
        for (at, row) in events {
            let (event, review) = match row {
                Row::Query(v) => {
                    metric = Some(v);
                    ("metric-read", None)
                }
                Row::Sample(s) => {
                    desired = s.hpa_desired;
                    replicas = Some(s.replicas);
                    ("observed", None)
                }
                Row::Review(r) => ("review", Some(r)),
            };
            let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
            let _ = write!(
                out,
                "{},{:.3},{event},{},{},{},",
                at.to_rfc3339(),
                (at - start).num_milliseconds() as f64 / 1000.0,
                opt(metric),
                opt(desired.map(u64::from)),
                opt(replicas.map(u64::from)),
            );
            match review {
                Some(r) => {
                    let _ = writeln!(
                        out,
                        "{},{},{},{},\"{}\"",
                        r.actor,
                        r.asked,
                        r.granted,
                        r.allowed,
                        r.message.replace('"', "'")
                    );
                }
                None => out.push_str(",,,,\n"),
            }
        }
        out
    }

    /// The chart: metric in pods' worth, the HPA's wish, the governor's
    /// answers, and the replicas that landed.
    pub fn figure(&self, title: &str) -> Figure {
        let pods = |v: u64| v as f64 / self.target;
        let metric = self.queries.iter().map(|(at, v)| (*at, pods(*v))).collect();
        let desired = self
            .samples
            .iter()
            .filter_map(|s| Some((s.at, f64::from(s.hpa_desired?))))
            .collect();
        let replicas = self
            .samples
            .iter()
            .map(|s| (s.at, f64::from(s.replicas)))
            .collect();
        let floor = self
            .samples
            .iter()
            .filter_map(|s| {
                let rec: Value = serde_json::from_str(s.recommendation.as_deref()?).ok()?;
                // Drawn while it binds: an expired floor holds nothing.
                let expires = rec["expiresAt"].as_str()?.parse::<DateTime<Utc>>().ok()?;
                (expires > s.at).then_some((s.at, rec["replicas"].as_f64()?))
            })
            .collect();
        let governed: Vec<&Review> = self.reviews.iter().filter(|r| r.governed()).collect();
        let asked = governed
            .iter()
            .map(|r| (r.at, f64::from(r.asked)))
            .collect();
        let granted = governed
            .iter()
            .map(|r| (r.at, f64::from(r.granted)))
            .collect();
        Figure {
            title: title.to_owned(),
            legend: "grey: metric in pods' worth · purple: HPA desired · blue band: recommendation floor · red ×: asked, then clamped or refused · green •: granted · orange: replicas · green shade: time window".to_owned(),
            zone: None,
            panels: vec![Panel {
                caption: String::new(),
                spans: self.spans.clone(),
                marks: Vec::new(),
                series: vec![
                    Series::new(Style::StepArea, chart::RGBColor(200, 200, 200), metric),
                    Series::new(Style::Band, chart::RGBColor(60, 110, 220), floor),
                    Series::new(Style::Step, chart::RGBColor(140, 60, 170), desired),
                    Series::new(Style::Step, chart::ORANGE, replicas),
                    Series::new(Style::Crosses, chart::RGBColor(210, 30, 30), asked),
                    Series::new(Style::Dots, chart::RGBColor(30, 150, 60), granted),
                ],
            }],
        }
    }

    fn start(&self) -> Option<DateTime<Utc>> {
        let first = [
            self.samples.first().map(|s| s.at),
            self.queries.first().map(|q| q.0),
            self.reviews.first().map(|r| r.at),
        ];
        first.into_iter().flatten().min()
    }
}

enum Row<'a> {
    Query(u64),
    Sample(&'a Sample),
    Review(&'a Review),
}

fn distinct(values: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    for v in values {
        if out.last() != Some(&v) {
            out.push(v);
        }
    }
    out
}

/// Adds a review, folding the second look the apiserver takes at one
/// request: the validating webhook's refusal replaces the mutating answer
/// it follows, its warning (a step toward the bounds in deny mode) is the
/// message of the request, and a re-invoked mutation of an already
/// governed request is not a new request.
fn book(reviews: &mut Vec<Review>, review: Review, validating: bool) {
    if let Some(prev) = reviews.last_mut().filter(|p| {
        p.actor == review.actor
            && p.current == review.current
            && review.asked == p.granted
            && review.at - p.at < chrono::Duration::milliseconds(300)
    }) {
        if !review.allowed {
            *prev = review;
            return;
        }
        if validating {
            if prev.message.is_empty() {
                prev.message = review.message;
            }
            return;
        }
        if prev.governed() {
            return;
        }
    }
    reviews.push(review);
}

/// A review about a Deployment in `ns` that asks for a count: what was asked
/// and what the governor answered. The mutating webhook's answer is the
/// decision; the validating one adds only its refusals.
fn parse(
    path: &str,
    request: &[u8],
    response: &[u8],
    ns: &str,
    at: DateTime<Utc>,
) -> Option<Review> {
    let request: Value = serde_json::from_slice(request).ok()?;
    let response: Value = serde_json::from_slice(response).ok()?;
    let (req, resp) = (&request["request"], &response["response"]);
    if req["namespace"] != ns || req["dryRun"] == true {
        return None;
    }
    // A Scale's `spec.replicas` is `omitempty`: a Scale to 0 has none.
    let scale = req["subResource"] == "scale";
    let count = |v: &Value| match v["spec"]["replicas"].as_u64() {
        Some(n) => Some(n as u32),
        None if scale && v["spec"].is_object() => Some(0),
        None => None,
    };
    let asked = count(&req["object"])?;
    let current = count(&req["oldObject"]).unwrap_or(asked);
    let allowed = resp["allowed"].as_bool().unwrap_or(false);
    let warned = resp["warnings"].as_array().is_some_and(|w| !w.is_empty());
    if path.ends_with("validate") && allowed && !warned {
        return None;
    }
    let patched = resp["patch"]
        .as_str()
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|ops| {
            ops.as_array()?
                .iter()
                .find(|op| op["path"] == "/spec/replicas")
                .and_then(|op| op["value"].as_u64())
        })
        .map(|n| n as u32);
    let message = match resp["status"]["message"].as_str() {
        Some(m) => m.to_owned(),
        None => resp["warnings"]
            .as_array()
            .map(|w| {
                w.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default(),
    };
    Some(Review {
        at,
        actor: req["userInfo"]["username"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        subresource: req["subResource"].as_str().unwrap_or("").to_owned(),
        current,
        asked,
        allowed,
        granted: if allowed {
            patched.unwrap_or(asked)
        } else {
            current
        },
        message,
    })
}

/// How late a metric's reader took up each value set, on average: from the
/// moment it was set to the first query that returned it (values set
/// before the first query do not count).
pub fn read_delay(
    sets: &[(DateTime<Utc>, u64)],
    queries: &[(DateTime<Utc>, u64)],
) -> chrono::Duration {
    let first = queries.first().map(|q| q.0);
    let lags: Vec<i64> = sets
        .iter()
        .filter(|(set, _)| first.is_some_and(|f| *set > f))
        .filter_map(|(set, value)| {
            let read = queries.iter().find(|(at, v)| at >= set && v == value)?;
            Some((read.0 - *set).num_milliseconds())
        })
        .collect();
    let mean = lags.iter().sum::<i64>() / (lags.len().max(1) as i64);
    chrono::Duration::milliseconds(mean)
}
