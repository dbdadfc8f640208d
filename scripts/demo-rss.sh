#!/usr/bin/env bash
# Measures vigil-demo's resident memory over a long run (BENCHMARKS.md,
# "Demo: resident memory"): runs the demo for DURATION with the default
# fleet; the demo samples its own memory every INTERVAL seconds
# (`--memory-log`: VmRSS, the Rust heap (jemalloc) and the C heap (glibc
# malloc: librdkafka, SQLite), and VmRSS of the tansu and mosquitto
# children) into OUT_DIR/memory.csv; prints a per-window summary (median
# and max per tenth of the run), so growth shows as rising windows, a
# plateau as flat ones, and the columns say which heap grows.
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

"$bin" --duration "$duration" --status-every "${interval}s" --memory-log "$out/memory.csv" \
    --summary "$out/summary.json" --data-dir "$out/data" "$@" >"$out/demo.out" 2>"$out/demo.err" &
demo=$!
trap 'kill "$demo" 2>/dev/null || true' EXIT
status=0
wait "$demo" || status=$?
trap - EXIT
echo "vigil-demo exited with $status; samples in $out/memory.csv, summary in $out/summary.json" >&2

python3 - "$out/memory.csv" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
if not rows:
    sys.exit("no samples")
n = len(rows)
cols = [("rss_kib", "vigil-demo RSS"), ("rust_allocated_kib", "Rust heap in use"),
        ("rust_resident_kib", "Rust heap resident"), ("c_in_use_kib", "C heap in use"),
        ("c_from_system_kib", "C heap from system"), ("kafka_kib", "tansu"), ("mqtt_kib", "mosquitto")]
print(f"{n} samples over {int(rows[-1]['seconds']) / 60:.1f} min; MiB per tenth of the run (median / max)")
print("| minutes | " + " | ".join(c[1] for c in cols) + " |")
print("|---" * (len(cols) + 1) + "|")
for i in range(10):
    part = rows[i * n // 10:(i + 1) * n // 10]
    if not part:
        continue
    cell = lambda k: "%.0f / %.0f" % (statistics.median(int(r[k]) for r in part) / 1024,
                                      max(int(r[k]) for r in part) / 1024)
    span = f"{int(part[0]['seconds']) / 60:.1f}–{int(part[-1]['seconds']) / 60:.1f}"
    print(f"| {span} | " + " | ".join(cell(c[0]) for c in cols) + " |")
EOF
exit "$status"
