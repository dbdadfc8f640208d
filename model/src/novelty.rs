//! Novelty: how surprising a metric's new value is, given everything the
//! same device has shown before.
//!
//! Each metric is watched through two channels, its value and the mean of
//! its last [`NoveltyConfig::smooth_rows`] values, and each channel at
//! several resolutions (the trained range cut into 3, 6 and 12 cells, with
//! room for values far outside it). Per channel and resolution the state
//! counts how often each cell was visited and how often each cell followed
//! another. A new value is scored by the probability of its cell given the
//! previous one, with Witten–Bell smoothing: a cell or a transition that
//! was never seen gets the probability mass "something new happens", which
//! shrinks as the device shows fewer new things. A spike, a level shift, a
//! changed rhythm or a drift out of the known range is a cell or a step that
//! was never seen; once seen, it is learned, so a device whose regime moves
//! for good is flagged when it moves and not for ever after.
//!
//! The surprise of a channel is the product of its probabilities across
//! resolutions (a geometric mean in log terms); the novelty of a record is
//! the smallest product across channels, and the score maps it onto [0, 1]
//! with 0.5 at [`NoveltyConfig::alarm_bits`] bits of surprise per
//! resolution. A device's record takes the smallest product over every
//! channel of every metric, so with M metrics it has about M times the
//! chances of one below a level as with one: [`alarm_product`] adds
//! `ceil(log2 M)` bits to the level (a Bonferroni correction in whole
//! bits), which keeps the alert level a false-alert rate per record, not
//! per metric. Only additions, multiplications and divisions are used (no
//! libm), so the edge and the cloud compute the same bits.
//!
//! Chosen on half of the NAB corpus (`eval/NAB.md`, "protocol").
//!
//! The state is sized for a scorer holding 100,000 devices: a metric's
//! counts, every channel and resolution, live in one buffer of 16-bit
//! words that only holds the cells and steps that occurred (`counts.rs`),
//! about 1.5 KB a metric after a few thousand records, where dense u32
//! tables took about 8 KB. The probabilities are the same bits as with the
//! dense tables (the same counts, the same order of operations) until a
//! cell of one channel and resolution is visited more than 65,535 times:
//! then, before the count would wrap, that table's counts are halved,
//! rounding up, and rebuilt to stay consistent (the rule is in `counts.rs`;
//! a long-lived device's table thereby forgets old evidence by halves). A
//! table has at most 255 cells (a resolution above is cut, wider margins
//! narrow), so that a cell fits a byte and a step a word.
//!
//! [`NoveltyConfig::expansion`] is an experiment (session 14, see
//! `training/EVALUATION.md`, "Novelty without random-walk expansion"): a
//! never-seen cell reached by a small step from the previous cell, the way
//! a random walk slowly widens its range, can be judged by how often steps
//! of that size were seen instead of as "something new". The default,
//! [`Expansion::Novel`], is the behaviour chosen on NAB.
//!
//! [`NoveltyConfig::level`] is another (session 14, "Novelty with each
//! series' own level"): each metric's state keeps an average of its own
//! surprise and alerts at the larger of the fixed level and a function of
//! it ([`level`]). The default, [`LevelRule::Fixed`], is the fixed level.

use serde::{Deserialize, Serialize};

mod counts;
mod expansion;
pub mod level;
mod season;
use counts::Counts;
pub use expansion::Expansion;
use expansion::{product_expanding, StepSizes};
pub use level::LevelRule;
use season::Season;
pub use season::MAX_SLOTS as MAX_SEASON_SLOTS;

