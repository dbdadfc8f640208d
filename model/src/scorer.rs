//! [`Scorer`]: what the cloud scorer (`vigil score`, `POST /v1/score`,
//! `vigil models score`) and the edge agent call for every record.
//!
//! # Hot-swap contract
//!
//! A service verifies a release ([`crate::verify`]) off the hot path and
//! holds the result as `Arc<VerifiedModel>`; the model is immutable from
//! then on. Between two records it calls [`Scorer::install`]; a record is
//! scored by [`Scorer::score`] with `&mut self`, so no record can observe a
//! swap in progress: each verdict is produced entirely by one model, and it
//! names that model's version.
//!
//! Per-device state survives a swap when it still means the same thing:
//! - same windows (`fast_window`, `slow_window`, `warmup`, `clip_sigma`,
//!   `stuck_cap`): each device keeps the state of every metric the new spec
//!   still names; metrics new to the spec start cold for every device;
//!   dropped metrics' state is discarded;
//! - different windows: every device starts cold (fleet priors of the new
//!   model), counted in [`ScorerStats::state_resets`];
//! - the novelty's counts, trust and watches carry over while the novelty
//!   settings agree ([`NoveltyPolicy::state_compatible`]) and the metrics
//!   stay where they were, and start again otherwise.
//!
//! [`StateCarry`] is that rule, for one device as for all.
//!
//! A scorer only installs releases of its own model name and only newer
//! versions ([`crate::check_newer`]).
//!
//! Before any model is installed every record gets an unscored verdict
//! (`model_version: null`, `score: 0`, `anomaly: false`,
//! `unscored: "no_model"`) and no state is kept.
//!
//! Contributions are listed for anomalous verdicts only: they explain a
//! decision, and computing them for every record would cost as much as the
//! score itself.

use std::sync::Arc;

use vigil_schemas::{ScoredAt, Telemetry, UnscoredReason, Verdict, SCHEMA_VERSION};

use crate::combine::NoveltyPolicy;
use crate::features::{DeviceState, MetricState};
use crate::model::{Model, Scratch};
use crate::release::{check_newer, ReleaseError, VerifiedModel};
use crate::table::DeviceTable;

/// Counters a service exports as metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScorerStats {
    /// Records scored by a model.
    pub scored: u64,
    /// Records answered with an unscored verdict.
    pub unscored: u64,
    /// Scored records found anomalous (in alarm).
    pub anomalies: u64,
    /// Alarms opened.
    pub alarms_opened: u64,
    /// Records whose `seq` was not newer than the device's last one
    /// (duplicates, replays): scored without updating state.
    pub stale: u64,
    /// Devices evicted from the state table.
    pub evictions: u64,
    /// Installs that reset every device's state.
    pub state_resets: u64,
}

/// What [`Scorer::install`] did with per-device state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// The first model: no state existed.
    First,
    /// State carried over (metrics matched by name).
    StateKept,
    /// Windows changed: every device starts cold.
    StateReset,
}

/// What a swap from one release to the next does to each device's state
/// (the rule of the module docs, in one place: [`Scorer::install`] applies
/// it to every device it holds, and the NAB runner's refits to its one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateCarry {
    /// Everything carries over.
    Keep,
    /// The features' and the alarm's state carry over; the novelty's counts,
    /// learnt under other novelty settings, start again.
    DropNovelty,
    /// Same windows, other metrics: each metric the new spec names keeps
    /// its state from the old position given (`None`: new to the spec,
    /// cold); the novelty starts again.
    Remap(Vec<Option<usize>>),
    /// Other windows: every device starts cold.
    Reset,
}

