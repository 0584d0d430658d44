//! A block device as drivers and their users see it: fixed-size sectors,
//! read, written and flushed many at a time.
//!
//! Its shape is pvboot's `disk::BlockDevice` (`&self` methods, because a
//! guest shares one device among a cache, a partition scan and file
//! systems; drivers keep their ring state behind interior mutability),
//! extended with writing, flushing, read-only detection and batched reads.
//! pvboot adopts it with a newtype in its guest binary that implements
//! `pvboot::disk::BlockDevice` by forwarding `sector_size`, `sector_count`
//! and `read_sectors`, mapping [`BlkError`] to `DiskError::Io { lba:
//! err.lba().unwrap_or(lba), errno: err.errno() }` (or `OutOfRange` /
//! `Unaligned`, which have the same meaning here).
//!
//! Buffers are the caller's and are used in place: a driver like
//! [`crate::blkfront`] grants their pages to the backend, which reads or
//! writes them directly. Aligning a buffer to the sector size (better: to
//! the page) lets it do so; other buffers go through a bounce page.

use alloc::boxed::Box;
use alloc::rc::Rc;
use core::fmt;

/// Why a block operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlkError {
    /// The range does not fit in the device.
    OutOfRange {
        /// First sector asked for.
        lba: u64,
        /// Sectors asked for.
        count: u64,
        /// Sectors on the device.
        sectors: u64,
    },
    /// A buffer that is not a whole number of sectors.
    Unaligned,
    /// The device is read-only; nothing was sent.
    ReadOnly,
    /// The backend failed the operation (BLKIF_RSP_ERROR).
    Io {
        /// First sector of the failed request.
        lba: u64,
        /// The backend's status.
        status: i16,
    },
    /// The backend does not support the operation (BLKIF_RSP_EOPNOTSUPP,
    /// or a feature it did not offer).
    Unsupported(&'static str),
    /// The device was closed, or its backend broke the protocol.
    Disconnected,
    /// The backend did not answer in time.
    Timeout,
    /// No grant reference or memory for the request.
    NoResources,
}

impl BlkError {
    /// The errno closest to this error (for layers that speak errno).
    pub fn errno(&self) -> i32 {
        use xen_abi::errno as e;
        (match self {
            BlkError::OutOfRange { .. } => e::EINVAL,
            BlkError::Unaligned => e::EINVAL,
            BlkError::ReadOnly => e::EROFS,
            BlkError::Io { .. } => e::EIO,
            BlkError::Unsupported(_) => e::EOPNOTSUPP,
            BlkError::Disconnected => e::ENODEV,
            BlkError::Timeout => e::ETIMEDOUT,
            BlkError::NoResources => e::ENOMEM,
        }) as i32
    }

    /// The sector the error is about, when known.
    pub fn lba(&self) -> Option<u64> {
        match *self {
            BlkError::OutOfRange { lba, .. } | BlkError::Io { lba, .. } => Some(lba),
            _ => None,
        }
    }
}

impl fmt::Display for BlkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BlkError::OutOfRange {
                lba,
                count,
                sectors,
            } => write!(
                f,
                "{count} sectors at {lba} do not fit in the device ({sectors} sectors)"
            ),
            BlkError::Unaligned => f.write_str("buffer is not a whole number of sectors"),
            BlkError::ReadOnly => f.write_str("device is read-only"),
            BlkError::Io { lba, status } => {
                write!(f, "I/O error at sector {lba} (backend status {status})")
            }
            BlkError::Unsupported(what) => write!(f, "{what} not supported by the backend"),
            BlkError::Disconnected => f.write_str("device disconnected"),
            BlkError::Timeout => f.write_str("backend did not answer in time"),
            BlkError::NoResources => f.write_str("out of grant references or memory"),
        }
    }
}

impl core::error::Error for BlkError {}

/// One range of a batched read: `buf.len() / sector_size` sectors from `lba`.
#[derive(Debug)]
pub struct ReadRequest<'a> {
    /// First sector.
    pub lba: u64,
    /// Where the sectors go.
    pub buf: &'a mut [u8],
}

