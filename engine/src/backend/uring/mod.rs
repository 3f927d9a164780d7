//! The io_uring backend: one ring per worker thread, created and used only by that thread,
//! serving many connections.
//!
//! - `mod.rs` (here): the opcode probe, ring setup with its flag fallbacks, and [`Ring`],
//!   the thin layer that pushes SQEs, enters the kernel and counts what that cost.
//! - `conn.rs`: one connection's operations over a [`crate::workload::Flow`].
//! - `client.rs`, `server.rs`: the client's ring per thread, the server's worker pool.
//!
//! Opcodes are probed once; a missing one is an error naming the opcode and the running
//! kernel, never a quiet fallback to another path.

mod client;
mod conn;
mod server;

use std::io;
use std::mem::size_of;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring, Submitter};

use crate::config::Mode;
use crate::error::{kernel_release, Error};
use crate::message::Region;
use crate::stats::{IoStats, RingSetup};

pub(crate) use client::run_client_thread;
pub(crate) use server::serve;

/// An opcode copyperf may use, and the first kernel that has it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpInfo {
    pub code: u8,
    pub name: &'static str,
    pub since: &'static str,
}

const SEND: OpInfo = OpInfo {
    code: opcode::Send::CODE,
    name: "IORING_OP_SEND",
    since: "5.6",
};
const RECV: OpInfo = OpInfo {
    code: opcode::Recv::CODE,
    name: "IORING_OP_RECV",
    since: "5.6",
};
const SENDMSG: OpInfo = OpInfo {
    code: opcode::SendMsg::CODE,
    name: "IORING_OP_SENDMSG",
    since: "5.3",
};
const RECVMSG: OpInfo = OpInfo {
    code: opcode::RecvMsg::CODE,
    name: "IORING_OP_RECVMSG",
    since: "5.3",
};
const READ: OpInfo = OpInfo {
    code: opcode::Read::CODE,
    name: "IORING_OP_READ",
    since: "5.6",
};
const SENDMSG_ZC: OpInfo = OpInfo {
    code: opcode::SendMsgZc::CODE,
    name: "IORING_OP_SENDMSG_ZC",
    since: "6.1",
};
const SEND_ZC: OpInfo = OpInfo {
    code: opcode::SendZc::CODE,
    name: "IORING_OP_SEND_ZC",
    since: "6.0",
};

/// The opcodes a mode needs (`None`: what every mode needs).
pub(crate) fn ops_for(mode: Option<Mode>) -> Vec<OpInfo> {
    let mut ops = vec![SEND, RECV, SENDMSG, RECVMSG, READ];
    match mode {
        Some(Mode::Zc) => ops.push(SENDMSG_ZC),
        Some(Mode::ZcFixed) => ops.push(SEND_ZC),
        _ => {}
    }
    ops
}

/// Fails with the first of `ops` that `supported` lacks, naming it and `kernel`.
pub(crate) fn require(
    ops: &[OpInfo],
    supported: impl Fn(u8) -> bool,
    kernel: &str,
) -> Result<(), Error> {
    match ops.iter().find(|op| !supported(op.code)) {
        None => Ok(()),
        Some(op) => Err(Error::Unsupported {
            feature: format!("io_uring opcode {}", op.name),
            kernel: kernel.to_owned(),
            hint: format!(
                "it needs Linux {} or later; use another --mode or --backend syscall",
                op.since
            ),
        }),
    }
}

/// The running kernel's opcode probe, taken once.
fn probe() -> Result<&'static [bool; 256], Error> {
    // The OS error number: io::Error is not Clone, and every caller gets its own Error.
    static PROBE: OnceLock<Result<[bool; 256], i32>> = OnceLock::new();
    let errno = |e: io::Error| e.raw_os_error().unwrap_or(libc::EIO);
    PROBE
        .get_or_init(|| {
            let ring = IoUring::new(PROBE_ENTRIES).map_err(errno)?;
            let mut probe = io_uring::Probe::new();
            ring.submitter().register_probe(&mut probe).map_err(errno)?;
            Ok(std::array::from_fn(|op| probe.is_supported(op as u8)))
        })
        .as_ref()
        .map_err(|&e| {
            ring_error(
                io::Error::from_raw_os_error(e),
                ring_memory(PROBE_ENTRIES, 2 * PROBE_ENTRIES),
            )
        })
}

