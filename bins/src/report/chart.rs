//! One small layer over plotters that every plot uses: a figure is rows of panels (small
//! multiples) under one title and one legend, each panel a chart of line or bar series on a
//! log2 x axis labelled with the measured values. A panel without a single point draws its
//! reason ("no data: …") instead of an empty axis that would pass for data.
//!
//! Encoding shared by all plots: colour is the mode, the marker and line the engine
//! (syscall: circles, solid; uring: triangles, dashed); a marker is a median and the bar
//! through it the min–max of the repeats behind it.
//!
//! Scales are decided for the figure, not per panel ([`y_axes`]): panels that show the same
//! quantity (the same y label) share one y range, so that a taller line is a larger value
//! wherever it sits, and that range is logarithmic when it spans more than [`LOG_SPAN`].

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
        Mode::Sendfile => RGBColor(130, 60, 170),
        Mode::Splice => RGBColor(20, 150, 160),
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

/// The spread of the repeats behind one plotted median: drawn as a bar from `min` to `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub x: f64,
    pub min: f64,
    pub max: f64,
}

/// One line (or one bar per x, in a bar panel).
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub color: RGBColor,
    pub dashed: bool,
    pub marker: Marker,
    /// (x in its own unit — bytes or threads —, y).
    pub points: Vec<(f64, f64)>,
    /// Min–max bars at some of the points' x: only where a spread exists (a single run
    /// has none, and a bar of zero height would claim a certainty nobody measured).
    pub spreads: Vec<Spread>,
}

impl Series {
    /// A series in the shared encoding for `engine` and `mode`, without spreads.
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
            spreads: Vec::new(),
        }
    }

    /// Every y the series draws: its points and both ends of its bars.
    fn values(&self) -> impl Iterator<Item = f64> + '_ {
        let ends = self.spreads.iter().flat_map(|s| [s.min, s.max]);
        self.points.iter().map(|p| p.1).chain(ends)
    }
}

/// What the x axis holds; both are drawn on a log2 scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    /// Message size in bytes, labelled 1K, 4K, 64K.
    Size,
    /// Client threads.
    Threads,
    /// Messages a second achieved (open loop), ticked 1-2-5 per decade: the measured
    /// values differ from series to series, and a tick at each would crowd the axis.
    Rate,
}

impl XAxis {
    fn desc(self) -> &'static str {
        match self {
            XAxis::Size => "message size (bytes, log2 scale)",
            XAxis::Threads => "client threads (log2 scale)",
            XAxis::Rate => "messages a second achieved (log2 scale)",
        }
    }

    fn label(self, log2: f64) -> String {
        let v = log2.exp2().round() as usize;
        match self {
            XAxis::Size => engine::config::format_size(v),
            XAxis::Threads => v.to_string(),
            XAxis::Rate => crate::results::rate_figure(v as f64),
        }
    }
}

/// One chart of a figure.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub x: XAxis,
    /// Also what the panel shows: panels of one figure with the same label share a y axis.
    pub y_label: String,
    /// The lowest top the y axis may have (percentages: above 100); else fitted to the data.
    pub y_max: Option<f64>,
    /// Grouped bars per x value instead of lines, each labelled with its value and this
    /// suffix.
    pub bars: Option<&'static str>,
    pub series: Vec<Series>,
    /// Why there is nothing to draw, shown as `no data: …` when no series has a point.
    pub no_data: String,
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

    fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.series.iter().flat_map(Series::values)
    }
}

/// A y axis whose values span more than this factor (largest over smallest) is drawn on a
/// log scale: beyond it, a linear axis flattens the small values into its floor.
pub const LOG_SPAN: f64 = 10.0;

/// The y range of a panel, in data units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YAxis {
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
}

