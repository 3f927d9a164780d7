//! The agent's side of a session: read requests, serve or run a client as asked, answer
//! with frames. One server and one client at most per session; everything the session
//! started is stopped when it ends, whether by `Bye`, by the stream closing (the
//! controller exited, ssh dropped, the daemon's connection broke) or by a bad frame.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use engine::host::HostInfo;
use engine::{ClientConfig, ClientEvent, Error, Server, ServerConfig, ServerEvent};

use super::auth::{Seal, Seals, Secret};
use super::proto::{self, FrameError, Reply, Request, MAX_REQUEST, PROTOCOL};

/// How the session was reached, which decides what it may do.
#[derive(Debug, Clone)]
pub enum Reach {
    /// stdin/stdout of a process its launcher started (`ip netns exec`, `ssh`): whoever
    /// could start it could run anything on this host anyway.
    Stdio,
    /// A daemon's TCP connection: a client runs only against a server another agent
    /// vouches for, asked with this secret.
    Daemon { secret: Option<Secret> },
}

/// The agent's first frame.
pub fn hello(challenge: Option<String>) -> Reply {
    Reply::Hello {
        protocol: PROTOCOL,
        version: env!("CARGO_PKG_VERSION").into(),
        host: crate::sweep::hostname(),
        challenge,
    }
}

/// A frame writer several threads share; a failed write means the controller is gone,
/// which stops the session.
#[derive(Clone)]
struct Out {
    w: Arc<Mutex<Sealed>>,
    gone: Arc<AtomicBool>,
}

/// The session's output and, in a sealed session, the seal of what it sends.
struct Sealed {
    w: Box<dyn Write + Send>,
    seal: Option<Seal>,
}

impl Out {
    fn send(&self, reply: &Reply) {
        let mut out = self.w.lock().expect("writer lock");
        let Sealed { w, seal } = &mut *out;
        if proto::write_sealed(&mut **w, reply, seal.as_mut()).is_err() {
            self.gone.store(true, Ordering::Relaxed);
        }
    }

    fn fail(&self, error: impl std::fmt::Display, exit_code: i32) {
        self.send(&Reply::Failed {
            error: error.to_string(),
            exit_code,
        });
    }
}

struct Serving {
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
    bind: IpAddr,
    thread: JoinHandle<Result<(), Error>>,
}

struct Running {
    stop: Arc<AtomicBool>,
    gate: mpsc::Sender<bool>,
    thread: JoinHandle<()>,
}

