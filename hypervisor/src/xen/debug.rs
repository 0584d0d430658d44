//! Xen's own console: what a guest writes to the debug port (0xE9) or
//! with CONSOLEIO_write goes to the hypervisor's log, stderr here (where
//! `xl dmesg` would show it), not to the guest's PV console.

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

/// A domain's debug output, rate-limited by a [`DebugBudget`].
pub struct DebugLog {
    budget: Mutex<DebugBudget>,
}

impl Default for DebugLog {
    fn default() -> Self {
        DebugLog { budget: Mutex::new(DebugBudget::new(Instant::now())) }
    }
}

impl DebugLog {
    /// Writes guest output to stderr within [`DebugBudget`]'s rate (a guest
    /// writing 16 KiB per console_io call without end filled a redirected
    /// stderr at the speed of the host's disk; Xen rate-limits guest printk too).
    pub fn write(&self, bytes: &[u8]) {
        let (n, note) = self.budget.lock().unwrap_or_else(|e| e.into_inner()).take(Instant::now(), bytes.len());
        let mut err = std::io::stderr().lock();
        if let Some(note) = note {
            let _ = err.write_all(note.as_bytes());
        }
        let _ = err.write_all(&bytes[..n]);
    }
}

/// The most debug output (port 0xE9, console_io) written at once ...
pub const DEBUG_BURST: u64 = 64 * 1024;
/// ... and the rate at which that allowance comes back.
pub const DEBUG_BYTES_PER_SEC: u64 = 8 * 1024;

/// A token bucket for a guest's debug output: [`DEBUG_BURST`] bytes, refilled
/// at [`DEBUG_BYTES_PER_SEC`]; what does not fit is dropped and counted.
#[derive(Debug)]
pub struct DebugBudget {
    tokens: u64,
    last: Instant,
    dropped: u64,
}

impl DebugBudget {
    /// A full bucket at `now`.
    pub fn new(now: Instant) -> Self {
        DebugBudget { tokens: DEBUG_BURST, last: now, dropped: 0 }
    }

    /// How many of `len` bytes may be written at `now`, and a line to write
    /// first when dropping starts or ends.
    pub fn take(&mut self, now: Instant, len: usize) -> (usize, Option<String>) {
        let ms = now.saturating_duration_since(self.last).as_millis() as u64;
        let refill = ms * DEBUG_BYTES_PER_SEC / 1000;
        if refill > 0 {
            self.tokens = (self.tokens + refill).min(DEBUG_BURST);
            self.last = now;
        }
        let n = (len as u64).min(self.tokens);
        self.tokens -= n;
        let mut note = None;
        if n < len as u64 {
            if self.dropped == 0 {
                note = Some(format!(
                    "\nxenolith: the guest's debug output (port 0xe9, console_io) is over {} KiB at {} KiB/s; dropping the rest\n",
                    DEBUG_BURST / 1024,
                    DEBUG_BYTES_PER_SEC / 1024
                ));
            }
            self.dropped += len as u64 - n;
        } else if self.dropped > 0 && n > 0 {
            note = Some(format!("\nxenolith: {} bytes of the guest's debug output were dropped\n", self.dropped));
            self.dropped = 0;
        }
        (n as usize, note)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_is_rate_limited() {
        let t0 = Instant::now();
        let mut b = DebugBudget::new(t0);
        assert_eq!(b.take(t0, 60 * 1024), (60 * 1024, None));
        let (n, note) = b.take(t0, 16 * 1024);
        assert_eq!(n, 4 * 1024, "what is left of the burst");
        assert!(note.unwrap().contains("dropping"));
        assert_eq!(b.take(t0, 100).0, 0, "nothing left, no second notice");
        let (n, note) = b.take(t0 + std::time::Duration::from_millis(500), 1024);
        assert_eq!(n, 1024, "half a second brings back 4 KiB");
        assert!(note.unwrap().contains("12388 bytes"), "the drop is reported once output resumes");
        let (n, _) = b.take(t0 + std::time::Duration::from_secs(3600), 1 << 20);
        assert_eq!(n as u64, DEBUG_BURST, "never more than a burst");
    }
}
