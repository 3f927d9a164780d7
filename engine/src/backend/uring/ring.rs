//! [`Ring`]: a ring split into its parts for the life of a worker, the thin layer that
//! pushes SQEs, enters the kernel, reaps completions, registers files and buffers, and
//! counts what all that cost.

use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::types::Napi;
use io_uring::{cqueue, squeue, types, IoUring, Submitter};

use super::bufring::{BufRing, BUF_GROUP, PBUF_ENTRIES, PBUF_SIZE};
use super::setup::{check_memlock, memlock_or_io};
use super::slots::SlotTable;
use super::MAX_FIXED_BUFFERS;
use crate::error::Error;
use crate::polling::{BusyPoll, SqPollGrant};
use crate::sqthread::SqThread;
use crate::stats::{IoStats, RingSetup};
use crate::vocab::{SetupFlags, UringRecv};

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
    /// The SQ polling thread (`--sqpoll`), whose CPU time its owner's readings include.
    /// Declared last: the ring's other parts are dropped first, its thread's last reading
    /// is kept as the ring goes.
    sq_thread: Option<SqThread>,
}

/// What a ring polls instead of waiting: its SQ thread as set up, and NAPI busy polling.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Polling {
    pub sqpoll: Option<SqPollGrant>,
    pub busy_poll_us: Option<u32>,
}

impl Drop for Ring<'_> {
    fn drop(&mut self) {
        if self.pbuf.is_some() {
            let _ = self.submitter.unregister_buf_ring(BUF_GROUP);
        }
    }
}

/// Registers NAPI busy polling of `us` µs on the ring (IORING_REGISTER_NAPI, dynamic
/// tracking: the kernel polls the NAPI contexts of the sockets the ring waits on) and reads
/// back what the kernel holds: a registration writes the previous settings back, so a
/// second, identical one reports the first's.
fn register_napi(submitter: &Submitter<'_>, us: u32) -> Result<BusyPoll, Error> {
    let ask = || {
        Napi::new()
            .set_busy_poll_timeout(us)
            .set_prefer_busy_poll(true)
    };
    let refused = |e: std::io::Error| {
        let why = crate::polling::errno_text(&e);
        Error::Unsupported {
            feature: "IORING_REGISTER_NAPI (--busy-poll on the uring engine)".into(),
            kernel: crate::error::kernel_release(),
            hint: format!(
                "registering NAPI busy polling on the ring was refused ({why}): it needs Linux                  6.9 built with CONFIG_NET_RX_BUSY_POLL"
            ),
        }
    };
    submitter.register_napi(&mut ask()).map_err(refused)?;
    let mut held = ask();
    submitter.register_napi(&mut held).map_err(refused)?;
    Ok(BusyPoll {
        via: "IORING_REGISTER_NAPI".into(),
        requested_us: us,
        granted_us: held.busy_poll_timeout(),
        prefer: held.prefer_busy_poll(),
        prefer_refused: None,
        napi_id: None,
    })
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
        flags: SetupFlags,
        polling: Polling,
        files: u32,
        buffers: u32,
        multishot: bool,
    ) -> Result<Ring<'r>, Error> {
        let cqe_skip = ring.params().is_feature_skip_cqe_on_success();
        let sq_thread = match polling.sqpoll {
            Some(_) => Some(crate::sqthread::adopt()?),
            None => None,
        };
        let (mut submitter, sq, cq) = ring.split();
        let busy_poll = match polling.busy_poll_us {
            Some(us) => Some(register_napi(&submitter, us)?),
            None => None,
        };
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
                poll_first: super::probe::has_poll_first(),
                recv: if pbuf.is_some() {
                    UringRecv::Multishot
                } else {
                    UringRecv::Single
                },
                sqpoll: polling.sqpoll,
                busy_poll,
            },
            sq_thread,
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
            .ok_or_else(|| Error::Internal("a fixed buffer on a ring without a table".into()))?;
        let first = table.alloc(n).ok_or_else(|| {
            Error::Resource(format!(
                "no room for {n} more registered buffers on this ring ({MAX_FIXED_BUFFERS} at most, \
                 shared by its connections); lower --depth or the connections per ring"
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

    /// The longest linked chain [`Ring::reserve`] guarantees room for.
    pub fn max_chain(&self) -> usize {
        (self.sq.capacity() / 2).max(1)
    }

    /// Makes room for `n` SQEs that must reach the kernel in one submission (a linked
    /// chain: split over two, its second half would run on its own and could overtake
    /// the first). Flushes what is queued when there is not room enough.
    pub fn reserve(&mut self, n: usize) -> Result<(), Error> {
        if n > self.sq.capacity() {
            return Err(Error::Internal(format!(
                "a chain of {n} SQEs on a ring of {}",
                self.sq.capacity()
            )));
        }
        self.sq.sync();
        while self.sq.capacity() - self.sq.len() < n {
            self.flush()?;
            self.sq.sync();
        }
        Ok(())
    }

    fn sqpoll(&self) -> bool {
        self.sq_thread.is_some()
    }

    /// Hands what is queued to the kernel without waiting for completions. With SQPOLL the
    /// SQ thread takes entries as soon as their tail is published, and only a sleeping one
    /// (IORING_SQ_NEED_WAKEUP) needs an io_uring_enter to wake it; an awake one that has
    /// not yet made room is waited for in the kernel (IORING_ENTER_SQ_WAIT). Every enter
    /// is counted.
    fn flush(&mut self) -> Result<(), Error> {
        self.sq.sync();
        self.io.enters += 1;
        if self.sqpoll() {
            if self.sq.need_wakeup() {
                self.io.sq_wakeups += 1;
                self.submitter
                    .submit()
                    .map_err(|e| Error::io("io_uring_enter (waking the SQ thread)", e))?;
            } else {
                self.submitter
                    .squeue_wait()
                    .map_err(|e| Error::io("io_uring_enter (waiting for SQ room)", e))?;
            }
            return Ok(());
        }
        let n = self
            .submitter
            .submit()
            .map_err(|e| Error::io("io_uring_enter (submit)", e))?;
        self.io.sqes += n as u64;
        Ok(())
    }

    /// Queues one SQE, flushing the queue to the kernel first when it is full. A chain's
    /// members must have been [`Ring::reserve`]d first.
    pub fn push(&mut self, entry: &squeue::Entry) -> Result<(), Error> {
        loop {
            // SAFETY: every entry copyperf builds points at buffers and argument structs
            // owned by a connection, which keeps them until the entry's completion.
            if unsafe { self.sq.push(entry) }.is_ok() {
                // With SQPOLL no enter reports what it submitted: an SQE counts as
                // submitted once queued, for the SQ thread takes every one.
                if self.sqpoll() {
                    self.io.sqes += 1;
                }
                return Ok(());
            }
            self.flush()?;
        }
    }

    /// Submits what is queued and waits for at least `want` completions or `timeout`.
    /// With SQPOLL the wait is still an io_uring_enter (GETEVENTS), which also wakes the
    /// SQ thread if it sleeps.
    pub fn submit_and_wait(&mut self, want: usize, timeout: Duration) -> Result<(), Error> {
        self.sq.sync();
        let ts = types::Timespec::new()
            .sec(timeout.as_secs())
            .nsec(timeout.subsec_nanos());
        let args = types::SubmitArgs::new().timespec(&ts);
        self.io.enters += 1;
        if self.sqpoll() && self.sq.need_wakeup() {
            self.io.sq_wakeups += 1;
        }
        match self.submitter.submit_with_args(want.max(1), &args) {
            Ok(n) => {
                if !self.sqpoll() {
                    self.io.sqes += n as u64;
                }
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
