//! The seasonal channel of a metric's novelty: how surprising the smoothed
//! value's cell is at this phase of the metric's period (the hour of its
//! day, when the period is a day), given the same device's earlier visits
//! of the same phase.
//!
//! The trainer finds each metric's period in the training rows
//! (`vigil_training::season`) and the release carries it
//! ([`crate::combine::NoveltyPolicy::seasons`]); a metric without one has
//! no seasonal channel. The period is cut into
//! [`super::NoveltyConfig::season_slots`] phase slots. Per resolution of
//! the smoothed channel, the state counts each (slot, cell) pair and each
//! slot's visits and distinct cells, and a value is scored by the
//! Witten–Bell probability of its cell in its slot, backing off to the
//! cell's probability at any phase (the smoothed channel's own, computed
//! from the same counts before this value is learnt). A slot never visited
//! backs off entirely, so the channel says nothing the smoothed channel did
//! not until the device has been seen at that phase. What it catches is a
//! value that is usual for the device but not at this time: a holiday's
//! traffic on a working day, a night-time load in the day.
//!
//! Phases come from event time (`ts`, ms since the Unix epoch) in integer
//! arithmetic, and probabilities from `+ × ÷` only, so edge and cloud
//! agree bit for bit.
//!
//! Layout: one buffer of 32-bit words cut into one fixed-size block per
//! slot, so a record's phase leads straight to the words it reads (one
//! cache line at the start) with nothing to look up first. A block holds
//! the slot's pairs, one word each, `resolution << 24 | cell << 16 |
//! visits`, sorted (so by resolution, then cell), then zeros; a slot's
//! visits and distinct cells at a resolution are summed from its pairs.
//! When a slot's block is full, every block doubles (rare: a slot's cells
//! at every resolution must pass the block's size). Visits of a pair are
//! 16 bits: before one would pass 65,535, every pair of that resolution is
//! halved, rounding up (a pair seen stays seen, so the distinct cells stay
//! as they were).

/// Most phase slots a period is cut into (a slot fits a byte).
pub const MAX_SLOTS: u16 = 256;

/// Words a slot's block starts with (a 32-byte half cache line).
const FIRST_BLOCK: usize = 8;

/// Counts of one metric's seasonal channel on one device.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Season {
    period_ms: u64,
    slots: u16,
    /// Words of each slot's block.
    block: usize,
    words: Vec<u32>,
}

impl Season {
    /// Empty counts for `resolutions` resolutions; `None` for no period,
    /// no slots, more than [`MAX_SLOTS`] or more than 255 resolutions.
    pub(super) fn new(period_ms: u64, slots: u16, resolutions: usize) -> Option<Self> {
        (period_ms > 0 && slots > 0 && slots <= MAX_SLOTS && resolutions <= 255).then(|| Self {
            period_ms,
            slots,
            block: FIRST_BLOCK,
            words: vec![0; usize::from(slots) * FIRST_BLOCK],
        })
    }

    /// The phase slot of event time `ts_ms`.
    pub(super) fn slot(&self, ts_ms: u64) -> u16 {
        let phase = u128::from(ts_ms % self.period_ms);
        let slot = phase * u128::from(self.slots) / u128::from(self.period_ms);
        // phase < period, so slot < slots.
        slot as u16
    }

    /// The probability of `cell` (of resolution `r`) in `slot`, backing off
    /// to `alone` (its probability at any phase); then counts it.
    pub(super) fn observe(&mut self, r: usize, slot: u16, cell: u32, alone: f64) -> f64 {
        let key = (r as u32) << 8 | (cell & 0xFF);
        let start = usize::from(slot) * self.block;
        // One pass over the block: the slot's visits and distinct cells at
        // this resolution, this cell's visits, and where it is or goes.
        let (mut total, mut distinct, mut seen) = (0u32, 0u32, None);
        let mut at = self.block;
        for (i, &w) in self.words[start..start + self.block].iter().enumerate() {
            if w == 0 {
                at = at.min(i);
                break;
            }
            let k = w >> 16;
            if k >> 8 == r as u32 {
                total += w & 0xFFFF;
                distinct += 1;
            }
            if k == key {
                seen = Some(i);
            } else if k > key {
                at = at.min(i);
            }
        }
        let visits = seen.map_or(0, |i| self.words[start + i] & 0xFFFF);
        let p = (f64::from(visits) + (f64::from(distinct) + 1.0) * alone)
            / (f64::from(total) + f64::from(distinct) + 1.0);
        match seen {
            Some(i) => {
                if visits == 0xFFFF {
                    self.halve(r);
                }
                self.words[start + i] += 1;
            }
            None => {
                if self.words[start + self.block - 1] != 0 {
                    self.grow();
                }
                let start = usize::from(slot) * self.block;
                let block = &mut self.words[start..start + self.block];
                block[at..].rotate_right(1);
                block[at] = key << 16 | 1;
            }
        }
        p
    }

