//! Which file system is on a volume, from its superblock magic numbers.

use core::fmt;

use crate::disk::{DiskError, ReadAt};

/// A file system pvboot can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    /// FFSv1 / UFS1.
    Ffs1,
    /// FFSv2 / UFS2.
    Ffs2,
    /// FAT12.
    Fat12,
    /// FAT16.
    Fat16,
    /// FAT32.
    Fat32,
    /// ext2 (no journal, no ext4 features).
    Ext2,
    /// ext3 (journal, no ext4 features).
    Ext3,
    /// ext4.
    Ext4,
    /// Files on a TFTP server (network boot; never probed on a disk).
    Tftp,
    /// Files on an HTTP server (network boot; never probed on a disk).
    Http,
}

impl FsKind {
    /// Short lowercase name, as `fstest probe` prints it.
    pub fn name(self) -> &'static str {
        match self {
            FsKind::Ffs1 => "ffs1",
            FsKind::Ffs2 => "ffs2",
            FsKind::Fat12 => "fat12",
            FsKind::Fat16 => "fat16",
            FsKind::Fat32 => "fat32",
            FsKind::Ext2 => "ext2",
            FsKind::Ext3 => "ext3",
            FsKind::Ext4 => "ext4",
            FsKind::Tftp => "tftp",
            FsKind::Http => "http",
        }
    }
}

impl fmt::Display for FsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where FFS superblocks may start (SBLOCKSEARCH in ufs/ffs/fs.h:
/// UFS2 at 64 KiB, UFS1 at 8 KiB, floppy at 0, piggy at 256 KiB).
pub const FFS_SUPERBLOCK_OFFSETS: [u64; 4] = [65536, 8192, 0, 262144];
/// Offset of `fs_magic` inside the FFS superblock.
pub const FFS_MAGIC_OFFSET: u64 = 1372;
/// FFSv1 magic.
pub const FS_UFS1_MAGIC: u32 = 0x0001_1954;
/// FFSv2 magic.
pub const FS_UFS2_MAGIC: u32 = 0x1954_0119;
/// FFSv2 with extended attributes (NetBSD's UFS2EA).
pub const FS_UFS2EA_MAGIC: u32 = 0x1901_2038;
/// Offset of the ext superblock magic (1024 + 0x38).
pub const EXT_MAGIC_OFFSET: u64 = 1080;

fn read_u32(vol: &dyn ReadAt, off: u64) -> Result<Option<[u8; 4]>, DiskError> {
    let mut b = [0u8; 4];
    match vol.read_at(off, &mut b) {
        Ok(()) => Ok(Some(b)),
        Err(DiskError::OutOfRange { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn ext_kind(vol: &dyn ReadAt) -> Result<Option<FsKind>, DiskError> {
    let mut sb = [0u8; 1024];
    if vol.size() < 2048 {
        return Ok(None);
    }
    vol.read_at(1024, &mut sb)?;
    if u16::from_le_bytes([sb[0x38], sb[0x39]]) != 0xEF53 {
        return Ok(None);
    }
    let le = |o: usize| u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]);
    let (compat, incompat, ro) = (le(0x5C), le(0x60), le(0x64));
    // extents, 64bit, flex_bg, mmp, inline data, csum seed, largedir; huge_file,
    // gdt_csum, dir_nlink, extra_isize, metadata_csum.
    let ext4_incompat = 0x40 | 0x80 | 0x100 | 0x200 | 0x2000 | 0x4000 | 0x8000;
    let ext4_ro = 0x8 | 0x10 | 0x20 | 0x40 | 0x400;
    Ok(Some(if incompat & ext4_incompat != 0 || ro & ext4_ro != 0 {
        FsKind::Ext4
    } else if compat & 0x4 != 0 {
        FsKind::Ext3
    } else {
        FsKind::Ext2
    }))
}

fn ffs_kind(vol: &dyn ReadAt) -> Result<Option<FsKind>, DiskError> {
    for sb in FFS_SUPERBLOCK_OFFSETS {
        let Some(b) = read_u32(vol, sb + FFS_MAGIC_OFFSET)? else { continue };
        for m in [u32::from_le_bytes(b), u32::from_be_bytes(b)] {
            match m {
                // makefs puts UFS2 superblocks at 8 KiB too, so any place will do.
                FS_UFS1_MAGIC => return Ok(Some(FsKind::Ffs1)),
                FS_UFS2_MAGIC | FS_UFS2EA_MAGIC => return Ok(Some(FsKind::Ffs2)),
                _ => {}
            }
        }
    }
    Ok(None)
}

/// Detects the file system on `vol`: ext magic at 1080, FFS magic at the
/// standard superblock offsets, then a FAT boot sector (checked the way
/// [`super::fat`] mounts it, so FAT12/16/32 follows the cluster count).
pub fn probe(vol: &dyn ReadAt) -> Result<Option<FsKind>, DiskError> {
    if let Some(k) = ext_kind(vol)? {
        return Ok(Some(k));
    }
    if let Some(k) = ffs_kind(vol)? {
        return Ok(Some(k));
    }
    if vol.size() >= 512 {
        let mut bs = [0u8; 512];
        vol.read_at(0, &mut bs)?;
        if let Ok(bpb) = super::fat::Bpb::parse(&bs, vol.size()) {
            return Ok(Some(bpb.kind()));
        }
    }
    Ok(None)
}
