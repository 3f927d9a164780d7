//! One connection on a ring: turns what its [`Flow`] wants into SQEs and its CQEs back
//! into flow events.
//!
//! - Sends go out as linked chains (`IOSQE_IO_LINK`) of up to `depth` messages with
//!   MSG_WAITALL, so they reach the socket whole and in order, one enter per chain; the
//!   next chain starts when the last one has completed.
//! - One receive at a time, MSG_WAITALL for the rest of the message: normally one CQE
//!   per message; a short one (end of stream, signal) continues with the remainder.
//! - Zero-copy sends post a result CQE (with MORE when a notification follows) and later
//!   the notification (NOTIF). The buffer goes back to the pool only on the notification,
//!   or on the result when no notification will come (an error without MORE).
//! - Successful copying sends inside a chain skip their CQE (`IOSQE_CQE_SKIP_SUCCESS`).
//!   When such a silent send fails, the kernel posts its CQE and cancels everything linked
//!   after it *without* completions (`REQ_F_SKIP_LINK_CQES`): those requests never ran,
//!   so their buffers come back at once; nothing waits for a CQE that will not come. When
//!   a send that posts its CQE fails, the requests after it do complete, with -ECANCELED.
//!
//! A buffer handed to the kernel is moved into `in_kernel[slot]` and moved out by the CQE
//! that ends the kernel's use of it; nothing else can reach it in between.

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue};

use super::bufring::BUF_GROUP;
use super::ring::{Cqe, Ring};
use crate::backend::sys::IORING_NOTIF_USAGE_ZC_COPIED;
use crate::error::Error;
use crate::message::Message;
use crate::path::{on_target, path, rx, CopyPath, MsgArgs, Target, POLL_FIRST};
use crate::proof::RECEIPTS;
use crate::vocab::{Role, RxMode, Workload};
use crate::workload::Flow;

const OP_SEND: u64 = 1;
const OP_RECV: u64 = 2;
const OP_RECV_MULTI: u64 = 3;
const OP_CANCEL: u64 = 4;
/// The SQE linked in front of a send (splice: the message's pages into the pipe).
const OP_PREP: u64 = 5;
/// A read-receipt send (stream receiver) or receive (stream sender): sendfile, splice.
const OP_RECEIPT: u64 = 6;

/// Most provided buffers one connection may hold unconsumed before its multishot
/// receive is paused: a quarter of the ring's.
const PENDING_SHARE: usize = super::bufring::PBUF_ENTRIES as usize / 4;

/// user_data: connection index (32 bits) | op (8 bits) | buffer slot (16 bits).
pub(crate) fn user_data(conn: u32, op: u64, slot: u16) -> u64 {
    (u64::from(conn) << 32) | (op << 16) | u64::from(slot)
}

pub(crate) fn decode(user_data: u64) -> (u32, u64, u16) {
    (
        (user_data >> 32) as u32,
        (user_data >> 16) & 0xff,
        user_data as u16,
    )
}

/// A multishot receive into the ring's provided buffers (two-copy): chunks arrive in
/// buffers the kernel picked and are copied out into messages taken from the pool.
#[derive(Default)]
struct Multishot {
    /// The multishot RECV is posted and has not ended.
    armed: bool,
    /// An AsyncCancel for it is in flight.
    canceling: bool,
    /// It was canceled on purpose (its -ECANCELED is no error).
    canceled: bool,
    /// The peer closed; handled once every chunk is consumed.
    eof: bool,
    /// Chunks not yet copied out (buffer id, consumed, length), oldest first.
    pending: VecDeque<(u16, u32, u32)>,
    /// The message being assembled and the bytes in it so far.
    msg: Option<(Box<Message>, usize)>,
}

