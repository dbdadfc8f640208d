//! The visit and step counts of one metric's novelty state, every channel
//! and resolution ("table") in one buffer of 16-bit words.
//!
//! Layout: word 0 holds the number of tables; then one head of [`HEAD`]
//! words per table (geometry, total visits as two words, slot of the
//! previous cell, cells visited, steps kept); then each table's region in
//! the same order: one pair of words per visited cell, sorted by cell
//! (`cell | successors << 8`, visits), followed by one pair per step ever
//! made (`from * cells + to`, count), sorted by key. A cell's departures
//! are not stored: every visit but the latest was followed by a step, so
//! they are its visits less one for the previous cell (the only cell whose
//! departures are asked for).
//! A region's start is the sum of the sizes of the regions before it, so
//! nothing but the counts is stored. Only cells and steps that occurred
//! take room; a new one is inserted in place (rare once a device has
//! learned its routine).
//!
//! A table has at most [`MAX_CELLS`] cells, so a cell fits a byte and a
//! step key a word: a resolution above it is cut to it, and the margins
//! narrow until the table fits (the default, 12 cells and 4 ranges each
//! side, has 108).
//!
//! Counts are 16 bits and never wrap: when a cell's visits would pass
//! 65,535 (no step count can pass them first), that table's counts are
//! halved first. Every step count is halved rounding up (`c - c / 2`, so a
//! step seen once stays seen once and none is forgotten); each cell's
//! visits become the sum of its halved steps, plus one for the previous
//! cell; visits in all become the sum of those. So the counts stay
//! consistent (departures = visits less the latest, a step count at most
//! its cell's departures), every visited cell keeps at least one visit, and
//! the cells visited and each cell's successors are unchanged. It takes
//! more than 65,535 visits of one cell, so it never happens on the NAB
//! corpus (its longest series has about 22,700 rows).

/// Words of a table's head.
pub(super) const HEAD: usize = 6;
/// Head words: `per_range | margin_ranges << 8`.
const GEOMETRY: usize = 0;
/// Head words: visits in all, low then high half.
const TOTAL: usize = 1;
/// Head word: slot of the previous cell's pair ([`NONE`] before any).
const LAST: usize = 3;
/// Head word: cells visited at least once (cell pairs).
const DISTINCT: usize = 4;
/// Head word: distinct steps kept (step pairs).
const STEPS: usize = 5;
/// No previous cell.
const NONE: u16 = u16::MAX;
/// Most cells a table has (a cell fits a byte, a successor count too).
pub(super) const MAX_CELLS: u16 = 255;

/// Where one table lies in a [`Counts`] buffer, and its geometry.
#[derive(Debug, Clone, Copy)]
pub(super) struct Table {
    head: usize,
    /// First word of the table's region.
    start: usize,
    /// Cells the trained range is cut into.
    pub(super) per_range: u16,
    /// Cells below the trained range (cell `offset` starts at its low end).
    offset: u32,
    /// Cells in all.
    cells: u32,
}

/// The counts of every table of one metric (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Counts {
    pub(super) words: Vec<u16>,
}

impl Counts {
    /// Empty tables for the value channel's resolutions, then the smoothed
    /// channel's.
    pub(super) fn new(resolutions: &[u16], margin_ranges: u16) -> Self {
        let tables = 2 * resolutions.len();
        let mut words = Vec::with_capacity(1 + HEAD * tables);
        words.push(u16::try_from(tables).expect("fewer than 32,768 resolutions"));
        for _channel in 0..2 {
            for &r in resolutions {
                let per_range = r.clamp(1, MAX_CELLS);
                let margin = margin_ranges.min((MAX_CELLS / per_range - 1) / 2);
                words.extend([per_range | margin << 8, 0, 0, NONE, 0, 0]);
            }
        }
        Self { words }
    }

    /// Tables per channel.
    pub(super) fn per_channel(&self) -> usize {
        usize::from(self.words[0]) / 2
    }

    /// Where the first table's region starts.
    pub(super) fn first_start(&self) -> usize {
        1 + HEAD * usize::from(self.words[0])
    }

    /// Table `t`, its region starting at `start` (the previous table's
    /// [`Counts::end`]).
    #[inline(always)]
    pub(super) fn table(&self, t: usize, start: usize) -> Table {
        let head = 1 + HEAD * t;
        let geometry = self.words[head + GEOMETRY];
        let per_range = geometry & 0xFF;
        let margin = u32::from(geometry >> 8);
        Table {
            head,
            start,
            per_range,
            offset: u32::from(per_range) * margin,
            cells: u32::from(per_range) * (2 * margin + 1),
        }
    }

