//! Read-only file systems behind one trait, [`FileSystem`], and [`mount`],
//! which probes a volume and opens the right one.

pub mod ext;
pub mod fat;
pub mod ffs;
pub mod probe;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::disk::{DiskError, ReadAt};
pub use probe::{probe, FsKind};

/// Most symlinks followed while resolving one path (Linux's MAXSYMLINKS is 40).
pub const MAX_SYMLINKS: u32 = 40;
/// Longest path accepted (PATH_MAX).
pub const MAX_PATH: usize = 4096;
/// Longest path component accepted (NAME_MAX: no file system here stores longer names).
pub const MAX_NAME: usize = 255;
/// Most entries one [`FileSystem::read_dir`] returns. A listing is built in
/// pvboot's 64 MiB heap with a full path per entry, so its size must not be
/// the disk's choice; boot volumes hold far fewer.
pub const MAX_DIR_ENTRIES: usize = 16384;
/// Most bytes of names and paths one listing holds.
pub const MAX_LISTING_BYTES: usize = 4 << 20;

/// Bytes [`FileSystem::read_file`] reads (and allocates) at a time.
pub const READ_FILE_CHUNK: usize = 1 << 20;

/// Counts a directory listing as it grows, refusing one past
/// [`MAX_DIR_ENTRIES`] or [`MAX_LISTING_BYTES`].
#[derive(Default)]
pub(crate) struct ListingBudget {
    entries: usize,
    bytes: usize,
}

impl ListingBudget {
    /// Accounts for one more entry named `name` at `path`.
    pub(crate) fn take(&mut self, name: &str, path: &str) -> Result<(), FsError> {
        self.entries += 1;
        self.bytes += name.len() + path.len();
        if self.entries > MAX_DIR_ENTRIES || self.bytes > MAX_LISTING_BYTES {
            return Err(FsError::Unsupported(alloc::format!(
                "directory listing over {MAX_DIR_ENTRIES} entries or {} MiB",
                MAX_LISTING_BYTES >> 20
            )));
        }
        Ok(())
    }
}

/// Why a file-system operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsError {
    /// Reading the volume failed.
    Disk(DiskError),
    /// No file system pvboot knows is on the volume.
    Unrecognized,
    /// A path component does not exist.
    NotFound,
    /// A path component other than the last is not a directory.
    NotADirectory,
    /// A directory was given where a file is needed.
    IsADirectory,
    /// `read_link` on something that is not a symlink.
    NotASymlink,
    /// Too many symlinks, or a symlink loop.
    SymlinkLoop,
    /// The path is too long or not valid; the problem says why.
    BadPath(PathProblem),
    /// The on-disk structures are inconsistent.
    Corrupt(String),
    /// A feature pvboot does not read.
    Unsupported(String),
    /// A file server could not be reached or broke off (network boot).
    Network(String),
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsError::Disk(e) => write!(f, "{e}"),
            FsError::Unrecognized => f.write_str("no recognized file system"),
            FsError::NotFound => f.write_str("no such file or directory"),
            FsError::NotADirectory => f.write_str("not a directory"),
            FsError::IsADirectory => f.write_str("is a directory"),
            FsError::NotASymlink => f.write_str("not a symbolic link"),
            FsError::SymlinkLoop => f.write_str("too many levels of symbolic links"),
            FsError::BadPath(p) => write!(f, "invalid path: {p}"),
            FsError::Corrupt(s) => write!(f, "corrupt file system: {s}"),
            FsError::Unsupported(s) => write!(f, "unsupported: {s}"),
            FsError::Network(s) => write!(f, "network: {s}"),
        }
    }
}

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathProblem {
    /// Longer than [`MAX_PATH`] bytes, as given or once symlinks are expanded.
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// Whether the length is that of the path with symlink targets put in.
        expanded: bool,
    },
    /// Longer than [`MAX_PATH`] bytes once symlinks are expanded (the
    /// file-system library does not say by how much).
    LinksTooLong,
    /// A component longer than [`MAX_NAME`] bytes.
    NameTooLong {
        /// The component's length in bytes.
        len: usize,
    },
    /// A NUL byte, which no name on disk holds.
    Nul {
        /// Its byte offset.
        at: usize,
        /// The path, escaped so that the NUL shows (`\0`).
        shown: String,
    },
    /// Refused by the file-system library, which gives no reason.
    Malformed,
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathProblem::TooLong { len, expanded: false } => {
                write!(f, "too long: {len} bytes (at most {MAX_PATH})")
            }
            PathProblem::TooLong { len, expanded: true } => {
                write!(f, "too long once symbolic links are followed: {len} bytes (at most {MAX_PATH})")
            }
            PathProblem::LinksTooLong => write!(f, "too long once symbolic links are followed (at most {MAX_PATH} bytes)"),
            PathProblem::NameTooLong { len } => write!(f, "a component is {len} bytes long (at most {MAX_NAME})"),
            PathProblem::Nul { at, shown } => write!(f, "NUL byte at byte {at} in \"{shown}\""),
            PathProblem::Malformed => f.write_str("malformed"),
        }
    }
}

