//! BSD disklabels in either byte order, on a bare disk and inside a FreeBSD slice;
//! the first input byte picks the container type, the rest is the disk.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use pvboot::disk::Cache;
use pvboot::partition::{disklabel, Selector, Table, Scheme};

fuzz_target!(|input: &[u8]| {
    let Some((&kind, data)) = input.split_first() else { return };
    let _ = disklabel::scan(data);
    let dev = common::ZeroExtended { data, min_size: 0 };
    let Ok(cache) = Cache::new(dev) else { return };
    let total = (data.len() as u64).div_ceil(512);
    let mbr_type = if kind & 1 == 0 { 0xA9 } else { 0xA5 };
    let base = u64::from(kind >> 1) % total.max(1);
    if let Ok(Some(entries)) = disklabel::read(&cache, 512, base, total - base.min(total), mbr_type) {
        let t = Table { scheme: Scheme::Disklabel, sector_size: 512, gpt_backup_used: false, entries };
        for e in &t.entries {
            let _ = (e.grub_name("hd0"), e.netbsd_name("xbd0"));
        }
        for s in ["a", "xbd0d", "(hd0,bsd1)", "bsd2"] {
            if let Ok(sel) = Selector::parse(s) {
                let _ = sel.resolve(&t);
            }
        }
    }
});
