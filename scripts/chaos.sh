#!/usr/bin/env bash
# The chaos suite of issue 17 (RELIABILITY.md, "Chaos suite"): for each
# fault (none: the baseline, which fails on any duplicate; kill -9 of each
# role, tansu down 15 s, Mosquitto restarted, poison input, an edge agent
# offline 60 s then power-cut) a fresh stack of real Mosquitto, tansu and `vigil` roles
# under `vigil-loadgen`, every (device_id, seq) counted through to the
# audit store. The logic is the `chaos` example of services/vigil.
#
#   scripts/chaos.sh            full profile (5,000 msg/s, every case, < 15 min);
#                               rewrites the table in RELIABILITY.md
#   scripts/chaos.sh --quick    a few cases at 1,000 msg/s (< 3 min), for CI;
#                               RELIABILITY.md untouched
#   scripts/chaos.sh --cases kill-ingest,poison [--rate N] [--write FILE]
#
# Last line: `chaos: N cases, loss 0, duplicates D` (or the failing cases);
# exits non-zero when a case lost a record.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
args=("$@")
case " $* " in
    *" --quick "*|*" --cases "*|*" --write "*) ;;
    *) [ -z "${VIGIL_CHAOS_QUICK:-}" ] && args+=(--write RELIABILITY.md) ;;
esac
cargo build --quiet -p vigil --bin vigil --example chaos
# The edge case runs the agent beside vigil (its simulated sensor source).
cargo build --quiet -p vigil-edge --features sim
exec "$CARGO_TARGET_DIR/debug/examples/chaos" --vigil-bin "$CARGO_TARGET_DIR/debug/vigil" "${args[@]}"
