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
# The NAB tests read the dataset from shared/datasets/nab beside the
# checkout (never copied into it); look a few levels up for it unless
# VIGIL_NAB_DIR says where it is.
if [ -z "${VIGIL_NAB_DIR:-}" ]; then
    for up in .. ../.. ../../..; do
        if [ -d "$up/shared/datasets/nab/data" ]; then
            VIGIL_NAB_DIR=$(cd "$up/shared/datasets/nab" && pwd)
            export VIGIL_NAB_DIR
            break
        fi
    done
fi
# Scylla contract tests run only with VIGIL_TEST_SCYLLA_URI set; they print
# that they were skipped otherwise.
exec cargo nextest run --workspace --profile ci "$@"
