//! copyperf compare: copyperf beside the fastest tools doing the same operation on
//! loopback (iperf3, sockperf, qperf and copyperf's own bare io_uring loops), interleaved,
//! with medians, spread and ratios. `scripts/compare.sh` installs the tools where missing
//! and builds first.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{bail, Result};
use clap::{ArgAction, Parser};
use cli::compare::{self, output, tools, CompareConfig, Comparison, Progress};
use engine::config::format_size;

/// Run copyperf beside iperf3, sockperf, qperf and bare io_uring loops on loopback, and
/// write samples.csv, peers.csv, summary.md and peers.svg.
#[derive(Debug, Parser)]
#[command(
    name = "compare",
    version,
    disable_help_flag = true,
    max_term_width = 100
)]
struct Args {
    /// Comparisons to run, comma-separated: stream (receiver copies, vs iperf3), discard
    /// (receiver discards, vs the io_uring SEND loop), zero-copy (vs the SEND_ZC loop),
    /// echo (vs sockperf and qperf), flows and flows-discard (several flows at once)
    /// [default: all]
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    only: Vec<Comparison>,
    /// Message sizes, comma-separated (K/M suffixes).
    #[arg(long, value_delimiter = ',', default_value = "1K,4K,16K,64K", value_parser = cli::size_arg)]
    sizes: Vec<usize>,
    /// Message sizes of the flows comparisons.
    #[arg(long, value_delimiter = ',', default_value = "16K", value_parser = cli::size_arg)]
    flow_sizes: Vec<usize>,
    /// Flows at once in the flows comparisons.
    #[arg(long, value_name = "N", default_value_t = 4)]
    flows: usize,
    /// Interleaved rounds of every measurement.
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
    /// First of seven consecutive ports (copyperf syscall, uring, uring with SQPOLL,
    /// iperf3, sockperf, qperf, the loop's receiver).
    #[arg(long, default_value_t = 18701)]
    port: u16,
    /// CPU for every server.
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,
    /// CPU for every client [default: the last CPU].
    #[arg(long)]
    client_cpu: Option<usize>,
    /// Directory holding copyperf's server, client and baseline [default: next to this
    /// binary].
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Write a results folder's peers.csv, summary.md and peers.svg again from its
    /// samples.csv and meta.json (this build's tables and targets); runs nothing.
    #[arg(long, value_name = "DIR")]
    render: Option<PathBuf>,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
}

/// `--render DIR`: the folder's files again from what it measured.
fn render(dir: &std::path::Path) -> Result<()> {
    use anyhow::Context as _;
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .with_context(|| format!("reading {}", dir.join(name).display()))
    };
    let meta: serde_json::Value = serde_json::from_str(&read("meta.json")?)
        .with_context(|| format!("{}/meta.json is not JSON", dir.display()))?;
    let outcome = compare::Outcome {
        samples: output::read_samples(&read("samples.csv")?)?,
        failed: output::read_failed(&meta),
    };
    let flows = meta["flows"].as_u64().unwrap_or(4) as usize;
    let machine = meta["machine"].as_str().unwrap_or("unknown machine");
    let rows = output::write(dir, &outcome, flows, machine)?;
    print_results(&rows, flows);
    Ok(())
}

