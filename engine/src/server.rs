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
    check_pool, format_size, Backend, Mode, ServerConfig, UringRecv, Valid, Workload, MIN_SIZE,
};
use crate::conn::{ConnReport, ConnSpec};
use crate::counters::{CounterSet, Metering, RawCounts, CORE_KEY};
use crate::error::Error;
use crate::path::path;
use crate::placement::{self, available_cpus, Placement, Plan, Side};
use crate::pool::PoolPlan;
use crate::stats::{IoStats, PeerReport, RingSetup, Sample, Totals};
use crate::vocab::Role;
use crate::wire::{self, Accept, Frame, Hello, ReadError, Refuse, RefuseCode, WireError};
use crate::workload::{Flow, FlowSpec};

/// The longest a connecting client may take to send its whole hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a refused client gets to read the refusal before the socket closes.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
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
        for notice in &metering.notices {
            on_event(ServerEvent::Notice(notice.clone()));
        }
        // A connection takes its socket, and per thread or per CPU up to one descriptor
        // per counter; refusals linger beside them.
        let per_conn = 2 + crate::counters::CounterId::ALL.len() as u64;
        let needed = self.config.max_clients as u64 * per_conn + REFUSAL_BACKLOG as u64 + 64;
        if let Some(limit) = raise_nofile_limit().filter(|&l| l < needed) {
            on_event(ServerEvent::Notice(format!(
                "RLIMIT_NOFILE is {limit}, below the {needed} descriptors -t {} clients may \
                 need; past it, clients are refused with that reason (raise it: ulimit -n)",
                self.config.max_clients
            )));
        }
        let (linger_tx, linger_rx) = mpsc::channel();
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
            fixed: (self.config.backend == Backend::Uring
                && uring_opts(&self.config).fixed_buffers)
                .then(|| FixedRoom::new(self.config.workers())),
            accept_errors: Mutex::new((None, 0)),
        };
        std::thread::scope(|scope| {
            scope.spawn(|| linger(linger_rx, stop));
            match self.config.backend {
                Backend::Syscall => {
                    self.accept_loop(stop, &shared, &|accepted| serve_syscall(&shared, accepted))
                }
                Backend::Uring => {
                    let opts = uring_opts(&self.config);
                    backend::uring::serve(&opts, &shared, |dispatch| {
                        self.accept_loop(stop, &shared, &|accepted| {
                            hand_to_worker(&shared, dispatch, accepted)
                        })
                    })
                }
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
                        "server is full: {max} clients connected, the most it takes at once (-t {max})"
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
            let open = shared.open.lock().expect("registry lock");
            (shared.on_event)(ServerEvent::Stopping { active: open.len() });
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
    /// Refused sockets, handed to the thread that lets their clients read the reason.
    lingering: Mutex<Sender<(TcpStream, Instant)>>,
    /// A uring server's registered-buffer room (zc-fixed).
    fixed: Option<FixedRoom>,
    /// A descriptor kept spare, to answer a client even when all others are taken.
    spare_fd: Mutex<Option<std::fs::File>>,
    /// Accept errors: the last logged, when, and how many since.
    accept_errors: Mutex<(Option<Instant>, u64)>,
}

impl Shared<'_> {
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

/// The server-wide memory budget for connection buffers (`--max-memory`).
struct Budget {
    limit: u64,
    used: AtomicU64,
}

impl Budget {
    fn new(limit: u64) -> Budget {
        Budget {
            limit,
            used: AtomicU64::new(0),
        }
    }

    /// Charges `bytes`, or says why not.
    fn reserve(&self, bytes: u64) -> Result<(), String> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .map(|_| ())
            .map_err(|used| {
                format!(
                    "server memory budget exhausted: this connection's buffers need {} bytes, \
                     {used} of the {} bytes allowed are in use (--max-memory {})",
                    bytes,
                    self.limit,
                    format_size(self.limit as usize)
                )
            })
    }

    fn release(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// The registered-buffer room of a uring server's workers: each ring's table of fixed
/// buffers, and the locked memory they may pin in all. A zc-fixed client is given a
/// worker with room, or refused with the reason, before it is accepted: a registration
/// that fails after the accept could only close the connection without a word.
struct FixedRoom {
    /// Free table entries per worker.
    free: Mutex<Vec<u32>>,
    /// Bytes pinned by the registered buffers of connections being served.
    pinned: AtomicU64,
    /// RLIMIT_MEMLOCK, unless unlimited or the process holds CAP_IPC_LOCK.
    limit: Option<u64>,
}

impl FixedRoom {
    fn new(workers: usize) -> FixedRoom {
        FixedRoom {
            free: Mutex::new(vec![backend::uring::MAX_FIXED_BUFFERS; workers]),
            pinned: AtomicU64::new(0),
            limit: backend::uring::pin_limit(),
        }
    }

    /// Reserves `count` table entries on the worker with the most room, and `bytes` of
    /// locked memory; returns the worker, or why there is no room.
    fn reserve(&self, count: u32, bytes: u64) -> Result<usize, String> {
        if let Some(limit) = self.limit {
            self.pinned
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                    p.checked_add(bytes).filter(|&t| t <= limit)
                })
                .map_err(|pinned| {
                    format!(
                        "registered buffers: this connection would pin {bytes} bytes, {pinned} of \
                         the {limit} RLIMIT_MEMLOCK allows are pinned (raise ulimit -l, or \
                         grant CAP_IPC_LOCK)"
                    )
                })?;
        } else {
            self.pinned.fetch_add(bytes, Ordering::AcqRel);
        }
        let mut free = self.free.lock().expect("fixed room lock");
        let best = (0..free.len()).max_by_key(|&w| free[w]);
        match best.filter(|&w| free[w] >= count) {
            Some(w) => {
                free[w] -= count;
                Ok(w)
            }
            None => {
                self.pinned.fetch_sub(bytes, Ordering::AcqRel);
                Err(format!(
                    "registered buffers: this connection needs {count} table entries and no \
                     worker has that many free ({} at most each); try again later or lower --depth",
                    backend::uring::MAX_FIXED_BUFFERS
                ))
            }
        }
    }

    fn release(&self, worker: usize, count: u32, bytes: u64) {
        self.free.lock().expect("fixed room lock")[worker] += count;
        self.pinned.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// A connection's place among the `-t` allowed and its share of the memory budget; both
/// given back when dropped.
pub(crate) struct Slot<'a> {
    shared: &'a Shared<'a>,
    id: u64,
    /// The lowest place free when the connection came: its index in the CPU plan.
    pub place: usize,
    /// Bytes of the memory budget charged for the connection's buffers.
    reserved: u64,
    /// zc-fixed on uring: the worker, table entries and pinned bytes reserved.
    fixed: Option<(usize, u32, u64)>,
}

impl<'a> Slot<'a> {
    fn open(shared: &'a Shared<'a>, id: u64, stream: &TcpStream) -> Slot<'a> {
        shared.active.fetch_add(1, Ordering::AcqRel);
        shared
            .open
            .lock()
            .expect("registry lock")
            .insert(id, stream.as_raw_fd());
        let mut places = shared.places.lock().expect("places lock");
        let place = places.iter().position(|used| !used).unwrap_or(places.len());
        if place == places.len() {
            places.push(true);
        } else {
            places[place] = true;
        }
        Slot {
            shared,
            id,
            place,
            reserved: 0,
            fixed: None,
        }
    }

    /// Reserves registered-buffer room on a worker for a zc-fixed connection.
    fn reserve_fixed(&mut self, count: u32, bytes: u64) -> Result<(), String> {
        let Some(room) = &self.shared.fixed else {
            return Ok(());
        };
        let worker = room.reserve(count, bytes)?;
        self.fixed = Some((worker, count, bytes));
        Ok(())
    }

    /// The worker whose registered-buffer room this connection holds.
    fn fixed_worker(&self) -> Option<usize> {
        self.fixed.map(|(w, _, _)| w)
    }

    /// The connection's buffers were leaked (the kernel never gave them back): their
    /// share of the budget stays charged for good, so the budget keeps bounding memory.
    fn forfeit_budget(&mut self) {
        self.reserved = 0;
    }

    /// Charges the memory budget with `bytes` for this connection.
    fn reserve(&mut self, bytes: u64) -> Result<(), String> {
        self.shared.budget.reserve(bytes)?;
        self.reserved += bytes;
        Ok(())
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.shared.budget.release(self.reserved);
        if let (Some((worker, count, bytes)), Some(room)) = (self.fixed, &self.shared.fixed) {
            room.release(worker, count, bytes);
        }
        self.shared.places.lock().expect("places lock")[self.place] = false;
        self.shared
            .open
            .lock()
            .expect("registry lock")
            .remove(&self.id);
        self.shared.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A client past its handshake: its place, its socket, what it asked for. Fields drop in
/// order: the slot (its registry entry, its budget) goes before the socket closes, so stop
/// never shuts down a reused descriptor.
pub(crate) struct Client<'a> {
    pub slot: Slot<'a>,
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub id: u64,
    pub hello: Hello,
}

/// A client and its connection, ready to run: its buffers were allocated on the
/// handshake thread, before it was accepted.
pub(crate) struct Accepted<'a> {
    pub spec: ConnSpec,
    pub client: Client<'a>,
}

enum Handshake {
    Refused(String),
    Failed(String),
}

/// Reads the hello, checks it against this server and its budget, allocates the
/// connection's buffers, and answers accept or refuse.
fn handshake(
    stream: &mut TcpStream,
    shared: &Shared<'_>,
    id: u64,
    slot: &mut Slot<'_>,
) -> Result<(Hello, ConnSpec), Handshake> {
    let config = shared.config;
    let timeout = HELLO_TIMEOUT.min(config.idle_timeout);
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| Handshake::Failed(format!("socket setup: {e}")))?;
    // The whole hello must arrive by then, however it is sliced.
    let hello = match wire::read_frame_by(stream, Instant::now() + timeout) {
        Ok(Frame::Hello(h)) => h,
        Ok(other) => {
            let reason = format!(
                "bad hello: {}",
                WireError::Unexpected {
                    expected: "hello",
                    got: other.name(),
                }
            );
            refuse(shared, stream, RefuseCode::Malformed, &reason);
            return Err(Handshake::Refused(reason));
        }
        Err(ReadError::Wire(WireError::Version(v))) => {
            let reason = format!(
                "protocol version {v} is not spoken here (this server speaks {})",
                wire::VERSION
            );
            refuse(shared, stream, RefuseCode::Version, &reason);
            return Err(Handshake::Refused(reason));
        }
        Err(ReadError::Wire(e)) => {
            let reason = format!("bad hello: {e}");
            refuse(shared, stream, RefuseCode::Malformed, &reason);
            return Err(Handshake::Refused(reason));
        }
        Err(e) => return Err(Handshake::Failed(format!("bad hello: {e}"))),
    };
    let plan = match check_hello(&hello, config) {
        Ok(plan) => plan,
        Err((code, reason)) => {
            refuse(shared, stream, code, &reason);
            return Err(Handshake::Refused(reason));
        }
    };
    if let Err(reason) = slot.reserve(plan.bytes()) {
        refuse(shared, stream, RefuseCode::Memory, &reason);
        return Err(Handshake::Refused(reason));
    }
    if plan.stride.is_some() {
        let pinned = plan.count() as u64 * plan.size as u64;
        if let Err(reason) = slot.reserve_fixed(plan.count() as u32, pinned) {
            refuse(shared, stream, RefuseCode::Memory, &reason);
            return Err(Handshake::Refused(reason));
        }
    }
    #[allow(unused_mut)]
    let mut spec = match ConnSpec::new(stream.as_raw_fd(), server_flow_spec(&hello), plan) {
        Ok(spec) => spec,
        Err(e) => {
            let reason = format!("could not allocate the connection's buffers: {e}");
            refuse(shared, stream, RefuseCode::Memory, &reason);
            return Err(Handshake::Refused(reason));
        }
    };
    #[cfg(debug_assertions)]
    spec.flow.inject_fault();
    let accept = Frame::Accept(Accept {
        backend: config.backend,
        connection: id,
    });
    wire::write_frame(stream, &accept)
        .map_err(|e| Handshake::Failed(format!("sending accept: {e}")))?;
    Ok((hello, spec))
}

