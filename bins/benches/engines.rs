//! The engines side by side, interleaved in one run (A B, then B A, …), medians and
//! spread. A benchmark, not a test:
//!
//!     cargo bench --bench engines
//!
//! 1. uring vs syscall for each copy mode at 4K and 64K, stream, depth 8.
//! 2. uring two-copy receive: one RECV per message (single) vs a multishot RECV into
//!    provided buffers, echo depth 1 and stream depth 8, at 4K and 64K.
//! 3. uring vs syscall with the server discarding (`--rx discard`), one-copy and
//!    two-copy, stream depth 8, at 1K, 4K, 16K and 64K.
//! 4. echo depth 1, one-copy: the syscall engine vs uring, uring with SQPOLL on both
//!    sides, and uring with NAPI busy polling (`--busy-poll 50`; loopback and veth have no
//!    NAPI, so the kernel takes the setting and it polls nothing there): p50 round trip.
//!
//! BENCH_REPS (default 5) and BENCH_SECS (default 2) set repeats and seconds per point;
//! BENCH_PARTS (default 1,2,3,4) picks the parts.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use cli::proc::{run_client, ServerProcess};
use cli::summary::{machine, median, median_range};
use engine::config::SqPoll;
use engine::{Backend, ClientConfig, Mode, Record, RxMode, ServerConfig, UringRecv, Workload};

/// One side of a comparison: the engine both ends run, how uring receives, and how both
/// ends poll.
struct Variant {
    label: &'static str,
    backend: Backend,
    uring_recv: UringRecv,
    sqpoll: bool,
    busy_poll_us: Option<u32>,
}

impl Variant {
    const fn engine(label: &'static str, backend: Backend) -> Variant {
        Variant {
            label,
            backend,
            uring_recv: UringRecv::DEFAULT,
            sqpoll: false,
            busy_poll_us: None,
        }
    }
}

/// One point measured under every variant.
struct Case {
    label: String,
    mode: Mode,
    size: usize,
    workload: Workload,
    depth: usize,
    rx: RxMode,
}

impl Case {
    fn new(mode: Mode, size: usize, workload: Workload, depth: usize, rx: RxMode) -> Case {
        Case {
            label: format!("{mode} {workload} d{depth} {}K", size / 1024),
            mode,
            size,
            workload,
            depth,
            rx,
        }
    }
}

fn env_or(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Bench<'a> {
    reps: usize,
    secs: f64,
    server_bin: &'a Path,
    client_bin: &'a Path,
}

impl Bench<'_> {
    /// Runs every case under every variant that runs it, interleaved, and returns
    /// records per [case][variant].
    fn compare(&mut self, variants: &[Variant], cases: &[Case]) -> Result<Vec<Vec<Vec<Record>>>> {
        let mut servers = Vec::new();
        for v in variants {
            let config = ServerConfig {
                bind: [127, 0, 0, 1].into(),
                port: 0,
                backend: v.backend,
                uring_recv: v.uring_recv,
                sqpoll: v.sqpoll.then_some(SqPoll { cpu: None }),
                busy_poll_us: v.busy_poll_us,
                ..ServerConfig::default()
            };
            servers.push(ServerProcess::start(self.server_bin, None, &config)?);
        }
        let mut out = vec![vec![Vec::new(); variants.len()]; cases.len()];
        for rep in 0..self.reps {
            for (c, case) in cases.iter().enumerate() {
                let mut order: Vec<usize> = (0..variants.len()).collect();
                if (rep + c) % 2 == 1 {
                    order.reverse();
                }
                for v in order {
                    let variant = &variants[v];
                    if !case.mode.supported_on(variant.backend) {
                        continue;
                    }
                    let config = ClientConfig {
                        host: "127.0.0.1".into(),
                        port: servers[v].addr().port(),
                        backend: variant.backend,
                        uring_recv: variant.uring_recv,
                        mode: case.mode,
                        size: case.size,
                        workload: case.workload,
                        depth: case.depth,
                        rx: case.rx,
                        sqpoll: variant.sqpoll.then_some(SqPoll { cpu: None }),
                        busy_poll_us: variant.busy_poll_us,
                        duration: Duration::from_secs_f64(self.secs),
                        ..ClientConfig::default()
                    };
                    let r = run_client(self.client_bin, None, &config)?;
                    eprintln!(
                        "rep {rep} {:<28} {:<10} {:7.2} Gbit/s, p50 {:.1} µs",
                        case.label,
                        variant.label,
                        r.summary.throughput_gbps,
                        r.latency.as_ref().map_or(f64::NAN, |l| l.p50_us)
                    );
                    out[c][v].push(r);
                }
            }
        }
        drop(servers);
        Ok(out)
    }
}

fn column(records: &[Record], f: impl Fn(&Record) -> Option<f64>) -> Vec<f64> {
    records.iter().filter_map(f).collect()
}

fn ratio(a: &[f64], b: &[f64]) -> String {
    match (median(a), median(b)) {
        (Some(a), Some(b)) if a > 0.0 => format!("{:.2}×", b / a),
        _ => "–".into(),
    }
}

/// What a table shows of each record.
struct Metric {
    /// `Gbit/s`, `p50 µs`.
    unit: &'static str,
    value: fn(&Record) -> Option<f64>,
}

const THROUGHPUT: Metric = Metric {
    unit: "Gbit/s",
    value: |r| Some(r.summary.throughput_gbps),
};

const P50: Metric = Metric {
    unit: "p50 µs",
    value: |r| Some(r.latency.as_ref()?.p50_us),
};

