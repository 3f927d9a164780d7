//! The syscall backend: one thread drives one connection with send/sendmsg/recv/recvmsg,
//! and MSG_ZEROCOPY with its error-queue completions.
//!
//! Calls block where blocking cannot deadlock: a send blocks when nothing is due back; a
//! receive blocks (with MSG_WAITALL, one call per message) when nothing can be sent. When
//! both directions are live (echo with depth > 1, or an echo server whose client is
//! still sending), the send goes out with MSG_DONTWAIT and a send that would block falls
//! back to poll() on both directions, so two peers that each fill the other's buffers
//! never wait on each other.
//!
//! A server that sends a stream and receives nothing (reverse) only waits for the
//! client's end of file: its sends block as a client's do, and it looks for that end with
//! a non-blocking receive every [`EOF_WATCH`] rather than after every send. A client in
//! reverse or bidir shuts its sending side once its deadline passed and its last send
//! went out ([`Flow::wants_half_close`]).
//!
//! Every message must move whole within the timeout of the moment it was started: socket
//! timeouts (SO_RCVTIMEO/SO_SNDTIMEO) and poll are armed with what is left of that, not
//! re-armed in full after each partial transfer, so a peer that trickles bytes (slowloris)
//! is cut off as surely as a silent one.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::backend::sys::{SO_EE_CODE_ZEROCOPY_COPIED, SO_EE_ORIGIN_ZEROCOPY};
use crate::backend::zerocopy::ZcLedger;
use crate::conn::{ConnReport, ConnSpec, STOP_GRACE};
use crate::error::Error;
use crate::message::Message;
use crate::path::rx::SysRx;
use crate::path::{path, SysForm};
use crate::proof::RECEIPTS;
use crate::vocab::{Mode, Role};
use crate::workload::Flow;

/// setsockopt with a value of type `T`.
fn set_option<T>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: a valid socket, and a pointer to a live T with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Prepares a connected socket for sending in `mode` (MSG_ZEROCOPY needs SO_ZEROCOPY).
pub fn prepare(fd: BorrowedFd<'_>, mode: Mode) -> Result<(), Error> {
    match &path(mode).syscall {
        Some(sys) => (sys.setup)(fd),
        None => Err(Error::Internal(format!(
            "mode {mode} has no syscall form; configs refuse it before this"
        ))),
    }
}

/// Sets SO_RCVTIMEO or SO_SNDTIMEO; never to zero, which would mean "forever".
fn set_timeout(fd: RawFd, opt: libc::c_int, timeout: Duration) -> io::Result<()> {
    let timeout = timeout.max(Duration::from_millis(1));
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: the caller's fd is a socket that outlives the call.
    set_option(
        unsafe { BorrowedFd::borrow_raw(fd) },
        libc::SOL_SOCKET,
        opt,
        &tv,
    )
}

/// Runs one connection on the calling thread: meets the common start line (`start`),
/// runs the flow until it is done, and hands back its report. `stop`, once set, ends the
/// flow's sending early. `warmed` is called once the flow leaves its warm-up (`--omit`),
/// for the caller to read what it measures around the flow afresh.
pub(crate) fn run(
    spec: ConnSpec,
    timeout: Duration,
    stop: &AtomicBool,
    start: impl FnOnce() -> Result<(), Error>,
    mut warmed: impl FnMut(),
) -> Result<ConnReport, Error> {
    let ConnSpec { fd, mut flow, .. } = spec;
    start()?;
    flow.begin(Instant::now());
    // SAFETY: the orchestrator keeps the socket open until the report is back.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let (result, at_boundary) = drive(borrowed, &mut flow, timeout, stop, &mut warmed);
    flow.finish(Instant::now());
    Ok(ConnReport {
        flow,
        error: result.err(),
        at_boundary,
    })
}

