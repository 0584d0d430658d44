//! The classic 64-bit PV entry (Xen's domain builder, libxenguest).
//!
//! The builder reads the notes below, loads the image at its link address
//! (VIRT_BASE 0, PADDR_OFFSET 0: virtual = pseudo-physical), fills
//! `hypercall_page` with SYSCALL stubs, builds and pins 4-level page tables
//! mapping `[0, end)` 1:1 (end 4 MiB-aligned, at least 512 KiB past the last
//! bootstrap element), and starts vCPU 0 at `pv_start64` in 64-bit mode,
//! ring 3, RSI = the start info, RSP = the top of a one-page boot stack,
//! upcalls masked. The page tables are read-only to us: every change goes
//! through mmu_update / update_va_mapping ([`mm`]).
//!
//! The boot sequence, hypercalls in order:
//!
//! 1. entry: switch to the image's boot stack; mark the hypercall page
//!    ready and `xen_version(XENVER_version)`;
//! 2. `set_trap_table` (vectors 0-31, delivered with upcalls masked) and
//!    `callback_op(CALLBACKOP_register)` for the event and failsafe
//!    callbacks (`pv/traps.rs`);
//! 3. read start_info; find the console ring through the machine-to-phys
//!    table and attach it (`event_channel_op(unmask)`), so even early
//!    failures are printed;
//! 4. the runtime ([`crate::runtime::start`]) then: `mmu_update` batches that
//!    map all RAM 1:1 with new L1 (and L2) tables ([`map_ram`]);
//!    `update_va_mapping` of the shared info frame; the console again, the
//!    timer VIRQ, and unmasking upcalls (`vcpu_info.evtchn_upcall_mask = 0`,
//!    then `xen_version` to take one already pending).
//!
//! Events arrive through the event callback (same `evtchn::handle_upcall`
//! as PVH's vector) and return through HYPERVISOR_iret, which restores the
//! upcall mask from the saved RFLAGS.IF.

pub mod events;
pub mod kexec;
pub mod mm;
mod traps;

use core::cell::UnsafeCell;

use xen_abi::elfnote;
use xen_abi::grant_table::{
    SetupTable, DEFAULT_MAX_GRANT_FRAMES, GNTST_OKAY, GNTTABOP_SETUP_TABLE,
};
use xen_abi::hypercall as nr;

use crate::arch::{IdentityMem, RingPage};
use crate::boot::{BootInfo, PvStartInfo};
use crate::hypercall::{self, Errno};
use crate::runtime::BootMode;

core::arch::global_asm!(
    r#"
    /* One Xen ELF note: namesz, descsz, type, "Xen", descriptor, each
       padded to 4 bytes. linker/guest.ld puts these before the PVH note in
       the PT_NOTE segment (the PVH note must stay last, see there). */
    .macro XEN_NOTE type, directive, value:vararg
    .balign 4
    .long 2f - 1f
    .long 4f - 3f
    .long \type
1:  .asciz "Xen"
2:  .balign 4
3:  \directive \value
4:  .balign 4
    .endm

    .section .note.xen.pv, "a", @note
    XEN_NOTE {guest_os}, .asciz, "Xenolith"
    XEN_NOTE {xen_version}, .asciz, "xen-3.0"
    XEN_NOTE {loader}, .asciz, "generic"
    XEN_NOTE {virt_base}, .quad, 0
    XEN_NOTE {paddr_offset}, .quad, 0
    XEN_NOTE {entry}, .quad, pv_start64
    XEN_NOTE {hypercall_page}, .quad, hypercall_page

    .section .text.pv_entry, "ax"
    .code64
    .globl pv_start64
pv_start64:
    /* RSI = start info, RSP = top of Xen's boot stack, which is also the
       end of the bootstrap elements (xen.h start-of-day layout). */
    cld
    movq %rsi, %rdi
    movq %rsp, %rsi
    leaq boot_stack_top(%rip), %rsp
    xorl %ebp, %ebp
    call xenolith_pv_main
    ud2
    "#,
    guest_os = const elfnote::GUEST_OS,
    xen_version = const elfnote::XEN_VERSION,
    loader = const elfnote::LOADER,
    virt_base = const elfnote::VIRT_BASE,
    paddr_offset = const elfnote::PADDR_OFFSET,
    entry = const elfnote::ENTRY,
    hypercall_page = const elfnote::HYPERCALL_PAGE,
    options(att_syntax)
);

/// The start info as read at entry, written once before anything reads it.
struct InfoCell(UnsafeCell<PvStartInfo>);
// SAFETY: written only by `xenolith_pv_main` before any other code runs
// (single vCPU, upcalls masked); read-only afterwards.
unsafe impl Sync for InfoCell {}
static INFO: InfoCell = InfoCell(UnsafeCell::new(PvStartInfo {
    vaddr: 0,
    nr_pages: 0,
    shared_info_maddr: 0,
    flags: 0,
    store_mfn: 0,
    store_evtchn: 0,
    console_mfn: 0,
    console_evtchn: 0,
    pt_base: 0,
    nr_pt_frames: 0,
    mfn_list: 0,
    mod_start: 0,
    mod_len: 0,
}));

