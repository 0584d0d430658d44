//! The virtio-net header a TAP carries before each frame, and its mapping
//! to and from the netif flags: checksum offload (where the checksum
//! starts and where it goes, found from the frame's headers as Linux's
//! skb_checksum_setup does) and segmentation offload.

use xen_abi::netif::{self, XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_GSO_TYPE_TCPV6};

use super::io::VNET_HDR_LEN;

/// The checksum from `csum_start` to the end is to be filled in.
pub const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
/// The checksum is known to be good.
pub const VIRTIO_NET_HDR_F_DATA_VALID: u8 = 2;
/// No segmentation.
pub const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;
/// TCP over IPv4 segmentation.
pub const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
/// UDP fragmentation offload (never offered).
pub const VIRTIO_NET_HDR_GSO_UDP: u8 = 3;
/// TCP over IPv6 segmentation.
pub const VIRTIO_NET_HDR_GSO_TCPV6: u8 = 4;
/// ECN bit of gso_type.
pub const VIRTIO_NET_HDR_GSO_ECN: u8 = 0x80;

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// `struct virtio_net_hdr` (little-endian on x86, the TAP's default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// VIRTIO_NET_HDR_F_*.
    pub flags: u8,
    /// VIRTIO_NET_HDR_GSO_*.
    pub gso_type: u8,
    /// Bytes of headers before the segmented payload.
    pub hdr_len: u16,
    /// The segment size (MSS).
    pub gso_size: u16,
    /// Where checksumming starts.
    pub csum_start: u16,
    /// Where, from `csum_start`, the checksum goes.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Decodes the first [`VNET_HDR_LEN`] bytes.
    pub fn decode(b: &[u8; VNET_HDR_LEN]) -> Self {
        let u = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        }
    }

    /// Encodes it.
    pub fn encode(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        b
    }
}

/// Where a frame's transport header is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L4 {
    /// IPv6 rather than IPv4.
    pub ipv6: bool,
    /// Offset of the IP header.
    pub l3: usize,
    /// Offset of the TCP/UDP header.
    pub start: usize,
    /// IPPROTO_TCP or IPPROTO_UDP.
    pub proto: u8,
}

impl L4 {
    /// Where the checksum field is, from `start`.
    pub fn csum_offset(&self) -> u16 {
        if self.proto == IPPROTO_TCP {
            16
        } else {
            6
        }
    }

    /// Bytes of headers up to the payload (for TCP, including its options).
    pub fn header_len(&self, frame: &[u8]) -> Option<usize> {
        if self.proto == IPPROTO_TCP {
            let doff = usize::from(*frame.get(self.start + 12)? >> 4) * 4;
            (doff >= 20 && self.start + doff <= frame.len()).then_some(self.start + doff)
        } else {
            (self.start + 8 <= frame.len()).then_some(self.start + 8)
        }
    }
}

