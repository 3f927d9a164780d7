//! The study's questions answered from a dataset: pure functions from points to figures
//! and to the sentences that state them. Every number a sentence holds is computed here
//! from the medians; where the data cannot answer, the sentence says so.

use engine::config::format_size;
use engine::{Backend, Mode};

use super::data::{Dataset, Metric, Point};
use crate::summary::median;

/// Gbit/s, 2 decimals.
pub fn gbps(x: f64) -> String {
    format!("{x:.2}")
}

/// µs, 1 decimal.
pub fn us(x: f64) -> String {
    format!("{x:.1}")
}

/// A ratio, 2 decimals and `×`.
pub fn ratio(x: f64) -> String {
    format!("{x:.2}×")
}

/// A fraction 0..1 as a percentage: whole where it is whole, else 1 decimal.
pub fn pct(x: f64) -> String {
    let p = x * 100.0;
    if (p - p.round()).abs() < 0.05 {
        format!("{}%", p.round())
    } else {
        format!("{p:.1}%")
    }
}

/// `1K`, `64K`, `1500`.
pub fn size(n: usize) -> String {
    format_size(n)
}

/// `1 thread`, `2 threads`.
pub fn threads(n: usize) -> String {
    if n == 1 {
        "1 thread".into()
    } else {
        format!("{n} threads")
    }
}

/// `a, b and c`.
pub fn list<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_owned(),
        [rest @ .., last] => format!(
            "{} and {}",
            rest.iter()
                .map(AsRef::as_ref)
                .collect::<Vec<_>>()
                .join(", "),
            last.as_ref()
        ),
    }
}

/// Two points' medians of one metric: `a` at `point`, `b` at `partner`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    pub point: Point,
    pub partner: Point,
    pub a: f64,
    pub b: f64,
}

impl Pair {
    pub fn ratio(&self) -> f64 {
        self.a / self.b
    }
}

/// Every point `select` picks, against the point `partner` maps it to, where both measured
/// `m` (and the partner's figure is positive, so the ratio means something).
pub fn paired(
    d: &Dataset,
    select: impl Fn(&Point) -> bool,
    partner: impl Fn(&Point) -> Point,
    m: Metric,
) -> Vec<Pair> {
    d.points()
        .filter(|p| select(p))
        .filter_map(|p| {
            let q = partner(p);
            let a = d.median(p, m)?;
            let b = d.median(&q, m).filter(|b| *b > 0.0)?;
            Some(Pair {
                point: *p,
                partner: q,
                a,
                b,
            })
        })
        .collect()
}

/// Where one series overtakes another over the sizes measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Crossover {
    /// Per size, ascending: a / b.
    pub ratios: Vec<(usize, f64)>,
    /// The smallest size from which `a` beats `b` at that size and every larger one.
    pub from: Option<usize>,
    /// Every size at which `a` beats `b`.
    pub ahead_at: Vec<usize>,
}

/// `(size, a, b)` in any order: where `a` overtakes `b`.
pub fn crossover(points: &[(usize, f64, f64)]) -> Crossover {
    let mut v = points.to_vec();
    v.sort_by_key(|x| x.0);
    let mut from = None;
    for &(s, a, b) in v.iter().rev() {
        if a > b {
            from = Some(s);
        } else {
            break;
        }
    }
    Crossover {
        ratios: v
            .iter()
            .filter(|x| x.2 > 0.0)
            .map(|&(s, a, b)| (s, a / b))
            .collect(),
        from,
        ahead_at: v.iter().filter(|(_, a, b)| a > b).map(|x| x.0).collect(),
    }
}

impl Crossover {
    /// The answer in a few words: `from 64K up (measured 1K–64K)`, `at every measured size
    /// (1K–64K)`, `never in the measured range (1K–64K)`, with a note where `a` leads only
    /// here and there.
    pub fn phrase(&self) -> String {
        let sizes: Vec<usize> = self.ratios.iter().map(|r| r.0).collect();
        let (Some(first), Some(last)) = (sizes.first(), sizes.last()) else {
            return "not answerable: no size where both were measured".into();
        };
        let span = if first == last {
            size(*first)
        } else {
            format!("{}–{}", size(*first), size(*last))
        };
        match self.from {
            Some(s) if s == *first => format!("at every measured size ({span})"),
            Some(s) => format!("from {} up (measured {span})", size(s)),
            None if self.ahead_at.is_empty() => format!("never in the measured range ({span})"),
            None => {
                let at: Vec<String> = self.ahead_at.iter().map(|s| size(*s)).collect();
                format!(
                    "never in the measured range ({span}): ahead only at {}, not at every larger size",
                    list(&at)
                )
            }
        }
    }

