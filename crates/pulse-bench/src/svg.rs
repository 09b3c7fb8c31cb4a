//! Small hand-written SVG charts for the report: horizontal (grouped) bar charts
//! with an optional target line, and line charts. Plain SVG 1.1, no scripts, no
//! external fonts, so GitHub and any browser render them as images.

use std::fmt::Write;

/// Colours of successive series (colour-blind safe, Okabe–Ito).
pub const PALETTE: [&str; 6] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00",
];

/// One series of a bar chart: a value per group (`None` = not measured).
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend name.
    pub name: String,
    /// One value per group.
    pub values: Vec<Option<f64>>,
}

/// A horizontal bar chart: one row of bars per group, one bar per series.
#[derive(Debug, Clone)]
pub struct BarChart {
    /// Title above the chart.
    pub title: String,
    /// Unit shown on the axis (e.g. `events/s`).
    pub unit: String,
    /// Row labels.
    pub groups: Vec<String>,
    /// The series.
    pub series: Vec<Series>,
    /// A vertical line at this value, with a label (a target).
    pub target: Option<(f64, String)>,
    /// Logarithmic axis (for values spanning orders of magnitude).
    pub log: bool,
}

/// Escape text for SVG.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A number the way the report writes it: thousands separated, at most 3
/// significant decimals for small values.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let a = v.abs();
    if a >= 1000.0 {
        let n = v.round() as i64;
        let s = n.unsigned_abs().to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if n < 0 {
            out.insert(0, '-');
        }
        out
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a == 0.0 {
        "0".into()
    } else {
        format!("{v:.3}")
    }
}

/// An axis label: as many decimals as the tick step needs, thousands separated.
pub fn fmt_tick(v: f64, step: f64) -> String {
    if step >= 1.0 || v == 0.0 {
        let n = v.round();
        if n.abs() >= 1000.0 {
            fmt_num(n)
        } else {
            format!("{n:.0}")
        }
    } else {
        let decimals = (-step.log10()).ceil().max(0.0) as usize;
        format!("{v:.decimals$}")
    }
}