/// Settings of the novelty detector (the same for every device and use).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoveltyConfig {
    /// Cells the trained range is cut into, one resolution each.
    pub resolutions: Vec<u16>,
    /// Values averaged by the smoothed channel (the current one included).
    pub smooth_rows: usize,
    /// Surprise, in bits per resolution, that scores 0.5 on a device with
    /// one metric ([`alarm_product`] adds `ceil(log2 M)` bits in all for
    /// M metrics).
    pub alarm_bits: u32,
    /// Cells a never-seen value may fall into, for the smoothing prior.
    pub prior_cells: f64,
    /// Trained ranges kept on each side of the trained range before cells
    /// merge into one edge cell.
    pub margin_ranges: u16,
    /// How a small step into a never-seen cell is judged (default: as
    /// anything never seen).
    #[serde(default)]
    pub expansion: Expansion,
    /// How each series' alert level follows its own surprise (default:
    /// fixed at `alarm_bits`).
    #[serde(default)]
    pub level: LevelRule,
    /// Phase slots a metric's period is cut into for its seasonal channel
    /// (`season.rs`; 0: no seasonal channel). Only metrics whose period the
    /// release carries have one.
    pub season_slots: u16,
}

impl Default for NoveltyConfig {
    fn default() -> Self {
        Self {
            resolutions: vec![3, 6, 12],
            smooth_rows: 12,
            // 11 with the per-record correction since session 33 (payload
            // format 11; 12 per metric before): eval/NAB.md, rule 37.
            alarm_bits: 11,
            prior_cells: 64.0,
            margin_ranges: 4,
            expansion: Expansion::Novel,
            level: LevelRule::Fixed,
            season_slots: 24,
        }
    }
}

/// The trained range of one channel: where cell 0 starts and how wide the
/// range is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChannelRange {
    /// Smallest trained value.
    pub low: f64,
    /// Width of the trained range (positive).
    pub width: f64,
}

impl ChannelRange {
    /// The range of `values`; a constant or empty series gets a width of a
    /// tenth of its magnitude, or 1.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let mut low = f64::INFINITY;
        let mut high = f64::NEG_INFINITY;
        for v in values.into_iter().filter(|v| v.is_finite()) {
            low = low.min(v);
            high = high.max(v);
        }
        Self::between(low, high)
    }

    /// The smallest range that holds both `self` and `other`.
    pub fn join(self, other: Self) -> Self {
        let low = self.low.min(other.low);
        let high = (self.low + self.width).max(other.low + other.width);
        Self::between(low, high)
    }

    /// The range from the smallest and largest finite value seen (both
    /// infinite when none was).
    fn between(low: f64, high: f64) -> Self {
        if !low.is_finite() {
            return Self {
                low: 0.0,
                width: 1.0,
            };
        }
        let mut width = high - low;
        if width <= 0.0 {
            width = high.abs() * 0.1;
        }
        if width <= 0.0 || !width.is_finite() {
            width = 1.0;
        }
        Self { low, width }
    }
}

/// What the trainer learns for one metric: the range of each channel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricNovelty {
    /// The raw value's range.
    pub value: ChannelRange,
    /// The smoothed value's range.
    pub smooth: ChannelRange,
}

impl MetricNovelty {
    /// The smallest ranges that hold both `self`'s and `other`'s (a fleet's
    /// ranges from its devices' own).
    pub fn join(self, other: Self) -> Self {
        Self {
            value: self.value.join(other.value),
            smooth: self.smooth.join(other.smooth),
        }
    }

    /// Whether both ranges are usable: finite, with a positive width.
    pub fn is_valid(&self) -> bool {
        [self.value, self.smooth]
            .iter()
            .all(|c| c.low.is_finite() && c.width.is_finite() && c.width > 0.0)
    }

    /// Learns both ranges from a metric's training values, in time order.
    pub fn fit(config: &NoveltyConfig, values: &[f64]) -> Self {
        let mut window = Smoother::new(config.smooth_rows);
        let smoothed: Vec<f64> = values.iter().map(|&v| window.push(v)).collect();
        Self {
            value: ChannelRange::of(values.iter().copied()),
            smooth: ChannelRange::of(smoothed),
        }
    }
}

/// [`MetricNovelty::fit`] computed online: a device's first records fix
/// its ranges without being kept (the scorer's warm-up, see
/// [`crate::combine`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RangeWarmup {
    window: Smoother,
    value: (f64, f64),
    smooth: (f64, f64),
}

