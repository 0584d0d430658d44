//! The two rings of one netif queue and their buffer pools: [`TxQueue`]
//! (packets out, each over one or more granted pages) and [`RxQueue`]
//! (granted pages posted empty, filled by the backend's copy).
//!
//! Buffers are persistent: every page is granted once when the queue is
//! made and stays granted until [`TxQueue::teardown`] / [`RxQueue::teardown`];
//! a packet only moves bytes into or out of them, never touches the grant
//! table. Request ids are buffer indices.
//!
//! Nothing the backend writes is believed unchecked: an id out of range or
//! not in flight, a status past the page, an offset past the page, a
//! packet of more slots than we allow, or a response producer more than a
//! ring ahead is dropped and counted in [`Stats`]; a producer index that
//! cannot be right marks the queue broken. Nothing here panics, and there
//! is no `unsafe` (memory comes from [`crate::shared_pages`]).

use alloc::vec::Vec;

use xen_abi::grant_table::GrantRef;
use xen_abi::netif::{
    self as ni, ExtraInfo, RxRequest, RxResponse, TxRequest, TxResponse, NETRXF_EXTRA_INFO,
    NETRXF_MORE_DATA, NETTXF_MORE_DATA,
};
use xen_abi::ring::{FrontRing, RingError};
use xen_abi::{DomId, PAGE_SIZE};

use crate::shared_pages::{GrantedPages, ShareError, SharedMem};

/// The most slots one received packet may take (Linux's netfront allows
/// MAX_SKB_FRAGS + 1 = 18 data slots; extra-info slots come on top).
pub const MAX_RX_SLOTS: u32 = ni::XEN_NETIF_NR_SLOTS_MIN as u32 + 4;

/// The largest packet we accept or send: the tx size field is 16 bits.
pub const MAX_PACKET: usize = ni::XEN_NETIF_MAX_TX_SIZE;

/// What was dropped or refused, and why (never a panic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets received and handed up.
    pub rx_packets: u64,
    /// Bytes of those packets.
    pub rx_bytes: u64,
    /// Packets sent (accepted onto the ring).
    pub tx_packets: u64,
    /// Bytes of those packets.
    pub tx_bytes: u64,
    /// rx responses with an error status, a size or offset past the page,
    /// or an id that is not the one posted in that slot.
    pub rx_bad_responses: u64,
    /// rx packets dropped (bad response, too many slots, too big).
    pub rx_dropped: u64,
    /// tx responses with an id out of range or not in flight.
    pub tx_bad_ids: u64,
    /// tx responses with an error or dropped status.
    pub tx_errors: u64,
    /// Packets not sent because the ring or the pool was full, or too big.
    pub tx_refused: u64,
    /// Received packets whose blank checksum (NETRXF_CSUM_BLANK) was filled in.
    pub rx_csum_blank: u64,
    /// Received packets that took more than one data slot.
    pub rx_multi_slot: u64,
    /// Packets received, per queue.
    pub rx_per_queue: [u64; super::MAX_QUEUES],
    /// Packets sent, per queue.
    pub tx_per_queue: [u64; super::MAX_QUEUES],
}

/// Why a queue could not be made.
pub type QueueSetupError = ShareError;

/// A ring page plus the generic front ring over it.
struct RingPage {
    page: GrantedPages,
    front: FrontRing<SharedMem>,
}

impl RingPage {
    fn new(
        backend: Option<DomId>,
        layout: xen_abi::ring::RingLayout,
    ) -> Result<RingPage, ShareError> {
        let page = match backend {
            Some(d) => GrantedPages::new(1, d, false)?,
            None => GrantedPages::ungranted(1).ok_or(ShareError::NoMemory)?,
        };
        let mem = page.pages().ok_or(ShareError::NoMemory)?.mem();
        Ok(RingPage {
            front: FrontRing::init(mem, layout),
            page,
        })
    }

    fn gref(&self) -> GrantRef {
        self.page.refs().first().copied().unwrap_or(0)
    }
}

fn pool(backend: Option<DomId>, count: usize, readonly: bool) -> Result<GrantedPages, ShareError> {
    match backend {
        Some(d) => GrantedPages::new(count, d, readonly),
        None => GrantedPages::ungranted(count).ok_or(ShareError::NoMemory),
    }
}

