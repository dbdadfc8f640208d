//! `vigil actions` never sends a command unsigned: rules that send
//! commands need `--command-signing-key` to start, and a key file others
//! may read is refused. Both are checked before any broker is contacted.

mod common;

use common::{args, parse};
use vigil_service::Shutdown;

const COMMAND_RULES: &str = "[[rule]]\nname = \"r\"\n[[rule.command]]\nname = \"throttle\"\n";

fn without_key(all: Vec<String>) -> Vec<String> {
    let at = all
        .iter()
        .position(|a| a == "--command-signing-key")
        .expect("the test args carry a key");
    all.into_iter()
        .enumerate()
        .filter(|(i, _)| *i != at && *i != at + 1)
        .map(|(_, a)| a)
        .collect()
}

#[tokio::test]
async fn rules_with_commands_need_a_signing_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, COMMAND_RULES).expect("write");
    let flags = without_key(args("127.0.0.1:1", 1, &rules, "127.0.0.1:0"));
    let err = vigil_actions::run(parse(&flags), Shutdown::new())
        .await
        .expect_err("no key, commands in the rules");
    let text = format!("{err:#}");
    assert!(text.contains("--command-signing-key"), "{text}");
    assert!(text.contains("vigil commands keygen"), "{text}");
}

#[tokio::test]
async fn a_shared_signing_key_file_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, COMMAND_RULES).expect("write");
    let flags = args("127.0.0.1:1", 1, &rules, "127.0.0.1:0");
    let key = common::command_signing_key(dir.path());
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = vigil_actions::run(parse(&flags), Shutdown::new())
        .await
        .expect_err("a world-readable key");
    let text = format!("{err:#}");
    assert!(text.contains("mode 644"), "{text}");
}
