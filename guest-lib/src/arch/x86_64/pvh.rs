//! The PVH entry (x86/HVM direct boot ABI, docs/misc/pvh.pandoc).
//!
//! The domain builder (Xen's libelf, our hypervisor, or QEMU's `-kernel`)
//! finds the 32-bit entry address in the `XEN_ELFNOTE_PHYS32_ENTRY` note and
//! starts the vCPU there in flat 32-bit protected mode, paging off, EBX = the
//! physical address of `hvm_start_info`, no stack.
//!
//! The 32-bit stub is kept tiny and stackless: load CR3 with the static boot
//! page tables (see `paging`), set CR4.PAE, EFER.LME, CR0.PG, load a 64-bit
//! GDT and far-jump to 64-bit code. The 64-bit part loads data segments and a
//! static stack, then calls Rust. Interrupts stay disabled until the IDT is
//! loaded, in long mode: this machine's software KVM cannot emulate a 32-bit
//! IRET.
//!
//! BSS is not zeroed here: Xen's libelf, our loader and QEMU all zero the
//! memsz − filesz tail of each PT_LOAD segment while loading (at host speed,
//! which matters when every guest instruction is emulated).

use xen_abi::elfnote;
use xen_abi::event_channel::Port;
use xen_abi::memory::{
    AddToPhysmap, XENMAPSPACE_GRANT_TABLE, XENMAPSPACE_SHARED_INFO, XENMEM_ADD_TO_PHYSMAP,
};

use crate::arch::RingPage;
use crate::hypercall::{self, Errno};

/// Size of the boot stack (the only stack: one vCPU, interrupts on it too).
const STACK_SIZE: usize = 128 * 1024;
/// EFER MSR and its long-mode-enable bit.
const MSR_EFER: u32 = 0xC000_0080;
const EFER_LME: u32 = 1 << 8;
const CR4_PAE: u32 = 1 << 5;
const CR0_PE_PG: u32 = (1 << 0) | (1 << 31);
/// GDT selectors (matching the table below).
pub const KERNEL_CS: u16 = 0x08;
/// The flat data selector.
pub const KERNEL_DS: u16 = 0x10;

core::arch::global_asm!(
    r#"
    /* The ELF note Xen's libelf, our loader and QEMU look for. Its 4-byte
       descriptor is the 32-bit entry address. linker/guest.ld puts this
       section alone in the PT_NOTE segment and 8 zero bytes after it (QEMU
       7.2 reads 8 bytes of descriptor from 64-bit ELF files). */
    .section .note.xen, "a", @note
    .balign 4
    .long 4                     /* namesz: "Xen\0" */
    .long 4                     /* descsz */
    .long {phys32_entry}        /* type: XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long pvh_start32

    .section .text.pvh_entry, "ax"
    .code32
    .globl pvh_start32
pvh_start32:
    /* EBX (hvm_start_info) is left untouched until 64-bit code reads it. */
    cld
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl ${cr4_pae}, %eax
    movl %eax, %cr4
    movl ${msr_efer}, %ecx
    rdmsr
    orl ${efer_lme}, %eax
    wrmsr
    movl %cr0, %eax
    orl ${cr0_pe_pg}, %eax
    movl %eax, %cr0
    lgdt boot_gdt_ptr
    ljmp ${kernel_cs}, $pvh_start64

    .code64
pvh_start64:
    movl ${kernel_ds}, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs
    leaq boot_stack_top(%rip), %rsp
    xorl %ebp, %ebp
    movl %ebx, %edi             /* zero-extends: the start info address */
    call xenolith_pvh_main
2:  cli
    hlt
    jmp 2b

    .section .data.boot_gdt, "aw"
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00cf92000000ffff    /* 0x10: flat data */
boot_gdt_end:
    .balign 8
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    /* The only stack; the PV entry (pv.rs) switches to it too. */
    .section .bss.boot_stack, "aw", @nobits
    .balign 16
boot_stack:
    .space {stack_size}
    .globl boot_stack_top
boot_stack_top:
    "#,
    phys32_entry = const elfnote::PHYS32_ENTRY,
    cr4_pae = const CR4_PAE,
    msr_efer = const MSR_EFER,
    efer_lme = const EFER_LME,
    cr0_pe_pg = const CR0_PE_PG,
    kernel_cs = const KERNEL_CS,
    kernel_ds = const KERNEL_DS,
    stack_size = const STACK_SIZE,
    options(att_syntax)
);

core::arch::global_asm!(
    r#"
    /* A secondary vCPU starts here (see `start_vcpu`) in 64-bit mode with
       Xen's flat segments but no GDT or IDT, interrupts off, RSP its own
       stack and RDI its number. Load the boot GDT, reload CS through a far
       return and the data segments, then go to Rust, which loads the IDT. */
    .section .text.pvh_secondary, "ax"
    .code64
    .globl pvh_secondary64
pvh_secondary64:
    lgdt secondary_gdt_ptr(%rip)
    pushq ${kernel_cs}
    leaq 1f(%rip), %rax
    pushq %rax
    lretq
1:  movl ${kernel_ds}, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs
    xorl %ebp, %ebp
    call xenolith_pvh_secondary_main
2:  cli
    hlt
    jmp 2b

    /* The boot GDT's pointer in the 10-byte long-mode form. */
    .section .data.boot_gdt, "aw"
    .balign 8
secondary_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .quad boot_gdt
    "#,
    kernel_cs = const KERNEL_CS,
    kernel_ds = const KERNEL_DS,
    options(att_syntax)
);

