//! The 8-field message: layout, fill, stamp, (de)serialize, verify.
//!
//! A message is the seed's `struct { char *field[8]; }`: eight separately allocated fields
//! that together hold `size` bytes, the last taking the remainder. Every field opens with
//! an 8-byte tag derived from the message's sequence number and the field's index; the
//! rest of every field is a fixed pattern that depends only on the byte's offset in the
//! message. A receiver therefore catches a lost, repeated or reordered message (tags), a
//! misplaced chunk (pattern), and a buffer written while the kernel still owned it (tags).
//!
//! The pattern is written once when a buffer is created; per message only the eight tags
//! are written, so filling does not add a pass over the payload to what a mode measures.

use std::fmt;
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::pagecache::PageCache;
use crate::vocab::MIN_SIZE;

/// Fields per message, as in the seed.
pub const FIELDS: usize = 8;
/// Bytes at the start of every field that hold its tag.
pub const TAG_LEN: usize = 8;

/// Where each field sits in a message of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    offsets: [usize; FIELDS + 1],
}

impl Layout {
    /// Splits `size` bytes into 8 fields of `size / 8`, the last taking the remainder.
    ///
    /// # Panics
    /// If `size` is below [`MIN_SIZE`]; configs are validated before this is reached.
    pub fn new(size: usize) -> Layout {
        assert!(
            size >= MIN_SIZE,
            "message size {size} below minimum {MIN_SIZE}"
        );
        let base = size / FIELDS;
        let mut offsets = [0; FIELDS + 1];
        for (k, off) in offsets.iter_mut().enumerate().take(FIELDS) {
            *off = k * base;
        }
        offsets[FIELDS] = size;
        Layout { offsets }
    }

    /// Total message size in bytes.
    pub fn size(&self) -> usize {
        self.offsets[FIELDS]
    }

    /// Byte range of field `k` within the serialized message.
    pub fn field(&self, k: usize) -> Range<usize> {
        self.offsets[k]..self.offsets[k + 1]
    }

    /// The field holding message offset `pos`, and the offset within that field.
    fn locate(&self, pos: usize) -> (usize, usize) {
        let k = (1..=FIELDS)
            .find(|&k| pos < self.offsets[k])
            .unwrap_or(FIELDS)
            - 1;
        (k, pos - self.offsets[k])
    }
}

/// The tag of field `field` in message `seq`.
#[inline]
pub fn tag(seq: u64, field: usize) -> u64 {
    seq.wrapping_mul(FIELDS as u64).wrapping_add(field as u64)
}

/// The pattern byte at message offset `pos` (tag bytes aside). Changes every 256 bytes so
/// a chunk displaced by less than 64 KiB does not match.
#[inline]
pub fn pattern_byte(pos: usize) -> u8 {
    (pos.wrapping_mul(131)
        .wrapping_add((pos >> 8).wrapping_mul(7))) as u8
}

/// Where in a field of `len` bytes sampled verification looks: the first, middle and last
/// payload byte, all past the tag. A field that is all tag (8 bytes, in messages of 64–71
/// bytes) has no payload to sample; its tag is still checked.
fn sample_offsets(len: usize) -> impl Iterator<Item = usize> {
    let payload = len.saturating_sub(TAG_LEN);
    let offsets = [TAG_LEN, TAG_LEN + payload / 2, len.wrapping_sub(1)];
    let count = if payload == 0 { 0 } else { 3 };
    offsets.into_iter().take(count)
}

/// The tag written over a buffer before a receive: no message of a real run has it.
const POISON_TAG: u64 = u64::MAX;

/// The tag of every field of the end-of-stream record a server that sent a stream sends
/// after its last message. No message's first tag has it: field 0 of message `seq` is
/// tagged `seq × 8`, a multiple of 8, and this is not (nor is it the poison tag).
pub const END_TAG: u64 = u64::MAX - 1;

