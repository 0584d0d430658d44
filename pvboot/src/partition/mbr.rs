//! The MBR (DOS) partition table: four primary slots and a chain of extended
//! boot records for logical partitions (numbered from 5, as Linux and GRUB do).

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{Entry, Kind, PartError};
use crate::disk::ReadAt;

/// Type byte of a GPT protective MBR partition.
pub const TYPE_GPT_PROTECTIVE: u8 = 0xEE;
/// Most logical partitions followed in one extended chain (Linux allows 60ish).
pub const MAX_LOGICALS: u32 = 128;

/// One raw slot of a partition sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawEntry {
    /// Boot indicator (0 or 0x80).
    pub boot: u8,
    /// Partition type byte (0: unused).
    pub ptype: u8,
    /// First sector, relative to the sector's base.
    pub start: u32,
    /// Length in sectors.
    pub size: u32,
}

/// Whether `t` is an extended-partition container type.
pub fn is_extended(t: u8) -> bool {
    matches!(t, 0x05 | 0x0F | 0x85)
}

fn raw(s: &[u8], i: usize) -> RawEntry {
    let e = &s[446 + 16 * i..][..16];
    RawEntry {
        boot: e[0],
        ptype: e[4],
        start: u32::from_le_bytes([e[8], e[9], e[10], e[11]]),
        size: u32::from_le_bytes([e[12], e[13], e[14], e[15]]),
    }
}

fn looks_like_boot_sector(s: &[u8]) -> bool {
    // FAT and NTFS volume boot records also end in 55 AA; their BPB lands
    // where partition entries would be, so tell them apart by their names.
    &s[54..59] == b"FAT12"
        || &s[54..59] == b"FAT16"
        || &s[54..62] == b"FAT     "
        || &s[82..87] == b"FAT32"
        || &s[3..7] == b"NTFS"
}

/// The four primary slots of sector 0, if it is an MBR with at least one used
/// slot (signature 55 AA, boot flags 0 or 0x80, used slots non-empty).
pub fn parse_sector(s: &[u8]) -> Option<[RawEntry; 4]> {
    if s.len() < 512 || s[510] != 0x55 || s[511] != 0xAA || looks_like_boot_sector(s) {
        return None;
    }
    let e = [raw(s, 0), raw(s, 1), raw(s, 2), raw(s, 3)];
    let mut used = 0;
    for p in &e {
        if p.boot != 0 && p.boot != 0x80 {
            return None;
        }
        if p.ptype != 0 {
            if p.size == 0 || p.start == 0 {
                return None;
            }
            used += 1;
        }
    }
    (used > 0).then_some(e)
}

fn entry(number: u32, kind: Kind, start: u64, sectors: u64) -> Entry {
    Entry {
        number,
        parent: None,
        kind,
        start,
        sectors,
        label: String::new(),
        netbsd_letter: None,
        wedge: None,
    }
}

/// Primaries (including the extended container) and logical partitions.
///
/// Partitions that do not fit on the disk are left out; the extended chain
/// stops at a bad EBR, a backwards or out-of-container link, or
/// [`MAX_LOGICALS`].
pub fn read(dev: &dyn ReadAt, sector_size: u32, prim: &[RawEntry; 4]) -> Result<Vec<Entry>, PartError> {
    let ss = u64::from(sector_size);
    let total = dev.size() / ss;
    let fits = |start: u64, len: u64| start.checked_add(len).is_some_and(|e| e <= total);
    let mut out = Vec::new();
    let mut ext = None;
    for (i, p) in prim.iter().enumerate() {
        if p.ptype == 0 || !fits(u64::from(p.start), u64::from(p.size)) {
            continue;
        }
        if is_extended(p.ptype) && ext.is_none() {
            ext = Some((u64::from(p.start), u64::from(p.size)));
        }
        out.push(entry(i as u32 + 1, Kind::Primary(p.ptype), p.start.into(), p.size.into()));
    }
    let Some((ext_start, ext_len)) = ext else {
        return Ok(out);
    };
    let ext_end = ext_start + ext_len;
    let mut cur = ext_start;
    let mut sec = vec![0u8; sector_size as usize];
    let mut number = 5;
    while number < 5 + MAX_LOGICALS {
        dev.read_at(cur * ss, &mut sec)?;
        if sec[510] != 0x55 || sec[511] != 0xAA {
            break;
        }
        let (l, link) = (raw(&sec, 0), raw(&sec, 1));
        if l.ptype != 0 && !is_extended(l.ptype) && l.size != 0 {
            let start = cur + u64::from(l.start);
            let len = u64::from(l.size);
            if start > cur && start + len <= ext_end {
                out.push(entry(number, Kind::Logical(l.ptype), start, len));
                number += 1;
            }
        }
        if !is_extended(link.ptype) {
            break;
        }
        let next = ext_start + u64::from(link.start);
        // Links must move forward inside the container: no loops.
        if next <= cur || next >= ext_end {
            break;
        }
        cur = next;
    }
    Ok(out)
}

/// A short human name for an MBR type byte.
pub fn type_name(t: u8) -> &'static str {
    match t {
        0x01 => "FAT12",
        0x04 | 0x06 | 0x0E => "FAT16",
        0x0B | 0x0C => "FAT32",
        0x05 | 0x0F | 0x85 => "extended",
        0x07 => "NTFS/exFAT",
        0x82 => "Linux swap",
        0x83 => "Linux",
        0x8E => "Linux LVM",
        0xA5 => "FreeBSD",
        0xA6 => "OpenBSD",
        0xA9 => "NetBSD",
        0xEE => "GPT protective",
        0xEF => "EFI system",
        0xFD => "Linux RAID",
        _ => "unknown",
    }
}
