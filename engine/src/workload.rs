//! Echo and stream, written once over whichever backend moves the bytes.
//!
//! A [`Flow`] is one connection's workload seen from one side. It makes every decision
//! that is not I/O — which message goes out next, what a received message means, when the
//! run is over — and owns the connection's buffer pool and counts. Backends call it; it
//! never calls a backend, io_uring or libc. A backend's whole contract is:
//!
//! - ask [`Flow::next_tx`] for a message to send and hand it to the kernel whole, in order;
//!   report it with [`Flow::sent`] once the kernel took every byte, and give the buffer
//!   back with [`Flow::release`] once the kernel no longer reads it (zero-copy: on its
//!   completion);
//! - while [`Flow::wants_rx`], receive whole messages into buffers from
//!   [`Flow::rx_buffer`] and pass each to [`Flow::received`]; report the end of the
//!   stream with [`Flow::eof`];
//! - once [`Flow::wants_half_close`] and no send is in flight, shut the socket's sending
//!   side and say so with [`Flow::half_closed`];
//! - when [`Flow::send_at`] names a time (an open-loop client, `--rate`, whose next
//!   message is not yet due), block on nothing past it, and ask [`Flow::next_tx`] again
//!   then;
//! - stop when [`Flow::is_done`] and every buffer is home ([`Flow::pool_home`]).
//!
//! A stream flows one way or both ([`Direction`]), and the client always decides when it
//! ends. A client that sends stops at its deadline and half-closes; a server that sends
//! sees that end of file, finishes the message it is on, and sends one end-of-stream
//! record (a message-sized buffer tagged [`crate::message::END_TAG`]) after its last
//! message, so the client knows where the messages stop and the server's stats frame
//! begins. In reverse the client sends nothing: at its deadline it half-closes at once
//! and keeps receiving until that record.
//!
//! Under a receive path that leaves the bytes outside the buffer (`--rx discard` or
//! `zerocopy`, see `path::rx`) the backend still takes a buffer per message and passes it
//! to [`Flow::received`] once the message's bytes have all arrived; zero-copy receives
//! first show the flow each span where it lies ([`Flow::rx_seen`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cputime::ThreadClock;
use crate::error::Error;
use crate::live::LiveCounters;
use crate::message::{verify_span, Message, Mismatch, RxTarget, Template};
use crate::path::path;
use crate::pool::{receipt_interval, Pool};
use crate::proof::ReadProof;
use crate::stats::{FlowStats, Latency, Progress};
use crate::vocab::{Direction, Mode, Role, RxMode, Verify, Workload};

/// The most one discarding receive of a server's stream asks for (whole messages, at least
/// one): as much as a bulk receiver drops per call, so that the receiver's calls — and the
/// window updates and ACKs that follow each — do not scale with the message count. A
/// recorded choice: `stats.io` shows the calls it took.
pub const DISCARD_SPAN: usize = 1 << 20;

/// What a flow needs to know about its run.
#[derive(Debug, Clone, Copy)]
pub struct FlowSpec {
    pub role: Role,
    pub workload: Workload,
    pub mode: Mode,
    pub verify: Verify,
    pub depth: usize,
    /// The client's measured interval; unused by servers.
    pub duration: Duration,
    /// The warm-up before it (`--omit`): run, then forgotten. A client's starts at
    /// [`Flow::begin`]; a server's, on its own clock, at its first message (received or
    /// sent), since it cannot know when the client started.
    pub omit: Duration,
    /// Who sends the stream (echo: always forward).
    pub direction: Direction,
    /// How this side receives (`--rx`).
    pub rx: RxMode,
    /// A client's count (`--messages`, `-n`): it stops once it has sent this many after
    /// the warm-up, and `duration` is only a cap; `None`: it runs `duration`.
    pub messages: Option<u64>,
    /// `--rate`: an echo client's open-loop schedule; `None`: closed loop (each send
    /// waits only for a free place among `depth`).
    pub schedule: Option<Schedule>,
}

/// When an open-loop echo client (`--rate`) sends: message `k` is due `phase + k ×
/// period` after the flow begins, whether or not earlier echoes have come back, and its
/// round trip is timed from that due time, not from when it went out. A stall — the
/// server's, the network's or the client's own — delays the sends behind it, and their
/// wait counts in their latency: no coordinated omission.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Nanoseconds between two of this connection's sends (fractions kept, so that a
    /// rate's schedule does not drift).
    pub period_ns: f64,
    /// Nanoseconds from the flow's start to its first send: connections are spread over
    /// one period, so that the run's sends are evenly spaced.
    pub phase_ns: f64,
}

impl Schedule {
    /// Connection `index` of `connections` sharing `per_second` messages a second.
    pub fn new(per_second: f64, connections: usize, index: usize) -> Schedule {
        let per_conn = per_second / connections.max(1) as f64;
        let period_ns = 1e9 / per_conn;
        Schedule {
            period_ns,
            phase_ns: period_ns * index as f64 / connections.max(1) as f64,
        }
    }

    /// How long after the start message `seq` is due.
    pub fn due(&self, seq: u64) -> Duration {
        Duration::from_nanos((self.phase_ns + seq as f64 * self.period_ns) as u64)
    }
}

impl FlowSpec {
    /// Whether this side receives at all: in echo both do; in a stream, whoever the
    /// direction makes a receiver.
    pub fn receives(&self) -> bool {
        self.workload == Workload::Echo || self.receives_stream()
    }

    /// Whether this side sends messages: in echo both do (the server its echoes); in a
    /// stream, whoever the direction makes a sender.
    pub fn sends(&self) -> bool {
        self.workload == Workload::Echo || self.sends_stream()
    }

    /// This side originates a stream.
    pub fn sends_stream(&self) -> bool {
        self.workload == Workload::Stream && self.direction.sends(self.role)
    }

    /// This side receives a stream.
    pub fn receives_stream(&self) -> bool {
        self.workload == Workload::Stream && self.direction.receives(self.role)
    }
}

/// The shape of the buffer pool a side needs ([`crate::pool::PoolPlan::new`]): a side
/// that originates messages (every client; a server that sends a stream) keeps its send
/// buffers apart from its receive buffer; a side that only receives or echoes lends any
/// buffer either way.
pub fn pool_role(role: Role, workload: Workload, direction: Direction) -> Role {
    if role == Role::Client || (workload == Workload::Stream && direction.server_sends()) {
        Role::Client
    } else {
        Role::Server
    }
}

/// The error a client's run ends with when the server's end notice (see `wire`) arrived
/// in place of a message: the server's reason, or what was wrong with the notice.
fn server_ended(bytes: &[u8]) -> Error {
    match crate::wire::End::from_notice(bytes) {
        Ok(end) => Error::ServerEnded(end.describe()),
        Err(e) => Error::Peer(format!(
            "server sent a frame in place of a message, and not a valid end notice: {e}"
        )),
    }
}

