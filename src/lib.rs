//! scale-governor keeps every change to a workload's replica count inside the
//! bounds its own `scale-governor.io/*` annotations declare.
//!
//! The crate is split so the architecture reads off the file tree:
//! - [`policy`] and [`engine`] are the pure core: no I/O, no kube, no tokio;
//!   every caller passes `now` explicitly.
//! - the CLI, the webhook and the cluster cache are adapters around that core.
#![forbid(unsafe_code)]

pub mod cache;
pub mod cli;
pub mod engine;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod policy;
pub mod recommend;
pub mod server;
pub mod simulate;
pub mod tls;
pub mod webhook;
pub mod workload;
