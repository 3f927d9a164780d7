//! Records grouped into points: one point is one engine × mode × size × threads of one
//! workload, depth and placement, and every figure of a point is the median over its
//! repeats. A median can hide a doubtful run, so the dataset also says which runs carried
//! warnings, and which points are too noisy to conclude from.
//!
//! The one rule every comparison in the report follows ([`compare`]): two points differ
//! only where their repeats' [min–max] ranges do not overlap, and only when neither point
//! is doubtful — fewer than [`MIN_RUNS`] runs, a run that carried a warning, or a spread
//! (max − min) above [`SPREAD_LIMIT`] of its median. Otherwise the answer is "no
//! difference beyond noise" or "not judged".
//!
//! What the rule can and cannot say: two points with no real difference still land with
//! ranges apart by chance — with 3 runs each, 1 time in 10 (2 × 3!3!/6!; with 2 each, 1 in
//! 3, which is why a point needs 3 runs). That 10% is also the best a rank test can do
//! with 3 against 3 (the smallest two-sided Mann–Whitney p is 0.1), so no test on these
//! runs would be stricter; the report states the 10% beside the rule, and a finding that
//! rests on one comparison is one to confirm with more rounds.

use std::collections::BTreeMap;

use engine::placement::PlacementPolicy;
use engine::{Backend, Mode, PollOpt, Record, RxMode, Warning, Workload};

use crate::summary::{median, range};

use crate::results::point_of;
/// One cell of the matrix (engine × mode × size × threads) within a [`Dataset`], whose
/// records share workload and depth.
pub use crate::results::Point;

/// Fewest runs a point needs before it may be compared: with 3 a side, ranges apart by
/// chance alone happen 1 time in 10; with 2, 1 in 3.
pub const MIN_RUNS: usize = 3;
/// A point whose runs spread (max − min) over more than this share of their median
/// disagrees too much to conclude from.
pub const SPREAD_LIMIT: f64 = 0.5;

/// A figure taken from one record; `None` where the record did not measure it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Gbit/s, the seed's figure: bytes sent + received.
    Throughput,
    /// Gbit/s one way: bytes sent (what iperf3 would print).
    OneWay,
    /// Mean round-trip time, µs (echo only).
    LatencyMean,
    /// Median round-trip time, µs.
    LatencyP50,
    /// 99th percentile round-trip time, µs.
    LatencyP99,
    /// Client L1d load misses per byte the client moved.
    L1dPerByte,
    /// Client LLC load misses per byte the client moved.
    LlcPerByte,
    /// Client cycles per byte.
    CyclesPerByte,
    /// Client CPU nanoseconds per byte (schema 2 on: its own threads' user + system time).
    CpuNsPerByte,
    /// Server CPU nanoseconds per byte, as the client's.
    ServerCpuNsPerByte,
    /// The client's own threads' user time, ms.
    ClientUserMs,
    /// The client's own threads' system time, ms.
    ClientSystemMs,
    /// The server's own threads' user time, ms.
    ServerUserMs,
    /// The server's own threads' system time, ms.
    ServerSystemMs,
    /// The machine's softirq time over the run, all CPUs, ms.
    SoftirqMs,
    /// The machine's steal time over the run, all CPUs, ms.
    StealMs,
    /// The machine's busy time over the run as a share of its capacity, %.
    BusyPercent,
    /// Client zero-copy completions the kernel marked copied, 0..1.
    ZcCopied,
    /// Open loop (`--rate`): messages a second sent over the measured interval.
    RateAchieved,
    /// Open loop: what was sent as a share of the request, 0..1 (a little over 1 at most).
    RateFraction,
    /// Open loop: messages that waited for a place among `depth`.
    HeldBack,
}