/// The grant of pool page `i` (its index itself in host tests, which have
/// no grant table).
fn pool_ref(pool: &GrantedPages, i: usize) -> GrantRef {
    pool.refs().get(i).copied().unwrap_or(i as GrantRef)
}

/// Slots (pages) a packet of `len` bytes takes on the tx ring.
pub fn tx_slots(len: usize) -> usize {
    len.div_ceil(PAGE_SIZE).max(1)
}

/// The tx requests for a packet of `len` bytes over buffers `ids` (one per
/// slot, in order): the first carries the whole size and `flags`, every
/// one but the last MORE_DATA, each at offset 0 of its page.
pub fn tx_requests(
    len: usize,
    flags: u16,
    ids: &[u16],
    gref: impl Fn(u16) -> GrantRef,
) -> Vec<TxRequest> {
    let n = ids.len();
    ids.iter()
        .enumerate()
        .map(|(i, &id)| {
            let chunk = (len - i * PAGE_SIZE).min(PAGE_SIZE);
            let mut f = if i == 0 { flags } else { 0 };
            if i + 1 < n {
                f |= NETTXF_MORE_DATA;
            }
            TxRequest {
                gref: gref(id),
                offset: 0,
                flags: f,
                id,
                size: if i == 0 { len as u16 } else { chunk as u16 },
            }
        })
        .collect()
}

/// The transmit ring and its pool of granted pages.
pub struct TxQueue {
    ring: RingPage,
    bufs: GrantedPages,
    free: Vec<u16>,
    in_flight: Vec<bool>,
    broken: Option<RingError>,
}

impl TxQueue {
    /// A tx ring and `buffers` pages granted read-only to `backend` (`None`:
    /// ungranted, for host tests).
    pub fn new(backend: Option<DomId>, buffers: usize) -> Result<TxQueue, QueueSetupError> {
        let buffers = buffers.clamp(1, ni::tx_layout().size() as usize);
        Ok(TxQueue {
            ring: RingPage::new(backend, ni::tx_layout())?,
            bufs: pool(backend, buffers, true)?,
            free: (0..buffers as u16).rev().collect(),
            in_flight: alloc::vec![false; buffers],
            broken: None,
        })
    }

    /// The grant of the ring page (`tx-ring-ref`).
    pub fn ring_ref(&self) -> GrantRef {
        self.ring.gref()
    }

    /// Whether a packet of `len` bytes fits now.
    pub fn has_room(&self, len: usize) -> bool {
        let n = tx_slots(len);
        self.broken.is_none()
            && len <= MAX_PACKET
            && self.free.len() >= n
            && self.ring.front.free_requests() as usize >= n
    }

    /// Queues `frame` with tx `flags` (NETTXF_*); false (and counted) when
    /// it does not fit now. Call [`TxQueue::push`] to publish.
    pub fn send(&mut self, frame: &[u8], flags: u16, stats: &mut Stats) -> bool {
        if frame.is_empty() || !self.has_room(frame.len()) {
            stats.tx_refused += 1;
            return false;
        }
        let n = tx_slots(frame.len());
        let ids: Vec<u16> = (0..n).filter_map(|_| self.free.pop()).collect();
        let Some(pages) = self.bufs.pages() else {
            self.free.extend(ids);
            stats.tx_refused += 1;
            return false;
        };
        let mut slot = [0u8; ni::TX_SLOT_SIZE];
        for (i, req) in tx_requests(frame.len(), flags, &ids, |id| {
            pool_ref(&self.bufs, id as usize)
        })
        .iter()
        .enumerate()
        {
            let start = i * PAGE_SIZE;
            let end = (start + PAGE_SIZE).min(frame.len());
            pages.write(req.id as usize * PAGE_SIZE, &frame[start..end]);
            req.encode(&mut slot);
            // Room was checked above for every slot.
            self.ring.front.put_request(&slot);
            self.in_flight[req.id as usize] = true;
        }
        stats.tx_packets += 1;
        stats.tx_bytes += frame.len() as u64;
        true
    }

