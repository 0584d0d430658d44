//! ext2, ext3 and ext4 through the `ext4-view` crate (no_std + alloc).
//!
//! ext4-view 1.0 reads extents and block maps, 64bit, flex_bg,
//! metadata_csum (+ csum_seed, checksums verified), and htree directories
//! (read linearly). It never writes. A journal is only looked at when the
//! superblock says it needs recovery (`has_journal` + incompat `recover`):
//! then ext4-view walks the journal from its start block and keeps, in
//! memory, a map from file-system blocks to their newest copies in committed
//! transactions (honouring revoke records; uncommitted or corrupt tail
//! transactions are dropped), and every later block read goes through that
//! map. So a dirty ext3/4 image reads as if the journal had been replayed,
//! without modifying the disk. Only journals with the 64bit and checksum-v3
//! features (what mke2fs/the kernel use for ext4 with 64bit+metadata_csum,
//! the e2fsprogs 1.47 default) can be replayed: any other journal that needs
//! recovery (ext3's, or ext4 without those features) fails the mount with
//! [`FsError::Unsupported`] ("missing required journal features"), as do
//! external journal devices. A clean journal is never read.
//!
//! Known ext4-view 1.0 gap: in block-mapped (ext2/ext3-style) files, a hole
//! covering a whole indirect block makes it read block 0, so such sparse
//! files fail with [`FsError::Corrupt`] (tests/ext.rs keeps a test for it).
//!
//! ext4-view does not expose inode numbers or link counts, so [`Metadata`]
//! has `ino` and `nlink` set to `None` here.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;

use ext4_view::{Ext4, Ext4Error, Ext4Read};

use super::{join, DirEntry, FileSystem, FileType, FsError, FsKind, ListingBudget, Metadata, Node, PathProblem};
use crate::disk::{DiskError, ReadAt};

struct Reader<R>(R);

impl<R: ReadAt> Ext4Read for Reader<R> {
    fn read(
        &mut self,
        start: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn core::error::Error + Send + Sync + 'static>> {
        self.0.read_at(start, dst).map_err(|e| Box::new(e) as _)
    }
}

fn map_err(e: Ext4Error) -> FsError {
    match e {
        Ext4Error::NotFound => FsError::NotFound,
        Ext4Error::NotADirectory => FsError::NotADirectory,
        Ext4Error::IsADirectory => FsError::IsADirectory,
        Ext4Error::NotASymlink => FsError::NotASymlink,
        Ext4Error::TooManySymlinks => FsError::SymlinkLoop,
        Ext4Error::NotAbsolute | Ext4Error::MalformedPath | Ext4Error::PathTooLong => FsError::BadPath(PathProblem::Malformed),
        Ext4Error::Io(ref inner) => match inner.downcast_ref::<DiskError>() {
            Some(d) => FsError::Disk(*d),
            None => FsError::Corrupt(format!("ext: {e}")),
        },
        Ext4Error::Incompatible(i) => FsError::Unsupported(format!("ext: {i}")),
        Ext4Error::IsASpecialFile | Ext4Error::Encrypted => FsError::Unsupported(format!("ext: {e}")),
        other => FsError::Corrupt(format!("ext: {other}")),
    }
}

fn file_type(t: ext4_view::FileType) -> FileType {
    if t.is_regular_file() {
        FileType::File
    } else if t.is_dir() {
        FileType::Dir
    } else if t.is_symlink() {
        FileType::Symlink
    } else if t.is_char_dev() {
        FileType::CharDevice
    } else if t.is_block_dev() {
        FileType::BlockDevice
    } else if t.is_fifo() {
        FileType::Fifo
    } else if t.is_socket() {
        FileType::Socket
    } else {
        FileType::Other
    }
}

fn metadata(m: &ext4_view::Metadata) -> Metadata {
    let t = m.modified();
    Metadata {
        kind: file_type(m.file_type()),
        perm: m.mode() & 0o7777,
        size: m.len(),
        mtime: t.seconds(),
        mtime_nsec: t.nanoseconds(),
        uid: m.uid(),
        gid: m.gid(),
        nlink: None,
        ino: None,
    }
}

/// Most block groups accepted. ext4-view keeps a 16-byte descriptor per group
/// and reads them all at mount time: 2^18 groups is 4 MiB of pvboot's 64 MiB
/// heap, and a 32 TiB volume at 4 KiB blocks and 32768 blocks per group.
pub const MAX_BLOCK_GROUPS: u64 = 1 << 18;

