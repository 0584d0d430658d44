//! Parsing and validating one blkif request, before any guest page is
//! touched: what Linux's blkback checks in `dispatch_rw_block_io` and
//! `vbd_translate`, as pure functions of the request and the disk.

use xen_abi::blkif::{self, Request, Segment};

/// What the disk and the negotiated features allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Disk size in 512-byte sectors.
    pub sectors: u64,
    /// The logical sector size in bytes (a power of two, 512..=4096):
    /// transfers must be aligned to it.
    pub sector_size: u32,
    /// The disk is read-only.
    pub readonly: bool,
    /// FLUSH_DISKCACHE is offered.
    pub flush: bool,
    /// WRITE_BARRIER is offered.
    pub barrier: bool,
    /// DISCARD is offered.
    pub discard: bool,
    /// The most segments an indirect request may carry (0: no indirect).
    pub max_indirect_segments: u32,
}

/// A request that passed the checks that need no guest memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// Echoed in the response.
    pub id: u64,
    /// The operation byte, echoed in the response.
    pub operation: u8,
    /// What to do.
    pub kind: Kind,
}

/// The work a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Read into the segments' pages.
    Read(Transfer),
    /// Write from the segments' pages; then make the disk durable if
    /// `flush` (FLUSH_DISKCACHE or WRITE_BARRIER with data); `drain` first
    /// waits for earlier requests (WRITE_BARRIER).
    Write {
        /// The data.
        transfer: Transfer,
        /// Flush after writing.
        flush: bool,
        /// Wait for all earlier requests first.
        drain: bool,
    },
    /// Make completed writes durable (FLUSH_DISKCACHE or WRITE_BARRIER
    /// without data).
    Flush {
        /// Wait for all earlier requests first (WRITE_BARRIER).
        drain: bool,
    },
    /// Discard a range.
    Discard {
        /// First 512-byte sector.
        sector: u64,
        /// 512-byte sectors.
        count: u64,
    },
    /// Read or write with the segment list in granted pages; checked again
    /// by [`indirect_transfer`] once the pages are read.
    Indirect {
        /// BLKIF_OP_READ or BLKIF_OP_WRITE.
        write: bool,
        /// First 512-byte sector.
        sector: u64,
        /// Number of segments.
        nr_segments: u32,
        /// Grants of the pages holding the segment descriptors.
        pages: Vec<u32>,
    },
}

/// A checked run of segments: contiguous on the disk from `sector`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// First 512-byte sector on the disk.
    pub sector: u64,
    /// The pages, in disk order.
    pub segments: Vec<Segment>,
    /// Total 512-byte sectors.
    pub count: u64,
}

impl Transfer {
    /// Bytes transferred.
    pub fn bytes(&self) -> u64 {
        self.count * blkif::SECTOR_SIZE
    }
}

/// Why a request is refused; the frontend gets an error response for it
/// alone.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// An operation the protocol does not define.
    #[error("unknown operation {0}")]
    UnknownOperation(u8),
    /// An operation this disk does not offer.
    #[error("operation {0} is not offered")]
    NotOffered(&'static str),
    /// A write, flush or discard on a read-only disk.
    #[error("write to a read-only disk")]
    ReadOnly,
    /// A read or write without segments.
    #[error("no segments")]
    NoSegments,
    /// More segments than allowed.
    #[error("{count} segments, more than {max}")]
    TooManySegments {
        /// Segments in the request.
        count: u32,
        /// The limit.
        max: u32,
    },
    /// A segment whose sector range is empty, outside its page or misaligned.
    #[error("segment {index}: sectors {first}..={last} are not a valid range of a page")]
    BadSegment {
        /// The segment's index.
        index: usize,
        /// Its first sector.
        first: u8,
        /// Its last sector.
        last: u8,
    },
    /// Sectors beyond the end of the disk (or wrapping around).
    #[error("sectors {sector}+{count} go past the end of the disk ({size} sectors)")]
    PastEnd {
        /// First sector.
        sector: u64,
        /// Sectors.
        count: u64,
        /// Disk size.
        size: u64,
    },
    /// A start sector not aligned to the logical sector size.
    #[error("sector {0} is not aligned to the disk's sector size")]
    Misaligned(u64),
    /// An indirect request whose inner operation is not READ or WRITE.
    #[error("indirect operation {0} is not READ or WRITE")]
    BadIndirectOperation(u8),
}

