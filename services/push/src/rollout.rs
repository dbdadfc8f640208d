//! The rollout view: which device runs which model version, which are
//! behind the live release, which are offline.
//!
//! Built from `vigil.device-status` (the compacted log of every device's
//! latest status), not from the bridge's own MQTT share, so every replica
//! has the whole fleet. The newest record of a device wins (log order, as
//! compaction keeps it); an empty record (tombstone) removes the device.
//! A device counts as *offline* when its status says so (the agent's last
//! will, or a clean stop) or when nothing was heard from it for
//! `--offline-after-ms`, measured from the record's Kafka timestamp (when
//! the bridge received it), so a restart that re-reads the log does not
//! make silent devices look fresh.
//!
//! Bounded: at most `capacity` devices; a new device beyond it evicts the
//! one heard from least recently, and the eviction is counted.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use vigil_schemas::{DeviceState, DeviceStatus};

/// Largest `limit` a report accepts.
pub const MAX_LIST: usize = 10_000;

/// One device as the view keeps it.
#[derive(Debug, Clone)]
struct Entry {
    status: DeviceStatus,
    /// When the bridge received the status, ms since the Unix epoch.
    seen_ms: u64,
}

/// What the view knows of one model's releases.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ModelState {
    /// Newest verified version in `vigil.models`.
    pub live_version: Option<u64>,
    /// When that release was published to Kafka, ms since the Unix epoch.
    pub live_published_ms: Option<i64>,
    /// Verified version retained on the MQTT broker, as last seen.
    pub retained_version: Option<u64>,
}

/// Where a device stands against its model's live version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Runs the live version.
    Current,
    /// Runs an older version, or none yet: the rollout has not reached it.
    Stale,
    /// Runs a newer version than the live one this view knows.
    Ahead,
    /// No live version is known for its model.
    Unknown,
}

/// Why a device counts as offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Offline {
    /// Its status says offline (last will or clean stop).
    Reported,
    /// Nothing heard from it for longer than `--offline-after-ms`.
    Silent,
}

/// A device in a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceLine {
    /// The device.
    pub device_id: String,
    /// Version it runs (null before its first release).
    pub model_version: Option<u64>,
    /// When its last status was received, ms since the Unix epoch.
    pub last_seen_ms: u64,
    /// Against the live version.
    pub standing: Standing,
    /// Why it is offline, if it is.
    pub offline: Option<Offline>,
}

/// One model's rollout.
#[derive(Debug, Clone, Serialize)]
pub struct ModelRollout {
    /// Model name.
    pub model: String,
    /// Release state.
    #[serde(flatten)]
    pub release: ModelState,
    /// Devices reporting this model.
    pub devices: u64,
    /// Devices per running version (`none`: no release yet).
    pub versions: BTreeMap<String, u64>,
    /// Devices on the live version.
    pub current: u64,
    /// Devices behind the live version.
    pub stale: u64,
    /// Devices ahead of the live version.
    pub ahead: u64,
    /// Devices offline (reported or silent).
    pub offline: u64,
    /// The stale devices, by device id, at most `limit`.
    pub stale_devices: Vec<DeviceLine>,
    /// The offline devices, by device id, at most `limit`.
    pub offline_devices: Vec<DeviceLine>,
    /// Whether the lists are complete (not cut at `limit`).
    pub complete: bool,
}

/// `GET /v1/rollout`.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutReport {
    /// When the report was made, ms since the Unix epoch.
    pub generated_ms: u64,
    /// The silence after which a device counts as offline, ms.
    pub offline_after_ms: u64,
    /// Devices in the view.
    pub devices_tracked: usize,
    /// Most devices the view keeps.
    pub device_capacity: usize,
    /// Devices dropped because the view was full, since start.
    pub devices_evicted: u64,
    /// Per model, by name.
    pub models: Vec<ModelRollout>,
}

/// `GET /v1/devices/{id}/status`.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceReport {
    /// The device's last status, as it sent it.
    pub status: DeviceStatus,
    /// Its standing, offline state and last-seen time.
    #[serde(flatten)]
    pub line: DeviceLine,
    /// The live version of its model, if known.
    pub live_version: Option<u64>,
}

