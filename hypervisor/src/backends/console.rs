//! The PV console backend (xenconsoled's job): drains the guest's output
//! ring to the terminal or a log file, and feeds terminal input into the
//! input ring. (Debug output, port 0xE9 and console_io, is Xen's own
//! console: [`crate::xen::debug`].)

use std::io::Write;
use std::sync::{Arc, Mutex};

use xen_abi::console::*;

use crate::xen::sink::{EventSink, SinkId};
use crate::xen::Domain;

/// Where console output goes.
pub enum Sink {
    /// The terminal (xl create -c / xl console).
    Stdout,
    /// A log file (xenconsoled --log=guest).
    File(std::fs::File),
    /// Another owner's output, such as the host service's per-domain
    /// console (kept while no client is attached, streamed to one that is).
    Shared(Arc<dyn ConsoleOutput>),
}

/// Where a [`Sink::Shared`] console's output goes. Called on the thread
/// that drains the ring (a vCPU's), so it must not block on a client.
pub trait ConsoleOutput: Send + Sync {
    /// Takes the next bytes of the guest's output.
    fn write(&self, bytes: &[u8]) -> std::io::Result<()>;
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
    /// The guest's port and this console's sink id, once connected.
    binding: Mutex<Option<(SinkId, u32)>>,
    inner: Mutex<Inner>,
    /// Some output has reached the sink (for the boot benchmark).
    output_seen: std::sync::atomic::AtomicBool,
}

impl Console {
    /// A console whose ring page is at guest address `ring`.
    pub fn new(ring: u64, sink: Sink) -> Self {
        Console {
            ring,
            binding: Mutex::new(None),
            inner: Mutex::new(Inner { sink, pending_input: Vec::new(), broken: false, write_failed: false }),
            output_seen: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Registers the console with `dom` as the sink of a new guest port
    /// (what xenconsoled's bind does at domain creation); returns the port.
    pub fn connect(self: &Arc<Self>, dom: &Domain) -> u32 {
        let id = dom.register_sink(self.clone());
        let port = dom.connect_sink(id);
        *self.binding.lock().unwrap_or_else(|e| e.into_inner()) = Some((id, port));
        port
    }

    /// Raises the guest's console port, if it is still bound to us.
    fn raise(&self, dom: &Domain) {
        let binding = *self.binding.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((id, port)) = binding {
            dom.raise_from(id, port);
        }
    }

    /// The guest notified us: drain output, retry pending input, and tell
    /// the guest there is room again.
    pub fn on_guest_event(&self, dom: &Domain) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let drained = self.drain(dom, &mut inner);
        let fed = self.feed(dom, &mut inner);
        drop(inner);
        if drained || fed {
            self.raise(dom);
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
            self.raise(dom);
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
}

impl EventSink for Console {
    fn notify(&self, dom: &Domain, _port: u32) {
        self.on_guest_event(dom);
    }

    fn has_output(&self) -> bool {
        Console::has_output(self)
    }
}

impl Sink {
    /// What the sink is, for messages.
    fn name(&self) -> &'static str {
        match self {
            Sink::Stdout => "the terminal",
            Sink::File(_) | Sink::Shared(_) => "the console log",
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
        Sink::Shared(out) => out.write(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// /dev/full fails every write with ENOSPC, like a full disk.
    #[test]
    fn a_full_disk_is_an_error_not_silence() {
        let full = std::fs::OpenOptions::new().append(true).open("/dev/full").unwrap();
        let mut sink = Sink::File(full);
        let e = write_sink(&mut sink, b"hello\n").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
    }
}
