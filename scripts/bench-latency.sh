#!/usr/bin/env bash
# Publish → verdict latency, hop by hop (issue 19; BENCHMARKS.md, "Latency
# defaults"): Mosquitto + tansu (memory://) on loopback, `vigil ingest` and
# `vigil score` with their defaults, a model trained on a warm-up fleet,
# then RUNS measured runs of 1,000 devices at RATE msg/s for SECS s.
# Prints each run's summary (latency, hops, loss) and the load average.
#
#   scripts/bench-latency.sh [RATE] [SECS] [RUNS]      # defaults 10000 30 3
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-10000}
secs=${2:-30}
runs=${3:-3}
# shellcheck source=scripts/bench-stack.sh
source scripts/bench-stack.sh
ingest_http=127.0.0.1:$(free_port)
VIGIL_HTTP_ADDR=$ingest_http "$bin/vigil" ingest > "$work/ingest.log" 2>&1 &
pids+=($!)
until curl -fs "http://$ingest_http/readyz" >/dev/null 2>&1; do sleep 0.2; done
"$bin/vigil-loadgen" run --publish-only --device-prefix warm --devices 1000 --rate "$rate" \
    --count 200000 --day-secs 60 --anomaly-rate 0 --progress none > "$work/warm.txt"
"$bin/vigil" train --once --force --signing-key "$work/keys/signing.key" > "$work/train.log" 2>&1
score_http=127.0.0.1:$(free_port)
VIGIL_HTTP_ADDR=$score_http "$bin/vigil" score --verify-key "$work/keys/verify.pub" > "$work/score.log" 2>&1 &
pids+=($!)
# The scorer drains the warm-up before the measured runs.
wait_drained 200000 "$score_http"
for i in $(seq "$runs"); do
    "$bin/vigil-loadgen" run --device-prefix "r$i" --devices 1000 --rate "$rate" --duration "$secs" \
        --day-secs 60 --anomaly-rate 2 --drain-timeout 60 --progress none --report "$work/run$i.json" \
        | grep -E "^(latency|hops|loss|sent|verdicts)" || true
    echo "run $i load average: $(cut -d' ' -f1-3 /proc/loadavg)"
done
