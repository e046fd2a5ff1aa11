//! One governed workload in the cache: what the watch last saw of it, its
//! ledger, and the flags the periodic passes read.

use std::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
};

use arc_swap::ArcSwap;
use chrono::{DateTime, Duration, Utc};

use super::SAME_CHANGE_SECONDS;
use crate::{
    engine::{self, Change, Decision, Ledger, Reads, Request},
    policy::{Policy, PolicyErrors, ScalingRules},
};

/// What the watch last saw of a workload.
#[derive(Debug)]
pub struct Observed {
    /// `metadata.uid`, for Events.
    pub uid: Option<String>,
    /// The parsed policy, or why it does not parse; shared, so a review
    /// borrows it instead of copying it.
    pub policy: Result<Arc<Policy>, PolicyErrors>,
    /// `spec.replicas`.
    pub replicas: u32,
    /// `metadata.generation`: which stored version this is.
    pub(crate) generation: Option<i64>,
    /// `status.readyReplicas`, when reported: what a stated risk is scored
    /// against.
    pub ready: Option<u32>,
    /// The field manager that last wrote `spec.replicas`, from
    /// `managedFields`, e.g. `scale-governor (scale)`.
    pub(crate) replicas_writer: Option<String>,
    /// The governor's own `state` annotation, as stored.
    pub state: Option<String>,
}

/// One governed workload.
#[derive(Debug)]
pub struct Entry {
    pub(super) observed: ArcSwap<Observed>,
    ledger: Mutex<LedgerState>,
    dirty: AtomicBool,
    /// Whether the watch has shown this workload stored. An entry made by
    /// the admission of a CREATE is not, until the watch delivers it: the
    /// apiserver may still refuse the create.
    pub(super) stored: AtomicBool,
    /// When the entry was made, to expire one the watch never confirms.
    pub(super) since: DateTime<Utc>,
    /// The cache's summary flags, raised along with this entry's.
    flags: Arc<Flags>,
    /// Bumped each time the watch stores a new [`Observed`].
    pub(super) generation: AtomicU64,
    /// Until when (unix seconds) the recommender may pass this workload
    /// over, valid while `quiet_generation` is the current generation.
    quiet_until: AtomicI64,
    quiet_generation: AtomicU64,
}

/// What the periodic passes over every entry look at first, so a quiet
/// cache costs them nothing.
#[derive(Debug, Default)]
pub(super) struct Flags {
    /// Some ledger changed since the last history pass.
    pub(super) dirty: AtomicBool,
    /// Some entry may have something to sweep: it is not yet shown stored,
    /// or it holds a pending change.
    pub(super) sweep: AtomicBool,
    /// Bumped whenever the watch stores or removes anything.
    pub(super) epoch: AtomicU64,
}

#[derive(Debug, Default)]
pub(super) struct LedgerState {
    /// Stored changes, plus this replica's admitted changes still pending
    /// confirmation by the watch ([`Change::pending`]).
    pub(super) ledger: Ledger,
    /// The last admission decided here, so a re-sent review (same uid and
    /// body) gets the same answer instead of spending the budget twice.
    last: Option<Last>,
}

/// How long the last decision is kept to answer a resent review: the
/// apiserver resends one only within its webhook timeout (at most 30 s).
const RESEND_SECONDS: i64 = 60;

#[derive(Debug)]
struct Last {
    /// When it was decided, so a quiet workload does not keep it forever.
    at: DateTime<Utc>,
    uid: String,
    digest: u64,
    decision: Decision,
    /// What it recorded, to replace when the same uid comes back changed.
    change: Option<Change>,
}

/// Which review a decision answers: its uid, and a digest of its body and
/// endpoint. The apiserver gives every round trip its own uid and resends
/// one only with the same body, so a uid with another body is not a repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReviewKey<'a> {
    pub(crate) uid: &'a str,
    /// A hash of the endpoint and the review body.
    pub(crate) digest: u64,
}

impl Entry {
    pub(super) fn new(
        observed: Observed,
        ledger: Ledger,
        stored: bool,
        since: DateTime<Utc>,
        flags: Arc<Flags>,
    ) -> Entry {
        if !stored {
            flags.sweep.store(true, Ordering::Release);
        }
        Entry {
            observed: ArcSwap::from_pointee(observed),
            ledger: Mutex::new(LedgerState { ledger, last: None }),
            dirty: AtomicBool::new(false),
            stored: AtomicBool::new(stored),
            since,
            flags,
            generation: AtomicU64::new(0),
            quiet_until: AtomicI64::new(i64::MIN),
            quiet_generation: AtomicU64::new(0),
        }
    }

