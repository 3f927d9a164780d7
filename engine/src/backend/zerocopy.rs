//! Completion accounting for MSG_ZEROCOPY.
//!
//! Every `sendmsg(MSG_ZEROCOPY)` call that queues at least one byte gets the next number
//! of a per-socket 32-bit counter; the kernel later reports completed calls on the error
//! queue as inclusive ranges `[lo, hi]`, possibly coalesced, flagged when it had to copy
//! after all. A buffer may be reused only when every call that sent from it has completed,
//! so the ledger holds buffers in send order with the number of their last call and hands
//! them back once the completed prefix passes it.

use std::collections::VecDeque;

use crate::stats::ZeroCopyStats;

/// `a` is before `b` in wrapping 32-bit call numbers.
fn before(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) > 0
}

/// Call numbers issued and completed, and the buffers waiting on them.
#[derive(Debug)]
pub struct ZcLedger<T> {
    /// The number the next zero-copy call will get.
    next: u32,
    /// Every call before this number has completed.
    done_below: u32,
    /// Completed ranges past `done_below` (out-of-order completions), unsorted.
    ahead: Vec<(u32, u32)>,
    /// Buffers in send order, with the number of the last call that read from each.
    held: VecDeque<(T, u32)>,
    pub stats: ZeroCopyStats,
}

impl<T> Default for ZcLedger<T> {
    fn default() -> Self {
        ZcLedger {
            next: 0,
            done_below: 0,
            ahead: Vec::new(),
            held: VecDeque::new(),
            stats: ZeroCopyStats::default(),
        }
    }
}

impl<T> ZcLedger<T> {
    /// A zero-copy call queued data; returns its number.
    pub fn call_sent(&mut self) -> u32 {
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        self.stats.sends += 1;
        id
    }

    /// `buf` was fully sent; it is the kernel's until every call so far has completed.
    pub fn hold(&mut self, buf: T) {
        let last = self.next.wrapping_sub(1);
        self.held.push_back((buf, last));
    }

    /// The kernel reports calls `lo..=hi` complete.
    pub fn complete(&mut self, lo: u32, hi: u32, copied: bool) {
        let n = u64::from(hi.wrapping_sub(lo)) + 1;
        self.stats.completions += n;
        if copied {
            self.stats.copied += n;
        }
        if lo == self.done_below {
            self.done_below = hi.wrapping_add(1);
            // Absorb ranges that now touch the completed prefix.
            while let Some(i) = self.ahead.iter().position(|&(l, _)| l == self.done_below) {
                let (_, h) = self.ahead.swap_remove(i);
                self.done_below = h.wrapping_add(1);
            }
        } else {
            self.ahead.push((lo, hi));
        }
    }

    /// Gives up on buffers whose completions will not come (the peer is gone and the
    /// kernel still holds the pages): they are leaked, never reused under the kernel.
    /// Returns how many.
    pub fn abandon(&mut self) -> usize {
        let n = self.held.len();
        for (buf, _) in self.held.drain(..) {
            std::mem::forget(buf);
        }
        n
    }

    /// The oldest held buffer, if all its calls have completed.
    pub fn pop_ready(&mut self) -> Option<T> {
        match self.held.front() {
            Some(&(_, last)) if before(last, self.done_below) => {
                self.held.pop_front().map(|(b, _)| b)
            }
            _ => None,
        }
    }

    /// Calls not yet completed.
    pub fn outstanding(&self) -> u32 {
        self.next.wrapping_sub(self.done_below)
    }

    /// Buffers still with the kernel.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_only_after_all_their_calls() {
        let mut l = ZcLedger::default();
        // Buffer "a" took two calls (a short send), "b" one.
        l.call_sent();
        l.call_sent();
        l.hold("a");
        l.call_sent();
        l.hold("b");
        assert_eq!(l.outstanding(), 3);
        l.complete(0, 0, false);
        assert_eq!(l.pop_ready(), None, "a's second call is still out");
        l.complete(1, 2, true);
        assert_eq!(l.pop_ready(), Some("a"));
        assert_eq!(l.pop_ready(), Some("b"));
        assert_eq!(l.outstanding(), 0);
        assert_eq!(
            l.stats,
            ZeroCopyStats {
                sends: 3,
                completions: 3,
                copied: 2
            }
        );
    }

    #[test]
    fn out_of_order_ranges_are_absorbed() {
        let mut l = ZcLedger::default();
        for b in 0..4 {
            l.call_sent();
            l.hold(b);
        }
        l.complete(2, 3, false);
        assert_eq!(l.pop_ready(), None);
        l.complete(0, 1, false);
        assert_eq!(
            (0..4).map(|_| l.pop_ready().unwrap()).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        assert_eq!(l.outstanding(), 0);
    }

    #[test]
    fn numbers_wrap_around() {
        let mut l = ZcLedger::<u8> {
            next: u32::MAX - 1,
            done_below: u32::MAX - 1,
            ..Default::default()
        };
        for b in 0..4 {
            l.call_sent();
            l.hold(b);
        }
        l.complete(u32::MAX - 1, 1, false);
        assert_eq!(l.stats.completions, 4);
        assert_eq!((0..4).filter_map(|_| l.pop_ready()).count(), 4);
        assert_eq!(l.outstanding(), 0);
    }
}
