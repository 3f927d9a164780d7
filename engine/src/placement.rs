//! Which CPU each worker thread runs on: an explicit plan, applied by pinning, recorded as
//! applied. A pin that fails is an error, never a silent no-op.
//!
//! A plan comes from a named [`PlacementPolicy`] applied the same way at every thread
//! count (the default is `split`: servers on the first half of the CPUs, clients on the
//! other half), from an explicit CPU list, or from the old `auto` plan kept for scripts
//! that name it. `auto` changed with the thread count (split while there were twice as
//! many CPUs as threads, both sides over all CPUs beyond), so comparing thread counts
//! under it also compared placements: it is no longer the default.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;
pub use crate::vocab::PlacementPolicy;

/// How a side places its threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuSpec {
    /// A named policy (`unpinned` is also spelled `off`).
    Policy(PlacementPolicy),
    /// The plan before placement policies: split while there are at least twice as many
    /// CPUs as threads, both sides round robin over all CPUs beyond that.
    Auto,
    /// Thread i runs on the i-th listed CPU (wrapping).
    List(Vec<usize>),
}

impl Default for CpuSpec {
    fn default() -> CpuSpec {
        CpuSpec::Policy(PlacementPolicy::Split)
    }
}

impl From<PlacementPolicy> for CpuSpec {
    fn from(p: PlacementPolicy) -> CpuSpec {
        CpuSpec::Policy(p)
    }
}

impl CpuSpec {
    /// The named policy, if this is one (not a list, not the old `auto`).
    pub fn policy(&self) -> Option<PlacementPolicy> {
        match self {
            CpuSpec::Policy(p) => Some(*p),
            _ => None,
        }
    }
}

impl FromStr for CpuSpec {
    type Err = String;

    /// `paired`, `split`, `unpinned` (or `off`), `auto`, or a list such as `0,2-3`.
    fn from_str(s: &str) -> Result<CpuSpec, String> {
        match s.trim() {
            "auto" => return Ok(CpuSpec::Auto),
            "off" | "none" => return Ok(CpuSpec::Policy(PlacementPolicy::Unpinned)),
            t => {
                if let Ok(p) = t.parse() {
                    return Ok(CpuSpec::Policy(p));
                }
            }
        }
        let bad = || {
            format!(
                "invalid CPU list '{s}': expected paired, split, unpinned, auto, or a list such as 0,2-3"
            )
        };
        let mut cpus = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b): (usize, usize) =
                        (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                    if a > b || b - a > 4096 {
                        return Err(bad());
                    }
                    cpus.extend(a..=b);
                }
                None => cpus.push(part.parse().map_err(|_| bad())?),
            }
        }
        if cpus.is_empty() {
            return Err(bad());
        }
        Ok(CpuSpec::List(cpus))
    }
}

impl fmt::Display for CpuSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpuSpec::Policy(p) => f.write_str(p.as_str()),
            CpuSpec::Auto => f.write_str("auto"),
            CpuSpec::List(l) => f.write_str(&join(l)),
        }
    }
}

impl Serialize for CpuSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for CpuSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CpuSpec, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Which side of the connection a plan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// The CPU each thread goes on (`None`: not pinned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    cpus: Vec<Option<usize>>,
    /// Where the plan could not do what its policy promises, in words for the user.
    pub note: Option<String>,
}

impl Plan {
    /// The CPU for thread `i` (wrapping past the planned count).
    pub fn cpu(&self, i: usize) -> Option<usize> {
        if self.cpus.is_empty() {
            None
        } else {
            self.cpus[i % self.cpus.len()]
        }
    }

    /// The distinct CPUs in the plan, in order.
    pub fn distinct(&self) -> Vec<usize> {
        let mut v: Vec<usize> = Vec::new();
        for c in self.cpus.iter().flatten() {
            if !v.contains(c) {
                v.push(*c);
            }
        }
        v
    }
}

/// The CPUs this process may run on, read once, before anything is pinned.
pub fn available_cpus() -> &'static [usize] {
    static CPUS: OnceLock<Vec<usize>> = OnceLock::new();
    CPUS.get_or_init(|| {
        let mut v: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        v.sort_unstable();
        v
    })
}