fn sb_u32(sb: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([sb[off], sb[off + 1], sb[off + 2], sb[off + 3]])
}

fn sb_u16(sb: &[u8], off: usize) -> u32 {
    u32::from(u16::from_le_bytes([sb[off], sb[off + 1]]))
}

fn bad_field(field: &str, why: String) -> FsError {
    FsError::Corrupt(format!("ext: {field} {why}"))
}

/// Checks the superblock geometry `sb` (the 1024 bytes at offset 1024)
/// against a volume of `vol_size` bytes, the way the kernel's ext4_fill_super
/// does, before ext4-view sees it: ext4-view 1.0 sizes allocations and loops
/// by these fields unchecked (block size, block groups), so a hostile image
/// could make it allocate gigabytes (docs/ext4-view-report.md).
///
/// Counts are read as ext4-view reads them (the high half of s_blocks_count
/// even without 64bit), so that what passes here is what it uses.
pub fn check_geometry(sb: &[u8; 1024], vol_size: u64) -> Result<(), FsError> {
    let log_block_size = sb_u32(sb, 0x18);
    // 1 KiB to 64 KiB (EXT4_MAX_BLOCK_LOG_SIZE).
    if log_block_size > 6 {
        return Err(bad_field("s_log_block_size", format!("{log_block_size} (blocks over 64 KiB)")));
    }
    let block_size = 1024u64 << log_block_size;
    let blocks = (u64::from(sb_u32(sb, 0x150)) << 32) | u64::from(sb_u32(sb, 0x04));
    let device_blocks = vol_size / block_size;
    if blocks > device_blocks {
        return Err(bad_field(
            "s_blocks_count",
            format!("{blocks} is past the end of the volume ({device_blocks} blocks of {block_size} bytes)"),
        ));
    }
    let first_data_block = u64::from(sb_u32(sb, 0x14));
    if first_data_block >= blocks {
        return Err(bad_field("s_first_data_block", format!("{first_data_block} (of {blocks} blocks)")));
    }
    // A group's blocks and inodes each have a one-block bitmap (bigalloc: its clusters).
    let per_bitmap = 8 * block_size;
    let bigalloc = sb_u32(sb, 0x64) & 0x200 != 0;
    let blocks_per_group = u64::from(sb_u32(sb, 0x20));
    let clusters_per_group = if bigalloc { u64::from(sb_u32(sb, 0x24)) } else { blocks_per_group };
    if blocks_per_group == 0 || clusters_per_group == 0 || clusters_per_group > per_bitmap {
        return Err(bad_field("s_blocks_per_group", format!("{blocks_per_group} (1 to {per_bitmap} with {block_size}-byte blocks)")));
    }
    let inodes_per_group = u64::from(sb_u32(sb, 0x28));
    if inodes_per_group == 0 || inodes_per_group > per_bitmap {
        return Err(bad_field("s_inodes_per_group", format!("{inodes_per_group} (1 to {per_bitmap} with {block_size}-byte blocks)")));
    }
    // Dynamic revisions give the inode size; revision 0 has 128-byte inodes.
    if sb_u32(sb, 0x4C) != 0 {
        let inode_size = u64::from(sb_u16(sb, 0x58));
        if inode_size < 128 || inode_size > block_size || !inode_size.is_power_of_two() {
            return Err(bad_field("s_inode_size", format!("{inode_size} (a power of two from 128 to the block size)")));
        }
    }
    let desc_size = if sb_u32(sb, 0x60) & 0x80 != 0 {
        let d = u64::from(sb_u16(sb, 0xFE));
        // EXT4_MIN_DESC_SIZE_64BIT to EXT4_MAX_DESC_SIZE.
        if !(64..=1024).contains(&d) || !d.is_power_of_two() {
            return Err(bad_field("s_desc_size", format!("{d} (64bit: a power of two from 64 to 1024)")));
        }
        d
    } else {
        32
    };
    let groups = (blocks - first_data_block).div_ceil(blocks_per_group);
    if groups > MAX_BLOCK_GROUPS {
        return Err(bad_field(
            "s_blocks_per_group",
            format!("{blocks_per_group} makes {groups} block groups (at most {MAX_BLOCK_GROUPS})"),
        ));
    }
    // The descriptor table follows the superblock's block (where ext4-view reads it).
    let table_start = if block_size == 1024 { 2 * 1024 } else { block_size };
    if table_start + groups * desc_size > vol_size {
        return Err(bad_field(
            "s_blocks_per_group",
            format!("{blocks_per_group}: {groups} group descriptors of {desc_size} bytes run past the end of the volume"),
        ));
    }
    Ok(())
}

