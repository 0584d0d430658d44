//! One queue of a vif: its tx ring (packets from the guest, gathered from
//! their slots and written to the packet side) and its rx ring (frames from
//! the packet side, copied into the pages the guest posted), served as
//! Linux's xen-netback serves them (drivers/net/xen-netback/netback.c and
//! rx.c), on the caller's thread.
//!
//! Nothing here trusts the guest: every slot is copied once before it is
//! used, every grant goes through the checked map path, and a malformed
//! packet is answered NETIF_RSP_ERROR and counted. What Linux treats as
//! fatal (xenvif_fatal_tx_err: ring indices out of range, a packet longer
//! than the queued slots or than [`FATAL_SKB_SLOTS`], a buffer crossing its
//! page, an invalid extra-info type, a GSO extra with a bad type or no size) is returned as [`Fatal`] and the vif
//! stops serving this frontend until it reconnects.

use xen_abi::netif::{self, ExtraInfo, RxRequest, RxResponse, TxRequest, TxResponse};
use xen_abi::ring::BackRing;
use xen_abi::PAGE_SIZE;

use super::io::{PacketIo, MAX_FRAME, VNET_HDR_LEN};
use super::metrics::{Event, Metrics};
use super::vnet::{self, RxOffloads, VnetHdr};
use crate::backends::transport::ring::GuestRingPages;
use crate::xen::gnttab::GrantError;
use crate::xen::Domain;

/// Slots a packet may use before it is dropped (XEN_NETBK_LEGACY_SLOTS_MAX).
pub const MAX_SKB_SLOTS: usize = netif::XEN_NETIF_NR_SLOTS_MIN;
/// Slots a packet may use before the frontend is judged broken (Linux's
/// fatal_skb_slots default, FATAL_SKB_SLOTS_DEFAULT).
pub const FATAL_SKB_SLOTS: usize = 20;
/// Most multicast addresses a frontend may subscribe (XEN_NETBK_MCAST_MAX).
pub const MCAST_MAX: usize = 64;
/// Packets served per call in each direction, so neither starves the other.
const BUDGET: usize = 256;
const ETH_HLEN: usize = 14;
/// The last valid extra-info type + 1 (XEN_NETIF_EXTRA_TYPE_MAX).
const EXTRA_TYPE_MAX: u8 = 6;

/// The frontend broke the protocol beyond one packet: the message says how.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Fatal(pub String);

/// What the frontend negotiated for this vif.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Negotiated {
    /// feature-sg: a received frame may span several rx slots.
    pub sg: bool,
    /// What the guest can take on receive.
    pub rx: RxOffloads,
    /// request-multicast-control: filter received multicast.
    pub multicast_control: bool,
}

/// A frame read from the packet side: its length in the buffer (vnet
/// header included), its NETRXF_* flags and its GSO extra `(type, size)`.
type RxFrame = (usize, u16, Option<(u8, u16)>);

/// One tx/rx ring pair and its rx state.
pub struct Queue {
    tx: BackRing<GuestRingPages>,
    rx: BackRing<GuestRingPages>,
    feat: Negotiated,
    /// A frame read from the packet side that waits for rx slots: vnet
    /// header + frame, its length, its rx flags and GSO.
    pending: Option<RxFrame>,
    buf: Vec<u8>,
    mcast: Vec<[u8; 6]>,
}

/// What a service call did that the caller must act on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Notify {
    /// Raise the tx event channel.
    pub tx: bool,
    /// Raise the rx event channel.
    pub rx: bool,
    /// The tx budget ran out with requests still queued: serve again
    /// without waiting for an event. The frontend sends none for them: it
    /// notifies only when its producer passes `req_event`, which is set
    /// when the backend finds the ring empty, and this time it did not
    /// (Linux's NAPI poll reschedules itself when its budget runs out).
    pub more_tx: bool,
}

fn tx_rsp(id: u16, status: i16) -> [u8; netif::TX_SLOT_SIZE] {
    let mut b = [0u8; netif::TX_SLOT_SIZE];
    TxResponse { id, status }.encode(&mut b);
    b
}

/// Copies `len` bytes at `offset` of the page `gref` grants (read-only).
fn copy_from_grant(
    dom: &Domain,
    gref: u32,
    offset: usize,
    out: &mut [u8],
) -> Result<(), GrantError> {
    let m = dom.gnttab.map(&dom.ram, gref, false, 0)?;
    let ok = dom.ram.read(m.gpa() + offset as u64, out).is_ok();
    dom.gnttab.unmap(&dom.ram, m);
    if ok {
        Ok(())
    } else {
        Err(GrantError::Revoked { gref })
    }
}

