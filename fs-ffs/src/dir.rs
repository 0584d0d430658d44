//! Directory entries (`struct direct` in NetBSD's sys/ufs/ufs/dir.h).
//!
//! A directory is a sequence of DIRBLKSIZ (512-byte) chunks; each chunk is
//! a chain of variable-length records that never crosses the chunk end.
//! Two layouts exist: 4.4BSD's `d_type` byte followed by an 8-bit `d_namlen`,
//! and 4.2BSD's 16-bit `d_namlen` (whose high byte sits where `d_type` is
//! in the byte order the file system was written in).

use alloc::vec;
use alloc::vec::Vec;
use core::ops::ControlFlow;

use crate::endian::Fields;
use crate::error::Error;
use crate::inode::{FileType, Ino, Inode, WINO};
use crate::superblock::Superblock;
use crate::{BlockRead, Ffs};

/// Directory chunk size: records never cross it.
pub(crate) const DIRBLKSIZ: usize = 512;
/// Longest name a record can hold (FFS_MAXNAMLEN).
pub(crate) const MAXNAMLEN: usize = 255;
/// d_type of a whiteout entry.
const DT_WHT: u8 = 14;
/// Size of the fixed record header (ino, reclen, type/namlen).
const HEADER: usize = 8;
/// Smallest legal record: header plus a NUL, rounded to 4 (DIRSIZ of "").
const MIN_RECLEN: usize = 12;

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DirEntry {
    /// Inode the entry names.
    pub ino: Ino,
    /// File type, from the entry's `d_type` or, where the directory format
    /// has none, from the inode.
    pub file_type: FileType,
    /// Name as stored: arbitrary bytes except `/` and NUL, usually UTF-8.
    pub name: Vec<u8>,
}

impl DirEntry {
    /// The name as UTF-8, if it is valid UTF-8.
    pub fn name_str(&self) -> Option<&str> {
        core::str::from_utf8(&self.name).ok()
    }
}

/// A live record as found on disk.
pub(crate) struct RawEntry<'a> {
    pub ino: u32,
    /// DT_* code; 0 (DT_UNKNOWN) for the 4.2BSD format.
    pub dtype: u8,
    pub name: &'a [u8],
}

/// Calls `f` for each live record in `data` (directory bytes starting at a
/// DIRBLKSIZ boundary) until it breaks. Free records (inode 0) are skipped;
/// malformed records are errors, so a hostile directory can neither loop
/// nor make us read outside the chunk.
pub(crate) fn parse_entries<B>(
    sb: &Superblock,
    data: &[u8],
    f: &mut dyn FnMut(RawEntry<'_>) -> Result<ControlFlow<B>, Error>,
) -> Result<ControlFlow<B>, Error> {
    for chunk in data.chunks(DIRBLKSIZ) {
        let mut pos = 0usize;
        while pos < chunk.len() {
            let rec = chunk.get(pos..).unwrap_or(&[]);
            if rec.len() < MIN_RECLEN {
                return Err(Error::Corrupt("directory record truncated"));
            }
            let e = Fields::new(rec, sb.order);
            let ino = e.u32(0);
            let reclen = usize::from(e.u16(4));
            if reclen == 0 {
                return Err(Error::Corrupt("zero-length directory record"));
            }
            if reclen < MIN_RECLEN || reclen % 4 != 0 || reclen > rec.len() {
                return Err(Error::Corrupt("bad directory record length"));
            }
            if ino != 0 {
                let (dtype, namlen) = if sb.old_dirfmt {
                    (0, usize::from(e.u16(6)))
                } else {
                    (e.u8(6), usize::from(e.u8(7)))
                };
                if namlen == 0 || namlen > MAXNAMLEN || HEADER + namlen > reclen {
                    return Err(Error::Corrupt("bad directory entry name length"));
                }
                let name = rec
                    .get(HEADER..HEADER + namlen)
                    .ok_or(Error::Corrupt("bad directory entry name length"))?;
                if let ControlFlow::Break(b) = f(RawEntry { ino, dtype, name })? {
                    return Ok(ControlFlow::Break(b));
                }
            }
            pos += reclen;
        }
    }
    Ok(ControlFlow::Continue(()))
}

impl<D: BlockRead> Ffs<D> {
    /// Lists a directory, `.` and `..` included, in on-disk order.
    /// Whiteouts are left out.
    pub fn read_dir(&self, ino: Ino) -> Result<Vec<DirEntry>, Error> {
        let dir = self.inode(ino)?;
        let mut out = Vec::new();
        let inode_count = self.sb.inode_count();
        // The listing never stops early, so the flow result carries nothing.
        let _: ControlFlow<()> = self.for_each_entry(&dir, &mut |e| {
            if e.ino == WINO || e.dtype == DT_WHT {
                return Ok(ControlFlow::Continue(()));
            }
            if e.ino >= inode_count {
                return Err(Error::Corrupt("directory entry inode out of range"));
            }
            if out.len() >= crate::MAX_DIR_ENTRIES {
                return Err(Error::Corrupt("directory has more than 65536 entries"));
            }
            // 4.2BSD entries carry no type, and DT_UNKNOWN is allowed
            // anywhere: ask the inode, but a bad one must not hide the rest
            // of the listing.
            let file_type = match FileType::from_code(e.dtype) {
                FileType::Unknown => self
                    .inode(Ino(e.ino))
                    .map_or(FileType::Unknown, |i| i.meta.file_type),
                t => t,
            };
            out.push(DirEntry {
                ino: Ino(e.ino),
                file_type,
                name: e.name.to_vec(),
            });
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }

    /// Finds `name` in directory `dir`.
    pub(crate) fn lookup_in(&self, dir: &Inode, name: &[u8]) -> Result<Option<Ino>, Error> {
        let found = self.for_each_entry(dir, &mut |e| {
            if e.name == name && e.ino != WINO && e.dtype != DT_WHT {
                Ok(ControlFlow::Break(Ino(e.ino)))
            } else {
                Ok(ControlFlow::Continue(()))
            }
        })?;
        Ok(match found {
            ControlFlow::Break(ino) => Some(ino),
            ControlFlow::Continue(()) => None,
        })
    }

    /// Walks the records of a directory one file system block at a time.
    fn for_each_entry<B>(
        &self,
        dir: &Inode,
        f: &mut dyn FnMut(RawEntry<'_>) -> Result<ControlFlow<B>, Error>,
    ) -> Result<ControlFlow<B>, Error> {
        if !dir.meta.is_dir() {
            return Err(Error::NotADirectory);
        }
        let size = dir.meta.size;
        // Bounds the work and the listing by the image size.
        if size > self.dev.size() {
            return Err(Error::Corrupt("directory larger than the device"));
        }
        let mut block = vec![0u8; self.sb.bsize as usize];
        let mut off = 0u64;
        while off < size {
            let n = self.read_inode_data(dir, off, &mut block)?;
            if n == 0 {
                break;
            }
            let data = block.get(..n).unwrap_or_default();
            if let ControlFlow::Break(b) = parse_entries(&self.sb, data, f)? {
                return Ok(ControlFlow::Break(b));
            }
            off += n as u64;
        }
        Ok(ControlFlow::Continue(()))
    }
}
