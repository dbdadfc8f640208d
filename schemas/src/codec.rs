//! The one decode path of every Vigil message.
//!
//! Decoding is JSON parsing plus the checks that make a message usable: the
//! schema version, and each type's own field rules ([`Message::check`]).
//! Errors are typed so services can count them by [`DecodeError::reason`] and
//! write a [`crate::DlqRecord`] that tells the device's author exactly what to
//! fix.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::rules::ValidationError;
use crate::SCHEMA_VERSION;

/// Why bytes could not be decoded into a message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The payload is bigger than the configured limit; it was not parsed.
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// Not JSON at all, or JSON cut short.
    #[error("malformed json at line {line} column {column}: {detail}")]
    Malformed {
        line: usize,
        column: usize,
        detail: String,
    },
    /// Valid JSON whose `schema` is not one this build understands.
    #[error("unknown schema version {found}; this build reads version {SCHEMA_VERSION}")]
    UnknownSchema { found: String },
    /// Valid JSON of the wrong shape: a missing field, a wrong type.
    #[error("invalid {kind}: {detail}")]
    InvalidShape { kind: &'static str, detail: String },
    /// A metric is NaN or ±Infinity (written as `NaN`/`Infinity` literals, or
    /// as a number too large for an f64).
    #[error("metric {metric:?} is not a finite number (line {line} column {column})")]
    NonFiniteMetric {
        metric: String,
        line: usize,
        column: usize,
    },
    /// Well-formed message that breaks a field rule.
    #[error("invalid {kind}: {source}")]
    Invalid {
        kind: &'static str,
        #[source]
        source: ValidationError,
    },
}

impl DecodeError {
    /// Short, stable code for metrics labels and DLQ records.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "payload_too_large",
            DecodeError::Malformed { .. } => "malformed_json",
            DecodeError::UnknownSchema { .. } => "unknown_schema",
            DecodeError::InvalidShape { .. } => "invalid_shape",
            DecodeError::NonFiniteMetric { .. } => "non_finite_metric",
            DecodeError::Invalid { source, .. } => source.reason(),
        }
    }
}

/// Error from encoding a message (only possible for types with non-string map
/// keys, which Vigil's messages do not have; kept typed rather than panicking).
#[derive(Debug, thiserror::Error)]
#[error("encoding {kind}: {source}")]
pub struct EncodeError {
    kind: &'static str,
    #[source]
    source: serde_json::Error,
}

/// A Vigil message: JSON on the wire, with a schema version.
pub trait Message: Serialize + DeserializeOwned {
    /// Name used in error messages (`telemetry`, `verdict`, …).
    const KIND: &'static str;

    /// The message's `schema` field.
    fn schema(&self) -> u32;

    /// Field rules beyond JSON shape. The default accepts everything.
    fn check(&self) -> Result<(), ValidationError> {
        Ok(())
    }

    /// Parses and checks `bytes`.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let message: Self =
            serde_json::from_slice(bytes).map_err(|e| classify::<Self>(bytes, e))?;
        // A derived struct also reads a JSON array (its fields in order);
        // the contract is an object (found by fuzzing).
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(DecodeError::InvalidShape {
                kind: Self::KIND,
                detail: "a JSON array where an object belongs".into(),
            });
        }
        if message.schema() != SCHEMA_VERSION {
            return Err(DecodeError::UnknownSchema {
                found: message.schema().to_string(),
            });
        }
        message.check().map_err(|source| DecodeError::Invalid {
            kind: Self::KIND,
            source,
        })?;
        Ok(message)
    }

    /// [`Message::decode`] after refusing payloads larger than `limit` bytes.
    fn decode_limited(bytes: &[u8], limit: usize) -> Result<Self, DecodeError> {
        if bytes.len() > limit {
            return Err(DecodeError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        Self::decode(bytes)
    }

    /// Compact JSON.
    fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        serde_json::to_vec(self).map_err(|source| EncodeError {
            kind: Self::KIND,
            source,
        })
    }
}

