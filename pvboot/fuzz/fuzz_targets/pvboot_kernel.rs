//! Kernel images (ELF with Xen notes, bzImage, multiboot, compressed files)
//! loaded into a small guest memory: never a panic, never a write outside
//! the limits. The first input byte picks the boot mode and whether the
//! bytes go through the streaming ELF router as a decompressed stream would.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use pvboot::kernel::{self, bzimage, multiboot, stream, BootMode, Limits, VecMemory};

const MIB: u64 = 1 << 20;
/// Guard bytes on both sides of the allowed range.
const GUARD: u64 = 0x1_0000;

thread_local! {
    static MEM: RefCell<VecMemory> = RefCell::new(VecMemory::new(MIB - GUARD, (MIB + 2 * GUARD) as usize, 0xaa));
}

fuzz_target!(|input: &[u8]| {
    let Some((&control, data)) = input.split_first() else { return };
    let mode = if control & 1 == 0 { BootMode::Pvh } else { BootMode::Pv };
    let limits = Limits::new(vec![MIB..2 * MIB], MIB).reserve(2 * MIB..2 * MIB + GUARD, "pvboot");
    let _ = multiboot::find(data);
    if bzimage::is_bzimage(data) {
        let _ = bzimage::parse(data, data.len() as u64);
    }
    MEM.with(|mem| {
        let mut mem = mem.borrow_mut();
        let result = if control & 2 == 0 {
            kernel::load(&mut &data[..], &mut *mem, &limits, mode)
        } else {
            stream::load_compressed(&stream::Stored, data, &mut *mem, &limits, mode, None)
        };
        if let Ok(loaded) = &result {
            for r in &loaded.ranges {
                assert!(MIB <= r.start && r.end <= 2 * MIB, "loaded {r:x?} outside the limits");
            }
        }
        if let Err(e) = &result {
            assert!(!e.to_string().contains('\n'), "multi-line error: {e}");
        }
        let low = mem.get(MIB - GUARD, GUARD as usize).unwrap();
        let high = mem.get(2 * MIB, GUARD as usize).unwrap();
        assert!(low.iter().chain(high).all(|&b| b == 0xaa), "a write outside the limits");
    });
});
