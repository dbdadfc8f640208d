//! Prints the sha256 of the verdict stream that `tests/properties.rs`
//! (`golden_verdict_digest`) pins, so a cross-built binary can be checked
//! on the target itself (the edge agent's platforms) without the test
//! harness:
//!
//! `cargo run --release -p vigil-model --example verdict_digest`

#[path = "../tests/common/mod.rs"]
mod common;

use vigil_model::{sign, verify, Scorer, SigningKey};
use vigil_schemas::{Message, ScoredAt};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = SigningKey::from_bytes(&[5; 32]);
    let model = verify(&sign(&common::payload(1), &key)?, &key.verifying_key())?;
    let mut scorer = Scorer::new("default", 64);
    scorer.install(std::sync::Arc::new(model))?;
    let mut all = Vec::new();
    for r in common::stream(4, 500, 99) {
        let v = scorer.score(&r, Some(r.ts + 3), r.ts + 5, ScoredAt::Edge);
        all.extend(v.encode()?);
        all.push(b'\n');
    }
    println!(
        "{} {} bytes",
        vigil_model::release::sha256_hex(&all),
        all.len()
    );
    Ok(())
}
