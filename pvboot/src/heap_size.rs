// pvboot's heap, in one place: the guest reserves it (src/guest), the
// fuzz targets' allocator enforces it (fuzz/fuzz_targets/common/heap.rs
// includes this file), and `cargo xtask fuzz` gives libFuzzer the same
// limit (xtask/src/fuzz.rs reads `pvboot::HEAP_MAX`).

/// The most heap pvboot takes (above its image): file-system caches,
/// config files, the boot information it builds, and a compressed kernel
/// with its decoder. The largest user is an xz or lzma kernel (Linux's use
/// a 32 MiB dictionary): the compressed file plus the decoder's window,
/// which doubles in place as the output grows (Debian's vmlinuz: 8 + 32
/// MiB).
pub const HEAP_MAX: u64 = 64 << 20;
