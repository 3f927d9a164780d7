//! The result of one client run: one versioned serde struct that every output format —
//! human, JSON, CSV, the sweep's files — is written from.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::{Backend, ClientConfig, CounterScope, Workload};
use crate::counters::{CounterId, Counters, MissingCounters, Raw, RawCounts};
use crate::cputime::{CpuSpan, OwnCpu, SystemCpu, ThreadClock};
use crate::placement::Placement;
use crate::polling::BusyPoll;
use crate::stats::{
    merge_samples, FlowStats, Latency, LatencySummary, PeerReport, Progress, RingSetup, Sample,
    Totals,
};
use crate::tcpinfo::{TcpInfo, TcpSummary};
pub use crate::vocab::WarningKind;
use crate::vocab::{count, RxMode, SetupFlag, SetupFlags, UringRecv, Verify};

/// Bumped whenever a field changes meaning or goes away (adding one does not).
///
/// 2: `cpu_ns_per_byte` is the side's own threads' user + system time per byte (it was
/// the task clock, or in core scope the pinned CPUs' busy time, which both sides shared);
/// `counters.cpu_busy_ns` went, replaced by each side's `own_cpu` and the record's
/// `system`.
pub const SCHEMA_VERSION: u32 = 2;

/// One client run, both sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub schema_version: u32,
    /// The copyperf version that measured it.
    pub copyperf_version: String,
    /// When the measured interval started, UTC, RFC 3339.
    pub started_at: String,
    /// The kernel it ran on (`uname -r`).
    pub kernel: String,
    /// The full resolved client configuration: enough to run it again.
    pub config: ClientConfig,
    /// The address the client connected to.
    pub server_addr: String,
    pub summary: Summary,
    /// Round-trip times (echo); null for stream, which has no round trip.
    pub latency: Option<LatencySummary>,
    /// The round-trip histogram in hdrhistogram's V2 serialised form, base64; null for
    /// stream (and where no round trip completed). What merges records of several
    /// hosts: percentiles are read from merged histograms, never averaged. JSON only: CSV
    /// leaves it out.
    #[serde(default)]
    pub latency_histogram: Option<String>,
    pub client: SideReport,
    /// The server's own figures, merged over this run's connections; null if it sent none.
    pub server: Option<SideReport>,
    /// The server's report for each connection, as it sent them: the raw readings
    /// `server` is computed from, which let a controller compute the server side of
    /// several hosts' connections at once (a thread or CPU that served several hosts is
    /// counted once). Absent from records written before it was kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_reports: Vec<PeerReport>,
    /// Per client thread.
    pub threads: Vec<ThreadReport>,
    /// The user stopped the run early (SIGINT/SIGTERM): the figures cover what ran.
    #[serde(default)]
    pub interrupted: bool,
    /// What makes these figures doubtful, each with what to do about it.
    #[serde(default)]
    pub warnings: Vec<Warning>,
    /// What the machine's CPUs did over the measured interval (/proc/stat, read by the
    /// client): the machine's figure, in neither side. Null where it could not be read,
    /// and in a record merged from several hosts (one machine's figure; machines do not
    /// add up).
    #[serde(default)]
    pub system: Option<SystemCpu>,
    /// In a record merged from several client hosts' records of one point
    /// ([`Record::merge`]): each host's own figures, in the order merged, so that a
    /// reader can check the merged totals against the hosts'. Absent from a one-host
    /// record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<Part>>,
    /// `--interval`: the live figures, in order, the warm-up's (`--omit`) included and
    /// marked. Absent when intervals were off. JSON only: CSV leaves it out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intervals: Vec<crate::live::Interval>,
    /// `--rate`: the schedule an open-loop echo run asked for and what it kept; `latency`
    /// then runs from each message's due time. Absent from closed-loop records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateReport>,
}

/// What an open-loop echo run (`--rate`) asked for and what it achieved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateReport {
    /// Messages a second asked for, over all connections (`--rate`).
    pub requested_per_s: f64,
    /// Each connection's share of it.
    pub per_connection_per_s: f64,
    /// Messages a second sent over the measured interval, over all connections.
    pub achieved_per_s: f64,
    /// `achieved_per_s / requested_per_s`: under 1 when the client, the path or the
    /// server could not keep up (or `depth` was too few for the round trips).
    pub achieved_fraction: f64,
    /// Messages that fell due while `depth` echoes were outstanding on their connection,
    /// and waited for one to come back (their wait is in their latency).
    pub held_back: u64,
    /// How late sends went out after their due times: the client's own delay (its
    /// thread, its socket, a wait for a place among `depth`).
    pub send_lag: Option<LatencySummary>,
    /// That lag's histogram, serialised as `latency_histogram` is (what merges it).
    /// JSON only.
    #[serde(default)]
    pub send_lag_histogram: Option<String>,
}

impl RateReport {
    /// The report of a run that asked for `requested` messages a second over
    /// `connections` and sent `achieved` a second.
    pub fn new(
        requested: f64,
        connections: usize,
        achieved: f64,
        held_back: u64,
        send_lag: &Latency,
    ) -> RateReport {
        RateReport {
            requested_per_s: requested,
            per_connection_per_s: requested / connections.max(1) as f64,
            achieved_per_s: achieved,
            achieved_fraction: if requested > 0.0 {
                achieved / requested
            } else {
                0.0
            },
            held_back,
            send_lag: send_lag.summary(),
            send_lag_histogram: (send_lag.count() > 0).then(|| send_lag.to_serialized()),
        }
    }
}

/// One client host's share of a merged record: what its own record said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// The label the host was merged under.
    pub host: String,
    pub summary: Summary,
    pub latency: Option<LatencySummary>,
    /// Where that host's client ran, as it described itself.
    pub client_host: Option<crate::host::HostInfo>,
    /// That host's client connections' `TCP_INFO` summary, gauges as its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_tcp_info: Option<TcpSummary>,
}

/// One doubt about a record, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    pub kind: WarningKind,
    pub text: String,
}

/// A stretch without a completed message longer than this share of the run is a stall.
pub const STALL_FRACTION: f64 = 0.1;
/// A run whose message count is below this share of what its own median rate predicts
/// ran far below itself.
pub const BELOW_RATE_FRACTION: f64 = 0.7;

/// What the client noted about the run beyond its counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunNotes {
    pub interrupted: bool,
    /// Planned interval (with a count, its cap).
    pub planned: Duration,
    /// The messages the client was to send in all (`--messages`, `-n`), if counted.
    pub count: Option<u64>,
    /// Fallbacks taken, in words.
    pub fallbacks: Vec<String>,
    /// What an interrupted run could not collect.
    pub incomplete: Vec<String>,
    /// `--rate`: the time between two of a connection's sends. A connection is quiet
    /// that long by design, and its counts follow the schedule rather than a rate of its
    /// own.
    pub pace: Option<Duration>,
}

