//! The `calibrated` policy (seasonal trend, `risk: "1%"`): on each scored
//! trace, the stated risk against the share of time the governor was
//! short, alone at 0.5 %, 1 % and 2 % and as a floor under the HPA at 1 %,
//! and what the HPA alone costs when tuned (by its target) to the same
//! share. The goals are reported, not asserted.

use std::fmt::Write as _;

use scale_governor::{
    policy::{Policy, RiskText, keys},
    simulate::{self, Actor, Config, Summary, Workload},
};

use crate::{Case, controls};

/// The policy these goals are about.
pub const CALIBRATED: &str = "calibrated";
/// The stated risks the governor alone runs at, in percent.
const STATED: [f64; 3] = [0.5, 1.0, 2.0];
/// Bisection steps on the HPA's target.
const STEPS: usize = 12;

/// The HPA alone tuned to an under-provisioned time: the highest target
/// (the cheapest HPA) that is short no more often.
#[derive(Debug, Clone, Copy)]
pub struct Tuned {
    pub target: f64,
    pub under: f64,
    pub pod_hours: f64,
}

/// One run of the calibrated policy.
#[derive(Debug, Clone, Copy)]
pub struct Level {
    /// The stated risk, percent.
    pub stated: f64,
    /// Its under-provisioned time, percent.
    pub achieved: f64,
    /// The recommendation alone's, percent.
    pub alone: Option<f64>,
    pub pod_hours: f64,
    pub vs_oracle: Option<f64>,
    /// `None` when no target from 0.2 up is short so rarely.
    pub hpa: Option<Tuned>,
}

/// The calibrated policy on one trace.
pub struct RiskOutcome {
    /// The governor alone at each of [`STATED`].
    pub alone: Vec<Level>,
    /// As a floor under the HPA at 1 %.
    pub floor: Level,
    /// Whether the HPA alone (its default target) is ever short.
    pub hpa_short: bool,
}

/// The HPA alone at the highest target in [0.2, 1.0] whose
/// under-provisioned time is at most `under`, by bisection (a higher target
/// is short more often and costs less).
fn tuned(case: &Case, bounds: &Policy, config: &Config, under: f64) -> Option<Tuned> {
    let run = |target: f64| {
        let s = controls::hpa_at(case, bounds, config, target);
        Tuned {
            target,
            under: s.under_provisioned_time_pct,
            pod_hours: s.pod_hours,
        }
    };
    let (mut lo, mut hi) = (0.2, 1.0);
    let top = run(hi);
    if top.under <= under {
        return Some(top);
    }
    let mut best = run(lo);
    if best.under > under {
        return None;
    }
    for _ in 0..STEPS {
        let mid = (lo + hi) / 2.0;
        let at = run(mid);
        if at.under <= under {
            (lo, best) = (mid, at);
        } else {
            hi = mid;
        }
    }
    Some(best)
}

/// The calibrated policy stating `stated` percent.
fn stating(calibrated: &Workload, stated: f64) -> Workload {
    let mut w = calibrated.clone();
    if let Some(r) = w.policy.recommend.as_mut() {
        r.risk = Some(RiskText(format!("{stated}%")));
    }
    w
}

fn level(stated: f64, s: &Summary, hpa: Option<Tuned>) -> Level {
    Level {
        stated,
        achieved: s.under_provisioned_time_pct,
        alone: s.recommendation_under_time_pct,
        pod_hours: s.pod_hours,
        vs_oracle: s.cost_vs_oracle,
        hpa,
    }
}

/// Runs the calibrated policy on `case`; `summaries` are the suite's runs
/// of it at 1 % (alone and as a floor), with the oracle's.
pub fn run(
    case: &Case,
    calibrated: &Workload,
    config: &Config,
    summaries: &[Summary],
) -> RiskOutcome {
    let find = |actor: &str| {
        summaries
            .iter()
            .find(|s| s.actor == actor)
            .expect("the suite's runs")
    };
    let oracle = find("oracle").pod_hours;
    let hpa_short = find("hpa").under_provisioned_time_pct > 0.0;
    let bounds = Policy::from_annotations([(keys::MIN_REPLICAS, "2"), (keys::MAX_REPLICAS, "500")])
        .expect("the bounds");
    let alone = STATED
        .iter()
        .map(|stated| {
            let s = if *stated == 1.0 {
                find(&format!("governor@{CALIBRATED}")).clone()
            } else {
                let governed = Config {
                    actors: vec![Actor::Governor],
                    ..config.clone()
                };
                let sim =
                    simulate::simulate(&case.trace, &[stating(calibrated, *stated)], &governed);
                let mut s = sim.summaries_between(case.scored_from, None).remove(0);
                s.cost_vs_oracle = (oracle > 0.0).then(|| s.pod_hours / oracle);
                s
            };
            let hpa = tuned(case, &bounds, config, s.under_provisioned_time_pct);
            level(*stated, &s, hpa)
        })
        .collect();
    let both = find(&format!("hpa+governor@{CALIBRATED}"));
    let floor = level(
        1.0,
        both,
        tuned(case, &bounds, config, both.under_provisioned_time_pct),
    );
    RiskOutcome {
        alone,
        floor,
        hpa_short,
    }
}