    /// `1K 0.89×, 64K 1.04×`.
    pub fn ratio_list(&self) -> String {
        self.ratios
            .iter()
            .map(|(s, r)| format!("{} {}", size(*s), ratio(*r)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Where `a` overtakes `b` in throughput on one engine at one thread count.
#[derive(Debug, Clone, PartialEq)]
pub struct ModeCrossover {
    pub engine: Backend,
    pub threads: usize,
    pub crossover: Crossover,
}

/// Per engine and thread count, where mode `a` overtakes mode `b` in throughput.
pub fn mode_crossovers(d: &Dataset, a: Mode, b: Mode) -> Vec<ModeCrossover> {
    let mut out = Vec::new();
    for engine in d.engines() {
        for t in d.threads() {
            let pairs = paired(
                d,
                |p| p.engine == engine && p.mode == a && p.threads == t,
                |p| Point { mode: b, ..*p },
                Metric::Throughput,
            );
            if pairs.is_empty() {
                continue;
            }
            let v: Vec<(usize, f64, f64)> =
                pairs.iter().map(|p| (p.point.size, p.a, p.b)).collect();
            out.push(ModeCrossover {
                engine,
                threads: t,
                crossover: crossover(&v),
            });
        }
    }
    out
}

/// Markdown bullets answering "at what size does `a` outperform `b`", per engine (and per
/// thread count where they differ).
pub fn crossover_answer(d: &Dataset, a: Mode, b: Mode) -> Vec<String> {
    let all = mode_crossovers(d, a, b);
    let mut lines = Vec::new();
    for engine in d.engines() {
        let mine: Vec<&ModeCrossover> = all.iter().filter(|c| c.engine == engine).collect();
        if mine.is_empty() {
            continue;
        }
        let head = format!("**{engine}**, {a} outperforms {b}");
        let detail = |c: &ModeCrossover| {
            format!(
                "{}: ratios {a}/{b}: {}",
                threads(c.threads),
                c.crossover.ratio_list()
            )
        };
        if mine.len() == 1 {
            let c = mine[0];
            lines.push(format!(
                "- {head} ({}): {}. Ratios {a}/{b}: {}.",
                threads(c.threads),
                c.crossover.phrase(),
                c.crossover.ratio_list()
            ));
        } else if mine
            .iter()
            .all(|c| c.crossover.phrase() == mine[0].crossover.phrase())
        {
            let ts: Vec<String> = mine.iter().map(|c| c.threads.to_string()).collect();
            lines.push(format!(
                "- {head}: {}, at every thread count measured ({}).",
                mine[0].crossover.phrase(),
                list(&ts)
            ));
            lines.extend(mine.iter().map(|c| format!("  - {}", detail(c))));
        } else {
            lines.push(format!("- {head}: the answer depends on the thread count."));
            lines.extend(mine.iter().map(|c| {
                format!(
                    "  - {}: {}; ratios {a}/{b}: {}",
                    threads(c.threads),
                    c.crossover.phrase(),
                    c.crossover.ratio_list()
                )
            }));
        }
    }
    lines
}

/// The copied fractions the client measured for one engine × zero-copy mode: the point
/// medians' smallest and largest.
pub fn copied_fraction(d: &Dataset, engine: Backend, mode: Mode) -> Option<(f64, f64)> {
    let v: Vec<f64> = d
        .points()
        .filter(|p| p.engine == engine && p.mode == mode)
        .filter_map(|p| d.median(p, Metric::ZcCopied))
        .collect();
    crate::summary::range(&v)
}

/// What the kernel did with one engine × zero-copy mode's sends, in a sentence.
pub fn copied_sentence(engine: Backend, mode: Mode, range: Option<(f64, f64)>) -> String {
    let Some((lo, hi)) = range else {
        return format!(
            "{engine} {mode}: no zero-copy completions were recorded, so the copied fraction is unknown."
        );
    };
    let amount = if pct(lo) == pct(hi) {
        format!(
            "{} of zero-copy completions as copied at every point",
            pct(lo)
        )
    } else {
        format!(
            "between {} and {} of zero-copy completions as copied (point medians)",
            pct(lo),
            pct(hi)
        )
    };
    let avoided = if lo >= 0.995 {
        ", so no copy was avoided"
    } else {
        ""
    };
    format!("{engine} {mode}: the kernel marked {amount}{avoided}.")
}

/// Why the copied fraction is about 1 here; `network` is the meta's description of the
/// path. `None` unless some engine × mode measured a fraction of 0.9 or more.
pub fn copied_note(d: &Dataset, network: Option<&str>) -> Option<String> {
    let high = d.engines().into_iter().any(|e| {
        [Mode::Zc, Mode::ZcFixed]
            .into_iter()
            .any(|m| copied_fraction(d, e, m).is_some_and(|r| r.1 >= 0.9))
    });
    high.then(|| {
        let on = network.map_or(String::new(), |n| format!(" (this run: {n})"));
        format!(
            "A copied fraction near 100% is what loopback and veth give{on}: the kernel copies \
             every zero-copy send when it delivers to the local receiving socket, so only a real \
             NIC can show the gain."
        )
    })
}

/// One mode at one size and thread count on both engines.
pub type EngineRow = Pair;

/// Every point run on both engines: uring (a) against syscall (b), throughput.
pub fn compare_engines(d: &Dataset) -> Vec<EngineRow> {
    paired(
        d,
        |p| p.engine == Backend::Uring,
        |p| Point {
            engine: Backend::Syscall,
            ..*p
        },
        Metric::Throughput,
    )
}

/// How the engines compare over a set of points.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSummary {
    pub comparable: usize,
    pub uring_faster: usize,
    pub median_ratio: f64,
    pub best: EngineRow,
    pub worst: EngineRow,
}

pub fn summarize_engines(rows: &[EngineRow]) -> Option<EngineSummary> {
    let ratios: Vec<f64> = rows.iter().map(Pair::ratio).collect();
    let by_ratio = |a: &&EngineRow, b: &&EngineRow| a.ratio().total_cmp(&b.ratio());
    Some(EngineSummary {
        comparable: rows.len(),
        uring_faster: rows.iter().filter(|r| r.a > r.b).count(),
        median_ratio: median(&ratios)?,
        best: *rows.iter().max_by(by_ratio)?,
        worst: *rows.iter().min_by(by_ratio)?,
    })
}

/// `zc 64K, 2 threads`.
pub fn where_(p: &Point) -> String {
    format!("{} {}, {}", p.mode, size(p.size), threads(p.threads))
}

impl EngineSummary {
    /// `uring was faster at 5 of 8 comparable points; median uring/syscall 1.04×; best …`.
    pub fn sentence(&self) -> String {
        let row = |r: &EngineRow| {
            format!(
                "{} ({} vs {} Gbit/s, {})",
                where_(&r.point),
                gbps(r.a),
                gbps(r.b),
                ratio(r.ratio())
            )
        };
        format!(
            "uring was faster at {} of {} comparable points; median uring/syscall {}; best: {}; worst: {}.",
            self.uring_faster,
            self.comparable,
            ratio(self.median_ratio),
            row(&self.best),
            row(&self.worst)
        )
    }
}

/// The client cache counters.
pub const CACHE_COUNTERS: [(&str, Metric, &str); 2] = [
    ("L1d", Metric::L1dPerByte, "l1d_load_misses"),
    ("LLC", Metric::LlcPerByte, "llc_load_misses"),
];

/// Why `wanted` counters have no figures, named from the records' `counters_missing`
/// (`missing`: `None` when counting was off everywhere). True first where the machine
/// itself lacks them.
pub fn missing_counters(wanted: &[&str], missing: Option<&[String]>) -> (bool, String) {
    let Some(names) = missing else {
        return (
            false,
            format!(
                "counting was off (--counters off), so {} have no figures",
                list(wanted)
            ),
        );
    };
    let named: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|w| names.iter().any(|n| n == w))
        .collect();
    if named.is_empty() {
        return (false, format!("no record holds {}", list(wanted)));
    }
    let one = named.len() == 1;
    (
        true,
        format!(
            "the client counter{} {} {} missing (counters_missing: {})",
            if one { "" } else { "s" },
            list(&named),
            if one { "is" } else { "are" },
            names.join("+")
        ),
    )
}

/// [`missing_counters`] as the note a plot shows in place of a panel.
pub fn missing_counters_note(wanted: &[&str], missing: Option<&[String]>) -> String {
    match missing_counters(wanted, missing) {
        (true, why) => format!("not measured on this machine: {why}"),
        (false, why) => format!("not measured: {why}"),
    }
}

/// Misses per byte of one cache level, two-copy against another mode, at one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CacheRow {
    pub level: &'static str,
    pub to: Mode,
    pub pair: Pair,
}

impl CacheRow {
    /// 1 − to / two-copy: the share of two-copy's misses per byte that went away.
    pub fn reduction(&self) -> f64 {
        1.0 - self.pair.ratio()
    }
}

/// Every point of a mode other than two-copy against two-copy, per cache level measured.
pub fn cache_rows(d: &Dataset) -> Vec<CacheRow> {
    let mut rows = Vec::new();
    for (level, metric, _) in CACHE_COUNTERS {
        for to in [Mode::OneCopy, Mode::Zc, Mode::ZcFixed] {
            rows.extend(
                paired(
                    d,
                    |p| p.mode == to,
                    |p| Point {
                        mode: Mode::TwoCopy,
                        ..*p
                    },
                    metric,
                )
                .into_iter()
                .map(|pair| CacheRow { level, to, pair }),
            );
        }
    }
    rows
}

/// Markdown lines answering Q4.
pub fn cache_answer(d: &Dataset) -> Vec<String> {
    let modes = d.modes(None);
    if !modes.contains(&Mode::TwoCopy) || modes.len() < 2 {
        return vec![
            "Not answerable from this run: it needs two-copy and at least one other mode.".into(),
        ];
    }
    let rows = cache_rows(d);
    let missing = d.client_counters_missing();
    let mut lines = Vec::new();
    let measured: Vec<(&str, &str)> = CACHE_COUNTERS
        .iter()
        .filter(|(l, ..)| rows.iter().any(|r| r.level == *l))
        .map(|(l, _, c)| (*l, *c))
        .collect();
    let unmeasured: Vec<&str> = CACHE_COUNTERS
        .iter()
        .filter(|(l, ..)| !rows.iter().any(|r| r.level == *l))
        .map(|x| x.2)
        .collect();
    let (machine, why) = missing_counters(&unmeasured, missing.as_deref());
    let where_ = if machine {
        "on this machine"
    } else {
        "in this run"
    };
    if measured.is_empty() {
        return vec![format!("Could not be measured {where_}: {why}.")];
    }
    if !unmeasured.is_empty() {
        lines.push(format!("Only partly measured {where_}: {why}."));
    }
    // Per level, its largest median reduction and the mode that gave it.
    let mut best: Vec<(&str, Mode, f64)> = Vec::new();
    for to in [Mode::OneCopy, Mode::Zc, Mode::ZcFixed] {
        let mut parts = Vec::new();
        for (level, _) in &measured {
            let red: Vec<f64> = rows
                .iter()
                .filter(|r| r.level == *level && r.to == to)
                .map(CacheRow::reduction)
                .collect();
            let Some(m) = median(&red) else {
                continue;
            };
            parts.push(format!(
                "{level} misses per byte {} by a median {} ({} comparisons)",
                if m >= 0.0 { "fell" } else { "rose" },
                pct(m.abs()),
                red.len()
            ));
            match best.iter_mut().find(|b| b.0 == *level) {
                Some(b) if b.2 < m => *b = (level, to, m),
                Some(_) => {}
                None => best.push((level, to, m)),
            }
        }
        if !parts.is_empty() {
            lines.push(format!("- two-copy → {to}: {}.", parts.join("; ")));
        }
    }
    lines.push(String::new());
    best.sort_by(|a, b| b.2.total_cmp(&a.2));
    let other = |b: &(&str, Mode, f64)| {
        if b.2 > 0.0 {
            format!("{}: at best a median {} fewer, to {}", b.0, pct(b.2), b.1)
        } else {
            format!("{}: no reduction to any mode", b.0)
        }
    };
    match best.as_slice() {
        [top, rest @ ..] if top.2 > 0.0 => {
            let others: Vec<String> = rest.iter().map(other).collect();
            lines.push(format!(
                "The largest reduction is at {}: a median {} fewer client misses per byte from two-copy to {}{}.",
                top.0,
                pct(top.2),
                top.1,
                if others.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", others.join("; "))
                }
            ));
        }
        _ => lines.push(
            "Neither cache level shows a reduction: misses per byte did not fall from two-copy to the other modes."
                .into(),
        ),
    }
    lines
}

