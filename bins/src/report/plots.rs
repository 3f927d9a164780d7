//! The report's six figures, built from a dataset as rows of panels of series (pure data,
//! tested without drawing) and drawn by [`super::chart`].
//!
//! Every figure shows every thread count (or, against threads, every size) as small
//! multiples: one row each, one column per engine (the zero-copy comparison puts the
//! engines in one panel, since comparing them is its point), each marker a median with the
//! min–max of its repeats, and the panels of one quantity on one shared y axis. A grid
//! where nothing was measured is one panel that says why, not the same reason in each cell.

use anyhow::Result;
use engine::{Backend, Mode, Workload};

use super::analysis::{missing_counters, missing_counters_note, size, threads, CACHE_COUNTERS};
use super::chart::{render_grid, y_axes, Marker, Panel, Series, Spread, XAxis, YAxis};
use super::data::{Dataset, Metric, Point};

/// One figure: its file under `plots/`, what it shows, and its panels.
#[derive(Debug, Clone)]
pub struct Figure {
    pub file: &'static str,
    /// Alt text and markdown caption.
    pub caption: &'static str,
    pub title: String,
    /// A line under the legend: what was substituted, what a value means.
    pub note: Option<String>,
    /// Panels row by row.
    pub rows: Vec<Vec<Panel>>,
}

impl Figure {
    pub fn svg(&self) -> Result<String> {
        render_grid(&self.title, self.note.as_deref(), &self.rows)
    }

    /// Every panel, row by row.
    pub fn panels(&self) -> impl Iterator<Item = &Panel> {
        self.rows.iter().flatten()
    }

    /// The y axis each panel is drawn on, shaped like [`Figure::rows`].
    pub fn y_axes(&self) -> Vec<Vec<Option<YAxis>>> {
        y_axes(&self.rows)
    }
}

/// Every figure, in report order.
pub fn figures(d: &Dataset) -> Vec<Figure> {
    vec![
        throughput_vs_size(d),
        latency_vs_threads(d),
        cache_misses_vs_size(d),
        cycles_per_byte(d),
        zc_engines(d),
        zc_copied_fraction(d),
    ]
}

/// The file names of [`figures`], in order.
pub const FILES: [&str; 6] = [
    "throughput_vs_size.svg",
    "latency_vs_threads.svg",
    "cache_misses_vs_size.svg",
    "cycles_per_byte.svg",
    "zc_engines.svg",
    "zc_copied_fraction.svg",
];

const NO_RECORDS: &str = "no records in this folder";

/// The file of [`latency_under_load`], drawn only where the folder has rate points.
pub const LOAD_FILE: &str = "latency_under_load.svg";

/// Latency under load: for every group of open-loop datasets ([`super::load::groups`])
/// and every size and thread count, a row of two panels, p50 and p99 round trips (timed
/// from each message's due time) against the messages a second achieved, a line per
/// engine × mode, each marker the medians over the runs at one requested rate with the
/// min–max of the latency as its bar. `None` where the folder has no rate point.
pub fn latency_under_load(sets: &[Dataset]) -> Option<Figure> {
    let groups = super::load::groups(sets);
    if groups.is_empty() {
        return None;
    }
    let many = groups.len() > 1;
    let y_label = "round trip from due time (µs)";
    let mut rows = Vec::new();
    for g in &groups {
        for (s, t) in g.cells() {
            let within = if many {
                format!(" ({})", g.label)
            } else {
                String::new()
            };
            let row = [(Metric::LatencyP50, "p50"), (Metric::LatencyP99, "p99")]
                .into_iter()
                .map(|(m, name)| {
                    let mut p = Panel::new(
                        format!("{name}, {}, {}{within}", size(s), threads(t)),
                        XAxis::Rate,
                        y_label,
                    );
                    p.series = g
                        .paths(s, t)
                        .into_iter()
                        .map(|(e, mode)| {
                            let mut line = Series::of(e, mode, format!("{e} {mode}"), Vec::new());
                            for at in g.runs(e, mode, s, t) {
                                let x = at.set.median(&at.point, Metric::RateAchieved);
                                let Some((x, y)) = x.zip(at.set.median(&at.point, m)) else {
                                    continue;
                                };
                                line.points.push((x, y));
                                if at.set.values(&at.point, m).len() >= 2 {
                                    if let Some((min, max)) = at.set.range(&at.point, m) {
                                        line.spreads.push(Spread { x, min, max });
                                    }
                                }
                            }
                            line
                        })
                        .collect();
                    p.no_data =
                        format!("no rate point with latency at {}, {}", size(s), threads(t));
                    p
                })
                .collect();
            rows.push(row);
        }
    }
    let title = match groups.as_slice() {
        [one] => format!("Latency under load ({})", one.label),
        _ => "Latency under load".to_owned(),
    };
    Some(Figure {
        file: LOAD_FILE,
        caption: "Latency under load",
        title,
        note: Some(
            "x: the messages a second the run sent (median over its runs) at each requested rate; y: round trips timed from each message's due time, so a late send counts"
                .into(),
        ),
        rows,
    })
}

