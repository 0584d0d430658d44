//! Hypercall numbers (xen.h `__HYPERVISOR_*`). A hypercall page holds one
//! 32-byte stub per number.

/// Size of one stub in the hypercall page.
pub const STUB_SIZE: usize = 32;

pub const SET_TRAP_TABLE: u32 = 0;
pub const MMU_UPDATE: u32 = 1;
pub const SET_GDT: u32 = 2;
pub const STACK_SWITCH: u32 = 3;
pub const SET_CALLBACKS: u32 = 4;
pub const FPU_TASKSWITCH: u32 = 5;
pub const SCHED_OP_COMPAT: u32 = 6;
pub const PLATFORM_OP: u32 = 7;
pub const SET_DEBUGREG: u32 = 8;
pub const GET_DEBUGREG: u32 = 9;
pub const UPDATE_DESCRIPTOR: u32 = 10;
pub const MEMORY_OP: u32 = 12;
pub const MULTICALL: u32 = 13;
pub const UPDATE_VA_MAPPING: u32 = 14;
pub const SET_TIMER_OP: u32 = 15;
pub const EVENT_CHANNEL_OP_COMPAT: u32 = 16;
pub const XEN_VERSION: u32 = 17;
pub const CONSOLE_IO: u32 = 18;
pub const PHYSDEV_OP_COMPAT: u32 = 19;
pub const GRANT_TABLE_OP: u32 = 20;
pub const VM_ASSIST: u32 = 21;
pub const UPDATE_VA_MAPPING_OTHERDOMAIN: u32 = 22;
pub const IRET: u32 = 23;
pub const VCPU_OP: u32 = 24;
pub const SET_SEGMENT_BASE: u32 = 25;
pub const MMUEXT_OP: u32 = 26;
pub const XSM_OP: u32 = 27;
pub const NMI_OP: u32 = 28;
pub const SCHED_OP: u32 = 29;
pub const CALLBACK_OP: u32 = 30;
pub const XENOPROF_OP: u32 = 31;
pub const EVENT_CHANNEL_OP: u32 = 32;
pub const PHYSDEV_OP: u32 = 33;
pub const HVM_OP: u32 = 34;
pub const SYSCTL: u32 = 35;
pub const DOMCTL: u32 = 36;
pub const KEXEC_OP: u32 = 37;
pub const TMEM_OP: u32 = 38;
pub const ARGO_OP: u32 = 39;
pub const XENPMU_OP: u32 = 40;
pub const DM_OP: u32 = 41;
pub const HYPFS_OP: u32 = 42;

/// Number of stubs that fit in one hypercall page.
pub const MAX: u32 = (crate::PAGE_SIZE / STUB_SIZE) as u32;

/// The `__HYPERVISOR_*` name of a hypercall number, for logs.
pub fn name(nr: u32) -> &'static str {
    match nr {
        SET_TRAP_TABLE => "set_trap_table",
        MMU_UPDATE => "mmu_update",
        SET_GDT => "set_gdt",
        STACK_SWITCH => "stack_switch",
        SET_CALLBACKS => "set_callbacks",
        FPU_TASKSWITCH => "fpu_taskswitch",
        SCHED_OP_COMPAT => "sched_op_compat",
        PLATFORM_OP => "platform_op",
        SET_DEBUGREG => "set_debugreg",
        GET_DEBUGREG => "get_debugreg",
        UPDATE_DESCRIPTOR => "update_descriptor",
        MEMORY_OP => "memory_op",
        MULTICALL => "multicall",
        UPDATE_VA_MAPPING => "update_va_mapping",
        SET_TIMER_OP => "set_timer_op",
        EVENT_CHANNEL_OP_COMPAT => "event_channel_op_compat",
        XEN_VERSION => "xen_version",
        CONSOLE_IO => "console_io",
        PHYSDEV_OP_COMPAT => "physdev_op_compat",
        GRANT_TABLE_OP => "grant_table_op",
        VM_ASSIST => "vm_assist",
        UPDATE_VA_MAPPING_OTHERDOMAIN => "update_va_mapping_otherdomain",
        IRET => "iret",
        VCPU_OP => "vcpu_op",
        SET_SEGMENT_BASE => "set_segment_base",
        MMUEXT_OP => "mmuext_op",
        XSM_OP => "xsm_op",
        NMI_OP => "nmi_op",
        SCHED_OP => "sched_op",
        CALLBACK_OP => "callback_op",
        XENOPROF_OP => "xenoprof_op",
        EVENT_CHANNEL_OP => "event_channel_op",
        PHYSDEV_OP => "physdev_op",
        HVM_OP => "hvm_op",
        SYSCTL => "sysctl",
        DOMCTL => "domctl",
        KEXEC_OP => "kexec_op",
        TMEM_OP => "tmem_op",
        ARGO_OP => "argo_op",
        XENPMU_OP => "xenpmu_op",
        DM_OP => "dm_op",
        HYPFS_OP => "hypfs_op",
        _ => "unknown",
    }
}
