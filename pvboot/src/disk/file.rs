//! A host image file as a block device (std only).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{BlockDevice, DiskError};

/// An image file read with `pread`, as 512-byte sectors (a trailing partial sector is ignored).
pub struct FileDisk {
    file: File,
    sectors: u64,
}

impl FileDisk {
    /// Opens `path` read-only.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "is a directory"));
        }
        Ok(FileDisk { file, sectors: meta.len() / 512 })
    }

    /// Uses an image already opened (and checked) by the caller, `size` bytes long.
    pub fn from_file(file: File, size: u64) -> Self {
        FileDisk { file, sectors: size / 512 }
    }
}

impl BlockDevice for FileDisk {
    fn sector_size(&self) -> u32 {
        512
    }

    fn sector_count(&self) -> u64 {
        self.sectors
    }

    fn read_sectors(&self, lba: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        if !buf.len().is_multiple_of(512) {
            return Err(DiskError::Unaligned);
        }
        let offset = lba.checked_mul(512).ok_or(DiskError::Io { lba, errno: 0 })?;
        self.file.read_exact_at(buf, offset).map_err(|e| DiskError::Io {
            lba,
            errno: e.raw_os_error().unwrap_or(0),
        })
    }
}
