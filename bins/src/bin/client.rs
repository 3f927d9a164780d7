//! copyperf client: drives one workload through one send path on every thread for a fixed
//! time or a fixed count of messages, then prints both sides' figures as a summary, JSON or
//! CSV.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};
use cli::EnumArg;
use cli::STOP;
use engine::{
    export, run_valid_client_until, Backend, ClientConfig, ClientEvent, Direction, Error, Mode,
    RxMode, Verify, Workload,
};

/// Measure what moving bytes through a TCP socket costs on one send path.
///
/// Exit codes: 0 success, 1 runtime failure (connect, I/O, peer), 2 bad flags, 3 refused
/// by the server, 4 data failed verification, 5 kernel feature missing, 130/143 stopped by
/// SIGINT/SIGTERM (the partial figures are printed; a second signal exits at once).
#[derive(Debug, Parser)]
#[command(
    name = "client",
    version,
    disable_help_flag = true,
    max_term_width = 100
)]
struct Args {
    /// Server host name or address (IPv6: ::1 or [::1]).
    #[arg(short = 'h', long, default_value = "127.0.0.1", value_parser = engine::config::parse_host)]
    host: String,
    /// Server TCP port.
    #[arg(short = 'p', long, default_value_t = 8080)]
    port: u16,
    /// Message size in bytes, split over 8 fields (suffixes K, M: 4K = 4096): 64 bytes (8
    /// fields of at least their 8-byte tag) to 16M.
    #[arg(short = 's', long, value_name = "BYTES", default_value = "4K", value_parser = cli::size_arg)]
    size: usize,
    /// Worker threads (syscall: one connection each; uring: one ring each). `-P` is
    /// iperf3's name for parallel streams.
    #[arg(
        short = 't',
        visible_short_alias = 'P',
        long,
        value_name = "N",
        default_value_t = 1
    )]
    threads: usize,
    /// Measured interval in seconds (fractions allowed).
    #[arg(short = 'd', long, value_name = "SECONDS", default_value = "3", value_parser = cli::seconds_arg)]
    duration: Duration,
    /// End the run once the client has sent BYTES (suffixes K, M, G) after the warm-up,
    /// rounded up to whole messages, in all: split evenly over the connections (iperf3's
    /// -n). Instead of -d; the run may take at most 24 hours. Not with --reverse.
    #[arg(short = 'n', long, value_name = "BYTES", value_parser = cli::size_arg, conflicts_with_all = ["duration", "messages"])]
    bytes: Option<usize>,
    /// End the run once the client has sent N messages after the warm-up, in all: split
    /// evenly over the connections (echo: N round trips). Instead of -d; the run may take
    /// at most 24 hours. Not with --reverse.
    #[arg(long, value_name = "N", conflicts_with = "duration")]
    messages: Option<u64>,
    /// How bytes reach the kernel.
    #[arg(long, default_value = "syscall", value_parser = Backend::parser())]
    backend: Backend,
    /// Copy mode: two-copy (serialize + send), one-copy (sendmsg iovec), zc (MSG_ZEROCOPY /
    /// SENDMSG_ZC), zc-fixed (uring SEND_ZC from a registered buffer), sendfile / splice (the
    /// fields in a memfd's page cache, sent by reference: sendfile(2), or splice through a
    /// pipe; uring: IORING_OP_SPLICE for both).
    #[arg(long, default_value = "two-copy", value_parser = Mode::parser())]
    mode: Mode,
    /// echo: wait for each message's echo (round-trip latency); stream: one-way bulk.
    #[arg(long, default_value = "echo", value_parser = Workload::parser())]
    workload: Workload,
    /// Messages in flight per connection: 1 to 1024, and no more than a connection's
    /// buffers (2·depth + 1 messages) fit in 256 MiB. Default: 1; with --rate, 64 (the
    /// most echoes outstanding before due messages wait).
    #[arg(long, value_name = "N")]
    depth: Option<usize>,
    /// Connections per ring (uring backend).
    #[arg(long, value_name = "N", default_value_t = 1)]
    conns: usize,
    /// Check received data: every byte (full), tags and a few bytes per field (sample), or not.
    #[arg(long, default_value = "sample", value_parser = Verify::parser())]
    verify: Verify,
    /// Output: the seed's summary (human), one JSON record, or CSV header + row.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// The same as --format json (iperf3's -J).
    #[arg(short = 'J', long, conflicts_with = "format")]
    json: bool,
    /// Seconds allowed for connecting and the handshake.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = cli::seconds_arg)]
    connect_timeout: Duration,
    /// Seconds the server may stay silent while the client waits on it.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = cli::seconds_arg)]
    io_timeout: Duration,
    #[command(flatten)]
    side: cli::SideFlags,
    /// TCP_NODELAY: auto is on for echo (each message waits on its reply); for stream, off
    /// (Nagle coalesces small writes) unless a message fills a TCP segment.
    #[arg(long, value_name = "WHEN", default_value = "auto", value_parser = cli::nodelay_arg)]
    nodelay: cli::Nodelay,
    /// Stream only: the server sends (with --mode, on its own engine) and the client
    /// receives and checks; the client still decides when the run ends (iperf3's -R).
    #[arg(short = 'R', long, conflicts_with = "bidir")]
    reverse: bool,
    /// Stream only: both sides send and receive at once on every connection.
    #[arg(long)]
    bidir: bool,
    /// Run exactly this configuration, as JSON (a record's `config`); the other run
    /// flags must not be given with it.
    #[arg(long, value_name = "JSON", conflicts_with_all = RUN_FLAGS)]
    spec: Option<String>,
    /// How the receiving side(s) take bytes off the socket: copy (received into the
    /// message and verified), discard (recv with MSG_TRUNC: the kernel drops the bytes;
    /// only counts are checked), zerocopy (TCP_ZEROCOPY_RECEIVE: pages mapped where
    /// possible; syscall engine only). The server receives this way; in echo the client too.
    #[arg(long, value_name = "HOW", default_value = "copy", value_parser = RxMode::parser())]
    rx: RxMode,
    /// Live figures every SECONDS while the run goes (fractions allowed; 0: off): a line
    /// per thread and their sum (human), or one JSON object per line, the record last
    /// (json). Default: 1 for human output to a terminal, otherwise off.
    #[arg(short = 'i', long, value_name = "SECONDS", value_parser = cli::seconds_arg)]
    interval: Option<Duration>,
    /// A warm-up of SECONDS first, run but not counted (iperf3's -O): the measured
    /// interval (-d) starts after it. The server is told of it and leaves it out too,
    /// from its own first message.
    #[arg(short = 'O', long, value_name = "SECONDS", default_value = "0", value_parser = cli::seconds_arg)]
    omit: Duration,
    /// Echo, open loop: send MSGS_PER_S messages a second in all (shared evenly by the
    /// connections, k and M allowed: 20k) on a fixed schedule, whether or not echoes have
    /// come back, and time each round trip from its message's due time, so a stall counts
    /// for every message it delays (no coordinated omission). --depth caps the echoes
    /// outstanding per connection. Default: closed loop (send when an echo returns).
    /// `--mps` is sockperf's name for it.
    #[arg(long, visible_alias = "mps", value_name = "MSGS_PER_S", value_parser = cli::rate_arg)]
    rate: Option<f64>,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
}