impl YAxis {
    /// The axis that holds every one of `values`, its top at least `floor`: log where they
    /// are all positive and span more than [`LOG_SPAN`], unless they are `bars` (a bar's
    /// length is its value only on an axis from zero); else linear from zero (or below).
    /// `None` without values.
    pub fn fit(
        values: impl IntoIterator<Item = f64>,
        floor: Option<f64>,
        bars: bool,
    ) -> Option<YAxis> {
        let (min, max) = values
            .into_iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
        if min > max {
            return None;
        }
        let floor = floor.unwrap_or(f64::NEG_INFINITY);
        if !bars && min > 0.0 && max / min > LOG_SPAN {
            let (l0, l1) = (min.log10(), max.log10());
            let pad = (l1 - l0) * 0.06;
            return Some(YAxis {
                lo: 10f64.powf(l0 - pad),
                hi: 10f64.powf(l1 + pad).max(floor),
                log: true,
            });
        }
        // Room above the highest point for a bar's label.
        let top = if max > 0.0 { max * 1.12 } else { 1.0 };
        Some(YAxis {
            lo: min.min(0.0),
            hi: top.max(floor),
            log: false,
        })
    }

    /// Where `v` sits on the drawn (linear) axis.
    fn t(&self, v: f64) -> f64 {
        if self.log {
            v.log10()
        } else {
            v
        }
    }

    /// Ticked values, in data units: 1-2-5 per decade on a log axis (decades alone past
    /// three), else about six round steps.
    fn ticks(&self) -> Vec<f64> {
        let (lo, hi) = (self.lo, self.hi);
        if self.log {
            let mantissas: &[f64] = if hi / lo <= 1000.0 {
                &[1.0, 2.0, 5.0]
            } else {
                &[1.0]
            };
            let (d0, d1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
            (d0..=d1)
                .flat_map(|d| mantissas.iter().map(move |m| m * 10f64.powi(d)))
                .filter(|v| (lo..=hi).contains(v))
                .collect()
        } else {
            let step = nice_step((hi - lo) / 6.0);
            let (first, last) = ((lo / step).ceil() as i64, (hi / step).floor() as i64);
            (first..=last).map(|k| k as f64 * step).collect()
        }
    }

    /// The label of the tick at `t` on the drawn axis.
    fn label(&self, t: f64) -> String {
        if self.log {
            let v = 10f64.powf(t);
            // As many decimals as the tick's first digit needs: 0.05, 0.2, 5, 20.
            let digits = (-v.log10() - 1e-9).ceil().max(0.0) as usize;
            format!("{v:.digits$}")
        } else {
            tick(t, self.hi - self.lo)
        }
    }
}

/// 1, 2 or 5 times a power of ten, the closest to `raw` on a log scale.
fn nice_step(raw: f64) -> f64 {
    if !(raw > 0.0 && raw.is_finite()) {
        return 1.0;
    }
    let e = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * e)
        .min_by(|a, b| (a / raw).ln().abs().total_cmp(&(b / raw).ln().abs()))
        .unwrap_or(e)
}

/// The y axis of every panel in `rows` (`None` for a panel without data): panels with the
/// same y label show the same quantity, so they share one axis fitted to all of their
/// values and bars ([`YAxis::fit`]).
pub fn y_axes(rows: &[Vec<Panel>]) -> Vec<Vec<Option<YAxis>>> {
    let with_data = || rows.iter().flatten().filter(|p| p.has_data());
    let mut axes: Vec<(&str, Option<YAxis>)> = Vec::new();
    for p in with_data() {
        if axes.iter().any(|(l, _)| *l == p.y_label) {
            continue;
        }
        let group = || with_data().filter(|q| q.y_label == p.y_label);
        let floor = group().filter_map(|q| q.y_max).reduce(f64::max);
        let bars = group().any(|q| q.bars.is_some());
        let axis = YAxis::fit(group().flat_map(Panel::values), floor, bars);
        axes.push((&p.y_label, axis));
    }
    rows.iter()
        .map(|row| {
            row.iter()
                .map(|p| {
                    let shared = axes.iter().find(|(l, _)| p.has_data() && *l == p.y_label);
                    shared.and_then(|(_, a)| *a)
                })
                .collect()
        })
        .collect()
}

