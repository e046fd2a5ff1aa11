//! A month of per-minute demand (43,200 steps) through all four actors.
//! Target: under 1 s on the 2-core development machine.

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

fn bench(c: &mut Criterion) {
    let trace = month();
    let policy = Policy::from_annotations([
        (keys::MIN_REPLICAS, "2"),
        (keys::MAX_REPLICAS, "200"),
        (keys::WINDOWS, "Mon-Fri 08:00-20:00 Europe/Berlin min=4"),
        (keys::SCALE_DOWN, "10%/60s"),
        (keys::RECOMMEND, r#"{"targetPerPod":40,"leadSeconds":90}"#),
    ])
    .unwrap();
    let workloads = [Workload {
        name: "web".into(),
        policy,
    }];
    let config = Config {
        capacity: 50.0,
        startup: Duration::seconds(90),
        tick: Duration::seconds(60),
        hpa_target: 40.0,
        tolerance: 0.1,
        actors: Actor::ALL.to_vec(),
        metric_delay: Duration::zero(),
        hpa: None,
        interpolation: simulate::Interpolation::Linear,
    };
    let mut group = c.benchmark_group("simulate");
    group.sample_size(10);
    group.bench_function("month-per-minute-4-actors", |b| {
        b.iter(|| {
            simulate::simulate(black_box(&trace), black_box(&workloads), black_box(&config))
                .summaries()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
