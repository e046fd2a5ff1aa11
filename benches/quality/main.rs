//! Decision quality: every policy in `examples/quality/` over every trace in
//! `examples/traces/`, through all four actors, plus two simple controls at
//! the seasonal policy's cost. Writes `docs/quality.md` and charts in
//! `docs/quality/`. Run with `make quality`.
//!
//! - Traces differ in scale by orders of magnitude, so each is normalized
//!   so that its 99th percentile is 40 pods' worth, with a capacity of 1.0
//!   per pod; policies then speak in the same units. (Normalizing the peak
//!   let one burst set the scale: the AAPL trace's median would be 0.1
//!   pods.)
//! - The HPA and the recommender see demand 30 s late; demand between
//!   samples is drawn linearly between bucket midpoints.
//! - The HPA baseline is the HPA's defaults (min 2, max 500, default
//!   behavior), whatever the policy's own rate rules say.
//! - Traces of three weeks or more are scored after a week of warm-up, so
//!   the seasonal strategy has a week of history; shorter ones are scored
//!   whole, and the seasonal strategy answers there as its velocity
//!   fallback for the first day.
//!
//! The goals are reported, not asserted. The `calibrated` policy's stated
//! risk is compared with what it achieved ([`risk`]).

mod controls;
mod report;
mod risk;

use std::{fs, path::Path, time::Instant};

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use scale_governor::{
    policy::{Policy, keys},
    simulate::{self, Actor, Config, Interpolation, Simulation, Summary, Trace, Workload},
    testing::chart,
    workload::Workload as Manifest,
};

/// Demand's 99th percentile, in pods' worth, after normalizing.
const P99_PODS: f64 = 40.0;
/// Traces at least this long are scored after [`WARM_UP`].
const LONG: i64 = 21;
/// A week: what the seasonal strategy needs to see both seasons.
const WARM_UP: i64 = 7;
/// The policy the goals are about, and the controls are matched to.
const SEASONAL: &str = "seasonal";

/// A trace and how to read it.
pub struct Case {
    name: String,
    trace: Trace,
    zone: Tz,
    /// Dominated by bursts no season announces.
    bursty: bool,
    scored_from: Option<DateTime<Utc>>,
}

/// Everything one trace gave.
pub struct Outcome {
    case: Case,
    sim: Simulation,
    summaries: Vec<Summary>,
    controls: Option<controls::Controls>,
    /// The calibrated policy's stated against achieved risk, when scored.
    risk: Option<risk::RiskOutcome>,
    elapsed: std::time::Duration,
}

