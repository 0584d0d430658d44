//! A `no_std` reader for NetBSD and FreeBSD FFS: UFS1, UFS2 and NetBSD's
//! UFS2 with extended attributes, in either byte order, with any block size
//! from 4K/512 to 64K/8K, as written by newfs and makefs.
//!
//! The reader is read-only and built for hostile input: every on-disk number
//! is checked before use, allocations are bounded by the superblock and the
//! device size, and malformed structures give [`Error::Corrupt`] rather than
//! a panic or a hang.
//!
//! Reads are built for slow paravirtual disks: a file read issues one device
//! read per physically contiguous run of blocks, straight into the caller's
//! buffer, and indirect blocks are cached between reads.
//!
//! ```no_run
//! use fs_ffs::{Error, Ffs};
//!
//! /// Loads a kernel from an FFS image held in memory.
//! fn load_kernel(image: &[u8]) -> Result<Vec<u8>, Error> {
//!     let fs = Ffs::open(image)?;
//!     // Follows symlinks, e.g. /netbsd -> /netbsd-GENERIC.
//!     let ino = fs.lookup("/netbsd")?;
//!     let size = fs.metadata(ino)?.size;
//!     let mut kernel = vec![0; size as usize];
//!     let n = fs.read_at(ino, 0, &mut kernel)?;
//!     kernel.truncate(n);
//!     for entry in fs.read_dir(fs.root())? {
//!         println!("{:?} {}", entry.file_type, String::from_utf8_lossy(&entry.name));
//!     }
//!     Ok(kernel)
//! }
//! ```
//!
//! A real device implements [`BlockRead`] over its own driver; slices,
//! vectors and references to devices implement it already.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod bmap;
mod dir;
mod endian;
mod error;
mod inode;
mod lookup;
mod superblock;
mod symlink;

use alloc::vec::Vec;
use core::cell::RefCell;

pub use dir::DirEntry;
pub use endian::ByteOrder;
pub use error::{Error, IoError};
pub use inode::{FileType, Ino, Metadata, Timestamp};
pub use superblock::Version;

use bmap::{IndirectCache, Reader};
use inode::Inode;
use superblock::{Superblock, SBLOCKSEARCH, SBLOCKSIZE};

/// Most symbolic links followed during one path lookup (MAXSYMLINKS).
pub const MAX_SYMLINKS: u32 = 32;
/// Longest path (after symlink expansion) and longest symlink target, in bytes.
pub const MAX_PATH_LEN: usize = 4096;
/// Most entries [`Ffs::read_dir`] lists. The listing is held in memory and a
/// directory's size is the image's choice (its blocks may even repeat one
/// block full of short names), so it is capped at FAT's limit, far beyond
/// what a boot volume holds; lookups scan directories without this limit.
pub const MAX_DIR_ENTRIES: usize = 65536;

/// A device fs-ffs reads from: byte-addressed reads.
///
/// Methods take `&self` so a device can be shared; devices that cache or
/// keep request state use interior mutability.
pub trait BlockRead {
    /// Reads exactly `buf.len()` bytes starting at byte `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError>;
    /// Size of the device in bytes (used to reject block numbers past the end).
    fn size(&self) -> u64;
}

impl BlockRead for [u8] {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        let start = usize::try_from(offset).map_err(|_| IoError)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or(IoError)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn size(&self) -> u64 {
        self.len() as u64
    }
}

impl BlockRead for Vec<u8> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.as_slice().read_at(offset, buf)
    }

    fn size(&self) -> u64 {
        self.len() as u64
    }
}

impl<T: BlockRead + ?Sized> BlockRead for &T {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        (**self).read_at(offset, buf)
    }

    fn size(&self) -> u64 {
        (**self).size()
    }
}

