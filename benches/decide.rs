//! `decide` on a realistic policy: 3 windows, 2 scale-up rules and 1
//! scale-down rule with stabilization, 100 ledger entries. Target ≤ 2 µs.

use chrono::{DateTime, Duration, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use scale_governor::{
    engine::{Change, Ledger, Request, decide},
    policy::{Policy, keys},
};
use std::hint::black_box;

fn setup() -> (Policy, Ledger, DateTime<Utc>) {
    let policy = Policy::from_annotations([
        (keys::MIN_REPLICAS, "2"),
        (keys::MAX_REPLICAS, "200"),
        (
            keys::WINDOWS,
            "Mon-Fri 08:00-20:00 Europe/Berlin min=10\nMon-Sun 22:00-06:00 Europe/Berlin max=40\n2026-12-24/2026-12-26 Europe/Berlin max=5",
        ),
        (keys::SCALE_UP, "4 pods/60s, 100%/60s, select=Max"),
        (keys::SCALE_DOWN, "10%/60s, stabilization=300s"),
    ])
    .expect("benchmark policy parses");
    let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
    let mut ledger = Ledger::new();
    let mut replicas = 20u32;
    for i in 0..100i64 {
        let to = if i % 3 == 0 {
            replicas - 1
        } else {
            replicas + 1
        };
        ledger.record(Change {
            at: now - Duration::seconds(600 - i * 6),
            from: replicas,
            to,
            requested: to,
            actor: if i % 2 == 0 { "hpa" } else { "alice" }.into(),
            pending: false,
            watched: false,
            generation: None,
            span: None,
        });
        replicas = to;
    }
    (policy, ledger, now)
}

fn bench(c: &mut Criterion) {
    let (policy, ledger, now) = setup();
    let current = ledger.changes().last().map_or(20, |c| c.to);
    c.bench_function("decide/scale-up-clamped", |b| {
        b.iter(|| {
            decide(
                black_box(&policy),
                black_box(&ledger),
                Request {
                    current,
                    requested: black_box(current * 3),
                    actor: "hpa",
                },
                black_box(now),
            )
        })
    });
    c.bench_function("decide/within-bounds", |b| {
        b.iter(|| {
            decide(
                black_box(&policy),
                black_box(&ledger),
                Request {
                    current,
                    requested: black_box(current + 1),
                    actor: "hpa",
                },
                black_box(now),
            )
        })
    });
    c.bench_function("decide/scale-down-stabilized", |b| {
        b.iter(|| {
            decide(
                black_box(&policy),
                black_box(&ledger),
                Request {
                    current,
                    requested: black_box(current / 2),
                    actor: "hpa",
                },
                black_box(now),
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
