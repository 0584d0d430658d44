//! FAT12, FAT16 and FAT32 with VFAT long file names, read-only.
//!
//! Why not a crate: the published `fatfs` 0.3 needs the nightly-only
//! `core_io` crate for no_std. `lamfat` 0.4 (a republish of fatfs's no_std
//! 0.4 git line) builds on stable and reads FAT12/16/32 + LFN, but it is a
//! read-write engine behind `&mut` I/O in a `RefCell` that trusts the disk:
//! `cluster - 2` underflows on cluster values 0 and 1 (a panic with overflow
//! checks), cluster chains are followed without loop limits (a cyclic
//! directory chain hangs `DirIter`), and its file reads stop at each cluster
//! boundary, so bulk reads cannot be handed to the device in one piece.
//! `embedded-sdmmc` has no FAT12 and a fixed-handle API; `hadris-fat` 3 is a
//! release candidate. A read-only reader is small, so this module is one,
//! written for hostile images: every cluster number is range-checked, every
//! chain walk is bounded (by the file size, or by the 2 MiB / 65536-entry
//! directory limit of the FAT spec; a directory chain that loops is refused
//! as soon as it comes round), and contiguous cluster runs are read
//! with one device request straight into the caller's buffer.
//!
//! Names: the VFAT long name when its entries are complete and their checksum
//! matches the short entry, else the 8.3 name (code page 437, lowercased per
//! the NT case flags). Lookups compare case-insensitively and also accept the
//! 8.3 alias. Modes are synthesized: directories 0755, files 0644 (no write
//! bits when read-only); owner 0:0; times are the DOS local time read as UTC.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;

use super::{DirEntry, FileSystem, FileType, FsError, FsKind, ListingBudget, Metadata, Node};
use crate::disk::ReadAt;

/// Largest directory read: 65536 entries of 32 bytes (the FAT spec's limit).
pub const MAX_DIR_BYTES: u64 = 65536 * 32;
/// Handle of the fixed FAT12/16 root directory region.
const FIXED_ROOT: u64 = u64::MAX;

fn corrupt(s: &str) -> FsError {
    FsError::Corrupt(format!("FAT: {s}"))
}

/// The BIOS parameter block, checked, with the derived layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bpb {
    bytes_per_sector: u32,
    sectors_per_cluster: u32,
    fat_start: u64,
    fat_bytes: u64,
    root_dir_start: u64,
    root_dir_bytes: u64,
    data_start: u64,
    clusters: u32,
    root_cluster: u32,
    kind: FsKind,
    /// Volume serial number, when the extended boot signature is there.
    serial: Option<u32>,
    /// The boot sector's copy of the volume label (with its 0x29 signature).
    bpb_label: Option<[u8; 11]>,
}

