//! copyperf compare: copyperf beside iperf3 (stream) and sockperf (echo ping-pong) on
//! loopback, interleaved, with medians, spread and ratios. `scripts/compare.sh` installs
//! the peers where missing and builds first.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{bail, Result};
use clap::{ArgAction, Parser};
use cli::compare::{self, CompareConfig, Sample};
use engine::config::format_size;

/// Run copyperf beside iperf3 and sockperf on loopback and write peers.csv and peers.svg.
#[derive(Debug, Parser)]
#[command(
    name = "compare",
    version,
    disable_help_flag = true,
    max_term_width = 100
)]
struct Args {
    /// Message sizes, comma-separated (K/M suffixes).
    #[arg(long, value_delimiter = ',', default_value = "1K,4K,16K,64K", value_parser = cli::size_arg)]
    sizes: Vec<usize>,
    /// Interleaved repeats of every measurement.
    #[arg(long, value_name = "N", default_value_t = 5)]
    repeats: usize,
    /// Seconds per measurement (whole seconds).
    #[arg(short = 'd', long, value_name = "SECONDS", default_value_t = 3)]
    duration: u64,
    /// Where the results folder goes.
    #[arg(long, value_name = "DIR", default_value = "results")]
    out: PathBuf,
    /// Appended to the folder name.
    #[arg(long)]
    label: Option<String>,
    /// First of four consecutive ports (copyperf syscall, copyperf uring, iperf3, sockperf).
    #[arg(long, default_value_t = 18701)]
    port: u16,
    /// CPU for every server.
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,
    /// CPU for every client [default: the last CPU].
    #[arg(long)]
    client_cpu: Option<usize>,
    /// Directory holding copyperf's server and client [default: next to this binary].
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(args: Args) -> Result<()> {
    if args.sizes.is_empty() || args.repeats == 0 || args.duration == 0 {
        bail!("give at least one size, one repeat and one second");
    }
    let cpus = engine::placement::available_cpus();
    let client_cpu = args.client_cpu.or(cpus.last().copied()).unwrap_or(0);
    for tool in ["iperf3", "sockperf", "taskset"] {
        if compare::tool_version(tool) == "not installed" {
            bail!("{tool} is not installed (scripts/compare.sh installs iperf3 and sockperf from Debian)");
        }
    }
    let config = CompareConfig {
        sizes: args.sizes.clone(),
        repeats: args.repeats,
        seconds: args.duration,
        bin_dir: args.bin_dir.unwrap_or_else(cli::proc::bin_dir),
        port: args.port,
        server_cpu: args.server_cpu,
        client_cpu,
    };
    let name = cli::sweep::folder_name(
        SystemTime::now(),
        &cli::sweep::hostname(),
        args.label.as_deref(),
    );
    let dir = args.out.join(format!("peers_{name}"));
    eprintln!("machine: {}", cli::summary::machine());
    eprintln!(
        "{}; {}; servers on CPU {}, clients on CPU {}; {} s per measurement, {} interleaved repeats",
        compare::tool_version("iperf3"),
        compare::tool_version("sockperf"),
        config.server_cpu,
        config.client_cpu,
        config.seconds,
        config.repeats
    );
    let total = config.sizes.len() * config.repeats * 8;
    let done = std::cell::Cell::new(0);
    let on = |s: &Sample| {
        done.set(done.get() + 1);
        let unit = match s.comparison {
            compare::Comparison::Stream => "Gbit/s",
            compare::Comparison::Echo => "µs p50 RTT",
        };
        eprintln!(
            "[{:>3}/{total}] {:<6} {:>4} {:<26} {:9.2} {unit}",
            done.get(),
            s.comparison.name(),
            format_size(s.size),
            s.contender.label(),
            s.value
        );
    };
    let started_at = engine::rfc3339(SystemTime::now());
    let samples = compare::run(&config, &on)?;
    let rows = compare::write(&dir, &samples, &config.sizes)?;
    let meta = serde_json::json!({
        "copyperf_version": env!("CARGO_PKG_VERSION"),
        "git_revision": cli::sweep::git_revision(),
        "command_line": std::env::args().collect::<Vec<_>>().join(" "),
        "host": cli::sweep::hostname(),
        "machine": cli::summary::machine(),
        "iperf3": compare::tool_version("iperf3"),
        "sockperf": compare::tool_version("sockperf"),
        "network": "loopback 127.0.0.1",
        "sizes": config.sizes,
        "repeats": config.repeats,
        "seconds": config.seconds,
        "server_cpu": config.server_cpu,
        "client_cpu": config.client_cpu,
        "started_at": started_at,
        "finished_at": engine::rfc3339(SystemTime::now()),
    });
    std::fs::write(
        dir.join("meta.json"),
        serde_json::to_string_pretty(&meta)? + "\n",
    )?;
    println!("\n{}", compare::table(&rows));
    println!("Targets:");
    for t in compare::targets(&rows) {
        let verdict = match t.met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "not measured",
        };
        println!("- {}: {verdict} ({})", t.text, t.detail);
    }
    println!(
        "\nwritten: {}/{{samples.csv, peers.csv, peers.svg}}",
        dir.display()
    );
    Ok(())
}
