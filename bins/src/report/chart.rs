//! One small layer over plotters that every plot uses: panels of line series side by side
//! in one SVG, on a log2 x axis labelled with the measured values. A panel without a single
//! point draws its reason ("no data: …") instead of an empty axis that would pass for data.
//!
//! Encoding shared by all plots: colour is the mode, the marker and line the engine
//! (syscall: circles, solid; uring: triangles, dashed).

use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use engine::{Backend, Mode};

/// Colour of a mode.
pub fn mode_color(m: Mode) -> RGBColor {
    match m {
        Mode::TwoCopy => RGBColor(31, 100, 180),
        Mode::OneCopy => RGBColor(20, 140, 60),
        Mode::Zc => RGBColor(200, 40, 40),
        Mode::ZcFixed => RGBColor(225, 130, 0),
    }
}

/// How a series' points are marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Circle,
    Triangle,
    /// A reference line.
    None,
}

/// One line.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub color: RGBColor,
    pub dashed: bool,
    pub marker: Marker,
    /// (x in its own unit — bytes or threads —, y).
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series in the shared encoding for `engine` and `mode`.
    pub fn of(engine: Backend, mode: Mode, label: String, points: Vec<(f64, f64)>) -> Series {
        Series {
            label,
            color: mode_color(mode),
            dashed: engine == Backend::Uring,
            marker: match engine {
                Backend::Syscall => Marker::Circle,
                Backend::Uring => Marker::Triangle,
            },
            points,
        }
    }
}

/// What the x axis holds; both are drawn on a log2 scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    /// Message size in bytes, labelled 1K, 4K, 64K.
    Size,
    /// Client threads.
    Threads,
}

impl XAxis {
    fn desc(self) -> &'static str {
        match self {
            XAxis::Size => "message size (bytes, log2 scale)",
            XAxis::Threads => "client threads (log2 scale)",
        }
    }

    fn label(self, log2: f64) -> String {
        let v = log2.exp2().round() as usize;
        match self {
            XAxis::Size => engine::config::format_size(v),
            XAxis::Threads => v.to_string(),
        }
    }
}

/// One chart of a figure.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub x: XAxis,
    pub y_label: String,
    /// The lowest top the y axis may have (percentages: above 100); else fitted to the data.
    pub y_max: Option<f64>,
    /// Grouped bars per x value instead of lines, each labelled with its value and this
    /// suffix.
    pub bars: Option<&'static str>,
    pub series: Vec<Series>,
    /// Why there is nothing to draw, shown as `no data: …` when no series has a point.
    pub no_data: String,
    /// A line under the chart (what was substituted, what is missing).
    pub note: Option<String>,
}

impl Panel {
    pub fn new(title: impl Into<String>, x: XAxis, y_label: impl Into<String>) -> Panel {
        Panel {
            title: title.into(),
            x,
            y_label: y_label.into(),
            y_max: None,
            bars: None,
            series: Vec::new(),
            no_data: "nothing was measured for this panel".into(),
            note: None,
        }
    }

    /// A panel that only states why it has no data.
    pub fn empty(title: impl Into<String>, message: impl Into<String>) -> Panel {
        let mut p = Panel::new(title, XAxis::Size, "");
        p.no_data = message.into();
        p
    }

    pub fn has_data(&self) -> bool {
        self.series.iter().any(|s| !s.points.is_empty())
    }

    /// The text shown instead of the chart.
    pub fn no_data_text(&self) -> String {
        if self.no_data.starts_with("no data") || self.no_data.starts_with("not measured") {
            self.no_data.clone()
        } else {
            format!("no data: {}", self.no_data)
        }
    }
}

const PANEL_W: u32 = 600;
const PANEL_H: u32 = 460;
const TITLE_H: u32 = 44;
const FOOT_H: i32 = 34;
const FONT: &str = "sans-serif";

