//! Which CPU each worker thread runs on: an explicit plan, applied by pinning, recorded as
//! applied. A pin that fails is an error, never a silent no-op.
//!
//! The default plan spreads a side's threads over the CPUs this process may use and, when
//! there are at least twice as many CPUs as threads, keeps the two sides apart: the
//! server takes the first half, the client the second, so on the same machine they do not
//! compete for a core (`--cpus` overrides either side).

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// How a side places its threads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CpuSpec {
    /// The default plan.
    #[default]
    Auto,
    /// No pinning; the scheduler decides.
    Off,
    /// Thread i runs on the i-th listed CPU (wrapping).
    List(Vec<usize>),
}

impl FromStr for CpuSpec {
    type Err = String;

    /// `auto`, `off`, or a list such as `0,2-3`.
    fn from_str(s: &str) -> Result<CpuSpec, String> {
        match s.trim() {
            "auto" => return Ok(CpuSpec::Auto),
            "off" | "none" => return Ok(CpuSpec::Off),
            _ => {}
        }
        let bad = || format!("invalid CPU list '{s}': expected auto, off, or a list such as 0,2-3");
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
            CpuSpec::Auto => f.write_str("auto"),
            CpuSpec::Off => f.write_str("off"),
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

/// Plans `threads` threads of `side` over `available`.
pub fn plan(
    spec: &CpuSpec,
    side: Side,
    threads: usize,
    available: &[usize],
) -> Result<Plan, Error> {
    let threads = threads.max(1);
    let cpus = match spec {
        CpuSpec::Off => vec![None; threads],
        CpuSpec::List(list) => {
            if let Some(bad) = list.iter().find(|c| !available.contains(c)) {
                return Err(Error::Config(format!(
                    "CPU {bad} is not available to this process (available: {})",
                    join(available)
                )));
            }
            (0..threads).map(|i| Some(list[i % list.len()])).collect()
        }
        CpuSpec::Auto if available.is_empty() => vec![None; threads],
        CpuSpec::Auto => {
            let half = available.len() / 2;
            let pool = if half >= threads {
                match side {
                    Side::Server => &available[..half],
                    Side::Client => &available[half..],
                }
            } else {
                available
            };
            (0..threads).map(|i| Some(pool[i % pool.len()])).collect()
        }
    };
    Ok(Plan { cpus })
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
        assert_eq!("off".parse(), Ok(CpuSpec::Off));
        assert_eq!("0,2-4".parse(), Ok(CpuSpec::List(vec![0, 2, 3, 4])));
        assert_eq!(CpuSpec::List(vec![1, 3]).to_string(), "1,3");
        assert!("".parse::<CpuSpec>().is_err());
        assert!("3-1".parse::<CpuSpec>().is_err());
        assert!("a".parse::<CpuSpec>().is_err());
    }

    #[test]
    fn the_default_plan_keeps_sides_apart_when_cores_allow() {
        let cpus: Vec<usize> = (0..8).collect();
        let s = plan(&CpuSpec::Auto, Side::Server, 4, &cpus).unwrap();
        let c = plan(&CpuSpec::Auto, Side::Client, 4, &cpus).unwrap();
        assert_eq!(s.distinct(), [0, 1, 2, 3]);
        assert_eq!(c.distinct(), [4, 5, 6, 7]);
        // 8 threads on 8 CPUs: both sides spread over all of them.
        let c = plan(&CpuSpec::Auto, Side::Client, 8, &cpus).unwrap();
        assert_eq!(c.distinct(), (0..8).collect::<Vec<_>>());
        // 2 CPUs, 1 thread each: one CPU per side.
        let two = [0, 1];
        assert_eq!(
            plan(&CpuSpec::Auto, Side::Server, 1, &two).unwrap().cpu(0),
            Some(0)
        );
        assert_eq!(
            plan(&CpuSpec::Auto, Side::Client, 1, &two).unwrap().cpu(0),
            Some(1)
        );
        // 4 threads on 2 CPUs: round robin.
        let p = plan(&CpuSpec::Auto, Side::Client, 4, &two).unwrap();
        assert_eq!(
            (0..4).map(|i| p.cpu(i)).collect::<Vec<_>>(),
            [Some(0), Some(1), Some(0), Some(1)]
        );
    }

    #[test]
    fn lists_must_name_available_cpus() {
        let e = plan(&CpuSpec::List(vec![0, 9]), Side::Client, 2, &[0, 1]).unwrap_err();
        assert!(e.to_string().contains("CPU 9 is not available"), "{e}");
        let p = plan(&CpuSpec::List(vec![1]), Side::Client, 3, &[0, 1]).unwrap();
        assert_eq!(p.cpu(2), Some(1));
        assert_eq!(
            plan(&CpuSpec::Off, Side::Client, 2, &[0, 1])
                .unwrap()
                .cpu(0),
            None
        );
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
