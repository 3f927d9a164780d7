//! Live intervals (`--interval`, iperf3's `-i`): what each client thread did since the
//! last look, sampled by a reporter thread while the run goes.
//!
//! The flows count into a per-thread [`LiveCounters`] with relaxed atomic adds (a couple
//! per message: the hot path pays no lock and no branch beyond "are intervals on"); the
//! echo round trips of the interval go into a histogram behind a mutex that only this
//! thread and, once per interval, the reporter ever take — so it is never contended
//! for longer than a swap. The reporter turns the differences between two looks into an
//! [`Interval`]: one line per thread and their sum.
//!
//! At every look the reporter also reads each connection's `TCP_INFO` (getsockopt works
//! from any thread; it holds its own duplicates of the sockets, so a thread that ends and
//! closes its connections early cannot leave it a closed or reused descriptor): the
//! retransmits since the last look (the change in `tcpi_total_retrans`) and the
//! congestion window and smoothed RTT at the look, as iperf3 prints Retr and Cwnd. A
//! thread that has read its connections' end-of-run `TCP_INFO` leaves that reading here
//! ([`LiveCounters::read_tcp_at_end`]), and later looks take it, so the intervals'
//! retransmits add up to exactly the end-of-run count less what came before the first
//! look (the handshake's).

use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::stats::Latency;
use crate::tcpinfo::TcpInfo;

/// What one client thread counted so far, shared with the reporter.
#[derive(Debug, Default)]
pub struct LiveCounters {
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    msgs_sent: AtomicU64,
    msgs_received: AtomicU64,
    /// Round trips since the reporter last took them.
    latency: Mutex<Latency>,
    /// The thread's end-of-run `TCP_INFO` readings, once it has taken them.
    tcp_end: Mutex<Option<Vec<TcpInfo>>>,
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

    /// Reads `fds`' `TCP_INFO` at the end of the run (a refusal leaves every field
    /// missing) and keeps the readings for the reporter's later looks: under the lock, so
    /// that no look reads the sockets after them and then goes back to them.
    pub(crate) fn read_tcp_at_end(&self, fds: &[RawFd]) -> Vec<TcpInfo> {
        let mut end = self.tcp_end.lock().unwrap_or_else(|p| p.into_inner());
        let readings = TcpInfo::read_each(fds.iter().copied());
        *end = Some(readings.clone());
        readings
    }

    /// The thread's connections' `TCP_INFO` now: the end-of-run readings once taken,
    /// else read off `sockets`.
    fn tcp_now(&self, sockets: &[TcpStream]) -> Vec<TcpInfo> {
        let end = self.tcp_end.lock().unwrap_or_else(|p| p.into_inner());
        match &*end {
            Some(readings) => readings.clone(),
            None => TcpInfo::read_each(sockets.iter().map(AsRawFd::as_raw_fd)),
        }
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
    /// TCP retransmits in the interval (the change in `tcpi_total_retrans` over the
    /// thread's connections, or all of them); `None` where a connection's kernel did not
    /// give it at either look.
    pub retransmits: Option<u64>,
    /// Congestion window at the interval's end, segments: the mean over the thread's
    /// connections (or all of them); `None` unless every one gave it.
    #[serde(default)]
    pub cwnd: Option<u64>,
    /// The same window in bytes, as iperf3 gives it (`snd_cwnd`): each connection's
    /// `tcpi_snd_cwnd × tcpi_snd_mss`, the mean over them; `None` unless every one gave
    /// both.
    #[serde(default)]
    pub cwnd_bytes: Option<u64>,
    /// Smoothed round-trip time at the interval's end, µs, likewise.
    #[serde(default)]
    pub srtt_us: Option<u64>,
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
            cwnd: None,
            cwnd_bytes: None,
            srtt_us: None,
        }
    }

    /// The TCP figures of `conns`, whose retransmits over the interval are `retransmits`.
    fn with_tcp(self, retransmits: Option<u64>, conns: &[TcpInfo]) -> IntervalFigures {
        IntervalFigures {
            retransmits,
            cwnd: mean(conns.iter().map(|t| t.cwnd)),
            cwnd_bytes: mean(conns.iter().map(|t| Some(t.cwnd? * t.snd_mss?))),
            srtt_us: mean(conns.iter().map(|t| t.srtt_us)),
            ..self
        }
    }
}

/// The sum of a field over connections; `None` unless every one has it (and there is one).
fn total(values: impl Iterator<Item = Option<u64>>) -> Option<u64> {
    let all: Vec<u64> = values.collect::<Option<_>>()?;
    (!all.is_empty()).then(|| all.iter().sum())
}

/// The rounded mean of a field over connections; `None` unless every one has it.
fn mean(values: impl Iterator<Item = Option<u64>>) -> Option<u64> {
    let all: Vec<u64> = values.collect::<Option<_>>()?;
    let n = all.len() as u64;
    (n > 0).then(|| (all.iter().sum::<u64>() + n / 2) / n)
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
    /// Per thread: its connections (the reporter's duplicates), and their summed
    /// `tcpi_total_retrans` at the last look. Empty: no TCP figures.
    tcp: Vec<(Vec<TcpStream>, Option<u64>)>,
    /// Seconds from the run's start to the last look.
    last_s: f64,
    /// Where the measured interval starts, seconds from the run's start (`--omit`).
    origin_s: f64,
}