/// A figure of `panels` side by side under `title`, as SVG text.
pub fn render(title: &str, panels: &[Panel]) -> Result<String> {
    let n = panels.len().max(1) as u32;
    let width = (PANEL_W * n).max(820);
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (width, PANEL_H + TITLE_H)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let body = root.titled(title, (FONT, 18)).map_err(plot_error)?;
        for (area, panel) in body.split_evenly((1, n as usize)).iter().zip(panels) {
            draw_panel(area, panel).map_err(plot_error)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

fn plot_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a plot: {e:?}")
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawResult<'a> =
    Result<(), DrawingAreaErrorKind<<SVGBackend<'a> as DrawingBackend>::ErrorType>>;

fn draw_panel<'a>(area: &Area<'a>, p: &Panel) -> DrawResult<'a> {
    let (w, h) = area.dim_in_pixel();
    let (main, foot) = area.split_vertically(h as i32 - FOOT_H);
    if let Some(note) = &p.note {
        draw_lines(&foot, note, 12, RGBColor(150, 30, 30), 6)?;
    }
    if !p.has_data() {
        main.draw(&Rectangle::new(
            [(14, 30), (w as i32 - 14, h as i32 - FOOT_H - 10)],
            RGBColor(180, 180, 180).stroke_width(1),
        ))?;
        main.draw(&Text::new(
            p.title.clone(),
            (24, 8),
            (FONT, 15).into_font().color(&BLACK),
        ))?;
        let (_, mh) = main.dim_in_pixel();
        draw_lines(
            &main,
            &p.no_data_text(),
            16,
            RGBColor(170, 30, 30),
            mh as i32 / 2 - 30,
        )?;
        return Ok(());
    }

    let mut xs: Vec<f64> = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|pt| log2(pt.0)))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
    let gap = xs.windows(2).map(|w| w[1] - w[0]).fold(2.0, f64::min);
    // Bars: a group per x value, as wide as the closest two values allow.
    let group = gap * 0.7;
    let pad = if p.bars.is_some() {
        group / 2.0 + 0.2
    } else {
        0.4
    };
    let (xlo, xhi) = (xs[0] - pad, xs[xs.len() - 1] + pad);
    let ys = p.series.iter().flat_map(|s| s.points.iter().map(|pt| pt.1));
    let ymax_data = ys.clone().fold(f64::NEG_INFINITY, f64::max);
    let ylo = ys.fold(f64::INFINITY, f64::min).min(0.0);
    let base = (if ymax_data > 0.0 {
        ymax_data * 1.12
    } else {
        1.0
    })
    .max(p.y_max.unwrap_or(0.0));
    let drawn: Vec<&Series> = p.series.iter().filter(|s| !s.points.is_empty()).collect();
    let legend = Legend {
        rows: drawn.len(),
        chars: drawn
            .iter()
            .map(|s| s.label.chars().count())
            .max()
            .unwrap_or(0),
    };
    let frac = |x: f64| (x - xlo) / (xhi - xlo);
    let mut pts: Vec<(f64, f64)> = drawn
        .iter()
        .flat_map(|s| s.points.iter().map(|&(x, y)| (frac(log2(x)), y)))
        .collect();
    if p.bars.is_some() {
        // A bar covers everything from its top down to the axis.
        let feet: Vec<(f64, f64)> = pts.iter().map(|&(x, _)| (x, ylo)).collect();
        pts.extend(feet);
    }
    let (corner, yhi) = legend.place(&pts, ylo, base);
    let span = yhi - ylo;

    let x = p.x;
    let mut chart = ChartBuilder::on(&main)
        .caption(&p.title, (FONT, 15))
        .margin(10)
        .margin_right(18)
        .x_label_area_size(42)
        .y_label_area_size(70)
        .build_cartesian_2d(
            KeyedAxis {
                range: xlo..xhi,
                keys: xs,
            },
            ylo..yhi,
        )?;
    chart
        .configure_mesh()
        .x_desc(x.desc())
        .y_desc(p.y_label.as_str())
        .x_label_formatter(&|v| x.label(*v))
        .y_label_formatter(&|v| tick(*v, span))
        .y_max_light_lines(1)
        .axis_desc_style((FONT, 13))
        .label_style((FONT, 12))
        .bold_line_style(RGBColor(222, 222, 222))
        .draw()?;

    let n = drawn.len() as f64;
    for (i, s) in drawn.iter().enumerate() {
        let mut pts: Vec<(f64, f64)> = s.points.iter().map(|&(x, y)| (log2(x), y)).collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (color, dashed, marker) = (s.color, s.dashed, s.marker);
        if let Some(suffix) = p.bars {
            let w = group / n;
            let off = (i as f64 - (n - 1.0) / 2.0) * w;
            // uring bars are lighter, with the mode's colour as their outline.
            let fill = if dashed {
                color.mix(0.45).filled()
            } else {
                color.filled()
            };
            chart
                .draw_series(pts.iter().map(|&(x, y)| {
                    Rectangle::new([(x + off - w * 0.45, 0.0), (x + off + w * 0.45, y)], fill)
                }))?
                .label(s.label.clone())
                .legend(move |(lx, ly)| {
                    EmptyElement::at((lx, ly))
                        + Rectangle::new([(2, -5), (18, 5)], fill)
                        + Rectangle::new([(2, -5), (18, 5)], color.stroke_width(1))
                });
            if dashed {
                chart.draw_series(pts.iter().map(|&(x, y)| {
                    Rectangle::new(
                        [(x + off - w * 0.45, 0.0), (x + off + w * 0.45, y)],
                        color.stroke_width(1),
                    )
                }))?;
            }
            let label = TextStyle::from((FONT, 11).into_font())
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Bottom));
            chart.draw_series(pts.iter().map(|&(x, y)| {
                Text::new(format!("{y:.0}{suffix}"), (x + off, y), label.clone())
            }))?;
            continue;
        }
        let style = color.stroke_width(2);
        let anno = if dashed {
            chart.draw_series(DashedLineSeries::new(pts.clone(), 7, 5, style))?
        } else {
            chart.draw_series(LineSeries::new(pts.clone(), style))?
        };
        anno.label(s.label.clone()).legend(move |(lx, ly)| {
            let st = color.stroke_width(2);
            // Dashed: two short strokes with a gap where the marker sits.
            let (first, second) = if dashed {
                (vec![(0, 0), (6, 0)], vec![(14, 0), (20, 0)])
            } else {
                (vec![(0, 0), (20, 0)], vec![(0, 0), (20, 0)])
            };
            EmptyElement::at((lx, ly))
                + PathElement::new(first, st)
                + PathElement::new(second, st)
                + Circle::new((10, 0), 3, marker_style(marker == Marker::Circle, color))
                + TriangleMarker::new((10, 0), 4, marker_style(marker == Marker::Triangle, color))
        });
        match marker {
            Marker::Circle => {
                chart.draw_series(pts.iter().map(|&pt| Circle::new(pt, 4, color.filled())))?
            }
            Marker::Triangle => chart.draw_series(
                pts.iter()
                    .map(|&pt| TriangleMarker::new(pt, 5, color.filled())),
            )?,
            Marker::None => continue,
        };
    }
    chart
        .configure_series_labels()
        .position(corner)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 12))
        .draw()?;
    Ok(())
}