impl RangeWarmup {
    /// Bytes this warm-up holds (inline and on the heap).
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>() + 8 * self.window.ring.capacity()
    }

    /// Nothing seen yet.
    pub fn new(config: &NoveltyConfig) -> Self {
        let empty = (f64::INFINITY, f64::NEG_INFINITY);
        Self {
            window: Smoother::new(config.smooth_rows),
            value: empty,
            smooth: empty,
        }
    }

    /// Takes the next value (in time order); returns its smoothed value.
    pub fn push(&mut self, v: f64) -> f64 {
        let widen = |(low, high): (f64, f64), x: f64| {
            if x.is_finite() {
                (low.min(x), high.max(x))
            } else {
                (low, high)
            }
        };
        self.value = widen(self.value, v);
        let smoothed = self.window.push(v);
        self.smooth = widen(self.smooth, smoothed);
        smoothed
    }

    /// The ranges of the values pushed: what [`MetricNovelty::fit`] gives
    /// for the same values.
    pub fn ranges(&self) -> MetricNovelty {
        MetricNovelty {
            value: ChannelRange::between(self.value.0, self.value.1),
            smooth: ChannelRange::between(self.smooth.0, self.smooth.1),
        }
    }
}

/// The mean of the last `rows` values, summed in a fixed order.
#[derive(Debug, Clone, PartialEq)]
struct Smoother {
    ring: Vec<f64>,
    next: u32,
    filled: u32,
    /// The mean after the last push (0 before any): what the drift watch
    /// reads (`crate::combine::drift`), kept so it is not summed twice.
    last: f64,
}

impl Smoother {
    fn new(rows: usize) -> Self {
        Self {
            ring: vec![0.0; rows.max(1)],
            next: 0,
            filled: 0,
            last: 0.0,
        }
    }

    /// Adds `v` and returns the mean of the window (oldest first).
    fn push(&mut self, v: f64) -> f64 {
        let len = self.ring.len();
        let next = self.next as usize;
        self.ring[next] = v;
        let next = (next + 1) % len;
        let filled = (self.filled as usize + 1).min(len);
        let start = (next + len - filled) % len;
        let mut sum = 0.0;
        for k in 0..filled {
            sum += self.ring[(start + k) % len];
        }
        // `rows` is checked to be at most 1,000 (NoveltyPolicy::check).
        self.next = next as u32;
        self.filled = filled as u32;
        self.last = sum / filled as f64;
        self.last
    }
}

/// The step counts of both channels, one per resolution (the smoothed
/// channel's empty when only the value's steps are judged; both empty
/// without an expansion rule), and the series' average surprise for a
/// [`LevelRule`].
#[derive(Debug, Clone, PartialEq)]
struct Expanding {
    value: Vec<StepSizes>,
    smooth: Vec<StepSizes>,
    /// Average surprise, bits per resolution (0 with [`LevelRule::Fixed`]).
    average: f64,
}

/// One metric's online novelty state for one device.
#[derive(Debug, Clone, PartialEq)]
pub struct NoveltyState {
    smoother: Smoother,
    /// Every channel's and resolution's counts, in one buffer.
    counts: Counts,
    /// Step counts and the own level's average, only with an expansion or
    /// a level rule (the default pays one pointer).
    expanding: Option<Box<Expanding>>,
    /// The seasonal channel's counts, for a metric with a period.
    season: Option<Season>,
}

impl NoveltyState {
    /// A device that has shown nothing yet, watching a metric whose
    /// period is `period_ms` (0: none; then no seasonal channel).
    pub fn with_period(config: &NoveltyConfig, period_ms: u64) -> Self {
        let mut state = Self::new(config);
        state.season = Season::new(period_ms, config.season_slots, config.resolutions.len());
        state
    }