/// The x axis all panels of a figure share, over log2 of the measured values.
#[derive(Debug, Clone)]
struct XFrame {
    /// log2 of every measured x, ascending: the ticks.
    keys: Vec<f64>,
    lo: f64,
    hi: f64,
    /// The closest two keys (at most 2): the room a bar group or a dodge may take.
    gap: f64,
    /// The most bars any panel groups at one x: every bar of the figure is as wide as
    /// those, so that a panel of fewer series does not draw wider bars.
    bars: usize,
}

/// A group of bars takes this much of the gap between two x values.
const BAR_GROUP: f64 = 0.7;

impl XFrame {
    /// `None` when no panel has a point.
    fn fit(rows: &[Vec<Panel>]) -> Option<XFrame> {
        let panels = || rows.iter().flatten();
        let mut keys: Vec<f64> = panels()
            .flat_map(|p| &p.series)
            .flat_map(|s| s.points.iter().map(|pt| log2(pt.0)))
            .collect();
        keys.sort_by(f64::total_cmp);
        keys.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
        let (first, last) = (*keys.first()?, *keys.last()?);
        if panels().any(|p| p.x == XAxis::Rate) {
            keys = round_keys(first, last);
        }
        let gap = keys.windows(2).map(|w| w[1] - w[0]).fold(2.0, f64::min);
        let bars = panels()
            .filter(|p| p.bars.is_some())
            .map(|p| p.series.iter().filter(|s| !s.points.is_empty()).count())
            .max()
            .unwrap_or(0);
        let pad = if bars > 0 {
            gap * BAR_GROUP / 2.0 + 0.2
        } else {
            0.4
        };
        Some(XFrame {
            keys,
            lo: first - pad,
            hi: last + pad,
            gap,
            bars,
        })
    }

    /// Half the width of a bar's end cap, in log2 units.
    fn cap(&self) -> f64 {
        (self.hi - self.lo) * 0.009
    }
}

/// log2 of the values 1, 2 and 5 times a power of ten from 2^`first` to 2^`last` (a
/// little beyond either end), or the two ends where none falls between them.
fn round_keys(first: f64, last: f64) -> Vec<f64> {
    let (lo, hi) = (first - 0.4, last + 0.4);
    let (d0, d1) = (
        (lo.exp2().log10().floor()) as i32,
        (hi.exp2().log10().ceil()) as i32,
    );
    let keys: Vec<f64> = (d0..=d1)
        .flat_map(|d| [1.0, 2.0, 5.0].map(|m| (m * 10f64.powi(d)).log2()))
        .filter(|k| (lo..=hi).contains(k))
        .collect();
    if keys.len() >= 2 {
        keys
    } else if first < last {
        vec![first, last]
    } else {
        vec![first]
    }
}

/// A panel's size in a figure of several columns.
const PANEL_W: u32 = 560;
const PANEL_H: u32 = 380;
/// A figure of one column is still this wide, so its title and legend have room.
const MIN_W: u32 = 820;
const TITLE_H: u32 = 36;
const LEGEND_ROW: u32 = 20;
const LEGEND_FONT: u32 = 13;
const NOTE_FONT: u32 = 12;
const FONT: &str = "sans-serif";
const NOTE_COLOR: RGBColor = RGBColor(150, 30, 30);

/// A figure of `panels` side by side under `title`, as SVG text.
pub fn render(title: &str, panels: &[Panel]) -> Result<String> {
    render_grid(title, None, &[panels.to_vec()])
}