/// Runs a session whose hello (and, for a daemon, authentication) is done: answers
/// requests from `input` on `output` until `Bye`, the end of `input`, or a bad frame.
/// `seals` seal every frame both ways (a daemon's authenticated session).
/// `log` gets one line per event worth keeping (a bad frame, a refusal); `stop` (a
/// signal) ends the session like `Bye`.
pub fn run(
    input: impl Read + Send + 'static,
    output: impl Write + Send + 'static,
    reach: Reach,
    seals: Option<Seals>,
    stop: &AtomicBool,
    log: &dyn Fn(&str),
) {
    let (mut incoming, outgoing) = match seals {
        Some(s) => (Some(s.incoming), Some(s.outgoing)),
        None => (None, None),
    };
    let out = Out {
        w: Arc::new(Mutex::new(Sealed {
            w: Box::new(output),
            seal: outgoing,
        })),
        gone: Arc::new(AtomicBool::new(false)),
    };
    // Bounded: a controller that floods requests waits for them to be answered instead
    // of queueing them in memory.
    let (tx, requests) = mpsc::sync_channel(4);
    std::thread::spawn(move || {
        let mut input = input;
        loop {
            let frame = proto::read_raw(&mut input, MAX_REQUEST)
                .and_then(|body| proto::parse::<Request>(body, incoming.as_mut()));
            let end = frame.is_err();
            if tx.send(frame).is_err() || end {
                return;
            }
        }
    });
    let mut server: Option<Serving> = None;
    let mut client: Option<Running> = None;
    loop {
        let request = match requests.recv_timeout(Duration::from_millis(200)) {
            Ok(Ok(r)) => r,
            Ok(Err(FrameError::Closed)) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Ok(Err(e)) => {
                log(&format!("ending the session: {e}"));
                out.fail(format!("ending the session: {e}"), engine::exit::USAGE);
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if out.gone.load(Ordering::Relaxed) || stop.load(Ordering::Relaxed) {
                    break;
                }
                continue;
            }
        };
        if client.as_ref().is_some_and(|c| c.thread.is_finished()) {
            client = None;
        }
        match request {
            Request::Bye => break,
            Request::Auth { .. } => out.fail("already past the hello; Auth is not expected", 2),
            Request::Describe { addr } => {
                let ip = addr.unwrap_or(IpAddr::from([0, 0, 0, 0]));
                out.send(&Reply::Described {
                    host: Box::new(HostInfo::for_address(ip)),
                });
            }
            Request::Supports { backend, mode } => match engine::check_support(backend, mode) {
                Ok(()) => out.send(&Reply::Supported),
                Err(e) => out.fail(&e, e.exit_code()),
            },
            Request::Serve { config } => match &server {
                Some(s) => out.fail(format!("already serving on {}", s.addr), 2),
                None => match serve(config, &out) {
                    Ok(s) => {
                        out.send(&Reply::Serving { addr: s.addr });
                        server = Some(s);
                    }
                    Err(e) => out.fail(&e, e.exit_code()),
                },
            },
            Request::StopServing => match server.take() {
                None => out.fail("not serving", 2),
                Some(s) => match stop_serving(s) {
                    Ok(()) => out.send(&Reply::Stopped),
                    Err(e) => out.fail(format!("the server failed: {e}"), e.exit_code()),
                },
            },
            Request::Connect { config, peer_agent } => {
                if client.is_some() {
                    out.fail("a client is already running in this session", 2);
                    continue;
                }
                let mut config = *config;
                if let Reach::Daemon { secret } = &reach {
                    match vouched(&config, peer_agent.as_deref(), secret.as_ref()) {
                        // The client dials the very address vouched for, not a name that
                        // might resolve elsewhere the second time.
                        Ok(target) => config.host = target.ip().to_string(),
                        Err(e) => {
                            log(&format!("refused a client run: {e:#}"));
                            out.fail(format!("refused: {e:#}"), engine::exit::REFUSED);
                            continue;
                        }
                    }
                }
                client = Some(start_client(config, &out));
            }
            Request::Go | Request::Abort => match &client {
                None => out.fail("no client is waiting", 2),
                Some(c) => {
                    let go = request == Request::Go;
                    if !go {
                        c.stop.store(true, Ordering::Relaxed);
                    }
                    let _ = c.gate.send(go);
                }
            },
            Request::Vouch { addr } => match vouch(addr) {
                true => out.send(&Reply::Vouched),
                false => out.fail(format!("no server of this agent listens on {addr}"), 3),
            },
        }
    }
    // Stop what the session started; a thread that does not end in time is left to the
    // process's exit (a stdio agent exits right after this).
    if let Some(c) = client {
        c.stop.store(true, Ordering::Relaxed);
        let _ = c.gate.send(false);
        join_within(c.thread, Duration::from_secs(10));
    }
    if let Some(s) = server {
        let _ = stop_serving(s);
    }
}

fn serve(config: ServerConfig, out: &Out) -> Result<Serving, Error> {
    let bind = config.bind;
    let server = Server::bind(config)?;
    let addr = server.local_addr();
    SERVERS
        .lock()
        .expect("servers lock")
        .push((bind, addr.port()));
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let out = out.clone();
    let thread = std::thread::spawn(move || {
        let on_event = |e: ServerEvent| match e {
            ServerEvent::Notice(text) => out.send(&Reply::Notice {
                text: format!("server: {text}"),
            }),
            ServerEvent::Failed { peer, error, .. } => out.send(&Reply::Notice {
                text: format!("server: client {peer} dropped: {error}"),
            }),
            ServerEvent::Refused { peer, reason, .. } => out.send(&Reply::Notice {
                text: format!("server: client {peer} refused: {reason}"),
            }),
            _ => {}
        };
        server.run(&flag, &on_event)
    });
    Ok(Serving {
        stop,
        addr,
        bind,
        thread,
    })
}