/// One connection's ring-side state.
pub(crate) struct UConn<X> {
    pub flow: Flow,
    pub fd: RawFd,
    pub file: Option<u32>,
    /// The copy mode's behaviour.
    copy: &'static CopyPath,
    depth: usize,
    size: usize,
    /// Buffers the kernel holds, by pool slot.
    in_kernel: Vec<Option<Box<Message>>>,
    held: usize,
    /// Argument structs by pool slot; boxed so their address never changes.
    args: Box<[MsgArgs]>,
    /// The receive in flight: its slot and the bytes already in.
    rx: Option<(u16, usize)>,
    /// Multishot receive state, when this connection receives that way.
    multishot: Option<Multishot>,
    /// Sends whose result has not arrived.
    tx_inflight: usize,
    /// Sends issued with IOSQE_CQE_SKIP_SUCCESS, in chain order: their success is known
    /// only when a later member of their chain completes.
    silent: VecDeque<u16>,
    /// The chain's last send when it posts its CQE on success (no receive linked behind).
    chain_tail: Option<u16>,
    /// Successful sends may skip their CQE (copying modes, where the kernel kernel supports
    /// it): a chain then posts one CQE, for its last member.
    skip_ok: bool,
    /// The receive in flight was linked behind a chain of sends.
    rx_linked: bool,
    /// A chain's sends but the last say that more follows (MSG_MORE, where the path takes
    /// it: zc-fixed; see `path::zc_send_flags`), each counted in `IoStats::more_sends`:
    /// while a message is smaller than a TCP segment (the rule
    /// `auto_nodelay` follows). One that fills a segment has nothing to share it with but
    /// its remainder; at 64K on loopback runs with and without MSG_MORE were within noise
    /// of each other (3.06 against 3.92 Gbit/s in one set, 5.63 against 4.70 in another).
    cork: bool,
    /// Scratch for building a chain; boxed messages keep their addresses.
    #[allow(clippy::vec_box)]
    chain: Vec<Box<Message>>,
    error: Option<Error>,
    /// When the first error was recorded.
    failed_at: Option<Instant>,
    shut: bool,
    /// Asked to end at its next message boundary ([`UConn::stop_at_boundary`]).
    stopping: bool,
    /// A send failed or went out short: part of a message may be on the wire.
    tx_cut: bool,
    /// Set when the socket is shut: see [`UConn::at_boundary`].
    at_boundary: bool,
    /// The last time a whole message moved (sent, received, or its zero-copy completion).
    last_progress: Instant,
    /// Given up on: buffers the kernel never returned were leaked. Its ring index must not
    /// be reused, since a late completion would carry it.
    pub abandoned: bool,
    /// When the flow finished.
    pub done_at: Option<Instant>,
    /// A read-receipt operation is with the kernel (sendfile, splice stream).
    receipt_op: bool,
    /// Where receipts arrive; boxed so its address holds while a receive is posted.
    receipt_buf: Option<Box<[u8; RECEIPTS.len()]>>,
    /// Registered buffer range (first index, count), for zc-fixed.
    pub fixed_range: Option<(u16, u32)>,
    pub extra: X,
}

impl<X> UConn<X> {
    pub fn new(
        flow: Flow,
        fd: RawFd,
        file: Option<u32>,
        pool_len: usize,
        multishot: bool,
        cqe_skip: bool,
        extra: X,
    ) -> UConn<X> {
        let spec = *flow.spec();
        // Multishot receives copy out of provided buffers: only where the mode copies out
        // anyway (two-copy's wire buffer), and only for a copying receive path.
        let multishot = multishot && path(spec.mode).wire && spec.rx == RxMode::Copy;
        let mut flow = flow;
        if multishot {
            flow.receive_into_fields();
        }
        let size = flow.size();
        UConn {
            size,
            flow,
            fd,
            file,
            copy: path(spec.mode),
            depth: spec.depth,
            in_kernel: (0..pool_len).map(|_| None).collect(),
            held: 0,
            args: (0..pool_len).map(|_| MsgArgs::new()).collect(),
            rx: None,
            multishot: multishot.then(Multishot::default),
            tx_inflight: 0,
            silent: VecDeque::with_capacity(spec.depth),
            chain_tail: None,
            // A send with a prep SQE in front of it posts its CQE: the prep's failure must
            // not silently cancel what follows (see the module notes).
            skip_ok: cqe_skip && !path(spec.mode).zero_copy && path(spec.mode).uring.prep.is_none(),
            rx_linked: false,
            cork: path(spec.mode).uring.more_in_chain
                && size < crate::client::max_segment(&fd).unwrap_or(usize::MAX),
            chain: Vec::with_capacity(spec.depth),
            error: None,
            failed_at: None,
            shut: false,
            stopping: false,
            tx_cut: false,
            at_boundary: false,
            last_progress: Instant::now(),
            abandoned: false,
            done_at: None,
            receipt_op: false,
            receipt_buf: path(spec.mode).file.then(|| Box::new([0; RECEIPTS.len()])),
            fixed_range: None,
            extra,
        }
    }