/// Copies `data` to the start of the page `gref` grants (writable).
fn copy_to_grant(dom: &Domain, gref: u32, data: &[u8]) -> Result<(), GrantError> {
    let m = dom.gnttab.map(&dom.ram, gref, true, 0)?;
    let ok = dom.ram.write(m.gpa(), data).is_ok();
    dom.gnttab.unmap(&dom.ram, m);
    if ok {
        Ok(())
    } else {
        Err(GrantError::Revoked { gref })
    }
}

impl Queue {
    /// A queue over the mapped `tx` and `rx` rings with what the frontend
    /// negotiated.
    pub fn new(
        tx: BackRing<GuestRingPages>,
        rx: BackRing<GuestRingPages>,
        feat: Negotiated,
    ) -> Self {
        Queue {
            tx,
            rx,
            feat,
            pending: None,
            buf: vec![0; MAX_FRAME],
            mcast: Vec::new(),
        }
    }

    /// What the frontend negotiated.
    pub fn negotiated(&self) -> Negotiated {
        self.feat
    }

    /// Whether the packet side should be read: no frame is waiting for rx slots.
    pub fn wants_frames(&self) -> bool {
        self.pending.is_none()
    }

    /// Serves the tx ring: every complete packet on it is checked, gathered
    /// and sent to `io`, and every slot answered. Err: the frontend broke
    /// the ring (the vif must stop serving it).
    pub fn serve_tx(
        &mut self,
        dom: &Domain,
        io: &mut dyn PacketIo,
        m: &Metrics,
    ) -> Result<Notify, Fatal> {
        let broke = |e: xen_abi::ring::RingError| Fatal(format!("frontend broke the tx ring: {e}"));
        let mut notify = Notify { more_tx: true, ..Notify::default() };
        let mut frame = Vec::with_capacity(2048);
        for _ in 0..BUDGET {
            let mut avail = self.tx.unconsumed_requests().map_err(broke)?;
            if avail == 0 {
                if !self.tx.final_check_for_requests().map_err(broke)? {
                    notify.more_tx = false;
                    break;
                }
                avail = self.tx.unconsumed_requests().map_err(broke)?;
            }
            self.tx_packet(dom, io, m, avail as usize, &mut frame)?;
            if self.tx.push_responses() {
                notify.tx = true;
            }
        }
        Ok(notify)
    }

