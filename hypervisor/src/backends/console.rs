//! The PV console backend (xenconsoled's job): drains the guest's output
//! ring to the terminal or a log file, and feeds terminal input into the
//! input ring.

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use xen_abi::console::*;

use crate::xen::Domain;

/// Where console output goes.
pub enum Sink {
    /// The terminal (xl create -c / xl console).
    Stdout,
    /// A log file (xenconsoled --log=guest).
    File(std::fs::File),
}

struct Inner {
    sink: Sink,
    /// Input not yet accepted by the guest (its ring was full).
    pending_input: Vec<u8>,
    /// The ring was found corrupt: stop serving it.
    broken: bool,
    /// A write to the sink failed (a full disk, a closed terminal): reported
    /// once, as every later write would fail the same way.
    write_failed: bool,
}

/// A domain's console backend.
pub struct Console {
    /// Guest address of the ring page.
    ring: u64,
    /// The guest's port for this console (set when connected).
    port: Mutex<u32>,
    inner: Mutex<Inner>,
    /// Some output has reached the sink (for the boot benchmark).
    output_seen: std::sync::atomic::AtomicBool,
    debug_budget: Mutex<DebugBudget>,
}

impl Console {
    /// A console whose ring page is at guest address `ring`.
    pub fn new(ring: u64, sink: Sink) -> Self {
        Console {
            ring,
            port: Mutex::new(0),
            inner: Mutex::new(Inner { sink, pending_input: Vec::new(), broken: false, write_failed: false }),
            output_seen: std::sync::atomic::AtomicBool::new(false),
            debug_budget: Mutex::new(DebugBudget::new(Instant::now())),
        }
    }

    /// Records the guest port the console is connected on.
    pub fn set_port(&self, port: u32) {
        *self.port.lock().unwrap_or_else(|e| e.into_inner()) = port;
    }

    fn port(&self) -> u32 {
        *self.port.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The guest notified us: drain output, retry pending input, and tell
    /// the guest there is room again.
    pub fn on_guest_event(&self, dom: &Domain) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let drained = self.drain(dom, &mut inner);
        let fed = self.feed(dom, &mut inner);
        drop(inner);
        if drained || fed {
            dom.raise_from(crate::xen::evtchn::Backend::Console, self.port());
        }
    }

    /// Drains output without notifying: used once the domain has stopped.
    pub fn flush(&self, dom: &Domain) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        self.drain(dom, &mut inner);
    }

    /// Copies the output ring to the sink. Returns whether anything moved.
    fn drain(&self, dom: &Domain, inner: &mut Inner) -> bool {
        if inner.broken {
            return false;
        }
        let ram = &dom.ram;
        let (Ok(cons), Ok(prod)) = (ram.atomic_u32(self.ring + OUT_CONS as u64), ram.atomic_u32(self.ring + OUT_PROD as u64)) else {
            return false;
        };
        use std::sync::atomic::Ordering::{Acquire, Release};
        let (c, p) = (cons.load(Acquire), prod.load(Acquire));
        let len = p.wrapping_sub(c);
        if len == 0 {
            return false;
        }
        if len > OUT_RING_SIZE {
            log::warn!("domain {}: console output ring indices are corrupt (cons {c}, prod {p}); console disabled", dom.info.domid);
            inner.broken = true;
            return false;
        }
        let mut buf = vec![0u8; len as usize];
        if ram.read_ring(self.ring + OUTPUT as u64, OUT_RING_SIZE, c, &mut buf).is_err() {
            inner.broken = true;
            return false;
        }
        if let Err(e) = write_sink(&mut inner.sink, &buf) {
            if !inner.write_failed {
                inner.write_failed = true;
                log::error!("domain {}: cannot write its console output to {}: {e}; console output is being lost", dom.info.domid, inner.sink.name());
            }
        }
        self.output_seen.store(true, std::sync::atomic::Ordering::Relaxed);
        cons.store(p, Release);
        true
    }

    /// Queues terminal input for the guest and delivers what fits.
    pub fn input(&self, dom: &Domain, bytes: &[u8]) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // Bound what a guest that never reads can make us hold.
        if inner.pending_input.len() < 64 * 1024 {
            inner.pending_input.extend_from_slice(bytes);
        }
        let fed = self.feed(dom, &mut inner);
        drop(inner);
        if fed {
            dom.raise_from(crate::xen::evtchn::Backend::Console, self.port());
        }
    }

    fn feed(&self, dom: &Domain, inner: &mut Inner) -> bool {
        if inner.pending_input.is_empty() || inner.broken {
            return false;
        }
        let ram = &dom.ram;
        let (Ok(cons), Ok(prod)) = (ram.atomic_u32(self.ring + IN_CONS as u64), ram.atomic_u32(self.ring + IN_PROD as u64)) else {
            return false;
        };
        use std::sync::atomic::Ordering::{Acquire, Release};
        let (c, p) = (cons.load(Acquire), prod.load(Acquire));
        let used = p.wrapping_sub(c);
        if used > IN_RING_SIZE {
            inner.broken = true;
            return false;
        }
        let n = ((IN_RING_SIZE - used) as usize).min(inner.pending_input.len());
        if ram.write_ring(self.ring + INPUT as u64, IN_RING_SIZE, p, &inner.pending_input[..n]).is_err() {
            inner.broken = true;
            return false;
        }
        prod.store(p.wrapping_add(n as u32), Release);
        inner.pending_input.drain(..n);
        n > 0
    }

    /// Whether the guest has written anything to its console yet.
    pub fn has_output(&self) -> bool {
        self.output_seen.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Output a guest wrote to the debug port or console_io: stderr, like
    /// `xl dmesg`, within [`DebugBudget`]'s rate (a guest writing 16 KiB
    /// per console_io call without end filled a redirected stderr at the
    /// speed of the host's disk; Xen rate-limits guest printk too).
    pub fn debug_output(&self, bytes: &[u8]) {
        let (n, note) = self.debug_budget.lock().unwrap_or_else(|e| e.into_inner()).take(Instant::now(), bytes.len());
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


impl Sink {
    /// What the sink is, for messages.
    fn name(&self) -> &'static str {
        match self {
            Sink::Stdout => "the terminal",
            Sink::File(_) => "the console log",
        }
    }
}

fn write_sink(sink: &mut Sink, bytes: &[u8]) -> std::io::Result<()> {
    match sink {
        Sink::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes).and_then(|_| out.flush())
        }
        Sink::File(f) => f.write_all(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// /dev/full fails every write with ENOSPC, like a full disk.
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

    #[test]
    fn a_full_disk_is_an_error_not_silence() {
        let full = std::fs::OpenOptions::new().append(true).open("/dev/full").unwrap();
        let mut sink = Sink::File(full);
        let e = write_sink(&mut sink, b"hello\n").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
    }
}
