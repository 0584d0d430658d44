//! The IDT, the interrupt entry stubs, and exception reports.
//!
//! Every vector we install goes through one assembly path: the stub pushes
//! an error code (a 0 when the CPU pushes none) and the vector number, the
//! common code pushes the 15 integer registers and calls
//! `xenolith_trap` with a pointer to the resulting [`TrapFrame`]. There is
//! no SSE/x87 state to save: guests are built soft-float.
//!
//! Installed vectors: the 32 exceptions (fatal: report and crash the domain)
//! and [`UPCALL_VECTOR`], the event-channel upcall Xen injects directly
//! (HVM_PARAM_CALLBACK_IRQ type "vector": no LAPIC, so no EOI). Other
//! vectors are left not-present; one arriving raises #GP, which is reported.

use core::cell::UnsafeCell;

use super::cpu;
use super::pvh::KERNEL_CS;

/// The vector Xen injects for event-channel upcalls (Linux uses the same).
pub const UPCALL_VECTOR: u8 = 0xF3;

/// Registers saved on entry, in stack order (lowest address first).
#[repr(C)]
#[derive(Debug)]
#[allow(missing_docs)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Pushed by the stub.
    pub vector: u64,
    /// Pushed by the CPU for some exceptions, else 0 by the stub.
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}
const _: () = assert!(core::mem::size_of::<TrapFrame>() == 22 * 8);

/// The trap path both boot modes share, as assembly text: save the 15
/// general-purpose registers above the vector and error code that the entry
/// stub pushed, call `xenolith_trap` with the frame, restore the registers
/// and drop vector and error code. RSP is 16-byte aligned at the call: the
/// CPU (PVH) or Xen (PV) aligns it before its 5-word frame, and 2 + 15 more
/// words keep it so. Returning (iretq, or PV's iret hypercall) is the caller's.
macro_rules! save_call_restore {
    () => {
        "
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    cld
    call xenolith_trap
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp
"
    };
}
pub(crate) use save_call_restore;

core::arch::global_asm!(
    concat!(
    r#"
    .section .text.traps, "ax"
    .code64
    .macro TRAP_NOERR vec
trap_stub_\vec:
    pushq $0
    pushq $\vec
    jmp trap_common
    .endm
    .macro TRAP_ERR vec
trap_stub_\vec:
    pushq $\vec
    jmp trap_common
    .endm

    .irp v, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
    TRAP_NOERR \v
    .endr
    /* The CPU pushes an error code for these. */
    .irp v, 8,10,11,12,13,14,17,21,29,30
    TRAP_ERR \v
    .endr

    .globl upcall_stub
upcall_stub:
    pushq $0
    pushq ${upcall}
    jmp trap_common

trap_common:
"#,
    save_call_restore!(),
    r#"    iretq

    .section .rodata.trap_stub_table, "a"
    .balign 8
    .globl trap_stub_table
trap_stub_table:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad trap_stub_\v
    .endr
    "#
    ),
    upcall = const UPCALL_VECTOR,
    options(att_syntax)
);

unsafe extern "C" {
    static trap_stub_table: [u64; 32];
    fn upcall_stub();
}

/// One 64-bit IDT gate (16 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const MISSING: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        attributes: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    /// A present, DPL 0, 64-bit interrupt gate (IF cleared on entry).
    fn interrupt(handler: u64) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: KERNEL_CS,
            ist: 0,
            attributes: 0x8E,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt(UnsafeCell<[Gate; 256]>);
// SAFETY: written only by `init`, during single-threaded boot with
// interrupts disabled; afterwards only the CPU reads it.
unsafe impl Sync for Idt {}
static IDT: Idt = Idt(UnsafeCell::new([Gate::MISSING; 256]));

#[repr(C, packed)]
struct IdtPointer {
    limit: u16,
    base: u64,
}

/// Fills the IDT (33 gates, not 256) and loads it. Interrupts stay disabled.
pub fn init() {
    let idt = IDT.0.get();
    // SAFETY: boot is single-threaded, interrupts are off, and the IDT is
    // not loaded yet, so nothing else reads or writes it.
    unsafe {
        let table = &raw const trap_stub_table;
        for v in 0..32 {
            (*idt)[v] = Gate::interrupt((*table)[v]);
        }
        (*idt)[UPCALL_VECTOR as usize] = Gate::interrupt(upcall_stub as *const () as u64);
    }
    load();
}

/// Loads the IDT `init` filled (on the boot vCPU, and on each secondary
/// vCPU as it starts).
pub fn load() {
    let ptr = IdtPointer {
        limit: (core::mem::size_of::<[Gate; 256]>() - 1) as u16,
        base: IDT.0.get() as u64,
    };
    // SAFETY: the table is static and filled before any vCPU loads it.
    unsafe {
        core::arch::asm!("lidt [{}]", in(reg) &ptr, options(readonly, nostack, preserves_flags));
    }
}

const NAMES: [&str; 32] = [
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor segment overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack fault",
    "#GP general protection",
    "#PF page fault",
    "reserved",
    "#MF x87 error",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD error",
    "#VE virtualization",
    "#CP control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "#HV hypervisor injection",
    "#VC VMM communication",
    "#SX security",
    "reserved",
];

/// Called by the entry stubs with interrupts disabled.
#[unsafe(no_mangle)]
extern "C" fn xenolith_trap(frame: &mut TrapFrame) {
    if frame.vector == UPCALL_VECTOR as u64 {
        crate::evtchn::handle_upcall();
    } else if frame.vector < 32 {
        fatal_exception(frame);
    }
    // Any other vector has no gate, so it cannot get here.
}

/// Reports an exception with everything needed to debug it, then crashes.
fn fatal_exception(f: &TrapFrame) -> ! {
    let cr2 = cpu::read_cr2();
    crate::console::emergency_print(format_args!(
        "exception: vector {} ({}) error code {:#x}\n\
         rip {:#018x} cs {:#x} rflags {:#x} rsp {:#018x} ss {:#x} cr2 {:#018x}\n\
         rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}\n\
         rsi {:#018x} rdi {:#018x} rbp {:#018x} r8  {:#018x}\n\
         r9  {:#018x} r10 {:#018x} r11 {:#018x} r12 {:#018x}\n\
         r13 {:#018x} r14 {:#018x} r15 {:#018x}\n",
        f.vector,
        NAMES[f.vector as usize & 31],
        f.error_code,
        f.rip,
        f.cs,
        f.rflags,
        f.rsp,
        f.ss,
        cr2,
        f.rax,
        f.rbx,
        f.rcx,
        f.rdx,
        f.rsi,
        f.rdi,
        f.rbp,
        f.r8,
        f.r9,
        f.r10,
        f.r11,
        f.r12,
        f.r13,
        f.r14,
        f.r15,
    ));
    crate::shutdown::crash()
}
