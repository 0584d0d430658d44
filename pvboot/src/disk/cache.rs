//! An LRU cache of fixed-size blocks for file-system metadata, shared by every
//! partition and file system on a device.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use super::{check_range, BlockDevice, DiskError, ReadAt};

/// Default cache unit: one page, the natural size of metadata reads.
pub const DEFAULT_BLOCK: usize = 4096;
/// Default number of cached blocks (2 MiB with 4 KiB blocks).
pub const DEFAULT_BLOCKS: usize = 512;
/// Default size from which reads bypass the cache (bulk file data).
pub const DEFAULT_BYPASS: usize = 64 * 1024;

/// Counters for benchmarks and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// `read_sectors` calls issued to the device.
    pub device_reads: u64,
    /// Bytes transferred from the device.
    pub device_bytes: u64,
    /// Blocks served from the cache.
    pub hits: u64,
    /// Blocks loaded into the cache.
    pub misses: u64,
    /// Reads (or their aligned middle) passed straight to the device.
    pub bypassed: u64,
}

struct Slot {
    block: u64,
    stamp: u64,
}

struct Lru {
    map: BTreeMap<u64, usize>,
    slots: Vec<Slot>,
    data: Vec<u8>,
    tick: u64,
}

/// A bounded LRU block cache in front of a [`BlockDevice`], exposed as [`ReadAt`].
///
/// Small reads (metadata) go through `capacity` cached blocks of `block` bytes;
/// reads of at least `bypass` bytes go straight from the device into the
/// caller's buffer, except for unaligned partial sectors at either end, so bulk
/// file data neither costs a copy nor evicts metadata.
pub struct Cache<D> {
    dev: D,
    sector: usize,
    block: usize,
    capacity: usize,
    bypass: usize,
    size: u64,
    lru: RefCell<Lru>,
    stats: Cell<CacheStats>,
}

impl<D: BlockDevice> Cache<D> {
    /// A cache with the default geometry (2 MiB of 4 KiB blocks, 64 KiB bypass).
    pub fn new(dev: D) -> Result<Self, DiskError> {
        Self::with_geometry(dev, DEFAULT_BLOCK, DEFAULT_BLOCKS, DEFAULT_BYPASS)
    }

    /// A cache of `capacity` blocks of `block` bytes (rounded up to a whole
    /// number of sectors); reads of `bypass` bytes or more skip it.
    pub fn with_geometry(
        dev: D,
        block: usize,
        capacity: usize,
        bypass: usize,
    ) -> Result<Self, DiskError> {
        let ss = dev.sector_size();
        if !ss.is_power_of_two() || !(512..=65536).contains(&ss) {
            return Err(DiskError::BadSectorSize(ss));
        }
        let sector = ss as usize;
        let block = block.max(sector).next_power_of_two().min(1 << 20);
        let capacity = capacity.clamp(1, 1 << 16);
        let size = dev.sector_count().saturating_mul(u64::from(ss));
        Ok(Cache {
            dev,
            sector,
            block,
            capacity,
            bypass: bypass.max(block),
            size,
            lru: RefCell::new(Lru {
                map: BTreeMap::new(),
                slots: Vec::new(),
                data: Vec::new(),
                tick: 0,
            }),
            stats: Cell::new(CacheStats::default()),
        })
    }

    /// The device under the cache.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// Device sector size in bytes.
    pub fn sector_size(&self) -> u32 {
        self.sector as u32
    }

    /// Counters since creation or the last [`Cache::reset_stats`].
    pub fn stats(&self) -> CacheStats {
        self.stats.get()
    }

    /// Zeroes the counters.
    pub fn reset_stats(&self) {
        self.stats.set(CacheStats::default());
    }