/// The largest file a block map (12 direct, then single, double and triple
/// indirect blocks) reaches with `block_size` blocks. ext4-view 1.0 panics
/// reading a block-mapped file past it (`File::read_bytes` unwraps its block
/// iterator, which ends there), and does not say whether a file is
/// block-mapped, so no file larger than this is read; extent-mapped files
/// that large (4 TiB at 4 KiB blocks, 16 GiB at 1 KiB) are no boot files.
fn max_block_mapped_size(block_size: u64) -> u64 {
    let n = block_size / 4;
    (12 + n + n * n + n * n * n).saturating_mul(block_size)
}

/// A mounted ext2/3/4 volume.
pub struct ExtFs {
    fs: Ext4,
    kind: FsKind,
    /// Largest file read (see [`max_block_mapped_size`]).
    max_file_size: u64,
    /// The volume's size in bytes: no file read is larger (see [`super::check_file_size`]).
    vol_size: u64,
    /// The file last read, so sequential `read_at` calls need no re-open or seek.
    open: RefCell<Option<(String, ext4_view::File)>>,
}

impl ExtFs {
    /// Mounts the ext volume `vol` (replaying a dirty journal in memory).
    pub fn open<R: ReadAt + 'static>(vol: R) -> Result<Self, FsError> {
        let kind = match super::probe(&vol)? {
            Some(k @ (FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4)) => k,
            _ => return Err(FsError::Unrecognized),
        };
        let mut sb = [0u8; 1024];
        vol.read_at(1024, &mut sb)?;
        check_geometry(&sb, vol.size())?;
        let max_file_size = max_block_mapped_size(1024 << sb_u32(&sb, 0x18));
        let vol_size = vol.size();
        let fs = Ext4::load(Box::new(Reader(vol))).map_err(map_err)?;
        Ok(ExtFs { fs, kind, max_file_size, vol_size, open: RefCell::new(None) })
    }

    /// Resolves `path` to a symlink-free absolute path and its metadata
    /// (`follow_last`: also through a symlink in the last component).
    ///
    /// pvboot walks the path itself instead of letting ext4-view resolve it:
    /// ext4-view 1.0 reads a symlink's whole target into a buffer of the
    /// inode's i_size, unchecked (docs/ext4-view-report.md). Here every
    /// link's size is checked before ext4-view reads it, and ext4-view is only
    /// asked about paths whose directories hold no symlinks.
    fn resolve(&self, path: &str, follow_last: bool) -> Result<(String, ext4_view::Metadata), FsError> {
        super::check_path(path)?;
        // Components still to walk, the next one last.
        let mut rest: Vec<String> = path.split('/').rev().map(String::from).collect();
        let mut cur: Vec<String> = Vec::new();
        let mut meta = self.fs.symlink_metadata("/").map_err(map_err)?;
        let mut links = 0;
        while let Some(comp) = rest.pop() {
            // As POSIX: whatever a `/` follows must be a directory, so `/file/`
            // and `/file/.` are "not a directory" (the empty and `.` components
            // check it; the leading one checks the root).
            if !meta.file_type().is_dir() {
                return Err(FsError::NotADirectory);
            }
            if comp.is_empty() || comp == "." {
                continue;
            }
            if comp == ".." {
                cur.pop();
                meta = self.fs.symlink_metadata(Self::joined(&cur).as_str()).map_err(map_err)?;
                continue;
            }
            cur.push(comp);
            let here = Self::joined(&cur);
            let m = self.fs.symlink_metadata(here.as_str()).map_err(map_err)?;
            let last = rest.iter().all(|c| c.is_empty() || c == ".");
            // A trailing `/` asks for a directory: a link there is followed.
            let must_be_dir = last && !rest.is_empty();
            if m.file_type().is_symlink() && (follow_last || !last || must_be_dir) {
                links += 1;
                if links > super::MAX_SYMLINKS {
                    return Err(FsError::SymlinkLoop);
                }
                let target = self.link_target(&here, m.len())?;
                cur.pop();
                if target.starts_with('/') {
                    cur.clear();
                }
                rest.extend(target.split('/').rev().map(String::from));
                let len = rest.iter().map(|c| c.len() + 1).sum::<usize>();
                if len > super::MAX_PATH {
                    return Err(FsError::BadPath(PathProblem::TooLong { len, expanded: true }));
                }
                meta = self.fs.symlink_metadata(Self::joined(&cur).as_str()).map_err(map_err)?;
                continue;
            }
            meta = m;
        }
        Ok((Self::joined(&cur), meta))
    }

    fn joined(parts: &[String]) -> String {
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        join(&refs)
    }

    /// The target of the symlink at the symlink-free `path`, of i_size `size`.
    fn link_target(&self, path: &str, size: u64) -> Result<String, FsError> {
        if size > super::MAX_PATH as u64 {
            return Err(FsError::Corrupt(format!(
                "ext: symlink i_size {size} (targets are at most {} bytes)",
                super::MAX_PATH
            )));
        }
        let t = self.fs.read_link(path).map_err(map_err)?;
        Ok(String::from_utf8_lossy(t.as_ref()).to_string())
    }
}

