//! Load generator for `scale-governor serve`, playing the apiserver: it POSTs
//! `deployments/scale` AdmissionReviews to `/mutate` over HTTP/2 and TLS and
//! measures latency, throughput and the server's memory. `benches/load.sh`
//! (`make bench-load`) starts everything around it and writes the report;
//! see docs/performance.md, "Webhook under load".
//!
//! ```text
//! cargo bench --bench load -- seed --kubeconfig K --deployments 10000
//! cargo bench --bench load -- run --url https://127.0.0.1:8443/mutate --ca ca.crt \
//!     --mode fixed --rate 5000 --duration 20 --server-pid PID --report out.md
//! ```

mod client;
mod fleet;
mod procfs;
mod run;
mod seed;

use std::{
    fs::OpenOptions,
    io::Write as _,
    path::PathBuf,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::{
    fleet::Fleet,
    procfs::CpuMeter,
    run::{Stats, Target},
};

#[derive(Debug, Parser)]
#[command(about = "Load benchmark of scale-governor's /mutate over TLS")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the governed Deployments (and their namespaces).
    Seed {
        /// Kubeconfig of the cluster to fill.
        #[arg(long)]
        kubeconfig: PathBuf,
        #[command(flatten)]
        fleet: FleetArgs,
        /// Creates in flight at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// Send reviews and report.
    Run(Box<RunArgs>),
}

#[derive(Debug, clap::Args)]
struct FleetArgs {
    /// Governed Deployments, as seeded.
    #[arg(long, default_value_t = 10_000)]
    deployments: usize,
    /// Namespaces they are spread over.
    #[arg(long, default_value_t = 100)]
    namespaces: usize,
    /// The last this many also carry a `recommend` annotation (the
    /// recommender benchmark's HTTP JSON source `bench`).
    #[arg(long, default_value_t = 0)]
    recommend: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Open loop at --rate.
    Fixed,
    /// Closed loop with --concurrency workers.
    Saturate,
}

/// What the reviews ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shape {
    /// HPA steps of one replica, and one Deployment in ten bursts: mostly
    /// allowed, some clamped, as a fleet under HPAs.
    Mixed,
    /// Every review asks far above `max-replicas` from the seeded count:
    /// every answer is a clamp, the same work for every server compared.
    Clamp,
}

/// How much of each answer the generator checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Check {
    /// An allowing review that echoes the uid, with a base64 JSON Patch of
    /// `/spec/replicas` when it patches.
    Full,
    /// HTTP 200 and the uid echoed (a peer whose patch encoding differs).
    Uid,
    /// HTTP 200 (a static responder).
    Status,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The webhook, e.g. https://127.0.0.1:8443/mutate.
    #[arg(long)]
    url: String,
    /// PEM CA that signed the serving certificate.
    #[arg(long)]
    ca: String,
    #[arg(long, value_enum)]
    mode: Mode,
    /// Requests per second (fixed mode).
    #[arg(long, default_value_t = 5000.0)]
    rate: f64,
    /// Concurrent requests (saturation mode).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// HTTP/2 connections; the apiserver keeps a few per webhook. With
    /// `--http1`, the pool of keep-alive connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// HTTP/1.1 keep-alive instead of HTTP/2.
    #[arg(long)]
    http1: bool,
    /// What the reviews ask.
    #[arg(long, value_enum, default_value_t = Shape::Mixed)]
    shape: Shape,
    /// How much of each answer to check.
    #[arg(long, value_enum, default_value_t = Check::Full)]
    check: Check,
    /// Which server answers, for the side-by-side table.
    #[arg(long, default_value = "governor")]
    server: String,
    /// Tab-separated file to append this run's figures to.
    #[arg(long)]
    tsv: Option<PathBuf>,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Seconds measured.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    #[command(flatten)]
    fleet: FleetArgs,
    /// Distinguishes this run's uids from earlier runs' (the webhook answers
    /// a repeated uid from memory).
    #[arg(long, default_value_t = 0)]
    run_id: u32,
    /// File that carries the fleet's replica counts from one run to the next,
    /// as the apiserver would; read if it exists, written at the end.
    #[arg(long)]
    state: Option<PathBuf>,
    /// The server process, for its memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Processes whose CPU to report, NAME=PID; repeatable.
    #[arg(long = "watch", value_parser = name_pid)]
    watch: Vec<(String, String)>,
    /// Label of this run in the report, e.g. "unpinned".
    #[arg(long, default_value = "")]
    label: String,
    /// Markdown file to append this run's table row to.
    #[arg(long)]
    report: Option<PathBuf>,
    /// p99 target of fixed mode, in milliseconds.
    #[arg(long, default_value_t = 1.0)]
    p99_target_ms: f64,
    /// Throughput target of saturation mode, reviews per second.
    #[arg(long, default_value_t = 15_000.0)]
    throughput_target: f64,
}