/// One connection's workload state on one side.
pub struct Flow {
    spec: FlowSpec,
    template: Arc<Template>,
    pool: Pool,
    deadline: Option<Instant>,
    /// A client's count: messages it may still hand out once the warm-up is over.
    budget: Option<u64>,
    stopping: bool,
    next_seq: u64,
    /// Echo client: send times of messages whose echo has not arrived, oldest first.
    sent_at: VecDeque<Instant>,
    expect_seq: u64,
    /// Echo server: received messages waiting to be sent back, oldest first.
    echo_queue: VecDeque<Box<Message>>,
    eof: bool,
    /// A sending server: the end-of-stream record was handed out, and the kernel took it.
    end_queued: bool,
    end_sent: bool,
    /// A receiving client: the server's end-of-stream record arrived.
    end_seen: bool,
    /// A client in reverse or bidir: its sending side is shut.
    half_closed: bool,
    /// Where receives land, poisoned before each one.
    rx_target: RxTarget,
    /// Zero-copy receive: bytes of the current message seen so far, and the first thing
    /// wrong with them.
    rx_seen: usize,
    rx_bad: Option<Mismatch>,
    /// A client's zero-copy receive: the server's end notice, as its bytes are seen.
    rx_notice: Option<Vec<u8>>,
    started: Option<Instant>,
    /// When the flow began: a schedule's (`--rate`) time zero, kept through the warm-up.
    origin: Option<Instant>,
    first_rx: Option<Instant>,
    first_tx: Option<Instant>,
    finished: Option<Instant>,
    pub stats: FlowStats,
    pub latency: Latency,
    /// Client: when each message completed, to tell a steady run from a stalled one.
    pub progress: Progress,
    /// Some buffers were given up on while the kernel still held them: they are leaked,
    /// so the memory they took is never free again.
    pub leaked: bool,
    /// Debug builds: panic on the first received message (see [`Flow::inject_fault`]).
    #[cfg(debug_assertions)]
    fault: bool,
    /// sendfile, splice: sent buffers wait for the peer's read before they go home.
    proof: Option<ReadProof>,
    /// `--interval`: the thread's live counts, which a reporter samples as the run goes.
    live: Option<Arc<LiveCounters>>,
    /// `--omit`: when the warm-up ends and the measured interval begins.
    measure_at: Option<Instant>,
    /// A server's warm-up waits for its first message to start.
    warm_up_pending: bool,
    /// The warm-up ended and nobody has asked yet ([`Flow::take_warmed`]).
    warmed_news: bool,
    /// The thread's CPU clock when this flow's warm-up ended.
    pub warmed_clock: Option<ThreadClock>,
    /// `--rate`: how late each send went out after its due time (the client's own delay:
    /// a busy thread, a full socket, a wait for a place among `depth`).
    pub send_lag: Latency,
    /// `--rate`: messages whose due time came while `depth` echoes were outstanding, so
    /// they waited for one to come back.
    pub held_back: u64,
}

impl Flow {
    pub fn new(spec: FlowSpec, template: Arc<Template>, pool: Pool) -> Flow {
        Flow {
            spec,
            deadline: None,
            budget: None,
            stopping: false,
            next_seq: 0,
            sent_at: VecDeque::with_capacity(spec.depth),
            expect_seq: 0,
            echo_queue: VecDeque::with_capacity(spec.depth),
            eof: false,
            end_queued: false,
            end_sent: false,
            end_seen: false,
            half_closed: false,
            rx_target: if path(spec.mode).wire {
                RxTarget::Wire
            } else {
                RxTarget::Fields
            },
            rx_seen: 0,
            rx_bad: None,
            rx_notice: None,
            started: None,
            origin: None,
            first_rx: None,
            first_tx: None,
            finished: None,
            stats: FlowStats::default(),
            latency: Latency::default(),
            progress: Progress::default(),
            leaked: false,
            #[cfg(debug_assertions)]
            fault: false,
            proof: path(spec.mode).file.then(|| {
                let size = template.layout().size();
                let stream = spec.workload == Workload::Stream;
                ReadProof::new(pool.capacity(), receipt_interval(size, spec.depth), stream)
            }),
            template,
            pool,
            live: None,
            measure_at: None,
            warm_up_pending: false,
            warmed_news: false,
            warmed_clock: None,
            send_lag: Latency::default(),
            held_back: 0,
        }
    }

    /// Counts into `live` as well (`--interval`), for a reporter to sample.
    pub fn count_live(&mut self, live: Arc<LiveCounters>) {
        self.live = Some(live);
    }

    /// Debug builds only: a flow whose message size equals `COPYPERF_FAULT_PANIC_SIZE`
    /// panics on its first received message, so that tests can show that a bug while
    /// serving one connection costs that connection alone. Release builds have no hook.
    #[cfg(debug_assertions)]
    pub fn inject_fault(&mut self) {
        let size = std::env::var("COPYPERF_FAULT_PANIC_SIZE")
            .ok()
            .and_then(|v| v.parse::<usize>().ok());
        self.fault = size == Some(self.size());
    }

    /// Receives land in the fields even in two-copy: the backend copies them out of
    /// buffers the kernel picked (multishot) rather than receiving into the wire buffer.
    pub fn receive_into_fields(&mut self) {
        self.rx_target = RxTarget::Fields;
    }

    pub fn spec(&self) -> &FlowSpec {
        &self.spec
    }

    pub fn size(&self) -> usize {
        self.template.layout().size()
    }

    /// Starts the measured interval.
    /// A flow with a warm-up (`--omit`) runs it first: the measured interval begins
    /// when it ends, and the first look at the clock after that ([`Flow::next_tx`], or a
    /// message arriving) forgets what the warm-up counted. A client's warm-up starts now;
    /// a server's at its first message ([`Flow::first_message`]).
    pub fn begin(&mut self, now: Instant) {
        self.started = Some(now);
        self.origin = Some(now);
        let omit = self.spec.omit;
        if self.spec.role == Role::Client {
            self.deadline = Some(now + omit + self.spec.duration);
            self.budget = self.spec.messages;
            self.measure_at = (!omit.is_zero()).then_some(now + omit);
            self.progress.begin(now, self.spec.duration);
        } else {
            self.warm_up_pending = !omit.is_zero();
        }
    }

    /// `--rate`: when message `seq` is due (`None` in closed loop, or before the start).
    fn due(&self, seq: u64) -> Option<Instant> {
        let origin = self.origin?;
        Some(origin + self.spec.schedule?.due(seq))
    }

    /// `--rate`: when this flow next wants to send, if nothing but the clock holds it back
    /// (it has a place among `depth` and a free buffer) — a backend must not sleep past
    /// it — or its deadline, if that comes first. `None` in closed loop, or when a
    /// completion (an echo, a freed buffer) is what the flow waits for.
    pub fn send_at(&self) -> Option<Instant> {
        // Closed loop (every flow but an open-loop client's): nothing to look at.
        self.spec.schedule?;
        if self.stopping || self.sent_at.len() >= self.spec.depth || self.pool.available_tx() == 0 {
            return None;
        }
        let due = self.due(self.next_seq)?;
        Some(self.deadline.map_or(due, |d| d.min(due)))
    }

    /// A message went out or came in at `now`: a server's warm-up starts with its first.
    fn first_message(&mut self, now: Instant) {
        if self.warm_up_pending {
            self.warm_up_pending = false;
            self.measure_at = Some(now + self.spec.omit);
        }
    }

    /// Whether the warm-up (`--omit`) is still on (or, on a server, yet to start).
    pub fn warming_up(&self) -> bool {
        self.measure_at.is_some() || self.warm_up_pending
    }

    /// Whether the warm-up ended since the last call: the caller then reads what it
    /// measures around the flow afresh (counters, CPU time), from the warm-up's end.
    pub fn take_warmed(&mut self) -> bool {
        std::mem::take(&mut self.warmed_news)
    }

    /// Ends the warm-up once `now` is past it: the counts, round trips and progress
    /// start afresh from its end (failed checks stay: the damage happened), and the
    /// thread's CPU clock is read for the caller to start from.
    fn end_warm_up(&mut self, now: Instant) {
        let Some(at) = self.measure_at.filter(|&t| now >= t) else {
            return;
        };
        self.measure_at = None;
        // Messages handed out in the warm-up that the kernel takes after it are counted
        // as sent in the measured interval: they come out of the count.
        let in_flight = self.next_seq.saturating_sub(self.stats.msgs_sent);
        self.budget = self.spec.messages.map(|n| n.saturating_sub(in_flight));
        self.stats = FlowStats {
            verify_errors: self.stats.verify_errors,
            first_verify_error: self.stats.first_verify_error.take(),
            ..FlowStats::default()
        };
        self.latency = Latency::default();
        self.send_lag = Latency::default();
        self.held_back = 0;
        self.progress = Progress::default();
        if self.spec.role == Role::Client {
            self.progress.begin(at, self.spec.duration);
        }
        self.started = Some(at);
        self.first_rx = None;
        self.first_tx = None;
        self.warmed_clock = ThreadClock::now();
        self.warmed_news = true;
    }

