//! The PV "interrupt flag": `vcpu_info[N].evtchn_upcall_mask` of the vCPU
//! running, N read through its kernel GS base (see [`this_vcpu`]).
//!
//! A PV kernel runs in ring 3 and cannot execute CLI, STI or HLT. Xen
//! instead delivers the event callback only while the mask byte is 0, sets
//! it to 1 when it delivers one (the saved RFLAGS.IF records the old value)
//! and HYPERVISOR_iret restores it. Only this vCPU and Xen running on its
//! behalf touch the byte, so compiler fences order it (as Linux's
//! `xen_irq_enable` does): a remote pCPU that raises an event kicks this
//! vCPU, and Xen reads the mask on the way back in, after our store.
//!
//! Before the shared info page is mapped these functions act on its
//! placeholder page, which is harmless: upcalls are masked then anyway.

use core::sync::atomic::{compiler_fence, Ordering};

use xen_abi::hypercall as nr;
use xen_abi::pv::SEGBASE_GS_KERNEL;
use xen_abi::sched::SCHEDOP_BLOCK;

use crate::hypercall::Errno;
use crate::smp::MAX_VCPUS;
use crate::{hypercall, sched, shared_info};

/// Each vCPU's number; each vCPU's kernel GS base points at its own entry.
static VCPU_NUMBERS: [u64; MAX_VCPUS] = {
    let mut a = [0u64; MAX_VCPUS];
    let mut i = 0;
    while i < MAX_VCPUS {
        a[i] = i as u64;
        i += 1;
    }
    a
};

/// The kernel GS base vCPU `vcpu` runs with.
pub fn gs_base_for(vcpu: u32) -> u64 {
    VCPU_NUMBERS.as_ptr() as u64 + 8 * u64::from(vcpu)
}

/// Points vCPU 0's kernel GS base at its number (HYPERVISOR_set_segment_base;
/// secondaries get theirs in their `vcpu_guest_context`). The PV entry
/// calls it before anything masks upcalls.
pub(super) fn init_vcpu0() -> Result<(), Errno> {
    // SAFETY: sets this vCPU's kernel GS base to a static; no memory is
    // written.
    Errno::check(unsafe { hypercall::hypercall2(nr::SET_SEGMENT_BASE, u64::from(SEGBASE_GS_KERNEL), gs_base_for(0)) })?;
    Ok(())
}

/// The vCPU running this code: `%gs:0`.
#[inline]
pub fn this_vcpu() -> usize {
    let v: u64;
    // SAFETY: every vCPU's GS base points at its entry of VCPU_NUMBERS
    // (set before any caller runs), which is never written.
    unsafe { core::arch::asm!("mov {}, gs:[0]", out(reg) v, options(nostack, readonly, preserves_flags)) };
    v as usize
}

/// Whether upcalls are unmasked (the PV equivalent of RFLAGS.IF).
#[inline]
pub fn enabled() -> bool {
    shared_info::upcall_mask(this_vcpu()).load(Ordering::Relaxed) == 0
}

/// Masks upcalls.
#[inline]
pub fn disable() {
    shared_info::upcall_mask(this_vcpu()).store(1, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
}

/// Unmasks upcalls, then takes one that became pending while they were
/// masked: Xen only delivers on its way back to the guest, so any
/// hypercall (here xen_version, as Linux and Mini-OS do) makes it happen.
#[inline]
pub fn enable() {
    compiler_fence(Ordering::SeqCst);
    shared_info::upcall_mask(this_vcpu()).store(0, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    if shared_info::upcall_pending(this_vcpu()).load(Ordering::Relaxed) != 0 {
        let _ = hypercall::version();
    }
}

/// SCHEDOP_block: unmasks upcalls and sleeps until an event is pending,
/// atomically (Xen checks for pending events after marking the vCPU
/// blocked), so no wake-up is lost; the upcall runs on the way back.
pub fn block() {
    let mut none = 0u64;
    // SAFETY: SCHEDOP_block ignores its argument.
    let _ = unsafe { hypercall::sched_op(SCHEDOP_BLOCK, &mut none) };
}

/// Waits for any event of the domain without unmasking upcalls
/// (SCHEDOP_poll on no port wakes on every event).
pub fn wait_any() {
    let _ = sched::poll(&[], 0);
}