/// `echo, depth 1`: what every panel of a figure shares.
fn fixed(d: &Dataset) -> String {
    let rate = d.rate.map_or(String::new(), |r| {
        format!(", at {} msg/s", crate::results::rate_name(r))
    });
    format!("{}, depth {}{rate}", d.workload, d.depth)
}

fn figure(
    file: &'static str,
    caption: &'static str,
    title: String,
    rows: Vec<Vec<Panel>>,
) -> Figure {
    Figure {
        file,
        caption,
        title,
        note: None,
        rows,
    }
}

/// A figure of one panel saying why it has nothing to show.
fn nothing(file: &'static str, caption: &'static str, title: String, panel: Panel) -> Figure {
    figure(file, caption, title, vec![vec![panel]])
}

/// `rows`, or where not one panel has data, one panel giving `why`: the same reason in
/// every cell of a grid says nothing more than once.
fn or_nothing(rows: Vec<Vec<Panel>>, title: &str, why: String) -> Vec<Vec<Panel>> {
    if rows.iter().flatten().any(Panel::has_data) {
        rows
    } else {
        vec![vec![Panel::empty(title, why)]]
    }
}

/// `no uring points at 2 threads`.
fn no_points(e: Backend, t: usize) -> String {
    format!("no {e} points at {}", threads(t))
}

/// Whether `e` ran anything at `t` threads.
fn ran(d: &Dataset, e: Backend, t: usize) -> bool {
    d.points().any(|p| p.engine == e && p.threads == t)
}

/// The series of `m` (× `scale`) for `engine`/`mode` at `at`'s points, each placed at its
/// x: the median as the point, and where at least two repeats measured it, their min–max
/// as its bar.
fn series(
    d: &Dataset,
    engine: Backend,
    mode: Mode,
    m: Metric,
    scale: f64,
    at: impl IntoIterator<Item = (f64, Point)>,
) -> Series {
    let mut s = Series::of(engine, mode, format!("{engine} {mode}"), Vec::new());
    for (x, p) in at {
        let Some(median) = d.median(&p, m) else {
            continue;
        };
        s.points.push((x, median * scale));
        if d.values(&p, m).len() >= 2 {
            if let Some((min, max)) = d.range(&p, m) {
                s.spreads.push(Spread {
                    x,
                    min: min * scale,
                    max: max * scale,
                });
            }
        }
    }
    s
}

/// [`series`] against size, at `t` threads.
fn by_size(d: &Dataset, engine: Backend, mode: Mode, t: usize, m: Metric, scale: f64) -> Series {
    let at = d
        .sizes_of(engine, mode, t)
        .into_iter()
        .map(|s| (s as f64, d.point(engine, mode, s, t)));
    series(d, engine, mode, m, scale, at)
}