unsafe extern "C" {
    fn pvh_secondary64();
}

/// Starts secondary vCPU `vcpu` at the secondary entry with the boot
/// vCPU's paging and mode (VCPUOP_initialise with a 64-bit
/// `vcpu_hvm_context`, then VCPUOP_up). It calls
/// [`crate::smp::secondary_main`] with its number and never returns.
///
/// # Safety
/// `stack_top` must be the 16-byte aligned end of memory given to that vCPU
/// alone, for good; the vCPU must exist and be down.
pub unsafe fn start_vcpu(vcpu: u32, stack_top: u64) -> Result<(), Errno> {
    use xen_abi::vcpu::{VcpuHvmContext, VcpuHvmX86_64, VCPUOP_INITIALISE, VCPUOP_UP, VCPU_HVM_MODE_64B};
    use super::cpu;
    let mut ctx = VcpuHvmContext {
        mode: VCPU_HVM_MODE_64B,
        x86_64: VcpuHvmX86_64 {
            rip: pvh_secondary64 as *const () as u64,
            rsp: stack_top,
            rdi: u64::from(vcpu),
            // Reserved bit 1 only: interrupts off.
            rflags: 0x2,
            cr0: cpu::read_cr0(),
            cr3: cpu::read_cr3(),
            cr4: cpu::read_cr4(),
            // SAFETY: reading EFER has no side effects.
            efer: unsafe { cpu::rdmsr(MSR_EFER) },
            ..Default::default()
        },
        ..Default::default()
    };
    // SAFETY: the argument is a struct vcpu_hvm_context; the entry and the
    // stack are valid as the caller promised.
    unsafe { hypercall::vcpu_op(VCPUOP_INITIALISE, vcpu, &mut ctx) }?;
    let mut none = 0u64;
    // SAFETY: VCPUOP_up takes no argument.
    unsafe { hypercall::vcpu_op(VCPUOP_UP, vcpu, &mut none) }?;
    Ok(())
}

/// The first Rust code of a secondary vCPU: its own stack, interrupts off.
#[unsafe(no_mangle)]
extern "C" fn xenolith_pvh_secondary_main(vcpu: u64) -> ! {
    super::traps::load();
    crate::smp::secondary_main(vcpu as u32)
}

/// The first Rust code, in long mode with the boot stack, interrupts off.
#[unsafe(no_mangle)]
extern "C" fn xenolith_pvh_main(start_info_paddr: u64) -> ! {
    super::traps::init();
    crate::runtime::start(crate::runtime::BootMode::Pvh { start_info_paddr })
}

/// Places Xen page `idx` of `space` over the guest frame holding `page`.
///
/// # Safety
/// `page` must be an identity-mapped page reserved for this (its contents
/// are replaced).
unsafe fn add_to_physmap(space: u32, idx: u64, page: u64) -> Result<(), Errno> {
    let mut arg = AddToPhysmap {
        domid: xen_abi::DOMID_SELF,
        size: 0,
        space,
        idx,
        gpfn: page >> xen_abi::PAGE_SHIFT,
    };
    // SAFETY: the caller reserved the frame for this.
    unsafe { hypercall::memory_op(XENMEM_ADD_TO_PHYSMAP, &mut arg) }?;
    Ok(())
}

/// PVH [`crate::arch::map_shared_info`]: XENMEM_add_to_physmap.
///
/// # Safety
/// As for [`crate::arch::map_shared_info`].
pub unsafe fn map_shared_info(page: *mut u8) -> Result<(), Errno> {
    // SAFETY: forwarded to the caller.
    unsafe { add_to_physmap(XENMAPSPACE_SHARED_INFO, 0, page as u64) }
}

/// PVH [`crate::arch::map_grant_frames`]: one XENMEM_add_to_physmap per
/// frame (Xen grows the table up to the frame asked for).
///
/// # Safety
/// As for [`crate::arch::map_grant_frames`].
pub unsafe fn map_grant_frames(first: *mut u8, nr_frames: u32) -> Result<(), Errno> {
    for i in 0..nr_frames {
        let page = first as u64 + u64::from(i) * xen_abi::PAGE_SIZE as u64;
        // SAFETY: the caller reserved these frames for the grant table.
        unsafe { add_to_physmap(XENMAPSPACE_GRANT_TABLE, u64::from(i), page) }?;
    }
    Ok(())
}

/// A ring page named by two HVM params (its pfn and its event channel).
pub fn ring_from_params(pfn_param: u32, port_param: u32) -> Result<RingPage, Errno> {
    let pfn = hypercall::hvm_get_param(pfn_param)?;
    let port = hypercall::hvm_get_param(port_param)? as Port;
    Ok(RingPage {
        addr: pfn.checked_mul(xen_abi::PAGE_SIZE as u64).unwrap_or(0),
        port,
    })
}