    /// Takes one packet (its first request, extra-info slots and chained
    /// requests, all within the `avail` queued slots) and answers it.
    fn tx_packet(
        &mut self,
        dom: &Domain,
        io: &mut dyn PacketIo,
        m: &Metrics,
        avail: usize,
        frame: &mut Vec<u8>,
    ) -> Result<(), Fatal> {
        let mut slot = [0u8; netif::TX_SLOT_SIZE];
        self.tx.take_request(&mut slot);
        let first = TxRequest::decode(&slot);
        let mut used = 1;

        // Extra-info slots (xenvif_get_extras).
        let mut extras = 0u16;
        let mut gso = None;
        let mut mcast = None;
        if first.flags & netif::NETTXF_EXTRA_INFO != 0 {
            loop {
                if used >= avail {
                    return Err(Fatal("missing extra info".into()));
                }
                self.tx.take_request(&mut slot);
                used += 1;
                extras += 1;
                let e = ExtraInfo::decode(&slot);
                if slot[0] == 0 || slot[0] >= EXTRA_TYPE_MAX {
                    return Err(Fatal(format!("invalid extra type: {}", slot[0])));
                }
                match e {
                    // xenvif_set_skb_gso: a bad type or no size is fatal.
                    ExtraInfo::Gso { size, gso_type, .. } => {
                        if gso_type != netif::XEN_NETIF_GSO_TYPE_TCPV4 && gso_type != netif::XEN_NETIF_GSO_TYPE_TCPV6 {
                            return Err(Fatal(format!("bad GSO type {gso_type}")));
                        }
                        if size == 0 {
                            return Err(Fatal("GSO size must not be zero".into()));
                        }
                        gso = Some((gso_type, size))
                    }
                    ExtraInfo::Multicast { add, addr, .. } => mcast = Some((add, addr)),
                    ExtraInfo::Other { .. } => {}
                }
                if !e.more() {
                    break;
                }
            }
        }
        let respond_first = |q: &mut Self, status: i16| {
            q.tx.put_response(&tx_rsp(first.id, status));
            for _ in 0..extras {
                q.tx.put_response(&tx_rsp(0, netif::NETIF_RSP_NULL));
            }
        };

        // A multicast subscription is a request without data (xenvif_mcast_add/del).
        if let Some((add, addr)) = mcast {
            let ok = if add {
                if !self.mcast.contains(&addr) && self.mcast.len() < MCAST_MAX {
                    self.mcast.push(addr);
                }
                self.mcast.contains(&addr)
            } else {
                self.mcast.retain(|a| *a != addr);
                true
            };
            respond_first(
                self,
                if ok {
                    netif::NETIF_RSP_OKAY
                } else {
                    netif::NETIF_RSP_ERROR
                },
            );
            return Ok(());
        }

        // The chained requests (xenvif_count_requests): all are read before
        // any data moves; a packet over the limits is dropped whole.
        let mut chain: Vec<TxRequest> = Vec::new();
        let mut first_size = first.size;
        let mut drop: Option<&'static str> = None;
        let mut more = first.flags & netif::NETTXF_MORE_DATA != 0;
        while more {
            let slots = chain.len() + 1;
            if used >= avail {
                return Err(Fatal(format!(
                    "asked for {} slots but only {avail} are queued",
                    used + 1
                )));
            }
            if slots >= FATAL_SKB_SLOTS {
                return Err(Fatal(format!(
                    "a packet of more than {FATAL_SKB_SLOTS} slots"
                )));
            }
            if drop.is_none() && slots >= MAX_SKB_SLOTS {
                drop = Some("too many slots");
            }
            self.tx.take_request(&mut slot);
            used += 1;
            let t = TxRequest::decode(&slot);
            if drop.is_none() && t.size > first_size {
                drop = Some("a buffer is larger than the rest of its packet");
            }
            first_size = first_size.wrapping_sub(t.size);
            if usize::from(t.offset) + usize::from(t.size) > PAGE_SIZE {
                return Err(Fatal("a tx buffer crosses its page".into()));
            }
            more = t.flags & netif::NETTXF_MORE_DATA != 0;
            chain.push(t);
        }
        if drop.is_none() && usize::from(first_size) < ETH_HLEN {
            drop = Some("the first buffer is shorter than an Ethernet header");
        }
        if drop.is_none() && usize::from(first.offset) + usize::from(first_size) > PAGE_SIZE {
            return Err(Fatal("a tx buffer crosses its page".into()));
        }

        // Gather the data through the checked grant path.
        let mut status = netif::NETIF_RSP_OKAY;
        if let Some(why) = drop {
            log::debug!("tx packet {} dropped: {why}", first.id);
            status = netif::NETIF_RSP_ERROR;
        } else {
            frame.clear();
            frame.resize(usize::from(first.size), 0);
            let mut at = 0;
            let pieces = std::iter::once((first.gref, first.offset, first_size))
                .chain(chain.iter().map(|t| (t.gref, t.offset, t.size)));
            for (gref, offset, size) in pieces {
                let size = usize::from(size);
                if let Err(e) = copy_from_grant(dom, gref, offset.into(), &mut frame[at..at + size])
                {
                    log::debug!("tx packet {} dropped: {e}", first.id);
                    status = netif::NETIF_RSP_ERROR;
                    break;
                }
                at += size;
            }
            if status == netif::NETIF_RSP_OKAY {
                match vnet::tx_header(frame, first.flags, gso) {
                    Ok(h) => match io.send(&h.encode(), frame) {
                        Ok(()) => m.count(Event::TxPacket(frame.len() as u64)),
                        Err(e) => {
                            log::debug!("tx packet {}: the host side refused it: {e}", first.id);
                            m.count(Event::TxDropped);
                        }
                    },
                    Err(e) => {
                        log::debug!("tx packet {} dropped: {e}", first.id);
                        status = netif::NETIF_RSP_ERROR;
                    }
                }
            }
        }
        if status != netif::NETIF_RSP_OKAY {
            m.count(Event::TxMalformed);
        }
        respond_first(self, status);
        for t in &chain {
            self.tx.put_response(&tx_rsp(t.id, status));
        }
        Ok(())
    }

    /// Slots a frame of `len` bytes needs, or None if the guest cannot take
    /// it (larger than one page without feature-sg).
    fn slots_for(&self, len: usize, gso: bool) -> Option<u32> {
        let data = len.div_ceil(PAGE_SIZE).max(1);
        if data > 1 && !self.feat.sg {
            return None;
        }
        Some(data as u32 + u32::from(gso))
    }

