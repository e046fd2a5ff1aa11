//! The ledger: every replica change (and refused wish) by any actor, oldest
//! first. Rate limits count its changes; stabilization reads its requests.

use std::{num::NonZeroU32, sync::Arc};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Most entries kept; far more than any rule can look back over in practice,
/// and small enough that a workload's ledger object (one ConfigMap, see
/// docs/design.md) stays a few KiB.
pub const MAX_ENTRIES: usize = 256;

/// How far ahead of `now` a persisted entry may be dated: replicas stamp
/// changes with their own clocks, which may run a little ahead.
pub const CLOCK_SKEW_SECONDS: i64 = 60;

/// The largest count `spec.replicas` (an `int32`) can hold.
const MAX_REPLICAS: u32 = i32::MAX as u32;

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
    /// Shared with the ledger's other entries by the same actor, since a
    /// workload sees the same few names over and over.
    pub actor: Arc<str>,
    /// Admitted here but not yet seen stored by the watch. The apiserver
    /// may still refuse it (AlreadyExists, a later webhook, a conflict), so
    /// a pending change only ever tightens a limit: it counts against the
    /// direction it moved in and never frees budget for the other one.
    #[serde(skip)]
    pub pending: bool,
    /// This replica's watch saw it land. A change known only from a ledger
    /// object (another replica saw it first) is not, so the watch event of
    /// that same change confirms it instead of counting it twice.
    #[serde(skip)]
    pub watched: bool,
    /// The workload's `metadata.generation` once the change was stored:
    /// every replica's watch sees the same one, so it tells one change from
    /// another of the same size moments apart. Unknown while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// When versions may lie between the one the workload was last known
    /// to hold `from` at and this change's (a change counted at start from
    /// the last one persisted, or seen by a watch that missed versions): how
    /// many generations back that one was (see [`Change::from_generation`]).
    /// Such a change is the sum of whatever landed in between; once a
    /// change in between is known, this one starts at that one's count
    /// (see [`Ledger::merge`]). `None` when `from` is the count of the
    /// version just before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<NonZeroU32>,
}

impl Change {
    /// A change known to be stored, as read back from where it was persisted.
    pub fn stored(
        at: DateTime<Utc>,
        from: u32,
        to: u32,
        requested: u32,
        actor: impl Into<Arc<str>>,
    ) -> Change {
        Change {
            at,
            from,
            to,
            requested,
            actor: actor.into(),
            pending: false,
            watched: false,
            generation: None,
            span: None,
        }
    }

    /// Whether `other` is this very change as another replica recorded it:
    /// the same generation when both know it (one stored version, whatever
    /// count each replica last knew before it), otherwise the same counts
    /// within `tolerance` (each replica stamps a change with its own clock).
    pub fn same_as(&self, other: &Change, tolerance: chrono::Duration) -> bool {
        match (self.generation, other.generation) {
            (Some(a), Some(b)) => a == b && self.to == other.to,
            _ => {
                self.from == other.from
                    && self.to == other.to
                    && (self.at - other.at).abs() <= tolerance
            }
        }
    }

    /// The generation the workload was last known to hold `from` at, when
    /// versions may lie between that one and this change's.
    pub fn from_generation(&self) -> Option<i64> {
        Some(self.generation? - i64::from(self.span?.get()))
    }

    /// Records that `from` was the count at generation `from_generation`,
    /// kept only when versions may lie between that one and this change's.
    pub fn set_from_generation(&mut self, from_generation: Option<i64>) {
        self.span = match (from_generation, self.generation) {
            (Some(f), Some(g)) if g - f > 1 => {
                NonZeroU32::new(u32::try_from(g - f).unwrap_or(u32::MAX))
            }
            _ => None,
        };
    }

