//! HVM operations and parameters (hvm/hvm_op.h, hvm/params.h) and the PVH
//! boot structures (hvm/start_info.h).

/// HVMOP_set_param.
pub const HVMOP_SET_PARAM: u32 = 0;
/// HVMOP_get_param.
pub const HVMOP_GET_PARAM: u32 = 1;
/// HVMOP_pagetable_dying.
pub const HVMOP_PAGETABLE_DYING: u32 = 9;
/// HVMOP_get_time.
pub const HVMOP_GET_TIME: u32 = 10;
/// HVMOP_set_evtchn_upcall_vector.
pub const HVMOP_SET_EVTCHN_UPCALL_VECTOR: u32 = 23;

/// struct xen_hvm_param: argument of HVMOP_set_param / get_param.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HvmParam {
    /// Domain (DOMID_SELF).
    pub domid: u16,
    /// Padding.
    pub pad: u16,
    /// HVM_PARAM_* index.
    pub index: u32,
    /// The value read or written.
    pub value: u64,
}
crate::assert_size!(HvmParam, 16);

/// How event-channel upcalls reach the guest; see [`CALLBACK_TYPE_VECTOR`].
pub const PARAM_CALLBACK_IRQ: u32 = 0;
/// Guest frame of the xenstore ring page.
pub const PARAM_STORE_PFN: u32 = 1;
/// Event channel of the xenstore ring.
pub const PARAM_STORE_EVTCHN: u32 = 2;
/// PAE enabled (legacy).
pub const PARAM_PAE_ENABLED: u32 = 4;
/// Timer mode.
pub const PARAM_TIMER_MODE: u32 = 10;
/// Guest frame of the PV console ring page.
pub const PARAM_CONSOLE_PFN: u32 = 17;
/// Event channel of the PV console ring.
pub const PARAM_CONSOLE_EVTCHN: u32 = 18;
/// What a triple fault does (Xen's default: reboot).
pub const PARAM_TRIPLE_FAULT_REASON: u32 = 31;
/// Number of HVM params (HVM_NR_PARAMS).
pub const NR_PARAMS: u32 = 39;

/// CALLBACK_IRQ value bits 63:56: the delivery type.
pub const CALLBACK_TYPE_SHIFT: u32 = 56;
/// Callback via GSI.
pub const CALLBACK_TYPE_GSI: u64 = 0;
/// Callback via PCI INTx.
pub const CALLBACK_TYPE_PCI_INTX: u64 = 1;
/// Callback as a direct vector (bits 7:0), injected without the LAPIC.
pub const CALLBACK_TYPE_VECTOR: u64 = 2;

/// HVM start info magic (XEN_HVM_START_MAGIC_VALUE).
pub const START_MAGIC: u32 = 0x336e_c578;

/// struct hvm_start_info (version 1): what a PVH kernel finds in EBX.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HvmStartInfo {
    /// [`START_MAGIC`].
    pub magic: u32,
    /// 0 or 1; version 1 adds the memory map.
    pub version: u32,
    /// SIF_* flags.
    pub flags: u32,
    /// Number of entries at `modlist_paddr`.
    pub nr_modules: u32,
    /// Physical address of an array of [`HvmModlistEntry`].
    pub modlist_paddr: u64,
    /// Physical address of the NUL-terminated command line, or 0.
    pub cmdline_paddr: u64,
    /// Physical address of the ACPI RSDP, or 0.
    pub rsdp_paddr: u64,
    /// Physical address of an array of [`HvmMemmapEntry`] (version 1).
    pub memmap_paddr: u64,
    /// Number of memory map entries (version 1).
    pub memmap_entries: u32,
    /// Must be zero.
    pub reserved: u32,
}
crate::assert_size!(HvmStartInfo, 56);

/// struct hvm_modlist_entry: one boot module.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HvmModlistEntry {
    /// Physical address of the module.
    pub paddr: u64,
    /// Size in bytes.
    pub size: u64,
    /// Physical address of its NUL-terminated command line, or 0.
    pub cmdline_paddr: u64,
    /// Must be zero.
    pub reserved: u64,
}
crate::assert_size!(HvmModlistEntry, 32);

/// struct hvm_memmap_table_entry: one E820-style range.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HvmMemmapEntry {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// One of the `MEMMAP_TYPE_*` values.
    pub kind: u32,
    /// Must be zero.
    pub reserved: u32,
}
crate::assert_size!(HvmMemmapEntry, 24);

/// Usable RAM.
pub const MEMMAP_TYPE_RAM: u32 = 1;
/// Reserved.
pub const MEMMAP_TYPE_RESERVED: u32 = 2;
/// ACPI tables, reclaimable.
pub const MEMMAP_TYPE_ACPI: u32 = 3;
/// ACPI non-volatile storage.
pub const MEMMAP_TYPE_NVS: u32 = 4;
/// Unusable.
pub const MEMMAP_TYPE_UNUSABLE: u32 = 5;
