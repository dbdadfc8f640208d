//! Vigil's load generator, end-to-end measurement and NAB evaluation (work in progress).
