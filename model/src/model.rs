//! [`Model`]: a release payload compiled for scoring. The trainer scores
//! candidates with it before they are signed; [`crate::VerifiedModel`] wraps
//! one for the scorer and the edge agent.

use vigil_schemas::{Contribution, Telemetry};

use crate::alarm::{AlarmPolicyError, AlarmStep, AlarmTrack};
use crate::combine::{DeviceNovelty, NoveltyPolicyError, ReleaseSide};
use crate::detector::{Compiled, DetectorError, Score};
use crate::features::{DeviceState, Extractor, SpecError};
use crate::payload::ReleasePayload;

/// Why a payload cannot be compiled into a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("invalid feature spec: {0}")]
    Spec(#[from] SpecError),
    #[error("invalid detector: {0}")]
    Detector(#[from] DetectorError),
    #[error("threshold {0} is not a number in [0, 1]")]
    Threshold(f64),
    #[error("invalid alarm policy: {0}")]
    Alarm(#[from] AlarmPolicyError),
    #[error("invalid novelty policy: {0}")]
    Novelty(#[from] NoveltyPolicyError),
}

/// A payload checked and turned into flat arrays; immutable once built, so
/// it can be shared behind an `Arc` by any number of scorers.
#[derive(Debug, Clone)]
pub struct Model {
    payload: ReleasePayload,
    extractor: Extractor,
    detector: Compiled,
    metric_names: Vec<String>,
}

/// Per-call scratch buffers, so scoring does not allocate.
#[derive(Debug, Clone, Default)]
pub struct Scratch {
    features: Vec<f64>,
    z: Vec<f64>,
    w: Vec<f64>,
    /// The metric behind the last record's alert when it stood on the
    /// novelty (`crate::combine`).
    novel_metric: Option<usize>,
    /// The last record's value of each spec metric, from the extractor.
    values: Vec<Option<f64>>,
}

impl Scratch {
    fn fit(&mut self, dim: usize, metrics: usize) {
        for v in [&mut self.features, &mut self.z, &mut self.w] {
            if v.len() != dim {
                v.resize(dim, 0.0);
            }
        }
        if self.values.len() != metrics {
            self.values.resize(metrics, None);
        }
    }

    /// The features of the last record scored with this scratch.
    pub fn features(&self) -> &[f64] {
        &self.features
    }
}

/// One record's result.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordScore {
    /// Raw and mapped score.
    pub score: Score,
    /// The score the alarm judged: `score.score`, or lower when the
    /// device's own level of scores is above the training rows'
    /// ([`crate::alarm`], "Each device's own level").
    pub judged: f64,
    /// The novelty score in [0, 1] (0.5 at its alert level), once the
    /// device's novelty ranges are fixed ([`crate::combine`]).
    pub novelty: Option<f64>,
    /// The record's own decision, before the alarm's hysteresis: the
    /// release's judged score at the threshold, or with a novelty policy
    /// the combination's alert ([`crate::combine`]); for a replayed record,
    /// its score at the threshold.
    pub hot: bool,
    /// The device is in alarm at this record (see [`crate::alarm`]).
    pub anomaly: bool,
    /// What the record did to the device's alarm.
    pub alarm: AlarmStep,
    /// Whether the record advanced the device state (false for duplicates
    /// and replays).
    pub fresh: bool,
}

impl Model {
    /// Checks `payload` and compiles it.
    pub fn from_payload(payload: ReleasePayload) -> Result<Self, ModelError> {
        let t = payload.header.threshold;
        if !(t.is_finite() && (0.0..=1.0).contains(&t)) {
            return Err(ModelError::Threshold(t));
        }
        payload.alarm.check()?;
        if let Some(novelty) = &payload.novelty {
            novelty.check()?;
            let metrics = payload.features.metrics.len();
            if let Some(r) = novelty
                .training_ranges
                .as_ref()
                .filter(|r| r.len() != metrics)
            {
                return Err(NoveltyPolicyError::TrainingRangesCount {
                    found: r.len(),
                    metrics,
                }
                .into());
            }
            if let Some(p) = novelty.seasons.as_ref().filter(|p| p.len() != metrics) {
                return Err(NoveltyPolicyError::SeasonsCount {
                    found: p.len(),
                    metrics,
                }
                .into());
            }
        }
        let extractor = Extractor::new(payload.features.clone())?;
        let detector = payload.detector.compile(extractor.dim())?;
        let metric_names = payload
            .features
            .metrics
            .iter()
            .map(|m| m.name.clone())
            .collect();
        Ok(Model {
            payload,
            extractor,
            detector,
            metric_names,
        })
    }

    /// The payload this model was compiled from.
    pub fn payload(&self) -> &ReleasePayload {
        &self.payload
    }

    /// The feature extractor.
    pub fn extractor(&self) -> &Extractor {
        &self.extractor
    }

    /// Score at or above which a record is anomalous.
    pub fn threshold(&self) -> f64 {
        self.payload.header.threshold
    }

    /// Scores a feature vector (length `extractor().dim()`).
    pub fn score_features(&self, features: &[f64], scratch: &mut Scratch) -> Score {
        scratch.fit(self.extractor.dim(), self.metric_names.len());
        self.detector
            .score(self.detector.raw(features, &mut scratch.z))
    }

    /// The "scoring way": extracts features of `record` against `state`
    /// (advancing it, and its alarm, when the record is new) and scores
    /// them. The features
    /// stay in `scratch` for [`Model::contributions`].
    pub fn score_record(
        &self,
        state: &mut DeviceState,
        record: &Telemetry,
        scratch: &mut Scratch,
    ) -> RecordScore {
        scratch.fit(self.extractor.dim(), self.metric_names.len());
        let fresh = self.extractor.extract_with_values(
            state,
            record,
            &mut scratch.features,
            &mut scratch.values,
        );
        let score = self
            .detector
            .score(self.detector.raw(&scratch.features, &mut scratch.z));
        let threshold = self.threshold();
        let mut judged = score.score;
        let mut novelty = None;
        let mut hot = score.score >= self.threshold();
        scratch.novel_metric = None;
        let alarm = if fresh {
            let policy = &self.payload.alarm;
            let raw_at_threshold = self.detector.raw_at(threshold);
            let divisor = state.alarm.adapt(policy, score.raw, raw_at_threshold);
            if divisor > 1.0 {
                judged = self.detector.score(score.raw / divisor).score;
            }
            // With a novelty policy the combination decides whether the
            // record is hot for the alarm (crate::combine).
            let hot_score = match &self.payload.novelty {
                None => judged,
                Some(np) => {
                    let device = state.novelty.get_or_insert_with(|| {
                        Box::new(DeviceNovelty::new(np, self.metric_names.len()))
                    });
                    let c = device.step(
                        np,
                        &scratch.values,
                        record.ts,
                        ReleaseSide {
                            judged,
                            threshold,
                            close_after: policy.close_after,
                            in_alarm: state.alarm.is_open(),
                            excess: score.raw / divisor.max(1.0) / raw_at_threshold,
                        },
                    );
                    novelty = c.novelty;
                    scratch.novel_metric = c.novel_metric;
                    if c.alert {
                        judged.max(c.novelty.unwrap_or(0.0)).max(threshold)
                    } else {
                        0.0
                    }
                }
            };
            hot = hot_score >= threshold;
            // An open alarm's record near the threshold keeps it going
            // (crate::alarm, "Sustain"); it does not make the record hot.
            let alarm_score = if state.alarm.sustains(policy, judged, threshold) {
                hot_score.max(threshold)
            } else {
                hot_score
            };
            state
                .alarm
                .step(policy, record.seq, record.ts, alarm_score, threshold)
        } else {
            AlarmTrack::stale(score.score, threshold)
        };
        RecordScore {
            score,
            judged,
            novelty,
            hot,
            anomaly: alarm.anomaly,
            alarm,
            fresh,
        }
    }

    /// Top metrics behind the last record scored with `scratch`: the
    /// detector's, or the one novel metric when the record's alert stood on
    /// the novelty.
    pub fn contributions(&self, scratch: &mut Scratch) -> Vec<Contribution> {
        if let Some(name) = scratch.novel_metric.and_then(|j| self.metric_names.get(j)) {
            return vec![Contribution {
                metric: name.clone(),
                share: 1.0,
            }];
        }
        scratch.fit(self.extractor.dim(), self.metric_names.len());
        let names: Vec<&str> = self.metric_names.iter().map(String::as_str).collect();
        let Scratch { features, z, w, .. } = scratch;
        self.detector.contributions(features, &names, z, w)
    }

    /// The "training way": scores of one device's stored stream (in `seq`
    /// order) from a cold state, computed as a batch: all features first,
    /// then all scores.
    pub fn score_series<'a>(&self, records: impl IntoIterator<Item = &'a Telemetry>) -> Vec<Score> {
        let dim = self.extractor.dim();
        let mut rows = Vec::new();
        self.extractor.extract_series(records, &mut rows);
        let mut scratch = Scratch::default();
        rows.chunks_exact(dim)
            .map(|row| self.score_features(row, &mut scratch))
            .collect()
    }
}