fn mark(met: bool) -> &'static str {
    if met { "met" } else { "**not met**" }
}

fn hpa_text(t: Option<Tuned>) -> String {
    t.map_or("never so rarely short (target 0.2)".to_owned(), |t| {
        format!(
            "{:.1} (target {:.2}, {:.3} %)",
            t.pod_hours, t.target, t.under
        )
    })
}

/// Goal 2: cheaper than the HPA tuned to the same share; `None` (n/a)
/// where the HPA alone is never short.
fn cheaper(r: &RiskOutcome, l: &Level) -> Option<bool> {
    r.hpa_short
        .then(|| l.hpa.is_none_or(|t| l.pod_hours < t.pod_hours))
}

/// The section of `docs/quality.md` on stated risk: `outcomes` are the
/// scored traces, each with whether it is dominated by bursts.
pub fn section(outcomes: &[(&Case, &RiskOutcome)]) -> String {
    let mut out = format!(
        "## Stated risk: the `{CALIBRATED}` policy\n\n\
         The `{CALIBRATED}` policy states `risk: \"1%\"` on the seasonal trend: its headroom is calibrated online to be short of capacity 1 % of the time. Here it also runs alone stating 0.5 % and 2 %. \"Achieved\" is the scored under-provisioned time, counted as the suite counts it (ready pods below demand, per 15 s tick, after the warm-up); \"rec alone\" counts only the ready pods the recommendation asked for. \"HPA tuned\" is the HPA alone at the highest target (the cheapest) that is short no more often, bisected.\n\n\
         Goals (from the issue that added `risk`), on the scored traces:\n\
         1. Stating 0.5 %, 1 % and 2 %, the governor alone achieves between half and 1.5× the stated share, on every trace with a daily rhythm.\n\
         2. At the share it achieves, the governor alone uses fewer pod-hours than the HPA alone tuned to the same share, on every trace where the HPA is ever short.\n\
         3. As a floor under the HPA stating 1 %, under-provisioned time is at most 1 %, at no more pod-hours than the HPA alone tuned to the same share, on every trace.\n\
         4. Carried over: the governor alone stating 1 % within 1.25× the oracle's pod-hours at under 1 % under-provisioned time, on every trace with a daily rhythm.\n\n\
         ### The governor alone\n\n\
         | trace | kind | stated | achieved % | × stated | pod-hours | ÷ oracle | HPA tuned: pod-hours | goal 1 | goal 2 |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |\n"
    );
    let mut misses = Vec::new();
    for (case, r) in outcomes {
        for l in &r.alone {
            let ratio = l.achieved / l.stated;
            let goal1 = if case.bursty {
                "n/a (bursts)"
            } else {
                mark((0.5..=1.5).contains(&ratio))
            };
            let goal2 = cheaper(r, l).map_or("n/a (hpa never short)", mark);
            if !case.bursty && !(0.5..=1.5).contains(&ratio) {
                misses.push(format!(
                    "{}, goal 1 at {} %: achieved {ratio:.2}× the stated share.",
                    case.name, l.stated
                ));
            }
            if cheaper(r, l) == Some(false) {
                misses.push(cost_miss(case, l));
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} % | {:.3} | {ratio:.2} | {:.1} | {} | {} | {goal1} | {goal2} |",
                case.name,
                if case.bursty {
                    "bursts"
                } else {
                    "daily rhythm"
                },
                l.stated,
                l.achieved,
                l.pod_hours,
                l.vs_oracle.map_or("-".to_owned(), |v| format!("{v:.2}")),
                hpa_text(l.hpa),
            );
        }
    }
    out.push_str(
        "\n### As a floor under the HPA, stating 1 %\n\n\
         | trace | achieved % | rec alone % | pod-hours | HPA tuned: pod-hours | goal 3 | governor alone ÷ oracle, under % | goal 4 |\n\
         | --- | ---: | ---: | ---: | ---: | --- | --- | --- |\n",
    );
    for (case, r) in outcomes {
        let f = &r.floor;
        let goal3 = f.achieved <= 1.0 && f.hpa.is_none_or(|t| f.pod_hours <= t.pod_hours);
        let one = r.alone.iter().find(|l| l.stated == 1.0);
        let (alone, goal4) = match one {
            Some(l) => (
                format!(
                    "{} ÷ oracle, {:.3} %",
                    l.vs_oracle.map_or("-".to_owned(), |v| format!("{v:.2}")),
                    l.achieved
                ),
                if case.bursty {
                    "n/a (bursts)"
                } else {
                    mark(l.vs_oracle.is_some_and(|v| v <= 1.25) && l.achieved < 1.0)
                },
            ),
            None => ("-".to_owned(), "-"),
        };
        if !goal3 {
            misses.push(floor_miss(case, r));
        }
        if !case.bursty && goal4 == mark(false) {
            misses.push(carried_miss(case, r));
        }
        let _ = writeln!(
            out,
            "| {} | {:.3} | {} | {:.1} | {} | {} | {alone} | {goal4} |",
            case.name,
            f.achieved,
            f.alone.map_or("-".to_owned(), |a| format!("{a:.3}")),
            f.pod_hours,
            hpa_text(f.hpa),
            mark(goal3),
        );
    }
    if !misses.is_empty() {
        out.push_str("\n**Why the misses:**\n");
        for m in &misses {
            let _ = writeln!(out, "- {m}");
        }
    }
    out.push('\n');
    out
}