/// Checks a path before it is walked: its length, its components' lengths
/// and that it holds no NUL. Every file system's lookup starts here.
pub fn check_path(path: &str) -> Result<(), FsError> {
    if path.len() > MAX_PATH {
        return Err(FsError::BadPath(PathProblem::TooLong { len: path.len(), expanded: false }));
    }
    if let Some(at) = path.find('\0') {
        return Err(FsError::BadPath(PathProblem::Nul { at, shown: path.escape_debug().collect() }));
    }
    if let Some(len) = path.split('/').map(str::len).find(|&l| l > MAX_NAME) {
        return Err(FsError::BadPath(PathProblem::NameTooLong { len }));
    }
    Ok(())
}

/// Refuses a file whose size, read from the disk, is larger than the
/// volume (`vol_size` bytes) holding it: it would drive a read loop (or a
/// reader's buffer) far past anything the disk can back. Such a file can
/// only be sparse, and sparse files larger than their volume are no boot
/// files; pvboot takes the size for a corrupt one.
/// `fs` and `path` only name the file in the error (no allocation on the
/// read path).
pub fn check_file_size(fs: &str, path: &str, size: u64, vol_size: u64) -> Result<(), FsError> {
    if size > vol_size {
        return Err(FsError::Corrupt(alloc::format!(
            "{fs}: {path}: file size {size} is larger than the volume ({vol_size} bytes)"
        )));
    }
    Ok(())
}

/// Resolves `path` from `root`, looking each name up with `child` (a
/// search of one directory), for file systems without symbolic links. As
/// POSIX: `.` and `..` are taken where they stand, so every component
/// followed by one (or by `/`) must be a directory (`/file/..` and
/// `/file/` are "not a directory"); `..` at the root stays there.
pub(crate) fn walk(
    path: &str,
    root: Node,
    mut child: impl FnMut(&Node, &str) -> Result<Node, FsError>,
) -> Result<Node, FsError> {
    check_path(path)?;
    // The directories walked through, so that `..` can go back up.
    let mut stack = alloc::vec![root];
    for comp in path.split('/') {
        let Some(cur) = stack.last() else { break };
        if comp.is_empty() {
            continue;
        }
        if cur.meta.kind != FileType::Dir {
            return Err(FsError::NotADirectory);
        }
        match comp {
            "." => {}
            ".." => {
                if stack.len() > 1 {
                    stack.pop();
                }
            }
            name => {
                let next = child(cur, name)?;
                stack.push(next);
            }
        }
    }
    let node = stack.pop().ok_or(FsError::NotFound)?;
    if path.ends_with('/') && node.meta.kind != FileType::Dir {
        return Err(FsError::NotADirectory);
    }
    Ok(node)
}

impl From<DiskError> for FsError {
    fn from(e: DiskError) -> Self {
        FsError::Disk(e)
    }
}

/// What a directory entry or inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A socket.
    Socket,
    /// Anything else (e.g. a whiteout).
    Other,
}

impl FileType {
    /// The `ls -l` type letter.
    pub fn letter(self) -> char {
        match self {
            FileType::File => '-',
            FileType::Dir => 'd',
            FileType::Symlink => 'l',
            FileType::CharDevice => 'c',
            FileType::BlockDevice => 'b',
            FileType::Fifo => 'p',
            FileType::Socket => 's',
            FileType::Other => '?',
        }
    }

    /// From the `S_IFMT` bits of a POSIX mode.
    pub fn from_mode(mode: u32) -> Self {
        match mode & 0o170000 {
            0o100000 => FileType::File,
            0o040000 => FileType::Dir,
            0o120000 => FileType::Symlink,
            0o020000 => FileType::CharDevice,
            0o060000 => FileType::BlockDevice,
            0o010000 => FileType::Fifo,
            0o140000 => FileType::Socket,
            _ => FileType::Other,
        }
    }
}

/// What `stat` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// File type.
    pub kind: FileType,
    /// Permission bits, including set-id and sticky (`mode & 0o7777`).
    pub perm: u16,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch (FAT: local time read as UTC).
    pub mtime: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_nsec: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard links; `None` when the file system library does not report it.
    pub nlink: Option<u32>,
    /// Inode number, or the FAT first cluster; `None` when not reported.
    pub ino: Option<u64>,
}

