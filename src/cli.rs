//! The command line: `serve`, `explain`, `simulate`, `status`, `certs`.
//! Each subcommand lives in its own module and calls the same core.

pub(crate) mod certs;
pub(crate) mod explain;
pub(crate) mod serve;
pub(crate) mod simulate;
pub(crate) mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Keeps every replica change inside the bounds a workload's annotations declare.
#[derive(Debug, Parser)]
#[command(name = "scale-governor", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the admission webhook against the current cluster.
    Serve(Box<serve::Args>),
    /// Decide one replica change for a manifest, offline, and say why.
    Explain(explain::Args),
    /// Replay a demand trace through the HPA, the governor and an oracle.
    Simulate(simulate::Args),
    /// Generate a CA and a serving certificate; print the caBundle.
    Certs(certs::Args),
    /// Every governed workload: bounds now, window, recommendation, source,
    /// warm pool, last changes. Also `kubectl governor status`.
    Status(status::Args),
}

/// Exit codes every command shares (`docs/policy.md`, "Exit codes"):
/// 0 success, 1 an error (a file, the cluster), 2 a usage error (from the
/// argument parser), 3 a policy that does not parse.
pub mod exit {
    /// An error reading input or talking to the cluster.
    pub const ERROR: u8 = 1;
    /// The command line itself is wrong (clap's own code).
    pub const USAGE: u8 = 2;
    /// A policy annotation does not parse.
    pub const INVALID_POLICY: u8 = 3;
}

/// Output format shared by the reporting commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Output {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON document.
    Json,
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Simulate(args) => simulate::run(&args),
        Command::Certs(args) => certs::run(&args),
        Command::Status(args) => status::run(&args),
    }
}
