//! CPU time, counted two ways that do not overlap: what each side's own worker threads
//! used, and what the machine's CPUs did.
//!
//! A side's own time (getrusage(RUSAGE_THREAD), read by each worker thread itself at the
//! moments its other per-thread readings are taken) is what that side cost: the two sides'
//! figures add up, and neither includes the other side, another tenant or time the
//! hypervisor stole. It is not a perf counter, so it is there on every machine and in
//! every counter scope. Kernel work done in the thread's context is in its system time —
//! on loopback that is most of the network stack's softirq work, which runs in whichever
//! thread raised it.
//!
//! What runs outside the workers — softirq work in ksoftirqd or an interrupt, io_uring's
//! io-wq threads, other processes — is in neither side. The machine figure catches it:
//! the client reads /proc/stat for every CPU at the start and the end of the measured
//! interval ([`StatReading`]), and the record holds one [`SystemCpu`]: per CPU the busy,
//! irq, softirq, steal and idle time, their totals, and the capacity (interval × CPUs)
//! they must fit in. It is the machine's, never copied into a side.

use std::ops::AddAssign;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A cumulative reading of the calling thread's CPU time, and when it was taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadClock {
    /// User-mode time so far, ns.
    pub user_ns: u64,
    /// Kernel-mode time so far, ns.
    pub system_ns: u64,
    /// CLOCK_MONOTONIC when it was read, ns: only differences within one machine mean
    /// anything.
    pub at_ns: u64,
    /// The io_uring SQ polling threads of the rings this thread made (`--sqpoll`), read
    /// at the same moment (see `sqthread.rs`); absent without SQPOLL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqpoll: Option<SqClock>,
}

/// The cumulative CPU time of a thread's SQ polling threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqClock {
    /// Their CPU time so far, ns (kernel threads: all of it kernel-mode).
    pub ns: u64,
    /// How many there were.
    pub threads: u32,
}

impl ThreadClock {
    /// The calling thread's reading (only a thread can read its own); `None` if the kernel
    /// would not say.
    pub fn now() -> Option<ThreadClock> {
        let at_ns = monotonic_ns()?;
        // SAFETY: getrusage writes one rusage, which is plain data.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: a valid out pointer; RUSAGE_THREAD reads the calling thread only.
        if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } != 0 {
            return None;
        }
        let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
        Some(ThreadClock {
            user_ns: ns(ru.ru_utime),
            system_ns: ns(ru.ru_stime),
            at_ns,
            sqpoll: crate::sqthread::reading().map(|(ns, threads)| SqClock { ns, threads }),
        })
    }

    /// Field by field `f`: cumulative readings only grow, so `min` of two starts is the
    /// earlier start and `max` of two ends the later end.
    pub fn zip(&self, o: &ThreadClock, f: fn(u64, u64) -> u64) -> ThreadClock {
        ThreadClock {
            user_ns: f(self.user_ns, o.user_ns),
            system_ns: f(self.system_ns, o.system_ns),
            at_ns: f(self.at_ns, o.at_ns),
            sqpoll: match (self.sqpoll, o.sqpoll) {
                (Some(a), Some(b)) => Some(SqClock {
                    ns: f(a.ns, b.ns),
                    threads: a.threads.max(b.threads),
                }),
                _ => None,
            },
        }
    }

    /// What one thread used from `earlier` to `self`: its SQ polling threads' time is in
    /// the system time, and in `sqpoll_ns` on its own.
    pub fn since(&self, earlier: &ThreadClock) -> CpuSpan {
        let sq = match (self.sqpoll, earlier.sqpoll) {
            (Some(b), Some(a)) => Some((b.ns.saturating_sub(a.ns), b.threads as usize)),
            _ => None,
        };
        CpuSpan {
            user_ns: self.user_ns.saturating_sub(earlier.user_ns),
            system_ns: self.system_ns.saturating_sub(earlier.system_ns)
                + sq.map_or(0, |(ns, _)| ns),
            first_ns: earlier.at_ns,
            last_ns: self.at_ns.max(earlier.at_ns),
            threads: 1,
            sqpoll_ns: sq.map(|(ns, _)| ns),
            sqpoll_threads: sq.map_or(0, |(_, n)| n),
        }
    }
}

fn monotonic_ns() -> Option<u64> {
    // SAFETY: clock_gettime writes one timespec, which is plain data.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out pointer.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
        return None;
    }
    Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// CPU time some threads used, each over its own interval: their times summed, and the