    /// A device that has shown nothing yet (no seasonal channel).
    pub fn new(config: &NoveltyConfig) -> Self {
        let sizes = |expansion: Expansion| -> Vec<StepSizes> {
            expansion.reach().map_or_else(Vec::new, |reach| {
                config
                    .resolutions
                    .iter()
                    .map(|_| StepSizes::new(reach))
                    .collect()
            })
        };
        let expansion = config.expansion;
        Self {
            smoother: Smoother::new(config.smooth_rows),
            counts: Counts::new(&config.resolutions, config.margin_ranges),
            expanding: (expansion != Expansion::Novel || config.level != LevelRule::Fixed).then(
                || {
                    Box::new(Expanding {
                        value: sizes(expansion),
                        smooth: sizes(expansion.for_smooth()),
                        average: 0.0,
                    })
                },
            ),
            season: None,
        }
    }

    /// Scores `v` against what came before, then learns it. Returns the
    /// surprise as a probability product (smaller = more novel); see
    /// [`novelty_score`] for the [0, 1] form. With a [`LevelRule`] the
    /// product is scaled so that it reaches [`alarm_product`] where the
    /// series' own level is reached.
    pub fn observe(&mut self, config: &NoveltyConfig, fit: &MetricNovelty, v: f64) -> f64 {
        self.observe_at(config, fit, v, 0)
    }

    /// The smoothed channel's value: the mean of the last values observed.
    pub fn smoothed(&self) -> f64 {
        self.smoother.last
    }

    /// Whether the metric has a seasonal channel (its release carried a
    /// period).
    pub fn has_season(&self) -> bool {
        self.season.is_some()
    }

    /// [`NoveltyState::observe`] for a value at event time `ts_ms` (ms
    /// since the Unix epoch), which places it in its period's phase for
    /// the seasonal channel: the smallest of the channels' products.
    pub fn observe_at(
        &mut self,
        config: &NoveltyConfig,
        fit: &MetricNovelty,
        v: f64,
        ts_ms: u64,
    ) -> f64 {
        let smoothed = self.smoother.push(v);
        if self.expanding.is_some() {
            return self.observe_expanding(config, fit, v, smoothed);
        }
        let counts = &mut self.counts;
        let n = counts.per_channel();
        let start = counts.first_start();
        let (value, start) = product(counts, 0, n, start, &fit.value, v, config.prior_cells);
        let smooth = match self.season.as_mut() {
            None => {
                product(
                    counts,
                    n,
                    n,
                    start,
                    &fit.smooth,
                    smoothed,
                    config.prior_cells,
                )
                .0
            }
            Some(season) => {
                // The seasonal channel scores the smoothed channel's cells,
                // backing off to their probability at any phase.
                let slot = season.slot(ts_ms);
                let mut q = 1.0;
                let (p, _) = product_each(
                    counts,
                    (n, n, start),
                    &fit.smooth,
                    smoothed,
                    config.prior_cells,
                    |r, cell, alone| q *= season.observe(r, slot, cell, alone),
                );
                p.min(q)
            }
        };
        value.min(smooth)
    }

    /// [`NoveltyState::observe`] under an expansion or a level rule (kept
    /// out of line so the default's path stays as it was).
    #[inline(never)]
    fn observe_expanding(
        &mut self,
        config: &NoveltyConfig,
        fit: &MetricNovelty,
        v: f64,
        smoothed: f64,
    ) -> f64 {
        let Some(expanding) = self.expanding.as_deref_mut() else {
            return 1.0;
        };
        let expansion = config.expansion;
        let counts = &mut self.counts;
        let n = counts.per_channel();
        let start = counts.first_start();
        let (value, start) = product_expanding(
            counts,
            (0, start),
            &mut expanding.value,
            &fit.value,
            v,
            config.prior_cells,
            expansion,
        );
        let (smooth, _) = product_expanding(
            counts,
            (n, start),
            &mut expanding.smooth,
            &fit.smooth,
            smoothed,
            config.prior_cells,
            expansion.for_smooth(),
        );
        let p = value.min(smooth);
        if config.level == LevelRule::Fixed {
            return p;
        }
        let resolutions = config.resolutions.len().max(1) as f64;
        let alarm_bits = f64::from(config.alarm_bits);
        let bits = -level::log2_approx(p) / resolutions;
        let alert = config.level.alert_bits(alarm_bits, expanding.average);
        expanding.average = config
            .level
            .update(alarm_bits, expanding.average, bits, alert);
        p * level::exp2_approx((alert - alarm_bits) * resolutions)
    }