impl Metric {
    pub fn of(self, r: &Record) -> Option<f64> {
        let c = &r.client;
        let bytes = (c.stats.bytes_sent + c.stats.bytes_received) as f64;
        let per_byte = |n: Option<u64>| n.filter(|_| bytes > 0.0).map(|n| n as f64 / bytes);
        let ms = |ns: u64| ns as f64 / 1e6;
        let own = |side: Option<&engine::SideReport>| side.and_then(|s| s.own_cpu);
        let (client, server) = (own(Some(c)), own(r.server.as_ref()));
        let system = r.system.as_ref();
        match self {
            Metric::Throughput => Some(r.summary.throughput_gbps),
            // Older records lack the field; their bytes and interval give the same figure.
            Metric::OneWay => r.summary.one_way_gbps.or_else(|| {
                let secs = r.summary.duration_s;
                (secs > 0.0).then(|| r.summary.bytes_sent as f64 * 8.0 / secs / 1e9)
            }),
            Metric::LatencyMean => r.latency.as_ref().map(|l| l.mean_us),
            Metric::LatencyP50 => r.latency.as_ref().map(|l| l.p50_us),
            Metric::LatencyP99 => r.latency.as_ref().map(|l| l.p99_us),
            Metric::L1dPerByte => per_byte(c.counters.as_ref().and_then(|x| x.l1d_load_misses)),
            Metric::LlcPerByte => per_byte(c.counters.as_ref().and_then(|x| x.llc_load_misses)),
            Metric::CyclesPerByte => c.cycles_per_byte,
            Metric::CpuNsPerByte => c.cpu_ns_per_byte,
            Metric::ServerCpuNsPerByte => r.server.as_ref().and_then(|s| s.cpu_ns_per_byte),
            Metric::ClientUserMs => client.map(|o| ms(o.user_ns)),
            Metric::ClientSystemMs => client.map(|o| ms(o.system_ns)),
            Metric::ServerUserMs => server.map(|o| ms(o.user_ns)),
            Metric::ServerSystemMs => server.map(|o| ms(o.system_ns)),
            Metric::SoftirqMs => system.map(|s| ms(s.total.softirq_ns)),
            Metric::StealMs => system.map(|s| ms(s.total.steal_ns)),
            Metric::BusyPercent => system
                .filter(|s| s.capacity_ns > 0)
                .map(|s| 100.0 * s.total.busy_ns as f64 / s.capacity_ns as f64),
            Metric::ZcCopied => c.zc_copied_fraction,
            Metric::RateAchieved => r.rate.as_ref().map(|x| x.achieved_per_s),
            Metric::RateFraction => r.rate.as_ref().map(|x| x.achieved_fraction),
            Metric::HeldBack => r.rate.as_ref().map(|x| x.held_back as f64),
        }
        .filter(|x| x.is_finite())
    }

    /// Whether more is better (throughput) or worse (latency, cost per byte).
    pub fn higher_is_better(self) -> bool {
        matches!(
            self,
            Metric::Throughput | Metric::OneWay | Metric::RateAchieved | Metric::RateFraction
        )
    }
}

/// Why a point's figure is not used for conclusions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Doubt {
    /// Fewer than [`MIN_RUNS`] runs: its spread is unknown.
    Runs(usize),
    /// This many of its runs carried warnings.
    Warned(usize),
    /// Its runs spread over this share of their median (above [`SPREAD_LIMIT`]).
    Spread(f64),
}

impl std::fmt::Display for Doubt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Doubt::Runs(1) => f.write_str("one run, spread unknown"),
            Doubt::Runs(n) => write!(f, "{n} runs, fewer than {MIN_RUNS}"),
            Doubt::Warned(n) => write!(f, "{n} run(s) carried warnings"),
            Doubt::Spread(s) => write!(
                f,
                "runs spread over {:.0}% of their median (limit {:.0}%)",
                s * 100.0,
                SPREAD_LIMIT * 100.0
            ),
        }
    }
}

/// How one figure compares with another under the noise rule (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Every run of the first above every run of the second.
    Higher,
    /// Every run of the first below every run of the second.
    Lower,
    /// The ranges overlap: no difference beyond noise.
    Same,
    /// One of the two is doubtful: not compared.
    Unjudged,
}

