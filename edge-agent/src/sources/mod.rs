//! Where the agent's samples come from.
//!
//! - [`HostSensors`]: the host's own health, the realistic case on a
//!   Raspberry Pi class gateway: CPU utilisation, load, memory, disk and
//!   network I/O rates from /proc (via the `procfs` crate), and component
//!   temperatures from /sys/class/thermal and /sys/class/hwmon when the
//!   board has them. Rates need two readings, so the first sample carries
//!   only the instantaneous metrics.
//! - [`SimSource`]: one simulated pump from `vigil-fleet-sim` (the same
//!   simulator the trainer and the load generator use), with injected
//!   anomalies, for demos and tests on machines without interesting sensors.
//! - [`LineSource`]: JSON lines on stdin (a Telemetry record, or just
//!   `{"metrics":{…}}` with an optional `ts`), and [`CsvSource`]: a CSV
//!   file with a header of metric names. For replays and tests.
//!
//! A source yields a [`Sample`] (metrics and optionally the event time);
//! the agent stamps its own device id and `seq`. Bad input lines are logged
//! with their line number and skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use vigil_schemas::telemetry::{MAX_METRICS, MAX_NAME_LEN};

use crate::config::{RunArgs, SourceKind};

/// Longest accepted input line (stdin), bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Most temperature sensors read (a board has a handful).
const MAX_TEMPERATURES: usize = 32;

/// One reading.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Event time, ms since the Unix epoch; the agent's clock when None.
    pub ts: Option<u64>,
    /// Metric name → value.
    pub metrics: BTreeMap<String, f64>,
    /// Labels to pass on.
    pub tags: Option<BTreeMap<String, String>>,
}

/// Why a source cannot produce samples.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("reading {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
}

/// A configured source.
#[derive(Debug)]
pub enum Source {
    /// The host's sensors.
    Host(HostSensors),
    /// A simulated device.
    Sim(SimSource),
    /// JSON lines on stdin.
    Stdin(LineSource<tokio::io::BufReader<tokio::io::Stdin>>),
    /// A CSV file.
    Csv(CsvSource),
}

impl Source {
    /// Builds the source `args` select; fails early on what can be checked
    /// now (CSV header, simulator config).
    pub fn open(args: &RunArgs) -> Result<Source, SourceError> {
        Ok(match args.source {
            SourceKind::Host => Source::Host(HostSensors::new()),
            SourceKind::Sim => Source::Sim(SimSource::new(args)?),
            SourceKind::Stdin => Source::Stdin(LineSource::new(
                tokio::io::BufReader::new(tokio::io::stdin()),
                "stdin",
            )),
            SourceKind::Csv => {
                let path = args
                    .csv_file
                    .clone()
                    .ok_or_else(|| SourceError::Config("--source csv needs --csv-file".into()))?;
                Source::Csv(CsvSource::open(&path)?)
            }
        })
    }

    /// The next sample, or None when the input ended. Bad input is logged
    /// and skipped; only unrecoverable read errors are returned.
    pub async fn next(&mut self) -> Result<Option<Sample>, SourceError> {
        match self {
            Source::Host(h) => h.read().map(Some),
            Source::Sim(s) => Ok(Some(s.next())),
            Source::Stdin(l) => l.next().await,
            Source::Csv(c) => c.next(),
        }
    }

    /// Whether samples are paced by the sampling interval even when the
    /// interval is 0 (live sources always are).
    pub fn is_live(&self) -> bool {
        matches!(self, Source::Host(_) | Source::Sim(_))
    }
}

/// Cumulative counters from /proc, for rates between two readings.
#[derive(Debug, Clone, Copy)]
struct Counters {
    at: Instant,
    cpu_busy: Option<(u64, u64)>,
    disk: Option<(u64, u64)>,
    net: Option<(u64, u64)>,
}

/// The host's sensors.
#[derive(Debug)]
pub struct HostSensors {
    previous: Option<Counters>,
    disks: Vec<String>,
    temperatures: Vec<(String, PathBuf)>,
    warned: bool,
}

impl HostSensors {
    /// Discovers block devices and temperature sensors once.
    pub fn new() -> HostSensors {
        HostSensors {
            previous: None,
            disks: block_devices(Path::new("/sys/block")),
            temperatures: temperature_sensors(Path::new("/sys/class")),
            warned: false,
        }
    }

