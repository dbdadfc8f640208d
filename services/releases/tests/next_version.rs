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