/// A figure of `rows` of panels under `title`, one legend for all of them and `note` (what
/// was substituted, what 100% means), as SVG text. A row is split evenly among its panels.
pub fn render_grid(title: &str, note: Option<&str>, rows: &[Vec<Panel>]) -> Result<String> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(1).max(1) as u32;
    let width = (PANEL_W * cols).max(MIN_W);
    let entries = legend(rows);
    let lines = flow(&entries, width - 40);
    let legend_h = if lines.is_empty() {
        0
    } else {
        lines.len() as u32 * LEGEND_ROW + 6
    };
    let note_lines = note.map_or_else(Vec::new, |n| wrap(n, per_line(width, NOTE_FONT)));
    let note_h = note_lines.len() as u32 * (NOTE_FONT + 6);
    let head_h = TITLE_H + legend_h + note_h;
    let height = head_h + PANEL_H * rows.len().max(1) as u32;
    let y_axes = y_axes(rows);
    let x = XFrame::fit(rows);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let (head, body) = root.split_vertically(head_h);
        head.draw(&Text::new(
            title,
            (width as i32 / 2, TITLE_H as i32 / 2),
            centred(18, &BLACK),
        ))
        .map_err(plot_error)?;
        draw_legend(&head, &entries, &lines, TITLE_H as i32).map_err(plot_error)?;
        for (i, line) in note_lines.iter().enumerate() {
            let y = (TITLE_H + legend_h) as i32 + i as i32 * (NOTE_FONT as i32 + 6) + 9;
            head.draw(&Text::new(
                line.as_str(),
                (width as i32 / 2, y),
                centred(NOTE_FONT, &NOTE_COLOR),
            ))
            .map_err(plot_error)?;
        }
        let row_areas = body.split_evenly((rows.len().max(1), 1));
        for ((row, area), axes) in rows.iter().zip(&row_areas).zip(&y_axes) {
            let cells = area.split_evenly((1, row.len().max(1)));
            for ((panel, cell), y) in row.iter().zip(&cells).zip(axes) {
                let frame = x.as_ref().zip(*y);
                draw_panel(cell, panel, frame).map_err(plot_error)?;
            }
        }
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

fn centred(size: u32, color: &RGBColor) -> TextStyle<'_> {
    TextStyle::from((FONT, size).into_font())
        .color(color)
        .pos(Pos::new(HPos::Center, VPos::Center))
}

fn plot_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a plot: {e:?}")
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawResult<'a> =
    Result<(), DrawingAreaErrorKind<<SVGBackend<'a> as DrawingBackend>::ErrorType>>;

