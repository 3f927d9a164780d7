//! The study's questions answered from a dataset: pure functions from points to figures
//! and to the sentences that state them. Every number a sentence holds is computed here
//! from the medians, and every comparative word ("outperforms", "faster", "rose") holds
//! only where the difference survives the measured spread ([`super::data::compare`]);
//! otherwise the sentence says "no difference beyond noise", or "not judged" for a point
//! too doubtful to use. Where the data cannot answer, the sentence says so.

use engine::config::format_size;
use engine::host::{Interface, LinkKind};
use engine::placement::PlacementPolicy;
use engine::{Backend, Mode};

use super::data::{compare, Dataset, Measured, Metric, Point, Verdict};
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

/// Two points' medians of one metric, `a` at `point` and `b` at `partner`, and how they
/// compare under the noise rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    pub point: Point,
    pub partner: Point,
    pub a: f64,
    pub b: f64,
    pub verdict: Verdict,
}

impl Pair {
    pub fn ratio(&self) -> f64 {
        self.a / self.b
    }

    /// `1.23× (>)`: the ratio of medians and its verdict's mark.
    pub fn marked_ratio(&self) -> String {
        format!("{} ({})", ratio(self.ratio()), self.verdict.mark())
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
        .filter_map(|p| pair(d, *p, d, partner(p), m))
        .collect()
}

/// `p` of `d` against `q` of `e` (another dataset, or the same) on `m`.
pub fn pair(d: &Dataset, p: Point, e: &Dataset, q: Point, m: Metric) -> Option<Pair> {
    let a = d.measured(&p, m)?;
    let b = e.measured(&q, m).filter(|b| b.median > 0.0)?;
    Some(Pair {
        point: p,
        partner: q,
        a: a.median,
        b: b.median,
        verdict: compare(&a, &b),
    })
}

/// How many of `pairs` came out each way: `(higher, lower, same, unjudged)`.
pub fn tally(pairs: &[Pair]) -> (usize, usize, usize, usize) {
    let n = |v: Verdict| pairs.iter().filter(|p| p.verdict == v).count();
    (
        n(Verdict::Higher),
        n(Verdict::Lower),
        n(Verdict::Same),
        n(Verdict::Unjudged),
    )
}

/// `higher beyond noise at 3, lower at 1, no difference beyond noise at 4, not judged at
/// 2 of 10` with the words for higher and lower given.
pub fn tally_phrase(pairs: &[Pair], higher: &str, lower: &str) -> String {
    let (h, l, s, u) = tally(pairs);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(format!("{higher} beyond noise at {h}"));
    }
    if l > 0 {
        parts.push(format!("{lower} beyond noise at {l}"));
    }
    if s > 0 {
        parts.push(format!("no difference beyond noise at {s}"));
    }
    if u > 0 {
        parts.push(format!("not judged (a doubtful point) at {u}"));
    }
    format!("{} of {}", list(&parts), pairs.len())
}

/// `median uring/syscall 1.05× over the 3 judged`: the median ratio over the pairs that
/// could be judged, so a doubtful point never moves a headline; says so where none could.
pub fn median_phrase(pairs: &[Pair], name: &str) -> String {
    let judged: Vec<f64> = pairs
        .iter()
        .filter(|p| p.verdict.is_judged())
        .map(Pair::ratio)
        .collect();
    match median(&judged) {
        Some(m) => format!(
            "median {name} {} over the {} judged",
            ratio(m),
            judged.len()
        ),
        None => format!("no judged point for a median {name}"),
    }
}

/// Where one series overtakes another over the sizes measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Crossover {
    /// Per size, ascending: a / b and the verdict.
    pub ratios: Vec<(usize, f64, Verdict)>,
    /// The smallest size from which `a` beats `b` beyond noise at that size and every
    /// larger one.
    pub from: Option<usize>,
    /// Every size at which `a` beats `b` beyond noise.
    pub ahead_at: Vec<usize>,
    /// Every size at which `b` beats `a` beyond noise.
    pub behind_at: Vec<usize>,
    /// Sizes with no difference beyond noise.
    pub level_at: Vec<usize>,
    /// Sizes where a point was too doubtful to compare.
    pub unjudged_at: Vec<usize>,
}

/// `(size, a, b, verdict)` in any order: where `a` overtakes `b`.
pub fn crossover(points: &[(usize, f64, f64, Verdict)]) -> Crossover {
    let mut v = points.to_vec();
    v.sort_by_key(|x| x.0);
    let mut from = None;
    for &(s, _, _, verdict) in v.iter().rev() {
        if verdict == Verdict::Higher {
            from = Some(s);
        } else {
            break;
        }
    }
    let at =
        |want: Verdict| -> Vec<usize> { v.iter().filter(|x| x.3 == want).map(|x| x.0).collect() };
    Crossover {
        ratios: v
            .iter()
            .filter(|x| x.2 > 0.0)
            .map(|&(s, a, b, verdict)| (s, a / b, verdict))
            .collect(),
        from,
        ahead_at: at(Verdict::Higher),
        behind_at: at(Verdict::Lower),
        level_at: at(Verdict::Same),
        unjudged_at: at(Verdict::Unjudged),
    }
}

/// `1K, 4K and 16K`.
fn sizes_list(v: &[usize]) -> String {
    list(&v.iter().map(|s| size(*s)).collect::<Vec<_>>())
}

