#!/usr/bin/env bash
# Scale-out, shown (issue 19, item 3; BENCHMARKS.md, "Scale-out"):
# Mosquitto + tansu (memory://) on loopback, INGESTS `vigil ingest`
# replicas in one shared-subscription group and SCORERS `vigil score`
# replicas in one consumer group (static membership), a model trained on a
# warm-up fleet, then one measured run of 1,000 devices at RATE msg/s for
# SECS s. With JOIN=1 the last scorer starts a third of the way into the
# run, so the group rebalances under load: the report's loss, duplicates
# and "out of order" (a record whose first verdict was read after a later
# record's of the same device) say what the rebalance cost.
#
#   scripts/bench-scale.sh [INGESTS] [SCORERS] [RATE] [SECS] [JOIN]   # defaults 1 1 10000 30 0
#
# Prints the load generator's summary, each process's CPU seconds and the
# load average; the JSON report is kept in $OUT (default: a temp file).
# LOADGEN_ARGS adds arguments to the measured `vigil-loadgen run`.
set -euo pipefail
cd "$(dirname "$0")/.."
ingests=${1:-1}
scorers=${2:-1}
rate=${3:-10000}
secs=${4:-30}
join=${5:-0}
# shellcheck source=scripts/bench-stack.sh
source scripts/bench-stack.sh
declare -A role
for i in $(seq "$ingests"); do
    addr=127.0.0.1:$(free_port)
    VIGIL_HTTP_ADDR=$addr "$bin/vigil" ingest --mqtt-client-id "bench-ingest-$i" > "$work/ingest$i.log" 2>&1 &
    pids+=($!)
    role[$!]="ingest $i"
    wait_ready "$addr"
done
"$bin/vigil-loadgen" run --publish-only --device-prefix warm --devices 1000 --rate 10000 \
    --count 200000 --day-secs 60 --anomaly-rate 0 --progress none > "$work/warm.txt"
"$bin/vigil" train --once --force --signing-key "$work/keys/signing.key" > "$work/train.log" 2>&1
scorer_addrs=()
start_scorer() {
    local addr=127.0.0.1:$(free_port)
    VIGIL_HTTP_ADDR=$addr "$bin/vigil" score --verify-key "$work/keys/verify.pub" \
        --instance-id "bench-score-$1" > "$work/score$1.log" 2>&1 &
    pids+=($!)
    scorer_addrs+=("$addr")
    role[$!]="score $1"
    wait_ready "$addr"
}
cpu_secs() { # user+system seconds of a pid
    awk '{printf "%.1f", ($14 + $15) / 100}' "/proc/$1/stat" 2>/dev/null || echo "?"
}
first_late=$((scorers + 1))
[ "$join" = 1 ] && [ "$scorers" -ge 2 ] && first_late=$scorers
for i in $(seq "$scorers"); do
    [ "$i" -ge "$first_late" ] || start_scorer "$i"
done
# The scorers drain the warm-up before measuring.
wait_drained 200000 "${scorer_addrs[@]}"
report=${OUT:-$work/run.json}
"$bin/vigil-loadgen" run --device-prefix run --devices 1000 --rate "$rate" --duration "$secs" \
    --day-secs 60 --anomaly-rate 2 --drain-timeout 60 --progress none --report "$report" \
    ${LOADGEN_ARGS:-} > "$work/run.txt" 2>&1 &
loadgen=$!
if [ "$first_late" -le "$scorers" ]; then
    sleep $((secs / 3))
    for i in $(seq "$first_late" "$scorers"); do start_scorer "$i"; echo "scorer $i joined $((secs / 3)) s into the run"; done
fi
wait "$loadgen" || true
grep -E "^(throughput|latency|hops|verdicts|loss)" "$work/run.txt" || cat "$work/run.txt"
echo "setup: $ingests ingest + $scorers score, $rate msg/s for $secs s, join=$join"
for pid in "${!role[@]}"; do echo "cpu ${role[$pid]}: $(cpu_secs "$pid") s"; done | sort
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
