//! The engines side by side, interleaved in one run (A B, then B A, …), medians and
//! spread. A benchmark, not a test:
//!
//!     cargo bench --bench engines
//!
//! 1. uring vs syscall for each copy mode at 4K and 64K, stream, depth 8.
//! 2. uring two-copy receive: one RECV per message (single) vs a multishot RECV into
//!    provided buffers, echo depth 1 and stream depth 8, at 4K and 64K.
//!
//! BENCH_REPS (default 5) and BENCH_SECS (default 2) set repeats and seconds per point.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use cli::proc::{run_client, ServerProcess};
use cli::summary::{machine, median, median_range};
use engine::{Backend, ClientConfig, Mode, Record, ServerConfig, UringRecv, Workload};

/// One side of a comparison: the engine both ends run and how uring receives.
struct Variant {
    label: &'static str,
    backend: Backend,
    uring_recv: UringRecv,
}

/// One point measured under every variant.
struct Case {
    label: String,
    mode: Mode,
    size: usize,
    workload: Workload,
    depth: usize,
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
                        duration: Duration::from_secs_f64(self.secs),
                        ..ClientConfig::default()
                    };
                    let r = run_client(self.client_bin, None, &config)?;
                    eprintln!(
                        "rep {rep} {:<24} {:<10} {:7.2} Gbit/s",
                        case.label, variant.label, r.summary.throughput_gbps
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

/// Prints one comparison of two variants as a markdown table: medians [spread] of each,
/// their ratio, and the median of `calls` (kernel calls per message) for each.
fn print_table(
    title: &str,
    names: [&str; 2],
    calls_label: &str,
    cases: &[Case],
    results: &[Vec<Vec<Record>>],
    calls: fn(&Record) -> Option<f64>,
) {
    let [a, b] = names;
    println!("\n### {title}\n");
    println!("| case | {a} Gbit/s | {b} Gbit/s | {b} / {a} | {calls_label} ({a} / {b}) |");
    println!("|---|---|---|---|---|");
    for (case, r) in cases.iter().zip(results) {
        let gbps: Vec<Vec<f64>> = r
            .iter()
            .map(|v| column(v, |x| Some(x.summary.throughput_gbps)))
            .collect();
        let calls =
            |v: usize| median(&column(&r[v], calls)).map_or("–".into(), |c| format!("{c:.2}"));
        println!(
            "| {} | {} | {} | {} | {} / {} |",
            case.label,
            median_range(&gbps[0], 2),
            median_range(&gbps[1], 2),
            ratio(&gbps[0], &gbps[1]),
            calls(0),
            calls(1)
        );
    }
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

    // 1. Engines per mode.
    let engines = [
        Variant {
            label: "syscall",
            backend: Backend::Syscall,
            uring_recv: UringRecv::DEFAULT,
        },
        Variant {
            label: "uring",
            backend: Backend::Uring,
            uring_recv: UringRecv::DEFAULT,
        },
    ];
    let mut cases = Vec::new();
    for &mode in Mode::ALL {
        for size in [4 * K, 64 * K] {
            cases.push(Case {
                label: format!("{mode} {}K", size / K),
                mode,
                size,
                workload: Workload::Stream,
                depth: 8,
            });
        }
    }
    let results = bench.compare(&engines, &cases)?;
    print_table(
        "uring vs syscall: stream, depth 8",
        ["syscall", "uring"],
        "kernel calls per msg",
        &cases,
        &results,
        |r| r.client.kernel_calls_per_msg,
    );

    // 2. Two-copy receive on uring.
    let recv = [
        Variant {
            label: "single",
            backend: Backend::Uring,
            uring_recv: UringRecv::Single,
        },
        Variant {
            label: "multishot",
            backend: Backend::Uring,
            uring_recv: UringRecv::Multishot,
        },
    ];
    let mut cases = Vec::new();
    for (workload, depth) in [(Workload::Echo, 1), (Workload::Stream, 8)] {
        for size in [4 * K, 64 * K] {
            cases.push(Case {
                label: format!("{workload} d{depth} {}K", size / K),
                mode: Mode::TwoCopy,
                size,
                workload,
                depth,
            });
        }
    }
    let results = bench.compare(&recv, &cases)?;
    print_table(
        "uring two-copy receive: RECV per message vs multishot into provided buffers",
        ["single", "multishot"],
        "server enters per msg",
        &cases,
        &results,
        |r| r.server.as_ref()?.kernel_calls_per_msg,
    );
    Ok(())
}
