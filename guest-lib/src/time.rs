//! Time: the pvclock, the wallclock, a one-shot timer, and sleeping.
//!
//! System time (ns since the domain started) comes from vCPU 0's pvclock
//! record in the shared info page: `system_time + scale(rdtsc() -
//! tsc_timestamp)`, integer-only (a 64×32-bit multiply into 128 bits). The
//! one-shot timer is VCPUOP_set_singleshot_timer; it fires VIRQ_TIMER, bound
//! to a port whose handler only counts. Sleeping arms the timer and halts
//! (`sti; hlt`), so a sleeping guest costs no instructions.

use core::ops::Sub;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use core::time::Duration;

use xen_abi::event_channel::{Port, VIRQ_TIMER};
use xen_abi::shared_info::VcpuTimeInfo;
use xen_abi::vcpu::{
    SetSingleshotTimer, VCPUOP_SET_SINGLESHOT_TIMER, VCPUOP_STOP_SINGLESHOT_TIMER,
};

use crate::arch::cpu;
use crate::hypercall::{self, Errno};
use crate::{evtchn, sched, shared_info};

/// Converts a pvclock record and a TSC reading into system time (ns).
///
/// The delta is taken modulo 2^64: Xen's stamp for an HVM guest is in the
/// guest's TSC, which can be "negative" (wrapped) when the guest's TSC offset
/// is below the host's. A reading older than the record (right after Xen
/// updated it on another pCPU) counts as no time elapsed.
pub fn pvclock_ns(t: &VcpuTimeInfo, tsc: u64) -> u64 {
    let delta = (tsc.wrapping_sub(t.tsc_timestamp) as i64).max(0) as u64;
    let delta = if t.tsc_shift >= 0 {
        delta.checked_shl(t.tsc_shift as u32).unwrap_or(0)
    } else {
        delta
            .checked_shr(t.tsc_shift.unsigned_abs() as u32)
            .unwrap_or(0)
    };
    let scaled = ((delta as u128 * t.tsc_to_system_mul as u128) >> 32) as u64;
    t.system_time.wrapping_add(scaled)
}

/// The latest time handed out, so `now` never goes backwards.
static LAST: AtomicU64 = AtomicU64::new(0);

/// Monotonic system time in nanoseconds since the domain started.
pub fn now_ns() -> u64 {
    let rec = shared_info::vcpu_time(0);
    let t = pvclock_ns(&rec, cpu::rdtsc());
    let prev = LAST.fetch_max(t, Ordering::Relaxed);
    t.max(prev)
}

/// A point in system time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(u64);

impl Instant {
    /// The current time.
    pub fn now() -> Self {
        Instant(now_ns())
    }

    /// Nanoseconds since the domain started.
    pub fn as_ns(self) -> u64 {
        self.0
    }

    /// Time passed since `self`.
    pub fn elapsed(self) -> Duration {
        Instant::now() - self
    }
}

impl Sub for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

/// Seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WallClock {
    /// Whole seconds.
    pub secs: u64,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

/// Adds system time to the wallclock base Xen publishes.
pub fn wallclock_at(base_secs: u64, base_nanos: u32, system_ns: u64) -> WallClock {
    let total = base_nanos as u64 + system_ns % 1_000_000_000;
    WallClock {
        secs: base_secs + system_ns / 1_000_000_000 + total / 1_000_000_000,
        nanos: (total % 1_000_000_000) as u32,
    }
}

/// The current wallclock time.
pub fn wallclock() -> WallClock {
    let (s, n) = shared_info::wallclock_base();
    wallclock_at(s, n, now_ns())
}

static TIMER_PORT: AtomicU32 = AtomicU32::new(0);
static TIMER_FIRED: AtomicU64 = AtomicU64::new(0);

fn on_timer(_port: Port, _ctx: usize) {
    TIMER_FIRED.fetch_add(1, Ordering::Relaxed);
}

/// Binds VIRQ_TIMER on vCPU 0 to a port and unmasks it.
pub fn init() -> Result<Port, Errno> {
    let port = evtchn::bind_virq(VIRQ_TIMER, 0)?;
    TIMER_PORT.store(port, Ordering::Relaxed);
    evtchn::bind(port, on_timer, 0)?;
    Ok(port)
}

/// Stops the one-shot timer and closes the VIRQ_TIMER port, so that the
/// next kernel of a hand-off can bind VIRQ_TIMER again (Xen refuses a
/// second binding with EEXIST). Idempotent.
pub fn shutdown() -> Result<(), Errno> {
    let _ = stop_timer();
    match TIMER_PORT.swap(0, Ordering::Relaxed) {
        0 => Ok(()),
        port => evtchn::close(port),
    }
}

/// Closes the VIRQ_TIMER port and binds VIRQ_TIMER afresh, as a next
/// kernel does in a domain whose previous kernel closed its own ports.
/// Returns the new port (Xen gives the lowest free one).
pub fn rebind() -> Result<Port, Errno> {
    let old = TIMER_PORT.swap(0, Ordering::Relaxed);
    if old != 0 {
        evtchn::close(old)?;
    }
    init()
}

/// How many times the one-shot timer has fired since boot.
pub fn timer_fired_count() -> u64 {
    TIMER_FIRED.load(Ordering::Relaxed)
}