/// "Nice" axis ticks from 0 to at least `max`.
fn ticks(max: f64) -> Vec<f64> {
    if max <= 0.0 || !max.is_finite() {
        return vec![0.0, 1.0];
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut v = Vec::new();
    let mut t = 0.0;
    while t < max + step * 0.999 {
        v.push(t);
        t += step;
    }
    v
}

/// Powers of ten covering `min..=max` (for log axes).
fn log_ticks(min: f64, max: f64) -> Vec<f64> {
    let lo = min.max(1e-9).log10().floor() as i32;
    let hi = max.max(min * 10.0).log10().ceil() as i32;
    (lo..=hi).map(|e| 10f64.powi(e)).collect()
}

impl BarChart {
    /// A single-series chart.
    pub fn simple(title: &str, unit: &str, rows: &[(String, Option<f64>)]) -> BarChart {
        BarChart {
            title: title.into(),
            unit: unit.into(),
            groups: rows.iter().map(|r| r.0.clone()).collect(),
            series: vec![Series {
                name: unit.into(),
                values: rows.iter().map(|r| r.1).collect(),
            }],
            target: None,
            log: false,
        }
    }

    /// Render as an SVG document.
    pub fn render(&self) -> String {
        let width = 820.0;
        let label_w = 250.0;
        let value_w = 110.0;
        let plot_w = width - label_w - value_w - 20.0;
        let bar_h = 18.0;
        let gap = 12.0;
        let multi = self.series.len() > 1;
        let top = if multi { 62.0 } else { 42.0 };
        let group_h = bar_h * self.series.len() as f64 + gap;
        let plot_h = group_h * self.groups.len() as f64;
        let height = top + plot_h + 46.0;

        let values: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.values.iter().flatten().copied())
            .chain(self.target.as_ref().map(|t| t.0))
            .filter(|v| v.is_finite())
            .collect();
        let max = values.iter().copied().fold(0.0, f64::max);
        let positive_min = values
            .iter()
            .copied()
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min);
        let (axis, lo, hi) = if self.log {
            let t = log_ticks(
                if positive_min.is_finite() {
                    positive_min
                } else {
                    1.0
                },
                max.max(1e-9),
            );
            let (lo, hi) = (t[0], *t.last().unwrap_or(&1.0));
            (t, lo, hi)
        } else {
            let t = ticks(max);
            let hi = *t.last().unwrap_or(&1.0);
            (t, 0.0, hi)
        };
        let x = |v: f64| -> f64 {
            if self.log {
                let v = v.max(lo);
                label_w + plot_w * (v.log10() - lo.log10()) / (hi.log10() - lo.log10()).max(1e-9)
            } else {
                label_w + plot_w * v / hi.max(1e-12)
            }
        };

        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#
        );
        let _ = write!(
            s,
            r##"<rect width="100%" height="100%" fill="#ffffff"/><text x="10" y="22" font-size="15" font-weight="bold">{}</text>"##,
            esc(&self.title)
        );
        if multi {
            let mut lx = label_w;
            for (i, ser) in self.series.iter().enumerate() {
                let c = PALETTE[i % PALETTE.len()];
                let _ = write!(
                    s,
                    r#"<rect x="{lx}" y="34" width="12" height="12" fill="{c}"/><text x="{}" y="44">{}</text>"#,
                    lx + 16.0,
                    esc(&ser.name)
                );
                lx += 24.0 + 7.0 * ser.name.chars().count() as f64;
            }
        }
        // grid and axis
        for t in &axis {
            let gx = x(*t);
            let step = if self.log {
                *t
            } else {
                axis.get(1).copied().unwrap_or(1.0) - axis[0]
            };
            let _ = write!(
                s,
                r##"<line x1="{gx:.1}" y1="{top}" x2="{gx:.1}" y2="{:.1}" stroke="#e0e0e0"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
                top + plot_h,
                top + plot_h + 16.0,
                fmt_tick(*t, step)
            );
        }
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}{}</text>"##,
            label_w + plot_w / 2.0,
            top + plot_h + 34.0,
            esc(&self.unit),
            if self.log { " (log scale)" } else { "" }
        );
        // bars
        for (g, label) in self.groups.iter().enumerate() {
            let gy = top + g as f64 * group_h + gap / 2.0;
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                label_w - 8.0,
                gy + group_h / 2.0 - gap / 2.0 + 4.0,
                esc(label)
            );
            for (i, ser) in self.series.iter().enumerate() {
                let y = gy + i as f64 * bar_h;
                let c = PALETTE[i % PALETTE.len()];
                match ser.values.get(g).copied().flatten() {
                    Some(v) if v.is_finite() => {
                        let w = (x(v) - label_w).max(1.0);
                        let _ = write!(
                            s,
                            r#"<rect x="{label_w}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{c}"><title>{}: {}</title></rect><text x="{:.1}" y="{:.1}">{}</text>"#,
                            bar_h - 3.0,
                            esc(&ser.name),
                            fmt_num(v),
                            label_w + w + 4.0,
                            y + bar_h - 7.0,
                            fmt_num(v)
                        );
                    }
                    _ => {
                        let _ = write!(
                            s,
                            r##"<text x="{:.1}" y="{:.1}" fill="#999">not measured</text>"##,
                            label_w + 4.0,
                            y + bar_h - 7.0
                        );
                    }
                }
            }
        }
        if let Some((v, label)) = &self.target {
            let tx = x(*v);
            let _ = write!(
                s,
                r##"<line x1="{tx:.1}" y1="{:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#D55E00" stroke-width="2" stroke-dasharray="6,4"/><text x="{tx:.1}" y="{:.1}" fill="#D55E00" text-anchor="middle">{}</text>"##,
                top - 4.0,
                top + plot_h,
                top - 8.0,
                esc(label)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

/// A line chart of one or more series of (x, y) points.
#[derive(Debug, Clone)]
pub struct LineChart {
    /// Title above the chart.
    pub title: String,
    /// Label of the x axis.
    pub x_label: String,
    /// Label of the y axis.
    pub y_label: String,
    /// (name, points).
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// A horizontal line at this y value, with a label (a target).
    pub target: Option<(f64, String)>,
}

impl LineChart {
    /// Render as an SVG document.
    pub fn render(&self) -> String {
        let (width, height) = (820.0, 340.0);
        let (left, right, top, bottom) = (70.0, 20.0, 60.0, 50.0);
        let pw = width - left - right;
        let ph = height - top - bottom;
        let pts = self.series.iter().flat_map(|s| s.1.iter());
        let xmax = pts.clone().map(|p| p.0).fold(0.0, f64::max);
        let ymax = pts
            .map(|p| p.1)
            .chain(self.target.as_ref().map(|t| t.0))
            .fold(0.0, f64::max);
        let xt = ticks(xmax);
        let yt = ticks(ymax);
        let (xhi, yhi) = (*xt.last().unwrap_or(&1.0), *yt.last().unwrap_or(&1.0));
        let xstep = xt.get(1).copied().unwrap_or(1.0) - xt[0];
        let ystep = yt.get(1).copied().unwrap_or(1.0) - yt[0];
        let x = |v: f64| left + pw * v / xhi.max(1e-12);
        let y = |v: f64| top + ph - ph * v / yhi.max(1e-12);
        let mut s = String::new();
        let _ = write!(
            s,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12"><rect width="100%" height="100%" fill="#ffffff"/><text x="10" y="22" font-size="15" font-weight="bold">{}</text>"##,
            esc(&self.title)
        );
        let mut lx = left;
        for (i, (name, _)) in self.series.iter().enumerate() {
            let c = PALETTE[i % PALETTE.len()];
            let _ = write!(
                s,
                r#"<rect x="{lx}" y="34" width="12" height="12" fill="{c}"/><text x="{}" y="44">{}</text>"#,
                lx + 16.0,
                esc(name)
            );
            lx += 24.0 + 7.0 * name.chars().count() as f64;
        }
        for t in &xt {
            let gx = x(*t);
            let _ = write!(
                s,
                r##"<line x1="{gx:.1}" y1="{top}" x2="{gx:.1}" y2="{:.1}" stroke="#eeeeee"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
                top + ph,
                top + ph + 16.0,
                fmt_tick(*t, xstep)
            );
        }
        for t in &yt {
            let gy = y(*t);
            let _ = write!(
                s,
                r##"<line x1="{left}" y1="{gy:.1}" x2="{:.1}" y2="{gy:.1}" stroke="#eeeeee"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">{}</text>"##,
                left + pw,
                left - 6.0,
                gy + 4.0,
                fmt_tick(*t, ystep)
            );
        }
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text><text x="16" y="{:.1}" fill="#555" transform="rotate(-90 16 {:.1})" text-anchor="middle">{}</text>"##,
            left + pw / 2.0,
            height - 12.0,
            esc(&self.x_label),
            top + ph / 2.0,
            top + ph / 2.0,
            esc(&self.y_label)
        );
        for (i, (_, points)) in self.series.iter().enumerate() {
            let c = PALETTE[i % PALETTE.len()];
            let path: Vec<String> = points
                .iter()
                .map(|(a, b)| format!("{:.1},{:.1}", x(*a), y(*b)))
                .collect();
            let _ = write!(
                s,
                r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
                path.join(" ")
            );
        }
        if let Some((v, label)) = &self.target {
            let ty = y(*v);
            let _ = write!(
                s,
                r##"<line x1="{left}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#D55E00" stroke-width="2" stroke-dasharray="6,4"/><text x="{:.1}" y="{:.1}" fill="#D55E00" text-anchor="end">{}</text>"##,
                left + pw,
                left + pw,
                ty - 5.0,
                esc(label)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(fmt_num(1234567.4), "1,234,567");
        assert_eq!(fmt_num(-1234.0), "-1,234");
        assert_eq!(fmt_num(123.4), "123");
        assert_eq!(fmt_num(12.34), "12.3");
        assert_eq!(fmt_num(1.234), "1.23");
        assert_eq!(fmt_num(0.1234), "0.123");
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(ticks(97.0).last().copied(), Some(100.0));
        assert_eq!(fmt_tick(5.0, 5.0), "5");
        assert_eq!(fmt_tick(2.5, 0.5), "2.5");
        assert_eq!(fmt_tick(0.1, 0.1), "0.1");
        assert_eq!(fmt_tick(20000.0, 5000.0), "20,000");
    }

    #[test]
    fn charts_are_well_formed() {
        let bar = BarChart {
            title: "A <b> & c".into(),
            unit: "events/s".into(),
            groups: vec!["one".into(), "two".into()],
            series: vec![
                Series {
                    name: "x".into(),
                    values: vec![Some(10.0), None],
                },
                Series {
                    name: "y".into(),
                    values: vec![Some(1000.0), Some(5.0)],
                },
            ],
            target: Some((100.0, "target".into())),
            log: true,
        }
        .render();
        assert!(bar.starts_with("<svg") && bar.trim_end().ends_with("</svg>"));
        assert!(bar.contains("A &lt;b&gt; &amp; c"));
        assert!(bar.contains("not measured"));
        assert_eq!(bar.matches("<rect").count(), 1 + 2 + 3);
        let line = LineChart {
            title: "t".into(),
            x_label: "s".into(),
            y_label: "MiB".into(),
            series: vec![("rss".into(), vec![(0.0, 1.0), (1.0, 2.0)])],
            target: Some((150.0, "target".into())),
        }
        .render();
        assert!(line.contains("<polyline") && line.trim_end().ends_with("</svg>"));
    }
}
