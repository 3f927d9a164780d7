//! What a connection counted: bytes, messages, checks, zero-copy completions, the calls
//! it took, and round-trip times. Per-thread figures merge with `+=`, in one place.

use std::ops::AddAssign;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::counters::{Counters, MissingCounters, RawCounts};
use crate::cputime::{CpuSpan, ThreadClock};
use crate::placement::Placement;
use crate::vocab::{Backend, CounterScope, RxMode, SetupFlags, UringRecv};

/// Zero-copy accounting, the same on both engines: one "send" is one MSG_ZEROCOPY call that
/// queued data (syscall) or one SEND_ZC / SENDMSG_ZC request that posted a notification
/// (uring); each gets exactly one completion, which the kernel may mark as copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZeroCopyStats {
    /// Zero-copy sends issued.
    pub sends: u64,
    /// Completions (notifications) received for them.
    pub completions: u64,
    /// Completions the kernel marked as copied after all.
    pub copied: u64,
}

impl ZeroCopyStats {
    /// Share of completions that were copied; `None` when there were none.
    pub fn copied_fraction(&self) -> Option<f64> {
        (self.completions > 0).then(|| self.copied as f64 / self.completions as f64)
    }
}

impl AddAssign for ZeroCopyStats {
    fn add_assign(&mut self, o: Self) {
        self.sends += o.sends;
        self.completions += o.completions;
        self.copied += o.copied;
    }
}

/// What a zero-copy receive (`--rx zerocopy`) did with the bytes it took: mapped in whole
/// pages, or copied (the kernel's copy buffer, or a plain recv of what could not be mapped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RxStats {
    /// Bytes mapped into the socket's mapping, not copied.
    pub mapped: u64,
    /// Bytes copied into user memory after all.
    pub copied: u64,
}

impl RxStats {
    /// Share of the zero-copy receive's bytes that were mapped; `None` without any.
    pub fn mapped_fraction(&self) -> Option<f64> {
        let total = self.mapped + self.copied;
        (total > 0).then(|| self.mapped as f64 / total as f64)
    }
}

impl AddAssign for RxStats {
    fn add_assign(&mut self, o: Self) {
        self.mapped += o.mapped;
        self.copied += o.copied;
    }
}

/// The calls a side made to move its bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoStats {
    /// Socket syscalls (send, sendmsg, recv, recvmsg, poll, error-queue reads); syscall engine.
    pub syscalls: u64,
    /// io_uring_enter calls; uring engine.
    pub enters: u64,
    /// Submission queue entries submitted.
    pub sqes: u64,
    /// Completion queue entries reaped.
    pub cqes: u64,
    /// Wake-ups that reaped at least one completion.
    pub reaps: u64,
    /// Of `enters`, those that woke a sleeping SQ polling thread (IORING_SQ_NEED_WAKEUP;
    /// `--sqpoll`), or were made only for that.
    #[serde(default)]
    pub sq_wakeups: u64,
    /// Message sends that also carried MSG_MORE: zc-fixed's within a linked chain of
    /// messages smaller than a segment (uring); 0 elsewhere.
    #[serde(default)]
    pub more_sends: u64,
}

impl IoStats {
    /// Mean completions per reaping wake-up: what batching bought.
    pub fn cqes_per_reap(&self) -> Option<f64> {
        (self.reaps > 0).then(|| self.cqes as f64 / self.reaps as f64)
    }

    /// Kernel entries: syscalls on one engine, io_uring_enter calls on the other.
    pub fn kernel_calls(&self) -> u64 {
        self.syscalls + self.enters
    }
}

impl IoStats {
    /// What happened between two cumulative readings.
    pub fn since(&self, earlier: &IoStats) -> IoStats {
        IoStats {
            syscalls: self.syscalls.saturating_sub(earlier.syscalls),
            enters: self.enters.saturating_sub(earlier.enters),
            sqes: self.sqes.saturating_sub(earlier.sqes),
            cqes: self.cqes.saturating_sub(earlier.cqes),
            reaps: self.reaps.saturating_sub(earlier.reaps),
            sq_wakeups: self.sq_wakeups.saturating_sub(earlier.sq_wakeups),
            more_sends: self.more_sends.saturating_sub(earlier.more_sends),
        }
    }
}

