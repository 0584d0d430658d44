//! Leaving long mode for the next kernel's 32-bit entry (PVH, multiboot 1).
//!
//! docs/misc/pvh.pandoc asks for: CR0 with only PE set (ET is fixed), CR4
//! = 0, paging off, CS a flat 32-bit code segment, DS/ES/SS flat 32-bit data,
//! TR a 32-bit TSS (base 0 here is not required: any valid 32-bit TSS), EFLAGS
//! with VM, IF and TF clear, EBX = the start info. Multiboot 1 asks for the
//! same machine state with EAX = 0x2BADB002 and EBX = its info structure.
//!
//! The way down, verified on this machine's software KVM (see
//! /work/shared/design/pvboot.md): from 64-bit code on an identity-mapped
//! page, `lretq` to a 32-bit code selector (compatibility mode), clear
//! CR0.PG (long mode is now inactive), clear EFER.LME, clear CR4, far-jump
//! to reload CS, load the flat data selectors and TR, clear EFLAGS, jump.
//! No IRET: the software KVM here cannot emulate a 32-bit one.
//!
//! The GDT and TSS live in the image; the next kernel loads its own GDT
//! before it reloads a segment register (the PVH ABI leaves the GDT's
//! location unspecified and Linux, GRUB and our guests all do so first).
//!
//! A last copy can run between the mode switch and the jump ([`Jump`]): a
//! kernel staged elsewhere is moved over this very image (pvboot
//! chain-loading a pvboot linked at the same address). Everything the 32-bit
//! code needs is in registers by then, and the copy runs from a 4-byte stub
//! ([`COPY_STUB`]) the caller put outside both ranges; the GDT being
//! overwritten is harmless once the segment registers are loaded.

#[cfg(target_os = "none")]
use core::cell::UnsafeCell;

#[cfg(target_os = "none")]
/// 32-bit flat code (selector 0x18 of the hand-off GDT).
const CODE32: u16 = 0x18;
#[cfg(target_os = "none")]
/// 32-bit flat data (0x20).
const DATA32: u16 = 0x20;
#[cfg(target_os = "none")]
/// A 32-bit available TSS (0x28).
const TSS32: u16 = 0x28;

#[cfg(target_os = "none")]
#[repr(C, align(16))]
struct Tables {
    gdt: [u64; 6],
    /// A 32-bit TSS is 104 bytes; it is never used (no privilege changes,
    /// no task switches), only loaded, as the ABI asks.
    tss: [u32; 26],
    /// lgdt's operand: 2-byte limit, 8-byte base (padded to 16 bytes).
    gdt_ptr: [u16; 8],
}

#[cfg(target_os = "none")]
struct TablesCell(UnsafeCell<Tables>);
#[cfg(target_os = "none")]
// SAFETY: written only by `enter32`, which never returns, with interrupts
// disabled on the only vCPU.
unsafe impl Sync for TablesCell {}

#[cfg(target_os = "none")]
static TABLES: TablesCell = TablesCell(UnsafeCell::new(Tables {
    gdt: [
        0,
        0x00af_9a00_0000_ffff, // 0x08: 64-bit code (the one we run on)
        0x00cf_9200_0000_ffff, // 0x10: flat data
        0x00cf_9a00_0000_ffff, // 0x18: 32-bit flat code
        0x00cf_9200_0000_ffff, // 0x20: 32-bit flat data
        0,                     // 0x28: the TSS, filled in at run time
    ],
    tss: [0; 26],
    gdt_ptr: [0; 8],
}));

/// An 8-byte (legacy, 32-bit) TSS descriptor for `base`, limit 0x67,
/// type 9 (available 32-bit TSS), present, DPL 0.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
fn tss_descriptor(base: u32) -> u64 {
    let base = u64::from(base);
    0x67 | ((base & 0xFF_FFFF) << 16) | (0x89 << 40) | ((base >> 24) << 56)
}

/// What [`enter32`] does at the end, read by its 32-bit code.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Jump {
    /// The 32-bit entry point.
    pub entry: u32,
    /// EBX at entry (the boot information).
    pub ebx: u32,
    /// EAX at entry (0, or the multiboot magic).
    pub eax: u32,
    /// A last copy, done with paging off just before the jump: from.
    pub copy_src: u32,
    /// ... to ...
    pub copy_dst: u32,
    /// ... this many 4-byte words (0: no copy).
    pub copy_dwords: u32,
    /// Where [`COPY_STUB`] was put (outside both copy ranges and this
    /// image, which the copy may overwrite); 0 without a copy.
    pub copy_stub: u32,
}

