#!/usr/bin/env bash
# The main job: the whole Vigil stack in one command (vigil-demo). Installs
# what is missing first (scripts/setup.sh: Mosquitto, tansu, …), then builds
# and runs the demo. Arguments go to vigil-demo (see `--help`), e.g.
#   scripts/demo.sh --duration 10m --data-dir ./demo-state
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
exec cargo run --release -p vigil-demo -- "$@"
