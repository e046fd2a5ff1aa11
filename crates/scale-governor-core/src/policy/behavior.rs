//! `scale-up` / `scale-down`: the HPA's `behavior` rules, in a compact form
//! (`4 pods/60s, 100%/60s, select=Max, stabilization=300s`) or as the HPA's
//! own `HPAScalingRules` JSON.

use std::fmt;

use serde::Deserialize;

use super::PolicyError;
use crate::units;

/// HPA validation: `periodSeconds` must be in 1..=1800.
const MAX_PERIOD_SECONDS: u32 = 1800;
/// HPA validation: `stabilizationWindowSeconds` must be in 0..=3600.
const MAX_STABILIZATION_SECONDS: u32 = 3600;

/// Which way a rule set limits change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// More replicas.
    Up,
    /// Fewer replicas.
    Down,
}

/// The HPA's `HPAScalingPolicy.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// An absolute number of pods per period.
    Pods,
    /// A percentage of the replicas at the start of the period.
    Percent,
}

/// One `HPAScalingPolicy`: at most `value` Pods or Percent per `period_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RatePolicy {
    /// Pods or Percent.
    pub kind: PolicyKind,
    /// How many pods, or which percentage; always > 0.
    pub value: u32,
    /// The sliding period the change is counted over, 1..=1800 s.
    pub period_seconds: u32,
}

impl fmt::Display for RatePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            PolicyKind::Pods => write!(f, "{} pods/{}s", self.value, self.period_seconds),
            PolicyKind::Percent => write!(f, "{}%/{}s", self.value, self.period_seconds),
        }
    }
}

/// The HPA's `selectPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SelectPolicy {
    /// The policy allowing the largest change wins (HPA default).
    #[default]
    Max,
    /// The policy allowing the smallest change wins.
    Min,
    /// No change in this direction at all.
    Disabled,
}

impl SelectPolicy {
    fn parse(token: &str) -> Option<SelectPolicy> {
        match token.to_ascii_lowercase().as_str() {
            "max" => Some(SelectPolicy::Max),
            "min" => Some(SelectPolicy::Min),
            "disabled" => Some(SelectPolicy::Disabled),
            _ => None,
        }
    }
}

impl fmt::Display for SelectPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SelectPolicy::Max => "Max",
            SelectPolicy::Min => "Min",
            SelectPolicy::Disabled => "Disabled",
        })
    }
}

/// The HPA's `HPAScalingRules` for one direction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScalingRules {
    /// Up or down.
    pub direction: Direction,
    /// Rate policies; empty means no rate limit (stabilization may still apply).
    pub policies: Vec<RatePolicy>,
    /// How the policies combine.
    pub select: SelectPolicy,
    /// `stabilizationWindowSeconds`.
    pub stabilization_seconds: u32,
}

impl ScalingRules {
    /// The HPA's defaults: up `max(4 pods/15s, 100%/15s)` with no
    /// stabilization; down `100%/15s` with a 300 s stabilization window.
    pub fn hpa_default(direction: Direction) -> ScalingRules {
        let percent = RatePolicy {
            kind: PolicyKind::Percent,
            value: 100,
            period_seconds: 15,
        };
        match direction {
            Direction::Up => ScalingRules {
                direction,
                policies: vec![
                    percent,
                    RatePolicy {
                        kind: PolicyKind::Pods,
                        value: 4,
                        period_seconds: 15,
                    },
                ],
                select: SelectPolicy::Max,
                stabilization_seconds: 0,
            },
            Direction::Down => ScalingRules {
                direction,
                policies: vec![percent],
                select: SelectPolicy::Max,
                stabilization_seconds: 300,
            },
        }
    }

