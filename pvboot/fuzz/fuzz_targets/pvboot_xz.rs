//! The xz decoder, both APIs, under a 1 MiB output limit (seeds: the real tool's output).
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use pvboot::compress::Compression;

fuzz_target!(|data: &[u8]| common::watchdog::watch(data, |d| common::decompress_both(Compression::Xz, d)));
