//! BSD disklabels (`struct disklabel` of NetBSD's and FreeBSD's
//! `sys/disklabel.h`), in either byte order.
//!
//! Where: NetBSD/amd64 and FreeBSD use LABELSECTOR 1, LABELOFFSET 0, relative
//! to the start of the BSD MBR partition or of a disk without MBR; other NetBSD
//! ports use sector 0 at offset 64 or 128. Like NetBSD's `validate_label`, we
//! scan the first three sectors at every 4-byte offset for `d_magic` and
//! `d_magic2` (0x82564557) in either byte order, and accept a label whose
//! `d_npartitions` is sane and whose XOR checksum is zero.
//!
//! Offsets: NetBSD and OpenBSD `p_offset` values are absolute disk sectors.
//! FreeBSD's are relative to the slice, counted from the raw partition `c`'s
//! `p_offset` (what GEOM_BSD does), so for a label from an MBR partition of
//! type 0xA5 the start is `slice + p_offset - c.p_offset`.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{Entry, Kind, PartError};
use crate::disk::ReadAt;

/// `d_magic` and `d_magic2`.
pub const DISKMAGIC: u32 = 0x8256_4557;
/// Largest `d_npartitions` accepted (NetBSD's largest MAXPARTITIONS is 22).
pub const MAX_PARTITIONS: usize = 22;
/// Size of the fixed part of `struct disklabel`, before `d_partitions`.
pub const HEADER_SIZE: usize = 148;
/// Size of one `struct partition`.
pub const PARTITION_SIZE: usize = 16;
/// Sectors scanned for a label from the start of the container.
pub const SCAN_SECTORS: u64 = 3;

/// One `struct partition`, in host order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPartition {
    /// `p_size`, sectors.
    pub size: u32,
    /// `p_offset`, sectors.
    pub offset: u32,
    /// `p_fstype`.
    pub fstype: u8,
}

/// A label found in a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Byte offset of the label in the scanned buffer.
    pub at: usize,
    /// Whether it is stored big-endian.
    pub big_endian: bool,
    /// `d_secsize`.
    pub sector_size: u32,
    /// `d_partitions[..d_npartitions]`.
    pub partitions: Vec<RawPartition>,
}

