//! `vigil-edge score --model FILE`: Telemetry JSON lines on stdin →
//! Verdict JSON lines on stdout, offline, with the edge code path
//! (`vigil_model::Scorer`, `scored_at: "edge"`, no `ingest_ts`).
//!
//! It is what the agent runs for every sample, minus the device: for
//! replaying recorded data and for checking that a device scores exactly
//! as the cloud does (`vigil models score` runs the same `Scorer` with
//! `scored_at: "cloud"`; the JSON is otherwise byte-identical, see
//! `tests/score_equivalence.rs`). `--scored-ts-from-event` makes the
//! output reproducible, which is how CI compares the aarch64 build with the
//! x86-64 one.
//!
//! A line that is not valid Telemetry is reported on stderr with its line
//! number and reason, and skipped; the others are still scored. The exit
//! status is 1 if any line was skipped.

use std::io::{self, BufRead, Read, Write};
use std::sync::Arc;

use vigil_model::Scorer;
use vigil_schemas::telemetry::TelemetryLimits;
use vigil_schemas::{Message, ScoredAt, Telemetry};

/// What a scoring run saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScoreSummary {
    /// Non-blank input lines.
    pub lines: u64,
    /// Verdicts written.
    pub verdicts: u64,
    /// Lines skipped as invalid.
    pub rejected: u64,
}

/// Scores every line of `input` into `output`; errors about lines go to
/// `errors`. `now_ms` stamps `scored_ts` unless `scored_ts_from_event`.
/// Only I/O failures of the streams themselves end the run early.
pub fn score_stream<R: BufRead, W: Write, E: Write>(
    mut input: R,
    mut output: W,
    mut errors: E,
    scorer: &mut Scorer,
    scored_ts_from_event: bool,
    now_ms: impl Fn() -> u64,
) -> io::Result<ScoreSummary> {
    let limit = TelemetryLimits::default().max_payload_bytes;
    let mut summary = ScoreSummary::default();
    let mut line = Vec::with_capacity(1024);
    let mut number = 0u64;
    loop {
        line.clear();
        let n = Read::take(&mut input, limit as u64 + 1).read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        number += 1;
        if line.last() != Some(&b'\n') && line.len() > limit {
            // Skip the rest of an over-long line.
            let mut rest = Vec::new();
            input.read_until(b'\n', &mut rest)?;
            summary.lines += 1;
            summary.rejected += 1;
            writeln!(errors, "line {number}: longer than {limit} bytes; skipped")?;
            continue;
        }
        let text = trim(&line);
        if text.is_empty() {
            continue;
        }
        summary.lines += 1;
        match Telemetry::decode(text) {
            Ok(record) => {
                let ts = if scored_ts_from_event {
                    record.ts
                } else {
                    now_ms()
                };
                let verdict = scorer.score(&record, None, ts, ScoredAt::Edge);
                match verdict.encode() {
                    Ok(bytes) => {
                        output.write_all(&bytes)?;
                        output.write_all(b"\n")?;
                        summary.verdicts += 1;
                    }
                    Err(e) => {
                        summary.rejected += 1;
                        writeln!(errors, "line {number}: {e}")?;
                    }
                }
            }
            Err(e) => {
                summary.rejected += 1;
                writeln!(errors, "line {number}: {} ({e})", e.reason())?;
            }
        }
    }
    output.flush()?;
    Ok(summary)
}

fn trim(line: &[u8]) -> &[u8] {
    let start = line
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(line.len());
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &line[start..end]
}

/// The `score` subcommand: loads and verifies the release, then scores
/// stdin to stdout.
pub fn main(args: &crate::config::ScoreArgs) -> anyhow::Result<ScoreSummary> {
    use anyhow::Context as _;
    let key = vigil_model::load_key_ring(&args.verify_key)
        .with_context(|| format!("loading --verify-key {}", args.verify_key.display()))?;
    let model = crate::models::load_release(&args.model, &key)
        .with_context(|| format!("loading --model {}", args.model.display()))?;
    tracing::info!(
        model = model.name(),
        version = model.version(),
        "scoring stdin"
    );
    let mut scorer = Scorer::new(model.name(), args.device_capacity.max(1));
    scorer
        .install(Arc::new(model))
        .context("installing the release")?;
    let stdin = io::stdin();
    let stdout = io::stdout();
    let summary = score_stream(
        io::BufReader::with_capacity(64 * 1024, stdin.lock()),
        io::BufWriter::with_capacity(64 * 1024, stdout.lock()),
        io::stderr().lock(),
        &mut scorer,
        args.scored_ts_from_event,
        crate::now_ms,
    )?;
    tracing::info!(
        lines = summary.lines,
        verdicts = summary.verdicts,
        rejected = summary.rejected,
        "scoring finished"
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_reported_and_skipped_and_the_rest_scored() {
        let input =
            b"{\"schema\":1,\"device_id\":\"d\",\"seq\":1,\"ts\":5,\"metrics\":{\"a\":1}}\n\
                      \n\
                      not json\n\
                      {\"schema\":2,\"device_id\":\"d\",\"seq\":2,\"ts\":6,\"metrics\":{\"a\":1}}\n\
                      {\"schema\":1,\"device_id\":\"d\",\"seq\":3,\"ts\":7,\"metrics\":{\"a\":2}}";
        let mut scorer = Scorer::new("default", 4);
        let mut out = Vec::new();
        let mut err = Vec::new();
        let s =
            score_stream(&input[..], &mut out, &mut err, &mut scorer, true, || 0).expect("scores");
        assert_eq!(
            s,
            ScoreSummary {
                lines: 4,
                verdicts: 2,
                rejected: 2
            }
        );
        let err = String::from_utf8(err).expect("utf8");
        assert!(err.contains("line 3: malformed_json"), "{err}");
        assert!(err.contains("line 4: unknown_schema"), "{err}");
        let out = String::from_utf8(out).expect("utf8");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        // No model: unscored verdicts, stamped with the event time.
        assert!(
            lines[0].contains("\"unscored\":\"no_model\""),
            "{}",
            lines[0]
        );
        assert!(lines[1].contains("\"scored_ts\":7"), "{}", lines[1]);
    }

    #[test]
    fn an_over_long_line_is_skipped_without_losing_the_next() {
        let mut input = vec![b'x'; 70 * 1024];
        input.extend_from_slice(
            b"\n{\"schema\":1,\"device_id\":\"d\",\"seq\":1,\"ts\":5,\"metrics\":{\"a\":1}}\n",
        );
        let mut scorer = Scorer::new("default", 4);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let s =
            score_stream(&input[..], &mut out, &mut err, &mut scorer, true, || 0).expect("scores");
        assert_eq!((s.verdicts, s.rejected), (1, 1));
        assert!(String::from_utf8_lossy(&err).contains("line 1: longer than"));
    }
}
