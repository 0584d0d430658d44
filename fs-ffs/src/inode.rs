//! On-disk inodes (`struct ufs1_dinode` / `struct ufs2_dinode` in NetBSD's
//! sys/ufs/ufs/dinode.h), their location, and the metadata they expose.

use core::fmt;

use crate::endian::Fields;
use crate::superblock::{Superblock, Version, NDADDR, NIADDR};

/// An inode number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ino(pub u32);

impl Ino {
    /// The root directory's inode number (UFS_ROOTINO).
    pub const ROOT: Ino = Ino(2);
}

impl fmt::Display for Ino {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Whiteout entries (union mounts) point at this inode number (UFS_WINO).
pub(crate) const WINO: u32 = 1;

/// The type of a file, from its inode mode or its directory entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    /// Named pipe.
    Fifo,
    /// Character device.
    CharDevice,
    /// Directory.
    Directory,
    /// Block device.
    BlockDevice,
    /// Regular file.
    Regular,
    /// Symbolic link.
    Symlink,
    /// Unix domain socket.
    Socket,
    /// Whiteout (union file systems).
    Whiteout,
    /// The type is not recorded or not recognised.
    Unknown,
}

impl FileType {
    /// Decodes the 4-bit type shared by inode modes (IFMT >> 12) and
    /// directory entries (DT_*): both use the same numbering.
    pub(crate) fn from_code(code: u8) -> FileType {
        match code {
            1 => FileType::Fifo,
            2 => FileType::CharDevice,
            4 => FileType::Directory,
            6 => FileType::BlockDevice,
            8 => FileType::Regular,
            10 => FileType::Symlink,
            12 => FileType::Socket,
            14 => FileType::Whiteout,
            _ => FileType::Unknown,
        }
    }

    /// Type encoded in an inode mode.
    pub(crate) fn from_mode(mode: u16) -> FileType {
        FileType::from_code((mode >> 12) as u8)
    }
}

/// A point in time: seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Timestamp {
    /// Seconds since 1970-01-01 00:00:00 UTC.
    pub secs: i64,
    /// Nanoseconds within the second (always < 1_000_000_000).
    pub nanos: u32,
}

impl Timestamp {
    fn new(secs: i64, nsec: i32) -> Timestamp {
        // Corrupt nanoseconds are dropped rather than breaking the invariant.
        let nanos = u32::try_from(nsec)
            .ok()
            .filter(|&n| n < 1_000_000_000)
            .unwrap_or(0);
        Timestamp { secs, nanos }
    }
}

/// What `stat` would report about a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Metadata {
    /// Inode number.
    pub ino: Ino,
    /// File type (from the mode).
    pub file_type: FileType,
    /// Full mode as stored: type bits (IFMT) and permission bits.
    pub mode: u16,
    /// Number of hard links.
    pub nlink: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Space allocated, in 512-byte units.
    pub blocks: u64,
    /// Last access.
    pub atime: Timestamp,
    /// Last data modification.
    pub mtime: Timestamp,
    /// Last inode change.
    pub ctime: Timestamp,
    /// Creation time (UFS2 only).
    pub birthtime: Option<Timestamp>,
    /// chflags(2) flags (UF_* / SF_*).
    pub flags: u32,
    /// Inode generation number.
    pub generation: u32,
    /// Device number, for character and block devices.
    pub rdev: u64,
}

impl Metadata {
    /// Permission bits (including setuid, setgid, sticky): `mode & 0o7777`.
    pub fn permissions(&self) -> u16 {
        self.mode & 0o7777
    }

    /// True for directories.
    pub fn is_dir(&self) -> bool {
        self.file_type == FileType::Directory
    }

    /// True for regular files.
    pub fn is_file(&self) -> bool {
        self.file_type == FileType::Regular
    }

    /// True for symbolic links.
    pub fn is_symlink(&self) -> bool {
        self.file_type == FileType::Symlink
    }
}

/// Bytes of block-pointer area in the largest (UFS2) inode; fast symlinks
/// keep their target there.
pub(crate) const INLINE_MAX: usize = (NDADDR + NIADDR) * 8;

/// A decoded inode, both formats in one shape.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Inode {
    pub meta: Metadata,
    /// Direct block pointers (fragment addresses; 0 = hole). Signed as on
    /// disk: a negative pointer is corruption, reported when used.
    pub db: [i64; NDADDR],
    /// Single, double and triple indirect block pointers.
    pub ib: [i64; NIADDR],
    /// Raw bytes of the block-pointer area, for fast symlinks.
    pub inline: [u8; INLINE_MAX],
    /// How many bytes of `inline` the format has (60 for UFS1, 120 for UFS2).
    pub inline_len: usize,
}

