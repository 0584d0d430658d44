//! The whole pipeline: partition table, default volume choice, probe, mount
//! and a bounded walk, as `xenolith fstest` and the guest do it.
//!
//! The input is a sparse image (common/sparse.rs): a disk of up to 1 GiB
//! whose partition tables and file-system metadata the input supplies, the
//! rest zeros. Runs under pvboot's 64 MiB heap (common/heap.rs).
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| common::watchdog::watch(data, common::targets::probe));
