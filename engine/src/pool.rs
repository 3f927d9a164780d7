//! A connection's message buffers.
//!
//! A buffer leaves the pool for a send or a receive and comes back only when nobody else
//! can touch it any more: after the send returned (copying modes), after the kernel said
//! it is done with the pages (zero-copy), after the received message was checked. An
//! empty pool therefore means "wait for completions", never "allocate more".

use std::sync::Arc;

use crate::config::Mode;
use crate::message::{Message, Region, Template};

/// The buffers one connection owns.
pub struct Pool {
    // Boxed: a message keeps its address while the kernel holds pointers into it.
    #[allow(clippy::vec_box)]
    free: Vec<Box<Message>>,
    capacity: usize,
}

impl Pool {
    /// `count` heap messages for `mode`; two-copy ones carry a wire buffer.
    pub fn heap(template: &Template, mode: Mode, count: usize) -> Pool {
        let wire = mode == Mode::TwoCopy;
        let free = (0..count)
            .map(|slot| Message::heap(template, wire, slot as u16))
            .collect();
        Pool {
            free,
            capacity: count,
        }
    }

    /// `count` messages laid out back to back in `region`, message `i` registered as fixed
    /// buffer `first_index + i`. Each message starts on its own page boundary when
    /// `stride` says so; the caller sizes the region as `count * stride`.
    pub fn fixed(
        template: &Template,
        region: Arc<Region>,
        stride: usize,
        first_index: u16,
        count: usize,
    ) -> Pool {
        let free = (0..count)
            .map(|i| {
                Message::fixed(
                    template,
                    region.clone(),
                    i * stride,
                    first_index + i as u16,
                    i as u16,
                )
            })
            .collect();
        Pool {
            free,
            capacity: count,
        }
    }

    /// A free buffer, if any.
    pub fn take(&mut self) -> Option<Box<Message>> {
        self.free.pop()
    }

    /// Returns a buffer nobody else holds any more.
    pub fn put(&mut self, msg: Box<Message>) {
        debug_assert!(
            self.free.len() < self.capacity,
            "more buffers returned than taken"
        );
        self.free.push(msg);
    }

    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// True when every buffer is back: nothing is in flight or held by the kernel.
    pub fn all_home(&self) -> bool {
        self.free.len() == self.capacity
    }
}

/// How many buffers a connection needs: `depth` in flight plus as many again that the
/// kernel may still hold for zero-copy, plus one to receive into.
pub fn pool_size(depth: usize) -> usize {
    2 * depth + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Layout;

    #[test]
    fn buffers_come_and_go() {
        let t = Template::new(Layout::new(256));
        let mut pool = Pool::heap(&t, Mode::TwoCopy, 2);
        assert!(pool.all_home());
        let a = pool.take().unwrap();
        assert_eq!(a.wire().len(), 256);
        let b = pool.take().unwrap();
        assert!(pool.take().is_none());
        assert_ne!(a.slot(), b.slot());
        pool.put(a);
        assert!(!pool.all_home());
        pool.put(b);
        assert!(pool.all_home());
        assert!(Pool::heap(&t, Mode::OneCopy, 1)
            .take()
            .unwrap()
            .wire()
            .is_empty());
    }
}
