//! The CPU time of io_uring SQ polling threads, counted as their owner's.
//!
//! A ring set up with IORING_SETUP_SQPOLL gets a kernel thread that polls its submission
//! queue: `iou-sqp-<tid>`, where tid is the thread that created the ring, inside the
//! process's thread group. It spins while there is work (and for `sq_thread_idle` after),
//! so a per-byte figure that left it out would hide what SQ polling costs. It cannot read
//! its own time (getrusage(RUSAGE_THREAD) reads the caller), so its owner reads it: the
//! thread CPU clock of its tid (clock_gettime on the CPU clock of a thread in the same
//! thread group, the scheduler's exact runtime in ns — what /proc/self/task/<tid>/schedstat
//! shows first).
//!
//! Each worker thread registers the SQ threads of the rings it creates here (a thread-local
//! list), and every [`crate::cputime::ThreadClock::now`] on that thread adds their time
//! in: the readings taken at the start line and the end of the flows then cover the SQ
//! threads over the same interval, whoever takes them. When a ring goes, its SQ thread's
//! last reading is kept (it exits with the ring), so readings never go backwards.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use crate::error::Error;

/// An SQ thread's tid, registered on its owner's thread for the life of its ring.
#[derive(Debug)]
pub(crate) struct SqThread {
    tid: libc::pid_t,
}

#[derive(Default)]
struct Owned {
    /// Live SQ threads of this thread's rings.
    live: Vec<libc::pid_t>,
    /// Time of SQ threads whose rings are gone, as last read.
    retired_ns: u64,
    /// SQ threads ever registered here.
    threads: u32,
}

thread_local! {
    static OWNED: RefCell<Owned> = RefCell::new(Owned::default());
}

/// The SQ threads' cumulative CPU time on this thread: ns, and how many there were;
/// `None` when this thread never made an SQPOLL ring.
pub(crate) fn reading() -> Option<(u64, u32)> {
    OWNED.with(|o| {
        let o = o.borrow();
        (o.threads > 0).then(|| {
            let live: u64 = o.live.iter().filter_map(|&t| cpu_ns(t)).sum();
            (o.retired_ns + live, o.threads)
        })
    })
}

/// The CPU time of thread `tid` of this process so far, ns; `None` once it has exited.
pub(crate) fn cpu_ns(tid: libc::pid_t) -> Option<u64> {
    // The clock id of a thread's CPU clock (the kernel's MAKE_THREAD_CPUCLOCK(tid,
    // CPUCLOCK_SCHED)): the kernel reads it for any thread of the caller's thread group.
    let clock = ((!tid) << 3) | 4 | 2;
    // SAFETY: clock_gettime writes one timespec, which is plain data.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out pointer; an invalid clock id is an error return.
    if unsafe { libc::clock_gettime(clock as libc::clockid_t, &mut ts) } != 0 {
        return None;
    }
    Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

fn gettid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Threads of this process named `comm`, from /proc/self/task/*/comm.
fn threads_named(comm: &str) -> Vec<libc::pid_t> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let tid: libc::pid_t = e.file_name().to_str()?.parse().ok()?;
        let name = std::fs::read_to_string(e.path().join("comm")).ok()?;
        (name.trim_end() == comm).then_some(tid)
    })
    .collect()
}

/// Finds the SQ thread of the ring this thread has just created and registers it. The
/// kernel names the thread as it starts, which may be a moment after the ring exists, so
/// the search is retried for up to 5 s (a loaded machine may take a while to run it); not
/// found, it is an error (the run would otherwise leave a CPU's worth of polling out of
/// its figures).
pub(crate) fn adopt() -> Result<SqThread, Error> {
    let comm = format!("iou-sqp-{}", gettid());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let known = OWNED.with(|o| o.borrow().live.clone());
        if let Some(&tid) = threads_named(&comm).iter().find(|t| !known.contains(t)) {
            OWNED.with(|o| {
                let mut o = o.borrow_mut();
                o.live.push(tid);
                o.threads += 1;
            });
            return Ok(SqThread { tid });
        }
        if Instant::now() > deadline {
            return Err(Error::Internal(format!(
                "the ring's SQ polling thread ({comm}) did not appear under /proc/self/task, \
                 so its CPU time could not be counted"
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

impl Drop for SqThread {
    /// The ring is going: keep the thread's last reading (it exits with the ring).
    fn drop(&mut self) {
        let last = cpu_ns(self.tid).unwrap_or(0);
        let _ = OWNED.try_with(|o| {
            let mut o = o.borrow_mut();
            o.live.retain(|&t| t != self.tid);
            o.retired_ns += last;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_threads_cpu_clock_reads_by_tid() {
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(20) {
            std::hint::black_box(0);
        }
        assert!(cpu_ns(gettid()).unwrap() > 0);
        assert_eq!(cpu_ns(-5), None, "no such thread: no reading, not 0");
        assert_eq!(reading(), None, "no SQPOLL ring on this thread");
    }
}