impl Verdict {
    /// The mark a ratio carries in the report's lists.
    pub fn mark(self) -> &'static str {
        match self {
            Verdict::Higher => ">",
            Verdict::Lower => "<",
            Verdict::Same => "≈",
            Verdict::Unjudged => "?",
        }
    }

    pub fn is_judged(self) -> bool {
        self != Verdict::Unjudged
    }
}

/// The runs of one point on one metric, and whether they may be compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub values: Vec<f64>,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub doubt: Option<Doubt>,
}

impl Measured {
    /// `values` (one per run that measured the metric), `warned` of them from runs that
    /// carried warnings; `None` without a value.
    pub fn new(values: Vec<f64>, warned: usize) -> Option<Measured> {
        let median = median(&values)?;
        let (min, max) = range(&values)?;
        let spread = if median != 0.0 {
            (max - min) / median.abs()
        } else if max > min {
            f64::INFINITY
        } else {
            0.0
        };
        let doubt = if values.len() < MIN_RUNS {
            Some(Doubt::Runs(values.len()))
        } else if warned > 0 {
            Some(Doubt::Warned(warned))
        } else if spread > SPREAD_LIMIT {
            Some(Doubt::Spread(spread))
        } else {
            None
        };
        Some(Measured {
            values,
            median,
            min,
            max,
            doubt,
        })
    }
}

/// `a` against `b` under the noise rule.
pub fn compare(a: &Measured, b: &Measured) -> Verdict {
    if a.doubt.is_some() || b.doubt.is_some() {
        Verdict::Unjudged
    } else if a.min > b.max {
        Verdict::Higher
    } else if a.max < b.min {
        Verdict::Lower
    } else {
        Verdict::Same
    }
}

/// One run that carried warnings, and where it sits among its point's runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Doubtful<'a> {
    pub point: Point,
    /// 1-based, in records.jsonl order (the order the sweep ran the repeats; a repeat
    /// that failed left no record, so this counts runs, not the sweep's repeat numbers).
    pub run: usize,
    /// The point's runs in this dataset.
    pub runs: usize,
    /// Never empty.
    pub warnings: &'a [Warning],
}

/// The records of one workload, depth and placement, grouped into points.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub workload: Workload,
    pub depth: usize,
    /// `None`: CPU lists or the old `auto` plan, which is no one policy.
    pub placement: Option<PlacementPolicy>,
    /// `--cpus` as the records give it (`split`, `auto`, `0,1`): sets two datasets of
    /// lists, or a list and `auto`, apart.
    pub cpus: String,
    /// How the receiving side took the bytes (`--rx`): points of different receive paths
    /// are compared only in "Which path wins where", never as if only the mode changed.
    pub rx: RxMode,
    /// What both sides added to avoid syscalls and wake-ups (`--uring-opts`): like the
    /// receive path, compared only in "Which path wins where".
    pub polling: PollOpt,
    /// The open-loop rate (`--rate`), messages a second in all; `None`: closed loop. Each
    /// rate is a dataset of its own, as each placement is: only "Latency under load"
    /// puts rates side by side.
    pub rate: Option<u64>,
    records: Vec<Record>,
    points: BTreeMap<Point, Vec<usize>>,
}

/// What a dataset's points share apart from their rate: workload, depth, placement (the
/// policy and `--cpus` as given), receive path and polling option.
pub type Family = (
    Workload,
    usize,
    Option<PlacementPolicy>,
    String,
    RxMode,
    PollOpt,
);

/// A record's [`Family`].
fn family_of(r: &Record) -> Family {
    (
        r.config.workload,
        r.config.depth,
        r.config.cpus.policy(),
        r.config.cpus.to_string(),
        r.config.rx,
        crate::results::poll_opt_of(&r.config),
    )
}

impl Dataset {
    /// What its points share apart from their rate: the datasets of one family differ
    /// only in it ("Latency under load" puts them side by side).
    pub fn family(&self) -> Family {
        (
            self.workload,
            self.depth,
            self.placement,
            self.cpus.clone(),
            self.rx,
            self.polling,
        )
    }