/// Runs `flow` on the connected socket `fd` until it is done and every buffer is home.
/// The caller has called `flow.begin` and calls `flow.finish` afterwards. `stop`, once
/// set, ends the flow's sending early (the user interrupted the run). The socket's
/// timeouts are armed here, call by call. Also says whether the socket's byte stream
/// ends at a message boundary of this side's ([`ConnReport::at_boundary`]). A bug
/// (panic) while running ends this connection with an internal error; zero-copy buffers
/// the kernel may still hold then are leaked, never freed under it.
fn drive(
    fd: BorrowedFd<'_>,
    flow: &mut Flow,
    timeout: Duration,
    stop: &AtomicBool,
    warmed: &mut dyn FnMut(),
) -> (Result<(), Error>, bool) {
    match setup(fd, flow, timeout, stop) {
        Ok(mut conn) => {
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| conn.run(flow, warmed)))
                    .unwrap_or_else(|panic| {
                        if let Some(ledger) = conn.ledger.as_mut().filter(|l| l.outstanding() > 0) {
                            ledger.abandon();
                            flow.leaked = true;
                        }
                        Err(Error::from_panic(&*panic))
                    });
            if let Some(ledger) = &conn.ledger {
                flow.stats.zc += ledger.stats;
            }
            flow.close_by_ref(true);
            let at_boundary = conn.tx.as_ref().map_or(true, |t| t.1 == 0);
            (result, at_boundary)
        }
        Err(e) => (Err(e), true),
    }
}

/// The connection's state for [`drive`].
fn setup<'s>(
    fd: BorrowedFd<'_>,
    flow: &mut Flow,
    timeout: Duration,
    stop: &'s AtomicBool,
) -> Result<Conn<'s>, Error> {
    let copy = path(flow.spec().mode);
    let sys = copy.syscall.as_ref().ok_or_else(|| {
        Error::Internal(format!(
            "mode {} has no syscall form; configs refuse it before this",
            copy.mode
        ))
    })?;
    let receiver = if flow.spec().receives() {
        SysRx::new(flow.spec().rx, fd.as_raw_fd(), flow.size())?
    } else {
        SysRx::Copy
    };
    Ok(Conn {
        fd: fd.as_raw_fd(),
        sys,
        receiver,
        size: flow.size(),
        timeout,
        ledger: copy.zero_copy.then(ZcLedger::default),
        tx: None,
        rx: None,
        // Whatever the socket had before is unknown: the first blocking call arms it.
        armed: [Duration::ZERO; 2],
        stop,
        next_watch: Instant::now(),
        watching: false,
        moved_at: Instant::now(),
        receipts_by: None,
        server_stopping: false,
    })
}

/// The longest one blocking call waits before the stop flag is looked at again.
const SLICE: Duration = Duration::from_millis(100);
/// How often a server that only sends looks for the client's end of file.
const EOF_WATCH: Duration = Duration::from_millis(1);
/// Sends in a row, each taken whole at once, after which a flow that also receives
/// (bidir, a pipelined echo) looks at its receiving side without waiting. A peer that
/// takes everything at once (a stopping server's lingering socket drains what a client
/// sends into nothing) would otherwise keep the loop sending and never reading: what is
/// due back, the server's end notice too, would wait unread until the peer gave up and
/// closed, and a close answers the sender with a reset. Its cost: none beyond noise
/// against a build without it (bidir and depth-8 echo, 4K and 64K, 6 interleaved rounds;
/// README, "Reverse and bidir").
const SENDS_BEFORE_A_LOOK: u32 = 16;

/// A message part-way through the kernel, how many of its bytes have moved, and by when
/// the rest must have.
type InFlight = Option<(Box<Message>, usize, Instant)>;

/// Socket timeout slots in [`Conn::armed`].
const RCV: usize = 0;
const SND: usize = 1;

struct Conn<'s> {
    fd: RawFd,
    /// The mode's syscall form.
    sys: &'static SysForm,
    /// The side's receive path (`--rx`).
    receiver: SysRx,
    size: usize,
    timeout: Duration,
    ledger: Option<ZcLedger<Box<Message>>>,
    tx: InFlight,
    rx: InFlight,
    /// SO_RCVTIMEO and SO_SNDTIMEO as last set here (zero: not yet).
    armed: [Duration; 2],
    stop: &'s AtomicBool,
    /// A server that only sends: when it next looks for the client's end of file.
    next_watch: Instant,
    /// Its receive only watches for that end (see [`Flow::rx_watches_eof_only`]).
    watching: bool,
    /// When a whole message last went out or a zero-copy completion last came back.
    moved_at: Instant,
    /// By when the read receipts a stream sender waits for must arrive (sendfile, splice).
    receipts_by: Option<Instant>,
    /// A server that was asked to stop: it ends the connection at its next message
    /// boundary.
    server_stopping: bool,
}

