//! `simulate`: replay a demand trace through autoscaling actors and measure
//! how well each one provisions. Pure: the trace and policies come in, the
//! timelines and figures go out. Every actor decides through the same
//! engine the webhook uses.
//!
//! - `hpa`: the HPA controller ([`hpa`]), with its own history and behavior.
//! - `governor`: the recommender alone, its recommendation as the target.
//! - `hpa+governor`: HPA writes pass through the engine, and the
//!   recommendation (when the policy has a `recommend` annotation) is a
//!   floor under them, as in a cluster.
//! - `oracle`: perfect foresight, the least pods that are ready in time.

mod fleet;
pub mod hpa;
mod summary;
pub mod trace;

use std::{collections::VecDeque, fmt::Write as _, str::FromStr};

use chrono::{DateTime, Duration, Utc};

pub use self::{
    fleet::Fleet,
    summary::{Run, Summary, relate_to_oracle, summarize},
    trace::{Interpolation, Trace, TraceError},
};
use crate::{
    engine::{self, Ledger, Request},
    policy::{MAX_REPLICA_COUNT, Policy, RecommendConfig, RecommendationKind, Trend},
    recommend::{Recommender, bounded},
};

/// Who scales the workload in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Actor {
    /// The HPA alone.
    Hpa,
    /// The governor alone, recommendation as target.
    Governor,
    /// The HPA, with the governor's engine and floor in front of it.
    HpaGovernor,
    /// Perfect foresight.
    Oracle,
}

impl Actor {
    /// Every actor, in report order.
    pub const ALL: [Actor; 4] = [
        Actor::Hpa,
        Actor::Governor,
        Actor::HpaGovernor,
        Actor::Oracle,
    ];

    /// The name used in tables and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Hpa => "hpa",
            Actor::Governor => "governor",
            Actor::HpaGovernor => "hpa+governor",
            Actor::Oracle => "oracle",
        }
    }
}

impl FromStr for Actor {
    type Err = String;
    fn from_str(s: &str) -> Result<Actor, String> {
        Actor::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!("unknown actor \"{s}\", expected hpa, governor, hpa+governor or oracle")
            })
    }
}

/// What the simulated cluster looks like.
#[derive(Debug, Clone)]
pub struct Config {
    /// Demand one ready pod serves.
    pub capacity: f64,
    /// Time from pod creation to ready.
    pub startup: Duration,
    /// Simulation step; also the HPA sync period and the recommender's loop.
    pub tick: Duration,
    /// The HPA's per-pod target, e.g. 80 % of capacity.
    pub hpa_target: f64,
    /// The HPA's tolerance.
    pub tolerance: f64,
    /// Which actors to run.
    pub actors: Vec<Actor>,
    /// How late the HPA and the recommender see demand, as a metrics
    /// pipeline delivers it (scrape interval plus adapter cache). Zero
    /// flatters every actor but the oracle.
    pub metric_delay: Duration,
    /// The HPA's own `minReplicas`, `maxReplicas` and `behavior`, written as
    /// a policy; `None` takes them from the workload's policy.
    pub hpa: Option<Policy>,
    /// How demand between the trace's samples is read.
    pub interpolation: Interpolation,
}

/// A workload whose policy is being tried.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Its name, used to label runs when several are compared.
    pub name: String,
    /// Its policy.
    pub policy: Policy,
}

/// Timelines of every run on common ticks.
#[derive(Debug, Clone)]
pub struct Simulation {
    /// Tick instants.
    pub times: Vec<DateTime<Utc>>,
    /// Demand on each tick.
    pub demand: Vec<f64>,
    /// Whether any time window of the first workload is active, per tick.
    pub windows: Vec<bool>,
    /// One per actor and workload.
    pub runs: Vec<Run>,
    /// Demand one ready pod serves.
    pub capacity: f64,
    /// Seconds per tick.
    pub tick_seconds: i64,
}