    /// Records that all share `workload`, `depth` and `--cpus` (taken from the first; see
    /// [`Dataset::split`], which guarantees it).
    pub fn new(workload: Workload, depth: usize, records: Vec<Record>) -> Dataset {
        let mut points: BTreeMap<Point, Vec<usize>> = BTreeMap::new();
        for (i, r) in records.iter().enumerate() {
            points.entry(point_of(r)).or_default().push(i);
        }
        let cpus = records
            .first()
            .map_or_else(String::new, |r| r.config.cpus.to_string());
        debug_assert!(
            records.iter().all(|r| r.config.cpus.to_string() == cpus),
            "a dataset holds one placement"
        );
        Dataset {
            workload,
            depth,
            placement: records.first().and_then(|r| r.config.cpus.policy()),
            cpus,
            rx: records.first().map_or(RxMode::Copy, |r| r.config.rx),
            polling: records
                .first()
                .map_or(PollOpt::Plain, |r| crate::results::poll_opt_of(&r.config)),
            rate: records.first().and_then(crate::results::rate_of),
            records,
            points,
        }
    }

    /// Splits records by workload, depth and placement: the largest workload and depth
    /// first (ties: `prefer`, then echo before stream, then smaller depth), and within
    /// one, the placements in their order (split before paired before unpinned, lists and
    /// the old `auto` last). Points of different placements never share a dataset, so no
    /// comparison inside one mixes them.
    pub fn split(records: Vec<Record>, prefer: Option<(Workload, usize)>) -> Vec<Dataset> {
        // A dataset per family and rate.
        type Key = (Family, Option<u64>);
        let mut groups: Vec<(Key, Vec<Record>)> = Vec::new();
        for r in records {
            let k = (family_of(&r), crate::results::rate_of(&r));
            match groups.iter_mut().find(|(g, _)| *g == k) {
                Some((_, v)) => v.push(r),
                None => groups.push((k, vec![r])),
            }
        }
        // Runs per workload and depth, over all their placements: the largest goes first.
        let mut runs: Vec<((Workload, usize), usize)> = Vec::new();
        for (((w, d, ..), _), v) in &groups {
            match runs.iter_mut().find(|(k, _)| *k == (*w, *d)) {
                Some((_, n)) => *n += v.len(),
                None => runs.push(((*w, *d), v.len())),
            }
        }
        let runs_of = |w: Workload, d: usize| {
            runs.iter()
                .find(|(k, _)| *k == (w, d))
                .map_or(0, |(_, n)| *n)
        };
        let rank = |p: Option<PlacementPolicy>| match p {
            Some(PlacementPolicy::Split) => 0,
            Some(PlacementPolicy::Paired) => 1,
            Some(PlacementPolicy::Unpinned) => 2,
            None => 3,
        };
        groups.sort_by_cached_key(|(((w, d, p, c, rx, polling), rate), _)| {
            (
                std::cmp::Reverse(runs_of(*w, *d)),
                Some((*w, *d)) != prefer,
                *w,
                *d,
                rank(*p),
                c.clone(),
                *rx,
                *polling,
                *rate,
            )
        });
        groups
            .into_iter()
            .map(|(((w, d, ..), _), v)| Dataset::new(w, d, v))
            .collect()
    }

    /// `echo, depth 1, split placement`: what sets this dataset apart from the others of a
    /// folder (`CPUs 0,1` or `auto placement` where it ran under no policy).
    pub fn label(&self) -> String {
        let rate = self.rate.map_or(String::new(), |r| {
            format!(", at {} msg/s", crate::results::rate_name(r))
        });
        format!("{}{rate}", self.label_without_rate())
    }

    /// [`Dataset::label`] less the rate: what the datasets of one rate sweep share.
    pub fn label_without_rate(&self) -> String {
        let placement = match self.placement {
            Some(p) => format!("{p} placement"),
            None if self.cpus == "auto" => "auto placement".into(),
            None => format!("CPUs {}", self.cpus),
        };
        format!(
            "{}, depth {}, {placement}{}",
            self.workload,
            self.depth,
            crate::results::path_extras(self.rx, self.polling)
        )
    }