fn le16(b: &[u8], o: usize) -> u32 {
    u32::from(u16::from_le_bytes([b[o], b[o + 1]]))
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

impl Bpb {
    /// Parses and checks boot sector `bs` of a volume of `vol_size` bytes.
    pub fn parse(bs: &[u8], vol_size: u64) -> Result<Bpb, FsError> {
        if bs.len() < 512 || !(bs[0] == 0xEB || bs[0] == 0xE9) {
            return Err(corrupt("no boot sector jump"));
        }
        let bps = le16(bs, 11);
        let spc = u32::from(bs[13]);
        let rsvd = le16(bs, 14);
        let nfats = u32::from(bs[16]);
        let root_ents = le16(bs, 17);
        let media = bs[21];
        let fatsz16 = le16(bs, 22);
        let total = match le16(bs, 19) {
            0 => le32(bs, 32),
            t => t,
        };
        if !matches!(bps, 512 | 1024 | 2048 | 4096)
            || !spc.is_power_of_two()
            || spc > 128
            || rsvd == 0
            || !(1..=4).contains(&nfats)
            || !(media == 0xF0 || media >= 0xF8)
            || total == 0
        {
            return Err(corrupt("bad BIOS parameter block"));
        }
        let fatsz = if fatsz16 != 0 { fatsz16 } else { le32(bs, 36) };
        if fatsz == 0 {
            return Err(corrupt("zero FAT size"));
        }
        let root_dir_sectors = (root_ents * 32).div_ceil(bps);
        let meta = u64::from(rsvd) + u64::from(nfats) * u64::from(fatsz) + u64::from(root_dir_sectors);
        if meta >= u64::from(total) {
            return Err(corrupt("metadata larger than the volume"));
        }
        let clusters = ((u64::from(total) - meta) / u64::from(spc)) as u32;
        let kind = if clusters < 4085 {
            FsKind::Fat12
        } else if clusters < 65525 {
            FsKind::Fat16
        } else {
            FsKind::Fat32
        };
        let bps64 = u64::from(bps);
        let mut fat_index = 0;
        let mut root_cluster = 0;
        if kind == FsKind::Fat32 {
            root_cluster = le32(bs, 44);
            if root_ents != 0 || fatsz16 != 0 || root_cluster < 2 || root_cluster >= clusters.saturating_add(2) {
                return Err(corrupt("bad FAT32 parameters"));
            }
            let flags = le16(bs, 40);
            // Mirroring off: only the FAT numbered in the low bits is current.
            if flags & 0x80 != 0 && (flags & 0xF) < nfats {
                fat_index = flags & 0xF;
            }
        } else if root_ents == 0 {
            return Err(corrupt("no root directory entries"));
        }
        let bits = match kind {
            FsKind::Fat12 => 12,
            FsKind::Fat16 => 16,
            _ => 32,
        };
        let fat_bytes = u64::from(fatsz) * bps64;
        if fat_bytes * 8 / bits < u64::from(clusters) + 2 {
            return Err(corrupt("FAT too small for the cluster count"));
        }
        if meta * bps64 > vol_size {
            return Err(corrupt("volume truncated"));
        }
        // The extended boot record: 0x28 has the serial, 0x29 also the label.
        let ebr = if kind == FsKind::Fat32 { 64 } else { 36 };
        let signature = bs[ebr + 2];
        let serial = matches!(signature, 0x28 | 0x29).then(|| le32(bs, ebr + 3));
        let bpb_label = (signature == 0x29).then(|| {
            let mut l = [0u8; 11];
            l.copy_from_slice(&bs[ebr + 7..ebr + 18]);
            l
        });
        // The cluster count bounds every chain walk: it must describe this volume.
        if u64::from(total) * bps64 > vol_size {
            return Err(corrupt("total sectors past the end of the volume"));
        }
        Ok(Bpb {
            bytes_per_sector: bps,
            sectors_per_cluster: spc,
            fat_start: (u64::from(rsvd) + u64::from(fat_index) * u64::from(fatsz)) * bps64,
            fat_bytes,
            root_dir_start: (u64::from(rsvd) + u64::from(nfats) * u64::from(fatsz)) * bps64,
            root_dir_bytes: u64::from(root_ents) * 32,
            data_start: meta * bps64,
            clusters,
            root_cluster,
            kind,
            serial,
            bpb_label,
        })
    }

    /// FAT12, FAT16 or FAT32, by cluster count.
    pub fn kind(&self) -> FsKind {
        self.kind
    }

    /// Bytes per cluster.
    pub fn cluster_size(&self) -> u64 {
        u64::from(self.bytes_per_sector) * u64::from(self.sectors_per_cluster)
    }
}

/// Where the last read of a file ended, so sequential reads don't rewalk the chain.
#[derive(Clone, Copy)]
struct ChainPos {
    first: u32,
    index: u64,
    cluster: u32,
}

/// One parsed directory entry.
struct RawEntry {
    name: String,
    short: String,
    attr: u8,
    cluster: u32,
    size: u32,
    mtime: i64,
}

/// A mounted FAT volume.
pub struct FatFs<R> {
    vol: R,
    bpb: Bpb,
    pos: Cell<Option<ChainPos>>,
}

const CP437_HIGH: &str = "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u{a0}";

fn cp437(b: u8) -> char {
    if b < 0x80 {
        if b < 0x20 { char::REPLACEMENT_CHARACTER } else { b as char }
    } else {
        CP437_HIGH.chars().nth(usize::from(b - 0x80)).unwrap_or(char::REPLACEMENT_CHARACTER)
    }
}

fn short_name(e: &[u8]) -> String {
    let lower_base = e[12] & 0x08 != 0;
    let lower_ext = e[12] & 0x10 != 0;
    let conv = |b: u8, lower: bool| {
        let c = cp437(b);
        if lower { c.to_ascii_lowercase() } else { c }
    };
    // Without the space padding; one allocation (every lookup parses whole directories).
    let trim = |f: &[u8]| f.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    let mut s = String::with_capacity(12);
    for (i, &b) in e[..trim(&e[..8])].iter().enumerate() {
        // 0x05 in the first byte stands for 0xE5 (which marks deleted entries).
        s.push(conv(if i == 0 && b == 0x05 { 0xE5 } else { b }, lower_base));
    }
    let ext = &e[8..8 + trim(&e[8..11])];
    if !ext.is_empty() {
        s.push('.');
        s.extend(ext.iter().map(|&b| conv(b, lower_ext)));
    }
    s
}

/// An 11-byte label in code page 437, trailing blanks dropped; `None` if blank.
fn label_text(raw: &[u8]) -> Option<String> {
    let end = raw.iter().rposition(|&b| b != b' ' && b != 0)? + 1;
    Some(raw[..end].iter().map(|&b| cp437(b)).collect())
}

fn sfn_checksum(e: &[u8]) -> u8 {
    e[..11].iter().fold(0u8, |s, &b| ((s & 1) << 7).wrapping_add(s >> 1).wrapping_add(b))
}

fn dos_time(date: u32, time: u32) -> i64 {
    let year = 1980 + i64::from(date >> 9);
    let month = ((date >> 5) & 0xF).clamp(1, 12);
    let day = (date & 0x1F).max(1);
    let secs = i64::from((time >> 11).min(23)) * 3600 + i64::from(((time >> 5) & 0x3F).min(59)) * 60 + i64::from(((time & 0x1F) * 2).min(59));
    super::days_from_civil(year, month, day) * 86400 + secs
}

fn names_equal(a: &str, b: &str) -> bool {
    a.chars().flat_map(char::to_lowercase).eq(b.chars().flat_map(char::to_lowercase))
}

/// Parses directory bytes; stops at the end marker.
fn parse_dir(bytes: &[u8]) -> Vec<RawEntry> {
    let mut out = Vec::new();
    let mut lfn: Vec<u16> = Vec::new();
    let mut expect = 0u8; // next LFN ordinal expected; 0 when none pending
    let mut lfn_done = false;
    let mut csum = 0u8;
    for e in bytes.chunks_exact(32) {
        if e[0] == 0 {
            break;
        }
        let attr = e[11];
        if e[0] == 0xE5 {
            lfn_done = false;
            expect = 0;
            continue;
        }
        if attr & 0x3F == 0x0F {
            let ord = e[0] & 0x1F;
            if e[0] & 0x40 != 0 {
                lfn = vec![0xFFFF; usize::from(ord) * 13];
                expect = ord;
                csum = e[13];
            }
            if ord == 0 || ord != expect || e[13] != csum {
                expect = 0;
                lfn_done = false;
                continue;
            }
            let units = e[1..11].chunks_exact(2).chain(e[14..26].chunks_exact(2)).chain(e[28..32].chunks_exact(2));
            for (i, u) in units.enumerate() {
                lfn[usize::from(ord - 1) * 13 + i] = u16::from_le_bytes([u[0], u[1]]);
            }
            expect = ord - 1;
            lfn_done = expect == 0;
            continue;
        }
        let had_lfn = lfn_done && sfn_checksum(e) == csum;
        lfn_done = false;
        expect = 0;
        if attr & 0x08 != 0 || &e[..11] == b".          " || &e[..11] == b"..         " {
            continue;
        }
        let short = short_name(e);
        let name = if had_lfn {
            let units = lfn.iter().copied().take_while(|&u| u != 0 && u != 0xFFFF);
            char::decode_utf16(units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)).collect()
        } else {
            short.clone()
        };
        if name.is_empty() || name.contains('/') {
            continue;
        }
        out.push(RawEntry {
            name,
            short,
            attr,
            cluster: (le16(e, 20) << 16) | le16(e, 26),
            size: le32(e, 28),
            mtime: dos_time(le16(e, 24), le16(e, 22)),
        });
    }
    out
}

