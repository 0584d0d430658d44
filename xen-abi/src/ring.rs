//! Shared I/O rings (io/ring.h), written once for both ends.
//!
//! A ring is a 64-byte header (`req_prod`, `req_event`, `rsp_prod`,
//! `rsp_event`, padding) followed by a power-of-two number of fixed-size
//! slots; each slot holds either a request or its response (io/ring.h's
//! `union sring_entry`). The ring may span several pages (a multi-page ring
//! of order N has `PAGE_SIZE << N` bytes).
//!
//! The C macros become two types: [`BackRing`] (the backend's private
//! indices: `req_cons`, `rsp_prod_pvt`) and [`FrontRing`] (`req_prod_pvt`,
//! `rsp_cons`). Both reach the shared memory only through [`RingMemory`], so
//! the hypervisor's backends (over its guest-memory accessor) and a guest's
//! frontends (over its own mapped pages) run the same index arithmetic,
//! overflow checks and notification logic.
//!
//! Indices are free-running `u32`s compared with wrapping arithmetic; a slot
//! is `index & (size - 1)`.

use core::sync::atomic::{fence, AtomicU32, Ordering};

/// A ring index (RING_IDX): free-running, wraps at 2^32.
pub type RingIdx = u32;

/// Bytes before the first slot: four indices, 4 private bytes, 44 padding.
pub const HEADER_SIZE: usize = 64;
/// Byte offset of `req_prod` in the header.
pub const REQ_PROD: usize = 0;
/// Byte offset of `req_event` in the header.
pub const REQ_EVENT: usize = 4;
/// Byte offset of `rsp_prod` in the header.
pub const RSP_PROD: usize = 8;
/// Byte offset of `rsp_event` in the header.
pub const RSP_EVENT: usize = 12;

/// Rounds down to a power of two (io/ring.h's `__RD32`); 0 stays 0.
pub const fn round_down_pow2(x: u32) -> u32 {
    if x == 0 {
        0
    } else {
        1 << (31 - x.leading_zeros())
    }
}

/// Slots in a ring of `bytes` bytes whose slots are `slot_size` bytes
/// (`__CONST_RING_SIZE`): the slots that fit after the header, rounded down
/// to a power of two.
pub const fn ring_size(bytes: usize, slot_size: usize) -> u32 {
    if bytes <= HEADER_SIZE || slot_size == 0 {
        return 0;
    }
    let n = (bytes - HEADER_SIZE) / slot_size;
    round_down_pow2(if n > u32::MAX as usize { u32::MAX } else { n as u32 })
}

/// Slots in a multi-page ring of `1 << order` pages.
pub const fn ring_size_for_order(order: u32, slot_size: usize) -> u32 {
    ring_size(crate::PAGE_SIZE << order, slot_size)
}

/// The geometry of one ring: how many slots and how big each is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingLayout {
    nr_ents: u32,
    slot_size: usize,
}

impl RingLayout {
    /// The layout of a ring of `bytes` bytes with `slot_size`-byte slots
    /// (the size of the request/response union). `None` if not even one
    /// slot fits.
    pub const fn new(bytes: usize, slot_size: usize) -> Option<Self> {
        let nr_ents = ring_size(bytes, slot_size);
        if nr_ents == 0 {
            None
        } else {
            Some(RingLayout { nr_ents, slot_size })
        }
    }

    /// The layout of a ring of `1 << order` pages.
    pub const fn with_order(order: u32, slot_size: usize) -> Option<Self> {
        if order > 20 {
            return None;
        }
        Self::new(crate::PAGE_SIZE << order, slot_size)
    }

    /// Number of slots (RING_SIZE), a power of two.
    pub const fn size(&self) -> u32 {
        self.nr_ents
    }

    /// Bytes per slot.
    pub const fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// Byte offset of the slot that index `idx` uses.
    pub const fn offset(&self, idx: RingIdx) -> usize {
        HEADER_SIZE + (idx & (self.nr_ents - 1)) as usize * self.slot_size
    }

    /// Bytes the header and all slots occupy.
    pub const fn bytes(&self) -> usize {
        HEADER_SIZE + self.nr_ents as usize * self.slot_size
    }
}

