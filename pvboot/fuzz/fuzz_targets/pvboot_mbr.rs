//! MBR parsing and the extended-partition chain, then the whole table reader.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use pvboot::disk::Cache;
use pvboot::partition::{mbr, read_table};

fuzz_target!(|data: &[u8]| {
    let dev = common::ZeroExtended { data, min_size: 0 };
    let Ok(cache) = Cache::new(dev) else { return };
    if data.len() >= 512 {
        if let Some(p) = mbr::parse_sector(&data[..512]) {
            if let Ok(entries) = mbr::read(&cache, 512, &p) {
                for e in &entries {
                    let _ = (e.grub_name("hd0"), e.netbsd_name("xbd0"));
                }
            }
        }
    }
    if let Ok(t) = read_table(&cache, 512) {
        for e in &t.entries {
            let _ = (e.grub_name("hd0"), e.netbsd_name("xbd0"), e.bytes(512));
        }
    }
});
