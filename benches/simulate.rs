//! A month of per-minute demand (43,200 steps) through all four actors, with
//! the velocity and with the seasonal strategy; and with 1,000 absolute
//! time windows against none. Targets (docs/performance.md): under 1 s for a
//! month with the seasonal strategy on the 2-core development machine, and
//! 1,000 windows within 2× of none.

use chrono::{DateTime, Duration, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use scale_governor::{
    policy::{Policy, keys},
    simulate::{self, Actor, Config, Trace, Workload},
};
use std::hint::black_box;

/// A daily curve with a weekly dip and a flash crowd every fourth day.
fn month() -> Trace {
    let start: DateTime<Utc> = "2026-11-01T00:00:00Z".parse().unwrap();
    let points = (0..30 * 24 * 60)
        .map(|minute: i64| {
            let hour = (minute % 1440) as f64 / 60.0;
            let day = minute / 1440;
            let daily = 0.5 + 0.5 * (std::f64::consts::TAU * (hour - 14.0) / 24.0).cos();
            let weekend = if day % 7 >= 5 { 0.6 } else { 1.0 };
            let flash = if day % 4 == 2 && (minute % 1440) / 60 == 15 {
                4.0
            } else {
                1.0
            };
            (
                start + Duration::minutes(minute),
                20.0 + 180.0 * daily * weekend * flash,
            )
        })
        .collect();
    Trace::from_points(points).unwrap()
}

fn config() -> Config {
    Config {
        capacity: 50.0,
        startup: Duration::seconds(90),
        tick: Duration::seconds(60),
        hpa_target: 40.0,
        tolerance: 0.1,
        actors: Actor::ALL.to_vec(),
        metric_delay: Duration::seconds(30),
        hpa: None,
        interpolation: simulate::Interpolation::Linear,
    }
}

fn workload(pairs: &[(&str, &str)]) -> [Workload; 1] {
    [Workload {
        name: "web".into(),
        policy: Policy::from_annotations(pairs.iter().copied()).unwrap(),
    }]
}

/// `n` absolute windows, one a day and a day long, from 2026-08-04 on:
/// the simulated month (November 2026) lies among the first thousand.
fn windows(n: i64) -> String {
    let start = chrono::NaiveDate::from_ymd_opt(2026, 8, 4).unwrap();
    (0..n)
        .map(|d| {
            let day = start + chrono::Days::new(d as u64);
            format!("{day} Europe/Berlin min={}", 2 + d % 3)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn bench(c: &mut Criterion) {
    let trace = month();
    let config = config();
    let base = [
        (keys::MIN_REPLICAS, "2"),
        (keys::MAX_REPLICAS, "200"),
        (keys::SCALE_DOWN, "10%/60s"),
    ];
    let velocity = {
        let mut p = base.to_vec();
        p.push((keys::WINDOWS, "Mon-Fri 08:00-20:00 Europe/Berlin min=4"));
        p.push((keys::RECOMMEND, r#"{"targetPerPod":40,"leadSeconds":90}"#));
        workload(&p)
    };
    let seasonal = {
        let mut p = base.to_vec();
        p.push((
            keys::RECOMMEND,
            r#"{"targetPerPod":40,"leadSeconds":135,"trend":"seasonal"}"#,
        ));
        workload(&p)
    };
    let many = windows(1000);
    let windowed = {
        let mut p = base.to_vec();
        p.push((keys::WINDOWS, many.as_str()));
        p.push((keys::RECOMMEND, r#"{"targetPerPod":40,"leadSeconds":90}"#));
        workload(&p)
    };
    let none = {
        let mut p = base.to_vec();
        p.push((keys::RECOMMEND, r#"{"targetPerPod":40,"leadSeconds":90}"#));
        workload(&p)
    };
    let mut group = c.benchmark_group("simulate");
    group.sample_size(10);
    for (name, workloads) in [
        ("month-per-minute-4-actors", &velocity),
        ("month-per-minute-4-actors-seasonal", &seasonal),
        ("month-per-minute-no-windows", &none),
        ("month-per-minute-1000-windows", &windowed),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                simulate::simulate(black_box(&trace), black_box(workloads), black_box(&config))
                    .summaries()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
