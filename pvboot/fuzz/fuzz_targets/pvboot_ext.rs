//! The ext2/3/4 adapter (our geometry check, then ext4-view) on arbitrary
//! images: mount, then a bounded walk.
//!
//! The input is a sparse image (common/sparse.rs): a device of up to 1 GiB
//! whose superblock, descriptors, inode tables and directories the input
//! supplies, the rest zeros. Runs under pvboot's 64 MiB heap
//! (common/heap.rs): ext4-view sizing an allocation by a superblock field
//! (issue 12) fails the run.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| common::watchdog::watch(data, common::targets::ext));