fn log2(x: f64) -> f64 {
    x.max(1.0).log2()
}

/// The legend's size, to keep it off the data.
struct Legend {
    rows: usize,
    chars: usize,
}

/// The plotting area, about, in pixels.
const PLOT_W: f64 = 500.0;
const PLOT_H: f64 = 330.0;

impl Legend {
    /// The corner whose box covers no point (points: x as 0..1 of the axis, y as data),
    /// and the y top that keeps it so: the corner that needs the least headroom above
    /// `top`; a bottom corner only where it needs none.
    fn place(&self, pts: &[(f64, f64)], ylo: f64, top: f64) -> (SeriesLabelPosition, f64) {
        let wf = ((self.chars as f64 * 6.5 + 50.0) / PLOT_W).min(0.95) + 0.03;
        let hf = (self.rows as f64 * 17.0 + 14.0) / PLOT_H + 0.04;
        let under = |left: bool| {
            pts.iter()
                .filter(move |p| if left { p.0 <= wf } else { p.0 >= 1.0 - wf })
                .map(|p| p.1)
        };
        let mut best: Option<(SeriesLabelPosition, f64)> = None;
        for (corner, left, upper) in [
            (SeriesLabelPosition::UpperLeft, true, true),
            (SeriesLabelPosition::UpperRight, false, true),
            (SeriesLabelPosition::LowerLeft, true, false),
            (SeriesLabelPosition::LowerRight, false, false),
        ] {
            let need = if upper {
                let high = under(left).fold(ylo, f64::max);
                // The top hf of the axis must stay clear of the points under the box.
                top.max(ylo + (high - ylo) / (1.0 - hf))
            } else {
                let low = under(left).fold(f64::INFINITY, f64::min);
                if low >= ylo + hf * (top - ylo) {
                    top
                } else {
                    continue;
                }
            };
            if best.as_ref().map_or(true, |b| need < b.1 - 1e-12) {
                best = Some((corner, need));
            }
        }
        best.unwrap_or((SeriesLabelPosition::UpperLeft, top))
    }
}