/// Small multiples: a row per key (a thread count, a size), a column per engine.
fn engine_grid(keys: &[usize], panel: impl Fn(Backend, usize) -> Panel) -> Vec<Vec<Panel>> {
    keys.iter()
        .map(|&k| Backend::ALL.iter().map(|&e| panel(e, k)).collect())
        .collect()
}

/// `m` (× `scale`) against size: a row per thread count, a column per engine, a series
/// per mode of that engine among `modes`; `absent` says why a panel has no point.
fn size_grid(
    d: &Dataset,
    y_label: &str,
    m: Metric,
    scale: f64,
    modes: &[Mode],
    absent: impl Fn(Backend, usize) -> String,
) -> Vec<Vec<Panel>> {
    engine_grid(&d.threads(), |e, t| {
        let mut p = Panel::new(format!("{e} engine, {}", threads(t)), XAxis::Size, y_label);
        p.series = d
            .modes(Some(e))
            .into_iter()
            .filter(|mode| modes.contains(mode))
            .map(|mode| by_size(d, e, mode, t, m, scale))
            .collect();
        p.no_data = absent(e, t);
        p
    })
}

fn throughput_vs_size(d: &Dataset) -> Figure {
    let (file, caption) = (FILES[0], "Throughput vs message size");
    if d.is_empty() {
        return nothing(
            file,
            caption,
            caption.into(),
            Panel::empty(caption, NO_RECORDS),
        );
    }
    let rows = size_grid(
        d,
        "throughput (Gbit/s)",
        Metric::Throughput,
        1.0,
        Mode::ALL,
        no_points,
    );
    figure(file, caption, format!("{caption} ({})", fixed(d)), rows)
}

fn latency_vs_threads(d: &Dataset) -> Figure {
    let (file, caption) = (FILES[1], "Mean round-trip latency vs client threads");
    let title = format!("{caption} ({})", fixed(d));
    if d.is_empty() {
        return nothing(
            file,
            caption,
            caption.into(),
            Panel::empty(caption, NO_RECORDS),
        );
    }
    if d.workload == Workload::Stream {
        let msg = "no data: the stream workload is one-way bulk with no round trips, so it has no latency; run the echo workload for this plot";
        return nothing(
            file,
            caption,
            title,
            Panel::empty("stream: no latency", msg),
        );
    }
    // A row per size: each row is one figure of the old kind, and rows compare sizes.
    let rows = engine_grid(&d.sizes(), |e, s| {
        let mut p = Panel::new(
            format!("{e} engine, {} messages", size(s)),
            XAxis::Threads,
            "mean round-trip latency (µs)",
        );
        p.series = d
            .modes(Some(e))
            .into_iter()
            .map(|mode| {
                let at = d
                    .threads()
                    .into_iter()
                    .map(|t| (t as f64, d.point(e, mode, s, t)));
                series(d, e, mode, Metric::LatencyMean, 1.0, at)
            })
            .collect();
        p.no_data = format!("no {e} points with latency at {}", size(s));
        p
    });
    figure(file, caption, title, rows)
}

fn cache_misses_vs_size(d: &Dataset) -> Figure {
    let (file, caption) = (FILES[2], "Client cache load misses vs message size");
    if d.is_empty() {
        return nothing(
            file,
            caption,
            caption.into(),
            Panel::empty(caption, NO_RECORDS),
        );
    }
    let missing = d.client_counters_missing();
    let mut rows = Vec::new();
    for (level, metric, counter) in CACHE_COUNTERS {
        let why = missing_counters_note(&[counter], missing.as_deref());
        let mut grid = size_grid(
            d,
            &format!("client {level} load misses per KiB moved"),
            metric,
            1024.0,
            Mode::ALL,
            |e, t| {
                if ran(d, e, t) {
                    why.clone()
                } else {
                    no_points(e, t)
                }
            },
        );
        for p in grid.iter_mut().flatten() {
            p.title = format!("{level}: {}", p.title);
        }
        rows.extend(or_nothing(grid, &format!("{level} ({counter})"), why));
    }
    figure(file, caption, format!("{caption} ({})", fixed(d)), rows)
}

