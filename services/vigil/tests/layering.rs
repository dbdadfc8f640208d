//! The workspace's layering, as `cargo tree` reports it (issue 15): the
//! load generator links no training, the shipped edge agent no simulator
//! and no cloud plumbing, the dashboard reads the audit store without the
//! audit service, and nothing but the demo builds on the edge agent or the
//! load generator.

use std::process::Command;

/// The crates `cargo tree` prints for `args` (normal dependencies only),
/// one name per line.
fn tree(args: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn assert_none(crates: &[String], banned: &[&str], what: &str) {
    let found: Vec<&String> = crates
        .iter()
        .filter(|c| banned.iter().any(|b| c.starts_with(b)))
        .collect();
    assert!(found.is_empty(), "{what} links {found:?}");
}

#[test]
fn the_load_generator_links_no_training() {
    let crates = tree(&["-p", "vigil-loadgen"]);
    assert!(crates.iter().any(|c| c == "vigil-fleet-sim"));
    assert_none(
        &crates,
        &["vigil-training", "linfa", "ndarray"],
        "vigil-loadgen",
    );
}

#[test]
fn the_shipped_edge_agent_has_no_simulator_and_no_cloud_plumbing() {
    let crates = tree(&["-p", "vigil-edge"]);
    assert!(crates.iter().any(|c| c == "vigil-model"));
    assert_none(
        &crates,
        &[
            "vigil-fleet-sim",
            "rdkafka",
            "scylla",
            "linfa",
            "vigil-training",
            "vigil-service",
        ],
        "vigil-edge (default features)",
    );
}

#[test]
fn the_dashboard_reads_the_store_not_the_audit_service() {
    let crates = tree(&["-p", "vigil-api"]);
    assert!(crates.iter().any(|c| c == "vigil-audit-store"));
    assert!(
        !crates.iter().any(|c| c == "vigil-audit"),
        "vigil-api links vigil-audit"
    );
}

#[test]
fn only_the_demo_builds_on_the_edge_agent_or_the_load_generator() {
    for leaf in ["vigil-edge", "vigil-loadgen"] {
        let users: Vec<String> = tree(&["-i", leaf, "--workspace"])
            .into_iter()
            .filter(|c| c != leaf)
            .collect();
        assert!(
            users.iter().all(|c| c == "vigil-demo"),
            "{leaf} is a normal dependency of {users:?}"
        );
    }
}
