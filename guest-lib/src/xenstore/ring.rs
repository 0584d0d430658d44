//! The xenstore page (struct xenstore_domain_interface): two 1 KiB byte
//! rings with free-running 32-bit indices. The guest produces requests
//! (`req_prod`) and consumes responses (`rsp_cons`); xenstored does the
//! opposite. This is the only place that touches the page.
//!
//! Ordering: bytes are written before the producer index is published
//! (release) and read only after it is seen (acquire); the consumer index is
//! published after the bytes are copied out, so xenstored never overwrites
//! bytes still being read. A pair of indices more than a ring apart is a
//! corrupt ring, reported and never trusted.

use core::sync::atomic::{AtomicU32, Ordering};

use xen_abi::xenstore::{self as xs, XENSTORE_RING_SIZE};

use crate::console::{ring_free, ring_split, ring_used};

/// The ring indices were inconsistent (more than a ring apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corrupt;

/// The shared xenstore page.
pub struct StoreRing {
    page: *mut u8,
}

// SAFETY: the page is a fixed guest frame used only through this type, and
// the xenstore client owning it is used by one context at a time.
unsafe impl Send for StoreRing {}

impl StoreRing {
    /// Wraps the page at `page`.
    ///
    /// # Safety
    /// `page` must point to a mapped, 4 KiB-aligned xenstore ring page that
    /// nothing else in the guest uses, valid for the life of the value.
    pub unsafe fn new(page: *mut u8) -> Self {
        StoreRing { page }
    }

    /// # Safety
    /// `offset` must be one of xen-abi's index offsets (u32, aligned).
    unsafe fn index(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: in the page and aligned (caller); shared with xenstored,
        // hence atomic.
        unsafe { &*self.page.add(offset).cast::<AtomicU32>() }
    }

    fn load(&self, offset: usize, order: Ordering) -> u32 {
        // SAFETY: callers pass only the xen-abi index offsets below.
        unsafe { self.index(offset) }.load(order)
    }

    fn store(&self, offset: usize, value: u32) {
        // SAFETY: callers pass only the xen-abi index offsets below.
        unsafe { self.index(offset) }.store(value, Ordering::Release)
    }

    /// `req_cons`: how far xenstored has read our requests.
    pub fn req_cons(&self) -> u32 {
        self.load(xs::REQ_CONS, Ordering::Acquire)
    }

    /// Whether response bytes are waiting.
    pub fn has_response(&self) -> bool {
        self.load(xs::RSP_PROD, Ordering::Acquire) != self.load(xs::RSP_CONS, Ordering::Relaxed)
    }

    /// Copies as much of `bytes` as fits into the request ring and
    /// publishes it; returns the count.
    pub fn write(&mut self, bytes: &[u8]) -> Result<usize, Corrupt> {
        let cons = self.req_cons();
        let prod = self.load(xs::REQ_PROD, Ordering::Relaxed);
        ring_used(cons, prod, XENSTORE_RING_SIZE).ok_or(Corrupt)?;
        let n = ring_free(cons, prod, XENSTORE_RING_SIZE).min(bytes.len() as u32);
        if n == 0 {
            return Ok(0);
        }
        let (pos, first, second) = ring_split(prod, n, XENSTORE_RING_SIZE);
        // SAFETY: `pos + first <= 1024` and `second <= pos`, so both copies
        // stay in `req`; xenstored does not read them before the index moves.
        unsafe {
            let req = self.page.add(xs::REQ);
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), req.add(pos), first);
            core::ptr::copy_nonoverlapping(bytes.as_ptr().add(first), req, second);
        }
        self.store(xs::REQ_PROD, prod.wrapping_add(n));
        Ok(n as usize)
    }

    /// Copies up to `buf.len()` response bytes out and releases them.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, Corrupt> {
        let cons = self.load(xs::RSP_CONS, Ordering::Relaxed);
        let prod = self.load(xs::RSP_PROD, Ordering::Acquire);
        let avail = ring_used(cons, prod, XENSTORE_RING_SIZE).ok_or(Corrupt)?;
        let n = avail.min(buf.len() as u32);
        if n == 0 {
            return Ok(0);
        }
        let (pos, first, second) = ring_split(cons, n, XENSTORE_RING_SIZE);
        // SAFETY: inside `rsp` as in `write`; the bytes up to the acquired
        // `rsp_prod` are xenstored's finished writes.
        unsafe {
            let rsp = self.page.add(xs::RSP);
            core::ptr::copy_nonoverlapping(rsp.add(pos), buf.as_mut_ptr(), first);
            core::ptr::copy_nonoverlapping(rsp, buf.as_mut_ptr().add(first), second);
        }
        self.store(xs::RSP_CONS, cons.wrapping_add(n));
        Ok(n as usize)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A zeroed, page-aligned stand-in for the xenstore page.
    #[repr(C, align(4096))]
    pub struct Page(pub [u8; 4096]);

    pub fn set(page: &mut Page, offset: usize, v: u32) {
        page.0[offset..offset + 4].copy_from_slice(&v.to_le_bytes());
    }
    pub fn get(page: &Page, offset: usize) -> u32 {
        u32::from_le_bytes(page.0[offset..offset + 4].try_into().unwrap())
    }

    #[test]
    fn writes_and_reads_across_the_wrap() {
        let mut page = Box::new(Page([0; 4096]));
        set(&mut page, xs::REQ_PROD, 1020);
        set(&mut page, xs::REQ_CONS, 1020);
        set(&mut page, xs::RSP_CONS, u32::MAX - 1);
        set(&mut page, xs::RSP_PROD, (u32::MAX - 1).wrapping_add(6));
        page.0[xs::RSP + 1022..xs::RSP + 1024].copy_from_slice(b"ab");
        page.0[xs::RSP..xs::RSP + 4].copy_from_slice(b"cdef");
        // SAFETY: the page is ours and outlives the ring.
        let mut ring = unsafe { StoreRing::new(page.0.as_mut_ptr()) };
        assert_eq!(ring.write(b"0123456789").unwrap(), 10);
        assert!(ring.has_response());
        let mut buf = [0u8; 16];
        assert_eq!(ring.read(&mut buf).unwrap(), 6);
        assert_eq!(&buf[..6], b"abcdef");
        assert!(!ring.has_response());
        assert_eq!(get(&page, xs::REQ_PROD), 1030);
        assert_eq!(&page.0[xs::REQ + 1020..xs::REQ + 1024], b"0123");
        assert_eq!(&page.0[xs::REQ..xs::REQ + 6], b"456789");
        assert_eq!(get(&page, xs::RSP_CONS), 4);
    }

    #[test]
    fn full_and_corrupt_rings() {
        let mut page = Box::new(Page([0; 4096]));
        set(&mut page, xs::REQ_PROD, 1024);
        // SAFETY: as above.
        let mut ring = unsafe { StoreRing::new(page.0.as_mut_ptr()) };
        assert_eq!(ring.write(b"x").unwrap(), 0, "full");
        set(&mut page, xs::REQ_PROD, 5000);
        set(&mut page, xs::RSP_PROD, 2000);
        // SAFETY: as above.
        let mut ring = unsafe { StoreRing::new(page.0.as_mut_ptr()) };
        assert_eq!(ring.write(b"x"), Err(Corrupt));
        assert_eq!(ring.read(&mut [0; 4]), Err(Corrupt));
    }
}
