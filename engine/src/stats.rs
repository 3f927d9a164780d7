//! What a connection counted: bytes, messages, checks, zero-copy completions, the calls
//! it took, and round-trip times. Per-thread figures merge with `+=`, in one place.

use std::ops::AddAssign;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::config::Backend;

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

impl AddAssign for IoStats {
    fn add_assign(&mut self, o: Self) {
        self.syscalls += o.syscalls;
        self.enters += o.enters;
        self.sqes += o.sqes;
        self.cqes += o.cqes;
        self.reaps += o.reaps;
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
    }
}

/// Round-trip times, in nanoseconds, from 1 ns to 100 s at 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            hist: Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid bounds"),
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

/// What the server measured on one connection, sent back in the stats frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerReport {
    pub backend: Backend,
    /// The server's number for the connection.
    pub connection: u64,
    pub stats: FlowStats,
    /// From the first byte received to the end of the stream.
    pub duration_s: f64,
}

impl Default for PeerReport {
    fn default() -> Self {
        PeerReport {
            backend: Backend::Syscall,
            connection: 0,
            stats: FlowStats::default(),
            duration_s: 0.0,
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
