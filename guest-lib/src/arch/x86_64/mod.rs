//! x86_64: CPU instructions, the boot page tables, the IDT, and the PVH
//! entry (the 32-bit stub that reaches long mode, then Rust).

pub mod cpu;
#[cfg(target_os = "none")]
pub mod paging;
#[cfg(target_os = "none")]
pub mod pvh;
#[cfg(target_os = "none")]
pub mod traps;