/// Goal 2 missed: by how much, and why a burst trace ties.
fn cost_miss(case: &Case, l: &Level) -> String {
    let t = l.hpa.expect("a tuned HPA to compare with");
    let more = 100.0 * (l.pod_hours / t.pod_hours - 1.0);
    let why = if case.bursty {
        "bursts no season announces leave the seasonal forecast nothing to add, so its calibrated headroom buys what the HPA's lower target buys, at the same price"
    } else {
        "the seasonal forecast errs as much as the HPA's lag costs here"
    };
    format!(
        "{}, goal 2 at {} %: {:.1} against {:.1} pod-hours ({more:+.2} %): {why}.",
        case.name, l.stated, l.pod_hours, t.pod_hours
    )
}

/// Goal 3 missed: over the share, over the tuned HPA's cost, or both.
fn floor_miss(case: &Case, r: &RiskOutcome) -> String {
    let f = &r.floor;
    let mut why = Vec::new();
    if f.achieved > 1.0 {
        why.push(format!(
            "{:.3} % short: the calibration tracks the stated share, it does not bound it (alone it lands within about a tenth of it either side, table above)",
            f.achieved
        ));
    }
    if let Some(t) = f.hpa.filter(|t| f.pod_hours > t.pod_hours) {
        let more = 100.0 * (f.pod_hours / t.pod_hours - 1.0);
        why.push(if r.hpa_short {
            format!(
                "{more:+.1} % pod-hours against the HPA alone at a {:.2} target: a floor on a forecast that does not see the bursts coming reaches 1 % at a higher price than a lower HPA target does",
                t.target
            )
        } else {
            format!(
                "{more:+.1} % pod-hours against the HPA alone at a {:.2} target: the HPA at its 80 % target is never short here, so the floor, which only ever adds pods, has nothing to add (the recommendation alone is short {:.1} % of the time, its headroom at its least; the pair costs what the HPA alone does) and cannot give back what the 80 % target spends beyond never short",
                t.target,
                f.alone.unwrap_or(f64::NAN)
            )
        });
    }
    format!("{}, goal 3: {}.", case.name, why.join("; "))
}

/// Goal 4 missed: stating 1 % is not a promise of under 1 %; what stating
/// 0.5 % gives.
fn carried_miss(case: &Case, r: &RiskOutcome) -> String {
    let at = |stated: f64| r.alone.iter().find(|l| l.stated == stated);
    let (Some(one), Some(half)) = (at(1.0), at(0.5)) else {
        return format!("{}, goal 4: no run at 1 % and 0.5 %.", case.name);
    };
    format!(
        "{}, goal 4: stating 1 % it is short {:.3} % of the time, which is what it was asked for, not under 1 %; stating 0.5 % it is short {:.3} % at {:.2}× the oracle's pod-hours, which meets the goal.",
        case.name,
        one.achieved,
        half.achieved,
        half.vs_oracle.unwrap_or(f64::NAN)
    )
}