/// A linear axis (over log2 values) ticked exactly at the measured values.
struct KeyedAxis {
    range: std::ops::Range<f64>,
    keys: Vec<f64>,
}

impl Ranged for KeyedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, (lo, hi): (i32, i32)) -> i32 {
        let f = (v - self.range.start) / (self.range.end - self.range.start);
        lo + (f * f64::from(hi - lo)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.keys.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.range.clone()
    }
}

/// The legend's marker: both shapes are drawn, the other one transparent.
fn marker_style(shown: bool, color: RGBColor) -> ShapeStyle {
    if shown {
        color.filled()
    } else {
        TRANSPARENT.filled()
    }
}

/// Text wrapped at about 70 characters, centred, from `top`.
fn draw_lines<'a>(
    area: &Area<'a>,
    text: &str,
    size: u32,
    color: RGBColor,
    top: i32,
) -> DrawResult<'a> {
    let (w, _) = area.dim_in_pixel();
    let per_line = ((w as f64 - 40.0) / (size as f64 * 0.55)).max(20.0) as usize;
    let style = TextStyle::from((FONT, size).into_font())
        .color(&color)
        .pos(Pos::new(HPos::Center, VPos::Top));
    for (i, line) in wrap(text, per_line).iter().enumerate() {
        area.draw(&Text::new(
            line.clone(),
            (w as i32 / 2, top + i as i32 * (size as i32 + 6)),
            style.clone(),
        ))?;
    }
    Ok(())
}

/// Splits `text` into lines of at most `width` characters at spaces (a longer word stays
/// whole).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

/// A y tick with as many decimals as the axis span needs.
fn tick(v: f64, span: f64) -> String {
    let digits = if span >= 10.0 {
        0
    } else if span >= 1.0 {
        1
    } else if span >= 0.1 {
        2
    } else if span > 0.0 {
        (-span.log10()).ceil() as usize + 2
    } else {
        2
    };
    format!("{v:.digits$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_words_whole() {
        assert_eq!(wrap("a bb ccc dddd", 6), vec!["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("", 6), Vec::<String>::new());
    }

    #[test]
    fn ticks_and_labels() {
        assert_eq!(tick(12.345, 30.0), "12");
        assert_eq!(tick(1.234, 5.0), "1.2");
        assert_eq!(tick(0.0123, 0.05), "0.0123");
        assert_eq!(XAxis::Size.label(16.0), "64K");
        assert_eq!(XAxis::Threads.label(2.0), "4");
    }

    #[test]
    fn the_legend_goes_where_the_data_is_not() {
        let l = Legend { rows: 3, chars: 10 };
        // Rising lines: the upper left is free.
        let rising = [(0.1, 0.0), (0.9, 10.0)];
        let (c, top) = l.place(&rising, 0.0, 11.0);
        assert!(matches!(c, SeriesLabelPosition::UpperLeft));
        assert_eq!(top, 11.0);
        // Falling lines: the upper right.
        let falling = [(0.1, 10.0), (0.9, 0.5)];
        assert!(matches!(
            l.place(&falling, 0.0, 11.0).0,
            SeriesLabelPosition::UpperRight
        ));
        // Flat at the top: a bottom corner, no extra headroom.
        let flat = [(0.1, 100.0), (0.9, 100.0)];
        let (c, top) = l.place(&flat, 0.0, 110.0);
        assert!(matches!(c, SeriesLabelPosition::LowerLeft));
        assert_eq!(top, 110.0);
    }

    #[test]
    fn an_empty_panel_says_no_data_and_draws_no_axis() {
        let svg = render("t", &[Panel::empty("left", "no uring points")]).unwrap();
        assert!(svg.contains("no data: no uring points"), "{svg}");
        assert!(!svg.contains("message size"));
        let mut p = Panel::new("right", XAxis::Size, "Gbit/s");
        p.series.push(Series::of(
            Backend::Uring,
            Mode::Zc,
            "uring zc".into(),
            vec![(1024.0, 1.0), (65536.0, 2.0)],
        ));
        let svg = render("t", &[p]).unwrap();
        assert!(svg.contains("64K") && svg.contains("uring zc") && svg.contains("Gbit/s"));
    }
}
