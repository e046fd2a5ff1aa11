//! The pure core of scale-governor. Every caller passes `now`; nothing here
//! reads a clock, a file, the network or the cluster.
//!
//! - [`policy`]: the `scale-governor.io/*` annotations parsed into a typed
//!   [`policy::Policy`], with errors that name the annotation and the token.
//! - [`engine`]: [`engine::decide`], the one decision function the webhook,
//!   the recommender loop, `explain` and `simulate` all call.
//! - [`recommend`]: the recommender's strategies, demand samples in and a
//!   recommendation out.
//! - [`simulate`]: trace replay through the HPA emulation, the governor and
//!   an oracle.
//! - [`workload`] and [`units`]: a manifest as the core sees it, and the
//!   duration and time grammar every input shares.
//! - [`quoting`]: annotation input quoted into a message, bounded and
//!   escaped; every message that echoes input goes through it.

#![forbid(unsafe_code)]

pub mod engine;
pub mod policy;
pub mod quoting;
pub mod recommend;
pub mod simulate;
pub mod units;
pub mod workload;
