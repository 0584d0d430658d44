//! The PV block protocol (io/blkif.h): requests and responses on a shared
//! ring, for blkfront (guest) and blkback (hypervisor) alike.
//!
//! The frontend says in xenstore (`protocol`) which ABI its ring uses. The
//! x86_32 and x86_64 layouts differ because a `uint64_t` is 4-byte aligned on
//! i386: the request `id` sits at offset 4 instead of 8, and everything after
//! it moves too. [`Protocol`] carries those offsets; [`Request::decode`] and
//! [`Request::encode`] read and write either layout, so nothing else needs to
//! know.

/// Read sectors into the segments' pages.
pub const BLKIF_OP_READ: u8 = 0;
/// Write sectors from the segments' pages.
pub const BLKIF_OP_WRITE: u8 = 1;
/// A write that completes only after all earlier requests are durable and
/// before any later one starts (feature-barrier).
pub const BLKIF_OP_WRITE_BARRIER: u8 = 2;
/// Flush the disk's write cache, after writing the segments if any
/// (feature-flush-cache).
pub const BLKIF_OP_FLUSH_DISKCACHE: u8 = 3;
/// Reserved (was BLKIF_OP_TRIM's predecessor in some trees).
pub const BLKIF_OP_RESERVED_1: u8 = 4;
/// Discard a sector range (feature-discard).
pub const BLKIF_OP_DISCARD: u8 = 5;
/// A read or write whose segment list lives in granted pages
/// (feature-max-indirect-segments).
pub const BLKIF_OP_INDIRECT: u8 = 6;

/// Segments carried in a direct request.
pub const BLKIF_MAX_SEGMENTS_PER_REQUEST: usize = 11;
/// Indirect pages one indirect request may name.
pub const BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST: usize = 8;
/// Bytes of one segment descriptor in an indirect page.
pub const SEGMENT_SIZE: usize = 8;
/// Segment descriptors per indirect page.
pub const SEGS_PER_INDIRECT_FRAME: usize = crate::PAGE_SIZE / SEGMENT_SIZE;
/// The most segments an indirect request can describe.
pub const MAX_INDIRECT_SEGMENTS: usize = BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST * SEGS_PER_INDIRECT_FRAME;

/// Securely erase the discarded range (only if discard-secure is offered).
pub const BLKIF_DISCARD_SECURE: u8 = 1;

/// The operation succeeded.
pub const BLKIF_RSP_OKAY: i16 = 0;
/// The operation failed (EIO).
pub const BLKIF_RSP_ERROR: i16 = -1;
/// The operation is not supported.
pub const BLKIF_RSP_EOPNOTSUPP: i16 = -2;

/// `info` bit: the device is a CD-ROM.
pub const VDISK_CDROM: u32 = 0x1;
/// `info` bit: removable media.
pub const VDISK_REMOVABLE: u32 = 0x2;
/// `info` bit: read-only.
pub const VDISK_READONLY: u32 = 0x4;

/// The unit of `sector_number`, `first_sect` and `last_sect`, whatever the
/// disk's logical sector size.
pub const SECTOR_SIZE: u64 = 512;
/// 512-byte sectors in a page: `last_sect` is at most this minus one.
pub const SECTORS_PER_PAGE: u8 = (crate::PAGE_SIZE / 512) as u8;

/// The ring ABI a frontend uses (xenstore `protocol`, io/protocols.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `x86_32-abi`: 32-bit frontends (GRUB's i386 images, 32-bit Linux).
    X86_32,
    /// `x86_64-abi`: 64-bit frontends, and the default when none is written.
    X86_64,
}

