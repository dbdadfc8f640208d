//! The one check every private key file goes through before it is read:
//! model and command signing keys, MQTT and HTTP TLS keys, the device CA
//! key and the audit store's Scylla client key. A key is a secret, so its
//! file must not be readable by group or others (mode 0600 or 0400);
//! each caller keeps its own override flag, named in the refusal.

use std::path::{Path, PathBuf};

/// What is being checked and what the caller allows.
#[derive(Debug, Clone, Copy)]
pub struct KeyFileRule {
    /// What the file is, for the message ("MQTT private key file").
    pub what: &'static str,
    /// The file's group may read it (not write it); others still may not.
    /// Set by an override flag meant for Kubernetes secrets mounted with
    /// `fsGroup` (mode 0440).
    pub group_may_read: bool,
    /// The flag (and variable) that lets a group read the key, named in
    /// the refusal; `None` when there is no override.
    pub override_flag: Option<&'static str>,
}

impl KeyFileRule {
    /// A key only its owner may read, with no override.
    pub const fn owner_only(what: &'static str) -> Self {
        Self {
            what,
            group_may_read: false,
            override_flag: None,
        }
    }

    /// A key only its owner may read unless `flag` is given.
    pub const fn with_override(what: &'static str, flag: &'static str) -> Self {
        Self {
            what,
            group_may_read: false,
            override_flag: Some(flag),
        }
    }

    /// The same rule with group read allowed (the override was given).
    pub const fn group_may_read(self, allowed: bool) -> Self {
        Self {
            group_may_read: allowed,
            ..self
        }
    }
}

/// Why a key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file cannot be examined.
    #[error("{what} {}: {source}", path.display())]
    Stat {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Its mode lets group or others in.
    #[error(
        "{what} {} is readable by others than its owner (mode {mode:03o}); run `chmod 600 {}`{}",
        path.display(),
        path.display(),
        override_hint(*override_flag, *mode)
    )]
    Exposed {
        what: &'static str,
        path: PathBuf,
        mode: u32,
        override_flag: Option<&'static str>,
    },
}

impl KeyFileError {
    /// The file's mode when it was refused for it.
    pub fn exposed_mode(&self) -> Option<u32> {
        match self {
            KeyFileError::Exposed { mode, .. } => Some(*mode),
            KeyFileError::Stat { .. } => None,
        }
    }
}

/// The override's hint, only where it would help (others have no access).
fn override_hint(flag: Option<&'static str>, mode: u32) -> String {
    match flag {
        Some(flag) if mode & 0o007 == 0 => format!(
            ", or give {flag} where a group must read it (a Kubernetes secret mounted with fsGroup)"
        ),
        _ => String::new(),
    }
}

/// Refuses a private key file its group (unless `rule.group_may_read`)
/// or others may access. Always passes where files have no unix modes.
pub fn check_key_file(path: &Path, rule: KeyFileRule) -> Result<(), KeyFileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = std::fs::metadata(path).map_err(|source| KeyFileError::Stat {
            what: rule.what,
            path: path.to_owned(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        let forbidden = if rule.group_may_read { 0o027 } else { 0o077 };
        if mode & forbidden != 0 {
            return Err(KeyFileError::Exposed {
                what: rule.what,
                path: path.to_owned(),
                mode,
                override_flag: rule.override_flag,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = (path, rule);
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn key_with_mode(dir: &Path, mode: u32) -> PathBuf {
        let path = dir.join(format!("k{mode:o}.pem"));
        std::fs::write(&path, "secret").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    #[test]
    fn owner_only_modes_pass_and_others_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rule = KeyFileRule::with_override("test key file", "--allow-it");
        for ok in [0o600, 0o400] {
            check_key_file(&key_with_mode(dir.path(), ok), rule).expect("owner only");
        }
        for bad in [0o640, 0o604, 0o644, 0o660] {
            let err = check_key_file(&key_with_mode(dir.path(), bad), rule).expect_err("exposed");
            assert_eq!(err.exposed_mode(), Some(bad));
            let text = err.to_string();
            assert!(
                text.contains("test key file")
                    && text.contains("readable by others")
                    && text.contains(&format!("mode {bad:o}"))
                    && text.contains("chmod 600"),
                "{text}"
            );
            // The override is offered only where it would be enough.
            assert_eq!(text.contains("--allow-it"), bad & 0o007 == 0, "{text}");
        }
    }

    #[test]
    fn the_override_lets_the_group_read_but_never_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rule = KeyFileRule::with_override("k", "--allow-it").group_may_read(true);
        check_key_file(&key_with_mode(dir.path(), 0o440), rule).expect("group read allowed");
        check_key_file(&key_with_mode(dir.path(), 0o640), rule).expect("group read allowed");
        assert!(check_key_file(&key_with_mode(dir.path(), 0o660), rule).is_err());
        assert!(check_key_file(&key_with_mode(dir.path(), 0o444), rule).is_err());
        let none = KeyFileRule::owner_only("CA key");
        let text = check_key_file(&key_with_mode(dir.path(), 0o640), none)
            .expect_err("no override")
            .to_string();
        assert!(!text.contains("or give"), "{text}");
        let missing = check_key_file(&dir.path().join("absent"), none).expect_err("missing");
        assert!(matches!(missing, KeyFileError::Stat { .. }), "{missing}");
        assert!(missing.to_string().contains("absent"), "{missing}");
    }
}
