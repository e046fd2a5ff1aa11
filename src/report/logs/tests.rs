use super::*;
use crate::{policy::keys, report::sample};

fn clamp(requested: u32) -> Report {
    sample(&[(keys::MAX_REPLICAS, "20")], 5, requested, false)
}

#[test]
fn a_repeat_folds_and_its_count_rides_on_the_next_distinct_line() {
    let gate = LogGate::new(Duration::from_secs(60), 10);
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let said = std::cell::Cell::new(0);
    let check = |requested: u32, s: u64| {
        gate.check(
            &clamp(requested),
            "max-replicas",
            u64::from(requested),
            at(s),
            || {
                said.set(said.get() + 1);
                format!("asked {requested}")
            },
        )
    };
    assert_eq!(check(100, 0), Verdict::Say { folded: 0 });
    for s in 1..=30 {
        assert_eq!(check(100, s), Verdict::Fold);
    }
    // New numbers: said, with the 30 repeats of the last ones.
    assert_eq!(check(90, 31), Verdict::Say { folded: 30 });
    assert_eq!(check(90, 32), Verdict::Fold);
    // The message is built only for lines that are said.
    assert_eq!(said.get(), 2);
}

#[test]
fn a_decision_repeated_for_a_whole_interval_is_summarized_in_line_and_by_the_sweep() {
    let gate = LogGate::new(Duration::from_secs(60), 10);
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let check = |s: u64| gate.check(&clamp(100), "max-replicas", 1, at(s), || "asked 100".into());
    assert_eq!(check(0), Verdict::Say { folded: 0 });
    assert_eq!(check(59), Verdict::Fold);
    // A minute of repeats: the next one says how many.
    assert_eq!(check(60), Verdict::Say { folded: 1 });
    assert_eq!(check(61), Verdict::Fold);
    assert_eq!(check(62), Verdict::Fold);
    // Then the storm stops: the sweep reports what is left, once.
    assert!(
        gate.sweep(at(100)).is_empty(),
        "not yet an interval since 60"
    );
    let summaries = gate.sweep(at(121));
    assert_eq!(
        summaries,
        [Summary {
            workload: "Deployment shop/web".into(),
            rule: "max-replicas",
            repeats: 2,
            seconds: 61,
            last: "asked 100".into(),
        }]
    );
    assert!(gate.sweep(at(150)).is_empty());
    // Two idle minutes and the workload is forgotten.
    assert_eq!(gate.len(), 1);
    gate.sweep(at(62 + 121));
    assert!(gate.is_empty());
}

#[test]
fn a_workload_gets_a_bounded_number_of_lines_a_minute_and_rules_are_apart() {
    let gate = LogGate::new(Duration::from_secs(60), 3);
    let t0 = Instant::now();
    let verdicts: Vec<Verdict> = (0..6)
        .map(|i| {
            gate.check(&clamp(100 + i), "max-replicas", u64::from(i), t0, || {
                String::new()
            })
        })
        .collect();
    assert_eq!(
        verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Say { .. }))
            .count(),
        3,
        "{verdicts:?}"
    );
    // A minute later the budget is back, and the folded ones are counted.
    let later = t0 + Duration::from_secs(60);
    assert_eq!(
        gate.check(&clamp(1), "max-replicas", 99, later, String::new),
        Verdict::Say { folded: 3 }
    );
    // Another workload has its own budget.
    let mut other = clamp(100);
    other.name = "api".into();
    assert_eq!(
        gate.check(&other, "max-replicas", 0, t0, String::new),
        Verdict::Say { folded: 0 }
    );
}
