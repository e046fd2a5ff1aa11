//! A governed workload as the core sees it: kind, metadata and replicas,
//! read from a manifest (YAML or JSON) or from an admission object. Pure.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{
    policy::{GOVERNED_LABEL, Policy, PolicyErrors, keys},
    recommend::state::LoopState,
};

/// Kinds the governor understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
}

impl WorkloadKind {
    /// Every kind, in a fixed order.
    pub const ALL: [WorkloadKind; 2] = [WorkloadKind::Deployment, WorkloadKind::StatefulSet];

    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
        }
    }

    /// The `apps/v1` resource name, also the metric label.
    pub fn resource(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployments",
            WorkloadKind::StatefulSet => "statefulsets",
        }
    }

    /// The kind for an `apps` resource name (`deployments`, `statefulsets`).
    pub fn from_resource(resource: &str) -> Option<WorkloadKind> {
        WorkloadKind::ALL
            .into_iter()
            .find(|k| k.resource() == resource)
    }

    /// The kind for a Kubernetes kind name (`Deployment`, `StatefulSet`).
    pub fn from_kind(kind: &str) -> Option<WorkloadKind> {
        WorkloadKind::ALL.into_iter().find(|k| k.as_str() == kind)
    }
}

/// Errors reading a workload manifest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkloadError {
    /// Neither YAML nor JSON of an object.
    #[error("manifest does not parse: {0}")]
    Syntax(String),
    /// A kind the governor does not govern.
    #[error("kind {0:?} is not governed; expected Deployment or StatefulSet")]
    UnsupportedKind(String),
}

/// The parts of `metadata` the governor reads. The core knows no Kubernetes
/// client types; adapters copy these few fields out of theirs.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Meta {
    /// `metadata.name`.
    pub name: Option<String>,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// `metadata.uid`.
    pub uid: Option<String>,
    /// `metadata.labels`.
    pub labels: Option<BTreeMap<String, String>>,
    /// `metadata.annotations`.
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The parts of a Deployment or StatefulSet the governor reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Deployment or StatefulSet.
    pub kind: WorkloadKind,
    /// Name, namespace, labels, annotations.
    pub metadata: Meta,
    /// `spec.replicas`; Kubernetes defaults an absent value to 1.
    pub replicas: u32,
}

#[derive(Deserialize)]
struct Raw {
    kind: Option<String>,
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: RawSpec,
}

#[derive(Deserialize, Default)]
struct RawSpec {
    replicas: Option<i32>,
}

impl Workload {
    /// Reads a manifest in YAML or JSON.
    pub fn from_manifest(text: &str) -> Result<Workload, WorkloadError> {
        let raw: Raw = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| WorkloadError::Syntax(e.to_string()))?
        } else {
            serde_saphyr::from_str(text).map_err(|e| WorkloadError::Syntax(e.to_string()))?
        };
        let kind_name = raw.kind.as_deref().unwrap_or("");
        let kind = WorkloadKind::from_kind(kind_name)
            .ok_or_else(|| WorkloadError::UnsupportedKind(kind_name.to_owned()))?;
        Ok(Workload {
            kind,
            metadata: raw.metadata,
            replicas: raw.spec.replicas.map_or(1, |r| r.max(0) as u32),
        })
    }

    /// Whether it opted in with `scale-governor.io/governed: "true"`.
    pub fn is_governed(&self) -> bool {
        is_governed(self.metadata.labels.as_ref())
    }

    /// Its policy, parsed from its annotations.
    pub fn policy(&self) -> Result<Policy, PolicyErrors> {
        policy_of(self.metadata.annotations.as_ref())
    }

    /// `namespace/name`, or just the name when no namespace is set.
    pub fn display_name(&self) -> String {
        let name = self.metadata.name.as_deref().unwrap_or("<unnamed>");
        match self.metadata.namespace.as_deref() {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_owned(),
        }
    }
}

