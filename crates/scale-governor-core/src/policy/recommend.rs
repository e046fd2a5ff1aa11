//! `recommend`: how the recommender computes a workload's recommendations,
//! parsed from the annotation's JSON. It lives with the policy it is parsed
//! from; the strategies that use it are in [`crate::recommend`].
//!
//! Where demand comes from is configured on the governor's side: the
//! annotation names a source and supplies only the parameters that source
//! lets it supply (a named query, a JSON Pointer, placeholder values), so a
//! namespace editor can never make the governor fetch an arbitrary URL or
//! run an arbitrary PromQL query.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{PolicyError, RecommendationKind, keys};
use crate::quoting::quote;

/// The source name of the built-in warm-pool source: the workload's own
/// pods. It needs no configuration, since it reads only those pods.
pub const POD_SOURCE: &str = "pods";

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
    /// The highest demand expected within the lead from the same time a day
    /// and a week ago, scaled to the current level, plus the observed
    /// quantile of its past errors ([`crate::recommend::seasonal`]); the
    /// velocity strategy until a day of history is there.
    Seasonal,
}

/// A pool of pre-warmed pods for sessions that each reserve one pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WarmPool {
    /// The label or annotation that marks a pod as reserved (any value but
    /// `false`), e.g. `sessions.example.com/reserved`.
    pub reserved: String,
    /// Ready pods to keep unreserved, on top of the reserved ones.
    pub target_ready: u32,
}

/// The `scale-governor.io/recommend` annotation: how to compute recommendations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecommendConfig {
    /// The name of a source the governor defines (`serve --sources`), or
    /// `pods` for a warm pool. Absent: demand comes from elsewhere (a trace
    /// in `simulate`).
    #[serde(default)]
    pub source: Option<String>,
    /// Prometheus: the name of one of the source's queries.
    #[serde(default)]
    pub query: Option<String>,
    /// HTTP JSON: where the demand is in the response (a JSON Pointer,
    /// RFC 6901, e.g. `/orders`).
    #[serde(default)]
    pub pointer: Option<String>,
    /// The value is a counter: demand is its rate per second between two
    /// samples.
    #[serde(default)]
    pub counter: bool,
    /// Values for the source's `{{name}}` placeholders.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Demand one ready pod should serve (the HPA's `AverageValue` target);
    /// required unless the source is a warm pool.
    #[serde(default)]
    pub target_per_pod: Option<f64>,
    /// Relative change ignored, as the HPA's tolerance.
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
    /// Pod start-up time: how far ahead to look.
    #[serde(default)]
    pub lead_seconds: u32,
    /// Extrapolation.
    #[serde(default)]
    pub trend: Trend,
    /// Demand per second the smoothed velocity must exceed before demand is
    /// extrapolated, so noise on a flat demand is not taken for a ramp.
    #[serde(default)]
    pub velocity_threshold: f64,
    /// Demand per second² the smoothed acceleration must exceed before the
    /// acceleration term is added (with `trend: acceleration`).
    #[serde(default)]
    pub acceleration_threshold: f64,
    /// Time constant of the derivative smoothing.
    #[serde(default = "default_smoothing")]
    pub smoothing_seconds: u32,
    /// Keep the highest recommendation for this long.
    #[serde(default = "default_hold")]
    pub hold_seconds: u32,
    /// With `trend: seasonal`: the quantile of past forecast errors added to
    /// the forecast as headroom.
    #[serde(default = "default_error_quantile")]
    pub error_quantile: f64,
    /// With `trend: seasonal`: the IANA zone whose wall clock the daily and
    /// weekly seasons follow (UTC when absent), so a pattern set by local
    /// time is met on the day the clock changes too.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// A warm pool of pre-warmed pods (with `source: pods`).
    #[serde(default)]
    pub warm_pool: Option<WarmPool>,
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
fn default_error_quantile() -> f64 {
    0.95
}

/// A recommendation's lifetime when the `recommend` annotation sets none:
/// long, so a steady fleet refreshes rarely (about three writes an hour per
/// workload), and a failing source leaves a floor in place for a while
/// rather than dropping it at once.
pub const DEFAULT_TTL_SECONDS: u32 = 1800;

