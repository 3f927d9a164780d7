//! The uring server: a fixed pool of worker threads, one ring each, every ring serving
//! many connections. The orchestrator hands each accepted connection to a worker
//! (round-robin) through a channel and wakes it through an eventfd that the worker keeps
//! a READ posted on. What the server does around a connection — its slot, its meter, its
//! report and log line — it does through [`ServeHost`], on the worker's thread: this
//! module knows rings and connections, nothing of the server above it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use io_uring::{opcode, types};

use super::client::register_pool;
use super::conn::{decode, UConn};
use super::ring::{Cqe, Polling, Ring};
use super::setup::{build_ring, ring_sizes, SERVER_RING_INFLIGHT};
use super::MAX_FIXED_BUFFERS;
use crate::conn::{ConnReport, ConnSpec};
use crate::error::Error;
use crate::polling::SqPoll;
use crate::stats::{IoStats, RingSetup};

/// How long one wait in the kernel may last before stop and timeouts are checked.
const TICK: Duration = Duration::from_millis(100);
/// On stop, how long connections get to hand their operations back before the worker
/// gives up on them (their buffers are leaked, never freed under the kernel).
const STOP_GRACE: Duration = Duration::from_millis(500);
/// user_data of the eventfd read that wakes a worker for new connections.
const WAKE: u64 = u64::MAX;

/// How the workers' rings are set up.
pub(crate) struct ServeOpts {
    pub workers: usize,
    /// Fixed-file slots per ring: the most connections the server takes.
    pub files: u32,
    /// Register a fixed buffer table (the server may serve zc-fixed).
    pub fixed_buffers: bool,
    /// Receive two-copy messages with multishot RECVs into provided buffers.
    pub multishot: bool,
    /// A connection that moves no whole message for this long is failed.
    pub idle_timeout: Duration,
    /// `--sqpoll`: each ring polls its submission queue from a kernel thread.
    pub sqpoll: Option<SqPoll>,
    /// `--busy-poll`: NAPI busy polling on each ring, µs.
    pub busy_poll_us: Option<u32>,
}

/// What the server does around each connection a worker serves, called on that worker's
/// thread.
pub(crate) trait ServeHost: Sync {
    /// What the server keeps beside each connection (its slot, socket, meter).
    type Conn: Send;
    /// What the server keeps per worker thread (its place, its counters).
    type Worker;

    /// A worker thread starts, before its ring is made: pin it, open its counters.
    fn worker_started(&self, worker: usize) -> Result<Self::Worker, Error>;
    /// A connection joins `worker`, whose ring has made the calls in `ring` so far.
    fn joined(&self, worker: &mut Self::Worker, conn: &mut Self::Conn, ring: IoStats);
    /// A connection's flow left its warm-up (`--omit`); the ring has made the calls in
    /// `ring` so far.
    fn warmed(&self, worker: &mut Self::Worker, conn: &mut Self::Conn, ring: IoStats);
    /// A connection is done (or failed): its report, and the ring's calls and setup.
    fn retired(
        &self,
        worker: &mut Self::Worker,
        conn: Self::Conn,
        report: ConnReport,
        ring: IoStats,
        setup: &RingSetup,
    );
    /// Something the user should know, for the log.
    fn notice(&self, text: String);
    /// The server is stopping: close every connection.
    fn stopping(&self) -> bool;
}

/// A connection on its way to a worker.
pub(crate) struct Incoming<C> {
    pub spec: ConnSpec,
    pub conn: C,
    /// The worker that must take it (its registered buffers were reserved there); any,
    /// round-robin, when `None`.
    pub worker: Option<usize>,
}

/// Hands a connection to a worker; gives it back when no worker can take it.
pub(crate) type Dispatch<'d, C> = dyn Fn(Incoming<C>) -> Result<(), Box<Incoming<C>>> + Sync + 'd;

/// Starts the workers, runs `accept` with a dispatcher that feeds them, and returns once
/// `accept` has returned (on stop) and every worker has closed its connections.
pub(crate) fn serve<H: ServeHost>(
    opts: &ServeOpts,
    host: &H,
    accept: impl FnOnce(&Dispatch<'_, H::Conn>) -> Result<(), Error>,
) -> Result<(), Error> {
    let workers = opts.workers;
    let halt = AtomicBool::new(false);
    let mut wakers = Vec::with_capacity(workers);
    for _ in 0..workers {
        // SAFETY: eventfd has no memory preconditions; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(Error::io("eventfd", std::io::Error::last_os_error()));
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        wakers.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    std::thread::scope(|scope| {
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut inboxes = Vec::with_capacity(workers);
        for (id, waker) in wakers.iter().enumerate() {
            let (tx, rx) = mpsc::channel::<Incoming<H::Conn>>();
            inboxes.push(tx);
            let (ready, halt, efd) = (ready_tx.clone(), &halt, waker.as_raw_fd());
            scope.spawn(move || {
                let stopping = || host.stopping() || halt.load(Ordering::Relaxed);
                worker(id, opts, host, rx, efd, &stopping, ready)
            });
        }
        drop(ready_tx);
        // Every ring must be up before the first client is accepted.
        for _ in 0..workers {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    halt.store(true, Ordering::Relaxed);
                    return Err(e);
                }
                Err(_) => {
                    halt.store(true, Ordering::Relaxed);
                    return Err(Error::Internal("a uring worker exited during setup".into()));
                }
            }
        }
        let next = AtomicUsize::new(0);
        let dispatch = |incoming: Incoming<H::Conn>| {
            let w = incoming
                .worker
                .unwrap_or_else(|| next.fetch_add(1, Ordering::Relaxed))
                % workers;
            inboxes[w]
                .send(incoming)
                .map_err(|mpsc::SendError(back)| Box::new(back))?;
            wake(wakers[w].as_raw_fd());
            Ok(())
        };
        let result = accept(&dispatch);
        halt.store(true, Ordering::Relaxed);
        result
    })
}

