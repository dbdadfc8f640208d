#!/usr/bin/env bash
# One row of every measure a detection setting is chosen on, for the
# tables in eval/NAB.md and training/EVALUATION.md: the protocol's tuning
# side in one command, so a variant is judged on all of it at once and the
# held-out sets are not run by accident.
#
#   scripts/detection-row.sh LABEL            # tuning sets only
#   scripts/detection-row.sh --report LABEL   # the report sets (NAB's held-out
#                                             # half and whole corpus among
#                                             # them): once, for the choice
#
# Experiment switches (an applied eval/prototype/*.patch reads EXP_*
# variables) pass through the environment: EXP_X=1 scripts/detection-row.sh x.
#
# Tuning side, in order: NAB tune standard / low FP / low FN and windows
# (`vigil-eval nab --files tune`: each file's NAB input range declared, the
# runner's default since session 31; `--input-range none` gives the strict
# figures); its false openings, every alarm opening
# outside a window counted (NAB's threshold may drop some: the standard
# profile charges each 0.11 of a window); the novelty alone on NAB tune
# (`--method novelty`: a channel that only wins through the trust shows
# here as a loss); the injected corpus, seeds 22 and 23, standard and
# injected windows found (`--inject`); `small_train 400 2000 tune` record
# decision on normal rows (60-s clean / dirty / 1-h clean / dirty), the
# same rows in alarm, and point-wise F1 (60-s / 1-h, dirty); `long_faults
# tune` F1 (60-s / 1-h) and its normal records in alarm before the fault
# (what an operator sees of a short training set's false alarms); the
# same two sets with eight sensors (`SIM_METRICS=8`, the industrial
# benchmark's count: decision and long_faults);
# demo replay seed 7 (`corroboration 7 1200`: event precision / recall /
# normal flagged); the tuning fleets 3,4 and 5,6 record F1.
#
# Report side: NAB holdout and whole (the three profiles, windows);
# `small_train … report`; `long_faults report` and `… report other`; demo
# replays 24301 and 99; the report fleet 1,2 record F1.
#
# NAB_DIR (default: ../shared/datasets/nab beside the checkout) is read,
# never copied; outputs go under a temporary folder. Builds release
# binaries into VIGIL_DETECTION_TARGET_DIR (default
# ~/.cache/vigil/detection-target) so it does not disturb CI's target.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

report=false
if [ "${1:-}" = "--report" ]; then
    report=true
    shift
fi
label=${1:?usage: scripts/detection-row.sh [--report] LABEL}

nab=${NAB_DIR:-}
if [ -z "$nab" ]; then
    for up in .. ../.. ../../..; do
        if [ -d "$up/shared/datasets/nab/data" ]; then
            nab=$(cd "$up/shared/datasets/nab" && pwd)
            break
        fi
    done
fi
[ -d "$nab/data" ] || { echo "NAB not found: set NAB_DIR" >&2; exit 1; }

export CARGO_TARGET_DIR=${VIGIL_DETECTION_TARGET_DIR:-$HOME/.cache/vigil/detection-target}
cargo build -q --release -p vigil-eval
cargo build -q --release -p vigil-training \
    --example small_train --example long_faults --example corroboration \
    --example compare --example alarms