impl AddAssign for IoStats {
    fn add_assign(&mut self, o: Self) {
        self.syscalls += o.syscalls;
        self.enters += o.enters;
        self.sqes += o.sqes;
        self.cqes += o.cqes;
        self.reaps += o.reaps;
        self.sq_wakeups += o.sq_wakeups;
        self.more_sends += o.more_sends;
    }
}

/// One side's counts for one connection, or merged over many.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlowStats {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub msgs_sent: u64,
    pub msgs_received: u64,
    /// Received messages that failed verification.
    pub verify_errors: u64,
    /// The first failure, described.
    pub first_verify_error: Option<String>,
    pub zc: ZeroCopyStats,
    pub io: IoStats,
    /// Zero-copy receive: bytes mapped and copied (zero under the other receive paths).
    #[serde(default)]
    pub rx: RxStats,
    /// sendfile and splice: sends from the page cache and the peer's proofs of reading.
    #[serde(default)]
    pub by_ref: ByRefStats,
}

/// What the page-cache modes (sendfile, splice) did beyond the counts every mode has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByRefStats {
    /// Messages sent from the page cache.
    pub sends: u64,
    /// Read receipts (stream): sent by the receiver, received by the sender.
    pub receipts: u64,
    /// Most send buffers waiting at once for the peer to read them before they could be
    /// written again (the largest over connections when merged).
    pub held_max: u64,
    /// The pipe's capacity as the kernel granted it, bytes (the largest over connections).
    pub pipe_bytes: Option<u64>,
    /// Calls made beside the counted sends (syscall engine, included in its syscalls):
    /// splices into the pipe, fcntl switching the socket's O_NONBLOCK.
    pub extra_calls: u64,
    /// Stream: messages per read receipt (the largest over connections).
    pub receipt_every: Option<u64>,
}

impl AddAssign for ByRefStats {
    fn add_assign(&mut self, o: Self) {
        self.sends += o.sends;
        self.receipts += o.receipts;
        self.held_max = self.held_max.max(o.held_max);
        self.pipe_bytes = self.pipe_bytes.max(o.pipe_bytes);
        self.extra_calls += o.extra_calls;
        self.receipt_every = self.receipt_every.max(o.receipt_every);
    }
}

impl AddAssign<&FlowStats> for FlowStats {
    fn add_assign(&mut self, o: &FlowStats) {
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.msgs_sent += o.msgs_sent;
        self.msgs_received += o.msgs_received;
        self.verify_errors += o.verify_errors;
        if self.first_verify_error.is_none() {
            self.first_verify_error.clone_from(&o.first_verify_error);
        }
        self.zc += o.zc;
        self.io += o.io;
        self.rx += o.rx;
        self.by_ref += o.by_ref;
    }
}

/// Round-trip times, in nanoseconds, from 1 ns to 100 s at 3 significant digits.
///
/// Every `Latency` has these bounds, so any two merge; one read from elsewhere
/// ([`Latency::from_serialized`]) is refused unless it has them too.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

/// The histogram's lowest discernible value, ns.
const LATENCY_LOWEST: u64 = 1;
/// The histogram's highest trackable value, ns: 100 s.
const LATENCY_HIGHEST: u64 = 100_000_000_000;
/// The histogram's significant digits.
const LATENCY_DIGITS: u8 = 3;

/// The longest serialised histogram [`Latency::from_serialized`] reads, in characters.
/// The densest histogram our bounds allow (every one of its ~28 000 counts non-zero, 9
/// bytes each) is about 340 KiB of base64; a record's is a few KiB.
pub const MAX_SERIALIZED_LEN: usize = 1 << 20;