/// Why this server will not serve `hello`, if it will not; else what its buffers take.
fn check_hello(h: &Hello, config: &ServerConfig) -> Result<PoolPlan, (RefuseCode, String)> {
    let size = h.size as usize;
    if !(MIN_SIZE..=config.max_size).contains(&size) {
        return Err((
            RefuseCode::Size,
            format!(
                "message size {size} is outside what this server takes: {MIN_SIZE} to {} bytes (-s)",
                config.max_size
            ),
        ));
    }
    let depth = h.depth as usize;
    let plan = check_pool(Role::Server, h.mode, depth, size)
        .map_err(|e| (RefuseCode::Depth, e.to_string()))?;
    if let Some(mode) = config.mode {
        if mode != h.mode {
            return Err((
                RefuseCode::Mode,
                format!(
                    "this server serves {mode} only; the client asked for {}",
                    h.mode
                ),
            ));
        }
    }
    if !h.mode.supported_on(config.backend) {
        return Err((
            RefuseCode::Mode,
            format!(
                "mode {} needs a uring server; this one runs the {} backend",
                h.mode, config.backend
            ),
        ));
    }
    if config.backend == Backend::Uring {
        backend::uring::check_kernel(Some(h.mode))
            .map_err(|e| (RefuseCode::Mode, e.to_string()))?;
    }
    Ok(plan)
}