    /// Names of the temperature metrics found.
    pub fn temperature_metrics(&self) -> Vec<&str> {
        self.temperatures.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// One reading of every sensor that answers. Fails only when none does.
    pub fn read(&mut self) -> Result<Sample, SourceError> {
        use procfs::{Current as _, CurrentSI as _};
        let mut metrics = BTreeMap::new();
        let mut failures = Vec::new();
        let now = Instant::now();

        let cpu = match procfs::KernelStats::current() {
            Ok(k) => {
                let t = k.total;
                let idle = t.idle + t.iowait.unwrap_or(0);
                let total = t.user
                    + t.nice
                    + t.system
                    + idle
                    + t.irq.unwrap_or(0)
                    + t.softirq.unwrap_or(0)
                    + t.steal.unwrap_or(0);
                Some((total - idle, total))
            }
            Err(e) => {
                failures.push(format!("/proc/stat: {e}"));
                None
            }
        };
        match procfs::LoadAverage::current() {
            Ok(l) => {
                metrics.insert("load_1m".to_owned(), f64::from(l.one));
                metrics.insert("load_5m".to_owned(), f64::from(l.five));
            }
            Err(e) => failures.push(format!("/proc/loadavg: {e}")),
        }
        match procfs::Meminfo::current() {
            Ok(m) if m.mem_total > 0 => {
                let available = m.mem_available.unwrap_or(m.mem_free + m.cached);
                let used = m.mem_total.saturating_sub(available) as f64;
                metrics.insert("mem_used_pct".to_owned(), 100.0 * used / m.mem_total as f64);
                metrics.insert(
                    "mem_available_mib".to_owned(),
                    available as f64 / (1024.0 * 1024.0),
                );
            }
            Ok(_) => {}
            Err(e) => failures.push(format!("/proc/meminfo: {e}")),
        }
        let disk = match procfs::diskstats() {
            Ok(stats) => Some(
                stats
                    .iter()
                    .filter(|d| self.disks.contains(&d.name))
                    .fold((0u64, 0u64), |(r, w), d| {
                        (r + d.sectors_read * 512, w + d.sectors_written * 512)
                    }),
            ),
            Err(e) => {
                failures.push(format!("/proc/diskstats: {e}"));
                None
            }
        };
        let net = match procfs::net::dev_status() {
            Ok(devs) => Some(
                devs.values()
                    .filter(|d| d.name != "lo")
                    .fold((0u64, 0u64), |(rx, tx), d| {
                        (rx + d.recv_bytes, tx + d.sent_bytes)
                    }),
            ),
            Err(e) => {
                failures.push(format!("/proc/net/dev: {e}"));
                None
            }
        };
        for (name, path) in &self.temperatures {
            if let Some(c) = read_millidegrees(path) {
                metrics.insert(name.clone(), c);
            }
        }

        let current = Counters {
            at: now,
            cpu_busy: cpu,
            disk,
            net,
        };
        if let Some(prev) = self.previous {
            let secs = now.duration_since(prev.at).as_secs_f64();
            if let (Some((b0, t0)), Some((b1, t1))) = (prev.cpu_busy, cpu) {
                if t1 > t0 {
                    let busy = b1.saturating_sub(b0) as f64 / (t1 - t0) as f64;
                    metrics.insert("cpu_util_pct".to_owned(), 100.0 * busy.clamp(0.0, 1.0));
                }
            }
            if secs > 0.0 {
                let mut rate = |name: &str, a: u64, b: u64| {
                    metrics.insert(name.to_owned(), b.saturating_sub(a) as f64 / secs);
                };
                if let (Some((r0, w0)), Some((r1, w1))) = (prev.disk, disk) {
                    rate("disk_read_bps", r0, r1);
                    rate("disk_write_bps", w0, w1);
                }
                if let (Some((r0, t0)), Some((r1, t1))) = (prev.net, net) {
                    rate("net_rx_bps", r0, r1);
                    rate("net_tx_bps", t0, t1);
                }
            }
        }
        self.previous = Some(current);
        if !failures.is_empty() && !self.warned {
            self.warned = true;
            tracing::warn!(failures = %failures.join("; "), "some host sensors cannot be read; sampling the others");
        }
        if metrics.is_empty() && cpu.is_none() && disk.is_none() && net.is_none() {
            return Err(SourceError::Io {
                what: "host sensors".into(),
                source: std::io::Error::other(failures.join("; ")),
            });
        }
        Ok(Sample {
            ts: None,
            metrics,
            tags: None,
        })
    }
}

impl Default for HostSensors {
    fn default() -> Self {
        Self::new()
    }
}

/// Whole disks worth counting: what /sys/block lists, minus loop, RAM and
/// device-mapper devices (which would count the same bytes twice).
fn block_devices(sys_block: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(sys_block) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            !["loop", "ram", "zram", "dm-", "md", "sr"]
                .iter()
                .any(|p| n.starts_with(p))
        })
        .collect();
    names.sort();
    names
}

