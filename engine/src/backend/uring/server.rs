//! The uring server: a fixed pool of worker threads, one ring each, every ring serving
//! many connections. The acceptor's handshake threads hand each accepted connection to a
//! worker (round-robin) through a channel and wake it through an eventfd that the worker
//! keeps a READ posted on.

use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use io_uring::{opcode, types};

use super::client::register_pool;
use super::conn::{decode, UConn};
use super::ring::{Cqe, Ring};
use super::setup::{build_ring, ring_sizes, SERVER_RING_INFLIGHT};
use super::MAX_FIXED_BUFFERS;
use crate::config::{Backend, Mode, UringRecv};
use crate::counters::CounterSet;
use crate::error::Error;
use crate::placement::{self, Placement};
use crate::server::{
    finish_connection, nodelay_for, panic_text, server_flow, Accepted, ConnMeter, Running,
    ServerEvent, Shared, Slot,
};
use crate::stats::PeerReport;

/// How long one wait in the kernel may last before stop and timeouts are checked.
const TICK: Duration = Duration::from_millis(100);
/// On stop, how long connections get to hand their operations back before the worker
/// gives up on them (their buffers are leaked, never freed under the kernel).
const STOP_GRACE: Duration = Duration::from_millis(500);
/// user_data of the eventfd read that wakes a worker for new connections.
const WAKE: u64 = u64::MAX;

/// Starts the workers, runs `accept` with a dispatcher that feeds them, and returns once
/// `accept` has returned (on stop) and every worker has closed its connections.
pub(crate) fn serve<'s>(
    stop: &AtomicBool,
    shared: &'s Shared<'s>,
    accept: impl FnOnce(&(dyn Fn(Accepted<'s>) + Sync)) -> Result<(), Error>,
) -> Result<(), Error> {
    let workers = shared.config.workers;
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
            let (tx, rx) = mpsc::channel::<Accepted<'s>>();
            inboxes.push(tx);
            let (ready, halt, efd) = (ready_tx.clone(), &halt, waker.as_raw_fd());
            scope.spawn(move || {
                let stopping = || stop.load(Ordering::Relaxed) || halt.load(Ordering::Relaxed);
                worker(id, shared, rx, efd, &stopping, ready)
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
                    return Err(Error::Peer("a uring worker exited during setup".into()));
                }
            }
        }
        let next = AtomicUsize::new(0);
        let dispatch = |acc: Accepted<'s>| {
            let w = next.fetch_add(1, Ordering::Relaxed) % workers;
            if let Err(mpsc::SendError(acc)) = inboxes[w].send(acc) {
                (shared.on_event)(ServerEvent::Failed {
                    id: acc.id,
                    peer: acc.peer,
                    error: "its uring worker has stopped".into(),
                });
                return;
            }
            wake(wakers[w].as_raw_fd());
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

/// What a worker keeps beside each connection. Dropped after the connection's flow (and
/// so its buffers): the slot gives their budget back, then the socket closes.
struct Served<'s> {
    _slot: Slot<'s>,
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    /// Readings taken when the connection joined.
    meter: ConnMeter,
}

fn worker<'s>(
    id: usize,
    shared: &'s Shared<'s>,
    inbox: Receiver<Accepted<'s>>,
    efd: RawFd,
    stopping: &dyn Fn() -> bool,
    ready: Sender<Result<(), Error>>,
) {
    let config = shared.config;
    let cpu = shared.plan.cpu(id);
    if let Err(e) = placement::apply(cpu) {
        let _ = ready.send(Err(e));
        return;
    }
    // Counted per thread, a worker's counters run for its whole life; each connection
    // reads them when it joins and when it leaves.
    let mut set = shared.metering.thread_set();
    if let Some(s) = set.as_mut() {
        s.enable();
    }
    let fixed_capable = matches!(config.mode, None | Some(Mode::ZcFixed));
    let (sq, cq) = ring_sizes(SERVER_RING_INFLIGHT);
    let mut uring = match build_ring(sq, cq) {
        Ok((ring, flags)) => (ring, flags),
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let buffers = if fixed_capable { MAX_FIXED_BUFFERS } else { 0 };
    let flags = std::mem::take(&mut uring.1);
    let multishot = config.uring_recv == UringRecv::Multishot
        && matches!(config.mode, None | Some(Mode::TwoCopy));
    let files = config.max_clients as u32;
    let mut ring = match Ring::new(&mut uring.0, flags, files, buffers, multishot) {
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
        shared,
        conns: Vec::new(),
        free: Vec::new(),
        wake_buf,
        efd,
        set,
        cpu,
    };
    let armed = w.arm_wake(&mut ring);
    let _ = ready.send(armed.map(|_| ()));
    w.run(&mut ring, &inbox, stopping);
}

struct Worker<'s> {
    id: usize,
    shared: &'s Shared<'s>,
    conns: Vec<Option<UConn<Served<'s>>>>,
    free: Vec<u32>,
    wake_buf: &'static mut u64,
    efd: RawFd,
    /// This worker's counters (per-thread scope).
    set: Option<CounterSet>,
    cpu: Option<usize>,
}

