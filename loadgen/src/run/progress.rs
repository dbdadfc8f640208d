//! Live progress: a bar on a terminal, periodic log lines otherwise.
//!
//! The publishing and measuring tasks only bump relaxed atomic
//! [`Counters`]; one ticker task reads them and draws, so progress costs
//! the hot path one uncontended add per message.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::ProgressMode;

/// How often the bar is redrawn.
const BAR_REFRESH: Duration = Duration::from_millis(250);

/// Run-wide counters, bumped by every task.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages handed to an MQTT client.
    pub sent: AtomicU64,
    /// Acknowledged by the broker (written, at QoS 0).
    pub acked: AtomicU64,
    /// Connection errors and refused publishes.
    pub errors: AtomicU64,
    /// Distinct records verdicted so far.
    pub verdicted: AtomicU64,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Snapshot {
    sent: u64,
    acked: u64,
    errors: u64,
    verdicted: u64,
}

impl Counters {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            sent: self.sent.load(Ordering::Relaxed),
            acked: self.acked.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            verdicted: self.verdicted.load(Ordering::Relaxed),
        }
    }
}

/// The progress display; stopped with [`Progress::finish`].
#[derive(Debug)]
pub struct Progress {
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts showing `counters` against `total` intended messages.
    pub fn start(
        mode: ProgressMode,
        interval: Duration,
        total: u64,
        measuring: bool,
        counters: Arc<Counters>,
    ) -> Self {
        let stop = CancellationToken::new();
        let bar = match mode {
            ProgressMode::None => None,
            ProgressMode::Bar => Some(true),
            ProgressMode::Log => Some(false),
            ProgressMode::Auto => Some(std::io::stderr().is_terminal()),
        };
        let task = bar.map(|bar| {
            let stop = stop.clone();
            tokio::spawn(async move {
                if bar {
                    draw_bar(total, measuring, &counters, stop).await;
                } else {
                    log_lines(interval, measuring, &counters, stop).await;
                }
            })
        });
        Self { stop, task }
    }

    /// Stops the display (the bar is left showing its last state).
    pub async fn finish(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

fn line(s: Snapshot, rate: f64, measuring: bool) -> String {
    let mut text = format!(
        "{rate:>9.0} msg/s  sent {}  acked {}  errors {}",
        s.sent, s.acked, s.errors
    );
    if measuring {
        text.push_str(&format!("  verdicted {}", s.verdicted));
    }
    text
}

async fn draw_bar(total: u64, measuring: bool, counters: &Counters, stop: CancellationToken) {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {percent:>3}% {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    let mut last = (Instant::now(), 0u64);
    let mut rate = 0.0;
    loop {
        let s = counters.snapshot();
        let now = Instant::now();
        let dt = now.duration_since(last.0).as_secs_f64();
        if dt >= 1.0 {
            rate = (s.sent - last.1) as f64 / dt;
            last = (now, s.sent);
        }
        bar.set_position(s.sent.min(total));
        bar.set_message(line(s, rate, measuring));
        tokio::select! {
            _ = tokio::time::sleep(BAR_REFRESH) => {}
            _ = stop.cancelled() => break,
        }
    }
    let s = counters.snapshot();
    bar.set_position(s.sent.min(total));
    bar.set_message(line(s, rate, measuring));
    bar.abandon();
}

async fn log_lines(
    interval: Duration,
    measuring: bool,
    counters: &Counters,
    stop: CancellationToken,
) {
    let started = Instant::now();
    let mut last = counters.snapshot();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.cancelled() => return,
        }
        let s = counters.snapshot();
        let rate = (s.sent - last.sent) as f64 / interval.as_secs_f64();
        last = s;
        tracing::info!(
            elapsed_s = started.elapsed().as_secs(),
            rate = rate.round(),
            sent = s.sent,
            acked = s.acked,
            errors = s.errors,
            verdicted = measuring.then_some(s.verdicted),
            "progress"
        );
    }
}
