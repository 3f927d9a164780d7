//! "Latency under load": the open-loop points of a folder (`sweep --rates`), each rate a
//! dataset of its own, put side by side — per size and thread count, every path's round
//! trips (timed from each message's due time) against the load it achieved.
//!
//! Two kinds of statement come out of it, each under the report's noise rule
//! ([`super::data::compare`]): which path kept the lowest p99 at each requested rate, and
//! the highest rate each path kept within [`KEEP`] of its request in every run. A path is
//! said to carry more than another only where, at the first rate the other fell short of,
//! the achieved shares' ranges are apart; otherwise "no difference beyond noise".

use engine::{Backend, Mode};

use super::analysis::{list, size, threads};
use super::data::{compare, Dataset, Doubt, Family, Measured, Metric, Point, Verdict};
use crate::results::rate_name;

/// The share of its request a run must achieve for its rate to count as kept.
pub const KEEP: f64 = 0.95;

/// The open-loop datasets of one workload, depth, placement, receive path and polling
/// option: one per rate, ascending.
#[derive(Debug, Clone)]
pub struct Group<'a> {
    /// `echo, depth 64, split placement`: what its datasets share.
    pub label: String,
    pub sets: Vec<&'a Dataset>,
}

/// The open-loop datasets of `sets`, grouped: empty where the folder has no rate point.
pub fn groups(sets: &[Dataset]) -> Vec<Group<'_>> {
    let mut out: Vec<(Family, Group)> = Vec::new();
    for d in sets.iter().filter(|d| d.rate.is_some() && !d.is_empty()) {
        let key = d.family();
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.sets.push(d),
            None => out.push((
                key,
                Group {
                    label: d.label_without_rate(),
                    sets: vec![d],
                },
            )),
        }
    }
    out.into_iter()
        .map(|(_, mut g)| {
            g.sets.sort_by_key(|d| d.rate);
            g
        })
        .collect()
}

impl Group<'_> {
    /// (size, threads) measured at any rate, ascending.
    pub fn cells(&self) -> Vec<(usize, usize)> {
        let mut v: Vec<(usize, usize)> = self
            .sets
            .iter()
            .flat_map(|d| d.points().map(|p| (p.size, p.threads)))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The engines and modes measured at `size` and `threads`, in their order.
    pub fn paths(&self, size: usize, threads: usize) -> Vec<(Backend, Mode)> {
        let mut v: Vec<(Backend, Mode)> = self
            .sets
            .iter()
            .flat_map(|d| d.points())
            .filter(|p| (p.size, p.threads) == (size, threads))
            .map(|p| (p.engine, p.mode))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The path's point at each rate it ran, ascending, with its dataset.
    pub fn runs(&self, engine: Backend, mode: Mode, size: usize, t: usize) -> Vec<At<'_>> {
        self.sets
            .iter()
            .filter_map(|d| {
                let p = d.point(engine, mode, size, t);
                (d.repeats(&p) > 0).then_some(At {
                    set: d,
                    point: p,
                    rate: d.rate.unwrap_or(0),
                })
            })
            .collect()
    }

    /// The rates measured, ascending.
    pub fn rates(&self) -> Vec<u64> {
        self.sets.iter().filter_map(|d| d.rate).collect()
    }
}

/// One path at one rate.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub set: &'a Dataset,
    pub point: Point,
    pub rate: u64,
}

impl At<'_> {
    pub fn measured(&self, m: Metric) -> Option<Measured> {
        self.set.measured(&self.point, m)
    }
}

/// `syscall two-copy`.
fn path_name(e: Backend, m: Mode) -> String {
    format!("{e} {m}")
}

/// `5k msg/s`.
fn per_s(rate: u64) -> String {
    format!("{} msg/s", rate_name(rate))
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// `[93.0%–97.5%]`.
fn share_range(m: &Measured) -> String {
    format!("[{}–{}]", pct(m.min), pct(m.max))
}

/// How far a path kept its schedule: up to which rate every run achieved [`KEEP`] of its
/// request, and why it stopped there.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    pub engine: Backend,
    pub mode: Mode,
    /// The highest rate kept, every lower one kept too; `None`: not even the lowest.
    pub rate: Option<u64>,
    pub stop: Stop,
}

/// Why a path's kept rate ends where it does.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// It kept every rate it ran.
    Never,
    /// At this rate a run fell short; its runs' achieved shares.
    Short(u64, Measured),
    /// At this rate its runs are doubtful: not judged from there on.
    Unjudged(u64, Doubt),
}

