//! SVG charts on a shared time axis: panels of series over time, with spans
//! shaded (a policy's time windows). `simulate` draws one panel per run
//! ([`svg`]); a recorded cluster run draws its timeline through the same
//! [`Figure`], so a chart of the simulator and one of the cluster read alike.

use chrono::{DateTime, Utc};
use plotters::prelude::*;

pub use plotters::style::RGBColor;

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

/// A chart: a title, a line saying how to read it, and panels stacked on
/// one time axis.
#[derive(Debug, Clone, Default)]
pub struct Figure {
    /// Shown on top.
    pub title: String,
    /// How to read the colours, under the title.
    pub legend: String,
    /// One panel each, top to bottom.
    pub panels: Vec<Panel>,
}

/// One panel: series over time sharing the figure's time axis.
#[derive(Debug, Clone, Default)]
pub struct Panel {
    /// Shown above the panel.
    pub caption: String,
    /// Intervals shaded behind the series (time windows).
    pub spans: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Drawn in order, so later series lie on top.
    pub series: Vec<Series>,
}

/// One series of a panel.
#[derive(Debug, Clone)]
pub struct Series {
    /// How it is drawn.
    pub style: Style,
    /// Its colour.
    pub color: RGBColor,
    /// Its points, in time order.
    pub points: Vec<(DateTime<Utc>, f64)>,
}

/// How a [`Series`] is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Filled down to zero, half transparent: demand.
    Area,
    /// [`Style::Area`] holding each value until the next point: a metric
    /// read at intervals.
    StepArea,
    /// Straight segments between points.
    Line,
    /// Holds each value until the next point: a count that jumps.
    Step,
    /// [`Style::Step`] as a wide translucent band, so a line drawn on top
    /// of it stays visible: a bound.
    Band,
    /// A circle on each point: discrete decisions.
    Dots,
    /// A cross on each point: what was asked of a decision.
    Crosses,
}

impl Series {
    /// A series from points.
    pub fn new(style: Style, color: RGBColor, points: Vec<(DateTime<Utc>, f64)>) -> Series {
        Series {
            style,
            color,
            points,
        }
    }
}

