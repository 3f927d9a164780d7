//! copyperf sweep: runs the engine × mode × size × threads matrix through an agent on
//! each host — server and client(s): local children, network namespaces, ssh hosts or
//! daemons — and writes one results folder (the seed's CSVs, records, metadata, plots,
//! report). `scripts/sweep.sh` wraps it with the build and the network namespaces.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use clap::{ArgAction, Parser};
use cli::agent::control::{HostSpec, Reach};
use cli::sweep::{self, Matrix, Network, SweepConfig, SweepEvent};
use cli::{EnumArg, STOP};
use engine::config::{parse_size, Backend, CounterScope, Mode, Workload};
use indicatif::{ProgressBar, ProgressStyle};

/// Run the copyperf matrix and write a results folder.
///
/// Default: engines syscall and uring × modes two-copy, one-copy, zc, sendfile (+ zc-fixed
/// on uring) × sizes 1K, 4K, 16K, 64K × threads 1, 2, 4, 8, echo, split placement, 3 rounds of 2 s
/// per point (each round the whole matrix in a fresh shuffled order), counters per core.
/// Exit codes: 0 done, 1 failure, 2 bad flags, 130 interrupted (the points measured so far
/// are kept).
#[derive(Debug, Parser)]
#[command(
    name = "sweep",
    version,
    disable_help_flag = true,
    max_term_width = 100
)]
struct Args {
    /// Engines, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "syscall,uring", value_parser = Backend::parser())]
    engines: Vec<Backend>,
    /// Copy modes, comma-separated (zc-fixed runs on uring only).
    #[arg(long, value_delimiter = ',', default_value = "two-copy,one-copy,zc,zc-fixed,sendfile", value_parser = Mode::parser())]
    modes: Vec<Mode>,
    /// Message sizes, comma-separated (K/M suffixes) [default: 1K,4K,16K,64K; --quick: 1K,64K].
    #[arg(long, value_delimiter = ',', value_parser = cli::size_arg)]
    sizes: Option<Vec<usize>>,
    /// Thread counts, comma-separated [default: 1,2,4,8; --quick: 1,4].
    #[arg(long, value_delimiter = ',')]
    threads: Option<Vec<usize>>,
    /// Workload for every point.
    #[arg(long, default_value = "echo", value_parser = Workload::parser())]
    workload: Workload,
    /// Messages in flight per connection [default: 1; with --rates, 64: the most echoes
    /// outstanding a connection allows while it keeps its schedule].
    #[arg(long, value_name = "N")]
    depth: Option<usize>,
    /// Open-loop rates, comma-separated, messages a second in all (k/M suffixes: 5k,
    /// 20k, 1.5M): each is a dimension of the matrix, every echo point runs at each on a
    /// fixed schedule with latency timed from each message's due time (the client's
    /// --rate), and the report draws latency against the load achieved. With several
    /// client hosts the rate is the total: each host runs its share. Echo only.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = cli::sweep_rate_arg)]
    rates: Vec<u64>,
    /// Seconds per point [default: 2; --quick: 1].
    #[arg(short = 'd', long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Rounds: the whole matrix runs once per round, in a fresh shuffled order, so drift
    /// spreads over all points; files show medians and the [min–max] spread, and the report
    /// calls a difference only where the spreads do not overlap [default: 3, the fewest the report judges].
    #[arg(long, value_name = "N")]
    repeats: Option<usize>,
    /// Placement policies, comma-separated, each applied to both sides at every thread
    /// count: split (servers on the first half of the CPUs, clients on the other), paired
    /// (client thread i and server thread i share a CPU), unpinned. Two or more make
    /// placement a dimension of the matrix, with its own section in the report.
    #[arg(long, value_delimiter = ',', default_value = "split", value_parser = engine::placement::PlacementPolicy::parser())]
    placement: Vec<engine::placement::PlacementPolicy>,
    /// Receive paths, comma-separated: copy (recv into the message, verified), discard
    /// (MSG_TRUNC: the kernel drops the bytes), zerocopy (TCP_ZEROCOPY_RECEIVE, syscall
    /// only). Two or more make the receive path a dimension, compared in "Which path wins
    /// where".
    #[arg(long, value_delimiter = ',', default_value = "copy", value_parser = engine::RxMode::parser())]
    rx: Vec<engine::RxMode>,
    /// Polling options, comma-separated: plain, sqpoll (IORING_SETUP_SQPOLL on both sides'
    /// rings; uring points only), busy-poll (NAPI on the rings, SO_BUSY_POLL on the
    /// sockets, 50 µs, both engines). Two or more make it a dimension, compared in "Which
    /// path wins where".
    #[arg(long, value_delimiter = ',', default_value = "plain", value_parser = engine::PollOpt::parser())]
    uring_opts: Vec<engine::PollOpt>,
    /// Seeds the rounds' shuffled orders [default: from the clock]; recorded in meta.json.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// A short run: 3 rounds of 1 s per point, sizes 1K and 64K, threads 1 and 4 (flags
    /// still override).
    #[arg(long)]
    quick: bool,
    /// Appended to the results folder's name.
    #[arg(long)]
    label: Option<String>,
    /// Where results folders go.
    #[arg(long, value_name = "DIR", default_value = "results")]
    out: PathBuf,
    /// Kernel counters on both sides: per pinned CPU (core), per thread, or off.
    #[arg(long, value_name = "SCOPE", default_value = "core", value_parser = CounterScope::parser())]
    counters: CounterScope,
    /// Where the server runs: local (a child of this process), netns:NAME (ip netns exec),
    /// ssh://[USER@]HOST[:PORT] (the system's ssh, with your config and keys) or
    /// agent://HOST[:PORT] (an `agent --listen` daemon).
    #[arg(long, value_name = "HOST", default_value = "local")]
    server: HostSpec,
    /// Where the clients run, as --server; give several (comma-separated or repeated) for
    /// fan-in: every host runs the point's threads against the one server, all let go at
    /// once, totals summed and latency from the merged histograms.
    #[arg(
        long,
        alias = "clients",
        value_name = "HOST",
        value_delimiter = ',',
        default_value = "local"
    )]
    client: Vec<HostSpec>,
    /// The server's address as the clients dial it [default: the --server host's name,
    /// or 127.0.0.1 for local]; give it when data goes over another address than control.
    #[arg(long, alias = "addr", value_name = "ADDR")]
    data_addr: Option<String>,
    /// Copy this agent binary to a temporary file on each ssh host and run it there (it
    /// removes itself as it starts), for hosts without copyperf installed.
    #[arg(long)]
    deploy: bool,
    /// The agent's command on ssh hosts, when not `agent` on the remote PATH.
    #[arg(long, value_name = "PATH")]
    agent_path: Option<String>,
    /// An extra argument for every ssh (repeat for several: --ssh-arg=-i --ssh-arg=KEY);
    /// your ~/.ssh/config applies as usual.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    ssh_arg: Vec<String>,
    /// The shared secret's file for agent:// daemons.
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// One sentence on how the sides are connected, for meta.json and the report.
    #[arg(long, value_name = "TEXT")]
    network_detail: Option<String>,
    /// TCP port the servers listen on.
    #[arg(long, default_value_t = 5201)]
    port: u16,
    /// Directory holding the agent binary [default: next to this one].
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Skip the plots and report.md at the end.
    #[arg(long)]
    no_report: bool,
    /// The command line to record in meta.json [default: this one].
    #[arg(long, value_name = "TEXT", hide = true)]
    command_line: Option<String>,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::install_signal_handlers();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(if e.is::<Usage>() { 2 } else { 1 })
        }
    }
}

