//! Signing key files.
//!
//! `vigil models keygen --out DIR` writes two one-line text files:
//!
//! ```text
//! DIR/signing.key   vigil-ed25519-secret:<64 hex digits: the 32-byte seed>   (mode 0600)
//! DIR/verify.pub    vigil-ed25519-public:<64 hex digits: the 32-byte key>
//! ```
//!
//! Blank lines and lines starting with `#` are ignored, so operators may
//! annotate the files. The key id written into every release is the first
//! 16 hex digits of the sha256 of the 32 public key bytes; it lets a
//! verifier say "signed by another key" instead of just "bad signature".

use std::fs;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Prefix of the line in `signing.key`.
pub const SECRET_PREFIX: &str = "vigil-ed25519-secret:";
/// Prefix of the line in `verify.pub`.
pub const PUBLIC_PREFIX: &str = "vigil-ed25519-public:";
/// File name of the private key in a keygen directory.
pub const SIGNING_KEY_FILE: &str = "signing.key";
/// File name of the public key in a keygen directory.
pub const VERIFY_KEY_FILE: &str = "verify.pub";
/// Key files are tiny; anything larger is not one.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// Why a key could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{action} key file {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("key file {path} already exists; refusing to overwrite it")]
    Exists { path: PathBuf },
    #[error("key file {path} is not a vigil key file: {why}")]
    Format { path: PathBuf, why: String },
    #[error("reading randomness from /dev/urandom: {0}")]
    Entropy(#[source] std::io::Error),
}

/// Identifier of a public key: 16 hex digits of its sha256.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    hex::encode(&digest[..8])
}

/// What [`keygen`] wrote.
#[derive(Debug, Clone)]
pub struct GeneratedKeys {
    /// Path of `signing.key`.
    pub signing_key: PathBuf,
    /// Path of `verify.pub`.
    pub verify_key: PathBuf,
    /// Key id releases signed with it carry.
    pub key_id: String,
}

/// Makes a key pair in `dir` (created if missing). Refuses to overwrite an
/// existing key.
pub fn keygen(dir: &Path) -> Result<GeneratedKeys, KeyError> {
    fs::create_dir_all(dir).map_err(|source| KeyError::Io {
        action: "creating directory for",
        path: dir.to_owned(),
        source,
    })?;
    let signing_path = dir.join(SIGNING_KEY_FILE);
    let verify_path = dir.join(VERIFY_KEY_FILE);
    for path in [&signing_path, &verify_path] {
        if path.exists() {
            return Err(KeyError::Exists { path: path.clone() });
        }
    }
    let mut seed = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(KeyError::Entropy)?;
    let key = SigningKey::from_bytes(&seed);
    write_new(
        &signing_path,
        &format!("{SECRET_PREFIX}{}\n", hex::encode(seed)),
        0o600,
    )?;
    let public = key.verifying_key();
    write_new(
        &verify_path,
        &format!("{PUBLIC_PREFIX}{}\n", hex::encode(public.as_bytes())),
        0o644,
    )?;
    Ok(GeneratedKeys {
        signing_key: signing_path,
        verify_key: verify_path,
        key_id: key_id(&public),
    })
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), KeyError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let io = |source| KeyError::Io {
        action: "writing",
        path: path.to_owned(),
        source,
    };
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists {
                path: path.to_owned(),
            }
        } else {
            io(e)
        }
    })?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

/// The text of a key file, at most `limit` bytes of it.
pub(crate) fn read_key_text(path: &Path, limit: u64) -> Result<String, KeyError> {
    let io = |source| KeyError::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    };
    let mut text = String::new();
    fs::File::open(path)
        .map_err(io)?
        .take(limit)
        .read_to_string(&mut text)
        .map_err(io)?;
    Ok(text)
}

/// The lines of a key file that carry something: trimmed, without blank
/// lines and `#` comments.
pub(crate) fn key_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// The 32 bytes of one key line of `path` (already trimmed), after `prefix`.
pub(crate) fn parse_key_line(path: &Path, line: &str, prefix: &str) -> Result<[u8; 32], KeyError> {
    let format = |why: String| KeyError::Format {
        path: path.to_owned(),
        why,
    };
    let digits = line.strip_prefix(prefix).ok_or_else(|| {
        let other = if prefix == SECRET_PREFIX {
            PUBLIC_PREFIX
        } else {
            SECRET_PREFIX
        };
        if line.starts_with(other) {
            format(format!(
                "it holds a {} key; expected a line starting with {prefix}",
                if other == SECRET_PREFIX {
                    "secret"
                } else {
                    "public"
                }
            ))
        } else {
            format(format!("the key line does not start with {prefix}"))
        }
    })?;
    let bytes = hex::decode(digits).map_err(|e| format(format!("the key is not hex: {e}")))?;
    bytes
        .try_into()
        .map_err(|v: Vec<u8>| format(format!("the key is {} bytes, not 32", v.len())))
}

/// A public key from its 32 bytes, read from `path`.
pub(crate) fn verifying_key(path: &Path, bytes: &[u8; 32]) -> Result<VerifyingKey, KeyError> {
    VerifyingKey::from_bytes(bytes).map_err(|e| KeyError::Format {
        path: path.to_owned(),
        why: format!("not a valid ed25519 public key: {e}"),
    })
}

/// The 32 bytes on the one key line of `path`, after `prefix`.
fn read_key_bytes(path: &Path, prefix: &str) -> Result<[u8; 32], KeyError> {
    let text = read_key_text(path, MAX_KEY_FILE_BYTES)?;
    let format = |why: &str| KeyError::Format {
        path: path.to_owned(),
        why: why.to_owned(),
    };
    let mut lines = key_lines(&text);
    let line = lines.next().ok_or_else(|| format("it holds no key line"))?;
    if lines.next().is_some() {
        return Err(format("it holds more than one key line"));
    }
    parse_key_line(path, line, prefix)
}

/// Loads `signing.key` (the trainer's private key).
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    read_key_bytes(path, SECRET_PREFIX).map(|b| SigningKey::from_bytes(&b))
}

/// Loads one `verify.pub`. Consumers load a whole key ring, which may be
/// this one file: [`crate::keyring::load_key_ring`].
pub fn load_verify_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let bytes = read_key_bytes(path, PUBLIC_PREFIX)?;
    verifying_key(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_round_trips_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let made = keygen(dir.path()).expect("keygen");
        let secret = load_signing_key(&made.signing_key).expect("load secret");
        let public = load_verify_key(&made.verify_key).expect("load public");
        assert_eq!(secret.verifying_key(), public);
        assert_eq!(key_id(&public), made.key_id);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&made.signing_key)
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(keygen(dir.path()), Err(KeyError::Exists { .. })));
    }

    #[test]
    fn loaders_explain_what_is_wrong() {
        let dir = tempfile::tempdir().expect("tempdir");
        let made = keygen(dir.path()).expect("keygen");
        let err = load_verify_key(&made.signing_key)
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("holds a secret key"), "{err}");
        let bad = dir.path().join("bad.pub");
        fs::write(&bad, "# comment\nvigil-ed25519-public:abcd\n").expect("write");
        let err = load_verify_key(&bad).expect_err("must fail").to_string();
        assert!(err.contains("2 bytes, not 32"), "{err}");
        let err = load_verify_key(&dir.path().join("missing.pub"))
            .expect_err("must fail")
            .to_string();
        assert!(
            err.contains("reading key file") && err.contains("missing.pub"),
            "{err}"
        );
    }
}
