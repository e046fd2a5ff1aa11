//! A simulation as a [`Figure`]: one panel per run.
//!
//! A month of 15-second ticks is far more than the pixels across, so ticks
//! are folded into buckets, and demand, ready capacity and replicas are
//! each folded the same way, by their mean: folding ready pods by their
//! minimum and demand by its maximum drew every run, the oracle's too, as
//! short of capacity. What a mean hides, under-provisioned time, is marked
//! in red along the bottom of each panel wherever any tick of a bucket was
//! short, and the caption gives its share.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use plotters::style::{BLUE, RGBColor};

use super::{ChartError, Figure, MAX_POINTS, ORANGE, Panel, Series, Style};
use crate::simulate::Simulation;

/// What part of a simulation to draw, and how to label it.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// The chart's title.
    pub title: &'a str,
    /// The zone the time axis is labelled in.
    pub zone: Tz,
    /// The first instant drawn; the start when `None`.
    pub from: Option<DateTime<Utc>>,
    /// The first instant no longer drawn; the end when `None`.
    pub to: Option<DateTime<Utc>>,
}

impl<'a> View<'a> {
    /// The whole simulation, labelled in UTC.
    #[cfg(any(test, feature = "test-support"))]
    pub fn whole(title: &'a str) -> View<'a> {
        View {
            title,
            zone: Tz::UTC,
            from: None,
            to: None,
        }
    }
}

/// Renders the simulation as an SVG document: one panel per run with demand
/// in pods' worth, ready capacity and replicas, under-provisioned time
/// marked, the first workload's time windows shaded.
pub fn svg(sim: &Simulation, view: &View<'_>) -> Result<String, ChartError> {
    let (a, b) = sim.range(view.from, view.to);
    let times = &sim.times[a..b];
    let size = times.len().div_ceil(MAX_POINTS).max(1);
    let spans = window_spans(times, &sim.windows[a..b]);
    let demand: Vec<f64> = sim.demand[a..b].iter().map(|d| d / sim.capacity).collect();
    let panels = sim
        .runs
        .iter()
        .map(|run| {
            let ready: Vec<f64> = run.ready[a..b].iter().map(|r| f64::from(*r)).collect();
            let replicas: Vec<f64> = run.replicas[a..b].iter().map(|r| f64::from(*r)).collect();
            let short: Vec<bool> = ready
                .iter()
                .zip(&demand)
                // As `summarize` counts it, in demand units.
                .map(|(r, d)| {
                    let (need, served) = (d * sim.capacity, r * sim.capacity);
                    need - served > 1e-9 * need.max(1.0)
                })
                .collect();
            let share =
                100.0 * short.iter().filter(|s| **s).count() as f64 / short.len().max(1) as f64;
            Panel {
                caption: format!(
                    "{} ({share:.2} % of the time drawn under-provisioned)",
                    run.actor
                ),
                spans: spans.clone(),
                marks: marks(times, &short, size),
                series: vec![
                    Series::new(
                        Style::Area,
                        RGBColor(200, 200, 200),
                        mean(times, &demand, size),
                    ),
                    Series::new(Style::Line, BLUE, mean(times, &ready, size)),
                    Series::new(Style::Line, ORANGE, mean(times, &replicas, size)),
                ],
            }
        })
        .collect();
    let folded = if size > 1 {
        format!("   each point the mean of {size} ticks")
    } else {
        String::new()
    };
    Figure {
        title: view.title.to_owned(),
        legend: format!(
            "grey: demand in pods' worth   blue: ready capacity   orange: replicas   red: under-provisioned   shaded: time window active{folded}"
        ),
        panels,
        zone: Some(view.zone),
    }
    .svg()
}

/// The mean of each bucket of `size` ticks, at the bucket's first tick.
fn mean(times: &[DateTime<Utc>], values: &[f64], size: usize) -> Vec<(DateTime<Utc>, f64)> {
    times
        .chunks(size)
        .zip(values.chunks(size))
        .map(|(t, v)| (t[0], v.iter().sum::<f64>() / v.len().max(1) as f64))
        .collect()
}

/// The buckets of `size` ticks in which any tick was short, merged into
/// spans.
fn marks(
    times: &[DateTime<Utc>],
    short: &[bool],
    size: usize,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    let step = match times {
        [a, b, ..] => *b - *a,
        _ => chrono::Duration::seconds(1),
    };
    for (t, s) in times.chunks(size).zip(short.chunks(size)) {
        if !s.iter().any(|x| *x) {
            continue;
        }
        let (from, to) = (t[0], t[t.len() - 1] + step);
        match out.last_mut() {
            Some(last) if last.1 >= from => last.1 = to,
            _ => out.push((from, to)),
        }
    }
    out
}

/// The intervals during which a time window of the first workload is active.
fn window_spans(times: &[DateTime<Utc>], active: &[bool]) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut spans = Vec::new();
    let mut open: Option<DateTime<Utc>> = None;
    for (t, active) in times.iter().zip(active) {
        match (active, open) {
            (true, None) => open = Some(*t),
            (false, Some(from)) => {
                spans.push((from, *t));
                open = None;
            }
            _ => {}
        }
    }
    if let (Some(from), Some(last)) = (open, times.last()) {
        spans.push((from, *last));
    }
    spans
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::{
        policy::{Policy, keys},
        simulate::{Actor, Config, Interpolation, Trace, Workload, simulate},
    };

