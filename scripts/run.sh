#!/usr/bin/env bash
# The main job, until the one-command demo lands: starts Mosquitto and a
# tansu Kafka broker on loopback, runs `vigil ingest` (release build), and
# drives a small device fleet through it, printing what arrives in
# vigil.telemetry and ingest's metrics. Ctrl-C stops everything.
#
#   scripts/run.sh [DEVICES] [MESSAGES_PER_DEVICE]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
devices=${1:-50}
per_device=${2:-200}

cargo build --release -p vigil --bins --examples
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

mqtt_port=${VIGIL_RUN_MQTT_PORT:-1883}
kafka_port=${VIGIL_RUN_KAFKA_PORT:-9092}
http_addr=${VIGIL_HTTP_ADDR:-127.0.0.1:8080}
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n' "$mqtt_port" > "$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 &
pids+=($!)
(cd "$work" && exec tansu broker --listener-url "tcp://127.0.0.1:$kafka_port" \
    --advertised-listener-url "tcp://127.0.0.1:$kafka_port" --storage-engine memory://tansu/ \
    > "$work/tansu.log" 2>&1) &
pids+=($!)

export VIGIL_MQTT_URL="mqtt://127.0.0.1:$mqtt_port" VIGIL_KAFKA_BROKERS="127.0.0.1:$kafka_port" VIGIL_HTTP_ADDR="$http_addr"
target/release/vigil ingest &
pids+=($!)
until curl -fs "http://$http_addr/readyz" >/dev/null 2>&1; do sleep 0.2; done
echo "ingest ready: http://$http_addr/{healthz,readyz,metrics}"

target/release/examples/fleet --mqtt-port "$mqtt_port" --kafka "127.0.0.1:$kafka_port" \
    --devices "$devices" --per-device "$per_device"
echo
curl -s "http://$http_addr/metrics" | grep -E '^vigil_ingest_' || true
echo "stack still running; Ctrl-C to stop"
wait
