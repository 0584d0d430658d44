//! Symbolic links: fast ones keep the target in the inode's block-pointer
//! area, slow ones in a data block like a file.

use alloc::vec;
use alloc::vec::Vec;

use crate::error::Error;
use crate::inode::{FileType, Ino, Inode};
use crate::{BlockRead, Ffs, MAX_PATH_LEN};

/// Target of a fast symlink (the caller has checked it is one).
pub(crate) fn fast_target(inode: &Inode) -> &[u8] {
    let len =
        usize::try_from(inode.meta.size).map_or(inode.inline_len, |s| s.min(inode.inline_len));
    inode.inline.get(..len).unwrap_or_default()
}

impl<D: BlockRead> Ffs<D> {
    /// Target of a symbolic link, as stored (not resolved).
    pub fn read_link(&self, ino: Ino) -> Result<Vec<u8>, Error> {
        let inode = self.inode(ino)?;
        self.link_target(&inode)
    }

    /// Target of a decoded symlink inode.
    pub(crate) fn link_target(&self, inode: &Inode) -> Result<Vec<u8>, Error> {
        if inode.meta.file_type != FileType::Symlink {
            return Err(Error::NotASymlink);
        }
        if inode.is_fast_symlink(&self.sb) {
            return Ok(fast_target(inode).to_vec());
        }
        // Bounds the allocation: no BSD creates longer targets.
        let size = usize::try_from(inode.meta.size)
            .ok()
            .filter(|&s| s <= MAX_PATH_LEN)
            .ok_or(Error::NameTooLong)?;
        let mut target = vec![0u8; size];
        let n = self.read_inode_data(inode, 0, &mut target)?;
        target.truncate(n);
        Ok(target)
    }
}