/// Sends a refusal and leaves the socket with the lingering thread, which drains what the
/// client still sends (its hello, if not read yet) until it closes: closing with unread
/// data would send a reset that can destroy the refusal before the client reads it.
fn refuse(shared: &Shared<'_>, stream: &mut TcpStream, code: RefuseCode, reason: &str) {
    let frame = Frame::Refuse(Refuse {
        code,
        reason: reason.to_owned(),
    });
    let _ = stream.set_write_timeout(Some(REFUSAL_LINGER));
    if wire::write_frame(stream, &frame).is_err() {
        return;
    }
    let _ = stream.shutdown(Shutdown::Write);
    if let Ok(copy) = stream.try_clone() {
        let deadline = Instant::now() + REFUSAL_LINGER;
        let _ = shared
            .lingering
            .lock()
            .expect("lingering lock")
            .send((copy, deadline));
    }
}

/// Holds refused sockets open until their clients close or [`REFUSAL_LINGER`] passes,
/// reading and dropping whatever they still send; at most [`REFUSAL_BACKLOG`] at once.
fn linger(inbox: Receiver<(TcpStream, Instant)>, stop: &AtomicBool) {
    let mut held: Vec<(TcpStream, Instant)> = Vec::new();
    let mut sink = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        while let Ok(s) = inbox.try_recv() {
            if held.len() < REFUSAL_BACKLOG {
                let _ = s.0.set_nonblocking(true);
                held.push(s);
            } // else dropped: closed unanswered beyond the documented backlog
        }
        let now = Instant::now();
        held.retain(|(_, deadline)| *deadline > now);
        let mut fds: Vec<libc::pollfd> = held
            .iter()
            .map(|(s, _)| libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let tick = if fds.is_empty() { 20 } else { 10 };
        // SAFETY: `fds` is a live array of pollfds of sockets `held` keeps open.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, tick) };
        let mut i = 0;
        held.retain_mut(|(s, _)| {
            let revents = fds[i].revents;
            i += 1;
            if revents == 0 {
                return true;
            }
            loop {
                match s.read(&mut sink) {
                    Ok(0) => return false,
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                    Err(_) => return false,
                }
            }
        });
    }
}

