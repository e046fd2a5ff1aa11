//! A recorded [`Timeline`] replayed through the simulator's model: the HPA
//! emulation (`simulate::hpa::Hpa`) syncing at the moments the real HPA read
//! its metric, on the values it read, and every write (the HPA's and
//! anyone else's) decided by `simulate::Guard`, the engine with one ledger,
//! as `simulate`'s `hpa+governor` run does. The metric delay of the
//! recording is thereby the real one: each sync sees what the real one saw.

use std::fmt::Write as _;

use chrono::{DateTime, Duration, Utc};
use scale_governor::{
    policy::{Policy, Recommendation},
    simulate::{self, Actor, Config, Guard, Interpolation, Trace, Workload, hpa::Hpa},
};

use super::timeline::{Review, Timeline};

/// One write in the replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// When it was decided.
    pub at: DateTime<Utc>,
    /// Who wrote.
    pub actor: String,
    /// The count before.
    pub current: u32,
    /// The count asked for.
    pub asked: u32,
    /// What the guard let through.
    pub granted: u32,
}

/// The replay's result.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// Every write, in order.
    pub writes: Vec<Write>,
}

impl Replayed {
    /// The distinct counts the replay went through, from `initial`.
    pub fn sequence(&self, initial: u32) -> Vec<u32> {
        let mut out = vec![initial];
        for w in &self.writes {
            if out.last() != Some(&w.granted) {
                out.push(w.granted);
            }
        }
        out
    }
}

/// What the HPA and the workload look like to the replay.
pub struct Model<'a> {
    /// The HPA's `minReplicas`, `maxReplicas` and `behavior` as a policy.
    pub hpa: &'a Policy,
    /// Its `AverageValue` target.
    pub target: f64,
    /// The workload's own `scale-governor.io/` annotations, without the
    /// recommendation (replayed from the recording as it changed).
    pub annotations: &'a [(&'a str, &'a str)],
}

enum Event<'a> {
    Sync(u64),
    Write(&'a Review),
    Recommendation(Option<&'a str>),
}

/// Replays `timeline` through `model`.
pub fn replay(timeline: &Timeline, model: &Model<'_>) -> Replayed {
    let policy_with = |rec: Option<&str>| {
        let mut policy =
            Policy::from_annotations(model.annotations.iter().copied()).expect("the policy");
        policy.recommendation = rec.and_then(|r| Recommendation::parse(r).ok());
        policy
    };
    let mut events: Vec<(DateTime<Utc>, Event)> = Vec::new();
    events.extend(
        timeline
            .queries
            .iter()
            .map(|(at, v)| (*at, Event::Sync(*v))),
    );
    events.extend(
        timeline
            .reviews
            .iter()
            .filter(|r| !r.by_hpa() && r.asked != r.current)
            .map(|r| (r.at, Event::Write(r))),
    );
    let mut last = None;
    for s in &timeline.samples {
        if s.recommendation.as_deref() != last {
            last = s.recommendation.as_deref();
            events.push((s.at, Event::Recommendation(last)));
        }
    }
    events.sort_by_key(|(at, _)| *at);

    let mut policy = policy_with(None);
    let mut guard = Guard::new(&policy);
    let mut hpa = Hpa::new(model.hpa, model.target, 0.1);
    let mut current = timeline.samples.first().map_or(1, |s| s.replicas);
    let hpa_reviews = timeline.hpa_writes();
    let mut writes = Vec::new();
    for (at, event) in events {
        let (actor, asked, decided_at) = match event {
            Event::Recommendation(rec) => {
                policy = policy_with(rec);
                continue;
            }
            Event::Write(r) => (r.actor.clone(), r.asked, at),
            Event::Sync(value) => {
                // External AverageValue ignores readiness: every pod counts.
                let asked = hpa.sync(at, current, current, value as f64);
                if asked == current {
                    continue;
                }
                // Decided when the real write reached the governor, so a
                // rate period ends on the same side of it.
                let reached = hpa_reviews
                    .iter()
                    .map(|r| r.at)
                    .find(|t| *t >= at && *t - at < Duration::seconds(1))
                    .unwrap_or(at);
                ("hpa".to_owned(), asked, reached)
            }
        };
        let d = guard.decide(&policy, current, asked, &actor, decided_at);
        if !d.allowed && actor == "hpa" {
            hpa.refused();
        }
        writes.push(Write {
            at: decided_at,
            actor,
            current,
            asked,
            granted: d.replicas,
        });
        current = d.replicas;
    }
    Replayed { writes }
}

/// The metric as the test set it, fed to `simulate` itself: its
/// `hpa+governor` run, ticking once a second as the controller syncs, with
/// the metric delay the recording measured. The distinct counts it goes
/// through, from the count the first value asks for.
pub fn simulated(timeline: &Timeline, model: &Model<'_>) -> Vec<u32> {
    let mut points: Vec<(DateTime<Utc>, f64)> = timeline
        .sets
        .iter()
        .map(|(at, v)| (*at, *v as f64))
        .collect();
    if let (Some(last), Some(end)) = (points.last().copied(), timeline.samples.last()) {
        points.push((end.at, last.1));
    }
    let trace = Trace::from_points(points).expect("the metric as set");
    let policy = Policy::from_annotations(model.annotations.iter().copied()).expect("the policy");
    let config = Config {
        capacity: model.target,
        startup: Duration::zero(),
        tick: Duration::seconds(1),
        hpa_target: model.target,
        tolerance: 0.1,
        actors: vec![Actor::HpaGovernor],
        metric_delay: timeline.metric_delay(),
        hpa: Some(model.hpa.clone()),
        interpolation: Interpolation::Step,
    };
    let workloads = [Workload {
        name: "web".into(),
        policy,
    }];
    let sim = simulate::simulate(&trace, &workloads, &config);
    let mut out: Vec<u32> = Vec::new();
    for n in &sim.runs[0].replicas {
        if out.last() != Some(n) {
            out.push(*n);
        }
    }
    out
}

/// The HPA's writes as (asked, granted), consecutive repeats folded: how
/// many times the HPA asked again before the next change depends on when
/// exactly it synced, the pairs themselves do not.
pub fn hpa_steps<'a>(writes: impl Iterator<Item = (u32, u32)> + 'a) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for pair in writes {
        if out.last() != Some(&pair) {
            out.push(pair);
        }
    }
    out
}

/// A side-by-side table of the recording and the replay, for failure
/// messages.
pub fn side_by_side(timeline: &Timeline, replayed: &Replayed) -> String {
    let start = timeline.samples.first().map(|s| s.at).unwrap_or_default();
    let secs = |t: DateTime<Utc>| (t - start).num_milliseconds() as f64 / 1000.0;
    let mut out = String::from("recorded writes (s, actor, current -> asked => granted):\n");
    for r in timeline.reviews.iter().filter(|r| r.asked != r.current) {
        let _ = writeln!(
            out,
            "  {:7.2} {:<32} {} -> {} => {}",
            secs(r.at),
            r.actor,
            r.current,
            r.asked,
            r.granted
        );
    }
    out.push_str("replayed writes:\n");
    for w in &replayed.writes {
        let _ = writeln!(
            out,
            "  {:7.2} {:<32} {} -> {} => {}",
            secs(w.at),
            w.actor,
            w.current,
            w.asked,
            w.granted
        );
    }
    out
}