/// The shared memory a ring lives in, as one end sees it.
///
/// Offsets are bytes from the start of the ring (the header). An
/// implementation maps them to its pages; a slot may straddle a page
/// boundary in a multi-page ring. Indices are 4-byte aligned and accessed
/// atomically because the other end writes them concurrently.
pub trait RingMemory {
    /// Loads the index at header `offset` with acquire ordering: the slots
    /// the other end published before it are visible afterwards.
    fn load_index(&self, offset: usize) -> u32;
    /// Stores the index at header `offset` with release ordering: the slots
    /// written before are visible to the other end first.
    fn store_index(&self, offset: usize, value: u32);
    /// Copies slot bytes at `offset` into `buf`.
    fn read(&self, offset: usize, buf: &mut [u8]);
    /// Copies `buf` into slot bytes at `offset`.
    fn write(&self, offset: usize, buf: &[u8]);
    /// A full barrier (xen_mb): orders an index store before a later load.
    fn full_fence(&self) {
        fence(Ordering::SeqCst);
    }
}

/// The other end broke the ring's invariants; the connection cannot be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The frontend's `req_prod` claims more requests than the ring holds
    /// (RING_REQUEST_PROD_OVERFLOW).
    RequestOverflow {
        /// The `req_prod` read from the ring.
        req_prod: RingIdx,
        /// The backend's `rsp_prod_pvt` it was checked against.
        rsp_prod_pvt: RingIdx,
        /// Ring size.
        size: u32,
    },
    /// The backend's `rsp_prod` claims more responses than could exist
    /// (RING_RESPONSE_PROD_OVERFLOW).
    ResponseOverflow {
        /// The `rsp_prod` read from the ring.
        rsp_prod: RingIdx,
        /// The frontend's `rsp_cons` it was checked against.
        rsp_cons: RingIdx,
        /// Ring size.
        size: u32,
    },
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            RingError::RequestOverflow { req_prod, rsp_prod_pvt, size } => write!(
                f,
                "request producer {req_prod} is {} past the responses produced ({rsp_prod_pvt}), more than the ring's {size} slots",
                req_prod.wrapping_sub(rsp_prod_pvt)
            ),
            RingError::ResponseOverflow { rsp_prod, rsp_cons, size } => write!(
                f,
                "response producer {rsp_prod} is {} past the responses consumed ({rsp_cons}), more than the ring's {size} slots",
                rsp_prod.wrapping_sub(rsp_cons)
            ),
        }
    }
}

/// Writes an empty shared ring header (SHARED_RING_INIT): producers 0,
/// events 1, private and padding bytes zero. The frontend does this once
/// before publishing the ring.
pub fn init_shared<M: RingMemory + ?Sized>(mem: &M) {
    mem.write(16, &[0u8; HEADER_SIZE - 16]);
    mem.store_index(REQ_PROD, 0);
    mem.store_index(RSP_PROD, 0);
    mem.store_index(REQ_EVENT, 1);
    mem.store_index(RSP_EVENT, 1);
}