impl<R: ReadAt> FatFs<R> {
    /// Mounts the FAT volume `vol`.
    pub fn open(vol: R) -> Result<Self, FsError> {
        let mut bs = [0u8; 512];
        vol.read_at(0, &mut bs)?;
        let bpb = Bpb::parse(&bs, vol.size())?;
        Ok(FatFs { vol, bpb, pos: Cell::new(None) })
    }

    /// The checked boot parameters.
    pub fn bpb(&self) -> &Bpb {
        &self.bpb
    }

    fn check_cluster(&self, c: u32) -> Result<(), FsError> {
        if c < 2 || c >= self.bpb.clusters.saturating_add(2) {
            return Err(corrupt("cluster number out of range"));
        }
        Ok(())
    }

    /// The cluster after `c`, or `None` at the end of the chain.
    fn next(&self, c: u32) -> Result<Option<u32>, FsError> {
        self.check_cluster(c)?;
        let c64 = u64::from(c);
        let (off, eoc, bad, mask) = match self.bpb.kind {
            FsKind::Fat12 => (c64 + c64 / 2, 0xFF8, 0xFF7, 0xFFF),
            FsKind::Fat16 => (c64 * 2, 0xFFF8, 0xFFF7, 0xFFFF),
            _ => (c64 * 4, 0x0FFF_FFF8, 0x0FFF_FFF7, 0x0FFF_FFFF),
        };
        let width = if self.bpb.kind == FsKind::Fat32 { 4 } else { 2 };
        if off + width > self.bpb.fat_bytes {
            return Err(corrupt("cluster beyond the FAT"));
        }
        let mut b = [0u8; 4];
        self.vol.read_at(self.bpb.fat_start + off, &mut b[..width as usize])?;
        let mut v = u32::from_le_bytes(b);
        if self.bpb.kind == FsKind::Fat12 && c & 1 == 1 {
            v >>= 4;
        }
        let v = v & mask;
        if v >= eoc {
            return Ok(None);
        }
        if v == bad {
            return Err(corrupt("chain reaches a bad cluster"));
        }
        self.check_cluster(v)?;
        Ok(Some(v))
    }