/// A flag's value the sweep cannot take: exit 2, as the help says.
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

macro_rules! usage {
    ($($arg:tt)*) => {
        return Err(Usage(format!($($arg)*)).into())
    };
}

fn config(args: Args) -> Result<SweepConfig> {
    let (dur, repeats, sizes, threads) = if args.quick {
        (1.0, 3, vec![1024, 65536], vec![1, 4])
    } else {
        (
            2.0,
            3,
            ["1K", "4K", "16K", "64K"]
                .map(|s| parse_size(s).expect("valid"))
                .to_vec(),
            vec![1, 2, 4, 8],
        )
    };
    if !args.rates.is_empty() && args.workload != Workload::Echo {
        usage!(
            "--rates applies to the echo workload (a schedule of requests, each timed to its \
             echo); a {} sweep sends as fast as the path takes it: leave --rates out",
            args.workload
        );
    }
    let mut rates = cli::unique(args.rates);
    rates.sort_unstable();
    // An open-loop point needs room for the echoes outstanding while it keeps its
    // schedule: the client's own default under --rate, unless --depth says otherwise.
    let depth = args.depth.unwrap_or(if rates.is_empty() {
        1
    } else {
        engine::config::RATE_DEPTH
    });
    let matrix = Matrix {
        engines: args.engines,
        modes: args.modes,
        sizes: args.sizes.unwrap_or(sizes),
        threads: args.threads.unwrap_or(threads),
        workload: args.workload,
        depth,
        duration_s: args.duration.unwrap_or(dur),
        repeats: args.repeats.unwrap_or(repeats),
        placements: cli::unique(args.placement),
        rx: cli::unique(args.rx),
        polling: cli::unique(args.uring_opts),
        rates,
    };
    if matrix.engines.is_empty()
        || matrix.modes.is_empty()
        || matrix.sizes.is_empty()
        || matrix.threads.is_empty()
        || matrix.placements.is_empty()
    {
        usage!("the matrix is empty: give at least one engine, mode, size and thread count");
    }
    let max_duration = engine::config::MAX_DURATION.as_secs_f64();
    if !matrix.duration_s.is_finite()
        || matrix.duration_s <= 0.0
        || matrix.duration_s > max_duration
    {
        usage!(
            "--duration {} is out of range: it must be more than 0 and at most {max_duration} seconds",
            matrix.duration_s
        );
    }
    if matrix.repeats == 0 {
        usage!("--repeats is 0: it must be at least 1");
    }
    if let Some(t) = matrix
        .threads
        .iter()
        .find(|&&t| t == 0 || t > engine::config::MAX_THREADS)
    {
        usage!(
            "thread count {t} is out of range: it must be from 1 to {}",
            engine::config::MAX_THREADS
        );
    }
    let data_addr = match (&args.data_addr, args.server.data_host()) {
        (Some(a), _) => a.trim_start_matches('[').trim_end_matches(']').to_string(),
        (None, Some(h)) => h,
        (None, None) if args.server == HostSpec::Local => "127.0.0.1".into(),
        (None, None) => usage!(
            "--server {} names no address the clients can dial: give --data-addr",
            args.server
        ),
    };
    let clients = cli::unique(args.client);
    let network = Network {
        detail: args.network_detail.unwrap_or_else(|| {
            format!(
                "server {}, client{} {}, data to {data_addr}",
                args.server,
                if clients.len() == 1 { "" } else { "s" },
                clients
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }),
        server: args.server,
        clients,
        data_addr,
    };
    let name = sweep::folder_name(SystemTime::now(), &sweep::hostname(), args.label.as_deref());
    let bin_dir = args.bin_dir.unwrap_or_else(cli::proc::bin_dir);
    let local_agent = bin_dir.join("agent");
    if !local_agent.is_file() {
        bail!(
            "no agent binary in {} (build with cargo build --release)",
            bin_dir.display()
        );
    }
    let secret = args
        .secret_file
        .as_deref()
        .map(cli::agent::auth::Secret::read)
        .transpose()?;
    let reach = Reach {
        local_agent,
        remote_agent: args.agent_path,
        deploy: args.deploy,
        ssh_args: args.ssh_arg,
        secret,
    };
    Ok(SweepConfig {
        matrix,
        network,
        counters: args.counters,
        port: args.port,
        seed: args.seed.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        }),
        dir: args.out.join(name),
        reach,
        command_line: args
            .command_line
            .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" ")),
    })
}

