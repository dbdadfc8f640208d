//! The parts of evaluation that need no model and no linear algebra, so
//! that the trainer (holdout evaluation, the champion/challenger gate), the
//! evaluation tools (`vigil-eval`) and the load generator (detection
//! quality of a live run) count the same way without the load generator
//! linking the trainer.
//!
//! - [`detection`]: ground-truth [`Episode`]s, per-device decision
//!   tallies and the [`Evaluation`] they merge into; [`evaluate_flags`]
//!   counts decisions made elsewhere (verdicts read back from a pipeline).
//! - [`data`]: the offline file formats: the wide fleet CSV
//!   ([`read_wide_csv`], with `,` or `;`, any time column, one series or
//!   many: [`read_wide_csv_with`]) and NAB series ([`read_nab_csv`]), and
//!   the timestamps they carry.

pub mod data;
pub mod detection;

pub use data::{
    days_from_civil, header_has, label_episodes, parse_iso8601, parse_nab_timestamp,
    parse_timestamp, read_nab_csv, read_wide_csv, read_wide_csv_labelled, read_wide_csv_with,
    DataError, WideCsvOptions,
};
pub use detection::{
    episodes_by_device, evaluate_flags, merge, DeviceFlags, DeviceTally, Episode, EvalOptions,
    Evaluation, KindStats, PointCounts, Tally,
};
