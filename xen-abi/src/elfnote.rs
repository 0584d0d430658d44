//! XEN_ELFNOTE_* types (elfnote.h), found in PT_NOTE segments named "Xen".

/// `XEN_ELFNOTE_INFO`.
pub const INFO: u32 = 0;
/// `XEN_ELFNOTE_ENTRY`.
pub const ENTRY: u32 = 1;
/// `XEN_ELFNOTE_HYPERCALL_PAGE`.
pub const HYPERCALL_PAGE: u32 = 2;
/// `XEN_ELFNOTE_VIRT_BASE`.
pub const VIRT_BASE: u32 = 3;
/// `XEN_ELFNOTE_PADDR_OFFSET`.
pub const PADDR_OFFSET: u32 = 4;
/// `XEN_ELFNOTE_XEN_VERSION`.
pub const XEN_VERSION: u32 = 5;
/// `XEN_ELFNOTE_GUEST_OS`.
pub const GUEST_OS: u32 = 6;
/// `XEN_ELFNOTE_GUEST_VERSION`.
pub const GUEST_VERSION: u32 = 7;
/// `XEN_ELFNOTE_LOADER`.
pub const LOADER: u32 = 8;
/// `XEN_ELFNOTE_PAE_MODE`.
pub const PAE_MODE: u32 = 9;
/// `XEN_ELFNOTE_FEATURES`.
pub const FEATURES: u32 = 10;
/// `XEN_ELFNOTE_BSD_SYMTAB`.
pub const BSD_SYMTAB: u32 = 11;
/// `XEN_ELFNOTE_HV_START_LOW`.
pub const HV_START_LOW: u32 = 12;
/// `XEN_ELFNOTE_L1_MFN_VALID`.
pub const L1_MFN_VALID: u32 = 13;
/// `XEN_ELFNOTE_SUSPEND_CANCEL`.
pub const SUSPEND_CANCEL: u32 = 14;
/// `XEN_ELFNOTE_INIT_P2M`.
pub const INIT_P2M: u32 = 15;
/// `XEN_ELFNOTE_MOD_START_PFN`.
pub const MOD_START_PFN: u32 = 16;
/// `XEN_ELFNOTE_SUPPORTED_FEATURES`.
pub const SUPPORTED_FEATURES: u32 = 17;
/// The 32-bit physical entry point of a PVH kernel.
pub const PHYS32_ENTRY: u32 = 18;

/// The owner name of Xen's notes.
pub const OWNER: &[u8] = b"Xen";