    /// Doubles every slot's block.
    #[cold]
    fn grow(&mut self) {
        let old = self.block;
        let mut words = vec![0; self.words.len() * 2];
        for (slot, chunk) in self.words.chunks_exact(old).enumerate() {
            words[slot * 2 * old..slot * 2 * old + old].copy_from_slice(chunk);
        }
        self.block = 2 * old;
        self.words = words;
    }

    /// Halves every pair of resolution `r` (rounding up, so nothing seen
    /// is forgotten).
    #[cold]
    fn halve(&mut self, r: usize) {
        for w in self
            .words
            .iter_mut()
            .filter(|w| **w != 0 && (**w >> 24) as usize == r)
        {
            *w -= (*w & 0xFFFF) / 2;
        }
    }

    /// Bytes held (inline and on the heap).
    pub(super) fn bytes(&self) -> usize {
        std::mem::size_of::<Self>() + 4 * self.words.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cut_the_period_evenly_from_the_epoch() {
        let s = Season::new(86_400_000, 24, 1).expect("a period");
        assert_eq!(s.slot(0), 0);
        assert_eq!(s.slot(3_599_999), 0);
        assert_eq!(s.slot(3_600_000), 1);
        assert_eq!(s.slot(86_400_000 + 23 * 3_600_000), 23);
        assert_eq!(s.slot(u64::MAX), s.slot(u64::MAX % 86_400_000));
        assert!(Season::new(0, 24, 1).is_none());
        assert!(Season::new(1, 0, 1).is_none());
        assert!(Season::new(1, MAX_SLOTS + 1, 1).is_none());
    }

    #[test]
    fn an_unvisited_slot_backs_off_and_a_usual_cell_at_its_phase_is_likely() {
        let mut s = Season::new(10, 2, 2).expect("a period");
        // Never seen at this phase: the cell's probability at any phase.
        assert_eq!(s.observe(0, 0, 3, 0.25), 0.25);
        for _ in 0..20 {
            s.observe(0, 0, 3, 0.5);
            s.observe(0, 1, 7, 0.5);
            s.observe(1, 1, 200, 0.5);
        }
        let usual = s.observe(0, 0, 3, 0.5);
        let other_phase = s.observe(0, 0, 7, 0.5);
        assert!(usual > 0.9, "{usual}");
        assert!(other_phase < 0.05, "{other_phase}");
        // Resolutions keep their own counts.
        assert!(s.observe(1, 1, 200, 0.5) > 0.9);
        assert_eq!(s.observe(1, 0, 3, 0.125), 0.125);
    }

    /// Slot `slot`'s pairs at resolution `r`: (cell, visits).
    fn pairs(s: &Season, r: u32, slot: u16) -> Vec<(u32, u32)> {
        let start = usize::from(slot) * s.block;
        s.words[start..start + s.block]
            .iter()
            .take_while(|&&w| w != 0)
            .filter(|&&w| w >> 24 == r)
            .map(|&w| (w >> 16 & 0xFF, w & 0xFFFF))
            .collect()
    }

    #[test]
    fn counts_are_halved_before_they_wrap_and_blocks_grow_in_order() {
        let mut s = Season::new(10, 2, 2).expect("a period");
        s.observe(0, 0, 9, 0.5);
        for _ in 0..70_000u32 {
            s.observe(0, 1, 2, 0.5);
        }
        s.observe(0, 1, 4, 0.5);
        s.observe(1, 1, 4, 0.5);
        let at_0 = pairs(&s, 0, 1);
        assert_eq!(at_0.len(), 2);
        // 65,535 visits, halved to 32,768 at the next, then 4,465 more.
        assert_eq!(at_0[0], (2, 32_768 + 4_465));
        // Slot 0's single visit survives the halving; resolution 1 is apart.
        assert_eq!(pairs(&s, 0, 0), vec![(9, 1)]);
        assert_eq!(pairs(&s, 1, 1), vec![(4, 1)]);
        // More cells in a slot than its block holds: every block doubles,
        // and each stays sorted with its counts.
        for cell in (0..20).rev() {
            s.observe(1, 0, cell, 0.5);
        }
        assert_eq!(s.block, 4 * FIRST_BLOCK);
        let at_1: Vec<u32> = pairs(&s, 1, 0).iter().map(|&(c, _)| c).collect();
        assert_eq!(at_1, (0..20).collect::<Vec<_>>());
        assert_eq!(pairs(&s, 0, 0), vec![(9, 1)]);
        assert_eq!(pairs(&s, 1, 1), vec![(4, 1)]);
        assert_eq!(pairs(&s, 0, 1).len(), 2);
    }
}
