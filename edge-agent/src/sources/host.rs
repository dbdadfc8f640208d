//! The host's own health as a source: CPU utilisation, load, memory, disk
//! and network I/O rates from /proc (via the `procfs` crate), and component
//! temperatures from /sys/class/thermal and /sys/class/hwmon when the board
//! has them. Rates need two readings, so the first sample carries only the
//! instantaneous metrics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use vigil_schemas::telemetry::MAX_NAME_LEN;

use super::{Sample, SourceError};

/// Most temperature sensors read (a board has a handful).
const MAX_TEMPERATURES: usize = 32;

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
}
