//! `scale-governor simulate`: what would these policies have done with this
//! demand? Replays a trace through the HPA, the governor, both, and an
//! oracle, and reports under-provisioning, cost and churn.

use std::{fmt::Write as _, path::PathBuf, process::ExitCode};

use anyhow::{Context, bail};
use chrono::Duration;

use super::Output;
use crate::{
    chart,
    simulate::{self, Actor, Config, Simulation, Summary, Trace, Workload},
    workload::Workload as Manifest,
};

/// `simulate` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Deployment or StatefulSet manifest with the policy; repeat to compare.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    pub filenames: Vec<PathBuf>,
    /// Demand trace: CSV `timestamp,value` (ISO-8601 or unix seconds).
    #[arg(long, value_name = "FILE")]
    pub trace: PathBuf,
    /// Demand one ready pod serves.
    #[arg(long, value_name = "DEMAND")]
    pub capacity: f64,
    /// Pod start-up delay, e.g. `90s` or `2m`.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub startup: Duration,
    /// Simulation step, the HPA sync period and the recommender's loop.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub tick: Duration,
    /// The HPA's target as a fraction of capacity.
    #[arg(long, default_value_t = 0.8)]
    pub hpa_utilization: f64,
    /// The HPA's tolerance.
    #[arg(long, default_value_t = simulate::hpa::DEFAULT_TOLERANCE)]
    pub tolerance: f64,
    /// Actors to run, comma-separated: hpa, governor, hpa+governor, oracle.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "hpa,governor,hpa+governor,oracle"
    )]
    pub actors: Vec<Actor>,
    /// Write the per-tick timeline as CSV here.
    #[arg(long, value_name = "FILE")]
    pub timeline: Option<PathBuf>,
    /// Write an SVG chart here.
    #[arg(long, value_name = "FILE")]
    pub chart: Option<PathBuf>,
    /// Output format of the summary table.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let seconds = crate::units::parse_seconds(s).map_err(|e| e.to_string())?;
    i64::try_from(seconds)
        .ok()
        .and_then(Duration::try_seconds)
        .ok_or_else(|| format!("\"{s}\" is too long a duration"))
}

/// Reads the inputs, simulates, and writes the table, timeline and chart.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if !(args.capacity.is_finite() && args.capacity > 0.0) {
        bail!("--capacity must be a positive number");
    }
    if !(args.hpa_utilization > 0.0 && args.hpa_utilization <= 1.0) {
        bail!("--hpa-utilization must be in (0, 1]");
    }
    let text = std::fs::read_to_string(&args.trace)
        .with_context(|| format!("reading {}", args.trace.display()))?;
    let trace = Trace::parse(&text).with_context(|| format!("{}", args.trace.display()))?;
    let mut workloads = Vec::new();
    for path in &args.filenames {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let manifest =
            Manifest::from_manifest(&text).with_context(|| format!("{}", path.display()))?;
        let policy = match manifest.policy() {
            Ok(policy) => policy,
            Err(e) => {
                eprintln!("error: invalid policy in {}: {e}", path.display());
                return Ok(ExitCode::from(super::explain::EXIT_INVALID_POLICY));
            }
        };
        workloads.push(Workload {
            name: manifest
                .metadata
                .name
                .clone()
                .unwrap_or_else(|| path.display().to_string()),
            policy,
        });
    }
    let config = Config {
        capacity: args.capacity,
        startup: args.startup,
        tick: args.tick,
        hpa_target: args.capacity * args.hpa_utilization,
        tolerance: args.tolerance,
        actors: args.actors.clone(),
        metric_delay: Duration::zero(),
        hpa: None,
        interpolation: simulate::Interpolation::Linear,
    };
    let sim = simulate::simulate(&trace, &workloads, &config);
    if let Some(path) = &args.timeline {
        std::fs::write(path, sim.timeline_csv())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.chart {
        // The chart is SVG; a .png (or any other) name would hold SVG bytes
        // that viewers refuse, so say so instead.
        if path.extension().and_then(|e| e.to_str()) != Some("svg") {
            bail!(
                "--chart {}: the chart is SVG; name the file .svg (convert it with, e.g., rsvg-convert for PNG)",
                path.display()
            );
        }
        let title = format!("{} over {}", names(&workloads), args.trace.display());
        std::fs::write(path, chart::svg(&sim, &title)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    print!("{}", render(&sim, &sim.summaries(), args.output));
    Ok(ExitCode::SUCCESS)
}

fn names(workloads: &[Workload]) -> String {
    workloads
        .iter()
        .map(|w| w.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The summary as an aligned text table, or JSON.
pub fn render(sim: &Simulation, summaries: &[Summary], output: Output) -> String {
    if output == Output::Json {
        return serde_json::to_string(summaries).unwrap_or_default() + "\n";
    }
    let mut out = String::new();
    let span = sim
        .times
        .last()
        .zip(sim.times.first())
        .map(|(e, s)| *e - *s);
    let _ = writeln!(
        out,
        "{} ticks of {}s ({:.1} h), capacity {} per pod",
        sim.times.len(),
        sim.tick_seconds,
        span.map_or(0.0, |d| d.num_seconds() as f64 / 3600.0),
        sim.capacity
    );
    let _ = writeln!(
        out,
        "{:<18} {:>9} {:>9} {:>10} {:>10} {:>8} {:>8} {:>8} {:>10}",
        "actor",
        "under %t",
        "under %d",
        "peak short",
        "pod-hours",
        "÷oracle",
        "changes",
        "max step",
        "recover s"
    );
    for s in summaries {
        let vs = s
            .cost_vs_oracle
            .map_or("-".to_owned(), |v| format!("{v:.2}"));
        let _ = writeln!(
            out,
            "{:<18} {:>9.2} {:>9.2} {:>10.1} {:>10.1} {:>8} {:>8} {:>8} {:>10}",
            s.actor,
            s.under_provisioned_time_pct,
            s.under_provisioned_demand_pct,
            s.peak_shortfall,
            s.pod_hours,
            vs,
            s.changes,
            s.largest_step,
            s.longest_recovery_seconds
        );
    }
    out
}
