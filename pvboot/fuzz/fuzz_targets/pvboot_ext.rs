//! The ext2/3/4 adapter (ext4-view) on arbitrary images: mount, then a bounded walk.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use pvboot::disk::{Cache, MemDisk};
use pvboot::fs::ext::ExtFs;

fuzz_target!(|data: &[u8]| {
    // ext4-view wants an owned ('static) reader: copy the input, zero-extended.
    let mut img = data.to_vec();
    img.resize(img.len().max(4 << 20).next_multiple_of(512), 0);
    let Ok(cache) = Cache::new(MemDisk::new(img)) else { return };
    if let Ok(fs) = ExtFs::open(Rc::new(cache)) {
        common::walk(&fs);
    }
});