/// A message-sized copy of the pattern, built once per size, against which full
/// verification compares whole fields at memcmp speed; and its inverse, written over a
/// receive buffer first so that only bytes that really arrived can pass verification.
#[derive(Debug)]
pub struct Template {
    layout: Layout,
    bytes: Box<[u8]>,
    poison: Box<[u8]>,
}

impl Template {
    pub fn new(layout: Layout) -> Arc<Template> {
        let bytes: Box<[u8]> = (0..layout.size()).map(pattern_byte).collect();
        let mut poison: Box<[u8]> = bytes.iter().map(|b| !b).collect();
        for k in 0..FIELDS {
            let at = layout.field(k).start;
            poison[at..at + TAG_LEN].copy_from_slice(&POISON_TAG.to_le_bytes());
        }
        Arc::new(Template {
            layout,
            bytes,
            poison,
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn field(&self, k: usize) -> &[u8] {
        &self.bytes[self.layout.field(k)]
    }

    /// Heap bytes a template holds: the pattern and its poison.
    pub fn allocated_bytes(size: usize) -> u64 {
        2 * size as u64
    }
}

/// Where a receive lands: the contiguous wire buffer (two-copy) or the fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxTarget {
    Wire,
    Fields,
}

/// The first difference a receiver found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// A field's tag names another message or field.
    Tag {
        expected_seq: u64,
        field: usize,
        found: u64,
    },
    /// A payload byte differs from the pattern.
    Byte {
        seq: u64,
        field: usize,
        offset: usize,
        expected: u8,
        found: u8,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Mismatch::Tag {
                expected_seq,
                field,
                found,
            } => {
                let (seq, fld) = (found / FIELDS as u64, found % FIELDS as u64);
                write!(
                    f,
                    "message {expected_seq}: field {field} is tagged as message {seq} field {fld}"
                )
            }
            Mismatch::Byte {
                seq,
                field,
                offset,
                expected,
                found,
            } => write!(
                f,
                "message {seq}: field {field} byte {offset} is {found:#04x}, expected {expected:#04x}"
            ),
        }
    }
}

/// Memory that lives outside the Rust heap: page-aligned, for registered (fixed) buffers,
/// or the shared mapping of a memfd (the page cache sendfile and splice send from).
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
    /// The memfd the mapping shares, for sendfile and splice.
    cache: Option<PageCache>,
}

// SAFETY: a Region is plain memory with no thread affinity; who may write it is governed by
// the Messages that hand out its slices, one disjoint slice per Message.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

impl Region {
    /// Maps `len` bytes of zeroed, page-aligned anonymous memory.
    pub fn new(len: usize) -> std::io::Result<Arc<Region>> {
        // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).expect("mmap returned null");
        Ok(Arc::new(Region {
            ptr,
            len,
            cache: None,
        }))
    }

    /// Maps `len` bytes of a fresh memfd, shared: the fields written here are its page
    /// cache, which sendfile and splice send by reference. With `pipe_for`, also a pipe
    /// that holds that many bytes.
    pub fn memfd(len: usize, pipe_for: Option<usize>) -> Result<Arc<Region>, crate::error::Error> {
        let cache = PageCache::new(len, pipe_for)?;
        // SAFETY: a fresh shared mapping of the memfd just sized to `len`; no existing
        // memory is touched.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                cache.memfd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(crate::error::Error::io(
                "mapping the memfd",
                std::io::Error::last_os_error(),
            ));
        }
        let ptr = NonNull::new(ptr.cast()).expect("mmap returned null");
        Ok(Arc::new(Region {
            ptr,
            len,
            cache: Some(cache),
        }))
    }

    /// The memfd behind the mapping, for sendfile and splice.
    pub fn page_cache(&self) -> Option<&PageCache> {
        self.cache.as_ref()
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped; every Message holding a slice of it
        // holds an Arc, so none is left once the last Arc drops.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Where a message's fields live.
enum Storage {
    /// Eight separate heap allocations, as the seed's `char *field[8]`.
    Heap(Box<[Box<[u8]>; FIELDS]>),
    /// Eight consecutive slices of a registered region, starting at `offset`, registered
    /// as fixed buffer `index`.
    Fixed {
        region: Arc<Region>,
        offset: usize,
        index: u16,
    },
}

/// One message buffer. Messages move by `Box` so the kernel-facing iovecs that point into
/// them keep a stable address while an operation is in flight.
pub struct Message {
    layout: Layout,
    storage: Storage,
    /// The contiguous wire buffer two-copy serializes into; empty in other modes.
    wire: Box<[u8]>,
    seq: u64,
    slot: u16,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("size", &self.layout.size())
            .field("seq", &self.seq)
            .field("slot", &self.slot)
            .field("fixed", &self.fixed_index())
            .finish()
    }
}