/// The warnings a run's figures deserve: a pure function of what was measured.
pub fn warnings(
    notes: &RunNotes,
    duration: Duration,
    progress: &Progress,
    verify_errors: u64,
    first_verify_error: Option<&str>,
) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut warn = |kind, text: String| out.push(Warning { kind, text });
    let secs = duration.as_secs_f64();
    if notes.interrupted {
        let planned = match notes.count {
            Some(n) => count(n, "message", "messages"),
            None => format!("{:.2} s", notes.planned.as_secs_f64()),
        };
        warn(
            WarningKind::Interrupted,
            format!(
                "interrupted after {secs:.2} s of the planned {planned}: the figures cover only what ran"
            ),
        );
        for missing in &notes.incomplete {
            warn(
                WarningKind::Interrupted,
                format!("not collected after the interruption: {missing}"),
            );
        }
    }
    let gap = progress.longest_gap.as_secs_f64();
    // Under `--rate`, only a silence of more than two of the schedule's periods.
    let quiet = notes.pace.map_or(0.0, |p| 2.0 * p.as_secs_f64());
    if secs > 0.0 && gap > STALL_FRACTION * secs && gap > quiet {
        warn(
            WarningKind::Stall,
            format!(
                "no message completed for {gap:.3} s of this {secs:.3} s run ({:.0}%): a stall \
                 (a busy or descheduled CPU, another tenant, swapping) distorts every figure; \
                 rerun it, longer or on a quieter machine",
                100.0 * gap / secs
            ),
        );
    }
    let total = progress.total();
    // Under `--rate` the schedule sets the counts: the rate report's achieved fraction
    // says whether the run kept up.
    let predicted = progress
        .predicted(duration)
        .filter(|_| notes.pace.is_none());
    if let Some(predicted) = predicted {
        if (total as f64) < BELOW_RATE_FRACTION * predicted {
            warn(
                WarningKind::BelowOwnRate,
                format!(
                    "{total} messages completed where the run's own median rate predicts {predicted:.0}: \
                     it slowed down for part of the run; rerun it before trusting the averages"
                ),
            );
        }
    }
    if verify_errors > 0 {
        warn(
            WarningKind::VerifyErrors,
            format!(
                "{verify_errors} received message(s) failed verification (first: {}): the data \
                 was damaged or misdelivered; the figures do not describe a correct transfer",
                first_verify_error.unwrap_or("not recorded")
            ),
        );
    }
    for f in &notes.fallbacks {
        warn(WarningKind::Fallback, f.clone());
    }
    out
}

/// A counted run (`--messages`, `-n`) that its time cap ended before the client sent the
/// count: `sent` is what it sent.
pub fn count_warning(notes: &RunNotes, sent: u64) -> Option<Warning> {
    let planned = notes.count.filter(|&n| sent < n && !notes.interrupted)?;
    Some(Warning {
        kind: WarningKind::Interrupted,
        text: format!(
            "the time cap of {} s ended the run after {} of the {planned} asked for: the \
             figures cover only what ran; give the run more time (a --spec's duration) or \
             ask for fewer",
            notes.planned.as_secs_f64(),
            count(sent, "message", "messages"),
        ),
    })
}

fn ms(ns: u64) -> String {
    format!("{:.1} ms", ns as f64 / 1e6)
}

/// The warnings a run's CPU figures deserve, a pure function of them: a figure above what
/// the CPUs could give is a counting error, never a cost.
///
/// Steal time is not among them: it is recorded (`system`) and reported, not warned
/// about. On the development VM it follows the workload, not other tenants — in the
/// reference sweep a median 5.1% of the CPUs' time in 1-thread echo runs (42% in one)
/// against 1.0% at 4 threads and 0.75% at 8, because every
/// wake-up of an idle vCPU waits on the host — so a warning, which keeps a run out of the
/// report's conclusions, would have removed the 1-thread points as a class.
pub fn cpu_warnings(
    client: &SideReport,
    server: Option<&SideReport>,
    system: Option<&SystemCpu>,
) -> Vec<Warning> {
    let mut out = Vec::new();
    let sides = [("client", Some(client)), ("server", server)];
    for (who, own) in sides
        .into_iter()
        .filter_map(|(who, side)| Some((who, side?.own_cpu?)))
    {
        let Some(capacity) = own.capacity_ns() else {
            continue;
        };
        if own.total_ns() > capacity + own.slack_ns() {
            out.push(Warning {
                kind: WarningKind::ImpossibleCpu,
                text: format!(
                    "the {who}'s own CPU time, {} (user {} + system {}), is more than its {} \
                     thread(s) could use: {:.3} s × {} CPU(s) = {} (+{} for the kernel's \
                     accounting lag): the figure is wrong, not a cost; do not trust this \
                     run's CPU figures and report it",
                    ms(own.total_ns()),
                    ms(own.user_ns),
                    ms(own.system_ns),
                    own.threads,
                    own.interval_s,
                    own.cpus.unwrap_or(0),
                    ms(capacity),
                    ms(own.slack_ns()),
                ),
            });
        }
    }
    let Some(sys) = system else {
        return out;
    };
    if sys.total.busy_ns > sys.capacity_ns + sys.busy_slack_ns() {
        out.push(Warning {
            kind: WarningKind::ImpossibleCpu,
            text: format!(
                "the machine's busy time, {}, is more than its {} CPU(s) could give: \
                 {:.3} s × {} = {} (+{} for /proc/stat's tick rounding): the figure is \
                 wrong, not a cost; do not trust this run's CPU figures and report it",
                ms(sys.total.busy_ns),
                sys.per_cpu.len(),
                sys.interval_s,
                sys.per_cpu.len(),
                ms(sys.capacity_ns),
                ms(sys.busy_slack_ns()),
            ),
        });
    }
    out
}

/// The headline figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub threads: usize,
    pub connections: usize,
    /// The measured interval: from the common start to the last thread's end, seconds.
    pub duration_s: f64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Messages the client sent (in echo, each also came back); in a stream, the
    /// messages the client sent and received (reverse: received; bidir: both ways).
    pub messages: u64,
    /// (bytes sent + bytes received) × 8 / duration, in Gbit/s (10^9): the seed's figure.
    /// In echo every byte crosses twice, so it is twice what flows each way; in a bidir
    /// stream it is both directions together.
    pub throughput_gbps: f64,
    /// The larger of the client's bytes sent and bytes received × 8 / duration, in Gbit/s:
    /// what flows one way, the figure a peer tool (iperf3, a NIC counter) would print —
    /// what the client sent in echo and a forward stream, what it received in reverse,
    /// the busier direction in bidir. Equal to `throughput_gbps` in a one-way stream.
    /// Absent from records written before it was added.
    #[serde(default)]
    pub one_way_gbps: Option<f64>,
    /// `messages` per second.
    pub msgs_per_s: f64,
    /// Verification errors on both sides.
    pub verify_errors: u64,
}