    /// Where the region after `table`'s starts.
    #[inline(always)]
    pub(super) fn end(&self, table: &Table) -> usize {
        table.start
            + 2 * usize::from(self.words[table.head + DISTINCT])
            + 2 * usize::from(self.words[table.head + STEPS])
    }

    /// The cell of `v` in `range`, the edge cells taking everything beyond
    /// the margins (and non-finite values).
    #[inline(always)]
    pub(super) fn cell_of(table: &Table, range: &super::ChannelRange, v: f64) -> u32 {
        let cells = f64::from(table.cells);
        let position = (v - range.low) / (range.width / f64::from(table.per_range));
        let index = position.floor() + f64::from(table.offset);
        if index.is_nan() || index < 0.0 {
            0
        } else if index >= cells {
            (cells - 1.0) as u32
        } else {
            index as u32
        }
    }

    /// The previous value's cell.
    pub(super) fn last(&self, table: &Table) -> Option<u32> {
        let slot = self.words[table.head + LAST];
        (slot != NONE).then(|| u32::from(self.words[table.start + 2 * usize::from(slot)] & 0xFF))
    }

    /// The size, in cells, of the step from the previous cell to `cell`.
    pub(super) fn step_to(&self, table: &Table, cell: u32) -> Option<u32> {
        self.last(table).map(|from| from.abs_diff(cell))
    }

    /// Visits of `cell` so far.
    pub(super) fn visits(&self, table: &Table, cell: u32) -> u16 {
        self.find_cell(table, cell)
            .map_or(0, |slot| self.words[table.start + 2 * slot + 1])
    }

    /// The slot of `cell`'s pair, or where it would go.
    #[inline(always)]
    fn find_cell(&self, table: &Table, cell: u32) -> Result<usize, usize> {
        let records = &self.words[table.start..];
        let (mut low, mut high) = (0, usize::from(self.words[table.head + DISTINCT]));
        while low < high {
            let mid = (low + high) / 2;
            let id = u32::from(records[2 * mid] & 0xFF);
            if id < cell {
                low = mid + 1;
            } else if id > cell {
                high = mid;
            } else {
                return Ok(mid);
            }
        }
        Err(low)
    }

    /// The index of step `key`'s pair among the table's pairs, or where it
    /// would go.
    #[inline(always)]
    fn find_step(&self, pairs: usize, steps: usize, key: u16) -> Result<usize, usize> {
        let pairs = &self.words[pairs..pairs + 2 * steps];
        let (mut low, mut high) = (0, steps);
        while low < high {
            let mid = (low + high) / 2;
            let k = pairs[2 * mid];
            if k < key {
                low = mid + 1;
            } else if k > key {
                high = mid;
            } else {
                return Ok(mid);
            }
        }
        Err(low)
    }

    /// Inserts `new` before word `at`, growing the buffer by about an
    /// eighth when it is full (not doubling: the state is kept per device).
    fn insert(&mut self, at: usize, new: &[u16]) {
        let len = self.words.len();
        if self.words.capacity() < len + new.len() {
            self.words.reserve_exact(new.len() + len / 8 + 8);
        }
        self.words.splice(at..at, new.iter().copied());
    }

    fn total(&self, table: &Table) -> u32 {
        u32::from(self.words[table.head + TOTAL])
            | u32::from(self.words[table.head + TOTAL + 1]) << 16
    }

    fn set_total(&mut self, table: &Table, total: u32) {
        self.words[table.head + TOTAL] = total as u16;
        self.words[table.head + TOTAL + 1] = (total >> 16) as u16;
    }

    /// The smoothed probability of `cell` after the previous one; then
    /// counts it. (Always inlined: with the expansion rules' second caller
    /// the default path lost ~15 % when it was not.)
    #[inline(always)]
    pub(super) fn observe(&mut self, table: &Table, cell: u32, prior_cells: f64) -> f64 {
        self.observe_both(table, cell, prior_cells).0
    }

