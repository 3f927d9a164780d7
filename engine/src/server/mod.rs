//! The server: accept, handshake, hand each connection to its backend, report.
//!
//! The acceptor never talks to a client itself: every accepted socket gets a short-lived
//! thread for its hello, so a client that never sends one holds up nobody. A client over
//! `-t`, a malformed hello, a connection the memory budget cannot hold: each is refused
//! with the reason. Whatever a client does — garbage, a truncated message, a reset, a
//! trickle — ends that connection with one log line and nothing else; even a bug that
//! panics while serving one connection costs only that connection.
//!
//! A connection's buffers are allocated on its handshake thread, after the memory budget
//! has been charged with exactly what they take ([`PoolPlan::bytes`]) and before the
//! client is accepted: a serving thread (a uring worker with many connections) never
//! stalls on an allocation.
//!
//! - `admission.rs`: the handshake and everything that decides whether a client gets in
//!   (its hello, the memory budget, the registered-buffer room, `-t`), and refusals;
//! - `serving.rs`: a connection's run on the syscall engine, and the server's side of the
//!   uring engine's work ([`backend::uring::ServeHost`]);
//! - `metering.rs`: the counter readings around each connection.

mod admission;
mod metering;
mod serving;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::backend;
use crate::backend::uring::{Dispatch, Incoming, ServeHost, ServeOpts};
use crate::config::{
    auto_nodelay, check_pool, format_size, Backend, Mode, ServerConfig, UringRecv, Valid, Workload,
    MIN_SIZE,
};
use crate::conn::{ConnReport, ConnSpec, STOP_GRACE};
use crate::counters::{CounterSet, Metering, RawCounts, CORE_KEY};
use crate::cputime::ThreadClock;
use crate::error::Error;
use crate::path::{path, rx};
use crate::placement::{self, available_cpus, Placement, PlacementPolicy, Plan, Side};
use crate::pool::PoolPlan;
use crate::stats::{IoStats, PeerReport, RingSetup, Sample, Totals};
use crate::vocab::{Direction, Role};
use crate::wire::{self, Accept, Frame, Hello, ReadError, Refuse, RefuseCode, WireError};
use crate::workload::{pool_role, Flow, FlowSpec};

use admission::*;
use metering::*;
use serving::*;

/// The longest a connecting client may take to send its whole hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a refused client gets to read the refusal before the socket closes.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// The longest the server holds a socket it is done with (a refused one, or one ended with
/// an end notice) while its client is still taking what was queued for it: a bound on
/// what a client that reads a byte now and then can make a stopping server wait.
const LINGER_MAX: Duration = Duration::from_secs(10);
/// Refused connections lingering at once while their clients read the reason; past this
/// a connection is closed unanswered (documented in README, "Server").
pub const REFUSAL_BACKLOG: usize = 256;
/// The listen queue asked of the kernel (which caps it at net.core.somaxconn).
const LISTEN_BACKLOG: libc::c_int = 4096;
/// How often the acceptor looks at the stop flag.
const ACCEPT_TICK: Duration = Duration::from_millis(100);

/// What a server reports as it runs; the binary turns these into log lines.
#[derive(Debug)]
pub enum ServerEvent {
    /// A client passed the handshake.
    Connected {
        id: u64,
        peer: SocketAddr,
        hello: Hello,
    },
    /// A client finished its run; `report` was sent back to it.
    Disconnected {
        id: u64,
        peer: SocketAddr,
        report: Box<PeerReport>,
    },
    /// A client was told no, with this reason.
    Refused {
        id: u64,
        peer: SocketAddr,
        reason: String,
    },
    /// A client broke the protocol or the connection; it was closed.
    Failed {
        id: u64,
        peer: SocketAddr,
        error: String,
    },
    /// Accepting failed for a reason that does not stop the server (e.g. out of fds).
    AcceptError { error: String },
    /// The stop flag was seen; `active` connections are being closed.
    Stopping { active: usize },
    /// Something the user should know that does not stop the server (counters this
    /// machine lacks, a counting scope that was refused).
    Notice(String),
}

