//! Internet checksums for packets the backend hands over with
//! NETRXF_CSUM_BLANK: their TCP or UDP checksum was never computed (the
//! sender offloaded it and the packet never met a NIC). The stack above
//! verifies every checksum, so such a packet is completed here first.
//! Pure, tested on the host.

/// The 16-bit one's-complement sum of `data` added to `acc` (not folded).
fn sum(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u16::from_be_bytes([c[0], c[1]]) as u32);
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add((*last as u32) << 8);
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

const ETH_HLEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// Fills in the TCP or UDP checksum of an Ethernet frame carrying IPv4
/// (computed afresh over the pseudo-header and the segment, whatever the
/// field held). Returns false, leaving the frame alone, when it is not
/// such a frame or its lengths do not add up.
pub fn complete_ipv4_l4(frame: &mut [u8]) -> bool {
    if frame.len() < ETH_HLEN + 20 || u16::from_be_bytes([frame[12], frame[13]]) != ETHERTYPE_IPV4 {
        return false;
    }
    let ip = &frame[ETH_HLEN..];
    let ihl = (ip[0] & 0x0f) as usize * 4;
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    if ip[0] >> 4 != 4 || ihl < 20 || total < ihl || total > ip.len() {
        return false;
    }
    // A fragment other than the first has no L4 header to complete.
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0 {
        return false;
    }
    let proto = ip[9];
    let field = match proto {
        PROTO_TCP => 16,
        PROTO_UDP => 6,
        _ => return false,
    };
    let l4_len = total - ihl;
    if l4_len < field + 2 {
        return false;
    }
    let mut pseudo = [0u8; 12];
    pseudo[..8].copy_from_slice(&ip[12..20]);
    pseudo[9] = proto;
    pseudo[10..12].copy_from_slice(&(l4_len as u16).to_be_bytes());
    let start = ETH_HLEN + ihl;
    let seg = &mut frame[start..start + l4_len];
    seg[field..field + 2].fill(0);
    let mut c = fold(sum(seg, sum(&pseudo, 0)));
    if proto == PROTO_UDP && c == 0 {
        c = 0xffff; // 0 means "no checksum" for UDP
    }
    seg[field..field + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// Whether an IPv4 TCP/UDP frame's checksum is right (for tests and
/// callers that want to check before trusting).
pub fn ipv4_l4_ok(frame: &[u8]) -> bool {
    let mut copy = alloc::vec::Vec::from(frame);
    complete_ipv4_l4(&mut copy) && copy == frame
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP datagram 10.0.0.1:7 -> 10.0.0.2:7 with a known checksum.
    fn udp_frame() -> alloc::vec::Vec<u8> {
        let mut f = alloc::vec![0u8; 14];
        f[12] = 8;
        let payload = b"hello";
        let total = 20 + 8 + payload.len();
        let mut ip = [
            0x45,
            0,
            0,
            total as u8,
            0,
            1,
            0x40,
            0,
            64,
            17,
            0,
            0,
            10,
            0,
            0,
            1,
            10,
            0,
            0,
            2,
        ];
        let c = fold(sum(&ip, 0));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0, 7, 0, 7, 0, 13, 0, 0]);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn a_blank_udp_checksum_is_filled_in() {
        let mut f = udp_frame();
        assert!(complete_ipv4_l4(&mut f));
        // Computed by hand: pseudo 0a00+0001+0a00+0002+0011+000d, udp 0007+0007+000d, data.
        let c = u16::from_be_bytes([f[40], f[41]]);
        assert_ne!(c, 0);
        assert!(ipv4_l4_ok(&f));
        // A wrong one is detected.
        f[40] ^= 1;
        assert!(!ipv4_l4_ok(&f));
    }

    #[test]
    fn other_frames_are_left_alone() {
        let mut arp = alloc::vec![0u8; 42];
        arp[12] = 8;
        arp[13] = 6;
        assert!(!complete_ipv4_l4(&mut arp));
        let mut f = udp_frame();
        f[14 + 3] = 200; // total length past the frame
        assert!(!complete_ipv4_l4(&mut f));
        let mut f = udp_frame();
        f.truncate(30);
        assert!(!complete_ipv4_l4(&mut f));
    }
}
