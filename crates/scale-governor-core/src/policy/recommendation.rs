//! `recommendation`: what the recommender last wrote. The webhook enforces it
//! as a floor (under another autoscaler) or a target (governor alone) until
//! it expires; a stale one is ignored with a warning.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{MAX_REPLICA_COUNT, PolicyError, keys};

/// How a recommendation binds requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecommendationKind {
    /// A lower bound under another autoscaler (the default).
    #[default]
    Floor,
    /// Both bounds: the governor is the only autoscaler.
    Target,
}

/// The stored format's version, so a later governor can migrate it.
pub const RECOMMENDATION_VERSION: u32 = 1;

/// The recommender's output, stored as JSON in the `recommendation` annotation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Recommendation {
    /// Format version ([`RECOMMENDATION_VERSION`]); absent in the first,
    /// hand-written ones.
    #[serde(default = "version", rename = "v")]
    pub version: u32,
    /// Recommended replicas.
    pub replicas: u32,
    /// Why, in words, e.g. `schedule Mon-Fri 08:00: 12`.
    #[serde(default)]
    pub reason: String,
    /// When it was computed.
    pub computed_at: DateTime<Utc>,
    /// After this instant it no longer binds.
    pub expires_at: DateTime<Utc>,
    /// Floor or target.
    #[serde(default)]
    pub kind: RecommendationKind,
    /// The strategy that set `replicas`: `proportional`, `velocity`,
    /// `acceleration`, `warm-pool`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub strategy: String,
    /// The inputs behind it, e.g. `demand`, `velocity`, `reserved`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
}

fn version() -> u32 {
    RECOMMENDATION_VERSION
}

impl Recommendation {
    /// Parses the annotation's JSON.
    pub fn parse(value: &str) -> Result<Recommendation, PolicyError> {
        let expected = r#"expected JSON like {"replicas":12,"reason":"...","computedAt":"2026-11-21T12:00:00Z","expiresAt":"2026-11-21T12:05:00Z","kind":"floor"}"#;
        let rec: Recommendation = serde_json::from_str(value)
            .map_err(|e| PolicyError::json(keys::RECOMMENDATION, value, &e, expected))?;
        if rec.version > RECOMMENDATION_VERSION {
            return Err(PolicyError::whole(
                keys::RECOMMENDATION,
                &rec.version.to_string(),
                format!(
                    "recommendation format v{} is newer than this governor reads (v{RECOMMENDATION_VERSION}); upgrade the governor",
                    rec.version
                ),
            ));
        }
        if rec.replicas > MAX_REPLICA_COUNT {
            return Err(PolicyError::whole(
                keys::RECOMMENDATION,
                &rec.replicas.to_string(),
                format!(
                    "replicas {} is larger than {MAX_REPLICA_COUNT}",
                    rec.replicas
                ),
            ));
        }
        if rec.expires_at <= rec.computed_at {
            return Err(PolicyError::whole(
                keys::RECOMMENDATION,
                &rec.expires_at.to_rfc3339(),
                "expiresAt must be after computedAt".into(),
            ));
        }
        Ok(rec)
    }

    /// Whether it still binds at `now`.
    pub fn is_fresh(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"{"replicas":12,"reason":"schedule","computedAt":"2026-11-21T12:00:00Z","expiresAt":"2026-11-21T12:05:00Z"}"#;

    #[test]
    fn parses_and_defaults_to_floor() {
        let rec = Recommendation::parse(JSON).unwrap();
        assert_eq!((rec.replicas, rec.kind), (12, RecommendationKind::Floor));
        assert!(rec.is_fresh("2026-11-21T12:04:59Z".parse().unwrap()));
        assert!(!rec.is_fresh("2026-11-21T12:05:00Z".parse().unwrap()));
    }

    #[test]
    fn rejects_unknown_fields_and_inverted_times() {
        let err = Recommendation::parse(r#"{"replicas":1,"computedAt":"2026-11-21T12:00:00Z","expiresAt":"2026-11-21T12:05:00Z","kidn":"target"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `kidn`"), "{err}");
        let err = Recommendation::parse(r#"{"replicas":1,"computedAt":"2026-11-21T12:05:00Z","expiresAt":"2026-11-21T12:00:00Z"}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("expiresAt must be after computedAt")
        );
        let err = Recommendation::parse("12").unwrap_err();
        assert!(err.to_string().contains("expected JSON like"), "{err}");
    }
}