    /// Parses the compact form, or HPA JSON when the value starts with `{`.
    pub fn parse(
        key: &str,
        value: &str,
        direction: Direction,
    ) -> Result<ScalingRules, PolicyError> {
        if value.trim_start().starts_with('{') {
            return parse_json(key, value, direction);
        }
        let mut rules = ScalingRules {
            direction,
            policies: Vec::new(),
            select: SelectPolicy::Max,
            stabilization_seconds: 0,
        };
        let (mut saw_select, mut saw_stabilization) = (false, false);
        for item in value.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(PolicyError::at(
                    key,
                    value,
                    item,
                    "empty item, expected a policy like \"4 pods/60s\" or \"50%/60s\", select=Max|Min|Disabled or stabilization=300s".into(),
                ));
            }
            if let Some(token) = strip_key(item, &["select", "selectPolicy"]) {
                let select = SelectPolicy::parse(token.trim()).ok_or_else(|| {
                    PolicyError::at(
                        key,
                        value,
                        token,
                        format!("unknown selectPolicy \"{token}\", expected Max, Min or Disabled"),
                    )
                })?;
                once(&mut saw_select, key, value, item)?;
                rules.select = select;
            } else if let Some(token) =
                strip_key(item, &["stabilization", "stabilizationWindowSeconds"])
            {
                once(&mut saw_stabilization, key, value, item)?;
                rules.stabilization_seconds =
                    parse_duration(key, value, token.trim(), 0, MAX_STABILIZATION_SECONDS)?;
            } else {
                rules.policies.push(parse_policy(key, value, item)?);
            }
        }
        Ok(rules)
    }

    /// The longest time this rule set looks back over.
    pub fn lookback_seconds(&self) -> u32 {
        self.policies
            .iter()
            .map(|p| p.period_seconds)
            .max()
            .unwrap_or(0)
            .max(self.stabilization_seconds)
    }
}

impl fmt::Display for ScalingRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for policy in &self.policies {
            write!(f, "{policy}, ")?;
        }
        write!(
            f,
            "select={}, stabilization={}s",
            self.select, self.stabilization_seconds
        )
    }
}

/// The value after `name=` for any of the accepted names, case-insensitively:
/// the compact names and the HPA's own field names are both accepted.
fn strip_key<'a>(item: &'a str, names: &[&str]) -> Option<&'a str> {
    let (name, value) = item.split_once('=')?;
    names
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name.trim()))
        .then_some(value)
}

fn once(seen: &mut bool, key: &str, value: &str, item: &str) -> Result<(), PolicyError> {
    if std::mem::replace(seen, true) {
        let name = item.split('=').next().unwrap_or(item);
        return Err(PolicyError::at(
            key,
            value,
            item,
            format!("{name} is given twice, expected it at most once"),
        ));
    }
    Ok(())
}

fn parse_policy(key: &str, value: &str, item: &str) -> Result<RatePolicy, PolicyError> {
    let expected = "expected a policy like \"4 pods/60s\" or \"50%/60s\"";
    let Some((amount, period)) = item.split_once('/') else {
        return Err(PolicyError::at(
            key,
            value,
            item,
            format!(
                "unknown item \"{item}\", {expected}, select=Max|Min|Disabled or stabilization=300s"
            ),
        ));
    };
    let amount = amount.trim();
    // The unit follows the number: `4 pods`, `4 Pods`, `50%`, `50 percent`.
    let split = amount
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(amount.len());
    let (number, unit) = amount.split_at(split);
    let kind = match unit.trim().to_ascii_lowercase().as_str() {
        "%" | "percent" => PolicyKind::Percent,
        "pod" | "pods" => PolicyKind::Pods,
        "" => {
            return Err(PolicyError::at(
                key,
                value,
                amount,
                format!("\"{amount}\" has no unit, {expected}"),
            ));
        }
        other => {
            return Err(PolicyError::at(
                key,
                value,
                unit.trim(),
                format!(
                    "unknown unit \"{other}\", expected pods or % (Pods or Percent), as in \"4 pods/60s\" or \"50%/60s\""
                ),
            ));
        }
    };
    let value_n = match number.parse::<u32>() {
        Ok(n) if n > 0 && n <= super::MAX_REPLICA_COUNT => n,
        _ => {
            return Err(PolicyError::at(
                key,
                value,
                number,
                format!("\"{number}\" is not a positive integer, {expected}"),
            ));
        }
    };
    Ok(RatePolicy {
        kind,
        value: value_n,
        period_seconds: parse_duration(key, value, period.trim(), 1, MAX_PERIOD_SECONDS)?,
    })
}