    fn cluster_offset(&self, c: u32) -> u64 {
        self.bpb.data_start + u64::from(c - 2) * self.bpb.cluster_size()
    }

    fn dir_bytes(&self, handle: u64) -> Result<Vec<u8>, FsError> {
        if handle == FIXED_ROOT {
            let mut b = vec![0u8; self.bpb.root_dir_bytes as usize];
            self.vol.read_at(self.bpb.root_dir_start, &mut b)?;
            return Ok(b);
        }
        let cs = self.bpb.cluster_size();
        let mut c = u32::try_from(handle).map_err(|_| corrupt("bad directory handle"))?;
        self.check_cluster(c)?;
        let mut out = Vec::new();
        // A chain that comes back to a cluster loops: Brent's method finds
        // that within twice the loop's length (the cluster last saved is
        // compared with each next one, and saved afresh at every power of
        // two). Before, only the 2 MiB cap below cut a loop of full clusters,
        // and every lookup through the directory read and parsed all of it
        // again (campaign 3's pvboot_probe timeout, docs/reliability.md).
        let mut saved = c;
        let (mut power, mut steps) = (1u32, 0u32);
        // The spec caps directories at 65536 entries: a longer chain is corrupt too.
        while (out.len() as u64) < MAX_DIR_BYTES {
            let at = out.len();
            out.resize(at + cs as usize, 0);
            self.vol.read_at(self.cluster_offset(c), &mut out[at..])?;
            if out[at..].chunks_exact(32).any(|e| e[0] == 0) {
                break;
            }
            match self.next(c)? {
                Some(n) if n == saved => return Err(corrupt("directory cluster chain loops")),
                Some(n) => c = n,
                None => break,
            }
            steps += 1;
            if steps == power {
                saved = c;
                power = power.saturating_mul(2);
                steps = 0;
            }
        }
        Ok(out)
    }

