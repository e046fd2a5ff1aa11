//! The replay's model side: the trace compressed onto the wall clock, the
//! same run through `simulate`, and the cluster's samples put on
//! `simulate`'s ticks so both are scored by one function.

use std::{fmt::Write as _, path::PathBuf};

use chrono::{DateTime, Duration, Utc};
use scale_governor::{
    policy::{Policy, keys},
    simulate::{self, Actor, Config, Interpolation, Run, Simulation, Summary, Trace, Workload},
};

use super::{CAPACITY, HPA_MAX, SPEEDUP, STARTUP_SECONDS, TARGET, TOLERANCE, behavior};

/// The stretch of the shipped trace replayed: a World Cup match day's rise
/// from about 430 to 1,860 requests a second.
const TRACE: &str = "worldcup98-1998-06-22_24.csv";
const FROM: &str = "1998-06-23T13:00:00Z";
const HOURS: i64 = 2;

/// `FROM` plus `HOURS` of the trace, every instant moved onto `start + (t -
/// FROM) / SPEEDUP`; values rounded to the whole units the External metric
/// serves, so the HPA, the loop and `simulate` read the same numbers.
pub fn compressed(start: DateTime<Utc>) -> Trace {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/traces")
        .join(TRACE);
    let text = std::fs::read_to_string(&path).expect("the shipped trace");
    let full = Trace::parse(&text).expect("a valid trace");
    let from: DateTime<Utc> = FROM.parse().unwrap();
    let to = from + Duration::hours(HOURS);
    let points = full
        .points()
        .iter()
        .filter(|(t, _)| *t >= from && *t < to)
        .map(|(t, v)| (start + (*t - from) / SPEEDUP, v.round()))
        .collect();
    Trace::from_points(points).expect("a non-empty stretch")
}

/// The HPA's spec (`minReplicas` 1, `maxReplicas`, `behavior`) as the
/// policy `simulate` emulates it with.
pub fn hpa_policy() -> Policy {
    let (up, down) = behavior();
    let max = HPA_MAX.to_string();
    Policy::from_annotations([
        (keys::MIN_REPLICAS, "1"),
        (keys::MAX_REPLICAS, max.as_str()),
        (keys::SCALE_UP, up.as_str()),
        (keys::SCALE_DOWN, down.as_str()),
    ])
    .expect("the HPA's spec as a policy")
}

/// `simulate` on the compressed trace with the cluster's settings: a
/// 1 s tick (the HPA's sync period and the loop's interval here), the
/// scaled start-up delay, and demand seen `read_delay` after it is set.
pub fn simulate(trace: &Trace, governed: &Policy, read_delay: Duration) -> Simulation {
    let config = Config {
        capacity: CAPACITY,
        startup: Duration::seconds(STARTUP_SECONDS),
        tick: Duration::seconds(1),
        hpa_target: TARGET as f64,
        tolerance: TOLERANCE,
        actors: vec![Actor::Hpa, Actor::HpaGovernor],
        metric_delay: read_delay,
        hpa: Some(hpa_policy()),
        interpolation: Interpolation::Step,
    };
    let workload = Workload {
        name: "web".to_owned(),
        policy: governed.clone(),
    };
    simulate::simulate(trace, &[workload], &config)
}

/// One observation of a Deployment in the cluster.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: DateTime<Utc>,
    /// `spec.replicas`: pods paid for.
    pub replicas: u32,
    /// Pods Ready and not being deleted.
    pub ready: u32,
}

/// The cluster's run on `times`: each tick takes the last sample at or
/// before it (the first sample before the first).
pub fn on_ticks(actor: &str, samples: &[Sample], times: &[DateTime<Utc>]) -> Run {
    let mut run = Run {
        actor: actor.to_owned(),
        ..Run::default()
    };
    for t in times {
        let i = samples.partition_point(|s| s.at <= *t).saturating_sub(1);
        let s = samples[i];
        run.replicas.push(s.replicas);
        run.ready.push(s.ready);
    }
    run
}

/// How two runs of one actor compare.
#[derive(Debug)]
pub struct Agreement {
    pub actor: &'static str,
    pub cluster: Summary,
    pub simulated: Summary,
    /// Ticks with the same ready count, in percent.
    pub same_ready_pct: f64,
    /// Mean of |ready in the cluster − ready simulated| per tick.
    pub mean_ready_gap: f64,
}

