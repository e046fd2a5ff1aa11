//! `docs/quality.md`: the setup, the goals across traces, then each trace's
//! charts, table and goals.

use std::fmt::Write as _;

use chrono::{DateTime, Duration, Utc};
use scale_governor::{
    simulate::{Config, Simulation, Summary, Workload},
    testing::chart::View,
};

use crate::{Case, Outcome, P99_PODS, SEASONAL, WARM_UP};

/// One chart to draw: a file in `docs/quality/`, its title and range.
pub struct Shot {
    /// The file name.
    pub file: String,
    /// The title.
    pub title: String,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

impl Shot {
    /// The view of `case` this shot draws.
    pub fn view<'a>(&'a self, case: &Case) -> View<'a> {
        View {
            title: &self.title,
            zone: case.zone,
            from: self.from,
            to: self.to,
        }
    }
}

/// The whole trace, and for a scored trace the day (on the trace's own wall
/// clock) the HPA and the seasonal policy, alone and together, were short
/// the most.
pub fn shots(case: &Case, sim: &Simulation) -> Vec<Shot> {
    let mut out = vec![Shot {
        file: format!("{}.svg", case.name),
        title: format!(
            "{}, normalized to a 99th percentile of {P99_PODS} pods",
            case.name
        ),
        from: None,
        to: None,
    }];
    let Some(from) = case.scored_from else {
        return out;
    };
    let (a, _) = sim.range(Some(from), None);
    let mut short_by_day = std::collections::BTreeMap::new();
    let drawn = |actor: &str| actor == "hpa" || actor.ends_with(&format!("@{SEASONAL}"));
    for run in sim.runs.iter().filter(|r| drawn(&r.actor)) {
        for i in a..sim.times.len() {
            let (need, served) = (sim.demand[i], f64::from(run.ready[i]) * sim.capacity);
            if need - served > 1e-9 * need.max(1.0) {
                *short_by_day
                    .entry(sim.times[i].with_timezone(&case.zone).date_naive())
                    .or_insert(0u64) += 1;
            }
        }
    }
    let worst = short_by_day
        .iter()
        .max_by_key(|(day, n)| (**n, std::cmp::Reverse(**day)))
        .map(|(day, _)| *day);
    if let Some(day) = worst {
        let start = day
            .and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_local_timezone(case.zone).earliest())
            .map(|t| t.with_timezone(&Utc));
        out.push(Shot {
            file: format!("{}-day.svg", case.name),
            title: format!(
                "{} on {day}, the day the runs drawn were short the most",
                case.name
            ),
            from: start,
            to: start.map(|s| s + Duration::days(1)),
        });
    }
    out
}

fn table(summaries: &[Summary]) -> String {
    let mut out = String::from(
        "| actor | under time % | under demand % | peak short | pod-hours | ÷ oracle | changes | max step | longest under (s) |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for s in summaries {
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.3} | {:.1} | {:.1} | {} | {} | {} | {} |",
            s.actor,
            s.under_provisioned_time_pct,
            s.under_provisioned_demand_pct,
            s.peak_shortfall,
            s.pod_hours,
            s.cost_vs_oracle
                .map_or("-".to_owned(), |v| format!("{v:.2}")),
            s.changes,
            s.largest_step,
            s.longest_recovery_seconds
        );
    }
    out.push('\n');
    out
}

/// The goal figures of one policy on one trace.
struct Goals {
    /// Less under-provisioned time than the HPA alone, percent; `None` when
    /// the HPA was never short.
    less: Option<f64>,
    extra: f64,
    met: bool,
    vs_oracle: f64,
    governor_under: f64,
    met_alone: bool,
}

fn goals(outcome: &Outcome, policy: &str) -> Option<Goals> {
    let find = |actor: String| outcome.summaries.iter().find(|s| s.actor == actor);
    let (hpa, both, gov) = (
        find("hpa".to_owned())?,
        find(format!("hpa+governor@{policy}"))?,
        find(format!("governor@{policy}"))?,
    );
    let less = (hpa.under_provisioned_time_pct > 0.0)
        .then(|| 100.0 * (1.0 - both.under_provisioned_time_pct / hpa.under_provisioned_time_pct));
    let extra = 100.0 * (both.pod_hours / hpa.pod_hours - 1.0);
    let met = if outcome.case.bursty {
        less.is_none_or(|l| l >= 0.0) && extra <= 5.0
    } else {
        less.is_none_or(|l| l >= 50.0) && extra <= 15.0
    };
    let vs_oracle = gov.cost_vs_oracle.unwrap_or(f64::NAN);
    Some(Goals {
        less,
        extra,
        met,
        vs_oracle,
        governor_under: gov.under_provisioned_time_pct,
        met_alone: vs_oracle <= 1.25 && gov.under_provisioned_time_pct < 1.0,
    })
}

