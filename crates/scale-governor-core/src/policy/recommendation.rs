//! `recommendation`: what the recommender last wrote. The webhook enforces it
//! as a floor (under another autoscaler) or a target (governor alone) until
//! it expires; a stale one is ignored with a warning.

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

/// The recommender's output, stored as JSON in the `recommendation` annotation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Recommendation {
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
}

impl Recommendation {
    /// Parses the annotation's JSON.
    pub fn parse(value: &str) -> Result<Recommendation, PolicyError> {
        let expected = r#"expected JSON like {"replicas":12,"reason":"...","computedAt":"2026-11-21T12:00:00Z","expiresAt":"2026-11-21T12:05:00Z","kind":"floor"}"#;
        let rec: Recommendation = serde_json::from_str(value).map_err(|e| {
            PolicyError::whole(
                keys::RECOMMENDATION,
                value.trim(),
                format!("{e}, {expected}"),
            )
        })?;
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