/// The start info Xen handed over (PV mode only).
pub fn start_info() -> &'static PvStartInfo {
    // SAFETY: see InfoCell: no writer once other code runs.
    unsafe { &*INFO.0.get() }
}

/// Ends the domain as crashed before the console exists (Xen logs it).
fn die() -> ! {
    let _ = crate::sched::shutdown_raw(xen_abi::sched::SHUTDOWN_CRASH);
    super::cpu::halt_forever()
}

/// The first Rust code in PV mode: the image's boot stack, upcalls masked.
#[unsafe(no_mangle)]
extern "C" fn xenolith_pv_main(start_info_vaddr: u64, bootstrap_end: u64) -> ! {
    super::set_pv();
    hypercall::init_prefilled();
    // Before anything masks upcalls: that finds this vCPU's number through GS.
    if events::init_vcpu0().is_err() {
        die();
    }
    // Exceptions before this point kill the domain (Xen says so in its log).
    let traps = traps::init();

    // Everything below Xen's stack top is mapped; read start_info there.
    mm::set_early_limit(bootstrap_end);
    let si = match PvStartInfo::read(&IdentityMem, start_info_vaddr) {
        Ok(si) => si,
        Err(_) => die(),
    };
    // SAFETY: the only write, before anything reads INFO.
    unsafe { *INFO.0.get() = si };
    if mm::init(&si, bootstrap_end).is_err() {
        die();
    }

    // The console ring is in the initial mapping already: attach it now so
    // that problems from here on are printed.
    if let Ok(ring) = console_ring() {
        // SAFETY: the builder's console page, mapped, used for nothing else.
        let _ = unsafe { crate::console::attach(ring.addr, ring.port) };
    }
    if let Err(e) = traps {
        crate::console::emergency_print(format_args!(
            "xenolith: cannot install the PV trap table and callbacks: {e}\n"
        ));
        crate::shutdown::crash();
    }
    crate::runtime::start(BootMode::Pv {
        start_info: si,
        bootstrap_end,
    })
}

core::arch::global_asm!(
    r#"
    /* A secondary PV vCPU starts here (see `start_vcpu`) in kernel mode, on
       its own stack (16-byte aligned: the call below leaves Rust's usual
       alignment), RDI its number, upcalls masked. */
    .section .text.pv_secondary, "ax"
    .globl pv_secondary
pv_secondary:
    call xenolith_pv_secondary_main
    ud2
    "#
);

unsafe extern "C" {
    fn pv_secondary();
}

/// The first Rust code of a secondary PV vCPU.
#[unsafe(no_mangle)]
extern "C" fn xenolith_pv_secondary_main(vcpu: u64) -> ! {
    crate::smp::secondary_main(vcpu as u32)
}

/// Starts secondary vCPU `vcpu` at the secondary entry on vCPU 0's page
/// tables, trap table and callbacks, with upcalls masked and its kernel GS
/// base at its number (VCPUOP_initialise with a `vcpu_guest_context`, then
/// VCPUOP_up), as Linux's `cpu_initialize_context` does without a GDT of
/// its own (Xen's flat selectors are enough).
///
/// # Safety
/// `stack_top` must be the 16-byte aligned end of memory given to that vCPU
/// alone, for good; the vCPU must exist and be down.
pub unsafe fn start_vcpu(vcpu: u32, stack_top: u64) -> Result<(), Errno> {
    use xen_abi::pv::{CpuUserRegs, VcpuGuestContext, FLAT_KERNEL_CS, FLAT_KERNEL_SS, VGCF_IN_KERNEL};
    use xen_abi::vcpu::{VCPUOP_INITIALISE, VCPUOP_UP};
    let l4 = start_info().pt_base;
    let l4_mfn = mm::p2m(l4 >> xen_abi::PAGE_SHIFT).ok_or(Errno(xen_abi::errno::EINVAL))?;
    let (event, failsafe) = traps::callbacks();
    let mut ctx = alloc::boxed::Box::new(VcpuGuestContext::default());
    ctx.flags = VGCF_IN_KERNEL;
    let mut regs = CpuUserRegs {
        rip: pv_secondary as *const () as u64,
        rsp: stack_top,
        // saved_upcall_mask (byte 4) = 1: start with upcalls masked.
        cs: u64::from(FLAT_KERNEL_CS) | 1 << 32,
        ss: u64::from(FLAT_KERNEL_SS),
        rflags: 0x200,
        ..Default::default()
    };
    regs.gprs[CpuUserRegs::RDI] = u64::from(vcpu);
    ctx.user_regs = regs;
    traps::fill_vector_table(&mut ctx.trap_ctxt);
    ctx.kernel_ss = u64::from(FLAT_KERNEL_SS);
    ctx.kernel_sp = stack_top;
    ctx.ctrlreg[3] = l4_mfn << xen_abi::PAGE_SHIFT;
    ctx.event_callback_eip = event;
    ctx.failsafe_callback_eip = failsafe;
    ctx.gs_base_kernel = events::gs_base_for(vcpu);
    // The vCPU never takes upcalls: its IPI port is masked and polled.
    crate::shared_info::upcall_mask(vcpu as usize).store(1, core::sync::atomic::Ordering::SeqCst);
    // SAFETY: the argument is a struct vcpu_guest_context; the entry, the
    // page tables and the stack are valid as the caller promised.
    unsafe { hypercall::vcpu_op(VCPUOP_INITIALISE, vcpu, &mut *ctx) }?;
    let mut none = 0u64;
    // SAFETY: VCPUOP_up takes no argument.
    unsafe { hypercall::vcpu_op(VCPUOP_UP, vcpu, &mut none) }?;
    Ok(())
}

