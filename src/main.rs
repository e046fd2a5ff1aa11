//! The `scale-governor` binary: installs the crypto provider, parses the
//! command line and dispatches to [`scale_governor::cli`].
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use scale_governor::cli::{self, Cli};

fn main() -> ExitCode {
    // One process-wide crypto provider for both the webhook's TLS and kube's client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli::run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