/// Whether the other end asked to be notified of the entries between
/// `old` and `new` (its event index lies in that window).
#[inline]
pub const fn needs_notify(old: RingIdx, new: RingIdx, event: RingIdx) -> bool {
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

/// The backend's end of a ring: consumes requests, produces responses.
#[derive(Debug)]
pub struct BackRing<M> {
    mem: M,
    layout: RingLayout,
    req_cons: RingIdx,
    rsp_prod_pvt: RingIdx,
}

impl<M: RingMemory> BackRing<M> {
    /// Attaches to a freshly initialised ring (BACK_RING_INIT).
    pub fn new(mem: M, layout: RingLayout) -> Self {
        Self::attach(mem, layout, 0)
    }

    /// Attaches with both private indices at `start` (BACK_RING_ATTACH),
    /// e.g. the shared `rsp_prod` when reconnecting to a live ring.
    pub fn attach(mem: M, layout: RingLayout, start: RingIdx) -> Self {
        BackRing { mem, layout, req_cons: start, rsp_prod_pvt: start }
    }

    /// The ring's geometry.
    pub fn layout(&self) -> RingLayout {
        self.layout
    }

    /// The shared memory.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// Next request index to consume.
    pub fn req_cons(&self) -> RingIdx {
        self.req_cons
    }

    /// Next response index to produce.
    pub fn rsp_prod_pvt(&self) -> RingIdx {
        self.rsp_prod_pvt
    }

    /// Requests published but not yet consumed, bounded by the free response
    /// slots (XEN_RING_NR_UNCONSUMED_REQUESTS), after checking that the
    /// frontend's producer is plausible (RING_REQUEST_PROD_OVERFLOW).
    pub fn unconsumed_requests(&self) -> Result<u32, RingError> {
        let req_prod = self.mem.load_index(REQ_PROD);
        let size = self.layout.size();
        if req_prod.wrapping_sub(self.rsp_prod_pvt) > size {
            return Err(RingError::RequestOverflow { req_prod, rsp_prod_pvt: self.rsp_prod_pvt, size });
        }
        let req = req_prod.wrapping_sub(self.req_cons);
        let rsp = size.wrapping_sub(self.req_cons.wrapping_sub(self.rsp_prod_pvt));
        Ok(req.min(rsp))
    }

    /// Copies the next request into `buf` (at most one slot) and consumes it
    /// (RING_COPY_REQUEST then `req_cons++`). The caller has seen
    /// [`unconsumed_requests`](Self::unconsumed_requests) > 0. The copy is
    /// taken once, so later changes by the frontend cannot affect it.
    pub fn take_request(&mut self, buf: &mut [u8]) {
        let n = buf.len().min(self.layout.slot_size());
        self.mem.read(self.layout.offset(self.req_cons), &mut buf[..n]);
        self.req_cons = self.req_cons.wrapping_add(1);
    }

    /// Writes the next response (at most one slot); it stays private until
    /// [`push_responses`](Self::push_responses).
    pub fn put_response(&mut self, rsp: &[u8]) {
        let n = rsp.len().min(self.layout.slot_size());
        self.mem.write(self.layout.offset(self.rsp_prod_pvt), &rsp[..n]);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
    }

    /// Publishes the responses written so far and says whether the frontend
    /// must be notified (RING_PUSH_RESPONSES_AND_CHECK_NOTIFY).
    pub fn push_responses(&mut self) -> bool {
        let old = self.mem.load_index(RSP_PROD);
        let new = self.rsp_prod_pvt;
        self.mem.store_index(RSP_PROD, new);
        self.mem.full_fence();
        needs_notify(old, new, self.mem.load_index(RSP_EVENT))
    }

    /// Whether requests are pending; if none, asks the frontend to notify on
    /// the next one and checks again to close the race
    /// (RING_FINAL_CHECK_FOR_REQUESTS).
    pub fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_requests()? > 0 {
            return Ok(true);
        }
        self.mem.store_index(REQ_EVENT, self.req_cons.wrapping_add(1));
        self.mem.full_fence();
        Ok(self.unconsumed_requests()? > 0)
    }

    /// Asks the frontend to notify on its next request even though some
    /// are already pending (a backend that needs more slots than are
    /// posted, as netback's rx does: `req_event = req_prod + 1`). True if
    /// requests arrived meanwhile, so the caller checks again instead of
    /// waiting.
    pub fn notify_on_next_request(&mut self) -> bool {
        let prod = self.mem.load_index(REQ_PROD);
        self.mem.store_index(REQ_EVENT, prod.wrapping_add(1));
        self.mem.full_fence();
        self.mem.load_index(REQ_PROD) != prod
    }

    /// Peeks at the request `ahead` slots past the next one, without
    /// consuming it (a packet spanning several slots is checked whole
    /// before any is consumed). The caller has seen that many requests.
    pub fn peek_request(&self, ahead: u32, buf: &mut [u8]) {
        let n = buf.len().min(self.layout.slot_size());
        self.mem.read(self.layout.offset(self.req_cons.wrapping_add(ahead)), &mut buf[..n]);
    }
}

/// The frontend's end of a ring: produces requests, consumes responses.
#[derive(Debug)]
pub struct FrontRing<M> {
    mem: M,
    layout: RingLayout,
    req_prod_pvt: RingIdx,
    rsp_cons: RingIdx,
}

impl<M: RingMemory> FrontRing<M> {
    /// Initialises the shared header and attaches (XEN_FRONT_RING_INIT).
    pub fn init(mem: M, layout: RingLayout) -> Self {
        init_shared(&mem);
        Self::attach(mem, layout, 0)
    }

