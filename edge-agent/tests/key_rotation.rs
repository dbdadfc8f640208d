//! Key rotation (issue 18), against a real Mosquitto: an agent whose
//! `--verify-key` is a key ring holding the old and the new key takes a
//! release signed by the new key after one signed by the old, and the old
//! key's releases still verify; once the ring retires the old key id, its
//! releases — the one persisted on the device included — are refused as
//! `retired_key`, and the next release signed by the new key is taken.

mod common;

use std::path::Path;
use std::time::Duration;

use vigil_model::keyring::RETIRED_PREFIX;
use vigil_testkit::Mosquitto;

const DEVICE: &str = "edge-rotation";
const WAIT: Duration = Duration::from_secs(60);
const TOPIC: &str = "vigil/models/default";

/// The one public key line of a keygen `verify.pub`.
fn public_line(keys: &common::Keys) -> String {
    std::fs::read_to_string(&keys.verify_path).expect("read verify.pub")
}

fn write_ring(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.concat()).expect("write key ring");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_takes_the_new_key_keeps_the_old_until_retired() -> anyhow::Result<()> {
    let broker = Mosquitto::start()?;
    let (old, new) = (common::keys(), common::keys());
    let old_id = vigil_model::key_id(&old.signing.verifying_key());
    let ring_dir = tempfile::tempdir()?;
    let ring = ring_dir.path().join("verify-keys.pub");
    write_ring(&ring, &[public_line(&old), public_line(&new)]);

    let state = tempfile::tempdir()?;
    let mut args = common::base_args(DEVICE, &broker.url(), &ring);
    args.extend(common::args(&["--source", "stdin", "--interval-ms", "0"]));
    let mut agent = common::Agent::start(state.path(), &args, true)?;

    let port = broker.port();
    let offer = |release: vigil_schemas::ModelRelease| async move {
        common::publish(port, TOPIC, common::bytes(&release), true).await
    };
    // Before the switch: the old key signs v1.
    offer(common::release(&old.signing, 1, 31)).await?;
    agent.wait_for(&["release verified and persisted", "version=1"], WAIT)?;
    // The trainer switched: the new key's v2 is taken after the old's v1.
    offer(common::release(&new.signing, 2, 32)).await?;
    agent.wait_for(&["release verified and persisted", "version=2"], WAIT)?;
    // Until it is retired, the old key's releases still verify.
    offer(common::release(&old.signing, 3, 33)).await?;
    agent.wait_for(&["release verified and persisted", "version=3"], WAIT)?;
    assert_eq!(agent.count("release rejected"), 0, "{}", agent.log_tail());
    assert_eq!(agent.terminate(), Some(0), "{}", agent.log_tail());

    // The old key id retired: the persisted v3 and the retained v3 (both
    // signed by it) are refused; a later release of the old key too; the
    // new key's v4 is taken.
    write_ring(
        &ring,
        &[
            public_line(&old),
            public_line(&new),
            format!("{RETIRED_PREFIX}{old_id}\n"),
        ],
    );
    let mut agent = common::Agent::start(state.path(), &args, true)?;
    agent.wait_for(
        &[
            "persisted release does not verify",
            "reason=\"retired_key\"",
        ],
        WAIT,
    )?;
    let refused = agent.wait_for(&["release rejected", "reason=\"retired_key\""], WAIT)?;
    assert!(
        refused.contains(&format!("key {old_id}, which is retired")),
        "{refused}"
    );
    // In order on the topic: v5 (old key) is refused before v4 is taken.
    offer(common::release(&old.signing, 5, 35)).await?;
    offer(common::release(&new.signing, 4, 34)).await?;
    agent.wait_for(&["release verified and persisted", "version=4"], WAIT)?;
    assert_eq!(
        agent.count("reason=\"retired_key\""),
        3,
        "persisted v3, retained v3, v5: {}",
        agent.log_tail()
    );
    assert_eq!(agent.count("release verified and persisted"), 1);
    assert_eq!(agent.terminate(), Some(0), "{}", agent.log_tail());
    Ok(())
}
