//! Cutting a caller's buffer into blkif requests: one segment per page it
//! touches (512-byte sectors `first_sect..=last_sect` of that page), up to
//! the negotiated number of segments per request. Pure, host-tested.

use alloc::vec::Vec;

use xen_abi::blkif::SECTOR_SIZE;
use xen_abi::PAGE_SIZE;

/// One page's part of a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegSpec {
    /// The page's guest frame number.
    pub gfn: u64,
    /// First 512-byte sector of the page (inclusive).
    pub first_sect: u8,
    /// Last 512-byte sector of the page (inclusive).
    pub last_sect: u8,
}

impl SegSpec {
    /// Bytes this segment moves.
    pub fn bytes(&self) -> usize {
        (self.last_sect as usize + 1 - self.first_sect as usize) * SECTOR_SIZE as usize
    }
}

/// Walks a buffer `[addr, addr + len)` that starts at 512-byte sector
/// `sector` of the disk, request by request. `addr` and `len` must be
/// multiples of 512 ([`Planner::new`] refuses others).
#[derive(Clone, Debug)]
pub struct Planner {
    addr: usize,
    end: usize,
    sector: u64,
}

impl Planner {
    /// A planner, or `None` if the buffer is not 512-byte aligned in
    /// address and length (such buffers go through a bounce page).
    pub fn new(addr: usize, len: usize, sector: u64) -> Option<Self> {
        let s = SECTOR_SIZE as usize;
        if !addr.is_multiple_of(s) || !len.is_multiple_of(s) {
            return None;
        }
        Some(Planner {
            addr,
            end: addr.checked_add(len)?,
            sector,
        })
    }

    /// Whether everything has been planned.
    pub fn done(&self) -> bool {
        self.addr >= self.end
    }

    /// Bytes not yet planned.
    pub fn remaining(&self) -> usize {
        self.end.saturating_sub(self.addr)
    }

    /// Fills `segs` with the next request's segments (at most `max_segs`)
    /// and returns its first disk sector and byte count; `None` when done.
    pub fn next(&mut self, max_segs: usize, segs: &mut Vec<SegSpec>) -> Option<(u64, usize)> {
        segs.clear();
        if self.done() || max_segs == 0 {
            return None;
        }
        let start_sector = self.sector;
        let start = self.addr;
        while segs.len() < max_segs && self.addr < self.end {
            let off = self.addr % PAGE_SIZE;
            let n = (PAGE_SIZE - off).min(self.end - self.addr);
            segs.push(SegSpec {
                gfn: crate::gnttab::virt_to_gfn(self.addr),
                first_sect: (off / SECTOR_SIZE as usize) as u8,
                last_sect: ((off + n) / SECTOR_SIZE as usize - 1) as u8,
            });
            self.addr += n;
            self.sector += (n / SECTOR_SIZE as usize) as u64;
        }
        Some((start_sector, self.addr - start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(addr: usize, len: usize, max: usize) -> Vec<(u64, usize, Vec<SegSpec>)> {
        let mut p = Planner::new(addr, len, 100).unwrap();
        let mut out = Vec::new();
        let mut segs = Vec::new();
        while let Some((sector, bytes)) = p.next(max, &mut segs) {
            out.push((sector, bytes, segs.clone()));
        }
        out
    }

    #[test]
    fn page_aligned_buffers_use_whole_pages() {
        let r = all(0x10000, 3 * 4096, 11);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, 100);
        assert_eq!(r[0].1, 3 * 4096);
        assert_eq!(
            r[0].2[0],
            SegSpec {
                gfn: 0x10,
                first_sect: 0,
                last_sect: 7
            }
        );
        assert_eq!(
            r[0].2[2],
            SegSpec {
                gfn: 0x12,
                first_sect: 0,
                last_sect: 7
            }
        );
    }

    #[test]
    fn sector_aligned_buffers_start_and_end_mid_page() {
        // 0x10200..0x12400: sectors 1..7 of page 0x10, all of 0x11, 0..1 of 0x12.
        let r = all(0x10200, 0x2200, 11);
        assert_eq!(r.len(), 1);
        let s = &r[0].2;
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].first_sect, s[0].last_sect), (1, 7));
        assert_eq!((s[1].first_sect, s[1].last_sect), (0, 7));
        assert_eq!((s[2].first_sect, s[2].last_sect), (0, 1));
        assert_eq!(s.iter().map(SegSpec::bytes).sum::<usize>(), 0x2200);
        // One sector in the middle of a page.
        let r = all(0x10400, 512, 11);
        assert_eq!(
            r[0].2,
            [SegSpec {
                gfn: 0x10,
                first_sect: 2,
                last_sect: 2
            }]
        );
    }

    #[test]
    fn long_buffers_split_at_the_segment_limit_and_advance_the_sector() {
        let r = all(0x100000, 30 * 4096, 11);
        assert_eq!(r.iter().map(|x| x.2.len()).collect::<Vec<_>>(), [11, 11, 8]);
        assert_eq!(
            r.iter().map(|x| x.0).collect::<Vec<_>>(),
            [100, 100 + 88, 100 + 176]
        );
        let r = all(0x100000, 300 * 4096, 256);
        assert_eq!(r.iter().map(|x| x.2.len()).collect::<Vec<_>>(), [256, 44]);
        assert_eq!(r[1].2[0].gfn, 0x100 + 256);
    }

    #[test]
    fn unaligned_buffers_are_refused() {
        assert!(Planner::new(0x10001, 512, 0).is_none());
        assert!(Planner::new(0x10000, 100, 0).is_none());
        let mut p = Planner::new(0x1000, 0, 0).unwrap();
        assert!(p.done());
        assert_eq!(p.next(11, &mut Vec::new()), None);
    }
}