    /// Bytes this state holds (inline and on the heap), for sizing a
    /// scorer's per-device state.
    pub fn bytes(&self) -> usize {
        let cells = 2 * self.counts.words.capacity();
        let steps = self.expanding.as_deref().map_or(0, |e| {
            std::mem::size_of::<Expanding>()
                + e.value
                    .iter()
                    .chain(&e.smooth)
                    .map(|s| std::mem::size_of::<StepSizes>() + 4 * s.counts.capacity())
                    .sum::<usize>()
        });
        let season = self
            .season
            .as_ref()
            .map_or(0, |s| s.bytes() - std::mem::size_of::<Season>());
        std::mem::size_of::<Self>() + 8 * self.smoother.ring.capacity() + cells + steps + season
    }
}

/// The product of one channel's probabilities, its `n` tables from table
/// `first`, whose region starts at `start`; and where the next region
/// starts.
fn product(
    counts: &mut Counts,
    first: usize,
    n: usize,
    start: usize,
    range: &ChannelRange,
    v: f64,
    prior_cells: f64,
) -> (f64, usize) {
    product_each(
        counts,
        (first, n, start),
        range,
        v,
        prior_cells,
        |_, _, _| {},
    )
}

/// [`product`] of the tables `(first, n, start)`, calling `each` with
/// every table's index in the channel, the value's cell and the cell's
/// own probability before it was counted (for the seasonal channel).
#[inline(always)]
fn product_each(
    counts: &mut Counts,
    (first, n, mut start): (usize, usize, usize),
    range: &ChannelRange,
    v: f64,
    prior_cells: f64,
    mut each: impl FnMut(usize, u32, f64),
) -> (f64, usize) {
    let mut p = 1.0;
    for (r, t) in (first..first + n).enumerate() {
        let table = counts.table(t, start);
        let cell = Counts::cell_of(&table, range, v);
        let (probability, alone) = counts.observe_both(&table, cell, prior_cells);
        p *= probability;
        each(r, cell, alone);
        start = counts.end(&table);
    }
    (p, start)
}

/// The probability product at which a record of a device with `metrics`
/// metrics scores 0.5: `2^-(alarm_bits × resolutions + ceil(log2
/// metrics))`. The record's product is the smallest over its metrics'
/// channels, so the level is raised by the bits that many chances cost
/// (none for one metric, 3 for eight): the alert level holds a false-alert
/// rate per record whatever the device's width (eval/NAB.md, rule 37).
pub fn alarm_product(config: &NoveltyConfig, metrics: usize) -> f64 {
    // ceil(log2 m) for m >= 1: the bit length of m - 1.
    let extra = usize::BITS - metrics.max(1).saturating_sub(1).leading_zeros();
    let bits = config
        .alarm_bits
        .saturating_mul(config.resolutions.len() as u32)
        .saturating_add(extra)
        .min(1_000);
    // 2^-bits, exactly: the biased exponent 1023 - bits with a zero
    // mantissa (the value the halving loop it replaced reached, computed
    // in one step because the scorer asks for it on every record).
    f64::from_bits(u64::from(1_023 - bits) << 52)
}

/// Maps one metric's probability product onto [0, 1]: 0.5 at
/// [`alarm_product`] for one metric, towards 1 the more novel.
pub fn novelty_score(config: &NoveltyConfig, product: f64) -> f64 {
    let at = alarm_product(config, 1);
    at / (at + product.max(0.0))
}

#[cfg(test)]
mod tests;
