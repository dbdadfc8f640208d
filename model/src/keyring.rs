//! Key rings: every public key a verifier accepts releases from, each known
//! by its key id, and the ids of keys that are retired. A ring is what lets
//! the signing key change without a flag day: consumers trust the old and
//! the new key while the trainer switches, then the old id is retired.
//!
//! `--verify-key PATH` / `VIGIL_VERIFY_KEY` names either
//!
//! - a key ring file: one entry a line, blank lines and `#` comments
//!   ignored —
//!
//!   ```text
//!   # the key the trainer signs with now
//!   vigil-ed25519-public:<64 hex digits>
//!   # the previous key: its releases still verify until it is retired
//!   vigil-ed25519-public:<64 hex digits>
//!   # a key whose releases are refused, present above or not
//!   vigil-retired-key-id:<16 hex digits, as `vigil models keygen` prints>
//!   ```
//!
//!   (a `verify.pub` written by `vigil models keygen` is a ring of one key,
//!   so a single key file works as it always did); or
//! - a directory: every `*.pub` file in it, read as above and merged (other
//!   files, such as `signing.key`, are ignored).
//!
//! A release is verified with the key its `key_id` names. A retired id is
//! refused with [`crate::ReleaseError::RetiredKey`] (reason `retired_key`),
//! an id the ring does not hold with `UnknownKey` (reason `unknown_key`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;

use crate::keys::{key_id, key_lines, parse_key_line, read_key_text, verifying_key, KeyError};
use crate::keys::{PUBLIC_PREFIX, SECRET_PREFIX};

/// Prefix of a line retiring a key id.
pub const RETIRED_PREFIX: &str = "vigil-retired-key-id:";
/// Largest key ring file read (hundreds of keys); larger is refused.
const MAX_RING_FILE_BYTES: u64 = 64 * 1024;
/// Most `*.pub` files read from a key directory.
const MAX_RING_FILES: usize = 256;

/// What a ring says about a key id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus<'a> {
    /// Releases carrying this id are verified with this key.
    Active(&'a VerifyingKey),
    /// Releases carrying this id are refused.
    Retired,
    /// The ring does not know this id.
    Unknown,
}

/// The verify keys of one consumer (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: BTreeMap<String, VerifyingKey>,
    retired: BTreeSet<String>,
}

impl From<VerifyingKey> for KeyRing {
    fn from(key: VerifyingKey) -> Self {
        KeyRing::new([key])
    }
}

impl KeyRing {
    /// A ring of `keys`, none retired.
    pub fn new(keys: impl IntoIterator<Item = VerifyingKey>) -> Self {
        let mut ring = KeyRing::default();
        for key in keys {
            ring.add(key);
        }
        ring
    }

    /// Adds `key`; returns its key id.
    pub fn add(&mut self, key: VerifyingKey) -> String {
        let id = key_id(&key);
        self.keys.insert(id.clone(), key);
        id
    }

    /// Retires `key_id`: releases carrying it are refused from now on,
    /// whether or not the ring holds its key.
    pub fn retire(&mut self, key_id: &str) {
        self.retired.insert(key_id.to_ascii_lowercase());
    }

    /// What the ring says about `key_id`.
    pub fn status(&self, key_id: &str) -> KeyStatus<'_> {
        if self.retired.contains(key_id) {
            return KeyStatus::Retired;
        }
        match self.keys.get(key_id) {
            Some(key) => KeyStatus::Active(key),
            None => KeyStatus::Unknown,
        }
    }

    /// Ids of the keys releases may be signed with, sorted.
    pub fn active_ids(&self) -> Vec<&str> {
        self.keys
            .keys()
            .filter(|id| !self.retired.contains(*id))
            .map(String::as_str)
            .collect()
    }

    /// Retired ids, sorted.
    pub fn retired_ids(&self) -> Vec<&str> {
        self.retired.iter().map(String::as_str).collect()
    }

    /// One line for logs and errors: `keys a, b; retired c`.
    pub fn summary(&self) -> String {
        let active = self.active_ids();
        let mut text = if active.is_empty() {
            "no active key".to_owned()
        } else {
            format!(
                "key{} {}",
                if active.len() == 1 { "" } else { "s" },
                active.join(", ")
            )
        };
        if !self.retired.is_empty() {
            text.push_str("; retired ");
            text.push_str(&self.retired_ids().join(", "));
        }
        text
    }

    /// Merges `other` into this ring (keys and retirements).
    fn merge(&mut self, other: KeyRing) {
        self.keys.extend(other.keys);
        self.retired.extend(other.retired);
    }
}

/// Loads the key ring at `path`: a ring file or a directory of `*.pub`
/// files (see the module docs). Refused when it leaves no active key.
pub fn load_key_ring(path: &Path) -> Result<KeyRing, KeyError> {
    let io = |source| KeyError::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    };
    let ring = if std::fs::metadata(path).map_err(io)?.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(io)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(io)?;
        files.retain(|p| p.extension().is_some_and(|e| e == "pub") && p.is_file());
        files.sort();
        if files.len() > MAX_RING_FILES {
            return Err(format(
                path,
                format!("it holds more than {MAX_RING_FILES} *.pub files"),
            ));
        }
        let mut ring = KeyRing::default();
        for file in &files {
            ring.merge(read_ring_file(file)?);
        }
        if files.is_empty() {
            return Err(format(path, "the directory holds no *.pub file".into()));
        }
        ring
    } else {
        read_ring_file(path)?
    };
    if ring.active_ids().is_empty() {
        let why = if ring.keys.is_empty() {
            "it holds no public key line".to_owned()
        } else {
            format!("every key in it is retired ({})", ring.summary())
        };
        return Err(format(path, why));
    }
    Ok(ring)
}

