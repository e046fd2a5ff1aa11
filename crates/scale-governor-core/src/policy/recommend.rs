//! `recommend`: how the recommender computes a workload's recommendations,
//! parsed from the annotation's JSON. It lives with the policy it is parsed
//! from; the strategies that use it are in [`crate::recommend`].

use serde::{Deserialize, Serialize};

use super::{PolicyError, RecommendationKind, keys};

/// How far ahead demand is extrapolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trend {
    /// Current demand only.
    None,
    /// Demand plus velocity × lead.
    #[default]
    Velocity,
    /// Demand plus velocity × lead plus ½ acceleration × lead².
    Acceleration,
}

/// The `scale-governor.io/recommend` annotation: how to compute recommendations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecommendConfig {
    /// Demand one ready pod should serve (the HPA's `AverageValue` target).
    pub target_per_pod: f64,
    /// Relative change ignored, as the HPA's tolerance.
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
    /// Pod start-up time: how far ahead to look.
    #[serde(default)]
    pub lead_seconds: u32,
    /// Extrapolation.
    #[serde(default)]
    pub trend: Trend,
    /// Time constant of the derivative smoothing.
    #[serde(default = "default_smoothing")]
    pub smoothing_seconds: u32,
    /// Keep the highest recommendation for this long.
    #[serde(default = "default_hold")]
    pub hold_seconds: u32,
    /// Floor under another autoscaler, or target when alone.
    #[serde(default)]
    pub kind: RecommendationKind,
    /// A recommendation expires this long after it is computed.
    #[serde(default = "default_ttl")]
    pub ttl_seconds: u32,
}

fn default_tolerance() -> f64 {
    0.1
}
fn default_smoothing() -> u32 {
    120
}
fn default_hold() -> u32 {
    300
}
/// A recommendation's lifetime when the `recommend` annotation sets none.
pub const DEFAULT_TTL_SECONDS: u32 = 300;

fn default_ttl() -> u32 {
    DEFAULT_TTL_SECONDS
}

impl RecommendConfig {
    /// Parses the annotation's JSON, e.g. `{"targetPerPod":100,"leadSeconds":90}`.
    pub fn parse(value: &str) -> Result<RecommendConfig, PolicyError> {
        let key = keys::RECOMMEND;
        let config: RecommendConfig = serde_json::from_str(value).map_err(|e| {
            PolicyError::whole(
                key,
                value.trim(),
                format!("{e}, expected JSON like {{\"targetPerPod\":100,\"leadSeconds\":90,\"trend\":\"velocity\",\"kind\":\"floor\"}}"),
            )
        })?;
        let bad =
            |field: &str, message: &str| Err(PolicyError::whole(key, field, message.to_owned()));
        if !(config.target_per_pod.is_finite() && config.target_per_pod > 0.0) {
            return bad("targetPerPod", "targetPerPod must be a positive number");
        }
        if !(0.0..1.0).contains(&config.tolerance) {
            return bad("tolerance", "tolerance must be at least 0 and below 1");
        }
        if config.ttl_seconds == 0 {
            return bad("ttlSeconds", "ttlSeconds must be positive");
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_name_the_field() {
        let err = RecommendConfig::parse(r#"{"targetPerPod":0}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("targetPerPod must be a positive number"),
            "{err}"
        );
        let err = RecommendConfig::parse(r#"{"target":1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `target`"), "{err}");
        let ok = RecommendConfig::parse(r#"{"targetPerPod":50}"#).unwrap();
        assert_eq!(
            (ok.tolerance, ok.trend, ok.kind),
            (0.1, Trend::Velocity, RecommendationKind::Floor)
        );
    }
}