impl Agreement {
    pub fn new(actor: &'static str, cluster: &Run, simulated: &Run, sim: &Simulation) -> Agreement {
        let score =
            |run: &Run| simulate::summarize(run, &sim.demand, sim.capacity, sim.tick_seconds);
        let pairs = cluster.ready.iter().zip(&simulated.ready);
        let ticks = cluster.ready.len().max(1) as f64;
        Agreement {
            actor,
            cluster: score(cluster),
            simulated: score(simulated),
            same_ready_pct: 100.0 * pairs.clone().filter(|(a, b)| a == b).count() as f64 / ticks,
            mean_ready_gap: pairs.map(|(a, b)| f64::from(a.abs_diff(*b))).sum::<f64>() / ticks,
        }
    }

    /// Relative gap of under-provisioned time, then of pod-hours, from the
    /// simulated figure.
    pub fn gaps(&self) -> (f64, f64) {
        (
            relative(
                self.cluster.under_provisioned_time_pct,
                self.simulated.under_provisioned_time_pct,
            ),
            relative(self.cluster.pod_hours, self.simulated.pod_hours),
        )
    }
}

fn relative(cluster: f64, simulated: f64) -> f64 {
    if simulated == 0.0 {
        return if cluster == 0.0 { 0.0 } else { f64::INFINITY };
    }
    (cluster - simulated).abs() / simulated
}

/// The report: the agreement per actor, in the table `docs/quality.md`
/// quotes; pod-hours are the compressed run's, times `SPEEDUP` for the
/// trace's own clock.
pub fn report(agreements: &[Agreement], notes: &[String]) -> String {
    let mut out = format!(
        "## Checked against the cluster: `make replay`\n\n\
         *Does `simulate` tell what the cluster does?* {HOURS} h of `{TRACE}` from {FROM} went \
         through the local control plane at {SPEEDUP}× (every duration divided by {SPEEDUP}: \
         the HPA syncs every second, pods are Ready {STARTUP_SECONDS} s after they run, kwok \
         starting them on a fake Node), one Deployment under the HPA alone and one under the \
         HPA with the governor's `velocity` floor, both on the demand the test served as the \
         HPA's External metric and the loop's HTTP JSON source; the same compressed trace went \
         through `simulate` (1 s ticks, demand seen as late as the HPA read it). Capacity {CAPACITY} per ready pod; \
         the HPA aims at {TARGET} per pod (95 %, so it runs short on every rise). Pod-hours on \
         the trace's own clock. Written by `tests/e2e/replay_trace.rs`; `make quality` keeps \
         this section as it is.\n\n\
         | actor | under-provisioned time, cluster | simulate | gap | pod-hours, cluster | simulate | gap | ticks with the same ready pods | mean ready-pod gap |\n\
         |---|---|---|---|---|---|---|---|---|\n"
    );
    for a in agreements {
        let (under, cost) = a.gaps();
        let _ = writeln!(
            out,
            "| {} | {:.1} % | {:.1} % | {:.1} % | {:.1} | {:.1} | {:.1} % | {:.0} % | {:.2} |",
            a.actor,
            a.cluster.under_provisioned_time_pct,
            a.simulated.under_provisioned_time_pct,
            100.0 * under,
            a.cluster.pod_hours * f64::from(SPEEDUP),
            a.simulated.pod_hours * f64::from(SPEEDUP),
            100.0 * cost,
            a.same_ready_pct,
            a.mean_ready_gap,
        );
    }
    out.push('\n');
    for note in notes {
        let _ = writeln!(out, "- {note}");
    }
    out.push_str(
        "\n**Where they differed, and which was wrong.** Run first with no metric delay, \
         `simulate` counted one tick less of shortfall per rise than the cluster ran short \
         (21.7 % against 23.3 % for the HPA alone, 9.2 % against 10.6 % with the governor), \
         pod for pod otherwise: a value that changes on a tick was read by its HPA on that very \
         tick, while the real HPA reads it at its next sync. The model was right about what it \
         was told, and what it was told was wrong: a read delay of zero. It now runs with the \
         delay the test measured, and `--metric-delay` (its help and \
         [simulate.md](simulate.md#inputs)) says to count half the HPA's sync \
         period in it. (The first run of all also showed a governor's floor far above \
         `simulate`'s for the first minutes: the test's source answered 0 until the trace began, \
         and the `velocity` trend read the jump from 0 to the trace's first value as a surge. \
         The source now answers the trace's first value from the start.)\n",
    );
    out
}