/// Entries of the throwaway ring the opcode probe is taken on.
const PROBE_ENTRIES: u32 = 2;

/// Locked memory one ring's queues take (the kernel charges them to RLIMIT_MEMLOCK unless
/// the process holds CAP_IPC_LOCK): the completion ring with the submission index array,
/// and the submission entries, each rounded up to pages.
pub(crate) fn ring_memory(sq_entries: u32, cq_entries: u32) -> u64 {
    const RINGS_HEADER: u64 = 256;
    let page = crate::pool::page_size() as u64;
    let rings = RINGS_HEADER + 16 * u64::from(cq_entries) + 4 * u64::from(sq_entries);
    let sqes = 64 * u64::from(sq_entries);
    rings.next_multiple_of(page) + sqes.next_multiple_of(page)
}

/// Checks that the kernel has io_uring and the opcodes `mode` needs (`None`: any mode's
/// common opcodes).
pub(crate) fn check_kernel(mode: Option<Mode>) -> Result<(), Error> {
    let probe = probe()?;
    require(&ops_for(mode), |op| probe[op as usize], &kernel_release())
}

/// Registered buffers pin memory, charged to RLIMIT_MEMLOCK unless the process holds
/// CAP_IPC_LOCK. Checked before registering, so the error can say how much is needed.
pub(crate) fn check_memlock(needed: u64) -> Result<(), Error> {
    memlock_verdict(needed, memlock_limit(), has_cap_ipc_lock())
}

fn memlock_verdict(needed: u64, limit: Option<u64>, cap_ipc_lock: bool) -> Result<(), Error> {
    match limit {
        Some(limit) if !cap_ipc_lock && needed > limit => Err(Error::Memlock {
            what: "registered buffers".into(),
            needed,
            limit,
        }),
        _ => Ok(()),
    }
}