impl Summary {
    /// Fills the rates from the counts and `duration_s`: the one place their formulas
    /// live, for a run just measured and for one merged from several hosts.
    pub(crate) fn with_rates(self) -> Summary {
        let secs = self.duration_s;
        let per_s = |n: f64| if secs > 0.0 { n / secs } else { 0.0 };
        Summary {
            throughput_gbps: per_s((self.bytes_sent + self.bytes_received) as f64 * 8.0) / 1e9,
            one_way_gbps: Some(per_s(self.bytes_sent.max(self.bytes_received) as f64 * 8.0) / 1e9),
            msgs_per_s: per_s(self.messages as f64),
            ..self
        }
    }
}

/// One side's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideReport {
    pub backend: Backend,
    pub stats: FlowStats,
    /// This side's measured interval, seconds (longest over its connections).
    pub duration_s: f64,
    /// Zero-copy completions the kernel marked copied, 0..1; null without zero-copy sends.
    pub zc_copied_fraction: Option<f64>,
    /// Syscalls or io_uring_enter calls per message moved (sent + received).
    pub kernel_calls_per_msg: Option<f64>,
    /// Mean completions per reaping wake-up (uring only).
    pub cqes_per_reap: Option<f64>,
    /// How the rings were set up (uring only).
    pub uring: Option<RingSetup>,
    /// Where kernel counters were counted: thread, core or off.
    pub counter_scope: CounterScope,
    /// Kernel counters over the measured interval; null when counting was off.
    pub counters: Option<Counters>,
    /// Counters this machine could not provide, `+`-joined (empty: none missing); null
    /// when counting was off.
    pub counters_missing: Option<MissingCounters>,
    /// Cycles per byte moved (sent + received); null without a cycles counter.
    pub cycles_per_byte: Option<f64>,
    /// Instructions per byte moved; null without an instructions counter.
    pub instructions_per_byte: Option<f64>,
    /// The side's own worker threads' CPU time over their measured intervals; null where
    /// the side did not measure it (a server that predates it).
    #[serde(default)]
    pub own_cpu: Option<OwnCpu>,
    /// CPU nanoseconds per byte moved: the side's own threads' user + system time
    /// (`own_cpu`) over the bytes it sent and received.
    pub cpu_ns_per_byte: Option<f64>,
    /// Context switches per message moved.
    pub context_switches_per_msg: Option<f64>,
    /// The CPUs this side's threads were pinned to, comma-separated; null when unpinned.
    pub cpus: Option<String>,
    /// Where each thread ran.
    pub placement: Vec<Placement>,
    /// The host and interface this side ran on, as it described them itself; absent in
    /// records from before it was recorded.
    #[serde(default)]
    pub host: Option<crate::host::HostInfo>,
    /// How this side received (`--rx`: copy, discard, zerocopy); null where it received
    /// nothing (a stream's client) or in records from before it was recorded.
    #[serde(default)]
    pub rx: Option<RxMode>,
    /// Whether received content was checked: false under `--rx discard` (the kernel drops
    /// the bytes: only byte counts, and the message boundaries they imply, are checked)
    /// and under `--verify off`; null where the side received nothing.
    #[serde(default)]
    pub rx_content_checked: Option<bool>,
    /// `--rx zerocopy`: the share of received bytes the kernel mapped rather than copied
    /// (`stats.rx.mapped` over mapped + copied), 0..1; null under the other paths.
    #[serde(default)]
    pub rx_mapped_fraction: Option<f64>,
    /// The flags every message send of this side carried, `|`-joined
    /// (`MSG_NOSIGNAL|MSG_ZEROCOPY|MSG_EOR`): settings copyperf chose, recorded so that a
    /// reader can see them (zc-fixed's MSG_MORE on some sends is counted in
    /// `stats.io.more_sends`). Null where the side's role sends no messages (a forward
    /// stream's server, a reverse stream's client), where it sends by sendfile or splice,
    /// in records from before it was recorded and for servers that predate it, and in a
    /// merged record whose parts disagree.
    #[serde(default)]
    pub send_flags: Option<String>,
    /// Busy polling on this side (`--busy-poll`): SO_BUSY_POLL on its sockets (syscall) or
    /// NAPI on its rings (uring), as the kernel granted it, with the socket's NAPI id after
    /// the run; null without.
    #[serde(default)]
    pub busy_poll: Option<BusyPoll>,
    /// The side's connections' `TCP_INFO` at the end of the run (see [`TcpSummary`]):
    /// counters summed, gauges' mean and range; null where no connection was read (and in
    /// records from before it was).
    #[serde(default)]
    pub tcp_info: Option<TcpSummary>,
}

/// What a side counted beyond its flows, and where its threads ran.
#[derive(Debug, Clone, PartialEq)]
pub struct SideCounts {
    pub scope: CounterScope,
    pub counters: Option<Counters>,
    pub missing: Option<MissingCounters>,
    pub placement: Vec<Placement>,
    /// Its worker threads' own CPU time, summed.
    pub own_cpu: Option<CpuSpan>,
    /// How many CPUs the side's process may run on: where an unpinned thread could go.
    pub cpus_available: Option<usize>,
}

impl SideReport {
    pub fn new(
        backend: Backend,
        stats: FlowStats,
        duration: Duration,
        uring: Option<RingSetup>,
        counts: SideCounts,
    ) -> SideReport {
        let cpus = pinned_cpus(&counts.placement);
        let pinned = counts.placement.iter().all(|p| p.cpu.is_some());
        let runnable = if pinned && !cpus.is_empty() {
            Some(cpus.len())
        } else {
            counts.cpus_available
        };
        let mut side = SideReport {
            backend,
            uring,
            zc_copied_fraction: None,
            kernel_calls_per_msg: None,
            cqes_per_reap: None,
            counter_scope: counts.scope,
            cycles_per_byte: None,
            instructions_per_byte: None,
            own_cpu: counts.own_cpu.map(|span| span.own(runnable)),
            cpu_ns_per_byte: None,
            context_switches_per_msg: None,
            counters: counts.counters,
            counters_missing: counts.missing,
            cpus: (!cpus.is_empty()).then(|| crate::placement::join(&cpus)),
            placement: counts.placement,
            host: None,
            rx: None,
            rx_content_checked: None,
            rx_mapped_fraction: None,
            send_flags: None,
            busy_poll: None,
            tcp_info: None,
            stats,
            duration_s: duration.as_secs_f64(),
        };
        side.derive();
        side
    }