/// Whether labels carry the opt-in label set to `true`.
pub fn is_governed(labels: Option<&BTreeMap<String, String>>) -> bool {
    labels
        .and_then(|l| l.get(GOVERNED_LABEL))
        .is_some_and(|v| v == "true")
}

/// Parses the policy from an annotation map. A `state` annotation the
/// recommender loop could not read is a warning, as for the other
/// annotations the governor writes: the loop would start afresh.
pub fn policy_of(annotations: Option<&BTreeMap<String, String>>) -> Result<Policy, PolicyErrors> {
    let mut policy = Policy::from_annotations(
        annotations
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )?;
    if let Some(state) = annotations.and_then(|a| a.get(keys::STATE))
        && let Err(e) = LoopState::parse(state)
    {
        policy.warnings.push(format!(
            "{e}; it is ignored, and the recommender loop starts without the demand trend, window raise and source health it keeps there"
        ));
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_yaml_and_json_manifests() {
        let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    scale-governor.io/governed: \"true\"\n  annotations:\n    scale-governor.io/max-replicas: \"20\"\nspec:\n  replicas: 5\n";
        let w = Workload::from_manifest(yaml).unwrap();
        assert_eq!(
            (w.kind, w.replicas, w.is_governed()),
            (WorkloadKind::Deployment, 5, true)
        );
        assert_eq!(w.policy().unwrap().max_replicas, Some(20));
        let json =
            r#"{"kind":"StatefulSet","metadata":{"name":"db","namespace":"prod"},"spec":{}}"#;
        let w = Workload::from_manifest(json).unwrap();
        assert_eq!(
            (w.kind, w.replicas, w.is_governed()),
            (WorkloadKind::StatefulSet, 1, false)
        );
        assert_eq!(w.display_name(), "prod/db");
    }

    #[test]
    fn rejects_other_kinds_and_garbage() {
        let err = Workload::from_manifest("kind: Pod\nmetadata: {name: x}\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "kind \"Pod\" is not governed; expected Deployment or StatefulSet"
        );
        assert!(matches!(
            Workload::from_manifest("{not json"),
            Err(WorkloadError::Syntax(_))
        ));
        assert!(matches!(
            Workload::from_manifest(": : :"),
            Err(WorkloadError::Syntax(_))
        ));
    }

    /// A `state` annotation the loop cannot read is a warning naming it,
    /// bounded and escaped whatever it holds; a good one says nothing.
    #[test]
    fn an_unreadable_state_is_a_warning() {
        let policy = |state: &str| {
            let annotations = BTreeMap::from([(keys::STATE.to_owned(), state.to_owned())]);
            policy_of(Some(&annotations)).unwrap()
        };
        let tail = "; it is ignored, and the recommender loop starts without the demand trend, window raise and source health it keeps there";
        assert_eq!(
            policy("{not json").warnings,
            [format!(
                "the state annotation does not parse: key must be a string at line 1 column 2{tail}"
            )]
        );
        assert_eq!(
            policy("[1]").warnings,
            [format!("the state annotation is not a JSON object{tail}")]
        );
        assert_eq!(
            policy(r#"{"v":99}"#).warnings,
            [format!("state format v99 is not v1{tail}")]
        );
        // JSON escapes, so serde_json's message holds the raw characters.
        let hostile = format!(r#"{{"v":"\u202e\u0007{}"}}"#, "é".repeat(100_000));
        let warnings = policy(&hostile).warnings;
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].len() < 600, "{} bytes", warnings[0].len());
        assert!(
            warnings[0].contains(r#"invalid type: string "\u{202e}\u{7}éé"#),
            "{}",
            warnings[0]
        );
        assert!(!warnings[0].contains('\u{202e}'), "{}", warnings[0]);
        assert!(
            policy(&crate::recommend::state::LoopState::default().to_annotation())
                .warnings
                .is_empty()
        );
    }
}
