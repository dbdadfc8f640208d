#!/bin/bash
# Session 16's side checks (eval/NAB.md, "Session 16: tried, not adopted"):
# one row per call on the four tuning sets at once. Needs the experiment
# code: `git apply eval/prototype/session16_variants.patch`, then
# `cargo build --release -p vigil-eval -p vigil-training --examples --bins`.
#
# usage: session16_variants.sh LABEL [SPEC]
#   SPEC = WINDOW:RELEASE:NOVELTY:START:GATE:REGAIN_NOVELTY[:REGAIN_RELEASE[:EXCLUSIVE[:YOUNG]]]
#   (VIGIL_EXP_TRUST); EXP_REFRACTORY=N, EXP_NOVEL_ONLY=1 in the environment.
# With session16_variants_b.patch instead: EXP_NOISY_BITS, EXP_RELEASE_START,
#   EXP_REFRACTORY with EXP_REFR_MODE=novel|release_untrusted|both_untrusted,
#   and EXP_DEBUG=1 (vigil-eval prints every opening: rows, row, judged,
#   threshold, novelty).
# Prints: NAB tune standard / low FP / low FN; demo replay seed 7 precision /
# recall / normal flagged / alarm events / false ones; synthetic fleets
# 3,4 and 5,6: "alarm" and "record" flagged / precision / recall / F1.
set -euo pipefail
L=$1; SPEC=${2:-}
T=${CARGO_TARGET_DIR:-target}/release
NAB=${VIGIL_NAB_DIR:-../shared/datasets/nab}
[ -n "$SPEC" ] && export VIGIL_EXP_TRUST=$SPEC
O=${TMPDIR:-/tmp}/session16/$L; mkdir -p "$O"
"$T/vigil-eval" nab --nab-dir "$NAB" --out "$O/nab" --files tune > "$O/nab.txt" 2>&1
nab=$(grep -E "^vigil" "$O/nab.txt" | awk '{print $3}' | tr "\n" " ")
fleet() {
  COMPARE_SEEDS=$1 "$T/examples/compare" 2>/dev/null | grep '^| pca (' \
    | awk -F'|' '{print $3":"$6":"$7":"$8}' | tr -d ' ' | tr '\n' ' '
}
d7=$("$T/examples/corroboration" 7 1200 2>/dev/null | grep "^| product" \
  | awk -F"|" '{print $3"/"$4"/"$5"/"$6}' | tr -d " ")
echo "$L $SPEC | NAB $nab | d7 $d7 | c34 $(fleet 3,4) | c56 $(fleet 5,6)"
