//! scale-governor keeps every change to a workload's replica count inside the
//! bounds its own `scale-governor.io/*` annotations declare.
//!
//! This crate holds the adapters around the pure core
//! ([`scale_governor_core`]: policy, engine, recommender strategies,
//! simulator model), which it re-exports under the same module names:
//! - [`webhook`]: HTTP ⇄ AdmissionReview ⇄ engine, and the admin endpoints;
//! - [`cache`]: watches → the in-memory index the webhook reads;
//! - [`events`], [`metrics`], [`report`]: how each decision is explained;
//! - [`leader`]: leadership through a Lease; [`ledgers`]: the ledger
//!   objects every replica persists; [`recommender`]: the leader's
//!   recommendation loop;
//! - [`tls`], [`server`]: certificates with hot reload, the listeners;
//! - [`cli`] and [`chart`]: the command line and its SVG charts.

#![forbid(unsafe_code)]

pub use scale_governor_core::{engine, policy, recommend, simulate, units, workload};

pub mod cache;
pub mod chart;
pub mod cli;
pub mod events;
pub mod leader;
pub mod ledgers;
pub mod managed;
pub mod metrics;
pub mod recommender;
pub mod report;
pub mod server;
pub mod sources;
pub mod tasks;
pub mod tls;
pub mod webhook;
