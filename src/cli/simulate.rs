//! `scale-governor simulate`: what would these policies have done with this
//! demand? Replays a trace through the HPA, the governor, both, and an
//! oracle, and reports under-provisioning, cost and churn; with `--risk`,
//! at the stated risks given ([`risks`]).

mod risks;

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, bail};
use chrono::{DateTime, Duration, NaiveDateTime, TimeZone as _, Utc};
use chrono_tz::Tz;

use super::Output;
use crate::{
    chart,
    simulate::{self, Actor, Config, Interpolation, Simulation, Summary, Trace, Workload},
    units::DurationError,
    workload::Workload as Manifest,
};

/// How demand between a trace's samples is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum Interpolate {
    /// Samples are bucket means, joined linearly at the buckets' midpoints.
    #[default]
    Linear,
    /// Each sample holds until the next.
    Step,
}

/// `simulate` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Deployment or StatefulSet manifest with the policy; repeat to compare.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    pub(crate) filenames: Vec<PathBuf>,
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
    pub(crate) hpa_utilization: f64,
    /// The HPA's tolerance.
    #[arg(long, default_value_t = simulate::hpa::DEFAULT_TOLERANCE)]
    pub tolerance: f64,
    /// How late the HPA and the recommender see demand (scrape interval,
    /// rate window, adapter cache, and half the HPA's sync period, since a
    /// change waits for its next sync); the oracle and the scoring see it
    /// at once.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub metric_delay: Duration,
    /// The IANA zone of the trace's timestamps that carry no offset (UTC
    /// otherwise, with a warning); also the zone of the chart's time axis
    /// and of --from/--to.
    #[arg(long, value_name = "ZONE")]
    pub(crate) timezone: Option<Tz>,
    /// How demand between samples is read: linear (samples are bucket
    /// means, joined at the buckets' midpoints) or step (held until the
    /// next sample).
    #[arg(long, value_enum, default_value_t)]
    pub(crate) interpolate: Interpolate,
    /// Score only after this long from the start, e.g. `7d`'s worth as
    /// `168h`: a seasonal strategy needs a day or a week of history first.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub(crate) warm_up: Duration,
    /// Draw the chart from this instant (RFC 3339, or a local time in
    /// --timezone like `2014-11-02T00:00`).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Draw the chart up to this instant.
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Stated risk, overriding each policy's (and its errorQuantile), e.g.
    /// `1%`; several, comma-separated (`0.5%,1%,2%,5%`), run each beside
    /// the HPA alone at each --hpa-targets, and --chart draws pod-hours
    /// against the time under-provisioned.
    #[arg(long, value_delimiter = ',', value_parser = risks::parse_risk)]
    pub(crate) risk: Vec<String>,
    /// With several --risk values: the HPA's targets, as fractions of
    /// capacity, it runs at as the baseline.
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.6,0.7,0.8,0.9")]
    pub(crate) hpa_targets: Vec<f64>,
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

fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let seconds = crate::units::parse_seconds(s)?;
    i64::try_from(seconds)
        .ok()
        .and_then(Duration::try_seconds)
        .ok_or_else(|| DurationError::Overflow(s.trim().to_owned()))
}

/// An instant as RFC 3339, or as a wall-clock time in `zone`.
fn instant(text: &str, zone: Tz) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = crate::units::parse_instant(text) {
        return Ok(t);
    }
    let local = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_time(chrono::NaiveTime::MIN))
        })
        .with_context(|| {
            format!("\"{text}\" is not a time, expected 2014-11-02T00:00 or RFC 3339")
        })?;
    zone.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| format!("{text} does not exist in {zone} (the clock springs forward)"))
}