    #[test]
    fn an_svg_with_a_panel_per_run_and_windows_shaded() {
        // 10 minutes: steady 20, a spike to 60 for three minutes, back to 20.
        let start: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let values = [20.0, 20.0, 20.0, 60.0, 60.0, 60.0, 20.0, 20.0, 20.0, 20.0];
        let trace = Trace::from_points(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| (start + Duration::minutes(i as i64), *v))
                .collect(),
        )
        .unwrap();
        let policy = Policy::from_annotations([(keys::WINDOWS, "Mon 10:02-10:05 min=1")]).unwrap();
        let config = Config {
            capacity: 10.0,
            startup: Duration::seconds(60),
            tick: Duration::seconds(60),
            hpa_target: 10.0,
            tolerance: 0.1,
            actors: Actor::ALL.to_vec(),
            metric_delay: Duration::zero(),
            hpa: None,
            interpolation: Interpolation::Step,
        };
        let workloads = [Workload {
            name: "web".into(),
            policy,
        }];
        let sim = simulate(&trace, &workloads, &config);
        assert!(sim.windows[2] && !sim.windows[5]);
        let whole = svg(&sim, &View::whole("spike")).unwrap();
        assert!(
            whole.starts_with("<svg"),
            "{}",
            &whole[..50.min(whole.len())]
        );
        for actor in ["hpa", "governor", "hpa+governor"] {
            assert!(
                whole.contains(&format!("\n{actor} (")),
                "no panel for {actor}"
            );
        }
        // The HPA is short while its pods start: marked, and its share said.
        assert!(
            whole.contains("hpa (10.00 % of the time drawn under-provisioned)"),
            "{whole}"
        );
        assert!(whole.contains("oracle (0.00 % of the time drawn under-provisioned)"));
        assert!(
            whole.contains("time (UTC)") && whole.contains("11-23 10:0"),
            "{whole}"
        );
        // Zoomed in, and labelled in Berlin (UTC+1 in November).
        let view = View {
            title: "zoom",
            zone: "Europe/Berlin".parse().unwrap(),
            from: Some(start + Duration::minutes(2)),
            to: Some(start + Duration::minutes(6)),
        };
        let zoomed = svg(&sim, &view).unwrap();
        assert!(
            zoomed.contains("time (Europe/Berlin)") && zoomed.contains("11-23 11:0"),
            "{zoomed}"
        );
        assert!(
            !zoomed.contains("11-23 11:08"),
            "outside the zoom: {zoomed}"
        );
    }
}