impl<'s> Worker<'s> {
    fn arm_wake(&mut self, ring: &mut Ring<'_>) -> Result<(), Error> {
        let buf = (self.wake_buf as *mut u64).cast::<u8>();
        let read = opcode::Read::new(types::Fd(self.efd), buf, 8)
            .build()
            .user_data(WAKE);
        ring.push(&read)
    }

    fn run(
        &mut self,
        ring: &mut Ring<'_>,
        inbox: &Receiver<Accepted<'s>>,
        stopping: &dyn Fn() -> bool,
    ) {
        let mut cqes: Vec<Cqe> = Vec::with_capacity(256);
        let mut dirty: Vec<u32> = Vec::new();
        let mut stop_seen: Option<Instant> = None;
        let timeout = self.shared.config.idle_timeout;
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
                while let Ok(acc) = inbox.try_recv() {
                    if let Some(index) = self.add(ring, acc, now) {
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
                c.check_timeout(now, timeout);
                // Failed, shut down, and still not handed back after another timeout:
                // give up rather than hold its slot for good.
                if c.stuck(now, timeout) {
                    c.abandon();
                }
            }
            if stopping() {
                let since = *stop_seen.get_or_insert(now);
                self.fail_all("server stopping".into());
                if now - since > STOP_GRACE.min(timeout) {
                    self.conns.iter_mut().flatten().for_each(UConn::abandon);
                }
            }
            self.retire_finished(ring);
            if stop_seen.is_some() && self.conns.iter().all(Option::is_none) {
                // Connections handed over while stopping are closed unserved.
                while let Ok(acc) = inbox.try_recv() {
                    self.report_failure(acc.id, acc.peer, "server stopping".into());
                }
                return;
            }
        }
    }

