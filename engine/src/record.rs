//! The result of one client run: one versioned serde struct that every output format —
//! human, JSON, CSV, the sweep's files — is written from.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::{Backend, ClientConfig};
use crate::stats::{FlowStats, Latency, LatencySummary, PeerReport, RingSetup, ThreadSample};

/// Bumped whenever a field changes meaning or goes away (adding one does not).
pub const SCHEMA_VERSION: u32 = 1;

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
    pub client: SideReport,
    /// The server's own figures, merged over this run's connections; null if it sent none.
    pub server: Option<SideReport>,
    /// Per client thread.
    pub threads: Vec<ThreadReport>,
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
    /// Messages the client sent (in echo, each also came back).
    pub messages: u64,
    /// (bytes sent + bytes received) × 8 / duration, in Gbit/s (10^9): the seed's figure.
    pub throughput_gbps: f64,
    /// Messages sent per second.
    pub msgs_per_s: f64,
    /// Verification errors on both sides.
    pub verify_errors: u64,
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
}

impl SideReport {
    pub fn new(
        backend: Backend,
        stats: FlowStats,
        duration: Duration,
        uring: Option<RingSetup>,
    ) -> SideReport {
        let msgs = stats.msgs_sent + stats.msgs_received;
        SideReport {
            backend,
            uring,
            zc_copied_fraction: stats.zc.copied_fraction(),
            kernel_calls_per_msg: (msgs > 0).then(|| stats.io.kernel_calls() as f64 / msgs as f64),
            cqes_per_reap: stats.io.cqes_per_reap(),
            stats,
            duration_s: duration.as_secs_f64(),
        }
    }
}

/// One client thread's share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadReport {
    pub thread: usize,
    pub connections: usize,
    pub duration_s: f64,
    pub stats: FlowStats,
}

/// What one client thread brings back.
#[derive(Debug, Clone, Default)]
pub struct ThreadResult {
    pub thread: usize,
    pub connections: usize,
    pub duration: Duration,
    pub stats: FlowStats,
    pub latency: Latency,
    /// The server's report for each of this thread's connections.
    pub server: Vec<PeerReport>,
    /// This thread's ring setup (uring).
    pub ring: Option<RingSetup>,
}

impl Record {
    /// Assembles the record of a finished run.
    pub fn new(
        config: ClientConfig,
        server_addr: String,
        started: SystemTime,
        threads: &[ThreadResult],
    ) -> Record {
        let mut client = FlowStats::default();
        let mut latency = Latency::default();
        let mut duration = Duration::ZERO;
        let mut server: Option<(&PeerReport, FlowStats, f64)> = None;
        let mut server_threads: Vec<ThreadSample> = Vec::new();
        for t in threads {
            client += &t.stats;
            latency += &t.latency;
            duration = duration.max(t.duration);
            for p in &t.server {
                let (_, stats, secs) = server.get_or_insert_with(|| (p, FlowStats::default(), 0.0));
                *stats += &p.stats;
                *secs = secs.max(p.duration_s);
                if let Some(s) = &p.thread {
                    match server_threads.iter_mut().find(|x| x.thread == s.thread) {
                        Some(x) => x.widen(s),
                        None => server_threads.push(s.clone()),
                    }
                }
            }
        }
        let secs = duration.as_secs_f64();
        let per_s = |n: f64| if secs > 0.0 { n / secs } else { 0.0 };
        let server = server.map(|(first, mut stats, secs)| {
            // Calls a server thread made for all its connections count once per thread.
            for s in &server_threads {
                stats.io += s.delta().io;
            }
            SideReport::new(
                first.backend,
                stats,
                Duration::from_secs_f64(secs),
                first.ring.clone(),
            )
        });
        let summary = Summary {
            threads: config.threads,
            connections: config.total_connections(),
            duration_s: secs,
            bytes_sent: client.bytes_sent,
            bytes_received: client.bytes_received,
            messages: client.msgs_sent,
            throughput_gbps: per_s((client.bytes_sent + client.bytes_received) as f64 * 8.0) / 1e9,
            msgs_per_s: per_s(client.msgs_sent as f64),
            verify_errors: client.verify_errors
                + server.as_ref().map_or(0, |s| s.stats.verify_errors),
        };
        Record {
            schema_version: SCHEMA_VERSION,
            copyperf_version: env!("CARGO_PKG_VERSION").into(),
            started_at: rfc3339(started),
            kernel: crate::error::kernel_release(),
            server_addr,
            summary,
            latency: latency.summary(),
            client: SideReport::new(
                config.backend,
                client,
                duration,
                threads.iter().find_map(|t| t.ring.clone()),
            ),
            server,
            threads: threads
                .iter()
                .map(|t| ThreadReport {
                    thread: t.thread,
                    connections: t.connections,
                    duration_s: t.duration.as_secs_f64(),
                    stats: t.stats.clone(),
                })
                .collect(),
            config,
        }
    }

    /// A record with every optional field present, for tests and for deriving the CSV
    /// columns from the struct definitions.
    pub fn example() -> Record {
        let config = ClientConfig::default();
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
        let mut latency = Latency::default();
        latency.record(Duration::from_micros(20));
        let thread = ThreadResult {
            thread: 0,
            connections: 1,
            duration: Duration::from_secs(1),
            stats: stats.clone(),
            latency,
            server: vec![PeerReport {
                stats,
                duration_s: 1.0,
                ring: Some(example_ring()),
                ..Default::default()
            }],
            ring: Some(example_ring()),
        };
        Record::new(config, "127.0.0.1:8080".into(), UNIX_EPOCH, &[thread])
    }
}

fn example_ring() -> RingSetup {
    RingSetup {
        flags: "single_issuer+defer_taskrun".into(),
        recv: "single".into(),
        ..Default::default()
    }
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
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_771_459_200 + 3661);
        assert_eq!(rfc3339(t), "2026-02-19T01:01:01Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
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
    fn records_round_trip_through_json() {
        let r = Record::example();
        let back: Record = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