    /// The root directory's volume-label entry (what GRUB and blkid read first).
    fn root_label(&self) -> Option<String> {
        let bytes = self.dir_bytes(self.root().handle).ok()?;
        for e in bytes.chunks_exact(32) {
            match (e[0], e[11]) {
                (0, _) => break,
                (0xE5, _) => {}
                // Volume ID, ignoring the archive bit; not a long-name entry.
                (_, attr) if attr & !0x20 == 0x08 => return label_text(&e[..11]),
                _ => {}
            }
        }
        None
    }

    fn root(&self) -> Node {
        let handle = if self.bpb.kind == FsKind::Fat32 { u64::from(self.bpb.root_cluster) } else { FIXED_ROOT };
        Node {
            path: "/".to_string(),
            meta: Metadata {
                kind: FileType::Dir,
                perm: 0o755,
                size: 0,
                mtime: 0,
                mtime_nsec: 0,
                uid: 0,
                gid: 0,
                nlink: Some(1),
                ino: Some(if handle == FIXED_ROOT { 1 } else { handle }),
            },
            handle,
        }
    }

    fn node(&self, dir_path: &str, e: &RawEntry) -> Node {
        let is_dir = e.attr & 0x10 != 0;
        let ro = e.attr & 0x01 != 0;
        let perm = match (is_dir, ro) {
            (true, false) => 0o755,
            (true, true) => 0o555,
            (false, false) => 0o644,
            (false, true) => 0o444,
        };
        let mut path = String::from(dir_path.trim_end_matches('/'));
        path.push('/');
        path.push_str(&e.name);
        Node {
            path,
            meta: Metadata {
                kind: if is_dir { FileType::Dir } else { FileType::File },
                perm,
                size: if is_dir { 0 } else { u64::from(e.size) },
                mtime: e.mtime,
                mtime_nsec: 0,
                uid: 0,
                gid: 0,
                nlink: Some(1),
                ino: Some(u64::from(e.cluster)),
            },
            handle: u64::from(e.cluster),
        }
    }

    fn resolve(&self, path: &str) -> Result<Node, FsError> {
        super::walk(path, self.root(), |dir, name| {
            let entries = parse_dir(&self.dir_bytes(dir.handle)?);
            let e = entries
                .iter()
                .find(|e| names_equal(&e.name, name) || names_equal(&e.short, name))
                .ok_or(FsError::NotFound)?;
            Ok(self.node(&dir.path, e))
        })
    }
}

impl<R: ReadAt> FileSystem for FatFs<R> {
    fn kind(&self) -> FsKind {
        self.bpb.kind
    }

    /// The root directory's label entry, else the boot sector's (unless it
    /// is mkfs's placeholder `NO NAME`), as blkid does.
    fn label(&self) -> Option<String> {
        self.root_label().or_else(|| {
            let l = self.bpb.bpb_label?;
            if &l == b"NO NAME    " {
                return None;
            }
            label_text(&l)
        })
    }

