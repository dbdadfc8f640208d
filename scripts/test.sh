#!/usr/bin/env bash
# Runs Vigil's whole test suite on this machine: installs what is missing,
# then runs every unit, property and integration test. Integration tests
# start real Mosquitto and tansu brokers on free loopback ports themselves.
#
# Extra arguments go to `cargo nextest run` (e.g. `scripts/test.sh -E 'test(ingest)'`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
# Scylla contract tests run only with VIGIL_TEST_SCYLLA_URI set; they print
# that they were skipped otherwise.
exec cargo nextest run --workspace --profile ci "$@"