fn default_ttl() -> u32 {
    DEFAULT_TTL_SECONDS
}

/// Placeholder values may only be plain words: they are substituted into a
/// URL or a PromQL label matcher, and must not be able to break out of it.
fn is_plain(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A refusal of one field of the `recommend` annotation.
fn bad(field: &str, message: String) -> Result<(), PolicyError> {
    Err(PolicyError::whole(keys::RECOMMEND, field, message))
}

impl RecommendConfig {
    /// Parses the annotation's JSON, e.g.
    /// `{"source":"prometheus","query":"orders","targetPerPod":5}`.
    pub fn parse(value: &str) -> Result<RecommendConfig, PolicyError> {
        let key = keys::RECOMMEND;
        let config: RecommendConfig = serde_json::from_str(value).map_err(|e| {
            PolicyError::json(
                key,
                value,
                &e,
                r#"expected JSON like {"source":"prometheus","query":"orders","targetPerPod":5,"leadSeconds":90}"#,
            )
        })?;
        let checked = config
            .check_source()
            .and_then(|()| config.check_demand())
            .and_then(|()| config.check_settings());
        checked.map_err(|e| e.found_in(value))?;
        Ok(config)
    }

    /// Where demand comes from: a source name (never a URL), one shape of
    /// source, and only plain words for what is substituted into it.
    fn check_source(&self) -> Result<(), PolicyError> {
        if let Some(source) = &self.source {
            if source.contains("://") || source.contains('/') {
                return bad(
                    "source",
                    format!(
                        "source {} looks like a URL; name a source the governor defines (serve --sources), e.g. \"prometheus\"",
                        quote(source)
                    ),
                );
            }
            if !is_plain(source) {
                return bad(
                    "source",
                    format!("source {} is not a source name", quote(source)),
                );
            }
        }
        let shapes = [
            self.query.is_some(),
            self.pointer.is_some(),
            self.warm_pool.is_some(),
        ];
        if shapes.iter().filter(|s| **s).count() > 1 {
            return bad(
                "query",
                "give one of query (Prometheus), pointer (HTTP JSON) or warmPool (pods), not several".to_owned(),
            );
        }
        if let Some(pointer) = &self.pointer
            && !(pointer.is_empty() || pointer.starts_with('/'))
        {
            return bad(
                "pointer",
                format!(
                    "pointer {} is not a JSON Pointer; it starts with /, like /orders",
                    quote(pointer)
                ),
            );
        }
        if let Some(query) = &self.query
            && !is_plain(query)
        {
            return bad(
                "query",
                format!(
                    "query {} is not a query name; name one the source defines (PromQL itself belongs in the source)",
                    quote(query)
                ),
            );
        }
        for (name, value) in &self.params {
            if !is_plain(name) || !is_plain(value) {
                return bad(
                    "params",
                    format!(
                        "params {}={}: names and values may hold only letters, digits and - _ . :",
                        quote(name),
                        quote(value)
                    ),
                );
            }
        }
        Ok(())
    }

    /// What demand is counted in: a warm pool reads pods, anything else
    /// needs `targetPerPod`.
    fn check_demand(&self) -> Result<(), PolicyError> {
        match (&self.warm_pool, self.source.as_deref()) {
            (Some(_), Some(POD_SOURCE)) => {}
            (Some(_), _) => {
                return bad(
                    "warmPool",
                    format!(
                        "warmPool reads the workload's own pods; set \"source\":\"{POD_SOURCE}\""
                    ),
                );
            }
            (None, Some(POD_SOURCE)) => {
                return bad(
                    "warmPool",
                    "source pods needs a warmPool, like {\"reserved\":\"sessions.example.com/reserved\",\"targetReady\":3}".to_owned(),
                );
            }
            (None, _) => match self.target_per_pod {
                Some(t) if t.is_finite() && t > 0.0 => {}
                _ => {
                    return bad(
                        "targetPerPod",
                        "targetPerPod must be a positive number".to_owned(),
                    );
                }
            },
        }
        if let Some(pool) = &self.warm_pool
            && pool.reserved.trim().is_empty()
        {
            return bad(
                "warmPool",
                "warmPool.reserved names the label or annotation of a reserved pod".to_owned(),
            );
        }
        Ok(())
    }

    /// The numbers and names that tune the strategies.
    fn check_settings(&self) -> Result<(), PolicyError> {
        for (field, value) in [
            ("velocityThreshold", self.velocity_threshold),
            ("accelerationThreshold", self.acceleration_threshold),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return bad(field, format!("{field} must be a number of at least 0"));
            }
        }
        if !(0.0..1.0).contains(&self.tolerance) {
            return bad(
                "tolerance",
                "tolerance must be at least 0 and below 1".to_owned(),
            );
        }
        if !(self.error_quantile > 0.0 && self.error_quantile < 1.0) {
            return bad(
                "errorQuantile",
                "errorQuantile must be above 0 and below 1, like 0.95".to_owned(),
            );
        }
        if let Some(zone) = &self.time_zone
            && zone.parse::<chrono_tz::Tz>().is_err()
        {
            return bad(
                "timeZone",
                format!(
                    "unknown time zone {}, expected an IANA name like Europe/Berlin",
                    quote(zone)
                ),
            );
        }
        if self.ttl_seconds == 0 {
            return bad("ttlSeconds", "ttlSeconds must be positive".to_owned());
        }
        Ok(())
    }

    /// `targetPerPod`, or 1 for a warm pool (where it is unused).
    pub fn target_per_pod(&self) -> f64 {
        self.target_per_pod.unwrap_or(1.0)
    }

    /// The zone the seasonal strategy's days follow: `timeZone`, UTC when
    /// absent (parsing refused an unknown one).
    pub fn zone(&self) -> chrono_tz::Tz {
        self.time_zone
            .as_deref()
            .and_then(|z| z.parse().ok())
            .unwrap_or(chrono_tz::Tz::UTC)
    }

    /// Whether demand is read from a metric (Prometheus or HTTP JSON).
    pub fn reads_a_metric(&self) -> bool {
        self.source.as_deref().is_some_and(|s| s != POD_SOURCE)
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
            (ok.tolerance, ok.trend, ok.kind, ok.ttl_seconds),
            (0.1, Trend::Velocity, RecommendationKind::Floor, 1800)
        );
    }

    #[test]
    fn a_source_is_a_name_and_its_parameters_are_plain_words() {
        for (value, expected) in [
            (
                r#"{"source":"http://10.0.0.1/metrics","pointer":"/x","targetPerPod":1}"#,
                "looks like a URL",
            ),
            (
                r#"{"source":"prometheus","query":"sum(rate(x[1m]))","targetPerPod":1}"#,
                "is not a query name",
            ),
            (
                r#"{"source":"orders","pointer":"orders","targetPerPod":1}"#,
                "is not a JSON Pointer",
            ),
            (
                r#"{"source":"prometheus","query":"orders","params":{"app":"web\"} or vector(1e9"},"targetPerPod":1}"#,
                "may hold only letters",
            ),
            (
                r#"{"source":"prometheus","query":"orders","pointer":"/x","targetPerPod":1}"#,
                "not several",
            ),
            (
                r#"{"source":"orders","warmPool":{"reserved":"r","targetReady":2}}"#,
                "set \"source\":\"pods\"",
            ),
            (r#"{"source":"pods"}"#, "source pods needs a warmPool"),
        ] {
            let err = RecommendConfig::parse(value).unwrap_err();
            assert!(err.to_string().contains(expected), "{value}: {err}");
            assert_eq!(err.annotation, keys::RECOMMEND);
        }
        let prom = RecommendConfig::parse(
            r#"{"source":"prometheus","query":"orders","params":{"app":"web"},"targetPerPod":5}"#,
        )
        .unwrap();
        assert!(prom.reads_a_metric());
        let pool = RecommendConfig::parse(
            r#"{"source":"pods","warmPool":{"reserved":"sessions.example.com/reserved","targetReady":3}}"#,
        )
        .unwrap();
        assert_eq!(pool.warm_pool.unwrap().target_ready, 3);
    }
}