    /// Until when the recommender may pass this workload over, if it may
    /// at `now`: it said so (see [`Entry::stay_quiet`]) and the watch has
    /// stored nothing new since.
    pub fn quiet(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let until = self.quiet_until.load(Ordering::Relaxed);
        (self.quiet_generation.load(Ordering::Acquire) == self.generation.load(Ordering::Acquire)
            && now.timestamp() < until)
            .then(|| DateTime::from_timestamp(until, 0))
            .flatten()
    }

    /// What [`Entry::observed`] returns, with the generation to give
    /// [`Entry::stay_quiet`] when deciding from it.
    pub(crate) fn observed_at(&self) -> (u64, Arc<Observed>) {
        let generation = self.generation.load(Ordering::Acquire);
        (generation, self.observed())
    }

    /// Records that, as observed at `generation`, this workload needs
    /// nothing until `until`. A newer observation voids it.
    pub(crate) fn stay_quiet(&self, generation: u64, until: DateTime<Utc>) {
        self.quiet_until.store(until.timestamp(), Ordering::Relaxed);
        self.quiet_generation.store(generation, Ordering::Release);
    }

    /// Whether the watch has shown this workload stored.
    pub(crate) fn is_stored(&self) -> bool {
        self.stored.load(Ordering::Acquire)
    }

    /// What the watch last saw; a lock-free read.
    pub fn observed(&self) -> Arc<Observed> {
        self.observed.load_full()
    }

    pub(super) fn state(&self) -> MutexGuard<'_, LedgerState> {
        // A panic while holding the lock cannot leave a ledger half-written
        // (every mutation is a single push), so a poisoned lock is still usable.
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides a request against `policies` (see [`engine::decide_all`])
    /// and, unless it is a dry run, records it, atomically per workload, so
    /// two concurrent requests cannot both spend one budget. The second
    /// value says whether this is a repeat: the same review (uid and body)
    /// answered again, which gets the same decision and records nothing.
    pub(crate) fn decide(
        &self,
        policies: &[&Policy],
        request: Request<'_>,
        review: ReviewKey<'_>,
        dry_run: bool,
        now: DateTime<Utc>,
    ) -> (Decision, bool) {
        let mut state = self.state();
        if let Some(last) = &state.last
            && last.uid == review.uid
        {
            if last.digest == review.digest {
                return (last.decision.clone(), true);
            }
            // The same uid with another body: not a retry, whatever sent
            // it. It replaces what that uid recorded, rather than adding to
            // it. (A re-invocation by the apiserver comes with a new uid;
            // `retract_unlanded` handles that.)
            if let Some(change) = state.last.take().and_then(|l| l.change) {
                state.ledger.retract(&change);
            }
        }
        if !dry_run {
            retract_unlanded(&mut state, &request);
            self.book_unseen(&mut state, request.current, now);
        }
        let decision = engine::decide_all(policies, &state.ledger, request, now);
        if !dry_run && decision.replicas != request.current {
            // What the budget was counted over, to tell afterwards why a
            // change was let through (the fault test's report reads it).
            tracing::debug!(
                uid = %review.uid,
                from = request.current,
                to = decision.replicas,
                ledger = %Held(&state.ledger),
                "admitted a change against this ledger"
            );
        }
        if !dry_run {
            let mut recorded = None;
            if let Some(mut change) = decision.change(request.actor, now) {
                // A change waits for the watch to show it stored; a refused
                // or unchanged request is only a recommendation and is kept
                // for stabilization as it is.
                change.pending = change.to != change.from;
                if change.pending {
                    self.flags.sweep.store(true, Ordering::Release);
                } else {
                    self.mark_dirty();
                }
                recorded = Some(change.clone());
                let keep = policies
                    .iter()
                    .map(|p| p.lookback_seconds())
                    .max()
                    .unwrap_or(0);
                let reads = Reads {
                    lowest: policies.iter().any(|p| stabilizes(p.scale_up.as_ref())),
                    highest: policies.iter().any(|p| stabilizes(p.scale_down.as_ref())),
                };
                state.ledger.record_for(change, reads);
                state.ledger.prune(cutoff(keep, now));
            }
            state.last = Some(Last {
                at: now,
                uid: review.uid.to_owned(),
                digest: review.digest,
                decision: decision.clone(),
                change: recorded,
            });
        }
        (decision, false)
    }