/// Draws `p` on the figure's shared axes; without them (no data) its reason instead.
fn draw_panel<'a>(area: &Area<'a>, p: &Panel, axes: Option<(&XFrame, YAxis)>) -> DrawResult<'a> {
    let Some((x, y)) = axes.filter(|_| p.has_data()) else {
        let (w, h) = area.dim_in_pixel();
        area.draw(&Rectangle::new(
            [(14, 30), (w as i32 - 14, h as i32 - 10)],
            RGBColor(180, 180, 180).stroke_width(1),
        ))?;
        area.draw(&Text::new(
            p.title.clone(),
            (24, 8),
            (FONT, 15).into_font().color(&BLACK),
        ))?;
        draw_lines(
            area,
            &p.no_data_text(),
            16,
            RGBColor(170, 30, 30),
            h as i32 / 2 - 30,
        )?;
        return Ok(());
    };

    let kind = p.x;
    let y_desc = if y.log {
        format!("{}, log scale", p.y_label)
    } else {
        p.y_label.clone()
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, (FONT, 15))
        .margin(10)
        .margin_right(18)
        .x_label_area_size(42)
        .y_label_area_size(70)
        .build_cartesian_2d(
            KeyedAxis {
                range: x.lo..x.hi,
                keys: x.keys.clone(),
            },
            KeyedAxis {
                range: y.t(y.lo)..y.t(y.hi),
                keys: y.ticks().into_iter().map(|v| y.t(v)).collect(),
            },
        )?;
    chart
        .configure_mesh()
        .x_desc(kind.desc())
        .y_desc(y_desc)
        .x_label_formatter(&|v| kind.label(*v))
        .y_label_formatter(&|v| y.label(*v))
        .axis_desc_style((FONT, 13))
        .label_style((FONT, 12))
        .bold_line_style(RGBColor(222, 222, 222))
        .draw()?;

    let drawn: Vec<&Series> = p.series.iter().filter(|s| !s.points.is_empty()).collect();
    let offsets = dodge(&drawn, x.gap * 0.035);
    for (i, (s, off)) in drawn.iter().zip(offsets).enumerate() {
        let (color, dashed, marker) = (s.color, s.dashed, s.marker);
        let mut pts: Vec<(f64, f64)> = s.points.iter().map(|&(a, b)| (log2(a), b)).collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let spread_at = |x: f64| s.spreads.iter().find(|b| (log2(b.x) - x).abs() < 1e-9);
        if let Some(suffix) = p.bars {
            let (n, w) = (drawn.len() as f64, x.gap * BAR_GROUP / x.bars as f64);
            let off = (i as f64 - (n - 1.0) / 2.0) * w;
            // uring bars are lighter, with the mode's colour as their outline.
            let fill = if dashed {
                color.mix(0.45).filled()
            } else {
                color.filled()
            };
            // Bars stand on zero: their axis is linear from it (YAxis::fit).
            let bar = |(a, b): (f64, f64)| [(a + off - w * 0.45, 0.0), (a + off + w * 0.45, b)];
            chart.draw_series(pts.iter().map(|&pt| Rectangle::new(bar(pt), fill)))?;
            if dashed {
                chart.draw_series(
                    pts.iter()
                        .map(|&pt| Rectangle::new(bar(pt), color.stroke_width(1))),
                )?;
            }
            draw_spreads(&mut chart, s, y, off, w * 0.2, BLACK.mix(0.75))?;
            let label = TextStyle::from((FONT, 11).into_font())
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Bottom));
            chart.draw_series(pts.iter().map(|&(a, b)| {
                let top = spread_at(a).map_or(b, |sp| sp.max.max(b));
                Text::new(
                    format!("{b:.0}{suffix}"),
                    (a + off, y.t(top)),
                    label.clone(),
                )
            }))?;
            continue;
        }
        draw_spreads(&mut chart, s, y, off, x.cap(), color.mix(0.8))?;
        let line: Vec<(f64, f64)> = pts.iter().map(|&(a, b)| (a + off, y.t(b))).collect();
        let style = color.stroke_width(2);
        if dashed {
            chart.draw_series(DashedLineSeries::new(line.clone(), 7, 5, style))?;
        } else {
            chart.draw_series(LineSeries::new(line.clone(), style))?;
        }
        match marker {
            Marker::Circle => {
                chart.draw_series(line.iter().map(|&pt| Circle::new(pt, 4, color.filled())))?;
            }
            Marker::Triangle => {
                chart.draw_series(
                    line.iter()
                        .map(|&pt| TriangleMarker::new(pt, 5, color.filled())),
                )?;
            }
            Marker::None => {}
        }
    }
    Ok(())
}

/// How far right (log2 units) each of `drawn` is moved: the series with min–max bars sit
/// `step` apart, centred on their x, so that no bar hides another at the same x.
fn dodge(drawn: &[&Series], step: f64) -> Vec<f64> {
    let barred = drawn.iter().filter(|s| !s.spreads.is_empty()).count() as f64;
    let mut k = 0.0;
    drawn
        .iter()
        .map(|s| {
            if s.spreads.is_empty() {
                return 0.0;
            }
            k += 1.0;
            (k - 1.0 - (barred - 1.0) / 2.0) * step
        })
        .collect()
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<KeyedAxis, KeyedAxis>>;

/// The min–max bars of `s`, `off` (log2 units) right of their x, capped `cap` either side.
fn draw_spreads<'b, S: Into<ShapeStyle>>(
    chart: &mut Chart<'_, 'b>,
    s: &Series,
    y: YAxis,
    off: f64,
    cap: f64,
    style: S,
) -> DrawResult<'b> {
    let style: ShapeStyle = style.into();
    let style = style.stroke_width(2);
    chart.draw_series(s.spreads.iter().flat_map(|b| {
        let (a, lo, hi) = (log2(b.x) + off, y.t(b.min), y.t(b.max));
        [
            vec![(a, lo), (a, hi)],
            vec![(a - cap, lo), (a + cap, lo)],
            vec![(a - cap, hi), (a + cap, hi)],
        ]
        .map(|pts| PathElement::new(pts, style))
    }))?;
    Ok(())
}

fn log2(x: f64) -> f64 {
    x.max(1.0).log2()
}

