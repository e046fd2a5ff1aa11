//! The history files `explain --history` and `simulate` read: JSON lines or
//! CSV, one change per line.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{Change, Ledger, LedgerError};

impl Ledger {
    /// Reads a history file: JSON lines (`{"time":…,"from":…,"to":…,"actor":…}`,
    /// optional `"requested"`) or CSV (`time,from,to,actor[,requested]`, an
    /// optional header). Blank lines and `#` comments are skipped.
    pub fn from_history_text(text: &str) -> Result<Ledger, LedgerError> {
        let mut ledger = Ledger::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || (index == 0 && line.starts_with("time,"))
            {
                continue;
            }
            let parsed = if line.starts_with('{') {
                parse_json_line(line)
            } else {
                parse_csv_line(line)
            };
            let change = parsed.map_err(|message| LedgerError::Line {
                line: index + 1,
                message,
            })?;
            ledger.record(change);
        }
        Ok(ledger)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonLine {
    time: DateTime<Utc>,
    from: u32,
    to: u32,
    #[serde(default)]
    actor: String,
    requested: Option<u32>,
}

fn parse_json_line(line: &str) -> Result<Change, String> {
    let j: JsonLine = serde_json::from_str(line).map_err(|e| e.to_string())?;
    Ok(Change {
        at: j.time,
        from: j.from,
        to: j.to,
        requested: j.requested.unwrap_or(j.to),
        actor: j.actor.into(),
        pending: false,
        watched: false,
        generation: None,
        span: None,
    })
}

fn parse_csv_line(line: &str) -> Result<Change, String> {
    // One standard CSV row: fields may be quoted (an actor with a comma).
    let record = csv::ReaderBuilder::new()
        .has_headers(false)
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(line.as_bytes())
        .records()
        .next()
        .transpose()
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let fields: Vec<&str> = record.iter().collect();
    if !(4..=5).contains(&fields.len()) {
        return Err(format!(
            "expected time,from,to,actor[,requested], found {} fields",
            fields.len()
        ));
    }
    let count = |name: &str, s: &str| {
        s.parse::<u32>()
            .map_err(|_| format!("{name} \"{s}\" is not a replica count"))
    };
    let at = crate::units::parse_instant(fields[0]).map_err(|e| e.to_string())?;
    let to = count("to", fields[2])?;
    Ok(Change {
        at,
        from: count("from", fields[1])?,
        to,
        requested: fields
            .get(4)
            .map(|s| count("requested", s))
            .transpose()?
            .unwrap_or(to),
        actor: fields[3].into(),
        pending: false,
        watched: false,
        generation: None,
        span: None,
    })
}