fn cycles_per_byte(d: &Dataset) -> Figure {
    let (file, caption) = (
        FILES[3],
        "Client cycles (or CPU time) per byte vs message size",
    );
    if d.is_empty() {
        return nothing(
            file,
            caption,
            caption.into(),
            Panel::empty(caption, NO_RECORDS),
        );
    }
    let have_cycles = d
        .points()
        .any(|p| d.median(p, Metric::CyclesPerByte).is_some());
    let (metric, y_label, title) = if have_cycles {
        (
            Metric::CyclesPerByte,
            "client cycles per byte moved",
            format!("Client cycles per byte vs message size ({})", fixed(d)),
        )
    } else {
        (
            Metric::CpuNsPerByte,
            "CPU-ns per byte (cycles not available)",
            format!(
                "Client CPU-ns per byte vs message size, cycles not available ({})",
                fixed(d)
            ),
        )
    };
    let why = "no CPU time or cycles were recorded";
    let grid = size_grid(d, y_label, metric, 1.0, Mode::ALL, |e, t| {
        if ran(d, e, t) {
            why.into()
        } else {
            no_points(e, t)
        }
    });
    let mut f = figure(file, caption, title, or_nothing(grid, caption, why.into()));
    if !have_cycles {
        let (_, why) = missing_counters(&["cycles"], d.client_counters_missing().as_deref());
        f.note = Some(format!("CPU-ns per byte plotted instead of cycles: {why}"));
    }
    f
}

/// The zero-copy paths, each measured against its own engine's two-copy.
const ZC: [(Backend, Mode); 3] = [
    (Backend::Syscall, Mode::Zc),
    (Backend::Uring, Mode::Zc),
    (Backend::Uring, Mode::ZcFixed),
];

fn zc_engines(d: &Dataset) -> Figure {
    let (file, caption) = (FILES[4], "Zero-copy: syscall vs io_uring");
    if d.is_empty() {
        return nothing(
            file,
            caption,
            caption.into(),
            Panel::empty(caption, NO_RECORDS),
        );
    }
    let title = format!(
        "Zero-copy throughput: syscall MSG_ZEROCOPY vs io_uring SENDMSG_ZC / SEND_ZC ({})",
        fixed(d)
    );
    let zc: Vec<(Backend, Mode)> = ZC
        .into_iter()
        .filter(|&(e, m)| d.points().any(|p| p.engine == e && p.mode == m))
        .collect();
    if zc.is_empty() {
        let msg = "no zero-copy points (zc, zc-fixed) in this run";
        return nothing(file, caption, title, Panel::empty("zero-copy", msg));
    }
    // Engines in one panel, since comparing them is the point: a column per view instead.
    let rows = d.threads().into_iter().map(|t| zc_row(d, &zc, t)).collect();
    figure(file, caption, title, rows)
}

