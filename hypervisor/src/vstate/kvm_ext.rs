//! KVM ioctls that kvm-ioctls does not wrap, and the vCPU kick signal.
//!
//! This VMM keeps the interrupt controller in user space (no in-kernel
//! LAPIC), because Xen delivers the event-channel callback vector directly,
//! without a LAPIC that would need an EOI. So it injects with KVM_INTERRUPT,
//! and it stops a running vCPU with a signal that is blocked everywhere but
//! inside KVM_RUN (KVM_SET_SIGNAL_MASK), which makes a kick impossible to lose.

use std::os::fd::AsRawFd;

use kvm_bindings::{kvm_interrupt, kvm_signal_mask, KVMIO};
use kvm_ioctls::VcpuFd;
use vmm_sys_util::ioctl::ioctl_with_ref;
use vmm_sys_util::ioctl_iow_nr;

/// The ioctl numbers, from linux/kvm.h.
#[allow(missing_docs)]
mod nr {
    use super::*;
    ioctl_iow_nr!(KVM_INTERRUPT, KVMIO, 0x86, kvm_interrupt);
    ioctl_iow_nr!(KVM_SET_SIGNAL_MASK, KVMIO, 0x8b, kvm_signal_mask);
}
use nr::{KVM_INTERRUPT, KVM_SET_SIGNAL_MASK};

/// Queues external interrupt `vector` for injection at the next entry.
///
/// Only valid when `ready_for_interrupt_injection` and the guest's IF are set.
pub fn interrupt(vcpu: &VcpuFd, vector: u8) -> std::io::Result<()> {
    let irq = kvm_interrupt { irq: vector.into() };
    // SAFETY: KVM_INTERRUPT reads one kvm_interrupt from the pointer, which
    // is valid for the call; the fd is a vCPU fd.
    let ret = unsafe { ioctl_with_ref(vcpu, KVM_INTERRUPT(), &irq) };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The signal used to kick a vCPU thread out of KVM_RUN.
pub fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN() + 1
}

/// Prepares the calling (vCPU) thread: the kick signal gets a no-op handler,
/// is blocked in the thread, and is unblocked only while `vcpu` is in KVM_RUN.
pub fn setup_kick(vcpu: &VcpuFd) -> std::io::Result<()> {
    extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}
    let sig = kick_signal();
    vmm_sys_util::signal::register_signal_handler(sig, on_kick)
        .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))?;

    // SAFETY: plain libc signal-set manipulation on locals.
    let mut during_run: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        let mut block: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, sig);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut during_run) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::sigdelset(&mut during_run, sig);
    }

    // struct kvm_signal_mask { __u32 len; __u8 sigset[]; } with the kernel's
    // 8-byte sigset, which is the first 8 bytes of glibc's sigset_t.
    #[repr(C)]
    struct SignalMask {
        len: u32,
        sigset: [u8; 8],
    }
    let mut mask = SignalMask { len: 8, sigset: [0; 8] };
    // SAFETY: sigset_t is at least 8 bytes; we copy its first 8.
    let raw = unsafe { std::slice::from_raw_parts(&during_run as *const _ as *const u8, 8) };
    mask.sigset.copy_from_slice(raw);
    // SAFETY: KVM_SET_SIGNAL_MASK reads `len` then `len` bytes of sigset,
    // all inside `mask`, which outlives the call.
    let ret = unsafe {
        libc::ioctl(vcpu.as_raw_fd(), KVM_SET_SIGNAL_MASK() as _, &mask as *const SignalMask)
    };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Consumes a pending kick after KVM_RUN returned EINTR. The signal is
/// blocked outside KVM_RUN, so without this it would stay pending and make
/// every later KVM_RUN return at once (QEMU's kvm_eat_signals).
pub fn consume_kick() {
    // SAFETY: signal-set manipulation on locals; a zero timeout never blocks.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, kick_signal());
        let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        while libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) > 0 {}
    }
}

/// Kicks the vCPU thread `thread` out of KVM_RUN (or makes its next KVM_RUN return at once).
pub fn kick(thread: libc::pthread_t) {
    // SAFETY: pthread_kill with a valid thread id and a signal that has a
    // handler; a thread that has exited makes it fail harmlessly with ESRCH.
    unsafe {
        libc::pthread_kill(thread, kick_signal());
    }
}
