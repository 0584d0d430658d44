//! The PV "interrupt flag": `vcpu_info[0].evtchn_upcall_mask`.
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

use xen_abi::sched::SCHEDOP_BLOCK;

use crate::{hypercall, sched, shared_info};

/// Whether upcalls are unmasked (the PV equivalent of RFLAGS.IF).
#[inline]
pub fn enabled() -> bool {
    shared_info::upcall_mask(0).load(Ordering::Relaxed) == 0
}

/// Masks upcalls.
#[inline]
pub fn disable() {
    shared_info::upcall_mask(0).store(1, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
}

/// Unmasks upcalls, then takes one that became pending while they were
/// masked: Xen only delivers on its way back to the guest, so any
/// hypercall (here xen_version, as Linux and Mini-OS do) makes it happen.
#[inline]
pub fn enable() {
    compiler_fence(Ordering::SeqCst);
    shared_info::upcall_mask(0).store(0, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    if shared_info::upcall_pending(0).load(Ordering::Relaxed) != 0 {
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