    /// The point of this dataset (its placement) at engine, mode, size and threads.
    pub fn point(&self, engine: Backend, mode: Mode, size: usize, threads: usize) -> Point {
        Point {
            engine,
            mode,
            size,
            threads,
            placement: self.placement,
            rx: self.rx,
            polling: self.polling,
            rate: self.rate,
        }
    }

    /// `m` at `p`, with its spread and whether it may be compared; `None` where no run
    /// measured it.
    pub fn measured(&self, p: &Point, m: Metric) -> Option<Measured> {
        Measured::new(self.values(p, m), self.warned(p, m))
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    pub fn points(&self) -> impl Iterator<Item = &Point> {
        self.points.keys()
    }

    /// Repeats of `p`.
    pub fn repeats(&self, p: &Point) -> usize {
        self.points.get(p).map_or(0, Vec::len)
    }

    /// The records of `p`.
    pub fn of(&self, p: &Point) -> impl Iterator<Item = &Record> {
        self.points
            .get(p)
            .into_iter()
            .flatten()
            .map(|&i| &self.records[i])
    }

    /// `m` of every repeat of `p` that measured it.
    pub fn values(&self, p: &Point, m: Metric) -> Vec<f64> {
        self.of(p).filter_map(|r| m.of(r)).collect()
    }

    /// Repeats of `p` that measured `m` and carried a warning: how many of the values
    /// behind the median of `m` are doubtful.
    pub fn warned(&self, p: &Point, m: Metric) -> usize {
        self.of(p)
            .filter(|r| !r.warnings.is_empty() && m.of(r).is_some())
            .count()
    }

    /// Every run that carried a warning, in point order, then run order.
    pub fn doubtful(&self) -> Vec<Doubtful<'_>> {
        let mut v = Vec::new();
        for (p, runs) in &self.points {
            for (i, &r) in runs.iter().enumerate() {
                let warnings = &self.records[r].warnings;
                if !warnings.is_empty() {
                    v.push(Doubtful {
                        point: *p,
                        run: i + 1,
                        runs: runs.len(),
                        warnings,
                    });
                }
            }
        }
        v
    }

    /// The median of `m` over the repeats of `p`; `None` where no repeat measured it.
    pub fn median(&self, p: &Point, m: Metric) -> Option<f64> {
        median(&self.values(p, m))
    }

    /// The smallest and largest `m` over the repeats of `p`.
    pub fn range(&self, p: &Point, m: Metric) -> Option<(f64, f64)> {
        range(&self.values(p, m))
    }

