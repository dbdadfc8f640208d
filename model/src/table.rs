//! A bounded table of per-device state with CLOCK (second-chance) eviction.
//!
//! Fleets have 10,000+ devices and a device can vanish at any time, so the
//! table has a fixed capacity. When a new device arrives at a full table the
//! clock hand sweeps the slots: a slot used since the last sweep gets a
//! second chance, the first one not used is evicted and counted. This
//! approximates least-recently-used at O(1) amortised cost and no per-access
//! bookkeeping beyond one flag. An evicted device comes back cold (fleet
//! priors, see [`crate::features`]).

use std::collections::HashMap;

use crate::features::DeviceState;

/// Capacity a table pre-allocates at most up front; it grows to its
/// configured capacity as devices arrive.
const PREALLOCATE_LIMIT: usize = 4096;

#[derive(Debug)]
struct Slot {
    device_id: String,
    state: DeviceState,
    referenced: bool,
}

/// Per-device state for at most `capacity` devices.
#[derive(Debug)]
pub struct DeviceTable {
    index: HashMap<String, usize>,
    slots: Vec<Slot>,
    hand: usize,
    capacity: usize,
    evictions: u64,
}

impl DeviceTable {
    /// An empty table for at most `capacity` devices (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let pre = capacity.min(PREALLOCATE_LIMIT);
        DeviceTable {
            index: HashMap::with_capacity(pre),
            slots: Vec::with_capacity(pre),
            hand: 0,
            capacity,
            evictions: 0,
        }
    }

    /// Devices held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no device is held.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Most devices held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Devices evicted so far to make room.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// A device's state, if held (does not mark it used).
    pub fn get(&self, device_id: &str) -> Option<&DeviceState> {
        self.index.get(device_id).map(|&i| &self.slots[i].state)
    }

    /// The device's state, made with `make` (and evicting another device if
    /// the table is full) when it is not held.
    pub fn get_or_insert_with(
        &mut self,
        device_id: &str,
        make: impl FnOnce() -> DeviceState,
    ) -> &mut DeviceState {
        if let Some(&i) = self.index.get(device_id) {
            let slot = &mut self.slots[i];
            slot.referenced = true;
            return &mut slot.state;
        }
        let slot = Slot {
            device_id: device_id.to_owned(),
            state: make(),
            referenced: true,
        };
        let i = if self.slots.len() < self.capacity {
            self.slots.push(slot);
            self.slots.len() - 1
        } else {
            let victim = self.sweep();
            let old = std::mem::replace(&mut self.slots[victim], slot);
            self.index.remove(&old.device_id);
            self.evictions += 1;
            victim
        };
        self.index.insert(device_id.to_owned(), i);
        &mut self.slots[i].state
    }

    /// Advances the clock hand to a slot not used since the last pass.
    fn sweep(&mut self) -> usize {
        loop {
            let i = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            let slot = &mut self.slots[i];
            if slot.referenced {
                slot.referenced = false;
            } else {
                return i;
            }
        }
    }

    /// Rewrites every device's state in place (used when a model with a
    /// different feature spec or novelty policy is installed).
    pub fn remap(&mut self, mut f: impl FnMut(&mut DeviceState)) {
        for slot in &mut self.slots {
            f(&mut slot.state);
        }
    }

    /// Estimated bytes of every device's state: the mean of
    /// [`DeviceState::bytes`] over at most `samples` devices spread evenly
    /// over the table, times the devices held (so a gauge costs
    /// `samples` visits however many devices there are; the table entry,
    /// the device id and the allocator's overhead are not counted).
    pub fn state_bytes(&self, samples: usize) -> usize {
        let n = self.slots.len();
        if n == 0 {
            return 0;
        }
        let take = samples.clamp(1, n);
        let sum: usize = (0..take)
            .map(|k| self.slots[k * n / take].state.bytes())
            .sum();
        sum * n / take
    }

    /// Drops every device.
    pub fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.hand = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_bytes_are_sampled_and_exact_for_alike_devices() {
        let mut t = DeviceTable::new(1000);
        assert_eq!(t.state_bytes(16), 0);
        for i in 0..600 {
            t.get_or_insert_with(&format!("d{i}"), || DeviceState::new(3));
        }
        let one = DeviceState::new(3).bytes();
        // Alike devices: the estimate is the sum, whatever the sample.
        assert_eq!(t.state_bytes(16), 600 * one);
        assert_eq!(t.state_bytes(10_000), 600 * one);
        // Every seventh device holds more: an even sample of 60 sees them
        // in about their share, a sample of all of them exactly.
        for i in (0..600).step_by(7) {
            t.get_or_insert_with(&format!("d{i}"), || DeviceState::new(3))
                .metrics
                .reserve_exact(64);
        }
        let exact: usize = (0..600)
            .map(|i| t.get(&format!("d{i}")).map_or(0, DeviceState::bytes))
            .sum();
        assert!(exact > 2 * 600 * one);
        let sampled = t.state_bytes(60) as f64;
        assert!(
            (sampled / exact as f64 - 1.0).abs() < 0.05,
            "{sampled} vs {exact}"
        );
        assert_eq!(t.state_bytes(600), exact);
    }

    #[test]
    fn capacity_is_a_hard_bound_and_recently_used_devices_survive() {
        let mut t = DeviceTable::new(3);
        for id in ["a", "b", "c"] {
            t.get_or_insert_with(id, || DeviceState::new(1));
        }
        // First sweep clears all flags, then evicts "a"; "d" arrives.
        t.get_or_insert_with("d", || DeviceState::new(1));
        assert_eq!(t.len(), 3);
        assert_eq!(t.evictions(), 1);
        assert!(t.get("a").is_none());
        // "b" is used again, so the next eviction skips it and takes "c".
        t.get_or_insert_with("b", || DeviceState::new(1));
        t.get_or_insert_with("e", || DeviceState::new(1));
        assert!(t.get("b").is_some());
        assert!(t.get("c").is_none());
        assert_eq!(t.evictions(), 2);
        for i in 0..1000 {
            t.get_or_insert_with(&format!("x{i}"), || DeviceState::new(1));
            assert!(t.len() <= 3);
        }
    }
}
