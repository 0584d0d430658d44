//! Ring handling for one blkif device: the shared ring pages (over
//! xen-abi's generic [`FrontRing`]), the shadow table that maps a request
//! id back to what it was for, and the indirect-descriptor pages.
//!
//! Nothing here knows about xenstore or about the caller's API. Every
//! response is checked before it is believed: an id that is out of range
//! or not in flight is dropped, and a response producer that runs more
//! than a ring ahead marks the ring broken. Nothing here panics on what the
//! backend writes.
//!
//! Shared memory comes from [`crate::shared_pages`] (as netfront's does):
//! this file has no `unsafe`.

use alloc::vec::Vec;

use xen_abi::blkif::{
    self as bi, Indirect, Protocol, ReadWrite, Request, Response, Segment,
    BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, BLKIF_MAX_SEGMENTS_PER_REQUEST, SEGMENT_SIZE,
    SEGS_PER_INDIRECT_FRAME,
};
use xen_abi::grant_table::GrantRef;
use xen_abi::ring::{FrontRing, RingError, RingLayout};
use xen_abi::DomId;

use crate::gnttab;
pub use crate::shared_pages::Pages;
use crate::shared_pages::{GrantedPages, ShareError, SharedMem};

/// What an in-flight request was for.
#[derive(Debug, Default)]
pub struct Shadow {
    /// BLKIF_OP_* (the operation, or the indirect one).
    pub op: u8,
    /// First 512-byte sector.
    pub sector: u64,
    /// Data grants to end (or keep, if persistent) on completion.
    pub grants: Vec<GrantRef>,
    /// Which part of the caller's operation it belongs to.
    pub part: usize,
    /// Bytes it moves.
    pub bytes: usize,
}

/// A granted page of segment descriptors, kept per request slot.
struct IndirectPage {
    page: Pages,
    gref: GrantRef,
}

/// Segments as the request builder takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantedSeg {
    /// The grant of the page.
    pub gref: GrantRef,
    /// First sector of the page (inclusive).
    pub first_sect: u8,
    /// Last sector of the page (inclusive).
    pub last_sect: u8,
}

/// One device's ring.
pub struct Ring {
    pages: GrantedPages,
    front: FrontRing<SharedMem>,
    order: u32,
    handle: u16,
    backend: DomId,
    shadow: Vec<Option<Shadow>>,
    free_ids: Vec<u32>,
    indirect: Vec<Option<IndirectPage>>,
    /// Indirect pages are granted writable when persistent grants are in
    /// use (Linux's blkback then maps every grant read-write).
    indirect_writable: bool,
    broken: Option<RingError>,
    /// Torn down: nothing may be queued or taken any more.
    closed: bool,
}

/// Why the ring could not be set up.
pub type RingSetupError = ShareError;

impl Ring {
    /// Allocates a ring of `1 << order` pages and grants them to `backend`.
    pub fn new(order: u32, handle: u16, backend: DomId) -> Result<Ring, RingSetupError> {
        let layout = RingLayout::with_order(order, Protocol::X86_64.slot_size())
            .ok_or(RingSetupError::NoMemory)?;
        let pages = GrantedPages::new(1usize << order, backend, false)?;
        let mem = pages.pages().ok_or(ShareError::NoMemory)?.mem();
        let front = FrontRing::init(mem, layout);
        let size = layout.size() as usize;
        Ok(Ring {
            pages,
            front,
            order,
            handle,
            backend,
            shadow: (0..size).map(|_| None).collect(),
            free_ids: (0..size as u32).rev().collect(),
            indirect: (0..size).map(|_| None).collect(),
            indirect_writable: false,
            broken: None,
            closed: false,
        })
    }

    /// The grant references of the ring pages, in order (`ring-ref%u`).
    pub fn refs(&self) -> &[GrantRef] {
        self.pages.refs()
    }

    /// log2 of the number of ring pages.
    pub fn order(&self) -> u32 {
        self.order
    }

    /// Request slots.
    pub fn size(&self) -> u32 {
        self.front.layout().size()
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.shadow.len() - self.free_ids.len()
    }

    /// Whether a request can be queued now.
    pub fn has_room(&self) -> bool {
        !self.closed && self.broken.is_none() && !self.free_ids.is_empty() && !self.front.is_full()
    }