/// The copy stub, position-independent 32-bit code: `rep movsl; jmp *%edx`.
/// Copied by the caller to memory the copy does not touch, because the
/// copy may overwrite this very image (pvboot chain-loading a pvboot linked
/// at the same address).
pub const COPY_STUB: [u8; 4] = [0xF3, 0xA5, 0xFF, 0xE2];

#[cfg(target_os = "none")]
core::arch::global_asm!(
    r#"
    .section .text.xenolith_enter32, "ax"
    .code64
    .globl xenolith_enter32
    /* rdi = &Jump (in the image, below 4 GiB), rsi = &gdt_ptr */
xenolith_enter32:
    cli
    lgdt (%rsi)
    movl %edi, %ebp
    pushq ${code32}
    leaq 1f(%rip), %rax
    pushq %rax
    lretq
    .code32
1:  /* Compatibility mode, still paged (identity map). */
    movl %cr0, %eax
    andl $0x7fffffff, %eax
    movl %eax, %cr0             /* paging off: long mode inactive */
    movl $0xC0000080, %ecx
    rdmsr
    andl $0xfffffeff, %eax      /* EFER.LME off */
    wrmsr
    xorl %eax, %eax
    movl %eax, %cr4
    ljmp ${code32}, $2f
2:  movl ${data32}, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs
    movl ${tss32}, %eax
    ltr %ax
    pushl $2
    popfl                       /* IF, TF, VM, DF clear */
    movl 0(%ebp), %edx          /* entry */
    movl 4(%ebp), %ebx
    movl 8(%ebp), %eax
    movl 12(%ebp), %esi
    movl 16(%ebp), %edi
    movl 20(%ebp), %ecx
    movl 24(%ebp), %ebp         /* the copy stub, or 0 */
    testl %ebp, %ebp
    jz 3f
    jmp *%ebp                   /* rep movsl; jmp *%edx */
3:  jmp *%edx
    .code64
    "#,
    code32 = const CODE32,
    data32 = const DATA32,
    tss32 = const TSS32,
    options(att_syntax)
);

#[cfg(target_os = "none")]
unsafe extern "C" {
    fn xenolith_enter32(jump: *const Jump, gdt_ptr: *const u16) -> !;
}

#[cfg(target_os = "none")]
struct JumpCell(UnsafeCell<Jump>);
// SAFETY: written only by `enter32`, which never returns, with interrupts
// disabled on the only vCPU.
#[cfg(target_os = "none")]
unsafe impl Sync for JumpCell {}
#[cfg(target_os = "none")]
static JUMP: JumpCell = JumpCell(UnsafeCell::new(Jump {
    entry: 0,
    ebx: 0,
    eax: 0,
    copy_src: 0,
    copy_dst: 0,
    copy_dwords: 0,
    copy_stub: 0,
}));

/// Leaves long mode and does `jump` (see [`Jump`]) in 32-bit protected
/// mode with paging off. Interrupts are disabled first.
///
/// # Safety
/// Everything the next kernel gets must be in place: devices quiesced
/// (`crate::handoff::quiesce`), its image loaded (or staged for the copy),
/// its boot information at `jump.ebx`; a copy stub, if any, in place. This
/// image's code and data must be mapped 1:1 below 4 GiB (guests are linked
/// there).
#[cfg(target_os = "none")]
pub unsafe fn enter32(jump: Jump) -> ! {
    let t = TABLES.0.get();
    let j = JUMP.0.get();
    // SAFETY: single vCPU; nothing else touches TABLES or JUMP; both are in
    // the image, below 4 GiB, so their addresses fit 32 bits.
    unsafe {
        *j = jump;
        (*t).gdt[5] = tss_descriptor((&raw const (*t).tss) as u32);
        let gdt = (&raw const (*t).gdt) as u64;
        let limit = (core::mem::size_of::<[u64; 6]>() - 1) as u16;
        (*t).gdt_ptr = [limit, gdt as u16, (gdt >> 16) as u16, (gdt >> 32) as u16, (gdt >> 48) as u16, 0, 0, 0];
        xenolith_enter32(j, (&raw const (*t).gdt_ptr).cast())
    }
}

#[cfg(test)]
mod tests {
    use super::tss_descriptor;

    #[test]
    fn tss_descriptor_splits_the_base() {
        // Base 0x0812_3456, limit 0x67, type 0x89.
        assert_eq!(tss_descriptor(0x0812_3456), 0x0800_8912_3456_0067);
    }
}
