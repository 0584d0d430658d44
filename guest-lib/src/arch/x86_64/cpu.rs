//! Single CPU instructions: port I/O, MSRs, CPUID, the TSC, control
//! registers, the interrupt flag and halting.
//!
//! A classic PV kernel runs in ring 3, where CLI, STI, HLT, port I/O and
//! control-register access fault. In PV mode the interrupt-flag functions
//! therefore work on `vcpu_info.evtchn_upcall_mask` (the PV "IF") and the
//! halts become sched_op hypercalls (see `pv::events`), port output is
//! dropped (a PV domU has no I/O ports) and CR2 comes from `vcpu_info`.
//! MSRs and CR3 are PVH-only.
//!
//! On the host (unit tests) the interrupt-flag functions are no-ops, so code
//! that takes an [`crate::sync::IrqMutex`] can be tested there.

/// The four registers CPUID returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cpuid {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

/// Executes CPUID for `leaf`/`subleaf`.
pub fn cpuid(leaf: u32, subleaf: u32) -> Cpuid {
    // CPUID exists on every x86_64 CPU and has no side effects.
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    Cpuid {
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
    }
}

/// Reads the time-stamp counter (plain RDTSC: RDTSCP cannot be emulated here).
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is unprivileged unless CR4.TSD is set, which we never do.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(target_os = "none")]
mod imp {
    use ::x86_64::instructions::{hlt, interrupts, port::Port};
    use ::x86_64::registers::control::Cr2;
    use ::x86_64::registers::model_specific::Msr;

    use super::super::is_pv;
    use super::super::pv::events as pv;

    /// Writes a byte to an I/O port.
    ///
    /// # Safety
    /// The port must be one whose side effects the caller intends.
    #[inline]
    pub unsafe fn outb(port: u16, value: u8) {
        if is_pv() {
            return;
        }
        // SAFETY: forwarded to the caller.
        unsafe { Port::new(port).write(value) }
    }

    /// Writes a 32-bit value to an I/O port.
    ///
    /// # Safety
    /// The port must be one whose side effects the caller intends.
    #[inline]
    pub unsafe fn outl(port: u16, value: u32) {
        if is_pv() {
            return;
        }
        // SAFETY: forwarded to the caller.
        unsafe { Port::new(port).write(value) }
    }

    /// Reads an MSR (PVH only).
    ///
    /// # Safety
    /// The MSR must exist (else #GP); not in PV mode.
    pub unsafe fn rdmsr(msr: u32) -> u64 {
        // SAFETY: forwarded to the caller.
        unsafe { Msr::new(msr).read() }
    }

    /// Writes an MSR (PVH only).
    ///
    /// # Safety
    /// Not in PV mode. The MSR must exist and the value must not break memory safety (for
    /// the Xen hypercall MSR: the address of a page Xen may overwrite).
    pub unsafe fn wrmsr(msr: u32, value: u64) {
        // SAFETY: forwarded to the caller.
        unsafe { Msr::new(msr).write(value) }
    }

    /// CR2: the address of the last page fault (PV: as Xen saved it in
    /// vcpu_info; 0 before the shared info page is mapped).
    pub fn read_cr2() -> u64 {
        if is_pv() {
            return crate::shared_info::cr2(0);
        }
        Cr2::read_raw()
    }

