//! The classic 64-bit PV guest ABI (xen.h, arch-x86/xen.h,
//! arch-x86/xen-x86_64.h, callback.h): the start info page, the virtual IDT
//! (trap table), callback registration, page-table updates and the fixed
//! virtual-address layout Xen imposes on 64-bit PV kernels.
//!
//! A PV kernel runs in ring 3 with page tables it may only change through
//! hypercalls (`mmu_update`, `mmuext_op`, `update_va_mapping`); interrupts
//! are event-channel upcalls masked through `vcpu_info.evtchn_upcall_mask`.

/// Prefix of `start_info.magic` ("xen-3.0-x86_64" for a 64-bit PV guest).
pub const START_INFO_MAGIC_PREFIX: &[u8] = b"xen-";
/// Length of `start_info.cmd_line` (MAX_GUEST_CMDLINE).
pub const MAX_GUEST_CMDLINE: usize = 1024;

/// struct start_info (x86_64): what the domain builder hands a PV guest in
/// RSI. Addresses named "virtual" are in the initial mapping; `shared_info`
/// is a machine address and the two ring pages are machine frame numbers.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct StartInfo {
    /// `"xen-<version>-<platform>"`, NUL-padded.
    pub magic: [u8; 32],
    /// Pages allocated to the domain (the pseudo-physical size).
    pub nr_pages: u64,
    /// Machine address of the shared info page.
    pub shared_info: u64,
    /// SIF_* flags.
    pub flags: u32,
    /// Padding.
    pub pad0: u32,
    /// Machine frame of the xenstore ring.
    pub store_mfn: u64,
    /// Event channel of the xenstore ring.
    pub store_evtchn: u32,
    /// Padding.
    pub pad1: u32,
    /// console.domU.mfn: machine frame of the console ring.
    pub console_mfn: u64,
    /// console.domU.evtchn: event channel of the console ring.
    pub console_evtchn: u32,
    /// Padding (end of the console union).
    pub pad2: u32,
    /// Virtual address of the top-level page table (L4).
    pub pt_base: u64,
    /// Number of bootstrap page-table frames.
    pub nr_pt_frames: u64,
    /// Virtual address of the physical-to-machine list (one u64 per page).
    pub mfn_list: u64,
    /// Virtual address (or PFN with SIF_MOD_START_PFN) of the module.
    pub mod_start: u64,
    /// Size of the module in bytes.
    pub mod_len: u64,
    /// The command line, NUL-terminated.
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    /// First pfn of the initial P->M table (with XEN_ELFNOTE_INIT_P2M).
    pub first_p2m_pfn: u64,
    /// Number of pfns of the initial P->M table.
    pub nr_p2m_frames: u64,
}
crate::assert_size!(StartInfo, 1168);

/// The domain is privileged.
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// The domain is the initial control domain.
pub const SIF_INITDOMAIN: u32 = 1 << 1;
/// `mod_start` is a multiboot module list.
pub const SIF_MULTIBOOT_MOD: u32 = 1 << 2;
/// `mod_start` is a PFN, not a virtual address.
pub const SIF_MOD_START_PFN: u32 = 1 << 3;

/// struct trap_info (x86_64): one virtual IDT entry for set_trap_table.
/// The table ends with an entry whose `address` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapInfo {
    /// Exception vector.
    pub vector: u8,
    /// Bits 0-1: the privilege level that may raise it with `int`;
    /// bit 2 ([`TI_MASK_EVENTS`]): mask events on entry (an interrupt gate).
    pub flags: u8,
    /// Code selector ([`FLAT_KERNEL_CS`]).
    pub cs: u16,
    /// Padding.
    pub pad: u32,
    /// Handler address.
    pub address: u64,
}
crate::assert_size!(TrapInfo, 16);

/// TI_SET_IF: deliver with events masked, as an x86 interrupt gate clears IF.
pub const TI_MASK_EVENTS: u8 = 1 << 2;

/// The flat 64-bit kernel code selector Xen provides (ring 3).
pub const FLAT_KERNEL_CS: u16 = 0xe033;
/// The flat kernel stack selector.
pub const FLAT_KERNEL_SS: u16 = 0xe02b;
/// The kernel data selector in 64-bit mode (the null selector).
pub const FLAT_KERNEL_DS: u16 = 0;

/// callback_op: register a callback.
pub const CALLBACKOP_REGISTER: u32 = 0;
/// callback_op: unregister a callback.
pub const CALLBACKOP_UNREGISTER: u32 = 1;
/// The event-channel upcall.
pub const CALLBACKTYPE_EVENT: u16 = 0;
/// Called when Xen cannot return to the guest (bad segment or frame).
pub const CALLBACKTYPE_FAILSAFE: u16 = 1;
/// The `syscall` entry from guest user mode.
pub const CALLBACKTYPE_SYSCALL: u16 = 2;
/// The NMI callback.
pub const CALLBACKTYPE_NMI: u16 = 4;
/// Mask events while the callback runs (always so for event and NMI).
pub const CALLBACKF_MASK_EVENTS: u16 = 1 << 0;

