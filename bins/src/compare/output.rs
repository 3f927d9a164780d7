//! What compare writes: the rows (each copyperf contender beside the best other tool for
//! the same operation, size and metric), `samples.csv`, `peers.csv`, the markdown tables
//! and targets (`summary.md`), and `peers.svg`. Pure functions of the samples.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use engine::config::format_size;

use super::{Comparison, Contender, Metric, Outcome, Sample};
use crate::report::chart::{self, Marker, Panel, Series, XAxis};
use crate::summary::{median, median_range, range};

/// One copyperf contender beside the best other tool, at one size and metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub comparison: Comparison,
    pub size: usize,
    pub metric: Metric,
    pub copyperf: Contender,
    /// (round, value) of each measurement.
    pub ours: Vec<(usize, f64)>,
    /// The other tool with the best median here.
    pub peer: Contender,
    pub peer_size: usize,
    pub theirs: Vec<(usize, f64)>,
}

fn values(xs: &[(usize, f64)]) -> Vec<f64> {
    xs.iter().map(|&(_, v)| v).collect()
}

impl Row {
    pub fn ours(&self) -> Vec<f64> {
        values(&self.ours)
    }

    pub fn theirs(&self) -> Vec<f64> {
        values(&self.theirs)
    }

    /// copyperf's median over the peer's.
    pub fn ratio(&self) -> Option<f64> {
        match (median(&self.ours()), median(&self.theirs())) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        }
    }

    /// The ratio within each round (both measured minutes apart at most).
    pub fn round_ratios(&self) -> Vec<f64> {
        self.ours
            .iter()
            .filter_map(|&(round, a)| {
                let &(_, b) = self.theirs.iter().find(|(r, _)| *r == round)?;
                (b > 0.0).then_some(a / b)
            })
            .collect()
    }

    /// Whether copyperf did at least as well as the peer (higher throughput, lower RTT).
    pub fn copyperf_as_good(&self) -> Option<bool> {
        self.ratio().map(|r| self.metric.as_good(r, 1.0))
    }

    /// `0.97× [0.91–1.03]`: the ratio of medians and the per-round range.
    pub fn ratio_text(&self) -> String {
        match (self.ratio(), range(&self.round_ratios())) {
            (Some(r), Some((lo, hi))) => format!("{r:.2}× [{lo:.2}–{hi:.2}]"),
            (Some(r), None) => format!("{r:.2}×"),
            _ => "–".into(),
        }
    }

    /// Whether every round agrees on which side is ahead (the per-round ratios all on one
    /// side of 1.0).
    pub fn beyond_noise(&self) -> bool {
        let rs = self.round_ratios();
        !rs.is_empty() && (rs.iter().all(|&r| r > 1.0) || rs.iter().all(|&r| r < 1.0))
    }
}

fn series(
    samples: &[Sample],
    c: Comparison,
    size: usize,
    m: Metric,
    who: &Contender,
) -> Vec<(usize, f64)> {
    samples
        .iter()
        .filter(|s| s.comparison == c && s.size == size && s.metric == m && &s.contender == who)
        .map(|s| (s.repeat, s.value))
        .collect()
}

/// Groups samples into rows: per comparison, size and metric, each copyperf contender
/// beside the other tool with the best median.
pub fn rows(samples: &[Sample]) -> Vec<Row> {
    let mut out = Vec::new();
    for c in Comparison::ALL {
        let mut sizes: Vec<usize> = samples
            .iter()
            .filter(|s| s.comparison == c)
            .map(|s| s.size)
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        for size in sizes {
            for &m in c.metrics() {
                let peer = c
                    .contenders()
                    .into_iter()
                    .filter(Contender::is_peer)
                    .filter_map(|p| {
                        let v = series(samples, c, size, m, &p);
                        Some((p, median(&values(&v))?, v))
                    })
                    .reduce(|a, b| {
                        if m.as_good(b.1, a.1) && b.1 != a.1 {
                            b
                        } else {
                            a
                        }
                    });
                let Some((peer, _, theirs)) = peer else {
                    continue;
                };
                let peer_size = samples
                    .iter()
                    .find(|s| s.comparison == c && s.size == size && s.contender == peer)
                    .map_or(size, |s| s.tool_size);
                for who in c.contenders().into_iter().filter(|w| !w.is_peer()) {
                    let ours = series(samples, c, size, m, &who);
                    if ours.is_empty() {
                        continue;
                    }
                    out.push(Row {
                        comparison: c,
                        size,
                        metric: m,
                        copyperf: who,
                        ours,
                        peer,
                        peer_size,
                        theirs: theirs.clone(),
                    });
                }
            }
        }
    }
    out
}

