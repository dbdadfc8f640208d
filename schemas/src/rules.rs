//! The field rules every message shares: the limits on names and ids, the
//! checks of them, and [`ValidationError`], the rule a well-formed message
//! broke. The codec and each message type import them from here.

/// Longest accepted device id, in bytes.
pub const MAX_DEVICE_ID_LEN: usize = 128;
/// Longest accepted metric or tag name, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Most metrics one record may carry.
pub const MAX_METRICS: usize = 256;
/// Most tags one record may carry.
pub const MAX_TAGS: usize = 64;
/// Longest accepted tag value, in bytes.
pub const MAX_TAG_VALUE_LEN: usize = 256;

/// A field rule a well-formed message broke.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    #[error("device_id is empty")]
    EmptyDeviceId,
    #[error("device_id {device_id:?} is {len} bytes; at most {MAX_DEVICE_ID_LEN} allowed")]
    DeviceIdTooLong { device_id: String, len: usize },
    #[error("device_id {device_id:?} contains {bad:?}; allowed are letters, digits and . _ : -")]
    DeviceIdCharacter { device_id: String, bad: char },
    #[error("metrics is empty; a record needs at least one metric")]
    NoMetrics,
    #[error("{count} metrics; at most {MAX_METRICS} allowed")]
    TooManyMetrics { count: usize },
    #[error("metric {metric:?} is not a finite number")]
    NonFiniteMetric { metric: String },
    #[error("{what} name {name:?} is empty or longer than {MAX_NAME_LEN} bytes")]
    BadName { what: &'static str, name: String },
    #[error("{count} tags; at most {MAX_TAGS} allowed")]
    TooManyTags { count: usize },
    #[error("tag {tag:?} value is longer than {MAX_TAG_VALUE_LEN} bytes")]
    TagValueTooLong { tag: String },
    #[error("{field} is {value}; {why}")]
    OutOfRange {
        field: &'static str,
        value: String,
        why: &'static str,
    },
}

impl ValidationError {
    /// Short, stable code for metrics labels and DLQ records.
    pub fn reason(&self) -> &'static str {
        match self {
            ValidationError::EmptyDeviceId
            | ValidationError::DeviceIdTooLong { .. }
            | ValidationError::DeviceIdCharacter { .. } => "invalid_device_id",
            ValidationError::NoMetrics | ValidationError::TooManyMetrics { .. } => {
                "invalid_metrics"
            }
            ValidationError::NonFiniteMetric { .. } => "non_finite_metric",
            ValidationError::BadName { .. } => "invalid_name",
            ValidationError::TooManyTags { .. } | ValidationError::TagValueTooLong { .. } => {
                "invalid_tags"
            }
            ValidationError::OutOfRange { .. } => "out_of_range",
        }
    }
}

/// Checks a device id: non-empty, at most [`MAX_DEVICE_ID_LEN`] bytes, and
/// only characters that are safe in MQTT topics, Kafka keys and URLs.
pub fn check_device_id(device_id: &str) -> Result<(), ValidationError> {
    if device_id.is_empty() {
        return Err(ValidationError::EmptyDeviceId);
    }
    if device_id.len() > MAX_DEVICE_ID_LEN {
        return Err(ValidationError::DeviceIdTooLong {
            device_id: device_id.chars().take(32).collect(),
            len: device_id.len(),
        });
    }
    if let Some(bad) = device_id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(ValidationError::DeviceIdCharacter {
            device_id: device_id.to_owned(),
            bad,
        });
    }
    Ok(())
}

/// Checks a metric or tag name (`what` says which): non-empty, at most
/// [`MAX_NAME_LEN`] bytes.
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<(), ValidationError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(ValidationError::BadName {
            what,
            name: name.chars().take(32).collect(),
        });
    }
    Ok(())
}