/// hdrhistogram's V2 format: a 40-byte header, then the counts. The header is read here,
/// before hdrhistogram's deserialiser sees it, because that allocates what the header
/// claims (the histogram's bounds, the payload's length) before checking anything.
const V2_COOKIE: u32 = 0x1c84_9313;
const V2_HEADER_LEN: usize = 40;

/// Why a serialised histogram was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistogramError {
    #[error("the histogram is {0} characters long, over the {MAX_SERIALIZED_LEN} accepted")]
    TooLong(usize),
    #[error("the histogram is not base64: {0}")]
    Base64(String),
    #[error("the histogram is not in hdrhistogram's V2 form (uncompressed): {0}")]
    Format(String),
    #[error(
        "the histogram tracks {lowest}..={highest} ns at {digits} significant digits, \
         not copyperf's {LATENCY_LOWEST}..={LATENCY_HIGHEST} ns at {LATENCY_DIGITS}: \
         it cannot be merged"
    )]
    Bounds {
        lowest: u64,
        highest: u64,
        digits: u32,
    },
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            hist: Histogram::new_with_bounds(LATENCY_LOWEST, LATENCY_HIGHEST, LATENCY_DIGITS)
                .expect("valid bounds"),
        }
    }
}

impl Latency {
    pub fn record(&mut self, d: Duration) {
        let ns = (d.as_nanos() as u64).max(1);
        self.hist.saturating_record(ns);
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The histogram in hdrhistogram's V2 serialised form (uncompressed), base64
    /// (standard alphabet, padded): what a record carries so that records can be merged.
    pub fn to_serialized(&self) -> String {
        let mut bytes = Vec::new();
        V2Serializer::new()
            .serialize(&self.hist, &mut bytes)
            .expect("a histogram with counts below i64::MAX serialises into memory");
        BASE64.encode(bytes)
    }

    /// Reads what [`Latency::to_serialized`] wrote. Refuses text longer than
    /// [`MAX_SERIALIZED_LEN`], anything that is not base64 of an uncompressed V2
    /// histogram, and a histogram whose bounds or precision differ from ours, so that
    /// what it returns always merges.
    pub fn from_serialized(text: &str) -> Result<Latency, HistogramError> {
        if text.len() > MAX_SERIALIZED_LEN {
            return Err(HistogramError::TooLong(text.len()));
        }
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|e| HistogramError::Base64(e.to_string()))?;
        let format = |what: String| HistogramError::Format(what);
        let header = bytes.get(..V2_HEADER_LEN).ok_or_else(|| {
            format(format!(
                "{} bytes, shorter than the {V2_HEADER_LEN}-byte header",
                bytes.len()
            ))
        })?;
        let u32_at = |i: usize| u32::from_be_bytes(header[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_be_bytes(header[i..i + 8].try_into().expect("8 bytes"));
        let cookie = u32_at(0);
        if cookie != V2_COOKIE {
            return Err(format(format!(
                "cookie {cookie:#010x}, not {V2_COOKIE:#010x}"
            )));
        }
        let payload = u32_at(4) as usize;
        if payload != bytes.len() - V2_HEADER_LEN {
            return Err(format(format!(
                "the header announces {payload} bytes of counts; {} follow",
                bytes.len() - V2_HEADER_LEN
            )));
        }
        let (digits, lowest, highest) = (u32_at(12), u64_at(16), u64_at(24));
        if (lowest, highest, digits) != (LATENCY_LOWEST, LATENCY_HIGHEST, u32::from(LATENCY_DIGITS))
        {
            return Err(HistogramError::Bounds {
                lowest,
                highest,
                digits,
            });
        }
        // A 9-byte varint of all ones decodes to i64::MIN, which hdrhistogram's decoder
        // negates (an overflow panic where overflow is checked); no run can have a count
        // near 2^55, so no real histogram holds nine 0xff bytes in a row.
        if bytes[V2_HEADER_LEN..]
            .windows(9)
            .any(|w| w.iter().all(|&b| b == 0xff))
        {
            return Err(format("a count beyond any run's".into()));
        }
        let hist: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| format(e.to_string()))?;
        Ok(Latency { hist })
    }

    /// How many round trips took at least `d` (to the histogram's precision).
    pub fn count_at_least(&self, d: Duration) -> u64 {
        let ns = (d.as_nanos() as u64).clamp(LATENCY_LOWEST, LATENCY_HIGHEST);
        self.hist.count_between(ns, LATENCY_HIGHEST)
    }

    /// The percentiles a report quotes; `None` when nothing was recorded.
    pub fn summary(&self) -> Option<LatencySummary> {
        if self.hist.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        let q = |p: f64| us(self.hist.value_at_quantile(p));
        Some(LatencySummary {
            count: self.hist.len(),
            mean_us: self.hist.mean() / 1000.0,
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: us(self.hist.max()),
        })
    }
}

impl AddAssign<&Latency> for Latency {
    fn add_assign(&mut self, o: &Latency) {
        self.hist
            .add(&o.hist)
            .expect("same bounds on every histogram");
    }
}

/// Slices of the planned interval a client's progress is counted in.
pub const PROGRESS_SLICES: usize = 64;

/// When a client's messages completed: per slice of the planned interval, and the longest
/// stretch with none. A steady run fills the slices evenly; a stall shows as a gap, a
/// slowdown as a total far below what the median slice predicts.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Messages completed in each slice (a run that overruns its plan counts the rest in
    /// the last).
    pub slices: [u64; PROGRESS_SLICES],
    /// The planned interval's slice length.
    pub slice: Duration,
    /// The longest stretch without a completed message, the start and the end included.
    pub longest_gap: Duration,
    begin: Option<Instant>,
    last: Option<Instant>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            slices: [0; PROGRESS_SLICES],
            slice: Duration::ZERO,
            longest_gap: Duration::ZERO,
            begin: None,
            last: None,
        }
    }
}

