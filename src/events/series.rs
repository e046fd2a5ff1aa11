//! Folding repeated Events into series whose message and count stay
//! current. An Event's `note` is immutable in `events.k8s.io/v1`, so a
//! repeat with the same note bumps the series count in place, and a repeat
//! whose numbers changed starts a new Event that carries the series count
//! on: `kubectl describe` then shows the latest numbers and how often.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

/// One series: the same reason and action about the same object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SeriesKey {
    /// Namespace of the object.
    pub(crate) namespace: String,
    pub(crate) kind: String,
    pub(crate) name: String,
    /// Event reason, e.g. `ScaleClamped`.
    pub(crate) reason: String,
    /// Event action: the rule, e.g. `max-replicas`.
    pub(crate) action: String,
}

#[derive(Debug, Clone)]
struct Series {
    event: String,
    note: String,
    count: i32,
    last: DateTime<Utc>,
}

/// What to write for one more occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Write {
    /// A new Event object named `event`; `count` > 1 continues a series.
    Create {
        /// The Event's name.
        event: String,
        /// The series count it starts with (1: no series).
        count: i32,
    },
    /// Patch the series count of the existing Event `event`.
    Bump {
        /// The Event's name.
        event: String,
        /// The new count.
        count: i32,
    },
}

/// The series seen recently, by key.
#[derive(Debug, Default)]
pub(crate) struct SeriesCache {
    series: HashMap<SeriesKey, Series>,
}

/// A series not seen for this long starts again at 1 (as client-go does).
const TTL: Duration = Duration::minutes(6);

impl SeriesCache {
    /// What to write for `occurrences` more of `note` about `key` at `now`,
    /// remembering it as written; call [`SeriesCache::forget`] if the write
    /// fails.
    pub(crate) fn next(
        &mut self,
        key: &SeriesKey,
        note: &str,
        now: DateTime<Utc>,
        occurrences: i32,
    ) -> Write {
        let occurrences = occurrences.max(1);
        self.series.retain(|_, s| now - s.last < TTL);
        let name = |now: DateTime<Utc>| {
            format!(
                "{}.{:x}",
                key.name,
                now.timestamp_nanos_opt().unwrap_or_default()
            )
        };
        match self.series.get_mut(key) {
            Some(s) if s.note == note => {
                s.count = s.count.saturating_add(occurrences);
                s.last = now;
                Write::Bump {
                    event: s.event.clone(),
                    count: s.count,
                }
            }
            Some(s) => {
                s.count = s.count.saturating_add(occurrences);
                s.last = now;
                s.note = note.to_owned();
                s.event = name(now);
                Write::Create {
                    event: s.event.clone(),
                    count: s.count,
                }
            }
            None => {
                let event = name(now);
                self.series.insert(
                    key.clone(),
                    Series {
                        event: event.clone(),
                        note: note.to_owned(),
                        count: occurrences,
                        last: now,
                    },
                );
                Write::Create {
                    event,
                    count: occurrences,
                }
            }
        }
    }

    /// Drops a series whose last write failed, so the next one creates.
    pub(crate) fn forget(&mut self, key: &SeriesKey) {
        self.series.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(action: &str) -> SeriesKey {
        SeriesKey {
            namespace: "shop".into(),
            kind: "Deployment".into(),
            name: "web".into(),
            reason: "ScaleClamped".into(),
            action: action.into(),
        }
    }

    #[test]
    fn repeats_bump_a_changed_note_starts_a_new_event_and_the_count_carries_on() {
        let mut cache = SeriesCache::default();
        let t0: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let at = |s: i64| t0 + Duration::seconds(s);
        let Write::Create {
            event: first,
            count: 1,
        } = cache.next(&key("scale-up"), "asked 40, allowed 24", at(0), 1)
        else {
            panic!("the first occurrence creates");
        };
        assert_eq!(
            cache.next(&key("scale-up"), "asked 40, allowed 24", at(1), 1),
            Write::Bump {
                event: first.clone(),
                count: 2
            }
        );
        let Write::Create {
            event: second,
            count: 3,
        } = cache.next(&key("scale-up"), "asked 40, allowed 28", at(2), 1)
        else {
            panic!("new numbers make a new Event that continues the count");
        };
        assert_ne!(first, second);
        // Another rule is another series; an old series starts over.
        assert!(matches!(
            cache.next(&key("max-replicas"), "asked 40, allowed 20", at(3), 1),
            Write::Create { count: 1, .. }
        ));
        assert!(matches!(
            cache.next(&key("scale-up"), "asked 40, allowed 28", at(3 + 6 * 60), 1),
            Write::Create { count: 1, .. }
        ));
        // The max-replicas series went stale too and was dropped.
        assert_eq!(cache.series.len(), 1);
        cache.forget(&key("scale-up"));
        assert!(cache.series.is_empty());
    }
}
