//! When a region sent by reference may be written again (sendfile, splice).
//!
//! The kernel sends a page-cache region by reference: until the peer's reader has taken
//! the bytes, a socket buffer — on local delivery the peer's receive queue itself —
//! points at the region's pages, and a write into the region changes what the peer will
//! read. TCP's acknowledgement does not end this: the peer acknowledges what it queued,
//! not what was read (on loopback, SIOCOUTQ reads 0 while the peer has read nothing).
//! Only the peer can prove it read, so a buffer sent from goes back to the pool only on
//! such proof:
//!
//! - echo, client: the echo of message `k` arrived, so the server read message `k`;
//! - echo, server: message `k + depth` arrived, which the client sends only once it has
//!   read the whole echo of `k` (its window holds `depth` messages); and end of stream,
//!   which the client sends only once it has every echo;
//! - stream: the receiver sends one receipt byte per `interval` messages it has read
//!   (`pool::receipt_interval`), and the sender counts them.
//!
//! A retransmission from a reused region cannot reach the peer's reader either way: it
//! carries bytes the peer already read, which TCP discards as duplicates.
//!
//! Once a flow is done nothing is written into its regions again, so what still waits
//! for a proof then goes home unproven.

use crate::error::Error;
use crate::message::Message;
use crate::stats::ByRefStats;

/// The byte a receipt is: anything else is a peer that does not speak the protocol.
pub const RECEIPT: u8 = 0xa5;

/// Every receipt byte a sender may ask the kernel for at once.
pub static RECEIPTS: [u8; 64] = [RECEIPT; 64];

/// Sends waiting for the peer's read, and the receipts that prove it.
pub(crate) struct ReadProof {
    /// Every message numbered below this has been read by the peer.
    read_below: u64,
    /// Messages sent so far: the next one sent gets this number.
    sent: u64,
    /// By pool slot: the number of the message last sent from it, until it goes home.
    unproven: Vec<Option<u64>>,
    /// Buffers the backend is done with, waiting for their proof.
    #[allow(clippy::vec_box)]
    parked: Vec<Box<Message>>,
    /// Messages per receipt (stream).
    interval: u64,
    /// Receipts received (sender) or sent (receiver).
    receipts: u64,
    /// Receipts the receiver owes but has not yet handed to the kernel.
    owed: u64,
    pub stats: ByRefStats,
}

impl ReadProof {
    /// `slots` buffers; in a stream (`stream`), one receipt per `interval` messages.
    pub fn new(slots: usize, interval: u64, stream: bool) -> ReadProof {
        let interval = interval.max(1);
        ReadProof {
            read_below: 0,
            sent: 0,
            unproven: vec![None; slots],
            parked: Vec::new(),
            interval,
            receipts: 0,
            owed: 0,
            stats: ByRefStats {
                receipt_every: stream.then_some(interval),
                ..ByRefStats::default()
            },
        }
    }

    /// The kernel took every byte of `msg`: it is the next message in send order.
    pub fn sent(&mut self, msg: &Message) {
        if let Some(s) = self.unproven.get_mut(msg.slot() as usize) {
            *s = Some(self.sent);
        }
        self.sent += 1;
        self.stats.sends += 1;
    }

    /// The backend is done with `msg`: returns it if it may be written again now, or
    /// keeps it until the peer has read what was sent from it.
    pub fn release(&mut self, msg: Box<Message>) -> Option<Box<Message>> {
        let slot = msg.slot() as usize;
        match self.unproven.get(slot).copied().flatten() {
            Some(seq) if seq >= self.read_below => {
                self.parked.push(msg);
                self.stats.held_max = self.stats.held_max.max(self.parked.len() as u64);
                None
            }
            _ => {
                if let Some(s) = self.unproven.get_mut(slot) {
                    *s = None;
                }
                Some(msg)
            }
        }
    }

    /// The peer has read every message numbered below `n`.
    pub fn read_below(&mut self, n: u64) {
        self.read_below = self.read_below.max(n);
    }