impl Progress {
    pub fn begin(&mut self, now: Instant, planned: Duration) {
        self.begin = Some(now);
        self.last = Some(now);
        self.slice = (planned / PROGRESS_SLICES as u32).max(Duration::from_nanos(1));
    }

    /// A message completed at `now`.
    pub fn record(&mut self, now: Instant) {
        let (Some(begin), Some(last)) = (self.begin, self.last) else {
            return;
        };
        self.longest_gap = self.longest_gap.max(now.saturating_duration_since(last));
        self.last = Some(now);
        let i = now.saturating_duration_since(begin).as_nanos() / self.slice.as_nanos();
        self.slices[(i as usize).min(PROGRESS_SLICES - 1)] += 1;
    }

    /// The run ended at `now`: a silence before the end is a gap too.
    pub fn finish(&mut self, now: Instant) {
        if let Some(last) = self.last.take() {
            self.longest_gap = self.longest_gap.max(now.saturating_duration_since(last));
        }
    }

    /// Messages in all.
    pub fn total(&self) -> u64 {
        self.slices.iter().sum()
    }

    /// What the median whole slice within `ran` predicts for the whole of `ran`; `None`
    /// with fewer than 8 whole slices to judge by.
    pub fn predicted(&self, ran: Duration) -> Option<f64> {
        if self.slice.is_zero() {
            return None;
        }
        let whole = ((ran.as_nanos() / self.slice.as_nanos()) as usize).min(PROGRESS_SLICES);
        if whole < 8 {
            return None;
        }
        let mut counts: Vec<u64> = self.slices[..whole].to_vec();
        counts.sort_unstable();
        let median = counts[whole / 2] as f64;
        Some(median * ran.as_secs_f64() / self.slice.as_secs_f64())
    }
}