/// Facts about an opened file system, from its superblock.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FsInfo {
    /// UFS1, UFS2 or UFS2 with extended attributes.
    pub version: Version,
    /// Byte order of the on-disk structures.
    pub byte_order: ByteOrder,
    /// Byte offset the superblock was found at.
    pub superblock_offset: u64,
    /// Block size in bytes.
    pub block_size: u32,
    /// Fragment size in bytes.
    pub fragment_size: u32,
    /// File system size in bytes.
    pub size: u64,
    /// Number of cylinder groups.
    pub cylinder_groups: u32,
    /// Number of inodes (allocated or not).
    pub inodes: u32,
    /// Directories use the 4.2BSD format (no d_type).
    pub old_directory_format: bool,
    /// Longest symlink target stored in the inode itself (0: none are).
    pub max_fast_symlink_len: u32,
    /// Last time the superblock was written, in seconds since the epoch.
    pub time: i64,
    /// Unique file system id (fs_id).
    pub id: [u32; 2],
    /// Superblock flags (FS_* in fs.h).
    pub flags: u32,
    /// Volume name (fs_volname), NUL padding removed; empty if unset.
    pub volume_name: Vec<u8>,
    /// Where the file system was last mounted (fs_fsmnt), NUL padding removed.
    pub last_mounted_on: Vec<u8>,
}

/// Caches shared by the methods of one [`Ffs`]; the image is read-only, so
/// they never go stale.
#[derive(Default)]
struct Cache {
    /// The last inode read: lookups, metadata and reads of one file in a row
    /// all want the same inode.
    inode: Option<Inode>,
    indirect: IndirectCache,
}

/// An opened FFS file system on a device.
///
/// Keeps the last inode and the indirect blocks of the last read in a
/// `RefCell` (the image is read-only, so they never go stale): an `Ffs` is
/// `Send` when its device is, but not `Sync`.
pub struct Ffs<D: BlockRead> {
    dev: D,
    sb: Superblock,
    cache: RefCell<Cache>,
}

impl<D: BlockRead> Ffs<D> {
    /// Finds the superblock (at 64K, 8K, 0 or 256K), validates it and the
    /// root directory.
    pub fn open(dev: D) -> Result<Self, Error> {
        let sb = find_superblock(&dev)?;
        let fs = Ffs {
            dev,
            sb,
            cache: RefCell::new(Cache::default()),
        };
        if !fs.inode(Ino::ROOT)?.meta.is_dir() {
            return Err(Error::Corrupt("root inode is not a directory"));
        }
        Ok(fs)
    }

    /// Describes the file system.
    pub fn info(&self) -> FsInfo {
        let sb = &self.sb;
        FsInfo {
            version: sb.version,
            byte_order: sb.order,
            superblock_offset: sb.location,
            block_size: sb.bsize,
            fragment_size: sb.fsize,
            size: sb.size_bytes,
            cylinder_groups: sb.ncg,
            inodes: sb.inode_count(),
            old_directory_format: sb.old_dirfmt,
            max_fast_symlink_len: sb.maxsymlinklen,
            time: sb.time,
            id: sb.id,
            flags: sb.flags,
            volume_name: until_nul(&sb.volname),
            last_mounted_on: until_nul(&sb.fsmnt),
        }
    }

    /// The root directory.
    pub fn root(&self) -> Ino {
        Ino::ROOT
    }

    /// Metadata of an inode.
    pub fn metadata(&self, ino: Ino) -> Result<Metadata, Error> {
        Ok(self.inode(ino)?.meta)
    }

    /// Reads file data at `offset`; returns the number of bytes read, which
    /// is short only at end of file. Holes read as zeros.
    pub fn read_at(&self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let inode = self.inode(ino)?;
        if inode.is_fast_symlink(&self.sb) {
            // The "data" of a fast symlink is its target, kept in the inode.
            let target = symlink::fast_target(&inode);
            let start = usize::try_from(offset).map_or(target.len(), |o| o.min(target.len()));
            let src = target.get(start..).unwrap_or_default();
            buf.iter_mut().zip(src).for_each(|(d, s)| *d = *s);
            return Ok(src.len().min(buf.len()));
        }
        self.read_inode_data(&inode, offset, buf)
    }