    /// Attaches to an existing ring with both private indices at `start`
    /// (FRONT_RING_ATTACH).
    pub fn attach(mem: M, layout: RingLayout, start: RingIdx) -> Self {
        FrontRing { mem, layout, req_prod_pvt: start, rsp_cons: start }
    }

    /// The ring's geometry.
    pub fn layout(&self) -> RingLayout {
        self.layout
    }

    /// The shared memory.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// Next request index to produce.
    pub fn req_prod_pvt(&self) -> RingIdx {
        self.req_prod_pvt
    }

    /// Next response index to consume.
    pub fn rsp_cons(&self) -> RingIdx {
        self.rsp_cons
    }

    /// Slots free for new requests (RING_FREE_REQUESTS).
    pub fn free_requests(&self) -> u32 {
        self.layout.size().wrapping_sub(self.req_prod_pvt.wrapping_sub(self.rsp_cons))
    }

    /// Whether no slot is free (RING_FULL).
    pub fn is_full(&self) -> bool {
        self.free_requests() == 0
    }

    /// Writes the next request (at most one slot); it stays private until
    /// [`push_requests`](Self::push_requests). Returns false, writing
    /// nothing, if the ring is full.
    pub fn put_request(&mut self, req: &[u8]) -> bool {
        if self.is_full() {
            return false;
        }
        let n = req.len().min(self.layout.slot_size());
        self.mem.write(self.layout.offset(self.req_prod_pvt), &req[..n]);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        true
    }

    /// Publishes the requests written so far and says whether the backend
    /// must be notified (RING_PUSH_REQUESTS_AND_CHECK_NOTIFY).
    pub fn push_requests(&mut self) -> bool {
        let old = self.mem.load_index(REQ_PROD);
        let new = self.req_prod_pvt;
        self.mem.store_index(REQ_PROD, new);
        self.mem.full_fence();
        needs_notify(old, new, self.mem.load_index(REQ_EVENT))
    }

    /// Responses published but not yet consumed, after checking that the
    /// backend's producer is plausible (RING_RESPONSE_PROD_OVERFLOW).
    pub fn unconsumed_responses(&self) -> Result<u32, RingError> {
        let rsp_prod = self.mem.load_index(RSP_PROD);
        let size = self.layout.size();
        let n = rsp_prod.wrapping_sub(self.rsp_cons);
        if n > size {
            return Err(RingError::ResponseOverflow { rsp_prod, rsp_cons: self.rsp_cons, size });
        }
        Ok(n)
    }

    /// Copies the next response into `buf` and consumes it. The caller has
    /// seen [`unconsumed_responses`](Self::unconsumed_responses) > 0.
    pub fn take_response(&mut self, buf: &mut [u8]) {
        let n = buf.len().min(self.layout.slot_size());
        self.mem.read(self.layout.offset(self.rsp_cons), &mut buf[..n]);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
    }

    /// Copies the response `ahead` slots after the next one into `buf`
    /// without consuming anything (a netif packet spans several slots and
    /// is taken only once all of them are there). The caller has seen more
    /// than `ahead` [`unconsumed_responses`](Self::unconsumed_responses).
    pub fn peek_response(&self, ahead: u32, buf: &mut [u8]) {
        let n = buf.len().min(self.layout.slot_size());
        self.mem.read(self.layout.offset(self.rsp_cons.wrapping_add(ahead)), &mut buf[..n]);
    }

    /// Whether responses are pending; if none, asks the backend to notify on
    /// the next one and checks again (RING_FINAL_CHECK_FOR_RESPONSES).
    pub fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_responses()? > 0 {
            return Ok(true);
        }
        self.mem.store_index(RSP_EVENT, self.rsp_cons.wrapping_add(1));
        self.mem.full_fence();
        Ok(self.unconsumed_responses()? > 0)
    }
}

/// Ring memory over a slice of 32-bit atomics: a frontend's shared pages
/// (viewed as `&[AtomicU32]`) or a test's buffer. Slot bytes are accessed
/// word by word, little-endian, with relaxed ordering; the index accesses
/// carry the acquire/release ordering.
#[derive(Clone, Copy, Debug)]
pub struct AtomicWords<'a>(pub &'a [AtomicU32]);