    /// Serves the rx ring: frames read from `io` are copied into the
    /// guest's posted pages while there are slots for them; a frame with no
    /// room waits (and the frontend is asked to notify when it posts more).
    pub fn serve_rx(
        &mut self,
        dom: &Domain,
        io: &mut dyn PacketIo,
        m: &Metrics,
    ) -> Result<Notify, Fatal> {
        let broke = |e: xen_abi::ring::RingError| Fatal(format!("frontend broke the rx ring: {e}"));
        let mut notify = Notify::default();
        for _ in 0..BUDGET {
            let (len, flags, gso) = match self.pending {
                Some(p) => p,
                None => match self.read_frame(io, m) {
                    Some(p) => p,
                    None => break,
                },
            };
            let Some(needed) = self.slots_for(len - VNET_HDR_LEN, gso.is_some()) else {
                self.pending = None;
                m.count(Event::RxDropped);
                continue;
            };
            let mut avail = self.rx.unconsumed_requests().map_err(broke)?;
            while avail < needed {
                if !self.rx.notify_on_next_request() {
                    break;
                }
                avail = self.rx.unconsumed_requests().map_err(broke)?;
            }
            if avail < needed {
                self.pending = Some((len, flags, gso));
                break;
            }
            self.pending = None;
            self.rx_frame(dom, len, flags, gso, m);
            if self.rx.push_responses() {
                notify.rx = true;
            }
        }
        Ok(notify)
    }

    /// Reads the next frame the guest can be given into `buf`: its length
    /// (header included), rx flags and GSO. Frames it cannot take are
    /// dropped and counted here.
    fn read_frame(&mut self, io: &mut dyn PacketIo, m: &Metrics) -> Option<RxFrame> {
        loop {
            let n = match io.recv(&mut self.buf) {
                Ok(Some(n)) => n,
                Ok(None) => return None,
                Err(e) => {
                    log::debug!("reading the host side: {e}");
                    return None;
                }
            };
            if n < VNET_HDR_LEN + ETH_HLEN {
                m.count(Event::RxDropped);
                continue;
            }
            let mut hb = [0u8; VNET_HDR_LEN];
            hb.copy_from_slice(&self.buf[..VNET_HDR_LEN]);
            let h = VnetHdr::decode(&hb);
            let frame = &mut self.buf[VNET_HDR_LEN..n];
            if self.feat.multicast_control && frame[0] & 1 != 0 && frame[..6] != [0xff; 6] {
                let mut dst = [0u8; 6];
                dst.copy_from_slice(&frame[..6]);
                if !self.mcast.contains(&dst) {
                    m.count(Event::RxDropped);
                    continue;
                }
            }
            match vnet::rx_flags(frame, &h, &self.feat.rx) {
                Ok((flags, gso)) => return Some((n, flags, gso)),
                Err(e) => {
                    log::debug!("received frame dropped: {e}");
                    m.count(Event::RxDropped);
                }
            }
        }
    }

    /// Copies the frame in `buf[VNET_HDR_LEN..len]` into as many posted
    /// pages as it needs (the caller checked there are enough), with the
    /// GSO extra-info slot after the first response (xenvif_rx_skb).
    fn rx_frame(
        &mut self,
        dom: &Domain,
        len: usize,
        flags: u16,
        gso: Option<(u8, u16)>,
        m: &Metrics,
    ) {
        let frame = &self.buf[VNET_HDR_LEN..len];
        let chunks: Vec<&[u8]> = if frame.is_empty() {
            vec![frame]
        } else {
            frame.chunks(PAGE_SIZE).collect()
        };
        let mut slot = [0u8; netif::RX_SLOT_SIZE];
        let mut failed = false;
        for (i, chunk) in chunks.iter().enumerate() {
            self.rx.take_request(&mut slot);
            let req = RxRequest::decode(&slot);
            let status = match copy_to_grant(dom, req.gref, chunk) {
                Ok(()) => chunk.len() as i16,
                Err(e) => {
                    log::debug!("rx request {}: {e}", req.id);
                    failed = true;
                    netif::NETIF_RSP_ERROR
                }
            };
            let mut f = if i == 0 { flags } else { 0 };
            if i + 1 < chunks.len() {
                f |= netif::NETRXF_MORE_DATA;
            }
            if i == 0 && gso.is_some() {
                f |= netif::NETRXF_EXTRA_INFO;
            }
            RxResponse {
                id: req.id,
                offset: 0,
                flags: f,
                status,
            }
            .encode(&mut slot);
            self.rx.put_response(&slot);
            if let (0, Some((gso_type, size))) = (i, gso) {
                self.rx.take_request(&mut slot);
                ExtraInfo::Gso {
                    size,
                    gso_type,
                    features: 0,
                    more: false,
                }
                .encode(&mut slot);
                self.rx.put_response(&slot);
            }
        }
        m.count(if failed {
            Event::RxError
        } else {
            Event::RxPacket(frame.len() as u64)
        });
    }
}