    /// Publishes queued requests; true if the backend must be notified.
    pub fn push(&mut self) -> bool {
        self.broken.is_none() && self.ring.front.push_requests()
    }

    /// Whether responses are waiting.
    pub fn has_responses(&self) -> bool {
        self.broken.is_none()
            && self
                .ring
                .front
                .unconsumed_responses()
                .map_or(true, |n| n > 0)
    }

    /// Takes every tx response, freeing the buffers they name, and re-arms
    /// the response event. Returns the number of buffers freed.
    pub fn reap(&mut self, stats: &mut Stats) -> Result<usize, RingError> {
        if let Some(e) = self.broken {
            return Err(e);
        }
        let mut freed = 0;
        loop {
            let n = self
                .ring
                .front
                .unconsumed_responses()
                .inspect_err(|&e| self.broken = Some(e))?;
            for _ in 0..n {
                let mut raw = [0u8; ni::TX_SLOT_SIZE];
                self.ring.front.take_response(&mut raw);
                let rsp = TxResponse::decode(&raw);
                if rsp.status == ni::NETIF_RSP_NULL {
                    continue; // an extra-info slot's answer
                }
                match self.in_flight.get_mut(rsp.id as usize) {
                    Some(f @ true) => {
                        *f = false;
                        self.free.push(rsp.id);
                        freed += 1;
                    }
                    _ => {
                        stats.tx_bad_ids += 1;
                        continue;
                    }
                }
                if rsp.status != ni::NETIF_RSP_OKAY {
                    stats.tx_errors += 1;
                }
            }
            if !self
                .ring
                .front
                .final_check_for_responses()
                .inspect_err(|&e| self.broken = Some(e))?
            {
                return Ok(freed);
            }
        }
    }

    /// Buffers in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.iter().filter(|&&f| f).count()
    }

    /// The protocol violation that broke the queue, if any.
    pub fn broken(&self) -> Option<RingError> {
        self.broken
    }

    /// Ends the grants and frees what the backend no longer holds; returns
    /// how many grants it still held (their pages are leaked).
    pub fn teardown(&mut self) -> usize {
        self.broken.get_or_insert(RingError::ResponseOverflow {
            rsp_prod: 0,
            rsp_cons: 0,
            size: 0,
        });
        self.ring.page.teardown() + self.bufs.teardown()
    }
}

/// What came with a received packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxMeta {
    /// NETRXF_* of the first slot.
    pub flags: u16,
    /// Slots it took (data and extra info).
    pub slots: u32,
    /// The GSO segment size the backend named, if any.
    pub gso_size: Option<u16>,
}

/// The receive ring and its pool of granted pages, all posted.
pub struct RxQueue {
    ring: RingPage,
    bufs: GrantedPages,
    /// Buffers not on the ring.
    free: Vec<u16>,
    /// Which buffer was posted at each ring position (mod the ring size):
    /// responses, and the extra-info slots that carry no id at all, are
    /// matched by position, as Linux's netfront does.
    posted: Vec<Option<u16>>,
    broken: Option<RingError>,
}

impl RxQueue {
    /// An rx ring and `buffers` pages granted writable to `backend` (`None`:
    /// ungranted, for host tests). Nothing is posted until [`RxQueue::refill`].
    pub fn new(backend: Option<DomId>, buffers: usize) -> Result<RxQueue, QueueSetupError> {
        let size = ni::rx_layout().size() as usize;
        let buffers = buffers.clamp(1, size);
        Ok(RxQueue {
            ring: RingPage::new(backend, ni::rx_layout())?,
            bufs: pool(backend, buffers, false)?,
            free: (0..buffers as u16).rev().collect(),
            posted: alloc::vec![None; size],
            broken: None,
        })
    }

    /// The grant of the ring page (`rx-ring-ref`).
    pub fn ring_ref(&self) -> GrantRef {
        self.ring.gref()
    }

