//! Everything CPU- and boot-mode-specific. The rest of guest-lib talks to
//! the machine only through what this module exports, and runs unchanged
//! whether the guest was booted as PVH or as a classic 64-bit PV guest.
//!
//! # One image, two entry points
//!
//! Every guest is a single ELF that carries both Xen entry points:
//!
//! - PVH: `XEN_ELFNOTE_PHYS32_ENTRY` (x86_64/pvh.rs), entered in 32-bit
//!   protected mode at the physical load address (1 MiB);
//! - PV: `XEN_ELFNOTE_ENTRY` and the other PV notes (x86_64/pv.rs), entered
//!   in 64-bit mode, ring 3, on the page tables Xen built.
//!
//! This works because the PV notes say VIRT_BASE = 0 and PADDR_OFFSET = 0:
//! Xen's domain builder then maps the image at virtual addresses equal to
//! its link addresses (1 MiB up), and lays the whole initial region out as
//! virtual = pseudo-physical (xen.h start-of-day rule 5). Code linked for
//! the PVH identity map runs there unmodified, `PhysMem` reads boot data
//! the same way, and the PV boot code extends that 1:1 mapping over all of
//! RAM so the heap and everything else keep thinking in one address space.
//!
//! We chose one image over one image per mode (a cargo feature or a second
//! linker script) because the bytes tested as PVH on our hypervisor are the
//! bytes that boot as PV on real Xen; `cargo xtask build` and the test
//! harness need nothing new (a harness sees the PV notes and runs the guest
//! both ways); and the cost is small: about a page of PV code and notes in
//! every image, plus a predictable branch on a mode flag in the interrupt
//! flag functions ([`cpu`]), which in PV mode become the
//! `evtchn_upcall_mask` byte and hypercalls because a PV kernel runs in
//! ring 3 (no CLI/STI/HLT, no port I/O, no MSRs).
//!
//! The mode-dependent services the rest of guest-lib uses are the functions
//! below: [`mapped_limit`], [`map_ram`], [`map_shared_info`],
//! [`init_event_delivery`], [`console_ring`], [`xenstore_ring`],
//! [`map_grant_frames`] and [`xen_frame`].

pub mod x86_64;

pub use self::x86_64::cpu;
#[cfg(target_os = "none")]
pub use self::x86_64::{paging, pv, pvh, traps};

use xen_abi::event_channel::Port;

use crate::boot::{BootInfo, PhysRange};
use crate::hypercall::Errno;

/// How Xen started the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// PVH (an HVM container, paging by the hardware).
    Pvh,
    /// Classic 64-bit PV (ring 3, paging through hypercalls).
    Pv,
}

/// The boot mode (decided by the entry point Xen used).
pub fn mode() -> Mode {
    if x86_64::is_pv() {
        Mode::Pv
    } else {
        Mode::Pvh
    }
}

/// A shared ring page the domain builder set up (console, xenstore): where
/// it is in the 1:1 map and its event channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingPage {
    /// Address of the page (virtual = pseudo-physical).
    pub addr: u64,
    /// The event channel that signals it.
    pub port: Port,
}

/// The highest address (exclusive) the guest can currently reach through
/// its 1:1 map.
#[cfg(target_os = "none")]
pub fn mapped_limit() -> u64 {
    if x86_64::is_pv() {
        pv::mm::mapped_limit()
    } else {
        paging::mapped_limit()
    }
}

/// Host builds have no guest physical memory.
#[cfg(not(target_os = "none"))]
pub fn mapped_limit() -> u64 {
    0
}

/// Extends the 1:1 map over the RAM in `boot`'s memory map and returns the
/// new [`mapped_limit`]. PV builds page tables for it out of free RAM and
/// reserves them (and the console and xenstore pages) in `boot`, so the
/// heap never hands them out. Call once, during boot.
#[cfg(target_os = "none")]
pub fn map_ram(boot: &mut BootInfo) -> u64 {
    if x86_64::is_pv() {
        pv::map_ram(boot)
    } else {
        paging::map_ram(boot.ram_end())
    }
}

