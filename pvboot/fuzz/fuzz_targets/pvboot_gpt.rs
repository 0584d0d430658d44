//! GPT headers and entry arrays (primary and backup), and selectors against the result.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use pvboot::disk::Cache;
use pvboot::partition::{gpt, Selector, Table, Scheme};

fuzz_target!(|data: &[u8]| {
    let dev = common::ZeroExtended { data, min_size: 0 };
    let Ok(cache) = Cache::new(dev) else { return };
    match gpt::read(&cache, 512) {
        Ok(g) => {
            let t = Table { scheme: Scheme::Gpt, sector_size: 512, gpt_backup_used: g.backup_used, entries: g.entries };
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
});
