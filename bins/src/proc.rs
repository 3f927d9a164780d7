//! Running copyperf's own binaries as child processes, optionally inside a network
//! namespace: a server that is always killed and reaped, and a client whose JSON record
//! is parsed back. Shared by the sweep and the benchmarks.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use engine::Record;

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
}

impl ServerProcess {
    /// Starts `server` with `args` and waits until it listens.
    pub fn start(bin: &Path, netns: Option<&str>, args: &[String]) -> Result<ServerProcess> {
        let mut child = command(bin, netns)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
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
        let mut server = ServerProcess { child, lines };
        let mut seen = Vec::new();
        loop {
            match server.lines.recv_timeout(Duration::from_secs(10)) {
                Ok(l) if l.contains("Listening on") => return Ok(server),
                Ok(l) => seen.push(l),
                Err(_) => {
                    let status = server.child.try_wait().ok().flatten();
                    bail!(
                        "server did not start ({}): {}",
                        status.map_or("still running".into(), |s| s.to_string()),
                        seen.join(" | ")
                    );
                }
            }
        }
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
            for _ in 0..50 {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
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

/// Runs `client` with `args` plus `--format json` and returns its record. A run whose
/// data failed verification still returns its record (exit code 4).
pub fn run_client(bin: &Path, netns: Option<&str>, args: &[String]) -> Result<Record> {
    let never = std::sync::atomic::AtomicBool::new(false);
    run_client_until(bin, netns, args, &never, Duration::MAX)?
        .context("client run ended without a record")
}

/// As [`run_client`], but gives up when `stop` is set (returns `None`, the client killed)
/// or when the client runs longer than `limit` (an error, the client killed).
pub fn run_client_until(
    bin: &Path,
    netns: Option<&str>,
    args: &[String],
    stop: &std::sync::atomic::AtomicBool,
    limit: Duration,
) -> Result<Option<Record>> {
    use std::io::Read;
    use std::sync::atomic::Ordering;
    let mut child = command(bin, netns)
        .args(args)
        .args(["--format", "json"])
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
