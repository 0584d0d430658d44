//! The FAT reader on arbitrary images: mount, then a bounded walk of everything.
//!
//! The input is a sparse image (common/sparse.rs): a device of up to 1 GiB
//! whose boot sector, FATs and directories the input supplies, the rest
//! zeros. Runs under pvboot's 64 MiB heap (common/heap.rs).
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| common::watchdog::watch(data, common::targets::fat));
