//! A connection's message buffers.
//!
//! A buffer leaves the pool for a send or a receive and comes back only when nobody else
//! can touch it any more: after the send returned (copying modes), after the kernel said
//! it is done with the pages (zero-copy), after the received message was checked. An
//! empty pool therefore means "wait for completions", never "allocate more".
//!
//! A client keeps the buffers it sends from apart from the one it receives into, so bytes
//! that arrived damaged can never go out again in a later message. A server echoes what it
//! received, so its buffers serve both ways (and a damaged one is restored before the echo).

use std::sync::Arc;

use crate::config::Backend;
use crate::message::{Message, Region, Template, FIELDS};
use crate::path::path;
use crate::vocab::Role;
use crate::vocab::{Mode, Workload};

/// What a connection's pool holds, worked out before anything is allocated: the memory
/// budget charges exactly this, and the pool is built from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolPlan {
    /// Message size in bytes.
    pub size: usize,
    /// Buffers to send from (client) — slots `0..tx`.
    pub tx: usize,
    /// Buffers to receive into — slots `tx..tx + rx`.
    pub rx: usize,
    /// Each buffer also carries a contiguous wire buffer (two-copy).
    pub wire: bool,
    /// The fields live in one page-aligned region, `stride` bytes a message (zc-fixed;
    /// sendfile and splice, where the region is a memfd).
    pub stride: Option<usize>,
    /// The region is a shared memfd mapping (its page cache is what sendfile and splice
    /// send), with a pipe that holds a whole message.
    pub file: bool,
}

impl PoolPlan {
    /// The pool one side of a connection needs: `depth` messages in flight plus as many
    /// again that the kernel may still hold for zero-copy, plus one to receive into. A
    /// side that sends by reference (sendfile, splice) or by zero-copy on io_uring (zc,
    /// zc-fixed) holds a ring of send buffers sized in bytes instead ([`file_ring`],
    /// [`zc_ring`]; the zero-copy ring only for a stream, where the notifications, paced
    /// by ACKs, would otherwise hold the sender back: an echo's reply brings the ACK with
    /// it, and `2 × depth` buffers do, without pinning 4 MiB of registered memory).
    pub fn new(
        backend: Backend,
        workload: Workload,
        role: Role,
        mode: Mode,
        size: usize,
        depth: usize,
    ) -> PoolPlan {
        let total = pool_size(depth);
        let file = path(mode).file;
        let (tx, rx) = match role {
            Role::Client if file => (file_ring(size, depth), 1),
            Role::Client
                if path(mode).zero_copy
                    && backend == Backend::Uring
                    && workload == Workload::Stream =>
            {
                (zc_ring(size, depth), 1)
            }
            Role::Client => (total - 1, 1),
            Role::Server => (0, total),
        };
        let stride = if path(mode).fixed {
            Some(size.next_multiple_of(page_size()))
        } else if file {
            Some(file_stride(size))
        } else {
            None
        };
        PoolPlan {
            size,
            tx,
            rx,
            wire: path(mode).wire,
            stride,
            file,
        }
    }

    /// Buffers in all.
    pub fn count(&self) -> usize {
        self.tx + self.rx
    }

    /// Bytes the pool allocates, and the template beside it: payloads, and what each
    /// buffer costs beyond them (see [`BUFFER_OVERHEAD`]), so that a hello asking for many
    /// tiny messages is charged what it really takes.
    pub fn bytes(&self) -> u64 {
        let (fields, allocations) = match self.stride {
            Some(stride) => (stride as u64, 0),
            None => (self.size as u64, FIELDS as u64),
        };
        let wire = if self.wire { self.size as u64 } else { 0 };
        let per_buffer = fields
            + wire
            + BUFFER_OVERHEAD
            + MALLOC_OVERHEAD * (allocations + u64::from(self.wire));
        self.count() as u64 * per_buffer + Template::allocated_bytes(self.size)
    }
}

/// What one buffer costs beyond its payload, whichever backend runs it: the message
/// struct and its boxed array of field pointers (each with its allocation header), and
/// the per-slot state a backend keeps beside it (io_uring's msghdr and iovec block, its
/// in-kernel table entry). Measured RSS per buffer stays below this plus the payload.
pub const BUFFER_OVERHEAD: u64 = 640;
/// The allocator's header and rounding on each separate allocation (a field, a wire
/// buffer).
const MALLOC_OVERHEAD: u64 = 32;