fn format(path: &Path, why: String) -> KeyError {
    KeyError::Format {
        path: path.to_owned(),
        why,
    }
}

/// One ring file: public key lines and retired id lines.
fn read_ring_file(path: &Path) -> Result<KeyRing, KeyError> {
    let text = read_key_text(path, MAX_RING_FILE_BYTES + 1)?;
    if text.len() as u64 > MAX_RING_FILE_BYTES {
        return Err(format(
            path,
            format!("it is larger than {MAX_RING_FILE_BYTES} bytes"),
        ));
    }
    let mut ring = KeyRing::default();
    for line in key_lines(&text) {
        if let Some(id) = line.strip_prefix(RETIRED_PREFIX) {
            let id = id.trim();
            if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format(
                    path,
                    format!("retired key id {id:?} is not 16 hex digits"),
                ));
            }
            ring.retire(id);
        } else if line.starts_with(PUBLIC_PREFIX) || line.starts_with(SECRET_PREFIX) {
            let bytes = parse_key_line(path, line, PUBLIC_PREFIX)?;
            ring.add(verifying_key(path, &bytes)?);
        } else {
            return Err(format(
                path,
                format!("a line starts with neither {PUBLIC_PREFIX} nor {RETIRED_PREFIX}"),
            ));
        }
    }
    Ok(ring)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use std::fs;

    fn public(seed: u8) -> VerifyingKey {
        SigningKey::from_bytes(&[seed; 32]).verifying_key()
    }

    fn line(key: &VerifyingKey) -> String {
        format!("{PUBLIC_PREFIX}{}\n", hex::encode(key.as_bytes()))
    }

    #[test]
    fn a_ring_file_holds_keys_and_retired_ids() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (old, new) = (public(1), public(2));
        let path = dir.path().join("ring.pub");
        let text = format!(
            "# new\n{}\n# old\n{}{RETIRED_PREFIX}{}\n",
            line(&new),
            line(&old),
            key_id(&old).to_ascii_uppercase()
        );
        fs::write(&path, text).expect("write");
        let ring = load_key_ring(&path).expect("ring");
        assert_eq!(ring.status(&key_id(&new)), KeyStatus::Active(&new));
        assert_eq!(ring.status(&key_id(&old)), KeyStatus::Retired);
        assert_eq!(ring.status("0123456789abcdef"), KeyStatus::Unknown);
        assert_eq!(ring.active_ids(), vec![key_id(&new)]);
        assert!(ring.summary().contains("retired"), "{}", ring.summary());
    }

    #[test]
    fn a_keygen_verify_pub_is_a_ring_of_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let made = crate::keys::keygen(dir.path()).expect("keygen");
        let ring = load_key_ring(&made.verify_key).expect("ring");
        assert_eq!(ring.active_ids(), vec![made.key_id.as_str()]);
        // The keygen directory works too: signing.key is not read.
        let ring = load_key_ring(dir.path()).expect("ring from dir");
        assert_eq!(ring.active_ids(), vec![made.key_id.as_str()]);
    }

    #[test]
    fn a_directory_merges_its_pub_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b, c) = (public(1), public(2), public(3));
        fs::write(dir.path().join("a.pub"), line(&a)).expect("write");
        fs::write(dir.path().join("b.pub"), line(&b)).expect("write");
        fs::write(dir.path().join("c.txt"), line(&c)).expect("write");
        fs::write(
            dir.path().join("retired.pub"),
            format!("{RETIRED_PREFIX}{}\n", key_id(&a)),
        )
        .expect("write");
        let ring = load_key_ring(dir.path()).expect("ring");
        assert_eq!(ring.status(&key_id(&a)), KeyStatus::Retired);
        assert_eq!(ring.status(&key_id(&b)), KeyStatus::Active(&b));
        assert_eq!(ring.status(&key_id(&c)), KeyStatus::Unknown);
    }

    #[test]
    fn unusable_rings_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = |text: &str| {
            let path = dir.path().join("ring");
            fs::write(&path, text).expect("write");
            load_key_ring(&path).expect_err("must fail").to_string()
        };
        let a = public(1);
        let all_retired = format!("{}{RETIRED_PREFIX}{}\n", line(&a), key_id(&a));
        assert!(err(&all_retired).contains("every key in it is retired"));
        assert!(err("# nothing\n").contains("no public key line"));
        assert!(err(&format!("{RETIRED_PREFIX}abc\n")).contains("not 16 hex digits"));
        assert!(err("ssh-ed25519 AAAA\n").contains("starts with neither"));
        let secret = format!("{SECRET_PREFIX}{}\n", hex::encode([1u8; 32]));
        assert!(err(&secret).contains("holds a secret key"));
        let big = "# padding\n".repeat(8000);
        assert!(err(&big).contains("larger than"));
        let empty = tempfile::tempdir().expect("tempdir");
        let e = load_key_ring(empty.path()).expect_err("empty dir");
        assert!(e.to_string().contains("no *.pub file"), "{e}");
        let e = load_key_ring(&dir.path().join("missing")).expect_err("missing");
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
