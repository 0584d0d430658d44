//! The whole pipeline: partition table, default volume choice, probe, mount
//! and a bounded walk, as `xenolith fstest` and the guest do it.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use pvboot::disk::{Cache, MemDisk};

fuzz_target!(|data: &[u8]| {
    let mut img = data.to_vec();
    img.resize(img.len().max(1 << 20).next_multiple_of(512), 0);
    let Ok(cache) = Cache::new(MemDisk::new(img)) else { return };
    let disk = Rc::new(cache);
    let _ = pvboot::fs::probe(&disk);
    if let Ok(v) = pvboot::volume::open(disk, 512, None) {
        common::walk(&*v.fs);
    }
});
