//! The guest transport: the xenstore ring page (struct
//! xenstore_domain_interface) in guest memory, reached only through
//! [`GuestRam`]: indices as atomics, data by bounds-checked copies.
//!
//! The guest owns `req_prod` and `rsp_cons` and may write anything there;
//! every index is read once per operation and checked (at most one ring
//! of bytes outstanding), so a hostile guest gets its connection marked
//! broken, never a read outside the ring.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::Arc;

use xen_abi::xenstore::*;

use crate::vstate::memory::{BadAddress, GuestRam};

/// Why the ring cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    /// The guest's indices claim more than a ring's worth of data.
    #[error("corrupt ring indices (cons {cons:#x}, prod {prod:#x})")]
    BadIndex {
        /// The consumer index read.
        cons: u32,
        /// The producer index read.
        prod: u32,
    },
    /// The ring page is not in guest memory.
    #[error(transparent)]
    Fault(#[from] BadAddress),
}

/// A domain's xenstore ring page.
pub struct Ring {
    ram: Arc<GuestRam>,
    base: u64,
}

const SIZE: u32 = XENSTORE_RING_SIZE;

impl Ring {
    /// The ring page at guest-physical `base`; checked to lie in guest RAM.
    pub fn new(ram: Arc<GuestRam>, base: u64) -> Result<Self, RingError> {
        let len = std::mem::size_of::<XenstoreDomainInterface>();
        if !base.is_multiple_of(xen_abi::PAGE_SIZE as u64) || !ram.contains(base, len) {
            return Err(RingError::Fault(BadAddress { addr: base, len }));
        }
        Ok(Ring { ram, base })
    }

    fn word(&self, offset: usize) -> Result<&std::sync::atomic::AtomicU32, RingError> {
        Ok(self.ram.atomic_u32(self.base + offset as u64)?)
    }

    /// Puts the page in its initial state, as xenstored does when it
    /// introduces a domain: empty rings, connected, no error, and the
    /// features offered (the error indicator and ring reconnection).
    pub fn reset(&self) -> Result<(), RingError> {
        self.word(SERVER_FEATURES)?.store(XENSTORE_SERVER_FEATURE_ERROR | XENSTORE_SERVER_FEATURE_RECONNECTION, Release);
        self.finish_reconnect()
    }

    /// Whether the guest asked for a ring reconnection (connection state
    /// XENSTORE_RECONNECT): a kernel starting in a domain another one ran in.
    pub fn reconnect_requested(&self) -> bool {
        self.word(CONNECTION).is_ok_and(|w| w.load(Acquire) == XENSTORE_RECONNECT)
    }

    /// Empties both queues, clears the error and sets the connection state
    /// back to XENSTORE_CONNECTED, last (docs/misc/xenstore-ring.txt).
    pub fn finish_reconnect(&self) -> Result<(), RingError> {
        for off in [REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD, ERROR] {
            self.word(off)?.store(0, Release);
        }
        self.word(CONNECTION)?.store(XENSTORE_CONNECTED, Release);
        Ok(())
    }

    /// Records why the server stopped serving the ring (XENSTORE_ERROR_*).
    pub fn set_error(&self, code: u32) {
        if let Ok(w) = self.word(ERROR) {
            w.store(code, Release);
        }
    }