/// The server sends only echoes, each awaited by the client: TCP_NODELAY for echo, Nagle
/// (it never sends anyway) for stream.
fn nodelay_for(hello: &Hello) -> bool {
    hello.workload == Workload::Echo
}

/// The server side of a connection's workload, from its hello.
fn server_flow_spec(hello: &Hello) -> FlowSpec {
    FlowSpec {
        role: Role::Server,
        workload: hello.workload,
        mode: hello.mode,
        verify: hello.verify,
        depth: hello.depth as usize,
        duration: Duration::ZERO,
    }
}

/// The server's figures for one connection, whichever engine served it: the one place a
/// [`PeerReport`] is built.
fn peer_report(
    shared: &Shared<'_>,
    backend: Backend,
    id: u64,
    flow: &Flow,
    ring: Option<RingSetup>,
    samples: Vec<Sample>,
    placement: Placement,
) -> PeerReport {
    PeerReport {
        backend,
        connection: id,
        duration_s: flow.duration().as_secs_f64(),
        stats: flow.stats.clone(),
        ring,
        samples,
        counter_scope: shared.metering.scope,
        counters_missing: shared.metering.missing.clone(),
        placement: Some(placement),
    }
}

/// Sends the end-of-run report; returns the event to log once the connection's slot is
/// given back (so that whoever sees the event may take the slot).
fn finish_connection(stream: &mut TcpStream, peer: SocketAddr, report: PeerReport) -> ServerEvent {
    let id = report.connection;
    let report = Box::new(report);
    let frame = Frame::Stats(report.clone());
    match stream.write_all(&frame.encode()) {
        Ok(()) => {
            let _ = stream.shutdown(Shutdown::Write);
            ServerEvent::Disconnected { id, peer, report }
        }
        Err(e) => ServerEvent::Failed {
            id,
            peer,
            error: format!("sending the end-of-run stats: {e}"),
        },
    }
}

