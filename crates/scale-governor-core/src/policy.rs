//! The policy language: `scale-governor.io/*` annotations parsed into a typed
//! [`Policy`]. Pure: no I/O, no clock. `docs/policy.md` is the reference.

mod behavior;
mod error;
mod recommend;
mod recommendation;
mod windows;

use chrono::{DateTime, Utc};

use crate::{quoting::quote, units};

pub use behavior::{Direction, PolicyKind, RatePolicy, ScalingRules, SelectPolicy};
pub use error::{MAX_REPORTED_ERRORS, PolicyError, PolicyErrors};
pub use recommend::{
    DEFAULT_ERROR_QUANTILE, DEFAULT_TTL_SECONDS, MAX_RISK, MIN_RISK, POD_SOURCE, RecommendConfig,
    RiskText, Trend, WarmPool,
};
pub use recommendation::{RECOMMENDATION_VERSION, Recommendation, RecommendationKind};
pub use windows::{DaySet, Span, TimeOfDay, Window, WindowBounds, Windows};

/// The prefix every policy annotation and the opt-in label share.
pub const PREFIX: &str = "scale-governor.io/";
/// Opt-in label: only workloads carrying `scale-governor.io/governed: "true"` are governed.
pub const GOVERNED_LABEL: &str = "scale-governor.io/governed";
/// The pod label of a warm pool: the pod template of a Deployment whose
/// `recommend` uses the `pods` source carries it, set to the Deployment's
/// name, so one label-selected watch sees every pool's pods.
pub const POOL_LABEL: &str = "scale-governor.io/warm-pool";
/// Annotation keys, full names.
pub mod keys {
    /// `enforce` | `deny` | `audit` | `off`.
    pub const MODE: &str = "scale-governor.io/mode";
    /// Static lower bound, like the HPA's `minReplicas`.
    pub const MIN_REPLICAS: &str = "scale-governor.io/min-replicas";
    /// Static upper bound, like the HPA's `maxReplicas`.
    pub const MAX_REPLICAS: &str = "scale-governor.io/max-replicas";
    /// Weekly and absolute time windows with their own bounds.
    pub const WINDOWS: &str = "scale-governor.io/windows";
    /// HPA-style `behavior.scaleUp` rules.
    pub const SCALE_UP: &str = "scale-governor.io/scale-up";
    /// HPA-style `behavior.scaleDown` rules.
    pub const SCALE_DOWN: &str = "scale-governor.io/scale-down";
    /// RFC 3339 time before which enforcement is paused (break glass).
    pub const SUSPEND_UNTIL: &str = "scale-governor.io/suspend-until";
    /// How the recommender computes recommendations (JSON).
    pub const RECOMMEND: &str = "scale-governor.io/recommend";
    /// Written by the recommender: JSON replicas/reason/computedAt/expiresAt.
    pub const RECOMMENDATION: &str = "scale-governor.io/recommendation";
    /// Written by the governor: the persisted ledger of replica changes.
    pub const HISTORY: &str = "scale-governor.io/history";
    /// Written by the governor's loop: the demand trend, a window's raise and
    /// the source's state, so a new leader carries on (JSON, versioned).
    pub const STATE: &str = "scale-governor.io/state";
    /// Every key the governor understands, for "did you mean" hints.
    pub const ALL: [&str; 11] = [
        MODE,
        MIN_REPLICAS,
        MAX_REPLICAS,
        WINDOWS,
        SCALE_UP,
        SCALE_DOWN,
        SUSPEND_UNTIL,
        RECOMMEND,
        RECOMMENDATION,
        HISTORY,
        STATE,
    ];
}

/// Largest replica count Kubernetes accepts (`spec.replicas` is an int32).
pub const MAX_REPLICA_COUNT: u32 = i32::MAX as u32;

/// How a decision that changes a request is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Clamp the request through the mutating webhook (the default).
    #[default]
    Enforce,
    /// Refuse the request through the validating webhook.
    Deny,
    /// Allow, but warn, emit an Event and count a metric.
    Audit,
    /// The policy is disabled.
    Off,
}