    /// Ends the measured interval early (the user interrupted the run): nothing new is
    /// sent; what is outstanding is still awaited.
    pub fn stop(&mut self) {
        self.stopping = true;
        self.settle();
    }

    /// The next message to send, stamped (and serialized, in two-copy), or `None` when the
    /// workload has nothing to send now. A client's deadline is looked at here, whether
    /// or not it sends, and its count (`--messages`).
    pub fn next_tx(&mut self, now: Instant) -> Option<Box<Message>> {
        self.end_warm_up(now);
        let spent = self.budget == Some(0);
        if !self.stopping && (spent || self.deadline.is_some_and(|d| now >= d)) {
            self.stopping = true;
            // Buffers whose reading the peer has proved go back to the pool.
            self.settle();
        }
        let mut msg = match (self.spec.workload, self.spec.role) {
            (Workload::Echo, Role::Client) => {
                if self.stopping || self.sent_at.len() >= self.spec.depth {
                    return None;
                }
                // Open loop: nothing before its due time, which is what its round trip
                // is timed from.
                let due = match self.due(self.next_seq) {
                    Some(due) if now < due => return None,
                    Some(due) => due,
                    None => now,
                };
                let mut msg = self.pool.take_tx()?;
                if self.spec.schedule.is_some() {
                    self.send_lag.record(now.saturating_duration_since(due));
                }
                msg.stamp(self.next_seq);
                self.next_seq += 1;
                self.spend();
                self.sent_at.push_back(due);
                msg
            }
            (Workload::Echo, Role::Server) => self.echo_queue.pop_front()?,
            (Workload::Stream, _) if !self.spec.sends_stream() => return None,
            (Workload::Stream, Role::Client) => {
                if self.stopping {
                    return None;
                }
                let mut msg = self.pool.take_tx()?;
                msg.stamp(self.next_seq);
                self.next_seq += 1;
                self.spend();
                // A stream's progress is a buffer free for the next message.
                self.progress.record(now);
                msg
            }
            (Workload::Stream, Role::Server) => {
                if self.end_queued {
                    return None;
                }
                let mut msg = self.pool.take_tx()?;
                if self.eof || self.stopping {
                    // The client is done (or the server stops): the record that ends the
                    // stream, after every message before it.
                    msg.stamp_end();
                    self.end_queued = true;
                } else {
                    msg.stamp(self.next_seq);
                    self.next_seq += 1;
                }
                msg
            }
        };
        self.first_message(now);
        self.first_tx.get_or_insert(now);
        if path(self.spec.mode).wire {
            msg.serialize();
        }
        Some(msg)
    }

    /// A client handed out a message: one fewer left of its count, once the warm-up
    /// is over (the count is of measured messages).
    fn spend(&mut self) {
        if self.measure_at.is_none() {
            if let Some(left) = &mut self.budget {
                *left -= 1;
            }
        }
    }

    /// The kernel took every byte of `msg`.
    pub fn sent(&mut self, msg: &Message) {
        if self.end_queued && msg.is_end() {
            // The end-of-stream record is framing, not a message: not counted.
            self.end_sent = true;
            return;
        }
        self.stats.bytes_sent += msg.size() as u64;
        self.stats.msgs_sent += 1;
        if let Some(live) = &self.live {
            live.sent(msg.size() as u64);
        }
        if let Some(proof) = &mut self.proof {
            proof.sent(msg);
        }
    }

    /// A buffer nobody (the kernel included) holds any more. Sent by reference (sendfile,
    /// splice), it goes home only once the peer has read it (see `proof`).
    pub fn release(&mut self, msg: Box<Message>) {
        match &mut self.proof {
            Some(proof) => {
                if let Some(msg) = proof.release(msg) {
                    self.pool.put(msg);
                }
                self.settle();
            }
            None => self.pool.put(msg),
        }
    }

    /// Sends buffers home whose proof of reading has arrived, and every one once the flow
    /// is done: nothing is written into them again.
    fn settle(&mut self) {
        let all = self.is_done();
        if let Some(proof) = &mut self.proof {
            for msg in proof.proven(all) {
                self.pool.put(msg);
            }
        }
    }

    /// The page cache the buffers live in (sendfile, splice).
    pub fn page_cache(&self) -> Option<&crate::pagecache::PageCache> {
        self.pool.page_cache()
    }

    /// Stream receiver, sendfile or splice: read-receipt bytes owed to the sender and not
    /// yet handed to the kernel (send them from [`crate::proof::RECEIPTS`]).
    pub fn receipts_owed(&self) -> usize {
        self.proof.as_ref().map_or(0, |p| p.owed() as usize)
    }

    /// The kernel took `n` receipt bytes.
    pub fn receipts_sent(&mut self, n: usize) {
        if let Some(proof) = &mut self.proof {
            proof.receipts_sent(n as u64);
        }
        self.settle();
    }

    /// The server closed its side while read receipts were still due: the error either
    /// engine reports.
    pub fn receipts_cut_short(&self) -> Error {
        Error::Peer(format!(
            "server closed the connection with {} outstanding",
            crate::vocab::count(self.receipts_due() as u64, "read receipt", "read receipts")
        ))
    }

    /// Stream sender, sendfile or splice: receipt bytes the receiver will still send for
    /// what was sent so far; a backend keeps a receive for them posted while any are due.
    pub fn receipts_due(&self) -> usize {
        match (&self.proof, self.spec.workload, self.spec.role) {
            (Some(p), Workload::Stream, Role::Client) => p.due() as usize,
            _ => 0,
        }
    }

    /// Receipt bytes arrived from the receiver.
    pub fn receipts_received(&mut self, bytes: &[u8]) -> Result<(), Error> {
        match &mut self.proof {
            Some(p) if self.spec.workload == Workload::Stream => p.receipts_received(bytes)?,
            _ => {
                return Err(Error::Peer(
                    "server sent data that was not asked for".into(),
                ))
            }
        }
        self.settle();
        Ok(())
    }

    /// Puts what the page-cache modes did (sendfile, splice) into the stats, once the
    /// connection has ended: the proofs, the pipe the kernel granted, and the calls made
    /// beside the counted sends (`count_extra`: added to the syscalls, on the engine that
    /// made them).
    pub fn close_by_ref(&mut self, count_extra: bool) {
        let Some(proof) = &self.proof else {
            return;
        };
        let mut s = proof.stats;
        if let Some(pc) = self.pool.page_cache() {
            s.pipe_bytes = pc.pipe_capacity().map(|b| b as u64);
            if count_extra {
                s.extra_calls = pc.extra_calls();
                self.stats.io.syscalls += s.extra_calls;
            }
        }
        self.stats.by_ref = s;
    }

    /// True while a receive is useful: an echo is due, the server's stream has not ended
    /// (a receiving client), or the client's has not (a server, which in reverse receives
    /// only to see the client's end of file).
    pub fn wants_rx(&self) -> bool {
        match (self.spec.workload, self.spec.role) {
            (Workload::Echo, Role::Client) => !self.sent_at.is_empty(),
            (Workload::Stream, Role::Client) => self.spec.receives_stream() && !self.end_seen,
            (_, Role::Server) => !self.eof,
        }
    }

    /// A server that only sends: its receive waits for nothing but the client's end of
    /// file, so a backend may look for that now and then instead of after every send.
    pub fn rx_watches_eof_only(&self) -> bool {
        self.spec.role == Role::Server
            && self.spec.workload == Workload::Stream
            && !self.spec.receives_stream()
    }

    /// A client in reverse or bidir is done sending (its deadline passed, or it was
    /// stopped) and has yet to shut its sending side: the server's cue to end its
    /// stream. The backend does it once no send of its own is in flight.
    pub fn wants_half_close(&self) -> bool {
        self.spec.role == Role::Client
            && self.spec.workload == Workload::Stream
            && self.spec.direction != Direction::Forward
            && self.stopping
            && !self.half_closed
    }

