//! copyperf agent: serves or runs clients as a controller (the sweep) asks, on this host.
//!
//! `agent --stdio` speaks the control protocol on stdin/stdout, for a launcher: `ip netns
//! exec NS agent --stdio`, `ssh HOST agent --stdio`. `agent --listen ADDR` is a daemon for
//! hosts without ssh; off loopback it needs `--secret-file`.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Parser};
use cli::agent::auth::Secret;
use cli::agent::control::DAEMON_PORT;
use cli::agent::{daemon, proto, session};
use cli::STOP;

/// Run what a copyperf controller asks on this host: a server, a client, or both.
///
/// Exit codes: 0 session ended, 1 runtime failure, 2 bad flags.
#[derive(Debug, Parser)]
#[command(
    name = "agent",
    version,
    disable_help_flag = true,
    max_term_width = 100,
    group(clap::ArgGroup::new("how").required(true).args(["stdio", "listen"]))
)]
struct Args {
    /// Speak the control protocol on stdin/stdout (for ip netns exec, ssh); ends when
    /// stdin does.
    #[arg(long)]
    stdio: bool,
    /// Listen for controllers on ADDR (IP or IP:PORT, default port 8079), like iperf3 -s.
    #[arg(long, value_name = "ADDR", value_parser = listen_arg)]
    listen: Option<SocketAddr>,
    /// The shared secret's file (at least 16 bytes): required by --listen off loopback,
    /// and used to vouch with other daemons. Never give the secret itself on a command line.
    #[arg(long, value_name = "FILE", requires = "listen")]
    secret_file: Option<PathBuf>,
    /// Delete this agent's own binary as it starts (what the controller's --deploy asks of
    /// the temporary copy it made).
    #[arg(long, requires = "stdio")]
    remove_self: bool,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
}

fn listen_arg(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let ip = s.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, DAEMON_PORT))
        .map_err(|_| format!("{s:?} is not IP or IP:PORT"))
}

fn log(line: &str) {
    eprintln!("[agent] {line}");
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::install_signal_handlers();
    let secret = match args.secret_file.as_deref().map(Secret::read).transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    if args.remove_self {
        remove_self();
    }
    match args.listen {
        Some(addr) => listen(addr, secret),
        None => stdio(),
    }
}

fn listen(addr: SocketAddr, secret: Option<Secret>) -> ExitCode {
    if let Err(e) = daemon::check(addr, secret.as_ref()) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: listening on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shown = listener.local_addr().unwrap_or(addr);
    log(&format!(
        "listening on {shown} ({})",
        if secret.is_some() {
            "controllers must prove the shared secret"
        } else {
            "loopback, no secret"
        }
    ));
    match daemon::serve(listener, secret, &STOP, &log) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn stdio() -> ExitCode {
    // The protocol owns the original stdout; fd 1 becomes stderr, so a stray print
    // anywhere cannot corrupt a frame.
    // SAFETY: dup and dup2 on the process's own standard descriptors.
    let out = unsafe {
        let fd = libc::dup(1);
        if fd < 0 || libc::dup2(2, 1) < 0 {
            eprintln!("error: dup: {}", std::io::Error::last_os_error());
            return ExitCode::FAILURE;
        }
        std::fs::File::from(OwnedFd::from_raw_fd(fd))
    };
    let mut out = out;
    if out.write_all(&proto::MAGIC).is_err()
        || proto::write_frame(&mut out, &session::hello(None)).is_err()
    {
        return ExitCode::FAILURE;
    }
    session::run(
        std::io::stdin(),
        out,
        session::Reach::Stdio,
        None,
        &STOP,
        &log,
    );
    ExitCode::SUCCESS
}

/// Unlinks this binary if it is a copy the controller deployed (a temporary file named
/// as `--deploy` names them); anything else is left alone.
fn remove_self() {
    if let Ok(exe) = std::env::current_exe() {
        let deployed = exe.parent() == Some(std::path::Path::new("/tmp"))
            && exe
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("copyperf-agent."));
        if deployed {
            let _ = std::fs::remove_file(&exe);
        } else {
            log(&format!(
                "--remove-self: {} is not a deployed copy; kept",
                exe.display()
            ));
        }
    }
}