    /// Runs `f` on connection `index`, if it is still here. A panic inside (a bug) costs
    /// that connection only: it is failed, and abandoned if it panics again, since its
    /// state can no longer be trusted to account for what the kernel holds.
    fn guarded(&mut self, index: u32, f: impl FnOnce(&mut UConn<Served<'s>>)) {
        let Some(c) = self.conns.get_mut(index as usize).and_then(Option::as_mut) else {
            return;
        };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| f(&mut *c))) {
            if c.has_error() {
                c.abandon();
            }
            c.fail(Error::Internal(panic_text(&*panic)));
        }
    }

    fn fail_all(&mut self, why: String) {
        for c in self.conns.iter_mut().flatten() {
            if !c.has_error() && c.done_at.is_none() {
                c.fail(Error::Peer(why.clone()));
            }
        }
    }

    /// Takes a connection over: registers its buffers (zc-fixed) and its fixed file,
    /// builds its flow. Its buffers were allocated before it was accepted, so nothing
    /// here stalls the worker's other connections. Returns its index, or `None` when it
    /// could not be set up (logged).
    fn add(&mut self, ring: &mut Ring<'_>, acc: Accepted<'s>, now: Instant) -> Option<u32> {
        let Accepted {
            mut buffers,
            slot,
            stream,
            peer,
            id,
            hello,
        } = acc;
        let range = match buffers.region.clone() {
            Some(region) => {
                let plan = buffers.plan;
                match register_pool(ring, &mut buffers.pool, &region, &plan) {
                    Ok(range) => Some(range),
                    Err(e) => {
                        self.report_failure(id, peer, e.to_string());
                        return None;
                    }
                }
            }
            None => None,
        };
        if let Err(e) = stream.set_nodelay(nodelay_for(&hello)) {
            if let Some((first, n)) = range {
                ring.remove_buffers(first, n);
            }
            self.report_failure(id, peer, format!("TCP_NODELAY: {e}"));
            return None;
        }
        let fd = stream.as_raw_fd();
        let file = ring.add_file(fd);
        let count = buffers.plan.count();
        let flow = server_flow(&hello, buffers);
        let name = self.name();
        let running = Running {
            io: ring.io,
            set: self.set.as_mut(),
        };
        let served = Served {
            _slot: slot,
            stream,
            peer,
            id,
            meter: ConnMeter::start(self.shared, &name, Some(running)),
        };
        let multishot = ring.pbuf.is_some();
        let cqe_skip = ring.setup.cqe_skip;
        let mut conn = UConn::new(flow, fd, file, count, multishot, cqe_skip, served);
        conn.fixed_range = range;
        conn.flow.begin(now);
        let index = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            (self.conns.len() - 1) as u32
        });
        self.conns[index as usize] = Some(conn);
        Some(index)
    }

    fn name(&self) -> String {
        format!("worker {}", self.id)
    }

    fn report_failure(&self, id: u64, peer: SocketAddr, error: String) {
        (self.shared.on_event)(ServerEvent::Failed { id, peer, error });
    }

    /// Reports and drops every connection with nothing left in the kernel.
    fn retire_finished(&mut self, ring: &mut Ring<'_>) {
        for index in 0..self.conns.len() {
            if !self.conns[index].as_ref().is_some_and(UConn::is_finished) {
                continue;
            }
            let mut c = self.conns[index].take().expect("checked");
            if c.abandoned {
                // A late completion may still carry this index: never hand it out again.
                (self.shared.on_event)(ServerEvent::Notice(format!(
                    "{}: gave up on connection {} with operations still in the kernel; \
                     its buffers are leaked, not reused",
                    self.name(),
                    c.extra.id
                )));
            } else {
                self.free.push(index as u32);
            }
            if let Some(slot) = c.file {
                ring.remove_file(slot);
            }
            if let Some((first, n)) = c.fixed_range {
                ring.remove_buffers(first, n);
            }
            let (id, peer) = (c.extra.id, c.extra.peer);
            let event = catch_unwind(AssertUnwindSafe(|| self.report(ring, &mut c)))
                .unwrap_or_else(|panic| ServerEvent::Failed {
                    id,
                    peer,
                    error: Error::Internal(panic_text(&*panic)).to_string(),
                });
            // Dropped whole, in field order: buffers, then the slot, then the socket; and
            // only then logged, so whoever reads the log may take the slot.
            drop(c);
            (self.shared.on_event)(event);
        }
    }

    /// Sends a retired connection its report; returns what to log.
    fn report(&mut self, ring: &Ring<'_>, c: &mut UConn<Served<'s>>) -> ServerEvent {
        if let Some(e) = c.take_error() {
            return ServerEvent::Failed {
                id: c.extra.id,
                peer: c.extra.peer,
                error: e.to_string(),
            };
        }
        let running = Running {
            io: ring.io,
            set: self.set.as_mut(),
        };
        let report = PeerReport {
            backend: Backend::Uring,
            connection: c.extra.id,
            duration_s: c.flow.duration().as_secs_f64(),
            stats: c.flow.stats.clone(),
            ring: Some(ring.setup.clone()),
            samples: c.extra.meter.finish(self.shared, Some(running)),
            counter_scope: self.shared.metering.scope,
            counters_missing: self.shared.metering.missing.clone(),
            placement: Some(Placement {
                thread: self.name(),
                cpu: self.cpu,
            }),
        };
        // Never block the worker on one client: a client that does not read loses its
        // report, not everybody's progress.
        let _ = c.extra.stream.set_nonblocking(true);
        finish_connection(&mut c.extra.stream, c.extra.peer, report)
    }
}