/// peers.csv columns.
pub const PEERS_COLUMNS: [&str; 18] = [
    "Comparison",
    "MessageSize",
    "Metric",
    "Unit",
    "Copyperf",
    "Copyperf_Median",
    "Copyperf_Min",
    "Copyperf_Max",
    "Peer",
    "Peer_MessageSize",
    "Peer_Median",
    "Peer_Min",
    "Peer_Max",
    "Ratio",
    "Copyperf_As_Good",
    "Rx",
    "Ratio_Round_Min",
    "Ratio_Round_Max",
];

fn cells(xs: &[f64]) -> [String; 3] {
    let f = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.3}"));
    let (lo, hi) = range(xs).unzip();
    [f(median(xs)), f(lo), f(hi)]
}

/// peers.csv: one row per copyperf contender, size and metric.
pub fn peers_csv(rows: &[Row]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(PEERS_COLUMNS).expect("memory");
    for r in rows {
        let [om, olo, ohi] = cells(&r.ours());
        let [pm, plo, phi] = cells(&r.theirs());
        let (rlo, rhi) = range(&r.round_ratios()).unzip();
        let f = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.3}"));
        w.write_record([
            r.comparison.name().to_owned(),
            r.size.to_string(),
            r.metric.name().to_owned(),
            r.metric.unit().to_owned(),
            r.copyperf.label(),
            om,
            olo,
            ohi,
            r.peer.label(),
            r.peer_size.to_string(),
            pm,
            plo,
            phi,
            f(r.ratio()),
            r.copyperf_as_good()
                .map_or(String::new(), |b| b.to_string()),
            r.comparison.rx().to_string(),
            f(rlo),
            f(rhi),
        ])
        .expect("memory");
    }
    String::from_utf8(w.into_inner().expect("flushed")).expect("utf-8")
}

/// samples.csv: every measurement.
pub fn samples_csv(samples: &[Sample]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "Comparison",
        "MessageSize",
        "Tool",
        "Contender",
        "Tool_MessageSize",
        "Repeat",
        "Metric",
        "Value",
        "Unit",
    ])
    .expect("memory");
    for s in samples {
        w.write_record([
            s.comparison.name().to_owned(),
            s.size.to_string(),
            s.contender.tool().to_owned(),
            s.contender.label(),
            s.tool_size.to_string(),
            s.repeat.to_string(),
            s.metric.name().to_owned(),
            format!("{:.3}", s.value),
            s.metric.unit().to_owned(),
        ])
        .expect("memory");
    }
    String::from_utf8(w.into_inner().expect("flushed")).expect("utf-8")
}

fn unit(m: Metric) -> &'static str {
    match m.unit() {
        "us" => "µs",
        u => u,
    }
}

/// The ratio table as printed (and pasted into README.md).
pub fn table(rows: &[Row], flows: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| comparison | size | copyperf | median [min–max] | best other tool | its median [min–max] | ratio [per round] |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for r in rows {
        let u = unit(r.metric);
        let peer = if r.peer_size == r.size {
            r.peer.label()
        } else {
            format!("{} ({} B)", r.peer.label(), r.peer_size)
        };
        let what = match r.comparison {
            Comparison::Echo => format!("echo {}", r.metric.name().trim_end_matches(" round trip")),
            c if c.is_flows() => format!("{flows} {}", c.title()),
            c => c.title().to_owned(),
        };
        let _ = writeln!(
            s,
            "| {what} | {} | {} | {} {u} | {peer} | {} {u} | {} |",
            format_size(r.size),
            r.copyperf.label().trim_start_matches("copyperf "),
            median_range(&r.ours(), 2),
            median_range(&r.theirs(), 2),
            r.ratio_text(),
        );
    }
    s
}