/// Temperature inputs under `sys_class` (`/sys/class`): thermal zones as
/// `temp_<type>_c`, hwmon inputs as `temp_<chip>_<label>_c`.
fn temperature_sensors(sys_class: &Path) -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    let mut add = |name: String, path: PathBuf| {
        let name = sanitize(&name);
        if found.len() < MAX_TEMPERATURES
            && name.len() <= MAX_NAME_LEN
            && !found.iter().any(|(n, _)| *n == name)
            && read_millidegrees(&path).is_some()
        {
            found.push((name, path));
        }
    };
    let mut zones: Vec<PathBuf> = read_dir_sorted(&sys_class.join("thermal"))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("thermal_zone"))
        })
        .collect();
    zones.sort();
    for zone in zones {
        let kind = read_trimmed(&zone.join("type")).unwrap_or_else(|| {
            zone.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        add(format!("temp_{kind}_c"), zone.join("temp"));
    }
    for chip in read_dir_sorted(&sys_class.join("hwmon")) {
        let chip_name = read_trimmed(&chip.join("name")).unwrap_or_else(|| "hwmon".into());
        for input in read_dir_sorted(&chip) {
            let file = input
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Some(index) = file
                .strip_prefix("temp")
                .and_then(|r| r.strip_suffix("_input"))
            else {
                continue;
            };
            let label = read_trimmed(&chip.join(format!("temp{index}_label")))
                .unwrap_or_else(|| index.to_owned());
            add(format!("temp_{chip_name}_{label}_c"), input);
        }
    }
    found
}

fn read_dir_sorted(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn read_millidegrees(path: &Path) -> Option<f64> {
    let v: f64 = read_trimmed(path)?.parse().ok()?;
    let c = v / 1000.0;
    // Sensors report absurd values when absent or broken.
    (c.is_finite() && (-100.0..=250.0).contains(&c)).then_some(c)
}

/// Lower-case letters, digits and `_` only.
fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out
}

/// One simulated pump.
#[derive(Debug)]
pub struct SimSource {
    fleet: vigil_fleet_sim::Fleet,
}

impl SimSource {
    /// A single-device fleet with the configured seed, interval and anomaly
    /// rate; its event times are replaced by the agent's clock.
    pub fn new(args: &RunArgs) -> Result<SimSource, SourceError> {
        use vigil_fleet_sim::{AnomalyConfig, FleetConfig};
        let config = FleetConfig {
            devices: 1,
            seed: args.sim_seed,
            interval_ms: args.interval_ms.max(1),
            jitter_ms: 0,
            day_ms: args.sim_day_ms,
            anomalies: AnomalyConfig {
                rate_per_device_day: args.sim_anomaly_rate,
                ..AnomalyConfig::default()
            },
            ..FleetConfig::default()
        };
        let fleet = vigil_fleet_sim::Fleet::new(config)
            .map_err(|e| SourceError::Config(format!("simulated device: {e}")))?;
        Ok(SimSource { fleet })
    }

    fn next(&mut self) -> Sample {
        // The fleet iterator never ends; a silent tick is skipped by it.
        let metrics = self
            .fleet
            .next()
            .map(|r| r.telemetry.metrics)
            .unwrap_or_default();
        Sample {
            ts: None,
            metrics,
            tags: None,
        }
    }
}

/// A JSON line as the stdin source accepts it: Telemetry's fields, of
/// which only these are used.
#[derive(Debug, serde::Deserialize)]
struct LineSample {
    metrics: BTreeMap<String, f64>,
    #[serde(default)]
    ts: Option<u64>,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
}

/// JSON lines from an async reader.
#[derive(Debug)]
pub struct LineSource<R> {
    reader: R,
    what: &'static str,
    line: u64,
}

impl<R: AsyncBufRead + Unpin> LineSource<R> {
    /// Reads samples from `reader` (`what` names it in logs).
    pub fn new(reader: R, what: &'static str) -> Self {
        LineSource {
            reader,
            what,
            line: 0,
        }
    }

    /// The next valid sample, or None at the end of input.
    pub async fn next(&mut self) -> Result<Option<Sample>, SourceError> {
        loop {
            let Some(line) = self.read_line().await? else {
                return Ok(None);
            };
            self.line += 1;
            let line = match line {
                Ok(l) => l,
                Err(len) => {
                    tracing::warn!(
                        source = self.what,
                        line = self.line,
                        bytes = len,
                        "input line longer than {MAX_LINE_BYTES} bytes; skipped"
                    );
                    continue;
                }
            };
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            match serde_json::from_str::<LineSample>(text) {
                Ok(s) => {
                    return Ok(Some(Sample {
                        ts: s.ts,
                        metrics: s.metrics,
                        tags: s.tags,
                    }))
                }
                Err(e) => tracing::warn!(source = self.what, line = self.line, error = %e,
                    "input line is not a sample (expected {{\"metrics\":{{…}}}} or Telemetry); skipped"),
            }
        }
    }

    /// One line without its newline; Err(length) for an over-long line
    /// (consumed and dropped); None at the end.
    async fn read_line(&mut self) -> Result<Option<Result<Vec<u8>, usize>>, SourceError> {
        let mut line = Vec::new();
        let mut length = 0usize;
        loop {
            let buf = self
                .reader
                .fill_buf()
                .await
                .map_err(|source| SourceError::Io {
                    what: self.what.to_owned(),
                    source,
                })?;
            if buf.is_empty() {
                return Ok(if length == 0 {
                    None
                } else if length > MAX_LINE_BYTES {
                    Some(Err(length))
                } else {
                    Some(Ok(line))
                });
            }
            let (chunk, used, done) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (&buf[..i], i + 1, true),
                None => (buf, buf.len(), false),
            };
            length += chunk.len();
            if length <= MAX_LINE_BYTES {
                line.extend_from_slice(chunk);
            }
            self.reader.consume(used);
            if done {
                return Ok(Some(if length > MAX_LINE_BYTES {
                    Err(length)
                } else {
                    Ok(line)
                }));
            }
        }
    }
}