/// Threads that started together merge slice by slice.
impl AddAssign<&Progress> for Progress {
    fn add_assign(&mut self, o: &Progress) {
        for (a, b) in self.slices.iter_mut().zip(o.slices) {
            *a += b;
        }
        self.slice = self.slice.max(o.slice);
        self.longest_gap = self.longest_gap.max(o.longest_gap);
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Round trips measured.
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

/// How an io_uring side set its rings up: what the kernel took.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingSetup {
    /// Setup flags the ring was created with, joined by `+` in records (e.g.
    /// `single_issuer+defer_taskrun+submit_all`).
    pub flags: SetupFlags,
    /// The ring fd is registered (io_uring_enter skips the fd lookup).
    pub registered_ring: bool,
    /// Sockets are registered as fixed files.
    pub fixed_files: bool,
    /// Message buffers are registered (zc-fixed).
    pub fixed_buffers: bool,
    /// Successful sends inside a chain skip their CQE (IOSQE_CQE_SKIP_SUCCESS; copying
    /// modes): a chain posts one completion.
    pub cqe_skip: bool,
    /// How two-copy messages are received: `single` (RECV per message) or `multishot`
    /// (provided-buffer ring).
    pub recv: UringRecv,
    /// A depth-1 echo's reply receive, linked behind its send, waits for readiness before
    /// its first attempt (IORING_RECVSEND_POLL_FIRST, Linux 5.19): the reply cannot have
    /// arrived before the message went out, so that attempt could only fail.
    #[serde(default)]
    pub poll_first: bool,
    /// The SQ polling thread the kernel set up (`--sqpoll`); null without.
    #[serde(default)]
    pub sqpoll: Option<crate::polling::SqPollGrant>,
    /// NAPI busy polling registered on the ring (`--busy-poll`), as the kernel holds it;
    /// null without.
    #[serde(default)]
    pub busy_poll: Option<crate::polling::BusyPoll>,
}

/// Cumulative figures of one server thread or CPU, read when a connection began and when
/// it ended (on the serving thread itself, so that its own CPU time can be read).
///
/// A server thread may serve several of a run's connections (a uring worker serves many),
/// and a CPU runs whatever is pinned to it; either belongs to the run once, from the
/// earliest start to the latest end, which the client works out from these samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// What was read, unique within the server: `worker 2`, `conn 17`, `cpu 1`.
    pub key: String,
    pub start: Totals,
    pub end: Totals,
}

/// Cumulative readings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Calls a thread made as a whole (a ring's enters and reaps are shared by all its
    /// connections); zero where calls are counted per connection instead.
    pub io: IoStats,
    /// Kernel counters; absent when this sample carries none.
    pub counters: Option<RawCounts>,
    /// The thread's own CPU time; absent for a CPU's sample, and from a server that
    /// predates it.
    #[serde(default)]
    pub cpu: Option<ThreadClock>,
}

impl Totals {
    /// Field by field `f` over two readings; counters only where both have them.
    fn zip(&self, o: &Totals, f: fn(u64, u64) -> u64) -> Totals {
        let (a, b) = (&self.io, &o.io);
        Totals {
            io: IoStats {
                syscalls: f(a.syscalls, b.syscalls),
                enters: f(a.enters, b.enters),
                sqes: f(a.sqes, b.sqes),
                cqes: f(a.cqes, b.cqes),
                reaps: f(a.reaps, b.reaps),
                sq_wakeups: f(a.sq_wakeups, b.sq_wakeups),
                more_sends: f(a.more_sends, b.more_sends),
            },
            counters: match (&self.counters, &o.counters) {
                (Some(x), Some(y)) => Some(x.zip_with(y, f)),
                _ => None,
            },
            cpu: match (&self.cpu, &o.cpu) {
                (Some(x), Some(y)) => Some(x.zip(y, f)),
                _ => None,
            },
        }
    }
}

impl Sample {
    /// Widens this sample to also cover `other`, a sample of the same thing: cumulative
    /// readings only grow, so the earliest start is the smallest reading and the latest
    /// end the largest.
    pub fn widen(&mut self, other: &Sample) {
        debug_assert_eq!(self.key, other.key);
        self.start = self.start.zip(&other.start, u64::min);
        self.end = self.end.zip(&other.end, u64::max);
    }

    /// Calls made within the sample.
    pub fn io(&self) -> IoStats {
        self.end.io.since(&self.start.io)
    }