/// The buffers one connection owns.
pub struct Pool {
    // Boxed: a message keeps its address while the kernel holds pointers into it.
    #[allow(clippy::vec_box)]
    tx: Vec<Box<Message>>,
    #[allow(clippy::vec_box)]
    rx: Vec<Box<Message>>,
    /// Slots below this are send buffers.
    split: u16,
    capacity: usize,
    /// The memfd region the messages live in (sendfile, splice).
    file: Option<Arc<Region>>,
}

impl Pool {
    /// Heap messages as `plan` says; two-copy ones carry a wire buffer.
    pub fn heap(template: &Template, plan: &PoolPlan) -> Pool {
        debug_assert!(plan.stride.is_none(), "a fixed plan needs a region");
        let messages = (0..plan.count())
            .map(|slot| Message::heap(template, plan.wire, slot as u16))
            .collect();
        Pool::split(messages, plan)
    }

    /// Messages laid out back to back in one page-aligned region, `plan.stride` apart, for
    /// registration as fixed buffers (their buffer indices are set by [`Pool::register`]),
    /// or in a memfd's shared mapping when the plan says `file`.
    pub fn fixed(
        template: &Template,
        plan: &PoolPlan,
    ) -> Result<(Pool, Arc<Region>), crate::error::Error> {
        let stride = plan.stride.expect("a fixed plan");
        let len = (stride * plan.count()).next_multiple_of(page_size());
        let region = if plan.file {
            // Page-aligned messages touch size / page pages; packed small ones up to two more.
            let pipe = if stride % page_size() == 0 {
                plan.size.next_multiple_of(page_size())
            } else {
                plan.size + 2 * page_size()
            };
            Region::memfd(len, Some(pipe))?
        } else {
            Region::new(len).map_err(|e| crate::error::Error::io("mapping fixed buffers", e))?
        };
        let messages = (0..plan.count())
            .map(|i| Message::fixed(template, region.clone(), i * stride, 0, i as u16))
            .collect();
        let mut pool = Pool::split(messages, plan);
        if plan.file {
            pool.file = Some(region.clone());
        }
        Ok((pool, region))
    }

    #[allow(clippy::vec_box)]
    fn split(mut messages: Vec<Box<Message>>, plan: &PoolPlan) -> Pool {
        let rx = messages.split_off(plan.tx);
        Pool {
            tx: messages,
            rx,
            split: plan.tx as u16,
            capacity: plan.count(),
            file: None,
        }
    }

    /// Gives every message its registered buffer index: slot `i` is buffer `first + i`.
    pub fn register(&mut self, first: u16) {
        for m in self.tx.iter_mut().chain(self.rx.iter_mut()) {
            let slot = m.slot();
            m.set_fixed_index(first + slot);
        }
    }

    /// A free buffer to send from, if any (a server sends what it received instead).
    pub fn take_tx(&mut self) -> Option<Box<Message>> {
        self.tx.pop()
    }

    /// A free buffer to receive into, if any.
    pub fn take_rx(&mut self) -> Option<Box<Message>> {
        self.rx.pop()
    }

    /// Returns a buffer nobody else holds any more, to the side it came from.
    pub fn put(&mut self, msg: Box<Message>) {
        debug_assert!(
            self.tx.len() + self.rx.len() < self.capacity,
            "more buffers returned than taken"
        );
        if msg.slot() < self.split {
            self.tx.push(msg);
        } else {
            self.rx.push(msg);
        }
    }

    /// The page cache the messages live in (sendfile, splice).
    pub fn page_cache(&self) -> Option<&crate::pagecache::PageCache> {
        self.file.as_deref().and_then(Region::page_cache)
    }

    /// Buffers in all, free or not.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Free buffers, both sides.
    pub fn available(&self) -> usize {
        self.tx.len() + self.rx.len()
    }

    /// Free send buffers.
    pub fn available_tx(&self) -> usize {
        self.tx.len()
    }

    /// True when every buffer is back: nothing is in flight or held by the kernel.
    pub fn all_home(&self) -> bool {
        self.available() == self.capacity
    }
}

/// Where messages start in a memfd region: cache-line aligned, packed, below a page
/// (pages may be shared between neighbours; each message is still only ever written by
/// its owner); page-aligned from a page up, so a message touches as few pages — pipe
/// slots — as it can.
const FILE_ALIGN: usize = 64;