impl Inode {
    /// Decodes inode `ino` from its on-disk bytes (`sb.inode_size()` long).
    pub(crate) fn parse(sb: &Superblock, ino: Ino, raw: &[u8]) -> Inode {
        let f = Fields::new(raw, sb.order);
        let mut db = [0i64; NDADDR];
        let mut ib = [0i64; NIADDR];
        let mut inline = [0u8; INLINE_MAX];
        let mode = f.u16(0);
        let nlink = f.u16(2);
        let (meta, inline_off, inline_len) = match sb.version {
            Version::Ufs1 => {
                for (i, p) in db.iter_mut().enumerate() {
                    *p = i64::from(f.i32(40 + 4 * i));
                }
                for (i, p) in ib.iter_mut().enumerate() {
                    *p = i64::from(f.i32(88 + 4 * i));
                }
                // 4.2BSD inodes keep 16-bit ids where 4.4BSD put di_u.
                let (uid, gid) = if sb.old_inodefmt {
                    (u32::from(f.u16(4)), u32::from(f.u16(6)))
                } else {
                    (f.u32(112), f.u32(116))
                };
                let meta = Metadata {
                    ino,
                    file_type: FileType::from_mode(mode),
                    mode,
                    nlink,
                    uid,
                    gid,
                    size: f.u64(8),
                    blocks: u64::from(f.u32(104)),
                    atime: Timestamp::new(i64::from(f.i32(16)), f.i32(20)),
                    mtime: Timestamp::new(i64::from(f.i32(24)), f.i32(28)),
                    ctime: Timestamp::new(i64::from(f.i32(32)), f.i32(36)),
                    birthtime: None,
                    flags: f.u32(100),
                    generation: f.u32(108),
                    rdev: u64::from(f.u32(40)),
                };
                (meta, 40, (NDADDR + NIADDR) * 4)
            }
            Version::Ufs2 | Version::Ufs2Ea => {
                for (i, p) in db.iter_mut().enumerate() {
                    *p = f.i64(112 + 8 * i);
                }
                for (i, p) in ib.iter_mut().enumerate() {
                    *p = f.i64(208 + 8 * i);
                }
                let meta = Metadata {
                    ino,
                    file_type: FileType::from_mode(mode),
                    mode,
                    nlink,
                    uid: f.u32(4),
                    gid: f.u32(8),
                    size: f.u64(16),
                    blocks: f.u64(24),
                    atime: Timestamp::new(f.i64(32), f.i32(68)),
                    mtime: Timestamp::new(f.i64(40), f.i32(64)),
                    ctime: Timestamp::new(f.i64(48), f.i32(72)),
                    birthtime: Some(Timestamp::new(f.i64(56), f.i32(76))),
                    flags: f.u32(88),
                    generation: f.u32(80),
                    rdev: f.u64(112),
                };
                (meta, 112, (NDADDR + NIADDR) * 8)
            }
        };
        if let (Some(dst), Some(src)) = (
            inline.get_mut(..inline_len),
            raw.get(inline_off..inline_off + inline_len),
        ) {
            dst.copy_from_slice(src);
        }
        Inode {
            meta,
            db,
            ib,
            inline,
            inline_len,
        }
    }

    /// True if this is a symlink whose target lives in the inode itself
    /// (the same test as NetBSD's ufs_readlink).
    pub(crate) fn is_fast_symlink(&self, sb: &Superblock) -> bool {
        if self.meta.file_type != FileType::Symlink {
            return false;
        }
        let size = self.meta.size;
        let fits = size <= self.inline_len as u64;
        let max = u64::from(sb.maxsymlinklen);
        fits && ((max > 0 && size < max) || (max == 0 && self.meta.blocks == 0))
    }
}

/// Byte offset of inode `ino` on the device (NetBSD's ino_to_fsba and
/// ino_to_fsbo), or `None` if the number is out of range.
pub(crate) fn inode_offset(sb: &Superblock, ino: Ino) -> Option<u64> {
    let ino = ino.0;
    if ino == 0 || ino >= sb.inode_count() {
        return None;
    }
    let cg = ino / sb.ipg;
    let in_cg = ino % sb.ipg;
    let block_in_table = u64::from(in_cg / sb.inopb);
    let frag_addr = sb
        .cg_start(cg)?
        .checked_add(sb.iblkno)?
        .checked_add(block_in_table.checked_mul(u64::from(sb.frag))?)?;
    // NetBSD takes the offset in the block from the absolute number.
    let byte_in_block = u64::from(ino % sb.inopb) * u64::from(sb.inode_size());
    frag_addr
        .checked_mul(u64::from(sb.fsize))?
        .checked_add(byte_in_block)
}