    /// [`Counts::observe`], and the cell's own probability before it was
    /// counted (the back-off, for the seasonal channel).
    #[inline(always)]
    pub(super) fn observe_both(
        &mut self,
        table: &Table,
        cell: u32,
        prior_cells: f64,
    ) -> (f64, f64) {
        let head = table.head;
        let distinct = u32::from(self.words[head + DISTINCT]);
        let total = self.total(table);
        let found = self.find_cell(table, cell);
        let visits = found.map_or(0, |slot| self.words[table.start + 2 * slot + 1]);
        let alone = (f64::from(visits) + f64::from(distinct + 1) / prior_cells)
            / (f64::from(total) + f64::from(distinct) + 1.0);
        let last = self.words[head + LAST];
        // The previous cell's pair and the step's (found or where it goes),
        // for the counting below.
        let mut step = None;
        let probability = if last == NONE {
            alone
        } else {
            let from = table.start + 2 * usize::from(last);
            let key = (u32::from(self.words[from] & 0xFF) * table.cells + cell) as u16;
            let pairs = table.start + 2 * distinct as usize;
            let at = self.find_step(pairs, usize::from(self.words[head + STEPS]), key);
            let seen = at.map_or(0, |i| self.words[pairs + 2 * i + 1]);
            let successors = u32::from(self.words[from] >> 8);
            // Every visit of the previous cell but this latest one left it.
            let departures = self.words[from + 1] - 1;
            step = Some((from, key, pairs, at));
            (f64::from(seen) + f64::from(successors + 1) * alone)
                / (f64::from(departures) + f64::from(successors) + 1.0)
        };
        if visits == u16::MAX {
            self.halve(table);
        }
        if let Some((from, key, pairs, at)) = step {
            match at {
                Ok(i) => self.words[pairs + 2 * i + 1] += 1,
                Err(i) => {
                    self.words[from] += 1 << 8;
                    self.words[head + STEPS] += 1;
                    self.insert(pairs + 2 * i, &[key, 1]);
                }
            }
        }
        let slot = match found {
            Ok(slot) => {
                self.words[table.start + 2 * slot + 1] += 1;
                slot
            }
            Err(slot) => {
                self.words[head + DISTINCT] += 1;
                self.insert(table.start + 2 * slot, &[cell as u16, 1]);
                slot
            }
        };
        let total = self.total(table);
        self.set_total(table, total + 1);
        self.words[head + LAST] = slot as u16;
        (probability, alone)
    }

