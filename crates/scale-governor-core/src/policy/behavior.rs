//! `scale-up` / `scale-down`: the HPA's `behavior` rules, in a compact form
//! (`4 pods/60s, 100%/60s, select=Max, stabilization=300s`) or as the HPA's
//! own `HPAScalingRules` JSON.

use std::fmt;

use serde::Deserialize;

use super::{PolicyError, PolicyErrors};
use crate::{quoting::quote, units};

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
    /// Every item of the compact form is parsed, and the error of each that
    /// does not parse is returned.
    pub fn parse(
        key: &str,
        value: &str,
        direction: Direction,
    ) -> Result<ScalingRules, PolicyErrors> {
        if value.trim_start().starts_with('{') {
            return Ok(parse_json(key, value, direction)?);
        }
        let mut rules = ScalingRules {
            direction,
            policies: Vec::new(),
            select: SelectPolicy::Max,
            stabilization_seconds: 0,
        };
        let (mut saw_select, mut saw_stabilization) = (false, false);
        let mut errors = PolicyErrors::new();
        for item in value.split(',').map(str::trim) {
            let parsed =
                rules.parse_item((key, value, item), &mut saw_select, &mut saw_stabilization);
            if let Err(e) = parsed {
                errors.push(e);
            }
        }
        errors.or_ok(rules)
    }

    /// One item of the compact form, into `self`.
    fn parse_item(
        &mut self,
        (key, value, item): (&str, &str, &str),
        saw_select: &mut bool,
        saw_stabilization: &mut bool,
    ) -> Result<(), PolicyError> {
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
                    format!(
                        "unknown selectPolicy {}, expected Max, Min or Disabled",
                        quote(token)
                    ),
                )
            })?;
            once(saw_select, key, value, item)?;
            self.select = select;
        } else if let Some(token) =
            strip_key(item, &["stabilization", "stabilizationWindowSeconds"])
        {
            once(saw_stabilization, key, value, item)?;
            self.stabilization_seconds =
                parse_duration(key, value, token.trim(), 0, MAX_STABILIZATION_SECONDS)?;
        } else {
            self.policies.push(parse_policy(key, value, item)?);
        }
        Ok(())
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
        let name = item.split('=').next().unwrap_or(item).trim();
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
                "unknown item {}, {expected}, select=Max|Min|Disabled or stabilization=300s",
                quote(item)
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
                format!("{} has no unit, {expected}", quote(amount)),
            ));
        }
        other => {
            return Err(PolicyError::at(
                key,
                value,
                unit.trim(),
                format!(
                    "unknown unit {}, expected pods or % (Pods or Percent), as in \"4 pods/60s\" or \"50%/60s\"",
                    quote(other)
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
                format!("{} is not a positive integer, {expected}", quote(number)),
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
            format!(
                "{} is out of range, expected {min}s to {max}s",
                quote(token)
            ),
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
        PolicyError::json(
            key,
            value,
            &e,
            r#"expected HPAScalingRules JSON like {"policies":[{"type":"Pods","value":4,"periodSeconds":60}],"selectPolicy":"Max","stabilizationWindowSeconds":0}"#,
        )
    })?;
    let defaults = ScalingRules::hpa_default(direction);
    let bad =
        |token: String, message: String| PolicyError::whole(key, &token, message).found_in(value);
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
                format!(
                    "unknown selectPolicy {}, expected Max, Min or Disabled",
                    quote(s)
                ),
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
                            format!(
                                "unknown policy type {}, expected Pods or Percent",
                                quote(other)
                            ),
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
mod tests;
