//! The synchronous engine: preadv/pwritev straight between the image and
//! the guest's pages (through `GuestRam`, no bounce buffer), fdatasync for
//! flushes and fallocate(PUNCH_HOLE | KEEP_SIZE) for discards.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::{DiskError, Engine};
use crate::input::{self, OpenDisk};
use crate::vstate::memory::GuestRam;

/// BLKSSZGET: logical block size of a block device.
const BLKSSZGET: libc::c_ulong = 0x1268;
/// BLKPBSZGET: physical block size of a block device.
const BLKPBSZGET: libc::c_ulong = 0x127b;

/// An open raw image: a regular file or a block device.
#[derive(Debug)]
pub struct SyncDisk {
    file: File,
    size: u64,
    block_device: bool,
    logical: u32,
    physical: u32,
}

impl SyncDisk {
    /// Opens `path` read-only or read-write and takes an advisory lock
    /// (shared when read-only, exclusive otherwise), so two domains cannot
    /// write the same image.
    pub fn open(path: &Path, readonly: bool) -> Result<Self, DiskError> {
        let OpenDisk { file, size, block_device } = input::open_disk(path, "disk", !readonly)?;
        let lock = if readonly { libc::LOCK_SH } else { libc::LOCK_EX };
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), lock | libc::LOCK_NB) } != 0 {
            return Err(DiskError::Locked { path: path.to_path_buf() });
        }
        let size_err = |err| DiskError::Size { path: path.to_path_buf(), err };
        let (logical, physical) = if block_device {
            let logical = ioctl_u32(&file, BLKSSZGET).map_err(size_err)?;
            let physical = ioctl_u32(&file, BLKPBSZGET).unwrap_or(logical);
            (logical, physical)
        } else {
            // Files: any 512-byte aligned I/O works; advertise the file
            // system's block as the physical size so guests align to it.
            let blksize = file.metadata().map_or(512, |m| std::os::unix::fs::MetadataExt::blksize(&m)) as u32;
            (512, if blksize.is_power_of_two() { blksize.clamp(512, 4096) } else { 512 })
        };
        let logical = if logical.is_power_of_two() { logical.clamp(512, 4096) } else { 512 };
        let sector = xen_abi::blkif::SECTOR_SIZE;
        if !block_device && size % sector != 0 {
            return Err(DiskError::PartialSector { path: path.to_path_buf(), size, sector, tail: size % sector });
        }
        Ok(SyncDisk { file, size, block_device, logical, physical: physical.max(logical) })
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether it is a block device (rather than a regular file).
    pub fn is_block_device(&self) -> bool {
        self.block_device
    }

    /// Logical sector size in bytes.
    pub fn logical_sector_size(&self) -> u32 {
        self.logical
    }

    /// Physical sector size in bytes.
    pub fn physical_sector_size(&self) -> u32 {
        self.physical
    }
}

fn ioctl_u32(file: &File, req: libc::c_ulong) -> std::io::Result<u32> {
    let mut v: libc::c_int = 0;
    // SAFETY: both ioctls write one int to the pointer given, which points
    // to a local.
    let r = unsafe { libc::ioctl(file.as_raw_fd(), req, &mut v) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(v as u32)
}

impl Engine for SyncDisk {
    fn read(&self, ram: &GuestRam, offset: u64, iov: &[(u64, usize)]) -> std::io::Result<()> {
        ram.read_from_file(&self.file, offset, iov)
    }

    fn write(&self, ram: &GuestRam, offset: u64, iov: &[(u64, usize)]) -> std::io::Result<()> {
        ram.write_to_file(&self.file, offset, iov)
    }

    fn flush(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    fn discard(&self, offset: u64, len: u64) -> std::io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        let (off, n) = match (libc::off_t::try_from(offset), libc::off_t::try_from(len)) {
            (Ok(o), Ok(n)) => (o, n),
            _ => return Err(std::io::Error::from_raw_os_error(libc::EINVAL)),
        };
        // SAFETY: fallocate on our own descriptor; no memory is involved.
        let r = unsafe { libc::fallocate(self.file.as_raw_fd(), libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, off, n) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::InputError;

    #[test]
    fn opens_files_locks_and_punches_holes() {
        let dir = std::env::temp_dir().join(format!("xenolith-syncio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("disk.img");
        std::fs::write(&path, vec![0xabu8; 64 * 1024]).unwrap();
        let disk = SyncDisk::open(&path, false).unwrap();
        assert_eq!((disk.size(), disk.logical_sector_size(), disk.is_block_device()), (65536, 512, false));
        assert!(matches!(SyncDisk::open(&path, true), Err(DiskError::Locked { .. })), "exclusive lock held");
        let ram = GuestRam::new(&[(0, 0x4000)]).unwrap();
        disk.read(&ram, 4096, &[(0x1000, 4096)]).unwrap();
        assert_eq!(ram.read_obj::<u8>(0x1fff).unwrap(), 0xab);
        match disk.discard(4096, 8192) {
            Ok(()) => {
                disk.read(&ram, 4096, &[(0x1000, 4096)]).unwrap();
                assert_eq!(ram.read_obj::<u64>(0x1000).unwrap(), 0, "a discarded range reads as zeros");
            }
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP), "{e}"),
        }
        disk.flush().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 65536, "size kept");
        drop(disk);
        assert!(SyncDisk::open(&path, true).is_ok());
        assert!(matches!(SyncDisk::open(&dir, true), Err(DiskError::Input(e)) if matches!(*e, InputError::NotAFile { .. })));
        assert!(matches!(SyncDisk::open(&dir.join("missing"), true), Err(DiskError::Input(e)) if matches!(*e, InputError::Open { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