    /// Computes the figures derived from this side's counts — the zero-copy copied
    /// fraction, calls per message, completions per reap, and counters and own CPU time
    /// per byte or per message — from `stats`, `counters` and `own_cpu`: the one place
    /// their formulas live, for a side just measured and for one merged from several.
    pub(crate) fn derive(&mut self) {
        let stats = &self.stats;
        let msgs = (stats.msgs_sent + stats.msgs_received) as f64;
        let bytes = (stats.bytes_sent + stats.bytes_received) as f64;
        let per = |n: Option<u64>, d: f64| n.filter(|_| d > 0.0).map(|n| n as f64 / d);
        let c = self.counters.clone().unwrap_or_default();
        self.zc_copied_fraction = stats.zc.copied_fraction();
        self.kernel_calls_per_msg = per(Some(stats.io.kernel_calls()), msgs);
        self.cqes_per_reap = stats.io.cqes_per_reap();
        self.cycles_per_byte = per(c.cycles, bytes);
        self.instructions_per_byte = per(c.instructions, bytes);
        self.cpu_ns_per_byte = per(self.own_cpu.map(|o| o.total_ns()), bytes);
        self.context_switches_per_msg = per(c.context_switches, msgs);
        self.rx_mapped_fraction = (self.rx == Some(RxMode::Zerocopy))
            .then(|| stats.rx.mapped_fraction())
            .flatten();
    }

    /// Records how this side received (`None`: it did not) and what that let `verify`
    /// check.
    pub(crate) fn set_rx(&mut self, rx: Option<RxMode>, verify: Verify) {
        self.rx = rx;
        self.rx_content_checked = rx.map(|m| m != RxMode::Discard && verify != Verify::Off);
        self.derive();
    }
}

/// The distinct CPUs `placement` pins threads to, in order.
pub(crate) fn pinned_cpus(placement: &[Placement]) -> Vec<usize> {
    let mut cpus: Vec<usize> = placement.iter().filter_map(|p| p.cpu).collect();
    cpus.sort_unstable();
    cpus.dedup();
    cpus
}

/// One client thread's share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadReport {
    pub thread: usize,
    pub connections: usize,
    pub duration_s: f64,
    pub stats: FlowStats,
    /// Each of the thread's connections' `TCP_INFO` at the end of the run, in connection
    /// order (JSON only); absent from records from before it was read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp_info: Vec<TcpInfo>,
}

/// What one client thread brings back.
#[derive(Debug, Clone, Default)]
pub struct ThreadResult {
    pub thread: usize,
    pub connections: usize,
    pub duration: Duration,
    pub stats: FlowStats,
    pub latency: Latency,
    /// When this thread's messages completed.
    pub progress: Progress,
    /// The server's report for each of this thread's connections.
    pub server: Vec<PeerReport>,
    /// This thread's ring setup (uring).
    pub ring: Option<RingSetup>,
    /// This thread's counters (thread scope).
    pub counters: Option<Counters>,
    /// This thread's own CPU time over its measured interval.
    pub own_cpu: Option<CpuSpan>,
    /// Where this thread ran.
    pub cpu: Option<usize>,
    /// Interrupted before everything was collected: what is missing, and why.
    pub incomplete: Option<String>,
    /// Busy polling as granted on this thread's sockets or ring (`--busy-poll`).
    pub busy_poll: Option<BusyPoll>,
    /// Each connection's `TCP_INFO`, read before the server's figures were asked for.
    pub tcp_info: Vec<TcpInfo>,
    /// `--rate`: how late this thread's sends went out after their due times.
    pub send_lag: Latency,
    /// `--rate`: messages that waited for a place among `depth`.
    pub held_back: u64,
}

impl ThreadResult {
    /// Adds one connection's figures: the one merge of a thread's connections, whatever
    /// the engine.
    pub(crate) fn absorb(&mut self, flow: &crate::workload::Flow) {
        self.stats += &flow.stats;
        self.latency += &flow.latency;
        self.send_lag += &flow.send_lag;
        self.held_back += flow.held_back;
        self.progress += &flow.progress;
        self.duration = self.duration.max(flow.duration());
    }
}

impl Record {
    /// Assembles the record of a finished run. `client` holds the client's counters as
    /// counted (per thread, already merged, or per CPU); `system` the machine's figure,
    /// whose sides' CPUs are filled in here.
    pub fn new(
        config: ClientConfig,
        server_addr: String,
        started: SystemTime,
        threads: &[ThreadResult],
        client: SideCounts,
        notes: RunNotes,
        system: Option<SystemCpu>,
    ) -> Record {
        let mut stats = FlowStats::default();
        let mut latency = Latency::default();
        let mut send_lag = Latency::default();
        let mut progress = Progress::default();
        let mut duration = Duration::ZERO;
        for t in threads {
            stats += &t.stats;
            latency += &t.latency;
            send_lag += &t.send_lag;
            progress += &t.progress;
            duration = duration.max(t.duration);
        }
        let reports: Vec<&PeerReport> = threads.iter().flat_map(|t| &t.server).collect();
        let server = server_side(&reports);
        let summary = Summary {
            threads: config.threads,
            connections: config.total_connections(),
            duration_s: duration.as_secs_f64(),
            bytes_sent: stats.bytes_sent,
            bytes_received: stats.bytes_received,
            messages: match config.workload {
                Workload::Echo => stats.msgs_sent,
                Workload::Stream => stats.msgs_sent + stats.msgs_received,
            },
            throughput_gbps: 0.0,
            one_way_gbps: None,
            msgs_per_s: 0.0,
            verify_errors: stats.verify_errors
                + server.as_ref().map_or(0, |s| s.stats.verify_errors),
        }
        .with_rates();
        let mut notes = notes;
        if let Some(ring) = threads.iter().find_map(|t| t.ring.as_ref()) {
            // Beside SQPOLL, DEFER_TASKRUN is never asked for (the kernel refuses the pair).
            if !ring.flags.contains(SetupFlag::DeferTaskrun)
                && !ring.flags.contains(SetupFlag::SqPoll)
            {
                notes.fallbacks.push(format!(
                    "the kernel refused IORING_SETUP_DEFER_TASKRUN; the rings run with {}",
                    ring.flags
                ));
            }
        }
        let sent = stats.msgs_sent;
        let first_error = stats.first_verify_error.clone().or_else(|| {
            server
                .as_ref()
                .and_then(|s| s.stats.first_verify_error.clone())
        });
        let mut client = SideReport::new(
            config.backend,
            stats,
            duration,
            threads.iter().find_map(|t| t.ring.clone()),
            client,
        );
        // The client receives in echo, and in a stream the server sends.
        let client_receives = config.workload == Workload::Echo
            || (config.workload == Workload::Stream && config.direction.server_sends());
        client.set_rx(client_receives.then_some(config.rx), config.verify);
        let client_sends = config.workload == Workload::Echo || config.direction.client_sends();
        client.send_flags = client_sends
            .then(|| config.mode.send_flags(config.backend))
            .flatten();
        let mut server = server;
        if let Some(side) = server.as_mut() {
            side.set_rx(reports.iter().find_map(|p| p.rx), config.verify);
        }
        client.busy_poll = threads.iter().find_map(|t| t.busy_poll.clone());
        let client_tcp: Vec<TcpInfo> = threads.iter().flat_map(|t| t.tcp_info.clone()).collect();
        client.tcp_info = TcpSummary::of(&client_tcp);
        let system = system.map(|s| SystemCpu {
            client_cpus: client.cpus.clone(),
            server_cpus: server.as_ref().and_then(|s| s.cpus.clone()),
            ..s
        });
        let mut warnings = warnings(
            &notes,
            duration,
            &progress,
            summary.verify_errors,
            first_error.as_deref(),
        );
        warnings.extend(count_warning(&notes, sent));
        warnings.extend(cpu_warnings(&client, server.as_ref(), system.as_ref()));
        for (who, side) in [("client", Some(&client)), ("server", server.as_ref())] {
            if let Some(b) = side.and_then(|s| s.busy_poll.as_ref()) {
                warnings.extend(crate::polling::warnings(who, b));
            }
        }
        Record {
            schema_version: SCHEMA_VERSION,
            copyperf_version: env!("CARGO_PKG_VERSION").into(),
            started_at: rfc3339(started),
            kernel: crate::error::kernel_release(),
            server_addr,
            summary,
            latency: latency.summary(),
            latency_histogram: (latency.count() > 0).then(|| latency.to_serialized()),
            client,
            server,
            server_reports: reports.iter().map(|&r| r.clone()).collect(),
            threads: threads
                .iter()
                .map(|t| ThreadReport {
                    thread: t.thread,
                    connections: t.connections,
                    duration_s: t.duration.as_secs_f64(),
                    stats: t.stats.clone(),
                    tcp_info: t.tcp_info.clone(),
                })
                .collect(),
            interrupted: notes.interrupted,
            warnings,
            system,
            parts: None,
            intervals: Vec::new(),
            rate: config.rate.map(|requested| {
                let held_back = threads.iter().map(|t| t.held_back).sum();
                RateReport::new(
                    requested,
                    config.total_connections(),
                    summary.msgs_per_s,
                    held_back,
                    &send_lag,
                )
            }),
            config,
        }
    }

