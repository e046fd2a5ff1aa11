//! When to take, keep or leave the Lease, decided as client-go's leader
//! election decides it: from this replica's own observation, never from
//! another node's clock. A Lease held by another replica has expired when
//! its record has not changed for its whole duration *as this replica saw
//! it* (a monotonic clock, the time the record last changed here), so a
//! replica whose wall clock is minutes ahead or behind never takes a Lease
//! that is being renewed. The `renewTime` the holder writes is a value that
//! changes with each renewal, nothing more.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::LeaseSpec;

/// What identifies one state of the Lease record: any renewal, handover or
/// release changes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) holder: Option<String>,
    pub(crate) renewed: Option<String>,
    pub(crate) transitions: i32,
    pub(crate) duration: Duration,
}

impl Record {
    pub(crate) fn of(spec: &LeaseSpec, default_duration: Duration) -> Record {
        Record {
            holder: spec.holder_identity.clone().filter(|h| !h.is_empty()),
            renewed: spec.renew_time.as_ref().map(|t| format!("{:?}", t.0)),
            transitions: spec.lease_transitions.unwrap_or(0),
            duration: spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(default_duration, Duration::from_secs),
        }
    }
}

/// The record as last seen, and when it last changed, by this replica's
/// monotonic clock.
#[derive(Debug, Clone)]
pub(crate) struct Observation {
    pub(crate) record: Record,
    pub(crate) changed_at: Instant,
}

impl Observation {
    /// Takes in a fresh read: the change time moves only when the record
    /// did.
    pub(crate) fn update(previous: Option<Observation>, record: Record, now: Instant) -> Self {
        match previous {
            Some(seen) if seen.record == record => seen,
            _ => Observation {
                record,
                changed_at: now,
            },
        }
    }
}

/// What to do with the Lease now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// No Lease yet: create it, naming this replica.
    Create,
    /// Free or expired: take it over.
    Acquire,
    /// Ours: renew it.
    Renew,
    /// Another replica holds it and renews it (as far as this one can tell).
    Wait,
}

/// The step for replica `me`, given what it has seen of the Lease.
pub(crate) fn step(seen: Option<&Observation>, me: &str, now: Instant) -> Step {
    let Some(seen) = seen else {
        return Step::Create;
    };
    match seen.record.holder.as_deref() {
        Some(holder) if holder == me => Step::Renew,
        None => Step::Acquire,
        Some(_) if now.duration_since(seen.changed_at) >= seen.record.duration => Step::Acquire,
        Some(_) => Step::Wait,
    }
}

/// Until when a replica that renewed at `renewed` may act as leader: a
/// renew deadline shorter than the Lease's duration, so it stops before any
/// other replica could see the Lease expire (their observation of the
/// renewal comes after the renewal itself).
pub(crate) fn leads_until(renewed: Instant, deadline: Duration) -> Instant {
    renewed + deadline
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(15);

    fn record(holder: Option<&str>, renewed: &str) -> Record {
        Record {
            holder: holder.map(str::to_owned),
            renewed: Some(renewed.to_owned()),
            transitions: 1,
            duration: LEASE,
        }
    }

    #[test]
    fn a_lease_renewed_by_another_is_never_taken_whatever_its_renew_time_says() {
        let t0 = Instant::now();
        // The holder's clock is 3 minutes behind ours: its renewTime looks
        // long expired. Each renewal still changes the record.
        let mut seen = None;
        for i in 0..30u64 {
            let now = t0 + Duration::from_secs(5 * i);
            let renewed = format!("2026-12-07T09:57:{:02}Z", (5 * i) % 60);
            seen = Some(Observation::update(
                seen,
                record(Some("other"), &renewed),
                now,
            ));
            assert_eq!(step(seen.as_ref(), "me", now), Step::Wait, "at +{}s", 5 * i);
            // Just before the next renewal, still not expired.
            assert_eq!(
                step(seen.as_ref(), "me", now + Duration::from_secs(14)),
                Step::Wait
            );
        }
    }

    #[test]
    fn a_lease_not_renewed_for_its_duration_by_our_clock_is_taken() {
        let t0 = Instant::now();
        // A renewTime far in the future (a holder minutes ahead) does not
        // keep it alive either.
        let frozen = record(Some("other"), "2026-12-07T10:03:00Z");
        let seen = Observation::update(None, frozen.clone(), t0);
        let later = Observation::update(Some(seen), frozen, t0 + Duration::from_secs(14));
        assert_eq!(later.changed_at, t0, "an unchanged record keeps its time");
        assert_eq!(
            step(Some(&later), "me", t0 + Duration::from_secs(14)),
            Step::Wait
        );
        assert_eq!(step(Some(&later), "me", t0 + LEASE), Step::Acquire);
    }

    #[test]
    fn free_absent_and_own_leases() {
        let now = Instant::now();
        assert_eq!(step(None, "me", now), Step::Create);
        let free = Observation::update(None, record(None, "x"), now);
        assert_eq!(step(Some(&free), "me", now), Step::Acquire, "released");
        let ours = Observation::update(None, record(Some("me"), "x"), now);
        assert_eq!(step(Some(&ours), "me", now), Step::Renew);
    }

    #[test]
    fn a_released_lease_names_nobody() {
        let spec = LeaseSpec {
            holder_identity: Some(String::new()),
            lease_duration_seconds: Some(1),
            ..LeaseSpec::default()
        };
        let r = Record::of(&spec, LEASE);
        assert_eq!(r.holder, None);
        assert_eq!(r.duration, Duration::from_secs(1));
    }

    #[test]
    fn a_leader_stops_before_anyone_may_take_over() {
        let renewed = Instant::now();
        let until = leads_until(renewed, Duration::from_secs(10));
        assert!(until < renewed + LEASE);
    }
}