impl Crossover {
    /// The answer in a few words: `from 64K up (measured 1K–64K)`, `at every measured size
    /// (1K–64K)`, `never beyond noise in the measured range (1K–64K)`, then what happened
    /// at the other sizes: ahead only here and there (a non-monotonic curve), behind, level
    /// within noise, not judged.
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
        let head = match self.from {
            Some(s) if s == *first => return format!("at every measured size ({span})"),
            Some(s) => format!("from {} up (measured {span})", size(s)),
            None => format!("never beyond noise in the measured range ({span})"),
        };
        let from = self.from.unwrap_or(usize::MAX);
        let mut notes = Vec::new();
        let early: Vec<usize> = self
            .ahead_at
            .iter()
            .copied()
            .filter(|s| *s < from)
            .collect();
        if !early.is_empty() {
            notes.push(format!(
                "ahead also at {}, but not at every larger size",
                sizes_list(&early)
            ));
        }
        if !self.behind_at.is_empty() {
            notes.push(format!("behind at {}", sizes_list(&self.behind_at)));
        }
        if !self.level_at.is_empty() {
            notes.push(format!(
                "no difference beyond noise at {}",
                sizes_list(&self.level_at)
            ));
        }
        if !self.unjudged_at.is_empty() {
            notes.push(format!(
                "not judged at {} (a doubtful point)",
                sizes_list(&self.unjudged_at)
            ));
        }
        if notes.is_empty() {
            head
        } else {
            format!("{head}; {}", notes.join("; "))
        }
    }

    /// `1K 0.89× (<), 64K 1.04× (≈)`.
    pub fn ratio_list(&self) -> String {
        self.ratios
            .iter()
            .map(|(s, r, v)| format!("{} {} ({})", size(*s), ratio(*r), v.mark()))
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
            let v: Vec<(usize, f64, f64, Verdict)> = pairs
                .iter()
                .map(|p| (p.point.size, p.a, p.b, p.verdict))
                .collect();
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

/// The interfaces the data crossed, as the two sides described them (from the first
/// record that has both; the first client host's under fan-in).
pub fn path_interfaces(d: &Dataset) -> Option<(Interface, Interface)> {
    d.records().iter().find_map(|r| {
        let client = r.client_hosts().first()?.interface.clone()?;
        let server = r.server.as_ref()?.host.as_ref()?.interface.clone()?;
        Some((client, server))
    })
}

/// What kind of path the data took: loopback or veth when either end is one (the data
/// stayed in one kernel), a NIC when both ends are, else virtual.
pub fn path_kind(client: &Interface, server: &Interface) -> LinkKind {
    use LinkKind::*;
    match (client.kind, server.kind) {
        (Loopback, _) | (_, Loopback) => Loopback,
        (Veth, _) | (_, Veth) => Veth,
        (Nic, Nic) => Nic,
        _ => Virtual,
    }
}

/// `veth cpc1 (driver veth, MTU 1500)`.
pub fn interface_words(i: &Interface) -> String {
    let mut parts = Vec::new();
    if let Some(d) = &i.driver {
        parts.push(format!("driver {d}"));
    }
    if let Some(s) = i.speed_mbps {
        parts.push(format!("{s} Mbit/s"));
    }
    if let Some(m) = i.mtu {
        parts.push(format!("MTU {m}"));
    }
    let o = i.offloads;
    let flag = |name: &str, v: Option<bool>| {
        v.map(|on| format!("{name} {}", if on { "on" } else { "off" }))
    };
    let offloads: Vec<String> = [
        flag("sg", o.sg),
        flag("tso", o.tso),
        flag("gso", o.gso),
        flag("gro", o.gro),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !offloads.is_empty() {
        parts.push(offloads.join(" "));
    }
    format!("{} {} ({})", i.kind.as_str(), i.name, parts.join(", "))
}

/// Why the copied fraction is what it is on this path: the interfaces the two sides named
/// where the records have them, else `network` (meta.json's description). `None` unless
/// some engine × mode measured a fraction of 0.9 or more.
pub fn copied_note(d: &Dataset, network: Option<&str>) -> Option<String> {
    let high = d.engines().into_iter().any(|e| {
        [Mode::Zc, Mode::ZcFixed]
            .into_iter()
            .any(|m| copied_fraction(d, e, m).is_some_and(|r| r.1 >= 0.9))
    });
    if !high {
        return None;
    }
    Some(match path_interfaces(d) {
        Some((c, s)) if path_kind(&c, &s).stays_local() => format!(
            "The data stayed in one kernel ({} on the client, {} on the server): the kernel copies every zero-copy send when it delivers it to a socket of the same kernel, so a copied fraction near 100% is what this path gives by construction, and only a real NIC between two hosts can show the gain.",
            interface_words(&c),
            interface_words(&s)
        ),
        Some((c, s)) => format!(
            "The data crossed {} on the client and {} on the server, yet the kernel still copied: a zero-copy send is copied where the device cannot take the pages as they are (no scatter-gather, a bounce buffer, a software device in the path); check the driver and its offloads.",
            interface_words(&c),
            interface_words(&s)
        ),
        None => {
            let on = network.map_or(String::new(), |n| format!(" (this run: {n})"));
            format!(
                "A copied fraction near 100% is what loopback and veth give{on}: the kernel copies \
                 every zero-copy send when it delivers to the local receiving socket, so only a real \
                 NIC can show the gain."
            )
        }
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
    /// uring faster beyond noise.
    pub uring_faster: usize,
    /// uring slower beyond noise.
    pub uring_slower: usize,
    /// No difference beyond noise.
    pub level: usize,
    /// A point too doubtful to compare.
    pub unjudged: usize,
    /// The largest ratio where uring was faster beyond noise, and the smallest where it
    /// was slower: a doubtful point, or a difference within noise, never supplies a
    /// headline.
    pub best: Option<EngineRow>,
    pub worst: Option<EngineRow>,
}

pub fn summarize_engines(rows: &[EngineRow]) -> Option<EngineSummary> {
    if rows.is_empty() {
        return None;
    }
    let by_ratio = |a: &&EngineRow, b: &&EngineRow| a.ratio().total_cmp(&b.ratio());
    let beyond = |v: Verdict| rows.iter().filter(move |r| r.verdict == v);
    let (faster, slower, level, unjudged) = tally(rows);
    Some(EngineSummary {
        comparable: rows.len(),
        uring_faster: faster,
        uring_slower: slower,
        level,
        unjudged,
        best: beyond(Verdict::Higher).max_by(by_ratio).copied(),
        worst: beyond(Verdict::Lower).min_by(by_ratio).copied(),
    })
}

/// `zc 64K, 2 threads`.
pub fn where_(p: &Point) -> String {
    format!("{} {}, {}", p.mode, size(p.size), threads(p.threads))
}

impl EngineSummary {
    /// `Of 8 comparable points, uring was faster beyond noise at 2, …; median uring/syscall
    /// 1.04×; largest judged ratio: …`.
    pub fn sentence(&self, rows: &[EngineRow]) -> String {
        let row = |r: &EngineRow| {
            format!(
                "{} ({} vs {} Gbit/s, {})",
                where_(&r.point),
                gbps(r.a),
                gbps(r.b),
                r.marked_ratio()
            )
        };
        let mut extremes = String::new();
        if let Some(b) = &self.best {
            extremes.push_str(&format!("; where faster, at most {}", row(b)));
        }
        if let Some(w) = &self.worst {
            extremes.push_str(&format!("; where slower, at worst {}", row(w)));
        }
        format!(
            "uring against syscall: {}; {}{extremes}.",
            tally_phrase(rows, "faster", "slower"),
            median_phrase(rows, "uring/syscall"),
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

/// One engine × mode × size's figure at every thread count measured, and how each step
/// from one thread count to the next compares under the noise rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub engine: Backend,
    pub mode: Mode,
    pub size: usize,
    /// (threads, median), ascending.
    pub levels: Vec<(usize, f64)>,
    /// The verdict of each step: `steps[i]` compares `levels[i + 1]` with `levels[i]`.
    pub steps: Vec<Verdict>,
    /// The last level against the first.
    pub overall: Verdict,
}

/// What a curve does, in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Shape {
    RisesEveryStep,
    Rises,
    Flat,
    Falls,
    FallsEveryStep,
    /// Rises beyond noise at one step and falls beyond noise at another.
    NonMonotonic,
    /// No step could be judged.
    Unjudged,
}

impl Shape {
    pub fn words(self) -> &'static str {
        match self {
            Shape::RisesEveryStep => "rose beyond noise at every step",
            Shape::Rises => "rose beyond noise at some steps and fell beyond noise at none",
            Shape::Flat => "no step beyond noise",
            Shape::Falls => "fell beyond noise at some steps and rose beyond noise at none",
            Shape::FallsEveryStep => "fell beyond noise at every step",
            Shape::NonMonotonic => {
                "not monotonic: it rose beyond noise at one step and fell at another"
            }
            Shape::Unjudged => "not judged: doubtful points at every step",
        }
    }
}

impl Curve {
    pub fn shape(&self) -> Shape {
        let judged: Vec<Verdict> = self
            .steps
            .iter()
            .copied()
            .filter(|v| v.is_judged())
            .collect();
        let up = judged.iter().filter(|v| **v == Verdict::Higher).count();
        let down = judged.iter().filter(|v| **v == Verdict::Lower).count();
        match (judged.len(), up, down) {
            (0, ..) => Shape::Unjudged,
            (_, u, d) if u > 0 && d > 0 => Shape::NonMonotonic,
            (n, u, 0) if u == n && n == self.steps.len() => Shape::RisesEveryStep,
            (_, u, 0) if u > 0 => Shape::Rises,
            (n, 0, d) if d == n && n == self.steps.len() => Shape::FallsEveryStep,
            (_, 0, d) if d > 0 => Shape::Falls,
            _ => Shape::Flat,
        }
    }

    /// `1: 20.1 → 2: 25.3 (≈) → 4: 48.0 (>)`.
    pub fn path(&self, fmt: impl Fn(f64) -> String) -> String {
        let mut s = String::new();
        for (i, (t, v)) in self.levels.iter().enumerate() {
            if i > 0 {
                s.push_str(&format!(
                    " → {t}: {} ({})",
                    fmt(*v),
                    self.steps[i - 1].mark()
                ));
            } else {
                s.push_str(&format!("{t}: {}", fmt(*v)));
            }
        }
        s
    }
}

/// `m` against the thread count for every engine × mode at size `at` (every size: `None`),
/// where at least two thread counts measured it.
pub fn thread_curves(d: &Dataset, at: Option<usize>, m: Metric) -> Vec<Curve> {
    let mut out = Vec::new();
    let sizes = at.map_or_else(|| d.sizes(), |s| vec![s]);
    for size in sizes {
        for engine in d.engines() {
            for mode in d.modes(Some(engine)) {
                let base = d.point(engine, mode, size, 0);
                let pts: Vec<(usize, super::data::Measured)> = d
                    .threads()
                    .into_iter()
                    .filter_map(|t| Some((t, d.measured(&Point { threads: t, ..base }, m)?)))
                    .collect();
                if pts.len() < 2 {
                    continue;
                }
                let steps = pts.windows(2).map(|w| compare(&w[1].1, &w[0].1)).collect();
                let overall = compare(&pts[pts.len() - 1].1, &pts[0].1);
                out.push(Curve {
                    engine,
                    mode,
                    size,
                    levels: pts.iter().map(|(t, x)| (*t, x.median)).collect(),
                    steps,
                    overall,
                });
            }
        }
    }
    out
}

/// The CPUs one side's threads may run on at the largest thread count: distinct pinned
/// CPUs from the records, or `cores` where unpinned.
fn side_cpus(d: &Dataset, cores: Option<usize>) -> Option<usize> {
    let top = *d.threads().last()?;
    let pinned = d
        .records()
        .iter()
        .filter(|r| r.config.threads == top)
        .find_map(|r| r.client.cpus.as_ref().map(|c| c.split(',').count()));
    match (pinned, d.placement) {
        (Some(n), _) => Some(n),
        (None, Some(engine::placement::PlacementPolicy::Unpinned)) => cores,
        _ => None,
    }
}

/// A sentence on what oversubscription alone predicts for `curves` (latency), where the
/// thread counts outgrow the CPUs a side has; `None` where they never do.
fn oversubscription(d: &Dataset, curves: &[Curve], cores: Option<usize>) -> Option<String> {
    let cpus = side_cpus(d, cores)?;
    let ts = d.threads();
    let (lo, hi) = (*ts.first()?, *ts.last()?);
    if hi <= cpus {
        return Some(format!(
            "At every thread count measured each client thread had a CPU of its own ({cpus} for the client side under {} placement), so more threads did not have to take turns.",
            crate::results::placement_name(d.placement)
        ));
    }
    let load = |t: usize| (t as f64 / cpus as f64).max(1.0);
    // Compare where only the sharing grows: from the first thread count past the CPUs (a
    // CPU already busy) to the last. Below it a CPU idles between messages, and waking an
    // idle CPU (on a VM, an idle vCPU) is a cost of its own that oversubscription does not
    // predict.
    let first_over = ts.iter().find(|t| **t > cpus).copied().unwrap_or(hi);
    let from = if first_over < hi { first_over } else { lo };
    let expected = load(hi) / load(from);
    let pairs: Vec<Pair> = curves
        .iter()
        .filter_map(|c| {
            pair(
                d,
                d.point(c.engine, c.mode, c.size, hi),
                d,
                d.point(c.engine, c.mode, c.size, from),
                Metric::LatencyMean,
            )
        })
        .filter(|p| p.verdict.is_judged())
        .collect();
    let head = format!(
        "Likely cause: from {} on, client threads outnumber the {cpus} CPU(s) the client side has under {} placement, so they take turns: a round trip waits about as long as there are threads per CPU, which predicts ×{expected:.1} from {from} to {hi} threads",
        threads(first_over),
        crate::results::placement_name(d.placement),
    );
    let n = pairs.len();
    let rose = pairs
        .iter()
        .filter(|p| p.verdict == Verdict::Higher)
        .count();
    let ratios: Vec<f64> = pairs.iter().map(Pair::ratio).collect();
    let Some(m) = median(&ratios) else {
        return Some(format!(
            "{head}. No engine × mode above could be judged at both {from} and {hi} threads, so the prediction is not checked here."
        ));
    };
    // A latency that did not rise beyond noise contradicts the prediction, whatever its
    // ratio; a rise is consistent with it within a factor of about 1.5.
    let verdict = if rose * 2 <= n {
        "latency did not rise beyond noise in most of them, so oversubscription is not borne out here"
    } else if m >= expected / 1.5 && m <= expected * 1.5 {
        "consistent with oversubscription being most of the cause"
    } else if m > expected * 1.5 {
        "more than oversubscription alone explains"
    } else {
        "less than oversubscription alone predicts (the extra threads used idle time)"
    };
    Some(format!(
        "{head}. Measured: latency rose beyond noise in {rose} of the {n} engine × mode(s) above judged at both ends, by a median ×{m:.2} — {verdict}."
    ))
}

/// Markdown lines answering Q5: the whole latency curve over every thread count, each step
/// judged under the noise rule, its shape, and the cause the data points to. `cores` is the
/// machine's CPU count from meta.json.
pub fn latency_answer(d: &Dataset, cores: Option<usize>) -> Vec<String> {
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
    let curves = thread_curves(d, Some(at), Metric::LatencyMean);
    if curves.is_empty() {
        return vec![format!(
            "Not answerable from this run: no engine × mode has latency at two thread counts at {}.",
            size(at)
        )];
    }
    let mut lines = vec![
        format!(
            "Mean round-trip latency (µs) at {}{} by client threads, under {} placement (the same at every thread count). Each step is marked > (rose beyond noise), < (fell), ≈ (no difference beyond noise) or ? (not judged):",
            size(at),
            if at == 16 << 10 {
                ""
            } else {
                " (the measured size closest to 16K)"
            },
            crate::results::placement_name(d.placement)
        ),
        String::new(),
    ];
    for c in &curves {
        lines.push(format!(
            "- {} {}: {} — {}",
            c.engine,
            c.mode,
            c.path(us),
            c.shape().words()
        ));
    }
    lines.push(String::new());
    let mut shapes: Vec<Shape> = curves.iter().map(Curve::shape).collect();
    shapes.sort();
    shapes.dedup();
    let parts: Vec<String> = shapes
        .iter()
        .map(|sh| {
            let n = curves.iter().filter(|c| c.shape() == *sh).count();
            format!("{n} {}", sh.words())
        })
        .collect();
    lines.push(format!(
        "Of {} engine × modes: {}.",
        curves.len(),
        parts.join("; ")
    ));
    let all = thread_curves(d, None, Metric::LatencyMean);
    let overall: Vec<Pair> = all
        .iter()
        .map(|c| {
            let at = |i: usize| d.point(c.engine, c.mode, c.size, c.levels[i].0);
            let last = c.levels.len() - 1;
            Pair {
                point: at(last),
                partner: at(0),
                a: c.levels[last].1,
                b: c.levels[0].1,
                verdict: c.overall,
            }
        })
        .collect();
    if !overall.is_empty() {
        lines.push(format!(
            "Over every size, from {} to {} threads latency {} engine × mode × size series.",
            ts[0],
            ts[ts.len() - 1],
            tally_phrase(&overall, "rose", "fell")
        ));
    }
    if let Some(cause) = oversubscription(d, &curves, cores) {
        lines.push(String::new());
        lines.push(cause);
    }
    lines
}

/// `zc/two-copy 0.50×–0.70×`: the span of the ratios in `pairs`.
fn span(pairs: &[Pair]) -> String {
    let r: Vec<f64> = pairs.iter().map(Pair::ratio).collect();
    let (lo, hi) = crate::summary::range(&r).unwrap_or((f64::NAN, f64::NAN));
    if ratio(lo) == ratio(hi) {
        ratio(lo)
    } else {
        format!("{}–{}", ratio(lo), ratio(hi))
    }
}

/// `at all 3 comparable points`, `at all 2 judged points of 4 (2 doubtful)`: how much of
/// `pairs` a finding rests on.
fn judged_of(pairs: &[Pair]) -> String {
    let judged = pairs.iter().filter(|p| p.verdict.is_judged()).count();
    if judged == pairs.len() {
        format!("at all {judged} comparable points")
    } else {
        format!(
            "at all {judged} judged points of {} ({} doubtful)",
            pairs.len(),
            pairs.len() - judged
        )
    }
}

/// Whether every judged pair came out `v`, with at least one judged.
fn all_judged(pairs: &[Pair], v: Verdict) -> bool {
    let judged: Vec<&Pair> = pairs.iter().filter(|p| p.verdict.is_judged()).collect();
    !judged.is_empty() && judged.iter().all(|p| p.verdict == v)
}

/// Findings that contradict the usual expectation, each phrased from the data and each
/// resting only on differences beyond noise.
pub fn unexpected(d: &Dataset) -> Vec<String> {
    let mut out = Vec::new();
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
            if all_judged(&pairs, Verdict::Lower) {
                let judged: Vec<Pair> = pairs
                    .iter()
                    .copied()
                    .filter(|p| p.verdict.is_judged())
                    .collect();
                let mut s = format!(
                    "{to} was slower than two-copy on {engine} beyond noise {}, {to}/two-copy {}, although it skips a copy.",
                    judged_of(&pairs),
                    span(&judged)
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
        if s.uring_slower > s.uring_faster && s.uring_slower * 2 > s.comparable - s.unjudged {
            out.push(format!(
                "uring was slower than syscall beyond noise at {} of {} comparable points (faster at {}; {}), although it batches kernel calls.",
                s.uring_slower,
                s.comparable,
                s.uring_faster,
                median_phrase(&rows, "uring/syscall")
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
    if all_judged(&fixed, Verdict::Lower) {
        let judged: Vec<Pair> = fixed
            .iter()
            .copied()
            .filter(|p| p.verdict.is_judged())
            .collect();
        out.push(format!(
            "zc-fixed was slower than zc beyond noise {}, zc-fixed/zc {}, although it skips per-send pinning.",
            judged_of(&fixed),
            span(&judged)
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
            let worse: Vec<&Pair> = more
                .iter()
                .filter(|p| p.verdict == Verdict::Lower)
                .collect();
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
                    "{hi} threads moved less than {lo} beyond noise at {} of {} points: {}.",
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
        if let Some(x) = pair(d, q, d, *p, Metric::Throughput) {
            if x.verdict == Verdict::Lower {
                drops.push(format!(
                    "{} {} ×{}: {} → {} Gbit/s from {} to {}",
                    p.engine,
                    p.mode,
                    p.threads,
                    gbps(x.b),
                    gbps(x.a),
                    size(p.size),
                    size(next)
                ));
            }
        }
    }
    if !drops.is_empty() {
        out.push(format!(
            "Throughput fell beyond noise as messages grew: {}.",
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

/// What sets two placements apart, for the reader of their comparison.
fn placement_cause(a: Option<PlacementPolicy>, b: Option<PlacementPolicy>) -> Option<String> {
    use PlacementPolicy::*;
    let pair = |x, y| (a == Some(x) && b == Some(y)) || (a == Some(y) && b == Some(x));
    if pair(Split, Paired) {
        Some("Under split every message wakes a thread on the other CPU (the sides never share one); under paired a round trip stays on one CPU, but the client and the server thread compete for it. The ratios measure which costs more on this machine.".into())
    } else if a == Some(Unpinned) || b == Some(Unpinned) {
        Some("Unpinned threads go where the scheduler puts them, which may change from run to run: expect a wider spread.".into())
    } else {
        None
    }
}

/// One path at one size and thread count: a point of some dataset, with its one-way
/// throughput.
struct Candidate<'a> {
    set: &'a Dataset,
    point: Point,
    measured: Measured,
}

impl Candidate<'_> {
    /// `uring zc-fixed` or `syscall one-copy, rx discard, busy-poll`.
    fn path(&self) -> String {
        format!(
            "{} {}{}",
            self.point.engine,
            self.point.mode,
            crate::results::path_extras(self.point.rx, self.point.polling)
        )
    }

    /// The median of `f` over the point's runs, where they have it.
    fn median_of(&self, f: impl Fn(&engine::Record) -> Option<f64>) -> Option<f64> {
        let v: Vec<f64> = self.set.of(&self.point).filter_map(f).collect();
        crate::summary::median(&v)
    }
}

/// `## Which path wins where`: at every size and thread count of a workload, depth and
/// placement, the path (engine, mode, receive path) with the highest one-way throughput,
/// whether it wins beyond noise over the runner-up, and what the kernel did with its
/// bytes: the share of zero-copy sends it copied anyway and the share of received bytes
/// it mapped. Datasets of different receive paths meet here, and only here.
pub fn which_path_answer(sets: &[Dataset]) -> Option<Vec<String>> {
    let mut groups: Vec<Vec<&Dataset>> = Vec::new();
    for d in sets {
        match groups.iter_mut().find(|g| {
            let f = g[0];
            (f.workload, f.depth, f.placement, &f.cpus, f.rate)
                == (d.workload, d.depth, d.placement, &d.cpus, d.rate)
        }) {
            Some(g) => g.push(d),
            None => groups.push(vec![d]),
        }
    }
    let mut lines = Vec::new();
    for group in groups {
        let first = group[0];
        let mut cells: Vec<(usize, usize)> = group
            .iter()
            .flat_map(|d| d.points().map(|p| (p.size, p.threads)))
            .collect();
        cells.sort_unstable();
        cells.dedup();
        if cells.is_empty() {
            continue;
        }
        if !lines.is_empty() {
            lines.push(String::new());
        }
        let placement = crate::results::placement_name(first.placement);
        let rate = first.rate.map_or(String::new(), |r| {
            format!(", at {} msg/s", crate::results::rate_name(r))
        });
        lines.push(format!(
            "**{}, depth {}, {placement} placement{rate}**: the highest one-way throughput at each size and thread count, over every engine, mode, receive path and polling option measured, against the runner-up.",
            first.workload, first.depth
        ));
        lines.push(String::new());
        lines.push("| size | threads | best path | one-way Gbit/s | zero-copy sends copied | received bytes mapped | against the runner-up |".into());
        lines.push("|---|---|---|---|---|---|---|".into());
        for (size, threads) in cells {
            let mut candidates: Vec<Candidate> = group
                .iter()
                .flat_map(|d| {
                    d.points()
                        .filter(|p| (p.size, p.threads) == (size, threads))
                        .filter_map(|p| {
                            Some(Candidate {
                                set: d,
                                point: *p,
                                measured: d.measured(p, Metric::OneWay)?,
                            })
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            candidates.sort_by(|a, b| b.measured.median.total_cmp(&a.measured.median));
            let Some(best) = candidates.first() else {
                continue;
            };
            let pct = |f: Option<f64>| f.map_or("–".to_owned(), |x| format!("{:.0}%", x * 100.0));
            let copied = best.median_of(|r| {
                r.client
                    .zc_copied_fraction
                    .or(r.server.as_ref().and_then(|s| s.zc_copied_fraction))
            });
            let mapped = best.median_of(engine::Record::rx_mapped_fraction);
            let against = match candidates.get(1) {
                None => "the only path measured here".to_owned(),
                Some(second) => match compare(&best.measured, &second.measured) {
                    Verdict::Higher => format!(
                        "> {} ({:.3}): ahead beyond noise, ×{:.2}",
                        second.path(),
                        second.measured.median,
                        best.measured.median / second.measured.median
                    ),
                    Verdict::Unjudged => format!(
                        "? not judged against {} ({:.3}): one of them is doubtful",
                        second.path(),
                        second.measured.median
                    ),
                    _ => {
                        let level: Vec<String> = candidates[1..]
                            .iter()
                            .filter(|c| compare(&best.measured, &c.measured) == Verdict::Same)
                            .map(|c| c.path())
                            .collect();
                        format!("≈ no difference beyond noise with {}", level.join("; "))
                    }
                },
            };
            let m = &best.measured;
            let spread = if m.values.len() > 1 {
                format!(" [{:.3}–{:.3}]", m.min, m.max)
            } else {
                String::new()
            };
            lines.push(format!(
                "| {} | {threads} | {}{} | {:.3}{spread} | {} | {} | {against} |",
                engine::config::format_size(size),
                best.path(),
                if m.doubt.is_some() { " ?" } else { "" },
                m.median,
                pct(copied),
                pct(mapped),
            ));
        }
    }
    (!lines.is_empty()).then_some(lines)
}

/// Markdown lines on what placement does: every point measured under two placements of
/// the same workload and depth, compared under the noise rule (throughput, and latency in
/// echo), per thread count. `None` when the folder has one placement only.
pub fn placement_answer(sets: &[Dataset]) -> Option<Vec<String>> {
    let mut lines = Vec::new();
    for (i, a) in sets.iter().enumerate() {
        for b in &sets[i + 1..] {
            if (a.workload, a.depth, a.rate) != (b.workload, b.depth, b.rate)
                || a.placement == b.placement
            {
                continue;
            }
            let (na, nb) = (
                crate::results::placement_name(a.placement),
                crate::results::placement_name(b.placement),
            );
            if !lines.is_empty() {
                lines.push(String::new());
            }
            lines.push(format!(
                "**{na} against {nb}** ({}, depth {}), point by point (same engine, mode, size and threads):",
                a.workload, a.depth
            ));
            lines.push(String::new());
            if let Some(why) = placement_cause(a.placement, b.placement) {
                lines.push(why);
                lines.push(String::new());
            }
            let mut metrics = vec![(Metric::Throughput, "throughput", "higher", "lower")];
            if a.workload == engine::Workload::Echo {
                metrics.push((Metric::LatencyMean, "mean latency", "higher", "lower"));
            }
            for (m, name, up, down) in metrics {
                let pairs: Vec<Pair> = a
                    .points()
                    .filter_map(|p| {
                        let q = Point {
                            placement: b.placement,
                            ..*p
                        };
                        pair(a, *p, b, q, m)
                    })
                    .collect();
                if pairs.is_empty() {
                    continue;
                }
                let over = format!("{na}/{nb}");
                lines.push(format!(
                    "- {name} under {na}: {}; {}.",
                    tally_phrase(&pairs, up, down),
                    median_phrase(&pairs, &over)
                ));
                for t in a.threads() {
                    let at: Vec<Pair> = pairs
                        .iter()
                        .copied()
                        .filter(|p| p.point.threads == t)
                        .collect();
                    if at.is_empty() {
                        continue;
                    }
                    lines.push(format!(
                        "  - {}: {}; {}",
                        threads(t),
                        tally_phrase(&at, up, down),
                        median_phrase(&at, &over)
                    ));
                }
            }
        }
    }
    (!lines.is_empty()).then_some(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::record;
    use engine::{Record, Workload};

    const K: usize = 1024;

    use Verdict::{Higher as H, Lower as L, Same as S, Unjudged as U};

    /// Records of one point, one per value: the runs of a repeated point.
    fn runs(engine: Backend, mode: Mode, size: usize, threads: usize, gbps: &[f64]) -> Vec<Record> {
        gbps.iter()
            .map(|g| record(engine, mode, size, threads, *g))
            .collect()
    }

    #[test]
    fn crossover_from_a_size_up() {
        let c = crossover(&[
            (64 * K, 2.0, 1.0, H),
            (K, 1.0, 2.0, L),
            (16 * K, 1.5, 1.0, H),
        ]);
        assert_eq!(c.from, Some(16 * K));
        assert_eq!(c.ahead_at, vec![16 * K, 64 * K]);
        assert_eq!(c.phrase(), "from 16K up (measured 1K–64K); behind at 1K");
        assert_eq!(c.ratio_list(), "1K 0.50× (<), 16K 1.50× (>), 64K 2.00× (>)");
    }

    #[test]
    fn a_higher_median_within_noise_is_not_a_win() {
        // 21.38 against 21.29 with overlapping runs: level, not "outperforms".
        let c = crossover(&[(16 * K, 21.38, 21.29, S), (64 * K, 30.0, 20.0, H)]);
        assert_eq!(c.from, Some(64 * K));
        assert_eq!(
            c.phrase(),
            "from 64K up (measured 16K–64K); no difference beyond noise at 16K"
        );
        let c = crossover(&[(K, 2.0, 1.0, S), (4 * K, 2.0, 1.0, U)]);
        assert_eq!(c.from, None);
        assert_eq!(
            c.phrase(),
            "never beyond noise in the measured range (1K–4K); no difference beyond noise at 1K; not judged at 4K (a doubtful point)"
        );
        let c = crossover(&[(K, 2.0, 1.0, H), (4 * K, 2.0, 1.0, H)]);
        assert_eq!(c.phrase(), "at every measured size (1K–4K)");
        assert_eq!(
            crossover(&[]).phrase(),
            "not answerable: no size where both were measured"
        );
    }

    #[test]
    fn a_lead_in_the_middle_only_is_not_overtaking() {
        let c = crossover(&[
            (K, 1.0, 2.0, L),
            (16 * K, 3.0, 2.0, H),
            (64 * K, 1.0, 2.0, L),
        ]);
        assert_eq!(c.from, None);
        assert_eq!(c.ahead_at, vec![16 * K]);
        assert_eq!(
            c.phrase(),
            "never beyond noise in the measured range (1K–64K); ahead also at 16K, but not at every larger size; behind at 1K and 64K"
        );
    }

    #[test]
    fn crossover_answer_judges_each_size_from_the_runs() {
        let mut recs = Vec::new();
        for t in [1, 2] {
            // 1K: one-copy clearly behind; 64K: ahead, ranges apart.
            recs.extend(runs(
                Backend::Syscall,
                Mode::TwoCopy,
                K,
                t,
                &[2.0, 2.1, 1.9],
            ));
            recs.extend(runs(
                Backend::Syscall,
                Mode::OneCopy,
                K,
                t,
                &[1.0, 1.1, 0.9],
            ));
            recs.extend(runs(
                Backend::Syscall,
                Mode::TwoCopy,
                64 * K,
                t,
                &[2.0, 2.1, 1.9],
            ));
            recs.extend(runs(
                Backend::Syscall,
                Mode::OneCopy,
                64 * K,
                t,
                &[3.0, 3.1, 2.9],
            ));
        }
        let d = Dataset::new(Workload::Echo, 1, recs);
        let lines = crossover_answer(&d, Mode::OneCopy, Mode::TwoCopy);
        assert_eq!(
            lines[0],
            "- **syscall**, one-copy outperforms two-copy: from 64K up (measured 1K–64K); behind at 1K, at every thread count measured (1 and 2)."
        );
        assert_eq!(
            lines[1],
            "  - 1 thread: ratios one-copy/two-copy: 1K 0.50× (<), 64K 1.50× (>)"
        );
        // The same medians with overlapping runs: no difference beyond noise.
        let mut recs = Vec::new();
        recs.extend(runs(
            Backend::Syscall,
            Mode::TwoCopy,
            K,
            1,
            &[2.0, 1.5, 2.5],
        ));
        recs.extend(runs(
            Backend::Syscall,
            Mode::OneCopy,
            K,
            1,
            &[2.1, 1.6, 2.6],
        ));
        let d = Dataset::new(Workload::Echo, 1, recs);
        assert_eq!(
            crossover_answer(&d, Mode::OneCopy, Mode::TwoCopy)[0],
            "- **syscall**, one-copy outperforms two-copy (1 thread): never beyond noise in the measured range (1K); no difference beyond noise at 1K. Ratios one-copy/two-copy: 1K 1.05× (≈)."
        );
    }

    #[test]
    fn engines_compare_point_by_point_and_headline_only_judged_points() {
        let mut recs = Vec::new();
        recs.extend(runs(
            Backend::Syscall,
            Mode::TwoCopy,
            K,
            1,
            &[2.0, 2.05, 2.1],
        ));
        recs.extend(runs(Backend::Uring, Mode::TwoCopy, K, 1, &[3.0, 3.05, 3.1]));
        recs.extend(runs(
            Backend::Syscall,
            Mode::TwoCopy,
            64 * K,
            1,
            &[10.0, 10.25, 10.5],
        ));
        recs.extend(runs(
            Backend::Uring,
            Mode::TwoCopy,
            64 * K,
            1,
            &[8.0, 8.1, 8.2],
        ));
        recs.extend(runs(Backend::Syscall, Mode::Zc, K, 2, &[1.0, 1.1, 1.2]));
        recs.extend(runs(Backend::Uring, Mode::Zc, K, 2, &[1.1, 1.2, 1.3]));
        // A wild point: the largest ratio, but its runs disagree; never a headline.
        recs.extend(runs(
            Backend::Syscall,
            Mode::OneCopy,
            K,
            1,
            &[1.0, 1.0, 1.0],
        ));
        recs.extend(runs(Backend::Uring, Mode::OneCopy, K, 1, &[1.0, 5.0, 9.0]));
        // Only on one engine: not comparable.
        recs.push(record(Backend::Uring, Mode::ZcFixed, K, 1, 9.0));
        let d = Dataset::new(Workload::Echo, 1, recs);
        let rows = compare_engines(&d);
        assert_eq!(rows.len(), 4);
        let s = summarize_engines(&rows).unwrap();
        assert_eq!(
            (
                s.comparable,
                s.uring_faster,
                s.uring_slower,
                s.level,
                s.unjudged
            ),
            (4, 1, 1, 1, 1)
        );
        assert_eq!(
            s.best.unwrap().point,
            Point::new(Backend::Uring, Mode::TwoCopy, K, 1)
        );
        assert_eq!(s.worst.unwrap().point.size, 64 * K);
        assert_eq!(
            s.sentence(&rows),
            "uring against syscall: faster beyond noise at 1, slower beyond noise at 1, \
             no difference beyond noise at 1 and not judged (a doubtful point) at 1 of 4; \
             median uring/syscall 1.09× over the 3 judged; where faster, at most two-copy 1K, 1 thread \
             (3.05 vs 2.05 Gbit/s, 1.49× (>)); where slower, at worst two-copy 64K, 1 thread \
             (8.10 vs 10.25 Gbit/s, 0.79× (<))."
        );
        assert!(summarize_engines(&[]).is_none());
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
        assert!(thread_curves(&d, Some(16 * K), Metric::LatencyMean).is_empty());
        assert_eq!(
            latency_answer(&d, Some(2)),
            vec!["Not answerable from this run: the stream workload has no round trips, so no latency was measured."]
        );
    }

    /// Runs of `mode` at 16K with these mean latencies per thread count, the client pinned
    /// to one CPU (split placement on two CPUs).
    fn latencies(mode: Mode, by_threads: &[(usize, [f64; 3])]) -> Vec<Record> {
        let mut v = Vec::new();
        for (t, lats) in by_threads {
            for lat in lats {
                let mut r = record(Backend::Uring, mode, 16 * K, *t, 1.0);
                r.latency.as_mut().unwrap().mean_us = *lat;
                r.client.cpus = Some("1".into());
                v.push(r);
            }
        }
        v
    }

    #[test]
    fn latency_describes_the_whole_curve_and_its_likely_cause() {
        let mut recs = latencies(
            Mode::Zc,
            &[
                (1, [20.0, 21.0, 19.0]),
                (2, [40.0, 41.0, 39.0]),
                (4, [80.0, 82.0, 79.0]),
                (8, [160.0, 161.0, 158.0]),
            ],
        );
        // Down, then up: not monotonic; the 2 → 4 step within noise.
        recs.extend(latencies(
            Mode::TwoCopy,
            &[
                (1, [30.0, 31.0, 29.0]),
                (2, [20.0, 21.0, 19.0]),
                (4, [20.5, 22.0, 19.5]),
                (8, [50.0, 52.0, 49.0]),
            ],
        ));
        let d = Dataset::new(Workload::Echo, 1, recs);
        let lines = latency_answer(&d, Some(2));
        let text = lines.join("\n");
        assert!(
            text.contains("- uring two-copy: 1: 30.0 → 2: 20.0 (<) → 4: 20.5 (≈) → 8: 50.0 (>) — not monotonic"),
            "{text}"
        );
        assert!(
            text.contains("- uring zc: 1: 20.0 → 2: 40.0 (>) → 4: 80.0 (>) → 8: 160.0 (>) — rose beyond noise at every step"),
            "{text}"
        );
        assert!(
            text.contains(
                "Of 2 engine × modes: 1 rose beyond noise at every step; 1 not monotonic"
            ),
            "{text}"
        );
        assert!(
            text.contains("from 1 to 8 threads latency rose beyond noise at 2 of 2"),
            "{text}"
        );
        assert!(
            text.contains("from 2 threads on, client threads outnumber the 1 CPU(s) the client side has under split placement"),
            "{text}"
        );
        // From 2 threads (the first past the client's one CPU) to 8: ×4 predicted; zc
        // 160/40 = 4, two-copy 50/20 = 2.5.
        assert!(text.contains("predicts ×4.0 from 2 to 8 threads"), "{text}");
        assert!(
            text.contains("Measured: latency rose beyond noise in 2 of the 2 engine × mode(s) above judged at both ends, by a median ×3.25 — consistent with oversubscription"),
            "{text}"
        );
    }

    #[test]
    fn a_latency_change_within_noise_is_no_rise() {
        let recs = latencies(
            Mode::Zc,
            &[(1, [20.0, 30.0, 25.0]), (4, [26.0, 27.0, 29.0])],
        );
        let d = Dataset::new(Workload::Echo, 1, recs);
        let text = latency_answer(&d, Some(2)).join("\n");
        assert!(
            text.contains("1: 25.0 → 4: 27.0 (≈) — no step beyond noise"),
            "{text}"
        );
        assert!(
            text.contains("latency no difference beyond noise at 1 of 1"),
            "{text}"
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
        let mut unnamed = z.clone();
        unnamed.client.host = None;
        let d = Dataset::new(Workload::Echo, 1, vec![unnamed]);
        assert!(copied_note(&d, Some("loopback"))
            .unwrap()
            .contains("(this run: loopback)"));
        // Where the sides named their interfaces, the note says which path it was.
        let d = Dataset::new(Workload::Echo, 1, vec![z.clone()]);
        let note = copied_note(&d, Some("loopback")).unwrap();
        assert!(
            note.starts_with("The data stayed in one kernel (veth cps1 (driver veth, 10000 Mbit/s, MTU 1500, sg on tso on gso on gro off) on the client"),
            "{note}"
        );
        let mut nic = z;
        for h in [
            nic.client.host.as_mut().unwrap(),
            nic.server.as_mut().unwrap().host.as_mut().unwrap(),
        ] {
            let i = h.interface.as_mut().unwrap();
            i.kind = LinkKind::Nic;
            i.driver = Some("mlx5_core".into());
        }
        let d = Dataset::new(Workload::Echo, 1, vec![nic]);
        assert!(copied_note(&d, None)
            .unwrap()
            .starts_with("The data crossed nic cps1 (driver mlx5_core"));
    }

    #[test]
    fn unexpected_flags_zero_copy_that_never_wins_beyond_noise() {
        let mut recs = Vec::new();
        for s in [K, 64 * K] {
            recs.extend(runs(
                Backend::Syscall,
                Mode::TwoCopy,
                s,
                1,
                &[2.0, 2.05, 2.1],
            ));
            for mut z in runs(Backend::Syscall, Mode::Zc, s, 1, &[1.0, 1.02, 1.05]) {
                z.client.zc_copied_fraction = Some(1.0);
                recs.push(z);
            }
        }
        let d = Dataset::new(Workload::Echo, 1, recs);
        let u = unexpected(&d);
        assert_eq!(
            u[0],
            "zc was slower than two-copy on syscall beyond noise at all 2 comparable points, zc/two-copy 0.50×, although it skips a copy. \
             The kernel marked 100% of its completions as copied, so it paid for pinning and completions without avoiding the copy."
        );
        // Within noise: nothing to flag.
        let mut recs = runs(Backend::Syscall, Mode::TwoCopy, K, 1, &[2.0, 1.5, 1.0]);
        recs.extend(runs(Backend::Syscall, Mode::Zc, K, 1, &[1.4, 1.5, 1.6]));
        let d = Dataset::new(Workload::Echo, 1, recs);
        assert!(unexpected(&d).is_empty(), "{:?}", unexpected(&d));
    }

    #[test]
    fn placements_are_compared_point_by_point() {
        let mut recs = Vec::new();
        for (policy, gbps) in [
            (PlacementPolicy::Split, [1.0, 1.1, 0.9]),
            (PlacementPolicy::Paired, [3.0, 3.1, 2.9]),
        ] {
            for t in [1, 2] {
                for mut r in runs(Backend::Syscall, Mode::TwoCopy, K, t, &gbps) {
                    r.config.cpus = policy.into();
                    recs.push(r);
                }
            }
        }
        let sets = Dataset::split(recs, None);
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].placement, Some(PlacementPolicy::Split));
        let lines = placement_answer(&sets).unwrap();
        assert_eq!(
            lines[0],
            "**split against paired** (echo, depth 1), point by point (same engine, mode, size and threads):"
        );
        assert!(lines[2].starts_with("Under split every message wakes a thread"));
        assert_eq!(
            lines[4],
            "- throughput under split: lower beyond noise at 2 of 2; median split/paired 0.33× over the 2 judged."
        );
        assert_eq!(
            lines[5],
            "  - 1 thread: lower beyond noise at 1 of 1; median split/paired 0.33× over the 1 judged"
        );
        assert!(placement_answer(&sets[..1]).is_none());
    }

    #[test]
    fn the_best_path_at_each_point_is_named_with_its_verdict_across_receive_paths() {
        let one_way = |mut r: Record, g: f64| {
            r.summary.one_way_gbps = Some(g);
            r
        };
        let mut recs = Vec::new();
        // 1K: discard ahead of copy beyond noise; 64K: level.
        for (rx, at_1k, at_64k) in [
            (engine::RxMode::Copy, [1.0, 1.1, 0.9], [5.0, 6.0, 5.5]),
            (engine::RxMode::Discard, [2.0, 2.1, 1.9], [5.2, 5.8, 5.6]),
        ] {
            for (size, gbps) in [(K, at_1k), (64 * K, at_64k)] {
                for g in gbps {
                    let mut r =
                        one_way(record(Backend::Syscall, Mode::OneCopy, size, 1, 2.0 * g), g);
                    r.config.rx = rx;
                    recs.push(r);
                }
            }
        }
        let sets = Dataset::split(recs, None);
        assert_eq!(sets.len(), 2, "one dataset per receive path");
        let lines = which_path_answer(&sets).unwrap();
        let row_1k = lines.iter().find(|l| l.starts_with("| 1K | 1 |")).unwrap();
        assert!(
            row_1k.contains("syscall one-copy, rx discard | 2.000 [1.900–2.100]")
                && row_1k.contains("> syscall one-copy (1.000): ahead beyond noise, ×2.00"),
            "{row_1k}"
        );
        let row_64k = lines.iter().find(|l| l.starts_with("| 64K | 1 |")).unwrap();
        assert!(
            row_64k.contains("≈ no difference beyond noise with syscall one-copy"),
            "{row_64k}"
        );
    }
}
