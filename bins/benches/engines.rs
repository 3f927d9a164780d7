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

use anyhow::Result;
use cli::proc::{run_client, ServerProcess};
use cli::summary::{machine, median, median_range};
use engine::Record;

/// One side of a comparison: a server and the client flags that go with it.
struct Variant {
    label: &'static str,
    server: &'static [&'static str],
    client: &'static [&'static str],
}

/// One point measured under every variant.
struct Case {
    label: String,
    client: Vec<String>,
    /// Variants this case does not apply to (by index).
    skip: Vec<usize>,
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
    next_port: u16,
}

impl Bench<'_> {
    /// Runs every case under every variant, interleaved, and returns records per
    /// [case][variant].
    fn compare(&mut self, variants: &[Variant], cases: &[Case]) -> Result<Vec<Vec<Vec<Record>>>> {
        let mut ports = Vec::new();
        let mut servers = Vec::new();
        for v in variants {
            let port = self.next_port;
            self.next_port += 1;
            let mut args: Vec<String> = ["--bind", "127.0.0.1", "-p", &port.to_string()]
                .map(String::from)
                .to_vec();
            args.extend(v.server.iter().map(|s| s.to_string()));
            servers.push(ServerProcess::start(self.server_bin, None, &args)?);
            ports.push(port);
        }
        let mut out = vec![vec![Vec::new(); variants.len()]; cases.len()];
        for rep in 0..self.reps {
            for (c, case) in cases.iter().enumerate() {
                let mut order: Vec<usize> = (0..variants.len()).collect();
                if (rep + c) % 2 == 1 {
                    order.reverse();
                }
                for v in order.into_iter().filter(|v| !case.skip.contains(v)) {
                    let mut args: Vec<String> = vec![
                        "-h".into(),
                        "127.0.0.1".into(),
                        "-p".into(),
                        ports[v].to_string(),
                        "-d".into(),
                        self.secs.to_string(),
                    ];
                    args.extend(variants[v].client.iter().map(|s| s.to_string()));
                    args.extend(case.client.iter().cloned());
                    let r = run_client(self.client_bin, None, &args)?;
                    eprintln!(
                        "rep {rep} {:<24} {:<10} {:7.2} Gbit/s",
                        case.label, variants[v].label, r.summary.throughput_gbps
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
        next_port: 18611,
    };
    println!(
        "{} s per point, {} interleaved repeats; machine: {}",
        bench.secs,
        bench.reps,
        machine()
    );

    // 1. Engines per mode.
    let engines = [
        Variant {
            label: "syscall",
            server: &["--backend", "syscall"],
            client: &["--backend", "syscall"],
        },
        Variant {
            label: "uring",
            server: &["--backend", "uring"],
            client: &["--backend", "uring"],
        },
    ];
    let mut cases = Vec::new();
    for mode in ["two-copy", "one-copy", "zc", "zc-fixed"] {
        for size in ["4K", "64K"] {
            cases.push(Case {
                label: format!("{mode} {size}"),
                client: [
                    "--mode",
                    mode,
                    "-s",
                    size,
                    "--workload",
                    "stream",
                    "--depth",
                    "8",
                ]
                .map(String::from)
                .to_vec(),
                skip: if mode == "zc-fixed" { vec![0] } else { vec![] },
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
            server: &["--backend", "uring", "--uring-recv", "single"],
            client: &["--backend", "uring", "--uring-recv", "single"],
        },
        Variant {
            label: "multishot",
            server: &["--backend", "uring", "--uring-recv", "multishot"],
            client: &["--backend", "uring", "--uring-recv", "multishot"],
        },
    ];
    let mut cases = Vec::new();
    for (workload, depth) in [("echo", "1"), ("stream", "8")] {
        for size in ["4K", "64K"] {
            cases.push(Case {
                label: format!("{workload} d{depth} {size}"),
                client: [
                    "--mode",
                    "two-copy",
                    "-s",
                    size,
                    "--workload",
                    workload,
                    "--depth",
                    depth,
                ]
                .map(String::from)
                .to_vec(),
                skip: vec![],
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
