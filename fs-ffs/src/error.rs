//! Error types: one for the device, one for the file system.

use core::fmt;

/// A device read failed (or asked for bytes past the end of the device).
///
/// Carries no detail on purpose: the device adapter logs its own cause, and
/// callers of fs-ffs only need to know the read did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct IoError;

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("device read error")
    }
}

impl core::error::Error for IoError {}

/// Everything that can go wrong while reading an FFS image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The device failed a read.
    Io(IoError),
    /// No valid superblock magic at any of the standard locations.
    NoSuperblock,
    /// On-disk data is inconsistent; the text says which check failed.
    Corrupt(&'static str),
    /// A path component does not exist.
    NotFound,
    /// A directory operation was asked of something that is not a directory.
    NotADirectory,
    /// `read_link` was asked of something that is not a symbolic link.
    NotASymlink,
    /// Path lookup followed more than [`MAX_SYMLINKS`](crate::MAX_SYMLINKS) links.
    SymlinkLoop,
    /// A path component, a path or a link target is longer than the limits.
    NameTooLong,
    /// The inode number is out of range for this file system or is unallocated.
    InvalidInode,
}

impl From<IoError> for Error {
    fn from(e: IoError) -> Self {
        Error::Io(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::NoSuperblock => f.write_str("no FFS superblock found"),
            Error::Corrupt(what) => write!(f, "corrupt file system: {what}"),
            Error::NotFound => f.write_str("no such file or directory"),
            Error::NotADirectory => f.write_str("not a directory"),
            Error::NotASymlink => f.write_str("not a symbolic link"),
            Error::SymlinkLoop => f.write_str("too many levels of symbolic links"),
            Error::NameTooLong => f.write_str("file name too long"),
            Error::InvalidInode => f.write_str("invalid or unallocated inode number"),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}
