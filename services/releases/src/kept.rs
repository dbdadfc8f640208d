//! The newest release a consumer accepted, kept on its own disk, so that a
//! restart never goes back to an older one: `vigil.models` is compacted by
//! model name, so after compaction the log may hold only whatever was
//! written last — an older signed release, a tombstone, garbage. A scorer
//! or `vigil push` given a folder (`--release-dir`) writes each accepted
//! release there (`<model>.release.json`, the bytes as published) and, at
//! its next start, takes it as live before reading the log: the log can
//! then only offer something newer. (The edge agent keeps its own the same
//! way, in its data folder.)
//!
//! A kept release signed by a key that has since been retired is not used
//! ([`KeptError::Retired`]): the consumer starts from the log as if nothing
//! were kept, takes the newest release of a key still trusted, and keeps
//! that in its place. Retiring a key is meant for after the new key's first
//! release reached every consumer (then nothing retired is kept); retiring
//! it earlier, e.g. because it leaked, deliberately stops serving its
//! releases.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use vigil_model::{ReleaseError, VerifyKeys};
use vigil_schemas::ModelRelease;

use crate::decode_envelope;

/// Why the kept release could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeptError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is there but is not a release of this model that verifies
    /// with this key: refusing to start beats silently forgetting the
    /// high-water mark.
    #[error(
        "{path}: the kept release is not usable ({reason}); remove the file to start from the log"
    )]
    Unusable { path: PathBuf, reason: String },
    /// The file is a release of this model signed by a retired key: not
    /// to be served, nor to hold the high-water mark.
    #[error("{path}: the kept release v{version} is not used: {error}")]
    Retired {
        path: PathBuf,
        version: u64,
        #[source]
        error: ReleaseError,
    },
}

/// Where a model's accepted release is kept.
#[derive(Debug, Clone)]
pub struct KeptRelease {
    path: PathBuf,
}

impl KeptRelease {
    /// `<dir>/<model>.release.json`.
    pub fn in_dir(dir: &Path, model: &str) -> Self {
        Self {
            path: dir.join(format!("{model}.release.json")),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kept release, verified with `keys` and checked to be `model`'s;
    /// None when nothing was kept yet.
    pub fn load<K: VerifyKeys + ?Sized>(
        &self,
        model: &str,
        keys: &K,
    ) -> Result<Option<ModelRelease>, KeptError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(KeptError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let unusable = |reason: String| KeptError::Unusable {
            path: self.path.clone(),
            reason,
        };
        let release = decode_envelope(&bytes).map_err(|e: ReleaseError| unusable(e.to_string()))?;
        if release.model != model {
            return Err(unusable(format!("it is a release of {:?}", release.model)));
        }
        match vigil_model::verify(&release, keys) {
            Ok(_) => Ok(Some(release)),
            Err(error @ ReleaseError::RetiredKey { .. }) => Err(KeptError::Retired {
                path: self.path.clone(),
                version: release.version,
                error,
            }),
            Err(e) => Err(unusable(e.to_string())),
        }
    }

    /// Keeps `bytes` (a release as published): written to a temporary
    /// file, synced, renamed over the old one.
    pub fn store(&self, bytes: &[u8]) -> Result<(), KeptError> {
        let io = |source| KeptError::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}