/// span from the earliest start to the latest end, which is the interval they were spent
/// in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSpan {
    pub user_ns: u64,
    pub system_ns: u64,
    /// CLOCK_MONOTONIC of the earliest start and the latest end, ns.
    pub first_ns: u64,
    pub last_ns: u64,
    pub threads: usize,
    /// Of `system_ns`, what the threads' io_uring SQ polling threads used; `None` where
    /// none had any.
    pub sqpoll_ns: Option<u64>,
    /// Those SQ polling threads (beside `threads`).
    pub sqpoll_threads: usize,
}

impl AddAssign for CpuSpan {
    fn add_assign(&mut self, o: CpuSpan) {
        self.user_ns += o.user_ns;
        self.system_ns += o.system_ns;
        self.first_ns = self.first_ns.min(o.first_ns);
        self.last_ns = self.last_ns.max(o.last_ns);
        self.threads += o.threads;
        self.sqpoll_ns = match (self.sqpoll_ns, o.sqpoll_ns) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
        self.sqpoll_threads += o.sqpoll_threads;
    }
}

impl CpuSpan {
    /// The sum of `spans`; `None` when there are none.
    pub fn sum(spans: impl IntoIterator<Item = CpuSpan>) -> Option<CpuSpan> {
        spans.into_iter().reduce(|mut a, b| {
            a += b;
            a
        })
    }

    /// As a record holds it, for threads that could run on `runnable` CPUs (the CPUs they
    /// were pinned to, or all the process may use when unpinned; `None`: unknown). An SQ
    /// polling thread may run on a CPU of its own beside them, so each adds one to both.
    pub fn own(&self, runnable: Option<usize>) -> OwnCpu {
        let sq = self.sqpoll_threads;
        OwnCpu {
            user_ns: self.user_ns,
            system_ns: self.system_ns,
            threads: self.threads,
            interval_s: self.last_ns.saturating_sub(self.first_ns) as f64 / 1e9,
            cpus: runnable.map(|n| (n + sq).min(self.threads + sq)),
            sqpoll_ns: self.sqpoll_ns,
            sqpoll_threads: self.sqpoll_ns.map(|_| sq),
        }
    }
}

/// A side's own CPU time: its worker threads' user and system time, each over that
/// thread's measured interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OwnCpu {
    /// User-mode time, ns.
    pub user_ns: u64,
    /// Kernel-mode time, ns: system calls, and softirq work the kernel did in the threads'
    /// context.
    pub system_ns: u64,
    /// Worker threads counted (a thread serving several connections once).
    pub threads: usize,
    /// From the earliest thread's start to the latest thread's end, s.
    pub interval_s: f64,
    /// The most CPUs these threads could occupy at once: the fewer of the threads and the
    /// CPUs they could run on (their pinned CPUs, or all the process may use when any is
    /// unpinned), each SQ polling thread adding one; null when the side did not say.
    pub cpus: Option<usize>,
    /// Of `system_ns`, what the side's io_uring SQ polling threads (`--sqpoll`) used over
    /// the same intervals, ns; null without SQ polling.
    #[serde(default)]
    pub sqpoll_ns: Option<u64>,
    /// The SQ polling threads counted (beside `threads`); null without SQ polling.
    #[serde(default)]
    pub sqpoll_threads: Option<usize>,
}

impl OwnCpu {
    /// User + system, ns.
    pub fn total_ns(&self) -> u64 {
        self.user_ns + self.system_ns
    }

    /// The most the threads could have used: interval × CPUs, ns; `None` when the CPUs
    /// are unknown.
    pub fn capacity_ns(&self) -> Option<u64> {
        self.cpus.map(|n| (self.interval_s * 1e9 * n as f64) as u64)
    }

    /// How far a correct figure may exceed [`OwnCpu::capacity_ns`]: a thread's time is
    /// brought up to date at the scheduler tick and at context switches, so each reading
    /// may lag by up to a jiffy (HZ ≥ 100: at most 10 ms): one per thread per reading.
    pub fn slack_ns(&self) -> u64 {
        2 * (self.threads + self.sqpoll_threads.unwrap_or(0)) as u64 * MAX_JIFFY_NS
    }
}

/// The longest scheduler tick Linux has (HZ ≥ 100).
pub const MAX_JIFFY_NS: u64 = 10_000_000;

/// One CPU's cumulative times from /proc/stat, in clock ticks (1/CLK_TCK s).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTicks {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