/// Devices per (model, running version), for the gauges.
pub type VersionCounts = BTreeMap<(String, Option<u64>), u64>;

/// Per-model counts of stale and offline devices, for the gauges.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Devices per (model, version).
    pub versions: VersionCounts,
    /// Stale devices per model.
    pub stale: BTreeMap<String, u64>,
    /// Offline devices per model.
    pub offline: BTreeMap<String, u64>,
}

/// The view's state (see the module docs).
#[derive(Debug)]
pub struct Rollout {
    capacity: usize,
    offline_after_ms: u64,
    devices: HashMap<String, Entry>,
    /// (seen_ms, device_id) of every device: the eviction order.
    by_seen: BTreeSet<(u64, String)>,
    models: BTreeMap<String, ModelState>,
    evicted: u64,
}

impl Rollout {
    /// An empty view of at most `capacity` devices that declares a device
    /// offline after `offline_after_ms` of silence; `models` are listed
    /// even before any device reports them.
    pub fn new(capacity: usize, offline_after_ms: u64, models: &[String]) -> Self {
        Rollout {
            capacity: capacity.max(1),
            offline_after_ms,
            devices: HashMap::new(),
            by_seen: BTreeSet::new(),
            models: models
                .iter()
                .map(|m| (m.clone(), ModelState::default()))
                .collect(),
            evicted: 0,
        }
    }

    /// Records `status` received at `seen_ms`. Returns whether a device
    /// was evicted to make room.
    pub fn apply(&mut self, mut status: DeviceStatus, seen_ms: u64) -> bool {
        let id = status.device_id.clone();
        let mut evicted = false;
        if let Some(old) = self.devices.get(&id) {
            status.model_version = status.model_version_after(old.status.model_version);
            self.by_seen.remove(&(old.seen_ms, id.clone()));
        } else if self.devices.len() >= self.capacity {
            if let Some(oldest) = self.by_seen.pop_first() {
                self.devices.remove(&oldest.1);
                self.evicted += 1;
                evicted = true;
            }
        }
        self.by_seen.insert((seen_ms, id.clone()));
        self.devices.insert(id, Entry { status, seen_ms });
        evicted
    }

    /// Forgets a device (its status was cleared).
    pub fn remove(&mut self, device_id: &str) {
        if let Some(old) = self.devices.remove(device_id) {
            self.by_seen.remove(&(old.seen_ms, device_id.to_owned()));
        }
    }

    /// Records the newest verified release of `model`.
    pub fn set_live(&mut self, model: &str, version: u64, published_ms: Option<i64>) {
        let state = self.models.entry(model.to_owned()).or_default();
        state.live_version = Some(version);
        state.live_published_ms = published_ms;
    }

    /// Records the verified release retained on the broker for `model`.
    pub fn set_retained(&mut self, model: &str, version: Option<u64>) {
        self.models
            .entry(model.to_owned())
            .or_default()
            .retained_version = version;
    }

    /// Release state of `model`.
    pub fn model(&self, model: &str) -> Option<&ModelState> {
        self.models.get(model)
    }