/// The socket options a connection's hello calls for, on either engine.
fn prepare_socket(stream: &TcpStream, hello: &Hello, backend: Backend) -> Result<(), Error> {
    stream
        .set_nodelay(nodelay_for(hello))
        .map_err(|e| Error::io("TCP_NODELAY", e))?;
    // The server sends only in echo.
    if backend == Backend::Syscall && hello.workload == Workload::Echo {
        backend::syscall::prepare(stream.as_fd(), hello.mode)?;
    }
    Ok(())
}

/// The syscall backend's thread per client.
fn serve_syscall(shared: &Shared<'_>, accepted: Accepted<'_>) {
    let Accepted { spec, client } = accepted;
    let Client {
        slot,
        mut stream,
        peer,
        id,
        hello,
    } = client;
    let cpu = shared.plan.cpu(slot.place);
    let thread = format!("conn {id}");
    let mut meter = None;
    let result = placement::apply(cpu)
        .and_then(|()| {
            backend::syscall::set_timeouts(stream.as_fd(), shared.config.idle_timeout)
                .map_err(|e| Error::io("socket timeouts", e))
        })
        .and_then(|()| prepare_socket(&stream, &hello, Backend::Syscall))
        .and_then(|()| {
            backend::syscall::run(spec, shared.config.idle_timeout, Some(shared.stop), || {
                meter = Some(ConnMeter::start(shared, &thread, None));
                Ok(())
            })
        });
    let mut slot = slot;
    if result.as_ref().is_ok_and(|c| c.flow.leaked) {
        slot.forfeit_budget();
    }
    let event = match result {
        Ok(conn) => {
            let samples = meter.map_or_else(Vec::new, |mut m| m.finish(shared, None));
            match conn.error {
                Some(e) => ServerEvent::Failed {
                    id,
                    peer,
                    error: e.to_string(),
                },
                None => {
                    let placement = Placement { thread, cpu };
                    let report = peer_report(
                        shared,
                        Backend::Syscall,
                        id,
                        &conn.flow,
                        None,
                        samples,
                        placement,
                    );
                    finish_connection(&mut stream, peer, report)
                }
            }
        }
        Err(e) => ServerEvent::Failed {
            id,
            peer,
            error: e.to_string(),
        },
    };
    drop(slot);
    (shared.on_event)(event);
}

