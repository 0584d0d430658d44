//! The pvboot guest: the boot loader a domain is started with (xl.cfg
//! `kernel = ".../pvboot"`, `type = "pvh"`) to boot the kernel its owner
//! installed on the domain's own disks.
//!
//! It is linked at 128 MiB (pvboot/build.rs) with its heap above its image
//! (at most 64 MiB), so that kernels can load anywhere in [1 MiB, 128 MiB);
//! modules go above the heap. The domain therefore needs at least 256 MiB.
//!
//! Everything that reads disks, file systems, partitions, configs and
//! kernel images is the `pvboot` library (no unsafe, host-tested); this
//! binary wires it to guest-lib: blkfront disks ([`guest::disks`]), guest
//! RAM ([`guest::ram`], the one module with `unsafe`), and the hand-off
//! ([`guest::boot`], through `guest_lib::handoff`).
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod guest;

#[cfg(target_os = "none")]
guest_lib::main!(guest::run, heap = guest_lib::heap::Placement::above_image(guest::HEAP_MAX));

/// On the host there is nothing to run: pvboot is a Xen guest.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("pvboot is a Xen PVH guest: build it with `cargo xtask build` (target x86_64-unknown-none)");
}