/// `zc`'s throughput at `t` threads beside its two-copy baselines, and relative to them.
fn zc_row(d: &Dataset, zc: &[(Backend, Mode)], t: usize) -> Vec<Panel> {
    let mut abs = Panel::new(
        format!("throughput, {}", threads(t)),
        XAxis::Size,
        "throughput (Gbit/s)",
    );
    abs.no_data = format!("no zero-copy points at {}", threads(t));
    let mut rel = Panel::new(
        format!("relative to the same engine's two-copy, {}", threads(t)),
        XAxis::Size,
        "throughput ÷ same engine's two-copy (×)",
    );
    rel.no_data = "no two-copy baseline at the zero-copy points".into();
    let mut xs: Vec<f64> = Vec::new();
    for &(e, m) in zc {
        abs.series
            .push(by_size(d, e, m, t, Metric::Throughput, 1.0));
        let ratios = zc_ratios(d, e, m, t);
        xs.extend(ratios.points.iter().map(|r| r.0));
        rel.series.push(ratios);
    }
    for e in [Backend::Syscall, Backend::Uring] {
        let mut base = by_size(d, e, Mode::TwoCopy, t, Metric::Throughput, 1.0);
        if !base.points.is_empty() && zc.iter().any(|z| z.0 == e) {
            base.label = format!("{e} two-copy (baseline)");
            abs.series.push(base);
        }
    }
    if !xs.is_empty() {
        let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        rel.series.push(Series {
            label: "parity with two-copy (1.00×)".into(),
            color: plotters::style::RGBColor(120, 120, 120),
            dashed: true,
            marker: Marker::None,
            points: vec![(lo, 1.0), (hi, 1.0)],
            spreads: Vec::new(),
        });
    }
    if !abs.has_data() {
        rel.no_data.clone_from(&abs.no_data);
    }
    vec![abs, rel]
}

/// `e`/`m`'s median throughput over `e`'s two-copy median at each size at `t` threads.
/// The bar is the widest the ratio of one run to another can be: the slowest zero-copy run
/// over the fastest two-copy run, to the fastest over the slowest (the repeats of two
/// points are not pairs, so no narrower range is honest).
fn zc_ratios(d: &Dataset, e: Backend, m: Mode, t: usize) -> Series {
    let mut s = Series::of(e, m, format!("{e} {m} / {e} two-copy"), Vec::new());
    let tp = Metric::Throughput;
    for size in d.sizes_of(e, m, t) {
        let (zc, base) = (d.point(e, m, size, t), d.point(e, Mode::TwoCopy, size, t));
        let (Some(a), Some(b)) = (d.median(&zc, tp), d.median(&base, tp)) else {
            continue;
        };
        if b <= 0.0 {
            continue;
        }
        let x = size as f64;
        s.points.push((x, a / b));
        let runs = d.values(&zc, tp).len().max(d.values(&base, tp).len());
        let ranges = d.range(&zc, tp).zip(d.range(&base, tp));
        let ranges = ranges.filter(|(_, (b_lo, _))| runs >= 2 && *b_lo > 0.0);
        if let Some(((a_lo, a_hi), (b_lo, b_hi))) = ranges {
            s.spreads.push(Spread {
                x,
                min: a_lo / b_hi,
                max: a_hi / b_lo,
            });
        }
    }
    s
}