    /// Under `--rx zerocopy`, the share of received bytes the receiving side's kernel
    /// mapped: the server's (it receives in every workload), else the client's.
    pub fn rx_mapped_fraction(&self) -> Option<f64> {
        self.server
            .as_ref()
            .and_then(|s| s.rx_mapped_fraction)
            .or(self.client.rx_mapped_fraction)
    }

    /// Each client host's own description: every part's for a merged (fan-in) record,
    /// else the one client's.
    pub fn client_hosts(&self) -> Vec<&crate::host::HostInfo> {
        match &self.parts {
            Some(parts) => parts
                .iter()
                .filter_map(|p| p.client_host.as_ref())
                .collect(),
            None => self.client.host.iter().collect(),
        }
    }

    /// A record with every optional field present, for tests and for deriving the CSV
    /// columns from the struct definitions.
    pub fn example() -> Record {
        // Records hold validated configs, with every automatic choice resolved.
        let config = ClientConfig {
            nodelay: Some(true),
            rx: RxMode::Zerocopy,
            sqpoll: Some(crate::polling::SqPoll { cpu: Some(1) }),
            busy_poll_us: Some(50),
            rate: Some(1.0),
            // A valid config gives one of the two at most; both here, so that the CSV has a
            // column for each.
            messages: Some(1000),
            bytes: Some(4 << 20),
            ..ClientConfig::default()
                .validate()
                .expect("the default config is valid")
                .into_inner()
        };
        let mut stats = FlowStats {
            bytes_sent: 4096,
            bytes_received: 4096,
            msgs_sent: 1,
            msgs_received: 1,
            first_verify_error: Some("none".into()),
            ..Default::default()
        };
        stats.zc.sends = 1;
        stats.zc.completions = 1;
        stats.io.syscalls = 2;
        stats.io.reaps = 1;
        stats.rx.mapped = 3072;
        stats.rx.copied = 1024;
        stats.by_ref.pipe_bytes = Some(65536);
        stats.by_ref.receipt_every = Some(32);
        let mut latency = Latency::default();
        latency.record(Duration::from_micros(20));
        let raw = |count| Raw {
            count,
            enabled_ns: count,
            running_ns: count,
        };
        let every = |n| RawCounts {
            cycles: Some(raw(n)),
            instructions: Some(raw(n)),
            l1d_load_misses: Some(raw(n)),
            llc_load_misses: Some(raw(n)),
            context_switches: Some(raw(n)),
            cpu_migrations: Some(raw(n)),
            page_faults: Some(raw(n)),
            task_clock_ns: Some(raw(n)),
        };
        // Each thread used 3 ms of its 1 s: 1 ms user, 2 ms system.
        let clock = |s: u64| ThreadClock {
            user_ns: s * 1_000_000,
            system_ns: s * 2_000_000,
            at_ns: s * 1_000_000_000,
            sqpoll: Some(crate::cputime::SqClock {
                ns: s * 500_000,
                threads: 1,
            }),
        };
        // Named missing (as on a VM without a PMU) while its figure is kept, so that every
        // CSV column of the example has a value.
        let missing = || Some(MissingCounters(vec![CounterId::Cycles]));
        let counters = every(4096).since(&every(0));
        let placement = |thread: &str| Placement {
            thread: thread.into(),
            cpu: Some(0),
        };
        let thread = ThreadResult {
            thread: 0,
            connections: 1,
            duration: Duration::from_secs(1),
            stats: stats.clone(),
            latency,
            progress: Progress::default(),
            server: vec![PeerReport {
                stats,
                duration_s: 1.0,
                ring: Some(example_ring()),
                samples: vec![Sample {
                    key: "worker 0".into(),
                    start: Totals {
                        counters: Some(every(0)),
                        cpu: Some(clock(0)),
                        ..Default::default()
                    },
                    end: Totals {
                        counters: Some(every(4096)),
                        cpu: Some(clock(1)),
                        ..Default::default()
                    },
                }],
                counter_scope: CounterScope::Thread,
                counters_missing: missing(),
                placement: Some(placement("worker 0")),
                cpus_available: Some(2),
                rx: Some(RxMode::Zerocopy),
                send_flags: Some("MSG_NOSIGNAL".into()),
                busy_poll: Some(example_busy_poll()),
                tcp_info: Some(TcpInfo::example()),
                ..Default::default()
            }],
            ring: Some(example_ring()),
            counters: Some(counters.clone()),
            own_cpu: Some(clock(1).since(&clock(0))),
            cpu: Some(0),
            incomplete: None,
            busy_poll: Some(example_busy_poll()),
            tcp_info: vec![TcpInfo::example()],
            send_lag: {
                let mut lag = Latency::default();
                lag.record(Duration::from_micros(3));
                lag
            },
            held_back: 0,
        };
        let client = SideCounts {
            scope: CounterScope::Thread,
            counters: Some(counters),
            missing: missing(),
            placement: vec![placement("client 0")],
            own_cpu: Some(clock(1).since(&clock(0))),
            cpus_available: Some(2),
        };
        let mut r = Record::new(
            config,
            "127.0.0.1:8080".into(),
            UNIX_EPOCH,
            &[thread],
            client,
            RunNotes {
                planned: Duration::from_secs(1),
                count: None,
                interrupted: false,
                fallbacks: vec!["an example fallback".into()],
                incomplete: Vec::new(),
                pace: None,
            },
            Some(example_system()),
        );
        r.client.host = Some(crate::host::HostInfo::example());
        if let Some(server) = r.server.as_mut() {
            server.host = Some(crate::host::HostInfo::example());
        }
        r
    }
}