/// The soft RLIMIT_MEMLOCK; `None` when unlimited.
fn memlock_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } == 0;
    (ok && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// Submission entries of a server worker's ring, which serves many connections.
pub(crate) const SERVER_RING_INFLIGHT: usize = 512;

/// Checks that a server's `workers` rings fit in RLIMIT_MEMLOCK, before any is made.
pub(crate) fn check_server_rings(workers: usize) -> Result<(), Error> {
    let (sq, cq) = ring_sizes(SERVER_RING_INFLIGHT);
    check_ring_memlock(workers, sq, cq)
}

/// Checks that `rings` rings of `sq`/`cq` entries fit in RLIMIT_MEMLOCK, before any is made.
pub(crate) fn check_ring_memlock(rings: usize, sq: u32, cq: u32) -> Result<(), Error> {
    let needed = rings as u64 * ring_memory(sq, cq);
    match memlock_limit() {
        Some(limit) if !has_cap_ipc_lock() && needed > limit => Err(Error::Memlock {
            what: format!("{rings} io_uring ring(s) of {sq} submission entries"),
            needed,
            limit,
        }),
        _ => Ok(()),
    }
}

/// Whether CAP_IPC_LOCK is in this process's effective set.
fn has_cap_ipc_lock() -> bool {
    const CAP_IPC_LOCK: u32 = 14;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}

/// Builds a ring with the fastest setup flags the kernel takes: SINGLE_ISSUER +
/// DEFER_TASKRUN (completions run only when this thread asks), then COOP_TASKRUN, then
/// none. Returns the ring and the flags it got.
pub(crate) fn build_ring(sq_entries: u32, cq_entries: u32) -> Result<(IoUring, String), Error> {
    type Flags = &'static [&'static str];
    const ATTEMPTS: [Flags; 4] = [
        &["single_issuer", "defer_taskrun", "submit_all"],
        &["single_issuer", "coop_taskrun", "submit_all"],
        &["coop_taskrun"],
        &[],
    ];
    let mut last = None;
    for flags in ATTEMPTS {
        let mut b = IoUring::builder();
        b.setup_cqsize(cq_entries).setup_clamp();
        for f in flags {
            match *f {
                "single_issuer" => b.setup_single_issuer(),
                "defer_taskrun" => b.setup_defer_taskrun(),
                "coop_taskrun" => b.setup_coop_taskrun(),
                _ => b.setup_submit_all(),
            };
        }
        match b.build(sq_entries) {
            Ok(ring) => {
                if !ring.params().is_feature_ext_arg() {
                    return Err(Error::Unsupported {
                        feature: "IORING_FEAT_EXT_ARG (timed waits)".into(),
                        kernel: kernel_release(),
                        hint: "it needs Linux 5.11 or later".into(),
                    });
                }
                let name = if flags.is_empty() {
                    "none".to_owned()
                } else {
                    flags.join("+")
                };
                return Ok((ring, name));
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last = Some(e),
            Err(e) => return Err(ring_error(e, ring_memory(sq_entries, cq_entries))),
        }
    }
    Err(ring_error(
        last.expect("at least one attempt"),
        ring_memory(sq_entries, cq_entries),
    ))
}

/// Why a ring could not be made: ENOMEM is the locked-memory limit (named with what the
/// ring needs) unless memory is really short; anything else, io_uring is not available.
fn ring_error(e: io::Error, needed: u64) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOMEM) => match memlock_limit() {
            Some(limit) if !has_cap_ipc_lock() => Error::Memlock {
                what: "an io_uring ring's queues (with what other rings of this user hold)".into(),
                needed,
                limit,
            },
            _ => Error::io("io_uring_setup (out of memory)", e),
        },
        _ => Error::Unsupported {
            feature: "io_uring".into(),
            kernel: kernel_release(),
            hint: format!(
                "creating a ring failed ({e}); io_uring may be disabled \
                 (see /proc/sys/kernel/io_uring_disabled) or filtered by seccomp"
            ),
        },
    }
}

/// Provided buffers per ring, and their size: 4 MiB a ring.
const PBUF_ENTRIES: u16 = 128;
const PBUF_SIZE: u32 = 32 * 1024;

/// Most registered buffers a ring takes (IORING_MAX_REG_BUFFERS).
pub(crate) const MAX_FIXED_BUFFERS: u32 = 1 << 14;

/// Slots in a registered table (files or buffers), handed out as ranges.
#[derive(Debug)]
struct SlotTable {
    /// Free ranges (start, len).
    free: Vec<(u32, u32)>,
}

impl SlotTable {
    fn new(len: u32) -> SlotTable {
        SlotTable {
            free: vec![(0, len)],
        }
    }

    fn alloc(&mut self, n: u32) -> Option<u32> {
        let i = self.free.iter().position(|&(_, len)| len >= n)?;
        let (start, len) = self.free[i];
        if len == n {
            self.free.swap_remove(i);
        } else {
            self.free[i] = (start + n, len - n);
        }
        Some(start)
    }

    fn release(&mut self, start: u32, n: u32) {
        self.free.push((start, n));
    }
}

/// A ring of provided buffers (buffer group 0) that multishot receives fill. The kernel
/// picks a buffer per completion; copyperf copies the bytes out and gives it back.
pub(crate) struct BufRing {
    /// `entries` io_uring_buf entries; the tail lives in entry 0's reserved field.
    entries_mem: Arc<Region>,
    bufs: Arc<Region>,
    entries: u16,
    buf_size: u32,
    tail: u16,
}

/// The buffer group multishot receives use.
pub(crate) const BUF_GROUP: u16 = 0;