bin=$CARGO_TARGET_DIR/release
ex=$bin/examples
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# "std / lowFP / lowFN, det/windows" of one vigil-eval run's table.
nab_profiles() {
    awk '$1 == "vigil" { s[$2] = $3; w[$2] = $6 }
         END { printf "%s / %s / %s, %s", s["standard"], s["reward_low_FP_rate"],
               s["reward_low_FN_rate"], w["standard"] }'
}
# "std, found" of an injected-corpus run.
injected() {
    awk '$1 == "vigil" && $2 == "standard" { s = $3 }
         /^injected windows found/ { f = $8 }
         END { printf "%s, %s", s, f }'
}
# Alarm openings outside NAB's windows in a run's result files, every
# opening counted (what an operator is paged for, before NAB's threshold).
false_openings() {
    cat "$1"/vigil/*/*.csv | awk -F, '$3 != "anomaly_score" && $3 > 0 && $4 == 0 { n++ } END { print n + 0 }'
}
# Column $1 of the first four table rows of small_train, joined by " / ".
small_col() {
    awk -F'|' -v c="$1" 'NR >= 3 && NR <= 6 { gsub(/^ +| +$/, "", $c); v[++n] = $c }
        END { printf "%s / %s / %s / %s", v[1], v[2], v[3], v[4] }'
}
# small_train's point-wise F1 with anomalies in training (60-s / 1-h).
small_f1() {
    awk -F'|' 'NR == 4 || NR == 6 { split($16, a, " "); v[++n] = a[1] }
        END { printf "%s / %s", v[1], v[2] }'
}
# The F1 of long_faults' two timing rows, then their normal records in
# alarm before the fault: "F1 60-s / 1-h; before 60-s / 1-h".
long_f1() {
    awk -F'|' 'NR >= 3 && NR <= 4 { split($4, a, " "); v[++n] = a[1]; split($6, b, " "); w[n] = b[1] }
        END { printf "%s / %s; %s / %s %%", v[1], v[2], w[1], w[2] }'
}
# (Each reader takes all of its input: a writer cut off mid-table would
# fail on the broken pipe.)
# The product's row of a demo replay: precision / recall / normal flagged.
replay_corr() {
    awk -F'|' '/^\| product/ && !done { gsub(/ /, "", $3); gsub(/ /, "", $4); gsub(/ /, "", $5);
        printf "%s / %s / %s", $3, $4, $5; done = 1 }'
}
replay_alarms() {
    awk '/^product \(the release/ && !done {
        for (i = 1; i <= NF; i++) {
            if ($i == "precision") p = $(i + 1); if ($i == "recall") r = $(i + 1);
            if ($i == "flagged") f = $(i + 1) }
        gsub(/,/, "", p); gsub(/,/, "", r); gsub(/,/, "", f);
        printf "%s / %s / %s", p, r, f; done = 1 }'
}
# Record F1 of the PCA (the product's) row of compare.
fleet_f1() {
    awk -F'|' '/^\| pca/ && $3 ~ /record/ && !done { gsub(/ /, "", $8); print $8; done = 1 }'
}

if ! $report; then
    tune=$("$bin/vigil-eval" nab --nab-dir "$nab" --out "$out/tune" --files tune | nab_profiles)
    false_tune=$(false_openings "$out/tune")
    alone=$("$bin/vigil-eval" nab --nab-dir "$nab" --out "$out/alone" --files tune --method novelty \
        | awk '$1 == "vigil" && $2 == "standard" { print $3 }')
    i22=$("$bin/vigil-eval" nab --nab-dir "$nab" --out "$out/i22" --inject 22 | injected)
    i23=$("$bin/vigil-eval" nab --nab-dir "$nab" --out "$out/i23" --inject 23 | injected)
    "$ex/small_train" 400 2000 tune > "$out/small"
    decision=$(small_col 8 < "$out/small")
    in_alarm=$(small_col 9 < "$out/small")
    f1=$(small_f1 < "$out/small")
    long=$("$ex/long_faults" tune | long_f1)
    # Eight sensors, the industrial benchmark's count.
    SIM_METRICS=8 "$ex/small_train" 400 2000 tune > "$out/small8"
    decision8=$(small_col 8 < "$out/small8")
    long8=$(SIM_METRICS=8 "$ex/long_faults" tune | long_f1)
    demo=$("$ex/corroboration" 7 1200 | replay_corr)
    f34=$(COMPARE_SEEDS=3,4 "$ex/compare" | fleet_f1)
    f56=$(COMPARE_SEEDS=5,6 "$ex/compare" | fleet_f1)
    echo "| variant | NAB tune | false openings, tune | novelty alone, tune | injected 22 (std, found) | injected 23 | small_train tune decision | … in alarm | … F1 | long_faults tune F1; normal before the fault in alarm | eight sensors: small_train decision | … long_faults | demo seed 7 | fleets 3,4 / 5,6 record F1 |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    echo "| $label | $tune | $false_tune | $alone | $i22 | $i23 | $decision | $in_alarm | $f1 | $long | $decision8 | $long8 | $demo | $f34 / $f56 |"
else
    holdout=$("$bin/vigil-eval" nab --nab-dir "$nab" --out "$out/holdout" --files holdout | nab_profiles)
    whole=$("$bin/vigil-eval" nab --nab-dir "$nab" --out "$out/all" --files all | nab_profiles)
    "$ex/small_train" 400 2000 report > "$out/small"
    decision=$(small_col 8 < "$out/small")
    in_alarm=$(small_col 9 < "$out/small")
    f1=$(small_f1 < "$out/small")
    long=$("$ex/long_faults" report | long_f1)
    other=$("$ex/long_faults" report other | long_f1)
    SIM_METRICS=8 "$ex/small_train" 400 2000 report > "$out/small8"
    decision8=$(small_col 8 < "$out/small8")
    long8=$(SIM_METRICS=8 "$ex/long_faults" report | long_f1)
    d1=$("$ex/alarms" 24301 | replay_alarms)
    d2=$("$ex/alarms" 99 | replay_alarms)
    f12=$("$ex/compare" | fleet_f1)
    echo "| variant | NAB holdout | NAB whole | small_train report decision | … in alarm | … F1 | long_faults report F1; normal before the fault in alarm | … other | eight sensors: small_train decision | … long_faults | demo 24301 | demo 99 | report fleet record F1 |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    echo "| $label | $holdout | $whole | $decision | $in_alarm | $f1 | $long | $other | $decision8 | $long8 | $d1 | $d2 | $f12 |"
fi