impl RequestError {
    /// The response status: EOPNOTSUPP for operations not supported, ERROR
    /// otherwise (as Linux's blkback answers).
    pub fn status(&self) -> i16 {
        match self {
            RequestError::UnknownOperation(_) | RequestError::NotOffered(_) => blkif::BLKIF_RSP_EOPNOTSUPP,
            _ => blkif::BLKIF_RSP_ERROR,
        }
    }
}

/// Checks a request against the disk; the id and operation to answer with
/// are in the error's companion ([`Request::id`], [`Request::operation`]).
pub fn parse(req: &Request, lim: &Limits) -> Result<Parsed, RequestError> {
    let (id, operation) = (req.id(), req.operation());
    let kind = match req {
        Request::ReadWrite(r) => {
            let segs = &r.seg[..usize::from(r.nr_segments).min(blkif::BLKIF_MAX_SEGMENTS_PER_REQUEST)];
            match r.operation {
                blkif::BLKIF_OP_READ | blkif::BLKIF_OP_WRITE => {
                    let write = r.operation == blkif::BLKIF_OP_WRITE;
                    if write && lim.readonly {
                        return Err(RequestError::ReadOnly);
                    }
                    check_count(u32::from(r.nr_segments), blkif::BLKIF_MAX_SEGMENTS_PER_REQUEST as u32)?;
                    let transfer = transfer(r.sector_number, segs, lim)?;
                    if write {
                        Kind::Write { transfer, flush: false, drain: false }
                    } else {
                        Kind::Read(transfer)
                    }
                }
                op => {
                    // FLUSH_DISKCACHE / WRITE_BARRIER, with or without data.
                    let barrier = op == blkif::BLKIF_OP_WRITE_BARRIER;
                    if barrier && !lim.barrier {
                        return Err(RequestError::NotOffered("WRITE_BARRIER"));
                    }
                    if !barrier && !lim.flush {
                        return Err(RequestError::NotOffered("FLUSH_DISKCACHE"));
                    }
                    if lim.readonly {
                        return Err(RequestError::ReadOnly);
                    }
                    if r.nr_segments == 0 {
                        Kind::Flush { drain: barrier }
                    } else {
                        check_count(u32::from(r.nr_segments), blkif::BLKIF_MAX_SEGMENTS_PER_REQUEST as u32)?;
                        Kind::Write { transfer: transfer(r.sector_number, segs, lim)?, flush: true, drain: barrier }
                    }
                }
            }
        }
        Request::Discard(d) => {
            if !lim.discard {
                return Err(RequestError::NotOffered("DISCARD"));
            }
            if lim.readonly {
                return Err(RequestError::ReadOnly);
            }
            // Secure discard is never offered (discard-secure absent): the
            // flag is ignored, as blkif.h allows.
            check_range(d.sector_number, d.nr_sectors, lim)?;
            Kind::Discard { sector: d.sector_number, count: d.nr_sectors }
        }
        Request::Indirect(r) => {
            if lim.max_indirect_segments == 0 {
                return Err(RequestError::NotOffered("INDIRECT"));
            }
            let write = match r.indirect_op {
                blkif::BLKIF_OP_READ => false,
                blkif::BLKIF_OP_WRITE => true,
                op => return Err(RequestError::BadIndirectOperation(op)),
            };
            if write && lim.readonly {
                return Err(RequestError::ReadOnly);
            }
            let n = u32::from(r.nr_segments);
            check_count(n, lim.max_indirect_segments)?;
            let nr_pages = (n as usize).div_ceil(blkif::SEGS_PER_INDIRECT_FRAME);
            check_aligned(r.sector_number, lim)?;
            Kind::Indirect { write, sector: r.sector_number, nr_segments: n, pages: r.indirect_grefs[..nr_pages].to_vec() }
        }
        Request::Unknown { operation, .. } => return Err(RequestError::UnknownOperation(*operation)),
    };
    Ok(Parsed { id, operation, kind })
}

/// Checks the segments an indirect request's pages describe.
pub fn indirect_transfer(sector: u64, segments: &[Segment], lim: &Limits) -> Result<Transfer, RequestError> {
    transfer(sector, segments, lim)
}

fn check_count(n: u32, max: u32) -> Result<(), RequestError> {
    if n == 0 {
        Err(RequestError::NoSegments)
    } else if n > max {
        Err(RequestError::TooManySegments { count: n, max })
    } else {
        Ok(())
    }
}