impl Sampler {
    /// `sockets`: per thread, its connections, read at every look (the first reading,
    /// now, is where retransmits start from); none, for no TCP figures.
    pub fn new(threads: usize, omit: Duration, sockets: Vec<Vec<TcpStream>>) -> Sampler {
        let tcp = sockets
            .into_iter()
            .map(|conns| {
                let start = TcpInfo::read_each(conns.iter().map(AsRawFd::as_raw_fd));
                let retrans = total(start.iter().map(|t| t.total_retrans));
                (conns, retrans)
            })
            .collect();
        Sampler {
            last: vec![Totals::default(); threads],
            tcp,
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
        let mut all_conns = Vec::new();
        let mut sum_retrans = Some(0u64);
        for (i, (counters, last)) in live.iter().zip(&mut self.last).enumerate() {
            let (now, latency) = counters.sample();
            let d = now.since(last);
            *last = now;
            sum_totals.bytes_sent += d.bytes_sent;
            sum_totals.bytes_received += d.bytes_received;
            sum_totals.msgs_sent += d.msgs_sent;
            sum_totals.msgs_received += d.msgs_received;
            sum_latency += &latency;
            let mut figures = IntervalFigures::new(Some(i), d, &latency, secs);
            if let Some((sockets, last_retrans)) = self.tcp.get_mut(i) {
                let conns = counters.tcp_now(sockets);
                let retrans = total(conns.iter().map(|t| t.total_retrans));
                let delta = retrans
                    .zip(*last_retrans)
                    .map(|(now, then)| now.saturating_sub(then));
                // A connection that failed to answer this time counts from its next answer.
                *last_retrans = retrans;
                sum_retrans = sum_retrans.zip(delta).map(|(a, b)| a + b);
                figures = figures.with_tcp(delta, &conns);
                all_conns.extend(conns);
            }
            threads.push(figures);
        }
        let mut sum = IntervalFigures::new(None, sum_totals, &sum_latency, secs);
        if !self.tcp.is_empty() {
            sum = sum.with_tcp(sum_retrans, &all_conns);
        }
        let interval = Interval {
            start_s: self.last_s - self.origin_s,
            end_s: now_s - self.origin_s,
            omitted,
            threads,
            sum,
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
        let mut s = Sampler::new(2, Duration::ZERO, Vec::new());
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
        assert_eq!(
            (b.sum.retransmits, b.sum.cwnd, b.threads[0].srtt_us),
            (None, None, None),
            "no sockets, no TCP figures"
        );
        assert_eq!((b.start_s, b.end_s), (1.0, 1.5));
        assert!((b.sum.sent_gbps - 100.0 * 8.0 / 0.5 / 1e9).abs() < 1e-12);
    }

    #[test]
    fn tcp_figures_are_read_at_each_look_then_from_the_end_of_run_reading() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, _) = listener.accept().unwrap();
        let live: Vec<Arc<LiveCounters>> = vec![Arc::default(), Arc::default()];
        let sockets = vec![
            vec![client.try_clone().unwrap()],
            vec![client.try_clone().unwrap(), client.try_clone().unwrap()],
        ];
        let mut s = Sampler::new(2, Duration::ZERO, sockets);
        let mss = TcpInfo::read(client.as_raw_fd()).unwrap().snd_mss.unwrap();
        let a = s.take(&live, 0.5, false);
        for f in a.threads.iter().chain([&a.sum]) {
            // An idle loopback connection: nothing retransmitted, but every gauge read,
            // the window in bytes a whole number of segments of its one MSS.
            assert_eq!(f.retransmits, Some(0), "{f:?}");
            assert!(f.cwnd.is_some_and(|c| c > 0), "{f:?}");
            assert_eq!(f.cwnd_bytes, f.cwnd.map(|c| c * mss), "{f:?}");
            assert!(f.srtt_us.is_some(), "{f:?}");
        }
        // Thread 1 has read its end-of-run figures: later looks take them, not the socket.
        let end = TcpInfo {
            total_retrans: a.threads[1].retransmits.map(|_| 7),
            cwnd: Some(20),
            snd_mss: Some(1000),
            srtt_us: Some(100),
            ..Default::default()
        };
        *live[1].tcp_end.lock().unwrap() = Some(vec![end, end]);
        let b = s.take(&live, 1.0, false);
        assert_eq!(
            b.threads[1].retransmits,
            Some(14),
            "7 more on each connection"
        );
        assert_eq!(
            (
                b.threads[1].cwnd,
                b.threads[1].cwnd_bytes,
                b.threads[1].srtt_us
            ),
            (Some(20), Some(20_000), Some(100))
        );
        assert_eq!(b.sum.retransmits, Some(14));
        let c0 = b.threads[0].cwnd.unwrap();
        assert_eq!(
            b.sum.cwnd,
            Some((c0 + 40 + 1) / 3),
            "the mean over connections"
        );
        // A field the kernel did not give is missing, never 0, and so is the sum.
        let missing = TcpInfo::default();
        *live[1].tcp_end.lock().unwrap() = Some(vec![end, missing]);
        let c = s.take(&live, 1.5, false);
        assert_eq!(c.threads[1].retransmits, None);
        assert_eq!(
            (c.threads[1].cwnd, c.sum.cwnd, c.sum.retransmits),
            (None, None, None)
        );
        assert_eq!((c.threads[1].cwnd_bytes, c.sum.cwnd_bytes), (None, None));
        assert_eq!(c.threads[0].retransmits, Some(0));
    }

    #[test]
    fn the_warm_up_is_before_zero() {
        let live: Vec<Arc<LiveCounters>> = vec![Arc::default()];
        let mut s = Sampler::new(1, Duration::from_secs(1), Vec::new());
        let a = s.take(&live, 1.0, true);
        let b = s.take(&live, 2.0, false);
        assert!(a.omitted && !b.omitted);
        assert_eq!((a.start_s, a.end_s, b.start_s), (-1.0, 0.0, 0.0));
    }
}
