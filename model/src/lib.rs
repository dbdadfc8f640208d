//! Vigil's shared feature extraction, scoring and model-release signing (no tokio, rdkafka or linfa) (work in progress).