    /// Devices in the view.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether the view holds no device.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    fn line(&self, id: &str, entry: &Entry, now_ms: u64) -> DeviceLine {
        let live = self
            .models
            .get(&entry.status.model)
            .and_then(|m| m.live_version);
        let standing = match (live, entry.status.model_version) {
            (None, _) => Standing::Unknown,
            (Some(_), None) => Standing::Stale,
            (Some(l), Some(v)) if v < l => Standing::Stale,
            (Some(l), Some(v)) if v > l => Standing::Ahead,
            _ => Standing::Current,
        };
        let offline = if entry.status.state == DeviceState::Offline {
            Some(Offline::Reported)
        } else if now_ms.saturating_sub(entry.seen_ms) > self.offline_after_ms {
            Some(Offline::Silent)
        } else {
            None
        };
        DeviceLine {
            device_id: id.to_owned(),
            model_version: entry.status.model_version,
            last_seen_ms: entry.seen_ms,
            standing,
            offline,
        }
    }

    /// One device, if the view has it.
    pub fn device(&self, device_id: &str, now_ms: u64) -> Option<DeviceReport> {
        let entry = self.devices.get(device_id)?;
        Some(DeviceReport {
            status: entry.status.clone(),
            line: self.line(device_id, entry, now_ms),
            live_version: self
                .models
                .get(&entry.status.model)
                .and_then(|m| m.live_version),
        })
    }

    /// The rollout of every model (or only `only`), with at most `limit`
    /// devices in each list.
    pub fn report(&self, now_ms: u64, only: Option<&str>, limit: usize) -> RolloutReport {
        let limit = limit.min(MAX_LIST);
        let mut by_model: BTreeMap<&str, ModelRollout> = BTreeMap::new();
        let new_rollout = |name: &str| ModelRollout {
            model: name.to_owned(),
            release: self.models.get(name).cloned().unwrap_or_default(),
            devices: 0,
            versions: BTreeMap::new(),
            current: 0,
            stale: 0,
            ahead: 0,
            offline: 0,
            stale_devices: Vec::new(),
            offline_devices: Vec::new(),
            complete: true,
        };
        for name in self.models.keys() {
            if only.is_none_or(|o| o == name) {
                by_model.insert(name, new_rollout(name));
            }
        }
        for (id, entry) in &self.devices {
            let name = entry.status.model.as_str();
            if only.is_some_and(|o| o != name) {
                continue;
            }
            let line = self.line(id, entry, now_ms);
            let m = by_model.entry(name).or_insert_with(|| new_rollout(name));
            m.devices += 1;
            *m.versions
                .entry(version_label(line.model_version))
                .or_default() += 1;
            match line.standing {
                Standing::Current => m.current += 1,
                Standing::Stale => m.stale += 1,
                Standing::Ahead => m.ahead += 1,
                Standing::Unknown => {}
            }
            if line.offline.is_some() {
                m.offline += 1;
                m.offline_devices.push(line.clone());
            }
            if line.standing == Standing::Stale {
                m.stale_devices.push(line);
            }
        }
        let models = by_model
            .into_values()
            .map(|mut m| {
                for list in [&mut m.stale_devices, &mut m.offline_devices] {
                    list.sort_by(|a, b| a.device_id.cmp(&b.device_id));
                    if list.len() > limit {
                        list.truncate(limit);
                        m.complete = false;
                    }
                }
                m
            })
            .collect();
        RolloutReport {
            generated_ms: now_ms,
            offline_after_ms: self.offline_after_ms,
            devices_tracked: self.devices.len(),
            device_capacity: self.capacity,
            devices_evicted: self.evicted,
            models,
        }
    }

    /// Counts for the gauges.
    pub fn counts(&self, now_ms: u64) -> Counts {
        let mut counts = Counts::default();
        for name in self.models.keys() {
            counts.stale.insert(name.clone(), 0);
            counts.offline.insert(name.clone(), 0);
        }
        for (id, entry) in &self.devices {
            let line = self.line(id, entry, now_ms);
            let model = entry.status.model.clone();
            *counts
                .versions
                .entry((model.clone(), line.model_version))
                .or_default() += 1;
            let stale = counts.stale.entry(model.clone()).or_default();
            *stale += u64::from(line.standing == Standing::Stale);
            let offline = counts.offline.entry(model).or_default();
            *offline += u64::from(line.offline.is_some());
        }
        counts
    }
}

