//! Block devices and the byte-addressed views the partition and file-system
//! code reads through: a metadata [`Cache`] over a [`BlockDevice`], and a
//! bounds-checked [`Partition`] window.

mod cache;
#[cfg(feature = "std")]
mod file;
mod mem;
mod window;

use alloc::boxed::Box;
use alloc::rc::Rc;
use core::fmt;

pub use cache::{Cache, CacheStats};
#[cfg(feature = "std")]
pub use file::FileDisk;
pub use mem::MemDisk;
pub use window::Partition;

/// Why a disk read failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskError {
    /// The read does not fit in the device or view.
    OutOfRange {
        /// First byte asked for.
        offset: u64,
        /// Bytes asked for.
        len: u64,
        /// Size of the device or view.
        size: u64,
    },
    /// The device refused or failed a sector read (`errno` 0: short read).
    Io {
        /// First sector of the failed read.
        lba: u64,
        /// Host errno or device status, 0 when none is known.
        errno: i32,
    },
    /// A sector read whose buffer is not a whole number of sectors.
    Unaligned,
    /// The device reports a sector size pvboot cannot use.
    BadSectorSize(u32),
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DiskError::OutOfRange { offset, len, size } => write!(
                f,
                "read of {len} bytes at offset {offset} is past the end ({size} bytes)"
            ),
            DiskError::Io { lba, errno: 0 } => write!(f, "short read at sector {lba}"),
            DiskError::Io { lba, errno } => write!(f, "I/O error at sector {lba} (errno {errno})"),
            DiskError::Unaligned => f.write_str("read is not a whole number of sectors"),
            DiskError::BadSectorSize(s) => write!(f, "unsupported sector size {s}"),
        }
    }
}

impl core::error::Error for DiskError {}

/// A disk as a driver sees it: fixed-size sectors, read many at a time.
///
/// `&self` because the guest shares one device among the cache, the partition
/// scan and the file systems; drivers use interior mutability for their rings.
pub trait BlockDevice {
    /// Bytes per sector (a power of two, 512 or more).
    fn sector_size(&self) -> u32;
    /// Number of sectors on the device.
    fn sector_count(&self) -> u64;
    /// Reads `buf.len() / sector_size` sectors starting at `lba`.
    ///
    /// `buf.len()` must be a multiple of the sector size.
    fn read_sectors(&self, lba: u64, buf: &mut [u8]) -> Result<(), DiskError>;
}

impl<T: BlockDevice + ?Sized> BlockDevice for &T {
    fn sector_size(&self) -> u32 {
        (**self).sector_size()
    }
    fn sector_count(&self) -> u64 {
        (**self).sector_count()
    }
    fn read_sectors(&self, lba: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        (**self).read_sectors(lba, buf)
    }
}

impl<T: BlockDevice + ?Sized> BlockDevice for Rc<T> {
    fn sector_size(&self) -> u32 {
        (**self).sector_size()
    }
    fn sector_count(&self) -> u64 {
        (**self).sector_count()
    }
    fn read_sectors(&self, lba: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        (**self).read_sectors(lba, buf)
    }
}

/// Byte-addressed, read-only access: what partition tables and file systems
/// read through (a [`Cache`], or a [`Partition`] of one).
pub trait ReadAt {
    /// Size in bytes.
    fn size(&self) -> u64;
    /// Fills all of `buf` from byte `offset`, or fails without a partial result.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError>;
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        (**self).read_at(offset, buf)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Rc<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        (**self).read_at(offset, buf)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Box<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        (**self).read_at(offset, buf)
    }
}

/// Fails with [`DiskError::OutOfRange`] unless `len` bytes at `offset` fit in `size`.
pub(crate) fn check_range(offset: u64, len: usize, size: u64) -> Result<(), DiskError> {
    let len = len as u64;
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(DiskError::OutOfRange { offset, len, size }),
    }
}