/// Arms vCPU 0's one-shot timer for system time `deadline_ns` (replacing
/// any earlier setting). A deadline in the past fires at once.
pub fn set_timer(deadline_ns: u64) -> Result<(), Errno> {
    let mut arg = SetSingleshotTimer {
        timeout_abs_ns: deadline_ns,
        flags: 0,
        pad: 0,
    };
    // SAFETY: the argument is a struct vcpu_set_singleshot_timer.
    unsafe { hypercall::vcpu_op(VCPUOP_SET_SINGLESHOT_TIMER, 0, &mut arg) }?;
    Ok(())
}

/// Disarms vCPU 0's one-shot timer.
pub fn stop_timer() -> Result<(), Errno> {
    let mut none = 0u64;
    // SAFETY: VCPUOP_stop_singleshot_timer ignores its argument.
    unsafe { hypercall::vcpu_op(VCPUOP_STOP_SINGLESHOT_TIMER, 0, &mut none) }?;
    Ok(())
}

/// Sleeps for at least `d`.
pub fn sleep(d: Duration) {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    sleep_until(now_ns().saturating_add(ns));
}

/// Sleeps until system time `deadline_ns`.
///
/// With interrupts enabled it arms the timer and halts; the check and the
/// halt happen with interrupts off up to the `sti; hlt` pair, so a timer
/// that fires in between still wakes the halt. With interrupts disabled
/// (called from a handler or a panic path) a halt would never end, so it
/// yields to Xen until the deadline instead.
pub fn sleep_until(deadline_ns: u64) {
    loop {
        let was_enabled = cpu::irq_save();
        if now_ns() >= deadline_ns {
            cpu::irq_restore(was_enabled);
            return;
        }
        // Without a bound VIRQ_TIMER port (after `shutdown`) the timer
        // would fire unseen and the halt never end: yield instead.
        let timer_bound = TIMER_PORT.load(Ordering::Relaxed) != 0;
        if !was_enabled || !timer_bound || set_timer(deadline_ns).is_err() {
            sched::yield_now();
            cpu::irq_restore(was_enabled);
            continue;
        }
        cpu::safe_halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ts: u64, sys: u64, mul: u32, shift: i8) -> VcpuTimeInfo {
        VcpuTimeInfo {
            tsc_timestamp: ts,
            system_time: sys,
            tsc_to_system_mul: mul,
            tsc_shift: shift,
            ..Default::default()
        }
    }

    #[test]
    fn pvclock_scales_the_tsc_delta() {
        // mul = 2^31 with shift 0: half a nanosecond per tick (a 2 GHz TSC).
        let r = rec(1000, 5_000, 1 << 31, 0);
        assert_eq!(pvclock_ns(&r, 1000), 5_000);
        assert_eq!(pvclock_ns(&r, 3000), 6_000);
        // A positive shift doubles first, a negative one halves.
        assert_eq!(pvclock_ns(&rec(0, 0, 1 << 31, 1), 2000), 2000);
        assert_eq!(pvclock_ns(&rec(0, 0, 1 << 31, -1), 2000), 500);
    }

    #[test]
    fn pvclock_realistic_2_6_ghz() {
        // Xen's scale for 2.6 GHz: mul = 2^32 * 1e9 / 2.6e9 / 2^shift.
        // With shift = 0 that is 1651910498 (0.3846 ns per tick).
        let r = rec(10_000_000, 1_000_000, 1_651_910_498, 0);
        let one_second_later = 10_000_000 + 2_600_000_000;
        let ns = pvclock_ns(&r, one_second_later);
        assert!((ns - 1_000_000).abs_diff(1_000_000_000) < 10, "{ns}");
    }

    #[test]
    fn pvclock_uses_128_bit_product() {
        // A delta large enough to overflow 64 bits when multiplied.
        let r = rec(0, 0, u32::MAX, 0);
        let d = 1u64 << 40;
        assert_eq!(
            pvclock_ns(&r, d),
            ((d as u128 * u32::MAX as u128) >> 32) as u64
        );
    }

    #[test]
    fn pvclock_tsc_behind_record_is_zero_elapsed() {
        assert_eq!(pvclock_ns(&rec(5000, 77, 1 << 31, 0), 4000), 77);
    }

    #[test]
    fn pvclock_stamp_that_wrapped_below_zero_still_counts_forward() {
        // Seen on real Xen 4.17: tsc_timestamp = 2^64 - 712_889_757 while the
        // guest's TSC has already wrapped to a small value.
        let r = rec(u64::MAX - 712_889_756, 1_000, 1 << 31, 0);
        assert_eq!(
            pvclock_ns(&r, 2_000_000),
            1_000 + (712_889_757 + 2_000_000) / 2
        );
    }

    #[test]
    fn wallclock_carries_nanoseconds() {
        assert_eq!(
            wallclock_at(100, 900_000_000, 200_000_000),
            WallClock {
                secs: 101,
                nanos: 100_000_000
            }
        );
        assert_eq!(
            wallclock_at(100, 0, 3_000_000_001),
            WallClock {
                secs: 103,
                nanos: 1
            }
        );
    }

    #[test]
    fn instants_subtract_without_underflow() {
        assert_eq!(Instant(10) - Instant(4), Duration::from_nanos(6));
        assert_eq!(Instant(4) - Instant(10), Duration::ZERO);
    }
}