    /// CR3: the physical address of the top-level page table (PVH only).
    pub fn read_cr3() -> u64 {
        let v: u64;
        // SAFETY: reading CR3 has no side effects at CPL 0.
        unsafe {
            core::arch::asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags))
        };
        v
    }

    /// CR0 (PVH only).
    pub fn read_cr0() -> u64 {
        let v: u64;
        // SAFETY: reading CR0 has no side effects at CPL 0.
        unsafe {
            core::arch::asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags))
        };
        v
    }

    /// CR4 (PVH only).
    pub fn read_cr4() -> u64 {
        let v: u64;
        // SAFETY: reading CR4 has no side effects at CPL 0.
        unsafe {
            core::arch::asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags))
        };
        v
    }

    /// Loads CR3, flushing non-global TLB entries (PVH only).
    ///
    /// # Safety
    /// Not in PV mode. `value` must point to page tables that map everything in use,
    /// identically to the current ones where code and data live.
    pub unsafe fn write_cr3(value: u64) {
        // SAFETY: forwarded to the caller.
        unsafe {
            core::arch::asm!("mov cr3, {}", in(reg) value, options(nostack, preserves_flags))
        };
    }

    /// Whether maskable interrupts are enabled (RFLAGS.IF).
    #[inline]
    pub fn interrupts_enabled() -> bool {
        if is_pv() {
            return pv::enabled();
        }
        interrupts::are_enabled()
    }

    /// Enables maskable interrupts (PV: unmasks upcalls and takes any that
    /// is already pending).
    #[inline]
    pub fn enable_interrupts() {
        if is_pv() {
            return pv::enable();
        }
        interrupts::enable()
    }

    /// Disables maskable interrupts.
    #[inline]
    pub fn disable_interrupts() {
        if is_pv() {
            return pv::disable();
        }
        interrupts::disable()
    }

    /// Disables interrupts and returns whether they were enabled.
    #[inline]
    pub fn irq_save() -> bool {
        if is_pv() {
            let was = pv::enabled();
            pv::disable();
            return was;
        }
        let was = interrupts::are_enabled();
        if was {
            interrupts::disable();
        }
        was
    }

    /// Re-enables interrupts if `was_enabled` (from [`irq_save`]).
    #[inline]
    pub fn irq_restore(was_enabled: bool) {
        if was_enabled {
            enable_interrupts();
        }
    }

    /// `sti; hlt`: enables interrupts and halts until the next one, with no
    /// window between the two (STI's one-instruction shadow) in which an
    /// interrupt could be taken and the wake-up lost. PV: SCHEDOP_block,
    /// which unmasks upcalls and blocks atomically in the same way.
    #[inline]
    pub fn safe_halt() {
        if is_pv() {
            return pv::block();
        }
        interrupts::enable_and_hlt()
    }

    /// Halts until the next interrupt. With IF=0 only an NMI ends it: use
    /// [`safe_halt`] to wait for events. PV: waits (SCHEDOP_poll) until
    /// any event channel of the domain fires, upcalls staying as they are.
    #[inline]
    pub fn halt() {
        if is_pv() {
            return pv::wait_any();
        }
        hlt()
    }

    /// Disables interrupts and halts forever.
    pub fn halt_forever() -> ! {
        loop {
            disable_interrupts();
            halt();
        }
    }
}

#[cfg(not(target_os = "none"))]
mod imp {
    //! Host stand-ins so that pure code using locks compiles and runs in tests.

    /// No port I/O on the host.
    ///
    /// # Safety
    /// Always safe on the host; unsafe to match the guest signature.
    pub unsafe fn outb(_port: u16, _value: u8) {}
    /// No port I/O on the host.
    ///
    /// # Safety
    /// Always safe on the host; unsafe to match the guest signature.
    pub unsafe fn outl(_port: u16, _value: u32) {}
    /// Interrupts do not exist on the host.
    pub fn interrupts_enabled() -> bool {
        false
    }
    /// No-op on the host.
    pub fn enable_interrupts() {}
    /// No-op on the host.
    pub fn disable_interrupts() {}
    /// No-op on the host.
    pub fn irq_save() -> bool {
        false
    }
    /// No-op on the host.
    pub fn irq_restore(_was_enabled: bool) {}
    /// A spin hint on the host.
    pub fn safe_halt() {
        core::hint::spin_loop()
    }
    /// A spin hint on the host.
    pub fn halt() {
        core::hint::spin_loop()
    }
    /// Never used on the host.
    pub fn halt_forever() -> ! {
        panic!("halt_forever on the host")
    }
}

pub use imp::*;

/// CPUID.80000001H:EDX bit 26: 1 GiB pages.
pub fn has_1gib_pages() -> bool {
    cpuid(0x8000_0000, 0).eax >= 0x8000_0001 && cpuid(0x8000_0001, 0).edx & (1 << 26) != 0
}
