//! Live intervals (`--interval`, iperf3's `-i`): what each client thread did since the
//! last look, sampled by a reporter thread while the run goes.
//!
//! The flows count into a per-thread [`LiveCounters`] with relaxed atomic adds (a couple
//! per message: the hot path pays no lock and no branch beyond "are intervals on"); the
//! echo round trips of the interval go into a histogram behind a mutex that only this
//! thread and, once per interval, the reporter ever take — so it is never contended
//! for longer than a swap. The reporter turns the differences between two looks into an
//! [`Interval`]: one line per thread and their sum.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::stats::Latency;

/// What one client thread counted so far, shared with the reporter.
#[derive(Debug, Default)]
pub struct LiveCounters {
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    msgs_sent: AtomicU64,
    msgs_received: AtomicU64,
    /// Round trips since the reporter last took them.
    latency: Mutex<Latency>,
}

impl LiveCounters {
    pub(crate) fn sent(&self, bytes: u64) {
        self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
        self.msgs_sent.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn received(&self, bytes: u64) {
        self.bytes_received.fetch_add(bytes, Ordering::Relaxed);
        self.msgs_received.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn round_trip(&self, d: Duration) {
        // Poisoned only if a thread panicked while holding it; the histogram is still whole.
        let mut h = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        h.record(d);
    }

    /// The counts so far, and the round trips since the last look (taken away).
    pub(crate) fn sample(&self) -> (Totals, Latency) {
        let totals = Totals {
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            msgs_sent: self.msgs_sent.load(Ordering::Relaxed),
            msgs_received: self.msgs_received.load(Ordering::Relaxed),
        };
        let mut h = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        (totals, std::mem::take(&mut *h))
    }
}

/// Cumulative counts at one look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub msgs_sent: u64,
    pub msgs_received: u64,
}

impl Totals {
    fn since(&self, earlier: &Totals) -> Totals {
        Totals {
            bytes_sent: self.bytes_sent.saturating_sub(earlier.bytes_sent),
            bytes_received: self.bytes_received.saturating_sub(earlier.bytes_received),
            msgs_sent: self.msgs_sent.saturating_sub(earlier.msgs_sent),
            msgs_received: self.msgs_received.saturating_sub(earlier.msgs_received),
        }
    }
}

/// One thread's figures over one interval, or their sum.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntervalFigures {
    /// The client thread; `None` on the summed line.
    pub thread: Option<usize>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub msgs_sent: u64,
    pub msgs_received: u64,
    /// bytes_sent × 8 / the interval's length, Gbit/s (10^9).
    pub sent_gbps: f64,
    /// bytes_received × 8 / the interval's length, Gbit/s.
    pub received_gbps: f64,
    /// Echo: the interval's round trips, µs; `None` for stream or with none completed.
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    /// TCP retransmits in the interval: `None` until TCP_INFO is read (not yet).
    pub retransmits: Option<u64>,
}

impl IntervalFigures {
    fn new(thread: Option<usize>, d: Totals, latency: &Latency, secs: f64) -> IntervalFigures {
        let gbps = |b: u64| {
            if secs > 0.0 {
                b as f64 * 8.0 / secs / 1e9
            } else {
                0.0
            }
        };
        let l = latency.summary();
        IntervalFigures {
            thread,
            bytes_sent: d.bytes_sent,
            bytes_received: d.bytes_received,
            msgs_sent: d.msgs_sent,
            msgs_received: d.msgs_received,
            sent_gbps: gbps(d.bytes_sent),
            received_gbps: gbps(d.bytes_received),
            p50_us: l.as_ref().map(|l| l.p50_us),
            p99_us: l.as_ref().map(|l| l.p99_us),
            retransmits: None,
        }
    }
}

/// One interval of a live run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Seconds from the start of the measured interval (negative inside `--omit`'s
    /// warm-up).
    pub start_s: f64,
    pub end_s: f64,
    /// Inside the warm-up `--omit` leaves out of the measurement.
    #[serde(default)]
    pub omitted: bool,
    /// Per client thread.
    pub threads: Vec<IntervalFigures>,
    /// The threads together.
    pub sum: IntervalFigures,
}

/// The reporter's memory of the last look at every thread.
pub(crate) struct Sampler {
    last: Vec<Totals>,
    /// Seconds from the run's start to the last look.
    last_s: f64,
    /// Where the measured interval starts, seconds from the run's start (`--omit`).
    origin_s: f64,
}

impl Sampler {
    pub fn new(threads: usize, omit: Duration) -> Sampler {
        Sampler {
            last: vec![Totals::default(); threads],
            last_s: 0.0,
            origin_s: omit.as_secs_f64(),
        }
    }

    /// The interval from the last look to `now_s` (seconds since the run's start);
    /// `omitted` if it lies in the warm-up.
    pub fn take(
        &mut self,
        live: &[std::sync::Arc<LiveCounters>],
        now_s: f64,
        omitted: bool,
    ) -> Interval {
        let secs = now_s - self.last_s;
        let mut sum_totals = Totals::default();
        let mut sum_latency = Latency::default();
        let mut threads = Vec::with_capacity(live.len());
        for (i, (counters, last)) in live.iter().zip(&mut self.last).enumerate() {
            let (now, latency) = counters.sample();
            let d = now.since(last);
            *last = now;
            sum_totals.bytes_sent += d.bytes_sent;
            sum_totals.bytes_received += d.bytes_received;
            sum_totals.msgs_sent += d.msgs_sent;
            sum_totals.msgs_received += d.msgs_received;
            sum_latency += &latency;
            threads.push(IntervalFigures::new(Some(i), d, &latency, secs));
        }
        let interval = Interval {
            start_s: self.last_s - self.origin_s,
            end_s: now_s - self.origin_s,
            omitted,
            threads,
            sum: IntervalFigures::new(None, sum_totals, &sum_latency, secs),
        };
        self.last_s = now_s;
        interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn intervals_add_up_to_what_was_counted() {
        let live: Vec<Arc<LiveCounters>> = (0..2).map(|_| Arc::default()).collect();
        let mut s = Sampler::new(2, Duration::ZERO);
        live[0].sent(100);
        live[1].received(50);
        live[0].round_trip(Duration::from_micros(10));
        let a = s.take(&live, 1.0, false);
        live[0].sent(100);
        let b = s.take(&live, 1.5, false);
        assert_eq!((a.sum.bytes_sent, a.sum.bytes_received), (100, 50));
        assert_eq!(a.threads[0].p50_us.map(|p| p.round()), Some(10.0));
        assert_eq!(b.sum.msgs_sent, 1);
        assert_eq!(b.sum.p50_us, None, "round trips are taken once");
        assert_eq!((b.start_s, b.end_s), (1.0, 1.5));
        assert!((b.sum.sent_gbps - 100.0 * 8.0 / 0.5 / 1e9).abs() < 1e-12);
    }

    #[test]
    fn the_warm_up_is_before_zero() {
        let live: Vec<Arc<LiveCounters>> = vec![Arc::default()];
        let mut s = Sampler::new(1, Duration::from_secs(1));
        let a = s.take(&live, 1.0, true);
        let b = s.take(&live, 2.0, false);
        assert!(a.omitted && !b.omitted);
        assert_eq!((a.start_s, a.end_s, b.start_s), (-1.0, 0.0, 0.0));
    }
}
