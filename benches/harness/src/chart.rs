//! The latency chart of `socklab-bench compare`, `latency.svg`: the p50, p90, p99 and p99.9
//! of the ack round trip for every system, with the server otherwise idle and during the
//! fan-out (figure 5), as grouped bars on a log scale. The table of `report.rs` shows p50
//! and p99 only; the chart shows how the tail grows.
//!
//! Drawn with plotters' SVG backend: the text goes into the SVG as text, laid out by
//! whatever shows it, so no font is needed here.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::compare::{Figure, Results, System, QUANTILES};
use crate::Res;

const WIDTH: u32 = 1640;
const HEIGHT: u32 = 440;

fn color(s: System) -> RGBColor {
    match s {
        System::Limit => RGBColor(0x8c, 0x8c, 0x8c),
        System::Socklab => RGBColor(0xd9, 0x62, 0x2b),
        System::SocketIo => RGBColor(0x3b, 0x6f, 0xb6),
        System::SocklabSio => RGBColor(0x2e, 0x9e, 0x6b),
        System::SocketIoSio => RGBColor(0x6a, 0x8f, 0xc8),
        System::SocketioxideSio => RGBColor(0x7d, 0xb8, 0x8a),
    }
}

/// `v` microseconds as a short label with its unit: `38 µs`, `1.2 ms`, `15 ms`, `2.8 s`.
fn short(v: f64) -> String {
    let (x, unit) = if v >= 1e6 {
        (v / 1e6, "s")
    } else if v >= 1e3 {
        (v / 1e3, "ms")
    } else {
        (v, "µs")
    };
    if x >= 10.0 || x == x.round() {
        format!("{x:.0} {unit}")
    } else {
        format!("{x:.1} {unit}")
    }
}

/// One half of the chart: a title, the figure for quantile `i`, the systems drawn.
type Panel = (&'static str, fn(usize) -> Figure, &'static [System]);

/// Every system of the run: the main table's, then the three servers of the Socket.IO wire
/// loaded by the Rust generator (`sio_compare.rs`), in the colours of their kin.
const PANELS: [Panel; 2] = [
    (
        "ack round trip, server otherwise idle (limit: raw ping-pong)",
        Figure::RoundTripUs,
        &[
            System::Limit,
            System::Socklab,
            System::SocketIo,
            System::SocklabSio,
            System::SocketIoSio,
            System::SocketioxideSio,
        ],
    ),
    (
        "ack round trip during the fan-out (figure 5)",
        Figure::LoadUs,
        &[
            System::Socklab,
            System::SocketIo,
            System::SocklabSio,
            System::SocketIoSio,
            System::SocketioxideSio,
        ],
    ),
];

fn median(r: &Results, s: System, f: Figure) -> Option<f64> {
    r.get(s, f).map(|(m, _, _)| m).filter(|v| *v > 0.0)
}

/// The y axis: whole decades around every value drawn (10 µs to 1 ms when there are none).
fn decades(r: &Results) -> (f64, f64) {
    let values: Vec<f64> = r
        .values
        .keys()
        .filter(|(_, f)| matches!(f, Figure::RoundTripUs(_) | Figure::LoadUs(_)))
        .filter_map(|&(s, f)| median(r, s, f))
        .collect();
    if values.is_empty() {
        return (10.0, 1000.0);
    }
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    let lo_exp = lo.log10().floor() as i32;
    let hi_exp = (hi.log10().ceil() as i32).max(lo_exp + 1);
    (10f64.powi(lo_exp), 10f64.powi(hi_exp))
}

/// The chart as an SVG document.
pub fn svg(r: &Results) -> Res<String> {
    let (lo, hi) = decades(r);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(
            "Round-trip latency (log scale; median of the repetitions; lower is better)",
            ("sans-serif", 16),
        )?;
        let halves = root.split_evenly((1, 2));
        for (p, (area, (title, figure, systems))) in halves.iter().zip(PANELS).enumerate() {
            let groups = QUANTILES.len() as f64;
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 13))
                .margin(12)
                .x_label_area_size(28)
                .y_label_area_size(60)
                .build_cartesian_2d(-0.5..groups - 0.5, (lo..hi).log_scale())?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(QUANTILES.len())
                .x_label_formatter(&|x| {
                    // Labels only at the groups' centres, 0 to 3.
                    let i = x.round();
                    match QUANTILES.get(i as usize) {
                        Some((_, name)) if (x - i).abs() < 0.01 && i >= 0.0 => name.to_string(),
                        _ => String::new(),
                    }
                })
                .y_label_formatter(&|y| short(*y))
                .draw()?;
            // As many bar widths per group as the widest panel has systems, whatever this
            // panel's; fewer are centred.
            let widest = PANELS.iter().map(|p| p.2.len()).max().unwrap_or(1);
            let bar = 0.8 / widest as f64;
            let offset = (widest - systems.len()) as f64 * bar / 2.0;
            let label = TextStyle::from(("sans-serif", 8).into_font())
                .pos(Pos::new(HPos::Center, VPos::Bottom));
            for (si, &sys) in systems.iter().enumerate() {
                let x0 = |qi: usize| qi as f64 - 0.4 + offset + si as f64 * bar;
                let measured: Vec<(usize, f64)> = (0..QUANTILES.len())
                    .filter_map(|qi| median(r, sys, figure(qi)).map(|v| (qi, v)))
                    .collect();
                let bars = chart.draw_series(measured.iter().map(|&(qi, v)| {
                    Rectangle::new([(x0(qi), lo), (x0(qi) + bar * 0.9, v)], color(sys).filled())
                }))?;
                if p == 0 {
                    bars.label(sys.name()).legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 10, y + 5)], color(sys).filled())
                    });
                }
                chart.draw_series((0..QUANTILES.len()).map(|qi| {
                    let centre = x0(qi) + bar * 0.45;
                    match measured.iter().find(|m| m.0 == qi) {
                        Some(&(_, v)) => Text::new(short(v), (centre, v), label.clone()),
                        None => Text::new("n/a".to_string(), (centre, lo), label.clone()),
                    }
                }))?;
            }
            if p == 0 {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperLeft)
                    .background_style(WHITE)
                    .border_style(BLACK)
                    .draw()?;
            }
        }
        root.present()?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_labels_carry_their_unit() {
        assert_eq!(short(38.2), "38 µs");
        assert_eq!(short(1500.0), "1.5 ms");
        assert_eq!(short(2_000_000.0), "2 s");
    }

    #[test]
    fn the_chart_is_one_svg_with_a_bar_per_measured_value() {
        let mut r = Results::default();
        for (s, base) in [
            (System::Limit, 20.0),
            (System::Socklab, 30.0),
            (System::SocketioxideSio, 40.0),
        ] {
            for i in 0..QUANTILES.len() {
                r.values
                    .insert((s, Figure::RoundTripUs(i)), vec![base * (i + 1) as f64]);
            }
        }
        let svg = svg(&r).expect("the chart draws");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for text in [
            "p50",
            "p99.9",
            "limit",
            "socklab",
            "Socket.IO",
            System::SocketioxideSio.name(),
            "n/a",
            "80 µs",
            "160 µs",
        ] {
            assert!(svg.contains(text), "no {text:?} in the chart");
        }
    }
}