fn check_aligned(sector: u64, lim: &Limits) -> Result<(), RequestError> {
    let per = u64::from(lim.sector_size / 512).max(1);
    if !sector.is_multiple_of(per) {
        return Err(RequestError::Misaligned(sector));
    }
    Ok(())
}

fn check_range(sector: u64, count: u64, lim: &Limits) -> Result<(), RequestError> {
    check_aligned(sector, lim)?;
    match sector.checked_add(count) {
        Some(end) if end <= lim.sectors => Ok(()),
        _ => Err(RequestError::PastEnd { sector, count, size: lim.sectors }),
    }
}

fn transfer(sector: u64, segments: &[Segment], lim: &Limits) -> Result<Transfer, RequestError> {
    // Segments must start and end on logical-sector boundaries in their page.
    let per = (lim.sector_size / 512).max(1) as u8;
    let mut count = 0u64;
    for (index, s) in segments.iter().enumerate() {
        let bad = s.first_sect > s.last_sect
            || s.last_sect >= blkif::SECTORS_PER_PAGE
            || s.first_sect % per != 0
            || (s.last_sect + 1) % per != 0;
        if bad {
            return Err(RequestError::BadSegment { index, first: s.first_sect, last: s.last_sect });
        }
        count += u64::from(s.last_sect - s.first_sect) + 1;
    }
    check_range(sector, count, lim)?;
    Ok(Transfer { sector, segments: segments.to_vec(), count })
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen_abi::blkif::*;

    const LIM: Limits = Limits {
        sectors: 1000,
        sector_size: 512,
        readonly: false,
        flush: true,
        barrier: true,
        discard: true,
        max_indirect_segments: 256,
    };

    fn rw(op: u8, sector: u64, segs: &[(u8, u8)]) -> Request {
        let mut seg = [Segment::default(); 11];
        for (s, &(first_sect, last_sect)) in seg.iter_mut().zip(segs) {
            *s = Segment { gref: 9, first_sect, last_sect };
        }
        Request::ReadWrite(ReadWrite {
            operation: op,
            nr_segments: segs.len() as u8,
            handle: 0,
            id: 42,
            sector_number: sector,
            seg,
        })
    }

    #[test]
    fn reads_and_writes() {
        let p = parse(&rw(BLKIF_OP_READ, 10, &[(0, 7), (0, 3)]), &LIM).unwrap();
        assert_eq!((p.id, p.operation), (42, BLKIF_OP_READ));
        let Kind::Read(t) = p.kind else { panic!() };
        assert_eq!((t.sector, t.count, t.bytes()), (10, 12, 6144));
        let p = parse(&rw(BLKIF_OP_WRITE, 988, &[(0, 7), (4, 7)]), &LIM).unwrap();
        assert!(matches!(p.kind, Kind::Write { flush: false, drain: false, .. }), "ends exactly at the disk's end");
    }

    #[test]
    fn past_end_and_wrapping() {
        assert_eq!(
            parse(&rw(BLKIF_OP_READ, 993, &[(0, 7)]), &LIM),
            Err(RequestError::PastEnd { sector: 993, count: 8, size: 1000 })
        );
        assert!(matches!(parse(&rw(BLKIF_OP_READ, u64::MAX - 2, &[(0, 7)]), &LIM), Err(RequestError::PastEnd { .. })));
        let d = Request::Discard(Discard { flag: 0, handle: 0, id: 1, sector_number: 999, nr_sectors: 2 });
        assert!(matches!(parse(&d, &LIM), Err(RequestError::PastEnd { .. })));
    }

    #[test]
    fn read_only_disks_refuse_writes() {
        let ro = Limits { readonly: true, ..LIM };
        assert_eq!(parse(&rw(BLKIF_OP_WRITE, 0, &[(0, 7)]), &ro), Err(RequestError::ReadOnly));
        assert_eq!(parse(&rw(BLKIF_OP_FLUSH_DISKCACHE, 0, &[]), &ro), Err(RequestError::ReadOnly));
        let d = Request::Discard(Discard { flag: 0, handle: 0, id: 1, sector_number: 0, nr_sectors: 2 });
        assert_eq!(parse(&d, &ro), Err(RequestError::ReadOnly));
        assert!(parse(&rw(BLKIF_OP_READ, 0, &[(0, 7)]), &ro).is_ok());
        assert_eq!(RequestError::ReadOnly.status(), BLKIF_RSP_ERROR);
    }

    #[test]
    fn unknown_and_unoffered_operations() {
        let e = parse(&Request::Unknown { operation: 4, id: 5 }, &LIM).unwrap_err();
        assert_eq!((e.clone(), e.status()), (RequestError::UnknownOperation(4), BLKIF_RSP_EOPNOTSUPP));
        let none = Limits { flush: false, barrier: false, discard: false, max_indirect_segments: 0, ..LIM };
        assert_eq!(parse(&rw(BLKIF_OP_FLUSH_DISKCACHE, 0, &[]), &none).unwrap_err().status(), BLKIF_RSP_EOPNOTSUPP);
        assert_eq!(parse(&rw(BLKIF_OP_WRITE_BARRIER, 0, &[]), &none).unwrap_err().status(), BLKIF_RSP_EOPNOTSUPP);
        let d = Request::Discard(Discard { flag: 0, handle: 0, id: 1, sector_number: 0, nr_sectors: 2 });
        assert_eq!(parse(&d, &none), Err(RequestError::NotOffered("DISCARD")));
        assert!(matches!(parse(&rw(BLKIF_OP_FLUSH_DISKCACHE, 0, &[]), &LIM).unwrap().kind, Kind::Flush { drain: false }));
        assert!(matches!(
            parse(&rw(BLKIF_OP_WRITE_BARRIER, 0, &[(0, 7)]), &LIM).unwrap().kind,
            Kind::Write { flush: true, drain: true, .. }
        ));
    }

    #[test]
    fn bad_segments_and_counts() {
        assert_eq!(parse(&rw(BLKIF_OP_READ, 0, &[]), &LIM), Err(RequestError::NoSegments));
        assert_eq!(
            parse(&rw(BLKIF_OP_READ, 0, &[(0, 7), (5, 4)]), &LIM),
            Err(RequestError::BadSegment { index: 1, first: 5, last: 4 })
        );
        assert_eq!(parse(&rw(BLKIF_OP_READ, 0, &[(0, 8)]), &LIM), Err(RequestError::BadSegment { index: 0, first: 0, last: 8 }));
        let mut r = rw(BLKIF_OP_READ, 0, &[(0, 7)]);
        if let Request::ReadWrite(x) = &mut r {
            x.nr_segments = 12;
        }
        assert_eq!(parse(&r, &LIM), Err(RequestError::TooManySegments { count: 12, max: 11 }));
        // 4 KiB logical sectors: whole pages only.
        let big = Limits { sector_size: 4096, ..LIM };
        assert!(parse(&rw(BLKIF_OP_READ, 8, &[(0, 7)]), &big).is_ok());
        assert!(matches!(parse(&rw(BLKIF_OP_READ, 8, &[(0, 3)]), &big), Err(RequestError::BadSegment { .. })));
        assert_eq!(parse(&rw(BLKIF_OP_READ, 4, &[(0, 7)]), &big), Err(RequestError::Misaligned(4)));
    }

    #[test]
    fn indirect_requests() {
        let ind = |op, n| {
            Request::Indirect(Indirect {
                indirect_op: op,
                nr_segments: n,
                id: 3,
                sector_number: 0,
                handle: 0,
                indirect_grefs: [1, 2, 3, 4, 5, 6, 7, 8],
            })
        };
        let p = parse(&ind(BLKIF_OP_READ, 513), &Limits { max_indirect_segments: 4096, ..LIM }).unwrap();
        assert_eq!(p.operation, BLKIF_OP_INDIRECT);
        assert_eq!(p.kind, Kind::Indirect { write: false, sector: 0, nr_segments: 513, pages: vec![1, 2] });
        assert_eq!(parse(&ind(BLKIF_OP_READ, 257), &LIM), Err(RequestError::TooManySegments { count: 257, max: 256 }));
        assert_eq!(parse(&ind(BLKIF_OP_READ, 0), &LIM), Err(RequestError::NoSegments));
        assert_eq!(parse(&ind(BLKIF_OP_DISCARD, 1), &LIM), Err(RequestError::BadIndirectOperation(BLKIF_OP_DISCARD)));
        assert_eq!(parse(&ind(BLKIF_OP_WRITE, 1), &Limits { readonly: true, ..LIM }), Err(RequestError::ReadOnly));
        let segs = vec![Segment { gref: 1, first_sect: 0, last_sect: 7 }; 200];
        assert!(matches!(indirect_transfer(0, &segs, &LIM), Err(RequestError::PastEnd { count: 1600, .. })));
    }
}