impl Message {
    /// A message whose 8 fields are separate heap allocations, pattern filled. With
    /// `wire`, it also owns the contiguous buffer two-copy (de)serializes through.
    pub fn heap(template: &Template, wire: bool, slot: u16) -> Box<Message> {
        let layout = *template.layout();
        let fields: [Box<[u8]>; FIELDS] =
            std::array::from_fn(|k| template.field(k).to_vec().into_boxed_slice());
        Box::new(Message {
            layout,
            storage: Storage::Heap(Box::new(fields)),
            wire: wire_buffer(&layout, wire),
            seq: 0,
            slot,
        })
    }

    /// A message whose fields are `layout.size()` consecutive bytes of `region` at `offset`,
    /// registered as fixed buffer `index`.
    ///
    /// # Panics
    /// If the message does not fit in the region.
    pub fn fixed(
        template: &Template,
        region: Arc<Region>,
        offset: usize,
        index: u16,
        slot: u16,
    ) -> Box<Message> {
        let layout = *template.layout();
        assert!(
            offset + layout.size() <= region.len(),
            "message outside its region"
        );
        let mut msg = Box::new(Message {
            layout,
            storage: Storage::Fixed {
                region,
                offset,
                index,
            },
            wire: Box::default(),
            seq: 0,
            slot,
        });
        for k in 0..FIELDS {
            msg.field_mut(k).copy_from_slice(template.field(k));
        }
        msg
    }

    pub fn size(&self) -> usize {
        self.layout.size()
    }

    /// This buffer's index in its pool.
    pub fn slot(&self) -> u16 {
        self.slot
    }

    /// The registered buffer index, for fixed messages.
    pub fn fixed_index(&self) -> Option<u16> {
        match self.storage {
            Storage::Fixed { index, .. } => Some(index),
            Storage::Heap(_) => None,
        }
    }

    /// Field `k`.
    pub fn field(&self, k: usize) -> &[u8] {
        match &self.storage {
            Storage::Heap(fields) => &fields[k],
            Storage::Fixed { region, offset, .. } => {
                let r = self.layout.field(k);
                // SAFETY: the range lies inside the region (checked in `fixed`), the region
                // lives as long as this Message's Arc, and this Message is the only one
                // handed that range.
                unsafe {
                    std::slice::from_raw_parts(region.as_ptr().add(offset + r.start), r.len())
                }
            }
        }
    }

    /// Field `k`, writable.
    pub fn field_mut(&mut self, k: usize) -> &mut [u8] {
        match &mut self.storage {
            Storage::Heap(fields) => &mut fields[k],
            Storage::Fixed { region, offset, .. } => {
                let r = self.layout.field(k);
                // SAFETY: as in `field`; `&mut self` makes this the only live reference.
                unsafe {
                    std::slice::from_raw_parts_mut(region.as_ptr().add(*offset + r.start), r.len())
                }
            }
        }
    }