/// Runs every requested actor over the trace.
pub fn simulate(trace: &Trace, workloads: &[Workload], config: &Config) -> Simulation {
    let tick = config.tick.max(Duration::seconds(1));
    let (start, end) = (trace.start(), trace.end());
    let count = ((end - start).num_seconds() / tick.num_seconds()).max(1) as usize;
    let times: Vec<_> = (0..count).map(|i| start + tick * i as i32).collect();
    let demand: Vec<f64> = times
        .iter()
        .map(|t| trace.value(*t, config.interpolation))
        .collect();
    // What the HPA and the recommender read: demand one metric delay ago.
    let seen: Vec<f64> = times
        .iter()
        .map(|t| {
            trace.value(
                *t - config.metric_delay.max(Duration::zero()),
                config.interpolation,
            )
        })
        .collect();
    let windows = match workloads.first() {
        Some(w) => times
            .iter()
            .map(|t| w.policy.windows.active(*t).next().is_some())
            .collect(),
        None => vec![false; count],
    };
    let ctx = Ctx {
        times: &times,
        demand: &demand,
        seen: &seen,
        config,
    };
    let mut runs = Vec::new();
    for actor in &config.actors {
        if *actor == Actor::Oracle {
            runs.push(ctx.oracle());
            continue;
        }
        for workload in workloads {
            let mut run = match actor {
                Actor::Hpa => ctx.hpa(&workload.policy),
                Actor::Governor => ctx.governor(&workload.policy),
                _ => ctx.hpa_governor(&workload.policy),
            };
            run.actor = if workloads.len() > 1 {
                format!("{}@{}", actor.as_str(), workload.name)
            } else {
                actor.as_str().to_owned()
            };
            runs.push(run);
        }
    }
    Simulation {
        times,
        demand,
        windows,
        runs,
        capacity: config.capacity,
        tick_seconds: tick.num_seconds(),
    }
}

impl Simulation {
    /// Figures per run, with cost relative to the oracle when it ran.
    pub fn summaries(&self) -> Vec<Summary> {
        self.summaries_between(None, None)
    }

    /// Figures per run over the ticks from `from` (inclusive) to `to`
    /// (exclusive), either open: scoring after a warm-up, or one stretch.
    pub fn summaries_between(
        &self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Vec<Summary> {
        let (a, b) = self.range(from, to);
        let mut all: Vec<_> = self
            .runs
            .iter()
            .map(|r| {
                let run = Run {
                    actor: r.actor.clone(),
                    replicas: r.replicas[a..b].to_vec(),
                    ready: r.ready[a..b].to_vec(),
                    recommended: r
                        .recommended
                        .get(a..b)
                        .map_or_else(Vec::new, <[u32]>::to_vec),
                };
                summarize(&run, &self.demand[a..b], self.capacity, self.tick_seconds)
            })
            .collect();
        relate_to_oracle(&mut all);
        all
    }

    /// The tick indices `[a, b)` between `from` and `to`.
    pub fn range(&self, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> (usize, usize) {
        let a = from.map_or(0, |f| self.times.partition_point(|t| *t < f));
        let b = to.map_or(self.times.len(), |e| self.times.partition_point(|t| *t < e));
        (a, b.max(a))
    }

    /// CSV: `timestamp,demand`, then `<actor>_replicas,<actor>_ready` per run.
    pub fn timeline_csv(&self) -> String {
        let mut out = String::from("timestamp,demand");
        for run in &self.runs {
            let _ = write!(out, ",{0}_replicas,{0}_ready", run.actor);
        }
        out.push('\n');
        for (i, t) in self.times.iter().enumerate() {
            let _ = write!(out, "{},{}", t.to_rfc3339(), self.demand[i]);
            for run in &self.runs {
                let _ = write!(out, ",{},{}", run.replicas[i], run.ready[i]);
            }
            out.push('\n');
        }
        out
    }
}

struct Ctx<'a> {
    times: &'a [DateTime<Utc>],
    demand: &'a [f64],
    /// Demand as the metric pipeline shows it, [`Config::metric_delay`] late.
    seen: &'a [f64],
    config: &'a Config,
}

impl Ctx<'_> {
    fn pods_for(&self, demand: f64) -> u32 {
        (demand / self.config.capacity)
            .ceil()
            .clamp(0.0, f64::from(MAX_REPLICA_COUNT)) as u32
    }

