//! Writes what `edge-agent/ci-arm.sh` (and a person trying the agent) needs
//! to score a realistic sample offline: a key pair, a release trained on a
//! clean simulated fleet and signed with it, and a Telemetry JSON-lines file
//! from a fleet with injected anomalies.
//!
//! `cargo run -p vigil-edge --example edge_fixture -- OUT_DIR`
//! → OUT_DIR/keys/{signing.key,verify.pub}, OUT_DIR/release.json,
//!   OUT_DIR/samples.jsonl

use std::io::Write as _;
use std::path::PathBuf;

use vigil_fleet_sim::{AnomalyConfig, Fleet, FleetConfig};
use vigil_schemas::Message;
use vigil_training::{fit, TrainConfig};

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or_else(|| anyhow::anyhow!("usage: edge_fixture OUT_DIR"))?,
    );
    std::fs::create_dir_all(&out)?;
    let keys = vigil_model::keygen(&out.join("keys"))?;
    let signing = vigil_model::load_signing_key(&keys.signing_key)?;

    let clean = FleetConfig {
        day_ms: 600_000,
        ..FleetConfig::clean(12, 1)
    };
    let train: Vec<_> = Fleet::new(clean)?.generate(500).into_telemetry();
    let trained = fit(
        &train,
        &TrainConfig {
            min_records: 1_000,
            created_ts: 1_795_446_981_908,
            source: "sim:edge_fixture".into(),
            ..TrainConfig::default()
        },
        |_| {},
    )?;
    let release = vigil_model::sign(&trained.payload, &signing)?;
    std::fs::write(out.join("release.json"), release.encode()?)?;

    let faulty = FleetConfig {
        devices: 8,
        seed: 2,
        day_ms: 600_000,
        anomalies: AnomalyConfig {
            rate_per_device_day: 8.0,
            quiet_start_ticks: 50,
            ..AnomalyConfig::default()
        },
        ..FleetConfig::default()
    };
    let mut file = std::io::BufWriter::new(std::fs::File::create(out.join("samples.jsonl"))?);
    let mut n = 0;
    for r in Fleet::new(faulty)?.generate(500).records {
        file.write_all(&r.telemetry.encode()?)?;
        file.write_all(b"\n")?;
        n += 1;
    }
    file.flush()?;
    println!("{}: keys, release v1, {n} samples", out.display());
    Ok(())
}
