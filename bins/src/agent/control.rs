//! The controller's side: where an agent runs ([`HostSpec`]), how it is reached (a child
//! process through `ip netns exec` or the system's `ssh`, or a daemon's TCP port), and a
//! [`Link`] that asks it to serve or to run a client and waits for its answers within
//! deadlines. Every error names the host.

use std::collections::VecDeque;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use engine::host::HostInfo;
use engine::{ClientConfig, Record, ServerConfig};

use super::auth::{self, Prover, Seal, Secret};
use super::proto::{self, FrameError, Reply, Request, MAX_REPLY, PROTOCOL};
use crate::proc::wait_within;

/// The daemon's default port (`agent --listen ADDR` without a port).
pub const DAEMON_PORT: u16 = 8079;

/// The environment variable holding the pid of the controller that started an agent.
pub const CONTROLLER_ENV: &str = "COPYPERF_CONTROLLER";

/// How long an agent has to say hello: an ssh login, a copy with `--deploy`.
const HELLO_WAIT: Duration = Duration::from_secs(30);
/// Notices kept per link until taken, and the characters kept of each.
const MAX_NOTICES: usize = 100;
const MAX_NOTICE_CHARS: usize = 2000;

/// How long a request that does no measuring may take.
const CALL_WAIT: Duration = Duration::from_secs(20);

/// Where an agent runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostSpec {
    /// A child of the controller, on this host.
    Local,
    /// A child in a network namespace of this host: `ip netns exec NAME`.
    Netns(String),
    /// Reached with the system's OpenSSH client: `ssh [-p PORT] DEST`.
    Ssh { dest: String, port: Option<u16> },
    /// An `agent --listen` daemon.
    Daemon { host: String, port: u16 },
}

impl FromStr for HostSpec {
    type Err = String;

    /// `local`, `netns:NAME`, `ssh://[USER@]HOST[:PORT]` or `agent://HOST[:PORT]`.
    fn from_str(s: &str) -> Result<HostSpec, String> {
        let bad = |why: &str| {
            format!(
                "{s:?}: {why} (expected local, netns:NAME, ssh://[USER@]HOST[:PORT] or agent://HOST[:PORT])"
            )
        };
        if s == "local" {
            return Ok(HostSpec::Local);
        }
        if let Some(ns) = s.strip_prefix("netns:") {
            if ns.is_empty() || ns.contains('/') {
                return Err(bad("not a namespace name"));
            }
            return Ok(HostSpec::Netns(ns.into()));
        }
        let (scheme, rest) = s.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let (host, port) = split_port(rest).map_err(|e| bad(&e))?;
        if host.is_empty() || host.starts_with('-') || host.ends_with('@') {
            return Err(bad("no host"));
        }
        match scheme {
            "ssh" => Ok(HostSpec::Ssh { dest: host, port }),
            "agent" => {
                if host.contains('@') {
                    return Err(bad("a daemon has no user"));
                }
                Ok(HostSpec::Daemon {
                    host,
                    port: port.unwrap_or(DAEMON_PORT),
                })
            }
            _ => Err(bad("unknown scheme")),
        }
    }
}

/// `[USER@]HOST[:PORT]`, with IPv6 literals in brackets.
fn split_port(s: &str) -> Result<(String, Option<u16>), String> {
    let (user, hp) = match s.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, s),
    };
    let (host, port) = if let Some(rest) = hp.strip_prefix('[') {
        let (h, tail) = rest.split_once(']').ok_or("an unclosed [")?;
        match tail {
            "" => (h, None),
            t => (h, Some(t.strip_prefix(':').ok_or("junk after ]")?)),
        }
    } else {
        match hp.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            _ => (hp, None),
        }
    };
    let port = port
        .map(|p| p.parse().map_err(|_| format!("bad port {p:?}")))
        .transpose()?;
    let host = match user {
        Some(u) => format!("{u}@{host}"),
        None => host.to_string(),
    };
    Ok((host, port))
}