    /// Engines present, in the engine's order.
    pub fn engines(&self) -> Vec<Backend> {
        let mut v: Vec<Backend> = self.points().map(|p| p.engine).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Modes present on `engine` (all engines: `None`), in the engine's order.
    pub fn modes(&self, engine: Option<Backend>) -> Vec<Mode> {
        let mut v: Vec<Mode> = self
            .points()
            .filter(|p| engine.map_or(true, |e| p.engine == e))
            .map(|p| p.mode)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Sizes present, ascending.
    pub fn sizes(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.points().map(|p| p.size).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Thread counts present, ascending.
    pub fn threads(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.points().map(|p| p.threads).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Sizes at which `engine`/`mode` ran with `threads`, ascending.
    pub fn sizes_of(&self, engine: Backend, mode: Mode, threads: usize) -> Vec<usize> {
        self.points()
            .filter(|p| p.engine == engine && p.mode == mode && p.threads == threads)
            .map(|p| p.size)
            .collect()
    }

    /// The size present closest to `target` on a log scale (ties: the smaller).
    pub fn size_near(&self, target: usize) -> Option<usize> {
        let dist = |s: usize| ((s as f64).log2() - (target as f64).log2()).abs();
        self.sizes()
            .into_iter()
            .min_by(|a, b| dist(*a).total_cmp(&dist(*b)))
    }

    /// The names of client counters the records say were missing, in first-seen order;
    /// `None` when no record counted at all (counting off).
    pub fn client_counters_missing(&self) -> Option<Vec<String>> {
        let mut any = false;
        let mut names: Vec<String> = Vec::new();
        for r in &self.records {
            if let Some(m) = &r.client.counters_missing {
                any = true;
                for n in m.0.iter().map(|c| c.as_str()) {
                    if !names.iter().any(|x| x == n) {
                        names.push(n.to_owned());
                    }
                }
            }
        }
        any.then_some(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{record, warn};
    use engine::WarningKind;

    #[test]
    fn repeats_become_one_point_with_a_median() {
        let recs = vec![
            record(Backend::Syscall, Mode::TwoCopy, 4096, 1, 1.0),
            record(Backend::Syscall, Mode::TwoCopy, 4096, 1, 3.0),
            record(Backend::Syscall, Mode::TwoCopy, 4096, 1, 2.0),
            record(Backend::Uring, Mode::Zc, 1024, 2, 5.0),
        ];
        let d = Dataset::new(Workload::Echo, 1, recs);
        let p = Point::new(Backend::Syscall, Mode::TwoCopy, 4096, 1);
        assert_eq!(d.repeats(&p), 3);
        assert_eq!(d.median(&p, Metric::Throughput), Some(2.0));
        assert_eq!(d.range(&p, Metric::Throughput), Some((1.0, 3.0)));
        assert_eq!(d.engines(), vec![Backend::Syscall, Backend::Uring]);
        assert_eq!(d.sizes(), vec![1024, 4096]);
        assert_eq!(d.size_near(16384), Some(4096));
    }

    fn m(values: &[f64], warned: usize) -> Measured {
        Measured::new(values.to_vec(), warned).unwrap()
    }

    #[test]
    fn only_ranges_apart_are_a_difference() {
        let a = m(&[10.0, 11.0, 12.0], 0);
        assert_eq!(compare(&a, &m(&[8.0, 9.0, 9.9], 0)), Verdict::Higher);
        assert_eq!(compare(&m(&[8.0, 9.0, 9.9], 0), &a), Verdict::Lower);
        // A higher median with overlapping runs is no difference.
        assert_eq!(compare(&m(&[9.5, 11.5, 12.0], 0), &a), Verdict::Same);
        assert_eq!(
            compare(&a, &m(&[12.0, 12.5, 13.0], 0)),
            Verdict::Same,
            "touching"
        );
    }

    #[test]
    fn doubtful_points_are_not_judged() {
        let a = m(&[10.0, 11.0, 12.0], 0);
        let one = m(&[1.0], 0);
        assert_eq!(one.doubt, Some(Doubt::Runs(1)));
        assert_eq!(compare(&a, &one), Verdict::Unjudged);
        // Two runs apart happen 1 time in 3 by chance: not enough to compare.
        let two = m(&[1.0, 1.1], 0);
        assert_eq!(two.doubt, Some(Doubt::Runs(2)));
        assert_eq!(compare(&a, &two), Verdict::Unjudged);
        let warned = m(&[1.0, 1.1, 1.05], 1);
        assert_eq!(warned.doubt, Some(Doubt::Warned(1)));
        assert_eq!(compare(&warned, &a), Verdict::Unjudged);
        // (3 − 1) / 2 = 100% of the median: over the limit.
        let wild = m(&[1.0, 2.0, 3.0], 0);
        assert_eq!(wild.doubt, Some(Doubt::Spread(1.0)));
        assert_eq!(compare(&a, &wild), Verdict::Unjudged);
        assert_eq!(
            m(&[0.75, 1.0, 1.25], 0).doubt,
            None,
            "exactly 50% is within the limit"
        );
        assert_eq!(
            m(&[0.74, 1.0, 1.25], 0)
                .doubt
                .map(|d| matches!(d, Doubt::Spread(_))),
            Some(true),
            "just past it is not"
        );
        // A zero median with runs apart is no steady figure.
        assert!(matches!(
            m(&[0.0, 0.0, 5.0], 0).doubt,
            Some(Doubt::Spread(s)) if s.is_infinite()
        ));
        assert_eq!(m(&[0.0, 0.0, 0.0], 0).doubt, None);
        assert_eq!(
            Doubt::Spread(0.62).to_string(),
            "runs spread over 62% of their median (limit 50%)"
        );
    }

    #[test]
    fn placements_never_share_a_dataset() {
        let mut paired = record(Backend::Syscall, Mode::TwoCopy, 4096, 1, 1.0);
        paired.config.cpus = PlacementPolicy::Paired.into();
        let mut listed = record(Backend::Syscall, Mode::TwoCopy, 4096, 1, 1.0);
        listed.config.cpus = engine::placement::CpuSpec::List(vec![0]);
        let split = record(Backend::Syscall, Mode::TwoCopy, 4096, 1, 1.0);
        let mut auto = record(Backend::Syscall, Mode::TwoCopy, 4096, 1, 1.0);
        auto.config.cpus = engine::placement::CpuSpec::Auto;
        let sets = Dataset::split(
            vec![listed, auto, paired.clone(), split.clone(), paired],
            None,
        );
        let placements: Vec<_> = sets.iter().map(|d| d.placement).collect();
        assert_eq!(
            placements,
            [
                Some(PlacementPolicy::Split),
                Some(PlacementPolicy::Paired),
                None,
                None
            ]
        );
        assert_eq!(sets[1].records().len(), 2);
        let labels: Vec<String> = sets.iter().map(Dataset::label).collect();
        assert_eq!(
            labels,
            [
                "echo, depth 1, split placement",
                "echo, depth 1, paired placement",
                "echo, depth 1, CPUs 0",
                "echo, depth 1, auto placement"
            ]
        );
    }

    #[test]
    fn one_way_throughput_is_derived_for_older_records() {
        let mut r = record(Backend::Syscall, Mode::TwoCopy, 4096, 1, 1.0);
        r.summary.one_way_gbps = None;
        r.summary.bytes_sent = 1_000_000_000;
        r.summary.duration_s = 2.0;
        assert_eq!(Metric::OneWay.of(&r), Some(4.0));
    }

    #[test]
    fn split_puts_the_largest_workload_first() {
        let mut s = record(Backend::Syscall, Mode::TwoCopy, 4096, 1, 1.0);
        s.config.workload = Workload::Stream;
        let e = record(Backend::Syscall, Mode::TwoCopy, 4096, 1, 1.0);
        let sets = Dataset::split(vec![s.clone(), e, s], None);
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].workload, Workload::Stream);
        assert_eq!(sets[0].records().len(), 2);
    }

    #[test]
    fn warned_runs_are_counted_per_point_and_listed_in_run_order() {
        let recs = vec![
            record(Backend::Syscall, Mode::TwoCopy, 4096, 1, 1.0),
            warn(
                record(Backend::Syscall, Mode::TwoCopy, 4096, 1, 3.0),
                WarningKind::Stall,
                "stalled",
            ),
            record(Backend::Syscall, Mode::TwoCopy, 4096, 1, 2.0),
            record(Backend::Uring, Mode::Zc, 1024, 2, 5.0),
        ];
        let mut no_latency = recs[1].clone();
        no_latency.latency = None;
        let d = Dataset::new(Workload::Echo, 1, recs);
        let p = Point::new(Backend::Syscall, Mode::TwoCopy, 4096, 1);
        assert_eq!(d.warned(&p, Metric::Throughput), 1);
        let q = Point::new(Backend::Uring, Mode::Zc, 1024, 2);
        assert_eq!(d.warned(&q, Metric::Throughput), 0);
        let doubtful = d.doubtful();
        assert_eq!(doubtful.len(), 1);
        assert_eq!(
            (doubtful[0].point, doubtful[0].run, doubtful[0].runs),
            (p, 2, 3)
        );
        assert_eq!(doubtful[0].warnings[0].text, "stalled");
        // A run that did not measure a figure does not count against it.
        let d = Dataset::new(Workload::Echo, 1, vec![no_latency]);
        assert_eq!(d.warned(&p, Metric::LatencyMean), 0);
        assert_eq!(d.warned(&p, Metric::Throughput), 1);
    }
}
