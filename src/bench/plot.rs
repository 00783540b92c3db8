//! Line charts as SVG for the bench report: x the qubit count, one line per series, a legend; the
//! y axis linear from 0 or logarithmic (decades).

use std::fmt::Write;

pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Lines of one color belong together (one simulator); the dash tells them apart (the circuit).
    pub color: usize,
    pub dash: usize,
}

pub enum Scale {
    Linear,
    Log,
}

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 440.0;
/// The plot area's margins: left, right (the legend), top, bottom.
const MARGIN: (f64, f64, f64, f64) = (70.0, 210.0, 48.0, 50.0);
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
];
const DASHES: [&str; 3] = ["none", "7 4", "2 3"];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A chart of `series` (points with y ≤ 0 are left out on a log scale), titled, with a smaller
/// line under the title (what ran it).
pub fn line_chart(
    title: &str,
    subtitle: &str,
    y_label: &str,
    scale: Scale,
    series: &[Series],
) -> String {
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|&(_, y)| y.is_finite() && (matches!(scale, Scale::Linear) || y > 0.0))
        .collect();
    let (x_min, x_max) = all.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &(x, _)| {
        (lo.min(x), hi.max(x))
    });
    let (x_min, x_max) = if all.is_empty() {
        (0.0, 1.0)
    } else if x_min == x_max {
        (x_min - 1.0, x_max + 1.0)
    } else {
        (x_min, x_max)
    };
    let y_max = all.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    let y_min = all.iter().map(|p| p.1).fold(f64::MAX, f64::min);
    // The y range in the axis's own units (log10 for Log), and the ticks.
    let (lo, hi, ticks): (f64, f64, Vec<f64>) = match scale {
        Scale::Log if !all.is_empty() => {
            let (lo, hi) = (
                y_min.log10().floor(),
                y_max.log10().ceil().max(y_min.log10().floor() + 1.0),
            );
            (lo, hi, (lo as i32..=hi as i32).map(f64::from).collect())
        }
        Scale::Log => (0.0, 1.0, vec![0.0, 1.0]),
        Scale::Linear => {
            let top = if all.is_empty() || y_max <= 0.0 {
                1.0
            } else {
                y_max * 1.1
            };
            (
                0.0,
                top,
                (0..=5).map(|i| top * f64::from(i) / 5.0).collect(),
            )
        }
    };
    let (left, right, top, bottom) = MARGIN;
    let (plot_w, plot_h) = (WIDTH - left - right, HEIGHT - top - bottom);
    let px = |x: f64| left + (x - x_min) / (x_max - x_min) * plot_w;
    let axis = |y: f64| match scale {
        Scale::Log => y.log10(),
        Scale::Linear => y,
    };
    let py = |v: f64| top + plot_h - (v - lo) / (hi - lo) * plot_h;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="18" font-size="15">{}</text>
<text x="10" y="33" font-size="11" fill="#555">{}</text>
<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>
"##,
        escape(title),
        escape(subtitle)
    );
    for tick in &ticks {
        let y = py(*tick);
        let text = match scale {
            Scale::Log => format!("1e{}", *tick as i32),
            Scale::Linear => format!("{tick:.0}"),
        };
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{text}</text>"##,
            left + plot_w,
            left - 6.0,
            y + 4.0
        );
    }
    let mut xs: Vec<f64> = all.iter().map(|p| p.0).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    for x in xs {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{x}</text>"#,
            px(x),
            top + plot_h + 18.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">qubits</text><text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>"#,
        left + plot_w / 2.0,
        HEIGHT - 10.0,
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        escape(y_label)
    );
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[s.color % COLORS.len()];
        let dash = DASHES[s.dash % DASHES.len()];
        let points: Vec<(f64, f64)> = (s.points.iter())
            .filter(|&&(_, y)| y.is_finite() && (matches!(scale, Scale::Linear) || y > 0.0))
            .map(|&(x, y)| (px(x), py(axis(y))))
            .collect();
        let line: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}" points="{}"/>"#,
            line.join(" ")
        );
        for (x, y) in &points {
            let _ = writeln!(
                svg,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{color}"/>"#
            );
        }
        let legend_y = top + 14.0 + 18.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{}" y1="{legend_y}" x2="{}" y2="{legend_y}" stroke="{color}" stroke-width="3" stroke-dasharray="{dash}"/><text x="{}" y="{}">{}</text>"#,
            left + plot_w + 12.0,
            left + plot_w + 32.0,
            left + plot_w + 38.0,
            legend_y + 4.0,
            escape(&s.label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}