/// What a legend entry shows beside its label.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Glyph {
    Line {
        color: RGBColor,
        dashed: bool,
        marker: Marker,
    },
    Bar {
        color: RGBColor,
        light: bool,
    },
    /// A median with its min–max bar.
    Spread,
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    label: String,
    glyph: Glyph,
}

/// The one legend of a figure: every distinct series drawn in any panel, in order of first
/// appearance, then what a bar means where there are bars. One legend above the grid
/// instead of one per panel: small multiples repeat the same series, and a legend inside
/// a panel would cover data or squeeze the shared y range.
fn legend(rows: &[Vec<Panel>]) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut spreads = false;
    for p in rows.iter().flatten() {
        for s in p.series.iter().filter(|s| !s.points.is_empty()) {
            let glyph = if p.bars.is_some() {
                Glyph::Bar {
                    color: s.color,
                    light: s.dashed,
                }
            } else {
                Glyph::Line {
                    color: s.color,
                    dashed: s.dashed,
                    marker: s.marker,
                }
            };
            let e = Entry {
                label: s.label.clone(),
                glyph,
            };
            if !entries.contains(&e) {
                entries.push(e);
            }
            spreads |= !s.spreads.is_empty();
        }
    }
    if spreads {
        entries.push(Entry {
            label: "median and min–max of the repeats".into(),
            glyph: Glyph::Spread,
        });
    }
    entries
}

const GLYPH_W: u32 = 24;
const ENTRY_GAP: u32 = 22;

fn entry_width(e: &Entry) -> u32 {
    GLYPH_W + 4 + (e.label.chars().count() as f64 * LEGEND_FONT as f64 * 0.52) as u32 + ENTRY_GAP
}

/// `entries` (by index) in lines no wider than `width`, left to right; an entry wider
/// than a line has a line of its own.
fn flow(entries: &[Entry], width: u32) -> Vec<Vec<usize>> {
    let mut lines: Vec<Vec<usize>> = Vec::new();
    let mut used = 0;
    for (i, e) in entries.iter().enumerate() {
        let w = entry_width(e);
        match lines.last_mut() {
            Some(line) if used + w <= width => line.push(i),
            _ => {
                lines.push(vec![i]);
                used = 0;
            }
        }
        used += w;
    }
    lines
}

fn draw_legend<'a>(
    area: &Area<'a>,
    entries: &[Entry],
    lines: &[Vec<usize>],
    top: i32,
) -> DrawResult<'a> {
    let (w, _) = area.dim_in_pixel();
    let text = TextStyle::from((FONT, LEGEND_FONT).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (row, line) in lines.iter().enumerate() {
        let line_w: u32 = line.iter().map(|&i| entry_width(&entries[i])).sum::<u32>() - ENTRY_GAP;
        let mut x = (w as i32 - line_w as i32) / 2;
        let y = top + row as i32 * LEGEND_ROW as i32 + LEGEND_ROW as i32 / 2;
        for &i in line {
            let e = &entries[i];
            draw_glyph(area, e.glyph, (x, y))?;
            area.draw(&Text::new(
                e.label.as_str(),
                (x + GLYPH_W as i32 + 4, y),
                text.clone(),
            ))?;
            x += entry_width(e) as i32;
        }
    }
    Ok(())
}

