//! vigil-edge (placeholder while the crate is built up).
pub mod queue;
