//! Kernel images through the hypervisor's loader, which is pvboot's kernel
//! code (ELF, bzImage, compressed files): parsing and planning the PVH load
//! never panics, and a planned load fits the RAM it was planned for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenolith::loader::{self, BootParams, MemoryLayout, PvhKernel};

fuzz_target!(|data: &[u8]| {
    let Ok(kernel) = PvhKernel::parse(data) else { return };
    let layout = MemoryLayout::new(64 << 20);
    let params = BootParams { layout: &layout, cmdline: Some("console=hvc0"), ramdisk: None };
    if let Ok(boot) = loader::plan(&kernel, &params) {
        for r in &boot.kernel {
            assert!(r.end <= 64 << 20, "planned segment {r:?} outside RAM");
        }
    }
});