/// CSV of both runs per actor on the ticks: the chart's data.
pub fn timeline_csv(sim: &Simulation, cluster: &[Run]) -> String {
    let mut out = String::from("timestamp,demand");
    for run in sim.runs.iter().chain(cluster) {
        let name = if cluster.iter().any(|c| std::ptr::eq(c, run)) {
            format!("cluster_{}", run.actor)
        } else {
            format!("simulate_{}", run.actor)
        };
        let _ = write!(out, ",{name}_replicas,{name}_ready");
    }
    out.push('\n');
    for (i, t) in sim.times.iter().enumerate() {
        let _ = write!(out, "{},{}", t.to_rfc3339(), sim.demand[i]);
        for run in sim.runs.iter().chain(cluster) {
            let _ = write!(out, ",{},{}", run.replicas[i], run.ready[i]);
        }
        out.push('\n');
    }
    out
}

/// The chart `docs/quality.md` shows: per actor, demand in pods' worth
/// and the ready pods of both runs.
pub fn chart(sim: &Simulation, cluster: &[Run]) -> String {
    use scale_governor::testing::chart::{Figure, ORANGE, Panel, RGBColor, Series, Style};
    let on = |values: &[u32]| -> Vec<(DateTime<Utc>, f64)> {
        sim.times
            .iter()
            .zip(values)
            .map(|(t, v)| (*t, f64::from(*v)))
            .collect()
    };
    let demand: Vec<_> = sim
        .times
        .iter()
        .zip(&sim.demand)
        .map(|(t, d)| (*t, d / sim.capacity))
        .collect();
    let panels = sim
        .runs
        .iter()
        .zip(cluster)
        .map(|(simulated, measured)| Panel {
            caption: format!("{}: ready pods", simulated.actor),
            spans: Vec::new(),
            marks: Vec::new(),
            series: vec![
                Series::new(Style::Area, RGBColor(160, 160, 160), demand.clone()),
                Series::new(Style::Step, RGBColor(40, 90, 200), on(&simulated.ready)),
                Series::new(Style::Step, ORANGE, on(&measured.ready)),
            ],
        })
        .collect();
    Figure {
        title: format!(
            "{TRACE} from {FROM}, {HOURS} h at {SPEEDUP}×: the cluster against simulate"
        ),
        legend: "grey: demand in pods' worth; blue: simulate's ready pods; orange: the cluster's"
            .to_owned(),
        panels,
        zone: None,
    }
    .svg()
    .expect("the chart")
}

/// Where `make replay`'s section sits in `docs/quality.md`; `make quality`
/// keeps what lies between the markers.
const BEGIN: &str = "<!-- make replay: begin -->";
const END: &str = "<!-- make replay: end -->";

/// `doc` with `section` between the markers: in their place, or else
/// before the first trace's section (after the overview and the risk).
pub fn splice(doc: &str, section: &str) -> String {
    let block = format!("{BEGIN}\n{section}\n{END}");
    if let (Some(a), Some(b)) = (doc.find(BEGIN), doc.find(END)) {
        return format!("{}{block}{}", &doc[..a], &doc[b + END.len()..]);
    }
    let after = doc.find("## Stated risk").unwrap_or(0);
    match doc[after..].find("\n## ") {
        Some(i) => format!(
            "{}{block}\n\n{}",
            &doc[..after + i + 1],
            &doc[after + i + 1..]
        ),
        None => format!("{doc}\n{block}\n"),
    }
}

/// The mean time, in seconds, from a raise of `spec.replicas` showing in
/// the samples to that many pods Ready: the start-up delay as the cluster
/// delivers it (controllers, scheduler and kwok included), and `None`
/// without a raise that completed.
pub fn write_to_ready(samples: &[Sample]) -> Option<f64> {
    let mut lags = Vec::new();
    for (i, pair) in samples.windows(2).enumerate() {
        if pair[1].replicas <= pair[0].replicas {
            continue;
        }
        let want = pair[1].replicas;
        if let Some(ready) = samples[i + 1..].iter().find(|s| s.ready >= want) {
            lags.push((ready.at - pair[1].at).num_milliseconds() as f64 / 1000.0);
        }
    }
    (!lags.is_empty()).then(|| lags.iter().sum::<f64>() / lags.len() as f64)
}