fn zc_copied_fraction(d: &Dataset) -> Figure {
    let (file, caption) = (FILES[5], "Zero-copy completions the kernel marked copied");
    if d.is_empty() {
        return nothing(
            file,
            caption,
            caption.into(),
            Panel::empty(caption, NO_RECORDS),
        );
    }
    let zc_modes = [Mode::Zc, Mode::ZcFixed];
    let ran_zc = |e: Backend, t: usize| {
        d.points()
            .any(|p| p.engine == e && p.threads == t && zc_modes.contains(&p.mode))
    };
    let mut grid = size_grid(
        d,
        "completions marked copied (%)",
        Metric::ZcCopied,
        100.0,
        &zc_modes,
        |e, t| {
            if ran_zc(e, t) {
                "no zero-copy completions were recorded".into()
            } else {
                format!(
                    "no zero-copy points (zc, zc-fixed) on {e} at {}",
                    threads(t)
                )
            }
        },
    );
    for p in grid.iter_mut().flatten() {
        p.y_max = Some(110.0);
        p.bars = Some("%");
    }
    let why = if d.points().any(|p| zc_modes.contains(&p.mode)) {
        "no zero-copy completions were recorded"
    } else {
        "no zero-copy points (zc, zc-fixed) in this run"
    };
    let rows = or_nothing(
        grid,
        "client zero-copy completions marked copied",
        why.into(),
    );
    let mut f = figure(file, caption, format!("{caption} ({})", fixed(d)), rows);
    f.note = Some("100% = every zero-copy send was copied after all (no copy avoided)".into());
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::record;

    const K: usize = 1024;

    fn syscall_only() -> Dataset {
        let mut recs = Vec::new();
        for s in [K, 64 * K] {
            for m in [Mode::TwoCopy, Mode::OneCopy] {
                let mut r = record(Backend::Syscall, m, s, 1, 1.0);
                let c = r.client.counters.as_mut().unwrap();
                c.cycles = None;
                c.l1d_load_misses = None;
                c.llc_load_misses = None;
                r.client.cycles_per_byte = None;
                r.client.counters_missing =
                    Some("cycles+l1d_load_misses+llc_load_misses".parse().unwrap());
                recs.push(r);
            }
        }
        Dataset::new(Workload::Echo, 1, recs)
    }

    /// Every engine's two-copy and zero-copy modes at 1K and 64K on 1 and 2 threads, one
    /// record per factor in `repeats`: throughput 1 Gbit/s at 1K and `top` at 64K, times
    /// the factor.
    fn matrix(top: f64, repeats: &[f64]) -> Dataset {
        let mut recs = Vec::new();
        for (e, m) in [
            (Backend::Syscall, Mode::TwoCopy),
            (Backend::Syscall, Mode::Zc),
            (Backend::Uring, Mode::TwoCopy),
            (Backend::Uring, Mode::Zc),
            (Backend::Uring, Mode::ZcFixed),
        ] {
            for (s, gbps) in [(K, 1.0), (64 * K, top)] {
                for t in [1, 2] {
                    for f in repeats {
                        let mut r = record(e, m, s, t, gbps * f);
                        if m != Mode::TwoCopy {
                            r.client.zc_copied_fraction = Some(*f / 2.0);
                        }
                        recs.push(r);
                    }
                }
            }
        }
        Dataset::new(Workload::Echo, 1, recs)
    }

    fn titles(f: &Figure) -> Vec<Vec<&str>> {
        f.rows
            .iter()
            .map(|r| r.iter().map(|p| p.title.as_str()).collect())
            .collect()
    }

    #[test]
    fn missing_data_becomes_visible_messages() {
        let d = syscall_only();
        let f = figures(&d);
        assert_eq!(f.iter().map(|f| f.file).collect::<Vec<_>>(), FILES);
        // No uring points: the uring panel says so.
        assert!(f[0].rows[0][0].has_data());
        assert!(!f[0].rows[0][1].has_data());
        assert_eq!(
            f[0].rows[0][1].no_data_text(),
            "no data: no uring points at 1 thread"
        );
        // Cache counters missing: named, not zeros, once per counter.
        assert_eq!(
            titles(&f[2]),
            [["L1d (l1d_load_misses)"], ["LLC (llc_load_misses)"]]
        );
        assert!(f[2].panels().all(|p| !p.has_data()));
        assert_eq!(
            f[2].rows[0][0].no_data_text(),
            "not measured on this machine: the client counter l1d_load_misses is missing \
             (counters_missing: cycles+l1d_load_misses+llc_load_misses)"
        );
        // No cycles: CPU time instead, and the title and the note say so.
        assert!(f[3].title.contains("cycles not available"));
        assert!(f[3].note.as_ref().unwrap().contains("cycles"));
        assert!(f[3].rows[0][0].has_data());
        // No zero-copy points at all: one panel each.
        assert_eq!(titles(&f[4]), [["zero-copy"]]);
        assert!(f[4].rows[0][0]
            .no_data_text()
            .starts_with("no data: no zero-copy points"));
        assert_eq!(f[5].rows.len(), 1);
        assert_eq!(
            f[5].rows[0][0].no_data_text(),
            "no data: no zero-copy points (zc, zc-fixed) in this run"
        );
        for fig in &f {
            let svg = fig.svg().unwrap();
            assert!(svg.starts_with("<svg"), "{}", fig.file);
        }
    }

    #[test]
    fn figures_against_size_have_a_row_per_thread_count_and_a_column_per_engine() {
        let f = figures(&matrix(8.0, &[1.0]));
        let grid = [
            ["syscall engine, 1 thread", "uring engine, 1 thread"],
            ["syscall engine, 2 threads", "uring engine, 2 threads"],
        ];
        assert_eq!(titles(&f[0]), grid);
        assert_eq!(titles(&f[3]), grid);
        assert_eq!(titles(&f[5]), grid);
        // Cache: both counters, each its own rows.
        assert_eq!(titles(&f[2]).len(), 4);
        assert_eq!(f[2].rows[2][1].title, "LLC: uring engine, 1 thread");
        // Against threads: a row per size.
        assert_eq!(
            titles(&f[1]),
            [
                ["syscall engine, 1K messages", "uring engine, 1K messages"],
                ["syscall engine, 64K messages", "uring engine, 64K messages"],
            ]
        );
        assert_eq!(f[1].rows[1][1].series.len(), 3, "uring's three modes");
        // Zero-copy engines share panels; the columns are the two views.
        assert_eq!(
            titles(&f[4])[1],
            [
                "throughput, 2 threads",
                "relative to the same engine's two-copy, 2 threads"
            ]
        );
        // Each panel holds its own engine and thread count only.
        let uring_2 = &f[0].rows[1][1];
        assert_eq!(uring_2.series.len(), 3);
        assert!(uring_2.series.iter().all(|s| s.label.starts_with("uring")));
        assert!(f.iter().flat_map(Figure::panels).all(Panel::has_data));
    }

    #[test]
    fn panels_of_one_quantity_share_a_y_axis() {
        let mut d = matrix(8.0, &[1.0]).records().to_vec();
        // Faster at 2 threads: those panels still use everybody's axis.
        for r in d.iter_mut().filter(|r| r.config.threads == 2) {
            r.summary.throughput_gbps *= 1.2;
        }
        // Fewer LLC than L1d misses.
        for r in &mut d {
            let c = r.client.counters.as_mut().unwrap();
            c.llc_load_misses = c.llc_load_misses.map(|n| n / 4);
        }
        let f = figures(&Dataset::new(Workload::Echo, 1, d));
        for fig in [&f[0], &f[1], &f[3], &f[5]] {
            let axes: Vec<YAxis> = fig.y_axes().concat().into_iter().flatten().collect();
            assert_eq!(axes.len(), 4, "{}", fig.file);
            assert!(axes.iter().all(|a| *a == axes[0]), "{}: {axes:?}", fig.file);
        }
        let top = f[0].y_axes()[0][0].unwrap();
        assert!(!top.log && top.hi > 9.6, "{top:?}");
        // Cache: per counter; zero-copy: per column.
        let cache = f[2].y_axes();
        assert_eq!(cache[0][0], cache[1][1]);
        assert_eq!(cache[2][0], cache[3][1]);
        assert_ne!(cache[0][0], cache[2][0], "L1d and LLC differ");
        let zc = f[4].y_axes();
        assert_eq!(zc[0][0], zc[1][0]);
        assert_eq!(zc[0][1], zc[1][1]);
        assert_ne!(zc[0][0], zc[0][1]);
        // Percentages keep room above 100%.
        assert_eq!(f[5].y_axes()[0][0].unwrap().hi, 110.0);
    }

    #[test]
    fn a_figure_is_log_exactly_when_its_values_and_bars_span_more_than_ten_times() {
        let log = |d: &Dataset| throughput_vs_size(d).y_axes()[0][0].unwrap().log;
        assert!(!log(&matrix(10.0, &[1.0])), "1 to 10: linear");
        assert!(log(&matrix(10.5, &[1.0])));
        // Medians 1.1 to 8.8 (8×), but the runs go from 0.95 to 10.
        let spread = matrix(8.0, &[0.95, 1.25]);
        let medians: Vec<f64> = throughput_vs_size(&spread)
            .panels()
            .flat_map(|p| &p.series)
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .collect();
        let hi = medians.iter().copied().fold(0.0, f64::max);
        let lo = medians.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(hi / lo < 10.0, "{lo} {hi}");
        assert!(log(&spread));
        // The same values as bars (percentages) stay linear.
        assert!(
            !zc_copied_fraction(&matrix(8.0, &[0.05, 1.0])).y_axes()[0][0]
                .unwrap()
                .log
        );
    }

    #[test]
    fn bars_carry_the_min_and_max_of_the_repeats() {
        let f = figures(&matrix(8.0, &[0.9, 1.0, 1.2]));
        let s = &f[0].rows[0][0].series[0];
        assert_eq!(s.label, "syscall two-copy");
        assert_eq!(s.points, [(1024.0, 1.0), (65536.0, 8.0)]);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        let ends: Vec<(f64, f64, f64)> = s.spreads.iter().map(|b| (b.x, b.min, b.max)).collect();
        assert_eq!(ends.len(), 2);
        assert!(close(ends[0].1, 0.9) && close(ends[0].2, 1.2), "{ends:?}");
        assert!(close(ends[1].1, 7.2) && close(ends[1].2, 9.6), "{ends:?}");
        // Scaled like the points: percentages.
        let copied = &f[5].rows[0][0].series[0].spreads[0];
        assert!(
            close(copied.min, 45.0) && close(copied.max, 60.0),
            "{copied:?}"
        );
        // A ratio's bar: slowest zero-copy run over the fastest two-copy run, and back.
        let ratio = &f[4].rows[0][1].series[0];
        assert_eq!(ratio.points[0], (1024.0, 1.0));
        let b = ratio.spreads[0];
        assert!(close(b.min, 0.9 / 1.2) && close(b.max, 1.2 / 0.9), "{b:?}");
        // One run: a median, no bar.
        let single = figures(&matrix(8.0, &[1.0]));
        assert!(single
            .iter()
            .flat_map(Figure::panels)
            .flat_map(|p| &p.series)
            .all(|s| s.spreads.is_empty()));
    }

    #[test]
    fn a_multi_thread_figure_draws_every_panel_with_bars_on_a_log_axis() {
        let d = matrix(30.0, &[0.9, 1.1]);
        let f = throughput_vs_size(&d);
        let svg = f.svg().unwrap();
        for title in f.panels().map(|p| &p.title) {
            assert!(svg.contains(title.as_str()), "{title}");
        }
        assert!(svg.contains("throughput (Gbit/s), log scale"));
        assert!(svg.contains("median and min–max of the repeats"));
        assert!(svg.contains("uring zc-fixed"));
        for fig in figures(&d) {
            assert!(
                fig.svg().unwrap().trim_end().ends_with("</svg>"),
                "{}",
                fig.file
            );
        }
    }

    #[test]
    fn stream_latency_plot_says_there_is_none() {
        let mut r = record(Backend::Syscall, Mode::TwoCopy, K, 1, 1.0);
        r.config.workload = Workload::Stream;
        r.latency = None;
        let d = Dataset::new(Workload::Stream, 1, vec![r]);
        let f = latency_vs_threads(&d);
        assert!(f.rows[0][0].no_data_text().contains("no round trips"));
        assert!(f.svg().unwrap().contains("stream: no latency"));
    }

    #[test]
    fn an_empty_folder_still_draws_every_figure() {
        let d = Dataset::new(Workload::Echo, 1, Vec::new());
        for f in figures(&d) {
            assert!(f.svg().unwrap().contains(NO_RECORDS), "{}", f.file);
        }
    }
}