fn stop_serving(s: Serving) -> Result<(), Error> {
    s.stop.store(true, Ordering::Relaxed);
    SERVERS
        .lock()
        .expect("servers lock")
        .retain(|&entry| entry != (s.bind, s.addr.port()));
    match s.thread.join() {
        Ok(r) => r,
        Err(panic) => Err(Error::from_panic(&*panic)),
    }
}

fn start_client(config: ClientConfig, out: &Out) -> Running {
    let stop = Arc::new(AtomicBool::new(false));
    let (gate, gate_rx) = mpsc::channel();
    let flag = stop.clone();
    let out = out.clone();
    let thread = std::thread::spawn(move || {
        let gate_rx = Mutex::new(gate_rx);
        let on_event = |e: ClientEvent| match e {
            ClientEvent::Connected { connections } => {
                out.send(&Reply::Connected { connections });
                // The start line: the controller lets every host go at once.
                let go = gate_rx.lock().expect("gate lock").recv().unwrap_or(false);
                if !go {
                    flag.store(true, Ordering::Relaxed);
                }
            }
            ClientEvent::Notice(text) => out.send(&Reply::Notice { text }),
            // An agent's intervals reach its controller in the record.
            ClientEvent::ThreadStarted { .. } | ClientEvent::Interval(_) => {}
        };
        match engine::run_client_until(&config, &flag, &on_event) {
            Ok(record) => out.send(&Reply::Finished {
                record: Box::new(record),
            }),
            Err(e) => out.fail(&e, e.exit_code()),
        }
    });
    Running { stop, gate, thread }
}

/// The servers every session of this process runs, as (bound address, port): what a
/// daemon's sessions vouch for, whichever session started them.
static SERVERS: Mutex<Vec<(IpAddr, u16)>> = Mutex::new(Vec::new());

/// Whether a server of this process listens on `addr`, an address of this host.
fn vouch(addr: SocketAddr) -> bool {
    let local = UdpSocket::bind((addr.ip(), 0)).is_ok();
    local
        && SERVERS
            .lock()
            .expect("servers lock")
            .iter()
            .any(|&(bind, port)| {
                port == addr.port() && (bind.is_unspecified() || bind == addr.ip())
            })
}

/// A daemon runs a client only against a server that an agent, authenticated with the
/// same secret, vouches for: so a daemon cannot be turned into a traffic generator
/// against a third party. Returns the address vouched for.
fn vouched(
    config: &ClientConfig,
    peer_agent: Option<&str>,
    secret: Option<&Secret>,
) -> anyhow::Result<SocketAddr> {
    use anyhow::Context;
    let target = (config.host.as_str(), config.port)
        .to_socket_addrs()
        .with_context(|| format!("resolving {}:{}", config.host, config.port))?
        .next()
        .with_context(|| format!("{} has no address", config.host))?;
    let peer = peer_agent.with_context(|| {
        format!(
            "a daemon runs clients only against a server another copyperf agent vouches \
             for, and no agent was named for {target}"
        )
    })?;
    let ip = target.ip();
    if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::from([255, 255, 255, 255]) {
        anyhow::bail!("{ip} is not an address a server can be reached on");
    }
    // An agent elsewhere vouches for its own loopback, which is not this host's: a
    // loopback target is vouched for only by an agent reached over loopback (this host).
    let peer_is_local = peer
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| a.ip().is_loopback());
    if ip.is_loopback() && !peer_is_local {
        anyhow::bail!(
            "{target} is this host's loopback, and the agent {peer} that would vouch for it \
             is not on this host"
        );
    }
    let mut link = super::control::Link::daemon(peer, secret)
        .with_context(|| format!("{target} is not vouched for: the agent {peer}"))?;
    link.vouch(target)
        .with_context(|| format!("{target} is not vouched for"))?;
    link.close();
    Ok(target)
}

fn join_within<T>(thread: JoinHandle<T>, limit: Duration) {
    let end = Instant::now() + limit;
    while !thread.is_finished() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    if thread.is_finished() {
        let _ = thread.join();
    }
}