    fn bump(&self, f: impl FnOnce(&mut CacheStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    fn dev_read(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        self.bump(|s| {
            s.device_reads += 1;
            s.device_bytes += buf.len() as u64;
        });
        self.dev.read_sectors(offset / self.sector as u64, buf)
    }

    /// Reads through the cache; `offset..offset+buf.len()` is in range.
    fn read_cached(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        let bs = self.block as u64;
        let end = offset + buf.len() as u64;
        let mut pos = offset;
        let mut lru = self.lru.borrow_mut();
        while pos < end {
            let blk = pos / bs;
            let in_blk = (pos % bs) as usize;
            let n = ((bs - in_blk as u64).min(end - pos)) as usize;
            let out = &mut buf[(pos - offset) as usize..][..n];
            if let Some(&slot) = lru.map.get(&blk) {
                lru.tick += 1;
                let t = lru.tick;
                lru.slots[slot].stamp = t;
                out.copy_from_slice(&lru.data[slot * self.block + in_blk..][..n]);
                self.bump(|s| s.hits += 1);
                pos += n as u64;
                continue;
            }
            // Load the run of consecutive missing blocks this read still needs
            // with one device request.
            let last_blk = (end - 1) / bs;
            let mut run_end = blk + 1;
            while run_end <= last_blk && !lru.map.contains_key(&run_end) {
                run_end += 1;
            }
            let run_start_byte = blk * bs;
            let run_end_byte = (run_end * bs).min(self.size);
            let mut scratch = vec![0u8; (run_end_byte - run_start_byte) as usize];
            // The device's last block may be short: read whole sectors only.
            let whole = scratch.len() / self.sector * self.sector;
            self.dev_read(run_start_byte, &mut scratch[..whole])?;
            for b in blk..run_end {
                let from = ((b - blk) * bs) as usize;
                let chunk = &scratch[from..scratch.len().min(from + self.block)];
                self.insert(&mut lru, b, chunk);
            }
            // Copy this read's part of the run straight from the scratch buffer.
            let copy_end = end.min(run_end_byte);
            let part = &scratch[(pos - run_start_byte) as usize..(copy_end - run_start_byte) as usize];
            buf[(pos - offset) as usize..][..part.len()].copy_from_slice(part);
            pos = copy_end;
        }
        Ok(())
    }

    fn insert(&self, lru: &mut Lru, blk: u64, chunk: &[u8]) {
        self.bump(|s| s.misses += 1);
        lru.tick += 1;
        let tick = lru.tick;
        let slot = if lru.slots.len() < self.capacity {
            lru.slots.push(Slot { block: blk, stamp: tick });
            lru.data.resize(lru.slots.len() * self.block, 0);
            lru.slots.len() - 1
        } else {
            // Linear scan: evictions cost far less than the device read before them.
            let mut victim = 0;
            for (i, s) in lru.slots.iter().enumerate() {
                if s.stamp < lru.slots[victim].stamp {
                    victim = i;
                }
            }
            let old = lru.slots[victim].block;
            lru.map.remove(&old);
            lru.slots[victim] = Slot { block: blk, stamp: tick };
            victim
        };
        lru.map.insert(blk, slot);
        let dst = &mut lru.data[slot * self.block..][..self.block];
        dst[..chunk.len()].copy_from_slice(chunk);
        dst[chunk.len()..].fill(0);
    }
}

impl<D: BlockDevice> ReadAt for Cache<D> {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        check_range(offset, buf.len(), self.size)?;
        if buf.is_empty() {
            return Ok(());
        }
        if buf.len() < self.bypass {
            return self.read_cached(offset, buf);
        }
        // Bulk data: the sector-aligned middle goes straight into `buf`.
        let ss = self.sector as u64;
        let end = offset + buf.len() as u64;
        let mid_start = offset.div_ceil(ss) * ss;
        let mid_end = end / ss * ss;
        if mid_end <= mid_start {
            return self.read_cached(offset, buf);
        }
        let head = (mid_start - offset) as usize;
        let mid = (mid_end - mid_start) as usize;
        let (head_buf, rest) = buf.split_at_mut(head);
        let (mid_buf, tail_buf) = rest.split_at_mut(mid);
        if !head_buf.is_empty() {
            self.read_cached(offset, head_buf)?;
        }
        self.bump(|s| s.bypassed += 1);
        self.dev_read(mid_start, mid_buf)?;
        if !tail_buf.is_empty() {
            self.read_cached(mid_end, tail_buf)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDisk;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 511) as u8).collect()
    }

    #[test]
    fn reads_match_and_bypass() {
        let data = pattern(1 << 20);
        let c = Cache::with_geometry(MemDisk::new(data.clone()), 4096, 4, 16384).unwrap();
        for &(off, len) in &[(0u64, 1usize), (4095, 2), (100, 9000), (7, 70000), (1 << 19, 65536)] {
            let mut b = vec![0; len];
            c.read_at(off, &mut b).unwrap();
            assert_eq!(&b[..], &data[off as usize..][..len]);
        }
        assert!(c.stats().bypassed >= 2);
        let mut b = [0u8; 2];
        assert!(c.read_at((1 << 20) - 1, &mut b).is_err());
        assert!(c.read_at(u64::MAX, &mut b).is_err());
    }

    #[test]
    fn lru_keeps_recent_blocks() {
        let c = Cache::with_geometry(MemDisk::new(pattern(64 * 4096)), 4096, 2, 1 << 20).unwrap();
        let mut b = [0u8; 8];
        c.read_at(0, &mut b).unwrap();
        c.read_at(4096, &mut b).unwrap();
        c.read_at(0, &mut b).unwrap(); // block 0 now most recent
        c.read_at(8192, &mut b).unwrap(); // evicts block 1
        let before = c.stats().device_reads;
        c.read_at(0, &mut b).unwrap();
        assert_eq!(c.stats().device_reads, before);
        c.read_at(4096, &mut b).unwrap();
        assert_eq!(c.stats().device_reads, before + 1);
    }

    #[test]
    fn short_last_block() {
        let data = pattern(4096 + 1024);
        let c = Cache::new(MemDisk::new(data.clone())).unwrap();
        let mut b = vec![0; 1000];
        c.read_at(4096 - 200, &mut b).unwrap();
        assert_eq!(&b[..], &data[4096 - 200..][..1000]);
    }
}
