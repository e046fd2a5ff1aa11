//! `simulate --risk`: one stated risk overrides each policy's; several run
//! each, beside the HPA alone at several targets, so a user can draw the
//! cost/risk curve of their own trace and see what the HPA would cost for
//! the same shortfall.

use std::path::Path;

use anyhow::bail;
use chrono::{DateTime, Utc};

use crate::{
    chart::Curve,
    policy::{MAX_RISK, MIN_RISK, RiskText, keys},
    recommend::risk::percent,
    simulate::{self, Actor, Config, Simulation, Summary, Trace, Workload, relate_to_oracle},
    workload::Workload as Manifest,
};

/// A `--risk` value: a percentage from 0.1 % to 20 %, as the annotation
/// takes it.
pub(super) fn parse_risk(text: &str) -> Result<String, String> {
    let share = RiskText(text.to_owned())
        .share()
        .ok_or_else(|| format!("\"{text}\" is not a percentage, expected one like 1%"))?;
    if !(MIN_RISK..=MAX_RISK).contains(&share) {
        return Err(format!(
            "{text} is out of range, expected a percentage from 0.1% to 20%"
        ));
    }
    Ok(text.trim().to_owned())
}

/// The manifest with `risk` in its `recommend` annotation, in place of the
/// one it states or of its `errorQuantile` (risk replaces a fixed quantile;
/// the two are refused together).
pub(super) fn with_risk(manifest: &Manifest, path: &Path, risk: &str) -> anyhow::Result<Manifest> {
    let mut manifest = manifest.clone();
    let annotations = manifest.metadata.annotations.get_or_insert_default();
    let Some(text) = annotations.get(keys::RECOMMEND) else {
        bail!(
            "--risk: {} has no {} annotation to state a risk in",
            path.display(),
            keys::RECOMMEND
        );
    };
    let mut config: serde_json::Value = match serde_json::from_str(text) {
        Ok(config) => config,
        // Left as it is, for the policy's own error to name the position.
        Err(_) => return Ok(manifest),
    };
    if let Some(fields) = config.as_object_mut() {
        fields.remove("errorQuantile");
        fields.insert("risk".into(), risk.into());
    }
    annotations.insert(keys::RECOMMEND.to_owned(), config.to_string());
    Ok(manifest)
}

/// The runs of a sweep: their figures, one curve per actor, and one of the
/// simulations for the table's header.
pub(super) struct Sweep {
    pub(super) summaries: Vec<Summary>,
    pub(super) curves: Vec<Curve>,
    pub(super) last: Simulation,
}

