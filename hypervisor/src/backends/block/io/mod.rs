//! I/O engines: how request data moves between the disk image and the
//! guest's pages. The synchronous engine (pread/pwrite family on the
//! backend's worker threads) is the only one today; an io_uring engine
//! would sit beside it behind [`Engine`].

pub mod sync_io;

use std::path::PathBuf;

use crate::vstate::memory::GuestRam;

pub use sync_io::SyncDisk;

/// Why a disk image cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The file or device could not be opened, or is neither a regular
    /// file nor a block device (a FIFO is refused without waiting on it).
    /// (Boxed: the error travels inside larger ones.)
    #[error(transparent)]
    Input(Box<crate::input::InputError>),
    /// Another process holds a conflicting lock on it.
    #[error("{path} is in use by another process (locked)")]
    Locked {
        /// The target.
        path: PathBuf,
    },
    /// A regular file whose size is not a whole number of sectors: the guest
    /// sees whole sectors only, so the tail would be hidden from it.
    #[error("{path} is {size} bytes, not a multiple of {sector}-byte sectors: the guest would not see its last {tail} bytes (pad or truncate the image)")]
    PartialSector {
        /// The image.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The sector size.
        sector: u64,
        /// The bytes past the last whole sector.
        tail: u64,
    },
    /// Its size or geometry could not be read.
    #[error("cannot get the size of {path}: {err}")]
    Size {
        /// The target.
        path: PathBuf,
        /// The error.
        #[source]
        err: std::io::Error,
    },
}

impl From<crate::input::InputError> for DiskError {
    fn from(err: crate::input::InputError) -> Self {
        DiskError::Input(Box::new(err))
    }
}

/// Moves data between a disk and guest memory. All offsets and lengths are
/// in bytes and already checked against the disk size.
pub trait Engine: Send + Sync {
    /// Reads `offset..` into the guest ranges `iov`, in order.
    fn read(&self, ram: &GuestRam, offset: u64, iov: &[(u64, usize)]) -> std::io::Result<()>;
    /// Writes the guest ranges `iov`, in order, at `offset`.
    fn write(&self, ram: &GuestRam, offset: u64, iov: &[(u64, usize)]) -> std::io::Result<()>;
    /// Makes completed writes durable.
    fn flush(&self) -> std::io::Result<()>;
    /// Discards (deallocates) a byte range; reads of it then return zeros.
    fn discard(&self, offset: u64, len: u64) -> std::io::Result<()>;
}