/// Mean latency at the smallest against the largest thread count, per engine × mode.
pub fn latency_by_threads(d: &Dataset, at: usize) -> Vec<Pair> {
    let ts = d.threads();
    let (Some(&lo), Some(&hi)) = (ts.first(), ts.last()) else {
        return Vec::new();
    };
    if lo == hi {
        return Vec::new();
    }
    paired(
        d,
        |p| p.size == at && p.threads == hi,
        |p| Point { threads: lo, ..*p },
        Metric::LatencyMean,
    )
}

/// Markdown lines answering Q5.
pub fn latency_answer(d: &Dataset) -> Vec<String> {
    if d.workload == engine::Workload::Stream {
        return vec![
            "Not answerable from this run: the stream workload has no round trips, so no latency was measured."
                .into(),
        ];
    }
    let ts = d.threads();
    if ts.len() < 2 {
        let t: Vec<String> = ts.iter().map(|t| t.to_string()).collect();
        return vec![format!(
            "Not answerable from this run: only one thread count ({}) was measured.",
            if t.is_empty() {
                "none".into()
            } else {
                list(&t)
            }
        )];
    }
    let Some(at) = d.size_near(16 << 10) else {
        return vec!["Not answerable from this run: no points.".into()];
    };
    let rows = latency_by_threads(d, at);
    if rows.is_empty() {
        return vec![format!(
            "Not answerable from this run: no engine × mode has latency at both {} and {} threads at {}.",
            ts[0],
            ts[ts.len() - 1],
            size(at)
        )];
    }
    let (lo, hi) = (rows[0].partner.threads, rows[0].point.threads);
    let mut lines = vec![
        format!(
            "At {}{}, mean round-trip latency at {lo} vs {hi} threads:",
            size(at),
            if at == 16 << 10 {
                ""
            } else {
                " (the measured size closest to 16K)"
            }
        ),
        String::new(),
    ];
    for r in &rows {
        lines.push(format!(
            "- {} {}: {} µs → {} µs ({})",
            r.point.engine,
            r.point.mode,
            us(r.b),
            us(r.a),
            ratio(r.ratio())
        ));
    }
    let rose = rows.iter().filter(|r| r.a > r.b).count();
    let fell = rows.iter().filter(|r| r.a < r.b).count();
    let ratios: Vec<f64> = rows.iter().map(Pair::ratio).collect();
    let m = median(&ratios).unwrap_or(f64::NAN);
    let direction = if rose == rows.len() {
        "rose in every engine × mode".to_owned()
    } else if fell == rows.len() {
        "fell in every engine × mode".to_owned()
    } else {
        format!(
            "rose in {rose} and fell in {fell} of {} engine × mode pairs",
            rows.len()
        )
    };
    lines.push(String::new());
    lines.push(format!(
        "Going from {lo} to {hi} threads, latency {direction} (median ratio {}).",
        ratio(m)
    ));
    lines
}