impl fmt::Display for HostSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostSpec::Local => f.write_str("local"),
            HostSpec::Netns(ns) => write!(f, "netns:{ns}"),
            HostSpec::Ssh { dest, port: None } => write!(f, "ssh://{dest}"),
            HostSpec::Ssh {
                dest,
                port: Some(p),
            } => write!(f, "ssh://{dest}:{p}"),
            HostSpec::Daemon { host, port } => write!(f, "agent://{host}:{port}"),
        }
    }
}

impl HostSpec {
    /// The address other hosts reach this one's data on, where the spec names one: the
    /// host part of an ssh destination or a daemon's address.
    pub fn data_host(&self) -> Option<String> {
        match self {
            HostSpec::Ssh { dest, .. } => Some(
                dest.rsplit_once('@')
                    .map_or(dest.as_str(), |(_, h)| h)
                    .into(),
            ),
            HostSpec::Daemon { host, .. } => Some(host.clone()),
            HostSpec::Local | HostSpec::Netns(_) => None,
        }
    }

    /// The control address of a daemon, for a client daemon to ask it to vouch.
    pub fn daemon_addr(&self) -> Option<String> {
        match self {
            HostSpec::Daemon { host, port } if host.contains(':') => {
                Some(format!("[{host}]:{port}"))
            }
            HostSpec::Daemon { host, port } => Some(format!("{host}:{port}")),
            _ => None,
        }
    }
}

/// What the controller needs to reach agents.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    /// The agent binary to start locally, in a namespace, or to copy with `deploy`.
    pub local_agent: PathBuf,
    /// The agent's command on an ssh host (default `agent`, found on the remote PATH).
    pub remote_agent: Option<String>,
    /// Copy `local_agent` to a temporary file on every ssh host and run that.
    pub deploy: bool,
    /// Extra arguments for every `ssh` (after the user's own config, before ours).
    pub ssh_args: Vec<String>,
    /// The daemons' shared secret.
    pub secret: Option<Secret>,
}

/// A session with one agent.
pub struct Link {
    label: String,
    writer: Box<dyn Write + Send>,
    /// Tags what this side sends, once a daemon session is sealed.
    seal: Option<Seal>,
    replies: mpsc::Receiver<Result<Reply, FrameError>>,
    /// Hands the reader its seal once the daemon proved the secret.
    reader_seal: Option<mpsc::Sender<Seal>>,
    /// A daemon's socket, shut on close so that the reader thread ends.
    socket: Option<TcpStream>,
    child: Option<Child>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// Set once the agent's stderr has been read to its end.
    stderr_done: Arc<AtomicBool>,
    /// The agent's host name, from its hello.
    pub hostname: String,
    /// Notices the agent sent, oldest first, until taken.
    pub notices: Vec<String>,
    dead: bool,
}

