//! Records grouped into points: one point is one engine × mode × size × threads of one
//! workload and depth, and every figure of a point is the median over its repeats. A
//! median can hide a doubtful run, so the dataset also says which runs carried warnings.

use std::collections::BTreeMap;

use engine::{Backend, Mode, Record, Warning, Workload};

use crate::summary::{median, range};

use crate::results::point_of;
/// One cell of the matrix (engine × mode × size × threads) within a [`Dataset`], whose
/// records share workload and depth.
pub use crate::results::Point;

/// A figure taken from one record; `None` where the record did not measure it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Gbit/s, the seed's figure.
    Throughput,
    /// Mean round-trip time, µs (echo only).
    LatencyMean,
    /// Client L1d load misses per byte the client moved.
    L1dPerByte,
    /// Client LLC load misses per byte the client moved.
    LlcPerByte,
    /// Client cycles per byte.
    CyclesPerByte,
    /// Client CPU nanoseconds per byte.
    CpuNsPerByte,
    /// Client zero-copy completions the kernel marked copied, 0..1.
    ZcCopied,
}

impl Metric {
    pub fn of(self, r: &Record) -> Option<f64> {
        let c = &r.client;
        let bytes = (c.stats.bytes_sent + c.stats.bytes_received) as f64;
        let per_byte = |n: Option<u64>| n.filter(|_| bytes > 0.0).map(|n| n as f64 / bytes);
        match self {
            Metric::Throughput => Some(r.summary.throughput_gbps),
            Metric::LatencyMean => r.latency.as_ref().map(|l| l.mean_us),
            Metric::L1dPerByte => per_byte(c.counters.as_ref().and_then(|x| x.l1d_load_misses)),
            Metric::LlcPerByte => per_byte(c.counters.as_ref().and_then(|x| x.llc_load_misses)),
            Metric::CyclesPerByte => c.cycles_per_byte,
            Metric::CpuNsPerByte => c.cpu_ns_per_byte,
            Metric::ZcCopied => c.zc_copied_fraction,
        }
        .filter(|x| x.is_finite())
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

/// The records of one workload and depth, grouped into points.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub workload: Workload,
    pub depth: usize,
    records: Vec<Record>,
    points: BTreeMap<Point, Vec<usize>>,
}

impl Dataset {
    /// Records that all share `workload` and `depth`.
    pub fn new(workload: Workload, depth: usize, records: Vec<Record>) -> Dataset {
        let mut points: BTreeMap<Point, Vec<usize>> = BTreeMap::new();
        for (i, r) in records.iter().enumerate() {
            points.entry(point_of(r)).or_default().push(i);
        }
        Dataset {
            workload,
            depth,
            records,
            points,
        }
    }

    /// Splits records by workload and depth, the largest group first (ties: `prefer`, then
    /// echo before stream, then smaller depth).
    pub fn split(records: Vec<Record>, prefer: Option<(Workload, usize)>) -> Vec<Dataset> {
        let mut groups: Vec<((Workload, usize), Vec<Record>)> = Vec::new();
        for r in records {
            let k = (r.config.workload, r.config.depth);
            match groups.iter_mut().find(|(g, _)| *g == k) {
                Some((_, v)) => v.push(r),
                None => groups.push((k, vec![r])),
            }
        }
        groups.sort_by_key(|((w, d), v)| {
            (std::cmp::Reverse(v.len()), Some((*w, *d)) != prefer, *w, *d)
        });
        groups
            .into_iter()
            .map(|((w, d), v)| Dataset::new(w, d, v))
            .collect()
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

    /// The smallest thread count present (the plots' fixed thread count).
    pub fn min_threads(&self) -> Option<usize> {
        self.threads().first().copied()
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
        assert_eq!(d.min_threads(), Some(1));
        assert_eq!(d.size_near(16384), Some(4096));
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
