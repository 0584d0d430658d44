//! The GUID partition table (UEFI spec, chapter 5): header and entry array,
//! both CRC32-checked; the backup header at the last LBA is used when the
//! primary (or its entry array) is bad.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{Entry, Kind, PartError};
use crate::disk::ReadAt;

/// Largest entry array read (the spec minimum is 16 KiB; 1 MiB is 8192 entries).
pub const MAX_ARRAY_BYTES: u64 = 1 << 20;

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// The entries of a readable GPT, and which header they came from.
pub struct Gpt {
    /// Used entries in entry-array order.
    pub entries: Vec<Entry>,
    /// The primary was bad and the backup header was used.
    pub backup_used: bool,
}

struct Header {
    entries_lba: u64,
    count: u32,
    entry_size: u32,
    entries_crc: u32,
    first_usable: u64,
    last_usable: u64,
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn le64(b: &[u8], o: usize) -> u64 {
    u64::from(le32(b, o)) | (u64::from(le32(b, o + 4)) << 32)
}

/// Checks a header sector read from `lba` (`total` sectors on the disk).
fn parse_header(s: &[u8], lba: u64, total: u64) -> Result<Header, &'static str> {
    if &s[..8] != b"EFI PART" {
        return Err("has no signature");
    }
    let hsize = le32(s, 12) as usize;
    if hsize < 92 || hsize > s.len() {
        return Err("has a bad header size");
    }
    let mut h = s[..hsize].to_vec();
    h[16..20].fill(0);
    if CRC32.checksum(&h) != le32(s, 16) {
        return Err("fails its header CRC");
    }
    if le64(s, 24) != lba {
        return Err("is at the wrong LBA");
    }
    let hd = Header {
        first_usable: le64(s, 40),
        last_usable: le64(s, 48),
        entries_lba: le64(s, 72),
        count: le32(s, 80),
        entry_size: le32(s, 84),
        entries_crc: le32(s, 88),
    };
    if hd.entry_size < 128 || !hd.entry_size.is_multiple_of(8) {
        return Err("has a bad entry size");
    }
    let bytes = u64::from(hd.count) * u64::from(hd.entry_size);
    if bytes == 0 || bytes > MAX_ARRAY_BYTES {
        return Err("has a bad entry count");
    }
    if hd.first_usable > hd.last_usable || hd.last_usable >= total {
        return Err("has bad usable bounds");
    }
    Ok(hd)
}

fn read_one(dev: &dyn ReadAt, ss: u64, lba: u64, total: u64) -> Result<Result<Vec<Entry>, &'static str>, PartError> {
    let mut s = vec![0u8; ss as usize];
    dev.read_at(lba * ss, &mut s)?;
    let h = match parse_header(&s, lba, total) {
        Ok(h) => h,
        Err(e) => return Ok(Err(e)),
    };
    let bytes = u64::from(h.count) * u64::from(h.entry_size);
    let fits = h
        .entries_lba
        .checked_mul(ss)
        .and_then(|o| o.checked_add(bytes))
        .is_some_and(|end| end <= total * ss);
    if !fits || h.entries_lba == 0 {
        return Ok(Err("has its entries outside the disk"));
    }
    let mut arr = vec![0u8; bytes as usize];
    dev.read_at(h.entries_lba * ss, &mut arr)?;
    if CRC32.checksum(&arr) != h.entries_crc {
        return Ok(Err("fails its entries CRC"));
    }
    let mut out = Vec::new();
    for (i, e) in arr.chunks_exact(h.entry_size as usize).enumerate() {
        let mut guid = [0u8; 16];
        guid.copy_from_slice(&e[..16]);
        if guid == [0; 16] {
            continue;
        }
        let (first, last) = (le64(e, 32), le64(e, 40));
        // Entries outside the usable area are skipped rather than trusted.
        if first > last || first < h.first_usable || last > h.last_usable {
            continue;
        }
        let units: Vec<u16> = e[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        let label: String = char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect();
        out.push(Entry {
            number: i as u32 + 1,
            parent: None,
            kind: Kind::Gpt(guid),
            start: first,
            sectors: last - first + 1,
            label,
            netbsd_letter: None,
            wedge: None,
        });
    }
    Ok(Ok(out))
}

/// Reads the GPT: primary at LBA 1, else the backup at the last LBA.
pub fn read(dev: &dyn ReadAt, sector_size: u32) -> Result<Gpt, PartError> {
    let ss = u64::from(sector_size);
    let total = dev.size() / ss;
    if total < 3 {
        return Err(PartError::GptBad { primary: "does not fit", backup: "does not fit" });
    }
    let primary = match read_one(dev, ss, 1, total)? {
        Ok(entries) => return Ok(Gpt { entries, backup_used: false }),
        Err(e) => e,
    };
    match read_one(dev, ss, total - 1, total)? {
        Ok(entries) => Ok(Gpt { entries, backup_used: true }),
        Err(backup) => Err(PartError::GptBad { primary, backup }),
    }
}

/// Formats a GUID stored in GPT (mixed-endian) byte order.
pub fn guid_string(g: &[u8; 16]) -> String {
    use core::fmt::Write;
    let mut s = String::new();
    let _ = write!(
        s,
        "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-",
        u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
        u16::from_le_bytes([g[4], g[5]]),
        u16::from_le_bytes([g[6], g[7]]),
        g[8],
        g[9]
    );
    for b in &g[10..] {
        let _ = write!(s, "{b:02X}");
    }
    s
}

/// A short human name for well-known partition type GUIDs.
pub fn type_name(g: &[u8; 16]) -> &'static str {
    match guid_string(g).as_str() {
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" => "EFI system",
        "21686148-6449-6E6F-744E-656564454649" => "BIOS boot",
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4" => "Linux filesystem",
        "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F" => "Linux swap",
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7" => "Microsoft basic data",
        "49F48D5A-B10E-11DC-B99B-0019D1879648" => "NetBSD FFS",
        "49F48D32-B10E-11DC-B99B-0019D1879648" => "NetBSD swap",
        "516E7CB6-6ECF-11D6-8FF8-00022D09712B" => "FreeBSD UFS",
        "83BD6B9D-7F41-11DC-BE0B-001560B84F0F" => "FreeBSD boot",
        _ => "unknown",
    }
}
