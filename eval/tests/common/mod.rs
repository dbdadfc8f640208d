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