/// `g`, `GLYPH_W` wide, its left end at `(x, y)`.
fn draw_glyph<'a>(area: &Area<'a>, g: Glyph, (x, y): (i32, i32)) -> DrawResult<'a> {
    let mid = x + GLYPH_W as i32 / 2;
    match g {
        Glyph::Line {
            color,
            dashed,
            marker,
        } => {
            let st = color.stroke_width(2);
            if dashed {
                // Two short strokes with a gap where the marker sits.
                area.draw(&PathElement::new(vec![(x, y), (x + 7, y)], st))?;
                area.draw(&PathElement::new(vec![(x + 17, y), (x + 24, y)], st))?;
            } else {
                area.draw(&PathElement::new(vec![(x, y), (x + 24, y)], st))?;
            }
            match marker {
                Marker::Circle => area.draw(&Circle::new((mid, y), 4, color.filled()))?,
                Marker::Triangle => area.draw(&TriangleMarker::new((mid, y), 5, color.filled()))?,
                Marker::None => {}
            }
        }
        Glyph::Bar { color, light } => {
            let rect = [(x + 3, y - 6), (x + 21, y + 6)];
            if light {
                area.draw(&Rectangle::new(rect, color.mix(0.45).filled()))?;
                area.draw(&Rectangle::new(rect, color.stroke_width(1)))?;
            } else {
                area.draw(&Rectangle::new(rect, color.filled()))?;
            }
        }
        Glyph::Spread => {
            let st = RGBColor(90, 90, 90).stroke_width(2);
            area.draw(&PathElement::new(vec![(mid, y - 8), (mid, y + 8)], st))?;
            for cap in [y - 8, y + 8] {
                area.draw(&PathElement::new(vec![(mid - 4, cap), (mid + 4, cap)], st))?;
            }
            area.draw(&Circle::new((mid, y), 4, RGBColor(90, 90, 90).filled()))?;
        }
    }
    Ok(())
}

/// A linear axis (over log2 or log10 values) ticked exactly at the given keys.
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

/// How many characters of `size` fit on a line across `width`.
fn per_line(width: u32, size: u32) -> usize {
    ((width as f64 - 40.0) / (size as f64 * 0.55)).max(20.0) as usize
}