impl AtomicWords<'_> {
    fn byte(&self, offset: usize) -> u8 {
        let word = self.0[offset / 4].load(Ordering::Relaxed);
        word.to_le_bytes()[offset % 4]
    }

    fn set_byte(&self, offset: usize, value: u8) {
        let shift = (offset % 4) * 8;
        let mask = !(0xffu32 << shift);
        let w = &self.0[offset / 4];
        let mut cur = w.load(Ordering::Relaxed);
        loop {
            let new = (cur & mask) | (u32::from(value) << shift);
            match w.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
    }
}

impl RingMemory for AtomicWords<'_> {
    fn load_index(&self, offset: usize) -> u32 {
        self.0[offset / 4].load(Ordering::Acquire)
    }

    fn store_index(&self, offset: usize, value: u32) {
        self.0[offset / 4].store(value, Ordering::Release);
    }

    fn read(&self, offset: usize, buf: &mut [u8]) {
        let mut i = 0;
        while i < buf.len() {
            let at = offset + i;
            if at.is_multiple_of(4) && buf.len() - i >= 4 {
                let w = self.0[at / 4].load(Ordering::Relaxed).to_le_bytes();
                buf[i..i + 4].copy_from_slice(&w);
                i += 4;
            } else {
                buf[i] = self.byte(at);
                i += 1;
            }
        }
    }

    fn write(&self, offset: usize, buf: &[u8]) {
        let mut i = 0;
        while i < buf.len() {
            let at = offset + i;
            if at.is_multiple_of(4) && buf.len() - i >= 4 {
                let w = u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
                self.0[at / 4].store(w, Ordering::Relaxed);
                i += 4;
            } else {
                self.set_byte(at, buf[i]);
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn words(bytes: usize) -> Vec<AtomicU32> {
        (0..bytes / 4).map(|_| AtomicU32::new(0)).collect()
    }

    #[test]
    fn sizes_match_ring_h() {
        // blkif: 112-byte slots (x86_64) and 108 (x86_32) both give 32 per page.
        assert_eq!(ring_size(4096, 112), 32);
        assert_eq!(ring_size(4096, 108), 32);
        // netif tx (12-byte request/16? union = 12) -> 336 -> 256.
        assert_eq!(ring_size(4096, 12), 256);
        assert_eq!(ring_size_for_order(1, 112), 64);
        assert_eq!(ring_size_for_order(4, 112), 512);
        assert_eq!(ring_size(64, 112), 0);
        assert_eq!(round_down_pow2(0), 0);
        assert_eq!(round_down_pow2(1), 1);
        assert_eq!(round_down_pow2(37), 32);
        assert_eq!(round_down_pow2(u32::MAX), 1 << 31);
        let l = RingLayout::with_order(0, 112).unwrap();
        assert_eq!((l.size(), l.offset(0), l.offset(33), l.bytes()), (32, 64, 64 + 112, 64 + 32 * 112));
        assert!(RingLayout::new(100, 112).is_none());
        assert!(RingLayout::with_order(21, 112).is_none());
    }

    #[test]
    fn notify_window_wraps() {
        assert!(needs_notify(0, 1, 1));
        assert!(!needs_notify(1, 2, 1), "event already passed");
        assert!(needs_notify(u32::MAX, 1, 0), "window across the wrap");
        assert!(!needs_notify(5, 5, 5), "nothing new");
    }

    #[test]
    fn front_and_back_exchange_across_index_wrap() {
        let mem = words(4096);
        let layout = RingLayout::new(4096, 16).unwrap();
        let start = u32::MAX - 40;
        init_shared(&AtomicWords(&mem));
        mem[0].store(start, Ordering::Relaxed);
        mem[2].store(start, Ordering::Relaxed);
        let mut front = FrontRing::attach(AtomicWords(&mem), layout, start);
        let mut back = BackRing::attach(AtomicWords(&mem), layout, start);
        let mut next = 0u64;
        let mut seen = 0u64;
        for round in 0..20 {
            // Fill a varying number of requests.
            let n = 1 + round * 7 % 200;
            for _ in 0..n {
                let mut req = [0u8; 16];
                req[..8].copy_from_slice(&next.to_le_bytes());
                if !front.put_request(&req) {
                    break;
                }
                next += 1;
            }
            front.push_requests();
            // The backend answers every request it can see.
            while back.final_check_for_requests().unwrap() {
                while back.unconsumed_requests().unwrap() > 0 {
                    let mut req = [0u8; 16];
                    back.take_request(&mut req);
                    let mut rsp = req;
                    rsp[8] = 0xaa;
                    back.put_response(&rsp);
                }
                back.push_responses();
            }
            while front.final_check_for_responses().unwrap() {
                while front.unconsumed_responses().unwrap() > 0 {
                    let mut rsp = [0u8; 16];
                    front.take_response(&mut rsp);
                    assert_eq!(u64::from_le_bytes(rsp[..8].try_into().unwrap()), seen);
                    assert_eq!(rsp[8], 0xaa);
                    seen += 1;
                }
            }
        }
        assert_eq!(seen, next);
        assert!(front.rsp_cons() < start, "indices wrapped");
    }

    #[test]
    fn full_ring_refuses_and_backend_bounds_by_response_space() {
        let mem = words(4096);
        let layout = RingLayout::new(4096, 112).unwrap();
        let mut front = FrontRing::init(AtomicWords(&mem), layout);
        let mut back = BackRing::new(AtomicWords(&mem), layout);
        for _ in 0..32 {
            assert!(front.put_request(&[1; 112]));
        }
        assert!(front.is_full());
        assert!(!front.put_request(&[1; 112]));
        assert!(front.push_requests(), "req_event starts at 1");
        assert_eq!(back.unconsumed_requests(), Ok(32));
        let mut buf = [0u8; 112];
        for _ in 0..32 {
            back.take_request(&mut buf);
        }
        assert_eq!(back.unconsumed_requests(), Ok(0));
        // One response frees one slot for the frontend.
        back.put_response(&[2; 16]);
        assert!(back.push_responses(), "rsp_event starts at 1");
        assert_eq!(front.unconsumed_responses(), Ok(1));
        front.take_response(&mut [0u8; 16]);
        assert_eq!(front.free_requests(), 1);
    }

    #[test]
    fn event_indices_suppress_notifications() {
        let mem = words(4096);
        let layout = RingLayout::new(4096, 16).unwrap();
        let mut front = FrontRing::init(AtomicWords(&mem), layout);
        let mut back = BackRing::new(AtomicWords(&mem), layout);
        front.put_request(&[0; 16]);
        assert!(front.push_requests());
        // The backend has not re-armed req_event: no notification for more.
        front.put_request(&[0; 16]);
        assert!(!front.push_requests());
        back.take_request(&mut [0; 16]);
        back.take_request(&mut [0; 16]);
        assert!(!back.final_check_for_requests().unwrap());
        assert_eq!(mem[REQ_EVENT / 4].load(Ordering::Relaxed), 3);
        front.put_request(&[0; 16]);
        assert!(front.push_requests(), "re-armed");
        assert!(back.final_check_for_requests().unwrap());
    }

    #[test]
    fn producer_jumps_are_detected() {
        let mem = words(4096);
        let layout = RingLayout::new(4096, 112).unwrap();
        init_shared(&AtomicWords(&mem));
        let mut back = BackRing::new(AtomicWords(&mem), layout);
        mem[REQ_PROD / 4].store(33, Ordering::Relaxed);
        assert_eq!(back.unconsumed_requests(), Err(RingError::RequestOverflow { req_prod: 33, rsp_prod_pvt: 0, size: 32 }));
        assert!(back.final_check_for_requests().is_err());
        mem[REQ_PROD / 4].store(u32::MAX, Ordering::Relaxed);
        assert!(back.unconsumed_requests().is_err(), "backwards is a huge jump");
        let front = FrontRing::attach(AtomicWords(&mem), layout, 0);
        mem[RSP_PROD / 4].store(40, Ordering::Relaxed);
        assert!(matches!(front.unconsumed_responses(), Err(RingError::ResponseOverflow { .. })));
    }

    #[test]
    fn unaligned_slots_round_trip() {
        let mem = words(256);
        let w = AtomicWords(&mem);
        let data: Vec<u8> = (0..27u8).collect();
        w.write(65, &data);
        let mut back = [0u8; 27];
        w.read(65, &mut back);
        assert_eq!(&back[..], &data[..]);
        let mut around = [0u8; 1];
        w.read(64, &mut around);
        assert_eq!(around[0], 0, "neighbouring byte untouched");
    }
}