/// A version as a map key or label: the number, or `none`.
pub fn version_label(version: Option<u64>) -> String {
    version.map_or_else(|| "none".to_owned(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: &str, version: Option<u64>, state: DeviceState) -> DeviceStatus {
        DeviceStatus {
            schema: 1,
            device_id: id.into(),
            ts: 1,
            state,
            agent_version: "0.1.0".into(),
            model: "default".into(),
            model_version: version,
            buffered_records: 0,
            buffered_bytes: 0,
            dropped_records: 0,
            last_uplink_ts: None,
        }
    }

    fn view() -> Rollout {
        Rollout::new(10, 1_000, &["default".to_owned()])
    }

    #[test]
    fn a_partial_rollout_is_visible() {
        let mut v = view();
        v.set_live("default", 2, Some(5));
        v.apply(status("a", Some(2), DeviceState::Online), 10_000);
        v.apply(status("b", Some(1), DeviceState::Online), 10_000);
        v.apply(status("c", None, DeviceState::Online), 10_000);
        v.apply(status("d", Some(2), DeviceState::Offline), 10_000);
        v.apply(status("e", Some(2), DeviceState::Online), 8_000);
        let r = v.report(10_100, None, 100);
        let m = &r.models[0];
        assert_eq!((m.devices, m.current, m.stale, m.offline), (5, 3, 2, 2));
        assert_eq!(m.versions["2"], 3);
        assert_eq!(m.versions["1"], 1);
        assert_eq!(m.versions["none"], 1);
        let stale: Vec<_> = m
            .stale_devices
            .iter()
            .map(|d| d.device_id.as_str())
            .collect();
        assert_eq!(stale, ["b", "c"]);
        let offline: Vec<_> = m
            .offline_devices
            .iter()
            .map(|d| (d.device_id.as_str(), d.offline))
            .collect();
        assert_eq!(
            offline,
            [("d", Some(Offline::Reported)), ("e", Some(Offline::Silent))]
        );
        assert!(m.complete);
    }

    #[test]
    fn an_offline_will_without_a_version_keeps_the_last_one_reported() {
        // The will was fixed at connect, before the device's first model.
        let mut v = view();
        v.set_live("default", 2, None);
        v.apply(status("a", Some(2), DeviceState::Online), 10_000);
        v.apply(status("a", None, DeviceState::Offline), 10_050);
        let m = &v.report(10_100, None, 100).models[0];
        assert_eq!((m.devices, m.current, m.offline), (1, 1, 1));
        assert_eq!(m.versions["2"], 1);
    }

    #[test]
    fn lists_are_cut_at_the_limit_and_say_so() {
        let mut v = view();
        v.set_live("default", 3, None);
        for i in 0..5 {
            v.apply(status(&format!("d{i}"), Some(1), DeviceState::Online), 1);
        }
        let r = v.report(2, None, 2);
        assert_eq!(r.models[0].stale, 5);
        assert_eq!(r.models[0].stale_devices.len(), 2);
        assert!(!r.models[0].complete);
    }

    #[test]
    fn the_least_recently_seen_device_is_evicted() {
        let mut v = Rollout::new(2, 1_000, &[]);
        assert!(!v.apply(status("a", Some(1), DeviceState::Online), 1));
        assert!(!v.apply(status("b", Some(1), DeviceState::Online), 2));
        // a is heard from again: b is now the oldest.
        assert!(!v.apply(status("a", Some(1), DeviceState::Online), 3));
        assert!(v.apply(status("c", Some(1), DeviceState::Online), 4));
        assert!(v.device("b", 5).is_none());
        assert!(v.device("a", 5).is_some());
        assert_eq!(v.len(), 2);
        assert_eq!(v.report(5, None, 10).devices_evicted, 1);
    }

    #[test]
    fn a_cleared_device_is_forgotten() {
        let mut v = view();
        v.apply(status("a", Some(1), DeviceState::Online), 1);
        v.remove("a");
        assert!(v.is_empty());
        assert!(v.device("a", 2).is_none());
        // Its eviction slot is free again.
        v.apply(status("b", Some(1), DeviceState::Online), 3);
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn without_a_live_version_standing_is_unknown() {
        let mut v = view();
        v.apply(status("a", Some(1), DeviceState::Online), 1);
        let d = v.device("a", 2).expect("kept");
        assert_eq!(d.line.standing, Standing::Unknown);
        v.set_live("default", 1, None);
        assert_eq!(
            v.device("a", 2).expect("kept").line.standing,
            Standing::Current
        );
    }

    #[test]
    fn counts_feed_the_gauges() {
        let mut v = view();
        v.set_live("default", 2, None);
        v.apply(status("a", Some(2), DeviceState::Online), 1);
        v.apply(status("b", Some(1), DeviceState::Offline), 1);
        let c = v.counts(2);
        assert_eq!(c.versions[&("default".to_owned(), Some(2))], 1);
        assert_eq!(c.versions[&("default".to_owned(), Some(1))], 1);
        assert_eq!(c.stale["default"], 1);
        assert_eq!(c.offline["default"], 1);
    }
}
