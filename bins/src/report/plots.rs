//! The report's six figures, built from a dataset as panels of series (pure data, tested
//! without drawing) and drawn by [`super::chart`].

use anyhow::Result;
use engine::{Backend, Mode, Workload};

use super::analysis::{missing_counters, missing_counters_note, size, threads, CACHE_COUNTERS};
use super::chart::{render_grid, Marker, Panel, Series, XAxis};
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
    pub panels: Vec<Panel>,
}

impl Figure {
    pub fn svg(&self) -> Result<String> {
        render_grid(
            &self.title,
            self.note.as_deref(),
            std::slice::from_ref(&self.panels),
        )
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

/// `echo, depth 1, 1 thread`.
fn fixed(d: &Dataset, extra: &str) -> String {
    format!("{}, depth {}, {extra}", d.workload, d.depth)
}

fn figure(file: &'static str, caption: &'static str, title: String, panels: Vec<Panel>) -> Figure {
    Figure {
        file,
        caption,
        title,
        note: None,
        panels,
    }
}

/// `m` of `engine`/`mode` at `threads` against size.
fn by_size(
    d: &Dataset,
    engine: Backend,
    mode: Mode,
    t: usize,
    m: Metric,
    scale: f64,
) -> Vec<(f64, f64)> {
    d.sizes_of(engine, mode, t)
        .into_iter()
        .filter_map(|s| {
            d.median(&Point::new(engine, mode, s, t), m)
                .map(|v| (s as f64, v * scale))
        })
        .collect()
}

/// One series per engine × mode present (restricted to `modes`), `m` against size.
fn engine_mode_series(d: &Dataset, t: usize, modes: &[Mode], m: Metric, scale: f64) -> Vec<Series> {
    let mut out = Vec::new();
    for engine in d.engines() {
        for mode in d.modes(Some(engine)) {
            if modes.contains(&mode) {
                out.push(Series::of(
                    engine,
                    mode,
                    format!("{engine} {mode}"),
                    by_size(d, engine, mode, t, m, scale),
                ));
            }
        }
    }
    out
}

/// Per-engine panels with one series per mode; `points` gives a mode's points.
fn per_engine(
    d: &Dataset,
    title: impl Fn(Backend) -> String,
    x: XAxis,
    y_label: &str,
    points: impl Fn(Backend, Mode) -> Vec<(f64, f64)>,
    absent: impl Fn(Backend) -> String,
) -> Vec<Panel> {
    Backend::ALL
        .iter()
        .map(|&engine| {
            let mut p = Panel::new(title(engine), x, y_label);
            p.no_data = absent(engine);
            p.series = d
                .modes(Some(engine))
                .into_iter()
                .map(|mode| Series::of(engine, mode, mode.to_string(), points(engine, mode)))
                .collect();
            p
        })
        .collect()
}

fn throughput_vs_size(d: &Dataset) -> Figure {
    let file = FILES[0];
    let caption = "Throughput vs message size";
    let Some(t) = d.min_threads() else {
        return figure(
            file,
            caption,
            caption.into(),
            vec![Panel::empty(caption, NO_RECORDS)],
        );
    };
    let panels = per_engine(
        d,
        |e| format!("{e} engine"),
        XAxis::Size,
        "throughput (Gbit/s)",
        |e, m| by_size(d, e, m, t, Metric::Throughput, 1.0),
        |e| format!("no {e} points at {}", threads(t)),
    );
    figure(
        file,
        caption,
        format!("Throughput vs message size ({})", fixed(d, &threads(t))),
        panels,
    )
}

fn latency_vs_threads(d: &Dataset) -> Figure {
    let file = FILES[1];
    let caption = "Mean round-trip latency vs client threads";
    let Some(s) = d.size_near(16 << 10) else {
        return figure(
            file,
            caption,
            caption.into(),
            vec![Panel::empty(caption, NO_RECORDS)],
        );
    };
    let at = if s == 16 << 10 {
        format!("{} messages", size(s))
    } else {
        format!("{} messages, the size closest to 16K", size(s))
    };
    let title = format!("{caption} ({})", fixed(d, &at));
    if d.workload == Workload::Stream {
        let msg = "no data: the stream workload is one-way bulk with no round trips, so it has no latency; run the echo workload for this plot";
        return figure(
            file,
            caption,
            title,
            vec![Panel::empty("stream: no latency", msg)],
        );
    }
    let panels = per_engine(
        d,
        |e| format!("{e} engine"),
        XAxis::Threads,
        "mean round-trip latency (µs)",
        |e, m| {
            d.threads()
                .into_iter()
                .filter_map(|t| {
                    d.median(&Point::new(e, m, s, t), Metric::LatencyMean)
                        .map(|v| (t as f64, v))
                })
                .collect()
        },
        |e| format!("no {e} points with latency at {}", size(s)),
    );
    figure(file, caption, title, panels)
}

fn cache_misses_vs_size(d: &Dataset) -> Figure {
    let file = FILES[2];
    let caption = "Client cache load misses vs message size";
    let Some(t) = d.min_threads() else {
        return figure(
            file,
            caption,
            caption.into(),
            vec![Panel::empty(caption, NO_RECORDS)],
        );
    };
    let missing = d.client_counters_missing();
    let panels = CACHE_COUNTERS
        .iter()
        .map(|&(level, metric, counter)| {
            let mut p = Panel::new(
                format!("{level} ({counter})"),
                XAxis::Size,
                "client load misses per KiB moved",
            );
            p.series = engine_mode_series(d, t, Mode::ALL, metric, 1024.0);
            p.no_data = missing_counters_note(&[counter], missing.as_deref());
            p
        })
        .collect();
    figure(
        file,
        caption,
        format!("{caption} ({})", fixed(d, &threads(t))),
        panels,
    )
}

fn cycles_per_byte(d: &Dataset) -> Figure {
    let file = FILES[3];
    let caption = "Client cycles (or CPU time) per byte vs message size";
    let Some(t) = d.min_threads() else {
        return figure(
            file,
            caption,
            caption.into(),
            vec![Panel::empty(caption, NO_RECORDS)],
        );
    };
    let cycles = engine_mode_series(d, t, Mode::ALL, Metric::CyclesPerByte, 1.0);
    let have_cycles = cycles.iter().any(|s| !s.points.is_empty());
    let mut note = None;
    let (title, mut panel) = if have_cycles {
        let mut p = Panel::new(
            "client cycles per byte",
            XAxis::Size,
            "client cycles per byte moved",
        );
        p.series = cycles;
        (
            format!(
                "Client cycles per byte vs message size ({})",
                fixed(d, &threads(t))
            ),
            p,
        )
    } else {
        let mut p = Panel::new(
            "client CPU time per byte (cycles not available)",
            XAxis::Size,
            "CPU-ns per byte (cycles not available)",
        );
        p.series = engine_mode_series(d, t, Mode::ALL, Metric::CpuNsPerByte, 1.0);
        let (_, why) = missing_counters(&["cycles"], d.client_counters_missing().as_deref());
        note = Some(format!("CPU-ns per byte plotted instead of cycles: {why}"));
        (
            format!(
                "Client CPU-ns per byte vs message size, cycles not available ({})",
                fixed(d, &threads(t))
            ),
            p,
        )
    };
    panel.no_data = "no CPU time or cycles were recorded".into();
    let mut f = figure(file, caption, title, vec![panel]);
    f.note = note;
    f
}

fn zc_engines(d: &Dataset) -> Figure {
    let file = FILES[4];
    let caption = "Zero-copy: syscall vs io_uring";
    let Some(t) = d.min_threads() else {
        return figure(
            file,
            caption,
            caption.into(),
            vec![Panel::empty(caption, NO_RECORDS)],
        );
    };
    let title = format!(
        "Zero-copy throughput: syscall MSG_ZEROCOPY vs io_uring SENDMSG_ZC / SEND_ZC ({})",
        fixed(d, &threads(t))
    );
    let zc: Vec<(Backend, Mode)> = [
        (Backend::Syscall, Mode::Zc),
        (Backend::Uring, Mode::Zc),
        (Backend::Uring, Mode::ZcFixed),
    ]
    .into_iter()
    .filter(|(e, m)| !d.sizes_of(*e, *m, t).is_empty())
    .collect();
    if zc.is_empty() {
        let msg = format!(
            "no zero-copy points (zc, zc-fixed) at {} in this run",
            threads(t)
        );
        return figure(file, caption, title, vec![Panel::empty("zero-copy", msg)]);
    }
    let mut abs = Panel::new("throughput", XAxis::Size, "throughput (Gbit/s)");
    let mut rel = Panel::new(
        "relative to the same engine's two-copy",
        XAxis::Size,
        "throughput ÷ same engine's two-copy (×)",
    );
    rel.no_data = "no two-copy baseline at the zero-copy points".into();
    let mut xs: Vec<f64> = Vec::new();
    for &(e, m) in &zc {
        abs.series.push(Series::of(
            e,
            m,
            format!("{e} {m}"),
            by_size(d, e, m, t, Metric::Throughput, 1.0),
        ));
        let base = |s: usize| d.median(&Point::new(e, Mode::TwoCopy, s, t), Metric::Throughput);
        let ratios: Vec<(f64, f64)> = d
            .sizes_of(e, m, t)
            .into_iter()
            .filter_map(|s| {
                let a = d.median(&Point::new(e, m, s, t), Metric::Throughput)?;
                let b = base(s).filter(|b| *b > 0.0)?;
                Some((s as f64, a / b))
            })
            .collect();
        xs.extend(ratios.iter().map(|r| r.0));
        rel.series
            .push(Series::of(e, m, format!("{e} {m} / {e} two-copy"), ratios));
    }
    for e in [Backend::Syscall, Backend::Uring] {
        let base = by_size(d, e, Mode::TwoCopy, t, Metric::Throughput, 1.0);
        if !base.is_empty() && zc.iter().any(|z| z.0 == e) {
            abs.series.push(Series::of(
                e,
                Mode::TwoCopy,
                format!("{e} two-copy (baseline)"),
                base,
            ));
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
    figure(file, caption, title, vec![abs, rel])
}

fn zc_copied_fraction(d: &Dataset) -> Figure {
    let file = FILES[5];
    let caption = "Zero-copy completions the kernel marked copied";
    let Some(t) = d.min_threads() else {
        return figure(
            file,
            caption,
            caption.into(),
            vec![Panel::empty(caption, NO_RECORDS)],
        );
    };
    let mut p = Panel::new(
        "client zero-copy completions marked copied",
        XAxis::Size,
        "completions marked copied (%)",
    );
    p.y_max = Some(110.0);
    p.bars = Some("%");
    p.series = engine_mode_series(d, t, &[Mode::Zc, Mode::ZcFixed], Metric::ZcCopied, 100.0);
    p.no_data = if p.series.is_empty() {
        format!(
            "no zero-copy points (zc, zc-fixed) at {} in this run",
            threads(t)
        )
    } else {
        "no zero-copy completions were recorded".into()
    };
    let mut f = figure(
        file,
        caption,
        format!("{caption} ({})", fixed(d, &threads(t))),
        vec![p],
    );
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

    #[test]
    fn missing_data_becomes_visible_messages() {
        let d = syscall_only();
        let f = figures(&d);
        assert_eq!(f.iter().map(|f| f.file).collect::<Vec<_>>(), FILES);
        // No uring points: the uring panel says so.
        assert!(f[0].panels[0].has_data());
        assert!(!f[0].panels[1].has_data());
        assert_eq!(
            f[0].panels[1].no_data_text(),
            "no data: no uring points at 1 thread"
        );
        // Cache counters missing: named, not zeros.
        assert!(f[2].panels.iter().all(|p| !p.has_data()));
        assert_eq!(
            f[2].panels[0].no_data_text(),
            "not measured on this machine: the client counter l1d_load_misses is missing \
             (counters_missing: cycles+l1d_load_misses+llc_load_misses)"
        );
        // No cycles: CPU time instead, and the title says so.
        assert!(f[3].title.contains("cycles not available"));
        assert!(f[3].panels[0].has_data());
        // No zero-copy points at all.
        assert_eq!(f[4].panels.len(), 1);
        assert!(f[4].panels[0]
            .no_data_text()
            .starts_with("no data: no zero-copy points"));
        assert!(!f[5].panels[0].has_data());
        for fig in &f {
            let svg = fig.svg().unwrap();
            assert!(svg.starts_with("<svg"), "{}", fig.file);
        }
    }

    #[test]
    fn stream_latency_plot_says_there_is_none() {
        let mut r = record(Backend::Syscall, Mode::TwoCopy, K, 1, 1.0);
        r.config.workload = Workload::Stream;
        r.latency = None;
        let d = Dataset::new(Workload::Stream, 1, vec![r]);
        let f = latency_vs_threads(&d);
        assert!(f.panels[0].no_data_text().contains("no round trips"));
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