impl StateCarry {
    /// The carry from `old` to `new`. Novelty counts learnt under other
    /// settings do not carry over; the features' statistics still may. New
    /// training ranges alone do not reset them: each device keeps the
    /// ranges its counts were learnt on.
    pub fn between(old: &Model, new: &Model) -> Self {
        let old_spec = old.extractor().spec();
        let new_spec = new.extractor().spec();
        if old_spec.state_compatible(new_spec) {
            if NoveltyPolicy::state_compatible(
                old.payload().novelty.as_ref(),
                new.payload().novelty.as_ref(),
            ) {
                Self::Keep
            } else {
                Self::DropNovelty
            }
        } else if old_spec.same_windows(new_spec) {
            Self::Remap(
                new_spec
                    .metrics
                    .iter()
                    .map(|m| old_spec.metrics.iter().position(|o| o.name == m.name))
                    .collect(),
            )
        } else {
            Self::Reset
        }
    }

    /// Applies the carry to one device's state under `new`;
    /// [`Self::Reset`] gives it the state of a device not seen yet.
    pub fn apply(&self, st: &mut DeviceState, new: &Model) {
        match self {
            Self::Keep => {}
            Self::DropNovelty => st.novelty = None,
            Self::Remap(map) => {
                st.novelty = None;
                st.metrics = map
                    .iter()
                    .map(|i| {
                        i.and_then(|i| st.metrics.get(i).copied())
                            .unwrap_or_else(MetricState::default)
                    })
                    .collect();
            }
            Self::Reset => *st = new.extractor().new_state(),
        }
    }
}

/// Why a model was not installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("scorer serves model {serving:?}; refusing release of model {offered:?}")]
    WrongModel { serving: String, offered: String },
    #[error(transparent)]
    NotNewer(#[from] ReleaseError),
}

/// Scores records of one model name with per-device state.
#[derive(Debug)]
pub struct Scorer {
    model_name: String,
    model: Option<Arc<VerifiedModel>>,
    devices: DeviceTable,
    scratch: Scratch,
    stats: ScorerStats,
}

impl Scorer {
    /// A scorer for `model_name` keeping state for at most
    /// `device_capacity` devices. It answers unscored until a model is
    /// installed.
    pub fn new(model_name: impl Into<String>, device_capacity: usize) -> Self {
        Scorer {
            model_name: model_name.into(),
            model: None,
            devices: DeviceTable::new(device_capacity),
            scratch: Scratch::default(),
            stats: ScorerStats::default(),
        }
    }

    /// The model name this scorer serves.
    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    /// The installed model, if any.
    pub fn model(&self) -> Option<&Arc<VerifiedModel>> {
        self.model.as_ref()
    }

    /// Counters so far.
    pub fn stats(&self) -> ScorerStats {
        ScorerStats {
            evictions: self.devices.evictions(),
            ..self.stats
        }
    }

    /// Devices with state.
    pub fn devices(&self) -> usize {
        self.devices.len()
    }

    /// Estimated bytes of the devices' state, from at most `samples` of
    /// them ([`DeviceTable::state_bytes`]).
    pub fn state_bytes(&self, samples: usize) -> usize {
        self.devices.state_bytes(samples)
    }

    /// A device's state, if held (for tests and snapshots).
    pub fn device_state(&self, device_id: &str) -> Option<&DeviceState> {
        self.devices.get(device_id)
    }

    /// Installs a newer verified release of this scorer's model (see the
    /// module docs for what happens to state).
    pub fn install(&mut self, model: Arc<VerifiedModel>) -> Result<Installed, InstallError> {
        if model.name() != self.model_name {
            return Err(InstallError::WrongModel {
                serving: self.model_name.clone(),
                offered: model.name().to_owned(),
            });
        }
        check_newer(
            &self.model_name,
            self.model.as_ref().map(|m| m.version()),
            model.version(),
        )?;
        let outcome = match &self.model {
            None => Installed::First,
            Some(old) => match StateCarry::between(old.model(), model.model()) {
                StateCarry::Reset => {
                    self.devices.clear();
                    self.stats.state_resets += 1;
                    Installed::StateReset
                }
                StateCarry::Keep => Installed::StateKept,
                carry => {
                    self.devices.remap(|st| carry.apply(st, model.model()));
                    Installed::StateKept
                }
            },
        };
        self.model = Some(model);
        Ok(outcome)
    }

