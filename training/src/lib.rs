//! Vigil's batch trainer: fits the detector with linfa and evaluates it (work in progress).