/// The uring engine's options, from the server's configuration.
fn uring_opts(config: &ServerConfig) -> ServeOpts {
    // A server that serves any mode gets what any may need.
    let may = |f: fn(Mode) -> bool| config.mode.map_or(true, f);
    ServeOpts {
        workers: config.workers(),
        files: config.max_clients as u32,
        fixed_buffers: may(|m| path(m).fixed),
        multishot: config.uring_recv == UringRecv::Multishot && may(|m| path(m).wire),
        idle_timeout: config.idle_timeout,
    }
}

/// Hands an accepted client to a uring worker.
fn hand_to_worker<'s>(
    shared: &Shared<'s>,
    dispatch: &Dispatch<'_, Served<'s>>,
    accepted: Accepted<'s>,
) {
    let Accepted { spec, client } = accepted;
    if let Err(e) = prepare_socket(&client.stream, &client.hello, Backend::Uring) {
        let (id, peer) = (client.id, client.peer);
        drop(client);
        (shared.on_event)(ServerEvent::Failed {
            id,
            peer,
            error: e.to_string(),
        });
        return;
    }
    let incoming = Incoming {
        spec,
        worker: client.slot.fixed_worker(),
        conn: Served {
            client,
            meter: None,
        },
    };
    if let Err(back) = dispatch(incoming) {
        let (id, peer) = (back.conn.client.id, back.conn.client.peer);
        drop(back);
        (shared.on_event)(ServerEvent::Failed {
            id,
            peer,
            error: "its uring worker has stopped".into(),
        });
    }
}

/// What the server keeps beside a connection a uring worker serves.
pub(crate) struct Served<'s> {
    client: Client<'s>,
    /// Readings taken when the connection joined its worker.
    meter: Option<ConnMeter>,
}

/// What the server keeps per uring worker thread.
pub(crate) struct WorkerState {
    name: String,
    cpu: Option<usize>,
    /// This worker's counters (per-thread scope): they run for its whole life; each
    /// connection reads them when it joins and when it leaves.
    set: Option<CounterSet>,
}

impl<'s> ServeHost for Shared<'s> {
    type Conn = Served<'s>;
    type Worker = WorkerState;

    fn worker_started(&self, worker: usize) -> Result<WorkerState, Error> {
        let cpu = self.plan.cpu(worker);
        placement::apply(cpu)?;
        let mut set = self.metering.thread_set();
        if let Some(s) = set.as_mut() {
            s.enable();
        }
        Ok(WorkerState {
            name: format!("worker {worker}"),
            cpu,
            set,
        })
    }

    fn joined(&self, worker: &mut WorkerState, conn: &mut Served<'s>, ring: IoStats) {
        let running = Running {
            io: ring,
            set: worker.set.as_mut(),
        };
        conn.meter = Some(ConnMeter::start(self, &worker.name, Some(running)));
    }

    fn retired(
        &self,
        worker: &mut WorkerState,
        conn: Served<'s>,
        report: ConnReport,
        ring: IoStats,
        setup: &RingSetup,
    ) {
        let Served { mut client, meter } = conn;
        let (id, peer) = (client.id, client.peer);
        if report.flow.leaked {
            client.slot.forfeit_budget();
        }
        let event = match report.error {
            Some(e) => ServerEvent::Failed {
                id,
                peer,
                error: e.to_string(),
            },
            None => {
                let running = Running {
                    io: ring,
                    set: worker.set.as_mut(),
                };
                let samples = meter.map_or_else(Vec::new, |mut m| m.finish(self, Some(running)));
                let placement = Placement {
                    thread: worker.name.clone(),
                    cpu: worker.cpu,
                };
                let peer_report = peer_report(
                    self,
                    Backend::Uring,
                    id,
                    &report.flow,
                    Some(setup.clone()),
                    samples,
                    placement,
                );
                // Never block the worker on one client: a client that does not read
                // loses its report, not everybody's progress.
                let _ = client.stream.set_nonblocking(true);
                finish_connection(&mut client.stream, peer, peer_report)
            }
        };
        // Buffers first, then the slot and the socket; only then the log line, so
        // whoever reads it may take the slot.
        drop(report.flow);
        drop(client);
        (self.on_event)(event);
    }