fn u32_at(b: &[u8], o: usize, be: bool) -> u32 {
    let a = [b[o], b[o + 1], b[o + 2], b[o + 3]];
    if be {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

fn u16_at(b: &[u8], o: usize, be: bool) -> u16 {
    let a = [b[o], b[o + 1]];
    if be {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}

/// Parses a label at the start of `b`, if there is a valid one.
pub fn parse_at(b: &[u8]) -> Option<Label> {
    if b.len() < HEADER_SIZE {
        return None;
    }
    let be = match (u32_at(b, 0, false), u32_at(b, 0, true)) {
        (DISKMAGIC, _) => false,
        (_, DISKMAGIC) => true,
        _ => return None,
    };
    if u32_at(b, 132, be) != DISKMAGIC {
        return None;
    }
    let n = usize::from(u16_at(b, 138, be));
    let len = HEADER_SIZE + n * PARTITION_SIZE;
    if n > MAX_PARTITIONS || len > b.len() {
        return None;
    }
    // dkcksum: the XOR of all 16-bit words, checksum included, is zero. XOR is
    // per byte, so the byte order does not matter.
    let sum = b[..len]
        .chunks_exact(2)
        .fold(0u16, |acc, w| acc ^ u16::from_le_bytes([w[0], w[1]]));
    if sum != 0 {
        return None;
    }
    let partitions = (0..n)
        .map(|i| {
            let o = HEADER_SIZE + i * PARTITION_SIZE;
            RawPartition {
                size: u32_at(b, o, be),
                offset: u32_at(b, o + 4, be),
                fstype: b[o + 12],
            }
        })
        .collect();
    Some(Label { at: 0, big_endian: be, sector_size: u32_at(b, 40, be), partitions })
}

/// Scans `buf` at every 4-byte offset for a valid label.
pub fn scan(buf: &[u8]) -> Option<Label> {
    (0..buf.len().saturating_sub(HEADER_SIZE - 1))
        .step_by(4)
        .find_map(|at| parse_at(&buf[at..]).map(|l| Label { at, ..l }))
}

/// Reads the label of a container (`base`, `len` sectors; base 0 for a whole
/// disk) as entries with absolute starts; `mbr_type` is the container's MBR
/// type (0xA9 for a bare disk). Partitions of size 0 or past the disk are left out.
pub fn read(
    dev: &dyn ReadAt,
    sector_size: u32,
    base: u64,
    len: u64,
    mbr_type: u8,
) -> Result<Option<Vec<Entry>>, PartError> {
    let ss = u64::from(sector_size);
    let total = dev.size() / ss;
    let n = SCAN_SECTORS.min(len).min(total.saturating_sub(base));
    if n == 0 {
        return Ok(None);
    }
    let mut buf = vec![0u8; (n * ss) as usize];
    dev.read_at(base * ss, &mut buf)?;
    let Some(label) = scan(&buf) else {
        return Ok(None);
    };
    let raw_off = label.partitions.get(2).map_or(0, |p| u64::from(p.offset));
    let mut out = Vec::new();
    for (i, p) in label.partitions.iter().enumerate() {
        if p.size == 0 {
            continue;
        }
        let start = if mbr_type == 0xA5 {
            match u64::from(p.offset).checked_sub(raw_off) {
                Some(rel) => base + rel,
                None => continue,
            }
        } else {
            u64::from(p.offset)
        };
        if start.checked_add(u64::from(p.size)).is_none_or(|e| e > total) {
            continue;
        }
        out.push(Entry {
            number: i as u32 + 1,
            parent: None,
            kind: Kind::Bsd(p.fstype),
            start,
            sectors: u64::from(p.size),
            label: String::new(),
            netbsd_letter: Some(i as u8),
            wedge: None,
        });
    }
    Ok(Some(out))
}

/// NetBSD's name for a `p_fstype` (`fstypenames` in sys/disklabel.h).
pub fn fstype_name(t: u8) -> &'static str {
    match t {
        0 => "unused",
        1 => "swap",
        7 => "4.2BSD",
        8 => "MSDOS",
        9 => "4.4LFS",
        11 => "HPFS",
        12 => "ISO9660",
        13 => "boot",
        17 => "Linux Ext2",
        18 => "NTFS",
        19 => "RAID",
        20 => "ccd",
        24 => "UDF",
        27 => "ZFS",
        _ => "unknown",
    }
}

/// Builds a label (the writer the tests use, since makefs writes none):
/// `parts` are (size, offset, fstype) for indices a, b, c, ...
pub fn build(parts: &[(u32, u32, u8)], sector_size: u32, secperunit: u32, big_endian: bool) -> Vec<u8> {
    let n = parts.len().min(MAX_PARTITIONS);
    let mut b = vec![0u8; HEADER_SIZE + n * PARTITION_SIZE];
    let put32 = |b: &mut [u8], o: usize, v: u32| {
        b[o..o + 4].copy_from_slice(&if big_endian { v.to_be_bytes() } else { v.to_le_bytes() })
    };
    let put16 = |b: &mut [u8], o: usize, v: u16| {
        b[o..o + 2].copy_from_slice(&if big_endian { v.to_be_bytes() } else { v.to_le_bytes() })
    };
    put32(&mut b, 0, DISKMAGIC);
    put16(&mut b, 4, 6); // DKTYPE_ESDI-ish; any type will do
    b[8..8 + 11].copy_from_slice(b"pvboot-test");
    put32(&mut b, 40, sector_size);
    put32(&mut b, 44, 63); // d_nsectors
    put32(&mut b, 48, 16); // d_ntracks
    put32(&mut b, 52, secperunit / (63 * 16)); // d_ncylinders
    put32(&mut b, 56, 63 * 16); // d_secpercyl
    put32(&mut b, 60, secperunit);
    put16(&mut b, 72, 3600); // d_rpm
    put16(&mut b, 74, 1);
    put32(&mut b, 132, DISKMAGIC);
    put16(&mut b, 138, n as u16);
    put32(&mut b, 140, 8192); // d_bbsize
    put32(&mut b, 144, 8192); // d_sbsize
    for (i, &(size, offset, fstype)) in parts.iter().take(n).enumerate() {
        let o = HEADER_SIZE + i * PARTITION_SIZE;
        put32(&mut b, o, size);
        put32(&mut b, o + 4, offset);
        if fstype == 7 {
            put32(&mut b, o + 8, 4096); // p_fsize
            b[o + 13] = 8; // p_frag
        }
        b[o + 12] = fstype;
    }
    let sum = b.chunks_exact(2).fold(0u16, |acc, w| acc ^ u16::from_le_bytes([w[0], w[1]]));
    // Store the checksum so the XOR over the whole label is zero.
    b[136..138].copy_from_slice(&sum.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_both_orders() {
        for be in [false, true] {
            let l = build(&[(100, 16, 7), (50, 116, 1), (200, 0, 0), (200, 0, 0)], 512, 200, be);
            let mut buf = vec![0u8; 1536];
            buf[512..512 + l.len()].copy_from_slice(&l);
            let p = scan(&buf).unwrap();
            assert_eq!(p.at, 512);
            assert_eq!(p.big_endian, be);
            assert_eq!(p.partitions[0], RawPartition { size: 100, offset: 16, fstype: 7 });
            buf[512 + 150] ^= 1;
            assert!(scan(&buf).is_none());
        }
    }
}