    /// For messages in a memfd: its page cache and the message's offset in the file.
    pub fn file_span(&self) -> Option<(&PageCache, u64)> {
        match &self.storage {
            Storage::Fixed { region, offset, .. } => {
                region.page_cache().map(|pc| (pc, *offset as u64))
            }
            Storage::Heap(_) => None,
        }
    }

    /// For fixed messages, the whole message as one contiguous span.
    pub fn contiguous_ptr(&self) -> Option<*const u8> {
        match &self.storage {
            // SAFETY: in bounds, see `fixed`.
            Storage::Fixed { region, offset, .. } => Some(unsafe { region.as_ptr().add(*offset) }),
            Storage::Heap(_) => None,
        }
    }

    /// Writes message `seq`'s tags into the 8 fields.
    pub fn stamp(&mut self, seq: u64) {
        self.seq = seq;
        for k in 0..FIELDS {
            self.field_mut(k)[..TAG_LEN].copy_from_slice(&tag(seq, k).to_le_bytes());
        }
    }

    /// Makes this buffer the end-of-stream record: every field tagged [`END_TAG`].
    pub fn stamp_end(&mut self) {
        self.seq = u64::MAX;
        for k in 0..FIELDS {
            self.field_mut(k)[..TAG_LEN].copy_from_slice(&END_TAG.to_le_bytes());
        }
    }

    /// Whether the message in the fields opens as the end-of-stream record.
    pub fn is_end(&self) -> bool {
        self.field_tag(0) == END_TAG
    }

    /// Whether every field of the end-of-stream record carries its tag.
    pub fn end_is_whole(&self) -> bool {
        (0..FIELDS).all(|k| self.field_tag(k) == END_TAG)
    }

    fn field_tag(&self, k: usize) -> u64 {
        let bytes: [u8; TAG_LEN] = self.field(k)[..TAG_LEN].try_into().expect("8 bytes");
        u64::from_le_bytes(bytes)
    }

    /// Two-copy's user-space copy: gathers the 8 fields into the wire buffer. Runs for
    /// every message; `black_box` keeps the optimizer from proving it away.
    pub fn serialize(&mut self) {
        let Message {
            layout,
            storage,
            wire,
            ..
        } = self;
        if let Storage::Heap(fields) = storage {
            for (k, field) in fields.iter().enumerate() {
                wire[layout.field(k)].copy_from_slice(field);
            }
        }
        std::hint::black_box(&mut self.wire);
    }

    /// Two-copy's receive-side copy: scatters the wire buffer out into the 8 fields.
    pub fn deserialize(&mut self) {
        let Message {
            layout,
            storage,
            wire,
            ..
        } = self;
        if let Storage::Heap(fields) = storage {
            for (k, field) in fields.iter_mut().enumerate() {
                field.copy_from_slice(&wire[layout.field(k)]);
            }
        }
        std::hint::black_box(&mut self.storage);
    }

    /// Two-copy's receive-side copy for bytes that arrived in a buffer the kernel picked
    /// (a provided buffer) rather than in this message's wire buffer: scatters `bytes`,
    /// which are message bytes `at..`, into the fields.
    pub fn deserialize_from(&mut self, at: usize, bytes: &[u8]) {
        let (mut pos, mut src) = (at, bytes);
        while !src.is_empty() {
            let (k, off) = self.layout.locate(pos);
            let field = &mut self.field_mut(k)[off..];
            let n = field.len().min(src.len());
            field[..n].copy_from_slice(&src[..n]);
            pos += n;
            src = &src[n..];
        }
    }

    /// The contiguous wire buffer (two-copy).
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    pub fn wire_mut(&mut self) -> &mut [u8] {
        &mut self.wire
    }

