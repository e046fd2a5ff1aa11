//! The cost/risk chart `simulate --risk 0.5%,1%,2%` draws: pod-hours
//! against the share of time under-provisioned, one curve per actor over
//! the stated risks, and the HPA over its targets, the baseline a user
//! would otherwise tune. A point lower and further left is cheaper and
//! safer; where the governor's curve lies below the HPA's, it pays less for
//! the same shortfall.

use plotters::prelude::*;

use super::{ChartError, WIDTH, err};

/// One curve: its name and its points, each (under-provisioned time in
/// percent, pod-hours, label).
#[derive(Debug, Clone)]
pub(crate) struct Curve {
    /// In the legend: `governor`, `hpa (by target)`.
    pub(crate) name: String,
    /// Its points, drawn in order.
    pub(crate) points: Vec<(f64, f64, String)>,
}

/// Colours of the curves, in order.
const COLORS: [RGBColor; 4] = [
    RGBColor(30, 90, 200),
    RGBColor(230, 120, 20),
    RGBColor(120, 120, 120),
    RGBColor(40, 160, 80),
];

/// Height of the chart in pixels.
const HEIGHT: u32 = 640;

/// Renders the curves as an SVG document; an empty string when there is no
/// point to draw.
pub(crate) fn cost_risk_svg(title: &str, curves: &[Curve]) -> Result<String, ChartError> {
    let all = || curves.iter().flat_map(|c| &c.points);
    if all().next().is_none() {
        return Ok(String::new());
    }
    let x_top = all().map(|p| p.0).fold(0.0f64, f64::max).max(0.1) * 1.15;
    let (low, high) = all().fold((f64::INFINITY, 0.0f64), |(l, h), p| {
        (l.min(p.1), h.max(p.1))
    });
    let pad = ((high - low) * 0.1).max(high * 0.02).max(0.5);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_top, (low - pad).max(0.0)..high + pad)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("time under-provisioned (%)")
            .y_desc("pod-hours")
            .draw()
            .map_err(err)?;
        for (curve, color) in curves.iter().zip(COLORS.iter().cycle()) {
            let color = *color;
            let line = curve.points.iter().map(|p| (p.0, p.1));
            chart
                .draw_series(LineSeries::new(line, color.stroke_width(2)))
                .map_err(err)?
                .label(curve.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(curve.points.iter().map(|p| {
                    EmptyElement::at((p.0, p.1))
                        + Circle::new((0, 0), 4, color.filled())
                        + Text::new(p.2.clone(), (6, -14), ("sans-serif", 13))
                }))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_curve_and_point_is_drawn_and_labelled() {
        let curves = [
            Curve {
                name: "governor (by risk)".into(),
                points: vec![(0.6, 120.0, "0.5 %".into()), (1.1, 110.0, "1 %".into())],
            },
            Curve {
                name: "hpa (by target)".into(),
                points: vec![(0.9, 150.0, "60 %".into()), (2.5, 130.0, "80 %".into())],
            },
        ];
        let svg = cost_risk_svg("web over trace.csv", &curves).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        for text in [
            "governor (by risk)",
            "hpa (by target)",
            "0.5 %",
            "80 %",
            "pod-hours",
            "time under-provisioned (%)",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        assert_eq!(svg.matches("<circle").count(), 4);
        assert_eq!(cost_risk_svg("empty", &[]).unwrap(), "");
    }
}