/// A CSV file: header of metric names, plus optional `ts` (ms since the
/// epoch); `device_id` and `seq` columns (the trainer's wide format) are
/// ignored; empty cells are missing metrics.
#[derive(Debug)]
pub struct CsvSource {
    reader: csv::Reader<std::fs::File>,
    path: PathBuf,
    ts_column: Option<usize>,
    metrics: Vec<(usize, String)>,
    record: csv::StringRecord,
}

impl CsvSource {
    /// Opens the file and checks its header.
    pub fn open(path: &Path) -> Result<CsvSource, SourceError> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(true)
            .from_path(path)
            .map_err(|e| SourceError::Config(format!("csv file {}: {e}", path.display())))?;
        let header = reader
            .headers()
            .map_err(|e| SourceError::Config(format!("csv file {}: header: {e}", path.display())))?
            .clone();
        let mut ts_column = None;
        let mut metrics = Vec::new();
        for (i, name) in header.iter().enumerate() {
            match name {
                "ts" => ts_column = Some(i),
                "device_id" | "seq" => {}
                "" => {
                    return Err(SourceError::Config(format!(
                        "csv file {}: column {} has no name",
                        path.display(),
                        i + 1
                    )))
                }
                n if n.len() > MAX_NAME_LEN => {
                    return Err(SourceError::Config(format!(
                        "csv file {}: column name {n:?} is longer than {MAX_NAME_LEN} bytes",
                        path.display()
                    )))
                }
                n => metrics.push((i, n.to_owned())),
            }
        }
        if metrics.is_empty() || metrics.len() > MAX_METRICS {
            return Err(SourceError::Config(format!(
                "csv file {}: {} metric columns; 1 to {MAX_METRICS} needed",
                path.display(),
                metrics.len()
            )));
        }
        Ok(CsvSource {
            reader,
            path: path.to_owned(),
            ts_column,
            metrics,
            record: csv::StringRecord::new(),
        })
    }

    fn next(&mut self) -> Result<Option<Sample>, SourceError> {
        loop {
            match self.reader.read_record(&mut self.record) {
                Ok(false) => return Ok(None),
                Ok(true) => {}
                Err(e) if e.is_io_error() => {
                    return Err(SourceError::Io {
                        what: self.path.display().to_string(),
                        source: std::io::Error::other(e.to_string()),
                    })
                }
                Err(e) => {
                    tracing::warn!(file = %self.path.display(), error = %e, "bad csv row; skipped");
                    continue;
                }
            }
            let line = self.record.position().map_or(0, |p| p.line());
            match self.parse_row(line) {
                Ok(s) => return Ok(Some(s)),
                Err(why) => {
                    tracing::warn!(file = %self.path.display(), line, why, "bad csv row; skipped")
                }
            }
        }
    }

    fn parse_row(&self, _line: u64) -> Result<Sample, String> {
        let ts = match self.ts_column.and_then(|i| self.record.get(i)) {
            Some("") | None => None,
            Some(v) => Some(v.parse::<u64>().map_err(|e| format!("ts {v:?}: {e}"))?),
        };
        let mut metrics = BTreeMap::new();
        for (i, name) in &self.metrics {
            let cell = self.record.get(*i).unwrap_or_default();
            if cell.is_empty() {
                continue;
            }
            let v: f64 = cell.parse().map_err(|e| format!("{name} {cell:?}: {e}"))?;
            if !v.is_finite() {
                return Err(format!("{name} is not a finite number"));
            }
            metrics.insert(name.clone(), v);
        }
        if metrics.is_empty() {
            return Err("no metric values".into());
        }
        Ok(Sample {
            ts,
            metrics,
            tags: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_sensors_read_this_machine() {
        let mut host = HostSensors::new();
        let first = host.read().expect("first reading");
        assert!(first.metrics.contains_key("load_1m"), "{first:?}");
        assert!(first.metrics.contains_key("mem_used_pct"));
        assert!(
            !first.metrics.contains_key("cpu_util_pct"),
            "rates need two readings"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        let second = host.read().expect("second reading");
        let cpu = second.metrics["cpu_util_pct"];
        assert!((0.0..=100.0).contains(&cpu), "{cpu}");
        assert!(second.metrics["net_rx_bps"] >= 0.0);
        assert!(second.metrics.contains_key("disk_read_bps"));
    }

    #[test]
    fn temperatures_are_found_in_a_sysfs_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let zone = root.join("thermal/thermal_zone0");
        std::fs::create_dir_all(&zone).expect("mkdir");
        std::fs::write(zone.join("type"), "cpu-thermal\n").expect("write");
        std::fs::write(zone.join("temp"), "48312\n").expect("write");
        let chip = root.join("hwmon/hwmon1");
        std::fs::create_dir_all(&chip).expect("mkdir");
        std::fs::write(chip.join("name"), "nvme\n").expect("write");
        std::fs::write(chip.join("temp1_input"), "35850\n").expect("write");
        std::fs::write(chip.join("temp1_label"), "Composite\n").expect("write");
        std::fs::write(chip.join("temp2_input"), "-273000\n").expect("write absent sensor");
        let found = temperature_sensors(root);
        let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["temp_cpu_thermal_c", "temp_nvme_composite_c"]);
        assert_eq!(read_millidegrees(&found[0].1), Some(48.312));
    }

    #[tokio::test]
    async fn lines_accept_telemetry_or_bare_metrics_and_skip_the_rest() {
        let input: &[u8] =
            b"{\"schema\":1,\"device_id\":\"x\",\"seq\":9,\"ts\":5,\"metrics\":{\"a\":1.5}}\n\
            garbage\n\
            \n\
            {\"metrics\":{\"b\":2}}\n\
            {\"metrics\":{\"c\":NaN}}\n\
            {\"metrics\":{\"d\":4}}";
        let mut src = LineSource::new(input, "test");
        let a = src.next().await.expect("read").expect("sample");
        assert_eq!((a.ts, a.metrics["a"]), (Some(5), 1.5));
        let b = src.next().await.expect("read").expect("sample");
        assert_eq!((b.ts, b.metrics["b"]), (None, 2.0));
        let d = src.next().await.expect("read").expect("sample");
        assert_eq!(d.metrics["d"], 4.0);
        assert!(src.next().await.expect("read").is_none());
    }

    #[tokio::test]
    async fn an_over_long_line_is_skipped() {
        let mut input = vec![b'{'; MAX_LINE_BYTES + 10];
        input.extend_from_slice(b"\n{\"metrics\":{\"b\":2}}\n");
        let mut src = LineSource::new(&input[..], "test");
        let b = src.next().await.expect("read").expect("sample");
        assert_eq!(b.metrics["b"], 2.0);
    }

    #[test]
    fn csv_rows_become_samples() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.csv");
        std::fs::write(
            &path,
            "device_id,seq,ts,temp,amps\nd,1,1000,20.5,3\nd,2,2000,x,3\nd,3,,21,\n",
        )
        .expect("write");
        let mut src = CsvSource::open(&path).expect("open");
        let a = src.next().expect("read").expect("row");
        assert_eq!((a.ts, a.metrics.len()), (Some(1000), 2));
        let c = src.next().expect("read").expect("row after the bad one");
        assert_eq!((c.ts, c.metrics.len()), (None, 1));
        assert!(src.next().expect("read").is_none());

        std::fs::write(&path, "ts,\n1,2\n").expect("write");
        let err = CsvSource::open(&path)
            .expect_err("unnamed column")
            .to_string();
        assert!(err.contains("column 2 has no name"), "{err}");
    }
}