fn wake(efd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to an eventfd.
    unsafe { libc::write(efd, (&one as *const u64).cast(), 8) };
}

fn worker<H: ServeHost>(
    id: usize,
    opts: &ServeOpts,
    host: &H,
    inbox: Receiver<Incoming<H::Conn>>,
    efd: RawFd,
    stopping: &dyn Fn() -> bool,
    ready: Sender<Result<(), Error>>,
) {
    let state = match host.worker_started(id) {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let (sq, cq) = ring_sizes(SERVER_RING_INFLIGHT);
    let (mut uring, flags, sqpoll) = match build_ring(sq, cq, opts.sqpoll) {
        Ok(r) => r,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let buffers = if opts.fixed_buffers {
        MAX_FIXED_BUFFERS
    } else {
        0
    };
    let polling = Polling {
        sqpoll,
        busy_poll_us: opts.busy_poll_us,
    };
    let mut ring = match Ring::new(
        &mut uring,
        flags,
        polling,
        opts.files,
        buffers,
        opts.multishot,
    ) {
        Ok(r) => r,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    // The eventfd read's target lives as long as the process: the read may still be
    // posted when the ring goes away.
    let wake_buf: &'static mut u64 = Box::leak(Box::new(0));
    let mut w = Worker {
        id,
        host,
        state,
        conns: Vec::new(),
        free: Vec::new(),
        wake_buf,
        efd,
    };
    let armed = w.arm_wake(&mut ring);
    let _ = ready.send(armed);
    w.run(&mut ring, &inbox, opts.idle_timeout, stopping);
}

struct Worker<'h, H: ServeHost> {
    id: usize,
    host: &'h H,
    state: H::Worker,
    conns: Vec<Option<UConn<H::Conn>>>,
    free: Vec<u32>,
    wake_buf: &'static mut u64,
    efd: RawFd,
}

impl<H: ServeHost> Worker<'_, H> {
    fn arm_wake(&mut self, ring: &mut Ring<'_>) -> Result<(), Error> {
        let buf = (self.wake_buf as *mut u64).cast::<u8>();
        // SAFETY (of the pointer): `wake_buf` is leaked, so it outlives the read.
        let read = opcode::Read::new(types::Fd(self.efd), buf, 8)
            .build()
            .user_data(WAKE);
        ring.push(&read)
    }

    fn run(
        &mut self,
        ring: &mut Ring<'_>,
        inbox: &Receiver<Incoming<H::Conn>>,
        timeout: Duration,
        stopping: &dyn Fn() -> bool,
    ) {
        let mut cqes: Vec<Cqe> = Vec::with_capacity(256);
        let mut dirty: Vec<u32> = Vec::new();
        let mut stop_seen: Option<Instant> = None;
        loop {
            if let Err(e) = ring.submit_and_wait(1, TICK) {
                self.fail_all(e.to_string());
            }
            ring.reap(&mut cqes);
            let now = Instant::now();
            let mut woken = false;
            for cqe in &cqes {
                if cqe.user_data == WAKE {
                    woken = true;
                    continue;
                }
                let (index, _, _) = decode(cqe.user_data);
                self.guarded(index, |c| c.complete(ring, index, *cqe, now));
                if !dirty.contains(&index) {
                    dirty.push(index);
                }
            }
            if woken {
                while let Ok(incoming) = inbox.try_recv() {
                    if let Some(index) = self.add(ring, incoming, now) {
                        dirty.push(index);
                    }
                }
                if let Err(e) = self.arm_wake(ring) {
                    self.fail_all(e.to_string());
                }
            }
            for index in dirty.drain(..) {
                self.guarded(index, |c| {
                    if let Err(e) = c.pump(ring, index, now) {
                        c.fail(e);
                    }
                });
            }
            // Deadlines on every wake-up, busy or not: a silent connection must not
            // outlive its timeout because its neighbours keep the worker busy.
            for c in self.conns.iter_mut().flatten() {
                if c.flow.take_warmed() {
                    self.host.warmed(&mut self.state, &mut c.extra, ring.io);
                }
                c.check_timeout(now, timeout);
                // Failed, shut down, and still not handed back after another timeout:
                // give up rather than hold its slot for good.
                if c.stuck(now, timeout) {
                    c.abandon();
                }
            }
            if stopping() {
                let since = *stop_seen.get_or_insert(now);
                // Each connection ends once its sends in flight are in (so that its end
                // notice starts where a message would; see `UConn::stop_at_boundary`);
                // one whose sends do not come in within half the grace ends as it is.
                if now - since > STOP_GRACE.min(timeout) / 2 {
                    self.fail_all("server stopping".into());
                } else {
                    for c in self.conns.iter_mut().flatten() {
                        if !c.has_error() && c.done_at.is_none() {
                            c.stop_at_boundary(Error::Peer("server stopping".into()));
                        }
                    }
                }
                if now - since > STOP_GRACE.min(timeout) {
                    self.conns.iter_mut().flatten().for_each(UConn::abandon);
                }
            }
            self.retire_finished(ring);
            if stop_seen.is_some() && self.conns.iter().all(Option::is_none) {
                // Connections handed over while stopping are closed unserved.
                while let Ok(incoming) = inbox.try_recv() {
                    let report = ConnReport {
                        flow: incoming.spec.flow,
                        error: Some(Error::Peer("server stopping".into())),
                        at_boundary: true,
                    };
                    let (io, setup) = (ring.io, ring.setup.clone());
                    self.host
                        .retired(&mut self.state, incoming.conn, report, io, &setup);
                }
                return;
            }
        }
    }

    /// Runs `f` on connection `index`, if it is still here. A panic inside (a bug) costs
    /// that connection only: it is failed, and abandoned if it panics again, since its
    /// state can no longer be trusted to account for what the kernel holds.
    fn guarded(&mut self, index: u32, f: impl FnOnce(&mut UConn<H::Conn>)) {
        let Some(c) = self.conns.get_mut(index as usize).and_then(Option::as_mut) else {
            return;
        };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| f(&mut *c))) {
            if c.has_error() {
                c.abandon();
            }
            c.fail_internal(Error::from_panic(&*panic));
        }
    }

    fn fail_all(&mut self, why: String) {
        for c in self.conns.iter_mut().flatten() {
            if !c.has_error() && c.done_at.is_none() {
                c.fail(Error::Peer(why.clone()));
            }
        }
    }

    /// Takes a connection over: registers its buffers (zc-fixed) and its fixed file.
    /// Its buffers were allocated before it was handed over, so nothing here stalls the
    /// worker's other connections. Returns its index, or `None` when it could not be set
    /// up (reported).
    fn add(
        &mut self,
        ring: &mut Ring<'_>,
        incoming: Incoming<H::Conn>,
        now: Instant,
    ) -> Option<u32> {
        let Incoming {
            mut spec, mut conn, ..
        } = incoming;
        let range = match spec.region.clone() {
            Some(region) => match register_pool(ring, spec.flow.pool_mut(), &region, &spec.plan) {
                Ok(range) => Some(range),
                Err(e) => {
                    let report = ConnReport {
                        flow: spec.flow,
                        error: Some(e),
                        at_boundary: true,
                    };
                    let (io, setup) = (ring.io, ring.setup.clone());
                    self.host.retired(&mut self.state, conn, report, io, &setup);
                    return None;
                }
            },
            None => None,
        };
        let file = ring.add_file(spec.fd);
        self.host.joined(&mut self.state, &mut conn, ring.io);
        let multishot = ring.pbuf.is_some();
        let cqe_skip = ring.setup.cqe_skip;
        let count = spec.plan.count();
        let mut c = UConn::new(spec.flow, spec.fd, file, count, multishot, cqe_skip, conn);
        c.fixed_range = range;
        c.flow.begin(now);
        let index = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            (self.conns.len() - 1) as u32
        });
        self.conns[index as usize] = Some(c);
        Some(index)
    }

    /// Hands every connection with nothing left in the kernel back to the host.
    fn retire_finished(&mut self, ring: &mut Ring<'_>) {
        for index in 0..self.conns.len() {
            if !self.conns[index].as_ref().is_some_and(UConn::is_finished) {
                continue;
            }
            let mut c = self.conns[index].take().expect("checked");
            c.recycle_provided(ring);
            if c.abandoned {
                // A late completion may still carry this index: never hand it out again.
                self.host.notice(format!(
                    "worker {}: gave up on a connection with operations still in the \\
                     kernel; its buffers are leaked, not reused",
                    self.id
                ));
            } else {
                self.free.push(index as u32);
            }
            if let Some(slot) = c.file {
                ring.remove_file(slot);
            }
            if let Some((first, n)) = c.fixed_range {
                ring.remove_buffers(first, n);
            }
            let error = c.take_error();
            let at_boundary = c.at_boundary();
            let (flow, conn) = c.into_parts();
            let report = ConnReport {
                flow,
                error,
                at_boundary,
            };
            let (io, setup) = (ring.io, ring.setup.clone());
            let (host, state) = (self.host, &mut self.state);
            // A bug in what the host does with one connection costs that connection.
            let _ = catch_unwind(AssertUnwindSafe(|| {
                host.retired(state, conn, report, io, &setup)
            }));
        }
    }
}