/// copyperf's own receive: each contender measured both copying (stream) and discarding,
/// the ratio of the two medians.
pub fn receive_table(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| size | copyperf | receiver copies (Gbit/s) | receiver discards (Gbit/s) | discard ÷ copy |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    let mut any = false;
    for copy in rows.iter().filter(|r| r.comparison == Comparison::Stream) {
        let Some(discard) = rows.iter().find(|r| {
            r.comparison == Comparison::Discard
                && r.size == copy.size
                && r.copyperf == copy.copyperf
        }) else {
            continue;
        };
        any = true;
        let ratio = match (median(&discard.ours()), median(&copy.ours())) {
            (Some(d), Some(c)) if c > 0.0 => format!("{:.2}×", d / c),
            _ => "–".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {ratio} |",
            format_size(copy.size),
            copy.copyperf.label().trim_start_matches("copyperf "),
            median_range(&copy.ours(), 2),
            median_range(&discard.ours(), 2),
        );
    }
    if any {
        s
    } else {
        String::new()
    }
}

/// One of issue 15's targets, judged on the data.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub text: String,
    /// `None`: not measured.
    pub met: Option<bool>,
    /// Per size: who, ratio and its per-round range.
    pub detail: String,
}

/// One size's part of a target: who and by how much, and whether it holds there.
#[derive(Debug, Clone, PartialEq)]
struct Part {
    text: String,
    met: bool,
}

impl Target {
    fn judge(text: String, parts: Vec<(usize, Option<Part>)>) -> Target {
        let measured: Vec<&Part> = parts.iter().filter_map(|(_, p)| p.as_ref()).collect();
        let met = (!measured.is_empty()).then(|| measured.iter().all(|p| p.met));
        let detail = parts
            .iter()
            .map(|(size, p)| match p {
                Some(p) => format!("{}: {}", format_size(*size), p.text),
                None => format!("{}: not measured", format_size(*size)),
            })
            .collect::<Vec<_>>()
            .join("; ");
        Target { text, met, detail }
    }

    pub fn verdict(&self) -> &'static str {
        match self.met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "not measured",
        }
    }
}

/// The sizes the rows of `c` cover.
fn sizes(rows: &[Row], c: Comparison) -> Vec<usize> {
    let mut v: Vec<usize> = rows
        .iter()
        .filter(|r| r.comparison == c)
        .map(|r| r.size)
        .collect();
    v.dedup();
    v
}

/// Row `who` of `c` at `size` and metric `m`.
fn find<'a>(
    rows: &'a [Row],
    c: Comparison,
    size: usize,
    m: Metric,
    who: &Contender,
) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.comparison == c && r.size == size && r.metric == m && &r.copyperf == who)
}

/// The copyperf row with the best ratio among `who`.
fn best(
    rows: &[Row],
    c: Comparison,
    size: usize,
    m: Metric,
    who: impl Fn(&Contender) -> bool,
) -> Option<&Row> {
    rows.iter()
        .filter(|r| r.comparison == c && r.size == size && r.metric == m && who(&r.copyperf))
        .filter(|r| r.ratio().is_some())
        .reduce(|a, b| {
            let (x, y) = (a.ratio().unwrap_or(f64::NAN), b.ratio().unwrap_or(f64::NAN));
            if m.as_good(y, x) && y != x {
                b
            } else {
                a
            }
        })
}

/// A row against its peer: met when the ratio is at least as good as `bound`.
fn against_peer(r: &Row, bound: f64) -> Option<Part> {
    let ratio = r.ratio()?;
    Some(Part {
        text: format!(
            "{} {} vs {}",
            r.copyperf.label().trim_start_matches("copyperf "),
            r.ratio_text(),
            r.peer.label()
        ),
        met: r.metric.as_good(ratio, bound),
    })
}

/// Two of copyperf's own rows against each other: met when `a` is at least as good.
fn head_to_head(a: &Row, b: &Row) -> Option<Part> {
    let (x, y) = (median(&a.ours())?, median(&b.ours())?);
    if y <= 0.0 {
        return None;
    }
    let rounds: Vec<f64> = a
        .ours
        .iter()
        .filter_map(|&(round, v)| {
            let &(_, w) = b.ours.iter().find(|(r, _)| *r == round)?;
            (w > 0.0).then_some(v / w)
        })
        .collect();
    let spread = range(&rounds).map_or(String::new(), |(lo, hi)| format!(" [{lo:.2}–{hi:.2}]"));
    let u = unit(a.metric);
    Some(Part {
        text: format!("{x:.2} vs {y:.2} {u}: {:.2}×{spread}", x / y),
        met: a.metric.as_good(x, y),
    })
}

fn is_copy_mode(c: &Contender) -> bool {
    matches!(c, Contender::Copyperf { mode, .. } if !mode.is_zero_copy())
}

