//! The PV "IDT": a trap table (set_trap_table) and two callbacks
//! (callback_op): the event-channel upcall and the failsafe.
//!
//! Xen delivers an exception or an event by building a frame on our stack
//! that is the hardware's frame with RCX and R11 pushed below it (Xen's
//! SYSRET path clobbers them): `rcx, r11, [error code,] rip, cs, rflags,
//! rsp, ss`. Each stub pops RCX and R11 back, which leaves exactly what
//! the PVH stubs see, pushes (error code,) vector and joins the same
//! register save and the same Rust handler (`xenolith_trap`). The way out
//! differs: a ring-3 kernel cannot restore the upcall mask with IRETQ, so
//! the common code returns through HYPERVISOR_iret (the stub at
//! `hypercall_page + 23 * 32`), which restores RAX, R11, RCX, the frame,
//! and the upcall mask from the saved RFLAGS.IF.
//!
//! Exceptions are delivered with upcalls masked (TI_MASK_EVENTS, like an
//! interrupt gate) and are fatal; the event callback always runs masked.

use xen_abi::hypercall as nr;
use xen_abi::pv::{
    CallbackRegister, TrapInfo, CALLBACKF_MASK_EVENTS, CALLBACKOP_REGISTER, CALLBACKTYPE_EVENT,
    CALLBACKTYPE_FAILSAFE, FLAT_KERNEL_CS, TI_MASK_EVENTS,
};

use crate::arch::x86_64::traps::{save_call_restore, UPCALL_VECTOR};
use crate::hypercall::{self, Errno};

core::arch::global_asm!(
    concat!(
    r#"
    .section .text.pv_traps, "ax"
    .code64
    .macro PV_TRAP_NOERR vec
pv_trap_\vec:
    popq %rcx
    popq %r11
    pushq $0
    pushq $\vec
    jmp pv_trap_common
    .endm
    .macro PV_TRAP_ERR vec
pv_trap_\vec:
    popq %rcx
    popq %r11
    pushq $\vec
    jmp pv_trap_common
    .endm

    .irp v, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
    PV_TRAP_NOERR \v
    .endr
    /* Xen passes the error code for these, as the CPU does. */
    .irp v, 8,10,11,12,13,14,17,21,29,30
    PV_TRAP_ERR \v
    .endr

    .globl pv_event_callback
pv_event_callback:
    popq %rcx
    popq %r11
    pushq $0
    pushq ${upcall}
    jmp pv_trap_common

    /* Xen could not load a segment register or return to us. Nothing to
       return to: report the stack (Xen 4.17 puts DS, ES, FS, GS and an
       iret frame there after segment-load failures) and crash. */
    .globl pv_failsafe_callback
pv_failsafe_callback:
    popq %rcx
    popq %r11
    movq %rsp, %rdi
    andq $-16, %rsp
    cld
    call xenolith_pv_failsafe
    ud2

pv_trap_common:
"#,
    save_call_restore!(),
    r#"    /* iret_context: the stub pushes RCX, R11, RAX below these flags (0: a
       full return, RCX and R11 restored) and the frame. */
    pushq $0
    jmp hypercall_page + {iret}

    .section .rodata.pv_trap_table, "a"
    .balign 8
pv_trap_stubs:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad pv_trap_\v
    .endr
    "#
    ),
    upcall = const UPCALL_VECTOR,
    iret = const nr::IRET as usize * xen_abi::hypercall::STUB_SIZE,
    options(att_syntax)
);

unsafe extern "C" {
    static pv_trap_stubs: [u64; 32];
    fn pv_event_callback();
    fn pv_failsafe_callback();
}

/// The trap table's entries: vectors 0-31 except NMI (which Xen sends to
/// an NMI callback we do not register), each a stub ending in
/// xenolith_trap, delivered with events masked.
fn trap_entries() -> impl Iterator<Item = TrapInfo> {
    // SAFETY: a 32-entry read-only table of stub addresses defined above.
    let stubs = unsafe { &pv_trap_stubs };
    stubs.iter().enumerate().filter(|&(v, _)| v != 2).map(|(v, &address)| TrapInfo {
        vector: v as u8,
        flags: TI_MASK_EVENTS,
        cs: FLAT_KERNEL_CS,
        pad: 0,
        address,
    })
}

/// The same traps as a virtual IDT indexed by vector (a
/// `vcpu_guest_context`'s `trap_ctxt`, for a secondary vCPU).
pub(in crate::arch::x86_64) fn fill_vector_table(table: &mut [TrapInfo; 256]) {
    for t in trap_entries() {
        table[usize::from(t.vector)] = t;
    }
}

/// The event and failsafe callbacks' addresses.
pub(in crate::arch::x86_64) fn callbacks() -> (u64, u64) {
    (pv_event_callback as *const () as u64, pv_failsafe_callback as *const () as u64)
}

/// Installs the trap table and the event and failsafe callbacks.
pub(super) fn init() -> Result<(), Errno> {
    let mut table = [TrapInfo::default(); 33];
    for (slot, t) in table.iter_mut().zip(trap_entries()) {
        *slot = t;
    }
    // The last entry stays zero: the terminator.
    // SAFETY: a zero-terminated trap_info array; Xen copies it. Every
    // address is a stub above that ends in xenolith_trap.
    Errno::check(unsafe { hypercall::hypercall1(nr::SET_TRAP_TABLE, table.as_ptr() as u64) })?;
    let (event, failsafe) = callbacks();
    register(CALLBACKTYPE_EVENT, 0, event)?;
    register(CALLBACKTYPE_FAILSAFE, CALLBACKF_MASK_EVENTS, failsafe)
}

fn register(ty: u16, flags: u16, address: u64) -> Result<(), Errno> {
    let mut cb = CallbackRegister {
        ty,
        flags,
        pad: 0,
        address,
    };
    // SAFETY: a callback_register, live for the call; the address is one of
    // the entry stubs above.
    Errno::check(unsafe {
        hypercall::hypercall2(
            nr::CALLBACK_OP,
            CALLBACKOP_REGISTER.into(),
            &mut cb as *mut CallbackRegister as u64,
        )
    })
    .map(drop)
}

/// The failsafe callback: Xen failed to load a segment register or to
/// return to us. `stack` points at what Xen left above RCX and R11.
#[unsafe(no_mangle)]
extern "C" fn xenolith_pv_failsafe(stack: *const [u64; 9]) -> ! {
    // SAFETY: Xen built at least an iret frame on our stack there, and the
    // boot stack extends well beyond nine words above any frame.
    let w = unsafe { &*stack };
    crate::console::emergency_print(format_args!(
        "xenolith: Xen failsafe callback (a segment load or a return to the \
         guest failed); stack: {:#x} {:#x} {:#x} {:#x} {:#x} {:#x} {:#x} {:#x} {:#x}\n",
        w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8]
    ));
    crate::shutdown::crash()
}
