//! The expansion rules of the novelty detector, an experiment (session 14,
//! `training/EVALUATION.md`, "Novelty without random-walk expansion"): a
//! step of a few cells into a never-seen cell judged by how common steps of
//! its size are instead of as "something new". The default,
//! [`Expansion::Novel`], is the behaviour chosen on NAB and keeps none of
//! this.

use serde::{Deserialize, Serialize};

use super::counts::{Counts, Table};
use super::{product, ChannelRange};

/// How a step of at most `reach` cells is judged when the cell it reaches
/// is new (or, for [`Expansion::AnyStep`], whatever the cell).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Expansion {
    /// A never-seen cell is "something new", however it was reached.
    #[default]
    Novel,
    /// A never-seen cell within `reach` cells of the previous one gets the
    /// probability of a step of that size (out of every step seen at that
    /// resolution), if that is larger. With `finest`, the step is measured
    /// at the finest resolution and decides for every resolution.
    NewCells {
        /// Largest step, in cells, counted as expansion.
        reach: u16,
        /// Judge the step at the finest resolution only.
        finest: bool,
        /// Only steps of a size already seen count, at their share of the
        /// steps (no smoothing).
        seen: bool,
        /// Only the raw value's channel judges steps by size; the smoothed
        /// channel stays as [`Expansion::Novel`].
        raw: bool,
    },
    /// Any step of at most `reach` cells gets the larger of its cell's
    /// probability and that of a step of its size.
    AnyStep {
        /// Largest step, in cells, judged by its size.
        reach: u16,
        /// Judge the step at the finest resolution only.
        finest: bool,
        /// Only steps of a size already seen count, at their share of the
        /// steps (no smoothing).
        seen: bool,
        /// Only the raw value's channel judges steps by size; the smoothed
        /// channel stays as [`Expansion::Novel`].
        raw: bool,
    },
}

impl Expansion {
    /// The largest step judged by its size (0 for [`Expansion::Novel`]).
    pub(super) fn reach(self) -> Option<u16> {
        match self {
            Expansion::Novel => None,
            Expansion::NewCells { reach, .. } | Expansion::AnyStep { reach, .. } => Some(reach),
        }
    }

    fn finest(self) -> bool {
        match self {
            Expansion::Novel => false,
            Expansion::NewCells { finest, .. } | Expansion::AnyStep { finest, .. } => finest,
        }
    }

    fn seen(self) -> bool {
        match self {
            Expansion::Novel => false,
            Expansion::NewCells { seen, .. } | Expansion::AnyStep { seen, .. } => seen,
        }
    }

    /// The rule for the smoothed channel.
    pub(super) fn for_smooth(self) -> Self {
        match self {
            Expansion::NewCells { raw: true, .. } | Expansion::AnyStep { raw: true, .. } => {
                Expansion::Novel
            }
            other => other,
        }
    }
}

/// A name of an [`Expansion`]: `novel`, `new:REACH` or `any:REACH`, each
/// of the last two optionally followed by `:finest`, `:seen` and/or `:raw`.
impl std::str::FromStr for Expansion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        let bad = || {
            format!(
                "unknown expansion {s:?}: expected novel, new:REACH[:FLAG...] or \
                 any:REACH[:FLAG...], each FLAG one of finest, seen, raw"
            )
        };
        if parts == ["novel"] {
            return Ok(Expansion::Novel);
        }
        let reach: u16 = parts.get(1).and_then(|r| r.parse().ok()).ok_or_else(bad)?;
        let flags = parts.get(2..).unwrap_or_default();
        if flags.iter().any(|f| !["finest", "seen", "raw"].contains(f)) {
            return Err(bad());
        }
        let finest = flags.contains(&"finest");
        let seen = flags.contains(&"seen");
        let raw = flags.contains(&"raw");
        match parts.first() {
            Some(&"new") => Ok(Expansion::NewCells {
                reach,
                finest,
                seen,
                raw,
            }),
            Some(&"any") => Ok(Expansion::AnyStep {
                reach,
                finest,
                seen,
                raw,
            }),
            _ => Err(bad()),
        }
    }
}

/// How many steps of 0, 1, … `reach` cells one channel has made at one
/// resolution (kept only when [`NoveltyConfig::expansion`] judges steps).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StepSizes {
    /// Steps of each size up to the reach.
    pub(super) counts: Vec<u32>,
    /// Steps seen in all (any size).
    total: u32,
}

impl StepSizes {
    pub(super) fn new(reach: u16) -> Self {
        Self {
            counts: vec![0; usize::from(reach) + 1],
            total: 0,
        }
    }

    /// The share of steps of `size` cells among those seen (`None` beyond
    /// the kept sizes): add-one smoothed, or with `seen` as counted (`None`
    /// for a size never seen).
    fn probability(&self, size: u32, seen: bool) -> Option<f64> {
        let count = f64::from(*self.counts.get(size as usize)?);
        let total = f64::from(self.total);
        if seen {
            (count > 0.0).then(|| count / (total + 1.0))
        } else {
            Some((count + 1.0) / (total + self.counts.len() as f64 + 1.0))
        }
    }

