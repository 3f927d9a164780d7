//! Kernel counters (perf_event_open) per worker thread or per CPU, over the measured
//! interval only.
//!
//! Every event is opened on its own, so one the machine lacks (a VM without a PMU has no
//! cycles) leaves that field missing — `None`, an empty CSV cell, JSON null — while the
//! others count; it is never reported as 0. Kernel-mode counting is included.
//!
//! Counts are cumulative readings ([`RawCounts`]: count, time enabled, time running per
//! event); a figure is the difference of two readings, scaled by enabled / running when
//! the kernel multiplexed the event. Readings taken around each connection let a thread
//! that served several connections be counted once, from the earliest start to the
//! latest end (see `stats::ThreadSample`).
//!
//! CPU time: per thread the task clock counts it; per CPU a perf clock would count idle
//! time too, so core scope has none. Each side's own CPU time and the machine's per-CPU
//! figures are measured apart from the counters, in every scope (`cputime`).

use std::io;
use std::sync::Mutex;

use perf_event::events::{Cache, CacheId, CacheOp, CacheResult, Event, Hardware, Software};
use perf_event::{Builder, Counter};
use serde::{Deserialize, Serialize};

use crate::vocab::CounterScope;

/// One cumulative reading of one event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Raw {
    pub count: u64,
    /// Nanoseconds the event was enabled / actually counting (they differ when the kernel
    /// multiplexed it). Both 0 for a count that is never multiplexed.
    pub enabled_ns: u64,
    pub running_ns: u64,
}

impl Raw {
    /// The scaled difference from `earlier` to `self`; `None` if it never counted.
    fn since(&self, earlier: &Raw) -> Option<u64> {
        let count = self.count.saturating_sub(earlier.count);
        let enabled = self.enabled_ns.saturating_sub(earlier.enabled_ns);
        let running = self.running_ns.saturating_sub(earlier.running_ns);
        match (enabled, running) {
            (0, 0) => Some(count),
            (_, 0) => None,
            (e, r) if e == r => Some(count),
            (e, r) => Some((count as u128 * e as u128 / r as u128) as u64),
        }
    }

    /// Field by field `f`.
    pub fn zip(&self, o: &Raw, f: fn(u64, u64) -> u64) -> Raw {
        Raw {
            count: f(self.count, o.count),
            enabled_ns: f(self.enabled_ns, o.enabled_ns),
            running_ns: f(self.running_ns, o.running_ns),
        }
    }

    fn add(&self, o: &Raw) -> Raw {
        self.zip(o, u64::saturating_add)
    }
}

macro_rules! counter_struct {
    ($($(#[$doc:meta])* $field:ident = $id:ident),+ $(,)?) => {
        /// A counter copyperf reads, by the name its field has in records.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum CounterId {
            $($(#[$doc])* $id,)+
        }

        impl CounterId {
            pub const ALL: &'static [CounterId] = &[$(CounterId::$id),+];

            /// The field's name in records and CSV columns.
            pub fn as_str(self) -> &'static str {
                match self { $(CounterId::$id => stringify!($field)),+ }
            }
        }

        impl RawCounts {
            /// The reading of counter `id`.
            pub fn slot(&mut self, id: CounterId) -> &mut Option<Raw> {
                match id { $(CounterId::$id => &mut self.$field),+ }
            }
        }

        impl Counters {
            /// The count of counter `id`.
            pub fn get(&self, id: CounterId) -> Option<u64> {
                match id { $(CounterId::$id => self.$field),+ }
            }
        }

        /// Cumulative readings, one per event; `None` where the event is unavailable.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct RawCounts {
            $(pub $field: Option<Raw>,)+
        }

        /// Counts over an interval; `None` where the event could not be counted.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Counters {
            $($(#[$doc])* pub $field: Option<u64>,)+
        }

        impl RawCounts {
            /// What happened from `earlier` to `self`, scaled for multiplexing.
            pub fn since(&self, earlier: &RawCounts) -> Counters {
                Counters {
                    $($field: match (&self.$field, &earlier.$field) {
                        (Some(a), Some(b)) => a.since(b),
                        _ => None,
                    },)+
                }
            }

            /// Field by field `f` (on count, enabled and running alike), where both
            /// readings have the event.
            pub fn zip_with(&self, o: &RawCounts, f: fn(u64, u64) -> u64) -> RawCounts {
                RawCounts {
                    $($field: match (&self.$field, &o.$field) {
                        (Some(a), Some(b)) => Some(a.zip(b, f)),
                        _ => None,
                    },)+
                }
            }
        }

        impl Counters {
            /// Adds `o`; a figure missing on either side stays missing rather than
            /// becoming a partial sum.
            pub fn merge(&mut self, o: &Counters) {
                $(self.$field = match (self.$field, o.$field) {
                    (Some(a), Some(b)) => Some(a + b),
                    _ => None,
                };)+
            }
        }
    };
}

counter_struct! {
    /// CPU cycles (hardware).
    cycles = Cycles,
    /// Instructions retired (hardware).
    instructions = Instructions,
    /// L1 data cache load misses (hardware).
    l1d_load_misses = L1dLoadMisses,
    /// Last-level cache load misses (hardware).
    llc_load_misses = LlcLoadMisses,
    /// Context switches (software).
    context_switches = ContextSwitches,
    /// CPU migrations (software).
    cpu_migrations = CpuMigrations,
    /// Page faults (software).
    page_faults = PageFaults,
    /// Task clock of the counted threads, ns (thread scope).
    task_clock_ns = TaskClockNs,
}

impl std::fmt::Display for CounterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The counters a side could not count, written `+`-joined in records (empty: none
/// missing); an unknown name in a record is an error, not a default, except a counter
/// copyperf no longer has ([`RETIRED_COUNTERS`]), which is dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MissingCounters(pub Vec<CounterId>);

impl MissingCounters {
    pub fn contains(&self, id: CounterId) -> bool {
        self.0.contains(&id)
    }
}

impl std::fmt::Display for MissingCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|c| c.as_str()).collect();
        f.write_str(&names.join("+"))
    }
}