/// Plans `threads` threads of `side` over `available`. `split` on a single CPU cannot
/// keep the sides apart: both go on it, and [`Plan::note`] says so.
pub fn plan(
    spec: &CpuSpec,
    side: Side,
    threads: usize,
    available: &[usize],
) -> Result<Plan, Error> {
    let threads = threads.max(1);
    let over = |pool: &[usize]| (0..threads).map(|i| Some(pool[i % pool.len()])).collect();
    let mut note = None;
    let cpus = match spec {
        CpuSpec::Policy(PlacementPolicy::Unpinned) => vec![None; threads],
        CpuSpec::List(list) => {
            if let Some(bad) = list.iter().find(|c| !available.contains(c)) {
                return Err(Error::Config(format!(
                    "CPU {bad} is not available to this process (available: {})",
                    join(available)
                )));
            }
            over(list)
        }
        _ if available.is_empty() => vec![None; threads],
        CpuSpec::Policy(PlacementPolicy::Paired) => over(available),
        CpuSpec::Policy(PlacementPolicy::Split) if available.len() < 2 => {
            note = Some(format!(
                "split placement needs two CPUs and this process may use only CPU {}: both sides share it",
                join(available)
            ));
            over(available)
        }
        CpuSpec::Policy(PlacementPolicy::Split) => over(half(side, available)),
        CpuSpec::Auto => {
            if available.len() / 2 >= threads {
                over(half(side, available))
            } else {
                over(available)
            }
        }
    };
    Ok(Plan { cpus, note })
}

/// A side's half of `available` (at least 2 CPUs): servers the first half, clients the
/// rest (the larger half when the count is odd).
fn half(side: Side, available: &[usize]) -> &[usize] {
    let mid = available.len() / 2;
    match side {
        Side::Server => &available[..mid],
        Side::Client => &available[mid..],
    }
}

/// Under `paired`, the CPU client thread `thread` runs on: the `thread`-th of `available`,
/// wrapping, exactly as the client's plan places it (`None` with no CPUs).
pub fn paired_cpu(thread: usize, available: &[usize]) -> Option<usize> {
    (!available.is_empty()).then(|| available[thread % available.len()])
}

/// Under `paired`, the worker (of those placed on `workers`' CPUs) that serves client
/// thread `thread`: one on that thread's CPU, spreading the client threads that share a
/// CPU over the workers on it; `thread` modulo the workers where none is on it (a server
/// with fewer CPUs than the client, or unpinned).
pub fn paired_worker(thread: usize, available: &[usize], workers: &[Option<usize>]) -> usize {
    let n = workers.len().max(1);
    let cpu = paired_cpu(thread, available);
    let on: Vec<usize> = (0..workers.len())
        .filter(|&w| cpu.is_some() && workers[w] == cpu)
        .collect();
    if on.is_empty() {
        thread % n
    } else {
        on[(thread / available.len().max(1)) % on.len()]
    }
}

/// Pins the calling thread to `cpu`.
pub fn pin(cpu: usize) -> Result<(), Error> {
    // core_affinity indexes a fixed-size cpu_set_t and panics past it.
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(Error::Config(format!(
            "CPU {cpu} is beyond the {} CPUs a cpu_set_t can name (--cpus)",
            libc::CPU_SETSIZE
        )));
    }
    if core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
        Ok(())
    } else {
        Err(Error::io(
            format!("pinning a thread to CPU {cpu}"),
            std::io::Error::last_os_error(),
        ))
    }
}

/// Pins the calling thread as planned (nothing to do when unpinned).
pub fn apply(cpu: Option<usize>) -> Result<(), Error> {
    cpu.map_or(Ok(()), pin)
}

/// The CPU the calling thread is on now.
pub fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu has no preconditions.
    let c = unsafe { libc::sched_getcpu() };
    (c >= 0).then_some(c as usize)
}