/// How far `engine`/`mode` kept its schedule at `size` and `t` threads; `None` where it
/// ran no rate there.
pub fn kept(g: &Group, engine: Backend, mode: Mode, size: usize, t: usize) -> Option<Kept> {
    let runs = g.runs(engine, mode, size, t);
    if runs.is_empty() {
        return None;
    }
    let mut rate = None;
    let mut stop = Stop::Never;
    for at in runs {
        let Some(m) = at.measured(Metric::RateFraction) else {
            stop = Stop::Unjudged(at.rate, Doubt::Runs(0));
            break;
        };
        if let Some(doubt) = m.doubt {
            stop = Stop::Unjudged(at.rate, doubt);
            break;
        }
        if m.min < KEEP {
            stop = Stop::Short(at.rate, m);
            break;
        }
        rate = Some(at.rate);
    }
    Some(Kept {
        engine,
        mode,
        rate,
        stop,
    })
}

impl Kept {
    /// `syscall two-copy up to 20k msg/s (short at 40k msg/s: [80.1%–85.0%])`.
    pub fn phrase(&self) -> String {
        let name = path_name(self.engine, self.mode);
        let upto = match self.rate {
            Some(r) => format!("up to {}", per_s(r)),
            None => "none of its rates".into(),
        };
        match &self.stop {
            Stop::Never => format!("{name} {upto} (every rate it ran)"),
            Stop::Short(r, m) => format!(
                "{name} {upto} (at {} its runs achieved {})",
                per_s(*r),
                share_range(m)
            ),
            Stop::Unjudged(r, d) => {
                let why = match d {
                    Doubt::Runs(0) => "no rate figures".to_owned(),
                    d => d.to_string(),
                };
                format!("{name} {upto} (not judged from {} on: {why})", per_s(*r))
            }
        }
    }
}

/// The share of the request `engine`/`mode` achieved at `rate`, where it ran it.
fn share_at(
    g: &Group,
    engine: Backend,
    mode: Mode,
    size: usize,
    t: usize,
    rate: u64,
) -> Option<Measured> {
    g.runs(engine, mode, size, t)
        .into_iter()
        .find(|a| a.rate == rate)?
        .measured(Metric::RateFraction)
}

/// The kept-rate line of one size and thread count: each path's kept rate, then which
/// kept the highest and whether that lead survives the spread.
pub fn kept_line(g: &Group, size_: usize, t: usize) -> Option<String> {
    let all: Vec<Kept> = g
        .paths(size_, t)
        .into_iter()
        .filter_map(|(e, m)| kept(g, e, m, size_, t))
        .collect();
    if all.is_empty() {
        return None;
    }
    let head = format!("- **{}, {}**: ", size(size_), threads(t));
    let each: Vec<String> = all.iter().map(Kept::phrase).collect();
    let best = all.iter().filter_map(|k| k.rate).max();
    let Some(best) = best else {
        let lowest = g.rates().first().copied().unwrap_or(0);
        let failed = all.iter().all(|k| matches!(k.stop, Stop::Short(..)));
        return Some(format!(
            "{head}{}. No path {} the lowest rate ({}) within {:.0}% of its request in every run.",
            each.join("; "),
            if failed {
                "kept"
            } else {
                "is judged to have kept"
            },
            per_s(lowest),
            KEEP * 100.0
        ));
    };
    let leaders: Vec<&Kept> = all.iter().filter(|k| k.rate == Some(best)).collect();
    let names: Vec<String> = leaders
        .iter()
        .map(|k| path_name(k.engine, k.mode))
        .collect();
    let mut verdicts = Vec::new();
    for k in all.iter().filter(|k| k.rate != Some(best)) {
        let other = path_name(k.engine, k.mode);
        match &k.stop {
            Stop::Short(r, theirs) => {
                // Every leader kept `r` (it is at most `best`): apart from the other's
                // shares there, or not.
                let ours: Vec<Measured> = leaders
                    .iter()
                    .filter_map(|l| share_at(g, l.engine, l.mode, size_, t, *r))
                    .collect();
                let apart = ours.len() == leaders.len()
                    && ours.iter().all(|m| compare(m, theirs) == Verdict::Higher);
                if apart {
                    verdicts.push(format!("ahead of {other} beyond noise"));
                } else {
                    let ranges: Vec<String> = ours.iter().map(share_range).collect();
                    verdicts.push(format!(
                        "no difference beyond noise with {other} (at {} it achieved {} against {})",
                        per_s(*r),
                        share_range(theirs),
                        ranges.join(", ")
                    ));
                }
            }
            Stop::Unjudged(..) => verdicts.push(format!("not judged against {other}")),
            // A path that kept every rate it ran, but not as high: it ran fewer rates.
            Stop::Never => verdicts.push(format!(
                "not compared with {other}, which ran no higher rate"
            )),
        }
    }
    let lead = if verdicts.is_empty() {
        let top = g.rates().last().copied().unwrap_or(best);
        if leaders.len() == 1 {
            format!("only {} ran here", names[0])
        } else if best == top && leaders.iter().all(|k| k.stop == Stop::Never) {
            format!(
                "every path kept every rate up to {}: no difference, and no knee reached",
                per_s(best)
            )
        } else {
            format!("every path kept up to {}: no difference", per_s(best))
        }
    } else {
        format!(
            "the highest kept, {}, by {}: {}",
            per_s(best),
            list(&names),
            verdicts.join("; ")
        )
    };
    Some(format!("{head}{}. {}.", each.join("; "), capital(&lead)))
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
}

