//! uring vs syscall, per copy mode, at 4K and 64K, stream, depth 8: interleaved in one
//! run (A B B A …), medians and spread. A benchmark, not a test: run it with
//!
//!     cargo bench --bench engines
//!
//! BENCH_REPS (default 5) and BENCH_SECS (default 2) set repeats and seconds per point.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use cli::proc::{run_client, ServerProcess};
use cli::summary::{machine, median, median_range};

const MODES: [&str; 4] = ["two-copy", "one-copy", "zc", "zc-fixed"];
const SIZES: [&str; 2] = ["4K", "64K"];
const BACKENDS: [&str; 2] = ["syscall", "uring"];

fn env_or(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<()> {
    // `cargo bench` passes --bench; a filter argument is not supported here.
    let reps = env_or("BENCH_REPS", 5.0) as usize;
    let secs = env_or("BENCH_SECS", 2.0);
    let server_bin = Path::new(env!("CARGO_BIN_EXE_server"));
    let client_bin = Path::new(env!("CARGO_BIN_EXE_client"));
    let ports = [18611u16, 18612];
    let _servers: Vec<ServerProcess> = BACKENDS
        .iter()
        .zip(ports)
        .map(|(b, p)| {
            let args = ["--bind", "127.0.0.1", "-p", &p.to_string(), "--backend", b];
            ServerProcess::start(server_bin, None, &args.map(String::from))
        })
        .collect::<Result<_>>()?;

    println!("engines: stream, depth 8, {secs} s per point, {reps} interleaved repeats");
    println!("machine: {}", machine());
    // (mode, size, backend) -> throughputs; and kernel calls per message.
    let mut gbps: BTreeMap<(usize, usize, usize), Vec<f64>> = BTreeMap::new();
    let mut calls: BTreeMap<(usize, usize, usize), Vec<f64>> = BTreeMap::new();
    for rep in 0..reps {
        for (m, mode) in MODES.iter().enumerate() {
            for (s, size) in SIZES.iter().enumerate() {
                let mut order = [0usize, 1];
                if (rep + m + s) % 2 == 1 {
                    order.reverse();
                }
                for b in order {
                    if *mode == "zc-fixed" && BACKENDS[b] == "syscall" {
                        continue;
                    }
                    let args = [
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &ports[b].to_string(),
                        "--backend",
                        BACKENDS[b],
                        "--mode",
                        mode,
                        "-s",
                        size,
                        "--workload",
                        "stream",
                        "--depth",
                        "8",
                        "-d",
                        &secs.to_string(),
                    ]
                    .map(String::from);
                    let r = run_client(client_bin, None, &args)?;
                    eprintln!(
                        "rep {rep} {mode:>8} {size:>3} {:>7}: {:6.2} Gbit/s",
                        BACKENDS[b], r.summary.throughput_gbps
                    );
                    gbps.entry((m, s, b))
                        .or_default()
                        .push(r.summary.throughput_gbps);
                    if let Some(c) = r.client.kernel_calls_per_msg {
                        calls.entry((m, s, b)).or_default().push(c);
                    }
                }
            }
        }
    }

    println!();
    println!("| mode | size | syscall Gbit/s | uring Gbit/s | uring / syscall | calls per msg (syscall / uring) |");
    println!("|---|---|---|---|---|---|");
    for (m, mode) in MODES.iter().enumerate() {
        for (s, size) in SIZES.iter().enumerate() {
            let get = |b: usize| gbps.get(&(m, s, b)).cloned().unwrap_or_default();
            let (sys, uring) = (get(0), get(1));
            let ratio = match (median(&sys), median(&uring)) {
                (Some(a), Some(b)) if a > 0.0 => format!("{:.2}×", b / a),
                _ => "–".into(),
            };
            let c = |b: usize| {
                calls
                    .get(&(m, s, b))
                    .and_then(|v| median(v))
                    .map_or("–".into(), |x| format!("{x:.2}"))
            };
            println!(
                "| {mode} | {size} | {} | {} | {ratio} | {} / {} |",
                median_range(&sys, 2),
                median_range(&uring, 2),
                c(0),
                c(1)
            );
        }
    }
    Ok(())
}
