//! A domain's console in the host service (xenconsoled's job): the guest's
//! output goes to the domain's log file and to whichever client is
//! attached (`xenolith console`); while none is, the latest [`KEPT_BYTES`]
//! are kept and shown on the next attach.
//!
//! The vCPU thread that drains the ring only appends to memory and the
//! file: a client that reads slowly (or not at all) holds up its own
//! connection thread, never the guest.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::backends::console::ConsoleOutput;

/// Output kept for a client that is not attached.
pub const KEPT_BYTES: usize = 128 * 1024;

#[derive(Default)]
struct Inner {
    /// Output not yet sent to a client, oldest first.
    kept: VecDeque<u8>,
    /// Bytes dropped from the front of `kept` since the last attach.
    dropped: u64,
    /// The attached client's ticket (0: none).
    client: u64,
    /// The last ticket handed out.
    tickets: u64,
    /// The domain is gone: attached clients are let go.
    closed: bool,
}

/// One domain's console in the service, for all its incarnations.
pub struct ConsoleLog {
    inner: Mutex<Inner>,
    changed: Condvar,
    file: Option<Mutex<std::fs::File>>,
}

impl ConsoleLog {
    /// A console that also appends to `file` (the domain's log).
    pub fn new(file: Option<std::fs::File>) -> Self {
        ConsoleLog { inner: Mutex::new(Inner::default()), changed: Condvar::new(), file: file.map(Mutex::new) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Attaches a client, detaching any other (the newest attach wins, so a
    /// vanished client never locks the console); returns its ticket.
    pub fn attach(&self) -> u64 {
        let mut inner = self.lock();
        inner.tickets += 1;
        inner.client = inner.tickets;
        self.changed.notify_all();
        inner.client
    }

    /// Detaches client `ticket` (if it is still the attached one).
    pub fn detach(&self, ticket: u64) {
        let mut inner = self.lock();
        if inner.client == ticket {
            inner.client = 0;
        }
        self.changed.notify_all();
    }

    /// The next output for client `ticket`, waiting for it; `None` once the
    /// client is detached or the domain is gone and everything was sent.
    pub fn next(&self, ticket: u64) -> Option<Vec<u8>> {
        let mut inner = self.lock();
        loop {
            if inner.client != ticket {
                return None;
            }
            if !inner.kept.is_empty() {
                let mut out = Vec::new();
                if inner.dropped > 0 {
                    out.extend_from_slice(format!("[xenolith: {} bytes of earlier output were dropped]\r\n", inner.dropped).as_bytes());
                    inner.dropped = 0;
                }
                out.extend(inner.kept.drain(..));
                return Some(out);
            }
            if inner.closed {
                return None;
            }
            inner = self.changed.wait(inner).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The domain is gone for good: attached clients get the rest and end.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }
}

impl ConsoleOutput for ConsoleLog {
    fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        {
            let mut inner = self.lock();
            inner.kept.extend(bytes);
            let excess = inner.kept.len().saturating_sub(KEPT_BYTES);
            if excess > 0 {
                inner.kept.drain(..excess);
                inner.dropped += excess as u64;
            }
        }
        self.changed.notify_all();
        match &self.file {
            Some(f) => f.lock().unwrap_or_else(|e| e.into_inner()).write_all(bytes),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_while_detached_is_kept_bounded_and_shown_on_attach() {
        let c = ConsoleLog::new(None);
        c.write(b"boot\n").unwrap();
        let a = c.attach();
        assert_eq!(c.next(a).unwrap(), b"boot\n");
        c.detach(a);
        assert_eq!(c.next(a), None, "a detached client gets nothing more");
        c.write(&vec![b'x'; KEPT_BYTES + 10]).unwrap();
        let b = c.attach();
        let out = c.next(b).unwrap();
        let header = b"[xenolith: 10 bytes of earlier output were dropped]\r\n";
        assert!(out.starts_with(header));
        assert_eq!(out[header.len()..], vec![b'x'; KEPT_BYTES]);
        // A newer attach takes over; closing lets the last one go.
        let d = c.attach();
        assert_eq!(c.next(b), None);
        c.write(b"bye").unwrap();
        c.close();
        assert_eq!(c.next(d).unwrap(), b"bye");
        assert_eq!(c.next(d), None);
    }
}
