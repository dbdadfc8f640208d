//! The whole fleet, tick by tick.
//!
//! [`Fleet`] is an endless iterator of [`SimRecord`]s: tick 0 of every device
//! in index order, then tick 1, and so on, skipping devices that are silent.
//! Within one tick every timestamp lies in `[start + tick·interval,
//! start + tick·interval + jitter]`, so the stream is in event-time order up
//! to the jitter. [`Fleet::next_tick_into`] hands out a whole tick at once
//! (a paced publisher sends it, then waits one interval);
//! [`Fleet::into_devices`] splits the fleet for one task per device.

use std::sync::Arc;

use vigil_schemas::Telemetry;

use crate::device::{Device, Shared};
use crate::{ConfigError, Episode, FleetConfig, SimRecord};

/// A simulated fleet. Deterministic: the same config yields the same records.
#[derive(Debug, Clone)]
pub struct Fleet {
    shared: Arc<Shared>,
    devices: Vec<Device>,
    /// Next device to step within the current tick.
    cursor: usize,
    /// The tick being generated.
    tick: u64,
}

/// A finite run: records in fleet order and the episodes that started in it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Generated {
    pub records: Vec<SimRecord>,
    pub episodes: Vec<Episode>,
}

impl Generated {
    /// The records as devices send them, in fleet order, without their
    /// ground truth (what a trainer or a broker sees).
    pub fn into_telemetry(self) -> Vec<Telemetry> {
        self.into_parts().0
    }

    /// [`Self::into_telemetry`] and the episodes that started in the run.
    pub fn into_parts(self) -> (Vec<Telemetry>, Vec<Episode>) {
        let telemetry = self.records.into_iter().map(|r| r.telemetry).collect();
        (telemetry, self.episodes)
    }
}

impl Fleet {
    /// Validates `config` and sets up every device.
    pub fn new(config: FleetConfig) -> Result<Self, ConfigError> {
        let shared = Shared::new(config)?;
        let devices = (0..shared.config.devices)
            .map(|i| Device::with_shared(Arc::clone(&shared), i))
            .collect();
        Ok(Self {
            shared,
            devices,
            cursor: 0,
            tick: 0,
        })
    }

    pub fn config(&self) -> &FleetConfig {
        &self.shared.config
    }

    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// The devices, to drive each one on its own.
    pub fn into_devices(self) -> Vec<Device> {
        self.devices
    }

    /// The tick the iterator is in.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Appends the rest of the current tick's records to `out` and moves to
    /// the next tick; returns the tick that was completed.
    pub fn next_tick_into(&mut self, out: &mut Vec<SimRecord>) -> u64 {
        for device in &mut self.devices[self.cursor..] {
            out.extend(device.step());
        }
        let done = self.tick;
        self.cursor = 0;
        self.tick += 1;
        done
    }

    /// Generates `ticks` whole ticks and collects their ground truth.
    pub fn generate(&mut self, ticks: u64) -> Generated {
        let mut out = Generated::default();
        for _ in 0..ticks {
            self.next_tick_into(&mut out.records);
        }
        out.episodes = out
            .records
            .iter()
            .filter_map(|r| r.episode.as_deref().cloned())
            .collect();
        out
    }
}

impl Iterator for Fleet {
    type Item = SimRecord;

    /// Never `None`: a silent device is silent for a bounded number of ticks.
    fn next(&mut self) -> Option<SimRecord> {
        loop {
            if self.cursor == self.devices.len() {
                self.cursor = 0;
                self.tick += 1;
            }
            let device = &mut self.devices[self.cursor];
            self.cursor += 1;
            if let Some(record) = device.step() {
                return Some(record);
            }
        }
    }
}
