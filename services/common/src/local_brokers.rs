//! The brokers the one-command demo and the integration tests start as
//! child processes: where their binaries are installed, and a free
//! loopback port for each to listen on.
//!
//! A binary is looked for in its `VIGIL_*_BIN` variable, then on `PATH`,
//! then where `scripts/setup.sh` installs it; when none has it, the error
//! names the variable and the install command.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// A broker binary that is not installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} not found (set {env} or install it: {install})")]
pub struct NotInstalled {
    /// The binary's file name.
    pub name: &'static str,
    /// The variable that names its path.
    pub env: &'static str,
    /// How to install it.
    pub install: &'static str,
}

/// Where to look for one broker binary.
struct Binary<'a> {
    env: &'static str,
    name: &'static str,
    /// Install locations after `PATH` (`~/` is the home folder).
    installed: &'a [&'a str],
    install: &'static str,
}

const TANSU: Binary<'static> = Binary {
    env: "VIGIL_TANSU_BIN",
    name: "tansu",
    installed: &["~/.cargo/bin/tansu", "/usr/local/bin/tansu"],
    install: "scripts/setup.sh, or: cargo install tansu --locked --features dynostore,libsql",
};

const MOSQUITTO: Binary<'static> = Binary {
    env: "VIGIL_MOSQUITTO_BIN",
    name: "mosquitto",
    installed: &["/usr/sbin/mosquitto"],
    install: "scripts/setup.sh, or: apt-get install mosquitto",
};

/// The `tansu` Kafka-API broker.
pub fn tansu() -> Result<PathBuf, NotInstalled> {
    find(&TANSU, std::env::var_os(TANSU.env))
}

/// The Mosquitto MQTT broker.
pub fn mosquitto() -> Result<PathBuf, NotInstalled> {
    find(&MOSQUITTO, std::env::var_os(MOSQUITTO.env))
}

/// A free TCP port on 127.0.0.1 (bound and released at once; another
/// process may take it before the broker binds it, which on a test
/// machine is rare enough).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Asks the kernel to kill `command`'s process when the thread that
/// spawns it exits (Linux; elsewhere nothing), so that a broker never
/// outlives the demo or the test that started it, even one killed with
/// SIGKILL.
pub fn die_with_parent(command: &mut std::process::Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt as _;
        // SAFETY: prctl is async-signal-safe and touches no memory of the
        // parent; it only asks the kernel to SIGKILL the child when the
        // spawning thread exits.
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))
                .map_err(std::io::Error::from)
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

/// `from_env` (the binary's variable), then `PATH`, then its install
/// locations.
fn find(
    binary: &Binary<'_>,
    from_env: Option<std::ffi::OsString>,
) -> Result<PathBuf, NotInstalled> {
    if let Some(path) = from_env {
        return Ok(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(binary.name));
    let installed = binary.installed.iter().map(|p| expand_home(p));
    on_path
        .chain(installed)
        .find(|p| p.is_file())
        .ok_or(NotInstalled {
            name: binary.name,
            env: binary.env,
            install: binary.install,
        })
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_wins_then_an_install_location() {
        let dir = tempfile::tempdir().unwrap();
        let installed = dir.path().join("vigil-test-broker");
        std::fs::write(&installed, b"").unwrap();
        let path = installed.display().to_string();
        let binary = Binary {
            env: "VIGIL_TEST_BROKER_BIN",
            name: "vigil-test-broker-not-on-path",
            installed: &["/nonexistent/vigil-test-broker", &path],
            install: "nothing",
        };
        assert_eq!(
            find(&binary, Some("/opt/broker".into())).unwrap(),
            PathBuf::from("/opt/broker")
        );
        assert_eq!(find(&binary, None).unwrap(), installed);
    }

    #[test]
    fn a_missing_binary_names_its_variable_and_how_to_install_it() {
        let binary = Binary {
            env: "VIGIL_TEST_BROKER_BIN",
            name: "vigil-test-broker-not-installed",
            installed: &["/nonexistent/vigil-test-broker-not-installed"],
            install: "apt-get install it",
        };
        let e = find(&binary, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "vigil-test-broker-not-installed not found (set VIGIL_TEST_BROKER_BIN or install it: apt-get install it)"
        );
    }

    #[test]
    fn home_is_expanded() {
        if let Some(home) = std::env::var_os("HOME") {
            assert_eq!(expand_home("~/x"), Path::new(&home).join("x"));
        }
        assert_eq!(expand_home("/usr/x"), PathBuf::from("/usr/x"));
    }
}