/// PV [`crate::arch::map_ram`]: maps all RAM 1:1, reserving the page
/// tables it built and the console and xenstore pages in `boot`.
pub fn map_ram(boot: &mut BootInfo) -> u64 {
    let si = start_info();
    for mfn in [si.console_mfn, si.store_mfn] {
        if let Some(addr) = mm::frame_addr(mfn) {
            boot.reserve(addr, xen_abi::PAGE_SIZE as u64);
        }
    }
    match mm::map_ram() {
        Ok(tables) => boot.reserve(tables.start, tables.end - tables.start),
        Err(e) => crate::console::early_print(format_args!(
            "xenolith: cannot map RAM beyond the initial {:#x} bytes: {e}\n",
            mm::mapped_limit()
        )),
    }
    mm::mapped_limit()
}

/// PV [`crate::arch::map_shared_info`]: maps the machine frame start_info
/// names over `page` (update_va_mapping), then masks upcalls in it.
///
/// # Safety
/// As for [`crate::arch::map_shared_info`].
pub unsafe fn map_shared_info(page: *mut u8) -> Result<(), Errno> {
    let maddr = start_info().shared_info_maddr;
    // SAFETY: forwarded to the caller; the frame is Xen's shared info page,
    // which Xen shares with this domain.
    unsafe { mm::map_frame(page as u64, maddr >> xen_abi::PAGE_SHIFT) }?;
    // Until now the interrupt-flag functions wrote a placeholder page; the
    // real mask is whatever Xen left. Upcalls stay off until the runtime
    // enables interrupts.
    events::disable();
    Ok(())
}

/// A ring page given by its machine frame, found in the 1:1 map.
fn ring(mfn: u64, port: u32) -> Result<RingPage, Errno> {
    let addr = mm::frame_addr(mfn).ok_or(Errno(xen_abi::errno::EINVAL))?;
    Ok(RingPage { addr, port })
}

/// PV [`crate::arch::console_ring`]: start_info.console.domU.
pub fn console_ring() -> Result<RingPage, Errno> {
    let si = start_info();
    ring(si.console_mfn, si.console_evtchn)
}

/// PV [`crate::arch::xenstore_ring`]: start_info.store_mfn/store_evtchn.
pub fn xenstore_ring() -> Result<RingPage, Errno> {
    let si = start_info();
    ring(si.store_mfn, si.store_evtchn)
}

/// PV [`crate::arch::map_grant_frames`]: GNTTABOP_setup_table for the
/// machine frames, then one mmu_update mapping them at `first`. A bad
/// GNTST_* status is reported as EINVAL.
///
/// # Safety
/// As for [`crate::arch::map_grant_frames`].
pub unsafe fn map_grant_frames(first: *mut u8, nr_frames: u32) -> Result<(), Errno> {
    if nr_frames == 0 || nr_frames > DEFAULT_MAX_GRANT_FRAMES {
        return Err(Errno(xen_abi::errno::EINVAL));
    }
    let mut frames = [0u64; DEFAULT_MAX_GRANT_FRAMES as usize];
    let mut arg = SetupTable {
        dom: xen_abi::DOMID_SELF,
        pad: 0,
        nr_frames,
        status: 0,
        pad2: [0; 3],
        frame_list: frames.as_mut_ptr() as u64,
    };
    // SAFETY: one gnttab_setup_table whose frame list has room for
    // nr_frames entries, both live for the call.
    let rc = unsafe {
        hypercall::hypercall3(
            nr::GRANT_TABLE_OP,
            GNTTABOP_SETUP_TABLE.into(),
            &mut arg as *mut SetupTable as u64,
            1,
        )
    };
    Errno::check(rc)?;
    if arg.status != GNTST_OKAY {
        return Err(Errno(xen_abi::errno::EINVAL));
    }
    // SAFETY: forwarded to the caller.
    unsafe { mm::map_frames(first as u64, &frames[..nr_frames as usize]) }
}
