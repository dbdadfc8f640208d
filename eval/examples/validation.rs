//! Diagnostic (session 15, `eval/NAB.md`, "The product's own decisions"):
//! per NAB file, what the training rows say about each detector (the
//! release's holdout, the novelty's last fifth of the probationary rows)
//! against what each does after them.
//!
//! `cargo run --release -p vigil-eval --example validation [tune|holdout|all] [NAB_DIR]`

use std::path::PathBuf;

use vigil_eval::nab::{load_data_dir, release::validation, run::Subset, Labels};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let half = match std::env::args().nth(1).as_deref() {
        Some("holdout") => Subset::Holdout,
        Some("all") => Subset::All,
        _ => Subset::Tune,
    };
    let dir = PathBuf::from(
        std::env::args()
            .nth(2)
            .unwrap_or_else(|| "/work/shared/datasets/nab".to_owned()),
    );
    let labels = Labels::load(&dir.join("labels/combined_windows.json"))?;
    let files = load_data_dir(&dir.join("data"), &labels)?;
    println!("| file | training rows | release: holdout flagged | estimate | judged ≥ threshold after | novelty: last fifth | after | onsets per 1,000 rows: release / novelty |");
    println!("|---|---|---|---|---|---|---|---|");
    for (name, data) in files.iter().filter(|(name, _)| half.contains(name)) {
        let v = validation(data)?;
        let estimate = v
            .pca_estimate
            .map_or("–".to_owned(), |e| format!("{:.2} %", 100.0 * e));
        println!(
            "| {} | {} | {:.2} % | {estimate} | {:.2} % | {:.2} % | {:.2} % | {:.1} / {:.1} |",
            name.rsplit('/').next().unwrap_or(name),
            v.probation,
            100.0 * v.pca_holdout,
            100.0 * v.pca_after,
            100.0 * v.novelty_holdout,
            100.0 * v.novelty_after,
            1000.0 * v.release_onsets,
            1000.0 * v.novelty_onsets
        );
    }
    Ok(())
}
