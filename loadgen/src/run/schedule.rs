//! The open-loop send schedule.
//!
//! Every message has an *intended* send time fixed before the run starts,
//! whatever the system under test does. A fleet of `N` devices at an
//! aggregate rate `R` has one send slot every `1/R` seconds; slot
//! `k = tick·N + device` belongs to `device` in its `tick`-th round, so each
//! device sends every `N/R` seconds and the devices are evenly interleaved.
//!
//! The telemetry's `ts` is the intended send time of its slot (ms since the
//! epoch), and end-to-end latency is measured from that `ts`. A publisher
//! that falls behind (a full MQTT window, a slow broker, a busy CPU) sends
//! late but keeps the intended `ts`, so the lateness shows up in the
//! latency instead of silently lowering the load: no coordinated omission.
//! How late the generator itself was is reported separately as the send lag.

use std::time::Duration;

/// The slots of a fleet run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Messages per second over the whole fleet.
    rate: f64,
    /// Devices in the fleet.
    devices: u64,
    /// Slots in the run: slot `k` exists when `k < slots`.
    slots: u64,
}

impl Schedule {
    /// `slots` slots for `devices` devices at `rate` msg/s (`rate > 0`,
    /// `devices > 0`, checked by the config).
    pub fn new(rate: f64, devices: u64, slots: u64) -> Self {
        Self {
            rate,
            devices: devices.max(1),
            slots,
        }
    }

    /// The slot of `device` in round `tick`, when the run has it.
    pub fn slot(&self, tick: u64, device: u64) -> Option<u64> {
        let slot = tick.checked_mul(self.devices)?.checked_add(device)?;
        (slot < self.slots).then_some(slot)
    }

    /// Intended send time of `slot`, from the start of the run.
    pub fn offset(&self, slot: u64) -> Duration {
        Duration::from_secs_f64(slot as f64 / self.rate)
    }

    /// Intended time of the first slot of round `tick`, from the start.
    pub fn tick_offset(&self, tick: u64) -> Duration {
        self.offset(tick.saturating_mul(self.devices))
    }

    /// Slots in the run.
    pub fn slots(&self) -> u64 {
        self.slots
    }

    /// Rounds that hold at least one slot.
    pub fn ticks(&self) -> u64 {
        self.slots.div_ceil(self.devices)
    }

    /// Time between two messages of one device, ms.
    pub fn device_interval_ms(&self) -> f64 {
        self.devices as f64 * 1000.0 / self.rate
    }

    /// Intended length of the run: the last slot's offset plus one slot.
    pub fn duration(&self) -> Duration {
        self.offset(self.slots)
    }

    /// The offered rate, msg/s.
    pub fn rate(&self) -> f64 {
        self.rate
    }
}

/// Milliseconds since the epoch of `offset` after `start_ms` (the `ts` a
/// record in that slot carries).
pub fn ts_at(start_ms: u64, offset: Duration) -> u64 {
    start_ms.saturating_add(u64::try_from(offset.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_interleave_devices_at_the_rate() {
        let s = Schedule::new(1000.0, 10, 35);
        assert_eq!(s.slot(0, 0), Some(0));
        assert_eq!(s.slot(0, 9), Some(9));
        assert_eq!(s.slot(1, 0), Some(10));
        assert_eq!(s.slot(3, 4), Some(34));
        assert_eq!(s.slot(3, 5), None, "past --count");
        assert_eq!(s.ticks(), 4);
        // One slot per ms; each device every 10 ms.
        assert_eq!(s.offset(34), Duration::from_millis(34));
        assert_eq!(s.tick_offset(2), Duration::from_millis(20));
        assert_eq!(s.device_interval_ms(), 10.0);
        assert_eq!(s.duration(), Duration::from_millis(35));
    }

    #[test]
    fn offsets_are_exact_for_high_rates_and_long_runs() {
        // 100,000 msg/s for an hour: the last slot is at 3600 s minus 10 µs.
        let s = Schedule::new(100_000.0, 10_000, 360_000_000);
        let last = s.offset(s.slots() - 1);
        assert_eq!(last.as_micros(), 3_599_999_990);
        assert_eq!(s.ticks(), 36_000);
        assert_eq!(s.duration(), Duration::from_secs(3600));
    }

    #[test]
    fn fractional_rates_keep_the_average() {
        let s = Schedule::new(3.0, 1, 4);
        assert_eq!(s.offset(3), Duration::from_secs(1));
        assert!(s.offset(1) < s.offset(2));
        assert_eq!(ts_at(1_000, s.offset(1)), 1_333);
    }

    #[test]
    fn overflowing_slots_do_not_exist() {
        let s = Schedule::new(1.0, u64::MAX, u64::MAX);
        assert_eq!(s.slot(2, 0), None);
    }
}