/// The /proc/stat fields summed into "busy": user, nice, system, irq, softirq (guest time
/// is already inside user and nice; idle, iowait and steal are time the CPU did not run
/// anything of this machine's).
pub const BUSY_FIELDS: u64 = 5;

impl CpuTicks {
    fn busy(&self) -> u64 {
        self.user + self.nice + self.system + self.irq + self.softirq
    }
}

/// The per-CPU lines (`cpu0 …`, not the `cpu` total) of /proc/stat text, in order: the
/// CPU number and its user, nice, system, idle, iowait, irq, softirq and steal ticks.
/// Fields past steal (guest, guest_nice) are ignored; a line with fewer than eight is an
/// error naming it.
pub fn parse_proc_stat(text: &str) -> Result<Vec<(usize, CpuTicks)>, String> {
    let mut cpus = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(n) = words
            .next()
            .and_then(|w| w.strip_prefix("cpu"))
            .filter(|n| !n.is_empty())
        else {
            continue;
        };
        let bad = || format!("unreadable /proc/stat line {line:?}");
        let cpu: usize = n.parse().map_err(|_| bad())?;
        let f = words
            .take(8)
            .map(|w| w.parse::<u64>().map_err(|_| bad()))
            .collect::<Result<Vec<u64>, String>>()?;
        let [user, nice, system, idle, iowait, irq, softirq, steal] =
            <[u64; 8]>::try_from(f).map_err(|_| bad())?;
        cpus.push((
            cpu,
            CpuTicks {
                user,
                nice,
                system,
                idle,
                iowait,
                irq,
                softirq,
                steal,
            },
        ));
    }
    if cpus.is_empty() {
        return Err("no per-CPU lines in /proc/stat".into());
    }
    Ok(cpus)
}

/// One clock tick, ns: /proc/stat's unit.
pub fn tick_ns() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    1_000_000_000 / hz.max(1) as u64
}

/// Every CPU's times, and the moments just before and just after they were read.
#[derive(Debug, Clone, PartialEq)]
pub struct StatReading {
    pub before: Instant,
    pub after: Instant,
    pub cpus: Vec<(usize, CpuTicks)>,
}

impl StatReading {
    /// Reads /proc/stat now; `None` where it cannot be read or parsed.
    pub fn now() -> Option<StatReading> {
        let before = Instant::now();
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        let after = Instant::now();
        Some(StatReading {
            before,
            after,
            cpus: parse_proc_stat(&text).ok()?,
        })
    }
}

/// Busy, irq, softirq, steal and idle time over an interval, ns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuFigures {
    /// user + nice + system + irq + softirq.
    pub busy_ns: u64,
    /// Hard interrupt handlers.
    pub irq_ns: u64,
    /// Softirq work (the network stack's receive and transmit processing among it) run
    /// outside any process's own accounting.
    pub softirq_ns: u64,
    /// Time the hypervisor ran something else while this CPU had work.
    pub steal_ns: u64,
    /// idle + iowait.
    pub idle_ns: u64,
}

impl AddAssign for CpuFigures {
    fn add_assign(&mut self, o: CpuFigures) {
        self.busy_ns += o.busy_ns;
        self.irq_ns += o.irq_ns;
        self.softirq_ns += o.softirq_ns;
        self.steal_ns += o.steal_ns;
        self.idle_ns += o.idle_ns;
    }
}

/// One CPU's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerCpu {
    pub cpu: usize,
    #[serde(flatten)]
    pub figures: CpuFigures,
}

/// What the machine's CPUs did over the client's measured interval, from /proc/stat: the
/// machine's figure, not either side's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemCpu {
    /// From just before the start reading to just after the end reading, s.
    pub interval_s: f64,
    /// One clock tick, ns: /proc/stat's resolution.
    pub tick_ns: u64,
    /// interval × CPUs, ns: the most the CPUs could have been busy.
    pub capacity_ns: u64,
    /// Summed over every CPU.
    pub total: CpuFigures,
    /// Per CPU (JSON only).
    pub per_cpu: Vec<PerCpu>,
    /// The CPUs the client's threads were pinned to; null when unpinned.
    pub client_cpus: Option<String>,
    /// The CPUs the server's threads were pinned to (their numbers on the server's machine,
    /// which is this one unless the server ran elsewhere); null when unpinned or unknown.
    pub server_cpus: Option<String>,
}

