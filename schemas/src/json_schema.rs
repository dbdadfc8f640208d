//! The JSON Schema documents generated from the wire types. They are
//! committed under `schemas/json/` for devices and tools written in other
//! languages; `tests/json_schema.rs` fails when they are stale and rewrites
//! them when run with `VIGIL_BLESS=1`.

use schemars::{schema_for, JsonSchema, Schema};

use crate::{
    CommandResult, DeviceStatus, DlqRecord, Incident, ModelRelease, ReleaseHeader, SignedCommand,
    Telemetry, Verdict,
};

/// `(file name, schema)` for every public message type.
pub fn all() -> Vec<(&'static str, Schema)> {
    vec![
        ("telemetry.json", titled::<Telemetry>("Telemetry")),
        ("verdict.json", titled::<Verdict>("Verdict")),
        ("model-release.json", titled::<ModelRelease>("ModelRelease")),
        (
            "model-release-header.json",
            titled::<ReleaseHeader>("ReleaseHeader"),
        ),
        ("device-status.json", titled::<DeviceStatus>("DeviceStatus")),
        ("incident.json", titled::<Incident>("Incident")),
        (
            "command-result.json",
            titled::<CommandResult>("CommandResult"),
        ),
        (
            "signed-command.json",
            titled::<SignedCommand>("SignedCommand"),
        ),
        ("dlq-record.json", titled::<DlqRecord>("DlqRecord")),
    ]
}

fn titled<T: JsonSchema>(title: &str) -> Schema {
    let mut schema = schema_for!(T);
    schema.insert("title".into(), title.into());
    schema
}

/// Pretty JSON text of a schema, as committed.
pub fn render(schema: &Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}
