//! The PV network protocol (io/netif.h): transmit and receive rings, for
//! netfront (guest) and netback (hypervisor) alike.
//!
//! A vif has, per queue, a tx ring (the guest sends packets: each request
//! names a granted buffer; a packet spans several requests chained with
//! [`NETTXF_MORE_DATA`], and its first request carries the packet's whole
//! size) and an rx ring (the guest posts empty granted pages; the backend
//! copies a received packet into them and answers with the bytes written).
//! Extra-info slots ([`ExtraInfo`], GSO and multicast) follow a request or
//! response flagged with `*_EXTRA_INFO` and take a slot of their own.
//!
//! Unlike blkif, the layouts are the same on x86_32 and x86_64: every field
//! is at most 32 bits wide.

use crate::ring::RingLayout;

/// The most slots a frontend may use for one packet without asking; a
/// backend must accept packets of up to this many slots.
pub const XEN_NETIF_NR_SLOTS_MIN: usize = 18;
/// The largest packet the tx protocol can carry: the first request's `size`
/// is a `u16`.
pub const XEN_NETIF_MAX_TX_SIZE: usize = 0xffff;

/// tx flag: the protocol checksum field is blank (the backend, or the
/// device, must fill it in): checksum offload.
pub const NETTXF_CSUM_BLANK: u16 = 1 << 0;
/// tx flag: the packet's checksum is known to be good.
pub const NETTXF_DATA_VALIDATED: u16 = 1 << 1;
/// tx flag: the packet continues in the next request.
pub const NETTXF_MORE_DATA: u16 = 1 << 2;
/// tx flag: an [`ExtraInfo`] slot follows this request.
pub const NETTXF_EXTRA_INFO: u16 = 1 << 3;

/// rx flag: the packet's checksum is known to be good.
pub const NETRXF_DATA_VALIDATED: u16 = 1 << 0;
/// rx flag: the protocol checksum field is blank (partial checksum).
pub const NETRXF_CSUM_BLANK: u16 = 1 << 1;
/// rx flag: the packet continues in the next response.
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
/// rx flag: an [`ExtraInfo`] slot follows this response.
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;
/// rx flag: a GSO prefix slot precedes the packet (old protocol; unused).
pub const NETRXF_GSO_PREFIX: u16 = 1 << 4;

/// Response status: the packet was dropped (no buffer, or refused).
pub const NETIF_RSP_DROPPED: i16 = -2;
/// Response status: the request was malformed.
pub const NETIF_RSP_ERROR: i16 = -1;
/// Response status: done.
pub const NETIF_RSP_OKAY: i16 = 0;
/// Response status: a slot that answers nothing (an extra-info slot's
/// response).
pub const NETIF_RSP_NULL: i16 = 1;

/// Extra-info type: none (never sent).
pub const XEN_NETIF_EXTRA_TYPE_NONE: u8 = 0;
/// Extra-info type: generic segmentation offload of the packet.
pub const XEN_NETIF_EXTRA_TYPE_GSO: u8 = 1;
/// Extra-info type: add a multicast address to the filter.
pub const XEN_NETIF_EXTRA_TYPE_MCAST_ADD: u8 = 2;
/// Extra-info type: remove a multicast address from the filter.
pub const XEN_NETIF_EXTRA_TYPE_MCAST_DEL: u8 = 3;
/// Extra-info type: the packet's hash (feature-hash).
pub const XEN_NETIF_EXTRA_TYPE_HASH: u8 = 4;
/// Extra-info type: XDP headroom (feature-xdp).
pub const XEN_NETIF_EXTRA_TYPE_XDP: u8 = 5;
/// Extra-info flag: another extra-info slot follows this one.
pub const XEN_NETIF_EXTRA_FLAG_MORE: u8 = 1 << 0;

/// GSO type: none.
pub const XEN_NETIF_GSO_TYPE_NONE: u8 = 0;
/// GSO type: TCP over IPv4 (feature-gso-tcpv4).
pub const XEN_NETIF_GSO_TYPE_TCPV4: u8 = 1;
/// GSO type: TCP over IPv6 (feature-gso-tcpv6).
pub const XEN_NETIF_GSO_TYPE_TCPV6: u8 = 2;

/// Bytes of `struct netif_tx_request`.
pub const TX_REQUEST_SIZE: usize = 12;
/// Bytes of `struct netif_tx_response`.
pub const TX_RESPONSE_SIZE: usize = 4;
/// Bytes of `struct netif_rx_request`.
pub const RX_REQUEST_SIZE: usize = 8;
/// Bytes of `struct netif_rx_response`.
pub const RX_RESPONSE_SIZE: usize = 8;
/// Bytes of `struct netif_extra_info`; it shares a slot with a request or
/// response.
pub const EXTRA_INFO_SIZE: usize = 8;
/// Bytes of one tx ring slot (the union of request, response and extra info).
pub const TX_SLOT_SIZE: usize = TX_REQUEST_SIZE;
/// Bytes of one rx ring slot.
pub const RX_SLOT_SIZE: usize = RX_REQUEST_SIZE;