/// Text wrapped to the area's width, centred, from `top`.
fn draw_lines<'a>(
    area: &Area<'a>,
    text: &str,
    size: u32,
    color: RGBColor,
    top: i32,
) -> DrawResult<'a> {
    let (w, _) = area.dim_in_pixel();
    let style = TextStyle::from((FONT, size).into_font())
        .color(&color)
        .pos(Pos::new(HPos::Center, VPos::Top));
    for (i, line) in wrap(text, per_line(w, size)).iter().enumerate() {
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
        assert_eq!(XAxis::Rate.label(20_000f64.log2()), "20k");
        let keys: Vec<f64> = round_keys(4000f64.log2(), 40_000f64.log2())
            .into_iter()
            .map(|k| k.exp2().round())
            .collect();
        assert_eq!(
            keys,
            [5000.0, 10_000.0, 20_000.0, 50_000.0],
            "within the axis's ends"
        );
    }

    fn line(points: &[(f64, f64)], spreads: &[(f64, f64, f64)]) -> Series {
        let mut s = Series::of(Backend::Syscall, Mode::TwoCopy, "s".into(), points.to_vec());
        s.spreads = spreads
            .iter()
            .map(|&(x, min, max)| Spread { x, min, max })
            .collect();
        s
    }

    fn panel(y_label: &str, series: Series) -> Panel {
        let mut p = Panel::new("p", XAxis::Size, y_label);
        p.series.push(series);
        p
    }

    #[test]
    fn log_exactly_when_the_values_span_more_than_ten_times() {
        let fit = |v: &[f64]| YAxis::fit(v.iter().copied(), None, false).unwrap();
        assert!(!fit(&[1.0, 10.0]).log, "exactly 10×: linear");
        let log = fit(&[1.0, 10.01]);
        assert!(log.log);
        assert!(log.lo < 1.0 && log.hi > 10.01, "{log:?}");
        // Linear axes start at zero; a value at or below zero rules log out.
        assert_eq!(fit(&[2.0, 5.0]).lo, 0.0);
        assert!(!fit(&[0.0, 0.5, 100.0]).log);
        // Bars are measured from zero: never log.
        assert!(!YAxis::fit([1.0, 100.0], None, true).unwrap().log);
        assert_eq!(YAxis::fit([], None, false), None);
        // The floor raises the top only.
        assert_eq!(YAxis::fit([50.0], Some(110.0), true).unwrap().hi, 110.0);
    }

    #[test]
    fn the_bars_count_towards_the_range_and_the_log_decision() {
        // Medians within 5×, but one run 20× below the highest median.
        let p = panel(
            "y",
            line(&[(1024.0, 1.0), (4096.0, 5.0)], &[(1024.0, 0.25, 1.5)]),
        );
        let axis = y_axes(&[vec![p]])[0][0].unwrap();
        assert!(axis.log);
        assert!(axis.lo < 0.25, "{axis:?}");
    }

    #[test]
    fn panels_with_the_same_y_label_share_one_axis() {
        let small = panel("Gbit/s", line(&[(1024.0, 1.0), (4096.0, 2.0)], &[]));
        let big = panel("Gbit/s", line(&[(1024.0, 6.0), (4096.0, 8.0)], &[]));
        let other = panel("×", line(&[(1024.0, 0.5), (4096.0, 1.0)], &[]));
        let empty = Panel::empty("none", "no uring points");
        let axes = y_axes(&[vec![small, big], vec![other, empty]]);
        let shared = axes[0][0].unwrap();
        assert_eq!(axes[0][1], Some(shared));
        assert_eq!(
            shared,
            YAxis::fit([1.0, 2.0, 6.0, 8.0], None, false).unwrap()
        );
        assert!(!shared.log, "1 to 8 is under 10×");
        assert_eq!(axes[1][0], YAxis::fit([0.5, 1.0], None, false));
        assert_eq!(axes[1][1], None);
    }

    #[test]
    fn axis_ticks_are_round_and_inside_the_range() {
        let lin = YAxis {
            lo: 0.0,
            hi: 13.0,
            log: false,
        };
        assert_eq!(lin.ticks(), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
        let log = YAxis {
            lo: 0.15,
            hi: 30.0,
            log: true,
        };
        let labels: Vec<String> = log.ticks().iter().map(|&v| log.label(log.t(v))).collect();
        assert_eq!(labels, ["0.2", "0.5", "1", "2", "5", "10", "20"]);
        // Past three decades, decades alone.
        let wide = YAxis {
            lo: 0.5,
            hi: 20000.0,
            log: true,
        };
        assert_eq!(wide.ticks(), vec![1.0, 10.0, 100.0, 1000.0, 10000.0]);
    }

    #[test]
    fn only_series_with_bars_are_moved_aside_and_they_centre_on_x() {
        let plain = line(&[(1024.0, 1.0)], &[]);
        let barred = line(&[(1024.0, 1.0)], &[(1024.0, 0.5, 1.5)]);
        let offsets = dodge(&[&barred, &plain, &barred, &barred], 0.1);
        let want = [-0.1, 0.0, 0.0, 0.1];
        assert!(
            offsets.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12),
            "{offsets:?}"
        );
    }

    #[test]
    fn one_legend_lists_each_series_once_and_the_bars_when_drawn() {
        let a = line(&[(1024.0, 1.0)], &[]);
        let b = line(&[(1024.0, 2.0)], &[(1024.0, 1.5, 2.5)]);
        let rows = vec![vec![panel("y", a.clone())], vec![panel("y", b)]];
        let entries = legend(&rows);
        assert_eq!(entries.len(), 2, "{entries:?}");
        assert_eq!(entries[0].label, "s");
        assert_eq!(entries[1].glyph, Glyph::Spread);
        assert_eq!(legend(&[vec![panel("y", a)]]).len(), 1);
        // Entries wrap into lines that fit.
        let many: Vec<Entry> = (0..10)
            .map(|i| Entry {
                label: format!("syscall mode {i}"),
                glyph: Glyph::Spread,
            })
            .collect();
        let lines = flow(&many, 800);
        assert!(lines.len() > 1);
        for line in &lines {
            let w: u32 = line.iter().map(|&i| entry_width(&many[i])).sum();
            assert!(w <= 800, "{w}");
        }
        assert_eq!(lines.concat(), (0..10).collect::<Vec<_>>());
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

    #[test]
    fn a_log_axis_says_so() {
        let p = panel("Gbit/s", line(&[(1024.0, 0.5), (65536.0, 20.0)], &[]));
        let svg = render("t", &[p]).unwrap();
        assert!(svg.contains("Gbit/s, log scale"), "{svg}");
    }
}