/// Host builds map nothing.
#[cfg(not(target_os = "none"))]
pub fn map_ram(_boot: &mut BootInfo) -> u64 {
    0
}

/// Makes the page at `page` show Xen's shared info page. PVH places the
/// page over that frame (XENMEM_add_to_physmap); PV maps the machine frame
/// start_info names at that virtual address (update_va_mapping).
///
/// # Safety
/// `page` must be a page-aligned page of the image reserved for this: its
/// contents are replaced and it must only be accessed atomically afterwards.
#[cfg(target_os = "none")]
pub unsafe fn map_shared_info(page: *mut u8) -> Result<(), Errno> {
    // SAFETY: forwarded to the caller.
    unsafe {
        if x86_64::is_pv() {
            pv::map_shared_info(page)
        } else {
            pvh::map_shared_info(page)
        }
    }
}

/// Host builds have no Xen.
///
/// # Safety
/// Always safe on the host; unsafe to match the guest signature.
#[cfg(not(target_os = "none"))]
pub unsafe fn map_shared_info(_page: *mut u8) -> Result<(), Errno> {
    Err(Errno(xen_abi::errno::ENOSYS))
}

/// Masks every event channel and routes upcalls to
/// [`crate::evtchn::handle_upcall`]: PVH asks for the IDT vector
/// (HVM_PARAM_CALLBACK_IRQ); PV registered its event callback at entry.
/// Upcalls stay disabled until [`cpu::enable_interrupts`].
#[cfg(target_os = "none")]
pub fn init_event_delivery() -> Result<(), Errno> {
    if x86_64::is_pv() {
        crate::evtchn::mask_all();
        Ok(())
    } else {
        // SAFETY: traps::init (run by the PVH entry) installed the gate for
        // UPCALL_VECTOR, which ends in handle_upcall.
        unsafe { crate::evtchn::init(traps::UPCALL_VECTOR) }
    }
}

/// Starts secondary vCPU `vcpu` on a stack ending at `stack_top`, in
/// [`crate::smp::secondary_main`] (PVH: a 64-bit `vcpu_hvm_context`; PV:
/// a `vcpu_guest_context`).
///
/// # Safety
/// As for [`pvh::start_vcpu`].
#[cfg(target_os = "none")]
pub unsafe fn start_vcpu(vcpu: u32, stack_top: u64) -> Result<(), Errno> {
    if x86_64::is_pv() {
        // SAFETY: forwarded to the caller.
        unsafe { pv::start_vcpu(vcpu, stack_top) }
    } else {
        // SAFETY: forwarded to the caller.
        unsafe { pvh::start_vcpu(vcpu, stack_top) }
    }
}

/// Host builds have no Xen.
#[cfg(not(target_os = "none"))]
pub unsafe fn start_vcpu(_vcpu: u32, _stack_top: u64) -> Result<(), Errno> {
    Err(Errno(xen_abi::errno::ENOSYS))
}

/// Host builds have no Xen.
#[cfg(not(target_os = "none"))]
pub fn init_event_delivery() -> Result<(), Errno> {
    Err(Errno(xen_abi::errno::ENOSYS))
}

/// The console ring the toolstack set up (PVH: HVM params CONSOLE_PFN and
/// CONSOLE_EVTCHN; PV: start_info.console.domU).
#[cfg(target_os = "none")]
pub fn console_ring() -> Result<RingPage, Errno> {
    if x86_64::is_pv() {
        pv::console_ring()
    } else {
        pvh::ring_from_params(
            xen_abi::hvm::PARAM_CONSOLE_PFN,
            xen_abi::hvm::PARAM_CONSOLE_EVTCHN,
        )
    }
}

/// Host builds have no Xen.
#[cfg(not(target_os = "none"))]
pub fn console_ring() -> Result<RingPage, Errno> {
    Err(Errno(xen_abi::errno::ENOSYS))
}

