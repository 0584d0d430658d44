//! Xenolith's `no_std` library OS for Xen guests, booting as PVH or as classic 64-bit PV.
//!
//! The module map follows Xen's own vocabulary (as Mini-OS does), in layers:
//!
//! - [`arch`]: everything CPU- and boot-mode-specific: the PVH and PV
//!   entries, page tables, traps and their entry stubs, CPU instructions,
//!   and the few hooks the rest uses where the modes differ.
//! - The hypervisor interface: [`hypercall`], [`shared_info`], [`evtchn`],
//!   [`gnttab`], [`time`], [`sched`], [`shutdown`].
//! - Boot data: [`boot`] turns what the domain builder handed over into safe
//!   Rust types, whatever the boot mode.
//! - The control plane: [`xenstore`] (the client) and [`xenbus`] (device
//!   discovery and the frontend state machine).
//! - Shared memory: [`shared_pages`] (pages granted to a backend, the view
//!   rings read them through), used by every frontend.
//! - Frontends: [`console`] (the PV console ring) and [`blkfront`], behind
//!   [`blkdev::BlockDevice`].
//! - Other vCPUs: [`smp`] brings them up and runs jobs on each.
//! - Leaving: [`handoff`] quiesces the domain and enters the next kernel
//!   (what a boot loader does last).
//! - A small runtime: [`heap`], [`logger`], [`runtime`] (the [`main!`] macro
//!   and the start-up sequence) and the panic handler.
//!
//! Everything that touches hardware or shared memory compiles only for the
//! guest (`target_os = "none"`); the pure parts (boot info parsing, pvclock
//! math, ring index math, heap region selection) build and are unit-tested on
//! the host with `cargo test -p guest-lib`.
#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

extern crate alloc;

pub mod arch;
pub mod blkdev;
pub mod blkfront;
pub mod boot;
pub mod console;
pub mod evtchn;
pub mod gnttab;
pub mod handoff;
pub mod heap;
pub mod hypercall;
pub mod logger;
pub mod net;
pub mod netfront;
pub mod pv_handoff;
pub mod runtime;
pub mod sched;
pub mod shared_info;
pub mod shared_pages;
pub mod shutdown;
pub mod smp;
pub mod sync;
pub mod time;
pub mod xenbus;
pub mod xenstore;

#[cfg(all(target_os = "none", not(test)))]
mod panic;

pub use boot::BootInfo;
pub use xen_abi;
