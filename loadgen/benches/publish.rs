//! The load generator alone: how many messages per second
//! `vigil-loadgen run --publish-only` sustains, at QoS 1 and QoS 0, and who
//! spends the CPU, so the generator is known not to be the bottleneck of an
//! end-to-end benchmark.
//!
//! Two receivers:
//! - **mosquitto**: the real broker (single-threaded), as in every Vigil
//!   deployment on this machine;
//! - **sink**: a minimal MQTT 5 endpoint written here that answers CONNECT
//!   and PINGREQ, acknowledges every QoS 1 PUBLISH with a PUBACK and
//!   discards the payloads, on its own thread. It costs far less per
//!   message than a broker, so it shows the generator's own ceiling.
//!
//! `cargo bench -p vigil-loadgen --bench publish` (optionally
//! `-- RATE SECONDS DEVICES CONNECTIONS THREADS`; defaults 100000 20 10000
//! 4 1; one runtime thread leaves the other core to the receiver). Each
//! configuration runs once, open-loop at the target rate; figures are the
//! achieved rate with every message acknowledged, and the CPU seconds of
//! generator and receiver from /proc.

use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use vigil_loadgen::run::{run, RunArgs};
use vigil_testkit::Mosquitto;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
}

/// User + system CPU seconds from a /proc `stat` file.
fn cpu_seconds(stat_path: &str) -> anyhow::Result<f64> {
    let stat =
        std::fs::read_to_string(stat_path).with_context(|| format!("reading {stat_path}"))?;
    // utime and stime are fields 14 and 15; the command name before them
    // is parenthesised and may hold spaces.
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

/// The minimal acknowledging MQTT 5 sink on its own thread: its port and
/// the /proc stat path of that thread.
fn start_sink() -> anyhow::Result<(u16, String)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        #[allow(unsafe_code)]
        let tid = unsafe { libc::gettid() };
        let _ = tx.send(format!("/proc/self/task/{tid}/stat"));
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(sink_connection(socket));
            }
        });
    });
    Ok((port, rx.recv()?))
}

/// Answers one client: CONNACK, PUBACK per QoS 1 PUBLISH, PINGRESP.
async fn sink_connection(mut socket: tokio::net::TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut filled = 0;
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        let n = socket.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
        let mut pos = 0;
        // Whole packets: type byte, variable-length remaining length, body.
        while let Some((kind, body_start, end)) = packet_at(&buf[pos..filled]) {
            let body = &buf[pos + body_start..pos + end];
            match kind >> 4 {
                1 => out.extend_from_slice(&[0x20, 0x03, 0x00, 0x00, 0x00]),
                3 if (kind >> 1) & 3 == 1 && body.len() >= 2 => {
                    let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
                    if let Some(pkid) = body.get(2 + topic_len..4 + topic_len) {
                        out.extend_from_slice(&[0x40, 0x02, pkid[0], pkid[1]]);
                    }
                }
                12 => out.extend_from_slice(&[0xD0, 0x00]),
                14 => return Ok(()),
                _ => {}
            }
            pos += end;
        }
        buf.copy_within(pos..filled, 0);
        filled -= pos;
        if filled == buf.len() {
            return Ok(()); // a packet larger than the buffer: not ours
        }
        if !out.is_empty() {
            socket.write_all(&out).await?;
            out.clear();
        }
    }
}

/// (first byte, body offset, packet length) of the packet at the start of
/// `b`, when it is complete.
fn packet_at(b: &[u8]) -> Option<(u8, usize, usize)> {
    let kind = *b.first()?;
    let mut len = 0usize;
    for i in 0..4 {
        let byte = *b.get(1 + i)?;
        len |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            let start = 2 + i;
            return (b.len() >= start + len).then_some((kind, start, start + len));
        }
    }
    None
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
        "vigil-loadgen run --publish-only: {devices} devices, {connections} connections, \
         {threads} runtime threads, target {rate} msg/s for {seconds} s"
    );
    println!(
        "| receiver | QoS | sent | achieved msg/s | send lag p99 ms | generator CPU µs/msg | receiver CPU µs/msg | wall s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let (sink_port, sink_stat) = start_sink()?;
    for receiver in ["sink", "mosquitto"] {
        for qos in ["1", "0"] {
            let broker;
            let (url, receiver_stat) = if receiver == "mosquitto" {
                broker = Mosquitto::start()?;
                let pid = broker.pid().context("broker pid")?;
                (broker.url(), format!("/proc/{pid}/stat"))
            } else {
                (format!("mqtt://127.0.0.1:{sink_port}"), sink_stat.clone())
            };
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
            let before = (
                cpu_seconds("/proc/self/stat")?,
                cpu_seconds(&receiver_stat)?,
            );
            let started = Instant::now();
            let report = runtime.block_on(run(config, CancellationToken::new()))?;
            let wall = started.elapsed().as_secs_f64();
            let receiver_cpu = cpu_seconds(&receiver_stat)? - before.1;
            let mut generator_cpu = cpu_seconds("/proc/self/stat")? - before.0;
            if receiver == "sink" {
                generator_cpu -= receiver_cpu; // the sink thread is in this process
            }
            anyhow::ensure!(
                report.acked == report.sent,
                "only {} of {} acknowledged",
                report.acked,
                report.sent
            );
            let per_msg = |cpu: f64| cpu * 1e6 / report.sent.max(1) as f64;
            println!(
                "| {receiver} | {qos} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {wall:.1} |",
                report.sent,
                report.achieved_rate,
                report.send_lag_ms.p99,
                per_msg(generator_cpu),
                per_msg(receiver_cpu),
            );
        }
    }
    Ok(())
}