    /// Advances the device's state (its statistics and its alarm) with
    /// `record` without producing a verdict or counting it: for rebuilding
    /// state from a bounded replay of the telemetry log after a restart or
    /// a rebalance (records already applied are skipped by their `seq`), so
    /// an alarm open before the restart keeps its id after it. Returns
    /// whether state moved; always false before a model is installed.
    pub fn observe(&mut self, record: &Telemetry) -> bool {
        let Some(model) = &self.model else {
            return false;
        };
        let m = model.model();
        let state = self
            .devices
            .get_or_insert_with(&record.device_id, || m.extractor().new_state());
        m.score_record(state, record, &mut self.scratch).fresh
    }

    /// Scores one record and returns its verdict, stamped with the model's
    /// name and version (or unscored before any model exists).
    /// `ingest_ts` is when ingest accepted the record (None at the edge),
    /// `now_ms` the scoring time, `at` where this runs.
    pub fn score(
        &mut self,
        record: &Telemetry,
        ingest_ts: Option<u64>,
        now_ms: u64,
        at: ScoredAt,
    ) -> Verdict {
        self.score_with(record, ingest_ts, now_ms, at, true)
    }

    /// Scores `record` as [`Scorer::score`] would at this moment, against a
    /// copy of the device's state: neither the state nor the counters
    /// change. For synchronous "what would you say" requests
    /// (`POST /v1/score`) that must not disturb the stream: the same record
    /// later scored by the stream, with nothing in between, gets the same
    /// score.
    pub fn score_detached(
        &mut self,
        record: &Telemetry,
        ingest_ts: Option<u64>,
        now_ms: u64,
        at: ScoredAt,
    ) -> Verdict {
        self.score_with(record, ingest_ts, now_ms, at, false)
    }

    fn score_with(
        &mut self,
        record: &Telemetry,
        ingest_ts: Option<u64>,
        now_ms: u64,
        at: ScoredAt,
        keep: bool,
    ) -> Verdict {
        let Some(model) = &self.model else {
            if keep {
                self.stats.unscored += 1;
            }
            return Self::unscored(&self.model_name, record, ingest_ts, now_ms, at);
        };
        let m = model.model();
        let result = if keep {
            let state = self
                .devices
                .get_or_insert_with(&record.device_id, || m.extractor().new_state());
            m.score_record(state, record, &mut self.scratch)
        } else {
            let mut state = self
                .devices
                .get(&record.device_id)
                .cloned()
                .unwrap_or_else(|| m.extractor().new_state());
            m.score_record(&mut state, record, &mut self.scratch)
        };
        if keep {
            self.stats.scored += 1;
            if !result.fresh {
                self.stats.stale += 1;
            }
            if result.anomaly {
                self.stats.anomalies += 1;
            }
            if matches!(
                result.alarm.alarm,
                Some((_, _, vigil_schemas::AlarmState::Opened))
            ) {
                self.stats.alarms_opened += 1;
            }
        }
        let contributions = if result.anomaly {
            m.contributions(&mut self.scratch)
        } else {
            Vec::new()
        };
        Verdict {
            model_version: Some(model.version()),
            score: result.score.score,
            threshold: m.threshold(),
            anomaly: result.anomaly,
            alarm: result.alarm.to_alarm(&record.device_id),
            contributions,
            unscored: None,
            ..Self::unscored(&self.model_name, record, ingest_ts, now_ms, at)
        }
    }

    /// The verdict for a record no model scored; the scored path fills in
    /// the model's fields on top of it.
    fn unscored(
        model: &str,
        record: &Telemetry,
        ingest_ts: Option<u64>,
        now_ms: u64,
        at: ScoredAt,
    ) -> Verdict {
        Verdict {
            schema: SCHEMA_VERSION,
            device_id: record.device_id.clone(),
            seq: record.seq,
            event_ts: record.ts,
            ingest_ts,
            scored_ts: now_ms,
            model: model.to_owned(),
            model_version: None,
            score: 0.0,
            threshold: 0.0,
            anomaly: false,
            alarm: None,
            contributions: Vec::new(),
            scored_at: at,
            unscored: Some(UnscoredReason::NoModel),
        }
    }
}