/// Findings that contradict the usual expectation, each phrased from the data.
pub fn unexpected(d: &Dataset) -> Vec<String> {
    let mut out = Vec::new();
    let span = |pairs: &[Pair]| {
        let r: Vec<f64> = pairs.iter().map(Pair::ratio).collect();
        let (lo, hi) = crate::summary::range(&r).unwrap_or((f64::NAN, f64::NAN));
        if ratio(lo) == ratio(hi) {
            ratio(lo)
        } else {
            format!("{}–{}", ratio(lo), ratio(hi))
        }
    };
    // Copy-avoiding modes that never beat two-copy.
    for engine in d.engines() {
        for to in [Mode::OneCopy, Mode::Zc, Mode::ZcFixed] {
            let pairs = paired(
                d,
                |p| p.engine == engine && p.mode == to,
                |p| Point {
                    mode: Mode::TwoCopy,
                    ..*p
                },
                Metric::Throughput,
            );
            if !pairs.is_empty() && pairs.iter().all(|p| p.a < p.b) {
                let mut s = format!(
                    "{to} was slower than two-copy on {engine} at all {} comparable points ({to}/two-copy {}), although it skips a copy.",
                    pairs.len(),
                    span(&pairs)
                );
                if to.is_zero_copy() {
                    if let Some((lo, hi)) = copied_fraction(d, engine, to).filter(|r| r.0 >= 0.9) {
                        let amount = if pct(lo) == pct(hi) {
                            pct(lo)
                        } else {
                            format!("{}–{}", pct(lo), pct(hi))
                        };
                        s.push_str(&format!(
                            " The kernel marked {amount} of its completions as copied, so it paid for pinning and completions without avoiding the copy.",
                        ));
                    }
                }
                out.push(s);
            }
        }
    }
    // uring behind syscall.
    let rows = compare_engines(d);
    if let Some(s) = summarize_engines(&rows) {
        if s.uring_faster * 2 < s.comparable {
            out.push(format!(
                "uring was slower than syscall at {} of {} comparable points (median uring/syscall {}), although it batches kernel calls.",
                s.comparable - s.uring_faster,
                s.comparable,
                ratio(s.median_ratio)
            ));
        }
    }
    // zc-fixed behind zc.
    let fixed = paired(
        d,
        |p| p.mode == Mode::ZcFixed,
        |p| Point {
            mode: Mode::Zc,
            ..*p
        },
        Metric::Throughput,
    );
    if !fixed.is_empty() && fixed.iter().all(|p| p.a < p.b) {
        out.push(format!(
            "zc-fixed was slower than zc at all {} comparable points (zc-fixed/zc {}), although it skips per-send pinning.",
            fixed.len(),
            span(&fixed)
        ));
    }
    // More threads, less throughput.
    let ts = d.threads();
    if let (Some(&lo), Some(&hi)) = (ts.first(), ts.last()) {
        if lo != hi {
            let more = paired(
                d,
                |p| p.threads == hi,
                |p| Point { threads: lo, ..*p },
                Metric::Throughput,
            );
            let worse: Vec<&Pair> = more.iter().filter(|p| p.a < p.b).collect();
            if !worse.is_empty() {
                let at: Vec<String> = worse
                    .iter()
                    .map(|p| {
                        format!(
                            "{} {} {} ({})",
                            p.point.engine,
                            p.point.mode,
                            size(p.point.size),
                            ratio(p.ratio())
                        )
                    })
                    .collect();
                out.push(format!(
                    "{hi} threads moved less than {lo} at {} of {} points: {}.",
                    worse.len(),
                    more.len(),
                    list(&at)
                ));
            }
        }
    }
    // Larger messages, less throughput.
    let mut drops = Vec::new();
    for p in d.points() {
        let sizes = d.sizes_of(p.engine, p.mode, p.threads);
        let Some(&next) = sizes.iter().find(|s| **s > p.size) else {
            continue;
        };
        let q = Point { size: next, ..*p };
        if let (Some(a), Some(b)) = (
            d.median(p, Metric::Throughput),
            d.median(&q, Metric::Throughput),
        ) {
            if b < a {
                drops.push(format!(
                    "{} {} ×{}: {} → {} Gbit/s from {} to {}",
                    p.engine,
                    p.mode,
                    p.threads,
                    gbps(a),
                    gbps(b),
                    size(p.size),
                    size(next)
                ));
            }
        }
    }
    if !drops.is_empty() {
        out.push(format!(
            "Throughput fell as messages grew: {}.",
            drops.join("; ")
        ));
    }
    // Verification errors.
    let errors: u64 = d.records().iter().map(|r| r.summary.verify_errors).sum();
    if errors > 0 {
        let runs = d
            .records()
            .iter()
            .filter(|r| r.summary.verify_errors > 0)
            .count();
        out.push(format!(
            "{errors} messages failed verification, in {runs} of {} runs: their figures are suspect.",
            d.records().len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::record;
    use engine::Workload;

    const K: usize = 1024;

    #[test]
    fn crossover_from_a_size_up() {
        let c = crossover(&[(64 * K, 2.0, 1.0), (K, 1.0, 2.0), (16 * K, 1.5, 1.0)]);
        assert_eq!(c.from, Some(16 * K));
        assert_eq!(c.ahead_at, vec![16 * K, 64 * K]);
        assert_eq!(c.phrase(), "from 16K up (measured 1K–64K)");
        assert_eq!(c.ratio_list(), "1K 0.50×, 16K 1.50×, 64K 2.00×");
    }

    #[test]
    fn crossover_everywhere_and_never() {
        let c = crossover(&[(K, 2.0, 1.0), (4 * K, 2.0, 1.0)]);
        assert_eq!(c.from, Some(K));
        assert_eq!(c.phrase(), "at every measured size (1K–4K)");
        let c = crossover(&[(K, 1.0, 2.0), (4 * K, 1.0, 1.0)]);
        assert_eq!(c.from, None, "a tie is not a win");
        assert_eq!(c.phrase(), "never in the measured range (1K–4K)");
        assert_eq!(
            crossover(&[]).phrase(),
            "not answerable: no size where both were measured"
        );
    }

    #[test]
    fn a_lead_in_the_middle_only_is_not_overtaking() {
        let c = crossover(&[(K, 1.0, 2.0), (16 * K, 3.0, 2.0), (64 * K, 1.0, 2.0)]);
        assert_eq!(c.from, None);
        assert_eq!(c.ahead_at, vec![16 * K]);
        assert_eq!(
            c.phrase(),
            "never in the measured range (1K–64K): ahead only at 16K, not at every larger size"
        );
    }

    #[test]
    fn crossover_answer_merges_thread_counts_that_agree() {
        let mut recs = Vec::new();
        for t in [1, 2] {
            for (s, two, one) in [(K, 2.0, 1.0), (64 * K, 2.0, 3.0)] {
                recs.push(record(Backend::Syscall, Mode::TwoCopy, s, t, two));
                recs.push(record(Backend::Syscall, Mode::OneCopy, s, t, one));
            }
        }
        let d = Dataset::new(Workload::Echo, 1, recs);
        let lines = crossover_answer(&d, Mode::OneCopy, Mode::TwoCopy);
        assert_eq!(
            lines[0],
            "- **syscall**, one-copy outperforms two-copy: from 64K up (measured 1K–64K), at every thread count measured (1 and 2)."
        );
        assert_eq!(
            lines[1],
            "  - 1 thread: ratios one-copy/two-copy: 1K 0.50×, 64K 1.50×"
        );
    }

    #[test]
    fn engines_compare_point_by_point() {
        let recs = vec![
            record(Backend::Syscall, Mode::TwoCopy, K, 1, 2.0),
            record(Backend::Uring, Mode::TwoCopy, K, 1, 3.0),
            record(Backend::Syscall, Mode::TwoCopy, 64 * K, 1, 10.0),
            record(Backend::Uring, Mode::TwoCopy, 64 * K, 1, 8.0),
            record(Backend::Syscall, Mode::Zc, K, 2, 1.0),
            record(Backend::Uring, Mode::Zc, K, 2, 1.1),
            // Only on one engine: not comparable.
            record(Backend::Uring, Mode::ZcFixed, K, 1, 9.0),
        ];
        let d = Dataset::new(Workload::Echo, 1, recs);
        let rows = compare_engines(&d);
        assert_eq!(rows.len(), 3);
        let s = summarize_engines(&rows).unwrap();
        assert_eq!((s.comparable, s.uring_faster), (3, 2));
        assert!((s.median_ratio - 1.1).abs() < 1e-9);
        assert_eq!(
            s.best.point,
            Point::new(Backend::Uring, Mode::TwoCopy, K, 1)
        );
        assert_eq!(s.worst.point.size, 64 * K);
        assert_eq!(
            s.sentence(),
            "uring was faster at 2 of 3 comparable points; median uring/syscall 1.10×; \
             best: two-copy 1K, 1 thread (3.00 vs 2.00 Gbit/s, 1.50×); \
             worst: two-copy 64K, 1 thread (8.00 vs 10.00 Gbit/s, 0.80×)."
        );
        assert!(summarize_engines(&[]).is_none());
        // uring faster at most points: not flagged as unexpected.
        assert!(!unexpected(&d)
            .iter()
            .any(|s| s.starts_with("uring was slower")));
    }

    #[test]
    fn missing_counters_are_named_not_zero() {
        let missing = vec![
            "cycles".to_owned(),
            "instructions".to_owned(),
            "l1d_load_misses".to_owned(),
            "llc_load_misses".to_owned(),
        ];
        assert_eq!(
            missing_counters_note(&["l1d_load_misses", "llc_load_misses"], Some(&missing)),
            "not measured on this machine: the client counters l1d_load_misses and \
             llc_load_misses are missing (counters_missing: cycles+instructions+l1d_load_misses+llc_load_misses)"
        );
        assert_eq!(
            missing_counters_note(&["cycles"], Some(&missing[..1])),
            "not measured on this machine: the client counter cycles is missing (counters_missing: cycles)"
        );
        assert_eq!(
            missing_counters_note(&["cycles"], None),
            "not measured: counting was off (--counters off), so cycles have no figures"
        );

        // Records without cache counters: Q4 says so instead of computing from nothing.
        let mut recs = Vec::new();
        for mode in [Mode::TwoCopy, Mode::OneCopy] {
            let mut r = record(Backend::Syscall, mode, K, 1, 1.0);
            let c = r.client.counters.as_mut().unwrap();
            c.l1d_load_misses = None;
            c.llc_load_misses = None;
            r.client.counters_missing = Some("l1d_load_misses+llc_load_misses".parse().unwrap());
            recs.push(r);
        }
        let d = Dataset::new(Workload::Echo, 1, recs);
        let lines = cache_answer(&d);
        assert_eq!(lines.len(), 1);
        assert_eq!(
            lines,
            vec![
                "Could not be measured on this machine: the client counters l1d_load_misses and \
                  llc_load_misses are missing (counters_missing: l1d_load_misses+llc_load_misses)."
            ]
        );
    }

    #[test]
    fn cache_reduction_compares_misses_per_byte() {
        let mut two = record(Backend::Syscall, Mode::TwoCopy, K, 1, 1.0);
        let mut one = record(Backend::Syscall, Mode::OneCopy, K, 1, 1.0);
        // Same bytes moved (example: 8192 client bytes); L1d halves, LLC drops by 10%.
        for (r, l1, llc) in [(&mut two, 8192, 1000), (&mut one, 4096, 900)] {
            let c = r.client.counters.as_mut().unwrap();
            c.l1d_load_misses = Some(l1);
            c.llc_load_misses = Some(llc);
        }
        let d = Dataset::new(Workload::Echo, 1, vec![two, one]);
        let lines = cache_answer(&d);
        assert_eq!(
            lines[0],
            "- two-copy → one-copy: L1d misses per byte fell by a median 50% (1 comparisons); LLC misses per byte fell by a median 10% (1 comparisons)."
        );
        assert_eq!(
            lines[2],
            "The largest reduction is at L1d: a median 50% fewer client misses per byte from two-copy to one-copy (LLC: at best a median 10% fewer, to one-copy)."
        );
    }

    #[test]
    fn stream_has_no_latency_answer() {
        let mut recs = Vec::new();
        for t in [1, 4] {
            let mut r = record(Backend::Syscall, Mode::TwoCopy, 16 * K, t, 1.0);
            r.config.workload = Workload::Stream;
            r.latency = None;
            recs.push(r);
        }
        let d = Dataset::new(Workload::Stream, 1, recs);
        assert!(latency_by_threads(&d, 16 * K).is_empty());
        assert_eq!(
            latency_answer(&d),
            vec!["Not answerable from this run: the stream workload has no round trips, so no latency was measured."]
        );
    }

    #[test]
    fn latency_moves_with_threads() {
        let mut recs = Vec::new();
        for (t, lat) in [(1, 20.0), (4, 50.0)] {
            let mut r = record(Backend::Uring, Mode::Zc, 16 * K, t, 1.0);
            r.latency.as_mut().unwrap().mean_us = lat;
            recs.push(r);
        }
        let d = Dataset::new(Workload::Echo, 1, recs);
        let lines = latency_answer(&d);
        assert_eq!(lines[2], "- uring zc: 20.0 µs → 50.0 µs (2.50×)");
        assert_eq!(
            lines[4],
            "Going from 1 to 4 threads, latency rose in every engine × mode (median ratio 2.50×)."
        );
    }

    #[test]
    fn copied_fraction_sentences_state_only_measured_values() {
        let s = copied_sentence(Backend::Syscall, Mode::Zc, Some((1.0, 1.0)));
        assert_eq!(
            s,
            "syscall zc: the kernel marked 100% of zero-copy completions as copied at every point, so no copy was avoided."
        );
        let s = copied_sentence(Backend::Uring, Mode::Zc, Some((0.0, 0.25)));
        assert_eq!(
            s,
            "uring zc: the kernel marked between 0% and 25% of zero-copy completions as copied (point medians)."
        );
        assert!(copied_sentence(Backend::Uring, Mode::Zc, None).contains("unknown"));

        let mut z = record(Backend::Uring, Mode::Zc, K, 1, 1.0);
        z.client.zc_copied_fraction = Some(0.5);
        let d = Dataset::new(Workload::Echo, 1, vec![z.clone()]);
        assert_eq!(copied_note(&d, Some("loopback")), None, "only near 100%");
        z.client.zc_copied_fraction = Some(1.0);
        let d = Dataset::new(Workload::Echo, 1, vec![z]);
        assert!(copied_note(&d, Some("loopback"))
            .unwrap()
            .contains("(this run: loopback)"));
    }

    #[test]
    fn unexpected_flags_zero_copy_that_never_wins() {
        let mut recs = Vec::new();
        for s in [K, 64 * K] {
            recs.push(record(Backend::Syscall, Mode::TwoCopy, s, 1, 2.0));
            let mut z = record(Backend::Syscall, Mode::Zc, s, 1, 1.0);
            z.client.zc_copied_fraction = Some(1.0);
            recs.push(z);
        }
        let d = Dataset::new(Workload::Echo, 1, recs);
        let u = unexpected(&d);
        assert_eq!(
            u[0],
            "zc was slower than two-copy on syscall at all 2 comparable points (zc/two-copy 0.50×), although it skips a copy. \
             The kernel marked 100% of its completions as copied, so it paid for pinning and completions without avoiding the copy."
        );
    }
}