impl Protocol {
    /// Parses the xenstore `protocol` value.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "x86_32-abi" => Some(Protocol::X86_32),
            "x86_64-abi" => Some(Protocol::X86_64),
            _ => None,
        }
    }

    /// The xenstore `protocol` value.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::X86_32 => "x86_32-abi",
            Protocol::X86_64 => "x86_64-abi",
        }
    }

    /// Offset of the 64-bit `id` (and of the fields after it, shifted).
    const fn id(self) -> usize {
        match self {
            Protocol::X86_32 => 4,
            Protocol::X86_64 => 8,
        }
    }

    /// Bytes of a request (`struct blkif_request`, the largest request).
    pub const fn request_size(self) -> usize {
        self.id() + 16 + BLKIF_MAX_SEGMENTS_PER_REQUEST * SEGMENT_SIZE
    }

    /// Bytes of a response (`struct blkif_response`).
    pub const fn response_size(self) -> usize {
        match self {
            Protocol::X86_32 => 12,
            Protocol::X86_64 => 16,
        }
    }

    /// Bytes of one ring slot (the request/response union).
    pub const fn slot_size(self) -> usize {
        let (a, b) = (self.request_size(), self.response_size());
        if a > b {
            a
        } else {
            b
        }
    }
}

/// One page (or part of it) of a read or write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// The grant of the page.
    pub gref: u32,
    /// First 512-byte sector of the page to transfer (inclusive).
    pub first_sect: u8,
    /// Last 512-byte sector of the page to transfer (inclusive).
    pub last_sect: u8,
}

impl Segment {
    /// Decodes the 8-byte `struct blkif_request_segment` (same in both ABIs).
    pub fn decode(b: &[u8]) -> Self {
        Segment { gref: u32::from_le_bytes([b[0], b[1], b[2], b[3]]), first_sect: b[4], last_sect: b[5] }
    }

    /// Encodes the 8-byte `struct blkif_request_segment`.
    pub fn encode(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.gref.to_le_bytes());
        out[4] = self.first_sect;
        out[5] = self.last_sect;
        out[6] = 0;
        out[7] = 0;
    }
}

/// READ, WRITE, WRITE_BARRIER or FLUSH_DISKCACHE (`struct blkif_request`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadWrite {
    /// BLKIF_OP_*.
    pub operation: u8,
    /// Segments used in `seg`.
    pub nr_segments: u8,
    /// The virtual device (unused by backends).
    pub handle: u16,
    /// Echoed in the response.
    pub id: u64,
    /// First 512-byte sector on the disk.
    pub sector_number: u64,
    /// The pages.
    pub seg: [Segment; BLKIF_MAX_SEGMENTS_PER_REQUEST],
}

/// DISCARD (`struct blkif_request_discard`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Discard {
    /// BLKIF_DISCARD_SECURE or 0.
    pub flag: u8,
    /// The virtual device.
    pub handle: u16,
    /// Echoed in the response.
    pub id: u64,
    /// First 512-byte sector to discard.
    pub sector_number: u64,
    /// 512-byte sectors to discard.
    pub nr_sectors: u64,
}

/// INDIRECT (`struct blkif_request_indirect`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Indirect {
    /// BLKIF_OP_READ or BLKIF_OP_WRITE.
    pub indirect_op: u8,
    /// Segments described in the indirect pages.
    pub nr_segments: u16,
    /// Echoed in the response.
    pub id: u64,
    /// First 512-byte sector on the disk.
    pub sector_number: u64,
    /// The virtual device.
    pub handle: u16,
    /// Grants of the pages holding the segment descriptors.
    pub indirect_grefs: [u32; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST],
}

/// A request as found on the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// READ, WRITE, WRITE_BARRIER, FLUSH_DISKCACHE.
    ReadWrite(ReadWrite),
    /// DISCARD.
    Discard(Discard),
    /// INDIRECT.
    Indirect(Indirect),
    /// Any other operation: only its id can be trusted, to answer it.
    Unknown {
        /// The operation byte.
        operation: u8,
        /// Echoed in the response.
        id: u64,
    },
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(w)
}

