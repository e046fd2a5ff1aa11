//! Synthetic demand traces for `scale-governor simulate`.
//!
//! Writes CSV `timestamp,value` (ISO-8601 UTC, requests/s) at a fixed step:
//! a diurnal curve peaking at 14:00 local with quieter weekends,
//! multiplicative log-normal noise, an optional flash crowd and an optional
//! outage followed by a retry surge. The same flags and seed always give the
//! same file, so traces can be regenerated instead of trusted.
//!
//! ```text
//! cargo run --example gen_trace -- --days 1 --flash-at 12h --out day.csv
//! ```

use std::f64::consts::TAU;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::ensure;
use chrono::{DateTime, Datelike, SecondsFormat, TimeDelta, Timelike, Utc, Weekday};
use clap::Parser;

/// Local hour of the daily peak.
const PEAK_HOUR: f64 = 14.0;
/// A flash crowd reaches its height this many seconds after it starts.
const FLASH_RAMP_S: f64 = 120.0;
/// During an outage a trickle still arrives (health checks, a few clients).
const OUTAGE_FLOOR: f64 = 0.02;
/// Time constant of the retry surge after an outage: clients back off for minutes, not hours.
const RETRY_TAU_S: f64 = 300.0;

/// Command-line flags; times are RFC 3339 or an offset from `--start` (`90m`, `36h`, `2.5d`).
#[derive(Parser, Debug)]
#[command(
    about = "Write a synthetic demand trace (CSV timestamp,value) for `scale-governor simulate`"
)]
struct Args {
    /// First timestamp (RFC 3339). The default is a Monday, midnight UTC.
    #[arg(long, default_value = "2026-01-05T00:00:00Z", value_parser = parse_time)]
    start: DateTime<Utc>,
    /// Length of the trace in days.
    #[arg(long, default_value_t = 7.0)]
    days: f64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 60)]
    step: u32,
    /// Night-time trough, requests/s.
    #[arg(long, default_value_t = 20.0)]
    base: f64,
    /// Weekday peak (14:00 local), requests/s.
    #[arg(long, default_value_t = 200.0)]
    peak: f64,
    /// Weekend swing as a fraction of the weekday swing (peak - base).
    #[arg(long, default_value_t = 0.6)]
    weekend: f64,
    /// Hours east of UTC that count as "local" for the daily curve.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    utc_offset: f64,
    /// Standard deviation of the multiplicative log-normal noise; 0 turns it off.
    #[arg(long, default_value_t = 0.05)]
    noise: f64,
    /// Seed of the noise generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Start of a flash crowd (none if absent).
    #[arg(long, value_parser = parse_at)]
    flash_at: Option<At>,
    /// Flash crowd peak as a multiple of normal demand (5 = five times).
    #[arg(long, default_value_t = 5.0)]
    flash_height: f64,
    /// Rough length of the flash crowd: a 2-minute ramp, a plateau of half this, then decay.
    #[arg(long, default_value_t = 30.0)]
    flash_minutes: f64,
    /// Start of an outage (none if absent).
    #[arg(long, value_parser = parse_at)]
    outage_at: Option<At>,
    /// Length of the outage.
    #[arg(long, default_value_t = 20.0)]
    outage_minutes: f64,
    /// Share of the demand lost in the outage that comes back as retries.
    #[arg(long, default_value_t = 0.5)]
    retry_fraction: f64,
    /// Output file; stdout if absent.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// A point in the trace: absolute, or seconds after `--start`.
#[derive(Clone, Copy, Debug)]
enum At {
    Abs(DateTime<Utc>),
    After(f64),
}

impl At {
    /// Seconds since `start`.
    fn secs_after(self, start: DateTime<Utc>) -> f64 {
        match self {
            At::Abs(t) => (t - start).num_milliseconds() as f64 / 1e3,
            At::After(s) => s,
        }
    }
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, scale_governor::units::InstantError> {
    scale_governor::units::parse_instant(s)
}

fn parse_at(s: &str) -> Result<At, String> {
    if let Ok(t) = parse_time(s) {
        return Ok(At::Abs(t));
    }
    let bad = || format!("`{s}`: expected RFC 3339 or an offset such as 90m, 36h, 2.5d");
    let unit = s.chars().last().ok_or_else(bad)?;
    let scale = match unit {
        's' => 1.0,
        'm' => 60.0,
        'h' => 3_600.0,
        'd' => 86_400.0,
        _ => return Err(bad()),
    };
    let n: f64 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    Ok(At::After(n * scale))
}

/// SplitMix64: a few lines of well-mixed randomness, so output is reproducible
/// without a `rand` dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1], never 0 so `ln` is finite.
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.unit(), self.unit());
        (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
    }
}

