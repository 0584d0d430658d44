//! From a whole disk and an optional partition selector to a mounted file system.
//!
//! Without a selector: a disk with no partition table is one volume; otherwise
//! the first partition holding a recognized file system is used, trying
//! disklabel partitions first (letter order, with the raw partitions `c` and
//! `d` last) and then MBR/GPT entries in table order (extended containers
//! skipped). If none has one, the whole disk is probed as a last resort.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use crate::disk::{DiskError, Partition, ReadAt};
use crate::fs::{self, FileSystem, FsError, FsKind};
use crate::partition::{self, Entry, Kind, PartError, Selector, SelectorError, Table};

/// Why a volume could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeError {
    /// The partition table is unreadable.
    Partition(PartError),
    /// The selector is malformed or names no partition.
    Selector(SelectorError),
    /// The partition lies outside the disk.
    Disk(DiskError),
    /// The file system failed to mount.
    Fs(FsError),
    /// No partition (nor the whole disk) holds a recognized file system.
    NoFileSystem,
}

impl fmt::Display for VolumeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VolumeError::Partition(e) => write!(f, "partition table: {e}"),
            VolumeError::Selector(e) => write!(f, "{e}"),
            VolumeError::Disk(e) => write!(f, "{e}"),
            VolumeError::Fs(e) => write!(f, "{e}"),
            VolumeError::NoFileSystem => f.write_str("no recognized file system on the disk"),
        }
    }
}

impl From<PartError> for VolumeError {
    fn from(e: PartError) -> Self {
        VolumeError::Partition(e)
    }
}

impl From<FsError> for VolumeError {
    fn from(e: FsError) -> Self {
        VolumeError::Fs(e)
    }
}

impl From<DiskError> for VolumeError {
    fn from(e: DiskError) -> Self {
        VolumeError::Disk(e)
    }
}

/// A mounted volume and where it came from.
pub struct Volume {
    /// The disk's partition table.
    pub table: Table,
    /// The partition used, or `None` for the whole disk.
    pub entry: Option<Entry>,
    /// The mounted file system.
    pub fs: Box<dyn FileSystem>,
}

/// Order in which partitions are tried when none is selected.
pub fn candidates(table: &Table) -> Vec<&Entry> {
    let mut bsd: Vec<&Entry> = table.entries.iter().filter(|e| matches!(e.kind, Kind::Bsd(_))).collect();
    // Raw partitions c and d cover other partitions: try them last.
    bsd.sort_by_key(|e| (matches!(e.netbsd_letter, Some(2 | 3)), e.number));
    let rest = table.entries.iter().filter(|e| match e.kind {
        Kind::Primary(t) | Kind::Logical(t) => !partition::mbr::is_extended(t),
        Kind::Gpt(_) => true,
        Kind::Bsd(_) => false,
    });
    bsd.into_iter().chain(rest).collect()
}

/// The byte window of `entry` on `disk`.
pub fn window<R: ReadAt>(disk: R, table: &Table, entry: &Entry) -> Result<Partition<R>, DiskError> {
    let ss = u64::from(table.sector_size);
    Partition::new(disk, entry.start.saturating_mul(ss), entry.sectors.saturating_mul(ss))
}

/// Probes the file system on one partition (`None` when unrecognized or unreadable).
pub fn probe_entry<R: ReadAt>(disk: R, table: &Table, entry: &Entry) -> Option<FsKind> {
    let w = window(disk, table, entry).ok()?;
    fs::probe(&w).ok().flatten()
}

/// Opens the volume named by `selector` (or the default one) on `disk`.
pub fn open<R: ReadAt + Clone + 'static>(
    disk: R,
    sector_size: u32,
    selector: Option<&str>,
) -> Result<Volume, VolumeError> {
    let table = partition::read_table(&disk, sector_size)?;
    if let Some(s) = selector {
        let sel = Selector::parse(s).map_err(VolumeError::Selector)?;
        let entry = sel.resolve(&table).map_err(VolumeError::Selector)?.clone();
        let fs = fs::mount(window(disk, &table, &entry)?)?;
        return Ok(Volume { table, entry: Some(entry), fs });
    }
    for e in candidates(&table) {
        if probe_entry(disk.clone(), &table, e).is_some() {
            let entry = e.clone();
            let fs = fs::mount(window(disk, &table, &entry)?)?;
            return Ok(Volume { table, entry: Some(entry), fs });
        }
    }
    match fs::mount(disk) {
        Ok(fs) => Ok(Volume { table, entry: None, fs }),
        Err(FsError::Unrecognized) => Err(VolumeError::NoFileSystem),
        Err(e) => Err(e.into()),
    }
}