    /// The protocol violation that broke the ring, if any.
    pub fn broken(&self) -> Option<RingError> {
        self.broken
    }

    /// Grants indirect pages writable from now on (persistent grants).
    pub fn set_indirect_writable(&mut self, writable: bool) {
        self.indirect_writable = writable;
    }

    fn indirect_page(&mut self, slot: usize) -> Option<&IndirectPage> {
        if self.indirect.get(slot)?.is_none() {
            let page = Pages::alloc(1)?;
            let gref =
                gnttab::grant_access(self.backend, page.gfn(0), !self.indirect_writable).ok()?;
            self.indirect[slot] = Some(IndirectPage { page, gref });
        }
        self.indirect.get(slot)?.as_ref()
    }

    /// Queues a read or write of `segs` at 512-byte `sector` (a direct
    /// request when it fits, else an indirect one) and records `shadow`.
    /// Fails (giving `shadow` back) when the ring is full or an indirect
    /// page cannot be had. Call [`Ring::push`] to publish.
    pub fn queue_rw(
        &mut self,
        write: bool,
        sector: u64,
        segs: &[GrantedSeg],
        shadow: Shadow,
    ) -> Result<(), Shadow> {
        let op = if write {
            bi::BLKIF_OP_WRITE
        } else {
            bi::BLKIF_OP_READ
        };
        if !self.has_room()
            || segs.len() > BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST * SEGS_PER_INDIRECT_FRAME
        {
            return Err(shadow);
        }
        let Some(&id) = self.free_ids.last() else {
            return Err(shadow);
        };
        let req = if segs.len() <= BLKIF_MAX_SEGMENTS_PER_REQUEST {
            let mut seg = [Segment::default(); BLKIF_MAX_SEGMENTS_PER_REQUEST];
            for (d, s) in seg.iter_mut().zip(segs) {
                *d = Segment {
                    gref: s.gref,
                    first_sect: s.first_sect,
                    last_sect: s.last_sect,
                };
            }
            Request::ReadWrite(ReadWrite {
                operation: op,
                nr_segments: segs.len() as u8,
                handle: self.handle,
                id: id as u64,
                sector_number: sector,
                seg,
            })
        } else {
            // One indirect page per slot holds 512 descriptors; more need
            // more pages than we keep, and the negotiation caps below that.
            if segs.len() > SEGS_PER_INDIRECT_FRAME {
                return Err(shadow);
            }
            let Some(ind) = self.indirect_page(id as usize) else {
                return Err(shadow);
            };
            let mut desc = [0u8; SEGMENT_SIZE];
            for (i, s) in segs.iter().enumerate() {
                Segment {
                    gref: s.gref,
                    first_sect: s.first_sect,
                    last_sect: s.last_sect,
                }
                .encode(&mut desc);
                ind.page.write(i * SEGMENT_SIZE, &desc);
            }
            let mut indirect_grefs = [0u32; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
            indirect_grefs[0] = ind.gref;
            Request::Indirect(Indirect {
                indirect_op: op,
                nr_segments: segs.len() as u16,
                id: id as u64,
                sector_number: sector,
                handle: self.handle,
                indirect_grefs,
            })
        };
        self.put(id, req, shadow)
    }

    /// Queues a FLUSH_DISKCACHE or WRITE_BARRIER with no data.
    pub fn queue_flush(&mut self, op: u8, shadow: Shadow) -> Result<(), Shadow> {
        if !self.has_room() {
            return Err(shadow);
        }
        let Some(&id) = self.free_ids.last() else {
            return Err(shadow);
        };
        let req = Request::ReadWrite(ReadWrite {
            operation: op,
            nr_segments: 0,
            handle: self.handle,
            id: id as u64,
            sector_number: 0,
            seg: Default::default(),
        });
        self.put(id, req, shadow)
    }

    fn put(&mut self, id: u32, req: Request, shadow: Shadow) -> Result<(), Shadow> {
        let mut slot = [0u8; 112];
        req.encode(Protocol::X86_64, &mut slot);
        if !self
            .front
            .put_request(&slot[..Protocol::X86_64.request_size()])
        {
            return Err(shadow);
        }
        self.free_ids.pop();
        self.shadow[id as usize] = Some(shadow);
        Ok(())
    }

    /// Publishes queued requests; true if the backend must be notified.
    pub fn push(&mut self) -> bool {
        if self.closed {
            return false;
        }
        self.front.push_requests()
    }

    /// Whether responses are waiting (cheap; for wait conditions).
    pub fn has_responses(&self) -> bool {
        if self.closed {
            return false;
        }
        self.broken.is_some() || self.front.unconsumed_responses().map_or(true, |n| n > 0)
    }

    /// Takes every available response, calling `done(shadow, status)` for
    /// each one that matches a request in flight; then re-arms the
    /// response event (RING_FINAL_CHECK_FOR_RESPONSES) and repeats if more
    /// arrived meanwhile. Returns how many matched.
    pub fn take_responses(
        &mut self,
        mut done: impl FnMut(Shadow, i16),
    ) -> Result<usize, RingError> {
        if let Some(e) = self.broken {
            return Err(e);
        }
        if self.closed {
            return Ok(0);
        }
        let mut matched = 0;
        loop {
            let n = match self.front.unconsumed_responses() {
                Ok(n) => n,
                Err(e) => {
                    self.broken = Some(e);
                    return Err(e);
                }
            };
            for _ in 0..n {
                let mut raw = [0u8; 16];
                self.front.take_response(&mut raw);
                let Some(rsp) = Response::decode(&raw) else {
                    continue;
                };
                let id = rsp.id;
                let Some(shadow) = usize::try_from(id)
                    .ok()
                    .and_then(|i| self.shadow.get_mut(i))
                    .and_then(Option::take)
                else {
                    log::warn!("blkfront: response for unknown request id {id} ignored");
                    continue;
                };
                self.free_ids.push(id as u32);
                matched += 1;
                done(shadow, rsp.status);
            }
            match self.front.final_check_for_responses() {
                Ok(true) => continue,
                Ok(false) => return Ok(matched),
                Err(e) => {
                    self.broken = Some(e);
                    return Err(e);
                }
            }
        }
    }

    /// Every in-flight request's shadow, taken out (for abandoning them
    /// after a timeout or a broken ring).
    pub fn abandon_all(&mut self) -> Vec<Shadow> {
        let mut out = Vec::new();
        for (id, s) in self.shadow.iter_mut().enumerate() {
            if let Some(sh) = s.take() {
                out.push(sh);
                self.free_ids.push(id as u32);
            }
        }
        out
    }

    /// Ends the grants of the ring and indirect pages and frees them; a
    /// page whose grant the backend still holds is leaked rather than
    /// reused. Call after the backend disconnected.
    pub fn teardown(&mut self) {
        self.pages.teardown();
        for ind in self.indirect.iter_mut() {
            if let Some(IndirectPage { page, gref }) = ind.take() {
                if gnttab::end_access(gref).is_ok() {
                    // SAFETY: its only grant ended.
                    unsafe { page.free() };
                }
            }
        }
        self.closed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen_abi::ring::{BackRing, RingMemory};

    impl Ring {
        /// A ring over fresh pages without grants (the host has no grant
        /// table): direct requests only.
        fn for_test(order: u32) -> Ring {
            let layout = RingLayout::with_order(order, Protocol::X86_64.slot_size()).unwrap();
            let pages = GrantedPages::ungranted(1 << order).unwrap();
            let front = FrontRing::init(pages.pages().unwrap().mem(), layout);
            let size = layout.size() as usize;
            Ring {
                pages,
                front,
                order,
                handle: 7,
                backend: 0,
                shadow: (0..size).map(|_| None).collect(),
                free_ids: (0..size as u32).rev().collect(),
                indirect: (0..size).map(|_| None).collect(),
                indirect_writable: false,
                broken: None,
                closed: false,
            }
        }

        fn back(&self) -> BackRing<SharedMem> {
            let p = self.pages.pages().unwrap();
            BackRing::new(p.mem(), self.front.layout())
        }
    }

    fn seg(gref: u32) -> GrantedSeg {
        GrantedSeg {
            gref,
            first_sect: 0,
            last_sect: 7,
        }
    }

    fn respond(back: &mut BackRing<SharedMem>, id: u64, status: i16) {
        let mut raw = [0u8; 16];
        Response {
            id,
            operation: 0,
            status,
        }
        .encode(Protocol::X86_64, &mut raw);
        back.put_response(&raw);
    }

    #[test]
    fn requests_reach_the_backend_and_responses_match_by_id() {
        let mut ring = Ring::for_test(1);
        assert_eq!(ring.size(), 64);
        for (i, sector) in [8u64, 16, 24].iter().enumerate() {
            let sh = Shadow {
                op: 0,
                sector: *sector,
                part: i,
                bytes: 4096,
                ..Default::default()
            };
            ring.queue_rw(i == 1, *sector, &[seg(100 + i as u32)], sh)
                .unwrap();
        }
        assert!(ring.push(), "the backend asked for a notification");
        assert_eq!(ring.in_flight(), 3);

        let mut back = ring.back();
        assert_eq!(back.unconsumed_requests(), Ok(3));
        let mut ids = Vec::new();
        for want_sector in [8u64, 16, 24] {
            let mut raw = [0u8; 112];
            back.take_request(&mut raw);
            let Some(Request::ReadWrite(r)) = Request::decode(Protocol::X86_64, &raw) else {
                panic!()
            };
            assert_eq!(
                (r.sector_number, r.nr_segments, r.handle),
                (want_sector, 1, 7)
            );
            assert_eq!(
                r.operation,
                if want_sector == 16 {
                    bi::BLKIF_OP_WRITE
                } else {
                    bi::BLKIF_OP_READ
                }
            );
            ids.push(r.id);
        }
        // Out of order, with an error, a duplicate and an id never issued.
        respond(&mut back, ids[2], 0);
        respond(&mut back, 999, 0);
        respond(&mut back, ids[0], bi::BLKIF_RSP_ERROR);
        respond(&mut back, ids[2], 0);
        back.push_responses();
        let mut seen = Vec::new();
        assert_eq!(
            ring.take_responses(|sh, st| seen.push((sh.sector, st))),
            Ok(2)
        );
        assert_eq!(seen, [(24, 0), (8, bi::BLKIF_RSP_ERROR)]);
        assert_eq!(ring.in_flight(), 1);
        assert!(!ring.has_responses());
        respond(&mut back, ids[1], 0);
        back.push_responses();
        assert!(ring.has_responses());
        assert_eq!(ring.take_responses(|_, _| {}), Ok(1));
        assert_eq!(ring.in_flight(), 0);
    }

    #[test]
    fn a_full_ring_refuses_and_a_runaway_backend_breaks_it() {
        let mut ring = Ring::for_test(0);
        for i in 0..32 {
            ring.queue_rw(false, i, &[seg(1)], Shadow::default())
                .unwrap();
        }
        assert!(!ring.has_room());
        assert!(ring
            .queue_rw(false, 99, &[seg(1)], Shadow::default())
            .is_err());
        assert!(ring
            .queue_flush(bi::BLKIF_OP_FLUSH_DISKCACHE, Shadow::default())
            .is_err());
        ring.push();
        // rsp_prod claims more responses than the ring has slots.
        let back = ring.back();
        back.memory().store_index(xen_abi::ring::RSP_PROD, 1000);
        assert!(ring
            .take_responses(|_, _| panic!("nothing may match"))
            .is_err());
        assert!(ring.broken().is_some());
        assert!(!ring.has_room());
        assert_eq!(ring.abandon_all().len(), 32);
    }

    #[test]
    fn flushes_carry_no_segments() {
        let mut ring = Ring::for_test(0);
        ring.queue_flush(
            bi::BLKIF_OP_FLUSH_DISKCACHE,
            Shadow {
                op: 3,
                ..Default::default()
            },
        )
        .unwrap();
        ring.push();
        let mut back = ring.back();
        let mut raw = [0u8; 112];
        back.take_request(&mut raw);
        let Some(Request::ReadWrite(r)) = Request::decode(Protocol::X86_64, &raw) else {
            panic!()
        };
        assert_eq!(
            (r.operation, r.nr_segments),
            (bi::BLKIF_OP_FLUSH_DISKCACHE, 0)
        );
        // More segments than an indirect page holds are refused outright.
        let many = alloc::vec![seg(1); SEGS_PER_INDIRECT_FRAME + 1];
        assert!(ring.queue_rw(false, 0, &many, Shadow::default()).is_err());
    }
}
