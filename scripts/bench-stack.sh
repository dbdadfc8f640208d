# Sourced by the benchmark scripts (bench-latency.sh, bench-scale.sh,
# bench-sustained.sh): builds
# the release binaries, starts Mosquitto (anonymous, loopback, unbounded
# queues) and tansu (memory://) on free ports, exports VIGIL_MQTT_URL and
# VIGIL_KAFKA_BROKERS, makes a key pair in $work/keys and stops everything
# on exit. Defines: bin, work, pids (append the pids you start), free_port,
# wait_ready ADDR. VIGIL_BENCH_KEEP=1 keeps $work (the logs) and prints it.
# VIGIL_BENCH_BIN=DIR runs the `vigil` and `vigil-loadgen` already in DIR
# instead of building (a copy no other build can replace mid-run).
# VIGIL_BENCH_KAFKA=HOST:PORT uses that Kafka (Apache Kafka, Redpanda, a
# tansu of your own) instead of starting tansu; topics are created by the
# roles as usual, and each run's device prefix keeps runs apart.
# Defines mosquitto_pid and tansu_pid (empty with VIGIL_BENCH_KAFKA).
export PATH="$HOME/.cargo/bin:$PATH"
target=${CARGO_TARGET_DIR:-target}
if [ -n "${VIGIL_BENCH_BIN:-}" ]; then
    bin=$VIGIL_BENCH_BIN
else
    cargo build --release -q -p vigil -p vigil-loadgen
    bin=$target/release
fi
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${VIGIL_BENCH_KEEP:-0}" = 1 ]; then echo "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { until curl -fs "http://$1/readyz" >/dev/null 2>&1; do sleep 0.2; done; }
# wait_drained N ADDR...: until the scorers at ADDR... have produced N
# verdicts between them (the warm-up scored), at most 5 minutes.
wait_drained() {
    local want=$1 deadline=$((SECONDS + 300)) total
    shift
    while :; do
        total=0
        for addr in "$@"; do
            total=$(( total + $(curl -fs "http://$addr/metrics" 2>/dev/null \
                | awk '/^vigil_score_verdicts_produced_total / {printf "%d", $2}' || true) + 0 ))
        done
        [ "$total" -ge "$want" ] && return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "warning: the scorers produced $total of $want warm-up verdicts in 5 minutes" >&2
            return 0
        fi
        sleep 0.5
    done
}
mqtt_port=$(free_port)
kafka_port=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n' "$mqtt_port" > "$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 &
mosquitto_pid=$!
pids+=($!)
tansu_pid=
if [ -n "${VIGIL_BENCH_KAFKA:-}" ]; then
    export VIGIL_KAFKA_BROKERS=$VIGIL_BENCH_KAFKA
else
    (cd "$work" && exec tansu broker --listener-url "tcp://127.0.0.1:$kafka_port" \
        --advertised-listener-url "tcp://127.0.0.1:$kafka_port" --storage-engine memory://tansu/ \
        > "$work/tansu.log" 2>&1) &
    tansu_pid=$!
    pids+=($!)
    export VIGIL_KAFKA_BROKERS="127.0.0.1:$kafka_port"
    for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$kafka_port") 2>/dev/null && break; sleep 0.1; done
fi
export VIGIL_MQTT_URL="mqtt://127.0.0.1:$mqtt_port"
"$bin/vigil" models keygen --out "$work/keys" > /dev/null
