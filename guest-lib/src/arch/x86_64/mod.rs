//! x86_64: CPU instructions, the PVH entry (a 32-bit stub that reaches long
//! mode, then Rust) with its static page tables and IDT, and the classic PV
//! entry with its trap table and hypercall-managed page tables.

use core::sync::atomic::{AtomicBool, Ordering};

pub mod cpu;
pub mod handoff;
#[cfg(target_os = "none")]
pub mod paging;
#[cfg(target_os = "none")]
pub mod pv;
#[cfg(target_os = "none")]
pub mod pvh;
#[cfg(target_os = "none")]
pub mod traps;

/// Set once by the PV entry, before any other code runs; never cleared.
static PV: AtomicBool = AtomicBool::new(false);

/// Whether the guest was entered through the classic PV entry point.
#[inline]
pub fn is_pv() -> bool {
    PV.load(Ordering::Relaxed)
}

/// Records that the guest runs as classic PV (called by the PV entry only).
#[cfg(target_os = "none")]
fn set_pv() {
    PV.store(true, Ordering::Relaxed);
}