/// Issue 15's targets, judged on the rows.
pub fn targets(rows: &[Row]) -> Vec<Target> {
    use engine::config::{Backend, Mode};
    let cp = |backend, mode, sqpoll| Contender::Copyperf {
        backend,
        mode,
        sqpoll,
    };
    let mut out = Vec::new();
    let each = |c: Comparison, f: &dyn Fn(usize) -> Option<Part>| {
        sizes(rows, c)
            .into_iter()
            .map(|s| (s, f(s)))
            .collect::<Vec<_>>()
    };
    out.push(Target::judge(
        "stream, receiver discards: the best copy-mode path ≥ 1.0× the io_uring SEND loop".into(),
        each(Comparison::Discard, &|s| {
            against_peer(
                best(
                    rows,
                    Comparison::Discard,
                    s,
                    Metric::Throughput,
                    is_copy_mode,
                )?,
                1.0,
            )
        }),
    ));
    let zc_fixed = cp(Backend::Uring, Mode::ZcFixed, false);
    for (text, bound, small) in [
        (
            "zero-copy: uring zc-fixed ≥ 0.8× the SEND_ZC loop at 16K and above",
            0.8,
            false,
        ),
        (
            "zero-copy: uring zc-fixed ≥ 0.5× the SEND_ZC loop below 16K (no pathology)",
            0.5,
            true,
        ),
    ] {
        let parts = sizes(rows, Comparison::ZeroCopy)
            .into_iter()
            .filter(|&s| (s < 16384) == small)
            .map(|s| {
                (
                    s,
                    find(rows, Comparison::ZeroCopy, s, Metric::Throughput, &zc_fixed)
                        .and_then(|r| against_peer(r, bound)),
                )
            })
            .collect();
        out.push(Target::judge(text.into(), parts));
    }
    // Judged apart without and with polling: neither sockperf nor qperf polls by default,
    // and SQPOLL buys its round trips with a CPU per spinning SQ thread.
    for (m, polled) in [
        (Metric::P50, false),
        (Metric::Mean, false),
        (Metric::P50, true),
        (Metric::Mean, true),
    ] {
        let how = if polled {
            "with SQPOLL"
        } else {
            "without polling"
        };
        out.push(Target::judge(
            format!(
                "echo: copyperf's best {} {how} ≤ 1.0× the best of sockperf and qperf",
                m.name()
            ),
            each(Comparison::Echo, &|s| {
                let sqpolled =
                    |c: &Contender| matches!(c, Contender::Copyperf { sqpoll: true, .. });
                against_peer(
                    best(rows, Comparison::Echo, s, m, |c| sqpolled(c) == polled)?,
                    1.0,
                )
            }),
        ));
    }
    for (c, mode) in [
        (Comparison::Stream, Mode::OneCopy),
        (Comparison::Discard, Mode::TwoCopy),
        (Comparison::Discard, Mode::OneCopy),
    ] {
        out.push(Target::judge(
            format!("uring ≥ 1.0× syscall, {mode}, {}, depth 8", c.title()),
            each(c, &|s| {
                head_to_head(
                    find(
                        rows,
                        c,
                        s,
                        Metric::Throughput,
                        &cp(Backend::Uring, mode, false),
                    )?,
                    find(
                        rows,
                        c,
                        s,
                        Metric::Throughput,
                        &cp(Backend::Syscall, mode, false),
                    )?,
                )
            }),
        ));
    }
    for m in [Metric::P50, Metric::Mean] {
        out.push(Target::judge(
            format!(
                "echo depth 1: uring one-copy with SQPOLL {} ≤ syscall one-copy's",
                m.name()
            ),
            each(Comparison::Echo, &|s| {
                head_to_head(
                    find(
                        rows,
                        Comparison::Echo,
                        s,
                        m,
                        &cp(Backend::Uring, Mode::OneCopy, true),
                    )?,
                    find(
                        rows,
                        Comparison::Echo,
                        s,
                        m,
                        &cp(Backend::Syscall, Mode::OneCopy, false),
                    )?,
                )
            }),
        ));
    }
    for c in [Comparison::Flows, Comparison::FlowsDiscard] {
        out.push(Target::judge(
            format!("{}: copyperf's best ≥ 1.0× the best other tool", c.title()),
            each(c, &|s| {
                against_peer(best(rows, c, s, Metric::Throughput, |_| true)?, 1.0)
            }),
        ));
        out.push(Target::judge(
            format!("{}: uring one-copy ≥ 1.0× the best other tool", c.title()),
            each(c, &|s| {
                against_peer(
                    find(
                        rows,
                        c,
                        s,
                        Metric::Throughput,
                        &cp(Backend::Uring, Mode::OneCopy, false),
                    )?,
                    1.0,
                )
            }),
        ));
    }
    out.retain(|t| t.met.is_some());
    out
}