/// Counters older records may name: `cpu_busy_ns` (schema 1, core scope: the pinned
/// CPUs' busy time, shared by both sides) gave way to each side's own CPU time and the
/// machine's figure.
pub const RETIRED_COUNTERS: &[&str] = &["cpu_busy_ns"];

impl std::str::FromStr for MissingCounters {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.split('+')
            .filter(|n| !n.is_empty() && !RETIRED_COUNTERS.contains(n))
            .map(|name| {
                CounterId::ALL
                    .iter()
                    .copied()
                    .find(|c| c.as_str() == name)
                    .ok_or_else(|| format!("unknown counter '{name}'"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(MissingCounters)
    }
}

crate::vocab::serde_as_string!(MissingCounters);

/// Makes a fresh perf builder for one event (one per CPU in core scope).
type MakeBuilder = Box<dyn Fn() -> Builder<'static>>;

/// The perf events copyperf opens, by field name.
fn events(scope: CounterScope) -> Vec<(CounterId, MakeBuilder)> {
    fn b(e: impl Event + Clone + 'static) -> MakeBuilder {
        Box::new(move || Builder::new(e.clone()))
    }
    let miss = |which| Cache {
        which,
        operation: CacheOp::READ,
        result: CacheResult::MISS,
    };
    let mut v = vec![
        (CounterId::Cycles, b(Hardware::CPU_CYCLES)),
        (CounterId::Instructions, b(Hardware::INSTRUCTIONS)),
        (CounterId::L1dLoadMisses, b(miss(CacheId::L1D))),
        (CounterId::LlcLoadMisses, b(miss(CacheId::LL))),
        (CounterId::ContextSwitches, b(Software::CONTEXT_SWITCHES)),
        (CounterId::CpuMigrations, b(Software::CPU_MIGRATIONS)),
        (CounterId::PageFaults, b(Software::PAGE_FAULTS)),
    ];
    if scope == CounterScope::Thread {
        v.push((CounterId::TaskClockNs, b(Software::TASK_CLOCK)));
    }
    v
}

/// A counter that could not be opened, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    pub counter: CounterId,
    pub reason: String,
}

/// Why perf_event_open refused, in words a user can act on.
fn reason(e: &io::Error, scope: CounterScope) -> String {
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => {
            let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "?".into());
            let need = if scope == CounterScope::Core { 0 } else { 1 };
            format!(
                "not permitted: set kernel.perf_event_paranoid to {need} or lower (it is {paranoid}) or grant CAP_PERFMON"
            )
        }
        Some(libc::ENOENT) | Some(libc::EOPNOTSUPP) | Some(libc::ENODEV) | Some(libc::EINVAL) => {
            "not supported on this machine: no hardware PMU exposed".into()
        }
        _ => format!("perf_event_open failed: {e}"),
    }
}