/// Parses a duration (see [`units`]) into seconds within `min..=max`.
fn parse_duration(
    key: &str,
    value: &str,
    token: &str,
    min: u32,
    max: u32,
) -> Result<u32, PolicyError> {
    match units::parse_seconds(token) {
        Ok(s) if (u64::from(min)..=u64::from(max)).contains(&s) => Ok(s as u32),
        Ok(s) => Err(PolicyError::at(
            key,
            value,
            token,
            format!("{s}s is out of range, expected {min}s to {max}s"),
        )),
        Err(units::DurationError::Overflow(_)) => Err(PolicyError::at(
            key,
            value,
            token,
            format!("\"{token}\" is out of range, expected {min}s to {max}s"),
        )),
        Err(e) => Err(PolicyError::at(key, value, token, e.to_string())),
    }
}

/// The HPA's `HPAScalingRules` as JSON, as it appears in an HPA's
/// `behavior`. The core knows no Kubernetes client types, so it reads the
/// few fields itself; unknown fields are refused rather than ignored, so a
/// misspelt field name cannot silently drop a rule.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HpaScalingRules {
    policies: Option<Vec<HpaScalingPolicy>>,
    select_policy: Option<String>,
    stabilization_window_seconds: Option<i32>,
    /// Per-rule tolerance (beta in 1.35) needs a metric, which the webhook
    /// does not have: it is refused with a message rather than ignored.
    tolerance: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HpaScalingPolicy {
    #[serde(rename = "type")]
    type_: String,
    value: i32,
    period_seconds: i32,
}

