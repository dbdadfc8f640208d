//! Opaque pagination cursors.
//!
//! A cursor is the position of the last row a page returned:
//! `(event_ts, seq, model, model_version, scored_at)`, the order range
//! queries sort by (descending). Tokens of the older format `c1` (before
//! `scored_at` joined the key) are still read, as `scored_at = ""`: below
//! every stored value, so the next page starts after every row of that
//! position, as it did then. It travels as URL-safe base64 of a small versioned text,
//! so clients treat it as an opaque token and the store can change its
//! layout later (a new version prefix) without breaking old tokens
//! silently: an unknown or damaged token is a typed error the API turns
//! into a 400.

use base64::Engine as _;
use vigil_schemas::Verdict;

/// Format tag of the cursors this build writes.
const VERSION: &str = "c2";
/// Format tag of the cursors older builds wrote (no `scored_at`).
const VERSION_1: &str = "c1";
/// Field separator (a control character no number contains; the model
/// name comes last, so it may contain anything).
const SEP: char = '\u{1f}';
/// Longest token accepted (a model name is short; this bounds the work a
/// hostile token can cause).
const MAX_TOKEN_LEN: usize = 1024;

/// Position of a row in a range query's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Event time of the row, ms since the Unix epoch.
    pub event_ts: u64,
    /// The record's sequence number.
    pub seq: u64,
    /// Model name.
    pub model: String,
    /// Model version (0 for unscored).
    pub model_version: u64,
    /// Where the row was scored (`cloud`, `edge`; empty in a `c1` token).
    pub scored_at: String,
}

/// Why a cursor token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("cursor is longer than {MAX_TOKEN_LEN} characters")]
    TooLong,
    #[error("cursor is not url-safe base64")]
    NotBase64,
    #[error("cursor was not issued by this service (unknown format)")]
    UnknownFormat,
    #[error("cursor is damaged: {0}")]
    Damaged(&'static str),
}

impl Cursor {
    /// The position just past `v` in range-query order.
    pub fn after(v: &Verdict) -> Self {
        Self {
            event_ts: v.event_ts,
            seq: v.seq,
            model: v.model.clone(),
            model_version: crate::codec::stored_version(v),
            scored_at: v.scored_at.as_str().to_owned(),
        }
    }

    /// The opaque token.
    pub fn encode(&self) -> String {
        let text = format!(
            "{VERSION}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}",
            self.event_ts, self.seq, self.model_version, self.scored_at, self.model
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    /// Parses a token made by [`Cursor::encode`].
    pub fn decode(token: &str) -> Result<Self, CursorError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(CursorError::TooLong);
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| CursorError::NotBase64)?;
        let text = String::from_utf8(bytes).map_err(|_| CursorError::UnknownFormat)?;
        let (mut parts, with_place) = match text.split_once(SEP) {
            Some((VERSION, rest)) => (rest.splitn(5, SEP), true),
            Some((VERSION_1, rest)) => (rest.splitn(4, SEP), false),
            _ => return Err(CursorError::UnknownFormat),
        };
        let mut number = |what: &'static str| -> Result<u64, CursorError> {
            parts
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or(CursorError::Damaged(what))
        };
        let event_ts = number("event time")?;
        let seq = number("seq")?;
        let model_version = number("model version")?;
        let scored_at = if with_place {
            match parts.next() {
                Some(at @ ("cloud" | "edge")) => at.to_owned(),
                _ => return Err(CursorError::Damaged("scored_at")),
            }
        } else {
            String::new()
        };
        let model = parts
            .next()
            .filter(|m| !m.is_empty())
            .ok_or(CursorError::Damaged("model"))?
            .to_owned();
        Ok(Self {
            event_ts,
            seq,
            model,
            model_version,
            scored_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_including_odd_model_names() {
        for model in ["default", "a\u{1f}b", "ünï code/with spaces"] {
            let c = Cursor {
                event_ts: 1_795_446_981_908,
                seq: u64::MAX,
                model: model.into(),
                model_version: 7,
                scored_at: "edge".into(),
            };
            let token = c.encode();
            assert!(token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert_eq!(Cursor::decode(&token), Ok(c));
        }
    }

    #[test]
    fn bad_tokens_say_what_is_wrong() {
        assert_eq!(Cursor::decode("***"), Err(CursorError::NotBase64));
        assert_eq!(Cursor::decode("aGVsbG8"), Err(CursorError::UnknownFormat));
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        // A token of the older format reads as below every place.
        assert_eq!(
            Cursor::decode(&b64("c1\u{1f}5\u{1f}6\u{1f}7\u{1f}m")),
            Ok(Cursor {
                event_ts: 5,
                seq: 6,
                model: "m".into(),
                model_version: 7,
                scored_at: String::new(),
            })
        );
        assert_eq!(
            Cursor::decode(&b64("c2\u{1f}5\u{1f}6\u{1f}7\u{1f}moon\u{1f}m")),
            Err(CursorError::Damaged("scored_at"))
        );
        assert_eq!(
            Cursor::decode(&b64("c1\u{1f}x\u{1f}1\u{1f}1\u{1f}m")),
            Err(CursorError::Damaged("event time"))
        );
        assert_eq!(
            Cursor::decode(&b64("c1\u{1f}1\u{1f}1\u{1f}1")),
            Err(CursorError::Damaged("model"))
        );
        assert_eq!(Cursor::decode(&"A".repeat(2000)), Err(CursorError::TooLong));
    }
}
