//! The uring client: each worker thread builds its own ring, drives `--conns` connections
//! on it, and reaps every ready completion per wake-up.

use std::sync::atomic::{AtomicBool, Ordering};

use io_uring::IoUring;
use std::time::{Duration, Instant};

use super::conn::{decode, UConn};
use super::ring::{Cqe, Polling, Ring};
use super::setup::{build_ring, ring_sizes};
use crate::conn::{ConnReport, ConnSpec, STOP_GRACE};
use crate::error::Error;
use crate::message::Region;
use crate::polling::SqPoll;
use crate::pool::{Pool, PoolPlan};
use crate::stats::{IoStats, RingSetup};

/// How long one wait in the kernel may last before timeouts are checked.
const TICK: Duration = Duration::from_millis(100);

/// How a client thread's ring is set up.
pub(crate) struct RingOpts {
    /// Receive two-copy messages with a multishot RECV into provided buffers.
    pub multishot: bool,
    /// A connection that moves no whole message for this long is failed.
    pub timeout: Duration,
    /// `--sqpoll`: poll the submission queue from a kernel thread.
    pub sqpoll: Option<SqPoll>,
    /// `--busy-poll`: NAPI busy polling on the ring, µs.
    pub busy_poll_us: Option<u32>,
}

/// What one ring hands back: each connection's report, and what the ring cost.
pub(crate) struct RingReport {
    pub conns: Vec<ConnReport>,
    pub io: IoStats,
    pub setup: RingSetup,
}

/// Runs one client thread's connections on one ring. `start` is the common start line:
/// called once the ring is ready (or with the error that stopped it). `stop`, once set,
/// ends the flows' sending early. `warmed` is called once every flow has left its
/// warm-up (`--omit`), for the caller to read what it measures around them afresh.
pub(crate) fn run_ring(
    specs: Vec<ConnSpec>,
    opts: &RingOpts,
    stop: &AtomicBool,
    start: impl FnOnce(Result<(), Error>) -> Result<(), Error>,
    mut warmed: impl FnMut(),
) -> Result<RingReport, Error> {
    let mut uring = None;
    let (mut ring, mut uconns) = match set_up(&mut uring, specs, opts) {
        Ok(ready) => ready,
        Err(e) => return Err(start(Err(e)).expect_err("start passes an error on")),
    };
    start(Ok(()))?;

    let now = Instant::now();
    for (i, c) in uconns.iter_mut().enumerate() {
        c.flow.begin(now);
        if let Err(e) = c.pump(&mut ring, i as u32, now) {
            c.fail(e);
        }
    }
    let mut warmed_io = None;
    let run = drive(
        &mut ring,
        &mut uconns,
        opts.timeout,
        stop,
        &mut warmed_io,
        &mut warmed,
    );
    for c in &mut uconns {
        c.recycle_provided(&mut ring);
    }
    let mut conns: Vec<ConnReport> = uconns
        .into_iter()
        .map(|mut c| {
            let error = c.take_error();
            let (flow, ()) = c.into_parts();
            ConnReport {
                flow,
                error,
                at_boundary: false,
            }
        })
        .collect();
    if let (Err(e), Some(first)) = (run, conns.first_mut()) {
        first.error.get_or_insert(e);
    }
    Ok(RingReport {
        conns,
        // `--omit`: the ring's calls from the end of the warm-up.
        io: warmed_io.map_or(ring.io, |w| ring.io.since(&w)),
        setup: ring.setup.clone(),
    })
}

/// Makes the thread's ring (kept in `uring`, which the ring borrows) and takes every
/// connection onto it.
fn set_up<'u>(
    uring: &'u mut Option<IoUring>,
    specs: Vec<ConnSpec>,
    opts: &RingOpts,
) -> Result<(Ring<'u>, Vec<UConn<()>>), Error> {
    let per_conn = specs.first().map_or(1, |s| s.plan.count());
    let (sq, cq) = ring_sizes(specs.len() * (per_conn + 1));
    let buffers: u32 = specs
        .iter()
        .filter(|s| s.region.is_some())
        .map(|s| s.plan.count() as u32)
        .sum();
    let (built, flags, sqpoll) = build_ring(sq, cq, opts.sqpoll)?;
    let files = specs.len() as u32;
    let polling = Polling {
        sqpoll,
        busy_poll_us: opts.busy_poll_us,
    };
    let mut ring = Ring::new(
        uring.insert(built),
        flags,
        polling,
        files,
        buffers,
        opts.multishot,
    )?;
    let conns = specs
        .into_iter()
        .map(|spec| client_conn(&mut ring, spec))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((ring, conns))
}