impl Conn<'_> {
    fn run(&mut self, flow: &mut Flow, warmed: &mut dyn FnMut()) -> Result<(), Error> {
        // Reap zero-copy completions once this many buffers wait on the kernel: "every few
        // sends", so the pool rarely runs dry.
        let reap_at = (flow.send_buffers_free() / 2).max(1);
        let mut stopped = false;
        let mut sends_in_row = 0u32;
        loop {
            if flow.take_warmed() {
                // The flow's counts start afresh at the warm-up's end; so do the zero-copy
                // ones it takes from the ledger at the end (the uring engine counts into
                // the flow directly).
                if let Some(ledger) = &mut self.ledger {
                    ledger.stats = Default::default();
                }
                warmed();
            }
            if let Some(ledger) = &self.ledger {
                if ledger.held() >= reap_at || flow.send_buffers_free() == 0 {
                    self.reap(flow)?;
                }
            }
            if !stopped && self.stop.load(Ordering::Relaxed) {
                // Interrupted: send nothing new, and give what is outstanding a short
                // grace rather than the whole timeout.
                stopped = true;
                flow.stop();
                self.server_stopping = flow.spec().role == Role::Server;
                let by = Instant::now() + STOP_GRACE;
                self.timeout = self.timeout.min(STOP_GRACE);
                for m in [&mut self.tx, &mut self.rx].into_iter().flatten() {
                    m.2 = m.2.min(by);
                }
            }
            if self.server_stopping && self.tx.as_ref().map_or(true, |t| t.1 == 0) {
                // A stopping server ends the connection where its next message would
                // start: its end notice goes there (see `server::serving`).
                if let Some((m, _, _)) = self.tx.take() {
                    flow.release(m);
                }
                return Err(Error::Peer("server stopping".into()));
            }
            if self.tx.is_none() {
                let now = Instant::now();
                self.tx = flow.next_tx(now).map(|m| (m, 0, now + self.timeout));
            }
            // An open-loop client (`--rate`) with a send due at `pace`: nothing may block
            // past it.
            let pace = if self.tx.is_none() {
                flow.send_at()
            } else {
                None
            };
            if self.tx.is_none() && flow.wants_half_close() {
                // SAFETY: the orchestrator keeps the socket open until the report is back.
                if unsafe { libc::shutdown(self.fd, libc::SHUT_WR) } != 0 {
                    let e = io::Error::last_os_error();
                    return Err(Error::io("closing the sending side", e));
                }
                flow.half_closed();
            }
            // A stream receiver's read receipts (sendfile, splice) go out without waiting;
            // what the socket cannot take now goes on a later round.
            let mut events: libc::c_short = 0;
            let mut progress = false;
            if flow.receipts_owed() > 0 {
                match self.send_receipts(flow)? {
                    Step::WouldBlock => events |= libc::POLLOUT,
                    Step::Done | Step::Partial => progress = true,
                }
            }
            if flow.is_done() && self.tx.is_none() {
                if let Some((m, 0, _)) = self.rx.take() {
                    flow.release(m);
                }
                break;
            }
            // A stream sender with nothing it may send waits for the receipts that free
            // its buffers.
            if self.tx.is_none() && flow.receipts_due() > 0 {
                self.recv_receipts(flow)?;
                continue;
            }
            let wants_rx = flow.wants_rx();
            // Only the client's end of file is due back: sends may block, and the end is
            // looked for every EOF_WATCH (or whenever there is nothing to send).
            let watch = wants_rx && flow.rx_watches_eof_only();
            self.watching = watch;
            let nothing_to_send = self.tx.is_none();

            // A look at the receiving side after a run of sends, which must not block.
            let mut glance = false;
            if self.tx.is_some() {
                match self.send(flow, wants_rx && !watch)? {
                    Step::Done if !watch => {
                        sends_in_row += 1;
                        if !wants_rx || sends_in_row < SENDS_BEFORE_A_LOOK {
                            continue;
                        }
                        glance = true;
                        progress = true;
                    }
                    Step::Done | Step::Partial => progress = true,
                    Step::WouldBlock => events |= libc::POLLOUT,
                }
            }
            sends_in_row = 0;
            let look = !watch || nothing_to_send || Instant::now() >= self.next_watch;
            if wants_rx && look {
                if watch {
                    self.next_watch = Instant::now() + EOF_WATCH;
                }
                if self.rx.is_none() {
                    let by = Instant::now() + self.timeout;
                    self.rx = flow.rx_buffer().map(|m| (m, 0, by));
                }
                if let Some(rx) = self.rx.as_mut().filter(|_| watch) {
                    // No message is due: what must keep moving is the sends and their
                    // zero-copy completions; a client that stops reading stops both.
                    rx.2 = self.moved_at + self.timeout;
                }
                if self.rx.is_some() {
                    match self.recv(flow, !watch && pace.is_none() && !glance)? {
                        Step::Done | Step::Partial => progress = true,
                        Step::WouldBlock => events |= libc::POLLIN,
                    }
                }
            }
            if !progress {
                self.wait(flow, events, pace)?;
            }
        }
        // Every zero-copy buffer comes home before the flow reports — within one timeout
        // (the peer may have gone with our data unacknowledged), and at once when asked
        // to stop. What does not come home is leaked, never reused under the kernel.
        let by = Instant::now() + self.timeout;
        while self.ledger.as_ref().is_some_and(|l| l.outstanding() > 0) {
            let stopping = self.stop.load(Ordering::Relaxed);
            if stopping || Instant::now() >= by {
                let n = self.ledger.as_mut().map_or(0, |l| l.abandon());
                flow.leaked = true;
                return Err(Error::Timeout(format!(
                    "{n} zero-copy send buffer(s) never completed{}; they are leaked, not reused",
                    if stopping {
                        " before the stop"
                    } else {
                        " within the timeout"
                    }
                )));
            }
            self.wait(flow, 0, None)?;
        }
        Ok(())
    }

    /// Arms socket timeout `slot` for a blocking call on a message due by `by`: what is
    /// left of its time, so that partial transfers do not earn a fresh timeout.
    fn arm(&mut self, slot: usize, by: Instant, what: &str) -> Result<(), Error> {
        let left = by.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timed_out(what));
        }
        // A blocking call waits at most a slice and is called again, so that the stop
        // flag is seen (a signal interrupts another thread, not this one's call).
        let target = left.min(SLICE);
        let full = SLICE.min(self.timeout);
        // A call starting with (nearly) the whole of what is armed keeps it.
        if self.armed[slot] == full && target + Duration::from_millis(5) >= full {
            return Ok(());
        }
        let opt = [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO][slot];
        set_timeout(self.fd, opt, target).map_err(|e| Error::io("socket timeouts", e))?;
        self.armed[slot] = if target + Duration::from_millis(5) >= full {
            full
        } else {
            target
        };
        Ok(())
    }

    fn send(&mut self, flow: &mut Flow, wants_rx: bool) -> Result<Step, Error> {
        // Blocking is safe only when nothing is due back that the peer may be blocked on.
        let mut flags = crate::path::SYSCALL_SEND_FLAGS | self.sys.send_flags;
        if wants_rx {
            flags |= libc::MSG_DONTWAIT;
        } else {
            let by = self.tx.as_ref().expect("a message to send").2;
            self.arm(SND, by, "send")?;
        }
        let (msg, off, _) = self.tx.as_mut().expect("a message to send");
        flow.stats.io.syscalls += 1;
        match (self.sys.send)(self.fd, msg, *off, flags) {
            Ok(n) => {
                *off += n;
                if let Some(ledger) = &mut self.ledger {
                    ledger.call_sent();
                }
                if *off < self.size {
                    return Ok(Step::Partial);
                }
                let (msg, _, _) = self.tx.take().expect("checked");
                self.moved_at = Instant::now();
                flow.sent(&msg);
                match &mut self.ledger {
                    Some(ledger) => ledger.hold(msg),
                    None => flow.release(msg),
                }
                Ok(Step::Done)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if flags & libc::MSG_DONTWAIT == 0 {
                    // A slice ran out; the message's own deadline decides.
                    let by = self.tx.as_ref().map_or_else(Instant::now, |t| t.2);
                    if Instant::now() < by {
                        return Ok(Step::Partial);
                    }
                    return Err(self.timed_out("send"));
                }
                Ok(Step::WouldBlock)
            }
            // A signal: look at the stop flag, then carry on where the call left off.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Step::Partial),
            // Too much memory pinned: reap completions and retry the same send. With
            // none outstanding, the socket's option memory cannot hold even one.
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) && self.ledger.is_some() => {
                if self.ledger.as_ref().is_some_and(|l| l.outstanding() == 0) {
                    return Err(optmem_exhausted());
                }
                if self.reap(flow)? == 0 {
                    self.wait(flow, 0, None)?;
                }
                Ok(Step::Partial)
            }
            Err(e) => Err(Error::io("send", e)),
        }
    }

    fn recv(&mut self, flow: &mut Flow, may_block: bool) -> Result<Step, Error> {
        // Block (for the whole message) only when there is nothing to send meanwhile, and
        // never just to look for an end of file.
        let block = may_block && self.tx.is_none();
        let flags = if block {
            let (_, off, by) = self.rx.as_ref().expect("a buffer to receive into");
            let whole = flow.rx_want(*off) == self.size - off;
            self.arm(RCV, *by, "receive")?;
            // A bulk discard waits for some bytes, not for all it may take.
            if whole {
                libc::MSG_WAITALL
            } else {
                0
            }
        } else {
            libc::MSG_DONTWAIT
        };
        let (msg, off, _) = self.rx.as_mut().expect("a buffer to receive into");
        flow.stats.io.syscalls += 1;
        match self
            .receiver
            .recv(self.fd, self.sys, msg, *off, flags, flow)
        {
            Ok(0) => {
                let (msg, partial, _) = self.rx.take().expect("checked");
                flow.release(msg);
                flow.eof(partial)?;
                Ok(Step::Done)
            }
            Ok(n) => {
                *off += n;
                if *off < self.size {
                    return Ok(Step::Partial);
                }
                let (msg, got, _) = self.rx.take().expect("checked");
                let now = Instant::now();
                flow.received(msg, now)?;
                // A bulk discard may have gone past the message: whole ones are counted,
                // and a part of the next is where the next receive starts.
                let part = flow.discarded(got - self.size, now)?;
                if part > 0 {
                    let next = flow.rx_buffer().ok_or_else(|| {
                        Error::Internal("no receive buffer for the rest of a bulk discard".into())
                    })?;
                    self.rx = Some((next, part, now + self.timeout));
                }
                Ok(Step::Done)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if block {
                    let by = self.rx.as_ref().map_or_else(Instant::now, |r| r.2);
                    if Instant::now() < by {
                        return Ok(Step::Partial);
                    }
                    return Err(self.timed_out("receive"));
                }
                Ok(Step::WouldBlock)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Step::Partial),
            Err(e) => Err(Error::io("receive", e)),
        }
    }

    /// Sends the read receipts the flow owes, without blocking.
    fn send_receipts(&mut self, flow: &mut Flow) -> Result<Step, Error> {
        let n = flow.receipts_owed().min(RECEIPTS.len());
        flow.stats.io.syscalls += 1;
        let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
        // SAFETY: RECEIPTS is static and at least `n` bytes long.
        match unsafe { libc::send(self.fd, RECEIPTS.as_ptr().cast(), n, flags) } {
            n if n >= 0 => {
                flow.receipts_sent(n as usize);
                Ok(Step::Done)
            }
            _ => {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(Step::WouldBlock),
                    io::ErrorKind::Interrupted => Ok(Step::Partial),
                    _ => Err(Error::io("sending read receipts", e)),
                }
            }
        }
    }

    /// Receives the read receipts that are due, blocking for at most a slice.
    fn recv_receipts(&mut self, flow: &mut Flow) -> Result<(), Error> {
        let by = *self
            .receipts_by
            .get_or_insert_with(|| Instant::now() + self.timeout);
        self.arm(RCV, by, "read receipt")?;
        if let Some(pc) = flow.page_cache() {
            pc.set_nonblocking(self.fd, false)
                .map_err(|e| Error::io("socket flags", e))?;
        }
        let mut buf = [0u8; RECEIPTS.len()];
        let want = flow.receipts_due().min(buf.len());
        flow.stats.io.syscalls += 1;
        // SAFETY: `buf` is valid for writes of `want` bytes for the duration of the call.
        match unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), want, 0) } {
            0 => Err(flow.receipts_cut_short()),
            n if n > 0 => {
                self.receipts_by = None;
                flow.receipts_received(&buf[..n as usize])
            }
            _ => {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock if Instant::now() < by => Ok(()),
                    io::ErrorKind::WouldBlock => Err(self.timed_out("read receipt")),
                    io::ErrorKind::Interrupted => Ok(()),
                    _ => Err(Error::io("receiving read receipts", e)),
                }
            }
        }
    }

    /// Waits until the socket is ready for `events`, until completions arrive with
    /// zero-copy sends outstanding (POLLERR: the error queue is not empty), or until
    /// `pace` (an open-loop client's next send is due).
    fn wait(
        &mut self,
        flow: &mut Flow,
        events: libc::c_short,
        pace: Option<Instant>,
    ) -> Result<(), Error> {
        let zc_pending = self.ledger.as_ref().is_some_and(|l| l.outstanding() > 0);
        if events == 0 && !zc_pending && pace.is_none() {
            return Err(Error::Internal(
                "connection stalled: nothing to send, receive or complete".into(),
            ));
        }
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events,
            revents: 0,
        };
        // Wait no longer than the earliest message in flight has left.
        let now = Instant::now();
        let mut by = now + self.timeout;
        if events & libc::POLLOUT != 0 {
            by = by.min(self.tx.as_ref().map_or(by, |t| t.2));
        }
        if events & libc::POLLIN != 0 {
            by = by.min(self.rx.as_ref().map_or(by, |r| r.2));
        }
        let wake = pace.map_or(by, |p| p.min(by));
        let left = wake.saturating_duration_since(now).min(SLICE);
        let ts = libc::timespec {
            tv_sec: left.as_secs() as libc::time_t,
            tv_nsec: left.subsec_nanos() as libc::c_long,
        };
        flow.stats.io.syscalls += 1;
        // SAFETY: one valid pollfd, a valid timespec, no signal mask.
        let n = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(Error::io("poll", e));
        }
        if n == 0 {
            if Instant::now() < by {
                return Ok(()); // woken early, or a send is due: the caller looks again
            }
            return Err(
                self.timed_out(if self.watching && events & libc::POLLIN != 0 {
                    "sent or completed"
                } else if zc_pending && events == 0 {
                    "zero-copy completions"
                } else if events & libc::POLLIN != 0 {
                    "receive"
                } else {
                    "send"
                }),
            );
        }
        if pfd.revents & libc::POLLERR != 0 && self.ledger.is_some() {
            if self.reap(flow)? == 0 && events == 0 {
                // POLLERR without a completion: a socket error; nothing to spin on.
                std::thread::sleep(Duration::from_millis(10));
            }
        } else if events == 0 && pfd.revents & libc::POLLHUP != 0 {
            // A shut-down socket polls ready for ever; completions are what we wait for.
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Reads every completion waiting on the error queue and returns the buffers they free;
    /// returns how many notifications were read.
    fn reap(&mut self, flow: &mut Flow) -> Result<usize, Error> {
        let Some(ledger) = self.ledger.as_mut() else {
            return Ok(0);
        };
        let mut read = 0;
        loop {
            flow.stats.io.syscalls += 1;
            match read_errqueue(self.fd)? {
                None => break,
                Some(Notice::Completed { lo, hi, copied }) => {
                    ledger.complete(lo, hi, copied);
                    read += 1;
                }
                Some(Notice::Error(e)) => {
                    return Err(Error::io("socket error queue", e));
                }
            }
        }
        while let Some(m) = ledger.pop_ready() {
            flow.release(m);
        }
        if read > 0 {
            self.moved_at = Instant::now();
        }
        Ok(read)
    }

    fn timed_out(&self, what: &str) -> Error {
        Error::Timeout(format!(
            "peer too slow: no whole message {what} within {:.1} s",
            self.timeout.as_secs_f64()
        ))
    }
}

