//! Deterministic fleet simulator with labelled anomalies (work in progress).