impl SystemCpu {
    /// The figures from `start` to `end`, over the CPUs present in both. The sides' CPUs
    /// are filled in by whoever knows where they ran.
    pub fn between(start: &StatReading, end: &StatReading, tick_ns: u64) -> SystemCpu {
        let interval = end.after.saturating_duration_since(start.before);
        let ns = |ticks: u64| ticks.saturating_mul(tick_ns);
        let mut total = CpuFigures::default();
        let mut per_cpu = Vec::new();
        for (cpu, b) in &end.cpus {
            let Some((_, a)) = start.cpus.iter().find(|(c, _)| c == cpu) else {
                continue;
            };
            let d = |f: fn(&CpuTicks) -> u64| ns(f(b).saturating_sub(f(a)));
            let figures = CpuFigures {
                busy_ns: d(CpuTicks::busy),
                irq_ns: d(|t| t.irq),
                softirq_ns: d(|t| t.softirq),
                steal_ns: d(|t| t.steal),
                idle_ns: d(|t| t.idle + t.iowait),
            };
            total += figures;
            per_cpu.push(PerCpu { cpu: *cpu, figures });
        }
        SystemCpu {
            interval_s: interval.as_secs_f64(),
            tick_ns,
            capacity_ns: capacity(interval, per_cpu.len()),
            total,
            per_cpu,
            client_cpus: None,
            server_cpus: None,
        }
    }

    /// How far a correct busy total may exceed the capacity: per CPU, each summed field
    /// is truncated to a tick on each reading (a field's difference is off by less than a
    /// tick), and tick-based accounting charges a CPU a whole jiffy at a time.
    pub fn busy_slack_ns(&self) -> u64 {
        self.per_cpu.len() as u64 * (BUSY_FIELDS * self.tick_ns + MAX_JIFFY_NS)
    }

    /// The CPUs the run's threads were on: both sides' pinned CPUs, or every CPU when a
    /// side was not pinned (it could have run anywhere).
    pub fn involved(&self) -> Vec<usize> {
        let parse = |s: &Option<String>| -> Option<Vec<usize>> {
            s.as_deref()?
                .split(',')
                .map(|c| c.trim().parse().ok())
                .collect()
        };
        match (parse(&self.client_cpus), parse(&self.server_cpus)) {
            (Some(mut a), Some(b)) => {
                a.extend(b);
                a.sort_unstable();
                a.dedup();
                a.retain(|c| self.per_cpu.iter().any(|p| p.cpu == *c));
                a
            }
            _ => self.per_cpu.iter().map(|p| p.cpu).collect(),
        }
    }

    /// The figures summed over `cpus`, and their capacity (interval × their count), ns.
    pub fn over(&self, cpus: &[usize]) -> (CpuFigures, u64) {
        let mut sum = CpuFigures::default();
        for p in self.per_cpu.iter().filter(|p| cpus.contains(&p.cpu)) {
            sum += p.figures;
        }
        let interval = Duration::from_secs_f64(self.interval_s);
        (sum, capacity(interval, cpus.len()))
    }
}

