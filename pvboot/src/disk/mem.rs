//! A device held in memory: for tests, fuzzing and small images.

use alloc::vec::Vec;

use super::{BlockDevice, DiskError};

/// A 512-byte-sector device over a byte vector (a trailing partial sector is ignored).
pub struct MemDisk {
    data: Vec<u8>,
    sector: u32,
}

impl MemDisk {
    /// A device with 512-byte sectors.
    pub fn new(data: Vec<u8>) -> Self {
        MemDisk { data, sector: 512 }
    }

    /// A device with `sector`-byte sectors (a power of two from 512).
    pub fn with_sector_size(data: Vec<u8>, sector: u32) -> Self {
        MemDisk { data, sector }
    }
}

impl BlockDevice for MemDisk {
    fn sector_size(&self) -> u32 {
        self.sector
    }

    fn sector_count(&self) -> u64 {
        self.data.len() as u64 / u64::from(self.sector.max(1))
    }

    fn read_sectors(&self, lba: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        let ss = u64::from(self.sector.max(1));
        if !(buf.len() as u64).is_multiple_of(ss) {
            return Err(DiskError::Unaligned);
        }
        let io = DiskError::Io { lba, errno: 0 };
        let start = lba.checked_mul(ss).ok_or(io)?;
        let end = start.checked_add(buf.len() as u64).ok_or(io)?;
        if end > self.sector_count() * ss {
            return Err(io);
        }
        buf.copy_from_slice(&self.data[start as usize..end as usize]);
        Ok(())
    }
}