fn name_pid(s: &str) -> Result<(String, String), String> {
    let (name, pid) = s.split_once('=').ok_or("expected NAME=PID")?;
    Ok((name.to_owned(), pid.to_owned()))
}

fn main() -> ExitCode {
    // `cargo bench` appends --bench to a harness-less bench's arguments.
    let args = std::env::args().filter(|a| a != "--bench");
    let cli = Cli::parse_from(args);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Seed {
                kubeconfig,
                fleet,
                concurrency,
            } => {
                fleet::check_policy()?;
                let fleet =
                    Fleet::new(fleet.deployments, fleet.namespaces).with_recommend(fleet.recommend);
                seed::seed(&kubeconfig, &fleet, concurrency).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Run(args) => run(*args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let fleet = Fleet::new(args.fleet.deployments, args.fleet.namespaces);
    if let Some(path) = args.state.as_ref().filter(|p| p.exists()) {
        let text = std::fs::read_to_string(path)?;
        let saved: Vec<u32> = serde_json::from_str(&text).context("reading --state")?;
        fleet.restore(&saved)?;
    }
    let client = client::Client::connect(&args.url, &args.ca, args.connections, args.http1).await?;
    let target = Arc::new(Target {
        client,
        fleet,
        run_id: args.run_id,
        shape: args.shape,
        check: args.check,
    });
    let mut watched = args.watch.clone();
    watched.push(("client".to_owned(), std::process::id().to_string()));

    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampler = args.server_pid.map(|pid| {
        let peak = peak_rss.clone();
        tokio::spawn(async move {
            while let Some(m) = procfs::memory(pid) {
                peak.fetch_max(m.rss_kib, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });
    let before = args.server_pid.and_then(procfs::memory);
    let warmup = Duration::from_secs(args.warmup);
    let duration = Duration::from_secs(args.duration);
    // CPU is measured over warmup and measurement alike: both are load.
    let cpu = CpuMeter::start(&watched);
    let stats = match args.mode {
        Mode::Fixed => run::fixed_rate(target.clone(), args.rate, warmup, duration).await,
        Mode::Saturate => run::saturate(target.clone(), args.concurrency, warmup, duration).await,
    };
    let cores = cpu.cores();
    let after = args.server_pid.and_then(procfs::memory);
    if let Some(sampler) = sampler {
        sampler.abort();
    }

    if let Some(path) = &args.state {
        std::fs::write(path, serde_json::to_string(&target.fleet.replicas())?)?;
    }
    let row = Row {
        args: &args,
        stats: &stats,
        cores: &cores,
        before,
        after,
        peak_rss_kib: peak_rss.load(Ordering::Relaxed),
    };
    eprintln!("{}", row.summary());
    for e in &stats.error_samples {
        eprintln!("load: error: {e}");
    }
    if let Some(path) = &args.tsv {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(file, "{}", row.tsv())?;
    }
    if let Some(path) = &args.report {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(file, "{}", row.markdown())?;
    }
    // A run with errors measured something other than the webhook's answers.
    Ok(if stats.errors > 0 || stats.completed() == 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// One run's results, formatted.
struct Row<'a> {
    args: &'a RunArgs,
    stats: &'a Stats,
    cores: &'a [(String, Option<f64>)],
    before: Option<procfs::Memory>,
    after: Option<procfs::Memory>,
    peak_rss_kib: u64,
}

impl Row<'_> {
    fn ms(&self, q: f64) -> String {
        format!(
            "{:.2}",
            self.stats.latency.value_at_quantile(q) as f64 / 1000.0
        )
    }

    fn load(&self) -> String {
        match self.args.mode {
            Mode::Fixed => format!("{} req/s open loop", self.args.rate),
            Mode::Saturate => format!("closed loop, {} in flight", self.args.concurrency),
        }
    }

    fn verdict(&self) -> String {
        if self.stats.errors > 0 {
            return "**invalid: errors**".to_owned();
        }
        match self.args.mode {
            Mode::Fixed => {
                let p99 = self.stats.latency.value_at_quantile(0.99) as f64 / 1000.0;
                let met = p99 <= self.args.p99_target_ms;
                format!(
                    "p99 ≤ {} ms: {}",
                    self.args.p99_target_ms,
                    if met { "met" } else { "**missed**" }
                )
            }
            Mode::Saturate => {
                let met = self.stats.throughput() >= self.args.throughput_target;
                format!(
                    "≥ {:.0}/s: {}",
                    self.args.throughput_target,
                    if met { "met" } else { "**missed**" }
                )
            }
        }
    }

    /// Cores per process; for the two ends of the wire also CPU time per
    /// review, which says what a core could sustain without the others.
    fn cpu(&self) -> String {
        let rate = self.stats.throughput().max(1e-9);
        let parts: Vec<String> = self
            .cores
            .iter()
            .map(|(name, c)| match c {
                Some(c) if name == "serve" || name == "client" => {
                    format!("{name} {c:.2} ({:.0} µs/review)", c * 1e6 / rate)
                }
                Some(c) => format!("{name} {c:.2}"),
                None => format!("{name} ?"),
            })
            .collect();
        parts.join(", ")
    }

    fn memory(&self) -> String {
        let mib = |kib: u64| kib as f64 / 1024.0;
        match (self.before, self.after) {
            (Some(b), Some(a)) => format!(
                "{:.1} → {:.1} (peak {:.1}, HWM {:.1})",
                mib(b.rss_kib),
                mib(a.rss_kib),
                mib(self.peak_rss_kib.max(a.rss_kib)),
                mib(a.hwm_kib)
            ),
            _ => "?".to_owned(),
        }
    }

    /// `| label | load | req/s | p50 | p90 | p99 | max | service p99 | gen. lag p99 | unchanged/clamped | errors | RSS MiB | CPU cores | verdict |`
    fn markdown(&self) -> String {
        let s = self.stats;
        format!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {:.2} | {:.2} | {}/{} | {} | {} | {} | {} |",
            self.args.label,
            self.load(),
            s.throughput(),
            self.ms(0.5),
            self.ms(0.9),
            self.ms(0.99),
            self.ms(1.0),
            s.service.value_at_quantile(0.99) as f64 / 1000.0,
            s.lag.value_at_quantile(0.99) as f64 / 1000.0,
            s.unchanged,
            s.clamped,
            s.errors,
            self.memory(),
            self.cpu(),
            self.verdict()
        )
    }

    /// CPU time of `name` per review, in µs (= ms per 1,000 reviews).
    fn micros_per_review(&self, name: &str) -> Option<f64> {
        let rate = self.stats.throughput().max(1e-9);
        let cores = self.cores.iter().find(|(n, _)| n == name)?.1?;
        Some(cores * 1e6 / rate)
    }

    /// `server proto mode reviews/s p50 p99 serve-µs/review RSS-MiB
    /// apiserver-cores etcd-cores errors`, tab-separated.
    fn tsv(&self) -> String {
        let cores = |name: &str| {
            self.cores
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|c| c.1)
                .map_or("?".to_owned(), |c| format!("{c:.3}"))
        };
        let rss = self.after.map_or("?".to_owned(), |m| {
            format!("{:.1}", m.rss_kib as f64 / 1024.0)
        });
        let mode = match self.args.mode {
            Mode::Fixed => format!("fixed {}/s", self.args.rate),
            Mode::Saturate => "saturated".to_owned(),
        };
        format!(
            "{}\t{}\t{}\t{:.0}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            self.args.server,
            if self.args.http1 { "h1" } else { "h2" },
            mode,
            self.stats.throughput(),
            self.ms(0.5),
            self.ms(0.99),
            self.micros_per_review("serve")
                .map_or("?".to_owned(), |m| format!("{m:.1}")),
            rss,
            cores("apiserver"),
            cores("etcd"),
            self.stats.errors
        )
    }

    fn summary(&self) -> String {
        let s = self.stats;
        format!(
            "load: {} {}: {:.0} req/s over {:.0}s; latency ms p50 {} p90 {} p99 {} p99.9 {} max {}; \
             unchanged {} clamped {} errors {}; server RSS MiB {}; CPU cores {}; {}",
            self.args.label,
            self.load(),
            s.throughput(),
            s.elapsed.as_secs_f64(),
            self.ms(0.5),
            self.ms(0.9),
            self.ms(0.99),
            self.ms(0.999),
            self.ms(1.0),
            s.unchanged,
            s.clamped,
            s.errors,
            self.memory(),
            self.cpu(),
            self.verdict()
        )
    }
}
