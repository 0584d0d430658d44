//! The shared info page and per-vCPU info (xen.h, arch-x86/xen.h): event
//! channel bitmaps, the upcall flags, pvclock time and the wallclock.

/// vCPUs whose vcpu_info lives in the shared info page.
pub const LEGACY_MAX_VCPUS: usize = 32;
/// Event channels in the 2-level ABI on x86_64 (64 * 64).
pub const NR_EVENT_CHANNELS: u32 = 64 * 64;

/// struct vcpu_time_info: the pvclock record.
///
/// Guest time = system_time + ((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul >> 32
/// (a negative shift shifts right). `version` is odd while an update is in progress.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VcpuTimeInfo {
    /// Odd while the hypervisor updates the record.
    pub version: u32,
    /// Padding.
    pub pad0: u32,
    /// TSC at the moment `system_time` was taken.
    pub tsc_timestamp: u64,
    /// Nanoseconds since the domain booted, at `tsc_timestamp`.
    pub system_time: u64,
    /// TSC-to-nanoseconds multiplier (32.32 fixed point).
    pub tsc_to_system_mul: u32,
    /// Shift applied to the TSC delta before multiplying.
    pub tsc_shift: i8,
    /// XEN_PVCLOCK_* flags.
    pub flags: u8,
    /// Padding.
    pub pad1: [u8; 2],
}
crate::assert_size!(VcpuTimeInfo, 32);

/// The TSC is stable across vCPUs (XEN_PVCLOCK_TSC_STABLE_BIT).
pub const PVCLOCK_TSC_STABLE: u8 = 1 << 0;

/// struct vcpu_info.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VcpuInfo {
    /// Set by Xen when an event is pending for this vCPU.
    pub evtchn_upcall_pending: u8,
    /// Set by the guest to hold off upcalls (PV; ignored for HVM delivery).
    pub evtchn_upcall_mask: u8,
    /// Padding to the next word.
    pub pad: [u8; 6],
    /// Which words of `evtchn_pending` may have bits set.
    pub evtchn_pending_sel: u64,
    /// arch_vcpu_info.cr2.
    pub cr2: u64,
    /// arch_vcpu_info.pad.
    pub arch_pad: u64,
    /// This vCPU's pvclock.
    pub time: VcpuTimeInfo,
}
crate::assert_size!(VcpuInfo, 64);

/// struct shared_info (x86_64).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SharedInfo {
    /// Per-vCPU info for the first [`LEGACY_MAX_VCPUS`] vCPUs.
    pub vcpu_info: [VcpuInfo; LEGACY_MAX_VCPUS],
    /// One bit per event channel: an event is pending.
    pub evtchn_pending: [u64; 64],
    /// One bit per event channel: the guest masked it.
    pub evtchn_mask: [u64; 64],
    /// Odd while the wallclock is updated.
    pub wc_version: u32,
    /// Wallclock seconds at system time 0 (low 32 bits).
    pub wc_sec: u32,
    /// Wallclock nanoseconds at system time 0.
    pub wc_nsec: u32,
    /// Wallclock seconds, high 32 bits.
    pub wc_sec_hi: u32,
    /// arch_shared_info.max_pfn.
    pub max_pfn: u64,
    /// arch_shared_info.pfn_to_mfn_frame_list_list.
    pub pfn_to_mfn_frame_list_list: u64,
    /// arch_shared_info.nmi_reason.
    pub nmi_reason: u64,
    /// arch_shared_info.p2m_cr3.
    pub p2m_cr3: u64,
    /// arch_shared_info.p2m_vaddr.
    pub p2m_vaddr: u64,
    /// arch_shared_info.p2m_generation.
    pub p2m_generation: u64,
}
crate::assert_size!(SharedInfo, 3136);

/// Byte offset of vCPU `n`'s vcpu_info in the shared info page.
pub const fn vcpu_info_offset(n: usize) -> usize {
    n * core::mem::size_of::<VcpuInfo>()
}
/// Byte offset of `evtchn_pending` in the shared info page.
pub const EVTCHN_PENDING: usize = core::mem::offset_of!(SharedInfo, evtchn_pending);
/// Byte offset of `evtchn_mask` in the shared info page.
pub const EVTCHN_MASK: usize = core::mem::offset_of!(SharedInfo, evtchn_mask);
/// Byte offset of `wc_version` in the shared info page.
pub const WC_VERSION: usize = core::mem::offset_of!(SharedInfo, wc_version);
/// Byte offset of `evtchn_upcall_pending` in a vcpu_info.
pub const VCPU_UPCALL_PENDING: usize = core::mem::offset_of!(VcpuInfo, evtchn_upcall_pending);
/// Byte offset of `evtchn_upcall_mask` in a vcpu_info.
pub const VCPU_UPCALL_MASK: usize = core::mem::offset_of!(VcpuInfo, evtchn_upcall_mask);
/// Byte offset of `evtchn_pending_sel` in a vcpu_info.
pub const VCPU_PENDING_SEL: usize = core::mem::offset_of!(VcpuInfo, evtchn_pending_sel);
/// Byte offset of `time` in a vcpu_info.
pub const VCPU_TIME: usize = core::mem::offset_of!(VcpuInfo, time);
