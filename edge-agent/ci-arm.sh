#!/usr/bin/env bash
# CI for the ARM builds: cross-builds vigil-edge (edge-agent/build-arm.sh)
# for each triple given (default: aarch64-unknown-linux-gnu), runs it under
# qemu-user-static on a sample file, and checks that its verdicts are
# byte-identical to the x86-64 build's for the same file and release.
# Prints the binary sizes.
#
#   edge-agent/ci-arm.sh [aarch64-unknown-linux-gnu] [armv7-unknown-linux-gnueabihf]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
triples=("$@")
[ "${#triples[@]}" -gt 0 ] || triples=(aarch64-unknown-linux-gnu)

. scripts/apt.sh
command -v qemu-aarch64-static >/dev/null 2>&1 || apt_install qemu-user-static

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo run -q -p vigil-edge --example edge_fixture -- "$work"
cargo build -q -p vigil-edge --bin vigil-edge
x86_bin=${CARGO_TARGET_DIR:-target}/debug/vigil-edge

score() {
    "$@" score --scored-ts-from-event --model "$work/release.json" \
        --verify-key "$work/keys/verify.pub" --log warn < "$work/samples.jsonl"
}
score "$x86_bin" > "$work/x86.jsonl"
lines=$(wc -l < "$work/x86.jsonl")
anomalies=$(grep -c '"anomaly":true' "$work/x86.jsonl" || true)
[ "$lines" -gt 0 ] || { echo "FAIL: the x86-64 build wrote no verdicts" >&2; exit 1; }

for triple in "${triples[@]}"; do
    case "$triple" in
        aarch64-unknown-linux-gnu) qemu=(qemu-aarch64-static -L /usr/aarch64-linux-gnu) ;;
        armv7-unknown-linux-gnueabihf) qemu=(qemu-arm-static -L /usr/arm-linux-gnueabihf) ;;
        *) echo "unknown triple $triple" >&2; exit 2 ;;
    esac
    edge-agent/build-arm.sh "$triple"
    arm_bin=target/$triple/release/vigil-edge
    score "${qemu[@]}" "$arm_bin" > "$work/arm.jsonl"
    if ! cmp -s "$work/x86.jsonl" "$work/arm.jsonl"; then
        echo "FAIL: $triple verdicts differ from x86-64 ($lines x86 lines, $(wc -l < "$work/arm.jsonl") $triple lines)" >&2
        diff <(head -c 2000 "$work/x86.jsonl") <(head -c 2000 "$work/arm.jsonl") >&2 || true
        exit 1
    fi
    echo "$triple under qemu: $lines verdicts ($anomalies anomalous), byte-identical to x86-64" \
        "(sha256 $(sha256sum < "$work/arm.jsonl" | cut -c1-16)); binary $(stat -c %s "$arm_bin") bytes"
done