impl FileSystem for ExtFs {
    fn kind(&self) -> FsKind {
        self.kind
    }

    fn label(&self) -> Option<String> {
        let label = format!("{}", self.fs.label().display());
        (!label.is_empty()).then_some(label)
    }

    fn uuid(&self) -> Option<String> {
        // GRUB prints it whatever it is, as "%04x%04x-%04x-%04x-%04x-%04x%04x%04x".
        Some(format!("{}", self.fs.uuid()))
    }

    fn lookup(&self, path: &str) -> Result<Node, FsError> {
        let (p, m) = self.resolve(path, true)?;
        Ok(Node { path: p, meta: metadata(&m), handle: 0 })
    }

    fn lookup_nofollow(&self, path: &str) -> Result<Node, FsError> {
        let (p, m) = self.resolve(path, false)?;
        Ok(Node { path: p, meta: metadata(&m), handle: 0 })
    }

    fn read_at(&self, node: &Node, offset: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        if node.meta.kind == FileType::Dir {
            return Err(FsError::IsADirectory);
        }
        if node.meta.kind == FileType::Symlink {
            // ext4-view would follow it unchecked: resolve it here instead.
            let target = self.lookup(&node.path)?;
            return self.read_at(&target, offset, buf);
        }
        if node.meta.size > self.max_file_size {
            return Err(FsError::Corrupt(format!(
                "ext: i_size {} is past what a block map reaches ({} bytes)",
                node.meta.size, self.max_file_size
            )));
        }
        super::check_file_size("ext", &node.path, node.meta.size, self.vol_size)?;
        let mut open = self.open.borrow_mut();
        if offset >= node.meta.size {
            return Ok(0);
        }
        let reuse = matches!(&*open, Some((p, f)) if *p == node.path && f.position() <= offset);
        if !reuse {
            let f = self.fs.open(node.path.as_str()).map_err(map_err)?;
            *open = Some((node.path.clone(), f));
        }
        let Some((_, f)) = open.as_mut() else {
            return Ok(0);
        };
        // Move forward by reading, not with ext4-view's `seek_to`: that drops
        // errors from the block map it steps through, after which the next
        // read panics (docs/ext4-view-report.md). Reads that follow each other
        // (how files are loaded) skip nothing.
        let mut skip = [0u8; 4096];
        while f.position() < offset {
            let n = (offset - f.position()).min(skip.len() as u64) as usize;
            match f.read_bytes(&mut skip[..n]) {
                Ok(0) => return Ok(0),
                Ok(_) => {}
                Err(e) => {
                    *open = None;
                    return Err(map_err(e));
                }
            }
        }
        let mut done = 0;
        while done < buf.len() {
            match f.read_bytes(&mut buf[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) => {
                    *open = None;
                    return Err(map_err(e));
                }
            }
        }
        Ok(done)
    }

    fn read_dir(&self, node: &Node) -> Result<Vec<DirEntry>, FsError> {
        let mut out = Vec::new();
        let mut budget = ListingBudget::default();
        for e in self.fs.read_dir(node.path.as_str()).map_err(map_err)? {
            let e = e.map_err(map_err)?;
            let name = String::from_utf8_lossy(e.file_name().as_ref()).to_string();
            if name == "." || name == ".." {
                continue;
            }
            let m = e.metadata().map_err(map_err)?;
            let mut path = String::from(node.path.trim_end_matches('/'));
            path.push('/');
            path.push_str(&name);
            budget.take(&name, &path)?;
            out.push(DirEntry { name, node: Node { path, meta: metadata(&m), handle: 0 } });
        }
        Ok(out)
    }

    fn read_link(&self, node: &Node) -> Result<String, FsError> {
        if node.meta.kind != FileType::Symlink {
            return Err(FsError::NotASymlink);
        }
        self.link_target(&node.path, node.meta.size)
    }
}
