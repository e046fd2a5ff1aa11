//! `scale-governor explain`: the engine's decision for one request against a
//! manifest, offline, with every reason. Same engine as the webhook.

use std::{
    fmt::Write as _,
    io::Read,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Output;
use crate::{
    engine::{self, Bounds, Decision, Ledger, Outcome, Request},
    policy::{GOVERNED_LABEL, MAX_REPLICA_COUNT, PolicyErrors},
    workload::Workload,
};

/// Exit code for a policy that does not parse.
pub(crate) const EXIT_INVALID_POLICY: u8 = super::exit::INVALID_POLICY;

/// `explain` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Deployment or StatefulSet manifest, YAML or JSON; `-` reads stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub(crate) filename: PathBuf,
    /// Replicas requested.
    #[arg(long, value_name = "N")]
    pub replicas: u32,
    /// Replicas before the request; defaults to the manifest's spec.replicas.
    #[arg(long, value_name = "M")]
    pub current: Option<u32>,
    /// Decide as of this RFC 3339 time instead of now.
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    pub at: Option<DateTime<Utc>>,
    /// Past replica changes: JSON lines or CSV `time,from,to,actor[,requested]`.
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
    /// Who asks, as recorded in the ledger.
    #[arg(long, default_value = "explain")]
    pub actor: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, crate::units::InstantError> {
    crate::units::parse_instant(s)
}

/// Why `explain` could not decide.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExplainError {
    /// The policy annotations do not parse (exit code 3).
    #[error(transparent)]
    Policy(#[from] PolicyErrors),
    /// The manifest or history could not be read.
    #[error(transparent)]
    Input(#[from] anyhow::Error),
}

/// A decision with what it was decided about.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `Deployment` or `StatefulSet`.
    pub kind: &'static str,
    /// `namespace/name`.
    pub name: String,
    /// Whether the workload carries the opt-in label.
    pub governed: bool,
    /// The instant decided at.
    pub at: DateTime<Utc>,
    /// Bounds in force, `[lower, upper]`.
    pub bounds: (u32, u32),
    /// The engine's decision.
    pub decision: Decision,
}

/// Reads inputs, decides and prints.
pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let manifest = read_input(&args.filename)?;
    let history = args.history.as_deref().map(read_input).transpose()?;
    let now = args.at.unwrap_or_else(Utc::now);
    match explain(&manifest, history.as_deref(), args, now) {
        Ok(report) => {
            print!("{}", render(&report, args.output));
            Ok(ExitCode::SUCCESS)
        }
        Err(ExplainError::Policy(err)) => {
            eprint!("{}", invalid(&err));
            Ok(ExitCode::from(EXIT_INVALID_POLICY))
        }
        Err(ExplainError::Input(err)) => Err(err),
    }
}

/// What `explain` prints for a policy that does not parse: every error
/// kept, each with its key and position, and how many more there are.
pub(crate) fn invalid(errors: &PolicyErrors) -> String {
    format!("error: invalid policy: {errors}\n")
}

fn read_input(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading stdin")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Decides the request in `args` against `manifest` at `now`. Pure.
pub fn explain(
    manifest: &str,
    history: Option<&str>,
    args: &Args,
    now: DateTime<Utc>,
) -> Result<Report, ExplainError> {
    let workload = Workload::from_manifest(manifest).map_err(anyhow::Error::from)?;
    let policy = workload.policy()?;
    // Without --history, a live object's own persisted history, as the
    // webhook would read it: explain must say what the webhook would say.
    let mut history_warning = None;
    let ledger = match history {
        Some(text) => Ledger::from_history_text(text).context("reading --history")?,
        None => match workload
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::policy::keys::HISTORY))
        {
            Some(value) => match Ledger::from_compact(value) {
                Ok(ledger) => ledger,
                Err(e) => {
                    history_warning = Some(format!("the history annotation is ignored: {e}"));
                    Ledger::new()
                }
            },
            None => Ledger::new(),
        },
    };
    let request = Request {
        current: args.current.unwrap_or(workload.replicas),
        requested: args.replicas,
        actor: &args.actor,
    };
    let governed = workload.is_governed();
    let mut decision = engine::decide(&policy, &ledger, request, now);
    let mut warnings = Vec::new();
    let bounds = Bounds::at(&policy, now, &mut warnings);
    let bounds = (bounds.lower(), bounds.upper());
    decision.warnings.splice(0..0, policy.warnings);
    decision.warnings.extend(history_warning);
    // What the windows do on the coming days the clock skips or repeats a
    // boundary, as the webhook says when they are written.
    decision.warnings.extend(policy.windows.dst_notes(now));
    if !governed {
        // The webhook's fast path: without the label nothing is enforced.
        decision = Decision {
            allowed: true,
            replicas: request.requested,
            governed: request.requested,
            outcome: Outcome::Paused,
            reasons: Vec::new(),
            warnings: vec![format!(
                "not governed: the label {GOVERNED_LABEL}=\"true\" is missing, so the webhook lets every change through"
            )],
            ..decision
        };
    }
    Ok(Report {
        kind: workload.kind.as_str(),
        name: workload.display_name(),
        governed,
        at: now,
        bounds,
        decision,
    })
}

#[derive(Serialize)]
struct JsonReport<'a> {
    allowed: bool,
    replicas: u32,
    governed: u32,
    outcome: Outcome,
    mode: crate::policy::Mode,
    reasons: Vec<&'a str>,
    rules: Vec<&'static str>,
    warnings: &'a [String],
}

/// Formats a report as text or JSON.
pub fn render(report: &Report, output: Output) -> String {
    let d = &report.decision;
    if output == Output::Json {
        let json = JsonReport {
            allowed: d.allowed,
            replicas: d.replicas,
            governed: d.governed,
            outcome: d.outcome,
            mode: d.mode,
            reasons: d.reasons.iter().map(|r| r.message.as_str()).collect(),
            rules: d.reasons.iter().map(|r| r.rule.as_str()).collect(),
            warnings: &d.warnings,
        };
        return serde_json::to_string(&json).unwrap_or_default() + "\n";
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} (mode {}) at {}",
        report.kind,
        report.name,
        d.mode,
        report.at.to_rfc3339()
    );
    let verdict = match d.outcome {
        Outcome::Unchanged => format!("allowed {} (current {})", d.replicas, d.current),
        Outcome::Clamped => format!(
            "clamped to {} (asked {}, current {})",
            d.replicas, d.requested, d.current
        ),
        Outcome::Denied => format!(
            "denied, stays at {} (asked {}, rules allow {})",
            d.replicas, d.requested, d.governed
        ),
        Outcome::Stepped => format!(
            "allowed {} as a step toward the bounds (current {})",
            d.replicas, d.current
        ),
        Outcome::Audited => format!(
            "allowed {} in audit mode (rules allow {})",
            d.replicas, d.governed
        ),
        Outcome::Paused => format!(
            "allowed {} unchanged, policy not enforced (current {})",
            d.replicas, d.current
        ),
    };
    let _ = writeln!(out, "decision: {verdict}");
    if report.governed && d.outcome != Outcome::Paused {
        let upper = match report.bounds.1 {
            MAX_REPLICA_COUNT => "unbounded".to_owned(),
            n => n.to_string(),
        };
        let _ = writeln!(out, "bounds:   {}..{upper}", report.bounds.0);
    }
    for reason in &d.reasons {
        let _ = writeln!(out, "reason:   {}", reason.message);
    }
    for warning in &d.warnings {
        let _ = writeln!(out, "warning:  {warning}");
    }
    out
}

#[cfg(test)]
mod tests;
