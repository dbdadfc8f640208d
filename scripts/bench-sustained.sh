#!/usr/bin/env bash
# A sustained run (issue 19, item 4; BENCHMARKS.md, "Sustained run"):
# Mosquitto + tansu (memory://) on loopback (scripts/bench-stack.sh),
# `vigil ingest`, `vigil score` and `vigil audit` (SQLite store) with their
# defaults, a model trained on a warm-up fleet, then 1,000 devices at RATE
# msg/s for MINUTES minutes. Prints the load generator's summary (loss,
# latency, p99 per minute), each process's resident memory (VmRSS) at the
# start of the measured run, every minute and at the end, and the load
# average. The full report is in $work/run.json (VIGIL_BENCH_KEEP=1 keeps
# it).
#
#   scripts/bench-sustained.sh [RATE] [MINUTES]      # defaults 20000 10
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-20000}
minutes=${2:-10}
# shellcheck source=scripts/bench-stack.sh
source scripts/bench-stack.sh
declare -A proc=([mosquitto]=$mosquitto_pid [tansu]=$tansu_pid)
ingest_http=127.0.0.1:$(free_port)
VIGIL_HTTP_ADDR=$ingest_http "$bin/vigil" ingest > "$work/ingest.log" 2>&1 &
pids+=($!)
proc[ingest]=$!
wait_ready "$ingest_http"
"$bin/vigil-loadgen" run --publish-only --device-prefix warm --devices 1000 --rate "$rate" \
    --count 200000 --day-secs 60 --anomaly-rate 0 --progress none > "$work/warm.txt"
"$bin/vigil" train --once --force --signing-key "$work/keys/signing.key" > "$work/train.log" 2>&1
score_http=127.0.0.1:$(free_port)
VIGIL_HTTP_ADDR=$score_http "$bin/vigil" score --verify-key "$work/keys/verify.pub" \
    > "$work/score.log" 2>&1 &
pids+=($!)
proc[score]=$!
audit_http=127.0.0.1:$(free_port)
VIGIL_HTTP_ADDR=$audit_http VIGIL_AUDIT_STORE="sqlite://$work/audit.db" "$bin/vigil" audit \
    --verify-key "$work/keys/verify.pub" > "$work/audit.log" 2>&1 &
pids+=($!)
proc[audit]=$!
wait_ready "$score_http"
wait_ready "$audit_http"
# The scorer drains the warm-up before measuring.
wait_drained 200000 "$score_http"

names=(mosquitto tansu ingest score audit)
rss_line() {
    local line="$1"
    for name in "${names[@]}"; do
        line+=" $name $(awk '/^VmRSS/ {print $2}' "/proc/${proc[$name]}/status" 2>/dev/null || echo -)"
    done
    echo "$line KiB | load average $(cut -d' ' -f1-3 /proc/loadavg)"
}
rss_line "RSS start:" | tee "$work/rss.txt"
(
    for m in $(seq "$minutes"); do
        sleep 60
        rss_line "RSS minute $m:" >> "$work/rss.txt"
    done
) &
sampler=$!
"$bin/vigil-loadgen" run --device-prefix run --devices 1000 --rate "$rate" \
    --duration "$((minutes * 60))" --day-secs 60 --anomaly-rate 2 --drain-timeout 120 \
    --progress none --report "$work/run.json" > "$work/run.txt" || true
kill "$sampler" 2>/dev/null || true
rss_line "RSS end:" >> "$work/rss.txt"
grep -E "^(published|throughput|verdicts|latency|hops|per minute)" "$work/run.txt" || cat "$work/run.txt"
cat "$work/rss.txt"
