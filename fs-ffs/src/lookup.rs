//! Path lookup, following symbolic links like namei(9).

use alloc::vec::Vec;

use crate::dir::MAXNAMLEN;
use crate::error::Error;
use crate::inode::{FileType, Ino};
use crate::{BlockRead, Ffs, MAX_PATH_LEN, MAX_SYMLINKS};

impl<D: BlockRead> Ffs<D> {
    /// Resolves a path from the root directory, following symlinks in every
    /// component including the last. Relative paths start at the root too;
    /// absolute symlink targets restart there.
    pub fn lookup(&self, path: &str) -> Result<Ino, Error> {
        self.resolve(path.as_bytes(), true)
    }

    /// Like [`lookup`](Self::lookup), but a symlink as the last component
    /// is returned itself (as `lstat` does).
    pub fn lookup_nofollow(&self, path: &str) -> Result<Ino, Error> {
        self.resolve(path.as_bytes(), false)
    }

    /// Resolves a path given as bytes (names need not be UTF-8).
    pub fn lookup_bytes(&self, path: &[u8], follow_last: bool) -> Result<Ino, Error> {
        self.resolve(path, follow_last)
    }

    fn resolve(&self, path: &[u8], follow_last: bool) -> Result<Ino, Error> {
        if path.len() > MAX_PATH_LEN {
            return Err(Error::NameTooLong);
        }
        // The path still to walk; a followed symlink replaces the part
        // walked so far with its target.
        let mut rest: Vec<u8> = path.to_vec();
        let mut pos = 0usize;
        let mut cur = Ino::ROOT;
        let mut links = 0u32;
        loop {
            while rest.get(pos) == Some(&b'/') {
                pos += 1;
            }
            let tail = rest.get(pos..).unwrap_or_default();
            if tail.is_empty() {
                return Ok(cur);
            }
            let comp_len = tail.iter().position(|&b| b == b'/').unwrap_or(tail.len());
            let comp = tail.get(..comp_len).unwrap_or_default();
            let after = tail.get(comp_len..).unwrap_or_default();
            // A trailing slash asks for a directory, so it follows links.
            let is_last = after.iter().all(|&b| b == b'/');
            let must_be_dir = !after.is_empty();

            let dir = self.inode(cur)?;
            if !dir.meta.is_dir() {
                return Err(Error::NotADirectory);
            }
            if comp.len() > MAXNAMLEN {
                return Err(Error::NameTooLong);
            }
            let next = if comp == b"." {
                cur
            } else {
                self.lookup_in(&dir, comp)?.ok_or(Error::NotFound)?
            };
            let inode = self.inode(next)?;
            if inode.meta.file_type == FileType::Symlink && (!is_last || follow_last || must_be_dir)
            {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Error::SymlinkLoop);
                }
                let target = self.link_target(&inode)?;
                if target.is_empty() {
                    return Err(Error::NotFound);
                }
                // `after` is empty or starts with '/', so it appends as is.
                let new_len = target.len().saturating_add(after.len());
                if new_len > MAX_PATH_LEN {
                    return Err(Error::NameTooLong);
                }
                let mut expanded = Vec::with_capacity(new_len);
                expanded.extend_from_slice(&target);
                expanded.extend_from_slice(after);
                if target.first() == Some(&b'/') {
                    cur = Ino::ROOT;
                }
                // Relative targets resolve from the directory holding the link.
                rest = expanded;
                pos = 0;
                continue;
            }
            if is_last && must_be_dir && !inode.meta.is_dir() {
                return Err(Error::NotADirectory);
            }
            cur = next;
            pos += comp_len;
        }
    }
}