/// A bound, not yet serving, server.
pub struct Server {
    listener: TcpListener,
    config: Valid<ServerConfig>,
    addr: SocketAddr,
    plan: Plan,
}

impl Server {
    /// Validates the configuration and binds the listening socket.
    pub fn bind(config: ServerConfig) -> Result<Server, Error> {
        let config = config.validate()?;
        if config.backend == Backend::Uring {
            backend::uring::check_kernel(config.mode)?;
            backend::uring::check_server_rings(config.workers())?;
        }
        // A refused SO_BUSY_POLL stops the server here, by name, rather than failing every
        // connection (uring's NAPI registration is checked as its rings are made).
        if let (Backend::Syscall, Some(us)) = (config.backend, config.busy_poll_us) {
            crate::polling::check_socket_busy_poll(us)?;
        }
        let threads = match config.backend {
            Backend::Syscall => config.max_clients,
            Backend::Uring => config.workers(),
        };
        let plan = placement::plan(&config.cpus, Side::Server, threads, available_cpus())?;
        let want = SocketAddr::new(config.bind, config.port);
        let listener = TcpListener::bind(want).map_err(|source| Error::Bind {
            addr: want.to_string(),
            source,
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("listening socket", e))?;
        // std listens with a backlog of 128; a burst of clients beyond -t should wait in
        // the queue for their refusal, not be dropped by the kernel.
        // SAFETY: listen on a socket we own; calling it again only resizes the queue.
        unsafe { libc::listen(listener.as_raw_fd(), LISTEN_BACKLOG) };
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("listening socket", e))?;
        Ok(Server {
            listener,
            config,
            addr,
            plan,
        })
    }

    /// The address actually bound (the port is real even when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The CPUs the server's threads will be pinned to (none: unpinned).
    pub fn cpus(&self) -> Vec<usize> {
        self.plan.distinct()
    }

    /// Serves until `stop` is set, then closes every connection and returns.
    pub fn run(
        &self,
        stop: &AtomicBool,
        on_event: &(dyn Fn(ServerEvent) + Sync),
    ) -> Result<(), Error> {
        let metering = Metering::new(self.config.counters, &self.plan.distinct());
        for notice in self.plan.note.iter().chain(&metering.notices) {
            on_event(ServerEvent::Notice(notice.clone()));
        }
        // A connection takes its socket, and per thread or per CPU up to one descriptor
        // per counter; refusals linger beside them.
        let per_conn = 2 + crate::counters::CounterId::ALL.len() as u64;
        let needed = self.config.max_clients as u64 * per_conn + REFUSAL_BACKLOG as u64 + 64;
        if let Some(limit) = raise_nofile_limit().filter(|&l| l < needed) {
            on_event(ServerEvent::Notice(format!(
                "RLIMIT_NOFILE is {limit}, below the {needed} descriptors -t {} may need; \
                 past it, clients are refused with that reason (raise it: ulimit -n)",
                crate::vocab::count(self.config.max_clients as u64, "client", "clients")
            )));
        }
        let (linger_tx, linger_rx) = mpsc::channel();
        let opts = uring_opts(&self.config);
        let shared = Shared {
            config: &self.config,
            stop,
            on_event,
            plan: &self.plan,
            metering,
            places: Mutex::new(Vec::new()),
            active: AtomicUsize::new(0),
            open: Mutex::new(HashMap::new()),
            budget: Budget::new(self.config.max_memory),
            lingering: Mutex::new(linger_tx),
            spare_fd: Mutex::new(std::fs::File::open("/dev/null").ok()),
            fixed: (self.config.backend == Backend::Uring && opts.fixed_buffers)
                .then(|| FixedRoom::new(self.config.workers())),
            accept_errors: Mutex::new((None, 0)),
            hosts: Mutex::new(Vec::new()),
        };
        std::thread::scope(|scope| {
            scope.spawn(|| linger(linger_rx, stop, &shared.open));
            match self.config.backend {
                Backend::Syscall => {
                    self.accept_loop(stop, &shared, &|accepted| serve_syscall(&shared, accepted))
                }
                Backend::Uring => backend::uring::serve(&opts, &shared, |dispatch| {
                    self.accept_loop(stop, &shared, &|accepted| {
                        hand_to_worker(&shared, dispatch, accepted)
                    })
                }),
            }
        })
    }

