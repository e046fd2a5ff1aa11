//! The loop's state that must survive a leader change, stored as the
//! governor's own `scale-governor.io/state` annotation (versioned JSON,
//! about 300 bytes, written with the recommendation or when a window's
//! raise begins or ends): the demand trend, the raise a window made, the
//! last counter sample, the source's health, and with `risk` what the
//! calibration achieved (for `status`; the calibration itself is stored
//! beside the seasonal history).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{TrendSummary, risk::RiskStatus, schedule::WindowRaise};

/// Why a `state` annotation was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Not a JSON object (serde would read a struct from an array too).
    #[error("the state annotation is not a JSON object")]
    NotAnObject,
    /// JSON of the wrong shape.
    #[error("the state annotation does not parse: {0}")]
    Json(String),
    /// A format this version does not read.
    #[error("state format v{found} is not v{STATE_VERSION}")]
    Version {
        /// The version found.
        found: u32,
    },
}

/// The format's version.
pub const STATE_VERSION: u32 = 1;

/// The `state` annotation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoopState {
    /// [`STATE_VERSION`].
    #[serde(rename = "v")]
    pub version: u32,
    /// The demand trend, for a new leader to resume from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend: Option<TrendSummary>,
    /// A raise a window made, to take back when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raise: Option<WindowRaise>,
    /// The last raw sample of a counter source, for its rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<CounterSample>,
    /// How the source fared last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceState>,
    /// With `risk`: the stated risk, the share short over the trailing
    /// window and the headroom, as of the write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskStatus>,
}

/// A counter's raw value and when it was read.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CounterSample {
    /// When.
    pub at: DateTime<Utc>,
    /// The raw value.
    pub value: f64,
}

/// The source's health, for `status` and for Events on a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceState {
    /// Whether the last sample worked.
    pub ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Since when it is in this state.
    pub since: DateTime<Utc>,
}

impl LoopState {
    /// Reads the annotation; an unknown version or shape is dropped with the
    /// reason (the loop then starts afresh, which is safe).
    pub fn parse(text: &str) -> Result<LoopState, StateError> {
        if !text.trim_start().starts_with('{') {
            return Err(StateError::NotAnObject);
        }
        // serde_json's message may quote the annotation: bounded, escaped.
        let state: LoopState = serde_json::from_str(text)
            .map_err(|e| StateError::Json(crate::quoting::foreign(&e.to_string())))?;
        if state.version != STATE_VERSION {
            return Err(StateError::Version {
                found: state.version,
            });
        }
        Ok(state)
    }

    /// The annotation's value.
    pub fn to_annotation(&self) -> String {
        let mut state = self.clone();
        state.version = STATE_VERSION;
        serde_json::to_string(&state).unwrap_or_else(|_| "{}".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_versions() {
        let state = LoopState {
            version: STATE_VERSION,
            trend: Some(TrendSummary {
                at: "2026-11-23T10:00:00Z".parse().unwrap(),
                demand: 840.0,
                velocity: 2.0,
                acceleration: 0.01,
            }),
            raise: None,
            counter: None,
            source: Some(SourceState {
                ok: false,
                error: Some("no answer within 5s".into()),
                since: "2026-11-23T10:00:00Z".parse().unwrap(),
            }),
            risk: Some(RiskStatus {
                stated: 0.01,
                achieved: Some(0.008),
                window_seconds: 86_400,
                headroom: Some(38.0),
            }),
        };
        let text = state.to_annotation();
        assert!(text.len() < 500, "{} bytes: {text}", text.len());
        assert_eq!(LoopState::parse(&text).unwrap(), state);
        assert_eq!(
            LoopState::parse(r#"{"v":2}"#).unwrap_err().to_string(),
            "state format v2 is not v1"
        );
        assert_eq!(
            LoopState::parse("[1]").unwrap_err(),
            StateError::NotAnObject
        );
        assert!(matches!(
            LoopState::parse("{not json"),
            Err(StateError::Json(_))
        ));
    }
}
