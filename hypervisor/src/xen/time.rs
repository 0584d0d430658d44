//! Xen system time for the guest: pvclock (vcpu_time_info) and the
//! wallclock, both derived from the TSC the guest reads.
//!
//! System time 0 is the moment the clock is created. The guest's TSC and the
//! host's monotonic clock advance at the same constant rate, so one pvclock
//! record stays valid for the domain's life.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use xen_abi::shared_info::{VcpuTimeInfo, PVCLOCK_TSC_STABLE};

/// A domain's clock.
pub struct Clock {
    start: Instant,
    wall_at_start: Duration,
    guest_tsc_at_start: u64,
    mul: u32,
    shift: i8,
}

impl Clock {
    /// Starts system time now; `guest_tsc` is the guest's TSC at this moment.
    pub fn new(tsc_khz: u32, guest_tsc: u64) -> Self {
        let start = Instant::now();
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let (mul, shift) = time_scale(u64::from(tsc_khz.max(1)) * 1000);
        Clock { start, wall_at_start: wall, guest_tsc_at_start: guest_tsc, mul, shift }
    }

    /// Nanoseconds of system time now.
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// The host instant at system time `ns`.
    pub fn instant_at(&self, ns: u64) -> Instant {
        self.start + Duration::from_nanos(ns)
    }

    /// The pvclock record for the guest (even version: complete).
    pub fn time_info(&self, version: u32) -> VcpuTimeInfo {
        VcpuTimeInfo {
            version,
            tsc_timestamp: self.guest_tsc_at_start,
            system_time: 0,
            tsc_to_system_mul: self.mul,
            tsc_shift: self.shift,
            flags: PVCLOCK_TSC_STABLE,
            ..Default::default()
        }
    }

    /// The wallclock at system time 0, as (seconds, nanoseconds).
    pub fn wallclock_base(&self) -> (u64, u32) {
        (self.wall_at_start.as_secs(), self.wall_at_start.subsec_nanos())
    }
}

/// Xen's set_time_scale: (mul, shift) with ns = ((ticks << shift) * mul) >> 32.
pub fn time_scale(ticks_per_sec: u64) -> (u32, i8) {
    const NS_PER_SEC: u64 = 1_000_000_000;
    let mut tps64 = ticks_per_sec.max(1);
    let mut shift: i8 = 0;
    while tps64 > NS_PER_SEC * 2 {
        tps64 >>= 1;
        shift -= 1;
    }
    let mut tps32 = tps64 as u32;
    while u64::from(tps32) <= NS_PER_SEC {
        tps32 <<= 1;
        shift += 1;
    }
    let mul = ((NS_PER_SEC << 32) / u64::from(tps32)) as u32;
    (mul, shift)
}

/// Converts a TSC delta to nanoseconds with a (mul, shift) pair, as a guest does.
#[cfg(test)]
fn scale_delta(delta: u64, mul: u32, shift: i8) -> u64 {
    let d = if shift < 0 { delta >> (-shift) } else { delta << shift };
    ((u128::from(d) * u128::from(mul)) >> 32) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_matches_frequency() {
        for hz in [1_000_000_000u64, 2_600_000_000, 3_000_000_000, 100_000_000, 24_000_000] {
            let (mul, shift) = time_scale(hz);
            let ns = scale_delta(hz, mul, shift); // one second of ticks
            assert!((999_999_000..=1_000_000_000).contains(&ns), "{hz} Hz gave {ns} ns");
        }
    }
}
