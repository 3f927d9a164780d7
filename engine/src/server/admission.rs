//! Who gets in: the hello read whole within its deadline, checked against the server;
//! the memory budget and a uring server's registered-buffer room reserved; the buffers
//! allocated; accept, or a refusal with its reason that the client gets to read.

use super::*;

/// The server-wide memory budget for connection buffers (`--max-memory`).
pub(super) struct Budget {
    pub(super) limit: u64,
    pub(super) used: AtomicU64,
}

impl Budget {
    pub(super) fn new(limit: u64) -> Budget {
        Budget {
            limit,
            used: AtomicU64::new(0),
        }
    }

    /// Charges `bytes`, or says why not.
    pub(super) fn reserve(&self, bytes: u64) -> Result<(), String> {
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

    pub(super) fn release(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// The registered-buffer room of a uring server's workers: each ring's table of fixed
/// buffers, and the locked memory they may pin in all. A zc-fixed client is given a
/// worker with room, or refused with the reason, before it is accepted: a registration
/// that fails after the accept could only close the connection without a word.
pub(super) struct FixedRoom {
    /// Free table entries per worker.
    pub(super) free: Mutex<Vec<u32>>,
    /// Bytes pinned by the registered buffers of connections being served.
    pub(super) pinned: AtomicU64,
    /// RLIMIT_MEMLOCK, unless unlimited or the process holds CAP_IPC_LOCK.
    pub(super) limit: Option<u64>,
}

impl FixedRoom {
    pub(super) fn new(workers: usize) -> FixedRoom {
        FixedRoom {
            free: Mutex::new(vec![backend::uring::MAX_FIXED_BUFFERS; workers]),
            pinned: AtomicU64::new(0),
            limit: backend::uring::pin_limit(),
        }
    }

    /// Reserves `count` table entries on `prefer` when it has room (the paired placement's
    /// worker), else on the worker with the most room, and `bytes` of locked memory;
    /// returns the worker, or why there is no room.
    pub(super) fn reserve(
        &self,
        prefer: Option<usize>,
        count: u32,
        bytes: u64,
    ) -> Result<usize, String> {
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
        let best = prefer
            .filter(|&w| free.get(w).is_some_and(|&f| f >= count))
            .or_else(|| (0..free.len()).max_by_key(|&w| free[w]));
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

    pub(super) fn release(&self, worker: usize, count: u32, bytes: u64) {
        self.free.lock().expect("fixed room lock")[worker] += count;
        self.pinned.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// A connection's place among the `-t` allowed and its share of the memory budget; both
/// given back when dropped.
pub(crate) struct Slot<'a> {
    pub(super) shared: &'a Shared<'a>,
    pub(super) id: u64,
    /// The lowest place free when the connection came: its index in the CPU plan.
    pub place: usize,
    /// Bytes of the memory budget charged for the connection's buffers.
    pub(super) reserved: u64,
    /// zc-fixed on uring: the worker, table entries and pinned bytes reserved.
    pub(super) fixed: Option<(usize, u32, u64)>,
}

impl<'a> Slot<'a> {
    pub(super) fn open(shared: &'a Shared<'a>, id: u64, stream: &TcpStream) -> Slot<'a> {
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

    /// Reserves registered-buffer room on a worker for a zc-fixed connection, on the
    /// worker `prefer` where it has room.
    pub(super) fn reserve_fixed(
        &mut self,
        prefer: Option<usize>,
        count: u32,
        bytes: u64,
    ) -> Result<(), String> {
        let Some(room) = &self.shared.fixed else {
            return Ok(());
        };
        let worker = room.reserve(prefer, count, bytes)?;
        self.fixed = Some((worker, count, bytes));
        Ok(())
    }

    /// The worker whose registered-buffer room this connection holds.
    pub(super) fn fixed_worker(&self) -> Option<usize> {
        self.fixed.map(|(w, _, _)| w)
    }

    /// The connection's buffers were leaked (the kernel never gave them back): their
    /// share of the budget stays charged for good, so the budget keeps bounding memory.
    pub(super) fn forfeit_budget(&mut self) {
        self.reserved = 0;
    }

    /// Charges the memory budget with `bytes` for this connection.
    pub(super) fn reserve(&mut self, bytes: u64) -> Result<(), String> {
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

pub(super) enum Handshake {
    Refused(String),
    Failed(String),
}

/// Reads the hello, checks it against this server and its budget, allocates the
/// connection's buffers, and answers accept or refuse.
pub(super) fn handshake(
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
        let prefer = paired_worker(shared, &hello);
        if let Err(reason) = slot.reserve_fixed(prefer, plan.count() as u32, pinned) {
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
pub(super) fn check_hello(
    h: &Hello,
    config: &ServerConfig,
) -> Result<PoolPlan, (RefuseCode, String)> {
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
    if h.workload != Workload::Stream && h.direction != Direction::Forward {
        return Err((
            RefuseCode::Other,
            format!(
                "direction {} applies to the stream workload; {} always goes both ways",
                h.direction, h.workload
            ),
        ));
    }
    let depth = h.depth as usize;
    let shape = pool_role(Role::Server, h.workload, h.direction);
    let plan = check_pool(config.backend, h.workload, shape, h.mode, depth, size)
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
    if let Some(why) = crate::config::page_cache_direction(h.mode, h.direction) {
        return Err((RefuseCode::Mode, why));
    }
    if !h.mode.supported_on(config.backend) {
        let sends = if h.direction.server_sends() {
            format!(" (in {} the server sends with it)", h.direction)
        } else {
            String::new()
        };
        return Err((
            RefuseCode::Mode,
            format!(
                "mode {} needs a uring server{sends}; this one runs the {} backend",
                h.mode, config.backend
            ),
        ));
    }
    if config.backend == Backend::Uring {
        backend::uring::check_kernel(Some(h.mode))
            .map_err(|e| (RefuseCode::Mode, e.to_string()))?;
    }
    if let Some(why) = rx::refusal(h.rx, config.backend, backend::uring::has_recv_zc()) {
        return Err((RefuseCode::Rx, format!("--rx {}: {why}", h.rx)));
    }
    Ok(plan)
}

/// Sends a refusal and leaves the socket with the lingering thread, which drains what the
/// client still sends (its hello, if not read yet) until it closes: closing with unread
/// data would send a reset that can destroy the refusal before the client reads it.
pub(super) fn refuse(shared: &Shared<'_>, stream: &mut TcpStream, code: RefuseCode, reason: &str) {
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
        let _ = shared
            .lingering
            .lock()
            .expect("lingering lock")
            .send(Lingering::new(copy, Vec::new(), 0));
    }
}

/// A socket the server is done with, held open until its client closes or
/// [`REFUSAL_LINGER`] passes with the client taking nothing more of what was sent to it
/// (never past [`LINGER_MAX`] in all): what is left of the last bytes owed to it (an end
/// notice: `out`, then `pad` zero bytes) goes out, and what the client still sends is read
/// and dropped meanwhile. The deadline moves while the client is still taking the data
/// queued ahead of those last bytes (a bidir client that reads the server's stream slowly
/// can have megabytes of it before the notice): closing a socket that the client still
/// sends to answers it with a reset, and a reset discards whatever the server had not
/// delivered yet, the notice too. The sending side is not shut after a notice: a socket whose
/// receiving side is shut already (a uring connection ended at a message boundary) would
/// answer the client's next bytes with a reset once both were, and a reset can destroy
/// the notice before the client reads it.
pub(super) struct Lingering {
    stream: TcpStream,
    /// [`REFUSAL_LINGER`] past the last time the client took some of what it was sent.
    deadline: Instant,
    /// [`LINGER_MAX`] past the handover.
    cap: Instant,
    /// What the client had not acknowledged at the last look (`TIOCOUTQ`).
    unacked: usize,
    out: Vec<u8>,
    pad: usize,
    /// Reads return nothing but the client is still there: our receiving side is shut.
    read_shut: bool,
}

impl Lingering {
    /// `out` and `pad` still to send; with none, the sending side is already shut.
    pub(super) fn new(stream: TcpStream, out: Vec<u8>, pad: usize) -> Lingering {
        let now = Instant::now();
        Lingering {
            unacked: unacked(&stream),
            stream,
            deadline: now + REFUSAL_LINGER,
            cap: now + LINGER_MAX,
            out,
            pad,
            read_shut: false,
        }
    }

    /// Whether the socket is still worth holding at `now`; the deadline moves on when the
    /// client has acknowledged more of what was sent to it since the last look.
    fn keep(&mut self, now: Instant) -> bool {
        let unacked = unacked(&self.stream);
        if unacked < self.unacked {
            self.deadline = now + REFUSAL_LINGER;
        }
        self.unacked = unacked;
        now < self.deadline.min(self.cap)
    }

    fn owes(&self) -> bool {
        !self.out.is_empty() || self.pad > 0
    }

    /// Sends what the socket takes now; false once the socket is broken.
    fn send_some(&mut self) -> bool {
        static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
        while self.owes() {
            let chunk = if self.out.is_empty() {
                &ZEROS[..self.pad.min(ZEROS.len())]
            } else {
                &self.out[..]
            };
            match self.stream.write(chunk) {
                Ok(0) => return false,
                Ok(n) if self.out.is_empty() => self.pad -= n,
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }

    /// Reads and drops what the client sent; false once it has closed (or the socket
    /// broke) and nothing is owed to it.
    fn drain(&mut self, sink: &mut [u8]) -> bool {
        loop {
            match self.stream.read(sink) {
                Ok(0) if peer_still_there(&self.stream) => {
                    self.read_shut = true;
                    return true;
                }
                Ok(0) => return self.owes(),
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
    }
}

/// The bytes written to `stream` that its peer has not acknowledged yet (sent or not);
/// 0 where the kernel does not say.
fn unacked(stream: &TcpStream) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int; the socket is open.
    let r = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    if r == 0 {
        n.max(0) as usize
    } else {
        0
    }
}

/// Whether the peer has not closed its side yet although a read returned nothing: the
/// connection is in a state where only our receiving side can be shut.
fn peer_still_there(stream: &TcpStream) -> bool {
    // The kernel's TCP states (include/net/tcp_states.h): established, fin-wait-1 and 2.
    const OPEN: [u8; 3] = [1, 4, 5];
    crate::tcpinfo::TcpInfo::state(stream.as_raw_fd()).is_some_and(|s| OPEN.contains(&s))
}

/// How often the lingering thread looks at its deadlines while it holds sockets.
const LINGER_TICK_MS: libc::c_int = 10;

/// Holds sockets the server is done with ([`Lingering`]), at most [`REFUSAL_BACKLOG`] at
/// once. Once the server stops it goes on while connections are open (each may still end
/// with its end notice, handed over before it leaves `open`) and what it holds is not
/// done.
pub(super) fn linger(
    inbox: Receiver<Lingering>,
    stop: &AtomicBool,
    open: &Mutex<HashMap<u64, RawFd>>,
) {
    let mut held: Vec<Lingering> = Vec::new();
    let mut sink = [0u8; 4096];
    let take = |mut s: Lingering, held: &mut Vec<Lingering>| {
        if held.len() < REFUSAL_BACKLOG {
            let _ = s.stream.set_nonblocking(true);
            if s.send_some() {
                held.push(s);
            }
        } // else dropped: closed unanswered beyond the documented backlog
    };
    loop {
        if stop.load(Ordering::Relaxed)
            && held.is_empty()
            && open.lock().expect("registry lock").is_empty()
        {
            match inbox.try_recv() {
                Ok(s) => take(s, &mut held),
                Err(_) => return,
            }
        }
        // With nothing held, sleep on the inbox (waking each tick to see the stop flag)
        // rather than polling an empty set.
        if held.is_empty() {
            match inbox.recv_timeout(ACCEPT_TICK) {
                Ok(s) => take(s, &mut held),
                Err(_) => continue,
            }
        }
        while let Ok(s) = inbox.try_recv() {
            take(s, &mut held);
        }
        let now = Instant::now();
        held.retain_mut(|s| s.keep(now));
        let mut fds: Vec<libc::pollfd> = held
            .iter()
            .map(|s| libc::pollfd {
                fd: s.stream.as_raw_fd(),
                // A socket whose receiving side is shut is always readable: it is looked
                // at every tick instead.
                events: if s.read_shut { 0 } else { libc::POLLIN }
                    | if s.owes() { libc::POLLOUT } else { 0 },
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a live array of pollfds of sockets `held` keeps open.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, LINGER_TICK_MS) };
        let mut i = 0;
        held.retain_mut(|s| {
            let revents = fds[i].revents;
            i += 1;
            if revents == 0 && !s.read_shut {
                return true;
            }
            if s.owes() && !s.send_some() {
                return false;
            }
            s.drain(&mut sink)
        });
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
            thread: 0,
            rx: crate::vocab::RxMode::Copy,
            direction: Direction::Forward,
            omit_ms: 0,
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

    #[test]
    fn a_receive_path_the_backend_lacks_is_refused_by_name() {
        use crate::vocab::RxMode;
        let uring = ServerConfig {
            backend: Backend::Uring,
            ..Default::default()
        };
        let zerocopy = Hello {
            rx: RxMode::Zerocopy,
            ..hello()
        };
        let (code, why) = check_hello(&zerocopy, &uring).unwrap_err();
        assert_eq!(code, RefuseCode::Rx);
        for says in [
            "--rx zerocopy",
            "zerocopy receive is syscall-only",
            "IORING_OP_RECV_ZC",
            "not available here (needs NIC header split",
        ] {
            assert!(why.contains(says), "{says:?} not in {why}");
        }
        assert!(check_hello(&zerocopy, &ServerConfig::default()).is_ok());
        for rx in [RxMode::Copy, RxMode::Discard] {
            assert!(
                check_hello(&Hello { rx, ..hello() }, &uring).is_ok(),
                "{rx}"
            );
        }
    }
}