    /// Copies up to `buf.len()` request bytes out of the ring and frees
    /// their space. Returns how many were copied.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize, RingError> {
        let (cons_w, prod_w) = (self.word(REQ_CONS)?, self.word(REQ_PROD)?);
        // Each index is read once; the data is read only after prod (Acquire).
        let prod = prod_w.load(Acquire);
        let cons = cons_w.load(Relaxed);
        let avail = prod.wrapping_sub(cons);
        if avail > SIZE {
            return Err(RingError::BadIndex { cons, prod });
        }
        let n = (avail as usize).min(buf.len());
        self.ram.read_ring(self.base + REQ as u64, SIZE, cons, &mut buf[..n])?;
        // Release: the copies complete before the guest may reuse the space.
        cons_w.store(cons.wrapping_add(n as u32), Release);
        Ok(n)
    }

    /// Copies as much of `data` into the response ring as fits and
    /// publishes it. Returns how many bytes went in.
    pub fn write(&self, data: &[u8]) -> Result<usize, RingError> {
        let (cons_w, prod_w) = (self.word(RSP_CONS)?, self.word(RSP_PROD)?);
        let cons = cons_w.load(Acquire);
        let prod = prod_w.load(Relaxed);
        let used = prod.wrapping_sub(cons);
        if used > SIZE {
            return Err(RingError::BadIndex { cons, prod });
        }
        let n = ((SIZE - used) as usize).min(data.len());
        self.ram.write_ring(self.base + RSP as u64, SIZE, prod, &data[..n])?;
        // Release: the data is visible before the new producer index.
        prod_w.store(prod.wrapping_add(n as u32), Release);
        Ok(n)
    }

    /// Whether request bytes are waiting (without validating them).
    pub fn has_requests(&self) -> bool {
        match (self.word(REQ_CONS), self.word(REQ_PROD)) {
            (Ok(c), Ok(p)) => c.load(Relaxed) != p.load(Acquire),
            _ => false,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const BASE: u64 = 0x4000;

    pub fn ram() -> Arc<GuestRam> {
        Arc::new(GuestRam::new(&[(0, 0x10000)]).unwrap())
    }

    /// The guest side: pushes request bytes the way a frontend does.
    pub fn guest_send(ram: &GuestRam, data: &[u8]) -> usize {
        let cons = ram.atomic_u32(BASE + REQ_CONS as u64).unwrap().load(Acquire);
        let prod = ram.atomic_u32(BASE + REQ_PROD as u64).unwrap().load(Relaxed);
        let n = ((SIZE - prod.wrapping_sub(cons)) as usize).min(data.len());
        for (i, &b) in data[..n].iter().enumerate() {
            ram.write_obj(BASE + (REQ + mask_idx(prod.wrapping_add(i as u32))) as u64, &b).unwrap();
        }
        ram.atomic_u32(BASE + REQ_PROD as u64).unwrap().store(prod.wrapping_add(n as u32), Release);
        n
    }

    /// The guest side: takes all response bytes.
    pub fn guest_recv(ram: &GuestRam) -> Vec<u8> {
        let cons = ram.atomic_u32(BASE + RSP_CONS as u64).unwrap().load(Relaxed);
        let prod = ram.atomic_u32(BASE + RSP_PROD as u64).unwrap().load(Acquire);
        let out: Vec<u8> = (0..prod.wrapping_sub(cons))
            .map(|i| ram.read_obj::<u8>(BASE + (RSP + mask_idx(cons.wrapping_add(i))) as u64).unwrap())
            .collect();
        ram.atomic_u32(BASE + RSP_CONS as u64).unwrap().store(prod, Release);
        out
    }

    #[test]
    fn data_crosses_the_wrap() {
        let ram = ram();
        let ring = Ring::new(ram.clone(), BASE).unwrap();
        ring.reset().unwrap();
        // Start near the end of the ring so messages wrap, with indices near u32 overflow.
        for off in [REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD] {
            ram.atomic_u32(BASE + off as u64).unwrap().store(u32::MAX - 5, Relaxed);
        }
        let msg: Vec<u8> = (0..100u8).collect();
        assert_eq!(guest_send(&ram, &msg), 100);
        let mut buf = [0u8; 200];
        assert_eq!(ring.read(&mut buf).unwrap(), 100);
        assert_eq!(&buf[..100], &msg[..]);
        assert_eq!(ring.write(&msg).unwrap(), 100);
        assert_eq!(guest_recv(&ram), msg);
        // A full response ring takes no more.
        assert_eq!(ring.write(&[7u8; 2000]).unwrap(), 1024);
        assert_eq!(ring.write(&[7u8; 10]).unwrap(), 0);
    }

    #[test]
    fn hostile_indices_are_refused() {
        let ram = ram();
        let ring = Ring::new(ram.clone(), BASE).unwrap();
        ring.reset().unwrap();
        ram.atomic_u32(BASE + REQ_PROD as u64).unwrap().store(1025, Relaxed);
        assert!(matches!(ring.read(&mut [0u8; 16]), Err(RingError::BadIndex { .. })));
        ram.atomic_u32(BASE + REQ_CONS as u64).unwrap().store(10, Relaxed);
        ram.atomic_u32(BASE + REQ_PROD as u64).unwrap().store(5, Relaxed); // prod behind cons
        assert!(matches!(ring.read(&mut [0u8; 16]), Err(RingError::BadIndex { .. })));
        ram.atomic_u32(BASE + RSP_CONS as u64).unwrap().store(3000, Relaxed);
        assert!(matches!(ring.write(b"x"), Err(RingError::BadIndex { .. })));
        // A page outside guest memory or misaligned is refused up front.
        assert!(Ring::new(ram.clone(), 0x10000).is_err());
        assert!(Ring::new(ram, BASE + 8).is_err());
    }
}