fn file_stride(size: usize) -> usize {
    if size >= page_size() {
        size.next_multiple_of(page_size())
    } else {
        size.next_multiple_of(FILE_ALIGN)
    }
}

/// What a sendfile or splice client's ring of send buffers holds at most, in bytes: the
/// kernel may still read a region until the peer has read what was sent from it, so the
/// ring holds enough to keep the socket busy while that proof is on its way.
const FILE_RING_BYTES: usize = 4 << 20;

/// A sendfile or splice client's send buffers: enough for [`FILE_RING_BYTES`], at least
/// `2 × depth`, at most 1024.
pub fn file_ring(size: usize, depth: usize) -> usize {
    (FILE_RING_BYTES / file_stride(size))
        .min(1024)
        .max(2 * depth)
}

/// What a zero-copy sender's ring of send buffers holds at most, in bytes. A zero-copy
/// send's buffer comes back only with its notification, and TCP sends that only once the
/// peer has acknowledged every segment holding its pages (the copy made at local delivery
/// on loopback and veth does not end the kernel's hold: the sender's retransmit queue keeps
/// the pages until the ACK). A copying sender may meanwhile leave up to its send buffer in
/// the socket (`tcp_wmem`'s default maximum is 4 MiB); a zero-copy sender with only
/// `2 × depth` buffers stalled on ACK latency instead (small sends: each then went out as a
/// segment of its own, at a tenth or less of one-copy's rate). So the ring covers as much as
/// the socket would hold.
const ZC_RING_BYTES: usize = 4 << 20;

/// An io_uring zero-copy sender's send buffers: enough for [`ZC_RING_BYTES`], at least
/// `2 × depth` (depth sends in flight plus as many awaiting their notification), at most
/// 1024. The syscall engine's MSG_ZEROCOPY sender keeps `2 × depth`: each of its calls
/// holds socket option memory (`optmem_max`) until completion, so a deeper ring would meet
/// ENOBUFS sooner, and its blocking sends would end in partial calls.
pub fn zc_ring(size: usize, depth: usize) -> usize {
    (ZC_RING_BYTES / size.max(1)).min(1024).max(2 * depth)
}

/// In a sendfile or splice stream, the receiver sends one receipt byte per this many
/// messages it has read: half the sender's ring, so the sender never waits on a receipt
/// while it has half a ring to send.
pub fn receipt_interval(size: usize, depth: usize) -> u64 {
    (file_ring(size, depth) as u64 / 2).max(1)
}

/// How many buffers a connection needs: `depth` in flight plus as many again that the
/// kernel may still hold for zero-copy, plus one to receive into.
pub fn pool_size(depth: usize) -> usize {
    2 * depth + 1
}

pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Layout;

    #[test]
    fn buffers_come_and_go_to_their_own_side() {
        let t = Template::new(Layout::new(256));
        let plan = PoolPlan::new(
            Backend::Uring,
            Workload::Stream,
            Role::Client,
            Mode::TwoCopy,
            256,
            1,
        );
        assert_eq!((plan.tx, plan.rx), (2, 1));
        let mut pool = Pool::heap(&t, &plan);
        assert!(pool.all_home());
        let a = pool.take_tx().unwrap();
        assert_eq!(a.wire().len(), 256);
        let b = pool.take_tx().unwrap();
        assert!(
            pool.take_tx().is_none(),
            "the receive buffer is not lent out to send"
        );
        let r = pool.take_rx().unwrap();
        assert!(pool.take_rx().is_none());
        assert_ne!(a.slot(), b.slot());
        pool.put(r);
        assert!(
            pool.take_tx().is_none(),
            "a received buffer goes back to the receive side"
        );
        pool.put(a);
        assert!(!pool.all_home());
        pool.put(b);
        assert!(pool.all_home());
        let server = PoolPlan::new(
            Backend::Uring,
            Workload::Stream,
            Role::Server,
            Mode::OneCopy,
            256,
            1,
        );
        let mut pool = Pool::heap(&t, &server);
        assert!(pool.take_tx().is_none());
        assert!(pool.take_rx().unwrap().wire().is_empty());
    }

    #[test]
    fn a_plan_charges_what_its_pool_allocates() {
        let extra = |allocs: u64| BUFFER_OVERHEAD + allocs * MALLOC_OVERHEAD;
        let two = PoolPlan::new(
            Backend::Uring,
            Workload::Stream,
            Role::Server,
            Mode::TwoCopy,
            1 << 20,
            255,
        );
        // 511 messages of 1 MiB fields + 1 MiB wire, and the 2 MiB template pair.
        assert_eq!(two.bytes(), 511 * ((2 << 20) + extra(9)) + (2 << 20));
        let one = PoolPlan::new(
            Backend::Uring,
            Workload::Stream,
            Role::Server,
            Mode::OneCopy,
            1 << 20,
            255,
        );
        assert_eq!(one.bytes(), 511 * ((1 << 20) + extra(8)) + (2 << 20));
        let fixed = PoolPlan::new(
            Backend::Uring,
            Workload::Stream,
            Role::Server,
            Mode::ZcFixed,
            100,
            1,
        );
        assert_eq!(fixed.bytes(), 3 * (page_size() as u64 + extra(0)) + 200);
        // A zero-copy sender: a 4 MiB ring, page-aligned when registered (zc-fixed).
        let zc = PoolPlan::new(
            Backend::Uring,
            Workload::Stream,
            Role::Client,
            Mode::ZcFixed,
            16 << 10,
            8,
        );
        assert_eq!((zc.tx, zc.rx, zc.stride), (256, 1, Some(16 << 10)));
        assert_eq!(zc.bytes(), 257 * ((16 << 10) + extra(0)) + (32 << 10));
        let zc = PoolPlan::new(
            Backend::Uring,
            Workload::Stream,
            Role::Client,
            Mode::Zc,
            1024,
            8,
        );
        assert_eq!((zc.tx, zc.rx), (1024, 1), "capped");
        let zc = PoolPlan::new(
            Backend::Uring,
            Workload::Stream,
            Role::Client,
            Mode::Zc,
            1 << 20,
            8,
        );
        assert_eq!(zc.tx, 16, "never below 2 × depth");
        // An echo's zero-copy sender keeps 2 × depth: each reply brings its ACK.
        let echo = PoolPlan::new(
            Backend::Uring,
            Workload::Echo,
            Role::Client,
            Mode::ZcFixed,
            1024,
            8,
        );
        assert_eq!((echo.tx, echo.rx), (16, 1));
        // MSG_ZEROCOPY (syscall) keeps 2 × depth: see `zc_ring`.
        let zc = PoolPlan::new(
            Backend::Syscall,
            Workload::Stream,
            Role::Client,
            Mode::Zc,
            1024,
            8,
        );
        assert_eq!((zc.tx, zc.rx), (16, 1));
        // Tiny messages are charged what they take, not their 64 payload bytes.
        let tiny = PoolPlan::new(
            Backend::Uring,
            Workload::Stream,
            Role::Server,
            Mode::OneCopy,
            64,
            1024,
        );
        assert!(tiny.bytes() / tiny.count() as u64 > 700, "{}", tiny.bytes());
        // A page-cache client: a 4 MiB ring of page-aligned regions, charged as mapped.
        let file = PoolPlan::new(
            Backend::Uring,
            Workload::Stream,
            Role::Client,
            Mode::Splice,
            64 << 10,
            4,
        );
        assert_eq!((file.tx, file.rx, file.stride), (64, 1, Some(64 << 10)));
        assert_eq!(file.bytes(), 65 * ((64 << 10) + extra(0)) + (128 << 10));
        assert_eq!(receipt_interval(64 << 10, 4), 32);
        let small = PoolPlan::new(
            Backend::Uring,
            Workload::Stream,
            Role::Client,
            Mode::Sendfile,
            1000,
            1,
        );
        assert_eq!(
            (small.tx, small.stride),
            (1024, Some(1024)),
            "packed, capped"
        );
        let deep = PoolPlan::new(
            Backend::Uring,
            Workload::Stream,
            Role::Client,
            Mode::Sendfile,
            1 << 20,
            8,
        );
        assert_eq!(deep.tx, 16, "never below 2 × depth");
        let server = PoolPlan::new(
            Backend::Uring,
            Workload::Stream,
            Role::Server,
            Mode::Splice,
            64 << 10,
            4,
        );
        assert_eq!((server.tx, server.rx), (0, 9));
        let t = Template::new(Layout::new(100));
        let (pool, region) = Pool::fixed(&t, &fixed).unwrap();
        assert_eq!(region.len(), 3 * page_size());
        assert_eq!(pool.available(), 3);
    }
}