/// Reads the inputs, simulates, and writes the table, timeline and chart.
pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if !(args.capacity.is_finite() && args.capacity > 0.0) {
        bail!("--capacity must be a positive number");
    }
    if !(args.hpa_utilization > 0.0 && args.hpa_utilization <= 1.0) {
        bail!("--hpa-utilization must be in (0, 1]");
    }
    let text = std::fs::read_to_string(&args.trace)
        .with_context(|| format!("reading {}", args.trace.display()))?;
    let trace = Trace::parse_in(&text, args.timezone)
        .with_context(|| format!("{}", args.trace.display()))?;
    for warning in trace.warnings().iter().take(5) {
        eprintln!("warning: {}: {warning}", args.trace.display());
    }
    if trace.warnings().len() > 5 {
        eprintln!(
            "warning: {}: {} more like these",
            args.trace.display(),
            trace.warnings().len() - 5
        );
    }
    let mut manifests = Vec::new();
    for path in &args.filenames {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let manifest =
            Manifest::from_manifest(&text).with_context(|| format!("{}", path.display()))?;
        manifests.push((path.clone(), manifest));
    }
    let config = Config {
        capacity: args.capacity,
        startup: args.startup,
        tick: args.tick,
        hpa_target: args.capacity * args.hpa_utilization,
        tolerance: args.tolerance,
        actors: args.actors.clone(),
        metric_delay: args.metric_delay,
        hpa: None,
        interpolation: match args.interpolate {
            Interpolate::Linear => Interpolation::Linear,
            Interpolate::Step => Interpolation::Step,
        },
    };
    let scored = (args.warm_up > Duration::zero()).then(|| trace.start() + args.warm_up);
    if args.risk.len() > 1 {
        return sweep(args, &trace, &manifests, &config, scored);
    }
    let workloads = match workloads(&manifests, args.risk.first().map(String::as_str))? {
        Ok(workloads) => workloads,
        Err(code) => return Ok(code),
    };
    let zone = args.timezone.unwrap_or(Tz::UTC);
    let (from, to) = (
        args.from.as_deref().map(|t| instant(t, zone)).transpose()?,
        args.to.as_deref().map(|t| instant(t, zone)).transpose()?,
    );
    let sim = simulate::simulate(&trace, &workloads, &config);
    if let Some(path) = &args.timeline {
        std::fs::write(path, sim.timeline_csv())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.chart {
        check_svg(path)?;
        let title = format!("{} over {}", names(&workloads), args.trace.display());
        let view = chart::View {
            title: &title,
            zone,
            from,
            to,
        };
        std::fs::write(path, chart::svg(&sim, &view)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    print!(
        "{}",
        render(&sim, &sim.summaries_between(scored, None), args.output)
    );
    if let Some(at) = scored {
        eprintln!(
            "scored from {} (after the warm-up)",
            at.with_timezone(&zone)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The chart is SVG; a .png (or any other) name would hold SVG bytes that
/// viewers refuse, so say so instead.
fn check_svg(path: &Path) -> anyhow::Result<()> {
    if path.extension().and_then(|e| e.to_str()) != Some("svg") {
        bail!(
            "--chart {}: the chart is SVG; name the file .svg (convert it with, e.g., rsvg-convert for PNG)",
            path.display()
        );
    }
    Ok(())
}

/// Each manifest's name and policy, with `risk` stated in it when given;
/// the exit code of an invalid policy, after saying why.
fn workloads(
    manifests: &[(PathBuf, Manifest)],
    risk: Option<&str>,
) -> anyhow::Result<Result<Vec<Workload>, ExitCode>> {
    let mut workloads = Vec::new();
    for (path, manifest) in manifests {
        let manifest = match risk {
            Some(risk) => risks::with_risk(manifest, path, risk)?,
            None => manifest.clone(),
        };
        let policy = match manifest.policy() {
            Ok(policy) => policy,
            Err(e) => {
                eprintln!("error: invalid policy in {}: {e}", path.display());
                return Ok(Err(ExitCode::from(super::explain::EXIT_INVALID_POLICY)));
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
    Ok(Ok(workloads))
}

/// Several risks: each run, the HPA at each target, a table of them all
/// and, with --chart, the cost/risk chart.
fn sweep(
    args: &Args,
    trace: &Trace,
    manifests: &[(PathBuf, Manifest)],
    config: &Config,
    scored: Option<DateTime<Utc>>,
) -> anyhow::Result<ExitCode> {
    if args.timeline.is_some() || args.from.is_some() || args.to.is_some() {
        bail!("--timeline, --from and --to draw one run over time; give one --risk for them");
    }
    if let Some(bad) = args.hpa_targets.iter().find(|t| !(**t > 0.0 && **t <= 1.0)) {
        bail!("--hpa-targets: {bad} is not in (0, 1]");
    }
    let mut by_risk = Vec::new();
    for risk in &args.risk {
        match workloads(manifests, Some(risk))? {
            Ok(workloads) => by_risk.push((risk.clone(), workloads)),
            Err(code) => return Ok(code),
        }
    }
    let sweep = risks::sweep(trace, &by_risk, &args.hpa_targets, config, scored);
    if let Some(path) = &args.chart {
        check_svg(path)?;
        let names = by_risk.first().map_or(String::new(), |(_, w)| names(w));
        let title = format!("{names} over {}: cost against risk", args.trace.display());
        std::fs::write(path, chart::cost_risk_svg(&title, &sweep.curves)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    print!("{}", render(&sweep.last, &sweep.summaries, args.output));
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
pub(crate) fn render(sim: &Simulation, summaries: &[Summary], output: Output) -> String {
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
        "{:<24} {:>9} {:>9} {:>9} {:>10} {:>10} {:>8} {:>8} {:>8} {:>10}",
        "actor",
        "under %t",
        "rec %t",
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
            "{:<24} {:>9.2} {:>9} {:>9.2} {:>10.1} {:>10.1} {:>8} {:>8} {:>8} {:>10}",
            s.actor,
            s.under_provisioned_time_pct,
            s.recommendation_under_time_pct
                .map_or("-".to_owned(), |p| format!("{p:.2}")),
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