/// The xenstore ring (PVH: HVM params STORE_PFN and STORE_EVTCHN; PV:
/// start_info.store_mfn/store_evtchn).
#[cfg(target_os = "none")]
pub fn xenstore_ring() -> Result<RingPage, Errno> {
    if x86_64::is_pv() {
        pv::xenstore_ring()
    } else {
        pvh::ring_from_params(
            xen_abi::hvm::PARAM_STORE_PFN,
            xen_abi::hvm::PARAM_STORE_EVTCHN,
        )
    }
}

/// Host builds have no Xen.
#[cfg(not(target_os = "none"))]
pub fn xenstore_ring() -> Result<RingPage, Errno> {
    Err(Errno(xen_abi::errno::ENOSYS))
}

/// Makes the `nr_frames` pages at `first` show grant-table frames
/// `0..nr_frames` (version 1 entries), growing the table as needed. PVH
/// places each frame over ours (XENMEM_add_to_physmap, space grant_table);
/// PV asks for the table's machine frames (GNTTABOP_setup_table) and maps
/// them there (one mmu_update and a TLB flush).
///
/// # Safety
/// `[first, first + nr_frames * 4 KiB)` must be page-aligned pages of the
/// image (e.g. a page-aligned static) reserved for the grant table: their
/// contents are replaced by memory Xen and the backends access concurrently.
#[cfg(target_os = "none")]
pub unsafe fn map_grant_frames(first: *mut u8, nr_frames: u32) -> Result<(), Errno> {
    // SAFETY: forwarded to the caller.
    unsafe {
        if x86_64::is_pv() {
            pv::map_grant_frames(first, nr_frames)
        } else {
            pvh::map_grant_frames(first, nr_frames)
        }
    }
}

/// Host builds have no Xen.
///
/// # Safety
/// Always safe on the host; unsafe to match the guest signature.
#[cfg(not(target_os = "none"))]
pub unsafe fn map_grant_frames(_first: *mut u8, _nr_frames: u32) -> Result<(), Errno> {
    Err(Errno(xen_abi::errno::ENOSYS))
}

/// The frame number Xen and other domains know the page at `addr` (an
/// address in the 1:1 map) by, as grant entries and other frame-number
/// fields of the ABI want it: the pseudo-physical frame for PVH (an
/// auto-translated guest), the machine frame for PV (from the p2m list).
/// `None` if a PV guest has no such page.
#[cfg(target_os = "none")]
pub fn xen_frame(addr: u64) -> Option<u64> {
    let pfn = addr >> xen_abi::PAGE_SHIFT;
    if x86_64::is_pv() {
        pv::mm::p2m(pfn)
    } else {
        Some(pfn)
    }
}

/// Host builds behave as an auto-translated (PVH) guest.
#[cfg(not(target_os = "none"))]
pub fn xen_frame(addr: u64) -> Option<u64> {
    Some(addr >> xen_abi::PAGE_SHIFT)
}

/// The range of the loaded image (text, data and BSS), from the linker
/// script's `__image_start`/`__image_end`.
#[cfg(target_os = "none")]
pub fn image_range() -> PhysRange {
    unsafe extern "C" {
        static __image_start: u8;
        static __image_end: u8;
    }
    PhysRange {
        start: (&raw const __image_start) as u64,
        end: (&raw const __image_end) as u64,
    }
}

/// Host builds have no image.
#[cfg(not(target_os = "none"))]
pub fn image_range() -> PhysRange {
    PhysRange { start: 0, end: 0 }
}

/// Guest memory as boot code reads it: through the 1:1 map.
#[cfg(target_os = "none")]
pub struct IdentityMem;

#[cfg(target_os = "none")]
impl crate::boot::PhysMem for IdentityMem {
    fn bytes(&self, paddr: u64, len: usize) -> Option<&'static [u8]> {
        let end = paddr.checked_add(len as u64)?;
        if paddr == 0 || end > mapped_limit() {
            return None;
        }
        // SAFETY: [paddr, end) is mapped (checked above). The slice is
        // read-only and BootInfo, which keeps it, lists the ranges it keeps
        // in `boot_ranges`, which the heap never hands out; nothing else in
        // the guest writes boot data.
        Some(unsafe { core::slice::from_raw_parts(paddr as *const u8, len) })
    }

    fn limit(&self) -> u64 {
        mapped_limit()
    }
}
