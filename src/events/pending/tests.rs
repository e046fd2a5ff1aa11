use super::*;
use crate::{policy::keys, report::sample};

fn clamp(name: &str, requested: u32) -> Report {
    let mut r = sample(&[(keys::MAX_REPLICAS, "20")], 5, requested, false);
    r.name = name.into();
    r
}

fn limits() -> Limits {
    Limits {
        interval: Duration::from_secs(10),
        per_second: 10.0,
        burst: 20.0,
        max_series: 100,
    }
}

#[test]
fn one_write_per_series_per_interval_with_the_latest_numbers_and_the_count() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let pending = Pending::new(limits(), t0);
    assert_eq!(
        pending.add(&clamp("web", 100)),
        Added { new: 1, dropped: 0 }
    );
    // The first occurrence is written at once.
    let due = pending.due(at(1));
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].count, 1);
    // A storm: 1,000 repeats, then new numbers, all within the interval.
    for _ in 0..1000 {
        assert_eq!(pending.add(&clamp("web", 100)), Added::default());
    }
    pending.add(&clamp("web", 90));
    assert!(
        pending.due(at(5_000)).is_empty(),
        "no second write within 10 s"
    );
    let due = pending.due(at(10_001));
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].count, 1001);
    assert_eq!(due[0].report.decision.as_ref().unwrap().requested, 90);
    // Nothing new, nothing written.
    assert!(pending.due(at(30_000)).is_empty());
}

#[test]
fn the_budget_bounds_writes_across_workloads_and_the_oldest_go_first() {
    let t0 = Instant::now();
    let pending = Pending::new(limits(), t0);
    for i in 0..50 {
        pending.add(&clamp(&format!("w{i}"), 100));
    }
    assert_eq!(pending.due(t0).len(), 20, "the burst");
    // A second later 10 more tokens: the never-written go first.
    let later = t0 + Duration::from_secs(1);
    let due = pending.due(later);
    assert_eq!(due.len(), 10);
    assert!(due.iter().all(|d| d.count == 1));
    assert_eq!(pending.due(later + Duration::from_secs(2)).len(), 20);
    assert_eq!(pending.len(), 50);
}

#[test]
fn series_beyond_the_bound_are_dropped_and_idle_ones_forgotten() {
    let t0 = Instant::now();
    let pending = Pending::new(
        Limits {
            max_series: 2,
            ..limits()
        },
        t0,
    );
    pending.add(&clamp("a", 100));
    pending.add(&clamp("b", 100));
    assert_eq!(pending.add(&clamp("c", 100)), Added { new: 0, dropped: 1 });
    // A known series still folds.
    assert_eq!(pending.add(&clamp("a", 100)), Added::default());
    assert_eq!(pending.due(t0).len(), 2);
    assert_eq!(pending.len(), 2);
    // Written, and quiet for an interval since: forgotten, room again.
    let later = t0 + Duration::from_secs(10);
    pending.due(later);
    assert!(pending.is_empty());
    assert_eq!(pending.add(&clamp("c", 100)).new, 1);
}

#[test]
fn a_forgotten_series_is_not_written_twice_within_the_interval() {
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let pending = Pending::new(limits(), t0);
    pending.add(&clamp("web", 100));
    assert_eq!(pending.due(t0).len(), 1);
    // Still within the interval: held, and a repeat waits for it.
    assert_eq!(pending.due(at(9)).len(), 0);
    assert_eq!(pending.len(), 1);
    pending.add(&clamp("web", 100));
    assert_eq!(pending.due(at(9)).len(), 0, "second write within 10 s");
    assert_eq!(pending.due(at(10)).len(), 1);
    // Quiet for an interval after that write: forgotten; the next one is
    // new and goes at once, 10 s after the last write.
    assert!(pending.due(at(20)).is_empty());
    assert!(pending.is_empty());
    pending.add(&clamp("web", 100));
    assert_eq!(pending.due(at(20)).len(), 1);
}

#[test]
fn the_default_backlog_is_five_minutes_of_writes() {
    let limits = Limits::default();
    assert_eq!(limits.max_series, 3_000);
    assert_eq!(limits.burst, 20.0);
    // A trickle still holds a useful backlog; a flood is capped.
    assert_eq!(Limits::new(Duration::from_secs(10), 0.01).max_series, 100);
    assert_eq!(Limits::new(Duration::from_secs(10), 1e6).max_series, 20_000);
}

#[test]
fn a_decision_and_a_notice_are_two_series_and_unchanged_is_none() {
    let t0 = Instant::now();
    let pending = Pending::new(limits(), t0);
    let mut both = clamp("web", 100);
    both.notices.push(crate::report::Notice {
        kind: crate::report::NoticeKind::Loosened,
        message: "alice loosened max-replicas".into(),
    });
    both.notices.push(crate::report::Notice {
        kind: crate::report::NoticeKind::ClockChange,
        message:
            "window \"Sun 02:30-05:00 Europe/Berlin max=4\": on 2026-03-29 02:30 does not exist"
                .into(),
    });
    assert_eq!(pending.add(&both).new, 3);
    let unchanged = sample(&[(keys::MAX_REPLICAS, "20")], 5, 6, false);
    assert_eq!(pending.add(&unchanged), Added::default());
    let parts: Vec<Part> = pending.due(t0).into_iter().map(|d| d.part).collect();
    assert!(parts.contains(&Part::Notice(NoticeKind::Loosened)));
    assert!(parts.contains(&Part::Notice(NoticeKind::ClockChange)));
    assert!(parts.contains(&Part::Decision));
}
