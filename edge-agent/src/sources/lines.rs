//! JSON lines as a source (stdin in the agent): a Telemetry record, or
//! just `{"metrics":{…}}` with optional `ts` and `tags`. Bad and over-long
//! lines are logged with their line number and skipped.

use std::collections::BTreeMap;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::{Sample, SourceError};

/// Longest accepted input line (stdin), bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// A JSON line as the stdin source accepts it: Telemetry's fields, of
/// which only these are used.
#[derive(Debug, serde::Deserialize)]
struct LineSample {
    metrics: BTreeMap<String, f64>,
    #[serde(default)]
    ts: Option<u64>,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
}

/// JSON lines from an async reader.
#[derive(Debug)]
pub struct LineSource<R> {
    reader: R,
    what: &'static str,
    line: u64,
}

impl<R: AsyncBufRead + Unpin> LineSource<R> {
    /// Reads samples from `reader` (`what` names it in logs).
    pub fn new(reader: R, what: &'static str) -> Self {
        LineSource {
            reader,
            what,
            line: 0,
        }
    }

    /// The next valid sample, or None at the end of input.
    pub async fn next(&mut self) -> Result<Option<Sample>, SourceError> {
        loop {
            let Some(line) = self.read_line().await? else {
                return Ok(None);
            };
            self.line += 1;
            let line = match line {
                Ok(l) => l,
                Err(len) => {
                    tracing::warn!(
                        source = self.what,
                        line = self.line,
                        bytes = len,
                        "input line longer than {MAX_LINE_BYTES} bytes; skipped"
                    );
                    continue;
                }
            };
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            match serde_json::from_str::<LineSample>(text) {
                Ok(s) => {
                    return Ok(Some(Sample {
                        ts: s.ts,
                        metrics: s.metrics,
                        tags: s.tags,
                    }))
                }
                Err(e) => tracing::warn!(source = self.what, line = self.line, error = %e,
                    "input line is not a sample (expected {{\"metrics\":{{…}}}} or Telemetry); skipped"),
            }
        }
    }

    /// One line without its newline; Err(length) for an over-long line
    /// (consumed and dropped); None at the end.
    async fn read_line(&mut self) -> Result<Option<Result<Vec<u8>, usize>>, SourceError> {
        let mut line = Vec::new();
        let mut length = 0usize;
        loop {
            let buf = self
                .reader
                .fill_buf()
                .await
                .map_err(|source| SourceError::Io {
                    what: self.what.to_owned(),
                    source,
                })?;
            if buf.is_empty() {
                return Ok(if length == 0 {
                    None
                } else if length > MAX_LINE_BYTES {
                    Some(Err(length))
                } else {
                    Some(Ok(line))
                });
            }
            let (chunk, used, done) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (&buf[..i], i + 1, true),
                None => (buf, buf.len(), false),
            };
            length += chunk.len();
            if length <= MAX_LINE_BYTES {
                line.extend_from_slice(chunk);
            }
            self.reader.consume(used);
            if done {
                return Ok(Some(if length > MAX_LINE_BYTES {
                    Err(length)
                } else {
                    Ok(line)
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_accept_telemetry_or_bare_metrics_and_skip_the_rest() {
        let input: &[u8] =
            b"{\"schema\":1,\"device_id\":\"x\",\"seq\":9,\"ts\":5,\"metrics\":{\"a\":1.5}}\n\
            garbage\n\
            \n\
            {\"metrics\":{\"b\":2}}\n\
            {\"metrics\":{\"c\":NaN}}\n\
            {\"metrics\":{\"d\":4}}";
        let mut src = LineSource::new(input, "test");
        let a = src.next().await.expect("read").expect("sample");
        assert_eq!((a.ts, a.metrics["a"]), (Some(5), 1.5));
        let b = src.next().await.expect("read").expect("sample");
        assert_eq!((b.ts, b.metrics["b"]), (None, 2.0));
        let d = src.next().await.expect("read").expect("sample");
        assert_eq!(d.metrics["d"], 4.0);
        assert!(src.next().await.expect("read").is_none());
    }

    #[tokio::test]
    async fn an_over_long_line_is_skipped() {
        let mut input = vec![b'{'; MAX_LINE_BYTES + 10];
        input.extend_from_slice(b"\n{\"metrics\":{\"b\":2}}\n");
        let mut src = LineSource::new(&input[..], "test");
        let b = src.next().await.expect("read").expect("sample");
        assert_eq!(b.metrics["b"], 2.0);
    }
}