    /// Issues whatever the flow wants now: a chain of sends when none is in flight, a
    /// receive when none is in flight and one is due.
    pub fn pump(&mut self, ring: &mut Ring<'_>, index: u32, now: Instant) -> Result<(), Error> {
        if self.error.is_some() || self.stopping {
            return Ok(());
        }
        if self.tx_inflight == 0 {
            let mut chain = std::mem::take(&mut self.chain);
            // A chain reaches the kernel whole or not at all (see `Ring::reserve`): deep
            // pipelines go out as consecutive chains of at most half the ring.
            let per_msg = 1 + usize::from(self.copy.uring.prep.is_some());
            let longest = self.depth.min((ring.max_chain() - 1) / per_msg).max(1);
            while chain.len() < longest {
                match self.flow.next_tx(now) {
                    Some(m) => chain.push(m),
                    None => break,
                }
            }
            if let Some(e) = self.pipe_too_small(&chain) {
                for m in chain.drain(..) {
                    self.flow.release(m);
                }
                self.chain = chain;
                return Err(e);
            }
            // At depth 1 the reply's receive rides at the end of the chain, so a round trip
            // is one submission and, with skipped send CQEs, one completion. Deeper
            // pipelines keep the receive on its own: behind sends that wait for the peer
            // to read, it could deadlock two peers that each fill the other's buffers.
            // Only an echo's reply answers the sends: a receive that waits on anything else
            // (a stream flowing the other way, an end of file) would hold the chain's
            // silent sends unsettled, and with them the next chain.
            let linked_rx = if self.depth == 1
                && self.flow.spec().workload == Workload::Echo
                && !chain.is_empty()
                && self.multishot.is_none()
                && self.rx.is_none()
                && self.flow.wants_rx()
            {
                self.flow.rx_buffer()
            } else {
                None
            };
            let ops = chain.len() + usize::from(linked_rx.is_some());
            let n = chain.len();
            ring.reserve(ops + n * (per_msg - 1))?;
            for (i, mut msg) in chain.drain(..).enumerate() {
                let slot = msg.slot();
                if let Some(prep) = self.copy.uring.prep {
                    // Runs right before its send, linked: its failure cancels the send.
                    let entry = prep(&mut msg)
                        .flags(squeue::Flags::IO_LINK)
                        .user_data(user_data(index, OP_PREP, slot));
                    ring.push(&entry)?;
                }
                let more = self.cork && i + 1 < n;
                ring.io.more_sends += u64::from(more);
                let mut entry = self
                    .send_entry(&mut msg, more)
                    .user_data(user_data(index, OP_SEND, slot));
                if i + 1 < ops {
                    let mut flags = squeue::Flags::IO_LINK;
                    if self.skip_ok {
                        flags |= squeue::Flags::SKIP_SUCCESS;
                        self.silent.push_back(slot);
                    }
                    entry = entry.flags(flags);
                } else {
                    self.chain_tail = Some(slot);
                }
                self.hand_over(msg);
                ring.push(&entry)?;
            }
            self.chain = chain;
            self.tx_inflight = n;
            if let Some(msg) = linked_rx {
                // Its data cannot be there before the send has gone out: it waits for
                // readiness rather than first trying a receive that could only fail.
                let ioprio = if ring.setup.poll_first { POLL_FIRST } else { 0 };
                self.post_recv(ring, index, msg, 0, ioprio)?;
                self.rx_linked = true;
            }
        }
        if self.tx_inflight == 0 && self.flow.wants_half_close() {
            // The client's last send is in the socket: its end of file follows it. A
            // plain shutdown(2), as a forward client's after its run, not an SQE.
            // SAFETY: the fd stays open for as long as this connection exists.
            if unsafe { libc::shutdown(self.fd, libc::SHUT_WR) } != 0 {
                let e = std::io::Error::last_os_error();
                return Err(Error::io("closing the sending side", e));
            }
            self.flow.half_closed();
        }
        if self.multishot.is_some() {
            self.pump_multishot(ring, index, now)?;
        } else if self.rx.is_none() && self.flow.wants_rx() {
            if let Some(msg) = self.flow.rx_buffer() {
                self.post_recv(ring, index, msg, 0, 0)?;
            }
        }
        self.pump_receipts(ring, index)?;
        self.check_done(now);
        Ok(())
    }