    /// The review's `oldObject` is stored state: a count there that the
    /// watch has not delivered yet is a change another replica admitted a
    /// moment ago. It counts now, pending until the watch shows it, so that
    /// budget is never granted twice. It is booked already only if an entry
    /// that can be this very change moves the same way: one admitted here
    /// and still pending, or one a ledger object holds that was stored after
    /// the version the watch last delivered. An older change of the same
    /// counts (the count goes back and forth) is another change.
    fn book_unseen(&self, state: &mut LedgerState, current: u32, now: DateTime<Utc>) {
        let observed = self.observed.load();
        let seen = observed.replicas;
        let unseen = |c: &Change| {
            c.from == seen
                && c.to == current
                && !c.watched
                && (c.pending
                    || match (c.generation, observed.generation) {
                        (Some(stored), Some(delivered)) => stored > delivered,
                        _ => true,
                    })
        };
        if !self.is_stored() || seen == current || state.ledger.changes().iter().any(unseen) {
            return;
        }
        state.ledger.record(Change {
            at: now,
            from: seen,
            to: current,
            requested: current,
            actor: "unknown (not yet on the watch)".into(),
            pending: true,
            watched: false,
            generation: None,
            span: None,
        });
        self.flags.sweep.store(true, Ordering::Release);
    }

    /// Forgets what no request can use any more, for a workload no review
    /// has come for: a decision is otherwise pruned only when the next one
    /// is recorded, so a workload that went quiet would keep its ledger and
    /// last answer for good. With a policy that does not parse, the ledger
    /// is kept: its lookback is unknown. Returns the cutoff it pruned at.
    pub(super) fn trim(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let cutoff = match &self.observed.load().policy {
            Ok(policy) => Some(cutoff(policy.lookback_seconds(), now)),
            Err(_) => None,
        };
        let mut state = self.state();
        if state
            .last
            .as_ref()
            .is_some_and(|last| now - last.at > Duration::seconds(RESEND_SECONDS))
        {
            state.last = None;
        }
        if let Some(cutoff) = cutoff {
            state.ledger.prune(cutoff);
        }
        cutoff
    }

    /// A copy of the ledger, pending changes included.
    #[cfg(any(test, feature = "test-support"))]
    pub fn ledger(&self) -> Ledger {
        self.state().ledger.clone()
    }

    /// What may be persisted: the changes that landed.
    pub(crate) fn landed_ledger(&self) -> Ledger {
        self.state().ledger.landed()
    }

    /// Asks for the ledger to be persisted again (after a failed write).
    pub(crate) fn mark_dirty(&self) {
        // The entry's flag first: a pass that clears the cache's flag and
        // then visits this entry must find it.
        self.dirty.store(true, Ordering::Release);
        self.flags.dirty.store(true, Ordering::Release);
    }

    /// Whether the ledger changed since [`Entry::take_dirty`] was last called.
    pub(crate) fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::AcqRel)
    }
}

/// A ledger as a log field: `time from->to [generation] actor` per entry,
/// marked `pending` (admitted here, not yet seen stored) or `watched` (this
/// replica's watch saw it land); neither means it came from a ledger object
/// or was counted at start. A sum of versions this replica did not see
/// says since which generation.
struct Held<'a>(&'a Ledger);

impl std::fmt::Display for Held<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[")?;
        for (i, c) in self.0.changes().iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{} {}->{}", c.at.format("%H:%M:%S%.3f"), c.from, c.to)?;
            if let Some(g) = c.generation {
                write!(f, " g{g}")?;
            }
            if let Some(known) = c.from_generation() {
                write!(f, " (summed since g{known})")?;
            }
            let state = match (c.pending, c.watched) {
                (true, _) => " pending",
                (false, true) => " watched",
                (false, false) => "",
            };
            write!(f, "{state} {}", c.actor)?;
        }
        f.write_str("]")
    }
}

/// Every webhook round trip has its own uid, so one user request can reach
/// the governor several times: after a storage conflict (the apiserver
/// retries with the same ask), after a later mutating webhook changed the
/// object (re-invocation, with the changed count), and at the validating
/// webhook after the mutating one. Of the changes one actor makes from one
/// starting count, at most one can land (a write that lands changes the
/// count the next one starts from), so a new change by the same actor from
/// the same count supersedes the one still pending instead of spending the
/// budget twice.
///
/// A request that keeps the count (an annotation edit, the governor's own
/// `state` write)
/// supersedes nothing: a change still in flight must keep counting, and the
/// watch records one that lands anyway.
fn retract_unlanded(state: &mut LedgerState, request: &Request<'_>) {
    if request.requested == request.current {
        return;
    }
    state
        .ledger
        .retract_pending(|p| p.from == request.current && &*p.actor == request.actor);
}

fn stabilizes(rules: Option<&ScalingRules>) -> bool {
    rules.is_some_and(|r| r.stabilization_seconds > 0)
}

/// Entries at or before this are seen by no rule looking back
/// `lookback_seconds`, nor needed to match a change across replicas.
fn cutoff(lookback_seconds: u32, now: DateTime<Utc>) -> DateTime<Utc> {
    now - Duration::seconds(i64::from(lookback_seconds).max(SAME_CHANGE_SECONDS))
}
