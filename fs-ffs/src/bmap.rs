//! The block map: logical file blocks to fragment addresses through the
//! direct, single, double and triple indirect pointers, and the file read
//! path built on it.
//!
//! Reads are coalesced: consecutive logical blocks whose data is also
//! consecutive on the device become one device read, straight into the
//! caller's buffer, whatever indirect-block boundaries lie between them.
//! Indirect blocks are cached (one per level), so walking a file reads each
//! indirect block once.

use alloc::vec::Vec;

use crate::endian::Fields;
use crate::error::Error;
use crate::inode::Inode;
use crate::superblock::{Superblock, Version, NDADDR, NIADDR};
use crate::BlockRead;

/// One cached indirect block per level of indirection. Slot 0 holds blocks
/// whose entries point at data, slot 1 blocks pointing at slot-0 blocks,
/// slot 2 the top of a triple indirect tree.
#[derive(Default)]
pub(crate) struct IndirectCache {
    slots: [Slot; NIADDR],
}

#[derive(Default)]
struct Slot {
    /// Fragment address of the cached block; 0 (never a valid indirect
    /// block address) when the slot is empty.
    addr: u64,
    data: Vec<u8>,
}

/// Reads file data for one inode with a given cache.
pub(crate) struct Reader<'a, D: BlockRead + ?Sized> {
    pub sb: &'a Superblock,
    pub dev: &'a D,
    pub cache: &'a mut IndirectCache,
}

/// A pending device read: device offset, offset in the caller's buffer, length.
#[derive(Clone, Copy)]
struct Run {
    dev_off: u64,
    buf_off: usize,
    len: usize,
}

impl<D: BlockRead + ?Sized> Reader<'_, D> {
    /// Byte offset of `len` bytes at `in_block` bytes into the block or
    /// fragment at `ptr`, after checking they lie inside the file system and
    /// the device.
    fn data_offset(&self, ptr: i64, in_block: u64, len: u64) -> Result<u64, Error> {
        let ptr = u64::try_from(ptr).map_err(|_| Error::Corrupt("negative block pointer"))?;
        if ptr >= self.sb.size {
            return Err(Error::Corrupt("block pointer beyond the file system"));
        }
        let start = ptr
            .checked_mul(u64::from(self.sb.fsize))
            .and_then(|s| s.checked_add(in_block))
            .ok_or(Error::Corrupt("block pointer overflows"))?;
        let end = start
            .checked_add(len)
            .ok_or(Error::Corrupt("block pointer overflows"))?;
        if end > self.sb.size_bytes {
            return Err(Error::Corrupt("block extends beyond the file system"));
        }
        if end > self.dev.size() {
            return Err(Error::Corrupt(
                "block beyond the end of the device (truncated image?)",
            ));
        }
        Ok(start)
    }

    /// Entry `idx` of the indirect block at `ptr`, loading it into cache
    /// slot `depth` unless it is already there.
    fn indirect_entry(&mut self, depth: usize, ptr: i64, idx: u64) -> Result<i64, Error> {
        let bsize = self.sb.bsize as usize;
        let dev_off = self.data_offset(ptr, 0, bsize as u64)?;
        let addr = ptr as u64; // non-negative: checked by data_offset
        let slot = self
            .cache
            .slots
            .get_mut(depth)
            .ok_or(Error::Corrupt("indirection too deep"))?;
        if slot.addr != addr || slot.data.len() != bsize {
            slot.addr = 0;
            slot.data.resize(bsize, 0);
            self.dev.read_at(dev_off, &mut slot.data)?;
            slot.addr = addr;
        }
        let f = Fields::new(&slot.data, self.sb.order);
        // idx < nindir, so the byte offset is inside the block.
        let idx = usize::try_from(idx).map_err(|_| Error::Corrupt("indirect index overflows"))?;
        Ok(match self.sb.version {
            Version::Ufs1 => i64::from(f.i32(idx.saturating_mul(4))),
            Version::Ufs2 | Version::Ufs2Ea => f.i64(idx.saturating_mul(8)),
        })
    }

    /// Fragment address of logical block `lbn` of `inode`; 0 for a hole.
    pub(crate) fn bmap(&mut self, inode: &Inode, lbn: u64) -> Result<i64, Error> {
        if lbn < NDADDR as u64 {
            return Ok(inode.db.get(lbn as usize).copied().unwrap_or(0));
        }
        let n = u64::from(self.sb.nindir);
        let mut rem = lbn - NDADDR as u64;
        // Data blocks covered by one entry of the top block at this level.
        let mut per_entry = 1u64;
        for level in 0..NIADDR {
            let covered = per_entry.saturating_mul(n);
            if rem < covered {
                let mut ptr = inode.ib.get(level).copied().unwrap_or(0);
                let mut per = per_entry;
                for depth in (0..=level).rev() {
                    if ptr == 0 {
                        return Ok(0);
                    }
                    let idx = rem / per;
                    rem %= per;
                    ptr = self.indirect_entry(depth, ptr, idx)?;
                    per /= n.max(1);
                }
                return Ok(ptr);
            }
            rem -= covered;
            per_entry = covered;
        }
        Err(Error::Corrupt(
            "block number beyond the triple indirect range",
        ))
    }

    /// Reads file data at `offset` into `buf`; returns the bytes read, short
    /// only at end of file. Holes read as zeros.
    pub(crate) fn read(
        &mut self,
        inode: &Inode,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        let size = inode.meta.size;
        if size > self.sb.max_file_size {
            return Err(Error::Corrupt(
                "file size larger than the block map can address",
            ));
        }
        if offset >= size || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(size - offset).map_or(buf.len(), |left| left.min(buf.len()));
        let bsize = u64::from(self.sb.bsize);
        let mut pos = 0usize;
        let mut run: Option<Run> = None;
        while pos < want {
            let file_off = offset + pos as u64; // < size, no overflow
            let lbn = file_off >> self.sb.bshift;
            let in_block = file_off & (bsize - 1);
            // At most one block, so the cast cannot truncate.
            let chunk = (bsize - in_block).min((want - pos) as u64) as usize;
            let ptr = self.bmap(inode, lbn)?;
            if ptr == 0 {
                if let Some(r) = run.take() {
                    self.flush(buf, r)?;
                }
                buf.get_mut(pos..pos + chunk)
                    .ok_or(Error::Corrupt("read range"))?
                    .fill(0);
            } else {
                let dev_off = self.data_offset(ptr, in_block, chunk as u64)?;
                match run.as_mut() {
                    Some(r) if r.dev_off.checked_add(r.len as u64) == Some(dev_off) => {
                        r.len += chunk
                    }
                    _ => {
                        if let Some(r) = run.take() {
                            self.flush(buf, r)?;
                        }
                        run = Some(Run {
                            dev_off,
                            buf_off: pos,
                            len: chunk,
                        });
                    }
                }
            }
            pos += chunk;
        }
        if let Some(r) = run {
            self.flush(buf, r)?;
        }
        Ok(want)
    }

    /// Issues one device read for a run, straight into the caller's buffer.
    fn flush(&self, buf: &mut [u8], r: Run) -> Result<(), Error> {
        let dst = r
            .buf_off
            .checked_add(r.len)
            .and_then(|end| buf.get_mut(r.buf_off..end))
            .ok_or(Error::Corrupt("read range"))?;
        self.dev.read_at(r.dev_off, dst)?;
        Ok(())
    }
}