    /// Starting size: what the first demand needs, inside the static bounds.
    fn fleet(&self, policy: &Policy) -> Fleet {
        let min = policy.min_replicas.unwrap_or(1);
        let max = policy.max_replicas.unwrap_or(MAX_REPLICA_COUNT).max(min);
        let initial = self.pods_for(self.demand[0]).clamp(min, max);
        Fleet::new(initial, self.times[0], self.config.startup)
    }

    fn recommender(&self, policy: &Policy, kind: RecommendationKind) -> Recommender {
        let mut config = policy.recommend.clone().unwrap_or_else(|| RecommendConfig {
            source: None,
            query: None,
            pointer: None,
            counter: false,
            params: Default::default(),
            target_per_pod: Some(self.config.hpa_target),
            tolerance: self.config.tolerance,
            lead_seconds: self.config.startup.num_seconds().max(0) as u32,
            trend: Trend::Velocity,
            velocity_threshold: 0.0,
            acceleration_threshold: 0.0,
            smoothing_seconds: 120,
            hold_seconds: 300,
            error_quantile: None,
            risk: None,
            time_zone: None,
            warm_pool: None,
            kind,
            ttl_seconds: 300,
        });
        config.kind = kind;
        Recommender::new(config)
    }

    fn record(run: &mut Run, fleet: &Fleet, now: DateTime<Utc>) {
        run.replicas.push(fleet.replicas());
        run.ready.push(fleet.ready(now));
    }

    /// The HPA object: its own spec when given, else the workload's policy.
    fn hpa_for(&self, policy: &Policy) -> hpa::Hpa {
        let spec = self.config.hpa.as_ref().unwrap_or(policy);
        hpa::Hpa::new(spec, self.config.hpa_target, self.config.tolerance)
    }

    fn hpa(&self, policy: &Policy) -> Run {
        let mut hpa = self.hpa_for(policy);
        let mut fleet = self.fleet(policy);
        let mut run = Run::default();
        for (t, seen) in self.times.iter().zip(self.seen) {
            let current = fleet.replicas();
            let desired = hpa.sync(*t, current, fleet.ready(*t), *seen);
            fleet.scale_to(desired, *t);
            Self::record(&mut run, &fleet, *t);
        }
        run
    }

    fn governor(&self, policy: &Policy) -> Run {
        let mut recommender = self.recommender(policy, RecommendationKind::Target);
        let mut policy = policy.clone();
        let mut guard = Guard::new(&policy);
        let mut fleet = self.fleet(&policy);
        let mut run = Run::default();
        for (t, seen) in self.times.iter().zip(self.seen) {
            recommender.observe(*t, *seen);
            // With `risk`, the period is scored as the loop scores it: the
            // demand the metric shows against the pods ready when it came.
            recommender.score(*t, fleet.ready(*t), *seen, self.config.metric_delay);
            let rec = bounded(recommender.recommend(fleet.replicas(), *t), &policy, *t);
            let requested = rec.replicas;
            run.recommended.push(requested);
            policy.recommendation = Some(rec);
            guard.scale(&policy, &mut fleet, requested, "governor", *t);
            Self::record(&mut run, &fleet, *t);
        }
        run
    }