    /// How many versions back `from` may have been the count: 1 when it
    /// is the count of the version just before.
    pub(super) fn versions_back(&self) -> i64 {
        self.span.map_or(1, |s| i64::from(s.get()))
    }

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
    /// A persisted ledger (a ledger object's `ledger` key, or a `history`
    /// annotation on a manifest given to `explain`) is not the compact JSON
    /// we write.
    #[error("the ledger is not valid: {0}")]
    Compact(#[source] serde_json::Error),
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

/// Compact wire form of one persisted entry:
/// `[unix_seconds, from, to, requested, actor]`, and in a ledger object the
/// same with the generation it was stored at last, when known, and then the
/// generation `from` was known at, when versions may lie between.
type Compact = (i64, u32, u32, u32, String);
type CompactWithGeneration = (i64, u32, u32, u32, String, i64);
type CompactWithGap = (i64, u32, u32, u32, String, i64, i64);

/// One persisted entry in any form, with its generation and the generation
/// of its `from`.
fn read_compact(item: serde_json::Value) -> Option<(Compact, Option<i64>, Option<i64>)> {
    if let Ok((secs, from, to, requested, actor, generation, from_generation)) =
        serde_json::from_value::<CompactWithGap>(item.clone())
    {
        let compact = (secs, from, to, requested, actor);
        return Some((compact, Some(generation), Some(from_generation)));
    }
    if let Ok((secs, from, to, requested, actor, generation)) =
        serde_json::from_value::<CompactWithGeneration>(item.clone())
    {
        return Some(((secs, from, to, requested, actor), Some(generation), None));
    }
    serde_json::from_value::<Compact>(item)
        .ok()
        .map(|c| (c, None, None))
}

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
    /// A wish that changed nothing also drops the older wishes it makes
    /// redundant: stabilization reads only a window's lowest and highest
    /// request, and every window that holds an older wish holds the newer
    /// entries too.
    pub fn record(&mut self, change: Change) {
        self.record_for(change, Reads::BOTH);
    }

    /// [`Ledger::record`] for policies whose stabilization reads only
    /// `reads` of a window's requests.
    pub fn record_for(&mut self, change: Change, reads: Reads) {
        let stored = change.generation.is_some() && !change.pending;
        self.insert(change, reads);
        if stored {
            self.link();
        }
    }

    /// [`Ledger::record_for`] without linking the stored changes: for
    /// adding many at once, linked after the last.
    fn insert(&mut self, mut change: Change, reads: Reads) {
        if let Some(shared) = self.changes.iter().rev().find(|c| c.actor == change.actor) {
            change.actor = Arc::clone(&shared.actor);
        }
        let wish = change.from == change.to && !change.pending;
        // Changes stamped the same second (as read back from a ledger
        // object) in the order they were stored.
        let key = (change.at, change.generation);
        let at = self
            .changes
            .partition_point(|c| (c.at, c.generation) <= key);
        self.changes.insert(at, change);
        if wish {
            self.drop_dominated(at, reads);
        }
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

    /// Matches a change that this replica's watch saw land at `now`, stored
    /// at `generation`, with the entry it must be: the most recent one
    /// admitted here and pending, or one another replica persisted (the same
    /// generation, or within `tolerance` of `now`) that the watch has not
    /// matched yet. Marks it stored and watched; returns whether there was
    /// one.
    pub fn confirm(&mut self, seen: &Change, tolerance: chrono::Duration) -> bool {
        let found = self.changes.iter_mut().rev().find(|c| {
            !c.watched
                && (if c.pending {
                    c.from == seen.from && c.to == seen.to
                } else {
                    c.same_as(seen, tolerance)
                })
        });
        match found {
            Some(change) => {
                change.pending = false;
                change.watched = true;
                change.generation = seen.generation.or(change.generation);
                if seen.versions_back() < change.versions_back() {
                    change.from = seen.from;
                    change.span = seen.span;
                }
                self.link();
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

    /// Only the changes that landed: neither pending nor a wish clamped to
    /// no change (stabilization's memory, which need not survive a restart).
    pub fn landed(&self) -> Ledger {
        Ledger {
            changes: self
                .changes
                .iter()
                .filter(|c| !c.pending && c.from != c.to)
                .cloned()
                .collect(),
        }
    }

    /// Merges entries another replica persisted. Each persisted entry is
    /// matched one to one with the entry here that is the same change (see
    /// [`Change::same_as`]; replicas stamp one change with their own clocks:
    /// one at admission, another when its watch saw it); a matched pending
    /// entry is thereby confirmed, a matched one whose `from` was only the
    /// last count known then takes the surer one, and only what matches
    /// nothing is added. Then every change whose `from` was only the last
    /// count known starts where the latest change known before it ends:
    /// a replica that started while changes landed counted their sum as one
    /// change, and the changes themselves, persisted by a replica that saw
    /// them, must replace that sum rather than add to it. Returns whether
    /// anything changed.
    pub fn merge(&mut self, persisted: &Ledger, tolerance: chrono::Duration) -> bool {
        let mut matched = vec![false; self.changes.len()];
        let mut added = Vec::new();
        let mut changed = false;
        for entry in &persisted.changes {
            let candidate = self
                .changes
                .iter()
                .enumerate()
                .filter(|(i, c)| !matched[*i] && c.same_as(entry, tolerance))
                .min_by_key(|(_, c)| (c.at - entry.at).abs());
            match candidate {
                Some((i, _)) => {
                    matched[i] = true;
                    let mine = &mut self.changes[i];
                    if mine.pending {
                        mine.pending = false;
                        changed = true;
                    }
                    if mine.generation.is_none() && entry.generation.is_some() {
                        mine.generation = entry.generation;
                    }
                    if entry.versions_back() < mine.versions_back() {
                        mine.from = entry.from;
                        mine.span = entry.span;
                        changed = true;
                    }
                }
                None => added.push(entry.clone()),
            }
        }
        for entry in added {
            self.insert(entry, Reads::BOTH);
            changed = true;
        }
        self.link() || changed
    }

    /// The change that must have happened for a workload to stand at
    /// `replicas` when this ledger ends elsewhere: one that landed while no
    /// replica of the governor was there to see it, or that another replica
    /// saw and never persisted. It is dated when `spec.replicas` was last
    /// written (`written_at`, from `managedFields`), or `now` if unknown.
    /// With no landed change to start from, a write known to be recent
    /// enough for a rule looking back `lookback_seconds` to see counts as a
    /// scale from 0: its size is unknown, and a budget may only ever be
    /// overestimated (until the change itself is known). `generation` is
    /// the version standing at `replicas`;
    /// the changes between the last one known and it, once a replica that
    /// saw them persists them, take this one's place (see
    /// [`Ledger::merge`]).
    pub fn unexplained(
        &self,
        replicas: u32,
        generation: Option<i64>,
        written_at: Option<DateTime<Utc>>,
        actor: &str,
        now: DateTime<Utc>,
        lookback_seconds: u32,
    ) -> Option<Change> {
        let last = self.changes.iter().rev().find(|c| c.from != c.to);
        let at = written_at.unwrap_or(now).min(now);
        let (from, at, from_generation) = match last {
            Some(last) if last.to == replicas => return None,
            Some(last) => (last.to, at.max(last.at), last.generation),
            None if written_at.is_some()
                && at > now - chrono::Duration::seconds(i64::from(lookback_seconds))
                && replicas > 0 =>
            {
                // From before the first version: any change known later
                // with a generation of its own says where this one began.
                (0, at, Some(0))
            }
            None => return None,
        };
        let mut change = Change {
            at,
            from,
            to: replicas,
            requested: replicas,
            actor: actor.into(),
            pending: false,
            watched: false,
            generation,
            span: None,
        };
        // Versions this replica never saw may lie between the last change
        // it knows and this one: a replica that saw them may yet persist
        // them, and they replace this sum.
        change.set_from_generation(from_generation);
        Some(change)
    }

    /// Drops entries at or before `cutoff`; no rule can see them any more.
    /// The space a burst grew the ledger to is given back: ten thousand
    /// workloads would otherwise each keep their busiest moment's capacity.
    pub fn prune(&mut self, cutoff: DateTime<Utc>) {
        let keep_from = self.changes.partition_point(|c| c.at <= cutoff);
        self.changes.drain(..keep_from);
        let len = self.changes.len();
        if len == 0 {
            self.changes = Vec::new();
        } else if self.changes.capacity() > 2 * len + 4 {
            self.changes.shrink_to(len + len / 2);
        }
    }

    /// The compact JSON a ledger object stores under its `ledger` key.
    pub fn to_compact(&self) -> String {
        let compact: Vec<serde_json::Value> = self
            .changes
            .iter()
            .map(|c| {
                let at = c.at.timestamp();
                match (c.generation, c.from_generation()) {
                    (Some(g), Some(f)) => {
                        serde_json::json!([at, c.from, c.to, c.requested, c.actor, g, f])
                    }
                    (Some(g), None) => {
                        serde_json::json!([at, c.from, c.to, c.requested, c.actor, g])
                    }
                    (None, _) => serde_json::json!([at, c.from, c.to, c.requested, c.actor]),
                }
            })
            .collect();
        serde_json::to_string(&compact).unwrap_or_else(|_| "[]".to_owned())
    }

    /// Reads the compact form strictly (e.g. a `history` annotation on a
    /// manifest given to `explain`); [`Ledger::read_persisted`] is the
    /// lenient reader for ledger objects.
    pub fn from_compact(value: &str) -> Result<Ledger, LedgerError> {
        let items: Vec<serde_json::Value> =
            serde_json::from_str(value).map_err(LedgerError::Compact)?;
        let mut ledger = Ledger::new();
        for item in items {
            let ((secs, from, to, requested, actor), generation, from_generation) =
                read_compact(item).ok_or_else(|| {
                    LedgerError::Compact(serde::de::Error::custom(
                        "an entry is not [time, from, to, requested, actor]",
                    ))
                })?;
            if let Some(at) = DateTime::from_timestamp(secs, 0) {
                let mut change = Change::stored(at, from, to, requested, actor);
                change.generation = generation;
                change.set_from_generation(from_generation);
                ledger.insert(change, Reads::BOTH);
            }
        }
        ledger.link();
        Ok(ledger)
    }

    /// Reads a ledger persisted where someone else may have written it,
    /// keeping what is usable: entries dated more than [`CLOCK_SKEW_SECONDS`]
    /// after `now` (they would refuse every change until then), counts
    /// beyond what `spec.replicas` can hold, and entries of any other shape
    /// are dropped. The second value says what was dropped, for one warning
    /// naming the workload; it is empty when everything was used.
    pub fn read_persisted(value: &str, now: DateTime<Utc>) -> (Ledger, Option<String>) {
        let items: Vec<serde_json::Value> = match serde_json::from_str(value) {
            Ok(serde_json::Value::Array(items)) => items,
            Ok(_) => return (Ledger::new(), Some("the ledger is not a list".to_owned())),
            Err(err) => {
                return (
                    Ledger::new(),
                    Some(format!("the ledger is not JSON: {err}")),
                );
            }
        };
        let latest = now + chrono::Duration::seconds(CLOCK_SKEW_SECONDS);
        let (mut future, mut range, mut shape) = (0, 0, 0);
        let mut ledger = Ledger::new();
        for item in items {
            let Some(((secs, from, to, requested, actor), generation, from_generation)) =
                read_compact(item)
            else {
                shape += 1;
                continue;
            };
            if [from, to, requested].iter().any(|&n| n > MAX_REPLICAS) {
                range += 1;
                continue;
            }
            match DateTime::from_timestamp(secs, 0) {
                Some(at) if at <= latest => {
                    let mut change = Change::stored(at, from, to, requested, actor);
                    change.generation = generation;
                    change.set_from_generation(from_generation);
                    ledger.insert(change, Reads::BOTH);
                }
                Some(_) => future += 1,
                None => range += 1,
            }
        }
        let dropped: Vec<String> = [
            (future, "dated in the future"),
            (range, "with a count or time out of range"),
            (shape, "of an unknown shape"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        ledger.link();
        // Read once and kept as long as its object: no room to grow into.
        ledger.changes.shrink_to_fit();
        let warning = (!dropped.is_empty()).then(|| {
            format!(
                "dropped ledger entries: {} (kept {})",
                dropped.join(", "),
                ledger.changes.len()
            )
        });
        (ledger, warning)
    }
}

mod chain;
mod compact;
mod text;

pub use compact::Reads;

#[cfg(test)]
mod tests;
