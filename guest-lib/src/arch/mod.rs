//! Everything CPU- and boot-mode-specific. The rest of guest-lib talks to
//! the machine only through what this module exports, so classic PV entry
//! can be added later as `x86_64/pv.rs` without reshaping the rest.

pub mod x86_64;

pub use self::x86_64::cpu;
#[cfg(target_os = "none")]
pub use self::x86_64::{paging, traps};

/// The highest physical address (exclusive) the guest can currently reach
/// through its identity map.
#[cfg(target_os = "none")]
pub fn mapped_limit() -> u64 {
    paging::mapped_limit()
}

/// Host builds have no guest physical memory.
#[cfg(not(target_os = "none"))]
pub fn mapped_limit() -> u64 {
    0
}

/// The physical range of the loaded image (text, data and BSS), from the
/// linker script's `__image_start`/`__image_end`.
#[cfg(target_os = "none")]
pub fn image_range() -> crate::boot::PhysRange {
    unsafe extern "C" {
        static __image_start: u8;
        static __image_end: u8;
    }
    crate::boot::PhysRange {
        start: (&raw const __image_start) as u64,
        end: (&raw const __image_end) as u64,
    }
}

/// Host builds have no image.
#[cfg(not(target_os = "none"))]
pub fn image_range() -> crate::boot::PhysRange {
    crate::boot::PhysRange { start: 0, end: 0 }
}

/// Guest-physical memory as boot code reads it: through the identity map.
#[cfg(target_os = "none")]
pub struct IdentityMem;

#[cfg(target_os = "none")]
impl crate::boot::PhysMem for IdentityMem {
    fn bytes(&self, paddr: u64, len: usize) -> Option<&'static [u8]> {
        let end = paddr.checked_add(len as u64)?;
        if paddr == 0 || end > mapped_limit() {
            return None;
        }
        // SAFETY: [paddr, end) is identity-mapped (checked above). The slice
        // is read-only and BootInfo, which keeps it, lists the ranges it
        // keeps in `boot_ranges`, which the heap never hands out; nothing
        // else in the guest writes boot data.
        Some(unsafe { core::slice::from_raw_parts(paddr as *const u8, len) })
    }

    fn limit(&self) -> u64 {
        mapped_limit()
    }
}
