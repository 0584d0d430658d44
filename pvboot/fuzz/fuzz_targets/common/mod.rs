//! Shared pieces of the pvboot fuzz targets: a device over the input and a
//! bounded walk that uses every read-only file-system operation.
#![allow(dead_code)]

pub mod heap;
pub mod sparse;
pub mod targets;
pub mod watchdog;

use pvboot::disk::{BlockDevice, DiskError};
use pvboot::fs::{FileSystem, FileType};

/// A [`sparse::SparseImage`] as a 512-byte-sector device: the file-system
/// targets' disk, small in memory however large a device it describes.
pub struct SparseDisk(pub sparse::SparseImage);

impl SparseDisk {
    /// The device an input describes.
    pub fn new(input: &[u8]) -> Self {
        SparseDisk(sparse::SparseImage::parse(input))
    }
}

impl BlockDevice for SparseDisk {
    fn sector_size(&self) -> u32 {
        512
    }

    fn sector_count(&self) -> u64 {
        self.0.size() / 512
    }

    fn read_sectors(&self, lba: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        match lba.checked_mul(512) {
            Some(off) if self.0.read(off, buf) => Ok(()),
            _ => Err(DiskError::Io { lba, errno: 0 }),
        }
    }
}

/// The input as 512-byte sectors, followed by zeros up to `min_size`: file
/// system seeds have their empty tails cut off so mutations land on metadata.
pub struct ZeroExtended<'a> {
    pub data: &'a [u8],
    pub min_size: u64,
}

impl BlockDevice for ZeroExtended<'_> {
    fn sector_size(&self) -> u32 {
        512
    }

    fn sector_count(&self) -> u64 {
        (self.data.len() as u64).max(self.min_size).div_ceil(512)
    }

    fn read_sectors(&self, lba: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        let io = DiskError::Io { lba, errno: 0 };
        let off = lba.checked_mul(512).ok_or(io)?;
        let end = off.checked_add(buf.len() as u64).ok_or(io)?;
        if end > self.sector_count() * 512 {
            return Err(io);
        }
        buf.fill(0);
        let len = self.data.len() as u64;
        if off < len {
            let n = (len - off).min(buf.len() as u64) as usize;
            buf[..n].copy_from_slice(&self.data[off as usize..off as usize + n]);
        }
        Ok(())
    }
}

const MAX_NODES: usize = 200;
const MAX_DEPTH: usize = 8;
const MAX_ENTRIES_PER_DIR: usize = 64;
/// Bytes read per file, and per input: enough to cross several extents or
/// cluster runs, small enough to keep each input fast.
const MAX_FILE_BYTES: u64 = 128 << 10;
const MAX_TOTAL_BYTES: u64 = 512 << 10;

/// Walks the tree from `/` within fixed bounds, reading files and links and
/// checking that lookups agree with the listing.
pub fn walk(fs: &dyn FileSystem) {
    let _ = fs.kind();
    let mut buf = vec![0u8; 64 * 1024];
    let mut stack = vec![("/".to_string(), 0usize)];
    let mut visited = 0;
    let mut total = 0;
    while let Some((path, depth)) = stack.pop() {
        visited += 1;
        if visited > MAX_NODES {
            return;
        }
        let node = match fs.lookup_nofollow(&path) {
            Ok(n) => n,
            Err(e) => {
                let _ = e.to_string();
                continue;
            }
        };
        let _ = node.meta.mode_string();
        // `stat` is `lookup_nofollow` again: once per level is enough.
        if depth <= 1 {
            let _ = fs.stat(&path);
        }
        match node.meta.kind {
            FileType::Dir => {
                let Ok(entries) = fs.read_dir(&node) else { continue };
                if depth >= MAX_DEPTH {
                    continue;
                }
                for e in entries.into_iter().take(MAX_ENTRIES_PER_DIR) {
                    let child = if path == "/" { format!("/{}", e.name) } else { format!("{path}/{}", e.name) };
                    stack.push((child, depth + 1));
                }
            }
            FileType::Symlink => {
                let _ = fs.read_link(&node);
                if let Ok(target) = fs.lookup(&path) {
                    let _ = target.meta.size;
                }
            }
            _ => {
                let mut off = 0;
                while off < node.meta.size.min(MAX_FILE_BYTES) && total < MAX_TOTAL_BYTES {
                    match fs.read_at(&node, off, &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            off += n as u64;
                            total += n as u64;
                        }
                    }
                }
                // A read at an odd offset, and one past the end.
                let odd = (node.meta.size / 3 + 1).min(MAX_FILE_BYTES + 1);
                let _ = fs.read_at(&node, odd, &mut buf[..777]);
                let _ = fs.read_at(&node, node.meta.size.saturating_add(10), &mut buf[..10]);
            }
        }
    }
}

/// Decodes `data` as format `c` with both APIs under a small limit: neither may panic or write
/// past the limit, and where both succeed they must agree byte for byte.
pub fn decompress_both(c: pvboot::compress::Compression, data: &[u8]) {
    use pvboot::compress::{decompress, decompress_into, detect};
    const LIMIT: usize = 1 << 20;
    let _ = detect(data);
    let mut streamed = Vec::new();
    let r = decompress(c, data, &mut streamed, LIMIT as u64);
    assert!(streamed.len() <= LIMIT, "{c}: wrote past max_out");
    if let Err(e) = &r {
        let line = e.to_string();
        assert!(!line.contains('\n') && line.contains(c.name()) || line.contains("limit"), "{c}: error line {line:?}");
    }
    let mut buf = vec![0u8; LIMIT];
    let r2 = decompress_into(c, data, &mut buf);
    match (r, r2) {
        (Ok(n), Ok(m)) => {
            assert_eq!(n as usize, m, "{c}: lengths differ");
            assert!(streamed == buf[..m], "{c}: outputs differ");
        }
        (Ok(n), Err(e)) => panic!("{c}: streamed {n} bytes but decompress_into failed: {e}"),
        (Err(e), Ok(m)) => panic!("{c}: decompress_into gave {m} bytes but streaming failed: {e}"),
        (Err(_), Err(_)) => {}
    }
}