impl BufRing {
    fn new(submitter: &Submitter<'_>, entries: u16, buf_size: u32) -> Result<BufRing, Error> {
        let entries_mem = Region::new(entries as usize * size_of::<types::BufRingEntry>())
            .map_err(|e| Error::io("mapping the provided-buffer ring", e))?;
        let bufs = Region::new(entries as usize * buf_size as usize)
            .map_err(|e| Error::io("mapping provided buffers", e))?;
        // SAFETY: the entry memory stays mapped until the ring is unregistered in Drop.
        unsafe {
            submitter.register_buf_ring_with_flags(
                entries_mem.as_ptr() as u64,
                entries,
                BUF_GROUP,
                0,
            )
        }
        .map_err(|e| Error::Unsupported {
            feature: "io_uring provided-buffer rings (IORING_REGISTER_PBUF_RING)".into(),
            kernel: kernel_release(),
            hint: format!(
                "registration failed ({e}); it needs Linux 5.19 or later: use --uring-recv single"
            ),
        })?;
        let mut ring = BufRing {
            entries_mem,
            bufs,
            entries,
            buf_size,
            tail: 0,
        };
        for bid in 0..entries {
            ring.recycle(bid);
        }
        Ok(ring)
    }

    /// Bytes `off..len` of buffer `bid`, as the kernel filled it.
    pub fn chunk(&self, bid: u16, off: u32, len: u32) -> &[u8] {
        assert!(bid < self.entries && len <= self.buf_size && off <= len);
        // SAFETY: in bounds of the buffer region; the kernel wrote these bytes before
        // posting the completion, and will not touch the buffer until it is recycled.
        unsafe {
            std::slice::from_raw_parts(
                self.bufs
                    .as_ptr()
                    .add(bid as usize * self.buf_size as usize + off as usize),
                (len - off) as usize,
            )
        }
    }

    /// Gives buffer `bid` back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
        let base = self.entries_mem.as_ptr().cast::<types::BufRingEntry>();
        let index = (self.tail & (self.entries - 1)) as usize;
        // SAFETY: index < entries; entries the kernel has not been handed (tail onwards)
        // are ours to write.
        unsafe {
            let entry = &mut *base.add(index);
            entry.set_addr(
                self.bufs
                    .as_ptr()
                    .add(bid as usize * self.buf_size as usize) as u64,
            );
            entry.set_len(self.buf_size);
            entry.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail field of entry 0; a release store publishes the entry above.
        unsafe {
            let tail = types::BufRingEntry::tail(base) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

/// A ring split into its parts for the life of a worker, with what entering it cost.
pub(crate) struct Ring<'r> {
    submitter: Submitter<'r>,
    sq: squeue::SubmissionQueue<'r>,
    cq: cqueue::CompletionQueue<'r>,
    files: Option<SlotTable>,
    buffers: Option<SlotTable>,
    /// Provided buffers for multishot receives.
    pub pbuf: Option<BufRing>,
    pub io: IoStats,
    pub setup: RingSetup,
}

impl Drop for Ring<'_> {
    fn drop(&mut self) {
        if self.pbuf.is_some() {
            let _ = self.submitter.unregister_buf_ring(BUF_GROUP);
        }
    }
}

/// One reaped completion.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cqe {
    pub user_data: u64,
    pub res: i32,
    pub flags: u32,
}

