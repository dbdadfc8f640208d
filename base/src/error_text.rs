//! An error and its causes as one line, for a program's last words.
//!
//! Many of Vigil's error messages end with their cause's own text ("reading
//! X: No such file or directory") and also return that cause as
//! `source()`, so printing the chain (anyhow's `{:#}` or its `Debug`) says
//! the cause twice. [`error_text`] prints each cause once.

use std::error::Error;

/// `err` followed by each of its causes, `": "` between them, a cause left
/// out when the text so far already ends with it.
pub fn error_text(err: &(dyn Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !text.ends_with(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_text;

    #[derive(Debug, thiserror::Error)]
    #[error("reading {path}: {source}")]
    struct Reading {
        path: &'static str,
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("starting")]
    struct Starting {
        source: Reading,
    }

    fn missing() -> Reading {
        Reading {
            path: "/x.csv",
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        }
    }

    #[test]
    fn a_cause_the_message_already_ends_with_is_said_once() {
        let text = error_text(&missing());
        assert_eq!(text, format!("reading /x.csv: {}", missing().source));
    }

    #[test]
    fn a_cause_the_message_does_not_carry_is_added() {
        let text = error_text(&Starting { source: missing() });
        assert_eq!(
            text,
            format!("starting: reading /x.csv: {}", missing().source)
        );
        assert_eq!(text.matches("not found").count(), 1, "{text}");
    }
}