fn capacity(interval: Duration, cpus: usize) -> u64 {
    (interval.as_nanos() * cpus as u128).min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real /proc/stat's head (two CPUs; a kernel with guest fields).
    const STAT: &str = "\
cpu  344347 0 179711 638412 92112 0 55744 40954 0 0
cpu0 164582 0 86176 323543 54667 0 25935 20992 0 0
cpu1 179765 0 93534 314868 37445 0 29809 19961 0 0
intr 15967847 0 0 0
ctxt 123456
btime 1700000000
";

    #[test]
    fn proc_stat_parses_per_cpu_lines_only() {
        let cpus = parse_proc_stat(STAT).unwrap();
        assert_eq!(cpus.len(), 2, "the total line and the rest are skipped");
        assert_eq!(
            cpus[1],
            (
                1,
                CpuTicks {
                    user: 179765,
                    nice: 0,
                    system: 93534,
                    idle: 314868,
                    iowait: 37445,
                    irq: 0,
                    softirq: 29809,
                    steal: 19961,
                }
            )
        );
        // An old kernel without steal, garbage, nothing: errors, never zeros.
        assert!(parse_proc_stat("cpu0 1 2 3 4 5 6 7\n").is_err());
        assert!(parse_proc_stat("cpu0 1 2 x 4 5 6 7 8\n").is_err());
        assert!(parse_proc_stat("intr 1\n").is_err());
    }

    #[test]
    fn system_figures_are_deltas_in_ns_over_the_cpus_in_both_readings() {
        let t0 = Instant::now();
        let start = StatReading {
            before: t0,
            after: t0 + Duration::from_millis(1),
            cpus: parse_proc_stat(STAT).unwrap(),
        };
        let later = "\
cpu0 164682 0 86226 323593 54667 2 25975 20997 0 0
cpu1 179865 5 93534 314968 37455 0 29809 19961 0 0
cpu2 1 1 1 1 1 1 1 1
";
        let end = StatReading {
            before: t0 + Duration::from_millis(2999),
            after: t0 + Duration::from_secs(3),
            cpus: parse_proc_stat(later).unwrap(),
        };
        let s = SystemCpu::between(&start, &end, 10_000_000);
        assert_eq!(s.per_cpu.len(), 2, "cpu2 came online mid-run: left out");
        assert_eq!(s.interval_s, 3.0);
        assert_eq!(s.capacity_ns, 6_000_000_000);
        let cpu0 = s.per_cpu[0].figures;
        // user 100 + system 50 + irq 2 + softirq 40 ticks.
        assert_eq!(cpu0.busy_ns, 192 * 10_000_000);
        assert_eq!(cpu0.irq_ns, 20_000_000);
        assert_eq!(cpu0.softirq_ns, 400_000_000);
        assert_eq!(cpu0.steal_ns, 50_000_000);
        assert_eq!(cpu0.idle_ns, 500_000_000);
        let cpu1 = s.per_cpu[1].figures;
        assert_eq!(cpu1.busy_ns, 105 * 10_000_000, "nice is busy");
        assert_eq!(cpu1.idle_ns, 110 * 10_000_000, "iowait is idle");
        assert_eq!(s.total.busy_ns, cpu0.busy_ns + cpu1.busy_ns);
        assert_eq!(s.total.steal_ns, 50_000_000);
        assert_eq!(s.busy_slack_ns(), 2 * (5 * 10_000_000 + MAX_JIFFY_NS));
    }

    #[test]
    fn involved_cpus_are_both_sides_pinned_cpus_or_all() {
        let t0 = Instant::now();
        let r = StatReading {
            before: t0,
            after: t0,
            cpus: parse_proc_stat(STAT).unwrap(),
        };
        let mut s = SystemCpu::between(&r, &r, 10_000_000);
        assert_eq!(s.involved(), [0, 1], "unpinned: every CPU");
        s.client_cpus = Some("1".into());
        s.server_cpus = Some("1".into());
        assert_eq!(s.involved(), [1]);
        s.server_cpus = Some("0,1".into());
        assert_eq!(s.involved(), [0, 1]);
    }

    #[test]
    fn own_time_is_summed_over_threads_and_spans_their_union() {
        let a = ThreadClock {
            user_ns: 10,
            system_ns: 20,
            at_ns: 1_000,
            sqpoll: None,
        };
        let b = ThreadClock {
            user_ns: 110,
            system_ns: 220,
            at_ns: 2_000_001_000,
            sqpoll: None,
        };
        let c = ThreadClock {
            user_ns: 0,
            system_ns: 0,
            at_ns: 500_001_000,
            sqpoll: None,
        };
        let d = ThreadClock {
            user_ns: 50,
            system_ns: 0,
            at_ns: 3_000_001_000,
            sqpoll: None,
        };
        let sum = CpuSpan::sum([b.since(&a), d.since(&c)]).unwrap();
        let own = sum.own(Some(8));
        assert_eq!((own.user_ns, own.system_ns), (150, 200));
        assert_eq!(own.total_ns(), 350);
        assert_eq!(own.threads, 2);
        assert_eq!(own.interval_s, 3.0, "first start to last end");
        assert_eq!(own.cpus, Some(2), "two threads occupy two CPUs at most");
        assert_eq!(own.capacity_ns(), Some(6_000_000_000));
        assert_eq!(sum.own(None).capacity_ns(), None);
        assert_eq!(CpuSpan::sum([]), None);
    }

    #[test]
    fn this_thread_reads_its_own_cpu_time() {
        let a = ThreadClock::now().unwrap();
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(50) {
            std::hint::black_box(0);
        }
        let b = ThreadClock::now().unwrap();
        let span = b.since(&a);
        // Spinning 50 ms costs CPU time, though maybe less than 50 ms on a loaded machine.
        assert!(span.user_ns + span.system_ns > 0, "{span:?}");
        assert!(b.at_ns - a.at_ns >= 50_000_000);
        let reading = StatReading::now().unwrap();
        assert!(!reading.cpus.is_empty());
    }
}
