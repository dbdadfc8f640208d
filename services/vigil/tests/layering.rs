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

/// The workspace root.
fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.rs` file under `dir`, skipping build output.
fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && name != ".git" {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crates' `src` folders.
fn crate_sources() -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    rust_files(&root(), &mut files);
    let mut srcs: Vec<_> = files
        .iter()
        .filter(|f| f.ends_with("src/lib.rs") || f.ends_with("src/main.rs"))
        .filter_map(|f| f.parent().map(std::path::Path::to_owned))
        .collect();
    srcs.sort();
    srcs.dedup();
    srcs
}

/// `crate::…` and `super::…` paths a file imports (re-exports with
/// `pub use` left out: they pass names on, they do not depend on them),
/// with `{a, b::c}` groups expanded.
fn imported_paths(text: &str) -> Vec<Vec<String>> {
    fn expand(prefix: &[String], rest: &str, out: &mut Vec<Vec<String>>) {
        let rest = rest.trim();
        if let Some(inner) = rest.strip_prefix('{') {
            let inner = inner.strip_suffix('}').unwrap_or(inner);
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(prefix, &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            expand(prefix, &inner[start..], out);
            return;
        }
        let mut path = prefix.to_vec();
        for (i, seg) in rest.split("::").enumerate() {
            let seg = seg.trim();
            if seg.starts_with('{') {
                let tail: Vec<&str> = rest.split("::").skip(i).collect();
                expand(&path, &tail.join("::"), out);
                return;
            }
            let ident: String = seg
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if ident.is_empty() {
                break;
            }
            path.push(ident);
        }
        if !path.is_empty() {
            out.push(path);
        }
    }
    let mut out = Vec::new();
    let mut statement = String::new();
    let mut in_use = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("#[cfg(test)]") {
            break; // the file's own tests come last
        }
        if !in_use && t.starts_with("use ") {
            in_use = true;
            statement.clear();
        }
        if in_use {
            statement.push_str(t);
            statement.push(' ');
            if t.ends_with(';') {
                in_use = false;
                let body = statement
                    .trim_start_matches("use ")
                    .trim_end()
                    .trim_end_matches(';');
                for (root, skip) in [("crate::", "crate"), ("super::", "super")] {
                    if let Some(rest) = body.strip_prefix(root) {
                        expand(&[skip.to_owned()], rest, &mut out);
                    }
                }
            }
        }
    }
    out
}

/// The file holding module `path` (relative to `src`), if any.
fn module_file(src: &std::path::Path, path: &[String]) -> Option<std::path::PathBuf> {
    if path.is_empty() {
        return ["lib.rs", "main.rs"]
            .iter()
            .map(|f| src.join(f))
            .find(|p| p.is_file());
    }
    let dir = path.iter().fold(src.to_owned(), |d, s| d.join(s));
    [dir.with_extension("rs"), dir.join("mod.rs")]
        .into_iter()
        .find(|p| p.is_file())
}

/// The module path of `file` under `src`.
fn module_of(src: &std::path::Path, file: &std::path::Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

#[test]
fn no_file_of_a_crate_imports_in_a_circle() {
    use std::collections::{BTreeMap, BTreeSet};
    let mut circles = Vec::new();
    for src in crate_sources() {
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let mut edges: BTreeMap<std::path::PathBuf, BTreeSet<std::path::PathBuf>> = BTreeMap::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let here = module_of(&src, file);
            for path in imported_paths(&text) {
                let mut module = if path[0] == "crate" {
                    Vec::new()
                } else {
                    here.clone()
                };
                let mut rest = &path[..];
                while rest.first().is_some_and(|s| s == "super" || s == "crate") {
                    if rest[0] == "super" {
                        module.pop();
                    }
                    rest = &rest[1..];
                }
                // The longest prefix that names a module file.
                let target = (0..=rest.len()).rev().find_map(|n| {
                    let mut m = module.clone();
                    m.extend_from_slice(&rest[..n]);
                    module_file(&src, &m)
                });
                if let Some(target) = target.filter(|t| t != file) {
                    edges.entry(file.clone()).or_default().insert(target);
                }
            }
        }
        // Depth-first search for a back edge.
        fn visit(
            node: &std::path::PathBuf,
            edges: &BTreeMap<std::path::PathBuf, BTreeSet<std::path::PathBuf>>,
            stack: &mut Vec<std::path::PathBuf>,
            done: &mut BTreeSet<std::path::PathBuf>,
            circles: &mut Vec<String>,
        ) {
            if done.contains(node) {
                return;
            }
            if let Some(at) = stack.iter().position(|n| n == node) {
                let names: Vec<String> = stack[at..]
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                circles.push(names.join(" -> "));
                return;
            }
            stack.push(node.clone());
            for next in edges.get(node).into_iter().flatten() {
                visit(next, edges, stack, done, circles);
            }
            stack.pop();
            done.insert(node.clone());
        }
        let mut done = BTreeSet::new();
        for file in &files {
            visit(file, &edges, &mut Vec::new(), &mut done, &mut circles);
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_shared_pieces_are_written_once() {
    let mut files = Vec::new();
    rust_files(&root(), &mut files);
    let count = |needle: &str| -> Vec<String> {
        files
            .iter()
            .filter(|f| f.components().any(|c| c.as_os_str() == "src"))
            .filter(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains(needle)))
            .map(|f| f.display().to_string())
            .collect()
    };
    let once = |needle: &str| {
        let found = count(needle);
        assert_eq!(found.len(), 1, "{needle:?} in {found:?}");
    };
    once("pub struct Rejection");
    once("pub const ORIGINAL_MAX_BYTES");
    once("fn assign_from_start");
    once("pub fn init(");
    // The three readers of a topic from its start use the shared one.
    for reader in [
        "push/src/view.rs",
        "releases/src/feed.rs",
        "api/src/reader.rs",
    ] {
        let text = std::fs::read_to_string(root().join("services").join(reader)).expect("reader");
        assert!(
            !text.contains("fetch_watermarks"),
            "{reader} reads watermarks itself"
        );
    }
    assert!(!root().join("edge-agent/src/logging.rs").exists());
}
