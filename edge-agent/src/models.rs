//! The device's model: which release it scores with, where that release is
//! kept, and which pushed releases it accepts.
//!
//! A release arrives as the retained message on `vigil/models/{model}` (or
//! as `--initial-model`, e.g. baked into the device image). It is accepted
//! only if it verifies against the configured key ring (`--verify-key`:
//! one public key, or several during a key rotation, with retired key ids
//! refused as `retired_key`; `vigil_model::decode_and_verify`: size, key
//! id, checksum, ed25519 signature, payload), names this agent's model, and is strictly newer
//! than the current one. An accepted release is written to
//! `{state_dir}/models/{model}.json` atomically (write, fsync, rename,
//! directory fsync) *before* it is used, so after a power loss the device
//! scores with either the old or the new release, never a torn one; at
//! start-up that file is verified again and scoring resumes with it, with no
//! network. Everything refused is logged with the reason and the current
//! model stays in place. A persisted release whose key has since been
//! retired is not scored with: the agent waits for the retained release
//! signed by a key still trusted (or takes `--initial-model`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vigil_model::{
    check_newer, decode_and_verify, KeyRing, ReleaseError, VerifiedModel, VerifyKeys,
};
use vigil_schemas::release::MAX_RELEASE_BYTES;

use crate::fsutil;

/// Why a release was not taken.
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    #[error("release refused ({reason}): {error}", reason = .error.reason())]
    Refused {
        #[from]
        error: ReleaseError,
    },
    #[error("release is for model {offered:?}; this agent runs {serving:?}")]
    WrongModel { serving: String, offered: String },
    #[error("persisting release v{version} to {path}: {source}")]
    Persist {
        version: u64,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading release file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl OfferError {
    /// Short, stable reason code for logs.
    pub fn reason(&self) -> &'static str {
        match self {
            OfferError::Refused { error } => error.reason(),
            OfferError::WrongModel { .. } => "wrong_model",
            OfferError::Persist { .. } => "persist_failed",
            OfferError::Read { .. } => "read_failed",
        }
    }

    /// Whether this is the current release delivered again (the retained
    /// message on every reconnect): not worth a warning.
    pub fn is_current_again(&self) -> bool {
        matches!(self, OfferError::Refused { error: ReleaseError::NotNewer { current, candidate, .. } } if current == candidate)
    }
}

/// Reads and verifies a release file (bounded to the release size limit).
pub fn load_release<K: VerifyKeys + ?Sized>(
    path: &Path,
    key: &K,
) -> Result<VerifiedModel, OfferError> {
    read_release(path, key).map(|(m, _)| m)
}

fn read_release<K: VerifyKeys + ?Sized>(
    path: &Path,
    key: &K,
) -> Result<(VerifiedModel, Vec<u8>), OfferError> {
    let bytes =
        fsutil::read_limited(path, MAX_RELEASE_BYTES).map_err(|source| OfferError::Read {
            path: path.to_owned(),
            source,
        })?;
    let model = decode_and_verify(&bytes, key)?;
    Ok((model, bytes))
}

/// The current model and the rules for replacing it.
#[derive(Debug)]
pub struct ModelStore {
    model: String,
    key: KeyRing,
    path: PathBuf,
    current: Option<Arc<VerifiedModel>>,
}

impl ModelStore {
    /// Opens the store of `model` under `state_dir`: verifies the persisted
    /// release, then `initial` (taken when newer). Problems with either are
    /// logged and leave the agent without that release, never stop it.
    /// `key` is one `VerifyingKey` or a `KeyRing`.
    pub fn open(
        state_dir: &Path,
        model: &str,
        key: impl Into<KeyRing>,
        initial: Option<&Path>,
    ) -> std::io::Result<ModelStore> {
        let dir = state_dir.join("models");
        std::fs::create_dir_all(&dir)?;
        let mut store = ModelStore {
            model: model.to_owned(),
            key: key.into(),
            path: dir.join(format!("{model}.json")),
            current: None,
        };
        if store.path.exists() {
            match load_release(&store.path, &store.key) {
                Ok(m) if m.name() == model => {
                    tracing::info!(model, version = m.version(), path = %store.path.display(), "scoring with the persisted release");
                    store.current = Some(Arc::new(m));
                }
                Ok(m) => tracing::error!(path = %store.path.display(), found = m.name(), model,
                    "persisted release is for another model; ignoring it"),
                Err(e) => {
                    tracing::error!(path = %store.path.display(), reason = e.reason(), error = %e,
                    "persisted release does not verify; ignoring it")
                }
            }
        }
        if let Some(initial) = initial {
            match read_release(initial, &store.key).and_then(|(m, b)| store.accept(m, &b)) {
                Ok(m) => {
                    tracing::info!(model, version = m.version(), path = %initial.display(), "installed the initial release")
                }
                Err(e) if e.is_current_again() => {}
                // The usual case once the device has received updates.
                Err(
                    e @ OfferError::Refused {
                        error: ReleaseError::NotNewer { .. },
                    },
                ) => tracing::info!(path = %initial.display(), error = %e,
                    "initial release is older than the persisted one; not used"),
                Err(e) => {
                    tracing::warn!(path = %initial.display(), reason = e.reason(), error = %e,
                    "initial release not used")
                }
            }
        }
        Ok(store)
    }

    /// The release scored with now.
    pub fn current(&self) -> Option<Arc<VerifiedModel>> {
        self.current.clone()
    }

    /// Where the accepted release is kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Verifies and, if newer, persists and takes a pushed release.
    pub fn offer(&mut self, bytes: &[u8]) -> Result<Arc<VerifiedModel>, OfferError> {
        let model = decode_and_verify(bytes, &self.key)?;
        self.accept(model, bytes)
    }

    fn accept(
        &mut self,
        model: VerifiedModel,
        bytes: &[u8],
    ) -> Result<Arc<VerifiedModel>, OfferError> {
        if model.name() != self.model {
            return Err(OfferError::WrongModel {
                serving: self.model.clone(),
                offered: model.name().to_owned(),
            });
        }
        check_newer(
            &self.model,
            self.current.as_ref().map(|m| m.version()),
            model.version(),
        )?;
        // Persist exactly the bytes as published (re-verifiable, exportable).
        fsutil::write_atomic(&self.path, bytes).map_err(|source| OfferError::Persist {
            version: model.version(),
            path: self.path.clone(),
            source,
        })?;
        let model = Arc::new(model);
        self.current = Some(Arc::clone(&model));
        Ok(model)
    }
}
