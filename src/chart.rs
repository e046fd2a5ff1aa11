//! The SVG chart of a simulation: one panel per run, sharing a time axis,
//! with demand (in pods' worth), ready capacity and replicas, and the
//! policy's time windows shaded.

use chrono::{DateTime, Utc};
use plotters::prelude::*;

use crate::simulate::Simulation;

/// Width of the chart in pixels.
const WIDTH: u32 = 1200;
/// Height of one panel in pixels.
const PANEL: u32 = 260;
/// Points per series at most: more than the pixels across, so nothing is
/// lost to the eye, and a month-long run still makes a small file.
const MAX_POINTS: usize = 1200;

/// Why the chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("drawing the chart: {0}")]
pub struct ChartError(String);

fn err<E: std::fmt::Display>(e: E) -> ChartError {
    ChartError(e.to_string())
}

/// Renders the simulation as an SVG document.
pub fn svg(sim: &Simulation, title: &str) -> Result<String, ChartError> {
    let mut out = String::new();
    let panels = sim.runs.len().max(1) as u32;
    {
        let root =
            SVGBackend::with_string(&mut out, (WIDTH, 60 + PANEL * panels)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (header, body) = root.split_vertically(60);
        header
            .titled(title, ("sans-serif", 22))
            .map_err(err)?
            .draw(&Text::new(
                "grey: demand in pods' worth   blue: ready capacity   orange: replicas   shaded: time window active",
                (10, 10),
                ("sans-serif", 14),
            ))
            .map_err(err)?;
        let (start, end) = match (sim.times.first(), sim.times.last()) {
            (Some(s), Some(e)) if s < e => (*s, *e),
            _ => return Ok(String::new()),
        };
        let top = sim
            .runs
            .iter()
            .flat_map(|r| r.replicas.iter().copied())
            .map(f64::from)
            .chain(sim.demand.iter().map(|d| d / sim.capacity))
            .fold(1.0f64, f64::max)
            * 1.1;
        for (panel, run) in body
            .split_evenly((panels as usize, 1))
            .iter()
            .zip(&sim.runs)
        {
            let mut chart = ChartBuilder::on(panel)
                .caption(&run.actor, ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(50)
                .build_cartesian_2d(start..end, 0.0..top)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_labels(8)
                .x_label_formatter(&|t: &DateTime<Utc>| t.format("%m-%d %H:%M").to_string())
                .y_desc("pods")
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(err)?;
            shade_windows(&mut chart, sim, top)?;
            let demand: Vec<f64> = sim.demand.iter().map(|d| d / sim.capacity).collect();
            let demand = bucketed(&sim.times, &demand, f64::max);
            chart
                .draw_series(AreaSeries::new(
                    demand,
                    0.0,
                    RGBColor(200, 200, 200).mix(0.7),
                ))
                .map_err(err)?;
            // Ready takes each bucket's minimum and replicas its maximum, so
            // a short dip in capacity or a short burst of pods stays visible.
            let ready: Vec<f64> = run.ready.iter().map(|r| f64::from(*r)).collect();
            let ready = bucketed(&sim.times, &ready, f64::min);
            chart
                .draw_series(LineSeries::new(ready, BLUE.stroke_width(1)))
                .map_err(err)?;
            let replicas: Vec<f64> = run.replicas.iter().map(|r| f64::from(*r)).collect();
            let replicas = bucketed(&sim.times, &replicas, f64::max);
            chart
                .draw_series(LineSeries::new(
                    replicas,
                    RGBColor(230, 120, 20).stroke_width(1),
                ))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(out)
}

/// Folds a series into at most [`MAX_POINTS`] buckets with `fold`.
fn bucketed(
    times: &[DateTime<Utc>],
    values: &[f64],
    fold: fn(f64, f64) -> f64,
) -> Vec<(DateTime<Utc>, f64)> {
    let size = times.len().div_ceil(MAX_POINTS).max(1);
    times
        .chunks(size)
        .zip(values.chunks(size))
        .map(|(t, v)| (t[0], v.iter().copied().reduce(fold).unwrap_or(0.0)))
        .collect()
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<
        plotters::coord::types::RangedDateTime<DateTime<Utc>>,
        plotters::coord::types::RangedCoordf64,
    >,
>;

fn shade_windows(chart: &mut Chart<'_, '_>, sim: &Simulation, top: f64) -> Result<(), ChartError> {
    let mut spans = Vec::new();
    let mut open: Option<DateTime<Utc>> = None;
    for (t, active) in sim.times.iter().zip(&sim.windows) {
        match (active, open) {
            (true, None) => open = Some(*t),
            (false, Some(from)) => {
                spans.push((from, *t));
                open = None;
            }
            _ => {}
        }
    }
    if let (Some(from), Some(last)) = (open, sim.times.last()) {
        spans.push((from, *last));
    }
    chart
        .draw_series(spans.into_iter().map(|(a, b)| {
            Rectangle::new(
                [(a, 0.0), (b, top)],
                RGBColor(120, 200, 120).mix(0.15).filled(),
            )
        }))
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::{
        policy::{Policy, keys},
        simulate::{Actor, Config, Trace, Workload, simulate},
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
        };
        let workloads = [Workload {
            name: "web".into(),
            policy,
        }];
        let sim = simulate(&trace, &workloads, &config);
        assert!(sim.windows[2] && !sim.windows[5]);
        let svg = svg(&sim, "spike").unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..50.min(svg.len())]);
        for actor in ["hpa", "governor", "hpa+governor", "oracle"] {
            assert!(
                svg.contains(&format!("\n{actor}\n")),
                "no panel for {actor}"
            );
        }
    }
}