/// Only the schema field, to tell "a newer schema" from "garbage" when the
/// full parse failed.
#[derive(Deserialize)]
struct SchemaProbe {
    schema: Option<serde_json::Value>,
}

/// Turns a serde_json failure into the most specific [`DecodeError`]. Runs
/// only on the error path.
fn classify<M: Message>(bytes: &[u8], e: serde_json::Error) -> DecodeError {
    if let Ok(SchemaProbe {
        schema: Some(found),
    }) = serde_json::from_slice::<SchemaProbe>(bytes)
    {
        if found.as_u64() != Some(u64::from(SCHEMA_VERSION)) {
            return DecodeError::UnknownSchema {
                found: found.to_string(),
            };
        }
    }
    // serde reports the first problem it meets, and its reports do not
    // always say which kind it is: a shape error (`"x"}`: a string where
    // an object belongs) can hide that the bytes are not JSON at all, and
    // a null where an enum belongs is reported as a syntax error ("expected
    // value") in valid JSON. Whether the bytes are JSON decides.
    let json = serde_json::from_slice::<serde::de::IgnoredAny>(bytes);
    let is_json = json.is_ok();
    let e = match json {
        Err(syntax) if e.is_data() && !syntax.is_data() => syntax,
        _ => e,
    };
    let (line, column) = (e.line(), e.column());
    let offset = byte_offset(bytes, line, column);
    let message = e.to_string();
    if e.is_syntax() && starts_non_finite_literal(bytes, offset) {
        return DecodeError::NonFiniteMetric {
            metric: key_before(bytes, offset).unwrap_or_default(),
            line,
            column,
        };
    }
    if message.starts_with("number out of range") {
        return DecodeError::NonFiniteMetric {
            metric: key_before(bytes, offset).unwrap_or_default(),
            line,
            column,
        };
    }
    if e.is_data() || is_json {
        return DecodeError::InvalidShape {
            kind: M::KIND,
            detail: message,
        };
    }
    DecodeError::Malformed {
        line,
        column,
        detail: strip_position(&message),
    }
}

/// serde_json appends " at line L column C"; the error carries them as fields.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Byte offset of serde_json's 1-based (line, column) position.
fn byte_offset(bytes: &[u8], line: usize, column: usize) -> usize {
    let mut current_line = 1;
    let mut line_start = 0;
    for (i, b) in bytes.iter().enumerate() {
        if current_line == line {
            break;
        }
        if *b == b'\n' {
            current_line += 1;
            line_start = i + 1;
        }
    }
    (line_start + column.saturating_sub(1)).min(bytes.len())
}

fn starts_non_finite_literal(bytes: &[u8], offset: usize) -> bool {
    // serde_json reports the position of the first unexpected character,
    // which is inside the literal; back up to where the value starts.
    let start = bytes[..offset]
        .iter()
        .rposition(|b| matches!(b, b':' | b',' | b'[' | b' '))
        .map_or(0, |i| i + 1);
    let rest = &bytes[start..];
    let rest = rest.strip_prefix(b"-").unwrap_or(rest);
    let rest = rest.strip_prefix(b"+").unwrap_or(rest);
    rest.starts_with(b"NaN") || rest.starts_with(b"Infinity") || rest.starts_with(b"inf")
}

/// The object key whose value starts at or before `offset`, found by walking
/// back over the value to `"key":`.
fn key_before(bytes: &[u8], offset: usize) -> Option<String> {
    let colon = bytes[..offset].iter().rposition(|b| *b == b':')?;
    let before = &bytes[..colon];
    let close = before.iter().rposition(|b| !b.is_ascii_whitespace())?;
    if before[close] != b'"' {
        return None;
    }
    let open = before[..close].iter().rposition(|b| *b == b'"')?;
    String::from_utf8(before[open + 1..close].to_vec()).ok()
}
