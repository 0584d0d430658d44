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