fn run(args: Args) -> Result<ExitCode> {
    let no_report = args.no_report;
    let config = config(args)?;
    eprintln!("copyperf sweep → {}", config.dir.display());
    eprintln!(
        "network: {}; counters: {}; placement: {}; {} round(s) of {} s per point (order seed {})",
        config.network.detail,
        config.counters,
        config
            .matrix
            .placements
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(","),
        config.matrix.repeats,
        config.matrix.duration_s,
        config.seed
    );
    if !config.matrix.rates.is_empty() {
        eprintln!(
            "open loop at {} msg/s in all (depth {}; latency from each message's due time)",
            config
                .matrix
                .rates
                .iter()
                .map(|&r| cli::results::rate_name(r))
                .collect::<Vec<_>>()
                .join(", "),
            config.matrix.depth
        );
    }
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template(
                "{bar:40} {pos}/{len} points, {elapsed} elapsed, ETA {eta}",
            )
            .expect("a valid template"),
        );
        b
    });
    let print = |line: String| match &bar {
        Some(b) => b.println(line),
        None => eprintln!("{line}"),
    };
    let on = |e: SweepEvent| match e {
        SweepEvent::Start { total } => {
            if let Some(b) = &bar {
                b.set_length(total as u64);
            }
            print(engine::config::count(
                total as u64,
                "measurement",
                "measurements",
            ));
        }
        SweepEvent::Point {
            done,
            total,
            point,
            outcome,
            eta,
            ..
        } => {
            print(sweep::point_line(done, total, &point, &outcome, eta));
            if let Ok(r) = outcome {
                for line in sweep::warning_lines(r) {
                    print(line);
                }
            }
            if let Some(b) = &bar {
                b.set_position(done as u64);
            }
        }
        SweepEvent::Notice(text) => print(format!("notice: {text}")),
    };
    let outcome = sweep::run(&config, &STOP, &on)?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if !no_report && outcome.records > 0 {
        let written = cli::report::write_report(&config.dir)
            .with_context(|| format!("writing the report in {}", config.dir.display()))?;
        eprintln!("report: {} files", written.files.len());
    }
    let m = &outcome.meta;
    eprintln!(
        "{} of {} measurements in {} ({} failed, {} skipped){}",
        m.points_done.unwrap_or(0),
        m.points_total.unwrap_or(0),
        config.dir.display(),
        m.failed.as_ref().map_or(0, Vec::len),
        m.skipped.as_ref().map_or(0, Vec::len),
        if m.interrupted() { "; interrupted" } else { "" }
    );
    // Repeated at the end: the per-point lines may have scrolled away.
    if outcome.warned > 0 {
        eprintln!(
            "{} of them carried warnings (see \"Doubtful points\" in report.md, the Warnings column of results.csv)",
            outcome.warned
        );
    }
    Ok(if m.interrupted() {
        ExitCode::from(130)
    } else if m.failed.as_ref().is_some_and(|f| !f.is_empty()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