/// Finds the TCP or UDP header of an Ethernet frame (one VLAN tag allowed;
/// IPv6 extension headers skipped; fragments refused), as
/// skb_checksum_setup does. None: not a TCP/UDP packet it can checksum.
pub fn find_l4(frame: &[u8]) -> Option<L4> {
    let be16 = |o: usize| {
        frame
            .get(o..o + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let mut l3 = ETH_HLEN;
    let mut proto = be16(12)?;
    if proto == ETH_P_8021Q {
        proto = be16(16)?;
        l3 += 4;
    }
    match proto {
        ETH_P_IP => {
            let vihl = *frame.get(l3)?;
            let ihl = usize::from(vihl & 0xf) * 4;
            if vihl >> 4 != 4 || ihl < 20 {
                return None;
            }
            // More fragments, or a fragment offset: not a whole datagram.
            if be16(l3 + 6)? & 0x3fff != 0 {
                return None;
            }
            let p = *frame.get(l3 + 9)?;
            let start = l3 + ihl;
            ((p == IPPROTO_TCP || p == IPPROTO_UDP) && start < frame.len()).then_some(L4 {
                ipv6: false,
                l3,
                start,
                proto: p,
            })
        }
        ETH_P_IPV6 => {
            if frame.get(l3)? >> 4 != 6 {
                return None;
            }
            let mut next = *frame.get(l3 + 6)?;
            let mut at = l3 + 40;
            // Hop-by-hop, routing and destination options, as Linux's
            // skb_checksum_setup_ipv6 walks them (a fragment header ends it).
            for _ in 0..8 {
                match next {
                    0 | 43 | 60 => {
                        next = *frame.get(at)?;
                        at += (usize::from(*frame.get(at + 1)?) + 1) * 8;
                    }
                    _ => break,
                }
            }
            ((next == IPPROTO_TCP || next == IPPROTO_UDP) && at < frame.len()).then_some(L4 {
                ipv6: true,
                l3,
                start: at,
                proto: next,
            })
        }
        _ => None,
    }
}

/// The one's-complement sum of `data` (16-bit big-endian words) added to `sum`.
fn add_words(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let [b] = chunks.remainder() {
        sum = sum.wrapping_add(u32::from(*b) << 8);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Writes into the checksum field the pseudo-header sum (not inverted), as
/// a device doing checksum offload expects it (csum_tcpudp_magic's partial
/// form; Linux's recalculate_partial_csum).
pub fn set_pseudo_header(frame: &mut [u8], l4: &L4) -> Option<()> {
    let len = frame.len().checked_sub(l4.start)?;
    let mut sum = 0;
    if l4.ipv6 {
        sum = add_words(sum, frame.get(l4.l3 + 8..l4.l3 + 40)?);
        sum = add_words(sum, &(len as u32).to_be_bytes());
    } else {
        sum = add_words(sum, frame.get(l4.l3 + 12..l4.l3 + 20)?);
        sum = add_words(sum, &(len as u16).to_be_bytes());
    }
    sum = add_words(sum, &[0, l4.proto]);
    let at = l4.start + usize::from(l4.csum_offset());
    frame
        .get_mut(at..at + 2)?
        .copy_from_slice(&fold(sum).to_be_bytes());
    Some(())
}

/// Completes a partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM): the sum from
/// `start` to the end, the field included (it holds the pseudo-header
/// sum), inverted, stored in the field. None: the offsets are outside the frame.
pub fn complete_checksum(frame: &mut [u8], start: usize, offset: usize) -> Option<()> {
    let at = start.checked_add(offset)?;
    if at + 2 > frame.len() {
        return None;
    }
    let mut c = !fold(add_words(0, &frame[start..]));
    // UDP sends an all-zero result as 0xffff; TCP's is never zero here.
    if c == 0 {
        c = 0xffff;
    }
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Some(())
}

/// Why a guest's packet cannot be handed to the TAP as it asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    /// Checksum offload for a packet that is not TCP or UDP over IP.
    #[error("checksum offload asked for a packet that is not TCP or UDP over IP")]
    NoTransport,
    /// A GSO type the backend did not offer.
    #[error("unknown GSO type {0}")]
    GsoType(u8),
    /// A GSO packet without a segment size, or whose headers do not match its type.
    #[error("malformed GSO packet")]
    BadGso,
}

/// The vnet header for a frame the guest sent with NETTXF_* `flags` and
/// an optional GSO extra `(type, size)`: CSUM_BLANK becomes NEEDS_CSUM
/// with the checksum's place taken from the headers; a GSO packet whose
/// checksum was not left blank gets its pseudo-header sum written, as
/// Linux's netback does before handing it on.
pub fn tx_header(
    frame: &mut [u8],
    flags: u16,
    gso: Option<(u8, u16)>,
) -> Result<VnetHdr, OffloadError> {
    let mut h = VnetHdr::default();
    let blank = flags & netif::NETTXF_CSUM_BLANK != 0;
    if blank || gso.is_some() {
        let l4 = find_l4(frame).ok_or(OffloadError::NoTransport)?;
        h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        h.csum_start = l4.start as u16;
        h.csum_offset = l4.csum_offset();
        if let Some((kind, size)) = gso {
            let want_v6 = match kind {
                XEN_NETIF_GSO_TYPE_TCPV4 => false,
                XEN_NETIF_GSO_TYPE_TCPV6 => true,
                k => return Err(OffloadError::GsoType(k)),
            };
            if size == 0 || l4.proto != IPPROTO_TCP || l4.ipv6 != want_v6 {
                return Err(OffloadError::BadGso);
            }
            h.gso_type = if want_v6 {
                VIRTIO_NET_HDR_GSO_TCPV6
            } else {
                VIRTIO_NET_HDR_GSO_TCPV4
            };
            h.gso_size = size;
            h.hdr_len = l4.header_len(frame).ok_or(OffloadError::BadGso)? as u16;
            if !blank {
                set_pseudo_header(frame, &l4).ok_or(OffloadError::BadGso)?;
            }
        }
    } else if flags & netif::NETTXF_DATA_VALIDATED != 0 {
        h.flags = VIRTIO_NET_HDR_F_DATA_VALID;
    }
    Ok(h)
}

/// What the guest can take on receive (negotiated from its xenstore nodes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxOffloads {
    /// Partial checksums over IPv4 (not feature-no-csum-offload).
    pub ipv4_csum: bool,
    /// Partial checksums over IPv6 (feature-ipv6-csum-offload).
    pub ipv6_csum: bool,
    /// TCPv4 segmentation (feature-gso-tcpv4, with sg).
    pub tso4: bool,
    /// TCPv6 segmentation (feature-gso-tcpv6, with sg).
    pub tso6: bool,
}

impl RxOffloads {
    /// The TUNSETOFFLOAD flags: what the TAP may hand us. The kernel takes
    /// TSO only with checksum offload.
    pub fn tun_flags(&self) -> u32 {
        let mut f = 0;
        if self.ipv4_csum || self.ipv6_csum {
            f |= libc::TUN_F_CSUM;
            if self.tso4 && self.ipv4_csum {
                f |= libc::TUN_F_TSO4;
            }
            if self.tso6 && self.ipv6_csum {
                f |= libc::TUN_F_TSO6;
            }
        }
        f
    }
}

/// What to tell the guest about a frame read from the TAP: its NETRXF_*
/// flags and its GSO extra `(type, size)`. A partial checksum the guest
/// cannot take is completed here first. Err: a frame the guest cannot
/// take (GSO it did not negotiate, bad offsets); it is dropped.
pub fn rx_flags(
    frame: &mut [u8],
    h: &VnetHdr,
    off: &RxOffloads,
) -> Result<(u16, Option<(u8, u16)>), OffloadError> {
    let mut flags = 0;
    let gso = match h.gso_type & !VIRTIO_NET_HDR_GSO_ECN {
        VIRTIO_NET_HDR_GSO_NONE => None,
        VIRTIO_NET_HDR_GSO_TCPV4 if off.tso4 && h.gso_size > 0 => {
            Some((XEN_NETIF_GSO_TYPE_TCPV4, h.gso_size))
        }
        VIRTIO_NET_HDR_GSO_TCPV6 if off.tso6 && h.gso_size > 0 => {
            Some((XEN_NETIF_GSO_TYPE_TCPV6, h.gso_size))
        }
        t => return Err(OffloadError::GsoType(t)),
    };
    if h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 {
        let ipv6 = find_l4(frame).map(|l| l.ipv6);
        let guest_can = match ipv6 {
            Some(true) => off.ipv6_csum,
            Some(false) => off.ipv4_csum,
            None => false,
        };
        if guest_can && (usize::from(h.csum_start) < frame.len()) {
            flags |= netif::NETRXF_CSUM_BLANK | netif::NETRXF_DATA_VALIDATED;
        } else if gso.is_some() {
            return Err(OffloadError::BadGso);
        } else {
            complete_checksum(frame, h.csum_start.into(), h.csum_offset.into())
                .ok_or(OffloadError::NoTransport)?;
            flags |= netif::NETRXF_DATA_VALIDATED;
        }
    } else if h.flags & VIRTIO_NET_HDR_F_DATA_VALID != 0 {
        flags |= netif::NETRXF_DATA_VALIDATED;
    }
    Ok((flags, gso))
}

/// Frames for the tests of this module and of the ring server.
#[cfg(test)]
pub mod tests {
    use super::*;

    /// An Ethernet + IPv4 + TCP (or UDP) frame with `payload` bytes.
    pub fn ipv4_frame(proto: u8, payload: usize) -> Vec<u8> {
        let l4 = if proto == IPPROTO_TCP { 20 } else { 8 };
        let mut f = vec![0u8; 14 + 20 + l4 + payload];
        f[0..6].copy_from_slice(&[0x00, 0x16, 0x3e, 1, 2, 3]);
        f[6..12].copy_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]);
        f[12..14].copy_from_slice(&ETH_P_IP.to_be_bytes());
        f[14] = 0x45;
        let tot = (20 + l4 + payload) as u16;
        f[16..18].copy_from_slice(&tot.to_be_bytes());
        f[22] = 64;
        f[23] = proto;
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        if proto == IPPROTO_TCP {
            f[34 + 12] = 5 << 4;
        } else {
            f[38..40].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        }
        for (i, b) in f[34 + l4..].iter_mut().enumerate() {
            *b = i as u8;
        }
        f
    }

    /// An Ethernet + IPv6 (with a hop-by-hop header) + TCP frame.
    pub fn ipv6_frame(payload: usize) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 40 + 8 + 20 + payload];
        f[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
        f[14] = 0x60;
        f[14 + 4..14 + 6].copy_from_slice(&((8 + 20 + payload) as u16).to_be_bytes());
        f[14 + 6] = 0; // hop-by-hop
        f[14 + 8 + 15] = 1;
        f[14 + 24 + 15] = 2;
        f[54] = IPPROTO_TCP;
        f[55] = 0;
        f[62 + 12] = 5 << 4;
        f
    }

    /// The checksum a receiver verifies: the sum over pseudo-header and segment.
    fn verifies(frame: &[u8], l4: &L4) -> bool {
        let mut f = frame.to_vec();
        let at = l4.start + usize::from(l4.csum_offset());
        let stored = [f[at], f[at + 1]];
        set_pseudo_header(&mut f, l4).unwrap();
        complete_checksum(&mut f, l4.start, l4.csum_offset().into()).unwrap();
        [f[at], f[at + 1]] == stored
    }

    #[test]
    fn headers_round_trip() {
        let h = VnetHdr {
            flags: 1,
            gso_type: 4,
            hdr_len: 74,
            gso_size: 1440,
            csum_start: 54,
            csum_offset: 16,
        };
        assert_eq!(VnetHdr::decode(&h.encode()), h);
        assert_eq!(h.encode()[6..8], [54, 0]);
    }

    #[test]
    fn csum_blank_becomes_needs_csum_at_the_transport_header() {
        let mut f = ipv4_frame(IPPROTO_TCP, 100);
        let h = tx_header(&mut f, netif::NETTXF_CSUM_BLANK, None).unwrap();
        assert_eq!(
            (h.flags, h.csum_start, h.csum_offset, h.gso_type),
            (VIRTIO_NET_HDR_F_NEEDS_CSUM, 34, 16, 0)
        );
        let mut u = ipv4_frame(IPPROTO_UDP, 10);
        let h = tx_header(
            &mut u,
            netif::NETTXF_CSUM_BLANK | netif::NETTXF_DATA_VALIDATED,
            None,
        )
        .unwrap();
        assert_eq!((h.csum_start, h.csum_offset), (34, 6));
        let mut v6 = ipv6_frame(10);
        let h = tx_header(&mut v6, netif::NETTXF_CSUM_BLANK, None).unwrap();
        assert_eq!(
            (h.csum_start, h.csum_offset),
            (14 + 48, 16),
            "past the hop-by-hop header"
        );
        assert_eq!(
            tx_header(&mut f.clone(), netif::NETTXF_DATA_VALIDATED, None)
                .unwrap()
                .flags,
            VIRTIO_NET_HDR_F_DATA_VALID
        );
        assert_eq!(
            tx_header(&mut f.clone(), 0, None).unwrap(),
            VnetHdr::default()
        );
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(
            tx_header(&mut arp, netif::NETTXF_CSUM_BLANK, None),
            Err(OffloadError::NoTransport)
        );
    }

    #[test]
    fn gso_maps_type_size_and_header_length() {
        let mut f = ipv4_frame(IPPROTO_TCP, 3000);
        let h = tx_header(
            &mut f,
            netif::NETTXF_CSUM_BLANK,
            Some((XEN_NETIF_GSO_TYPE_TCPV4, 1448)),
        )
        .unwrap();
        assert_eq!(
            (h.gso_type, h.gso_size, h.hdr_len),
            (VIRTIO_NET_HDR_GSO_TCPV4, 1448, 54)
        );
        let mut f6 = ipv6_frame(3000);
        let h = tx_header(
            &mut f6,
            netif::NETTXF_CSUM_BLANK,
            Some((XEN_NETIF_GSO_TYPE_TCPV6, 1428)),
        )
        .unwrap();
        assert_eq!(
            (h.gso_type, h.hdr_len),
            (VIRTIO_NET_HDR_GSO_TCPV6, 14 + 48 + 20)
        );
        assert_eq!(
            tx_header(&mut f.clone(), 0, Some((XEN_NETIF_GSO_TYPE_TCPV6, 1448))),
            Err(OffloadError::BadGso)
        );
        assert_eq!(
            tx_header(&mut f.clone(), 0, Some((9, 1448))),
            Err(OffloadError::GsoType(9))
        );
        assert_eq!(
            tx_header(&mut f.clone(), 0, Some((XEN_NETIF_GSO_TYPE_TCPV4, 0))),
            Err(OffloadError::BadGso)
        );
        // Not left blank: the pseudo-header sum is put in place.
        let h = tx_header(&mut f, 0, Some((XEN_NETIF_GSO_TYPE_TCPV4, 1448))).unwrap();
        assert_eq!(h.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
        assert_ne!(&f[50..52], &[0, 0]);
    }

    #[test]
    fn partial_checksums_complete_to_what_a_receiver_verifies() {
        for mut f in [
            ipv4_frame(IPPROTO_TCP, 101),
            ipv4_frame(IPPROTO_UDP, 64),
            ipv6_frame(33),
        ] {
            let l4 = find_l4(&f).unwrap();
            set_pseudo_header(&mut f, &l4).unwrap();
            complete_checksum(&mut f, l4.start, l4.csum_offset().into()).unwrap();
            assert!(verifies(&f, &l4));
        }
    }

    #[test]
    fn rx_flags_follow_the_guest_offloads() {
        let all = RxOffloads {
            ipv4_csum: true,
            ipv6_csum: true,
            tso4: true,
            tso6: true,
        };
        let none = RxOffloads::default();
        let mut f = ipv4_frame(IPPROTO_TCP, 100);
        let l4 = find_l4(&f).unwrap();
        set_pseudo_header(&mut f, &l4).unwrap();
        let partial = VnetHdr {
            flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 16,
            ..Default::default()
        };
        assert_eq!(
            rx_flags(&mut f.clone(), &partial, &all),
            Ok((
                netif::NETRXF_CSUM_BLANK | netif::NETRXF_DATA_VALIDATED,
                None
            ))
        );
        // A guest without checksum offload gets the checksum filled in.
        let mut g = f.clone();
        assert_eq!(
            rx_flags(&mut g, &partial, &none),
            Ok((netif::NETRXF_DATA_VALIDATED, None))
        );
        assert!(verifies(&g, &l4));
        let valid = VnetHdr {
            flags: VIRTIO_NET_HDR_F_DATA_VALID,
            ..Default::default()
        };
        assert_eq!(
            rx_flags(&mut f.clone(), &valid, &none),
            Ok((netif::NETRXF_DATA_VALIDATED, None))
        );
        let gso = VnetHdr {
            gso_type: VIRTIO_NET_HDR_GSO_TCPV4,
            gso_size: 1448,
            ..partial
        };
        assert_eq!(
            rx_flags(&mut f.clone(), &gso, &all).unwrap().1,
            Some((XEN_NETIF_GSO_TYPE_TCPV4, 1448))
        );
        assert!(
            rx_flags(&mut f.clone(), &gso, &none).is_err(),
            "GSO the guest did not ask for"
        );
        assert_eq!(
            all.tun_flags(),
            libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6
        );
        assert_eq!(none.tun_flags(), 0);
        assert_eq!(
            RxOffloads { tso4: true, ..none }.tun_flags(),
            0,
            "TSO needs checksum offload"
        );
    }
}
