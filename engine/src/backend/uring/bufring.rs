//! A ring of provided buffers (buffer group 0) that multishot receives fill: the kernel
//! picks a buffer per completion; copyperf copies the bytes out and gives it back.

use std::mem::size_of;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use io_uring::{types, Submitter};

use crate::error::{kernel_release, Error};
use crate::message::Region;

/// Provided buffers per ring, and their size: 4 MiB a ring.
pub(crate) const PBUF_ENTRIES: u16 = 128;
pub(crate) const PBUF_SIZE: u32 = 32 * 1024;

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
    pub fn new(submitter: &Submitter<'_>, entries: u16, buf_size: u32) -> Result<BufRing, Error> {
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