/// MSG_ZEROCOPY refused with nothing outstanding to reap: the socket cannot account even
/// one send's completion in its option memory.
fn optmem_exhausted() -> Error {
    let path = "/proc/sys/net/core/optmem_max";
    let value = std::fs::read_to_string(path)
        .map(|v| format!("{} bytes", v.trim()))
        .unwrap_or_else(|e| format!("unreadable ({e})"));
    Error::Resource(format!(
        "MSG_ZEROCOPY send failed with ENOBUFS and no completion outstanding: \
         net.core.optmem_max is {value} in this network namespace, too little to track a \
         zero-copy send; raise it (sysctl -w net.core.optmem_max=131072)"
    ))
}

/// What one attempt at a send or receive achieved.
enum Step {
    /// The whole message moved (or the stream ended).
    Done,
    /// Some bytes moved, or a retry is due.
    Partial,
    /// Nothing moved; the socket is not ready.
    WouldBlock,
}

/// One entry from the error queue.
enum Notice {
    Completed { lo: u32, hi: u32, copied: bool },
    Error(io::Error),
}

/// Reads one entry from the socket's error queue without blocking; `None` when empty.
fn read_errqueue(fd: RawFd) -> Result<Option<Notice>, Error> {
    // u64 elements keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    // SAFETY: an all-zero msghdr is valid; it is pointed at `control` only.
    let mut hdr: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
    hdr.msg_control = control.as_mut_ptr().cast();
    hdr.msg_controllen = size_of::<[u64; 16]>();
    let flags = libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT;
    // SAFETY: the kernel writes at most msg_controllen bytes into `control`.
    let read = loop {
        match unsafe { libc::recvmsg(fd, &mut hdr, flags) } {
            n if n >= 0 => break Ok(n),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    break Err(e);
                }
            }
        }
    };
    match read {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
        Err(e) => return Err(Error::io("reading the error queue", e)),
    }
    // SAFETY: walks the control messages the kernel just wrote, within msg_controllen.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&hdr) };
    while !cmsg.is_null() {
        // SAFETY: non-null cmsg inside `control`.
        let c = unsafe { &*cmsg };
        let is_recverr = (c.cmsg_level == libc::SOL_IP && c.cmsg_type == libc::IP_RECVERR)
            || (c.cmsg_level == libc::SOL_IPV6 && c.cmsg_type == libc::IPV6_RECVERR);
        if is_recverr {
            // SAFETY: IP_RECVERR/IPV6_RECVERR data starts with a sock_extended_err; it may
            // be unaligned within the buffer, hence read_unaligned.
            let ee: libc::sock_extended_err =
                unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()) };
            if ee.ee_errno == 0 && ee.ee_origin == SO_EE_ORIGIN_ZEROCOPY {
                return Ok(Some(Notice::Completed {
                    lo: ee.ee_info,
                    hi: ee.ee_data,
                    copied: ee.ee_code & SO_EE_CODE_ZEROCOPY_COPIED != 0,
                }));
            }
            return Ok(Some(Notice::Error(io::Error::from_raw_os_error(
                ee.ee_errno as i32,
            ))));
        }
        // SAFETY: advances within the same control buffer.
        cmsg = unsafe { libc::CMSG_NXTHDR(&hdr, cmsg) };
    }
    Err(Error::Internal(
        "error queue entry without an IP_RECVERR control message".into(),
    ))
}