    /// The backend shut the socket's sending side.
    pub fn half_closed(&mut self) {
        self.half_closed = true;
    }

    /// A buffer to receive into, if one is free, poisoned where verification will look.
    pub fn rx_buffer(&mut self) -> Option<Box<Message>> {
        let mut msg = self.pool.take_rx()?;
        // Only a copying receive writes into the buffer; under the others it keeps the
        // pattern, which an echo server sends back.
        if self.spec.rx == RxMode::Copy {
            msg.poison(self.spec.verify, &self.template, self.rx_target);
        }
        Some(msg)
    }

    /// Bytes one receive may ask for from byte `off` of the message now arriving: what is
    /// left of it — or, for a server discarding a client's stream (`--rx discard`), where
    /// only the byte count is checked, up to [`DISCARD_SPAN`]: the rest of the message and
    /// whole ones behind it, as a bulk receiver asks (the kernel drops them all in one
    /// call; see [`Flow::discarded`]).
    pub fn rx_want(&self, off: usize) -> usize {
        let rest = self.size() - off;
        if self.bulk_discard() {
            rest.max(DISCARD_SPAN - DISCARD_SPAN % self.size())
        } else {
            rest
        }
    }

    /// Whether receives may discard past the message arriving ([`Flow::rx_want`]).
    fn bulk_discard(&self) -> bool {
        self.spec.rx == RxMode::Discard
            && self.spec.role == Role::Server
            && self.spec.workload == Workload::Stream
            && self.spec.receives_stream()
    }

    /// A bulk discard ([`Flow::rx_want`]) went `extra` bytes past the message it completed
    /// (which was handed to [`Flow::received`] first): counts the whole messages among
    /// them and returns how many bytes of the next one arrived.
    pub fn discarded(&mut self, extra: usize, now: Instant) -> Result<usize, Error> {
        if extra == 0 {
            return Ok(0);
        }
        if !self.bulk_discard() {
            return Err(Error::Internal(format!(
                "a receive went {extra} bytes past its message"
            )));
        }
        for _ in 0..extra / self.size() {
            self.count_received(self.size(), now);
            self.expect_seq += 1;
            self.prove_read();
        }
        Ok(extra % self.size())
    }

    /// A whole message arrived in `msg` (in two-copy, in its wire buffer: the copy out into
    /// the fields happens here). Under `--rx discard` or `zerocopy` the bytes never
    /// reached `msg`: see [`Flow::received_elsewhere`].
    pub fn received(&mut self, mut msg: Box<Message>, now: Instant) -> Result<(), Error> {
        if self.spec.rx != RxMode::Copy {
            return self.received_elsewhere(msg, now);
        }
        if path(self.spec.mode).wire {
            msg.deserialize();
        }
        self.received_in_fields(msg, now)
    }