impl Metadata {
    /// `ls -l` mode string, e.g. `drwxr-xr-x`.
    pub fn mode_string(&self) -> String {
        let p = self.perm;
        let mut s = String::with_capacity(10);
        s.push(self.kind.letter());
        for (shift, special, lower, upper) in [(6, 0o4000, 's', 'S'), (3, 0o2000, 's', 'S'), (0, 0o1000, 't', 'T')] {
            let bits = (p >> shift) & 7;
            s.push(if bits & 4 != 0 { 'r' } else { '-' });
            s.push(if bits & 2 != 0 { 'w' } else { '-' });
            s.push(match (bits & 1 != 0, p & special != 0) {
                (true, true) => lower,
                (false, true) => upper,
                (true, false) => 'x',
                (false, false) => '-',
            });
        }
        s
    }
}

/// A resolved file: its (path-normalized) location and metadata.
///
/// `handle` is file-system specific (FFS: inode number; FAT: first cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Absolute path it was found by, normalized (no `.`, `..` or `//`).
    pub path: String,
    /// Metadata.
    pub meta: Metadata,
    /// File-system specific locator.
    pub handle: u64,
}

/// One directory entry (never `.` or `..`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Name within the directory.
    pub name: String,
    /// The entry itself (symlinks not followed).
    pub node: Node,
}

/// A readable file system.
pub trait FileSystem {
    /// Which file system this is.
    fn kind(&self) -> FsKind;
    /// Resolves an absolute path, following symlinks.
    fn lookup(&self, path: &str) -> Result<Node, FsError>;
    /// Resolves an absolute path without following a symlink in the last component.
    fn lookup_nofollow(&self, path: &str) -> Result<Node, FsError>;
    /// Reads file bytes at `offset`; returns how many (0 at end of file).
    ///
    /// Fills `buf` unless the file ends first.
    fn read_at(&self, node: &Node, offset: u64, buf: &mut [u8]) -> Result<usize, FsError>;
    /// Lists a directory (without `.` and `..`), in on-disk order.
    fn read_dir(&self, node: &Node) -> Result<Vec<DirEntry>, FsError>;
    /// A symlink's target.
    fn read_link(&self, node: &Node) -> Result<String, FsError>;
    /// The volume label, as GRUB's `search --label` matches it; `None` when unset.
    fn label(&self) -> Option<String>;
    /// The volume UUID in GRUB's textual form (ext: `1b4e28ba-2fa1-11d2-883f-0016d3cca427`,
    /// FAT: `ABCD-1234`, FFS: fs_id as 16 hex digits); `None` when the file
    /// system has none. Compare with [`uuid_matches`], as GRUB ignores case.
    fn uuid(&self) -> Option<String>;

    /// Metadata of a path's last component, symlinks not followed (`lstat`).
    fn stat(&self, path: &str) -> Result<Metadata, FsError> {
        Ok(self.lookup_nofollow(path)?.meta)
    }

    /// Reads a whole file (following symlinks), refusing files over `max` bytes.
    fn read_file(&self, path: &str, max: u64) -> Result<Vec<u8>, FsError> {
        let node = self.lookup(path)?;
        if node.meta.kind == FileType::Dir {
            return Err(FsError::IsADirectory);
        }
        let size = node.meta.size;
        if size > max {
            return Err(FsError::Unsupported(alloc::format!("file larger than {max} bytes")));
        }
        // Grown as data arrives, in chunks, never sized by the disk's word
        // alone: a corrupt size fails the read before it costs memory.
        let mut buf = Vec::new();
        while (buf.len() as u64) < size {
            let at = buf.len();
            let want = (size - at as u64).min(READ_FILE_CHUNK as u64) as usize;
            buf.resize(at + want, 0);
            let n = self.read_at(&node, at as u64, &mut buf[at..])?;
            buf.truncate(at + n);
            if n == 0 {
                break;
            }
        }
        Ok(buf)
    }
}

/// Whether a UUID typed by a user (`search --fs-uuid`, `root=UUID=`) names
/// `uuid`: GRUB compares them ignoring case (FAT's are upper case in blkid,
/// lower case in GRUB's own listing).
pub fn uuid_matches(uuid: &str, wanted: &str) -> bool {
    uuid.eq_ignore_ascii_case(wanted)
}

/// Probes `vol` and opens the file system on it.
pub fn mount<R: ReadAt + Clone + 'static>(vol: R) -> Result<Box<dyn FileSystem>, FsError> {
    match probe(&vol)? {
        Some(FsKind::Fat12 | FsKind::Fat16 | FsKind::Fat32) => Ok(Box::new(fat::FatFs::open(vol)?)),
        Some(FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4) => Ok(Box::new(ext::ExtFs::open(vol)?)),
        Some(FsKind::Ffs1 | FsKind::Ffs2) => Ok(Box::new(ffs::FfsFs::open(vol)?)),
        // A disk never probes as a server.
        Some(FsKind::Tftp | FsKind::Http) | None => Err(FsError::Unrecognized),
    }
}

/// Joins components into an absolute path.
pub fn join(parts: &[&str]) -> String {
    let mut s = String::new();
    for p in parts {
        s.push('/');
        s.push_str(p);
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
