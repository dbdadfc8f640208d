//! The committed JSON Schema files match the Rust types.

use std::path::PathBuf;

#[test]
fn committed_json_schemas_are_fresh() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("json");
    let bless = std::env::var_os("VIGIL_BLESS").is_some();
    let mut stale = Vec::new();
    for (name, schema) in vigil_schemas::json_schema::all() {
        let path = dir.join(name);
        let fresh = vigil_schemas::json_schema::render(&schema);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != fresh {
            if bless {
                std::fs::write(&path, fresh).expect("writing json schema");
            } else {
                stale.push(name);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale JSON Schema files in schemas/json: {stale:?}; regenerate with \
         `VIGIL_BLESS=1 cargo test -p vigil-schemas --test json_schema`"
    );
}
