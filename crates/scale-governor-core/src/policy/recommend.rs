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
    /// the forecast as headroom; absent, 0.95 ([`RecommendConfig::error_quantile`]).
    /// Refused together with `risk`, which calibrates the headroom instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_quantile: Option<f64>,
    /// The share of time the workload may be short of capacity, e.g.
    /// `"1%"`: the headroom is then calibrated online to it
    /// ([`crate::recommend::risk`]) for every trend. Read with
    /// [`RecommendConfig::risk`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskText>,
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
/// The seasonal strategy's error quantile when `errorQuantile` is absent.
pub const DEFAULT_ERROR_QUANTILE: f64 = 0.95;

/// The least `risk` accepted: below it, a day holds under a minute and a
/// half of shortfall, too little to calibrate against.
pub const MIN_RISK: f64 = 0.001;
/// The most `risk` accepted: beyond it, the recommendation would be short
/// more than one period in five, not a service level.
pub const MAX_RISK: f64 = 0.20;

/// `risk` as written: a percentage like `"1%"`. Kept as text so an error
/// can quote it; a JSON number is read as its text (and refused, since it
/// has no `%`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RiskText(pub String);

impl<'de> Deserialize<'de> for RiskText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RiskText, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(serde_json::Number),
        }
        Ok(RiskText(match Raw::deserialize(d)? {
            Raw::Text(t) => t,
            Raw::Number(n) => n.to_string(),
        }))
    }
}

impl RiskText {
    /// The share it states, from 0 to 1: `"1%"` is 0.01. `None` unless it
    /// is a number followed by `%` (spaces allowed around it).
    pub fn share(&self) -> Option<f64> {
        let number = self.0.trim().strip_suffix('%')?.trim_end();
        let value: f64 = number.parse().ok()?;
        value.is_finite().then_some(value / 100.0)
    }
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
        if let Some(q) = self.error_quantile
            && !(q > 0.0 && q < 1.0)
        {
            return bad(
                "errorQuantile",
                "errorQuantile must be above 0 and below 1, like 0.95".to_owned(),
            );
        }
        self.check_risk()?;
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

    /// `risk`: a percentage from 0.1 % to 20 %, of demand met by ready
    /// pods (so not with a warm pool, whose demand is reservations), and
    /// the one setting of the headroom (so not with `errorQuantile`).
    fn check_risk(&self) -> Result<(), PolicyError> {
        let Some(text) = &self.risk else {
            return Ok(());
        };
        let Some(share) = text.share() else {
            return bad(
                "risk",
                format!(
                    "risk {} is not a percentage, expected one from 0.1% to 20% like \"1%\"",
                    quote(&text.0)
                ),
            );
        };
        if !(MIN_RISK - 1e-12..=MAX_RISK + 1e-12).contains(&share) {
            return bad(
                "risk",
                format!(
                    "risk {} is out of range, expected a percentage from 0.1% to 20% like \"1%\"",
                    quote(&text.0)
                ),
            );
        }
        if self.source.as_deref() == Some(POD_SOURCE) {
            return bad(
                "risk",
                format!(
                    "risk {} needs demand served by ready pods; with source pods, demand is reservations: keep targetReady idle pods instead",
                    quote(&text.0)
                ),
            );
        }
        if self.error_quantile.is_some() {
            return bad(
                "risk",
                format!(
                    "risk {} and errorQuantile both set the headroom; give one: risk calibrates it to the share of time short, errorQuantile fixes a quantile of past errors",
                    quote(&text.0)
                ),
            );
        }
        Ok(())
    }

    /// The seasonal strategy's error quantile: `errorQuantile`, or 0.95.
    pub fn error_quantile(&self) -> f64 {
        self.error_quantile.unwrap_or(DEFAULT_ERROR_QUANTILE)
    }

    /// The stated `risk` as a share from 0.001 to 0.2, when set (parsing
    /// refused any other).
    pub fn risk(&self) -> Option<f64> {
        self.risk.as_ref().and_then(RiskText::share)
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

    #[test]
    fn risk_is_a_percentage_in_range_of_demand_on_ready_pods_and_the_only_headroom() {
        let ok =
            RecommendConfig::parse(r#"{"targetPerPod":5,"trend":"seasonal","risk":"1%"}"#).unwrap();
        assert_eq!(ok.risk(), Some(0.01));
        assert_eq!(ok.error_quantile(), DEFAULT_ERROR_QUANTILE);
        for (text, share) in [("0.1%", 0.001), (" 20 %", 0.2), ("0.5 %", 0.005)] {
            let value = format!(r#"{{"targetPerPod":5,"risk":"{text}"}}"#);
            let got = RecommendConfig::parse(&value).unwrap().risk().unwrap();
            assert!((got - share).abs() < 1e-12, "{text}: {got}");
        }
        assert_eq!(
            RecommendConfig::parse(r#"{"targetPerPod":5}"#)
                .unwrap()
                .risk(),
            None
        );
        for (value, column, expected) in [
            (
                r#"{"targetPerPod":5,"risk":"25%"}"#,
                20,
                r#"scale-governor.io/recommend: at "risk" (column 20): risk "25%" is out of range, expected a percentage from 0.1% to 20% like "1%""#,
            ),
            (
                r#"{"targetPerPod":5,"risk":"0.05%"}"#,
                20,
                r#"risk "0.05%" is out of range"#,
            ),
            (
                r#"{"targetPerPod":5,"risk":0.01}"#,
                20,
                r#"risk "0.01" is not a percentage, expected one from 0.1% to 20% like "1%""#,
            ),
            (
                r#"{"targetPerPod":5,"risk":"1 percent"}"#,
                20,
                r#"risk "1 percent" is not a percentage"#,
            ),
            (
                r#"{"targetPerPod":5,"risk":"nan%"}"#,
                20,
                r#"risk "nan%" is not a percentage"#,
            ),
            (
                r#"{"targetPerPod":5,"trend":"seasonal","errorQuantile":0.9,"risk":"1%"}"#,
                59,
                r#"risk "1%" and errorQuantile both set the headroom; give one"#,
            ),
            (
                r#"{"source":"pods","warmPool":{"reserved":"r","targetReady":2},"risk":"1%"}"#,
                63,
                r#"risk "1%" needs demand served by ready pods; with source pods, demand is reservations"#,
            ),
        ] {
            let err = RecommendConfig::parse(value).unwrap_err();
            assert_eq!(
                (err.annotation.as_str(), err.token.as_str(), err.column),
                (keys::RECOMMEND, "risk", column),
                "{value}: {err}"
            );
            assert!(err.to_string().contains(expected), "{value}: {err}");
        }
        // A fixed quantile alone is still taken.
        let fixed =
            RecommendConfig::parse(r#"{"targetPerPod":5,"trend":"seasonal","errorQuantile":0.9}"#)
                .unwrap();
        assert_eq!((fixed.error_quantile(), fixed.risk()), (0.9, None));
    }
}