/// The targets as a markdown list.
pub fn targets_text(targets: &[Target]) -> String {
    let mut s = String::new();
    for t in targets {
        let _ = writeln!(s, "- {}: **{}** ({})", t.text, t.verdict(), t.detail);
    }
    s
}

/// peers.svg: throughput vs size for the stream comparisons, round trips vs size for echo.
pub fn plot(rows: &[Row]) -> Result<String> {
    let greys = [
        plotters::style::RGBColor(40, 40, 40),
        plotters::style::RGBColor(130, 130, 130),
    ];
    let panel = |c: Comparison, m: Metric| {
        let better = if m.higher_is_better() {
            "higher"
        } else {
            "lower"
        };
        let mut p = Panel::new(
            format!("{}: {} ({better} is better)", c.title(), m.name()),
            XAxis::Size,
            format!("{} ({})", m.name(), unit(m)),
        );
        let here: Vec<&Row> = rows
            .iter()
            .filter(|r| r.comparison == c && r.metric == m)
            .collect();
        for who in c.contenders() {
            let points: Vec<(f64, f64)> = if who.is_peer() {
                let mut v: Vec<(f64, f64)> = Vec::new();
                for r in here.iter().filter(|r| r.peer == who) {
                    if let Some(y) = median(&r.theirs()) {
                        if !v.iter().any(|&(x, _)| x == r.size as f64) {
                            v.push((r.size as f64, y));
                        }
                    }
                }
                v
            } else {
                here.iter()
                    .filter(|r| r.copyperf == who)
                    .filter_map(|r| Some((r.size as f64, median(&r.ours())?)))
                    .collect()
            };
            if points.is_empty() {
                continue;
            }
            let series = match who {
                Contender::Copyperf {
                    backend,
                    mode,
                    sqpoll,
                } => {
                    let mut s = Series::of(backend, mode, who.label(), points);
                    if sqpoll {
                        s.marker = Marker::Circle;
                    }
                    s
                }
                _ => Series {
                    label: who.label(),
                    color: greys[p.series.iter().filter(|s| s.marker == Marker::None).count() % 2],
                    dashed: false,
                    marker: Marker::None,
                    points,
                    spreads: Vec::new(),
                },
            };
            p.series.push(series);
        }
        p
    };
    let mut panels = Vec::new();
    for c in [
        Comparison::Stream,
        Comparison::Discard,
        Comparison::ZeroCopy,
        Comparison::Echo,
    ] {
        for &m in c.metrics() {
            if rows.iter().any(|r| r.comparison == c && r.metric == m) {
                panels.push(panel(c, m));
            }
        }
    }
    chart::render(
        "copyperf beside the fastest tools doing the same (loopback, medians)",
        &panels,
    )
}

/// Writes samples.csv, peers.csv, summary.md and peers.svg into `dir`.
pub fn write(dir: &Path, outcome: &Outcome, flows: usize, machine: &str) -> Result<Vec<Row>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let rows = rows(&outcome.samples);
    std::fs::write(dir.join("samples.csv"), samples_csv(&outcome.samples))?;
    std::fs::write(dir.join("peers.csv"), peers_csv(&rows))?;
    std::fs::write(
        dir.join("summary.md"),
        summary(&rows, outcome, flows, machine),
    )?;
    std::fs::write(dir.join("peers.svg"), plot(&rows)?)?;
    Ok(rows)
}

/// The contender of `c` whose label is `label`.
fn contender(c: Comparison, label: &str) -> Option<Contender> {
    c.contenders().into_iter().find(|who| who.label() == label)
}