    fn count(&mut self, size: u32) {
        if let Some(count) = self.counts.get_mut(size as usize) {
            *count = count.saturating_add(1);
        }
        self.total = self.total.saturating_add(1);
    }
}

/// [`product`] with each resolution's probability judged by the step's
/// size where `expansion` says so (no step counts: as [`product`]); one
/// channel, `(first, start)` its first table and where that table's region
/// starts. Returns the product and where the next channel's region
/// starts.
pub(super) fn product_expanding(
    counts: &mut Counts,
    (first, start): (usize, usize),
    sizes: &mut [StepSizes],
    range: &ChannelRange,
    v: f64,
    prior_cells: f64,
    expansion: Expansion,
) -> (f64, usize) {
    let n = counts.per_channel();
    let (Some(reach), false) = (expansion.reach(), sizes.is_empty()) else {
        return product(counts, first, n, start, range, v, prior_cells);
    };
    let within = |counts: &Counts, table: &Table, cell: u32| {
        counts
            .step_to(table, cell)
            .is_some_and(|d| d <= u32::from(reach))
    };
    // With `finest`, the step at the finest resolution decides for all.
    let finest_small = expansion.finest() && {
        let mut at = start;
        let mut finest = None;
        for t in first..first + n {
            let table = counts.table(t, at);
            if finest.is_none_or(|f: Table| table.per_range >= f.per_range) {
                finest = Some(table);
            }
            at = counts.end(&table);
        }
        finest.is_some_and(|table| within(counts, &table, Counts::cell_of(&table, range, v)))
    };
    let sizes_len = sizes.len().min(n);
    let mut p = 1.0;
    let mut at = start;
    for (t, steps) in (first..first + n).zip(sizes) {
        let table = counts.table(t, at);
        let cell = Counts::cell_of(&table, range, v);
        let small_step = if expansion.finest() {
            finest_small
        } else {
            within(counts, &table, cell)
        };
        let size = counts.step_to(&table, cell);
        let by_size = size
            .filter(|_| small_step)
            .and_then(|d| steps.probability(d, expansion.seen()));
        let new_cell = counts.visits(&table, cell) == 0;
        let probability = counts.observe(&table, cell, prior_cells);
        at = counts.end(&table);
        if let Some(d) = size {
            steps.count(d);
        }
        p *= match (expansion, by_size) {
            (Expansion::NewCells { .. }, Some(q)) if new_cell => probability.max(q),
            (Expansion::AnyStep { .. }, Some(q)) => probability.max(q),
            _ => probability,
        };
    }
    // Tables without step counts (none: `sizes` has one per table) are
    // passed over.
    for t in first + sizes_len..first + n {
        at = counts.end(&counts.table(t, at));
    }
    (p, at)
}

#[cfg(test)]
mod tests {
    use super::super::{novelty_score, MetricNovelty, NoveltyConfig, NoveltyState};
    use super::*;

    /// A slow walk upwards past the trained range, then one jump far above
    /// it: the most novel score of the walk, and the jump's score.
    fn walk_then_jump(expansion: Expansion) -> (f64, f64) {
        let config = NoveltyConfig {
            expansion,
            ..NoveltyConfig::default()
        };
        // Trained on 0..1 going up and down; then the walk climbs on
        // slowly to 3 (a twelfth of the range every 24 rows), then a jump.
        let mut v: Vec<f64> = (0..600).map(|i| f64::from((i % 48) as u8) / 47.0).collect();
        v.extend((0..576).map(|i| 1.0 + f64::from(i) / 288.0));
        v.push(12.0);
        let fit = MetricNovelty::fit(&config, &v[..300]);
        let mut state = NoveltyState::new(&config);
        let s: Vec<f64> = v
            .iter()
            .map(|&x| novelty_score(&config, state.observe(&config, &fit, x)))
            .collect();
        let walk = s[600..1176].iter().copied().fold(0.0, f64::max);
        (walk, s[1176])
    }

    #[test]
    fn expansion_by_small_steps_is_discounted_only_when_asked() {
        let (walk, jump) = walk_then_jump(Expansion::Novel);
        assert!(walk > 0.5, "the default calls a slow expansion new: {walk}");
        assert!(jump > 0.5, "{jump}");
        let (walk, jump) = walk_then_jump("new:1".parse().expect("parses"));
        assert!(walk < 0.5, "adjacent expansion discounted: {walk}");
        assert!(jump > 0.5, "a jump stays new: {jump}");
    }

    #[test]
    fn expansions_parse_and_bad_names_are_refused() {
        assert_eq!("novel".parse(), Ok(Expansion::Novel));
        assert_eq!(
            "any:3:seen:raw".parse(),
            Ok(Expansion::AnyStep {
                reach: 3,
                finest: false,
                seen: true,
                raw: true
            })
        );
        assert_eq!(
            "new:1:finest".parse(),
            Ok(Expansion::NewCells {
                reach: 1,
                finest: true,
                seen: false,
                raw: false
            })
        );
        for bad in ["", "new", "new:x", "any:1:wide", "novel:1", "jump:1"] {
            assert!(bad.parse::<Expansion>().is_err(), "{bad:?}");
        }
    }
}
