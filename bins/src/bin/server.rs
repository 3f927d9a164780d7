//! copyperf server: serves echo and stream clients on every copy mode, one thread per
//! client (syscall) or a pool of io_uring workers (uring), and sends each client the
//! server's own figures at the end of its run.

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Parser};
use cli::{EnumArg, STOP};
use engine::config::{default_max_memory, format_size};
use engine::{Backend, Mode, Server, ServerConfig, ServerEvent};

/// Serve copyperf clients: echo or sink their messages, check every one, report back.
///
/// Exit codes: 0 stopped cleanly, 1 runtime failure (e.g. address in use), 2 bad flags,
/// 5 kernel feature missing.
#[derive(Debug, Parser)]
#[command(
    name = "server",
    version,
    disable_help_flag = true,
    max_term_width = 100
)]
struct Args {
    /// TCP port to listen on.
    #[arg(short = 'p', long, default_value_t = 8080)]
    port: u16,
    /// Largest message a client may use, in bytes (suffixes K, M: 64K = 65536).
    #[arg(short = 's', long = "max-size", value_name = "BYTES", default_value = "1M", value_parser = cli::size_arg)]
    max_size: usize,
    /// Most clients connected at once; the next one is refused with the reason.
    #[arg(
        short = 't',
        long = "max-clients",
        value_name = "N",
        default_value_t = 64
    )]
    max_clients: usize,
    /// Address to listen on (IPv6: :: or [::]).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0", value_parser = engine::config::parse_ip)]
    bind: IpAddr,
    /// How the server moves bytes: a thread per client (syscall) or io_uring workers (uring).
    #[arg(long, default_value = "syscall", value_parser = Backend::parser())]
    backend: Backend,
    /// Serve only this copy mode [default: whatever each client asks for].
    #[arg(long, value_parser = Mode::parser())]
    mode: Option<Mode>,
    /// io_uring worker threads, one ring each (uring backend) [default: one per CPU].
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Close a connection that moves no whole message for this long, in seconds.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = cli::seconds_arg)]
    idle_timeout: Duration,
    /// Memory all connections' buffers may take together (suffixes K, M, G); a client
    /// whose buffers would go past it is refused with the reason [default: a quarter of
    /// physical memory].
    #[arg(long, value_name = "BYTES", value_parser = cli::size_arg)]
    max_memory: Option<usize>,
    #[command(flatten)]
    side: cli::SideFlags,
    /// Serve exactly this configuration, as JSON; the other serving flags must not be
    /// given with it.
    #[arg(long, value_name = "JSON", conflicts_with_all = SERVE_FLAGS)]
    spec: Option<String>,
    /// Once listening, write one JSON line `{"addr": "IP:PORT"}` to this inherited file
    /// descriptor and close it: how a parent process learns the server is ready.
    #[arg(long, value_name = "FD")]
    ready_fd: Option<i32>,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
}

/// The flags a `--spec` replaces.
const SERVE_FLAGS: [&str; 14] = [
    "port",
    "max_size",
    "max_clients",
    "bind",
    "backend",
    "mode",
    "workers",
    "idle_timeout",
    "max_memory",
    "uring_recv",
    "cpus",
    "counters",
    "sqpoll",
    "busy_poll",
];