    /// Posts every free buffer the ring has room for and publishes them;
    /// true if the backend must be notified.
    pub fn refill(&mut self) -> bool {
        if self.broken.is_some() {
            return false;
        }
        let mask = self.posted.len() - 1;
        let mut slot = [0u8; ni::RX_SLOT_SIZE];
        while !self.ring.front.is_full() {
            let Some(id) = self.free.pop() else { break };
            let pos = self.ring.front.req_prod_pvt() as usize & mask;
            RxRequest {
                id,
                gref: pool_ref(&self.bufs, id as usize),
            }
            .encode(&mut slot);
            self.ring.front.put_request(&slot);
            self.posted[pos] = Some(id);
        }
        self.ring.front.push_requests()
    }

    /// Whether responses are waiting.
    pub fn has_responses(&self) -> bool {
        self.broken.is_none()
            && self
                .ring
                .front
                .unconsumed_responses()
                .map_or(true, |n| n > 0)
    }

    /// Slots the packet at the head of the ring takes, once all of them
    /// are published: `Some((n, whole))`; `None` while it is incomplete.
    /// `whole` is false for a chain that can never be a packet (longer than
    /// [`MAX_RX_SLOTS`], or still open with every posted buffer used up):
    /// those slots are taken and dropped so that the ring keeps moving.
    fn head_packet_slots(&self, avail: u32) -> Option<(u32, bool)> {
        let mut raw = [0u8; ni::RX_SLOT_SIZE];
        let mut k = 0;
        let mut extra = false;
        // Whether the last data slot said MORE_DATA: after the first
        // slot's extra-info slots, the packet goes on only if it did.
        let mut more = false;
        loop {
            if k >= avail {
                let outstanding = self
                    .ring
                    .front
                    .req_prod_pvt()
                    .wrapping_sub(self.ring.front.rsp_cons());
                return (avail >= outstanding).then_some((avail, false));
            }
            if k >= MAX_RX_SLOTS {
                return Some((k, false));
            }
            self.ring.front.peek_response(k, &mut raw);
            k += 1;
            if extra {
                extra = ExtraInfo::decode(&raw).more();
                if !extra && !more {
                    return Some((k, true));
                }
                continue;
            }
            let r = RxResponse::decode(&raw);
            // Extra info follows only the first response.
            extra = k == 1 && r.flags & NETRXF_EXTRA_INFO != 0;
            more = r.flags & NETRXF_MORE_DATA != 0;
            if !extra && !more {
                return Some((k, true));
            }
        }
    }

    /// Takes the next complete packet into `out` (cleared first); `None`
    /// when there is none. Bad packets are dropped and counted on the way.
    /// The buffers go back to the pool; call [`RxQueue::refill`] after.
    pub fn next_packet(
        &mut self,
        out: &mut Vec<u8>,
        stats: &mut Stats,
    ) -> Result<Option<RxMeta>, RingError> {
        if let Some(e) = self.broken {
            return Err(e);
        }
        loop {
            let avail = self
                .ring
                .front
                .unconsumed_responses()
                .inspect_err(|&e| self.broken = Some(e))?;
            let avail = if avail == 0 {
                if !self
                    .ring
                    .front
                    .final_check_for_responses()
                    .inspect_err(|&e| self.broken = Some(e))?
                {
                    return Ok(None);
                }
                self.ring
                    .front
                    .unconsumed_responses()
                    .inspect_err(|&e| self.broken = Some(e))?
            } else {
                avail
            };
            let Some((slots, whole)) = self.head_packet_slots(avail) else {
                // More slots of this packet are still to come; a backend
                // that never sends them stalls only its own device.
                return Ok(None);
            };
            out.clear();
            let mut ok = whole;
            let mut meta = RxMeta {
                slots,
                ..RxMeta::default()
            };
            let mut extra = false;
            let mask = self.posted.len() - 1;
            for k in 0..slots {
                let pos = self.ring.front.rsp_cons() as usize & mask;
                let mut raw = [0u8; ni::RX_SLOT_SIZE];
                self.ring.front.take_response(&mut raw);
                // Whatever the slot says, the buffer posted there is ours
                // again.
                let Some(buf) = self.posted[pos].take() else {
                    // A response for a slot never posted.
                    ok = false;
                    stats.rx_bad_responses += 1;
                    continue;
                };
                self.free.push(buf);
                if extra {
                    let e = ExtraInfo::decode(&raw);
                    if let ExtraInfo::Gso { size, .. } = e {
                        meta.gso_size = Some(size);
                    }
                    extra = e.more();
                    continue;
                }
                let r = RxResponse::decode(&raw);
                if k == 0 {
                    meta.flags = r.flags;
                    extra = r.flags & NETRXF_EXTRA_INFO != 0;
                }
                let (off, len) = (r.offset as usize, r.status as isize);
                if r.id != buf || len < 0 || off + len as usize > PAGE_SIZE {
                    ok = false;
                    stats.rx_bad_responses += 1;
                    continue;
                }
                if !ok {
                    continue;
                }
                let len = len as usize;
                if out.len() + len > MAX_PACKET + 14 {
                    ok = false;
                    continue;
                }
                if let Some(p) = self.bufs.pages() {
                    let at = out.len();
                    out.resize(at + len, 0);
                    p.read(buf as usize * PAGE_SIZE + off, &mut out[at..]);
                }
            }
            if ok && !out.is_empty() {
                if slots > 1 + meta.gso_size.is_some() as u32 {
                    stats.rx_multi_slot += 1;
                }
                stats.rx_packets += 1;
                stats.rx_bytes += out.len() as u64;
                return Ok(Some(meta));
            }
            stats.rx_dropped += 1;
        }
    }

