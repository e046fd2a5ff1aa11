//! scale-governor keeps every change to a workload's replica count inside the
//! bounds its own `scale-governor.io/*` annotations declare.
//!
//! This crate holds the adapters around the pure core
//! ([`scale_governor_core`]: policy, engine, recommender strategies and
//! plan, simulator model), which it re-exports under the same module names.
//! Its public API is the command line ([`cli`]); everything else is
//! internal, and what tests, benches and fuzz targets need is reachable
//! through the `testing` module under the `test-support` feature.
//!
//! The modules:
//! - `webhook`: HTTP ⇄ AdmissionReview ⇄ engine, and the admin endpoints;
//! - `cache`: watches → the in-memory index the webhook reads;
//! - `report`, `events`, `metrics`: how each decision is explained (log
//!   lines, Event series, Prometheus);
//! - `clock`: the apiserver's time, which every replica's decisions use;
//! - `leader`: leadership through a Lease; `ledgers`: the ledger objects
//!   every replica persists; `managed`: which fields a manager owns, from
//!   `managedFields`;
//! - `recommender`: the leader's loop, the executor of the core's plan;
//!   `sources`: the metric sources it samples (Prometheus, HTTP JSON);
//! - `tls`, `server`: certificates with hot reload, the listeners;
//!   `tasks`: background tasks, each in its own span;
//! - [`cli`] and `chart`: the command line and its SVG charts.

#![forbid(unsafe_code)]
// With the test-support surface compiled in (as clippy and the tests do),
// every `pub` item must be reachable from `cli` or `testing`: the rest is
// `pub(crate)`.
#![cfg_attr(feature = "test-support", warn(unreachable_pub))]

pub use scale_governor_core::{engine, policy, quoting, recommend, simulate, units, workload};

pub(crate) mod cache;
pub(crate) mod chart;
pub mod cli;
pub(crate) mod clock;
pub(crate) mod events;
pub(crate) mod leader;
pub(crate) mod ledgers;
pub(crate) mod managed;
pub(crate) mod metrics;
pub(crate) mod recommender;
pub(crate) mod report;
pub(crate) mod server;
pub(crate) mod sources;
pub(crate) mod tasks;
#[cfg(feature = "test-support")]
pub mod testing;
pub(crate) mod tls;
pub(crate) mod webhook;
