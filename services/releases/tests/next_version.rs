//! The trainer's next version: one above the highest release that
//! verifies with its key; forged or foreign envelopes do not move it, and
//! the largest version refuses to overflow.

#[path = "../../../model/tests/common/mod.rs"]
mod fixture;

use vigil_model::SigningKey;
use vigil_releases::{next_version, NextVersionError, Published};
use vigil_schemas::ModelRelease;

fn published(offset: i64, release: ModelRelease) -> Published {
    Published {
        partition: 0,
        offset,
        published_ms: None,
        release: Ok(release),
    }
}

fn signed(version: u64, key: &SigningKey) -> ModelRelease {
    vigil_model::sign(&fixture::payload(version), key).expect("sign")
}

#[test]
fn forged_and_foreign_versions_do_not_move_the_next_one() {
    let ours = SigningKey::from_bytes(&[7; 32]);
    let theirs = SigningKey::from_bytes(&[9; 32]);
    let mut forged = signed(3, &ours);
    forged.version = u64::MAX;
    let log = vec![
        published(0, signed(1, &ours)),
        published(1, signed(2, &ours)),
        published(2, forged),
        published(3, signed(40, &theirs)),
    ];
    let (next, ignored) = next_version(&log, "default", &ours.verifying_key()).expect("next");
    assert_eq!(next, 3);
    let claimed: Vec<u64> = ignored.iter().map(|(v, _)| *v).collect();
    assert_eq!(claimed, vec![u64::MAX, 40]);
    // Nothing verifies: the first version.
    let (first, _) = next_version(&log[2..], "default", &ours.verifying_key()).expect("next");
    assert_eq!(first, 1);
}

#[test]
fn the_largest_version_refuses_to_overflow() {
    let ours = SigningKey::from_bytes(&[7; 32]);
    let log = vec![published(0, signed(u64::MAX, &ours))];
    let e = next_version(&log, "default", &ours.verifying_key()).expect_err("overflow");
    assert!(matches!(
        e,
        NextVersionError::Overflow {
            version: u64::MAX,
            ..
        }
    ));
}

#[test]
fn after_a_key_rotation_the_numbering_continues_and_retired_releases_stop_counting() {
    use vigil_model::KeyRing;
    use vigil_releases::{Lineage, Offer};

    let old = SigningKey::from_bytes(&[7; 32]);
    let new = SigningKey::from_bytes(&[8; 32]);
    let log = vec![published(0, signed(4, &old)), published(1, signed(5, &old))];
    // The trainer now signs with the new key; its ring still holds the old
    // one, so the first new-key release follows the old ones.
    let mut ring = KeyRing::new([old.verifying_key(), new.verifying_key()]);
    let (next, ignored) = next_version(&log, "default", &ring).expect("next");
    assert_eq!((next, ignored.len()), (6, 0));
    let mut log = log;
    log.push(published(2, signed(next, &new)));

    // A consumer with both keys moves from the old key's release to the
    // new key's.
    let mut lineage = Lineage::new("default", ring.clone());
    let versions: Vec<Option<u64>> = log
        .iter()
        .map(
            |p| match lineage.offer(p.release.as_ref().expect("decoded")) {
                Offer::Accepted(m) => Some(m.version()),
                _ => None,
            },
        )
        .collect();
    assert_eq!(versions, vec![Some(4), Some(5), Some(6)]);

    // Old key retired: its releases are refused and no longer count.
    ring.retire(&vigil_model::key_id(&old.verifying_key()));
    let (next, ignored) = next_version(&log, "default", &ring).expect("next");
    assert_eq!(next, 7);
    let reasons: Vec<&str> = ignored.iter().map(|(_, e)| e.reason()).collect();
    assert_eq!(reasons, vec!["retired_key", "retired_key"]);
    let mut lineage = Lineage::new("default", ring);
    match lineage.offer(log[1].release.as_ref().expect("decoded")) {
        Offer::Rejected(e) => assert_eq!(e.reason(), "retired_key"),
        other => panic!("a retired key's release was not refused: {other:?}"),
    }
}
