#!/usr/bin/env bash
# Measures vigil-demo's resident memory over a long run (BENCHMARKS.md,
# "Demo: resident memory"): runs the demo for DURATION with the default
# fleet, samples VmRSS of vigil-demo and of its broker children (tansu,
# mosquitto) every INTERVAL seconds from /proc, writes the samples as CSV
# and prints a per-window summary (median and max per tenth of the run), so
# growth shows as rising windows and a plateau as flat ones.
#
#   scripts/demo-rss.sh [DURATION] [INTERVAL] [OUT_DIR] [-- extra vigil-demo flags]
#   e.g. scripts/demo-rss.sh 30m 15 /tmp/demo-rss
#
# VIGIL_DEMO_BIN: the vigil-demo binary (default: cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-30m}
interval=${2:-15}
out=${3:-$(mktemp -d /tmp/vigil-demo-rss.XXXXXX)}
shift $(( $# < 3 ? $# : 3 ))
[ "${1:-}" = "--" ] && shift
mkdir -p "$out"

bin=${VIGIL_DEMO_BIN:-}
if [ -z "$bin" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
    cargo build --release -p vigil-demo >&2
    bin=${CARGO_TARGET_DIR:-target}/release/vigil-demo
fi

"$bin" --duration "$duration" --status-every 60s --summary "$out/summary.json" \
    --data-dir "$out/data" "$@" >"$out/demo.out" 2>"$out/demo.err" &
demo=$!
trap 'kill "$demo" 2>/dev/null || true' EXIT

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
child_named() {
    for c in $(cat "/proc/$demo/task/"*/children 2>/dev/null); do
        [ "$(cat "/proc/$c/comm" 2>/dev/null)" = "$1" ] && { echo "$c"; return; }
    done
    echo 0
}

echo "seconds,demo_kib,tansu_kib,mosquitto_kib" >"$out/rss.csv"
start=$(date +%s)
while kill -0 "$demo" 2>/dev/null; do
    t=$(( $(date +%s) - start ))
    echo "$t,$(rss_kib "$demo"),$(rss_kib "$(child_named tansu)"),$(rss_kib "$(child_named mosquitto)")" >>"$out/rss.csv"
    sleep "$interval"
done
trap - EXIT
status=0
wait "$demo" || status=$?
echo "vigil-demo exited with $status; samples in $out/rss.csv, summary in $out/summary.json" >&2

python3 - "$out/rss.csv" <<'EOF'
import csv, statistics, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if int(r["demo_kib"]) > 0]
if not rows:
    sys.exit("no samples")
n = len(rows)
print(f"{n} samples over {int(rows[-1]['seconds']) / 60:.1f} min; MiB per tenth of the run (median / max)")
print("| window (min) | vigil-demo | tansu | mosquitto |")
print("|---|---|---|---|")
for i in range(10):
    part = rows[i * n // 10:(i + 1) * n // 10]
    if not part:
        continue
    cell = lambda k: "%.0f / %.0f" % (statistics.median(int(r[k]) for r in part) / 1024,
                                      max(int(r[k]) for r in part) / 1024)
    span = f"{int(part[0]['seconds']) / 60:.1f}–{int(part[-1]['seconds']) / 60:.1f}"
    print(f"| {span} | {cell('demo_kib')} | {cell('tansu_kib')} | {cell('mosquitto_kib')} |")
EOF
exit "$status"
