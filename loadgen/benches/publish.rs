//! The load generator alone against a real Mosquitto: how many messages
//! per second `vigil-loadgen run --publish-only` sustains at QoS 1 and
//! QoS 0, and who spends the CPU (the generator or the broker), so the
//! generator is known not to be the bottleneck of an end-to-end benchmark.
//!
//! `cargo bench -p vigil-loadgen --bench publish` (optionally
//! `-- RATE SECONDS DEVICES CONNECTIONS THREADS`; defaults 100000 20 10000
//! 4 1).
//! Each configuration runs once, open-loop at the target rate; the figure
//! is the achieved rate with every message acknowledged, plus the CPU
//! seconds of both processes from /proc.

use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use vigil_loadgen::run::{run, RunArgs};
use vigil_testkit::Mosquitto;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
}

/// User + system CPU seconds of process `pid` (`self` for this one).
fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    // SAFETY: sysconf only reads a constant.
    #[allow(unsafe_code)]
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / hz)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_owned());
    let (rate, seconds, devices, connections, threads) = (
        arg(0, "100000"),
        arg(1, "20"),
        arg(2, "10000"),
        arg(3, "4"),
        arg(4, "1"),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.parse::<usize>().context("THREADS")?.max(1))
        .enable_all()
        .build()?;
    println!(
        "load generator alone → Mosquitto: {devices} devices, {connections} connections, \
         {threads} runtime threads, target {rate} msg/s for {seconds} s"
    );
    println!("| QoS | sent | achieved msg/s | send lag p99 ms | generator CPU s | mosquitto CPU s | wall s |");
    println!("|---|---|---|---|---|---|---|");
    for qos in ["1", "0"] {
        let broker = Mosquitto::start()?;
        let pid = broker.pid().context("broker pid")?.to_string();
        let url = broker.url();
        let argv = [
            "run",
            "--publish-only",
            "--progress",
            "none",
            "--mqtt-url",
            &url,
            "--qos",
            qos,
            "--rate",
            &rate,
            "--duration",
            &seconds,
            "--devices",
            &devices,
            "--connections",
            &connections,
            "--anomaly-rate",
            "0",
        ];
        let config = Cli::parse_from(argv).run.validate()?;
        let (cpu_self, cpu_broker) = (cpu_seconds("self")?, cpu_seconds(&pid)?);
        let started = Instant::now();
        let report = runtime.block_on(run(config, CancellationToken::new()))?;
        let wall = started.elapsed().as_secs_f64();
        let (cpu_self, cpu_broker) = (
            cpu_seconds("self")? - cpu_self,
            cpu_seconds(&pid)? - cpu_broker,
        );
        anyhow::ensure!(
            report.acked == report.sent,
            "only {} of {} acknowledged",
            report.acked,
            report.sent
        );
        println!(
            "| {qos} | {} | {:.0} | {:.1} | {cpu_self:.1} | {cpu_broker:.1} | {wall:.1} |",
            report.sent, report.achieved_rate, report.send_lag_ms.p99
        );
    }
    Ok(())
}