impl Request {
    /// Decodes a request slot; `None` if `b` is shorter than a request.
    pub fn decode(proto: Protocol, b: &[u8]) -> Option<Self> {
        if b.len() < proto.request_size() {
            return None;
        }
        let id_at = proto.id();
        let id = u64_at(b, id_at);
        let sector_number = u64_at(b, id_at + 8);
        let after = id_at + 16;
        Some(match b[0] {
            BLKIF_OP_READ | BLKIF_OP_WRITE | BLKIF_OP_WRITE_BARRIER | BLKIF_OP_FLUSH_DISKCACHE => {
                let mut seg = [Segment::default(); BLKIF_MAX_SEGMENTS_PER_REQUEST];
                for (i, s) in seg.iter_mut().enumerate() {
                    *s = Segment::decode(&b[after + i * SEGMENT_SIZE..]);
                }
                Request::ReadWrite(ReadWrite { operation: b[0], nr_segments: b[1], handle: u16_at(b, 2), id, sector_number, seg })
            }
            BLKIF_OP_DISCARD => {
                Request::Discard(Discard { flag: b[1], handle: u16_at(b, 2), id, sector_number, nr_sectors: u64_at(b, after) })
            }
            BLKIF_OP_INDIRECT => {
                // handle is a u16 after sector_number; the grant array is
                // 4-byte aligned after it.
                let mut indirect_grefs = [0u32; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
                for (i, g) in indirect_grefs.iter_mut().enumerate() {
                    *g = u32_at(b, after + 4 + i * 4);
                }
                Request::Indirect(Indirect {
                    indirect_op: b[1],
                    nr_segments: u16_at(b, 2),
                    id,
                    sector_number,
                    handle: u16_at(b, after),
                    indirect_grefs,
                })
            }
            operation => Request::Unknown { operation, id },
        })
    }

    /// Encodes the request into a slot of at least `proto.request_size()`
    /// bytes, zeroing the bytes it does not use.
    pub fn encode(&self, proto: Protocol, out: &mut [u8]) {
        let out = &mut out[..proto.request_size()];
        out.fill(0);
        let id_at = proto.id();
        let after = id_at + 16;
        let head = |op: u8, b1: u8, w2: u16, id: u64, sector: u64, out: &mut [u8]| {
            out[0] = op;
            out[1] = b1;
            out[2..4].copy_from_slice(&w2.to_le_bytes());
            out[id_at..id_at + 8].copy_from_slice(&id.to_le_bytes());
            out[id_at + 8..id_at + 16].copy_from_slice(&sector.to_le_bytes());
        };
        match self {
            Request::ReadWrite(r) => {
                head(r.operation, r.nr_segments, r.handle, r.id, r.sector_number, out);
                for (i, s) in r.seg.iter().enumerate() {
                    s.encode(&mut out[after + i * SEGMENT_SIZE..]);
                }
            }
            Request::Discard(d) => {
                head(BLKIF_OP_DISCARD, d.flag, d.handle, d.id, d.sector_number, out);
                out[after..after + 8].copy_from_slice(&d.nr_sectors.to_le_bytes());
            }
            Request::Indirect(r) => {
                head(BLKIF_OP_INDIRECT, r.indirect_op, r.nr_segments, r.id, r.sector_number, out);
                out[after..after + 2].copy_from_slice(&r.handle.to_le_bytes());
                for (i, g) in r.indirect_grefs.iter().enumerate() {
                    out[after + 4 + i * 4..after + 8 + i * 4].copy_from_slice(&g.to_le_bytes());
                }
            }
            Request::Unknown { operation, id } => head(*operation, 0, 0, *id, 0, out),
        }
    }

    /// The operation byte as the frontend wrote it (echoed in the response).
    pub fn operation(&self) -> u8 {
        match self {
            Request::ReadWrite(r) => r.operation,
            Request::Discard(_) => BLKIF_OP_DISCARD,
            Request::Indirect(_) => BLKIF_OP_INDIRECT,
            Request::Unknown { operation, .. } => *operation,
        }
    }

    /// The frontend's id (echoed in the response).
    pub fn id(&self) -> u64 {
        match self {
            Request::ReadWrite(r) => r.id,
            Request::Discard(d) => d.id,
            Request::Indirect(r) => r.id,
            Request::Unknown { id, .. } => *id,
        }
    }
}

/// `struct blkif_response`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// The request's operation.
    pub operation: u8,
    /// BLKIF_RSP_*.
    pub status: i16,
}