    /// Counts within the sample, if it carries counters.
    pub fn counters(&self) -> Option<Counters> {
        match (&self.end.counters, &self.start.counters) {
            (Some(e), Some(s)) => Some(e.since(s)),
            _ => None,
        }
    }

    /// The thread's own CPU time within the sample, if it carries it.
    pub fn cpu(&self) -> Option<CpuSpan> {
        Some(self.end.cpu?.since(&self.start.cpu?))
    }
}

/// Merges samples by key, widening those of the same thread or CPU.
pub fn merge_samples<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Vec<Sample> {
    let mut out: Vec<Sample> = Vec::new();
    for s in samples {
        match out.iter_mut().find(|x| x.key == s.key) {
            Some(x) => x.widen(s),
            None => out.push(s.clone()),
        }
    }
    out
}

/// What the server measured on one connection, sent back in the stats frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerReport {
    pub backend: Backend,
    /// The server's number for the connection.
    pub connection: u64,
    /// Counts for this connection alone.
    pub stats: FlowStats,
    /// From the first byte received to the end of the stream.
    pub duration_s: f64,
    /// The serving ring's setup (uring).
    pub ring: Option<RingSetup>,
    /// Readings around this connection of the thread and CPUs that served it.
    pub samples: Vec<Sample>,
    /// Where the server counted: thread, core or off.
    pub counter_scope: CounterScope,
    /// Counters the server could not open, `+`-joined; null when counting was off.
    pub counters_missing: Option<MissingCounters>,
    /// The thread that served the connection, and its CPU.
    pub placement: Option<Placement>,
    /// How many CPUs the server process may run on (an unpinned thread could use any).
    #[serde(default)]
    pub cpus_available: Option<usize>,
    /// The server's host and the interface the connection arrived on, as the server sees
    /// them (in its own network namespace); absent from older servers.
    #[serde(default)]
    pub host: Option<crate::host::HostInfo>,
    /// How the server received (`--rx`, from the hello); absent from older servers.
    #[serde(default)]
    pub rx: Option<RxMode>,
    /// The flags the server's message sends carried ([`crate::Mode::send_flags`]); null
    /// where it sent none, or sent by sendfile or splice; absent from older servers.
    #[serde(default)]
    pub send_flags: Option<String>,
    /// Busy polling as the server's kernel granted it on this connection's socket or ring
    /// (`--busy-poll`), with the socket's NAPI id at the end; absent without.
    #[serde(default)]
    pub busy_poll: Option<crate::polling::BusyPoll>,
    /// The connection's `TCP_INFO` on the server, read just before it sent this report;
    /// absent from older servers, and where the kernel refused it.
    #[serde(default)]
    pub tcp_info: Option<crate::tcpinfo::TcpInfo>,
}