    /// Checks a received message against message `expected_seq`.
    pub fn verify(
        &self,
        level: crate::vocab::Verify,
        expected_seq: u64,
        template: &Template,
    ) -> Result<(), Mismatch> {
        use crate::vocab::Verify;
        if level == Verify::Off {
            return Ok(());
        }
        for k in 0..FIELDS {
            let field = self.field(k);
            let found = u64::from_le_bytes(field[..TAG_LEN].try_into().expect("tag"));
            if found != tag(expected_seq, k) {
                return Err(Mismatch::Tag {
                    expected_seq,
                    field: k,
                    found,
                });
            }
            let want = template.field(k);
            let bad = match level {
                Verify::Full => {
                    if field[TAG_LEN..] == want[TAG_LEN..] {
                        None
                    } else {
                        (TAG_LEN..field.len()).find(|&i| field[i] != want[i])
                    }
                }
                Verify::Sample => sample_offsets(field.len()).find(|&i| field[i] != want[i]),
                Verify::Off => None,
            };
            if let Some(offset) = bad {
                return Err(Mismatch::Byte {
                    seq: expected_seq,
                    field: k,
                    offset,
                    expected: want[offset],
                    found: field[offset],
                });
            }
        }
        Ok(())
    }

    /// Overwrites what `level` will check with bytes that cannot pass, where the next
    /// receive lands: a receive that leaves any checked byte unwritten then fails
    /// verification instead of passing on what the buffer held before. Full verification
    /// poisons every byte (one extra pass over the buffer, the price of `--verify full`);
    /// sampled verification only the tags and the sampled bytes.
    pub fn poison(&mut self, level: crate::vocab::Verify, template: &Template, into: RxTarget) {
        use crate::vocab::Verify;
        let layout = self.layout;
        match (level, into) {
            (Verify::Off, _) => {}
            (Verify::Full, RxTarget::Wire) => self.wire.copy_from_slice(&template.poison),
            (Verify::Full, RxTarget::Fields) => {
                for k in 0..FIELDS {
                    self.field_mut(k)
                        .copy_from_slice(&template.poison[layout.field(k)]);
                }
            }
            (Verify::Sample, _) => {
                for k in 0..FIELDS {
                    let range = layout.field(k);
                    let poison = &template.poison[range.clone()];
                    let dst = match into {
                        RxTarget::Wire => &mut self.wire[range],
                        RxTarget::Fields => self.field_mut(k),
                    };
                    dst[..TAG_LEN].copy_from_slice(&poison[..TAG_LEN]);
                    for i in sample_offsets(dst.len()) {
                        dst[i] = poison[i];
                    }
                }
            }
        }
    }

    /// Puts back the pattern and message `seq`'s tags after a received message failed
    /// verification, so the damage cannot travel on in a later send (an echo, a reused
    /// buffer).
    pub fn restore(&mut self, template: &Template, seq: u64) {
        for k in 0..FIELDS {
            self.field_mut(k).copy_from_slice(template.field(k));
        }
        self.stamp(seq);
    }

    /// Sets the registered buffer index of a fixed message, once its region is registered.
    pub fn set_fixed_index(&mut self, to: u16) {
        if let Storage::Fixed { index, .. } = &mut self.storage {
            *index = to;
        }
    }

    /// Fills `iov` with the spans that hold message bytes `from..`, in order, and returns
    /// how many entries it used. Fields already fully covered by `from` are skipped, so a
    /// short send or receive continues exactly where it stopped.
    pub fn iovecs_from(&mut self, from: usize, iov: &mut [libc::iovec; FIELDS]) -> usize {
        if from >= self.size() {
            return 0;
        }
        let (first, skip) = self.layout.locate(from);
        let mut n = 0;
        for k in first..FIELDS {
            let field = self.field_mut(k);
            let start = if k == first { skip } else { 0 };
            iov[n] = libc::iovec {
                iov_base: field[start..].as_mut_ptr().cast(),
                iov_len: field.len() - start,
            };
            n += 1;
        }
        n
    }
}