    /// Zero-copy receive: `bytes`, where the kernel left them (mapped pages or the copy
    /// buffer), are bytes `at..` of the message now arriving; checked here, before the
    /// backend lets the mapping go.
    pub fn rx_seen(&mut self, at: usize, bytes: &[u8]) {
        if self.spec.role == Role::Client
            && (self.rx_notice.is_some() || at == 0 && crate::wire::opens_frame(bytes))
        {
            // The server's end notice (see [`Flow::received_in_fields`]), kept until whole.
            let notice = self.rx_notice.get_or_insert_with(Vec::new);
            let room = self.template.layout().size() - notice.len();
            notice.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        if self.rx_bad.is_none() {
            let seq = self.expect_seq;
            if let Err(m) = verify_span(self.spec.verify, seq, at, bytes, &self.template) {
                self.rx_bad = Some(m);
            }
        }
        self.rx_seen += bytes.len();
    }

    /// A whole message arrived, but not in `msg`: discarded by the kernel (its bytes were
    /// counted, nothing else can be checked) or seen in place ([`Flow::rx_seen`]).
    /// `msg` only keeps the message's place in the pool; an echo server stamps it with
    /// the message's sequence number and sends it back — the same bytes, since it holds
    /// the pattern and nothing wrote into it.
    fn received_elsewhere(&mut self, mut msg: Box<Message>, now: Instant) -> Result<(), Error> {
        let (seen, bad) = (std::mem::take(&mut self.rx_seen), self.rx_bad.take());
        if let Some(notice) = self.rx_notice.take() {
            self.pool.put(msg);
            return Err(server_ended(&notice));
        }
        if self.spec.role == Role::Client && self.sent_at.is_empty() {
            self.pool.put(msg);
            return Err(Error::Peer(
                "server sent data that was not asked for".into(),
            ));
        }
        self.count_received(msg.size(), now);
        let seq = self.expect_seq;
        if self.spec.rx == RxMode::Zerocopy && self.spec.verify != Verify::Off {
            let failure = match bad {
                Some(m) => Some(m.to_string()),
                None if seen != msg.size() => Some(format!(
                    "message {seq}: {seen} of its {} bytes were seen by the zero-copy receive",
                    msg.size()
                )),
                None => None,
            };
            if let Some(text) = failure {
                self.stats.verify_errors += 1;
                self.stats.first_verify_error.get_or_insert(text);
            }
        }
        self.expect_seq += 1;
        match self.spec.role {
            Role::Client => {
                self.echo_returned(now);
                self.pool.put(msg);
            }
            Role::Server if self.spec.workload == Workload::Echo => {
                msg.stamp(seq);
                self.echo_queue.push_back(msg);
            }
            Role::Server => self.pool.put(msg),
        }
        self.prove_read();
        Ok(())
    }

    /// A whole message is in `msg`'s fields already (two-copy from a provided buffer,
    /// where the backend did the copy out with [`Message::deserialize_from`]).
    pub fn received_in_fields(&mut self, mut msg: Box<Message>, now: Instant) -> Result<(), Error> {
        let (workload, role) = (self.spec.workload, self.spec.role);
        if role == Role::Client && crate::wire::opens_frame(msg.field(0)) {
            // The server's end notice in place of a message: it ended the run.
            let bytes: Vec<u8> = (0..crate::message::FIELDS)
                .flat_map(|k| msg.field(k).iter().copied())
                .collect();
            self.pool.put(msg);
            return Err(server_ended(&bytes));
        }
        if role == Role::Client && self.spec.receives_stream() {
            if self.end_seen {
                self.pool.put(msg);
                return Err(Error::Peer(
                    "server sent data after the end of its stream".into(),
                ));
            }
            if msg.is_end() {
                let whole = self.spec.verify == Verify::Off || msg.end_is_whole();
                self.pool.put(msg);
                if !whole {
                    self.stats.verify_errors += 1;
                    self.stats.first_verify_error.get_or_insert_with(|| {
                        format!(
                            "the end-of-stream record after message {} is damaged",
                            self.expect_seq
                        )
                    });
                }
                // The server ended its stream: this connection's run is over, even if the
                // deadline has not come (a server that stops).
                self.end_seen = true;
                self.stopping = true;
                return Ok(());
            }
        }
        let unasked = match (workload, role) {
            (Workload::Echo, Role::Client) => self.sent_at.is_empty(),
            (Workload::Stream, _) => !self.spec.receives_stream(),
            (Workload::Echo, Role::Server) => false,
        };
        if unasked {
            self.pool.put(msg);
            return Err(Error::Peer(match role {
                Role::Client => "server sent data that was not asked for".into(),
                Role::Server => format!(
                    "client sent data in a {} stream, where only the server sends",
                    self.spec.direction
                ),
            }));
        }
        self.count_received(msg.size(), now);
        if let Err(m) = msg.verify(self.spec.verify, self.expect_seq, &self.template) {
            self.stats.verify_errors += 1;
            if self.stats.first_verify_error.is_none() {
                self.stats.first_verify_error = Some(m.to_string());
            }
            // Counted once: the damage goes no further (not into the echo, not into a
            // buffer that is sent again).
            msg.restore(&self.template, self.expect_seq);
        }
        self.expect_seq += 1;
        match (workload, role) {
            (Workload::Echo, Role::Client) => {
                self.echo_returned(now);
                self.pool.put(msg);
            }
            (Workload::Stream, Role::Client) => {
                self.progress.record(now);
                self.pool.put(msg);
            }
            (Workload::Echo, Role::Server) => self.echo_queue.push_back(msg),
            (Workload::Stream, Role::Server) => self.pool.put(msg),
        }
        self.prove_read();
        Ok(())
    }

    /// Message `expect_seq - 1` arrived whole (copied, discarded or seen in place): what
    /// that proves the peer has read (sendfile, splice; see `proof`).
    fn prove_read(&mut self) {
        if let Some(proof) = &mut self.proof {
            match (self.spec.role, self.spec.workload) {
                // The echo of every message up to this one arrived whole: the server read them.
                (Role::Client, _) => proof.read_below(self.expect_seq),
                // The client sends message k + depth only once it has read the echo of k.
                (Role::Server, Workload::Echo) => {
                    proof.read_below(self.expect_seq.saturating_sub(self.spec.depth as u64))
                }
                (Role::Server, Workload::Stream) => proof.read_one(self.expect_seq),
            }
            self.settle();
        }
    }

    /// The peer closed its sending side; `partial` bytes of a message had arrived.
    pub fn eof(&mut self, partial: usize) -> Result<(), Error> {
        match self.spec.role {
            Role::Server if partial == 0 => {
                self.eof = true;
                // The client ends its stream only once it has read every echo.
                if let Some(proof) = &mut self.proof {
                    proof.read_below(u64::MAX);
                }
                self.settle();
                Ok(())
            }
            Role::Server => Err(Error::Peer(format!(
                "connection closed mid-message: {partial} of {} bytes arrived",
                self.size()
            ))),
            Role::Client if self.spec.receives_stream() => {
                if self.end_seen && partial == 0 {
                    return Ok(());
                }
                Err(Error::Peer(format!(
                    "server closed the connection before the end of its stream \
                     ({partial} bytes of a message had arrived)"
                )))
            }
            Role::Client => Err(Error::Peer(format!(
                "server closed the connection with {} outstanding",
                crate::vocab::count(self.sent_at.len() as u64, "echo", "echoes")
            ))),
        }
    }

    /// One whole message of `size` bytes arrived at `now` (the test build's injected
    /// fault fires here).
    fn count_received(&mut self, size: usize, now: Instant) {
        #[cfg(debug_assertions)]
        if self.fault {
            panic!("injected fault: COPYPERF_FAULT_PANIC_SIZE={}", self.size());
        }
        self.first_message(now);
        self.end_warm_up(now);
        self.first_rx.get_or_insert(now);
        self.stats.bytes_received += size as u64;
        self.stats.msgs_received += 1;
        if let Some(live) = &self.live {
            live.received(size as u64);
        }
    }

    /// The oldest outstanding echo came back at `now`: its round trip runs from when it
    /// was sent (closed loop) or due (`--rate`).
    fn echo_returned(&mut self, now: Instant) {
        // Open loop, with every place among `depth` taken: a message that fell due
        // meanwhile waited for this echo.
        let full = self.sent_at.len() >= self.spec.depth;
        if full && !self.stopping && self.due(self.next_seq).is_some_and(|d| d <= now) {
            self.held_back += 1;
        }
        let sent = self.sent_at.pop_front().expect("an echo outstanding");
        self.round_trip(now.saturating_duration_since(sent));
        self.progress.record(now);
    }

    /// An echo came back after `d`.
    fn round_trip(&mut self, d: Duration) {
        self.latency.record(d);
        if let Some(live) = &self.live {
            live.round_trip(d);
        }
    }

    /// Nothing more to send or receive (buffers may still be with the kernel).
    pub fn is_done(&self) -> bool {
        match (self.spec.workload, self.spec.role) {
            (Workload::Echo, Role::Client) => {
                self.stopping && self.sent_at.is_empty() && self.receipts_due() == 0
            }
            (Workload::Stream, Role::Client) => {
                self.stopping
                    && (!self.spec.receives_stream() || self.end_seen)
                    && (self.spec.direction == Direction::Forward || self.half_closed)
                    && self.receipts_due() == 0
            }
            (Workload::Echo, Role::Server) => {
                self.eof && self.echo_queue.is_empty() && self.receipts_owed() == 0
            }
            (Workload::Stream, Role::Server) => {
                self.eof
                    && (!self.spec.sends_stream() || self.end_sent)
                    && self.receipts_owed() == 0
            }
        }
    }

    /// The buffers, to register them (zc-fixed) before the flow begins.
    pub fn pool_mut(&mut self) -> &mut Pool {
        &mut self.pool
    }

    /// Every buffer is back in the pool.
    pub fn pool_home(&self) -> bool {
        self.pool.all_home()
    }

    /// Free buffers a send could come from: an originator's send buffers (a client's, a
    /// sending server's); any of an echoing server's, which sends what it received.
    pub fn send_buffers_free(&self) -> usize {
        match pool_role(self.spec.role, self.spec.workload, self.spec.direction) {
            Role::Client => self.pool.available_tx(),
            Role::Server => self.pool.available(),
        }
    }

    /// Ends the measured interval.
    pub fn finish(&mut self, now: Instant) {
        if self.finished.is_none() {
            self.finished = Some(now);
            self.progress.finish(now);
        }
    }

    /// The measured interval: client from `begin` to `finish`; server from the first
    /// message received or sent, whichever came first, to `finish`.
    pub fn duration(&self) -> Duration {
        let start = match self.spec.role {
            Role::Client => self.started,
            Role::Server => match (self.first_rx, self.first_tx) {
                (Some(rx), Some(tx)) => Some(rx.min(tx)),
                (rx, tx) => rx.or(tx).or(self.started),
            },
        };
        match (start, self.finished) {
            (Some(s), Some(f)) => f.saturating_duration_since(s),
            _ => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Layout;
    use crate::pool::{zc_ring, PoolPlan};

    fn flow(role: Role, workload: Workload, mode: Mode, depth: usize) -> Flow {
        directed(role, workload, mode, depth, Direction::Forward)
    }

    fn directed(
        role: Role,
        workload: Workload,
        mode: Mode,
        depth: usize,
        direction: Direction,
    ) -> Flow {
        let template = Template::new(Layout::new(256));
        let shape = pool_role(role, workload, direction);
        let plan = PoolPlan::new(
            crate::config::Backend::Uring,
            workload,
            shape,
            mode,
            256,
            depth,
        );
        let pool = Pool::heap(&template, &plan);
        let spec = FlowSpec {
            role,
            workload,
            mode,
            verify: Verify::Full,
            depth,
            duration: Duration::from_secs(1),
            omit: Duration::ZERO,
            rx: RxMode::Copy,
            direction,
            schedule: None,
            messages: None,
        };
        Flow::new(spec, template, pool)
    }

    /// Returns one echo for the client's oldest outstanding message, arriving at `at`.
    fn echo_back(c: &mut Flow, s: &mut Flow, msg: Box<Message>, at: Instant) {
        c.sent(&msg);
        let mut rx = s.rx_buffer().unwrap();
        deliver(&msg, &mut rx, Mode::TwoCopy);
        c.release(msg);
        s.received(rx, at).unwrap();
        let echo = s.next_tx(at).unwrap();
        s.sent(&echo);
        let mut back = c.rx_buffer().unwrap();
        deliver(&echo, &mut back, Mode::TwoCopy);
        s.release(echo);
        c.received(back, at).unwrap();
    }

    #[test]
    fn an_open_loop_client_sends_on_its_schedule_and_times_echoes_from_it() {
        let ms = Duration::from_millis;
        let mut c = flow(Role::Client, Workload::Echo, Mode::TwoCopy, 2);
        let mut s = flow(Role::Server, Workload::Echo, Mode::TwoCopy, 2);
        // 1000 messages a second over 2 connections: this one, the second, sends every
        // 2 ms from 1 ms in.
        let schedule = Schedule::new(1000.0, 2, 1);
        assert_eq!(
            (schedule.due(1) - schedule.due(0), schedule.due(0)),
            (ms(2), ms(1))
        );
        c.spec.schedule = Some(schedule);
        let t0 = Instant::now();
        c.begin(t0);
        s.begin(t0);
        assert_eq!(c.send_at(), Some(t0 + ms(1)));
        assert!(c.next_tx(t0).is_none(), "not due yet");
        // Sent 100 µs late, echoed 50 µs later: 150 µs from its due time.
        let m0 = c.next_tx(t0 + ms(1) + Duration::from_micros(100)).unwrap();
        echo_back(&mut c, &mut s, m0, t0 + ms(1) + Duration::from_micros(150));
        // A stall: the server answers nothing for 10 ms. Messages 1 and 2 go out when
        // due (depth 2); 3, 4, ... fall due with both places taken and wait.
        let m1 = c.next_tx(t0 + ms(3)).unwrap();
        let m2 = c.next_tx(t0 + ms(5)).unwrap();
        assert_eq!(c.send_at(), None, "both places taken: an echo is awaited");
        assert!(c.next_tx(t0 + ms(7)).is_none());
        echo_back(&mut c, &mut s, m1, t0 + ms(15));
        assert_eq!(c.held_back, 1, "message 3 fell due at 7 ms and waited");
        // Message 3 is sent at once, late: its round trip counts from 7 ms.
        assert_eq!(c.send_at(), Some(t0 + ms(7)));
        let m3 = c.next_tx(t0 + ms(15)).unwrap();
        echo_back(&mut c, &mut s, m2, t0 + ms(15));
        echo_back(&mut c, &mut s, m3, t0 + ms(16));
        let l = c.latency.summary().unwrap();
        // 150 µs, then 12 ms (due 3 ms), 10 ms (due 5 ms), 9 ms (due 7 ms): the stall is
        // in every message that fell due during it, not just the one it held.
        assert_eq!(c.latency.count(), 4);
        assert!(l.max_us >= 11_990.0 && l.max_us <= 12_010.0, "{l:?}");
        assert!((l.mean_us - 7_787.5).abs() < 10.0, "{l:?}");
        let lag = c.send_lag.summary().unwrap();
        assert!(lag.max_us >= 7_990.0 && lag.max_us <= 8_010.0, "{lag:?}");
        // A deadline before the next due time is when the flow next wants to look.
        let t_end = t0 + Duration::from_secs(1);
        c.deadline = Some(t_end);
        c.next_seq = 1000;
        assert_eq!(c.send_at(), Some(t_end));
        assert!(c.next_tx(t_end).is_none());
        assert!(c.is_done());
    }

    /// Issue 16: a client reading messages (an echo's, a reverse stream's) takes the
    /// server's end notice in place of one for what it is, in either layout, and under a
    /// zero-copy receive too; a frame that is not a valid notice is a peer error.
    #[test]
    fn a_client_takes_the_end_notice_for_the_servers_reason() {
        let end = crate::wire::End {
            code: crate::wire::EndCode::ShuttingDown,
            reason: "SIGINT or SIGTERM".into(),
        };
        let notice = end.notice(256);
        let cases = [
            (Workload::Echo, Direction::Forward, Mode::TwoCopy),
            (Workload::Echo, Direction::Forward, Mode::OneCopy),
            (Workload::Stream, Direction::Reverse, Mode::OneCopy),
        ];
        for (workload, direction, mode) in cases {
            let mut c = directed(Role::Client, workload, mode, 1, direction);
            c.begin(Instant::now());
            if let Some(m) = c.next_tx(Instant::now()) {
                c.sent(&m);
                c.release(m);
            }
            let mut rx = c.rx_buffer().unwrap();
            if mode == Mode::TwoCopy {
                rx.wire_mut().copy_from_slice(&notice);
            } else {
                fill_fields(&mut rx, &notice);
            }
            match c.received(rx, Instant::now()) {
                Err(Error::ServerEnded(why)) => assert_eq!(
                    why, "the server is shutting down: SIGINT or SIGTERM",
                    "{workload} {direction} {mode}"
                ),
                other => panic!("{workload} {direction} {mode}: {other:?}"),
            }
        }
        // A zero-copy receive sees the notice in spans, where the kernel left them.
        let mut c = flow(Role::Client, Workload::Echo, Mode::OneCopy, 1);
        c.spec.rx = RxMode::Zerocopy;
        c.begin(Instant::now());
        let m = c.next_tx(Instant::now()).unwrap();
        c.sent(&m);
        c.release(m);
        let rx = c.rx_buffer().unwrap();
        c.rx_seen(0, &notice[..100]);
        c.rx_seen(100, &notice[100..]);
        assert!(
            matches!(c.received(rx, Instant::now()), Err(Error::ServerEnded(_))),
            "zero-copy receive"
        );
        // A frame that is not an end notice (a stats frame's header) is the server's error.
        let mut c = flow(Role::Client, Workload::Echo, Mode::OneCopy, 1);
        c.begin(Instant::now());
        let m = c.next_tx(Instant::now()).unwrap();
        c.sent(&m);
        c.release(m);
        let mut rx = c.rx_buffer().unwrap();
        let mut bogus = notice.clone();
        bogus[6] = 4;
        fill_fields(&mut rx, &bogus);
        match c.received(rx, Instant::now()) {
            Err(Error::Peer(why)) => assert!(why.contains("not a valid end notice"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    /// Lays `bytes` (one message's worth) into `rx`'s fields, as a fields receive would.
    fn fill_fields(rx: &mut Message, bytes: &[u8]) {
        let layout = Layout::new(bytes.len());
        for k in 0..crate::message::FIELDS {
            rx.field_mut(k).copy_from_slice(&bytes[layout.field(k)]);
        }
    }

    /// Carries a message from one flow to another as the wire would.
    fn deliver(msg: &Message, into: &mut Message, mode: Mode) {
        if mode == Mode::TwoCopy {
            into.wire_mut().copy_from_slice(msg.wire());
        } else {
            for k in 0..8 {
                into.field_mut(k).copy_from_slice(msg.field(k));
            }
        }
    }

    #[test]
    fn echo_client_keeps_depth_in_flight_and_times_each_echo() {
        for mode in [Mode::TwoCopy, Mode::OneCopy] {
            let mut c = flow(Role::Client, Workload::Echo, mode, 2);
            let mut s = flow(Role::Server, Workload::Echo, mode, 2);
            let t0 = Instant::now();
            c.begin(t0);
            s.begin(t0);
            let a = c.next_tx(t0).unwrap();
            let b = c.next_tx(t0).unwrap();
            assert!(c.next_tx(t0).is_none(), "window of 2 is full");
            assert!(c.wants_rx());
            for m in [a, b] {
                c.sent(&m);
                let mut rx = s.rx_buffer().unwrap();
                deliver(&m, &mut rx, mode);
                c.release(m);
                s.received(rx, t0).unwrap();
            }
            assert_eq!(s.stats.verify_errors, 0);
            for _ in 0..2 {
                let echo = s.next_tx(t0).unwrap();
                s.sent(&echo);
                let mut rx = c.rx_buffer().unwrap();
                deliver(&echo, &mut rx, mode);
                s.release(echo);
                c.received(rx, t0 + Duration::from_micros(5)).unwrap();
            }
            assert_eq!(c.stats.verify_errors, 0, "{:?}", c.stats.first_verify_error);
            assert_eq!(c.latency.count(), 2);
            assert_eq!(c.stats.msgs_received, 2);
            assert!(!c.wants_rx());
            assert!(
                c.next_tx(t0 + Duration::from_secs(2)).is_none(),
                "deadline passed"
            );
            assert!(c.is_done() && c.pool_home());
            s.eof(0).unwrap();
            assert!(s.is_done() && s.pool_home());
        }
    }

    /// A message as it travels: its fields back to back.
    fn wire_of(msg: &Message) -> Vec<u8> {
        (0..8).flat_map(|k| msg.field(k).to_vec()).collect()
    }

    #[test]
    fn a_warm_up_is_run_and_forgotten() {
        let mut c = flow(Role::Client, Workload::Stream, Mode::OneCopy, 2);
        c.spec.omit = Duration::from_secs(2);
        let live = Arc::new(LiveCounters::default());
        c.count_live(live.clone());
        let t0 = Instant::now();
        c.begin(t0);
        assert!(c.warming_up());
        let m = c.next_tx(t0).unwrap();
        c.sent(&m);
        c.release(m);
        assert_eq!(c.stats.msgs_sent, 1, "the warm-up is run");
        let measured = t0 + Duration::from_millis(2500);
        let m = c
            .next_tx(measured)
            .expect("the deadline is after the warm-up");
        assert!(!c.warming_up());
        assert_eq!(c.stats.msgs_sent, 0, "and forgotten");
        c.sent(&m);
        c.release(m);
        assert_eq!(c.stats.msgs_sent, 1);
        assert_eq!(
            live.sample().0.msgs_sent,
            2,
            "intervals see the warm-up too"
        );
        assert!(
            c.next_tx(t0 + Duration::from_secs(3)).is_none(),
            "-d after --omit"
        );
        c.finish(t0 + Duration::from_secs(3));
        assert_eq!(
            c.duration(),
            Duration::from_secs(1),
            "from the warm-up's end"
        );
    }

    #[test]
    fn a_count_ends_the_clients_sends() {
        let t0 = Instant::now();
        let mut c = flow(Role::Client, Workload::Stream, Mode::OneCopy, 4);
        c.spec.messages = Some(3);
        c.begin(t0);
        let held: Vec<_> = (0..3)
            .map(|_| c.next_tx(t0).expect("in the count"))
            .collect();
        assert!(
            c.next_tx(t0).is_none(),
            "the count is spent, the deadline far"
        );
        for m in held {
            c.sent(&m);
            c.release(m);
        }
        assert!(c.is_done() && c.pool_home());
        assert_eq!(c.stats.msgs_sent, 3);

        let mut e = flow(Role::Client, Workload::Echo, Mode::OneCopy, 4);
        e.spec.messages = Some(2);
        e.begin(t0);
        let a = e.next_tx(t0).unwrap();
        let b = e.next_tx(t0).unwrap();
        assert!(e.next_tx(t0).is_none(), "2 of a window of 4");
        for m in [a, b] {
            e.sent(&m);
            e.release(m);
        }
        assert!(!e.is_done(), "the echoes are still due");
        assert!(e.wants_rx());
    }

    #[test]
    fn a_count_is_of_messages_sent_after_the_warm_up() {
        let mut c = flow(Role::Client, Workload::Stream, Mode::OneCopy, 4);
        c.spec.omit = Duration::from_secs(2);
        c.spec.messages = Some(3);
        let t0 = Instant::now();
        c.begin(t0);
        let a = c.next_tx(t0).unwrap();
        let b = c.next_tx(t0).unwrap();
        c.sent(&a);
        c.release(a);
        // The warm-up ends with `b` handed out but not yet taken: it counts as sent in the
        // measured interval, so two more make the three.
        let measured = t0 + Duration::from_millis(2500);
        let d = c.next_tx(measured).unwrap();
        assert!(!c.warming_up());
        let e = c.next_tx(measured).unwrap();
        assert!(c.next_tx(measured).is_none(), "b, d and e make 3");
        for m in [b, d, e] {
            c.sent(&m);
            c.release(m);
        }
        assert_eq!(c.stats.msgs_sent, 3);
        assert!(c.is_done() && c.pool_home());
    }

    #[test]
    fn a_servers_warm_up_runs_on_its_own_clock_from_its_first_message() {
        let omit = Duration::from_secs(2);
        let mut c = flow(Role::Client, Workload::Stream, Mode::OneCopy, 4);
        let mut s = flow(Role::Server, Workload::Stream, Mode::OneCopy, 4);
        s.spec.omit = omit;
        let t0 = Instant::now();
        c.begin(t0);
        s.begin(t0);
        assert!(s.warming_up(), "waiting for its first message");
        let first = t0 + Duration::from_secs(1);
        let deliver_at = |c: &mut Flow, s: &mut Flow, at: Instant| {
            let m = c.next_tx(t0).unwrap();
            c.sent(&m);
            let mut rx = s.rx_buffer().unwrap();
            deliver(&m, &mut rx, Mode::OneCopy);
            c.release(m);
            s.received(rx, at).unwrap();
        };
        deliver_at(&mut c, &mut s, first);
        deliver_at(&mut c, &mut s, first + Duration::from_millis(1999));
        assert!(s.warming_up() && !s.take_warmed());
        assert_eq!(s.stats.msgs_received, 2, "the warm-up is run");
        // Two seconds from its first message, not from its begin.
        deliver_at(&mut c, &mut s, first + omit);
        assert!(!s.warming_up());
        assert!(s.take_warmed() && !s.take_warmed(), "said once");
        assert!(s.warmed_clock.is_some());
        assert_eq!(s.stats.msgs_received, 1, "and forgotten");
        deliver_at(&mut c, &mut s, first + omit + Duration::from_millis(500));
        s.eof(0).unwrap();
        s.finish(first + omit + Duration::from_secs(1));
        assert_eq!(s.stats.msgs_received, 2);
        assert_eq!(
            s.duration(),
            Duration::from_secs(1),
            "from the warm-up's end"
        );
        // Without --omit, nothing is cut and there is nothing to say.
        let mut plain = flow(Role::Server, Workload::Stream, Mode::OneCopy, 4);
        plain.begin(t0);
        assert!(!plain.warming_up());
        deliver_at(&mut c, &mut plain, first + omit);
        assert!(!plain.take_warmed());
    }

    #[test]
    fn receipts_cut_short_counts_in_words() {
        let f = flow(Role::Client, Workload::Stream, Mode::OneCopy, 4);
        let text = f.receipts_cut_short().to_string();
        assert!(text.contains("with 0 read receipts outstanding"), "{text}");
    }

    #[test]
    fn only_a_server_discarding_a_stream_receives_past_its_message() {
        let mut s = flow(Role::Server, Workload::Stream, Mode::OneCopy, 4);
        assert_eq!(s.rx_want(100), 156, "copying: the rest of the message");
        s.spec.rx = RxMode::Discard;
        assert_eq!(s.rx_want(100), DISCARD_SPAN, "whole 256-byte messages");
        let t0 = Instant::now();
        s.begin(t0);
        let m = s.rx_buffer().unwrap();
        s.received(m, t0).unwrap();
        // 3 whole messages and 10 bytes of the next went with the first.
        assert_eq!(s.discarded(3 * 256 + 10, t0).unwrap(), 10);
        assert_eq!(s.stats.msgs_received, 4);
        assert_eq!(s.stats.bytes_received, 4 * 256);
        for (role, workload) in [
            (Role::Server, Workload::Echo),
            (Role::Client, Workload::Echo),
        ] {
            let mut f = flow(role, workload, Mode::OneCopy, 4);
            f.spec.rx = RxMode::Discard;
            assert_eq!(f.rx_want(100), 156, "{role:?} {workload:?}");
            assert!(matches!(f.discarded(1, t0), Err(Error::Internal(_))));
        }
    }

    #[test]
    fn receives_that_leave_the_bytes_elsewhere_count_check_and_echo() {
        for rx in [RxMode::Discard, RxMode::Zerocopy] {
            let mut c = flow(Role::Client, Workload::Echo, Mode::OneCopy, 2);
            let mut s = flow(Role::Server, Workload::Echo, Mode::OneCopy, 2);
            c.spec.rx = rx;
            s.spec.rx = rx;
            let t0 = Instant::now();
            c.begin(t0);
            s.begin(t0);
            for _ in 0..2 {
                let m = c.next_tx(t0).unwrap();
                c.sent(&m);
                let bytes = wire_of(&m);
                c.release(m);
                let rx_buf = s.rx_buffer().unwrap();
                if rx == RxMode::Zerocopy {
                    // Seen in two spans, cut inside a tag.
                    s.rx_seen(0, &bytes[..35]);
                    s.rx_seen(35, &bytes[35..]);
                }
                s.received(rx_buf, t0).unwrap();
                // The echo is rebuilt in a buffer nothing wrote into: the same bytes.
                let echo = s.next_tx(t0).unwrap();
                assert_eq!(wire_of(&echo), bytes, "{rx}");
                s.sent(&echo);
                s.release(echo);
                let back = c.rx_buffer().unwrap();
                if rx == RxMode::Zerocopy {
                    c.rx_seen(0, &bytes);
                }
                c.received(back, t0).unwrap();
            }
            for f in [&c, &s] {
                assert_eq!(
                    f.stats.verify_errors, 0,
                    "{rx}: {:?}",
                    f.stats.first_verify_error
                );
                assert_eq!(f.stats.msgs_received, 2);
            }
            assert_eq!(c.latency.count(), 2);
        }
        // Zero-copy spans are checked: bytes of the wrong message, and a message whose
        // bytes were not all seen, are verify errors.
        let mut s = flow(Role::Server, Workload::Stream, Mode::OneCopy, 1);
        s.spec.rx = RxMode::Zerocopy;
        let mut c = flow(Role::Client, Workload::Stream, Mode::OneCopy, 1);
        c.begin(Instant::now());
        let _skipped = c.next_tx(Instant::now()).unwrap();
        let m = c.next_tx(Instant::now()).unwrap();
        let b = s.rx_buffer().unwrap();
        s.rx_seen(0, &wire_of(&m));
        s.received(b, Instant::now()).unwrap();
        let b = s.rx_buffer().unwrap();
        s.rx_seen(0, &wire_of(&m)[..100]);
        s.received(b, Instant::now()).unwrap();
        assert_eq!(s.stats.verify_errors, 2);
        assert!(s
            .stats
            .first_verify_error
            .as_deref()
            .unwrap()
            .contains("message 0"));
    }

    #[test]
    fn a_lost_message_is_counted_as_a_verify_error() {
        let mut c = flow(Role::Client, Workload::Stream, Mode::OneCopy, 4);
        let mut s = flow(Role::Server, Workload::Stream, Mode::OneCopy, 4);
        let t0 = Instant::now();
        c.begin(t0);
        let _lost = c.next_tx(t0).unwrap();
        let m = c.next_tx(t0).unwrap();
        let mut rx = s.rx_buffer().unwrap();
        deliver(&m, &mut rx, Mode::OneCopy);
        s.received(rx, t0).unwrap();
        assert_eq!(s.stats.verify_errors, 1);
        assert!(s
            .stats
            .first_verify_error
            .as_deref()
            .unwrap()
            .contains("message 0"));
    }

    #[test]
    fn stream_client_is_bounded_by_its_pool() {
        let mut c = flow(Role::Client, Workload::Stream, Mode::Zc, 2);
        let t0 = Instant::now();
        c.begin(t0);
        let held: Vec<_> = std::iter::from_fn(|| c.next_tx(t0)).collect();
        assert_eq!(held.len(), zc_ring(256, 2), "all but the receive buffer");
        assert!(!c.wants_rx());
        assert!(!c.pool_home());
        held.into_iter().for_each(|m| c.release(m));
        assert!(c.pool_home());
    }

    #[test]
    fn a_reverse_stream_ends_with_the_client_and_one_end_record() {
        for mode in [Mode::TwoCopy, Mode::OneCopy, Mode::Zc] {
            let d = Direction::Reverse;
            let mut c = directed(Role::Client, Workload::Stream, mode, 2, d);
            let mut s = directed(Role::Server, Workload::Stream, mode, 2, d);
            let t0 = Instant::now();
            c.begin(t0);
            s.begin(t0);
            assert!(c.next_tx(t0).is_none(), "a reverse client sends nothing");
            assert!(c.wants_rx() && s.wants_rx() && s.rx_watches_eof_only());
            let carry = |s: &mut Flow, c: &mut Flow, at: Instant| {
                let m = s.next_tx(at).expect("a message or the end record");
                s.sent(&m);
                let mut rx = c.rx_buffer().unwrap();
                deliver(&m, &mut rx, mode);
                s.release(m);
                c.received(rx, at).unwrap();
            };
            for _ in 0..3 {
                carry(&mut s, &mut c, t0);
            }
            assert_eq!(c.stats.msgs_received, 3);
            assert_eq!(c.stats.verify_errors, 0, "{:?}", c.stats.first_verify_error);
            assert!(!c.wants_half_close(), "the deadline has not come");
            // The deadline passes: the client half-closes; the server sees the end of
            // file, and its next send is the end record, which counts as no message.
            let late = t0 + Duration::from_secs(2);
            assert!(c.next_tx(late).is_none());
            assert!(c.wants_half_close() && !c.is_done());
            c.half_closed();
            assert!(!c.is_done(), "the server's stream has not ended");
            s.eof(0).unwrap();
            assert!(!s.is_done(), "the end record is still to go");
            carry(&mut s, &mut c, late);
            assert_eq!((s.stats.msgs_sent, c.stats.msgs_received), (3, 3));
            assert!(s.next_tx(late).is_none(), "one end record only");
            assert!(s.is_done() && s.pool_home());
            assert!(!c.wants_rx() && c.is_done() && c.pool_home());
            assert_eq!(c.stats.verify_errors, 0);
            c.eof(0).unwrap();
        }
    }

    #[test]
    fn a_damaged_end_record_is_a_verify_error_and_a_missing_one_a_peer_error() {
        let d = Direction::Bidir;
        let mut c = directed(Role::Client, Workload::Stream, Mode::OneCopy, 1, d);
        let mut s = directed(Role::Server, Workload::Stream, Mode::OneCopy, 1, d);
        let t0 = Instant::now();
        c.begin(t0);
        s.eof(0).unwrap();
        let m = s.next_tx(t0).unwrap();
        let mut rx = c.rx_buffer().unwrap();
        deliver(&m, &mut rx, Mode::OneCopy);
        rx.field_mut(3)[0] ^= 1;
        c.received(rx, t0).unwrap();
        assert_eq!(c.stats.verify_errors, 1);
        assert_eq!(c.stats.msgs_received, 0);
        let mut c = directed(Role::Client, Workload::Stream, Mode::OneCopy, 1, d);
        c.begin(t0);
        let e = c.eof(0).unwrap_err().to_string();
        assert!(e.contains("before the end of its stream"), "{e}");
        // A reverse server receives nothing but the end of file.
        let mut s = directed(
            Role::Server,
            Workload::Stream,
            Mode::OneCopy,
            1,
            Direction::Reverse,
        );
        let rx = s.rx_buffer().unwrap();
        let e = s.received(rx, t0).unwrap_err().to_string();
        assert!(e.contains("only the server sends"), "{e}");
    }

    #[test]
    fn truncation_and_unasked_data_are_peer_errors() {
        let mut s = flow(Role::Server, Workload::Stream, Mode::OneCopy, 1);
        assert!(s.eof(10).unwrap_err().to_string().contains("10 of 256"));
        let mut c = flow(Role::Client, Workload::Echo, Mode::OneCopy, 1);
        c.begin(Instant::now());
        let rx = c.rx_buffer().unwrap();
        assert!(c.received(rx, Instant::now()).is_err());
        assert!(c.pool_home());
        assert!(c.eof(0).is_err());
    }
}