impl<'r> Ring<'r> {
    /// Splits `ring` and registers what makes it fast where the kernel has it: the ring fd
    /// itself, a sparse table of `files` fixed files, and (zc-fixed) `buffers` fixed
    /// buffers and (`multishot`) a provided-buffer ring — those two required, the others
    /// recorded as used or not.
    pub fn new(
        ring: &'r mut IoUring,
        flags: String,
        files: u32,
        buffers: u32,
        multishot: bool,
    ) -> Result<Ring<'r>, Error> {
        let cqe_skip = ring.params().is_feature_skip_cqe_on_success();
        let (mut submitter, sq, cq) = ring.split();
        let pbuf = if multishot {
            Some(BufRing::new(&submitter, PBUF_ENTRIES, PBUF_SIZE)?)
        } else {
            None
        };
        let registered_ring = submitter.register_ring_fd().is_ok();
        let files = (files > 0 && submitter.register_files_sparse(files).is_ok())
            .then(|| SlotTable::new(files));
        let buffers = if buffers > 0 {
            submitter
                .register_buffers_sparse(buffers)
                .map_err(|e| memlock_or_io(e, "registering the fixed buffer table", 0))?;
            Some(SlotTable::new(buffers))
        } else {
            None
        };
        Ok(Ring {
            setup: RingSetup {
                flags,
                registered_ring,
                fixed_files: files.is_some(),
                fixed_buffers: buffers.is_some(),
                cqe_skip,
                recv: if pbuf.is_some() {
                    "multishot"
                } else {
                    "single"
                }
                .into(),
            },
            pbuf,
            submitter,
            sq,
            cq,
            files,
            buffers,
            io: IoStats::default(),
        })
    }

    /// Registers `fd` as a fixed file; `None` when the table is full or absent.
    pub fn add_file(&mut self, fd: RawFd) -> Option<u32> {
        let slot = self.files.as_mut()?.alloc(1)?;
        match self.submitter.register_files_update(slot, &[fd]) {
            Ok(_) => Some(slot),
            Err(_) => {
                self.files.as_mut().expect("checked").release(slot, 1);
                None
            }
        }
    }

    pub fn remove_file(&mut self, slot: u32) {
        let _ = self.submitter.register_files_update(slot, &[-1]);
        if let Some(t) = self.files.as_mut() {
            t.release(slot, 1);
        }
    }

    /// Registers `bufs` as consecutive fixed buffers; returns the first index.
    ///
    /// # Safety
    /// The memory the iovecs describe must stay mapped until [`Ring::remove_buffers`] (or
    /// the ring's end).
    pub unsafe fn add_buffers(&mut self, bufs: &[libc::iovec]) -> Result<u16, Error> {
        let n = bufs.len() as u32;
        let needed: u64 = bufs.iter().map(|b| b.iov_len as u64).sum();
        check_memlock(needed)?;
        let table = self
            .buffers
            .as_mut()
            .expect("a fixed buffer table for zc-fixed");
        let first = table.alloc(n).ok_or_else(|| {
            Error::Config(format!(
                "no room for {n} more registered buffers on this ring ({MAX_FIXED_BUFFERS} at most); lower --depth or connections"
            ))
        })?;
        // SAFETY: forwarded to the caller.
        if let Err(e) = unsafe { self.submitter.register_buffers_update(first, bufs, None) } {
            self.buffers.as_mut().expect("checked").release(first, n);
            return Err(memlock_or_io(e, "registering fixed buffers", needed));
        }
        Ok(first as u16)
    }

    pub fn remove_buffers(&mut self, first: u16, n: u32) {
        let empty = vec![
            libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0
            };
            n as usize
        ];
        // SAFETY: empty iovecs clear the slots; nothing is pointed at.
        let _ = unsafe {
            self.submitter
                .register_buffers_update(first as u32, &empty, None)
        };
        if let Some(t) = self.buffers.as_mut() {
            t.release(first as u32, n);
        }
    }

    /// Queues one SQE, flushing the queue to the kernel first when it is full.
    pub fn push(&mut self, entry: &squeue::Entry) -> Result<(), Error> {
        loop {
            // SAFETY: every entry copyperf builds points at buffers and argument structs
            // owned by a connection, which keeps them until the entry's completion.
            if unsafe { self.sq.push(entry) }.is_ok() {
                return Ok(());
            }
            self.sq.sync();
            self.io.enters += 1;
            let n = self
                .submitter
                .submit()
                .map_err(|e| Error::io("io_uring_enter (submit)", e))?;
            self.io.sqes += n as u64;
        }
    }

    /// Submits what is queued and waits for at least `want` completions or `timeout`.
    pub fn submit_and_wait(&mut self, want: usize, timeout: Duration) -> Result<(), Error> {
        self.sq.sync();
        let ts = types::Timespec::new()
            .sec(timeout.as_secs())
            .nsec(timeout.subsec_nanos());
        let args = types::SubmitArgs::new().timespec(&ts);
        self.io.enters += 1;
        match self.submitter.submit_with_args(want.max(1), &args) {
            Ok(n) => {
                self.io.sqes += n as u64;
                Ok(())
            }
            Err(e) => match e.raw_os_error() {
                Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) => {
                    // Timed out, interrupted, or completions to reap first. Anything not
                    // taken stays queued for the next enter.
                    Ok(())
                }
                _ => Err(Error::io("io_uring_enter", e)),
            },
        }
    }

    /// Moves every ready completion into `out`; counts a reap when there was any.
    pub fn reap(&mut self, out: &mut Vec<Cqe>) {
        out.clear();
        self.cq.sync();
        out.extend(self.cq.by_ref().map(|c| Cqe {
            user_data: c.user_data(),
            res: c.result(),
            flags: c.flags(),
        }));
        // Publish the new head now: a wait for N completions counts the ones the kernel
        // believes unread, so a stale head makes the next wait return at once, empty.
        self.cq.sync();
        if !out.is_empty() {
            self.io.reaps += 1;
            self.io.cqes += out.len() as u64;
        }
    }
}