fn mark(met: bool) -> &'static str {
    if met { "met" } else { "**not met**" }
}

fn less_text(less: Option<f64>) -> String {
    match less {
        None => "n/a: hpa never short".to_owned(),
        Some(l) if l >= 0.0 => format!("{l:.0} % less"),
        Some(l) => format!("{:.0} % more", -l),
    }
}

fn header(workloads: &[Workload], config: &Config) -> String {
    let names: Vec<_> = workloads.iter().map(|w| format!("`{}`", w.name)).collect();
    format!(
        "# Decision quality\n\n\
         *How well do the HPA, the governor, both together, and an oracle provision real and synthetic demand?*\n\n\
         Generated by `make quality` (`benches/quality/`); do not edit by hand. [simulate.md](simulate.md#how-good-are-the-decisions) reads these figures.\n\n\
         - **Policies:** {} from `examples/quality/`, each run as `governor` (its recommendation the target) and `hpa+governor` (a floor under the HPA).\n\
         - **HPA baseline:** the HPA's defaults (`minReplicas` 2, `maxReplicas` 500, default `behavior`: 300 s scale-down stabilization), at an {:.0} % target and tolerance {}, syncing every {} s. It is the same for every policy, so it is run once.\n\
         - **Traces:** `examples/traces/` (origins and licences in its README), each normalized so that its 99th percentile is {P99_PODS} pods' worth, capacity 1.0 per ready pod. Demand between samples is drawn linearly between bucket midpoints.\n\
         - **Pods** take {} s to become ready. The HPA and the recommender see demand {} s late; the oracle and the scoring see it at once.\n\
         - **Scoring:** traces of three weeks or more are scored after a {WARM_UP}-day warm-up (the seasonal strategy then has a week of history); shorter ones are scored whole.\n\
         - **Controls**, at the cost of `hpa+governor@{SEASONAL}` (bisected to the same pod-hours): the HPA alone at a lower target utilisation, and the HPA under a floor at the highest demand of the last 10 minutes divided by a target.\n\n\
         Columns: time and demand under-provisioned (ready capacity below demand), peak shortfall in pods' worth, pod-hours and their ratio to the oracle's, replica changes, largest single step, and the longest under-provisioned stretch.\n\n\
         Goals (reported, not asserted), on the scored range:\n\
         1. `hpa+governor` has at least 50 % less under-provisioned time than `hpa` alone at no more than 15 % extra pod-hours, on every trace with a daily rhythm; on a trace dominated by bursts, no more under-provisioned time at no more than 5 % extra pod-hours.\n\
         2. At equal pod-hours, `hpa+governor@{SEASONAL}` has less under-provisioned time than both controls.\n\
         3. `governor` alone is within 25 % of the oracle's pod-hours at under 1 % under-provisioned time.\n\n",
        names.join(", "),
        config.hpa_target * 100.0,
        config.tolerance,
        config.tick.num_seconds(),
        config.startup.num_seconds(),
        config.metric_delay.num_seconds(),
    )
}

fn overview(outcomes: &[Outcome]) -> String {
    let mut out = format!(
        "## The goals, trace by trace (`{SEASONAL}` policy)\n\n\
         | trace | kind | hpa under % | hpa+governor under % | change | extra pod-hours | goal 1 | HPA at a lower target | 10-min max floor | goal 2 | governor ÷ oracle | governor under % | goal 3 |\n\
         | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: | ---: | --- |\n"
    );
    for o in outcomes.iter().filter(|o| o.case.scored_from.is_some()) {
        let Some(g) = goals(o, SEASONAL) else {
            continue;
        };
        let find = |actor: &str| o.summaries.iter().find(|s| s.actor == actor);
        let (Some(hpa), Some(both)) = (find("hpa"), find(&format!("hpa+governor@{SEASONAL}")))
        else {
            continue;
        };
        let (a, b, met2) = match &o.controls {
            Some(c) => (
                format!("{:.3} % (target {:.2})", c.hpa.under, c.hpa.setting),
                format!("{:.3} % (÷{:.2})", c.max10.under, c.max10.setting),
                if c.seasonal_under == 0.0 && c.hpa.under == 0.0 && c.max10.under == 0.0 {
                    "n/a (none short)"
                } else {
                    mark(c.seasonal_under < c.hpa.under && c.seasonal_under < c.max10.under)
                },
            ),
            None => ("-".into(), "-".into(), "-"),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.3} | {:.3} | {} | {:+.1} % | {} | {a} | {b} | {met2} | {:.2} | {:.2} | {} |",
            o.case.name,
            if o.case.bursty {
                "bursts"
            } else {
                "daily rhythm"
            },
            hpa.under_provisioned_time_pct,
            both.under_provisioned_time_pct,
            less_text(g.less),
            g.extra,
            match (g.less, g.met) {
                (None, true) => "met: nothing to reduce",
                (_, met) => mark(met),
            },
            g.vs_oracle,
            g.governor_under,
            mark(g.met_alone),
        );
    }
    out.push('\n');
    out
}