impl Figure {
    /// Renders the figure as an SVG document; an empty string when there is
    /// no time range to draw.
    pub fn svg(&self) -> Result<String, ChartError> {
        let points = || {
            self.panels
                .iter()
                .flat_map(|p| &p.series)
                .flat_map(|s| &s.points)
        };
        let (Some(start), Some(end)) = (points().map(|p| p.0).min(), points().map(|p| p.0).max())
        else {
            return Ok(String::new());
        };
        if start >= end {
            return Ok(String::new());
        }
        let top = points().map(|p| p.1).fold(1.0f64, f64::max) * 1.1;
        let panels = self.panels.len().max(1) as u32;
        let mut out = String::new();
        {
            let root =
                SVGBackend::with_string(&mut out, (WIDTH, 60 + PANEL * panels)).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let (header, body) = root.split_vertically(60);
            header
                .titled(&self.title, ("sans-serif", 22))
                .map_err(err)?
                .draw(&Text::new(
                    self.legend.as_str(),
                    (10, 10),
                    ("sans-serif", 14),
                ))
                .map_err(err)?;
            let span = end - start;
            let format = if span > chrono::Duration::hours(6) {
                "%m-%d %H:%M"
            } else {
                "%H:%M:%S"
            };
            for (area, panel) in body
                .split_evenly((panels as usize, 1))
                .iter()
                .zip(&self.panels)
            {
                let mut chart = ChartBuilder::on(area)
                    .caption(&panel.caption, ("sans-serif", 16))
                    .margin(8)
                    .x_label_area_size(30)
                    .y_label_area_size(50)
                    .build_cartesian_2d(start..end, 0.0..top)
                    .map_err(err)?;
                chart
                    .configure_mesh()
                    .x_labels(8)
                    .x_label_formatter(&|t: &DateTime<Utc>| t.format(format).to_string())
                    .y_desc("pods")
                    .light_line_style(WHITE.mix(0.0))
                    .draw()
                    .map_err(err)?;
                chart
                    .draw_series(panel.spans.iter().map(|(a, b)| {
                        Rectangle::new(
                            [(*a, 0.0), (*b, top)],
                            RGBColor(120, 200, 120).mix(0.15).filled(),
                        )
                    }))
                    .map_err(err)?;
                for series in &panel.series {
                    draw(&mut chart, series)?;
                }
            }
            root.present().map_err(err)?;
        }
        Ok(out)
    }
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<
        plotters::coord::types::RangedDateTime<DateTime<Utc>>,
        plotters::coord::types::RangedCoordf64,
    >,
>;

fn draw(chart: &mut Chart<'_, '_>, series: &Series) -> Result<(), ChartError> {
    let color = series.color;
    let points = series.points.iter().copied();
    match series.style {
        Style::Area => chart
            .draw_series(AreaSeries::new(points, 0.0, color.mix(0.7)))
            .map(drop),
        Style::StepArea => chart
            .draw_series(AreaSeries::new(steps(&series.points), 0.0, color.mix(0.7)))
            .map(drop),
        Style::Line => chart
            .draw_series(LineSeries::new(points, color.stroke_width(1)))
            .map(drop),
        Style::Step => chart
            .draw_series(LineSeries::new(
                steps(&series.points),
                color.stroke_width(2),
            ))
            .map(drop),
        Style::Band => chart
            .draw_series(LineSeries::new(
                steps(&series.points),
                color.mix(0.35).stroke_width(8),
            ))
            .map(drop),
        Style::Dots => chart
            .draw_series(points.map(|p| Circle::new(p, 3, color.filled())))
            .map(drop),
        Style::Crosses => chart
            .draw_series(points.map(|p| Cross::new(p, 4, color.stroke_width(1))))
            .map(drop),
    }
    .map_err(err)
}

/// A value held until the next point: each jump drawn as a vertical edge.
fn steps(points: &[(DateTime<Utc>, f64)]) -> Vec<(DateTime<Utc>, f64)> {
    let mut out = Vec::with_capacity(points.len() * 2);
    for (i, p) in points.iter().enumerate() {
        if i > 0 {
            out.push((p.0, points[i - 1].1));
        }
        out.push(*p);
    }
    out
}

/// Renders the simulation as an SVG document: one panel per run with demand
/// in pods' worth, ready capacity and replicas, the first workload's time
/// windows shaded.
pub fn svg(sim: &Simulation, title: &str) -> Result<String, ChartError> {
    let spans = window_spans(sim);
    let demand: Vec<f64> = sim.demand.iter().map(|d| d / sim.capacity).collect();
    let demand = bucketed(&sim.times, &demand, f64::max);
    let panels = sim
        .runs
        .iter()
        .map(|run| {
            // Ready takes each bucket's minimum and replicas its maximum, so
            // a short dip in capacity or a short burst of pods stays visible.
            let ready: Vec<f64> = run.ready.iter().map(|r| f64::from(*r)).collect();
            let replicas: Vec<f64> = run.replicas.iter().map(|r| f64::from(*r)).collect();
            Panel {
                caption: run.actor.clone(),
                spans: spans.clone(),
                series: vec![
                    Series::new(Style::Area, RGBColor(200, 200, 200), demand.clone()),
                    Series::new(Style::Line, BLUE, bucketed(&sim.times, &ready, f64::min)),
                    Series::new(
                        Style::Line,
                        ORANGE,
                        bucketed(&sim.times, &replicas, f64::max),
                    ),
                ],
            }
        })
        .collect();
    Figure {
        title: title.to_owned(),
        legend: "grey: demand in pods' worth   blue: ready capacity   orange: replicas   shaded: time window active".to_owned(),
        panels,
    }
    .svg()
}

/// The colour of replica counts in every chart.
pub const ORANGE: RGBColor = RGBColor(230, 120, 20);

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

/// The intervals during which a time window of the first workload is active.
fn window_spans(sim: &Simulation) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
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
        let svg = svg(&sim, "spike").unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..50.min(svg.len())]);
        for actor in ["hpa", "governor", "hpa+governor", "oracle"] {
            assert!(
                svg.contains(&format!("\n{actor}\n")),
                "no panel for {actor}"
            );
        }
    }

    #[test]
    fn a_figure_draws_steps_dots_and_crosses_on_one_axis() {
        let start: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let at = |s: i64| start + Duration::seconds(s);
        let figure = Figure {
            title: "timeline".into(),
            legend: "how to read it".into(),
            panels: vec![Panel {
                caption: "scenario".into(),
                spans: vec![(at(10), at(20))],
                series: vec![
                    Series::new(
                        Style::Step,
                        ORANGE,
                        vec![(at(0), 2.0), (at(5), 4.0), (at(30), 6.0)],
                    ),
                    Series::new(Style::Dots, BLUE, vec![(at(5), 4.0), (at(30), 6.0)]),
                    Series::new(Style::Crosses, RED, vec![(at(5), 10.0)]),
                ],
            }],
        };
        let svg = figure.svg().unwrap();
        assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
        // A step from 2 to 4 at 5 s is drawn as a vertical edge: two points
        // at the same x.
        assert_eq!(steps(&figure.panels[0].series[0].points).len(), 5);
        assert!(
            svg.contains("how to read it") && svg.contains("10:00:"),
            "{svg}"
        );
        // Nothing to draw is not an error.
        assert_eq!(Figure::default().svg().unwrap(), "");
    }
}
