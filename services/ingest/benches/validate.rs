//! Decode + validate cost per telemetry message (issue target: ≤ 2 µs).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use vigil_schemas::{MqttTopics, TelemetryLimits};

fn bench(c: &mut Criterion) {
    let topics = MqttTopics::default();
    let limits = TelemetryLimits::default();
    let topic = "vigil/devices/pump-0042/telemetry";
    // A ~200-byte payload with 6 metrics, like the throughput benchmark's.
    let payload = br#"{"schema":1,"device_id":"pump-0042","seq":1871,"ts":1795446981908,"metrics":{"temperature_c":71.3,"vibration_rms":0.42,"current_a":3.1,"pressure_kpa":101.7,"rpm":1480.0,"humidity_pct":41.2}}"#;
    let now = 1_795_446_982_000;
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode_validate_200B", |b| {
        b.iter(|| {
            vigil_ingest::validate::validate(&topics, topic, black_box(payload), now, &limits)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
