//! The uring client: each worker thread builds its own ring, drives `--conns` connections
//! on it, and reaps every ready completion per wake-up.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::{decode, UConn};
use super::ring::{Cqe, Ring};
use super::setup::{build_ring, ring_sizes};
use super::MAX_FIXED_BUFFERS;
use crate::client::{client_flow, Connection};
use crate::config::{ClientConfig, Mode, UringRecv};
use crate::error::Error;
use crate::message::{Region, Template};
use crate::pool::{pool_size, Pool, PoolPlan};
use crate::record::ThreadResult;
use crate::vocab::Role;

/// How long one wait in the kernel may last before timeouts are checked.
const TICK: Duration = Duration::from_millis(100);

/// Runs one client thread's connections on one ring. `start` is the common start line:
/// called once the ring is ready (or with the error that stopped it).
pub(crate) fn run_client_thread(
    conns: &[Connection],
    config: &ClientConfig,
    template: &Arc<Template>,
    result: &mut ThreadResult,
    stop: &AtomicBool,
    start: impl FnOnce(Result<(), Error>) -> Result<(), Error>,
) -> Result<(), Error> {
    let per_conn = pool_size(config.depth);
    let (sq, cq) = ring_sizes(conns.len() * (per_conn + 1));
    let fixed = config.mode == Mode::ZcFixed;
    let buffers = if fixed {
        let n = (conns.len() * per_conn) as u32;
        if n > MAX_FIXED_BUFFERS {
            return start(Err(Error::Config(format!(
                "zc-fixed needs {n} registered buffers per ring ({} connections × {per_conn}); the kernel takes {MAX_FIXED_BUFFERS}: lower --depth or --conns",
                conns.len()
            ))));
        }
        n
    } else {
        0
    };
    let (mut uring, flags) = match build_ring(sq, cq) {
        Ok(r) => r,
        Err(e) => return start(Err(e)),
    };
    let multishot = config.uring_recv == UringRecv::Multishot && config.mode == Mode::TwoCopy;
    let mut ring = match Ring::new(&mut uring, flags, conns.len() as u32, buffers, multishot) {
        Ok(r) => r,
        Err(e) => return start(Err(e)),
    };
    let mut uconns = Vec::with_capacity(conns.len());
    for conn in conns {
        match client_conn(&mut ring, conn, config, template, per_conn) {
            Ok(c) => uconns.push(c),
            Err(e) => return start(Err(e)),
        }
    }
    start(Ok(()))?;

    let now = Instant::now();
    for (i, c) in uconns.iter_mut().enumerate() {
        c.flow.begin(now);
        if let Err(e) = c.pump(&mut ring, i as u32, now) {
            c.fail(e);
        }
    }
    let run = drive(&mut ring, &mut uconns, config.io_timeout, stop);

    let mut first_error = run.err();
    for c in &mut uconns {
        result.stats += &c.flow.stats;
        result.latency += &c.flow.latency;
        result.progress += &c.flow.progress;
        result.duration = result.duration.max(c.flow.duration());
        if let Some(e) = c.take_error() {
            first_error.get_or_insert(e);
        }
    }
    result.stats.io += ring.io;
    result.ring = Some(ring.setup.clone());
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Prepares one connection: fixed file, buffer pool, flow.
fn client_conn(
    ring: &mut Ring<'_>,
    conn: &Connection,
    config: &ClientConfig,
    template: &Arc<Template>,
    per_conn: usize,
) -> Result<UConn<()>, Error> {
    let fd = conn.stream.as_raw_fd();
    let file = ring.add_file(fd);
    let plan = PoolPlan::new(Role::Client, config.mode, config.size, config.depth);
    debug_assert_eq!(plan.count(), per_conn);
    let (pool, range) = if config.mode == Mode::ZcFixed {
        let (mut pool, region) =
            Pool::fixed(template, &plan).map_err(|e| Error::io("mapping fixed buffers", e))?;
        let range = register_pool(ring, &mut pool, &region, &plan)?;
        (pool, Some(range))
    } else {
        (Pool::heap(template, &plan), None)
    };
    let flow = client_flow(config, template, pool);
    let multishot = ring.pbuf.is_some();
    let cqe_skip = ring.setup.cqe_skip;
    let mut c = UConn::new(flow, fd, file, per_conn, multishot, cqe_skip, ());
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
) -> Result<(), Error> {
    let mut cqes: Vec<Cqe> = Vec::with_capacity(256);
    let mut dirty: Vec<u32> = Vec::with_capacity(conns.len());
    let mut stuck_since: Option<Instant> = None;
    let mut stopped = false;
    while !conns.iter().all(UConn::is_finished) {
        if !stopped && stop.load(Ordering::Relaxed) {
            // Interrupted: send nothing new, collect what is outstanding.
            stopped = true;
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
        ring.submit_and_wait(want, TICK)?;
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
        // Deadlines are checked on every wake-up: a busy ring must not shelter a silent
        // connection.
        for c in conns.iter_mut() {
            c.check_timeout(now, timeout);
        }
        if cqes.is_empty() {
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