    /// The volume serial as `ABCD-1234` (blkid's form; GRUB prints it lower case).
    fn uuid(&self) -> Option<String> {
        self.bpb.serial.map(|s| format!("{:04X}-{:04X}", s >> 16, s & 0xFFFF))
    }

    fn lookup(&self, path: &str) -> Result<Node, FsError> {
        self.resolve(path)
    }

    fn lookup_nofollow(&self, path: &str) -> Result<Node, FsError> {
        self.resolve(path)
    }

    fn read_at(&self, node: &Node, offset: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        if node.meta.kind == FileType::Dir {
            return Err(FsError::IsADirectory);
        }
        let size = node.meta.size;
        if offset >= size || buf.is_empty() {
            return Ok(0);
        }
        let want = (size - offset).min(buf.len() as u64) as usize;
        let first = u32::try_from(node.handle).map_err(|_| corrupt("bad file handle"))?;
        self.check_cluster(first)?;
        let cs = self.bpb.cluster_size();
        // Chain walks go as far as the size says: no further than the volume.
        if size.div_ceil(cs) > u64::from(self.bpb.clusters) {
            return Err(corrupt("file size larger than the data area"));
        }
        let target = offset / cs;
        // Resume from the last position in this file when reading forward.
        let mut pos = match self.pos.get() {
            Some(p) if p.first == first && p.index <= target => p,
            _ => ChainPos { first, index: 0, cluster: first },
        };
        while pos.index < target {
            pos.cluster = self.next(pos.cluster)?.ok_or_else(|| corrupt("cluster chain shorter than the file"))?;
            pos.index += 1;
        }
        let mut done = 0usize;
        let mut in_cluster = offset % cs;
        loop {
            // Extend over physically consecutive clusters for one large read.
            let need = (want - done) as u64;
            let mut run_bytes = cs - in_cluster;
            let mut last = pos;
            let mut after = None;
            while run_bytes < need {
                match self.next(last.cluster)? {
                    Some(n) if n == last.cluster + 1 => {
                        last = ChainPos { first, index: last.index + 1, cluster: n };
                        run_bytes += cs;
                    }
                    Some(n) => {
                        after = Some(ChainPos { first, index: last.index + 1, cluster: n });
                        break;
                    }
                    None => return Err(corrupt("cluster chain shorter than the file")),
                }
            }
            let take = run_bytes.min(need) as usize;
            self.vol.read_at(self.cluster_offset(pos.cluster) + in_cluster, &mut buf[done..done + take])?;
            done += take;
            match after {
                Some(a) if done < want => {
                    pos = a;
                    in_cluster = 0;
                }
                _ => {
                    pos = last;
                    break;
                }
            }
        }
        self.pos.set(Some(pos));
        Ok(done)
    }

    fn read_dir(&self, node: &Node) -> Result<Vec<DirEntry>, FsError> {
        if node.meta.kind != FileType::Dir {
            return Err(FsError::NotADirectory);
        }
        let entries = parse_dir(&self.dir_bytes(node.handle)?);
        let mut budget = ListingBudget::default();
        let mut out = Vec::with_capacity(entries.len().min(super::MAX_DIR_ENTRIES));
        for e in &entries {
            let child = self.node(&node.path, e);
            budget.take(&e.name, &child.path)?;
            out.push(DirEntry { name: e.name.clone(), node: child });
        }
        Ok(out)
    }

    fn read_link(&self, _node: &Node) -> Result<String, FsError> {
        Err(FsError::NotASymlink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp437_table_is_complete() {
        assert_eq!(CP437_HIGH.chars().count(), 128);
    }

    #[test]
    fn dos_epoch() {
        // 1980-01-01 00:00:00
        assert_eq!(dos_time((1 << 5) | 1, 0), 315_532_800);
    }
}
