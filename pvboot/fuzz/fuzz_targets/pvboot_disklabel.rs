//! BSD disklabels in either byte order, on a bare disk and inside a FreeBSD slice;
//! the first input byte picks the container type, the rest is the disk.
//! Runs under pvboot's 64 MiB heap (common/heap.rs).
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| common::watchdog::watch(data, common::targets::disklabel));