/// A disk: fixed-size sectors, addressed by number.
pub trait BlockDevice {
    /// Bytes per sector (a power of two, 512 or more).
    fn sector_size(&self) -> u32;
    /// Sectors on the device.
    fn sector_count(&self) -> u64;
    /// Whether writes are refused.
    fn read_only(&self) -> bool {
        false
    }
    /// Reads `buf.len() / sector_size` sectors starting at `lba`.
    /// `buf.len()` must be a multiple of the sector size.
    fn read_sectors(&self, lba: u64, buf: &mut [u8]) -> Result<(), BlkError>;
    /// Writes `buf.len() / sector_size` sectors starting at `lba`.
    fn write_sectors(&self, lba: u64, buf: &[u8]) -> Result<(), BlkError> {
        let _ = (lba, buf);
        Err(BlkError::ReadOnly)
    }
    /// Makes every completed write durable.
    fn flush(&self) -> Result<(), BlkError> {
        Ok(())
    }
    /// Reads several ranges, which a driver keeps in flight together (a
    /// file's extents straight to their final place). Fails with the first
    /// error, after every range has finished or been abandoned.
    fn read_many(&self, reqs: &mut [ReadRequest<'_>]) -> Result<(), BlkError> {
        for r in reqs.iter_mut() {
            self.read_sectors(r.lba, r.buf)?;
        }
        Ok(())
    }
}

macro_rules! forward {
    ($($ty:ty),*) => {$(
        impl<T: BlockDevice + ?Sized> BlockDevice for $ty {
            fn sector_size(&self) -> u32 { (**self).sector_size() }
            fn sector_count(&self) -> u64 { (**self).sector_count() }
            fn read_only(&self) -> bool { (**self).read_only() }
            fn read_sectors(&self, lba: u64, buf: &mut [u8]) -> Result<(), BlkError> {
                (**self).read_sectors(lba, buf)
            }
            fn write_sectors(&self, lba: u64, buf: &[u8]) -> Result<(), BlkError> {
                (**self).write_sectors(lba, buf)
            }
            fn flush(&self) -> Result<(), BlkError> { (**self).flush() }
            fn read_many(&self, reqs: &mut [ReadRequest<'_>]) -> Result<(), BlkError> {
                (**self).read_many(reqs)
            }
        }
    )*};
}
forward!(&T, Box<T>, Rc<T>);

/// Checks that `len` bytes at sector `lba` are whole sectors inside a
/// device of `sectors` sectors of `sector_size` bytes; returns the count.
pub fn check_range(lba: u64, len: usize, sector_size: u32, sectors: u64) -> Result<u64, BlkError> {
    let ss = sector_size as usize;
    if ss == 0 || !len.is_multiple_of(ss) {
        return Err(BlkError::Unaligned);
    }
    let count = (len / ss) as u64;
    match lba.checked_add(count) {
        Some(end) if end <= sectors => Ok(count),
        _ => Err(BlkError::OutOfRange {
            lba,
            count,
            sectors,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::RefCell;

    struct Mem(RefCell<alloc::vec::Vec<u8>>);

    impl BlockDevice for Mem {
        fn sector_size(&self) -> u32 {
            512
        }
        fn sector_count(&self) -> u64 {
            self.0.borrow().len() as u64 / 512
        }
        fn read_sectors(&self, lba: u64, buf: &mut [u8]) -> Result<(), BlkError> {
            check_range(lba, buf.len(), 512, self.sector_count())?;
            let at = lba as usize * 512;
            buf.copy_from_slice(&self.0.borrow()[at..at + buf.len()]);
            Ok(())
        }
    }

    #[test]
    fn ranges_are_checked() {
        assert_eq!(check_range(0, 1024, 512, 4), Ok(2));
        assert_eq!(check_range(2, 1024, 512, 4), Ok(2));
        assert_eq!(
            check_range(3, 1024, 512, 4),
            Err(BlkError::OutOfRange {
                lba: 3,
                count: 2,
                sectors: 4
            })
        );
        assert_eq!(
            check_range(u64::MAX, 512, 512, 4).unwrap_err().lba(),
            Some(u64::MAX)
        );
        assert_eq!(check_range(0, 100, 512, 4), Err(BlkError::Unaligned));
        assert_eq!(check_range(0, 4096, 4096, 1), Ok(1));
        assert_eq!(check_range(0, 0, 512, 0), Ok(0));
    }

    #[test]
    fn defaults_and_forwarding() {
        let m = Rc::new(Mem(RefCell::new(
            (0..2048u32).map(|i| (i / 512) as u8).collect(),
        )));
        let d: &dyn BlockDevice = &m;
        assert_eq!(d.sector_count(), 4);
        assert_eq!(d.write_sectors(0, &[0; 512]), Err(BlkError::ReadOnly));
        assert_eq!(d.flush(), Ok(()));
        let (mut a, mut b) = ([0u8; 512], [0u8; 1024]);
        d.read_many(&mut [
            ReadRequest {
                lba: 3,
                buf: &mut a,
            },
            ReadRequest {
                lba: 1,
                buf: &mut b,
            },
        ])
        .unwrap();
        assert!(a.iter().all(|&x| x == 3));
        assert_eq!((b[0], b[1023]), (1, 2));
        assert_eq!(BlkError::ReadOnly.errno(), 30);
        assert_eq!(BlkError::Io { lba: 5, status: -1 }.lba(), Some(5));
    }
}