    /// Buffers whose proof has arrived (all of them with `all`: nothing will be written
    /// into them again).
    pub fn proven(&mut self, all: bool) -> impl Iterator<Item = Box<Message>> + '_ {
        let mut i = 0;
        let mut out = Vec::new();
        while i < self.parked.len() {
            let slot = self.parked[i].slot() as usize;
            let seq = self.unproven[slot].expect("a parked buffer was sent from");
            if all || seq < self.read_below {
                self.unproven[slot] = None;
                out.push(self.parked.swap_remove(i));
            } else {
                i += 1;
            }
        }
        out.into_iter()
    }

    /// Receiver: the peer's `n`-th message was read; a receipt is owed every `interval`.
    pub fn read_one(&mut self, n: u64) {
        if n % self.interval == 0 {
            self.owed += 1;
        }
    }

    /// Receiver: receipt bytes owed and not yet handed to the kernel.
    pub fn owed(&self) -> u64 {
        self.owed
    }

    /// Receiver: the kernel took `n` receipt bytes.
    pub fn receipts_sent(&mut self, n: u64) {
        debug_assert!(n <= self.owed);
        self.owed -= n.min(self.owed);
        self.receipts += n;
        self.stats.receipts += n;
    }

    /// Sender: receipt bytes the peer will still send for what was sent so far.
    pub fn due(&self) -> u64 {
        (self.sent / self.interval).saturating_sub(self.receipts)
    }

    /// Sender: receipt bytes arrived.
    pub fn receipts_received(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if let Some(b) = bytes.iter().find(|&&b| b != RECEIPT) {
            return Err(Error::Peer(format!(
                "the server sent {b:#04x} where a read receipt ({RECEIPT:#04x}) was due"
            )));
        }
        let n = bytes.len() as u64;
        if n > self.due() {
            return Err(Error::Peer(format!(
                "the server sent {n} read receipts where {} were due",
                self.due()
            )));
        }
        self.receipts += n;
        self.stats.receipts += n;
        self.read_below(self.receipts * self.interval);
        Ok(())
    }

    /// Buffers waiting for a proof.
    #[cfg(test)]
    pub fn parked(&self) -> usize {
        self.parked.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Layout, Template};

    #[test]
    fn a_buffer_goes_home_only_once_the_peer_read_it() {
        let t = Template::new(Layout::new(256));
        let mut p = ReadProof::new(3, 2, true);
        let (a, b) = (Message::heap(&t, false, 0), Message::heap(&t, false, 1));
        p.sent(&a);
        p.sent(&b);
        assert!(p.release(a).is_none(), "message 0 is unread");
        assert!(p.release(b).is_none());
        assert_eq!(p.proven(false).count(), 0);
        assert_eq!(p.due(), 1, "one receipt per two messages");
        assert!(p.receipts_received(&[0]).is_err(), "not a receipt byte");
        assert!(p.receipts_received(&[RECEIPT; 2]).is_err(), "more than due");
        p.receipts_received(&[RECEIPT]).unwrap();
        assert_eq!(p.proven(false).count(), 2);
        assert_eq!(p.parked(), 0);
        // Never sent from: home at once.
        assert!(p.release(Message::heap(&t, false, 2)).is_some());
        assert_eq!(p.stats.held_max, 2);
    }

    #[test]
    fn echo_proofs_and_the_end_release_in_any_order() {
        let t = Template::new(Layout::new(256));
        let mut p = ReadProof::new(4, 1, false);
        let msgs: Vec<_> = (0..4).map(|s| Message::heap(&t, false, s)).collect();
        for m in &msgs {
            p.sent(m);
        }
        for m in msgs.into_iter().rev() {
            assert!(p.release(m).is_none());
        }
        p.read_below(2);
        let mut home: Vec<u16> = p.proven(false).map(|m| m.slot()).collect();
        home.sort();
        assert_eq!(home, [0, 1]);
        assert_eq!(p.proven(true).count(), 2);
    }

    #[test]
    fn a_receiver_owes_one_receipt_per_interval() {
        let mut p = ReadProof::new(1, 3, true);
        for n in 1..=7 {
            p.read_one(n);
        }
        assert_eq!(p.owed(), 2);
        p.receipts_sent(2);
        assert_eq!(p.owed(), 0);
        assert_eq!(p.stats.receipts, 2);
    }
}
