//! The ledger: every replica change (and refused wish) by any actor, oldest
//! first. Rate limits count its changes; stabilization reads its requests.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Most entries kept; far more than any rule can look back over in practice,
/// and small enough that the `history` annotation stays a few KiB.
pub const MAX_ENTRIES: usize = 256;

/// One replica change, or a request that was clamped to no change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Change {
    /// When it was admitted (or observed).
    pub at: DateTime<Utc>,
    /// Replicas before.
    pub from: u32,
    /// Replicas after.
    pub to: u32,
    /// What the actor asked for; equals `to` when only the result is known.
    pub requested: u32,
    /// Who asked: a username, or a field manager from `managedFields`.
    pub actor: String,
    /// Admitted here but not yet seen stored by the watch. The apiserver
    /// may still refuse it (AlreadyExists, a later webhook, a conflict), so
    /// a pending change only ever tightens a limit: it counts against the
    /// direction it moved in and never frees budget for the other one.
    #[serde(skip)]
    pub pending: bool,
}

impl Change {
    /// Replicas added by this change.
    pub fn added(&self) -> u32 {
        self.to.saturating_sub(self.from)
    }

    /// Replicas removed by this change.
    pub fn removed(&self) -> u32 {
        self.from.saturating_sub(self.to)
    }
}

/// Errors reading a persisted or user-supplied ledger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The `history` annotation is not the compact JSON we write.
    #[error("history is not valid: {0}")]
    Annotation(#[source] serde_json::Error),
    /// A line of a JSON-lines or CSV history file.
    #[error("line {line}: {message}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        message: String,
    },
}

/// Changes ordered by time, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ledger {
    changes: Vec<Change>,
}

