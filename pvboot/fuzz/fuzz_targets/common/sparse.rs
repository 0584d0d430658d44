//! A fuzz input read as a small sparse disk image, so that the file-system
//! targets see devices of realistic size while an input stays a few KiB: the
//! input gives the device size and the bytes of the blocks that matter (the
//! first blocks, the metadata blocks); everything else reads as zeros.
//!
//! Layout (all little-endian):
//!
//! ```text
//! u32  device size in KiB (clamped to MIN_SIZE..=MAX_SIZE)
//! then extents, until the input ends:
//!   u32  first sector (512 bytes each)
//!   u16  sector count
//!   ...  count * 512 bytes of data (a short last extent is zero-filled)
//! ```
//!
//! Later extents overwrite earlier ones where they overlap; extents past the
//! device end are cut. `seeds.sh` writes real mkfs/makefs images this way
//! (runs of non-zero sectors), and the regression tests replay inputs through
//! this same file.
//!
//! Shared by pvboot/fuzz, fs-ffs/fuzz and the tests (by `#[path]`), so it
//! depends on neither crate.
#![allow(dead_code)]

/// Sector size of the encoding.
pub const SECTOR: u64 = 512;
/// Smallest device: one 64 KiB FFS superblock area.
pub const MIN_SIZE: u64 = 64 << 10;
/// Largest device. Bigger sizes only stretch loops the readers already
/// bound (group descriptors, cluster chains) and slow each input down.
pub const MAX_SIZE: u64 = 1 << 30;

/// The decoded image: extents over a device of `size` bytes.
pub struct SparseImage {
    size: u64,
    /// (first byte, range in `data`), in input order.
    extents: Vec<(u64, core::ops::Range<usize>)>,
    data: Vec<u8>,
}

impl SparseImage {
    /// Decodes `input`; never fails (short inputs give an empty device).
    pub fn parse(input: &[u8]) -> SparseImage {
        let (size_kib, mut rest) = match input.split_first_chunk::<4>() {
            Some((h, rest)) => (u64::from(u32::from_le_bytes(*h)), rest),
            None => (0, &[][..]),
        };
        let size = (size_kib * 1024).clamp(MIN_SIZE, MAX_SIZE);
        let mut img = SparseImage { size, extents: Vec::new(), data: Vec::new() };
        while let Some((h, body)) = rest.split_first_chunk::<6>() {
            let start = u64::from(u32::from_le_bytes([h[0], h[1], h[2], h[3]])) * SECTOR;
            let count = u64::from(u16::from_le_bytes([h[4], h[5]]));
            let len = (count * SECTOR) as usize;
            let take = len.min(body.len());
            rest = &body[take..];
            if start >= size {
                continue;
            }
            let len = len.min((size - start) as usize);
            let at = img.data.len();
            img.data.extend_from_slice(&body[..take.min(len)]);
            img.data.resize(at + len, 0);
            img.extents.push((start, at..at + len));
        }
        img
    }

    /// Encodes `image` (a whole disk image) the way [`SparseImage::parse`]
    /// reads it: one extent per run of non-zero sectors.
    pub fn encode(image: &[u8]) -> Vec<u8> {
        let kib = (image.len() as u64).div_ceil(1024) as u32;
        let mut out = kib.to_le_bytes().to_vec();
        let sectors: Vec<&[u8]> = image.chunks(SECTOR as usize).collect();
        let mut i = 0;
        while i < sectors.len() {
            if sectors[i].iter().all(|&b| b == 0) {
                i += 1;
                continue;
            }
            let start = i;
            while i < sectors.len() && i - start < 0xFFFF && sectors[i].iter().any(|&b| b != 0) {
                i += 1;
            }
            out.extend_from_slice(&(start as u32).to_le_bytes());
            out.extend_from_slice(&((i - start) as u16).to_le_bytes());
            for s in &sectors[start..i] {
                out.extend_from_slice(s);
                out.resize(out.len() + (SECTOR as usize - s.len()), 0);
            }
        }
        out
    }

    /// Device size in bytes (a whole number of sectors).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Fills `buf` from byte `offset`; false if that is past the device end.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> bool {
        let Some(end) = offset.checked_add(buf.len() as u64) else { return false };
        if end > self.size {
            return false;
        }
        buf.fill(0);
        for (start, range) in &self.extents {
            let ext_end = start + range.len() as u64;
            if ext_end <= offset || *start >= end {
                continue;
            }
            let from = offset.max(*start);
            let to = end.min(ext_end);
            let src = &self.data[range.start + (from - start) as usize..][..(to - from) as usize];
            buf[(from - offset) as usize..][..src.len()].copy_from_slice(src);
        }
        true
    }
}
