//! The uring client: each worker thread builds its own ring, drives `--conns` connections
//! on it, and reaps every ready completion per wake-up.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::{decode, UConn};
use super::{build_ring, ring_sizes, Cqe, Ring, MAX_FIXED_BUFFERS};
use crate::client::{client_flow, Connection};
use crate::config::{ClientConfig, Mode, UringRecv};
use crate::error::Error;
use crate::message::{Region, Template};
use crate::pool::{pool_size, Pool};
use crate::record::ThreadResult;

/// How long one wait in the kernel may last before timeouts are checked.
const TICK: Duration = Duration::from_millis(100);

/// Runs one client thread's connections on one ring. `start` is the common start line:
/// called once the ring is ready (or with the error that stopped it).
pub(crate) fn run_client_thread(
    conns: &[Connection],
    config: &ClientConfig,
    template: &Arc<Template>,
    result: &mut ThreadResult,
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
    let run = drive(&mut ring, &mut uconns, config.io_timeout);

    let mut first_error = run.err();
    for c in &mut uconns {
        result.stats += &c.flow.stats;
        result.latency += &c.flow.latency;
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
    let (pool, range) = if config.mode == Mode::ZcFixed {
        let (pool, first) = fixed_pool(ring, template, per_conn)?;
        (pool, Some((first, per_conn as u32)))
    } else {
        (Pool::heap(template, config.mode, per_conn), None)
    };
    let flow = client_flow(config, template, pool);
    let multishot = ring.pbuf.is_some();
    let cqe_skip = ring.setup.cqe_skip;
    let mut c = UConn::new(flow, fd, file, per_conn, multishot, cqe_skip, ());
    c.fixed_range = range;
    Ok(c)
}

/// A pool of `count` messages in one page-aligned region, each registered as a fixed
/// buffer. Returns the pool and the first buffer index.
pub(crate) fn fixed_pool(
    ring: &mut Ring<'_>,
    template: &Template,
    count: usize,
) -> Result<(Pool, u16), Error> {
    let stride = template.layout().size().next_multiple_of(page_size());
    let region = Region::new(stride * count).map_err(|e| Error::io("mapping fixed buffers", e))?;
    let iovecs: Vec<libc::iovec> = (0..count)
        .map(|i| libc::iovec {
            // SAFETY: in bounds of the region just mapped.
            iov_base: unsafe { region.as_ptr().add(i * stride) }.cast(),
            iov_len: template.layout().size(),
        })
        .collect();
    // SAFETY: the region stays mapped while any Message of the pool holds its Arc, and the
    // connection unregisters the range before its pool goes (or the ring ends first).
    let first = unsafe { ring.add_buffers(&iovecs)? };
    Ok((Pool::fixed(template, region, stride, first, count), first))
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// Submits, waits, reaps and pumps until every connection has finished or failed with
/// nothing left in the kernel.
fn drive(ring: &mut Ring<'_>, conns: &mut [UConn<()>], timeout: Duration) -> Result<(), Error> {
    let mut cqes: Vec<Cqe> = Vec::with_capacity(256);
    let mut dirty: Vec<u32> = Vec::with_capacity(conns.len());
    let mut stuck_since: Option<Instant> = None;
    while !conns.iter().all(UConn::is_finished) {
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
        if cqes.is_empty() {
            for c in conns.iter_mut() {
                c.check_timeout(now, timeout);
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
