//! The one grammar for durations and instants that every input shares: the
//! policy annotations, the ledger's text forms, and the command line.
//!
//! - A duration is a bare number of seconds (`60`, as the HPA's
//!   `periodSeconds`), or one or more number-and-unit groups in falling
//!   order (`90s`, `5m`, `1h30m`). Units: `s`, `m`, `h`.
//! - An instant is RFC 3339 with an offset (`2026-11-21T18:00:00Z`).

use chrono::{DateTime, Utc};

use crate::quoting::quote;

/// Why a duration does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Empty, or not digits followed by a unit.
    #[error(
        "{} is not a duration, expected seconds or a number with s, m or h, like 60, 90s, 5m or 1h30m",
        quote(.0)
    )]
    Syntax(String),
    /// Too large to count in seconds.
    #[error("{} is too long a duration", quote(.0))]
    Overflow(String),
}

/// Parses a duration into whole seconds.
pub fn parse_seconds(text: &str) -> Result<u64, DurationError> {
    let token = text.trim();
    let syntax = || DurationError::Syntax(token.to_owned());
    if token.is_empty() {
        return Err(syntax());
    }
    if token.bytes().all(|b| b.is_ascii_digit()) {
        return token
            .parse::<u64>()
            .map_err(|_| DurationError::Overflow(token.to_owned()));
    }
    let mut total: u64 = 0;
    let mut rest = token;
    // Each unit may appear once and only after a larger one: `1h30m`, not `30m1h`.
    let mut smallest_so_far = u64::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(syntax());
        }
        let (number, tail) = rest.split_at(digits);
        let mut chars = tail.chars();
        let scale = match chars.next() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3600,
            _ => return Err(syntax()),
        };
        if scale >= smallest_so_far {
            return Err(syntax());
        }
        smallest_so_far = scale;
        let n: u64 = number
            .parse()
            .map_err(|_| DurationError::Overflow(token.to_owned()))?;
        total = n
            .checked_mul(scale)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| DurationError::Overflow(token.to_owned()))?;
        rest = chars.as_str();
    }
    Ok(total)
}

/// Parses an RFC 3339 instant into UTC; the error says what was expected.
pub fn parse_instant(text: &str) -> Result<DateTime<Utc>, InstantError> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| InstantError {
            text: text.trim().to_owned(),
            reason: e.to_string(),
        })
}

/// Why an instant does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} is not a time ({reason}), expected RFC 3339 like 2026-11-21T18:00:00Z",
    quote(.text)
)]
pub struct InstantError {
    text: String,
    reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_accepted_spelling() {
        for (text, seconds) in [
            ("60", 60),
            ("0", 0),
            ("90s", 90),
            ("5m", 300),
            ("1h", 3600),
            ("1h30m", 5400),
            ("2m15s", 135),
            (" 15s ", 15),
        ] {
            assert_eq!(parse_seconds(text), Ok(seconds), "{text}");
        }
    }

    #[test]
    fn durations_that_are_refused() {
        for text in ["", "s", "5 m", "5d", "m5", "30m1h", "1m1m", "-5s", "1.5m"] {
            assert!(
                matches!(parse_seconds(text), Err(DurationError::Syntax(_))),
                "{text}"
            );
        }
        assert!(matches!(
            parse_seconds("99999999999999999999"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse_seconds("9999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn instants_need_an_offset() {
        assert_eq!(
            parse_instant("2026-11-21T18:00:00+01:00")
                .unwrap()
                .to_rfc3339(),
            "2026-11-21T17:00:00+00:00"
        );
        let err = parse_instant("2026-11-21 18:00").unwrap_err().to_string();
        assert!(err.contains("expected RFC 3339"), "{err}");
    }
}