fn wire_buffer(layout: &Layout, wire: bool) -> Box<[u8]> {
    if wire {
        vec![0; layout.size()].into_boxed_slice()
    } else {
        Box::default()
    }
}

/// Checks `bytes`, which are bytes `at..at + bytes.len()` of message `seq` as it travels
/// (the 8 fields back to back), at `level`: what [`Message::verify`] checks of a whole
/// message, for a span of one that lies outside any message buffer — pages a zero-copy
/// receive mapped, or its copy buffer. A tag split between two spans is checked byte by
/// byte in each.
pub fn verify_span(
    level: crate::vocab::Verify,
    seq: u64,
    at: usize,
    bytes: &[u8],
    template: &Template,
) -> Result<(), Mismatch> {
    use crate::vocab::Verify;
    if level == Verify::Off {
        return Ok(());
    }
    let layout = template.layout();
    let end = at + bytes.len();
    for k in 0..FIELDS {
        let field = layout.field(k);
        let (lo, hi) = (field.start.max(at), field.end.min(end));
        if lo >= hi {
            continue;
        }
        let tag_end = (field.start + TAG_LEN).min(field.end);
        let want_tag = tag(seq, k).to_le_bytes();
        if let Some(p) = (lo..hi.min(tag_end)).find(|&p| bytes[p - at] != want_tag[p - field.start])
        {
            if field.start >= at && tag_end <= end {
                let span = &bytes[field.start - at..tag_end - at];
                return Err(Mismatch::Tag {
                    expected_seq: seq,
                    field: k,
                    found: u64::from_le_bytes(span.try_into().expect("a whole tag")),
                });
            }
            let offset = p - field.start;
            return Err(Mismatch::Byte {
                seq,
                field: k,
                offset,
                expected: want_tag[offset],
                found: bytes[p - at],
            });
        }
        let from = lo.max(tag_end);
        if from >= hi {
            continue;
        }
        let want = &template.bytes[from..hi];
        let got = &bytes[from - at..hi - at];
        let bad = match level {
            Verify::Full if got == want => None,
            Verify::Full => (from..hi).find(|&p| bytes[p - at] != template.bytes[p]),
            Verify::Sample => sample_offsets(field.len())
                .map(|i| field.start + i)
                .find(|&p| (from..hi).contains(&p) && bytes[p - at] != template.bytes[p]),
            Verify::Off => None,
        };
        if let Some(p) = bad {
            return Err(Mismatch::Byte {
                seq,
                field: k,
                offset: p - field.start,
                expected: template.bytes[p],
                found: bytes[p - at],
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::Verify;

    fn template(size: usize) -> Arc<Template> {
        Template::new(Layout::new(size))
    }

    #[test]
    fn last_field_takes_the_remainder() {
        let l = Layout::new(1000);
        assert_eq!(l.field(0), 0..125);
        assert_eq!(l.field(7), 875..1000);
        let l = Layout::new(1001);
        assert_eq!(l.field(7), 875..1001);
        assert_eq!((0..FIELDS).map(|k| l.field(k).len()).sum::<usize>(), 1001);
        assert_eq!(l.locate(0), (0, 0));
        assert_eq!(l.locate(130), (1, 5));
        assert_eq!(l.locate(1000), (7, 125));
    }

    #[test]
    fn a_stamped_message_verifies_and_survives_the_wire() {
        let t = template(4096);
        let mut tx = Message::heap(&t, true, 0);
        tx.stamp(42);
        tx.serialize();
        let mut rx = Message::heap(&t, true, 1);
        rx.wire_mut().copy_from_slice(tx.wire());
        rx.deserialize();
        assert_eq!(rx.verify(Verify::Full, 42, &t), Ok(()));
        assert_eq!(rx.verify(Verify::Sample, 42, &t), Ok(()));
    }

    #[test]
    fn chunks_deserialize_into_the_right_fields() {
        let t = template(1000);
        let mut tx = Message::heap(&t, true, 0);
        tx.stamp(5);
        tx.serialize();
        let mut rx = Message::heap(&t, false, 1);
        // Arbitrary chunk boundaries, some inside a field, one spanning three.
        for (a, b) in [(0, 3), (3, 130), (130, 400), (400, 999), (999, 1000)] {
            rx.deserialize_from(a, &tx.wire()[a..b]);
        }
        assert_eq!(rx.verify(Verify::Full, 5, &t), Ok(()));
    }

    #[test]
    fn spans_verify_wherever_they_are_cut_and_catch_what_is_wrong() {
        let t = template(1001);
        let mut tx = Message::heap(&t, true, 0);
        tx.stamp(9);
        tx.serialize();
        let wire = tx.wire().to_vec();
        // Cuts inside a tag (125 + 3), inside a payload, and at field boundaries.
        let cuts = [0, 3, 128, 250, 251, 700, 1001];
        for level in [Verify::Full, Verify::Sample] {
            for w in cuts.windows(2) {
                let (a, b) = (w[0], w[1]);
                assert_eq!(
                    verify_span(level, 9, a, &wire[a..b], &t),
                    Ok(()),
                    "{a}..{b}"
                );
            }
            // Another message's tag, whole or split across spans.
            assert!(matches!(
                verify_span(level, 10, 0, &wire, &t),
                Err(Mismatch::Tag { field: 0, .. })
            ));
            assert!(matches!(
                verify_span(level, 10, 125, &wire[125..127], &t),
                Err(Mismatch::Byte {
                    field: 1,
                    offset: 0,
                    ..
                })
            ));
        }
        // A payload byte: full finds any; sample finds the sampled ones (the middle of
        // field 2 is 250 + 8 + (125 - 8) / 2 = 316).
        let mut bad = wire.clone();
        bad[600] ^= 1;
        assert!(verify_span(Verify::Full, 9, 500, &bad[500..700], &t).is_err());
        assert_eq!(
            verify_span(Verify::Sample, 9, 500, &bad[500..700], &t),
            Ok(())
        );
        let mut bad = wire.clone();
        bad[316] ^= 1;
        assert!(matches!(
            verify_span(Verify::Sample, 9, 300, &bad[300..320], &t),
            Err(Mismatch::Byte {
                field: 2,
                offset: 66,
                ..
            })
        ));
        assert_eq!(verify_span(Verify::Off, 10, 0, &bad, &t), Ok(()));
    }

    #[test]
    fn wrong_sequence_is_caught_by_the_tag() {
        let t = template(1024);
        let mut m = Message::heap(&t, false, 0);
        m.stamp(7);
        let err = m.verify(Verify::Sample, 8, &t).unwrap_err();
        assert_eq!(
            err,
            Mismatch::Tag {
                expected_seq: 8,
                field: 0,
                found: tag(7, 0)
            }
        );
        assert!(err.to_string().contains("tagged as message 7"));
        assert_eq!(m.verify(Verify::Off, 8, &t), Ok(()));
    }

    #[test]
    fn a_flipped_byte_is_caught_by_full_but_only_sampled_bytes_by_sample() {
        let t = template(1024);
        let mut m = Message::heap(&t, false, 0);
        m.stamp(1);
        m.field_mut(3)[20] ^= 0xff;
        let err = m.verify(Verify::Full, 1, &t).unwrap_err();
        assert!(
            matches!(
                err,
                Mismatch::Byte {
                    field: 3,
                    offset: 20,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(m.verify(Verify::Sample, 1, &t), Ok(()));
        m.field_mut(5)[68] ^= 1; // field length 128: the middle payload byte is sampled
        assert!(matches!(
            m.verify(Verify::Sample, 1, &t),
            Err(Mismatch::Byte {
                field: 5,
                offset: 68,
                ..
            })
        ));
    }

    #[test]
    fn iovecs_resume_mid_field() {
        let t = template(1024);
        let mut m = Message::heap(&t, false, 0);
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; FIELDS];
        assert_eq!(m.iovecs_from(0, &mut iov), 8);
        assert_eq!(iov[0].iov_len, 128);
        assert_eq!(m.iovecs_from(300, &mut iov), 6);
        assert_eq!(iov[0].iov_len, 84);
        assert_eq!(iov[0].iov_base as usize, m.field(2)[44..].as_ptr() as usize);
        assert_eq!(m.iovecs_from(1023, &mut iov), 1);
        assert_eq!(iov[0].iov_len, 1);
        assert_eq!(m.iovecs_from(1024, &mut iov), 0);
    }

    /// Every size from the minimum to a few KiB, every level, both receive targets: a
    /// whole message that arrived passes; a receive that wrote nothing fails (except with
    /// verification off); a flipped payload byte fails full verification; a restored
    /// buffer is whole again.
    #[test]
    fn every_size_verifies_what_arrived_and_only_that() {
        for size in (MIN_SIZE..=1200).chain((1201..=4200).step_by(97)) {
            let t = template(size);
            let mut tx = Message::heap(&t, true, 0);
            tx.stamp(7);
            tx.serialize();
            for level in [Verify::Full, Verify::Sample, Verify::Off] {
                for into in [RxTarget::Wire, RxTarget::Fields] {
                    let case = format!("size {size} {level} into {into:?}");
                    let mut rx = Message::heap(&t, true, 1);
                    // Hold the very message expected, as a reused buffer would.
                    rx.stamp(7);
                    rx.serialize();
                    rx.poison(level, &t, into);
                    if into == RxTarget::Wire {
                        rx.deserialize();
                    }
                    let nothing = rx.verify(level, 7, &t);
                    assert_eq!(nothing.is_err(), level != Verify::Off, "{case}");
                    match into {
                        RxTarget::Wire => {
                            rx.wire_mut().copy_from_slice(tx.wire());
                            rx.deserialize();
                        }
                        RxTarget::Fields => {
                            for k in 0..FIELDS {
                                rx.field_mut(k).copy_from_slice(tx.field(k));
                            }
                        }
                    }
                    assert_eq!(rx.verify(level, 7, &t), Ok(()), "{case}");
                }
            }
            let mut bad = Message::heap(&t, false, 2);
            bad.stamp(7);
            let last = bad.field(FIELDS - 1).len() - 1;
            bad.field_mut(FIELDS - 1)[last] ^= 0x40;
            assert!(bad.verify(Verify::Full, 7, &t).is_err(), "size {size}");
            bad.restore(&t, 7);
            assert_eq!(bad.verify(Verify::Full, 7, &t), Ok(()), "size {size}");
        }
    }

    #[test]
    fn sampled_bytes_are_payload_bytes() {
        assert_eq!(
            sample_offsets(8).count(),
            0,
            "an all-tag field has no payload"
        );
        assert_eq!(sample_offsets(9).collect::<Vec<_>>(), [8, 8, 8]);
        assert_eq!(sample_offsets(15).collect::<Vec<_>>(), [8, 11, 14]);
        for len in 8..300 {
            assert!(
                sample_offsets(len).all(|i| (TAG_LEN..len).contains(&i)),
                "{len}"
            );
        }
    }

    #[test]
    fn fixed_messages_lay_fields_out_contiguously() {
        let t = template(512);
        let region = Region::new(4096).unwrap();
        let mut m = Message::fixed(&t, region.clone(), 1024, 3, 0);
        m.stamp(9);
        assert_eq!(m.fixed_index(), Some(3));
        assert_eq!(m.verify(Verify::Full, 9, &t), Ok(()));
        let base = m.contiguous_ptr().unwrap() as usize;
        assert_eq!(base, region.as_ptr() as usize + 1024);
        assert_eq!(m.field(1).as_ptr() as usize, base + 64);
    }
}