impl Link {
    /// Starts or reaches the agent at `spec` and checks its hello.
    pub fn open(spec: &HostSpec, reach: &Reach) -> Result<Link> {
        let label = spec.to_string();
        let link = match spec {
            HostSpec::Local => Link::spawn(&label, Command::new(&reach.local_agent)),
            HostSpec::Netns(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&reach.local_agent);
                Link::spawn(&label, c)
            }
            HostSpec::Ssh { dest, port } => {
                let agent = match (&reach.remote_agent, reach.deploy) {
                    (_, true) => deploy(dest, *port, reach)?,
                    (Some(a), false) => a.clone(),
                    (None, false) => "agent".into(),
                };
                let mut c = ssh(dest, *port, reach);
                c.arg(shell_quote(&agent));
                if reach.deploy {
                    // The agent unlinks its copied binary as it starts: nothing stays on
                    // the host whatever happens to the session.
                    c.arg("--remove-self");
                }
                Link::spawn(&label, c)
            }
            HostSpec::Daemon { .. } => {
                let addr = spec.daemon_addr().expect("a daemon has an address");
                return Link::daemon(&addr, reach.secret.as_ref());
            }
        }
        .with_context(|| format!("{label}: starting the agent"))?;
        link.hello(None)
    }

    fn spawn(label: &str, mut command: Command) -> Result<Link> {
        command
            .arg("--stdio")
            // Marks the agents this controller started, for whoever checks that none
            // outlives it (ssh does not pass it on; a remote agent ends with its session).
            .env(CONTROLLER_ENV, std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("running {:?}", command.get_program()))?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_done = Arc::new(AtomicBool::new(false));
        if let Some(err) = child.stderr.take() {
            let (tail, done) = (stderr.clone(), stderr_done.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    let mut t = tail.lock().expect("stderr lock");
                    if t.len() == 20 {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
                done.store(true, Ordering::Release);
            });
        }
        let (replies, _) = read_replies(stdout);
        Ok(Link {
            label: label.into(),
            writer: Box::new(stdin),
            seal: None,
            replies,
            reader_seal: None,
            socket: None,
            child: Some(child),
            stderr,
            stderr_done,
            hostname: String::new(),
            notices: Vec::new(),
            dead: false,
        })
    }

    /// Reaches the daemon at `addr` (`HOST:PORT`) and, when it asks, proves `secret`.
    pub fn daemon(addr: &str, secret: Option<&Secret>) -> Result<Link> {
        let label = format!("agent://{addr}");
        let sock = addr
            .to_socket_addrs()
            .with_context(|| format!("{label}: resolving"))?
            .next()
            .ok_or_else(|| anyhow!("{label}: no address"))?;
        let stream = TcpStream::connect_timeout(&sock, Duration::from_secs(10))
            .with_context(|| format!("{label}: connecting"))?;
        let _ = stream.set_nodelay(true);
        let reader = stream.try_clone().context("cloning the socket")?;
        let socket = stream.try_clone().context("cloning the socket")?;
        let (replies, reader_seal) = read_replies(reader);
        let link = Link {
            label,
            writer: Box::new(stream),
            seal: None,
            replies,
            reader_seal: Some(reader_seal),
            socket: Some(socket),
            child: None,
            stderr: Arc::default(),
            stderr_done: Arc::new(AtomicBool::new(true)),
            hostname: String::new(),
            notices: Vec::new(),
            dead: false,
        };
        link.hello(secret)
    }

    fn hello(mut self, secret: Option<&Secret>) -> Result<Link> {
        let reply = self.expect(Instant::now() + HELLO_WAIT, "its hello")?;
        let Reply::Hello {
            protocol,
            version,
            host,
            challenge,
        } = reply
        else {
            bail!(
                "{}: the agent began with {}, not hello",
                self.label,
                reply.name()
            );
        };
        let ours = env!("CARGO_PKG_VERSION");
        if protocol != PROTOCOL || version != ours {
            bail!(
                "{}: the agent there is copyperf {version} (control protocol {protocol}); this \
                 controller is copyperf {ours} (protocol {PROTOCOL}): install the same version \
                 there, or pass --deploy to copy this one",
                self.label
            );
        }
        self.hostname = host;
        let nonce = match (challenge, secret) {
            (None, None) => return Ok(self),
            (Some(nonce), Some(_)) => nonce,
            (Some(_), None) => bail!(
                "{}: the daemon wants the shared secret; give --secret-file",
                self.label
            ),
            // Holding the secret, trust only a daemon that proves it too.
            (None, Some(_)) => bail!(
                "{}: the daemon did not ask for the secret, so it cannot prove it holds it; \
                 not trusting it",
                self.label
            ),
        };
        let secret = secret.expect("matched above");
        let ours = auth::nonce();
        self.send(&Request::Auth {
            mac: secret.answer(Prover::Controller, &nonce),
            nonce: ours.clone(),
        })?;
        match self.expect(Instant::now() + CALL_WAIT, "authentication")? {
            Reply::Authenticated { mac } if secret.check(Prover::Agent, &ours, &mac) => {}
            Reply::Authenticated { .. } => bail!(
                "{}: the daemon did not prove it holds the secret; not trusting it",
                self.label
            ),
            other => bail!("{}: unexpected {} to Auth", self.label, other.name()),
        }
        // From here every frame is sealed both ways.
        let key = secret.session_key(&nonce, &ours);
        self.seal = Some(Seal::new(key, Prover::Controller));
        let reader = self.reader_seal.take().expect("a daemon link's reader");
        if reader.send(Seal::new(key, Prover::Agent)).is_err() {
            self.dead = true;
            bail!("{}: the connection ended after authentication", self.label);
        }
        Ok(self)
    }

    /// The host this link reaches, as the user named it.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether the session broke (the agent died, a deadline passed): reopen it.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    fn send(&mut self, request: &Request) -> Result<()> {
        if let Err(e) = proto::write_sealed(&mut self.writer, request, self.seal.as_mut()) {
            self.dead = true;
            let ended = self.ended();
            bail!("{}: sending to the agent: {e}{ended}", self.label);
        }
        Ok(())
    }

    /// The next reply other than a notice, by `deadline`. `Failed` is an error.
    fn expect(&mut self, deadline: Instant, what: &str) -> Result<Reply> {
        self.expect_until(deadline, what, &AtomicBool::new(false))
            .map(|r| r.expect("not stopped"))
    }

    /// As [`Link::expect`], but returns `None` as soon as `stop` is set.
    fn expect_until(
        &mut self,
        deadline: Instant,
        what: &str,
        stop: &AtomicBool,
    ) -> Result<Option<Reply>> {
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let now = Instant::now();
            if now >= deadline {
                self.dead = true;
                bail!(
                    "{}: no answer from the agent ({what}) in time; the host or the network \
                     between may be down",
                    self.label
                );
            }
            let wait = (deadline - now).min(Duration::from_millis(100));
            match self.replies.recv_timeout(wait) {
                Ok(Ok(Reply::Notice { text })) => {
                    // Kept within bounds, whatever an agent sends.
                    if self.notices.len() < MAX_NOTICES {
                        self.notices
                            .push(text.chars().take(MAX_NOTICE_CHARS).collect());
                    }
                }
                Ok(Ok(Reply::Failed { error, .. })) => bail!("{}: {error}", self.label),
                Ok(Ok(reply)) => return Ok(Some(reply)),
                Ok(Err(e)) => {
                    self.dead = true;
                    let ended = self.ended();
                    bail!("{}: waiting for {what}: {e}{ended}", self.label);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.dead = true;
                    let ended = self.ended();
                    bail!(
                        "{}: waiting for {what}: the agent's stream ended{ended}",
                        self.label
                    );
                }
            }
        }
    }

    /// How the agent's process ended, and the last thing it said, for an error.
    fn ended(&mut self) -> String {
        let mut out = String::new();
        if let Some(child) = &mut self.child {
            match wait_within(child, Duration::from_millis(500)) {
                Some(s) => {
                    out += &format!("; the agent's process ended ({s})");
                    // What it said last may still be on its way through the pipe.
                    let deadline = Instant::now() + Duration::from_secs(1);
                    while !self.stderr_done.load(Ordering::Acquire) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                None => out += "; the agent's process is still running",
            }
        }
        if let Some(last) = self.stderr.lock().expect("stderr lock").back() {
            out += &format!("; it said: {last}");
        }
        out
    }

    fn call(&mut self, request: Request, what: &str) -> Result<Reply> {
        self.send(&request)?;
        self.expect(Instant::now() + CALL_WAIT, what)
    }

    /// This host, and the interface holding `addr`.
    pub fn describe(&mut self, addr: Option<std::net::IpAddr>) -> Result<HostInfo> {
        match self.call(Request::Describe { addr }, "its description")? {
            Reply::Described { host } => Ok(*host),
            other => bail!("{}: unexpected {} to Describe", self.label, other.name()),
        }
    }

    /// Whether the host's kernel runs `mode` on `backend`: `Err` with the reason, naming
    /// the host and what is missing, where it does not.
    pub fn supports(&mut self, backend: engine::Backend, mode: engine::Mode) -> Result<()> {
        match self.call(Request::Supports { backend, mode }, "its kernel's support")? {
            Reply::Supported => Ok(()),
            other => bail!("{}: unexpected {} to Supports", self.label, other.name()),
        }
    }

    /// Starts a server; returns the address it listens on.
    pub fn serve(&mut self, config: &ServerConfig) -> Result<SocketAddr> {
        let request = Request::Serve {
            config: config.clone(),
        };
        match self.call(request, "its server to start")? {
            Reply::Serving { addr } => Ok(addr),
            other => bail!("{}: unexpected {} to Serve", self.label, other.name()),
        }
    }

    /// Stops the server.
    pub fn stop_serving(&mut self) -> Result<()> {
        match self.call(Request::StopServing, "its server to stop")? {
            Reply::Stopped => Ok(()),
            other => bail!("{}: unexpected {} to StopServing", self.label, other.name()),
        }
    }

    /// Connects a client and waits until every connection is past its handshake.
    pub fn connect(&mut self, config: &ClientConfig, peer_agent: Option<String>) -> Result<usize> {
        let request = Request::Connect {
            config: Box::new(config.clone()),
            peer_agent,
        };
        let wait = config.connect_timeout * config.total_connections().max(1) as u32 + CALL_WAIT;
        self.send(&request)?;
        match self.expect(Instant::now() + wait, "its client to connect")? {
            Reply::Connected { connections } => Ok(connections),
            other => bail!("{}: unexpected {} to Connect", self.label, other.name()),
        }
    }

    /// Lets the connected client start its measured interval.
    pub fn go(&mut self) -> Result<()> {
        self.send(&Request::Go)
    }

    /// Ends the client's run early.
    pub fn abort(&mut self) {
        let _ = self.send(&Request::Abort);
    }

    /// Waits for the client's record until `deadline`; `None` once `stop` is set.
    pub fn finish(&mut self, deadline: Instant, stop: &AtomicBool) -> Result<Option<Record>> {
        match self.expect_until(deadline, "its client's record", stop)? {
            None => Ok(None),
            Some(Reply::Finished { record }) => Ok(Some(*record)),
            Some(other) => bail!("{}: unexpected {} to Go", self.label, other.name()),
        }
    }

    /// Asks whether this agent serves `addr`.
    pub fn vouch(&mut self, addr: SocketAddr) -> Result<()> {
        match self.call(Request::Vouch { addr }, "its word")? {
            Reply::Vouched => Ok(()),
            other => bail!("{}: unexpected {} to Vouch", self.label, other.name()),
        }
    }

    /// Ends the session: says bye, then stops the agent's process if it lingers.
    pub fn close(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        if !self.dead {
            let _ = proto::write_sealed(&mut self.writer, &Request::Bye, self.seal.as_mut());
        }
        // Closing our end of its stdin is what a stdio agent waits for; a daemon's
        // socket is shut, which also ends the reader thread's read.
        self.writer = Box::new(std::io::sink());
        if let Some(socket) = self.socket.take() {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
        if let Some(mut child) = self.child.take() {
            if wait_within(&mut child, Duration::from_secs(5)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.shut();
    }
}

/// The agents started from `exe` on this host whose controller (the pid in their
/// [`CONTROLLER_ENV`]) has exited: what a controller that cleaned up after itself leaves
/// none of.
pub fn orphaned_agents(exe: &std::path::Path) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let key = format!("{CONTROLLER_ENV}=");
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let proc = entry.path();
        if std::fs::read_link(proc.join("exe")).ok().as_deref() != Some(exe) {
            continue;
        }
        let environ = std::fs::read(proc.join("environ")).unwrap_or_default();
        let controller = environ
            .split(|&b| b == 0)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .find_map(|v| v.strip_prefix(&key))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(c) = controller {
            if !std::path::Path::new(&format!("/proc/{c}")).exists() {
                out.push(pid);
            }
        }
    }
    out
}

/// A thread that reads the agent's magic and then its frames into a bounded channel (an
/// agent that floods waits for the controller); the channel closes after the first
/// error. After an `Authenticated` reply the thread waits for the session's seal, sent
/// on the returned sender, and checks every later frame with it.
fn read_replies(
    r: impl Read + Send + 'static,
) -> (
    mpsc::Receiver<Result<Reply, FrameError>>,
    mpsc::Sender<Seal>,
) {
    let (tx, rx) = mpsc::sync_channel(16);
    let (seal_tx, seal_rx) = mpsc::channel::<Seal>();
    std::thread::spawn(move || {
        let mut r = r;
        if let Err(e) = proto::read_magic(&mut r) {
            let _ = tx.send(Err(e));
            return;
        }
        let mut seal: Option<Seal> = None;
        loop {
            let frame = proto::read_raw(&mut r, MAX_REPLY)
                .and_then(|body| proto::parse::<Reply>(body, seal.as_mut()));
            let end = frame.is_err();
            let authenticated = seal.is_none() && matches!(frame, Ok(Reply::Authenticated { .. }));
            if tx.send(frame).is_err() || end {
                return;
            }
            if authenticated {
                match seal_rx.recv() {
                    Ok(s) => seal = Some(s),
                    Err(_) => return,
                }
            }
        }
    });
    (rx, seal_tx)
}

/// `ssh` to `dest` with the user's arguments first (for each option, ssh keeps the first
/// value it sees, so theirs win), then ours: no terminal, no password prompt in the middle
/// of a sweep, and a dead connection noticed within about 15 s.
fn ssh(dest: &str, port: Option<u16>, reach: &Reach) -> Command {
    let mut c = Command::new("ssh");
    c.args(&reach.ssh_args);
    c.args([
        "-T",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "ServerAliveInterval=5",
        "-o",
        "ServerAliveCountMax=3",
    ]);
    if let Some(p) = port {
        c.args(["-p", &p.to_string()]);
    }
    c.arg(dest).arg("--");
    c
}

/// Copies the local agent binary to a fresh temporary file on the host; returns its path.
fn deploy(dest: &str, port: Option<u16>, reach: &Reach) -> Result<String> {
    let label = HostSpec::Ssh {
        dest: dest.into(),
        port,
    };
    let binary = std::fs::File::open(&reach.local_agent)
        .with_context(|| format!("opening {}", reach.local_agent.display()))?;
    let out = ssh(dest, port, reach)
        .arg(r#"f=$(mktemp /tmp/copyperf-agent.XXXXXX) && cat > "$f" && chmod 700 "$f" && echo "$f""#)
        .stdin(binary)
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("{label}: running ssh"))?;
    if !out.status.success() {
        bail!(
            "{label}: copying the agent there failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !path.starts_with("/tmp/copyperf-agent.") {
        bail!("{label}: copying the agent there printed {path:?}, not a path");
    }
    Ok(path)
}

/// `s` in single quotes for the remote shell ssh hands the command to.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_specs_parse_and_print_back() {
        for (s, spec) in [
            ("local", HostSpec::Local),
            ("netns:cps1", HostSpec::Netns("cps1".into())),
            (
                "ssh://root@10.0.0.2",
                HostSpec::Ssh {
                    dest: "root@10.0.0.2".into(),
                    port: None,
                },
            ),
            (
                "ssh://hostb:2222",
                HostSpec::Ssh {
                    dest: "hostb".into(),
                    port: Some(2222),
                },
            ),
            (
                "ssh://me@[fe80::1]:22",
                HostSpec::Ssh {
                    dest: "me@fe80::1".into(),
                    port: Some(22),
                },
            ),
            (
                "agent://10.0.0.3:9000",
                HostSpec::Daemon {
                    host: "10.0.0.3".into(),
                    port: 9000,
                },
            ),
        ] {
            assert_eq!(s.parse::<HostSpec>(), Ok(spec), "{s}");
        }
        assert_eq!(
            "agent://hostc".parse::<HostSpec>().unwrap().to_string(),
            "agent://hostc:8079"
        );
        assert_eq!(
            "ssh://me@hostb".parse::<HostSpec>().unwrap().data_host(),
            Some("hostb".into())
        );
        for bad in [
            "",
            "hostb",
            "netns:",
            "ftp://x",
            "ssh://",
            "ssh://-oProxyCommand=x",
            "ssh://h:port",
            "agent://u@h",
        ] {
            let e = bad.parse::<HostSpec>().unwrap_err();
            assert!(e.contains("expected local, netns:NAME"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_remote_shell_gets_one_word() {
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