    fn accept_loop<'s>(
        &self,
        stop: &AtomicBool,
        shared: &'s Shared<'s>,
        dispatch: &(dyn Fn(Accepted<'s>) + Sync),
    ) -> Result<(), Error> {
        let next_id = AtomicU64::new(0);
        std::thread::scope(|scope| {
            while !stop.load(Ordering::Relaxed) {
                let Some((stream, peer)) = self.accept_one(shared) else {
                    continue;
                };
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                if shared.active.load(Ordering::Acquire) >= shared.config.max_clients {
                    // Answered at once, without reading the hello: the client finds the
                    // reason waiting when it reads the server's answer.
                    let max = shared.config.max_clients;
                    let reason = format!(
                        "server is full: {} connected, the most it takes at once (-t {max})",
                        crate::vocab::count(max as u64, "client", "clients")
                    );
                    let mut stream = stream;
                    refuse(shared, &mut stream, RefuseCode::Full, &reason);
                    (shared.on_event)(ServerEvent::Refused { id, peer, reason });
                    continue;
                }
                let mut slot = Slot::open(shared, id, &stream);
                scope.spawn(move || {
                    // A bug while serving one connection ends that connection, not the
                    // server: its slot, socket and buffers go with the unwinding.
                    let served = catch_unwind(AssertUnwindSafe(|| {
                        let mut stream = stream;
                        match handshake(&mut stream, shared, id, &mut slot) {
                            Ok((hello, spec)) => {
                                (shared.on_event)(ServerEvent::Connected { id, peer, hello });
                                dispatch(Accepted {
                                    spec,
                                    client: Client {
                                        slot,
                                        stream,
                                        peer,
                                        id,
                                        hello,
                                    },
                                });
                            }
                            Err(Handshake::Refused(reason)) => {
                                (shared.on_event)(ServerEvent::Refused { id, peer, reason })
                            }
                            Err(Handshake::Failed(error)) => {
                                (shared.on_event)(ServerEvent::Failed { id, peer, error })
                            }
                        }
                    }));
                    if let Err(panic) = served {
                        (shared.on_event)(ServerEvent::Failed {
                            id,
                            peer,
                            error: Error::from_panic(&*panic).to_string(),
                        });
                    }
                });
            }
            let active = shared.open.lock().expect("registry lock").len();
            (shared.on_event)(ServerEvent::Stopping { active });
            // Connections end themselves at a message boundary, each with its end notice
            // (both engines look at the stop flag at least every 100 ms); whatever is
            // still open after STOP_GRACE is shut down.
            let by = Instant::now() + STOP_GRACE;
            while Instant::now() < by && !shared.open.lock().expect("registry lock").is_empty() {
                std::thread::sleep(Duration::from_millis(10));
            }
            let open = shared.open.lock().expect("registry lock");
            for &fd in open.values() {
                // SAFETY: the fd is open: a Slot removes it under this lock before its
                // socket closes. shutdown only wakes whoever waits on it.
                unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            }
        });
        Ok(())
    }

    /// Waits up to one tick for a connection.
    fn accept_one(&self, shared: &Shared<'_>) -> Option<(TcpStream, SocketAddr)> {
        let mut pfd = libc::pollfd {
            fd: self.listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, ACCEPT_TICK.as_millis() as i32) } <= 0 {
            return None;
        }
        match self.listener.accept() {
            Ok((stream, peer)) => match stream.set_nonblocking(false) {
                Ok(()) => Some((stream, peer)),
                Err(e) => {
                    shared.accept_error(e.to_string());
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) => {
                self.refuse_without_descriptors(shared, &e);
                None
            }
            Err(e) => {
                shared.accept_error(e.to_string());
                // Out of memory and the like: back off instead of spinning.
                std::thread::sleep(ACCEPT_TICK);
                None
            }
        }
    }

    /// Out of descriptors: the spare one kept for this moment is given up so the waiting
    /// client can be accepted, told why, and closed; then it is taken again.
    fn refuse_without_descriptors(&self, shared: &Shared<'_>, e: &std::io::Error) {
        let mut spare = shared.spare_fd.lock().expect("spare fd lock");
        let limit = nofile_limit().map_or("unknown".into(), |n| n.to_string());
        let reason = format!(
            "server out of file descriptors ({e}; RLIMIT_NOFILE is {limit}): try again later"
        );
        shared.accept_error(reason.clone());
        if spare.take().is_some() {
            if let Ok((mut stream, _)) = self.listener.accept() {
                let frame = Frame::Refuse(Refuse {
                    code: RefuseCode::Other,
                    reason,
                });
                let _ = stream.set_nonblocking(true);
                let _ = wire::write_frame(&mut stream, &frame);
                let _ = stream.shutdown(Shutdown::Write);
            }
            *spare = std::fs::File::open("/dev/null").ok();
        } else {
            std::thread::sleep(ACCEPT_TICK);
        }
    }
}

/// RLIMIT_NOFILE's soft limit.
fn nofile_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0).then_some(lim.rlim_cur)
}