/// Reads back what [`samples_csv`] wrote, so a folder's tables and targets can be
/// written again by this build (`compare --render DIR`).
pub fn read_samples(csv: &str) -> Result<Vec<Sample>> {
    let mut rd = csv::Reader::from_reader(csv.as_bytes());
    let mut out = Vec::new();
    for (i, row) in rd.records().enumerate() {
        let row = row.with_context(|| format!("samples.csv row {}", i + 1))?;
        let field = |n: usize| row.get(n).unwrap_or("");
        let bad = |what: &str| anyhow::anyhow!("samples.csv row {}: bad {what}", i + 1);
        let comparison: Comparison = field(0).parse().map_err(|_| bad("comparison"))?;
        let metric = [Metric::Throughput, Metric::P50, Metric::Mean]
            .into_iter()
            .find(|m| m.name() == field(6))
            .ok_or_else(|| bad("metric"))?;
        out.push(Sample {
            comparison,
            contender: contender(comparison, field(3)).ok_or_else(|| bad("contender"))?,
            size: field(1).parse().map_err(|_| bad("size"))?,
            tool_size: field(4).parse().map_err(|_| bad("tool size"))?,
            repeat: field(5).parse().map_err(|_| bad("repeat"))?,
            metric,
            value: field(7).parse().map_err(|_| bad("value"))?,
        });
    }
    Ok(out)
}

/// What failed, as meta.json's `failed` list holds it.
pub fn read_failed(meta: &serde_json::Value) -> BTreeMap<(Comparison, Contender), String> {
    let mut out = BTreeMap::new();
    for f in meta["failed"].as_array().into_iter().flatten() {
        let c: Option<Comparison> = f["comparison"].as_str().and_then(|c| c.parse().ok());
        let who = c.and_then(|c| contender(c, f["contender"].as_str()?));
        if let (Some(c), Some(who)) = (c, who) {
            out.insert((c, who), f["error"].as_str().unwrap_or("").to_owned());
        }
    }
    out
}