/// A line on stdout that cannot take the server down: with stdout closed (`server |
/// head`), println! would panic; a log line is not worth a connection, let alone the
/// server.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::install_signal_handlers();
    let ready_fd = args.ready_fd;
    if let Some(fd) = ready_fd.filter(|&fd| fd < 3) {
        // Refused before binding, as every other bad flag is: no banner, nothing listening.
        eprintln!("error: --ready-fd {fd}: not a descriptor of its own (0, 1 and 2 are stdio)");
        return cli::exit_code(engine::exit::USAGE);
    }
    let config = match &args.spec {
        Some(json) => match cli::parse_spec::<ServerConfig>(json, "server") {
            Ok(c) => c,
            Err(code) => return code,
        },
        None => config_from(args),
    };
    let server = match Server::bind(config) {
        Ok(s) => s,
        Err(e) => return cli::fail(&e),
    };
    print_banner(&server);
    if let Some(fd) = ready_fd {
        if let Err(e) = cli::announce_ready(fd, server.local_addr()) {
            eprintln!("error: --ready-fd {fd}: {e}");
            return cli::exit_code(engine::exit::USAGE);
        }
    }
    match server.run(&STOP, &log_event) {
        Ok(()) => {
            say!("[Server] Stopped.");
            ExitCode::SUCCESS
        }
        Err(e) => cli::fail(&e),
    }
}

/// The configuration the serving flags describe.
fn config_from(args: Args) -> ServerConfig {
    ServerConfig {
        bind: args.bind,
        port: args.port,
        backend: args.backend,
        mode: args.mode,
        max_size: args.max_size,
        max_clients: args.max_clients,
        workers: args.workers,
        idle_timeout: args.idle_timeout,
        max_memory: args
            .max_memory
            .map_or_else(default_max_memory, |m| m as u64),
        uring_recv: args.side.uring_recv,
        cpus: args.side.cpus,
        counters: args.side.counters,
        sqpoll: args.side.sqpoll,
        busy_poll_us: args.side.busy_poll,
    }
}

fn print_banner(server: &Server) {
    let c = server.config();
    say!("=====");
    say!("copyperf server ({} backend)", c.backend);
    say!("=====");
    say!("Port: {}", server.local_addr().port());
    say!(
        "Max Message Size: {} bytes ({})",
        c.max_size,
        format_size(c.max_size)
    );
    say!("Max Clients: {}", c.max_clients);
    say!(
        "Memory Budget: {} bytes ({:.1} MiB, --max-memory)",
        c.max_memory,
        c.max_memory as f64 / (1 << 20) as f64
    );
    match c.mode {
        Some(m) => say!("Mode: {m} only"),
        None => say!("Mode: any (each client chooses)"),
    }
    if c.backend == Backend::Uring {
        say!("Workers: {}", c.workers());
    }
    let cpus = server.cpus();
    if cpus.is_empty() {
        say!("CPUs: not pinned");
    } else {
        say!("CPUs: {}", engine::placement::join(&cpus));
    }
    say!("Counters: {}", c.counters);
    say!("=====");
    say!("[Server] Listening on {}...", server.local_addr());
}

fn log_event(e: ServerEvent) {
    match e {
        ServerEvent::Connected { id, peer, hello } => say!(
            "[Server] Client {id} connected ({peer}): {} {}, {} bytes, depth {}, {} client",
            hello.workload,
            hello.mode,
            hello.size,
            hello.depth,
            hello.backend
        ),
        ServerEvent::Disconnected { id, report, .. } => {
            let s = &report.stats;
            let mut line = format!(
                "[Server] Client {id} disconnected. Sent: {} bytes, Received: {} bytes",
                s.bytes_sent, s.bytes_received
            );
            if s.verify_errors > 0 {
                line += &format!(
                    ", {} verify errors (first: {})",
                    s.verify_errors,
                    s.first_verify_error.as_deref().unwrap_or("?")
                );
            }
            say!("{line}");
        }
        ServerEvent::Refused { id, peer, reason } => {
            say!("[Server] Client {id} ({peer}) refused: {reason}")
        }
        ServerEvent::Failed { id, peer, error } => {
            say!("[Server] Client {id} ({peer}) dropped: {error}")
        }
        ServerEvent::AcceptError { error } => say!("[Server] accept failed: {error}"),
        ServerEvent::Stopping { active } => {
            say!("[Server] Stopping: closing {active} connection(s)")
        }
        ServerEvent::Notice(text) => say!("[Server] notice: {text}"),
    }
}