impl Response {
    /// Encodes into `proto.response_size()` bytes (id, operation, status at
    /// offsets 0, 8, 10 in both ABIs; only the padding differs).
    pub fn encode(&self, proto: Protocol, out: &mut [u8]) {
        let out = &mut out[..proto.response_size()];
        out.fill(0);
        out[..8].copy_from_slice(&self.id.to_le_bytes());
        out[8] = self.operation;
        out[10..12].copy_from_slice(&self.status.to_le_bytes());
    }

    /// Decodes a response slot; `None` if `b` is too short.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < 12 {
            return None;
        }
        Some(Response { id: u64_at(b, 0), operation: b[8], status: u16_at(b, 10) as i16 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_blkif_h() {
        assert_eq!(Protocol::X86_64.request_size(), 112);
        assert_eq!(Protocol::X86_32.request_size(), 108);
        assert_eq!(Protocol::X86_64.slot_size(), 112);
        assert_eq!(Protocol::X86_32.slot_size(), 108);
        assert_eq!(Protocol::X86_32.response_size(), 12);
        assert_eq!(SEGS_PER_INDIRECT_FRAME, 512);
        assert_eq!(Protocol::from_name("x86_32-abi"), Some(Protocol::X86_32));
        assert_eq!(Protocol::from_name("arm-abi"), None);
    }

    #[test]
    fn x86_32_layout_is_packed_after_handle() {
        // A request as GRUB's i386 blkfront lays it out.
        let mut b = [0u8; 108];
        b[0] = BLKIF_OP_READ;
        b[1] = 1;
        b[2..4].copy_from_slice(&51712u16.to_le_bytes());
        b[4..12].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
        b[12..20].copy_from_slice(&99u64.to_le_bytes());
        b[20..24].copy_from_slice(&9u32.to_le_bytes());
        b[24] = 0;
        b[25] = 7;
        let Some(Request::ReadWrite(r)) = Request::decode(Protocol::X86_32, &b) else { panic!() };
        assert_eq!((r.nr_segments, r.handle, r.id, r.sector_number), (1, 51712, 0x1122_3344_5566_7788, 99));
        assert_eq!(r.seg[0], Segment { gref: 9, first_sect: 0, last_sect: 7 });
        let mut again = [0xffu8; 108];
        Request::ReadWrite(r).encode(Protocol::X86_32, &mut again);
        assert_eq!(again, b);
    }

    #[test]
    fn all_kinds_round_trip_in_both_abis() {
        let reqs = [
            Request::ReadWrite(ReadWrite {
                operation: BLKIF_OP_WRITE,
                nr_segments: 11,
                handle: 5,
                id: 7,
                sector_number: 1 << 40,
                seg: [Segment { gref: 3, first_sect: 1, last_sect: 6 }; 11],
            }),
            Request::Discard(Discard { flag: 1, handle: 2, id: 3, sector_number: 4, nr_sectors: 5 }),
            Request::Indirect(Indirect {
                indirect_op: BLKIF_OP_READ,
                nr_segments: 300,
                id: 9,
                sector_number: 10,
                handle: 11,
                indirect_grefs: [1, 2, 3, 4, 5, 6, 7, 8],
            }),
            Request::Unknown { operation: 42, id: 77 },
        ];
        for proto in [Protocol::X86_32, Protocol::X86_64] {
            for r in reqs {
                let mut b = [0u8; 112];
                r.encode(proto, &mut b);
                assert_eq!(Request::decode(proto, &b[..proto.request_size()]), Some(r), "{proto:?}");
                assert_eq!(Request::decode(proto, &b[..proto.request_size() - 1]), None);
            }
            let rsp = Response { id: u64::MAX - 1, operation: 6, status: BLKIF_RSP_EOPNOTSUPP };
            let mut b = [0u8; 16];
            rsp.encode(proto, &mut b);
            assert_eq!(Response::decode(&b), Some(rsp));
        }
        // x86_64 indirect: handle at 24, grants from 28.
        let mut b = [0u8; 112];
        reqs[2].encode(Protocol::X86_64, &mut b);
        assert_eq!(u16::from_le_bytes([b[24], b[25]]), 11);
        assert_eq!(u32::from_le_bytes([b[28], b[29], b[30], b[31]]), 1);
    }
}
