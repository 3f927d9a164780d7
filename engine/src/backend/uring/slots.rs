//! Slots in a registered table (fixed files, fixed buffers), handed out as ranges and
//! coalesced when given back, so that a long-lived server with connections of mixed depths
//! does not fragment its table into ranges too small for the next one.

/// Free ranges of a registered table.
#[derive(Debug)]
pub(crate) struct SlotTable {
    /// Free ranges (start, len), sorted by start, never adjacent (adjacent ones merge).
    free: Vec<(u32, u32)>,
}

impl SlotTable {
    pub fn new(len: u32) -> SlotTable {
        SlotTable {
            free: if len > 0 { vec![(0, len)] } else { Vec::new() },
        }
    }

    /// The first free range of `n` slots; returns its start.
    pub fn alloc(&mut self, n: u32) -> Option<u32> {
        let i = self.free.iter().position(|&(_, len)| len >= n)?;
        let (start, len) = self.free[i];
        if len == n {
            self.free.remove(i);
        } else {
            self.free[i] = (start + n, len - n);
        }
        Some(start)
    }

    /// Gives `n` slots from `start` back, merging with free neighbours.
    pub fn release(&mut self, start: u32, n: u32) {
        if n == 0 {
            return;
        }
        let i = self.free.partition_point(|&(s, _)| s < start);
        debug_assert!(
            i == 0 || self.free[i - 1].0 + self.free[i - 1].1 <= start,
            "slots {start}+{n} released twice"
        );
        let joins_prev = i > 0 && self.free[i - 1].0 + self.free[i - 1].1 == start;
        let joins_next = i < self.free.len() && start + n == self.free[i].0;
        match (joins_prev, joins_next) {
            (true, true) => {
                self.free[i - 1].1 += n + self.free[i].1;
                self.free.remove(i);
            }
            (true, false) => self.free[i - 1].1 += n,
            (false, true) => self.free[i] = (start, n + self.free[i].1),
            (false, false) => self.free.insert(i, (start, n)),
        }
    }

    /// The largest range free now.
    #[cfg(test)]
    pub fn largest(&self) -> u32 {
        self.free.iter().map(|&(_, len)| len).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_tables_hand_out_disjoint_ranges() {
        let mut t = SlotTable::new(10);
        let a = t.alloc(4).unwrap();
        let b = t.alloc(6).unwrap();
        assert_eq!((a, b), (0, 4));
        assert!(t.alloc(1).is_none());
        t.release(a, 4);
        assert_eq!(t.alloc(3), Some(0));
    }

    /// A long-lived table with connections of mixed depths coming and going in any order
    /// ends whole again, and a range as large as the table fits once all are gone.
    #[test]
    fn released_slots_coalesce() {
        let mut t = SlotTable::new(1000);
        let sizes = [3, 17, 9, 33, 5, 65, 3, 129, 17, 9];
        let mut held: Vec<(u32, u32)> = Vec::new();
        for round in 0..50u32 {
            for (i, &n) in sizes.iter().enumerate() {
                if let Some(s) = t.alloc(n) {
                    held.push((s, n));
                }
                // Release in an order unlike the allocation order.
                if (i as u32 + round) % 3 == 0 && !held.is_empty() {
                    let k = (i * 7 + round as usize) % held.len();
                    let (s, n) = held.swap_remove(k);
                    t.release(s, n);
                }
            }
            let mut spans: Vec<(u32, u32)> = held.clone();
            spans.sort_unstable();
            assert!(
                spans.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0),
                "overlap"
            );
        }
        for (s, n) in held.drain(..) {
            t.release(s, n);
        }
        assert_eq!(t.largest(), 1000);
        assert_eq!(t.alloc(1000), Some(0));
    }
}