/// Open counters for one thread, or for a set of CPUs.
pub struct CounterSet {
    scope: CounterScope,
    /// Per event: which, and one counter per CPU (one in all for a thread).
    open: Vec<(CounterId, Vec<Counter>)>,
    unavailable: Vec<Unavailable>,
}

impl CounterSet {
    /// Counters for the calling thread, disabled until [`CounterSet::enable`].
    pub fn this_thread() -> CounterSet {
        let mut set = CounterSet {
            scope: CounterScope::Thread,
            open: Vec::new(),
            unavailable: Vec::new(),
        };
        for (name, builder) in events(CounterScope::Thread) {
            let mut b = builder();
            b.observe_self().any_cpu().include_kernel();
            match b.build() {
                Ok(c) => set.open.push((name, vec![c])),
                Err(e) => set.unavailable.push(Unavailable {
                    counter: name,
                    reason: reason(&e, CounterScope::Thread),
                }),
            }
        }
        set
    }

    /// Counters for everything that runs on `cpus`, disabled until enabled. Fails with
    /// the reason when per-CPU counting is not permitted at all.
    pub fn cpus(cpus: &[usize]) -> Result<CounterSet, String> {
        let mut set = CounterSet {
            scope: CounterScope::Core,
            open: Vec::new(),
            unavailable: Vec::new(),
        };
        for (name, builder) in events(CounterScope::Core) {
            let mut counters = Vec::with_capacity(cpus.len());
            let mut failed = None;
            for &cpu in cpus {
                let mut b = builder();
                b.any_pid().one_cpu(cpu).include_kernel();
                match b.build() {
                    Ok(c) => counters.push(c),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            match failed {
                None => set.open.push((name, counters)),
                Some(e) if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) => {
                    return Err(reason(&e, CounterScope::Core));
                }
                Some(e) => set.unavailable.push(Unavailable {
                    counter: name,
                    reason: reason(&e, CounterScope::Core),
                }),
            }
        }
        Ok(set)
    }

    pub fn scope(&self) -> CounterScope {
        self.scope
    }

    /// Counters that could not be opened.
    pub fn unavailable(&self) -> &[Unavailable] {
        &self.unavailable
    }

    /// Starts counting.
    pub fn enable(&mut self) {
        for (_, counters) in &mut self.open {
            for c in counters {
                let _ = c.enable();
            }
        }
    }

    /// Stops counting.
    pub fn disable(&mut self) {
        for (_, counters) in &mut self.open {
            for c in counters {
                let _ = c.disable();
            }
        }
    }

    /// The current cumulative readings.
    pub fn read(&mut self) -> RawCounts {
        let mut raw = RawCounts::default();
        for (id, counters) in &mut self.open {
            let mut total = Some(Raw::default());
            for c in counters.iter_mut() {
                total = match (total, c.read_count_and_time()) {
                    (Some(t), Ok(ct)) => Some(t.add(&Raw {
                        count: ct.count,
                        enabled_ns: ct.time_enabled,
                        running_ns: ct.time_running,
                    })),
                    _ => None,
                };
            }
            *raw.slot(*id) = total;
        }
        raw
    }
}

/// How one side counts: the scope it really got, the per-CPU counters its threads share
/// (core scope), what the machine lacks, and what the user should be told about it.
pub struct Metering {
    pub scope: CounterScope,
    core: Option<Mutex<CounterSet>>,
    /// Unavailable counters; `None` when counting is off.
    pub missing: Option<MissingCounters>,
    /// Lines for the user: unavailable counters, a refused per-core scope.
    pub notices: Vec<String>,
    /// What was asked for and not had, and what was done instead (also in `notices`).
    pub fallbacks: Vec<String>,
}

impl Metering {
    /// Resolves `requested` for threads pinned to `cpus` (all CPUs when empty). Per-CPU
    /// counting that is not permitted falls back to per-thread, with a notice.
    pub fn new(requested: CounterScope, cpus: &[usize]) -> Metering {
        let mut notices = Vec::new();
        let mut fallbacks = Vec::new();
        let (scope, core, unavailable) = match requested {
            CounterScope::Off => (CounterScope::Off, None, Vec::new()),
            CounterScope::Core => {
                let all = crate::placement::available_cpus();
                match CounterSet::cpus(if cpus.is_empty() { all } else { cpus }) {
                    Ok(mut set) => {
                        set.enable();
                        let missing = set.unavailable().to_vec();
                        (CounterScope::Core, Some(Mutex::new(set)), missing)
                    }
                    Err(reason) => {
                        let text = format!(
                            "per-core counting refused ({reason}); counting per thread instead"
                        );
                        notices.push(text.clone());
                        fallbacks.push(text);
                        let probe = CounterSet::this_thread();
                        (CounterScope::Thread, None, probe.unavailable().to_vec())
                    }
                }
            }
            CounterScope::Thread => {
                let probe = CounterSet::this_thread();
                (CounterScope::Thread, None, probe.unavailable().to_vec())
            }
        };
        notices.extend(describe_unavailable(&unavailable));
        Metering {
            scope,
            core,
            missing: (scope != CounterScope::Off).then(|| unavailable_names(&unavailable)),
            notices,
            fallbacks,
        }
    }

