//! Two simple controls the seasonal strategy must beat at equal cost: the
//! HPA alone at a lower target utilisation, and the HPA under a floor at
//! the highest demand of the last 10 minutes divided by a target. Each
//! control's setting is bisected until it spends the pod-hours
//! `hpa+governor@seasonal` spent; its under-provisioned time is then
//! compared with the seasonal policy's.

use scale_governor::{
    policy::{Policy, keys},
    simulate::{self, Actor, Config, Summary, Workload},
};

use crate::Case;

/// Bisection steps: each halves the setting's interval.
const STEPS: usize = 12;

/// One control at the seasonal policy's cost.
#[derive(Debug, Clone, Copy)]
pub struct Control {
    /// The setting it took (a target utilisation, or demand per pod).
    pub setting: f64,
    /// Its under-provisioned time, percent.
    pub under: f64,
    /// Its pod-hours.
    pub pod_hours: f64,
}

/// Both controls, and what they are compared with.
#[derive(Debug, Clone, Copy)]
pub struct Controls {
    /// `hpa+governor@seasonal`'s under-provisioned time, percent.
    pub seasonal_under: f64,
    /// Its pod-hours.
    pub seasonal_pod_hours: f64,
    /// The HPA alone at a lower target.
    pub hpa: Control,
    /// The HPA under a 10-minute-maximum floor.
    pub max10: Control,
}

/// Scores one run over the case's scoring range.
fn score(case: &Case, workloads: &[Workload], config: &Config) -> Summary {
    let sim = simulate::simulate(&case.trace, workloads, config);
    sim.summaries_between(case.scored_from, None).remove(0)
}

/// The HPA alone at `target`, with `bounds` as its `minReplicas` and
/// `maxReplicas`, scored.
pub fn hpa_at(case: &Case, bounds: &Policy, config: &Config, target: f64) -> Summary {
    let workloads = [Workload {
        name: "control".into(),
        policy: bounds.clone(),
    }];
    let config = Config {
        actors: vec![Actor::Hpa],
        hpa_target: target,
        ..config.clone()
    };
    score(case, &workloads, &config)
}

/// The setting in `[lo, hi]` whose run costs `pod_hours`, found by
/// bisection; cost falls as the setting rises.
fn matched(mut lo: f64, mut hi: f64, pod_hours: f64, run: impl Fn(f64) -> Summary) -> Control {
    let mut last = Control {
        setting: f64::NAN,
        under: f64::NAN,
        pod_hours: f64::NAN,
    };
    for _ in 0..STEPS {
        let mid = (lo + hi) / 2.0;
        let s = run(mid);
        last = Control {
            setting: mid,
            under: s.under_provisioned_time_pct,
            pod_hours: s.pod_hours,
        };
        if s.pod_hours > pod_hours {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    last
}

/// Runs both controls at the cost of `hpa+governor@seasonal` in
/// `summaries`.
pub fn run(case: &Case, seasonal: &Workload, config: &Config, summaries: &[Summary]) -> Controls {
    let ours = summaries
        .iter()
        .find(|s| s.actor == format!("hpa+governor@{}", seasonal.name))
        .expect("the seasonal policy's run");
    let bounds = [
        (
            keys::MIN_REPLICAS,
            seasonal.policy.min_replicas.unwrap_or(1).to_string(),
        ),
        (
            keys::MAX_REPLICAS,
            seasonal.policy.max_replicas.unwrap_or(500).to_string(),
        ),
    ];
    let plain =
        Policy::from_annotations(bounds.iter().map(|(k, v)| (*k, v.as_str()))).expect("the bounds");
    let hpa = matched(0.2, 0.8, ours.pod_hours, |target| {
        hpa_at(case, &plain, config, target)
    });
    let max10 = matched(0.2, 2.0, ours.pod_hours, |per_pod| {
        let recommend = format!(
            r#"{{"targetPerPod":{per_pod},"trend":"none","holdSeconds":600,"tolerance":0}}"#
        );
        let mut pairs = bounds.to_vec();
        pairs.push((keys::RECOMMEND, recommend));
        let policy = Policy::from_annotations(pairs.iter().map(|(k, v)| (*k, v.as_str())))
            .expect("the control's policy");
        let workloads = [Workload {
            name: "control".into(),
            policy,
        }];
        let config = Config {
            actors: vec![Actor::HpaGovernor],
            ..config.clone()
        };
        score(case, &workloads, &config)
    });
    Controls {
        seasonal_under: ours.under_provisioned_time_pct,
        seasonal_pod_hours: ours.pod_hours,
        hpa,
        max10,
    }
}