/// Runs the governed actors once per risk, the HPA alone once per target
/// (a share of capacity), and the oracle once; scored from `scored`.
pub(super) fn sweep(
    trace: &Trace,
    by_risk: &[(String, Vec<Workload>)],
    targets: &[f64],
    config: &Config,
    scored: Option<DateTime<Utc>>,
) -> Sweep {
    let (mut summaries, mut curves) = (Vec::new(), Vec::<Curve>::new());
    let mut point = |s: &mut Summary, curve: String, label: String, suffix: String| {
        let at = (s.under_provisioned_time_pct, s.pod_hours, label);
        match curves.iter_mut().find(|c| c.name == curve) {
            Some(c) => c.points.push(at),
            None => curves.push(Curve {
                name: curve,
                points: vec![at],
            }),
        }
        s.actor = format!("{} {suffix}", s.actor);
    };
    let governed: Vec<Actor> = config
        .actors
        .iter()
        .copied()
        .filter(|a| matches!(a, Actor::Governor | Actor::HpaGovernor))
        .collect();
    let mut last = None;
    for (risk, workloads) in by_risk.iter().filter(|_| !governed.is_empty()) {
        let runs = Config {
            actors: governed.clone(),
            ..config.clone()
        };
        let sim = simulate::simulate(trace, workloads, &runs);
        for mut s in sim.summaries_between(scored, None) {
            let curve = format!("{} (by risk)", s.actor);
            point(&mut s, curve, risk.clone(), format!("risk {risk}"));
            summaries.push(s);
        }
        last = Some(sim);
    }
    let workloads = by_risk.first().map_or(&[][..], |(_, w)| w.as_slice());
    for target in targets
        .iter()
        .filter(|_| config.actors.contains(&Actor::Hpa))
    {
        let runs = Config {
            actors: vec![Actor::Hpa],
            hpa_target: config.capacity * target,
            ..config.clone()
        };
        let sim = simulate::simulate(trace, workloads, &runs);
        for mut s in sim.summaries_between(scored, None) {
            let curve = format!("{} (by target)", s.actor);
            let label = percent(*target);
            point(&mut s, curve, label.clone(), format!("target {label}"));
            summaries.push(s);
        }
        last = Some(sim);
    }
    if config.actors.contains(&Actor::Oracle) || last.is_none() {
        let runs = Config {
            actors: vec![Actor::Oracle],
            ..config.clone()
        };
        let sim = simulate::simulate(trace, &[], &runs);
        summaries.extend(sim.summaries_between(scored, None));
        last = Some(sim);
    }
    relate_to_oracle(&mut summaries);
    Sweep {
        summaries,
        curves,
        last: last.expect("the oracle runs when nothing else does"),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::{policy::Policy, simulate::Interpolation};

    /// Two days of 5-minute bins, 40 pods' worth, each bin off by up to a
    /// fifth (a fixed pattern, the same on every run).
    fn noisy() -> Trace {
        let t0: DateTime<Utc> = "2026-01-05T00:00:00Z".parse().unwrap();
        let points = (0..576)
            .map(|i: i64| {
                let wobble = ((i * 7919) % 41) as f64 / 20.0 - 1.0;
                (t0 + Duration::minutes(5 * i), 40.0 * (1.0 + 0.2 * wobble))
            })
            .collect();
        Trace::from_points(points).unwrap()
    }

    fn at(risk: &str) -> (String, Vec<Workload>) {
        let recommend = format!(
            r#"{{"targetPerPod":1,"leadSeconds":120,"holdSeconds":0,"trend":"none","risk":"{risk}"}}"#
        );
        let policy = Policy::from_annotations([(keys::RECOMMEND, recommend.as_str())]).unwrap();
        let workloads = vec![Workload {
            name: "web".into(),
            policy,
        }];
        (risk.to_owned(), workloads)
    }

    #[test]
    fn a_sweep_runs_each_risk_and_the_hpa_at_each_target_and_charts_them() {
        let config = Config {
            capacity: 1.0,
            startup: Duration::seconds(90),
            tick: Duration::seconds(15),
            hpa_target: 0.8,
            tolerance: 0.1,
            actors: Actor::ALL.to_vec(),
            metric_delay: Duration::seconds(30),
            hpa: None,
            interpolation: Interpolation::Linear,
        };
        let trace = noisy();
        let scored = Some(trace.start() + Duration::hours(6));
        let sweep = sweep(&trace, &[at("1%"), at("10%")], &[0.6, 0.9], &config, scored);
        let actors: Vec<&str> = sweep.summaries.iter().map(|s| s.actor.as_str()).collect();
        assert_eq!(
            actors,
            [
                "governor risk 1%",
                "hpa+governor risk 1%",
                "governor risk 10%",
                "hpa+governor risk 10%",
                "hpa target 60 %",
                "hpa target 90 %",
                "oracle"
            ]
        );
        let by = |name: &str| sweep.summaries.iter().find(|s| s.actor == name).unwrap();
        // A looser risk is short more often and pays less.
        let (tight, loose) = (by("governor risk 1%"), by("governor risk 10%"));
        assert!(
            tight.under_provisioned_time_pct < loose.under_provisioned_time_pct
                && tight.pod_hours > loose.pod_hours,
            "{tight:?} {loose:?}"
        );
        // The governor alone runs on its recommendation: the two shares
        // are one. Under the HPA the floor alone is short at least as often
        // as the pair; the HPA alone has no recommendation.
        assert_eq!(
            tight.recommendation_under_time_pct,
            Some(tight.under_provisioned_time_pct)
        );
        let floor = by("hpa+governor risk 10%");
        assert!(floor.recommendation_under_time_pct.unwrap() >= floor.under_provisioned_time_pct);
        assert_eq!(by("hpa target 60 %").recommendation_under_time_pct, None);
        assert!(sweep.summaries.iter().all(|s| s.cost_vs_oracle.is_some()));
        let curves: Vec<(&str, usize)> = sweep
            .curves
            .iter()
            .map(|c| (c.name.as_str(), c.points.len()))
            .collect();
        assert_eq!(
            curves,
            [
                ("governor (by risk)", 2),
                ("hpa+governor (by risk)", 2),
                ("hpa (by target)", 2)
            ]
        );
        assert!(
            crate::chart::cost_risk_svg("web", &sweep.curves)
                .unwrap()
                .contains("hpa (by target)")
        );
    }

    #[test]
    fn a_risk_is_a_percentage_in_range_and_replaces_the_quantile() {
        assert_eq!(parse_risk(" 1% ").unwrap(), "1%");
        assert_eq!(parse_risk("0.5 %").unwrap(), "0.5 %");
        assert!(parse_risk("1").unwrap_err().contains("not a percentage"));
        assert!(parse_risk("25%").unwrap_err().contains("out of range"));
        assert!(parse_risk("0.05%").unwrap_err().contains("out of range"));
        let text = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    scale-governor.io/recommend: '{"targetPerPod":1,"trend":"seasonal","errorQuantile":0.9}'
"#;
        let path = Path::new("web.yaml");
        let manifest = Manifest::from_manifest(text).unwrap();
        let policy = with_risk(&manifest, path, "2%").unwrap().policy().unwrap();
        let config = policy.recommend.unwrap();
        assert_eq!((config.risk(), config.error_quantile), (Some(0.02), None));
        let bare = Manifest::from_manifest("kind: Deployment\nmetadata: {name: web}").unwrap();
        let err = with_risk(&bare, path, "1%").unwrap_err().to_string();
        assert!(
            err.contains("web.yaml has no scale-governor.io/recommend"),
            "{err}"
        );
    }
}