    /// A splice send moves the whole message into the pipe at once: a pipe the kernel
    /// granted smaller than that is an error naming the limit.
    fn pipe_too_small(&self, chain: &[Box<Message>]) -> Option<Error> {
        self.copy.uring.prep?;
        let (pc, offset) = chain
            .iter()
            .filter_map(|m| m.file_span())
            .find(|(pc, offset)| !pc.pipe().is_some_and(|p| p.holds(*offset, self.size)))?;
        Some(Error::Resource(format!(
            "io_uring splices a whole message into the pipe, but the kernel granted a pipe of \
             {} bytes, too small for {} bytes at offset {offset}; {}",
            pc.pipe_capacity().unwrap_or(0),
            self.size,
            crate::pagecache::pipe_limits()
        )))
    }

    /// Keeps one read-receipt operation posted while receipts are owed (stream receiver)
    /// or due (stream sender): sendfile and splice.
    fn pump_receipts(&mut self, ring: &mut Ring<'_>, index: u32) -> Result<(), Error> {
        if self.receipt_op || self.error.is_some() {
            return Ok(());
        }
        let target = self.target();
        let owed = self.flow.receipts_owed().min(RECEIPTS.len());
        let entry = if owed > 0 {
            // RECEIPTS is static: valid for as long as the kernel may read it.
            let buf = RECEIPTS.as_ptr();
            on_target!(target, |fd| opcode::Send::new(fd, buf, owed as u32)
                .flags(libc::MSG_NOSIGNAL)
                .build())
        } else {
            let due = self.flow.receipts_due().min(RECEIPTS.len());
            let Some(buf) = self.receipt_buf.as_mut().filter(|_| due > 0) else {
                return Ok(());
            };
            // The boxed buffer keeps its address until the completion (or is leaked by
            // `abandon`).
            let buf = buf.as_mut_ptr();
            on_target!(target, |fd| opcode::Recv::new(fd, buf, due as u32).build())
        };
        ring.reserve(1)?;
        ring.push(&entry.user_data(user_data(index, OP_RECEIPT, u16::from(owed > 0))))?;
        self.receipt_op = true;
        Ok(())
    }

    /// A read-receipt operation completed; `sent`: it was a send.
    fn receipt_done(&mut self, sent: bool, res: i32) -> Result<(), Error> {
        self.receipt_op = false;
        match res {
            n if n > 0 && sent => {
                self.flow.receipts_sent(n as usize);
                Ok(())
            }
            n if n > 0 => {
                let buf = self.receipt_buf.as_ref().expect("a receipt buffer");
                self.flow.receipts_received(&buf[..n as usize])
            }
            0 if !sent => Err(self.flow.receipts_cut_short()),
            n => Err(Error::io(
                if sent {
                    "sending read receipts"
                } else {
                    "receiving read receipts"
                },
                std::io::Error::from_raw_os_error(-n.min(-1)),
            )),
        }
    }

    /// The SQE in front of a send completed: it must have moved the whole message.
    fn prep_done(&self, res: i32) -> Result<(), Error> {
        match res {
            // An earlier send in the chain failed; that send reports it.
            n if n == -libc::ECANCELED => Ok(()),
            n if n < 0 => Err(Error::io(
                "splicing the message into the pipe",
                std::io::Error::from_raw_os_error(-n),
            )),
            n if n as usize != self.size => Err(Error::Internal(format!(
                "the splice into the pipe moved {n} of {} bytes",
                self.size
            ))),
            _ => Ok(()),
        }
    }

    /// Copies out what waits in provided buffers, re-arms a multishot receive the kernel
    /// ended for lack of buffers, and cancels it once nothing more is due.
    fn pump_multishot(
        &mut self,
        ring: &mut Ring<'_>,
        index: u32,
        now: Instant,
    ) -> Result<(), Error> {
        self.consume_chunks(ring, now)?;
        let done = self.flow.is_done();
        let target = self.target();
        let ms = self.multishot.as_mut().expect("multishot connection");
        if !ms.armed && !ms.eof && ms.pending.is_empty() && !done && self.flow.wants_rx() {
            let entry = on_target!(target, |fd| opcode::RecvMulti::new(fd, BUF_GROUP).build());
            ring.push(&entry.user_data(user_data(index, OP_RECV_MULTI, 0)))?;
            ms.armed = true;
        } else if ms.armed && !ms.canceling && done {
            Self::cancel_multishot(ms, ring, index)?;
        }
        Ok(())
    }