/// The lowest-p99 table of a group: at each size, thread count and requested rate, the
/// path with the lowest p99 round trip, against the runner-up under the noise rule. A
/// path that fell short of the request in some run (under [`KEEP`]) is marked with its
/// lowest share: its p99 is at a lower load than the others'.
pub fn lowest_p99(g: &Group) -> Vec<String> {
    let mut lines = vec![
        "| size | threads | requested | lowest p99 | p99 µs | against the runner-up |".to_owned(),
        "|---|---|---|---|---|---|".to_owned(),
    ];
    let mut any = false;
    for (s, t) in g.cells() {
        for d in &g.sets {
            let Some(rate) = d.rate else { continue };
            let mut candidates: Vec<(String, Measured)> = g
                .paths(s, t)
                .into_iter()
                .filter_map(|(e, m)| {
                    let p = d.point(e, m, s, t);
                    let p99 = d.measured(&p, Metric::LatencyP99)?;
                    let short = d
                        .measured(&p, Metric::RateFraction)
                        .filter(|f| f.min < KEEP)
                        .map_or(String::new(), |f| format!(" (short: {})", pct(f.min)));
                    Some((format!("{}{short}", path_name(e, m)), p99))
                })
                .collect();
            candidates.sort_by(|a, b| a.1.median.total_cmp(&b.1.median));
            let Some((name, best)) = candidates.first() else {
                continue;
            };
            any = true;
            let against = match candidates.get(1) {
                None => "the only path measured here".to_owned(),
                Some((second, m)) => match compare(best, m) {
                    Verdict::Lower => format!(
                        "< {second} ({:.1}): lower beyond noise, ×{:.2}",
                        m.median,
                        m.median / best.median.max(f64::MIN_POSITIVE)
                    ),
                    Verdict::Unjudged => format!(
                        "? not judged against {second} ({:.1}): one of them is doubtful",
                        m.median
                    ),
                    _ => {
                        let level: Vec<&str> = candidates[1..]
                            .iter()
                            .filter(|(_, c)| compare(best, c) == Verdict::Same)
                            .map(|(n, _)| n.as_str())
                            .collect();
                        format!("≈ no difference beyond noise with {}", level.join("; "))
                    }
                },
            };
            let spread = if best.values.len() > 1 {
                format!(" [{:.1}–{:.1}]", best.min, best.max)
            } else {
                String::new()
            };
            lines.push(format!(
                "| {} | {t} | {} | {name}{} | {:.1}{spread} | {against} |",
                size(s),
                per_s(rate),
                if best.doubt.is_some() { " ?" } else { "" },
                best.median,
            ));
        }
    }
    if any {
        lines
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{at_rate, record};

    /// Two-copy records at 1K, one thread: for each row `(engine, rate, shares, p99s)`,
    /// one run per share at `rate`, achieving that share of it with the next of `p99s`.
    fn two_copy(rows: &[(Backend, u64, &[f64], &[f64])]) -> Vec<engine::Record> {
        rows.iter()
            .flat_map(|&(engine, rate, shares, p99s)| {
                shares.iter().zip(p99s).map(move |(&f, &p99)| {
                    at_rate(
                        record(engine, Mode::TwoCopy, 1024, 1, 1.0),
                        rate,
                        rate as f64 * f,
                        p99 / 2.0,
                        p99,
                    )
                })
            })
            .collect()
    }

    fn split(records: Vec<engine::Record>) -> Vec<Dataset> {
        Dataset::split(records, None)
    }

    #[test]
    fn each_rate_is_a_dataset_and_the_group_holds_them_in_order() {
        let mut rs = two_copy(&[
            (Backend::Syscall, 20_000, &[1.0; 3], &[10.0; 3]),
            (Backend::Syscall, 5000, &[1.0; 3], &[9.0; 3]),
        ]);
        rs.push(record(Backend::Syscall, Mode::TwoCopy, 1024, 1, 1.0));
        let sets = split(rs);
        assert_eq!(sets.len(), 3, "closed loop and two rates");
        let gs = groups(&sets);
        assert_eq!(gs.len(), 1);
        assert_eq!(gs[0].rates(), [5000, 20_000]);
        assert_eq!(gs[0].label, "echo, depth 64, split placement");
        assert_eq!(gs[0].cells(), [(1024, 1)]);
        assert!(groups(&sets[..0]).is_empty());
        let closed = Dataset::split(
            vec![record(Backend::Syscall, Mode::TwoCopy, 1024, 1, 1.0)],
            None,
        );
        assert!(groups(&closed).is_empty(), "no rate, no group");
    }

    #[test]
    fn the_kept_rate_needs_every_run_within_the_share_and_a_lead_must_survive_the_spread() {
        // syscall keeps 5k and 20k; uring keeps 5k, falls short at 20k well apart.
        let rs = two_copy(&[
            (Backend::Syscall, 5000, &[1.0, 0.99, 1.0], &[9.0; 3]),
            (Backend::Syscall, 20_000, &[0.99, 0.98, 0.97], &[10.0; 3]),
            (Backend::Uring, 5000, &[1.0, 1.0, 1.0], &[8.0; 3]),
            (Backend::Uring, 20_000, &[0.6, 0.62, 0.61], &[900.0; 3]),
        ]);
        let sets = split(rs);
        let g = &groups(&sets)[0];
        let k = kept(g, Backend::Uring, Mode::TwoCopy, 1024, 1).unwrap();
        assert_eq!(k.rate, Some(5000));
        assert!(matches!(k.stop, Stop::Short(20_000, _)));
        let line = kept_line(g, 1024, 1).unwrap();
        assert!(
            line.contains("syscall two-copy up to 20k msg/s (every rate it ran)"),
            "{line}"
        );
        assert!(line.contains("The highest kept, 20k msg/s, by syscall two-copy: ahead of uring two-copy beyond noise"), "{line}");

        // One run of syscall's at 20k is short, its range touching uring's: kept only to
        // 5k like uring, so neither is ahead.
        let rs = two_copy(&[
            (Backend::Syscall, 5000, &[1.0; 3], &[9.0; 3]),
            (Backend::Syscall, 20_000, &[0.99, 0.94, 0.97], &[10.0; 3]),
            (Backend::Uring, 5000, &[1.0; 3], &[8.0; 3]),
            (Backend::Uring, 20_000, &[0.93, 0.94, 0.96], &[12.0; 3]),
        ]);
        let sets = split(rs);
        let line = kept_line(&groups(&sets)[0], 1024, 1).unwrap();
        assert!(
            line.contains("Every path kept up to 5k msg/s: no difference"),
            "{line}"
        );

        // uring keeps 5k only, syscall 20k, but at 20k their shares overlap: no lead.
        let rs = two_copy(&[
            (Backend::Syscall, 5000, &[1.0; 3], &[9.0; 3]),
            (Backend::Syscall, 20_000, &[0.95, 0.96, 0.99], &[10.0; 3]),
            (Backend::Uring, 5000, &[1.0; 3], &[8.0; 3]),
            (Backend::Uring, 20_000, &[0.94, 0.97, 0.98], &[12.0; 3]),
        ]);
        let sets = split(rs);
        let line = kept_line(&groups(&sets)[0], 1024, 1).unwrap();
        assert!(line.contains("no difference beyond noise with uring two-copy (at 20k msg/s it achieved [94.0%–98.0%] against [95.0%–99.0%])"), "{line}");

        // Two runs: not judged.
        let rs = two_copy(&[(Backend::Syscall, 5000, &[1.0; 2], &[9.0; 2])]);
        let sets = split(rs);
        let line = kept_line(&groups(&sets)[0], 1024, 1).unwrap();
        assert!(line.contains("syscall two-copy none of its rates (not judged from 5k msg/s on: 2 runs, fewer than 3)"), "{line}");
        assert!(
            line.contains("No path is judged to have kept the lowest rate (5k msg/s)"),
            "{line}"
        );
    }

    #[test]
    fn the_lowest_p99_is_named_only_beyond_noise() {
        let rs = two_copy(&[
            (Backend::Syscall, 5000, &[1.0; 3], &[20.0, 21.0, 22.0]),
            (Backend::Uring, 5000, &[1.0; 3], &[10.0, 11.0, 12.0]),
            (Backend::Syscall, 20_000, &[1.0; 3], &[20.0, 21.0, 22.0]),
            (
                Backend::Uring,
                20_000,
                &[0.5, 0.5, 0.5],
                &[15.0, 21.5, 23.0],
            ),
        ]);
        let sets = split(rs);
        let lines = lowest_p99(&groups(&sets)[0]);
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert_eq!(
            lines[2],
            "| 1K | 1 | 5k msg/s | uring two-copy | 11.0 [10.0–12.0] | < syscall two-copy (21.0): lower beyond noise, ×1.91 |"
        );
        assert_eq!(
            lines[3],
            "| 1K | 1 | 20k msg/s | syscall two-copy | 21.0 [20.0–22.0] | ≈ no difference beyond noise with uring two-copy (short: 50.0%) |"
        );
    }
}