    fn hpa_governor(&self, policy: &Policy) -> Run {
        let mut hpa = self.hpa_for(policy);
        // Without a `recommend` annotation the loop in a cluster writes no
        // recommendation: the governor only guards the HPA's writes.
        let mut recommender = policy
            .recommend
            .is_some()
            .then(|| self.recommender(policy, RecommendationKind::Floor));
        let mut policy = policy.clone();
        let mut guard = Guard::new(&policy);
        let mut fleet = self.fleet(&policy);
        let mut run = Run::default();
        for (t, seen) in self.times.iter().zip(self.seen) {
            if let Some(recommender) = recommender.as_mut() {
                recommender.observe(*t, *seen);
                recommender.score(*t, fleet.ready(*t), *seen, self.config.metric_delay);
                let rec = bounded(recommender.recommend(fleet.replicas(), *t), &policy, *t);
                run.recommended.push(rec.replicas);
                policy.recommendation = Some(rec);
            }
            // Writing the recommendation is an update the webhook governs:
            // a floor above the current count raises it at once.
            let current = fleet.replicas();
            guard.scale(&policy, &mut fleet, current, "governor", *t);
            let current = fleet.replicas();
            let desired = hpa.sync(*t, current, fleet.ready(*t), *seen);
            if desired != current && !guard.scale(&policy, &mut fleet, desired, "hpa", *t) {
                hpa.refused();
            }
            Self::record(&mut run, &fleet, *t);
        }
        run
    }

    /// The least replicas such that every pod needed at any moment was
    /// started one start-up delay before: the max of the need over
    /// `[t, t + startup]`, computed with a monotonic queue.
    fn oracle(&self) -> Run {
        let need: Vec<u32> = self.demand.iter().map(|d| self.pods_for(*d)).collect();
        let tick = self.config.tick.num_seconds().max(1);
        let ahead = (self.config.startup.num_seconds().max(0) + tick - 1) / tick;
        let ahead = ahead as usize;
        let mut replicas = vec![0; need.len()];
        let mut queue: VecDeque<usize> = VecDeque::new();
        for i in (0..need.len()).rev() {
            while queue.back().is_some_and(|&j| need[j] <= need[i]) {
                queue.pop_back();
            }
            queue.push_back(i);
            while queue.front().is_some_and(|&j| j > i + ahead) {
                queue.pop_front();
            }
            replicas[i] = need[queue[0]];
        }
        Run {
            actor: Actor::Oracle.as_str().to_owned(),
            replicas,
            ready: need,
            recommended: Vec::new(),
        }
    }
}

/// A workload behind the webhook, without the cluster: one ledger of every
/// actor's changes, each request decided by the engine and booked as the
/// webhook books it. `simulate` scales through it, and a recorded cluster
/// run can be replayed through it request by request.
#[derive(Debug, Clone)]
pub struct Guard {
    ledger: Ledger,
    lookback: Duration,
}

impl Guard {
    /// An empty ledger, kept as long as `policy`'s rules look back.
    pub fn new(policy: &Policy) -> Guard {
        Guard {
            ledger: Ledger::new(),
            lookback: Duration::seconds(i64::from(policy.lookback_seconds())),
        }
    }

    /// Decides one request from `actor` and books what it changes.
    pub fn decide(
        &mut self,
        policy: &Policy,
        current: u32,
        requested: u32,
        actor: &str,
        now: DateTime<Utc>,
    ) -> engine::Decision {
        let decision = engine::decide(
            policy,
            &self.ledger,
            Request {
                current,
                requested,
                actor,
            },
            now,
        );
        if let Some(change) = decision.change(actor, now) {
            self.ledger.record(change);
            self.ledger.prune(now - self.lookback);
        }
        decision
    }

    /// Decides and applies one request to `fleet`; whether it was admitted.
    fn scale(
        &mut self,
        policy: &Policy,
        fleet: &mut Fleet,
        requested: u32,
        actor: &str,
        now: DateTime<Utc>,
    ) -> bool {
        let decision = self.decide(policy, fleet.replicas(), requested, actor, now);
        fleet.scale_to(decision.replicas, now);
        decision.allowed
    }
}

#[cfg(test)]
mod tests;
