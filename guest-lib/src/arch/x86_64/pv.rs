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