    /// Halves `table`'s counts (see the module docs).
    #[cold]
    fn halve(&mut self, table: &Table) {
        let distinct = usize::from(self.words[table.head + DISTINCT]);
        let steps = usize::from(self.words[table.head + STEPS]);
        let last = usize::from(self.words[table.head + LAST]);
        let pairs = table.start + 2 * distinct;
        let mut total = 0;
        // Steps are sorted by their cell of departure, as the cells are.
        let mut i = 0;
        for slot in 0..distinct {
            let cell = u32::from(self.words[table.start + 2 * slot] & 0xFF);
            let mut visits = u16::from(slot == last);
            while i < steps && u32::from(self.words[pairs + 2 * i]) / table.cells <= cell {
                let count = self.words[pairs + 2 * i + 1];
                let count = count - count / 2;
                self.words[pairs + 2 * i + 1] = count;
                if u32::from(self.words[pairs + 2 * i]) / table.cells == cell {
                    visits += count;
                }
                i += 1;
            }
            self.words[table.start + 2 * slot + 1] = visits;
            total += u32::from(visits);
        }
        self.set_total(table, total);
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    /// The dense u32 tables the buffer replaced, as they counted.
    struct Dense {
        visits: Vec<u32>,
        departures: Vec<u32>,
        successors: Vec<u32>,
        steps: Vec<(u32, u32)>,
        distinct: u32,
        total: u32,
        last: Option<u32>,
    }

    impl Dense {
        fn new(cells: usize) -> Self {
            Self {
                visits: vec![0; cells],
                departures: vec![0; cells],
                successors: vec![0; cells],
                steps: Vec::new(),
                distinct: 0,
                total: 0,
                last: None,
            }
        }

        fn observe(&mut self, cell: u32, prior_cells: f64) -> f64 {
            let c = cell as usize;
            let alone = (f64::from(self.visits[c]) + f64::from(self.distinct + 1) / prior_cells)
                / (f64::from(self.total) + f64::from(self.distinct) + 1.0);
            let probability = match self.last {
                None => alone,
                Some(from) => {
                    let f = from as usize;
                    let key = from * self.visits.len() as u32 + cell;
                    let seen = match self.steps.binary_search_by_key(&key, |&(k, _)| k) {
                        Ok(at) => {
                            self.steps[at].1 += 1;
                            self.steps[at].1 - 1
                        }
                        Err(at) => {
                            self.steps.insert(at, (key, 1));
                            self.successors[f] += 1;
                            0
                        }
                    };
                    let successors = self.successors[f] - u32::from(seen == 0);
                    let departures = self.departures[f];
                    self.departures[f] += 1;
                    (f64::from(seen) + f64::from(successors + 1) * alone)
                        / (f64::from(departures) + f64::from(successors) + 1.0)
                }
            };
            self.distinct += u32::from(self.visits[c] == 0);
            self.visits[c] += 1;
            self.total += 1;
            self.last = Some(cell);
            probability
        }
    }

    /// A deterministic walk over `cells` cells with jumps and a favourite
    /// cell (so that one cell is visited far more than the others).
    fn walk(cells: u32, n: usize, seed: u64) -> Vec<u32> {
        let mut x = seed;
        let mut cell = cells / 2;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let r = (x >> 33) as u32;
                cell = match r % 16 {
                    0 => r % cells,
                    1..=4 => cell.saturating_sub(1),
                    5..=8 => (cell + 1).min(cells - 1),
                    9..=11 => cells / 2,
                    _ => cell,
                };
                cell
            })
            .collect()
    }

    /// Checks the buffer's counts against each other.
    fn check(counts: &Counts, table: &Table) {
        let w = &counts.words;
        let distinct = usize::from(w[table.head + DISTINCT]);
        let steps = usize::from(w[table.head + STEPS]);
        let records: Vec<&[u16]> = w[table.start..table.start + 2 * distinct]
            .chunks(2)
            .collect();
        let pairs: Vec<&[u16]> = w[table.start + 2 * distinct..counts.end(table)]
            .chunks(2)
            .collect();
        assert!(records.windows(2).all(|r| r[0][0] & 0xFF < r[1][0] & 0xFF));
        assert!(pairs.windows(2).all(|p| p[0][0] < p[1][0]));
        let visits: u32 = records.iter().map(|r| u32::from(r[1])).sum();
        assert_eq!(counts.total(table), visits);
        let last = usize::from(w[table.head + LAST]);
        for (slot, r) in records.iter().enumerate() {
            assert!(r[1] >= 1);
            let from = u32::from(r[0] & 0xFF);
            let out: Vec<_> = pairs
                .iter()
                .filter(|p| u32::from(p[0]) / table.cells == from)
                .collect();
            assert_eq!(usize::from(r[0] >> 8), out.len(), "successors of {from}");
            let departures: u32 = out.iter().map(|p| u32::from(p[1])).sum();
            let left = u32::from(r[1]) - u32::from(slot == last);
            assert_eq!(left, departures, "departures of {from}");
            assert!(out.iter().all(|p| p[1] >= 1));
        }
        assert_eq!(steps, pairs.len());
    }

    #[test]
    fn the_buffer_gives_the_dense_tables_probabilities_bit_for_bit() {
        // Three resolutions of two channels, all fed different walks.
        let mut counts = Counts::new(&[3, 6, 12], 4);
        let tables = 2 * counts.per_channel();
        let walks: Vec<Vec<u32>> = (0..tables)
            .map(|t| {
                let cells = counts.table(t, 0).cells;
                walk(cells, 20_000, t as u64 + 1)
            })
            .collect();
        let mut dense: Vec<Dense> = (0..tables)
            .map(|t| Dense::new(counts.table(t, 0).cells as usize))
            .collect();
        let rows = (0..20_000).map(|i| walks.iter().map(move |w| w[i]));
        for row in rows {
            let mut start = counts.first_start();
            for (t, (d, cell)) in dense.iter_mut().zip(row).enumerate() {
                let table = counts.table(t, start);
                let p = counts.observe(&table, cell, 64.0);
                assert_eq!(p.to_bits(), d.observe(cell, 64.0).to_bits());
                start = counts.end(&table);
            }
        }
        let mut start = counts.first_start();
        for t in 0..tables {
            let table = counts.table(t, start);
            check(&counts, &table);
            start = counts.end(&table);
        }
        assert_eq!(start, counts.words.len());
    }

    #[test]
    fn counts_past_u16_are_halved_and_stay_consistent() {
        let mut counts = Counts::new(&[6, 12], 4);
        let cells = counts.table(0, 0).cells;
        // Most visits in one cell: it passes 65,535 visits (and so do its
        // departures and its step to itself) twice.
        let cells_seen = walk(cells, 200_000, 7);
        let mut halvings = 0;
        for &cell in &cells_seen {
            let mut start = counts.first_start();
            for t in 0..4 {
                let table = counts.table(t, start);
                let before = counts.total(&table);
                let p = counts.observe(&table, cell.min(table.cells - 1), 64.0);
                assert!(p > 0.0 && p <= 1.0, "{p}");
                halvings += usize::from(counts.total(&table) != before + 1);
                start = counts.end(&table);
            }
        }
        assert!(halvings >= 4, "{halvings}");
        let mut start = counts.first_start();
        for t in 0..4 {
            let table = counts.table(t, start);
            check(&counts, &table);
            start = counts.end(&table);
        }
    }

    #[test]
    fn wide_resolutions_are_cut_to_the_cells_a_byte_holds() {
        let counts = Counts::new(&[12, 30, 300], 4);
        let cells: Vec<u32> = (0..3).map(|t| counts.table(t, 0).cells).collect();
        assert_eq!(cells, [108, 210, 255]);
    }
}