/// The flags a `--spec` replaces.
const RUN_FLAGS: [&str; 26] = [
    "host",
    "port",
    "size",
    "threads",
    "duration",
    "backend",
    "mode",
    "workload",
    "depth",
    "conns",
    "verify",
    "connect_timeout",
    "io_timeout",
    "nodelay",
    "uring_recv",
    "cpus",
    "counters",
    "reverse",
    "bidir",
    "rx",
    "sqpoll",
    "busy_poll",
    "omit",
    "rate",
    "bytes",
    "messages",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Human,
    Json,
    Csv,
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::install_signal_handlers();
    let format = if args.json { Format::Json } else { args.format };
    let interval = args.interval;
    let mut config = match &args.spec {
        Some(json) => match cli::parse_spec::<ClientConfig>(json, "client") {
            Ok(c) => c,
            Err(code) => return code,
        },
        None => config_from(args),
    };
    match interval {
        Some(i) => config.interval = i,
        // A spec says for itself; otherwise a person watching a terminal sees the run go.
        None if config.interval.is_zero()
            && format == Format::Human
            && std::io::stdout().is_terminal() =>
        {
            config.interval = Duration::from_secs(1)
        }
        None => {}
    }
    if format == Format::Csv && !config.interval.is_zero() {
        eprintln!("error: --interval has no CSV form; use --format human or json");
        return cli::exit_code(engine::exit::USAGE);
    }
    run(&config, format)
}

