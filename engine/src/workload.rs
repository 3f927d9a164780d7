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
//! - stop when [`Flow::is_done`] and every buffer is home ([`Flow::pool_home`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::message::{Message, RxTarget, Template};
use crate::path::path;
use crate::pool::Pool;
use crate::stats::{FlowStats, Latency, Progress};
use crate::vocab::{Mode, Role, Verify, Workload};

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
}

/// One connection's workload state on one side.
pub struct Flow {
    spec: FlowSpec,
    template: Arc<Template>,
    pool: Pool,
    deadline: Option<Instant>,
    stopping: bool,
    next_seq: u64,
    /// Echo client: send times of messages whose echo has not arrived, oldest first.
    sent_at: VecDeque<Instant>,
    expect_seq: u64,
    /// Echo server: received messages waiting to be sent back, oldest first.
    echo_queue: VecDeque<Box<Message>>,
    eof: bool,
    /// Where receives land, poisoned before each one.
    rx_target: RxTarget,
    started: Option<Instant>,
    first_rx: Option<Instant>,
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
}

impl Flow {
    pub fn new(spec: FlowSpec, template: Arc<Template>, pool: Pool) -> Flow {
        Flow {
            spec,
            template,
            pool,
            deadline: None,
            stopping: false,
            next_seq: 0,
            sent_at: VecDeque::with_capacity(spec.depth),
            expect_seq: 0,
            echo_queue: VecDeque::with_capacity(spec.depth),
            eof: false,
            rx_target: if path(spec.mode).wire {
                RxTarget::Wire
            } else {
                RxTarget::Fields
            },
            started: None,
            first_rx: None,
            finished: None,
            stats: FlowStats::default(),
            latency: Latency::default(),
            progress: Progress::default(),
            leaked: false,
            #[cfg(debug_assertions)]
            fault: false,
        }
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
    pub fn begin(&mut self, now: Instant) {
        self.started = Some(now);
        if self.spec.role == Role::Client {
            self.deadline = Some(now + self.spec.duration);
            self.progress.begin(now, self.spec.duration);
        }
    }

    /// Ends the measured interval early (the user interrupted the run): nothing new is
    /// sent; what is outstanding is still awaited.
    pub fn stop(&mut self) {
        self.stopping = true;
    }

    /// The next message to send, stamped (and serialized, in two-copy), or `None` when the
    /// workload has nothing to send now.
    pub fn next_tx(&mut self, now: Instant) -> Option<Box<Message>> {
        let mut msg = match self.spec.role {
            Role::Client => {
                if self.stopping {
                    return None;
                }
                if self.deadline.is_some_and(|d| now >= d) {
                    self.stopping = true;
                    return None;
                }
                if self.spec.workload == Workload::Echo && self.sent_at.len() >= self.spec.depth {
                    return None;
                }
                let mut msg = self.pool.take_tx()?;
                msg.stamp(self.next_seq);
                self.next_seq += 1;
                match self.spec.workload {
                    Workload::Echo => self.sent_at.push_back(now),
                    // A stream's progress is a buffer free for the next message.
                    Workload::Stream => self.progress.record(now),
                }
                msg
            }
            Role::Server => self.echo_queue.pop_front()?,
        };
        if path(self.spec.mode).wire {
            msg.serialize();
        }
        Some(msg)
    }

    /// The kernel took every byte of `msg`.
    pub fn sent(&mut self, msg: &Message) {
        self.stats.bytes_sent += msg.size() as u64;
        self.stats.msgs_sent += 1;
    }

    /// A buffer nobody (the kernel included) holds any more.
    pub fn release(&mut self, msg: Box<Message>) {
        self.pool.put(msg);
    }

    /// True while a receive is useful: an echo is due, or the server's stream is open.
    pub fn wants_rx(&self) -> bool {
        match self.spec.role {
            Role::Client => !self.sent_at.is_empty(),
            Role::Server => !self.eof,
        }
    }

    /// A buffer to receive into, if one is free, poisoned where verification will look.
    pub fn rx_buffer(&mut self) -> Option<Box<Message>> {
        let mut msg = self.pool.take_rx()?;
        msg.poison(self.spec.verify, &self.template, self.rx_target);
        Some(msg)
    }

    /// A whole message arrived in `msg` (in two-copy, in its wire buffer: the copy out into
    /// the fields happens here).
    pub fn received(&mut self, mut msg: Box<Message>, now: Instant) -> Result<(), Error> {
        if path(self.spec.mode).wire {
            msg.deserialize();
        }
        self.received_in_fields(msg, now)
    }

    /// A whole message is in `msg`'s fields already (two-copy from a provided buffer,
    /// where the backend did the copy out with [`Message::deserialize_from`]).
    pub fn received_in_fields(&mut self, mut msg: Box<Message>, now: Instant) -> Result<(), Error> {
        if self.spec.role == Role::Client && self.sent_at.is_empty() {
            self.pool.put(msg);
            return Err(Error::Peer(
                "server sent data that was not asked for".into(),
            ));
        }
        #[cfg(debug_assertions)]
        if self.fault {
            panic!("injected fault: COPYPERF_FAULT_PANIC_SIZE={}", self.size());
        }
        self.first_rx.get_or_insert(now);
        self.stats.bytes_received += msg.size() as u64;
        self.stats.msgs_received += 1;
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
        match self.spec.role {
            Role::Client => {
                let sent = self.sent_at.pop_front().expect("checked above");
                self.latency.record(now.saturating_duration_since(sent));
                self.progress.record(now);
                self.pool.put(msg);
            }
            Role::Server if self.spec.workload == Workload::Echo => self.echo_queue.push_back(msg),
            Role::Server => self.pool.put(msg),
        }
        Ok(())
    }

    /// The peer closed its sending side; `partial` bytes of a message had arrived.
    pub fn eof(&mut self, partial: usize) -> Result<(), Error> {
        match self.spec.role {
            Role::Server if partial == 0 => {
                self.eof = true;
                Ok(())
            }
            Role::Server => Err(Error::Peer(format!(
                "connection closed mid-message: {partial} of {} bytes arrived",
                self.size()
            ))),
            Role::Client => Err(Error::Peer(format!(
                "server closed the connection with {} echoes outstanding",
                self.sent_at.len()
            ))),
        }
    }

    /// Nothing more to send or receive (buffers may still be with the kernel).
    pub fn is_done(&self) -> bool {
        match self.spec.role {
            Role::Client => self.stopping && self.sent_at.is_empty(),
            Role::Server => self.eof && self.echo_queue.is_empty(),
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

    /// Free buffers a send could come from: the client's send buffers; any of the
    /// server's, which echoes what it received.
    pub fn send_buffers_free(&self) -> usize {
        match self.spec.role {
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

    /// The measured interval: client from `begin` to `finish`; server from the first byte
    /// received to `finish`.
    pub fn duration(&self) -> Duration {
        let start = match self.spec.role {
            Role::Client => self.started,
            Role::Server => self.first_rx.or(self.started),
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
    use crate::pool::{pool_size, PoolPlan};

    fn flow(role: Role, workload: Workload, mode: Mode, depth: usize) -> Flow {
        let template = Template::new(Layout::new(256));
        let plan = PoolPlan::new(role, mode, 256, depth);
        let pool = Pool::heap(&template, &plan);
        let spec = FlowSpec {
            role,
            workload,
            mode,
            verify: Verify::Full,
            depth,
            duration: Duration::from_secs(1),
        };
        Flow::new(spec, template, pool)
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
        assert_eq!(held.len(), pool_size(2) - 1, "all but the receive buffer");
        assert!(!c.wants_rx());
        assert!(!c.pool_home());
        held.into_iter().for_each(|m| c.release(m));
        assert!(c.pool_home());
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