fn parse_json(key: &str, value: &str, direction: Direction) -> Result<ScalingRules, PolicyError> {
    let raw: HpaScalingRules = serde_json::from_str(value).map_err(|e| {
        PolicyError::whole(
            key,
            value.trim(),
            format!("not valid HPAScalingRules JSON ({e}), expected {{\"policies\":[{{\"type\":\"Pods\",\"value\":4,\"periodSeconds\":60}}],\"selectPolicy\":\"Max\",\"stabilizationWindowSeconds\":0}}"),
        )
    })?;
    let defaults = ScalingRules::hpa_default(direction);
    let bad = |token: String, message: String| PolicyError::whole(key, &token, message);
    if raw.tolerance.is_some() {
        return Err(bad(
            "tolerance".to_owned(),
            "tolerance is an HPA metric setting and has no meaning in a scale-up or scale-down rule; remove it".to_owned(),
        ));
    }
    let select = match raw.select_policy.as_deref() {
        None => SelectPolicy::Max,
        Some(s) => SelectPolicy::parse(s).ok_or_else(|| {
            bad(
                s.to_owned(),
                format!("unknown selectPolicy \"{s}\", expected Max, Min or Disabled"),
            )
        })?,
    };
    let stabilization_seconds = match raw.stabilization_window_seconds {
        None => defaults.stabilization_seconds,
        Some(s) if (0..=MAX_STABILIZATION_SECONDS as i32).contains(&s) => s as u32,
        Some(s) => {
            return Err(bad(
                s.to_string(),
                format!(
                    "stabilizationWindowSeconds {s} is out of range, expected 0 to {MAX_STABILIZATION_SECONDS}"
                ),
            ));
        }
    };
    let policies = match raw.policies {
        None => defaults.policies,
        Some(list) => list
            .into_iter()
            .map(|p| {
                let kind = match p.type_.as_str() {
                    "Pods" => PolicyKind::Pods,
                    "Percent" => PolicyKind::Percent,
                    other => {
                        return Err(bad(
                            other.to_owned(),
                            format!("unknown policy type \"{other}\", expected Pods or Percent"),
                        ));
                    }
                };
                if p.value <= 0 {
                    return Err(bad(
                        p.value.to_string(),
                        "policy value must be greater than 0".into(),
                    ));
                }
                if !(1..=MAX_PERIOD_SECONDS as i32).contains(&p.period_seconds) {
                    return Err(bad(
                        p.period_seconds.to_string(),
                        format!(
                            "periodSeconds {} is out of range, expected 1 to {MAX_PERIOD_SECONDS}",
                            p.period_seconds
                        ),
                    ));
                }
                Ok(RatePolicy {
                    kind,
                    value: p.value as u32,
                    period_seconds: p.period_seconds as u32,
                })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(ScalingRules {
        direction,
        policies,
        select,
        stabilization_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "scale-governor.io/scale-up";

    fn up(value: &str) -> Result<ScalingRules, PolicyError> {
        ScalingRules::parse(KEY, value, Direction::Up)
    }

    #[test]
    fn compact_form_round_trips_through_display() {
        let rules = up("4 pods/60s, 100%/1m, select=Min, stabilization=5m").unwrap();
        assert_eq!(rules.policies.len(), 2);
        assert_eq!(rules.policies[1].kind, PolicyKind::Percent);
        assert_eq!(rules.policies[1].period_seconds, 60);
        assert_eq!(rules.select, SelectPolicy::Min);
        assert_eq!(rules.stabilization_seconds, 300);
        assert_eq!(
            rules.to_string(),
            "4 pods/60s, 100%/60s, select=Min, stabilization=300s"
        );
        assert_eq!(up(&rules.to_string()).unwrap(), rules);
    }

    #[test]
    fn stabilization_only_is_allowed() {
        let rules = ScalingRules::parse(KEY, "stabilization=300s", Direction::Down).unwrap();
        assert!(rules.policies.is_empty());
        assert_eq!(rules.lookback_seconds(), 300);
    }

    #[test]
    fn json_form_uses_hpa_defaults_for_missing_fields() {
        let rules =
            ScalingRules::parse(KEY, r#"{"selectPolicy":"Disabled"}"#, Direction::Down).unwrap();
        assert_eq!(rules.select, SelectPolicy::Disabled);
        assert_eq!(rules.stabilization_seconds, 300);
        assert_eq!(
            rules.policies,
            ScalingRules::hpa_default(Direction::Down).policies
        );
        let rules = up(r#"{"policies":[{"type":"Pods","value":4,"periodSeconds":60}],"stabilizationWindowSeconds":0}"#).unwrap();
        assert_eq!(
            rules.to_string(),
            "4 pods/60s, select=Max, stabilization=0s"
        );
    }

    #[test]
    fn errors_name_the_token_and_expectation() {
        let cases = [
            ("4 pods/60x", "\"60x\" is not a duration"),
            ("4 widgets/60s", "unknown unit \"widgets\""),
            (
                r#"{"policies":[{"type":"Pods","value":4,"periodSeconds":60}],"tolerance":"0.05"}"#,
                "tolerance is an HPA metric setting",
            ),
            (
                r#"{"policies":[{"type":"Pods","value":4,"periodSeconds":60}],"stabilisationWindowSeconds":5}"#,
                "unknown field `stabilisationWindowSeconds`",
            ),
            ("4 pods/0s", "0s is out of range, expected 1s to 1800s"),
            ("4 pods/1h", "3600s is out of range"),
            ("0 pods/60s", "\"0\" is not a positive integer"),
            ("4/60s", "\"4\" has no unit"),
            ("4 pods", "unknown item \"4 pods\""),
            ("select=Maximum", "unknown selectPolicy \"Maximum\""),
            ("stabilization=2h", "7200s is out of range"),
            ("select=Max, select=Min", "select is given twice"),
            ("4 pods/60s,,", "empty item"),
            ("{\"policies\": 3}", "not valid HPAScalingRules JSON"),
            (
                r#"{"policies":[{"type":"Pod","value":4,"periodSeconds":60}]}"#,
                "unknown policy type \"Pod\"",
            ),
            (
                r#"{"policies":[{"type":"Pods","value":4,"periodSeconds":0}]}"#,
                "periodSeconds 0 is out of range",
            ),
        ];
        for (value, expected) in cases {
            let err = up(value).unwrap_err();
            assert!(err.to_string().contains(expected), "{value}: {err}");
            assert_eq!(err.annotation, KEY);
        }
    }

    #[test]
    fn the_hpa_spellings_and_bare_seconds_mean_the_same_rules() {
        let compact = up("4 pods/60s, 50%/60s, select=Min, stabilization=300s").unwrap();
        for spelling in [
            "4 Pods/60s, 50 Percent/60s, selectPolicy=Min, stabilizationWindowSeconds=300",
            "4 PODS/60, 50 percent/1m, SELECT=min, stabilization=5m",
            "4pods/60s, 50%/60s, select=MIN, Stabilization=300",
        ] {
            assert_eq!(up(spelling).unwrap(), compact, "{spelling}");
        }
    }

    #[test]
    fn column_points_at_the_bad_period() {
        let err = up("4 pods/60s, 10%/7x").unwrap_err();
        assert_eq!((err.token.as_str(), err.column), ("7x", 17));
    }
}