/// Where `make replay` (`tests/e2e/replay_trace.rs`) puts its section:
/// measured on the cluster, so this generator carries it over unchanged.
const REPLAY_BEGIN: &str = "<!-- make replay: begin -->";
const REPLAY_END: &str = "<!-- make replay: end -->";

/// The section `make replay` wrote into `doc`, markers included.
pub fn replayed(doc: &str) -> Option<&str> {
    let begin = doc.find(REPLAY_BEGIN)?;
    let end = doc[begin..].find(REPLAY_END)? + begin + REPLAY_END.len();
    Some(&doc[begin..end])
}

/// The whole document, with the section `make replay` wrote
/// ([`replayed`]) after the overview and the risk section.
pub fn document(
    outcomes: &[Outcome],
    workloads: &[Workload],
    config: &Config,
    replayed: Option<&str>,
) -> String {
    let mut doc = header(workloads, config);
    doc.push_str(&overview(outcomes));
    let risks: Vec<_> = outcomes
        .iter()
        .filter_map(|o| o.risk.as_ref().map(|r| (&o.case, r)))
        .collect();
    if !risks.is_empty() {
        doc.push_str(&crate::risk::section(&risks));
    }
    if let Some(section) = replayed {
        doc.push_str(section);
        doc.push_str("\n\n");
    }
    for o in outcomes {
        let case = &o.case;
        let span = case.trace.end() - case.trace.start();
        let scored = match case.scored_from {
            Some(from) => format!(
                "scored from {} ({WARM_UP} days of warm-up)",
                from.with_timezone(&case.zone).format("%Y-%m-%d %H:%M %Z")
            ),
            None => "scored whole".to_owned(),
        };
        let _ = writeln!(
            doc,
            "## {}\n\n{:.1} days of {} s samples, times in {}, {scored}; {} ticks of {} s, simulated (all runs) in {:.0} ms.\n",
            case.name,
            span.num_seconds() as f64 / 86_400.0,
            case.trace.step().num_seconds(),
            case.zone,
            o.sim.times.len(),
            o.sim.tick_seconds,
            o.elapsed.as_secs_f64() * 1000.0,
        );
        for shot in shots(case, &o.sim) {
            let _ = writeln!(doc, "![{}](quality/{})\n", shot.title, shot.file);
        }
        doc.push_str(&table(&o.summaries));
        if let Some(c) = &o.controls {
            let _ = writeln!(
                doc,
                "- Controls at the cost of `hpa+governor@{SEASONAL}` ({:.1} pod-hours, {:.2} % under-provisioned): the HPA alone at a {:.2} target, {:.2} % ({:.1} pod-hours); a floor at the 10-minute maximum ÷ {:.2}, {:.2} % ({:.1} pod-hours).",
                c.seasonal_pod_hours,
                c.seasonal_under,
                c.hpa.setting,
                c.hpa.under,
                c.hpa.pod_hours,
                c.max10.setting,
                c.max10.under,
                c.max10.pod_hours,
            );
        }
        for w in workloads {
            let Some(g) = goals(o, &w.name) else { continue };
            let first = match g.less {
                None => format!(
                    "hpa is never under-provisioned here, and hpa+governor costs {:+.1} % pod-hours ({})",
                    g.extra,
                    if g.met {
                        "met: nothing to reduce"
                    } else {
                        "**not met**"
                    }
                ),
                Some(_) => format!(
                    "hpa+governor has {} under-provisioned time than hpa at {:+.1} % pod-hours ({})",
                    less_text(g.less),
                    g.extra,
                    mark(g.met)
                ),
            };
            let _ = writeln!(
                doc,
                "- `{}`: {first}; governor uses {:.2}× the oracle's pod-hours at {:.2} % under-provisioned time ({}).",
                w.name,
                g.vs_oracle,
                g.governor_under,
                mark(g.met_alone),
            );
        }
        doc.push('\n');
    }
    doc
}