/// The ratio table and the targets, on stdout.
fn print_results(rows: &[output::Row], flows: usize) {
    println!("\n{}", output::table(rows, flows));
    println!("Targets:");
    print!("{}", output::targets_text(&output::targets(rows)));
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
    if let Some(dir) = &args.render {
        return render(dir);
    }
    if args.sizes.is_empty() || args.repeats == 0 || args.duration == 0 || args.flows == 0 {
        bail!("give at least one size, one repeat, one second and one flow");
    }
    let cpus = engine::placement::available_cpus();
    let client_cpu = args.client_cpu.or(cpus.last().copied()).unwrap_or(0);
    let mut comparisons = if args.only.is_empty() {
        Comparison::ALL.to_vec()
    } else {
        args.only.clone()
    };
    comparisons.sort();
    comparisons.dedup();
    let config = CompareConfig {
        comparisons,
        sizes: args.sizes.clone(),
        flow_sizes: args.flow_sizes.clone(),
        flows: args.flows,
        repeats: args.repeats,
        seconds: args.duration,
        bin_dir: args.bin_dir.unwrap_or_else(cli::proc::bin_dir),
        port: args.port,
        server_cpu: args.server_cpu,
        client_cpu,
    };
    for tool in config.tools() {
        if tools::tool_version(tool) == "not installed" {
            let package = tools::PACKAGED
                .iter()
                .find(|(t, _)| *t == tool)
                .map_or(tool, |(_, p)| p);
            bail!("{tool} is not installed (scripts/compare.sh installs it: apt-get install {package})");
        }
    }
    for bin in ["server", "client", "baseline"] {
        if !tools::present(&config.bin_dir.join(bin)) {
            bail!(
                "{} has no {bin} (build with cargo build --release --bins, or give --bin-dir)",
                config.bin_dir.display()
            );
        }
    }
    let name = cli::sweep::folder_name(
        SystemTime::now(),
        &cli::sweep::hostname(),
        args.label.as_deref(),
    );
    let dir = args.out.join(format!("peers_{name}"));
    let machine = cli::summary::machine();
    eprintln!("machine: {machine}");
    let versions: Vec<String> = config
        .tools()
        .iter()
        .filter(|t| **t != "taskset")
        .map(|t| tools::tool_version(t))
        .collect();
    eprintln!(
        "{}; servers on CPU {}, clients on CPU {}; {} s per measurement, {} interleaved rounds",
        versions.join("; "),
        config.server_cpu,
        config.client_cpu,
        config.seconds,
        config.repeats
    );
    let total = config.runs();
    let done = std::cell::Cell::new(0);
    let on = |p: Progress| {
        done.set(done.get() + 1);
        match p {
            Progress::Measured(samples) => {
                let Some(first) = samples.first() else { return };
                let values: Vec<String> = samples
                    .iter()
                    .map(|s| format!("{:.2} {} {}", s.value, s.metric.unit(), s.metric.name()))
                    .collect();
                eprintln!(
                    "[{:>3}/{total}] {:<13} {:>4} {:<32} {}",
                    done.get(),
                    first.comparison.name(),
                    format_size(first.size),
                    first.contender.label(),
                    values.join(", ")
                );
            }
            Progress::Failed {
                comparison,
                contender,
                size,
                error,
            } => eprintln!(
                "[{:>3}/{total}] {:<13} {:>4} {:<32} FAILED, left out from now on: {error:#}",
                done.get(),
                comparison.name(),
                format_size(size),
                contender.label(),
            ),
        }
    };
    let started_at = engine::rfc3339(SystemTime::now());
    let outcome = compare::run(&config, &on)?;
    let rows = output::write(&dir, &outcome, config.flows, &machine)?;
    let tool_versions: serde_json::Map<String, serde_json::Value> = config
        .tools()
        .iter()
        .map(|t| (t.to_string(), tools::tool_version(t).into()))
        .collect();
    let meta = serde_json::json!({
        "copyperf_version": env!("CARGO_PKG_VERSION"),
        "git_revision": cli::sweep::git_revision(),
        "command_line": std::env::args().collect::<Vec<_>>().join(" "),
        "host": cli::sweep::hostname(),
        "machine": machine,
        "tools": tool_versions,
        "network": "loopback 127.0.0.1",
        "comparisons": config.comparisons.iter().map(|c| c.name()).collect::<Vec<_>>(),
        "sizes": config.sizes,
        "flow_sizes": config.flow_sizes,
        "flows": config.flows,
        "stream_depth": compare::STREAM_DEPTH,
        "repeats": config.repeats,
        "seconds": config.seconds,
        "server_cpu": config.server_cpu,
        "client_cpu": config.client_cpu,
        "failed": outcome.failed.iter().map(|((c, who), why)| serde_json::json!({
            "comparison": c.name(), "contender": who.label(), "error": why,
        })).collect::<Vec<_>>(),
        "started_at": started_at,
        "finished_at": engine::rfc3339(SystemTime::now()),
    });
    std::fs::write(
        dir.join("meta.json"),
        serde_json::to_string_pretty(&meta)? + "\n",
    )?;
    print_results(&rows, config.flows);
    println!(
        "\nwritten: {}/{{samples.csv, peers.csv, summary.md, peers.svg, meta.json}}",
        dir.display()
    );
    Ok(())
}