/// Prepares one connection: its fixed file, its registered buffers (zc-fixed).
fn client_conn(ring: &mut Ring<'_>, spec: ConnSpec) -> Result<UConn<()>, Error> {
    let ConnSpec {
        fd,
        mut flow,
        region,
        plan,
    } = spec;
    let file = ring.add_file(fd);
    let range = match region {
        Some(region) => Some(register_pool(ring, flow.pool_mut(), &region, &plan)?),
        None => None,
    };
    let multishot = ring.pbuf.is_some();
    let cqe_skip = ring.setup.cqe_skip;
    let mut c = UConn::new(flow, fd, file, plan.count(), multishot, cqe_skip, ());
    c.fixed_range = range;
    Ok(c)
}

/// Registers a fixed pool's messages, which live in `region` `plan.stride` apart, as
/// consecutive fixed buffers; returns the range (first index, count).
pub(crate) fn register_pool(
    ring: &mut Ring<'_>,
    pool: &mut Pool,
    region: &Region,
    plan: &PoolPlan,
) -> Result<(u16, u32), Error> {
    let stride = plan.stride.expect("a fixed plan");
    let iovecs: Vec<libc::iovec> = (0..plan.count())
        .map(|i| libc::iovec {
            // SAFETY: in bounds of the region, which holds `count` strides.
            iov_base: unsafe { region.as_ptr().add(i * stride) }.cast(),
            iov_len: plan.size,
        })
        .collect();
    // SAFETY: the region stays mapped while any Message of the pool holds its Arc, and the
    // connection unregisters the range before its pool goes (or the ring ends first).
    let first = unsafe { ring.add_buffers(&iovecs)? };
    pool.register(first);
    Ok((first, plan.count() as u32))
}

/// Submits, waits, reaps and pumps until every connection has finished or failed with
/// nothing left in the kernel.
fn drive(
    ring: &mut Ring<'_>,
    conns: &mut [UConn<()>],
    timeout: Duration,
    stop: &AtomicBool,
    warmed_io: &mut Option<IoStats>,
    warmed: &mut dyn FnMut(),
) -> Result<(), Error> {
    let mut cqes: Vec<Cqe> = Vec::with_capacity(256);
    let mut warming = conns.iter().any(|c| c.flow.warming_up());
    let mut dirty: Vec<u32> = Vec::with_capacity(conns.len());
    let mut stuck_since: Option<Instant> = None;
    let mut stopped = false;
    let mut timeout = timeout;
    while !conns.iter().all(UConn::is_finished) {
        if warming && !conns.iter().any(|c| c.flow.warming_up()) {
            warming = false;
            *warmed_io = Some(ring.io);
            warmed();
        }
        if !stopped && stop.load(Ordering::Relaxed) {
            // Interrupted: send nothing new; what is outstanding gets a short grace.
            stopped = true;
            timeout = timeout.min(STOP_GRACE);
            let now = Instant::now();
            for (i, c) in conns.iter_mut().enumerate() {
                c.flow.stop();
                if let Err(e) = c.pump(ring, i as u32, now) {
                    c.fail(e);
                }
            }
        }
        // Wake only when some connection can act: fewer wake-ups, more completions each.
        let want = conns
            .iter()
            .filter(|c| !c.is_finished())
            .map(UConn::completions_needed)
            .min()
            .unwrap_or(1);
        // An open-loop connection (`--rate`) with nothing in flight to wake it wakes the
        // ring when its next send is due.
        let wait = conns
            .iter()
            .filter_map(UConn::send_at)
            .min()
            .map_or(TICK, |t| {
                t.saturating_duration_since(Instant::now()).min(TICK)
            });
        ring.submit_and_wait(want, wait)?;
        ring.reap(&mut cqes);
        let now = Instant::now();
        for cqe in &cqes {
            let (index, _, _) = decode(cqe.user_data);
            conns[index as usize].complete(ring, index, *cqe, now);
            if !dirty.contains(&index) {
                dirty.push(index);
            }
        }
        for index in dirty.drain(..) {
            let c = &mut conns[index as usize];
            if let Err(e) = c.pump(ring, index, now) {
                c.fail(e);
            }
        }
        for (i, c) in conns.iter_mut().enumerate() {
            if c.send_at().is_some_and(|t| t <= now) {
                if let Err(e) = c.pump(ring, i as u32, now) {
                    c.fail(e);
                }
            }
        }
        // Deadlines are checked on every wake-up: a busy ring must not shelter a silent
        // connection.
        for c in conns.iter_mut() {
            c.check_timeout(now, timeout);
        }
        if cqes.is_empty() {
            // A tick without completions: every connection looks at its deadline (a
            // client receiving a stream that went quiet must still end it on time).
            for (i, c) in conns.iter_mut().enumerate() {
                if !c.is_finished() {
                    if let Err(e) = c.pump(ring, i as u32, now) {
                        c.fail(e);
                    }
                }
            }
            // Failed connections whose buffers the kernel never returns: give up on
            // them after another timeout rather than hang.
            if conns.iter().any(|c| c.has_error() && c.held()) {
                let since = *stuck_since.get_or_insert(now);
                if now - since > timeout {
                    conns.iter_mut().for_each(UConn::abandon);
                }
            }
        } else {
            stuck_since = None;
        }
    }
    Ok(())
}