/// Raises RLIMIT_NOFILE's soft limit to its hard limit, as servers do: the soft default
/// (often 1024) is below what `-t` clients, their counters and the lingering refusals can
/// take. Returns the limit in force.
fn raise_nofile_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    Some(lim.rlim_cur)
}

/// State every connection thread of one server shares.
pub(crate) struct Shared<'a> {
    pub config: &'a ServerConfig,
    /// Set when the server should stop.
    stop: &'a AtomicBool,
    pub on_event: &'a (dyn Fn(ServerEvent) + Sync),
    /// Where the server's threads go.
    pub plan: &'a Plan,
    /// How the server counts.
    pub metering: Metering,
    /// Thread places in use (syscall): a connection runs on the plan's CPU for the lowest
    /// free place, so a place freed is reused with its CPU.
    places: Mutex<Vec<bool>>,
    active: AtomicUsize,
    /// Sockets to shut down on stop, by connection id.
    open: Mutex<HashMap<u64, RawFd>>,
    /// What the connections' buffers may take, all together.
    budget: Budget,
    /// Sockets the server is done with (refused, or ended with an end notice), handed to
    /// the thread that lets their clients read why.
    lingering: Mutex<Sender<Lingering>>,
    /// A uring server's registered-buffer room (zc-fixed).
    fixed: Option<FixedRoom>,
    /// A descriptor kept spare, to answer a client even when all others are taken.
    spare_fd: Mutex<Option<std::fs::File>>,
    /// Accept errors: the last logged, when, and how many since.
    accept_errors: Mutex<(Option<Instant>, u64)>,
    /// This host as seen from each local address connections arrived on, described once.
    hosts: Mutex<Vec<(std::net::IpAddr, crate::host::HostInfo)>>,
}

impl Shared<'_> {
    /// This host and the interface `stream` arrived on (described on first use of its
    /// local address, after a run, never during one); `None` if the socket has no address.
    pub(super) fn host_for(&self, stream: &TcpStream) -> Option<crate::host::HostInfo> {
        let ip = stream.local_addr().ok()?.ip();
        let mut hosts = self.hosts.lock().expect("hosts lock");
        if let Some((_, h)) = hosts.iter().find(|(a, _)| *a == ip) {
            return Some(h.clone());
        }
        let h = crate::host::HostInfo::for_address(ip);
        hosts.push((ip, h.clone()));
        Some(h)
    }

    /// Logs an accept error, at most once a second with how many came since.
    fn accept_error(&self, error: String) {
        let mut state = self.accept_errors.lock().expect("accept error lock");
        let now = Instant::now();
        state.1 += 1;
        if state
            .0
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        let error = if state.1 > 1 {
            format!("{error} ({} times in the last second or so)", state.1)
        } else {
            error
        };
        *state = (Some(now), 0);
        (self.on_event)(ServerEvent::AcceptError { error });
    }
}