fn memlock_or_io(e: io::Error, what: &str, needed: u64) -> Error {
    if e.raw_os_error() == Some(libc::ENOMEM) && needed > 0 {
        return Error::Memlock {
            what: "registered buffers".into(),
            needed,
            limit: memlock_limit().unwrap_or(u64::MAX),
        };
    }
    Error::io(what, e)
}

/// Ring sizes for `inflight` operations that may each post two completions.
pub(crate) fn ring_sizes(inflight: usize) -> (u32, u32) {
    let sq = (inflight.next_power_of_two() as u32).clamp(64, 4096);
    let cq = ((2 * inflight + 64).next_power_of_two() as u32).clamp(2 * sq, 65536);
    (sq, cq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_opcode_is_named_with_the_kernel() {
        let ops = ops_for(Some(Mode::Zc));
        let e = require(&ops, |op| op != SENDMSG_ZC.code, "5.15.0-test").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("IORING_OP_SENDMSG_ZC"), "{text}");
        assert!(
            text.contains("5.15.0-test") && text.contains("Linux 6.1"),
            "{text}"
        );
        assert_eq!(e.exit_code(), crate::error::exit::UNSUPPORTED);
        let e = require(
            &ops_for(Some(Mode::ZcFixed)),
            |op| op != SEND_ZC.code,
            "5.19",
        )
        .unwrap_err();
        assert!(e.to_string().contains("IORING_OP_SEND_ZC") && e.to_string().contains("6.0"));
        assert!(require(
            &ops_for(Some(Mode::OneCopy)),
            |op| op != SEND_ZC.code,
            "5.19"
        )
        .is_ok());
    }

    #[test]
    fn this_kernel_has_what_every_mode_needs() {
        for mode in Mode::ALL {
            check_kernel(Some(*mode)).unwrap_or_else(|e| panic!("{mode}: {e}"));
        }
    }

    #[test]
    fn memlock_shortfall_says_how_much_is_needed() {
        let e = memlock_verdict(1 << 20, Some(65536), false).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("1048576") && text.contains("65536"), "{text}");
        assert!(text.contains("ulimit -l 1024"), "{text}");
        assert!(memlock_verdict(1 << 20, Some(65536), true).is_ok());
        assert!(memlock_verdict(1 << 20, None, false).is_ok());
        assert!(memlock_verdict(100, Some(65536), false).is_ok());
    }

    #[test]
    fn slot_tables_hand_out_disjoint_ranges() {
        let mut t = SlotTable::new(10);
        let a = t.alloc(4).unwrap();
        let b = t.alloc(6).unwrap();
        assert_eq!((a, b), (0, 4));
        assert!(t.alloc(1).is_none());
        t.release(a, 4);
        assert_eq!(t.alloc(3), Some(0));
    }

    #[test]
    fn ring_setup_falls_back_and_reports_its_flags() {
        let (ring, flags) = build_ring(64, 256).unwrap();
        assert!(ring.params().sq_entries() >= 64);
        assert!(!flags.is_empty());
    }
}
