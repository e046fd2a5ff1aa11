//! SVG charts on a shared time axis: panels of series over time, with spans
//! shaded (a policy's time windows) and spans marked (under-provisioned
//! time). `simulate` draws one panel per run ([`svg`]), or with several
//! `--risk` values a cost/risk chart ([`cost_risk_svg`]);
//! a recorded cluster run draws its timeline through the same [`Figure`],
//! so a chart of the simulator and one of the cluster read alike. The time
//! axis is labelled on the wall clock of a zone, with the date.

mod cost;
mod simulation;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use plotters::prelude::*;

pub use plotters::style::RGBColor;

pub(crate) use self::cost::{Curve, cost_risk_svg};
pub use self::simulation::{View, svg};

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
    /// The zone the time axis is labelled in; UTC when `None`.
    pub zone: Option<Tz>,
}

/// One panel: series over time sharing the figure's time axis.
#[derive(Debug, Clone, Default)]
pub struct Panel {
    /// Shown above the panel.
    pub caption: String,
    /// Intervals shaded behind the series (time windows).
    pub spans: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Intervals marked in red along the bottom (under-provisioned time).
    pub marks: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Drawn in order, so later series lie on top.
    pub series: Vec<Series>,
}

/// One series of a panel.
#[derive(Debug, Clone)]
pub struct Series {
    /// How it is drawn.
    pub(crate) style: Style,
    pub(crate) color: RGBColor,
    /// Its points, in time order.
    pub points: Vec<(DateTime<Utc>, f64)>,
}

/// How a [`Series`] is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// The step, band and mark styles draw the recorded HPA runs (tests/).
#[cfg_attr(not(feature = "test-support"), allow(dead_code))]
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
            // The date on every label once a range spans days; the zone in
            // the axis's name.
            // Eight labels: by the date alone only when they are a day or
            // more apart.
            let format = if span > chrono::Duration::days(8) {
                "%a %Y-%m-%d"
            } else if span > chrono::Duration::hours(6) {
                "%a %m-%d %H:%M"
            } else {
                "%m-%d %H:%M:%S"
            };
            let zone = self.zone.unwrap_or(Tz::UTC);
            let axis = format!("time ({zone})");
            let label = |t: &DateTime<Utc>| t.with_timezone(&zone).format(format).to_string();
            for (area, panel) in body
                .split_evenly((panels as usize, 1))
                .iter()
                .zip(&self.panels)
            {
                let mut chart = ChartBuilder::on(area)
                    .caption(&panel.caption, ("sans-serif", 16))
                    .margin(8)
                    .x_label_area_size(40)
                    .y_label_area_size(50)
                    .build_cartesian_2d(start..end, 0.0..top)
                    .map_err(err)?;
                chart
                    .configure_mesh()
                    .x_labels(8)
                    .x_label_formatter(&label)
                    .x_desc(axis.as_str())
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
                // A strip along the bottom, over the series: under-provisioned
                // time stays visible however little of the chart it is.
                chart
                    .draw_series(panel.marks.iter().map(|(a, b)| {
                        Rectangle::new([(*a, 0.0), (*b, top * 0.04)], RED.mix(0.9).filled())
                    }))
                    .map_err(err)?;
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

/// The colour of replica counts in every chart.
pub const ORANGE: RGBColor = RGBColor(230, 120, 20);

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

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    #[test]
    fn a_figure_draws_steps_dots_and_crosses_on_one_axis() {
        let start: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let at = |s: i64| start + Duration::seconds(s);
        let figure = Figure {
            title: "timeline".into(),
            legend: "how to read it".into(),
            zone: None,
            panels: vec![Panel {
                caption: "scenario".into(),
                spans: vec![(at(10), at(20))],
                marks: vec![(at(12), at(14))],
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