/// `0,1,3` style.
pub fn join(cpus: &[usize]) -> String {
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Where one thread ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// `client 0`, `worker 1`, `conn 7`.
    pub thread: String,
    /// The CPU it was pinned to; null when not pinned.
    pub cpu: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print() {
        assert_eq!("auto".parse(), Ok(CpuSpec::Auto));
        assert_eq!(
            "off".parse::<CpuSpec>(),
            Ok(PlacementPolicy::Unpinned.into())
        );
        assert_eq!(
            "unpinned".parse::<CpuSpec>(),
            Ok(PlacementPolicy::Unpinned.into())
        );
        assert_eq!(
            "paired".parse::<CpuSpec>(),
            Ok(PlacementPolicy::Paired.into())
        );
        assert_eq!("split".parse(), Ok(CpuSpec::default()));
        assert_eq!("0,2-4".parse(), Ok(CpuSpec::List(vec![0, 2, 3, 4])));
        assert_eq!(CpuSpec::List(vec![1, 3]).to_string(), "1,3");
        assert_eq!(
            CpuSpec::from(PlacementPolicy::Unpinned).to_string(),
            "unpinned"
        );
        assert_eq!(CpuSpec::Auto.policy(), None);
        assert!("".parse::<CpuSpec>().is_err());
        assert!("3-1".parse::<CpuSpec>().is_err());
        assert!("a"
            .parse::<CpuSpec>()
            .unwrap_err()
            .contains("paired, split, unpinned"));
    }

    fn cpus_of(
        spec: impl Into<CpuSpec>,
        side: Side,
        threads: usize,
        available: &[usize],
    ) -> Vec<Option<usize>> {
        let p = plan(&spec.into(), side, threads, available).unwrap();
        (0..threads).map(|i| p.cpu(i)).collect()
    }

    #[test]
    fn policies_place_every_thread_count_alike() {
        use PlacementPolicy::*;
        let two = [0, 1];
        for threads in [1, 2, 4, 8] {
            // split: the server always on CPU 0, the client always on CPU 1.
            assert_eq!(
                cpus_of(Split, Side::Server, threads, &two),
                vec![Some(0); threads]
            );
            assert_eq!(
                cpus_of(Split, Side::Client, threads, &two),
                vec![Some(1); threads]
            );
            // paired: thread i of either side on CPU i mod 2.
            let paired: Vec<_> = (0..threads).map(|i| Some(i % 2)).collect();
            assert_eq!(cpus_of(Paired, Side::Server, threads, &two), paired);
            assert_eq!(cpus_of(Paired, Side::Client, threads, &two), paired);
            assert_eq!(
                cpus_of(Unpinned, Side::Client, threads, &two),
                vec![None; threads]
            );
        }
        let eight: Vec<usize> = (0..8).collect();
        assert_eq!(
            plan(&Split.into(), Side::Server, 8, &eight)
                .unwrap()
                .distinct(),
            [0, 1, 2, 3]
        );
        assert_eq!(
            plan(&Split.into(), Side::Client, 2, &[0, 1, 2])
                .unwrap()
                .distinct(),
            [1, 2],
            "an odd CPU gives the client the larger half"
        );
        // One CPU: split cannot keep the sides apart, and says so.
        let p = plan(&Split.into(), Side::Client, 2, &[3]).unwrap();
        assert_eq!(p.distinct(), [3]);
        assert!(p.note.unwrap().contains("both sides share it"));
        assert_eq!(
            plan(&Paired.into(), Side::Client, 2, &[3]).unwrap().note,
            None
        );
    }

    #[test]
    fn paired_threads_find_a_worker_on_their_own_cpu() {
        let two = [0, 1];
        // 3 workers on 2 CPUs: 0 and 2 on CPU 0, 1 on CPU 1.
        let workers = [Some(0), Some(1), Some(0)];
        let picks: Vec<usize> = (0..6).map(|t| paired_worker(t, &two, &workers)).collect();
        // Client threads on CPU 0 (0, 2, 4) alternate between workers 0 and 2; those on
        // CPU 1 all go to worker 1 — never to a worker on the other CPU.
        assert_eq!(picks, [0, 1, 2, 1, 0, 1]);
        for (t, w) in picks.iter().enumerate() {
            assert_eq!(workers[*w], paired_cpu(t, &two), "thread {t}");
        }
        // A huge index (a hostile hello) still lands on a real worker.
        assert!(paired_worker(u32::MAX as usize, &two, &workers) < 3);
        // Unpinned workers: modulo.
        assert_eq!(paired_worker(4, &two, &[None, None, None]), 1);
        assert_eq!(paired_cpu(3, &[]), None);
    }

    #[test]
    fn the_old_auto_plan_still_changes_with_the_thread_count() {
        let two = [0, 1];
        assert_eq!(cpus_of(CpuSpec::Auto, Side::Server, 1, &two), [Some(0)]);
        assert_eq!(cpus_of(CpuSpec::Auto, Side::Client, 1, &two), [Some(1)]);
        assert_eq!(
            cpus_of(CpuSpec::Auto, Side::Client, 4, &two),
            [Some(0), Some(1), Some(0), Some(1)]
        );
    }

    #[test]
    fn lists_must_name_available_cpus() {
        let e = plan(&CpuSpec::List(vec![0, 9]), Side::Client, 2, &[0, 1]).unwrap_err();
        assert!(e.to_string().contains("CPU 9 is not available"), "{e}");
        let p = plan(&CpuSpec::List(vec![1]), Side::Client, 3, &[0, 1]).unwrap();
        assert_eq!(p.cpu(2), Some(1));
    }

    #[test]
    fn pinning_moves_the_thread() {
        let cpus = available_cpus();
        let last = *cpus.last().expect("at least one CPU");
        std::thread::spawn(move || {
            pin(last).unwrap();
            assert_eq!(current_cpu(), Some(last));
        })
        .join()
        .unwrap();
        assert!(pin(100_000).is_err());
        assert!(
            pin(1000).is_err(),
            "in range for cpu_set_t but not a CPU here"
        );
    }
}