/// summary.md: the machine, the tables, the targets and what failed.
pub fn summary(rows: &[Row], outcome: &Outcome, flows: usize, machine: &str) -> String {
    let mut s = format!("# copyperf beside the fastest tools\n\nMachine: {machine}. Loopback; medians of the interleaved rounds, [min–max] over the rounds; a ratio's range is the ratio within each round.\n\n");
    s += &table(rows, flows);
    let receive = receive_table(rows);
    if !receive.is_empty() {
        s += "\n## copyperf's own receive: copying vs discarding\n\n";
        s += &receive;
    }
    s += "\n## Targets\n\n";
    s += &targets_text(&targets(rows));
    if !outcome.failed.is_empty() {
        s += "\n## Not measured\n\n";
        for ((c, who), why) in &outcome.failed {
            let _ = writeln!(s, "- {} / {}: {why}", c.name(), who.label());
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::config::{Backend, Mode};

    fn cp(backend: Backend, mode: Mode) -> Contender {
        Contender::Copyperf {
            backend,
            mode,
            sqpoll: false,
        }
    }

    fn sample(
        c: Comparison,
        who: Contender,
        size: usize,
        repeat: usize,
        m: Metric,
        value: f64,
    ) -> Sample {
        Sample {
            comparison: c,
            contender: who,
            size,
            tool_size: size,
            repeat,
            metric: m,
            value,
        }
    }

    /// Two rounds of a discard and an echo comparison.
    fn samples() -> Vec<Sample> {
        let mut s = Vec::new();
        let d = Comparison::Discard;
        let t = Metric::Throughput;
        for (round, noise) in [(0, 1.0), (1, 1.1)] {
            s.push(sample(
                d,
                cp(Backend::Syscall, Mode::TwoCopy),
                1024,
                round,
                t,
                8.0 * noise,
            ));
            s.push(sample(
                d,
                cp(Backend::Syscall, Mode::OneCopy),
                1024,
                round,
                t,
                11.0 * noise,
            ));
            s.push(sample(
                d,
                cp(Backend::Uring, Mode::OneCopy),
                1024,
                round,
                t,
                12.0 * noise,
            ));
            s.push(sample(
                d,
                Contender::Loop { zc: false },
                1024,
                round,
                t,
                10.0 * noise,
            ));
            let e = Comparison::Echo;
            for (m, us) in [(Metric::P50, 50.0), (Metric::Mean, 60.0)] {
                s.push(sample(
                    e,
                    cp(Backend::Syscall, Mode::OneCopy),
                    4096,
                    round,
                    m,
                    us * noise,
                ));
                s.push(sample(
                    e,
                    Contender::Sockperf,
                    4096,
                    round,
                    m,
                    (us + 5.0) * noise,
                ));
            }
            // qperf has only a mean, and a better one than sockperf's.
            s.push(sample(
                e,
                Contender::Qperf,
                4096,
                round,
                Metric::Mean,
                55.0 * noise,
            ));
        }
        s
    }

    #[test]
    fn rows_pair_each_contender_with_the_best_other_tool() {
        let rows = rows(&samples());
        let discard: Vec<&Row> = rows
            .iter()
            .filter(|r| r.comparison == Comparison::Discard)
            .collect();
        assert_eq!(discard.len(), 3);
        let uring = discard
            .iter()
            .find(|r| r.copyperf == cp(Backend::Uring, Mode::OneCopy))
            .unwrap();
        assert_eq!(uring.peer, Contender::Loop { zc: false });
        assert!((uring.ratio().unwrap() - 1.2).abs() < 1e-9);
        assert_eq!(uring.round_ratios().len(), 2);
        assert!(uring.beyond_noise());
        assert_eq!(uring.copyperf_as_good(), Some(true));
        let p50 = rows.iter().find(|r| r.metric == Metric::P50).unwrap();
        assert_eq!(p50.peer, Contender::Sockperf, "qperf has no p50");
        let mean = rows.iter().find(|r| r.metric == Metric::Mean).unwrap();
        assert_eq!(mean.peer, Contender::Qperf, "the lower mean wins");
        assert_eq!(mean.copyperf_as_good(), Some(false), "60 µs against 55 µs");
    }

    #[test]
    fn targets_judge_every_size_and_name_the_best_path() {
        let rows = rows(&samples());
        let t = targets(&rows);
        let discard = t
            .iter()
            .find(|t| t.text.contains("receiver discards: the best"))
            .unwrap();
        assert_eq!(discard.met, Some(true), "{discard:?}");
        assert!(
            discard.detail.contains("uring one-copy 1.20×"),
            "{}",
            discard.detail
        );
        let mean = t
            .iter()
            .find(|t| t.text.contains("best mean round trip"))
            .unwrap();
        assert_eq!(mean.met, Some(false), "{mean:?}");
        let uring = t
            .iter()
            .find(|t| {
                t.text
                    .starts_with("uring ≥ 1.0× syscall, one-copy, stream, receiver discards")
            })
            .unwrap();
        assert_eq!(uring.met, Some(true));
        assert!(uring.detail.contains("1.09×"), "{}", uring.detail);
        assert!(
            t.iter().all(|t| t.met.is_some()),
            "targets without data are left out: {t:#?}"
        );
        assert!(targets_text(&t).contains("**NOT met**"));
    }

    #[test]
    fn files_hold_every_row_and_sample() {
        let s = samples();
        let rows = rows(&s);
        let csv = peers_csv(&rows);
        let mut rd = csv::Reader::from_reader(csv.as_bytes());
        assert_eq!(
            rd.headers().unwrap().iter().collect::<Vec<_>>(),
            PEERS_COLUMNS
        );
        assert_eq!(rd.records().count(), rows.len());
        assert_eq!(samples_csv(&s).lines().count(), s.len() + 1);
        let table = table(&rows, 4);
        assert!(
            table.contains("| stream, receiver discards | 1K | uring one-copy |"),
            "{table}"
        );
        assert!(
            table.contains("| echo mean | 4K | syscall one-copy |"),
            "{table}"
        );
        assert!(plot(&rows).unwrap().starts_with("<svg"));
        let back = read_samples(&samples_csv(&s)).unwrap();
        assert_eq!(back.len(), s.len());
        assert!(back.iter().zip(&s).all(|(a, b)| a.contender == b.contender
            && a.metric == b.metric
            && (a.value - b.value).abs() < 1e-3));
        assert!(read_samples("Comparison\nbogus,1,x,y,1,0,throughput,1,Gbit/s\n").is_err());
        let meta = serde_json::json!({"failed": [{"comparison": "echo", "contender": "qperf", "error": "refused"}]});
        assert_eq!(read_failed(&meta).len(), 1);
        let outcome = Outcome {
            samples: s,
            failed: [(
                (Comparison::Echo, Contender::Qperf),
                "qperf: refused".to_owned(),
            )]
            .into(),
        };
        let md = summary(&rows, &outcome, 4, "test machine");
        assert!(
            md.contains("## Targets") && md.contains("echo / qperf: qperf: refused"),
            "{md}"
        );
    }
}