    /// Cancels the armed multishot receive; its -ECANCELED is then no error.
    fn cancel_multishot(ms: &mut Multishot, ring: &mut Ring<'_>, index: u32) -> Result<(), Error> {
        let target = user_data(index, OP_RECV_MULTI, 0);
        let entry = opcode::AsyncCancel::new(target).build();
        ring.push(&entry.user_data(user_data(index, OP_CANCEL, 0)))?;
        ms.canceling = true;
        ms.canceled = true;
        Ok(())
    }

    /// Copies pending chunks out into messages, as far as the pool has buffers.
    fn consume_chunks(&mut self, ring: &mut Ring<'_>, now: Instant) -> Result<(), Error> {
        let ms = self.multishot.as_mut().expect("multishot connection");
        let pbuf = ring.pbuf.as_mut().expect("a provided-buffer ring");
        while let Some(&(bid, off, len)) = ms.pending.front() {
            if ms.msg.is_none() {
                match self.flow.rx_buffer() {
                    Some(m) => ms.msg = Some((m, 0)),
                    None => break,
                }
            }
            let (msg, have) = ms.msg.as_mut().expect("just set");
            let chunk = pbuf.chunk(bid, off, len);
            let n = chunk.len().min(self.size - *have);
            msg.deserialize_from(*have, &chunk[..n]);
            *have += n;
            if off + n as u32 == len {
                ms.pending.pop_front();
                pbuf.recycle(bid);
            } else {
                ms.pending.front_mut().expect("still there").1 += n as u32;
            }
            if *have == self.size {
                let (msg, _) = ms.msg.take().expect("just filled");
                self.flow.received_in_fields(msg, now)?;
            }
        }
        if ms.eof && ms.pending.is_empty() {
            ms.eof = false;
            let partial = match ms.msg.take() {
                Some((msg, have)) => {
                    self.flow.release(msg);
                    have
                }
                None => 0,
            };
            self.flow.eof(partial)?;
        }
        Ok(())
    }

    /// A multishot receive or its cancellation completed.
    fn multishot_done(
        &mut self,
        ring: &mut Ring<'_>,
        index: u32,
        op: u64,
        cqe: Cqe,
        now: Instant,
    ) -> Result<(), Error> {
        let ms = self.multishot.as_mut().expect("multishot connection");
        if op == OP_CANCEL {
            ms.canceling = false;
            return Ok(());
        }
        if !cqueue::more(cqe.flags) {
            ms.armed = false;
        }
        match cqe.res {
            n if n > 0 => {
                let bid = cqueue::buffer_select(cqe.flags)
                    .ok_or_else(|| Error::Internal("multishot receive without a buffer".into()))?;
                ms.pending.push_back((bid, 0, n as u32));
            }
            0 => ms.eof = true,
            // Out of provided buffers: re-armed once chunks are consumed.
            n if -n == libc::ENOBUFS => {}
            // Canceled by us once the flow was done.
            n if -n == libc::ECANCELED && ms.canceled => {}
            n => return Err(Error::io("receive", std::io::Error::from_raw_os_error(-n))),
        }
        if self.error.is_some() {
            self.recycle_provided(ring);
            return Ok(());
        }
        self.consume_chunks(ring, now)?;
        // A connection that cannot consume what arrives (its echoes are stuck: the peer
        // does not read) must not take the ring's provided buffers from its neighbours:
        // past a share of them, its receive is cancelled, and re-armed once it drains.
        let ms = self.multishot.as_mut().expect("multishot connection");
        if ms.armed && !ms.canceling && ms.pending.len() >= PENDING_SHARE {
            Self::cancel_multishot(ms, ring, index)?;
        }
        Ok(())
    }

    /// Gives every provided buffer this connection still holds back to the ring: they
    /// are the worker's, shared by all its connections, and a failed or finished
    /// connection must not take them along.
    pub fn recycle_provided(&mut self, ring: &mut Ring<'_>) {
        let (Some(ms), Some(pbuf)) = (self.multishot.as_mut(), ring.pbuf.as_mut()) else {
            return;
        };
        for (bid, _, _) in ms.pending.drain(..) {
            pbuf.recycle(bid);
        }
    }

    fn hand_over(&mut self, msg: Box<Message>) {
        let slot = msg.slot() as usize;
        debug_assert!(
            self.in_kernel[slot].is_none(),
            "slot {slot} handed over twice"
        );
        self.in_kernel[slot] = Some(msg);
        self.held += 1;
    }

