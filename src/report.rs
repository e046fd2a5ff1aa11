//! A governed decision with the workload and actor it is about: what the
//! webhook hands to the reporters (Events, metrics, logs). It belongs to
//! neither side, so `webhook` and `events` both depend on it and not on each
//! other.

use crate::{engine::Decision, workload::WorkloadKind};

/// A governed decision, for Events, metrics and logs.
#[derive(Debug, Clone)]
pub struct Report {
    /// Deployment or StatefulSet.
    pub kind: WorkloadKind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.uid`, when known.
    pub uid: Option<String>,
    /// Who asked.
    pub actor: String,
    /// `--dry-run=server`: report nothing outside the response.
    pub dry_run: bool,
    /// What the engine decided.
    pub decision: Decision,
}
