//! The FAT reader on arbitrary images: mount, then a bounded walk of everything.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use pvboot::disk::Cache;
use pvboot::fs::fat::FatFs;

fuzz_target!(|data: &[u8]| {
    let dev = common::ZeroExtended { data, min_size: 4 << 20 };
    let Ok(cache) = Cache::new(dev) else { return };
    if let Ok(fs) = FatFs::open(&cache) {
        common::walk(&fs);
    }
});