    fn take_back(&mut self, slot: u16) -> Result<Box<Message>, Error> {
        let msg = self
            .in_kernel
            .get_mut(slot as usize)
            .and_then(Option::take)
            .ok_or_else(|| {
                Error::Internal(format!(
                    "a completion for buffer {slot}, which the kernel does not hold"
                ))
            })?;
        self.held -= 1;
        Ok(msg)
    }

    /// The first `k` silent sends completed: their chain got past them.
    fn settle_silent(&mut self, k: usize) -> Result<(), Error> {
        for _ in 0..k {
            let slot = self.silent.pop_front().expect("k within silent");
            let msg = self.take_back(slot)?;
            self.tx_inflight -= 1;
            self.flow.sent(&msg);
            self.flow.release(msg);
        }
        Ok(())
    }

    /// Where this connection's SQEs point: its fixed file, or its descriptor.
    fn target(&self) -> Target {
        match self.file {
            Some(slot) => Target::Fixed(slot),
            None => Target::Fd(self.fd),
        }
    }

    /// `more`: another send of the same chain follows this one.
    fn send_entry(&mut self, msg: &mut Message, more: bool) -> squeue::Entry {
        let target = self.target();
        let args = &mut self.args[msg.slot() as usize];
        (self.copy.uring.send)(target, msg, args, more)
    }

    fn post_recv(
        &mut self,
        ring: &mut Ring<'_>,
        index: u32,
        mut msg: Box<Message>,
        from: usize,
        ioprio: u16,
    ) -> Result<(), Error> {
        let slot = msg.slot();
        let target = self.target();
        let rx = self.flow.spec().rx;
        let args = &mut self.args[slot as usize];
        let want = self.flow.rx_want(from);
        let entry =
            match rx::uring_recv(rx, self.copy, target, &mut msg, (from, want), args, ioprio) {
                Ok(entry) => entry,
                Err(e) => {
                    self.flow.release(msg);
                    return Err(e);
                }
            };
        self.rx = Some((slot, from));
        self.hand_over(msg);
        ring.push(&entry.user_data(user_data(index, OP_RECV, slot)))
    }

    /// Whole messages moved so far, zero-copy completions included.
    fn moved(&self) -> u64 {
        let s = &self.flow.stats;
        s.msgs_sent + s.msgs_received + s.zc.completions
    }

    /// Handles one completion for this connection; may queue a follow-up receive.
    pub fn complete(&mut self, ring: &mut Ring<'_>, index: u32, cqe: Cqe, now: Instant) {
        let before = self.moved();
        let (_, op, slot) = decode(cqe.user_data);
        let result = match op {
            OP_SEND => self.send_done(slot, cqe),
            OP_RECV => self.recv_done(ring, index, slot, cqe.res, now),
            OP_PREP => self.prep_done(cqe.res),
            OP_RECEIPT => self.receipt_done(slot == 1, cqe.res),
            _ => self.multishot_done(ring, index, op, cqe, now),
        };
        if let Err(e) = result {
            self.fail(e);
        }
        // Only a whole message counts as progress: a peer that trickles bytes does not
        // keep its connection alive.
        if self.moved() != before {
            self.last_progress = now;
        }
        self.check_done(now);
    }

    /// A silent send failed: the kernel cancelled what was linked after it without
    /// completions. None of it ran, so its buffers are ours again.
    fn drop_rest_of_chain(&mut self) -> Result<(), Error> {
        let rest: Vec<u16> = self
            .silent
            .drain(..)
            .chain(self.chain_tail.take())
            .collect();
        for slot in rest {
            let msg = self.take_back(slot)?;
            self.tx_inflight -= 1;
            self.flow.release(msg);
        }
        if std::mem::take(&mut self.rx_linked) {
            let (slot, _) = self.rx.take().expect("a linked receive");
            let msg = self.take_back(slot)?;
            self.flow.release(msg);
        }
        Ok(())
    }

