//! Partition tables: MBR (with extended/logical chains), GPT (with the backup
//! header), and BSD disklabels (NetBSD, FreeBSD, OpenBSD) either inside an MBR
//! partition or on a bare disk; plus the NetBSD and GRUB names of partitions
//! and a parser for partition selectors.
//!
//! [`read_table`] decides what a disk holds:
//! 1. Sector 0 with a valid MBR whose partitions include type 0xEE: GPT
//!    (primary header at LBA 1, else the backup at the last LBA).
//! 2. Any other valid MBR: its primaries and logicals, and the disklabel
//!    inside each 0xA9 (NetBSD), 0xA5 (FreeBSD) or 0xA6 (OpenBSD) partition.
//! 3. No MBR: a bare disklabel near the start of the disk, else no table.

pub mod disklabel;
pub mod gpt;
pub mod mbr;
mod name;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::disk::{DiskError, ReadAt};

pub use name::{Selector, SelectorError};

/// Why a partition table could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartError {
    /// Reading the disk failed.
    Disk(DiskError),
    /// A GPT disk (protective MBR) whose primary and backup GPT are both bad.
    GptBad {
        /// What was wrong with the primary header or its entries.
        primary: &'static str,
        /// What was wrong with the backup header or its entries.
        backup: &'static str,
    },
    /// The sector size is not usable for partition tables.
    SectorSize(u32),
}

impl fmt::Display for PartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartError::Disk(e) => write!(f, "{e}"),
            PartError::GptBad { primary, backup } => {
                write!(f, "GPT unreadable: primary {primary}, backup {backup}")
            }
            PartError::SectorSize(s) => write!(f, "unsupported sector size {s}"),
        }
    }
}

impl From<DiskError> for PartError {
    fn from(e: DiskError) -> Self {
        PartError::Disk(e)
    }
}

/// Which kind of table a disk has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// No partition table: the whole disk is one volume.
    None,
    /// An MBR (DOS) table, possibly with disklabels inside its partitions.
    Mbr,
    /// A GUID partition table.
    Gpt,
    /// A BSD disklabel on a disk without MBR.
    Disklabel,
}

impl Scheme {
    /// Short name as printed by `fstest probe`.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::None => "none",
            Scheme::Mbr => "msdos",
            Scheme::Gpt => "gpt",
            Scheme::Disklabel => "bsd",
        }
    }
}

/// Which table an entry comes from, and its type code there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// An MBR primary partition (type byte).
    Primary(u8),
    /// An MBR logical partition inside the extended one (type byte).
    Logical(u8),
    /// A GPT entry (partition type GUID, on-disk byte order).
    Gpt([u8; 16]),
    /// A disklabel partition (`p_fstype`, see [`disklabel::fstype_name`]).
    Bsd(u8),
}

/// One partition, with its position in absolute device sectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Number within its own table, from 1: MBR slot (logicals from 5), GPT
    /// entry index + 1, or disklabel index + 1 (so letter `a` is 1).
    pub number: u32,
    /// For disklabel entries inside an MBR partition: that partition's number.
    pub parent: Option<u32>,
    /// Table and type code.
    pub kind: Kind,
    /// First sector on the device.
    pub start: u64,
    /// Length in sectors.
    pub sectors: u64,
    /// GPT partition name (empty elsewhere).
    pub label: String,
    /// NetBSD partition letter index (0 = `a`) as NetBSD would assign it.
    pub netbsd_letter: Option<u8>,
    /// NetBSD wedge (`dkN`) ordinal for GPT entries on the first disk.
    pub wedge: Option<u32>,
}

/// A disk's partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The top-level scheme.
    pub scheme: Scheme,
    /// Sector size the table was read with.
    pub sector_size: u32,
    /// For GPT: the primary header was bad and the backup was used.
    pub gpt_backup_used: bool,
    /// Partitions in table order (MBR: primaries, logicals, then disklabel entries).
    pub entries: Vec<Entry>,
    /// MBR primaries left out of `entries` because they run past the end of
    /// the disk, so that naming one says so rather than "no partition".
    pub past_end: Vec<PastEnd>,
}

/// A partition the table describes but the disk cannot hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PastEnd {
    /// Its number in the MBR (1 to 4).
    pub number: u32,
    /// The sector after its last one, as the table says.
    pub end: u64,
    /// The disk's size in sectors.
    pub disk_sectors: u64,
}

impl fmt::Display for PastEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "partition {} runs past the end of the disk (ends at sector {}, disk has {})",
            self.number, self.end, self.disk_sectors
        )
    }
}

impl Table {
    /// Whether the table has any entry holding `sub` disklabel partitions.
    pub fn has_disklabel(&self) -> bool {
        self.entries.iter().any(|e| matches!(e.kind, Kind::Bsd(_)))
    }
}

/// MBR partition type bytes that hold a BSD disklabel.
const BSD_MBR_TYPES: [u8; 3] = [0xA9, 0xA5, 0xA6];

/// Reads the partition table of a device whose sectors are `sector_size` bytes.
pub fn read_table(dev: &dyn ReadAt, sector_size: u32) -> Result<Table, PartError> {
    if !sector_size.is_power_of_two() || !(512..=65536).contains(&sector_size) {
        return Err(PartError::SectorSize(sector_size));
    }
    let ss = u64::from(sector_size);
    let total = dev.size() / ss;
    let mut table = Table {
        scheme: Scheme::None,
        sector_size,
        gpt_backup_used: false,
        entries: Vec::new(),
        past_end: Vec::new(),
    };
    if total == 0 {
        return Ok(table);
    }
    let mut s0 = alloc::vec![0u8; sector_size as usize];
    dev.read_at(0, &mut s0)?;
    if let Some(m) = mbr::parse_sector(&s0) {
        if m.iter().any(|p| p.ptype == mbr::TYPE_GPT_PROTECTIVE) {
            let g = gpt::read(dev, sector_size)?;
            table.scheme = Scheme::Gpt;
            table.gpt_backup_used = g.backup_used;
            table.entries = g.entries;
            name::assign_wedges(&mut table.entries);
            return Ok(table);
        }
        table.scheme = Scheme::Mbr;
        table.entries = mbr::read(dev, sector_size, &m)?;
        for (i, p) in m.iter().enumerate() {
            let end = u64::from(p.start) + u64::from(p.size);
            if p.ptype != 0 && end > total {
                table.past_end.push(PastEnd { number: i as u32 + 1, end, disk_sectors: total });
            }
        }
        let mut labels = Vec::new();
        for e in &table.entries {
            let ptype = match e.kind {
                Kind::Primary(t) | Kind::Logical(t) => t,
                _ => continue,
            };
            if !BSD_MBR_TYPES.contains(&ptype) || !labels.is_empty() {
                // Like NetBSD, only the first BSD slice's label counts.
                continue;
            }
            if let Some(l) = disklabel::read(dev, sector_size, e.start, e.sectors, ptype)? {
                for mut le in l {
                    le.parent = Some(e.number);
                    labels.push(le);
                }
            }
        }
        if labels.is_empty() {
            name::assign_mbr_letters(&mut table.entries);
        }
        table.entries.extend(labels);
        return Ok(table);
    }
    if let Some(l) = disklabel::read(dev, sector_size, 0, total, 0xA9)? {
        table.scheme = Scheme::Disklabel;
        table.entries = l;
    }
    Ok(table)
}