/// Prints one comparison of a first variant against each other as a markdown table:
/// medians [spread] of each, each one's ratio to the first, and the median of `calls`
/// (kernel calls per message) for each.
fn print_table(
    title: &str,
    variants: &[Variant],
    metric: &Metric,
    calls_label: &str,
    cases: &[Case],
    results: &[Vec<Vec<Record>>],
    calls: fn(&Record) -> Option<f64>,
) {
    let names: Vec<&str> = variants.iter().map(|v| v.label).collect();
    let unit = metric.unit;
    println!("\n### {title}\n");
    let mut head = format!("| case | {} {unit} |", names[0]);
    for n in &names[1..] {
        head += &format!(" {n} {unit} | {n} / {} |", names[0]);
    }
    println!("{head} {calls_label} ({}) |", names.join(" / "));
    println!("|---|{}---|", "---|".repeat(1 + 2 * (names.len() - 1)));
    for (case, r) in cases.iter().zip(results) {
        let values: Vec<Vec<f64>> = r.iter().map(|v| column(v, metric.value)).collect();
        let mut line = format!("| {} | {} |", case.label, median_range(&values[0], 2));
        for v in &values[1..] {
            line += &format!(" {} | {} |", median_range(v, 2), ratio(&values[0], v));
        }
        let calls: Vec<String> = (0..r.len())
            .map(|v| median(&column(&r[v], calls)).map_or("–".into(), |c| format!("{c:.2}")))
            .collect();
        println!("{line} {} |", calls.join(" / "));
    }
}

/// Whether BENCH_PARTS (default: all) names part `n`.
fn part(n: usize) -> bool {
    std::env::var("BENCH_PARTS").map_or(true, |v| v.split(',').any(|p| p.trim() == n.to_string()))
}

fn main() -> Result<()> {
    let mut bench = Bench {
        reps: env_or("BENCH_REPS", 5.0) as usize,
        secs: env_or("BENCH_SECS", 2.0),
        server_bin: Path::new(env!("CARGO_BIN_EXE_server")),
        client_bin: Path::new(env!("CARGO_BIN_EXE_client")),
    };
    println!(
        "{} s per point, {} interleaved repeats; machine: {}",
        bench.secs,
        bench.reps,
        machine()
    );
    const K: usize = 1024;

    let engines = [
        Variant::engine("syscall", Backend::Syscall),
        Variant::engine("uring", Backend::Uring),
    ];
    let client_calls: fn(&Record) -> Option<f64> = |r| r.client.kernel_calls_per_msg;
    let server_calls: fn(&Record) -> Option<f64> = |r| r.server.as_ref()?.kernel_calls_per_msg;

    if part(1) {
        let mut cases = Vec::new();
        for &mode in Mode::ALL {
            for size in [4 * K, 64 * K] {
                cases.push(Case::new(mode, size, Workload::Stream, 8, RxMode::Copy));
            }
        }
        let results = bench.compare(&engines, &cases)?;
        print_table(
            "1. uring vs syscall: stream, depth 8",
            &engines,
            &THROUGHPUT,
            "client kernel calls per msg",
            &cases,
            &results,
            client_calls,
        );
    }

    if part(2) {
        let mut single = Variant::engine("single", Backend::Uring);
        single.uring_recv = UringRecv::Single;
        let mut multishot = Variant::engine("multishot", Backend::Uring);
        multishot.uring_recv = UringRecv::Multishot;
        let recv = [single, multishot];
        let mut cases = Vec::new();
        for (workload, depth) in [(Workload::Echo, 1), (Workload::Stream, 8)] {
            for size in [4 * K, 64 * K] {
                cases.push(Case::new(
                    Mode::TwoCopy,
                    size,
                    workload,
                    depth,
                    RxMode::Copy,
                ));
            }
        }
        let results = bench.compare(&recv, &cases)?;
        print_table(
            "2. uring two-copy receive: RECV per message vs multishot into provided buffers",
            &recv,
            &THROUGHPUT,
            "server enters per msg",
            &cases,
            &results,
            server_calls,
        );
    }

    if part(3) {
        let mut cases = Vec::new();
        for mode in [Mode::TwoCopy, Mode::OneCopy] {
            for size in [K, 4 * K, 16 * K, 64 * K] {
                cases.push(Case::new(mode, size, Workload::Stream, 8, RxMode::Discard));
            }
        }
        let results = bench.compare(&engines, &cases)?;
        print_table(
            "3. uring vs syscall: stream, depth 8, the server discarding (--rx discard)",
            &engines,
            &THROUGHPUT,
            "server kernel calls per msg",
            &cases,
            &results,
            server_calls,
        );
    }

    if part(4) {
        let mut sqpoll = Variant::engine("uring sqpoll", Backend::Uring);
        sqpoll.sqpoll = true;
        let mut busy = Variant::engine("uring busy-poll", Backend::Uring);
        busy.busy_poll_us = Some(50);
        let polling = [
            Variant::engine("syscall", Backend::Syscall),
            Variant::engine("uring", Backend::Uring),
            sqpoll,
            busy,
        ];
        let cases: Vec<Case> = [K, 4 * K, 16 * K, 64 * K]
            .into_iter()
            .map(|size| Case::new(Mode::OneCopy, size, Workload::Echo, 1, RxMode::Copy))
            .collect();
        let results = bench.compare(&polling, &cases)?;
        print_table(
            "4. echo depth 1: syscall vs uring, plain and polling (lower is better)",
            &polling,
            &P50,
            "client kernel calls per msg",
            &cases,
            &results,
            client_calls,
        );
    }
    Ok(())
}