/// struct callback_register (x86_64: the callback is a plain address).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CallbackRegister {
    /// CALLBACKTYPE_*.
    pub ty: u16,
    /// CALLBACKF_*.
    pub flags: u16,
    /// Padding.
    pub pad: u32,
    /// Entry address.
    pub address: u64,
}
crate::assert_size!(CallbackRegister, 16);

/// struct mmu_update: one request of the mmu_update hypercall.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmuUpdate {
    /// Machine address of the entry, with the MMU_* command in bits 1:0.
    pub ptr: u64,
    /// The new entry (or pfn for MMU_MACHPHYS_UPDATE).
    pub val: u64,
}
crate::assert_size!(MmuUpdate, 16);

/// `*ptr = val`, checked (ptr is the machine address of a page-table entry).
pub const MMU_NORMAL_PT_UPDATE: u64 = 0;
/// Update the machine-to-physical entry of the frame at `ptr`.
pub const MMU_MACHPHYS_UPDATE: u64 = 1;
/// As MMU_NORMAL_PT_UPDATE, keeping the entry's accessed/dirty bits.
pub const MMU_PT_UPDATE_PRESERVE_AD: u64 = 2;

/// struct mmuext_op (x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MmuextOp {
    /// MMUEXT_*.
    pub cmd: u32,
    /// Padding.
    pub pad: u32,
    /// mfn or linear address, depending on `cmd`.
    pub arg1: u64,
    /// nr_ents, vcpumask or src_mfn, depending on `cmd`.
    pub arg2: u64,
}
crate::assert_size!(MmuextOp, 24);

/// Pin an L1 table (validate it and keep its type).
pub const MMUEXT_PIN_L1_TABLE: u32 = 0;
/// Pin an L2 table.
pub const MMUEXT_PIN_L2_TABLE: u32 = 1;
/// Pin an L3 table.
pub const MMUEXT_PIN_L3_TABLE: u32 = 2;
/// Pin an L4 table.
pub const MMUEXT_PIN_L4_TABLE: u32 = 3;
/// Unpin a table.
pub const MMUEXT_UNPIN_TABLE: u32 = 4;
/// Switch to a new (pinned) top-level table.
pub const MMUEXT_NEW_BASEPTR: u32 = 5;
/// Flush this vCPU's TLB.
pub const MMUEXT_TLB_FLUSH_LOCAL: u32 = 6;
/// Flush one linear address from this vCPU's TLB.
pub const MMUEXT_INVLPG_LOCAL: u32 = 7;
/// Flush every vCPU's TLB.
pub const MMUEXT_TLB_FLUSH_ALL: u32 = 10;

/// update_va_mapping flags: no flush.
pub const UVMF_NONE: u64 = 0;
/// Flush the whole TLB.
pub const UVMF_TLB_FLUSH: u64 = 1;
/// Flush only the updated address.
pub const UVMF_INVLPG: u64 = 2;
/// Flush on this vCPU only.
pub const UVMF_LOCAL: u64 = 0;
/// Flush on every vCPU.
pub const UVMF_ALL: u64 = 1 << 2;

/// Page-table entry bits Xen accepts from a 64-bit PV guest.
pub mod pte {
    /// Present.
    pub const PRESENT: u64 = 1 << 0;
    /// Writable.
    pub const RW: u64 = 1 << 1;
    /// Reachable from guest user mode (Xen adds it to kernel entries
    /// itself; a 64-bit PV kernel runs in ring 3).
    pub const USER: u64 = 1 << 2;
    /// Accessed.
    pub const ACCESSED: u64 = 1 << 5;
    /// Dirty.
    pub const DIRTY: u64 = 1 << 6;
    /// Large page (PV guests may not set it: no superpages).
    pub const PSE: u64 = 1 << 7;
    /// No execute.
    pub const NX: u64 = 1 << 63;
    /// The frame number bits (bits 12..51).
    pub const FRAME_MASK: u64 = 0x000f_ffff_ffff_f000;
    /// A kernel data page, as libxenguest maps the initial region.
    pub const L1_KERNEL: u64 = PRESENT | RW | ACCESSED | DIRTY;
    /// An intermediate table entry (L2, L3, L4), as libxenguest writes them.
    pub const TABLE: u64 = PRESENT | RW | ACCESSED | DIRTY | USER;
}

/// Start of the area Xen reserves in every 64-bit PV address space.
pub const HYPERVISOR_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// End of Xen's reserved area.
pub const HYPERVISOR_VIRT_END: u64 = 0xFFFF_8800_0000_0000;
/// The read-only machine-to-physical table: one u64 pfn per machine frame.
pub const MACH2PHYS_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// End of the machine-to-physical table.
pub const MACH2PHYS_VIRT_END: u64 = 0xFFFF_8040_0000_0000;
/// Entries of the machine-to-physical table.
pub const MACH2PHYS_NR_ENTRIES: u64 = (MACH2PHYS_VIRT_END - MACH2PHYS_VIRT_START) >> 3;
/// A p2m entry for a pfn with no machine frame.
pub const INVALID_MFN: u64 = !0;