    /// Gives the device back.
    pub fn into_inner(self) -> D {
        self.dev
    }

    /// Byte offset of an inode on the device, for tools and tests that
    /// inspect or patch images.
    pub fn inode_offset(&self, ino: Ino) -> Result<u64, Error> {
        inode::inode_offset(&self.sb, ino).ok_or(Error::InvalidInode)
    }

    /// Fragment address holding logical block `lbn` of a file (`None` for a
    /// hole), for tools and tests that inspect images.
    pub fn block_address(&self, ino: Ino, lbn: u64) -> Result<Option<u64>, Error> {
        let inode = self.inode(ino)?;
        let ptr = self.with_indirect(|cache| {
            Reader {
                sb: &self.sb,
                dev: &self.dev,
                cache,
            }
            .bmap(&inode, lbn)
        })?;
        match ptr {
            0 => Ok(None),
            p => u64::try_from(p)
                .map(Some)
                .map_err(|_| Error::Corrupt("negative block pointer")),
        }
    }

    /// Reads and decodes an inode, through the one-entry cache.
    fn inode(&self, ino: Ino) -> Result<Inode, Error> {
        if let Ok(cache) = self.cache.try_borrow() {
            if let Some(hit) = cache.inode.filter(|i| i.meta.ino == ino) {
                return Ok(hit);
            }
        }
        let off = inode::inode_offset(&self.sb, ino).ok_or(Error::InvalidInode)?;
        let mut raw = [0u8; 256];
        let raw = raw
            .get_mut(..self.sb.inode_size() as usize)
            .ok_or(Error::InvalidInode)?;
        if off
            .checked_add(raw.len() as u64)
            .is_none_or(|end| end > self.dev.size())
        {
            return Err(Error::Corrupt(
                "inode beyond the end of the device (truncated image?)",
            ));
        }
        self.dev.read_at(off, raw)?;
        let inode = Inode::parse(&self.sb, ino, raw);
        if inode.meta.mode == 0 {
            // Unallocated: a directory entry pointing here is stale.
            return Err(Error::InvalidInode);
        }
        if let Ok(mut cache) = self.cache.try_borrow_mut() {
            cache.inode = Some(inode);
        }
        Ok(inode)
    }

    /// Reads data of a decoded inode through the block map.
    fn read_inode_data(&self, inode: &Inode, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
        self.with_indirect(|cache| {
            Reader {
                sb: &self.sb,
                dev: &self.dev,
                cache,
            }
            .read(inode, offset, buf)
        })
    }

    /// Runs `f` with the shared indirect-block cache (or a fresh one should
    /// the shared one be busy, which the current code never does).
    fn with_indirect<R>(&self, f: impl FnOnce(&mut IndirectCache) -> R) -> R {
        match self.cache.try_borrow_mut() {
            Ok(mut cache) => f(&mut cache.indirect),
            Err(_) => f(&mut IndirectCache::default()),
        }
    }
}

/// Tries each standard superblock location; returns the first valid one, or
/// the first validation error if magics were found but none was usable.
fn find_superblock<D: BlockRead>(dev: &D) -> Result<Superblock, Error> {
    let dev_size = dev.size();
    let mut buf = alloc::vec![0u8; SBLOCKSIZE];
    let mut first_err = None;
    for loc in SBLOCKSEARCH {
        // Small images may end before a full SBLOCKSIZE; what exists is read.
        let avail = dev_size.saturating_sub(loc).min(SBLOCKSIZE as u64) as usize;
        let Some(candidate) = buf.get_mut(..avail) else {
            continue;
        };
        if avail == 0 || dev.read_at(loc, candidate).is_err() {
            continue;
        }
        match Superblock::parse(candidate, loc) {
            Ok(Some(sb)) => return Ok(sb),
            Ok(None) => {}
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or(Error::NoSuperblock))
}

/// Copies a NUL-padded on-disk string.
fn until_nul(bytes: &[u8]) -> Vec<u8> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    bytes.get(..end).unwrap_or(&[]).to_vec()
}