/// The tx ring of one page: 256 slots.
pub const fn tx_layout() -> RingLayout {
    match RingLayout::new(crate::PAGE_SIZE, TX_SLOT_SIZE) {
        Some(l) => l,
        None => unreachable!(),
    }
}

/// The rx ring of one page: 256 slots.
pub const fn rx_layout() -> RingLayout {
    match RingLayout::new(crate::PAGE_SIZE, RX_SLOT_SIZE) {
        Some(l) => l,
        None => unreachable!(),
    }
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// One tx request (`struct netif_tx_request`): a buffer of a packet to send.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxRequest {
    /// The grant of the page holding the bytes.
    pub gref: u32,
    /// Where in the page the bytes start.
    pub offset: u16,
    /// NETTXF_*.
    pub flags: u16,
    /// Echoed in the response.
    pub id: u16,
    /// The first request of a packet: the whole packet's bytes; later ones:
    /// this buffer's bytes.
    pub size: u16,
}

impl TxRequest {
    /// Decodes a slot of at least [`TX_REQUEST_SIZE`] bytes.
    pub fn decode(b: &[u8]) -> Self {
        TxRequest { gref: u32_at(b, 0), offset: u16_at(b, 4), flags: u16_at(b, 6), id: u16_at(b, 8), size: u16_at(b, 10) }
    }

    /// Encodes into a slot of at least [`TX_REQUEST_SIZE`] bytes.
    pub fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.gref.to_le_bytes());
        out[4..6].copy_from_slice(&self.offset.to_le_bytes());
        out[6..8].copy_from_slice(&self.flags.to_le_bytes());
        out[8..10].copy_from_slice(&self.id.to_le_bytes());
        out[10..12].copy_from_slice(&self.size.to_le_bytes());
    }
}

/// One tx response (`struct netif_tx_response`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxResponse {
    /// The request's id.
    pub id: u16,
    /// NETIF_RSP_*.
    pub status: i16,
}

impl TxResponse {
    /// Decodes a slot of at least [`TX_RESPONSE_SIZE`] bytes.
    pub fn decode(b: &[u8]) -> Self {
        TxResponse { id: u16_at(b, 0), status: u16_at(b, 2) as i16 }
    }

    /// Encodes into a slot of at least [`TX_RESPONSE_SIZE`] bytes.
    pub fn encode(&self, out: &mut [u8]) {
        out[0..2].copy_from_slice(&self.id.to_le_bytes());
        out[2..4].copy_from_slice(&self.status.to_le_bytes());
    }
}

/// One rx request (`struct netif_rx_request`): an empty granted page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxRequest {
    /// Echoed in the response.
    pub id: u16,
    /// The grant of the page to fill (granted writable to the backend).
    pub gref: u32,
}

impl RxRequest {
    /// Decodes a slot of at least [`RX_REQUEST_SIZE`] bytes.
    pub fn decode(b: &[u8]) -> Self {
        RxRequest { id: u16_at(b, 0), gref: u32_at(b, 4) }
    }

    /// Encodes into a slot of at least [`RX_REQUEST_SIZE`] bytes.
    pub fn encode(&self, out: &mut [u8]) {
        out[0..2].copy_from_slice(&self.id.to_le_bytes());
        out[2..4].fill(0);
        out[4..8].copy_from_slice(&self.gref.to_le_bytes());
    }
}

/// One rx response (`struct netif_rx_response`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxResponse {
    /// The request's id.
    pub id: u16,
    /// Where in the page the bytes start.
    pub offset: u16,
    /// NETRXF_*.
    pub flags: u16,
    /// Bytes written (when positive), or NETIF_RSP_* (when not).
    pub status: i16,
}

impl RxResponse {
    /// Decodes a slot of at least [`RX_RESPONSE_SIZE`] bytes.
    pub fn decode(b: &[u8]) -> Self {
        RxResponse { id: u16_at(b, 0), offset: u16_at(b, 2), flags: u16_at(b, 4), status: u16_at(b, 6) as i16 }
    }

    /// Encodes into a slot of at least [`RX_RESPONSE_SIZE`] bytes.
    pub fn encode(&self, out: &mut [u8]) {
        out[0..2].copy_from_slice(&self.id.to_le_bytes());
        out[2..4].copy_from_slice(&self.offset.to_le_bytes());
        out[4..6].copy_from_slice(&self.flags.to_le_bytes());
        out[6..8].copy_from_slice(&self.status.to_le_bytes());
    }
}

/// An extra-info slot (`struct netif_extra_info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtraInfo {
    /// Segmentation offload: cut the packet into `size`-byte segments.
    Gso {
        /// The maximum segment size (MSS).
        size: u16,
        /// XEN_NETIF_GSO_TYPE_*.
        gso_type: u8,
        /// Reserved GSO features (0).
        features: u16,
        /// Another extra-info slot follows.
        more: bool,
    },
    /// Add (`add`) or remove a multicast address from the receive filter.
    Multicast {
        /// Add, not remove.
        add: bool,
        /// The address.
        addr: [u8; 6],
        /// Another extra-info slot follows.
        more: bool,
    },
    /// Any other type (hash, XDP, unknown): skipped, its chain honoured.
    Other {
        /// XEN_NETIF_EXTRA_TYPE_*.
        kind: u8,
        /// Another extra-info slot follows.
        more: bool,
    },
}

