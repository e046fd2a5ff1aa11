//! Event writes the apiserver can afford: the webhook folds each report into
//! a pending series (one per workload, reason and rule), and the publisher
//! writes a series at most once per interval, and at most a few series a
//! second in all, each write carrying the latest numbers and how many times
//! they occurred since the last one. The cost to the apiserver is bounded by
//! those two numbers, not by the review rate: an HPA re-asking every second
//! or a clamp storm of thousands of reviews a second makes the same writes.
//!
//! On the request path a repeat (same numbers) is a shard lookup and a
//! counter bump; only new numbers copy the report.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use crate::report::{
    NoticeKind, Report,
    fold::{Folds, key, signature},
};

/// A backlog the publisher drains in this long at its rate is the most
/// worth holding: an Event later than that tells a person little, and each
/// held series costs a copy of its report.
const BACKLOG: Duration = Duration::from_secs(300);

/// Which Event of a report a series is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// A policy notice, of this kind.
    Notice(NoticeKind),
    /// The scaling decision.
    Decision,
}

/// How often Events may be written.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// One write per series per this long, at most.
    pub interval: Duration,
    /// Series written per second, at most, in all.
    pub per_second: f64,
    /// Writes allowed at once after a quiet spell.
    pub burst: f64,
    /// Series held at most: beyond it a new series is dropped (and counted)
    /// rather than letting a flood of distinct workloads grow memory.
    pub(crate) max_series: usize,
}

impl Limits {
    /// One write per series per `interval`, `per_second` series a second
    /// (twice that at once after a quiet spell), and a backlog of five
    /// minutes of writes at most.
    pub fn new(interval: Duration, per_second: f64) -> Limits {
        let per_second = per_second.max(0.1);
        Limits {
            interval,
            per_second,
            burst: (2.0 * per_second).max(1.0),
            max_series: ((per_second * BACKLOG.as_secs_f64()) as usize).clamp(100, 20_000),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(Duration::from_secs(10), 10.0)
    }
}

#[derive(Debug)]
struct Series {
    report: Report,
    part: Part,
    numbers: u64,
    count: u32,
    written: Option<Instant>,
}

/// A series due for a write: its latest report and how many occurrences
/// the write covers.
#[derive(Debug)]
pub struct Due {
    /// The latest report of the series.
    pub report: Report,
    /// Which of its Events.
    pub(crate) part: Part,
    /// Occurrences since the last write (at least 1).
    pub count: u32,
}

/// The pending series and the write budget.
#[derive(Debug)]
pub struct Pending {
    series: Folds<Series>,
    held: AtomicUsize,
    limits: Limits,
    budget: std::sync::Mutex<(f64, Instant)>,
}

/// What [`Pending::add`] did with a report's series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Added {
    /// Series seen for the first time: worth waking the publisher for.
    pub new: usize,
    /// Series dropped because [`Limits::max_series`] are held.
    pub dropped: usize,
}

impl Pending {
    /// No series yet, a full budget.
    pub fn new(limits: Limits, now: Instant) -> Pending {
        Pending {
            series: Folds::default(),
            held: AtomicUsize::new(0),
            limits,
            budget: std::sync::Mutex::new((limits.burst, now)),
        }
    }

    /// Folds a report's Events into their series.
    pub fn add(&self, report: &Report) -> Added {
        let mut added = Added::default();
        for (part, [reason, action], numbers) in parts(report) {
            let k = key(&[
                report.kind.as_str().as_bytes(),
                report.namespace.as_bytes(),
                report.name.as_bytes(),
                reason.as_bytes(),
                action.as_bytes(),
            ]);
            self.series.with(k, |map| match map.get_mut(&k) {
                Some(s) => {
                    s.count = s.count.saturating_add(1);
                    if s.numbers != numbers {
                        s.numbers = numbers;
                        s.report = report.clone();
                    }
                }
                None if self.held.load(Ordering::Relaxed) >= self.limits.max_series => {
                    added.dropped += 1
                }
                None => {
                    self.held.fetch_add(1, Ordering::Relaxed);
                    added.new += 1;
                    map.insert(
                        k,
                        Series {
                            report: report.clone(),
                            part,
                            numbers,
                            count: 1,
                            written: None,
                        },
                    );
                }
            });
        }
        added
    }

    /// The series to write now: those with occurrences not yet written and
    /// no write within the interval, never written first, then the longest
    /// waiting, as many as the budget allows. Forgets a series with nothing
    /// to write once an interval has passed since its last write: its next
    /// occurrence starts a new one that may be written at once, so the
    /// interval still holds, and a quiet workload costs nothing.
    pub fn due(&self, now: Instant) -> Vec<Due> {
        let interval = self.limits.interval;
        let mut ready: Vec<(Option<Instant>, u64)> = Vec::new();
        self.series.retain(|k, s| {
            if s.count > 0 && s.written.is_none_or(|w| now.duration_since(w) >= interval) {
                ready.push((s.written, k));
            }
            let keep = s.count > 0 || s.written.is_some_and(|w| now.duration_since(w) < interval);
            if !keep {
                self.held.fetch_sub(1, Ordering::Relaxed);
            }
            keep
        });
        ready.sort_unstable();
        let allowed = self.take_budget(ready.len(), now);
        ready
            .into_iter()
            .take(allowed)
            .filter_map(|(_, k)| {
                self.series.with(k, |map| {
                    let s = map.get_mut(&k)?;
                    let count = std::mem::take(&mut s.count);
                    s.written = Some(now);
                    (count > 0).then(|| Due {
                        report: s.report.clone(),
                        part: s.part,
                        count,
                    })
                })
            })
            .collect()
    }

    /// Series held.
    pub fn len(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Whether none is held.
    #[cfg(any(test, feature = "test-support"))]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes up to `wanted` writes from the token bucket.
    fn take_budget(&self, wanted: usize, now: Instant) -> usize {
        let mut guard = self
            .budget
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, at) = &mut *guard;
        let refill = now.duration_since(*at).as_secs_f64() * self.limits.per_second;
        *tokens = (*tokens + refill).min(self.limits.burst);
        *at = now;
        let taken = (wanted as f64).min(tokens.floor()).max(0.0);
        *tokens -= taken;
        taken as usize
    }
}

/// The Events a report folds into: (which, its reason and action, a hash
/// of what its message says).
fn parts(report: &Report) -> impl Iterator<Item = (Part, [&'static str; 2], u64)> + '_ {
    let actor = key(&[report.actor.as_bytes()]);
    let notices = report.notices.iter().map(move |n| {
        let reason = n.kind.event_reason();
        let numbers = signature(&[actor, key(&[n.message.as_bytes()])]);
        (Part::Notice(n.kind), [reason, super::EDIT_ACTION], numbers)
    });
    let decision = report.decision.as_ref().and_then(|d| {
        let reason = d.outcome.event_reason()?;
        let rule = d.reasons.last().map_or("none", |r| r.rule.as_str());
        let numbers = signature(&[
            actor,
            d.outcome as u64,
            u64::from(d.current),
            u64::from(d.requested),
            u64::from(d.replicas),
        ]);
        Some((Part::Decision, [reason, rule], numbers))
    });
    notices.chain(decision)
}

#[cfg(test)]
mod tests;
