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

use super::{join, DirEntry, FileSystem, FileType, FsError, FsKind, Metadata, Node};
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
        Ext4Error::NotAbsolute | Ext4Error::MalformedPath | Ext4Error::PathTooLong => FsError::BadPath,
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

/// A mounted ext2/3/4 volume.
pub struct ExtFs {
    fs: Ext4,
    kind: FsKind,
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
        let fs = Ext4::load(Box::new(Reader(vol))).map_err(map_err)?;
        Ok(ExtFs { fs, kind, open: RefCell::new(None) })
    }

    fn path(path: &str) -> Result<String, FsError> {
        // ext4-view resolves `..` itself (through symlinks correctly), so
        // only make the path absolute and drop empty components.
        if path.len() > super::MAX_PATH || path.contains('\0') {
            return Err(FsError::BadPath);
        }
        let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
        Ok(join(&parts))
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
        let p = Self::path(path)?;
        let m = self.fs.metadata(p.as_str()).map_err(map_err)?;
        Ok(Node { path: p, meta: metadata(&m), handle: 0 })
    }

    fn lookup_nofollow(&self, path: &str) -> Result<Node, FsError> {
        let p = Self::path(path)?;
        let m = self.fs.symlink_metadata(p.as_str()).map_err(map_err)?;
        Ok(Node { path: p, meta: metadata(&m), handle: 0 })
    }

    fn read_at(&self, node: &Node, offset: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        if node.meta.kind == FileType::Dir {
            return Err(FsError::IsADirectory);
        }
        let mut open = self.open.borrow_mut();
        let reuse = matches!(&*open, Some((p, f)) if *p == node.path && f.position() == offset);
        if !reuse {
            let mut f = self.fs.open(node.path.as_str()).map_err(map_err)?;
            f.seek_to(offset).map_err(map_err)?;
            *open = Some((node.path.clone(), f));
        }
        let Some((_, f)) = open.as_mut() else {
            return Ok(0);
        };
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
            out.push(DirEntry { name, node: Node { path, meta: metadata(&m), handle: 0 } });
        }
        Ok(out)
    }

    fn read_link(&self, node: &Node) -> Result<String, FsError> {
        let t = self.fs.read_link(node.path.as_str()).map_err(map_err)?;
        Ok(String::from_utf8_lossy(t.as_ref()).to_string())
    }
}