impl ExtraInfo {
    /// Decodes a slot of at least [`EXTRA_INFO_SIZE`] bytes.
    pub fn decode(b: &[u8]) -> Self {
        let more = b[1] & XEN_NETIF_EXTRA_FLAG_MORE != 0;
        match b[0] {
            XEN_NETIF_EXTRA_TYPE_GSO => ExtraInfo::Gso { size: u16_at(b, 2), gso_type: b[4], features: u16_at(b, 6), more },
            kind @ (XEN_NETIF_EXTRA_TYPE_MCAST_ADD | XEN_NETIF_EXTRA_TYPE_MCAST_DEL) => {
                let mut addr = [0u8; 6];
                addr.copy_from_slice(&b[2..8]);
                ExtraInfo::Multicast { add: kind == XEN_NETIF_EXTRA_TYPE_MCAST_ADD, addr, more }
            }
            kind => ExtraInfo::Other { kind, more },
        }
    }

    /// Encodes into a slot of at least [`EXTRA_INFO_SIZE`] bytes.
    pub fn encode(&self, out: &mut [u8]) {
        let out = &mut out[..EXTRA_INFO_SIZE];
        out.fill(0);
        let flag = |more: bool| if more { XEN_NETIF_EXTRA_FLAG_MORE } else { 0 };
        match *self {
            ExtraInfo::Gso { size, gso_type, features, more } => {
                out[0] = XEN_NETIF_EXTRA_TYPE_GSO;
                out[1] = flag(more);
                out[2..4].copy_from_slice(&size.to_le_bytes());
                out[4] = gso_type;
                out[6..8].copy_from_slice(&features.to_le_bytes());
            }
            ExtraInfo::Multicast { add, addr, more } => {
                out[0] = if add { XEN_NETIF_EXTRA_TYPE_MCAST_ADD } else { XEN_NETIF_EXTRA_TYPE_MCAST_DEL };
                out[1] = flag(more);
                out[2..8].copy_from_slice(&addr);
            }
            ExtraInfo::Other { kind, more } => {
                out[0] = kind;
                out[1] = flag(more);
            }
        }
    }

    /// Whether another extra-info slot follows.
    pub fn more(&self) -> bool {
        match *self {
            ExtraInfo::Gso { more, .. } | ExtraInfo::Multicast { more, .. } | ExtraInfo::Other { more, .. } => more,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_page_rings_have_256_slots_as_in_linux() {
        assert_eq!(tx_layout().size(), 256);
        assert_eq!(rx_layout().size(), 256);
    }

    #[test]
    fn slots_round_trip_at_the_header_offsets() {
        let tx = TxRequest { gref: 0x0102_0304, offset: 0x0506, flags: NETTXF_MORE_DATA | NETTXF_CSUM_BLANK, id: 0x0708, size: 1514 };
        let mut b = [0u8; TX_SLOT_SIZE];
        tx.encode(&mut b);
        assert_eq!(&b[..6], &[4, 3, 2, 1, 6, 5]);
        assert_eq!(TxRequest::decode(&b), tx);

        let rsp = RxResponse { id: 9, offset: 0, flags: NETRXF_DATA_VALIDATED, status: NETIF_RSP_DROPPED };
        let mut b = [0u8; RX_SLOT_SIZE];
        rsp.encode(&mut b);
        assert_eq!(&b[6..8], &[0xfe, 0xff]);
        assert_eq!(RxResponse::decode(&b), rsp);

        let rq = RxRequest { id: 3, gref: 77 };
        rq.encode(&mut b);
        assert_eq!(RxRequest::decode(&b), rq);

        let t = TxResponse { id: 4, status: NETIF_RSP_NULL };
        t.encode(&mut b);
        assert_eq!(TxResponse::decode(&b), t);
    }

    #[test]
    fn extra_info_round_trips_and_chains() {
        let mut b = [0u8; EXTRA_INFO_SIZE];
        for e in [
            ExtraInfo::Gso { size: 1448, gso_type: XEN_NETIF_GSO_TYPE_TCPV4, features: 0, more: true },
            ExtraInfo::Multicast { add: false, addr: [1, 0, 0x5e, 0, 0, 1], more: false },
            ExtraInfo::Other { kind: XEN_NETIF_EXTRA_TYPE_HASH, more: true },
        ] {
            e.encode(&mut b);
            assert_eq!(ExtraInfo::decode(&b), e);
        }
        assert!(ExtraInfo::decode(&[XEN_NETIF_EXTRA_TYPE_GSO, 1, 0, 0, 0, 0, 0, 0]).more());
    }
}
