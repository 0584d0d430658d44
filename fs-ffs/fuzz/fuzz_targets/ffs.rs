//! Opens the input as an FFS image and uses every read-only operation on
//! whatever it finds: a bounded walk of the tree, file and link reads, and
//! path lookups through the names found.
#![no_main]

use fs_ffs::{BlockRead, Ffs, FileType, Ino, IoError};
use libfuzzer_sys::fuzz_target;

/// The input, followed by zeros up to at least 4 MiB: seeds are images with
/// their empty tails cut off, so mutations land on metadata.
struct ZeroExtended<'a>(&'a [u8]);

impl BlockRead for ZeroExtended<'_> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        let end = offset.checked_add(buf.len() as u64).ok_or(IoError)?;
        if end > self.size() {
            return Err(IoError);
        }
        buf.fill(0);
        let data_len = self.0.len() as u64;
        if offset < data_len {
            let n = (data_len - offset).min(buf.len() as u64) as usize;
            buf[..n].copy_from_slice(&self.0[offset as usize..offset as usize + n]);
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        (self.0.len() as u64).max(4 << 20)
    }
}

/// Bounds that keep one input fast whatever the image claims.
const MAX_INODES: usize = 200;
const MAX_DEPTH: u32 = 8;
const MAX_ENTRIES_PER_DIR: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Ok(fs) = Ffs::open(ZeroExtended(data)) else {
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
