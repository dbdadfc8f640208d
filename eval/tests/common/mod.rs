//! What the NAB tests share: where the dataset is.

use std::path::{Path, PathBuf};

/// The NAB dataset: `VIGIL_NAB_DIR`, or `shared/datasets/nab` beside the
/// workspace.
pub fn nab_dir() -> PathBuf {
    let dir = std::env::var_os("VIGIL_NAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/nab"));
    assert!(
        dir.join("labels/combined_windows.json").is_file(),
        "NAB dataset not found at {}: these tests need shared/datasets/nab beside the \
         workspace (data/, labels/, config/, results/windowedGaussian/), or VIGIL_NAB_DIR \
         pointing at a copy",
        dir.display()
    );
    dir
}

/// Runs the product's detector (with `config`) over the `subset` of the
/// corpus under `root` (NAB's layout: data/, labels/, config/); the
/// results live in the returned directory.
#[allow(dead_code)] // not every test crate that shares this module runs a corpus
pub fn run_corpus(
    root: &Path,
    subset: vigil_eval::nab::Subset,
    config: vigil_eval::nab::DetectorConfig,
) -> (vigil_eval::nab::Report, tempfile::TempDir) {
    let out = tempfile::tempdir().expect("tempdir");
    let report = vigil_eval::nab::run(&vigil_eval::nab::RunOptions {
        data: root.join("data"),
        labels: root.join("labels/combined_windows.json"),
        profiles: root.join("config/profiles.json"),
        out: out.path().to_owned(),
        detector: "vigil".into(),
        config,
        subset,
        threads: 2,
    })
    .expect("the corpus runs");
    (report, out)
}