/// Two CPUs over 1 s: CPU 0 (both sides' threads) 40% busy, a tenth of that softirq, a
/// tick of irq and one of steal; CPU 1 idle.
fn example_system() -> SystemCpu {
    use crate::cputime::{CpuTicks, StatReading};
    let t0 = std::time::Instant::now();
    let reading = |at, ticks: CpuTicks| StatReading {
        before: at,
        after: at,
        cpus: vec![
            (0, ticks),
            (
                1,
                CpuTicks {
                    idle: ticks.idle,
                    ..CpuTicks::default()
                },
            ),
        ],
    };
    let start = reading(t0, CpuTicks::default());
    let end = reading(
        t0 + Duration::from_secs(1),
        CpuTicks {
            user: 15,
            system: 20,
            irq: 1,
            softirq: 4,
            idle: 59,
            steal: 1,
            ..CpuTicks::default()
        },
    );
    SystemCpu::between(&start, &end, 10_000_000)
}

fn example_ring() -> RingSetup {
    RingSetup {
        flags: SetupFlags(vec![
            SetupFlag::SqPoll,
            SetupFlag::SingleIssuer,
            SetupFlag::SubmitAll,
            SetupFlag::SqAff,
        ]),
        recv: UringRecv::Single,
        cqe_skip: true,
        poll_first: true,
        sqpoll: Some(crate::polling::SqPollGrant {
            cpu: Some(1),
            idle_ms: crate::polling::SQ_THREAD_IDLE_MS,
        }),
        busy_poll: Some(BusyPoll {
            via: "IORING_REGISTER_NAPI".into(),
            prefer: true,
            ..example_busy_poll()
        }),
        ..Default::default()
    }
}

fn example_busy_poll() -> BusyPoll {
    BusyPoll {
        via: "SO_BUSY_POLL".into(),
        requested_us: 50,
        granted_us: 50,
        prefer: false,
        prefer_refused: Some("SO_PREFER_BUSY_POLL: EPERM (Operation not permitted)".into()),
        napi_id: Some(0),
    }
}

/// The server's side from its per-connection reports: counts summed, each thread's calls
/// and each thread's or CPU's counters taken once over the run.
pub(crate) fn server_side(reports: &[&PeerReport]) -> Option<SideReport> {
    let first = reports.first()?;
    let mut stats = FlowStats::default();
    let mut secs: f64 = 0.0;
    let mut placement: Vec<Placement> = Vec::new();
    for p in reports {
        stats += &p.stats;
        secs = secs.max(p.duration_s);
        if let Some(pl) = &p.placement {
            if !placement.iter().any(|x| x.thread == pl.thread) {
                placement.push(pl.clone());
            }
        }
    }
    let samples = merge_samples(reports.iter().flat_map(|p| &p.samples));
    let mut counters: Option<Counters> = None;
    for s in &samples {
        stats.io += s.io();
        if let Some(c) = s.counters() {
            match counters.as_mut() {
                Some(total) => total.merge(&c),
                None => counters = Some(c),
            }
        }
    }
    let counts = SideCounts {
        scope: first.counter_scope,
        counters: counters.filter(|_| first.counter_scope != CounterScope::Off),
        missing: first.counters_missing.clone(),
        placement,
        own_cpu: CpuSpan::sum(samples.iter().filter_map(Sample::cpu)),
        cpus_available: first.cpus_available,
    };
    let mut side = SideReport::new(
        first.backend,
        stats,
        Duration::from_secs_f64(secs),
        first.ring.clone(),
        counts,
    );
    side.host = reports.iter().find_map(|p| p.host.clone());
    side.busy_poll = reports.iter().find_map(|p| p.busy_poll.clone());
    side.send_flags = agreed(reports.iter().map(|p| p.send_flags.as_ref())).cloned();
    // Null unless every connection's report carries one: a summary of some would pass
    // for all.
    side.tcp_info = reports
        .iter()
        .map(|p| p.tcp_info)
        .collect::<Option<Vec<TcpInfo>>>()
        .and_then(|all| TcpSummary::of(&all));
    Some(side)
}

/// The one value every item gives; `None` if any gives none or two disagree (a value some
/// gave would pass for all).
pub(crate) fn agreed<T: PartialEq + Clone>(
    mut items: impl Iterator<Item = Option<T>>,
) -> Option<T> {
    let first = items.next()??;
    items.all(|x| x.as_ref() == Some(&first)).then_some(first)
}

