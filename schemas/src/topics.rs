//! Default topic names. Both Kafka and MQTT names are built from a prefix so
//! that several Vigil installations can share one broker; the defaults
//! (`vigil.` and `vigil/`) are what the compose file, the manifests and the
//! docs use.

/// Default prefix of every Kafka topic.
pub const DEFAULT_KAFKA_PREFIX: &str = "vigil.";
/// Default prefix of every MQTT topic.
pub const DEFAULT_MQTT_PREFIX: &str = "vigil/";

/// Kafka topic names of one installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaTopics {
    /// Validated telemetry, keyed by device_id.
    pub telemetry: String,
    /// A verdict for every scored record, keyed by device_id.
    pub verdicts: String,
    /// Verdicts flagged anomalous, keyed by device_id.
    pub anomalies: String,
    /// Signed model releases, compacted, keyed by model name.
    pub models: String,
    /// Latest status per device, compacted, keyed by device_id.
    pub device_status: String,
    /// Incident lifecycle events, keyed by device_id.
    pub incidents: String,
    /// Results of cloud commands as devices report them, keyed by
    /// device_id.
    pub command_results: String,
    /// Rejected input with the reason and the original bytes, keyed by source.
    pub dlq: String,
}

impl KafkaTopics {
    /// Topic names under `prefix` (for example `vigil.`).
    pub fn with_prefix(prefix: &str) -> Self {
        let name = |suffix: &str| format!("{prefix}{suffix}");
        Self {
            telemetry: name("telemetry"),
            verdicts: name("verdicts"),
            anomalies: name("anomalies"),
            models: name("models"),
            device_status: name("device-status"),
            incidents: name("incidents"),
            command_results: name("command-results"),
            dlq: name("dlq"),
        }
    }
}

impl Default for KafkaTopics {
    fn default() -> Self {
        Self::with_prefix(DEFAULT_KAFKA_PREFIX)
    }
}

/// MQTT topic names of one installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttTopics {
    prefix: String,
}

/// What a device-scoped MQTT topic is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChannel {
    /// Device → cloud telemetry (QoS 1).
    Telemetry,
    /// Edge → cloud verdicts (QoS 1).
    Verdicts,
    /// Edge → cloud retained status (QoS 1).
    Status,
    /// Cloud → device commands (QoS 1).
    Commands,
    /// Device → cloud results of those commands (QoS 1).
    CommandResults,
}

impl DeviceChannel {
    fn suffix(self) -> &'static str {
        match self {
            DeviceChannel::Telemetry => "telemetry",
            DeviceChannel::Verdicts => "verdicts",
            DeviceChannel::Status => "status",
            DeviceChannel::Commands => "commands",
            DeviceChannel::CommandResults => "command-results",
        }
    }
}

impl MqttTopics {
    /// Topic names under `prefix` (for example `vigil/`).
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The prefix these names are built from.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `vigil/devices/{device_id}/{channel}`.
    pub fn device(&self, device_id: &str, channel: DeviceChannel) -> String {
        format!("{}devices/{device_id}/{}", self.prefix, channel.suffix())
    }

    /// Filter matching `channel` of every device: `vigil/devices/+/{channel}`.
    pub fn all_devices(&self, channel: DeviceChannel) -> String {
        format!("{}devices/+/{}", self.prefix, channel.suffix())
    }

    /// An MQTT 5 shared subscription of `channel` of every device, so that
    /// the replicas of one group split the load.
    pub fn shared(&self, group: &str, channel: DeviceChannel) -> String {
        format!("$share/{group}/{}", self.all_devices(channel))
    }

    /// Retained release topic of one model: `vigil/models/{model}`.
    pub fn model(&self, model: &str) -> String {
        format!("{}models/{model}", self.prefix)
    }

    /// The device id in a device-scoped topic of `channel`, if the topic is
    /// one.
    pub fn device_id_of<'t>(&self, topic: &'t str, channel: DeviceChannel) -> Option<&'t str> {
        let rest = topic.strip_prefix(self.prefix.as_str())?;
        let rest = rest.strip_prefix("devices/")?;
        let (id, tail) = rest.split_once('/')?;
        (tail == channel.suffix() && !id.is_empty()).then_some(id)
    }
}

impl Default for MqttTopics {
    fn default() -> Self {
        Self::with_prefix(DEFAULT_MQTT_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_architecture() {
        let k = KafkaTopics::default();
        assert_eq!(k.telemetry, "vigil.telemetry");
        assert_eq!(k.device_status, "vigil.device-status");
        assert_eq!(k.dlq, "vigil.dlq");
        assert_eq!(k.command_results, "vigil.command-results");
        let m = MqttTopics::default();
        assert_eq!(
            m.device("pump-1", DeviceChannel::Telemetry),
            "vigil/devices/pump-1/telemetry"
        );
        assert_eq!(
            m.shared("ingest", DeviceChannel::Telemetry),
            "$share/ingest/vigil/devices/+/telemetry"
        );
        assert_eq!(m.model("default"), "vigil/models/default");
    }

    #[test]
    fn device_id_is_parsed_from_the_topic() {
        let m = MqttTopics::default();
        assert_eq!(
            m.device_id_of("vigil/devices/pump-7/telemetry", DeviceChannel::Telemetry),
            Some("pump-7")
        );
        assert_eq!(
            m.device_id_of("vigil/devices/pump-7/status", DeviceChannel::Telemetry),
            None
        );
        assert_eq!(
            m.device_id_of("vigil/devices//telemetry", DeviceChannel::Telemetry),
            None
        );
        assert_eq!(
            m.device_id_of("other/devices/a/telemetry", DeviceChannel::Telemetry),
            None
        );
    }
}