fn config() -> Config {
    Config {
        capacity: 1.0,
        startup: Duration::seconds(90),
        tick: Duration::seconds(15),
        hpa_target: 0.8,
        tolerance: simulate::hpa::DEFAULT_TOLERANCE,
        actors: Actor::ALL.to_vec(),
        metric_delay: Duration::seconds(30),
        hpa: Some(
            Policy::from_annotations([(keys::MIN_REPLICAS, "2"), (keys::MAX_REPLICAS, "500")])
                .expect("the HPA's spec"),
        ),
        interpolation: Interpolation::Linear,
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workloads = policies(&root.join("examples/quality"));
    let config = config();
    let charts = root.join("docs/quality");
    fs::create_dir_all(&charts).expect("creating docs/quality");
    let mut outcomes = Vec::new();
    for case in traces(&root.join("examples/traces")) {
        let started = Instant::now();
        let sim = run(&case.trace, &workloads, &config);
        let elapsed = started.elapsed();
        let summaries = sim.summaries_between(case.scored_from, None);
        let controls = case.scored_from.is_some().then(|| {
            let seasonal = workloads
                .iter()
                .find(|w| w.name == SEASONAL)
                .expect("seasonal");
            controls::run(&case, seasonal, &config, &summaries)
        });
        let calibrated = workloads.iter().find(|w| w.name == risk::CALIBRATED);
        let risk = case
            .scored_from
            .and(calibrated)
            .map(|c| risk::run(&case, c, &config, &summaries));
        let shown = chart_runs(&sim);
        for shot in report::shots(&case, &sim) {
            let svg = chart::svg(&shown, &shot.view(&case)).expect("chart");
            fs::write(charts.join(&shot.file), svg).expect("writing a chart");
        }
        println!("{}: {} ticks in {elapsed:?}", case.name, sim.times.len());
        outcomes.push(Outcome {
            case,
            sim,
            summaries,
            controls,
            risk,
            elapsed,
        });
    }
    let path = root.join("docs/quality.md");
    let replayed = fs::read_to_string(&path)
        .ok()
        .and_then(|old| report::replayed(&old).map(str::to_owned));
    let doc = report::document(&outcomes, &workloads, &config, replayed.as_deref());
    fs::write(path, doc).expect("writing docs/quality.md");
    println!("wrote docs/quality.md");
}

/// The HPA and the oracle once (the HPA's spec is its own, so it is the same
/// for every policy), the governor and both together per policy.
fn run(trace: &Trace, workloads: &[Workload], config: &Config) -> Simulation {
    let base = Config {
        actors: vec![Actor::Hpa, Actor::Oracle],
        ..config.clone()
    };
    let mut sim = simulate::simulate(trace, &workloads[..1], &base);
    let governed = Config {
        actors: vec![Actor::Governor, Actor::HpaGovernor],
        ..config.clone()
    };
    let more = simulate::simulate(trace, workloads, &governed);
    let oracle = sim.runs.pop().expect("the oracle's run");
    sim.runs.extend(more.runs);
    sim.runs.push(oracle);
    sim
}

/// The runs the charts show: the HPA, the seasonal policy alone and with
/// the HPA, and the oracle.
fn chart_runs(sim: &Simulation) -> Simulation {
    let keep = |actor: &str| {
        actor == "hpa" || actor == "oracle" || actor.ends_with(&format!("@{SEASONAL}"))
    };
    Simulation {
        runs: sim
            .runs
            .iter()
            .filter(|r| keep(&r.actor))
            .cloned()
            .collect(),
        ..sim.clone()
    }
}

fn policies(dir: &Path) -> Vec<Workload> {
    let mut paths: Vec<_> = fs::read_dir(dir)
        .expect("examples/quality")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let manifest =
                Manifest::from_manifest(&fs::read_to_string(p).unwrap()).expect("manifest");
            Workload {
                name: manifest.metadata.name.clone().unwrap_or_default(),
                policy: manifest.policy().expect("valid policy"),
            }
        })
        .collect()
}

/// Naive timestamps in a trace are read in its zone; a trace recorded as a
/// wall clock says so here.
fn zone_of(name: &str) -> Tz {
    if name.starts_with("nyc-taxi") {
        chrono_tz::America::New_York
    } else {
        Tz::UTC
    }
}

fn traces(dir: &Path) -> Vec<Case> {
    let mut paths: Vec<_> = fs::read_dir(dir)
        .expect("examples/traces")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv") && !p.ends_with("small.csv"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let zone = zone_of(&name);
            let trace =
                Trace::parse_in(&fs::read_to_string(p).unwrap(), Some(zone)).expect("trace");
            let mut values: Vec<f64> = trace.points().iter().map(|(_, v)| *v).collect();
            values.sort_by(f64::total_cmp);
            let p99 = values[(values.len() as f64 * 0.99) as usize].max(f64::MIN_POSITIVE);
            let points = trace
                .points()
                .iter()
                .map(|(t, v)| (*t, v * P99_PODS / p99))
                .collect();
            let trace = Trace::from_points(points).expect("non-empty");
            let long = trace.end() - trace.start() >= Duration::days(LONG);
            Case {
                bursty: name.starts_with("twitter"),
                scored_from: long.then(|| trace.start() + Duration::days(WARM_UP)),
                name,
                trace,
                zone,
            }
        })
        .collect()
}
