//! Running copyperf's own binaries as child processes, optionally inside a network
//! namespace: a server that is always killed and reaped, and a client whose JSON record
//! is parsed back. Used by compare and the benchmarks (the sweep drives agents instead). Children are driven
//! by the engine's own configuration types (`--spec` JSON), and a server says it is ready
//! on a pipe (`--ready-fd`), so no argument list is built by hand and no log is parsed.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use engine::{ClientConfig, Record, ServerConfig};

/// The directory holding this executable's sibling binaries (target/release, target/debug).
pub fn bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .map(|d| {
            if d.ends_with("deps") {
                d.parent().map(Path::to_path_buf).unwrap_or(d)
            } else {
                d
            }
        })
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A command for `bin`, prefixed with `ip netns exec NS` when a namespace is given.
pub fn command(bin: &Path, netns: Option<&str>) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(bin);
            c
        }
        None => Command::new(bin),
    }
}

/// A running server; killed and reaped when dropped.
pub struct ServerProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `server` on exactly `config` (passed as `--spec` JSON) and waits until it
    /// says it listens, on a pipe of its own (`--ready-fd`), not in its log.
    pub fn start(bin: &Path, netns: Option<&str>, config: &ServerConfig) -> Result<ServerProcess> {
        let spec = serde_json::to_string(config).context("serializing the server's config")?;
        let (ready_rx, ready_tx) = pipe()?;
        let mut child = command(bin, netns)
            .args([
                "--spec",
                &spec,
                "--ready-fd",
                &ready_tx.as_raw_fd().to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        // Ours closed, the child's end is the only writer: EOF means it died.
        drop(ready_tx);
        let (tx, lines) = mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let ready = read_ready(ready_rx, Duration::from_secs(10));
        let mut server = ServerProcess {
            child,
            lines,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        match ready {
            Ok(addr) => {
                server.addr = addr;
                Ok(server)
            }
            Err(e) => {
                std::thread::sleep(Duration::from_millis(50));
                let status = server.child.try_wait().ok().flatten();
                bail!(
                    "server did not start ({}; {e}): {}",
                    status.map_or("still running".into(), |s| s.to_string()),
                    server.drain_lines().join(" | ")
                );
            }
        }
    }

    /// The address the server listens on, as it said.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Log lines printed so far.
    pub fn drain_lines(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// Asks the server to stop (SIGTERM) and waits for it.
    pub fn stop(mut self) -> Result<()> {
        self.terminate();
        Ok(())
    }

    fn terminate(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: signals our own child. With `ip netns exec`, ip execs the server in
            // place, so the pid is the server's.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            if wait_within(&mut self.child, Duration::from_secs(1)).is_some() {
                return;
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// How `child` ended, if it ends within `limit` (looked at every 20 ms); `None` if it
/// still runs (or cannot be asked).
pub fn wait_within(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => return None,
        }
    }
}

/// A pipe whose read end stays here and whose write end a child inherits.
fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and ours.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // The write end goes to the child: clear its close-on-exec.
    // SAFETY: fcntl on a descriptor we own.
    if unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETFD, 0) } != 0 {
        bail!("fcntl: {}", std::io::Error::last_os_error());
    }
    Ok((r, w))
}

/// Reads the server's readiness line, `{"addr": "IP:PORT"}`, within `limit`.
fn read_ready(r: OwnedFd, limit: Duration) -> Result<SocketAddr> {
    let mut pfd = libc::pollfd {
        fd: r.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, limit.as_millis() as i32) };
    if n <= 0 {
        bail!("no readiness within {:.0} s", limit.as_secs_f64());
    }
    let mut line = String::new();
    BufReader::new(std::fs::File::from(r))
        .read_line(&mut line)
        .context("reading the readiness line")?;
    #[derive(serde::Deserialize)]
    struct Ready {
        addr: SocketAddr,
    }
    let ready: Ready = serde_json::from_str(line.trim())
        .with_context(|| format!("it exited before it was ready ({line:?})"))?;
    Ok(ready.addr)
}

/// Runs `client` on exactly `config` (passed as `--spec` JSON, output `--format json`) and
/// returns its record. A run whose data failed verification still returns its record
/// (exit code 4).
pub fn run_client(bin: &Path, netns: Option<&str>, config: &ClientConfig) -> Result<Record> {
    let never = std::sync::atomic::AtomicBool::new(false);
    run_client_until(bin, netns, config, &never, Duration::MAX)?
        .context("client run ended without a record")
}

/// As [`run_client`], but gives up when `stop` is set (returns `None`, the client killed)
/// or when the client runs longer than `limit` (an error, the client killed).
pub fn run_client_until(
    bin: &Path,
    netns: Option<&str>,
    config: &ClientConfig,
    stop: &std::sync::atomic::AtomicBool,
    limit: Duration,
) -> Result<Option<Record>> {
    use std::io::Read;
    use std::sync::atomic::Ordering;
    let spec = serde_json::to_string(config).context("serializing the client's config")?;
    let mut child = command(bin, netns)
        .args(["--spec", &spec, "--format", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", bin.display()))?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if stop.load(Ordering::Relaxed) {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "client still running after {:.0} s; killed",
                limit.as_secs_f64()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = stdout.join().unwrap_or_default();
    let err = stderr.join().unwrap_or_default();
    if !status.success() && status.code() != Some(engine::exit::VERIFY) {
        let err = String::from_utf8_lossy(&err);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        bail!("client failed ({status}): {}", last.trim());
    }
    serde_json::from_slice(&out)
        .map(Some)
        .context("parsing the client's JSON record")
}