    fn send_done(&mut self, slot: u16, cqe: Cqe) -> Result<(), Error> {
        if cqueue::notif(cqe.flags) {
            // The kernel is done with the pages: only now may the buffer be reused.
            self.flow.stats.zc.completions += 1;
            if (cqe.res as u32) & IORING_NOTIF_USAGE_ZC_COPIED != 0 {
                self.flow.stats.zc.copied += 1;
            }
            let msg = self.take_back(slot)?;
            self.flow.release(msg);
            return Ok(());
        }
        // Silent sends before this one in its chain succeeded; a silent send posts only
        // when it failed, and then takes what was linked after it along.
        let silent_failed = match self.silent.iter().position(|&s| s == slot) {
            Some(pos) => {
                self.settle_silent(pos)?;
                self.silent.pop_front();
                true
            }
            None => {
                self.settle_silent(self.silent.len())?;
                if self.chain_tail == Some(slot) {
                    self.chain_tail = None;
                }
                false
            }
        };
        self.tx_inflight -= 1;
        if cqe.res < 0 || cqe.res as usize != self.size || silent_failed {
            // Some of a message, or of the chain behind it, may have gone out.
            self.tx_cut = true;
        }
        let more = cqueue::more(cqe.flags);
        if more {
            self.flow.stats.zc.sends += 1;
        }
        let outcome = if cqe.res < 0 {
            Err(send_error(cqe.res))
        } else if cqe.res as usize != self.size {
            // MSG_WAITALL retries a partial send; one that still ends short means the
            // socket broke under it (a reset, a shutdown).
            Err(Error::Peer(format!(
                "connection broke mid-send: {} of {} bytes went out",
                cqe.res, self.size
            )))
        } else {
            Ok(())
        };
        if outcome.is_ok() {
            if let Some(msg) = self.in_kernel.get(slot as usize).and_then(Option::as_deref) {
                self.flow.sent(msg);
            }
        }
        if !more {
            // No notification follows: the buffer is free now.
            let msg = self.take_back(slot)?;
            self.flow.release(msg);
        }
        if silent_failed {
            self.drop_rest_of_chain()?;
        }
        outcome
    }

    fn recv_done(
        &mut self,
        ring: &mut Ring<'_>,
        index: u32,
        slot: u16,
        res: i32,
        now: Instant,
    ) -> Result<(), Error> {
        let (_, from) = self.rx.take().expect("a receive in flight");
        if std::mem::take(&mut self.rx_linked) && res != -libc::ECANCELED {
            // A linked receive starts only once every send before it succeeded.
            self.settle_silent(self.silent.len())?;
        }
        let msg = self.take_back(slot)?;
        if res < 0 {
            self.flow.release(msg);
            return Err(Error::io(
                "receive",
                std::io::Error::from_raw_os_error(-res),
            ));
        }
        if res == 0 {
            self.flow.release(msg);
            return self.flow.eof(from);
        }
        let got = from + res as usize;
        if got < self.size {
            if self.error.is_some() {
                self.flow.release(msg);
                return Ok(());
            }
            return self.post_recv(ring, index, msg, got, 0);
        }
        self.flow.received(msg, now)?;
        // A bulk discard may have gone past the message: whole ones are counted, and a
        // part of the next is where the next receive starts.
        let part = self.flow.discarded(got - self.size, now)?;
        if part > 0 && self.error.is_none() {
            let next = self.flow.rx_buffer().ok_or_else(|| {
                Error::Internal("no receive buffer for the rest of a bulk discard".into())
            })?;
            return self.post_recv(ring, index, next, part, 0);
        }
        Ok(())
    }

    /// Records the first error and shuts the socket so everything in flight completes.
    pub fn fail(&mut self, e: Error) {
        if self.error.is_none() {
            self.error = Some(e);
            self.failed_at = Some(Instant::now());
        }
        self.shut_down();
    }

    /// Ends the connection at its next message boundary: nothing new is submitted, and
    /// once no send is in flight it fails with `e` (a server that stops).
    pub fn stop_at_boundary(&mut self, e: Error) {
        self.stopping = true;
        if self.tx_inflight == 0 {
            self.fail(e);
        }
    }

    /// A bug caught in this connection's handling: that is what its log line says, over
    /// whatever failed before.
    pub fn fail_internal(&mut self, e: Error) {
        self.error = Some(e);
        self.failed_at.get_or_insert_with(Instant::now);
        self.shut_down();
    }

    /// Shuts the socket so that what is in flight completes. A server with no send in
    /// flight and none cut short shuts only the receiving side: its byte stream ends at a
    /// message boundary, where its end notice may still go (see `server::serving`); a
    /// failed connection submits nothing more (see [`UConn::pump`]).
    fn shut_down(&mut self) {
        if !self.shut {
            self.shut = true;
            self.at_boundary =
                self.flow.spec().role == Role::Server && self.tx_inflight == 0 && !self.tx_cut;
            let how = if self.at_boundary {
                libc::SHUT_RD
            } else {
                libc::SHUT_RDWR
            };
            // SAFETY: the fd stays open for as long as this connection exists.
            unsafe { libc::shutdown(self.fd, how) };
        }
    }

