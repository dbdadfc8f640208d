//! `vigil audit`: keeps every decision and every model release for audit.
pub mod store;
