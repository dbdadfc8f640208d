//! What the edge devices see and report over MQTT, for the status line and
//! the summary: the releases `vigil push` retained on `vigil/models/{model}`
//! (each version once, with the time it was first seen), each device's
//! retained status (which model version it runs) and its verdicts
//! (`vigil/devices/+/verdicts`), counted by model version. The cloud side
//! is read from the services' own /metrics.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event};
use vigil_schemas::topics::DeviceChannel;
use vigil_schemas::{DeviceStatus, Message as _, ModelRelease, Verdict};
use vigil_service::config::MqttArgs;
use vigil_service::{now_ms, Shutdown};

/// Most devices whose status is kept (the demo's fleet is smaller; the
/// bound keeps a stray publisher from growing the map).
const MAX_DEVICES: usize = 100_000;

/// A release seen retained on the model topic, i.e. pushed to the devices.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pushed {
    pub version: u64,
    /// When the watcher first saw it, ms since the Unix epoch.
    pub pushed_ms: u64,
}

/// Most pushed versions remembered (one per retraining; the oldest go).
const MAX_PUSHED: usize = 1000;

/// Edge devices as seen over MQTT.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct EdgeView {
    /// Releases pushed to the devices, oldest first.
    #[serde(skip)]
    pub pushed: Vec<Pushed>,
    /// Model version each device reported in its status (None: no model
    /// yet).
    #[serde(skip)]
    pub versions: HashMap<String, Option<u64>>,
    /// Verdicts the edge agents published.
    pub verdicts: u64,
    /// Of those, anomalous.
    pub anomalies: u64,
    /// Verdicts by model version ("none" before the first model).
    pub verdicts_by_version: BTreeMap<String, u64>,
    /// Messages on the watched topics that did not decode.
    pub undecodable: u64,
    /// Distinct verdicts (device, seq) the agents published (a verdict
    /// sent again after a lost acknowledgement counts once).
    pub published: u64,
    /// Seqs of the verdicts seen, per device, for `published` and the
    /// audit check at the end (at most [`MAX_TRACKED`] in all).
    #[serde(skip)]
    pub seqs: HashMap<String, HashSet<u64>>,
    /// Verdicts not tracked because [`MAX_TRACKED`] was reached (then the
    /// audit check is partial).
    pub untracked: u64,
}

/// Most verdict seqs tracked for the audit check (a 10-minute default
/// demo publishes about 25,000).
pub const MAX_TRACKED: u64 = 5_000_000;

impl EdgeView {
    /// Devices per reported model version ("none" for no model yet).
    pub fn devices_by_version(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for v in self.versions.values() {
            *out.entry(version_label(*v)).or_insert(0) += 1;
        }
        out
    }

    /// Counts `verdict` once per (device, seq).
    fn track(&mut self, verdict: &Verdict) {
        if let Some(seqs) = self.seqs.get_mut(&verdict.device_id) {
            if seqs.contains(&verdict.seq) {
                return;
            }
        }
        if self.published >= MAX_TRACKED {
            self.untracked += 1;
            return;
        }
        self.published += 1;
        self.seqs
            .entry(verdict.device_id.clone())
            .or_default()
            .insert(verdict.seq);
    }

    /// Records `version` as pushed unless it is not newer than the last.
    fn record_pushed(&mut self, version: u64) {
        if self.pushed.last().is_some_and(|p| p.version >= version) {
            return;
        }
        if self.pushed.len() == MAX_PUSHED {
            self.pushed.remove(0);
        }
        self.pushed.push(Pushed {
            version,
            pushed_ms: now_ms(),
        });
    }
}

fn version_label(v: Option<u64>) -> String {
    v.map_or_else(|| "none".to_owned(), |v| format!("v{v}"))
}

/// Shared view, updated by the watcher task.
pub type SharedEdgeView = Arc<Mutex<EdgeView>>;

/// Subscribes to `model`'s release topic and the devices' status and
/// verdict topics and keeps `view` up to date until `shutdown`.
pub async fn start(
    mqtt: &MqttArgs,
    model: &str,
    view: SharedEdgeView,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let mut options = vigil_service::mqtt::options(mqtt, "demo-watch")?;
    options.set_clean_start(true);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let topics = mqtt.topics();
    let status = topics.all_devices(DeviceChannel::Status);
    let verdicts = topics.all_devices(DeviceChannel::Verdicts);
    let releases = topics.model(model);
    let stop = shutdown.clone();
    shutdown.spawn(async move {
        loop {
            let event = tokio::select! {
                _ = stop.cancelled() => break,
                e = eventloop.poll() => e,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    // (Re)subscribe on every connection: the session is clean.
                    for t in [&releases, &status, &verdicts] {
                        if let Err(e) = client.subscribe(t.clone(), QoS::AtMostOnce).await {
                            tracing::warn!(error = %e, topic = %t, "watch: subscribe failed");
                        }
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic);
                    let Ok(mut v) = view.lock() else { break };
                    if topic == releases {
                        match ModelRelease::decode(&p.payload) {
                            Ok(release) => v.record_pushed(release.version),
                            Err(_) => v.undecodable += 1,
                        }
                    } else if topics.device_id_of(&topic, DeviceChannel::Status).is_some() {
                        match DeviceStatus::decode(&p.payload) {
                            Ok(s)
                                if v.versions.len() < MAX_DEVICES
                                    || v.versions.contains_key(&s.device_id) =>
                            {
                                let before = v.versions.get(&s.device_id).copied().flatten();
                                let version = s.model_version_after(before);
                                v.versions.insert(s.device_id, version);
                            }
                            Ok(_) => {}
                            Err(_) => v.undecodable += 1,
                        }
                    } else {
                        match Verdict::decode(&p.payload) {
                            Ok(verdict) => {
                                v.verdicts += 1;
                                v.track(&verdict);
                                v.anomalies += u64::from(verdict.anomaly);
                                *v.verdicts_by_version
                                    .entry(version_label(verdict.model_version))
                                    .or_insert(0) += 1;
                            }
                            Err(_) => v.undecodable += 1,
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "watch: mqtt connection lost; reconnecting");
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
        let _ = client.disconnect().await;
    });
    Ok(())
}