    /// Whether the byte stream ended at a message boundary of this side's when the
    /// connection failed ([`crate::conn::ConnReport::at_boundary`]).
    pub fn at_boundary(&self) -> bool {
        self.at_boundary
    }

    /// Operations of this connection the kernel still has, buffers or not.
    fn in_kernel(&self) -> bool {
        self.held > 0
            || self.receipt_op
            || self
                .multishot
                .as_ref()
                .is_some_and(|m| m.armed || m.canceling)
    }

    fn check_done(&mut self, now: Instant) {
        if self.done_at.is_none()
            && self.error.is_none()
            && !self.in_kernel()
            && self.flow.is_done()
            && self.flow.pool_home()
        {
            self.done_at = Some(now);
            self.flow.finish(now);
        }
    }

    /// Nothing of this connection is left in the kernel and it either finished or failed.
    pub fn is_finished(&self) -> bool {
        !self.in_kernel() && (self.done_at.is_some() || self.error.is_some())
    }

    /// Fails the connection if no whole message has moved for longer than `timeout`
    /// while it waits on the kernel.
    pub fn check_timeout(&mut self, now: Instant, timeout: Duration) {
        if self.in_kernel()
            && self.error.is_none()
            && now.saturating_duration_since(self.last_progress) > timeout
        {
            self.fail(Error::Timeout(format!(
                "peer too slow: no whole message moved within {:.1} s",
                timeout.as_secs_f64()
            )));
        }
    }

    /// Failed, yet the kernel still holds some of its operations `grace` after the failure
    /// (they should all have ended once the socket was shut down).
    pub fn stuck(&self, now: Instant, grace: Duration) -> bool {
        self.in_kernel()
            && self
                .failed_at
                .is_some_and(|t| now.saturating_duration_since(t) > grace)
    }

    /// `--rate`: when this connection's next send is due, if only the clock holds it
    /// back (no chain of sends in flight, whose completion wakes the ring anyway).
    pub fn send_at(&self) -> Option<Instant> {
        if self.tx_inflight > 0 || self.error.is_some() || self.is_finished() {
            return None;
        }
        self.flow.send_at()
    }

    /// Completions that must arrive before this connection can do anything new: a
    /// pending receive may finish any time (1); a chain of sends only frees the way for
    /// the next chain once all its results are in.
    pub fn completions_needed(&self) -> usize {
        if self.rx.is_some() || self.tx_inflight == 0 || self.receipt_op {
            1
        } else {
            // Silent sends post nothing on success.
            (self.tx_inflight - self.silent.len()).max(1)
        }
    }

    /// Whether the kernel still has something of this connection, e.g. after a failure.
    pub fn held(&self) -> bool {
        self.in_kernel()
    }

    /// The connection's flow and what its owner keeps beside it, once it is finished.
    pub fn into_parts(mut self) -> (Flow, X) {
        self.flow.close_by_ref(false);
        (self.flow, self.extra)
    }

    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }

    pub fn has_error(&self) -> bool {
        self.error.is_some()
    }

    /// Gives up on buffers the kernel never returned: they are leaked, not freed, so a
    /// late write can never land in reused memory.
    pub fn abandon(&mut self) {
        for m in self.in_kernel.iter_mut().filter_map(Option::take) {
            std::mem::forget(m);
        }
        std::mem::forget(std::mem::take(&mut self.args));
        if std::mem::take(&mut self.receipt_op) {
            std::mem::forget(self.receipt_buf.take());
        }
        self.held = 0;
        self.abandoned = true;
        self.flow.leaked = true;
        self.silent.clear();
        self.chain_tail = None;
        if let Some(ms) = self.multishot.as_mut() {
            ms.armed = false;
            ms.canceling = false;
        }
    }
}

fn send_error(res: i32) -> Error {
    let e = std::io::Error::from_raw_os_error(-res);
    if -res == libc::ECANCELED {
        Error::Peer("send canceled after an earlier send in its chain failed".into())
    } else {
        Error::io("send", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips() {
        let ud = user_data(0xdead_beef, OP_RECV, 0xffff);
        assert_eq!(decode(ud), (0xdead_beef, OP_RECV, 0xffff));
        assert_eq!(decode(user_data(0, OP_SEND, 3)), (0, OP_SEND, 3));
    }
}