/// The configuration the run flags describe.
fn config_from(args: Args) -> ClientConfig {
    let counted = args.messages.is_some() || args.bytes.is_some();
    ClientConfig {
        host: args.host,
        port: args.port,
        backend: args.backend,
        mode: args.mode,
        workload: args.workload,
        size: args.size,
        threads: args.threads,
        conns: args.conns,
        depth: args.depth.unwrap_or(match args.rate {
            Some(_) => engine::config::RATE_DEPTH,
            None => 1,
        }),
        // A count ends the run; the duration is then only its cap.
        duration: if counted {
            engine::config::MAX_DURATION
        } else {
            args.duration
        },
        verify: args.verify,
        connect_timeout: args.connect_timeout,
        io_timeout: args.io_timeout,
        uring_recv: args.side.uring_recv,
        cpus: args.side.cpus,
        counters: args.side.counters,
        sqpoll: args.side.sqpoll,
        busy_poll_us: args.side.busy_poll,
        nodelay: args.nodelay.0,
        direction: match (args.reverse, args.bidir) {
            (true, _) => Direction::Reverse,
            (_, true) => Direction::Bidir,
            _ => Direction::Forward,
        },
        rx: args.rx,
        omit: args.omit,
        interval: Duration::ZERO,
        rate: args.rate,
        messages: args.messages,
        bytes: args.bytes.map(|b| b as u64),
    }
}

/// Runs `config`, prints its record as asked, and says how it went in the exit code.
fn run(config: &ClientConfig, format: Format) -> ExitCode {
    // Every flag is checked before the banner, so the banner never shows a value the run
    // then refuses.
    let config = match config.clone().validate() {
        Ok(c) => c,
        Err(e) => return cli::fail(&e),
    };
    let human = format == Format::Human;
    if human {
        println!(
            "{}",
            export::client_banner(
                &config,
                &engine::config::host_port(&config.host, config.port)
            )
        );
    }
    // With intervals, JSON is a stream of lines: one per interval, the record last.
    let lines = format == Format::Json && !config.interval.is_zero();
    let first_interval = std::sync::Once::new();
    let on_event = |e: ClientEvent| match e {
        ClientEvent::ThreadStarted { thread } if human => {
            println!("[Client {thread}] Thread started")
        }
        ClientEvent::Notice(text) => eprintln!("notice: {text}"),
        ClientEvent::Interval(i) if human => {
            first_interval.call_once(|| println!("{}", export::interval_header()));
            println!("{}", export::interval_lines(&i));
        }
        ClientEvent::Interval(i) if lines => println!(
            "{}",
            serde_json::to_string(&i).expect("an interval always serializes")
        ),
        _ => {}
    };
    let record = match run_valid_client_until(config, &STOP, &on_event) {
        Ok(r) => r,
        Err(e @ Error::Interrupted) => {
            eprintln!("error: {e}");
            return cli::exit_code(cli::stopped_code());
        }
        Err(e) => return cli::fail(&e),
    };
    match format {
        Format::Human => println!("{}", export::human(&record)),
        Format::Json if lines => println!("{}", export::json_line(&record)),
        Format::Json => println!("{}", export::json(&record)),
        Format::Csv => print!("{}", export::csv(&record)),
    }
    if record.interrupted {
        eprintln!("interrupted: the figures above cover what ran before the signal");
        return cli::exit_code(cli::stopped_code());
    }
    if record.summary.verify_errors > 0 {
        eprintln!(
            "error: {} received messages failed verification",
            record.summary.verify_errors
        );
        return cli::exit_code(engine::exit::VERIFY);
    }
    ExitCode::SUCCESS
}
