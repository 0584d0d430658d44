//! The bodies of the pvboot fuzz targets, one function per target, so that
//! pvboot/tests/fuzz_regressions.rs replays saved inputs through exactly
//! what the fuzzer ran.

use std::rc::Rc;

use pvboot::disk::Cache;
use pvboot::fs::ext::ExtFs;
use pvboot::fs::fat::FatFs;
use pvboot::partition::{disklabel, gpt, mbr, read_table, Scheme, Selector, Table};

use super::{walk, SparseDisk, ZeroExtended};

/// pvboot_fat: mount FAT on a sparse image, then a bounded walk.
pub fn fat(data: &[u8]) {
    let Ok(cache) = Cache::new(SparseDisk::new(data)) else { return };
    if let Ok(fs) = FatFs::open(&cache) {
        walk(&fs);
    }
}

/// pvboot_ext: our geometry check and ext4-view on a sparse image, then a bounded walk.
pub fn ext(data: &[u8]) {
    let Ok(cache) = Cache::new(SparseDisk::new(data)) else { return };
    if let Ok(fs) = ExtFs::open(Rc::new(cache)) {
        walk(&fs);
    }
}

/// pvboot_probe: partition table, default volume, probe, mount and walk on a sparse disk.
pub fn probe(data: &[u8]) {
    let Ok(cache) = Cache::new(SparseDisk::new(data)) else { return };
    let disk = Rc::new(cache);
    let _ = pvboot::fs::probe(&disk);
    if let Ok(v) = pvboot::volume::open(disk, 512, None) {
        walk(&*v.fs);
    }
}

/// pvboot_mbr: one MBR sector and its extended chain, then the whole table reader.
pub fn mbr(data: &[u8]) {
    let dev = ZeroExtended { data, min_size: 0 };
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
}

/// pvboot_gpt: GPT headers and arrays, and selectors against the result.
pub fn gpt(data: &[u8]) {
    let dev = ZeroExtended { data, min_size: 0 };
    let Ok(cache) = Cache::new(dev) else { return };
    match gpt::read(&cache, 512) {
        Ok(g) => {
            let t = Table { scheme: Scheme::Gpt, sector_size: 512, gpt_backup_used: g.backup_used, entries: g.entries, past_end: Vec::new() };
            for e in &t.entries {
                if let pvboot::partition::Kind::Gpt(guid) = &e.kind {
                    let _ = (gpt::guid_string(guid), gpt::type_name(guid));
                }
            }
            for s in ["gpt1", "(hd0,gpt2)", "dk0", "1", "a"] {
                if let Ok(sel) = Selector::parse(s) {
                    let _ = sel.resolve(&t);
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// pvboot_disklabel: the first byte picks the container type, the rest is the disk.
pub fn disklabel(input: &[u8]) {
    let Some((&kind, data)) = input.split_first() else { return };
    let _ = disklabel::scan(data);
    let dev = ZeroExtended { data, min_size: 0 };
    let Ok(cache) = Cache::new(dev) else { return };
    let total = (data.len() as u64).div_ceil(512);
    let mbr_type = if kind & 1 == 0 { 0xA9 } else { 0xA5 };
    let base = u64::from(kind >> 1) % total.max(1);
    if let Ok(Some(entries)) = disklabel::read(&cache, 512, base, total - base.min(total), mbr_type) {
        let t = Table { scheme: Scheme::Disklabel, sector_size: 512, gpt_backup_used: false, entries, past_end: Vec::new() };
        for e in &t.entries {
            let _ = (e.grub_name("hd0"), e.netbsd_name("xbd0"));
        }
        for s in ["a", "xbd0d", "(hd0,bsd1)", "bsd2"] {
            if let Ok(sel) = Selector::parse(s) {
                let _ = sel.resolve(&t);
            }
        }
    }
}