impl Default for PeerReport {
    fn default() -> Self {
        PeerReport {
            backend: Backend::Syscall,
            connection: 0,
            stats: FlowStats::default(),
            duration_s: 0.0,
            ring: None,
            samples: Vec::new(),
            counter_scope: CounterScope::Off,
            counters_missing: None,
            placement: None,
            cpus_available: None,
            host: None,
            rx: None,
            send_flags: None,
            busy_poll: None,
            tcp_info: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_stats_merge_field_by_field() {
        let mut a = FlowStats {
            bytes_sent: 10,
            msgs_sent: 1,
            verify_errors: 1,
            first_verify_error: Some("first".into()),
            ..Default::default()
        };
        a.zc.sends = 2;
        a.io.syscalls = 3;
        let mut b = FlowStats {
            bytes_sent: 5,
            bytes_received: 7,
            msgs_received: 2,
            verify_errors: 2,
            first_verify_error: Some("second".into()),
            ..Default::default()
        };
        b.zc = ZeroCopyStats {
            sends: 1,
            completions: 3,
            copied: 3,
        };
        b.io.enters = 4;
        a += &b;
        assert_eq!(a.bytes_sent, 15);
        assert_eq!(a.bytes_received, 7);
        assert_eq!(a.msgs_sent, 1);
        assert_eq!(a.msgs_received, 2);
        assert_eq!(a.verify_errors, 3);
        assert_eq!(a.first_verify_error.as_deref(), Some("first"));
        assert_eq!(
            a.zc,
            ZeroCopyStats {
                sends: 3,
                completions: 3,
                copied: 3
            }
        );
        assert_eq!(a.io.kernel_calls(), 7);
    }

    #[test]
    fn latency_merges_and_summarizes() {
        let mut a = Latency::default();
        assert!(a.summary().is_none());
        for us in 1..=100 {
            a.record(Duration::from_micros(us));
        }
        let mut b = Latency::default();
        b.record(Duration::from_millis(10));
        a += &b;
        let s = a.summary().unwrap();
        assert_eq!(s.count, 101);
        assert!((s.p50_us - 51.0).abs() < 0.1, "{s:?}");
        assert!((s.max_us - 10_000.0).abs() < 10.0, "{s:?}");
        assert!(s.p999_us >= s.p99_us && s.p99_us >= s.p90_us && s.p90_us >= s.p50_us);
    }

    fn filled(micros: impl IntoIterator<Item = u64>) -> Latency {
        let mut l = Latency::default();
        for us in micros {
            l.record(Duration::from_micros(us));
        }
        l
    }

    #[test]
    fn latency_round_trips_through_its_serialised_form() {
        let a = filled((1..=1000).chain([5_000, 250_000, 3_000_000]));
        let text = a.to_serialized();
        assert!(text.len() < 4096, "{} characters", text.len());
        let back = Latency::from_serialized(&text).unwrap();
        assert_eq!(back.count(), 1003);
        assert_eq!(back.summary(), a.summary());
        assert_eq!(back.hist, a.hist);
        // What was read merges like what was recorded.
        let mut both = back;
        both += &a;
        assert_eq!(both.count(), 2006);
        let empty = Latency::from_serialized(&Latency::default().to_serialized()).unwrap();
        assert_eq!((empty.count(), empty.summary()), (0, None));
    }

    #[test]
    fn latency_refuses_what_is_not_our_histogram() {
        use base64::engine::general_purpose::STANDARD;
        let b64 = |bytes: &[u8]| STANDARD.encode(bytes);
        let err = |text: &str| Latency::from_serialized(text).unwrap_err();
        assert!(matches!(err("not base64!"), HistogramError::Base64(_)));
        assert!(matches!(err(&b64(b"short")), HistogramError::Format(_)));
        assert!(matches!(err(&b64(&[7; 64])), HistogramError::Format(_)));
        let too_long = "A".repeat(MAX_SERIALIZED_LEN + 4);
        assert_eq!(
            err(&too_long),
            HistogramError::TooLong(MAX_SERIALIZED_LEN + 4)
        );
        // Another histogram's bounds or precision: it could not be merged into ours.
        let mut other = Histogram::<u64>::new_with_bounds(1, 1_000_000, 2).unwrap();
        other.record(10).unwrap();
        let mut bytes = Vec::new();
        V2Serializer::new().serialize(&other, &mut bytes).unwrap();
        let e = err(&b64(&bytes));
        assert_eq!(
            e,
            HistogramError::Bounds {
                lowest: 1,
                highest: 1_000_000,
                digits: 2
            }
        );
        assert!(e.to_string().contains("cannot be merged"), "{e}");
        // The compressed form is not the one records carry.
        let mut bytes = Vec::new();
        hdrhistogram::serialization::V2DeflateSerializer::new()
            .serialize(&filled([10]).hist, &mut bytes)
            .unwrap();
        assert!(matches!(err(&b64(&bytes)), HistogramError::Format(_)));
        // Counts cut short, or more of them than the header says.
        let good = STANDARD
            .decode(filled([10, 20, 30]).to_serialized())
            .unwrap();
        assert!(matches!(
            err(&b64(&good[..good.len() - 1])),
            HistogramError::Format(_)
        ));
        assert!(matches!(
            err(&b64(&[&good[..], &[0]].concat())),
            HistogramError::Format(_)
        ));
        // A count hdrhistogram's decoder would overflow on: refused, not a panic.
        let mut hostile = good[..V2_HEADER_LEN].to_vec();
        hostile[4..8].copy_from_slice(&9u32.to_be_bytes());
        hostile.extend([0xff; 9]);
        assert!(matches!(err(&b64(&hostile)), HistogramError::Format(_)));
    }

    #[test]
    fn samples_widen_to_the_whole_run() {
        use crate::counters::Raw;
        let sample = |key: &str, start: u64, end: u64| Sample {
            key: key.into(),
            start: Totals {
                io: IoStats {
                    enters: start,
                    ..Default::default()
                },
                counters: Some(RawCounts {
                    context_switches: Some(Raw {
                        count: start,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                cpu: Some(ThreadClock {
                    user_ns: start,
                    system_ns: 2 * start,
                    at_ns: 1000 + start,
                    sqpoll: None,
                }),
            },
            end: Totals {
                io: IoStats {
                    enters: end,
                    ..Default::default()
                },
                counters: Some(RawCounts {
                    context_switches: Some(Raw {
                        count: end,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                cpu: Some(ThreadClock {
                    user_ns: end,
                    system_ns: 2 * end,
                    at_ns: 1000 + end,
                    sqpoll: None,
                }),
            },
        };
        // Two connections on one worker overlap: 10..50 and 20..70 is 60, not 90.
        let merged = merge_samples(&[
            sample("worker 0", 10, 50),
            sample("worker 0", 20, 70),
            sample("worker 1", 0, 5),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].io().enters, 60);
        assert_eq!(merged[0].counters().unwrap().context_switches, Some(60));
        assert_eq!(
            merged[0].counters().unwrap().cycles,
            None,
            "missing stays missing"
        );
        assert_eq!(merged[1].io().enters, 5);
        // The thread's own CPU time widens the same way: once over 10..70.
        let cpu = merged[0].cpu().unwrap();
        assert_eq!((cpu.user_ns, cpu.system_ns, cpu.threads), (60, 120, 1));
        assert_eq!((cpu.first_ns, cpu.last_ns), (1010, 1070));
        // A sample without it (a CPU's, an older server's) has none.
        let mut cpu_less = sample("cpus", 0, 5);
        cpu_less.end.cpu = None;
        assert_eq!(cpu_less.cpu(), None);
    }

    #[test]
    fn an_older_servers_report_still_parses() {
        // A stats frame from before own CPU time: no `cpu` in its readings, no
        // `cpus_available`.
        let old = r#"{"backend":"uring","connection":3,"stats":{"bytes_sent":0,
            "bytes_received":64,"msgs_sent":0,"msgs_received":1,"verify_errors":0,
            "first_verify_error":null,"zc":{"sends":0,"completions":0,"copied":0},
            "io":{"syscalls":0,"enters":1,"sqes":1,"cqes":1,"reaps":1}},"duration_s":0.5,
            "ring":null,"samples":[{"key":"worker 0","start":{"io":{"syscalls":0,"enters":0,
            "sqes":0,"cqes":0,"reaps":0},"counters":null},"end":{"io":{"syscalls":0,
            "enters":1,"sqes":1,"cqes":1,"reaps":1},"counters":null}}],
            "counter_scope":"off","counters_missing":null,"placement":null}"#;
        let r: PeerReport = serde_json::from_str(old).unwrap();
        assert_eq!(r.cpus_available, None);
        assert_eq!(r.samples[0].cpu(), None);
        assert_eq!(r.samples[0].io().enters, 1);
    }

    #[test]
    fn copied_fraction_needs_completions() {
        assert_eq!(ZeroCopyStats::default().copied_fraction(), None);
        let z = ZeroCopyStats {
            sends: 4,
            completions: 4,
            copied: 1,
        };
        assert_eq!(z.copied_fraction(), Some(0.25));
    }
}