impl Mode {
    /// The annotation spelling of the mode, also used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Deny => "deny",
            Mode::Audit => "audit",
            Mode::Off => "off",
        }
    }

    fn parse(value: &str) -> Result<Mode, PolicyError> {
        match value.trim() {
            "enforce" => Ok(Mode::Enforce),
            "deny" => Ok(Mode::Deny),
            "audit" => Ok(Mode::Audit),
            "off" => Ok(Mode::Off),
            other => Err(PolicyError::at(
                keys::MODE,
                value,
                other,
                format!(
                    "unknown mode {}, expected enforce, deny, audit or off",
                    quote(other)
                ),
            )),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A workload's scaling policy, parsed from its annotations.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    /// How decisions are applied.
    pub mode: Mode,
    /// Static `minReplicas`.
    pub min_replicas: Option<u32>,
    /// Static `maxReplicas`.
    pub max_replicas: Option<u32>,
    /// Time windows; absolute ones override weekly ones while active.
    pub windows: Windows,
    /// Scale-up rules; `None` means no rate limit and no stabilization upward.
    pub scale_up: Option<ScalingRules>,
    /// Scale-down rules; `None` means no rate limit and no stabilization downward.
    pub scale_down: Option<ScalingRules>,
    /// Enforcement is paused before this instant.
    pub suspend_until: Option<DateTime<Utc>>,
    /// How the recommender works for this workload, if it should.
    pub recommend: Option<RecommendConfig>,
    /// The recommender's latest output, if any.
    pub recommendation: Option<Recommendation>,
    /// Non-fatal findings, such as unknown `scale-governor.io/*` keys.
    pub warnings: Vec<String>,
}

impl Policy {
    /// Parses every `scale-governor.io/*` annotation; other keys are ignored.
    /// The `history` and `state` annotations belong to the ledger and the
    /// recommender loop and are skipped here ([`crate::workload::policy_of`]
    /// checks `state`). Every annotation is parsed, and every error found is
    /// returned, not only the first.
    pub fn from_annotations<'a, I>(annotations: I) -> Result<Policy, PolicyErrors>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut policy = Policy::default();
        let mut errors = PolicyErrors::new();
        let mut unknown = 0;
        for (key, value) in annotations {
            if !key.starts_with(PREFIX) {
                continue;
            }
            if !keys::ALL.contains(&key) {
                // Named up to the bound, like errors; the rest counted.
                unknown += 1;
                if unknown <= MAX_REPORTED_ERRORS {
                    policy.warnings.push(unknown_key_warning(key));
                }
                continue;
            }
            if let Err(e) = policy.set(key, value) {
                errors.append(e);
            }
        }
        if unknown > MAX_REPORTED_ERRORS {
            policy.warnings.push(format!(
                "and {} more unknown annotations are ignored",
                unknown - MAX_REPORTED_ERRORS
            ));
        }
        if let Err(e) = policy.check_contradictions() {
            errors.append(e);
        }
        errors.or_ok(policy)
    }

    /// Parses one annotation into its field.
    fn set(&mut self, key: &str, value: &str) -> Result<(), PolicyErrors> {
        match key {
            keys::MODE => self.mode = Mode::parse(value)?,
            keys::MIN_REPLICAS => self.min_replicas = Some(parse_count(key, value)?),
            keys::MAX_REPLICAS => self.max_replicas = Some(parse_count(key, value)?),
            keys::WINDOWS => self.windows = Windows::parse(value)?,
            keys::SCALE_UP => self.scale_up = Some(ScalingRules::parse(key, value, Direction::Up)?),
            keys::SCALE_DOWN => {
                self.scale_down = Some(ScalingRules::parse(key, value, Direction::Down)?)
            }
            keys::SUSPEND_UNTIL => self.suspend_until = Some(parse_time(key, value)?),
            keys::RECOMMEND => self.recommend = Some(RecommendConfig::parse(value)?),
            keys::RECOMMENDATION => self.recommendation = Some(Recommendation::parse(value)?),
            keys::HISTORY | keys::STATE => {}
            // Unknown keys are warned about by the caller.
            _ => {}
        }
        Ok(())
    }

    /// Keeps the `recommendation` only if the governor wrote it, and never
    /// for longer than the policy's TTL: anyone who can edit the workload
    /// could otherwise plant a floor (or a target) of their own, for as long
    /// as they like. `written_by_governor` comes from `managedFields`, which
    /// the adapters read. Returns a warning when the recommendation is
    /// dropped or its lifetime cut.
    pub fn vet_recommendation(
        &mut self,
        written_by_governor: bool,
        now: DateTime<Utc>,
    ) -> Option<String> {
        let rec = self.recommendation.as_mut()?;
        if !written_by_governor {
            self.recommendation = None;
            return Some(
                "the recommendation annotation was not written by the governor (field manager scale-governor); ignored".to_owned(),
            );
        }
        // A little clock skew between replicas is normal; more is not.
        if rec.computed_at > now + chrono::Duration::seconds(60) {
            let at = rec.computed_at.to_rfc3339();
            self.recommendation = None;
            return Some(format!(
                "the recommendation claims to be computed in the future ({at}); ignored"
            ));
        }
        let ttl = self
            .recommend
            .as_ref()
            .map_or(DEFAULT_TTL_SECONDS, |r| r.ttl_seconds);
        let longest = rec.computed_at + chrono::Duration::seconds(i64::from(ttl));
        if rec.expires_at > longest {
            rec.expires_at = longest;
            return Some(format!(
                "the recommendation's lifetime is cut to the policy's {ttl}s TTL (expires {})",
                longest.to_rfc3339()
            ));
        }
        None
    }

    /// Whether enforcement is paused at `now` (mode `off` or `suspend-until`).
    pub fn is_paused(&self, now: DateTime<Utc>) -> bool {
        self.mode == Mode::Off || self.suspend_until.is_some_and(|until| now < until)
    }

    /// The longest period or window any rule looks back over; older ledger
    /// entries can never matter again.
    pub fn lookback_seconds(&self) -> u32 {
        [&self.scale_up, &self.scale_down]
            .into_iter()
            .flatten()
            .map(ScalingRules::lookback_seconds)
            .max()
            .unwrap_or(0)
    }

    /// Contradictions between the fields that parsed.
    fn check_contradictions(&self) -> Result<(), PolicyErrors> {
        let mut errors = PolicyErrors::new();
        if let (Some(min), Some(max)) = (self.min_replicas, self.max_replicas)
            && min > max
        {
            errors.push(PolicyError::whole(
                keys::MIN_REPLICAS,
                &min.to_string(),
                format!("min-replicas {min} is greater than max-replicas {max}"),
            ));
        }
        self.windows
            .check_against_static(self.min_replicas, self.max_replicas, &mut errors);
        errors.or_ok(())
    }
}

