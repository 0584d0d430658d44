//! FFS (UFS1, UFS2 and NetBSD's UFS2EA, either byte order) through the
//! `fs-ffs` crate.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::Cell;

use fs_ffs::{BlockRead, Ffs, Ino, IoError, Version};

use super::{DirEntry, FileSystem, FileType, FsError, FsKind, ListingBudget, Metadata, Node};
use crate::disk::{DiskError, ReadAt};

/// fs-ffs's device: our volume, remembering the last disk error for the message.
struct Dev<R> {
    vol: R,
    last: Rc<Cell<Option<DiskError>>>,
}

impl<R: ReadAt> BlockRead for Dev<R> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.vol.read_at(offset, buf).map_err(|e| {
            self.last.set(Some(e));
            IoError
        })
    }

    fn size(&self) -> u64 {
        self.vol.size()
    }
}

/// A mounted FFS volume.
pub struct FfsFs<R: ReadAt> {
    fs: Ffs<Dev<R>>,
    kind: FsKind,
    last_error: Rc<Cell<Option<DiskError>>>,
    /// The volume's size in bytes: no file read is larger (see [`super::check_file_size`]).
    vol_size: u64,
}

fn file_type(t: fs_ffs::FileType) -> FileType {
    use fs_ffs::FileType as T;
    match t {
        T::Regular => FileType::File,
        T::Directory => FileType::Dir,
        T::Symlink => FileType::Symlink,
        T::CharDevice => FileType::CharDevice,
        T::BlockDevice => FileType::BlockDevice,
        T::Fifo => FileType::Fifo,
        T::Socket => FileType::Socket,
        _ => FileType::Other,
    }
}

fn metadata(m: &fs_ffs::Metadata) -> Metadata {
    Metadata {
        kind: file_type(m.file_type),
        perm: m.permissions(),
        size: m.size,
        mtime: m.mtime.secs,
        mtime_nsec: m.mtime.nanos,
        uid: m.uid,
        gid: m.gid,
        nlink: Some(u32::from(m.nlink)),
        ino: Some(u64::from(m.ino.0)),
    }
}

impl<R: ReadAt> FfsFs<R> {
    /// Mounts the FFS volume `vol`.
    pub fn open(vol: R) -> Result<Self, FsError> {
        let last_error = Rc::new(Cell::new(None));
        let vol_size = vol.size();
        let dev = Dev { vol, last: last_error.clone() };
        let fs = Ffs::open(dev).map_err(|e| match (e, last_error.get()) {
            (fs_ffs::Error::Io(_), Some(d)) => FsError::Disk(d),
            (e, _) => FsError::Corrupt(format!("FFS: {e}")),
        })?;
        let kind = match fs.info().version {
            Version::Ufs1 => FsKind::Ffs1,
            _ => FsKind::Ffs2,
        };
        Ok(FfsFs { fs, kind, last_error, vol_size })
    }

    /// Superblock facts (version, block and fragment size, ...).
    pub fn info(&self) -> fs_ffs::FsInfo {
        self.fs.info()
    }

    fn err(&self, e: fs_ffs::Error) -> FsError {
        use fs_ffs::Error as E;
        match e {
            E::Io(_) => match self.last_error.get() {
                Some(d) => FsError::Disk(d),
                None => FsError::Corrupt("FFS: device read error".to_string()),
            },
            E::NotFound => FsError::NotFound,
            E::NotADirectory => FsError::NotADirectory,
            E::NotASymlink => FsError::NotASymlink,
            E::SymlinkLoop => FsError::SymlinkLoop,
            E::NameTooLong => FsError::BadPath(super::PathProblem::LinksTooLong),
            other => FsError::Corrupt(format!("FFS: {other}")),
        }
    }

    fn node(&self, path: String, ino: Ino) -> Result<Node, FsError> {
        let m = self.fs.metadata(ino).map_err(|e| self.err(e))?;
        Ok(Node { path, meta: metadata(&m), handle: u64::from(ino.0) })
    }

    fn ino(node: &Node) -> Result<Ino, FsError> {
        u32::try_from(node.handle).map(Ino).map_err(|_| FsError::Corrupt("FFS: bad inode handle".to_string()))
    }
}

impl<R: ReadAt> FileSystem for FfsFs<R> {
    fn kind(&self) -> FsKind {
        self.kind
    }

    /// fs_volname, as GRUB's ufs.c reads it (makefs `-o label=`; UFS2 sets it).
    fn label(&self) -> Option<String> {
        let name = self.fs.info().volume_name;
        (!name.is_empty()).then(|| String::from_utf8_lossy(&name).to_string())
    }

    /// GRUB's ufs.c form: `fs_id[0]` and `fs_id[1]` as `%08x%08x`; none when both are 0.
    fn uuid(&self) -> Option<String> {
        let [hi, lo] = self.fs.info().id;
        (hi != 0 || lo != 0).then(|| format!("{hi:08x}{lo:08x}"))
    }

    fn lookup(&self, path: &str) -> Result<Node, FsError> {
        super::check_path(path)?;
        let ino = self.fs.lookup(path).map_err(|e| self.err(e))?;
        self.node(path.to_string(), ino)
    }

    fn lookup_nofollow(&self, path: &str) -> Result<Node, FsError> {
        super::check_path(path)?;
        let ino = self.fs.lookup_nofollow(path).map_err(|e| self.err(e))?;
        self.node(path.to_string(), ino)
    }

    fn read_at(&self, node: &Node, offset: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        if node.meta.kind == FileType::Dir {
            return Err(FsError::IsADirectory);
        }
        // fs-ffs reads sparse files of any size; a boot loader takes one
        // larger than its volume for a corrupt size.
        super::check_file_size("FFS", &node.path, node.meta.size, self.vol_size)?;
        self.fs.read_at(Self::ino(node)?, offset, buf).map_err(|e| self.err(e))
    }

    fn read_dir(&self, node: &Node) -> Result<Vec<DirEntry>, FsError> {
        let entries = self.fs.read_dir(Self::ino(node)?).map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(entries.len());
        let mut budget = ListingBudget::default();
        for e in entries {
            if e.name == b"." || e.name == b".." || e.file_type == fs_ffs::FileType::Whiteout {
                continue;
            }
            let name = String::from_utf8_lossy(&e.name).to_string();
            let mut path = String::from(node.path.trim_end_matches('/'));
            path.push('/');
            path.push_str(&name);
            budget.take(&name, &path)?;
            out.push(DirEntry { name, node: self.node(path, e.ino)? });
        }
        Ok(out)
    }

    fn read_link(&self, node: &Node) -> Result<String, FsError> {
        let t = self.fs.read_link(Self::ino(node)?).map_err(|e| self.err(e))?;
        Ok(String::from_utf8_lossy(&t).to_string())
    }
}
