//! The vcpu_op hypercall (vcpu.h).

/// `VCPUOP_INITIALISE`.
pub const VCPUOP_INITIALISE: u32 = 0;
/// `VCPUOP_UP`.
pub const VCPUOP_UP: u32 = 1;
/// `VCPUOP_DOWN`.
pub const VCPUOP_DOWN: u32 = 2;
/// `VCPUOP_IS_UP`.
pub const VCPUOP_IS_UP: u32 = 3;
/// `VCPUOP_GET_RUNSTATE_INFO`.
pub const VCPUOP_GET_RUNSTATE_INFO: u32 = 4;
/// `VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA`.
pub const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u32 = 5;
/// `VCPUOP_SET_PERIODIC_TIMER`.
pub const VCPUOP_SET_PERIODIC_TIMER: u32 = 6;
/// `VCPUOP_STOP_PERIODIC_TIMER`.
pub const VCPUOP_STOP_PERIODIC_TIMER: u32 = 7;
/// `VCPUOP_SET_SINGLESHOT_TIMER`.
pub const VCPUOP_SET_SINGLESHOT_TIMER: u32 = 8;
/// `VCPUOP_STOP_SINGLESHOT_TIMER`.
pub const VCPUOP_STOP_SINGLESHOT_TIMER: u32 = 9;
/// `VCPUOP_REGISTER_VCPU_INFO`.
pub const VCPUOP_REGISTER_VCPU_INFO: u32 = 10;
/// `VCPUOP_SEND_NMI`.
pub const VCPUOP_SEND_NMI: u32 = 11;
/// `VCPUOP_GET_PHYSID`.
pub const VCPUOP_GET_PHYSID: u32 = 12;
/// `VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA`.
pub const VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA: u32 = 13;

/// struct vcpu_set_singleshot_timer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SetSingleshotTimer {
    /// Absolute system time (ns) to fire at.
    pub timeout_abs_ns: u64,
    /// VCPU_SSHOTTMR_*.
    pub flags: u32,
    /// Padding.
    pub pad: u32,
}
crate::assert_size!(SetSingleshotTimer, 16);

/// Fail with -ETIME if the timeout is already in the past.
pub const SSHOTTMR_FUTURE: u32 = 1 << 0;

/// struct vcpu_register_vcpu_info.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RegisterVcpuInfo {
    /// Guest frame holding the new vcpu_info.
    pub mfn: u64,
    /// Offset of the vcpu_info in that frame.
    pub offset: u32,
    /// Must be zero.
    pub rsvd: u32,
}
crate::assert_size!(RegisterVcpuInfo, 16);

/// `vcpu_hvm_context.mode`: start the vCPU in 64-bit mode, its segments
/// set up by Xen as flat long-mode ones (hvm/hvm_vcpu.h).
pub const VCPU_HVM_MODE_64B: u32 = 1;

/// struct vcpu_hvm_x86_64: the registers a PVH/HVM vCPU starts with when
/// VCPUOP_initialise is given `VCPU_HVM_MODE_64B`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuHvmX86_64 {
    /// rax.
    pub rax: u64,
    /// rcx.
    pub rcx: u64,
    /// rdx.
    pub rdx: u64,
    /// rbx.
    pub rbx: u64,
    /// rsp.
    pub rsp: u64,
    /// rbp.
    pub rbp: u64,
    /// rsi.
    pub rsi: u64,
    /// rdi.
    pub rdi: u64,
    /// rip.
    pub rip: u64,
    /// rflags.
    pub rflags: u64,
    /// cr0 (PE and PG set).
    pub cr0: u64,
    /// cr3: the page tables.
    pub cr3: u64,
    /// cr4 (PAE set).
    pub cr4: u64,
    /// EFER (LME set).
    pub efer: u64,
}
crate::assert_size!(VcpuHvmX86_64, 112);

/// struct vcpu_hvm_context, the argument of VCPUOP_initialise for a
/// PVH/HVM guest. Only the 64-bit registers are written here; the padding
/// covers the union's larger 32-bit member (120 bytes), which Xen copies
/// in whole.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VcpuHvmContext {
    /// `VCPU_HVM_MODE_*`.
    pub mode: u32,
    /// Padding.
    pub pad: u32,
    /// The registers (union member x86_64).
    pub x86_64: VcpuHvmX86_64,
    /// The rest of the union (its x86_32 member is 120 bytes).
    pub union_tail: [u8; 8],
}
crate::assert_size!(VcpuHvmContext, 128);