    fn notice(&self, text: String) {
        (self.on_event)(ServerEvent::Notice(text));
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// What a thread that serves many connections keeps running across them (a uring
/// worker): its ring's cumulative calls, and its counter set when counting per thread.
pub(crate) struct Running<'x> {
    pub io: IoStats,
    pub set: Option<&'x mut CounterSet>,
}

/// Readings around one connection: of the serving thread (its own counters, or the
/// figures of a thread it shares) and of the server's CPUs.
pub(crate) struct ConnMeter {
    thread: String,
    /// A set opened for this connection's own thread (syscall).
    own: Option<CounterSet>,
    start: Totals,
    core_start: Option<RawCounts>,
}

impl ConnMeter {
    /// Starts metering a connection served by `thread`: a thread of its own (`running`
    /// is `None`: a per-thread set is opened and enabled now) or a shared one.
    pub fn start(shared: &Shared<'_>, thread: &str, running: Option<Running<'_>>) -> ConnMeter {
        let (own, start) = match running {
            Some(r) => (
                None,
                Totals {
                    io: r.io,
                    counters: r.set.map(|s| s.read()),
                },
            ),
            None => {
                let mut own = shared.metering.thread_set();
                let counters = own.as_mut().map(|s| {
                    let r = s.read();
                    s.enable();
                    r
                });
                (
                    own,
                    Totals {
                        io: IoStats::default(),
                        counters,
                    },
                )
            }
        };
        ConnMeter {
            thread: thread.to_owned(),
            own,
            start,
            core_start: shared.metering.core_reading(),
        }
    }

    /// Ends metering and returns the samples for the connection's report.
    pub fn finish(&mut self, shared: &Shared<'_>, running: Option<Running<'_>>) -> Vec<Sample> {
        let end = match running {
            Some(r) => Totals {
                io: r.io,
                counters: r.set.map(|s| s.read()),
            },
            None => Totals {
                io: IoStats::default(),
                counters: self.own.as_mut().map(|s| {
                    s.disable();
                    s.read()
                }),
            },
        };
        let start = std::mem::take(&mut self.start);
        let mut samples = Vec::new();
        if start.counters.is_some() || start.io != end.io {
            samples.push(Sample {
                key: self.thread.clone(),
                start,
                end,
            });
        }
        if let (Some(a), Some(b)) = (self.core_start.take(), shared.metering.core_reading()) {
            let totals = |counters| Totals {
                io: IoStats::default(),
                counters: Some(counters),
            };
            samples.push(Sample {
                key: CORE_KEY.into(),
                start: totals(a),
                end: totals(b),
            });
        }
        samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Verify;

    fn hello() -> Hello {
        Hello {
            workload: Workload::Echo,
            mode: Mode::OneCopy,
            verify: Verify::Full,
            backend: Backend::Syscall,
            size: 4096,
            depth: 1,
            duration_ms: 1000,
            flow: 0,
        }
    }

    #[test]
    fn hellos_are_checked_against_the_server() {
        let config = ServerConfig {
            max_size: 65536,
            ..Default::default()
        };
        assert!(check_hello(&hello(), &config).is_ok());
        let big = Hello {
            size: 65537,
            ..hello()
        };
        assert_eq!(check_hello(&big, &config).unwrap_err().0, RefuseCode::Size);
        let tiny = Hello { size: 8, ..hello() };
        assert_eq!(check_hello(&tiny, &config).unwrap_err().0, RefuseCode::Size);
        let deep = Hello {
            depth: 0,
            ..hello()
        };
        assert_eq!(
            check_hello(&deep, &config).unwrap_err().0,
            RefuseCode::Depth
        );
        let fixed = Hello {
            mode: Mode::ZcFixed,
            ..hello()
        };
        let (code, why) = check_hello(&fixed, &config).unwrap_err();
        assert_eq!(code, RefuseCode::Mode);
        assert!(why.contains("uring"), "{why}");
        let only_zc = ServerConfig {
            mode: Some(Mode::Zc),
            ..config
        };
        assert_eq!(
            check_hello(&hello(), &only_zc).unwrap_err().0,
            RefuseCode::Mode
        );
    }
}
