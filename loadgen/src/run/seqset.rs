//! A bounded set of one device's seqs, one bit each.
//!
//! Loss and duplicates are counted by `(device_id, seq)`, for millions of
//! records: a bit per possible seq in the device's known range costs 125 KB
//! per million records and makes "was this seq seen before" one shift. The
//! range is fixed when the set is made (the seqs the run can send), so a
//! verdict with a wild seq cannot make it grow.

/// Seqs in `[lo, hi]`, grown lazily up to the highest one inserted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqSet {
    lo: u64,
    hi: u64,
    words: Vec<u64>,
    len: u64,
}

/// What inserting a seq did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// It was not in the set.
    New,
    /// It was already there.
    Again,
    /// It lies outside the set's range.
    OutOfRange,
}

impl SeqSet {
    /// An empty set that may hold seqs `lo..=hi`.
    pub fn new(lo: u64, hi: u64) -> Self {
        Self {
            lo,
            hi,
            words: Vec::new(),
            len: 0,
        }
    }

    /// Adds `seq`.
    pub fn insert(&mut self, seq: u64) -> Insert {
        if seq < self.lo || seq > self.hi {
            return Insert::OutOfRange;
        }
        let bit = seq - self.lo;
        let word = (bit / 64) as usize;
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let mask = 1u64 << (bit % 64);
        if self.words[word] & mask != 0 {
            return Insert::Again;
        }
        self.words[word] |= mask;
        self.len += 1;
        Insert::New
    }

    /// Whether `seq` is in the set.
    pub fn contains(&self, seq: u64) -> bool {
        if seq < self.lo || seq > self.hi {
            return false;
        }
        let bit = seq - self.lo;
        self.words
            .get((bit / 64) as usize)
            .is_some_and(|w| w & (1u64 << (bit % 64)) != 0)
    }

    /// Number of seqs in the set.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The seqs in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.words.iter().enumerate().flat_map(move |(i, &w)| {
            let base = self.lo + i as u64 * 64;
            BitIter(w).map(move |b| base + u64::from(b))
        })
    }

    /// Smallest and largest seq, when not empty.
    pub fn range(&self) -> Option<(u64, u64)> {
        let first = self.iter().next()?;
        let (i, w) = self.words.iter().enumerate().rev().find(|(_, &w)| w != 0)?;
        Some((
            first,
            self.lo + i as u64 * 64 + u64::from(63 - w.leading_zeros()),
        ))
    }
}

/// Set bits of a word, lowest first.
struct BitIter(u64);

impl Iterator for BitIter {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        if self.0 == 0 {
            return None;
        }
        let bit = self.0.trailing_zeros();
        self.0 &= self.0 - 1;
        Some(bit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_count_once_and_stay_in_range() {
        let mut s = SeqSet::new(1, 200);
        assert_eq!(s.insert(1), Insert::New);
        assert_eq!(s.insert(130), Insert::New);
        assert_eq!(s.insert(64), Insert::New);
        assert_eq!(s.insert(130), Insert::Again);
        assert_eq!(s.insert(0), Insert::OutOfRange);
        assert_eq!(s.insert(201), Insert::OutOfRange);
        assert_eq!(s.len(), 3);
        assert!(s.contains(64) && !s.contains(65) && !s.contains(1000));
        assert_eq!(s.iter().collect::<Vec<_>>(), [1, 64, 130]);
        assert_eq!(s.range(), Some((1, 130)));
        assert_eq!(SeqSet::new(5, 9).range(), None);
    }

    #[test]
    fn a_wild_seq_allocates_nothing() {
        let mut s = SeqSet::new(1, 100);
        assert_eq!(s.insert(u64::MAX), Insert::OutOfRange);
        assert!(s.words.is_empty());
    }
}