/// The noiseless demand curve; every time is in seconds since `--start`.
struct Model {
    start: DateTime<Utc>,
    base: f64,
    peak: f64,
    weekend: f64,
    utc_offset_s: f64,
    /// (start, peak multiple, length in seconds)
    flash: Option<(f64, f64, f64)>,
    /// (start, length in seconds, retry surge height in requests/s)
    outage: Option<(f64, f64, f64)>,
}

impl Model {
    fn new(a: &Args) -> Self {
        let mut m = Model {
            start: a.start,
            base: a.base,
            peak: a.peak,
            weekend: a.weekend,
            utc_offset_s: a.utc_offset * 3_600.0,
            flash: a.flash_at.map(|at| {
                (
                    at.secs_after(a.start),
                    a.flash_height,
                    a.flash_minutes * 60.0,
                )
            }),
            outage: None,
        };
        if let Some(at) = a.outage_at {
            let (from, len, step) = (
                at.secs_after(a.start),
                a.outage_minutes * 60.0,
                f64::from(a.step),
            );
            // Requests that found the service down; part of them retry once it is back.
            let steps = (len / step).ceil() as u64;
            let lost: f64 = (0..steps)
                .map(|k| m.daily(from + k as f64 * step) * step)
                .sum();
            m.outage = Some((from, len, a.retry_fraction * lost / RETRY_TAU_S));
        }
        m
    }

    /// Diurnal and weekly pattern only.
    fn daily(&self, t: f64) -> f64 {
        let local = self.start + TimeDelta::milliseconds(((t + self.utc_offset_s) * 1e3) as i64);
        let hour = f64::from(local.num_seconds_from_midnight()) / 3_600.0;
        // Raised cosine, sharpened so nights are long and the afternoon peak is narrower.
        let shape = (0.5 * (1.0 + (TAU * (hour - PEAK_HOUR) / 24.0).cos())).powf(1.5);
        let swing = match local.weekday() {
            Weekday::Sat | Weekday::Sun => self.weekend,
            _ => 1.0,
        };
        self.base + (self.peak - self.base) * swing * shape
    }

    /// Full demand at `t`, before noise.
    fn demand(&self, t: f64) -> f64 {
        let normal = self.daily(t);
        let mut v = normal;
        if let Some((from, height, len)) = self.flash {
            v *= 1.0 + (height - 1.0) * flash_shape(t - from, len);
        }
        if let Some((from, len, surge)) = self.outage {
            if (from..from + len).contains(&t) {
                return normal * OUTAGE_FLOOR;
            }
            if t >= from + len {
                v += surge * (-(t - from - len) / RETRY_TAU_S).exp();
            }
        }
        v
    }
}

/// 0 before the crowd, 1 at its height: a linear ramp, a plateau of half the
/// length, then exponential decay that is down to ~5% one more half-length later.
fn flash_shape(dt: f64, len: f64) -> f64 {
    let plateau = len / 2.0;
    if dt < 0.0 {
        0.0
    } else if dt < FLASH_RAMP_S {
        dt / FLASH_RAMP_S
    } else if dt < FLASH_RAMP_S + plateau {
        1.0
    } else {
        (-(dt - FLASH_RAMP_S - plateau) / (len / 6.0)).exp()
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.step > 0, "--step must be positive");
    ensure!(args.days > 0.0, "--days must be positive");
    ensure!(
        0.0 <= args.base && args.base <= args.peak,
        "need 0 <= --base <= --peak"
    );
    ensure!(args.noise >= 0.0, "--noise must not be negative");
    ensure!(
        args.flash_height >= 1.0,
        "--flash-height is a multiple of demand, at least 1"
    );
    ensure!(
        args.flash_minutes > 0.0 && args.outage_minutes > 0.0,
        "durations must be positive"
    );

    let model = Model::new(&args);
    let mut rng = SplitMix64(args.seed);
    let sink: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(File::create(path)?),
        None => Box::new(io::stdout().lock()),
    };
    let mut out = BufWriter::new(sink);
    writeln!(out, "timestamp,value")?;

    let step = i64::from(args.step);
    let rows = (args.days * 86_400.0 / step as f64).round() as i64;
    for i in 0..rows {
        let t = (i * step) as f64;
        // Mean-one log-normal factor; drawn for every row so the sequence depends only on the seed.
        let noise = (args.noise * rng.normal() - 0.5 * args.noise * args.noise).exp();
        let value = (model.demand(t) * noise).max(0.0);
        let ts = args.start + TimeDelta::seconds(i * step);
        writeln!(
            out,
            "{},{value:.3}",
            ts.to_rfc3339_opts(SecondsFormat::Secs, true)
        )?;
    }
    out.flush()?;
    Ok(())
}