/// HYPERVISOR_iret flags: return as SYSRET would (RCX and R11 discarded).
pub const VGCF_IN_SYSCALL: u64 = 1 << 8;
/// struct iret_context: the words the iret hypercall pops, lowest first
/// (rax, r11, rcx, flags, rip, cs, rflags, rsp, ss).
pub const IRET_CONTEXT_WORDS: usize = 9;

/// The values of the ELF notes a 64-bit PV kernel must carry (elfnote.h).
pub mod notes {
    /// XEN_ELFNOTE_XEN_VERSION: the only version libelf accepts.
    pub const XEN_VERSION: &str = "xen-3.0";
    /// XEN_ELFNOTE_LOADER: libelf accepts "generic" (or a Linux GUEST_OS).
    pub const LOADER: &str = "generic";
}

/// HYPERVISOR_set_segment_base: the kernel-mode GS base.
pub const SEGBASE_GS_KERNEL: u32 = 2;

/// `vcpu_guest_context.flags`: the vCPU starts in (guest) kernel mode.
pub const VGCF_IN_KERNEL: u64 = 1 << 2;

/// struct cpu_user_regs (x86_64): a PV vCPU's general registers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuUserRegs {
    /// r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi,
    /// rdi, in Xen's order.
    pub gprs: [u64; 15],
    /// Error code of the exception being delivered (Xen's; write 0).
    pub error_code: u32,
    /// Vector being delivered (Xen's; write 0).
    pub entry_vector: u32,
    /// rip.
    pub rip: u64,
    /// cs (and padding).
    pub cs: u64,
    /// rflags.
    pub rflags: u64,
    /// rsp.
    pub rsp: u64,
    /// ss (and padding).
    pub ss: u64,
    /// es, ds, fs, gs (each with padding).
    pub es: u64,
    /// ds.
    pub ds: u64,
    /// fs.
    pub fs: u64,
    /// gs.
    pub gs: u64,
}
crate::assert_size!(CpuUserRegs, 200);

impl CpuUserRegs {
    /// Index of rdi in [`CpuUserRegs::gprs`].
    pub const RDI: usize = 14;
}

/// struct vcpu_guest_context (x86_64): what VCPUOP_initialise starts a
/// classic PV vCPU with.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VcpuGuestContext {
    /// FXSAVE image (valid only with VGCF_i387_valid; zero: Xen's default).
    pub fpu_ctxt: [u8; 512],
    /// `VGCF_*`.
    pub flags: u64,
    /// The registers.
    pub user_regs: CpuUserRegs,
    /// The virtual IDT, indexed by vector (`address` 0: none).
    pub trap_ctxt: [TrapInfo; 256],
    /// LDT linear address and entries.
    pub ldt_base: u64,
    /// LDT entries.
    pub ldt_ents: u64,
    /// GDT machine frames (with `gdt_ents` 0, Xen's flat selectors only).
    pub gdt_frames: [u64; 16],
    /// GDT entries.
    pub gdt_ents: u64,
    /// The kernel stack selector used on a switch from user mode.
    pub kernel_ss: u64,
    /// The kernel stack pointer used on a switch from user mode.
    pub kernel_sp: u64,
    /// CR0..CR7: ctrlreg[3] is the L4's machine frame << 12; ctrlreg[1]
    /// the user page table (0: none).
    pub ctrlreg: [u64; 8],
    /// DR0..DR7.
    pub debugreg: [u64; 8],
    /// The event callback.
    pub event_callback_eip: u64,
    /// The failsafe callback.
    pub failsafe_callback_eip: u64,
    /// The syscall callback.
    pub syscall_callback_eip: u64,
    /// VMASST_TYPE_* (only vCPU 0's is used).
    pub vm_assist: u64,
    /// FS base.
    pub fs_base: u64,
    /// Kernel-mode GS base.
    pub gs_base_kernel: u64,
    /// User-mode GS base.
    pub gs_base_user: u64,
}
crate::assert_size!(VcpuGuestContext, 5168);

impl Default for VcpuGuestContext {
    fn default() -> Self {
        Self {
            fpu_ctxt: [0; 512],
            flags: 0,
            user_regs: CpuUserRegs::default(),
            trap_ctxt: [TrapInfo::default(); 256],
            ldt_base: 0,
            ldt_ents: 0,
            gdt_frames: [0; 16],
            gdt_ents: 0,
            kernel_ss: 0,
            kernel_sp: 0,
            ctrlreg: [0; 8],
            debugreg: [0; 8],
            event_callback_eip: 0,
            failsafe_callback_eip: 0,
            syscall_callback_eip: 0,
            vm_assist: 0,
            fs_base: 0,
            gs_base_kernel: 0,
            gs_base_user: 0,
        }
    }
}
