//! Opens the input as an FFS image and uses every read-only operation on
//! whatever it finds: a bounded walk of the tree, file and link reads, and
//! path lookups through the names found.
//!
//! The input is a sparse image (pvboot/fuzz's common/sparse.rs): a device of
//! up to 1 GiB whose superblock, cylinder groups, inodes and directories the
//! input supplies, the rest zeros. Runs under pvboot's 64 MiB heap
//! (common/heap.rs there), since pvboot reads FFS through this crate.
#![no_main]

#[path = "../../../pvboot/fuzz/fuzz_targets/common/heap.rs"]
mod heap;
#[path = "../../../pvboot/fuzz/fuzz_targets/common/sparse.rs"]
mod sparse;

use fs_ffs::{BlockRead, Ffs, FileType, Ino, IoError};
use libfuzzer_sys::fuzz_target;
use sparse::SparseImage;

/// The decoded input as fs-ffs's device.
struct Sparse(SparseImage);

impl BlockRead for Sparse {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        if self.0.read(offset, buf) {
            Ok(())
        } else {
            Err(IoError)
        }
    }

    fn size(&self) -> u64 {
        self.0.size()
    }
}

/// Bounds that keep one input fast whatever the image claims.
const MAX_INODES: usize = 200;
const MAX_DEPTH: u32 = 8;
const MAX_ENTRIES_PER_DIR: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Ok(fs) = Ffs::open(Sparse(SparseImage::parse(data))) else {
        return;
    };
    let info = fs.info();
    let _ = format!("{info:?}");
    let mut buf = vec![0u8; 128 * 1024];
    let mut stack: Vec<(Ino, u32, Vec<u8>)> = vec![(fs.root(), 0, b"/".to_vec())];
    let mut visited = 0;
    while let Some((ino, depth, path)) = stack.pop() {
        visited += 1;
        if visited > MAX_INODES {
            break;
        }
        let meta = match fs.metadata(ino) {
            Ok(m) => m,
            Err(e) => {
                let _ = e.to_string();
                continue;
            }
        };
        // Path lookups must agree with the walk, or fail cleanly.
        if let Ok(found) = fs.lookup_bytes(&path, false) {
            let _ = fs.metadata(found);
        }
        let _ = fs.lookup_bytes(&path, true);
        match meta.file_type {
            FileType::Directory => {
                let Ok(entries) = fs.read_dir(ino) else {
                    continue;
                };
                for e in entries.into_iter().take(MAX_ENTRIES_PER_DIR) {
                    if depth < MAX_DEPTH && e.name != b"." && e.name != b".." {
                        let mut child = path.clone();
                        if child.last() != Some(&b'/') {
                            child.push(b'/');
                        }
                        child.extend_from_slice(&e.name);
                        stack.push((e.ino, depth + 1, child));
                    }
                }
            }
            FileType::Symlink => {
                let _ = fs.read_link(ino);
            }
            _ => {
                // The start, a piece in the middle, and past the end.
                let _ = fs.read_at(ino, 0, &mut buf);
                let _ = fs.read_at(ino, meta.size / 2, &mut buf[..5000]);
                let _ = fs.read_at(ino, meta.size.saturating_sub(3), &mut buf[..4096]);
                let _ = fs.read_at(ino, u64::MAX - 10, &mut buf[..100]);
            }
        }
    }
});
