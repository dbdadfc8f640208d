//! Throughput of the simulator: records per second on one core, for the
//! default six-metric fleet with anomalies, through the fleet iterator (the
//! path `vigil-loadgen run` uses).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use vigil_fleet_sim::{Fleet, FleetConfig};

const RECORDS: u64 = 100_000;

fn fleet(c: &mut Criterion) {
    let mut group = c.benchmark_group("fleet");
    group.throughput(Throughput::Elements(RECORDS));
    for devices in [100, 10_000] {
        let config = FleetConfig {
            devices,
            jitter_ms: 200,
            ..FleetConfig::default()
        };
        let Ok(fleet) = Fleet::new(config) else {
            panic!("default config is valid");
        };
        group.bench_function(format!("{devices}_devices"), |b| {
            b.iter_batched_ref(
                || fleet.clone(),
                |f| {
                    f.by_ref()
                        .take(RECORDS as usize)
                        .map(|r| r.telemetry.metrics.len())
                        .sum::<usize>()
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, fleet);
criterion_main!(benches);