/// Compact wire form of one entry in the `history` annotation:
/// `[unix_seconds, from, to, requested, actor]`.
type Compact = (i64, u32, u32, u32, String);

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// All entries, oldest first.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// Entries strictly after `cutoff`, as the HPA counts its events.
    pub fn since(&self, cutoff: DateTime<Utc>) -> &[Change] {
        let first = self.changes.partition_point(|c| c.at <= cutoff);
        &self.changes[first..]
    }

    /// Adds an entry in time order and drops the oldest beyond [`MAX_ENTRIES`].
    pub fn record(&mut self, change: Change) {
        let at = self.changes.partition_point(|c| c.at <= change.at);
        self.changes.insert(at, change);
        if self.changes.len() > MAX_ENTRIES {
            let excess = self.changes.len() - MAX_ENTRIES;
            self.changes.drain(..excess);
        }
    }

    /// Removes the most recent entry equal to `change`, if any.
    pub fn retract(&mut self, change: &Change) -> bool {
        match self.changes.iter().rposition(|c| c == change) {
            Some(i) => {
                self.changes.remove(i);
                true
            }
            None => false,
        }
    }

    /// Marks the most recent pending change from `from` to `to` as stored
    /// (the watch saw it land). Returns whether there was one.
    pub fn confirm(&mut self, from: u32, to: u32) -> bool {
        let found = self
            .changes
            .iter_mut()
            .rev()
            .find(|c| c.pending && c.from == from && c.to == to);
        match found {
            Some(change) => {
                change.pending = false;
                true
            }
            None => false,
        }
    }

    /// Removes the most recent pending change that `matches`; returns it.
    pub fn retract_pending(&mut self, matches: impl Fn(&Change) -> bool) -> Option<Change> {
        let i = self.changes.iter().rposition(|c| c.pending && matches(c))?;
        Some(self.changes.remove(i))
    }

    /// Drops pending changes admitted at or before `cutoff`: the watch never
    /// saw them land, so they never happened. Returns how many.
    pub fn expire_pending(&mut self, cutoff: DateTime<Utc>) -> usize {
        let before = self.changes.len();
        self.changes.retain(|c| !(c.pending && c.at <= cutoff));
        before - self.changes.len()
    }

    /// Whether any change is still waiting for the watch.
    pub fn has_pending(&self) -> bool {
        self.changes.iter().any(|c| c.pending)
    }

    /// A copy without the pending changes: what may be persisted.
    pub fn stored(&self) -> Ledger {
        Ledger {
            changes: self
                .changes
                .iter()
                .filter(|c| !c.pending)
                .cloned()
                .collect(),
        }
    }

    /// Merges entries another replica persisted. Each persisted entry is
    /// matched one to one with an entry here that has the same from and to
    /// and a time within `tolerance` (replicas stamp one change with their
    /// own clocks: one at admission, another when its watch saw it); a
    /// matched pending entry is thereby confirmed, and only what matches
    /// nothing is added. Returns whether anything changed.
    pub fn merge(&mut self, persisted: &Ledger, tolerance: chrono::Duration) -> bool {
        let mut matched = vec![false; self.changes.len()];
        let mut added = Vec::new();
        let mut changed = false;
        for entry in &persisted.changes {
            let candidate = self
                .changes
                .iter()
                .enumerate()
                .filter(|(i, c)| {
                    !matched[*i]
                        && c.from == entry.from
                        && c.to == entry.to
                        && (c.at - entry.at).abs() <= tolerance
                })
                .min_by_key(|(_, c)| (c.at - entry.at).abs());
            match candidate {
                Some((i, _)) => {
                    matched[i] = true;
                    if self.changes[i].pending {
                        self.changes[i].pending = false;
                        changed = true;
                    }
                }
                None => added.push(entry.clone()),
            }
        }
        for entry in added {
            self.record(entry);
            changed = true;
        }
        changed
    }

    /// Drops entries at or before `cutoff`; no rule can see them any more.
    pub fn prune(&mut self, cutoff: DateTime<Utc>) {
        let keep_from = self.changes.partition_point(|c| c.at <= cutoff);
        self.changes.drain(..keep_from);
    }

    /// The `history` annotation value.
    pub fn to_annotation(&self) -> String {
        let compact: Vec<Compact> = self
            .changes
            .iter()
            .map(|c| (c.at.timestamp(), c.from, c.to, c.requested, c.actor.clone()))
            .collect();
        serde_json::to_string(&compact).unwrap_or_else(|_| "[]".to_owned())
    }

    /// Reads the `history` annotation.
    pub fn from_annotation(value: &str) -> Result<Ledger, LedgerError> {
        let compact: Vec<Compact> = serde_json::from_str(value).map_err(LedgerError::Annotation)?;
        let mut ledger = Ledger::new();
        for (secs, from, to, requested, actor) in compact {
            if let Some(at) = DateTime::from_timestamp(secs, 0) {
                ledger.record(Change {
                    at,
                    from,
                    to,
                    requested,
                    actor,
                    pending: false,
                });
            }
        }
        Ok(ledger)
    }

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
        actor: j.actor,
        pending: false,
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
    let at = crate::units::parse_instant(fields[0])?;
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
        actor: fields[3].to_owned(),
        pending: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn change(t: &str, from: u32, to: u32) -> Change {
        Change {
            at: at(t),
            from,
            to,
            requested: to,
            actor: "hpa".into(),
            pending: false,
        }
    }

    #[test]
    fn keeps_time_order_and_counts_strictly_after_cutoff() {
        let mut ledger = Ledger::new();
        ledger.record(change("2026-11-21T12:01:00Z", 4, 8));
        ledger.record(change("2026-11-21T12:00:00Z", 2, 4));
        assert_eq!(ledger.changes()[0].to, 4);
        assert_eq!(ledger.since(at("2026-11-21T12:00:00Z")).len(), 1);
        ledger.prune(at("2026-11-21T12:00:30Z"));
        assert_eq!(ledger.changes().len(), 1);
    }

    #[test]
    fn is_capped() {
        let mut ledger = Ledger::new();
        let start = at("2026-11-21T12:00:00Z");
        for i in 0..(MAX_ENTRIES as i64 + 10) {
            let mut c = change("2026-11-21T12:00:00Z", 1, 2);
            c.at = start + chrono::Duration::seconds(i);
            ledger.record(c);
        }
        assert_eq!(ledger.changes().len(), MAX_ENTRIES);
        assert_eq!(
            ledger.changes()[0].at,
            start + chrono::Duration::seconds(10)
        );
    }

    #[test]
    fn pending_changes_are_confirmed_retracted_or_expire() {
        let pending = |t: &str, from, to| Change {
            pending: true,
            ..change(t, from, to)
        };
        let mut ledger = Ledger::new();
        ledger.record(change("2026-11-21T12:00:00Z", 2, 4));
        ledger.record(pending("2026-11-21T12:00:10Z", 4, 8));
        ledger.record(pending("2026-11-21T12:00:20Z", 8, 9));
        assert!(!ledger.confirm(2, 4), "a stored change is not pending");
        assert!(ledger.confirm(4, 8));
        assert_eq!(ledger.stored().changes().len(), 2);
        assert!(ledger.has_pending());
        assert_eq!(
            ledger.retract_pending(|c| c.from == 8).map(|c| c.to),
            Some(9)
        );
        ledger.record(pending("2026-11-21T12:00:30Z", 8, 12));
        assert_eq!(ledger.expire_pending(at("2026-11-21T12:00:29Z")), 0);
        assert_eq!(ledger.expire_pending(at("2026-11-21T12:00:30Z")), 1);
        assert!(!ledger.has_pending());
        assert_eq!(ledger.changes().len(), 2);
    }

    #[test]
    fn persisted_entries_merge_one_to_one_within_the_tolerance() {
        let tolerance = chrono::Duration::seconds(30);
        let mut ledger = Ledger::new();
        ledger.record(Change {
            pending: true,
            ..change("2026-11-21T12:00:00Z", 9, 6)
        });
        ledger.record(change("2026-11-21T12:00:20Z", 6, 9));
        // Another replica saw the same two changes a few seconds later, and
        // a second 9 -> 6 this replica missed.
        let mut persisted = Ledger::new();
        persisted.record(change("2026-11-21T12:00:02Z", 9, 6));
        persisted.record(change("2026-11-21T12:00:21Z", 6, 9));
        persisted.record(change("2026-11-21T12:00:25Z", 9, 6));
        assert!(ledger.merge(&persisted, tolerance));
        assert_eq!(ledger.changes().len(), 3, "{ledger:?}");
        assert!(
            !ledger.has_pending(),
            "the persisted copy confirms the pending change"
        );
        // Merging the same again changes nothing.
        assert!(!ledger.merge(&persisted, tolerance));
        assert_eq!(ledger.changes().len(), 3);
        // Outside the tolerance it is another change.
        let mut late = Ledger::new();
        late.record(change("2026-11-21T12:05:00Z", 9, 6));
        assert!(ledger.merge(&late, tolerance));
        assert_eq!(ledger.changes().len(), 4);
    }

    #[test]
    fn annotation_round_trip() {
        let mut ledger = Ledger::new();
        ledger.record(Change {
            requested: 40,
            ..change("2026-11-21T12:00:00Z", 10, 14)
        });
        let text = ledger.to_annotation();
        assert_eq!(text, r#"[[1795262400,10,14,40,"hpa"]]"#);
        assert_eq!(Ledger::from_annotation(&text).unwrap(), ledger);
        assert!(Ledger::from_annotation("{").is_err());
    }

    #[test]
    fn history_text_accepts_json_lines_and_csv() {
        let text = "time,from,to,actor\n2026-11-21T12:00:00Z,10,14,alice\n\n# note\n{\"time\":\"2026-11-21T12:00:30Z\",\"from\":14,\"to\":18,\"actor\":\"bob\",\"requested\":30}\n";
        let ledger = Ledger::from_history_text(text).unwrap();
        assert_eq!(ledger.changes().len(), 2);
        assert_eq!(ledger.changes()[1].requested, 30);
        assert_eq!(ledger.changes()[0].actor, "alice");
        // Standard CSV quoting: an actor with a comma, quoted numbers.
        let quoted = "\"2026-11-21T12:00:00Z\",\"10\",14,\"kubectl, by bob\",\"20\"\n";
        let ledger = Ledger::from_history_text(quoted).unwrap();
        let c = &ledger.changes()[0];
        assert_eq!(
            (c.from, c.to, c.requested, c.actor.as_str()),
            (10, 14, 20, "kubectl, by bob")
        );
    }

    #[test]
    fn history_text_errors_carry_the_line_number() {
        let err = Ledger::from_history_text(
            "2026-11-21T12:00:00Z,10,14,alice\n2026-11-21T12:00:00Z,ten,14,bob\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2: from \"ten\" is not a replica count"
        );
        let err = Ledger::from_history_text("{\"time\":1}").unwrap_err();
        assert!(err.to_string().starts_with("line 1: "), "{err}");
    }
}