/// Formats a time as RFC 3339 UTC, to the second.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_agreed_only_when_every_item_gives_it() {
        assert_eq!(agreed([Some(1), Some(1)].into_iter()), Some(1));
        assert_eq!(agreed([Some(1), Some(2)].into_iter()), None);
        assert_eq!(agreed([Some(1), None].into_iter()), None);
        assert_eq!(agreed([None, Some(1)].into_iter()), None);
        assert_eq!(agreed(std::iter::empty::<Option<u8>>()), None);
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_771_459_200 + 3661);
        assert_eq!(rfc3339(t), "2026-02-19T01:01:01Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }

    /// A schedule of 40 messages over 4 s, one every 100 ms: its quiet stretches are the
    /// schedule's, its slices hold 0 or 1 — no stall, no slowdown. The same progress in a
    /// closed loop is both.
    #[test]
    fn a_slow_schedule_is_neither_a_stall_nor_a_slowdown() {
        let t0 = std::time::Instant::now();
        let run = Duration::from_secs(4);
        let mut p = Progress::default();
        p.begin(t0, run);
        for k in 1..=40 {
            p.record(t0 + Duration::from_millis(100 * k));
        }
        // Then a silence of 500 ms: a stall even under the schedule.
        let mut stalled = p.clone();
        stalled.finish(t0 + run + Duration::from_millis(500));
        p.finish(t0 + run);
        let kinds = |p: &Progress, pace: Option<Duration>| -> Vec<WarningKind> {
            let notes = RunNotes {
                pace,
                ..Default::default()
            };
            warnings(&notes, run, p, 0, None)
                .into_iter()
                .map(|w| w.kind)
                .collect()
        };
        let pace = Some(Duration::from_millis(100));
        assert_eq!(kinds(&p, pace), []);
        assert_eq!(kinds(&stalled, pace), [WarningKind::Stall]);
        assert_eq!(kinds(&p, None), [WarningKind::BelowOwnRate]);
    }

    #[test]
    fn a_count_cut_short_is_warned_of_and_an_interruption_names_the_count() {
        let notes = RunNotes {
            planned: Duration::from_secs(5),
            count: Some(1000),
            ..RunNotes::default()
        };
        assert_eq!(count_warning(&notes, 1000), None, "the count was reached");
        let w = count_warning(&notes, 999).expect("cut short");
        assert_eq!(w.kind, WarningKind::Interrupted);
        assert!(
            w.text.starts_with(
                "the time cap of 5 s ended the run after 999 messages of the 1000 asked for"
            ),
            "{}",
            w.text
        );
        assert_eq!(count_warning(&RunNotes::default(), 0), None, "no count");
        let stopped = RunNotes {
            interrupted: true,
            ..notes
        };
        assert_eq!(
            count_warning(&stopped, 10),
            None,
            "the signal's warning says it"
        );
        let w = warnings(
            &stopped,
            Duration::from_secs(1),
            &Progress::default(),
            0,
            None,
        );
        assert!(
            w[0].text
                .starts_with("interrupted after 1.00 s of the planned 1000 messages"),
            "{}",
            w[0].text
        );
    }

    #[test]
    fn summary_uses_the_seeds_throughput() {
        let r = Record::example();
        // 8192 bytes both ways in 1 s.
        assert!((r.summary.throughput_gbps - 8192.0 * 8.0 / 1e9).abs() < 1e-12);
        assert_eq!(r.summary.messages, 1);
        assert_eq!(r.client.kernel_calls_per_msg, Some(1.0));
        assert_eq!(r.client.zc_copied_fraction, Some(0.0));
        assert!(r.server.is_some() && r.latency.is_some());
    }

    #[test]
    fn the_record_carries_its_latency_histogram() {
        let r = Record::example();
        let text = r
            .latency_histogram
            .as_deref()
            .expect("echo with a round trip");
        let hist = Latency::from_serialized(text).unwrap();
        assert_eq!(hist.summary(), r.latency);
        assert_eq!(hist.count(), 1);
        // No round trip, no histogram: an empty one would say "measured, none".
        let example = Record::example();
        let r = Record::new(
            example.config,
            example.server_addr,
            UNIX_EPOCH,
            &[ThreadResult::default()],
            SideCounts {
                scope: CounterScope::Off,
                counters: None,
                missing: None,
                placement: Vec::new(),
                own_cpu: None,
                cpus_available: None,
            },
            RunNotes::default(),
            None,
        );
        assert_eq!((r.latency, r.latency_histogram), (None, None));
    }

    #[test]
    fn records_round_trip_through_json() {
        let r = Record::example();
        let back: Record = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    /// A schema 1 record as the sweep wrote it (results/2026-11-24-2117_vm): core scope,
    /// `cpu_busy_ns` in both sides' counters, no own CPU time, no system figure.
    const SCHEMA_1: &str = r#"{"schema_version":1,"copyperf_version":"0.1.0","started_at":"2026-11-24T21:17:09Z","kernel":"6.18.44-fc-v669","config":{"host":"10.213.48.1","port":5201,"backend":"syscall","mode":"one-copy","workload":"echo","size":1024,"threads":1,"conns":1,"depth":1,"duration":3.0,"verify":"sample","connect_timeout":5.0,"io_timeout":10.0,"uring_recv":"single","cpus":"auto","counters":"core","nodelay":true},"server_addr":"10.213.48.1:5201","summary":{"threads":1,"connections":1,"duration_s":3.000060937,"bytes_sent":51142656,"bytes_received":51142656,"messages":49944,"throughput_gbps":0.27275529170359647,"msgs_per_s":16647.66184714334,"verify_errors":0},"latency":{"count":49944,"mean_us":59.89197645362816,"p50_us":55.327,"p90_us":73.983,"p99_us":104.511,"p999_us":185.727,"max_us":4114.431},"client":{"backend":"syscall","stats":{"bytes_sent":51142656,"bytes_received":51142656,"msgs_sent":49944,"msgs_received":49944,"verify_errors":0,"first_verify_error":null,"zc":{"sends":0,"completions":0,"copied":0},"io":{"syscalls":99888,"enters":0,"sqes":0,"cqes":0,"reaps":0}},"duration_s":3.000060937,"zc_copied_fraction":null,"kernel_calls_per_msg":1.0,"cqes_per_reap":null,"uring":null,"counter_scope":"core","counters":{"cycles":null,"instructions":null,"l1d_load_misses":null,"llc_load_misses":null,"context_switches":100144,"cpu_migrations":7,"page_faults":7,"task_clock_ns":null,"cpu_busy_ns":850000000},"counters_missing":"cycles+instructions+l1d_load_misses+llc_load_misses","cycles_per_byte":null,"instructions_per_byte":null,"cpu_ns_per_byte":8.310088549175076,"context_switches_per_msg":1.0025628704148646,"cpus":"1","placement":[{"thread":"client 0","cpu":1}]},"server":{"backend":"syscall","stats":{"bytes_sent":51142656,"bytes_received":51142656,"msgs_sent":49944,"msgs_received":49944,"verify_errors":0,"first_verify_error":null,"zc":{"sends":0,"completions":0,"copied":0},"io":{"syscalls":99889,"enters":0,"sqes":0,"cqes":0,"reaps":0}},"duration_s":3.000107055,"zc_copied_fraction":null,"kernel_calls_per_msg":1.000010011212558,"cqes_per_reap":null,"uring":null,"counter_scope":"core","counters":{"cycles":null,"instructions":null,"l1d_load_misses":null,"llc_load_misses":null,"context_switches":99968,"cpu_migrations":8,"page_faults":1,"task_clock_ns":null,"cpu_busy_ns":830000000},"counters_missing":"cycles+instructions+l1d_load_misses+llc_load_misses","cycles_per_byte":null,"instructions_per_byte":null,"cpu_ns_per_byte":8.114557053900368,"context_switches_per_msg":1.0008008970046451,"cpus":"0","placement":[{"thread":"conn 0","cpu":0}]},"threads":[{"thread":0,"connections":1,"duration_s":3.000060937,"stats":{"bytes_sent":51142656,"bytes_received":51142656,"msgs_sent":49944,"msgs_received":49944,"verify_errors":0,"first_verify_error":null,"zc":{"sends":0,"completions":0,"copied":0},"io":{"syscalls":99888,"enters":0,"sqes":0,"cqes":0,"reaps":0}}}]}"#;

    #[test]
    fn schema_1_records_still_load() {
        let r: Record = serde_json::from_str(SCHEMA_1).unwrap();
        assert_eq!(r.schema_version, 1);
        assert_eq!(r.client.own_cpu, None, "never measured, not 0");
        assert_eq!(r.system, None);
        let c = r.client.counters.as_ref().unwrap();
        assert_eq!(c.context_switches, Some(100144));
        // What the record said, in its schema's meaning (the CPUs' busy time then).
        assert!((r.client.cpu_ns_per_byte.unwrap() - 8.31).abs() < 0.01);
        let server = r.server.as_ref().unwrap();
        assert_eq!(server.counters_missing.as_ref().unwrap().0.len(), 4);
        // A retired counter named missing does not stop an old record from loading.
        let named = SCHEMA_1.replacen("cycles+instructions", "cycles+cpu_busy_ns+instructions", 1);
        let r: Record = serde_json::from_str(&named).unwrap();
        assert_eq!(r.client.counters_missing.unwrap().0.len(), 4);
    }

    #[test]
    fn cpu_ns_per_byte_is_the_sides_own_time_over_its_bytes() {
        let r = Record::example();
        for side in [&r.client, r.server.as_ref().unwrap()] {
            let own = side.own_cpu.unwrap();
            // 2 ms of the worker's own and 0.5 ms of its ring's SQ thread.
            assert_eq!((own.user_ns, own.system_ns), (1_000_000, 2_500_000));
            assert_eq!(
                (own.sqpoll_ns, own.sqpoll_threads),
                (Some(500_000), Some(1))
            );
            assert_eq!(own.threads, 1);
            assert_eq!(
                own.cpus,
                Some(2),
                "pinned to CPU 0, and the SQ thread's own"
            );
            assert_eq!(side.cpu_ns_per_byte, Some(3.5e6 / 8192.0));
        }
        let sys = r.system.as_ref().unwrap();
        assert_eq!(sys.client_cpus.as_deref(), Some("0"));
        assert_eq!(sys.server_cpus.as_deref(), Some("0"));
        assert!(cpu_warnings(&r.client, r.server.as_ref(), Some(sys)).is_empty());
    }

    fn own(user_ms: u64, system_ms: u64, interval_s: f64, cpus: Option<usize>) -> OwnCpu {
        OwnCpu {
            user_ns: user_ms * 1_000_000,
            system_ns: system_ms * 1_000_000,
            threads: 2,
            interval_s,
            cpus,
            sqpoll_ns: None,
            sqpoll_threads: None,
        }
    }

    fn kinds(w: &[Warning]) -> Vec<WarningKind> {
        w.iter().map(|w| w.kind).collect()
    }

    #[test]
    fn own_cpu_time_beyond_its_cpus_is_flagged() {
        let mut r = Record::example();
        let server = r.server.as_mut().unwrap();
        // The double count the issue saw: 9700 ms in 3 s on 2 CPUs.
        server.own_cpu = Some(own(4000, 5700, 3.0, Some(2)));
        let w = cpu_warnings(&r.client, r.server.as_ref(), None);
        assert_eq!(kinds(&w), [WarningKind::ImpossibleCpu]);
        assert_eq!(
            w[0].text,
            "the server's own CPU time, 9700.0 ms (user 4000.0 ms + system 5700.0 ms), is more \
             than its 2 thread(s) could use: 3.000 s × 2 CPU(s) = 6000.0 ms (+40.0 ms for the \
             kernel's accounting lag): the figure is wrong, not a cost; do not trust this \
             run's CPU figures and report it"
        );
        // Up to the bound and its slack is possible; unknown CPUs cannot be judged.
        r.server.as_mut().unwrap().own_cpu = Some(own(3000, 3040, 3.0, Some(2)));
        assert!(cpu_warnings(&r.client, r.server.as_ref(), None).is_empty());
        r.server.as_mut().unwrap().own_cpu = Some(own(3000, 3041, 3.0, Some(2)));
        assert_eq!(cpu_warnings(&r.client, r.server.as_ref(), None).len(), 1);
        r.server.as_mut().unwrap().own_cpu = Some(own(9000, 9000, 3.0, None));
        assert!(cpu_warnings(&r.client, r.server.as_ref(), None).is_empty());
        r.client.own_cpu = Some(own(1000, 1041, 1.0, Some(2)));
        let w = cpu_warnings(&r.client, None, None);
        assert!(
            w[0].text
                .starts_with("the client's own CPU time, 2041.0 ms"),
            "{w:?}"
        );
    }

    fn system(busy_ms: [u64; 2], steal_ms: [u64; 2]) -> SystemCpu {
        use crate::cputime::{CpuFigures, PerCpu};
        let per_cpu: Vec<PerCpu> = (0..2)
            .map(|cpu| PerCpu {
                cpu,
                figures: CpuFigures {
                    busy_ns: busy_ms[cpu] * 1_000_000,
                    steal_ns: steal_ms[cpu] * 1_000_000,
                    ..CpuFigures::default()
                },
            })
            .collect();
        let mut total = CpuFigures::default();
        for p in &per_cpu {
            total += p.figures;
        }
        SystemCpu {
            interval_s: 3.0,
            tick_ns: 10_000_000,
            capacity_ns: 6_000_000_000,
            total,
            per_cpu,
            client_cpus: Some("1".into()),
            server_cpus: Some("1".into()),
        }
    }

    #[test]
    fn machine_busy_beyond_capacity_is_flagged() {
        let r = Record::example();
        let check = |s: &SystemCpu| kinds(&cpu_warnings(&r.client, None, Some(s)));
        // Slack: per CPU 5 fields' rounding (50 ms) and a jiffy (10 ms).
        assert!(check(&system([3060, 3060], [0, 0])).is_empty());
        let s = system([5000, 4700], [0, 0]);
        assert_eq!(check(&s), [WarningKind::ImpossibleCpu]);
        let w = cpu_warnings(&r.client, None, Some(&s));
        assert_eq!(
            w[0].text,
            "the machine's busy time, 9700.0 ms, is more than its 2 CPU(s) could give: \
             3.000 s × 2 = 6000.0 ms (+120.0 ms for /proc/stat's tick rounding): the figure \
             is wrong, not a cost; do not trust this run's CPU figures and report it"
        );
    }

    #[test]
    fn steal_is_a_figure_not_a_warning() {
        let r = Record::example();
        // Half the run's CPU stolen: recorded in `system`, never a warning.
        assert!(cpu_warnings(&r.client, None, Some(&system([100, 100], [1500, 1500]))).is_empty());
    }
}