    /// Counters for the calling thread, disabled, when counting per thread.
    pub fn thread_set(&self) -> Option<CounterSet> {
        (self.scope == CounterScope::Thread).then(CounterSet::this_thread)
    }

    /// A reading of the per-CPU counters, when counting per CPU.
    pub fn core_reading(&self) -> Option<RawCounts> {
        self.core
            .as_ref()
            .map(|set| set.lock().expect("counter lock").read())
    }
}

/// The sample key of per-CPU readings: one set covers all of a side's CPUs, so all its
/// readings belong to one key.
pub const CORE_KEY: &str = "cpus";

/// One line naming unavailable counters, grouped by reason; `None` when all opened.
pub fn describe_unavailable(list: &[Unavailable]) -> Option<String> {
    if list.is_empty() {
        return None;
    }
    let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
    for u in list {
        match reasons.iter_mut().find(|(r, _)| *r == u.reason) {
            Some((_, names)) => names.push(u.counter.as_str()),
            None => reasons.push((&u.reason, vec![u.counter.as_str()])),
        }
    }
    let parts: Vec<String> = reasons
        .into_iter()
        .map(|(r, names)| format!("{} ({r})", names.join(", ")))
        .collect();
    Some(format!("counters unavailable: {}", parts.join("; ")))
}

/// The unavailable counters, for records.
pub fn unavailable_names(list: &[Unavailable]) -> MissingCounters {
    MissingCounters(list.iter().map(|u| u.counter).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplexed_counts_are_scaled() {
        let a = Raw {
            count: 100,
            enabled_ns: 1000,
            running_ns: 1000,
        };
        let b = Raw {
            count: 600,
            enabled_ns: 3000,
            running_ns: 2000,
        };
        // 500 counted in 1000 ns of 2000 enabled: 1000 scaled.
        assert_eq!(b.since(&a), Some(1000));
        let never = Raw {
            count: 100,
            enabled_ns: 2000,
            running_ns: 1000,
        };
        assert_eq!(
            never.since(&a),
            None,
            "enabled but never running is unknown, not 0"
        );
        let stat = Raw {
            count: 50,
            ..Raw::default()
        };
        assert_eq!(stat.since(&Raw::default()), Some(50));
    }

    #[test]
    fn a_missing_figure_stays_missing_when_merged() {
        let mut a = Counters {
            context_switches: Some(3),
            cycles: None,
            ..Default::default()
        };
        a.merge(&Counters {
            context_switches: Some(4),
            cycles: Some(10),
            ..Default::default()
        });
        assert_eq!(a.context_switches, Some(7));
        assert_eq!(a.cycles, None);
    }

    #[test]
    fn this_thread_counts_software_events_and_names_what_is_missing() {
        let mut set = CounterSet::this_thread();
        let before = set.read();
        set.enable();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        std::thread::yield_now();
        set.disable();
        let c = set.read().since(&before);
        assert!(c.task_clock_ns.unwrap() > 0, "{c:?}");
        // Whatever is unavailable is named, and missing from the figures.
        for u in set.unavailable() {
            let v = serde_json::to_value(&c).unwrap();
            assert!(
                v[u.counter.as_str()].is_null(),
                "{} should be missing: {c:?}",
                u.counter
            );
        }
        if let Some(line) = describe_unavailable(set.unavailable()) {
            assert!(line.starts_with("counters unavailable: "), "{line}");
        }
    }

    #[test]
    fn missing_lists_parse_and_drop_retired_counters() {
        let m: MissingCounters = "cycles+cpu_busy_ns+llc_load_misses".parse().unwrap();
        assert_eq!(m.0, [CounterId::Cycles, CounterId::LlcLoadMisses]);
        assert_eq!(m.to_string(), "cycles+llc_load_misses");
        assert_eq!("".parse::<MissingCounters>().unwrap().0, []);
        assert!("cycles+bogus".parse::<MissingCounters>().is_err());
    }
}
