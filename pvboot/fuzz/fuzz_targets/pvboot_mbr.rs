//! MBR parsing and the extended-partition chain, then the whole table reader.
//! Runs under pvboot's 64 MiB heap (common/heap.rs).
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| common::watchdog::watch(data, common::targets::mbr));