    /// Buffers on the ring.
    pub fn posted(&self) -> usize {
        self.posted.iter().filter(|p| p.is_some()).count()
    }

    /// The protocol violation that broke the queue, if any.
    pub fn broken(&self) -> Option<RingError> {
        self.broken
    }

    /// Ends the grants and frees what the backend no longer holds; returns
    /// how many grants it still held (their pages are leaked).
    pub fn teardown(&mut self) -> usize {
        self.broken.get_or_insert(RingError::ResponseOverflow {
            rsp_prod: 0,
            rsp_cons: 0,
            size: 0,
        });
        self.ring.page.teardown() + self.bufs.teardown()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen_abi::ring::{BackRing, RingMemory, RSP_PROD};

    fn back(r: &RingPage) -> BackRing<SharedMem> {
        BackRing::new(r.page.pages().unwrap().mem(), r.front.layout())
    }

    #[test]
    fn a_packet_over_several_pages_chains_with_more_data() {
        let reqs = tx_requests(9000, ni::NETTXF_DATA_VALIDATED, &[4, 7, 1], |id| {
            100 + id as u32
        });
        assert_eq!(reqs.len(), 3);
        assert_eq!(
            (reqs[0].size, reqs[0].flags),
            (9000, ni::NETTXF_DATA_VALIDATED | NETTXF_MORE_DATA)
        );
        assert_eq!(
            (reqs[1].size, reqs[1].flags, reqs[1].gref),
            (4096, NETTXF_MORE_DATA, 107)
        );
        assert_eq!(
            (reqs[2].size, reqs[2].flags, reqs[2].id),
            (9000 - 8192, 0, 1)
        );
        assert_eq!(tx_slots(60), 1);
        assert_eq!(tx_slots(4096), 1);
        assert_eq!(tx_slots(4097), 2);
    }

    #[test]
    fn tx_sends_reaps_and_refuses_bad_ids() {
        let mut tx = TxQueue::new(None, 4).unwrap();
        let mut st = Stats::default();
        let frame: Vec<u8> = (0..6000u32).map(|i| i as u8).collect();
        assert!(tx.send(&frame, 0, &mut st));
        assert!(tx.send(&[1; 60], 0, &mut st));
        assert!(!tx.send(&frame, 0, &mut st), "one buffer left, two needed");
        assert_eq!(st.tx_refused, 1);
        assert!(tx.push());
        let mut b = back(&tx.ring);
        assert_eq!(b.unconsumed_requests(), Ok(3));
        let mut got = Vec::new();
        for _ in 0..3 {
            let mut raw = [0u8; 12];
            b.take_request(&mut raw);
            got.push(TxRequest::decode(&raw));
        }
        assert_eq!(got[0].size, 6000);
        assert_eq!(got[1].size, 6000 - 4096);
        // The bytes are in the pages the requests name.
        let mut page = [0u8; 8];
        tx.bufs
            .pages()
            .unwrap()
            .read(got[1].id as usize * PAGE_SIZE, &mut page);
        assert_eq!(page, frame[4096..4104]);
        let mut rsp = [0u8; 12];
        for (id, status) in [
            (got[0].id, 0),
            (got[1].id, 0),
            (999, 0),
            (got[1].id, 0),
            (got[2].id, ni::NETIF_RSP_ERROR),
            (0, ni::NETIF_RSP_NULL),
        ] {
            TxResponse { id, status }.encode(&mut rsp);
            b.put_response(&rsp);
        }
        b.push_responses();
        assert_eq!(tx.reap(&mut st), Ok(3));
        assert_eq!((st.tx_bad_ids, st.tx_errors), (2, 1));
        assert_eq!(tx.in_flight(), 0);
        // A producer a ring ahead breaks the queue, without a panic.
        b.memory().store_index(RSP_PROD, 100_000);
        assert!(tx.reap(&mut st).is_err());
        assert!(!tx.send(&[0; 60], 0, &mut st));
    }

    /// The backend side of an rx test: takes posted requests, answers.
    struct FakeBack {
        b: BackRing<SharedMem>,
        reqs: Vec<RxRequest>,
    }

    impl FakeBack {
        fn new(rx: &RxQueue) -> FakeBack {
            let mut fb = FakeBack {
                b: back(&rx.ring),
                reqs: Vec::new(),
            };
            fb.take();
            fb
        }

        /// Takes newly posted requests (kept so that `pop` gives the oldest).
        fn take(&mut self) {
            let n = self.b.unconsumed_requests().unwrap();
            let mut new = Vec::new();
            for _ in 0..n {
                let mut raw = [0u8; 8];
                self.b.take_request(&mut raw);
                new.push(RxRequest::decode(&raw));
            }
            new.reverse();
            new.append(&mut self.reqs);
            self.reqs = new;
        }

        /// Writes `data` into the next posted buffer and answers it.
        fn fill(&mut self, rx: &RxQueue, data: &[u8], offset: u16, flags: u16) {
            let req = self.reqs.pop().unwrap();
            rx.bufs
                .pages()
                .unwrap()
                .write(req.id as usize * PAGE_SIZE + offset as usize, data);
            self.raw(RxResponse {
                id: req.id,
                offset,
                flags,
                status: data.len() as i16,
            });
        }

        fn raw(&mut self, r: RxResponse) {
            let mut raw = [0u8; 8];
            r.encode(&mut raw);
            self.b.put_response(&raw);
        }

        fn extra(&mut self, e: ExtraInfo) {
            self.reqs.pop().unwrap();
            let mut raw = [0u8; 8];
            e.encode(&mut raw);
            self.b.put_response(&raw);
        }
    }

    #[test]
    fn rx_reassembles_slots_and_skips_extra_info() {
        let mut rx = RxQueue::new(None, 8).unwrap();
        let mut st = Stats::default();
        assert!(rx.refill());
        assert_eq!(rx.posted(), 8);
        let mut fb = FakeBack::new(&rx);
        let mut out = Vec::new();
        // One packet: first slot with a GSO extra, then two more slots.
        fb.fill(
            &rx,
            &[1; 4000],
            96,
            NETRXF_MORE_DATA | NETRXF_EXTRA_INFO | ni::NETRXF_CSUM_BLANK,
        );
        fb.extra(ExtraInfo::Gso {
            size: 1448,
            gso_type: 1,
            features: 0,
            more: false,
        });
        fb.fill(&rx, &[2; 4096], 0, NETRXF_MORE_DATA);
        fb.b.push_responses();
        // Incomplete: the last slot is still to come.
        assert_eq!(rx.next_packet(&mut out, &mut st), Ok(None));
        fb.fill(&rx, &[3; 10], 0, 0);
        fb.fill(&rx, &[4; 60], 0, ni::NETRXF_DATA_VALIDATED);
        fb.b.push_responses();
        let m = rx.next_packet(&mut out, &mut st).unwrap().unwrap();
        assert_eq!(
            (m.slots, m.gso_size, m.flags & ni::NETRXF_CSUM_BLANK != 0),
            (4, Some(1448), true)
        );
        assert_eq!(out.len(), 4000 + 4096 + 10);
        assert_eq!((out[0], out[4000], out[8096]), (1, 2, 3));
        let m = rx.next_packet(&mut out, &mut st).unwrap().unwrap();
        assert_eq!((m.slots, out.len(), out[0]), (1, 60, 4));
        assert_eq!(rx.next_packet(&mut out, &mut st), Ok(None));
        assert_eq!(st.rx_packets, 2);
        // A GSO packet in one data slot (no MORE_DATA) ends after its
        // extra-info slot: the next slot is the next packet's.
        rx.refill();
        fb.take();
        fb.fill(&rx, &[5; 2962], 0, NETRXF_EXTRA_INFO);
        fb.extra(ExtraInfo::Gso {
            size: 1448,
            gso_type: 1,
            features: 0,
            more: false,
        });
        fb.fill(&rx, &[6; 3000], 0, NETRXF_EXTRA_INFO | NETRXF_MORE_DATA);
        fb.extra(ExtraInfo::Gso {
            size: 1448,
            gso_type: 1,
            features: 0,
            more: false,
        });
        fb.fill(&rx, &[7; 100], 0, 0);
        fb.b.push_responses();
        let m = rx.next_packet(&mut out, &mut st).unwrap().unwrap();
        assert_eq!((m.slots, out.len(), out[0]), (2, 2962, 5));
        let m = rx.next_packet(&mut out, &mut st).unwrap().unwrap();
        assert_eq!((m.slots, out.len(), out[0], out[3000]), (3, 3100, 6, 7));
        assert_eq!((st.rx_dropped, st.rx_bad_responses), (0, 0));
        // Every buffer goes back on the ring.
        rx.refill();
        assert_eq!(rx.posted(), 8);
    }

    #[test]
    fn rx_drops_lies_and_keeps_going() {
        let mut rx = RxQueue::new(None, 16).unwrap();
        let mut st = Stats::default();
        rx.refill();
        let mut fb = FakeBack::new(&rx);
        let mut out = Vec::new();
        // Size past the page, negative status, offset past the page, an id
        // that is not the one posted there; then a good packet.
        let r = fb.reqs.pop().unwrap();
        fb.raw(RxResponse {
            id: r.id,
            offset: 0,
            flags: 0,
            status: 5000,
        });
        let r = fb.reqs.pop().unwrap();
        fb.raw(RxResponse {
            id: r.id,
            offset: 0,
            flags: 0,
            status: ni::NETIF_RSP_ERROR,
        });
        let r = fb.reqs.pop().unwrap();
        fb.raw(RxResponse {
            id: r.id,
            offset: 4000,
            flags: 0,
            status: 200,
        });
        let r = fb.reqs.pop().unwrap();
        fb.raw(RxResponse {
            id: r.id ^ 1,
            offset: 0,
            flags: 0,
            status: 60,
        });
        fb.fill(&rx, &[9; 60], 0, 0);
        fb.b.push_responses();
        let m = rx.next_packet(&mut out, &mut st).unwrap();
        assert!(m.is_some());
        assert_eq!((out.len(), out[0]), (60, 9));
        assert_eq!(
            (st.rx_dropped, st.rx_bad_responses, st.rx_packets),
            (4, 4, 1)
        );
        // A chain of MORE_DATA that never ends is dropped once it has used
        // every buffer.
        rx.refill();
        fb.take();
        for _ in 0..16 {
            fb.fill(&rx, &[1; 10], 0, NETRXF_MORE_DATA);
        }
        fb.b.push_responses();
        assert_eq!(
            rx.next_packet(&mut out, &mut st),
            Ok(None),
            "every buffer used: dropped"
        );
        assert_eq!(st.rx_dropped, 5);
        assert!(rx.broken().is_none());
        assert_eq!(rx.posted(), 0);
        rx.refill();
        assert_eq!(rx.posted(), 16);
        // A producer past what was posted breaks the queue.
        fb.b.memory().store_index(RSP_PROD, 7_000_000);
        assert!(rx.next_packet(&mut out, &mut st).is_err());
        assert!(!rx.refill());
    }
}