fn parse_count(key: &str, value: &str) -> Result<u32, PolicyError> {
    let token = value.trim();
    match token.parse::<u32>() {
        Ok(n) if n <= MAX_REPLICA_COUNT => Ok(n),
        _ => Err(PolicyError::at(
            key,
            value,
            token,
            format!(
                "{} is not a replica count, expected an integer from 0 to {MAX_REPLICA_COUNT}",
                quote(token)
            ),
        )),
    }
}

fn parse_time(key: &str, value: &str) -> Result<DateTime<Utc>, PolicyError> {
    units::parse_instant(value)
        .map_err(|e| PolicyError::at(key, value, value.trim(), e.to_string()))
}

/// A key of the governor's prefix it does not know, with the closest one
/// it does. The key is quoted: before the apiserver validates it (the
/// mutating webhook comes first), it can hold anything.
fn unknown_key_warning(key: &str) -> String {
    // Three edits from a known key, at most: longer keys need no distance.
    let near = key.chars().count() <= keys::RECOMMENDATION.len() + 3;
    let closest = keys::ALL
        .iter()
        .filter(|_| near)
        .map(|known| (strsim::levenshtein(key, known), *known))
        .min()
        .filter(|(distance, _)| *distance <= 3);
    match closest {
        Some((_, known)) => format!(
            "unknown annotation {} is ignored; did you mean {known}?",
            quote(key)
        ),
        None => format!("unknown annotation {} is ignored", quote(key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Policy, PolicyErrors> {
        Policy::from_annotations(pairs.iter().copied())
    }

    #[test]
    fn empty_policy_is_enforce_without_bounds() {
        let policy = parse(&[("app", "web")]).unwrap();
        assert_eq!(policy.mode, Mode::Enforce);
        assert_eq!(policy.min_replicas, None);
        assert!(policy.warnings.is_empty());
    }

    #[test]
    fn parses_static_bounds_and_mode() {
        let policy = parse(&[
            (keys::MODE, "deny"),
            (keys::MIN_REPLICAS, "2"),
            (keys::MAX_REPLICAS, " 20 "),
        ])
        .unwrap();
        assert_eq!(policy.mode, Mode::Deny);
        assert_eq!(
            (policy.min_replicas, policy.max_replicas),
            (Some(2), Some(20))
        );
    }

    #[test]
    fn min_above_max_is_a_contradiction() {
        let err = parse(&[(keys::MIN_REPLICAS, "30"), (keys::MAX_REPLICAS, "20")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "scale-governor.io/min-replicas: at \"30\" (column 1): min-replicas 30 is greater than max-replicas 20"
        );
    }

    #[test]
    fn bad_count_names_annotation_and_token() {
        let err = parse(&[(keys::MAX_REPLICAS, "twenty")]).unwrap_err();
        let err = err.first();
        assert_eq!(err.annotation, keys::MAX_REPLICAS);
        assert_eq!(err.token, "twenty");
        assert!(err.to_string().contains("expected an integer"), "{err}");
        assert!(parse(&[(keys::MIN_REPLICAS, "-1")]).is_err());
        assert!(parse(&[(keys::MIN_REPLICAS, "2147483648")]).is_err());
    }

    #[test]
    fn bad_mode_lists_the_choices() {
        let err = parse(&[(keys::MODE, "strict")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected enforce, deny, audit or off")
        );
    }

    #[test]
    fn suspend_until_must_be_rfc3339() {
        let err = parse(&[(keys::SUSPEND_UNTIL, "tomorrow")]).unwrap_err();
        assert!(err.to_string().contains("expected RFC 3339"), "{err}");
        let policy = parse(&[(keys::SUSPEND_UNTIL, "2026-11-21T18:00:00+01:00")]).unwrap();
        let until = policy.suspend_until.unwrap();
        assert_eq!(until.to_rfc3339(), "2026-11-21T17:00:00+00:00");
        assert!(policy.is_paused(until - chrono::Duration::seconds(1)));
        assert!(!policy.is_paused(until));
    }

    #[test]
    fn a_recommendation_counts_only_from_the_governor_and_within_its_ttl() {
        let rec = r#"{"replicas":40,"computedAt":"2026-11-23T10:00:00Z","expiresAt":"2027-11-23T10:00:00Z"}"#;
        let now: DateTime<Utc> = "2026-11-23T10:01:00Z".parse().unwrap();
        let mut forged = parse(&[(keys::RECOMMENDATION, rec)]).unwrap();
        let warning = forged.vet_recommendation(false, now).unwrap();
        assert!(warning.contains("not written by the governor"), "{warning}");
        assert!(forged.recommendation.is_none());

        let mut own = parse(&[(keys::RECOMMENDATION, rec)]).unwrap();
        let warning = own.vet_recommendation(true, now).unwrap();
        assert!(warning.contains("1800s TTL"), "{warning}");
        assert_eq!(
            own.recommendation.unwrap().expires_at.to_rfc3339(),
            "2026-11-23T10:30:00+00:00"
        );
        let with_ttl = r#"{"targetPerPod":10,"ttlSeconds":3600}"#;
        let mut longer =
            parse(&[(keys::RECOMMENDATION, rec), (keys::RECOMMEND, with_ttl)]).unwrap();
        longer.vet_recommendation(true, now);
        assert_eq!(
            longer.recommendation.unwrap().expires_at.to_rfc3339(),
            "2026-11-23T11:00:00+00:00"
        );
        let future = r#"{"replicas":40,"computedAt":"2027-01-01T00:00:00Z","expiresAt":"2027-01-01T00:05:00Z"}"#;
        let mut planted = parse(&[(keys::RECOMMENDATION, future)]).unwrap();
        assert!(
            planted
                .vet_recommendation(true, now)
                .unwrap()
                .contains("future")
        );
        assert!(planted.recommendation.is_none());
        let fine = r#"{"replicas":4,"computedAt":"2026-11-23T10:00:00Z","expiresAt":"2026-11-23T10:05:00Z"}"#;
        let mut fine = parse(&[(keys::RECOMMENDATION, fine)]).unwrap();
        assert_eq!(fine.vet_recommendation(true, now), None);
        assert!(fine.recommendation.is_some());
    }

    #[test]
    fn unknown_key_is_a_warning_with_a_hint() {
        let policy = parse(&[("scale-governor.io/max-replica", "3")]).unwrap();
        assert_eq!(
            policy.warnings,
            vec![
                "unknown annotation \"scale-governor.io/max-replica\" is ignored; did you mean scale-governor.io/max-replicas?"
            ]
        );
    }

    /// Unknown keys are named up to the bound, like errors; the rest are
    /// counted in one more warning.
    #[test]
    fn many_unknown_keys_are_named_up_to_the_bound_and_counted() {
        let keys: Vec<String> = (0..25).map(|i| format!("{PREFIX}nope-{i:02}")).collect();
        let policy = parse(&keys.iter().map(|k| (k.as_str(), "x")).collect::<Vec<_>>()).unwrap();
        assert_eq!(policy.warnings.len(), MAX_REPORTED_ERRORS + 1);
        assert_eq!(
            policy.warnings[0],
            "unknown annotation \"scale-governor.io/nope-00\" is ignored"
        );
        assert_eq!(
            policy.warnings[MAX_REPORTED_ERRORS],
            "and 15 more unknown annotations are ignored"
        );
    }

    /// The mutating webhook sees keys before the apiserver validates them:
    /// a key can hold anything, and is quoted like any input.
    #[test]
    fn an_unknown_key_is_quoted_bounded_and_escaped() {
        let hostile = format!("scale-governor.io/mode\u{202e}{}", "x".repeat(100_000));
        let policy = parse(&[(hostile.as_str(), "off")]).unwrap();
        assert_eq!(
            policy.warnings,
            vec![format!(
                "unknown annotation \"scale-governor.io/mode\\u{{202e}}{}…\" is ignored",
                "x".repeat(80 - 22 - 8)
            )]
        );
        let near = parse(&[("scale-governor.io/mod\u{200b}e", "off")]).unwrap();
        assert_eq!(
            near.warnings,
            vec![
                "unknown annotation \"scale-governor.io/mod\\u{200b}e\" is ignored; did you mean scale-governor.io/mode?"
            ]
        );
    }
}
