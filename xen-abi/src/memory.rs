//! The memory_op hypercall (memory.h).

/// `XENMEM_INCREASE_RESERVATION`.
pub const XENMEM_INCREASE_RESERVATION: u32 = 0;
/// `XENMEM_DECREASE_RESERVATION`.
pub const XENMEM_DECREASE_RESERVATION: u32 = 1;
/// `XENMEM_MAXIMUM_RAM_PAGE`.
pub const XENMEM_MAXIMUM_RAM_PAGE: u32 = 2;
/// Returns the domain's current number of pages.
pub const XENMEM_CURRENT_RESERVATION: u32 = 3;
/// Returns the domain's maximum number of pages.
pub const XENMEM_MAXIMUM_RESERVATION: u32 = 4;
/// `XENMEM_MACHPHYS_MFN_LIST`.
pub const XENMEM_MACHPHYS_MFN_LIST: u32 = 5;
/// `XENMEM_POPULATE_PHYSMAP`.
pub const XENMEM_POPULATE_PHYSMAP: u32 = 6;
/// Maps a Xen-owned page (shared info, grant table frame) into the physmap.
pub const XENMEM_ADD_TO_PHYSMAP: u32 = 7;
/// Reads the guest's E820 memory map.
pub const XENMEM_MEMORY_MAP: u32 = 9;
/// `XENMEM_MACHINE_MEMORY_MAP`.
pub const XENMEM_MACHINE_MEMORY_MAP: u32 = 10;
/// `XENMEM_SET_MEMORY_MAP`.
pub const XENMEM_SET_MEMORY_MAP: u32 = 13;
/// `XENMEM_MAXIMUM_GPFN`.
pub const XENMEM_MAXIMUM_GPFN: u32 = 14;

/// The shared info page.
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// A grant table frame.
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;
/// A guest frame (moves it).
pub const XENMAPSPACE_GMFN: u32 = 2;
/// A range of guest frames (`size` of them).
pub const XENMAPSPACE_GMFN_RANGE: u32 = 3;

/// struct xen_add_to_physmap.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct AddToPhysmap {
    /// Domain (DOMID_SELF).
    pub domid: u16,
    /// Number of pages for XENMAPSPACE_gmfn_range.
    pub size: u16,
    /// XENMAPSPACE_*.
    pub space: u32,
    /// Index within the space.
    pub idx: u64,
    /// Where to map it in the guest's physical address space.
    pub gpfn: u64,
}
crate::assert_size!(AddToPhysmap, 24);

/// struct xen_memory_reservation: the argument of
/// XENMEM_increase_reservation, XENMEM_decrease_reservation and
/// XENMEM_populate_physmap (64-bit layout; the 32-bit one is
/// [`COMPAT_MEMORY_RESERVATION_SIZE`] bytes of u32 handle, u32 count, u32
/// order, u32 flags, u16 domid, with u32 frame numbers in the list).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryReservation {
    /// Guest address of the array of frame numbers (xen_pfn_t), one per extent.
    pub extent_start: u64,
    /// Number of extents.
    pub nr_extents: u64,
    /// log2 of pages per extent.
    pub extent_order: u32,
    /// XENMEMF_* flags.
    pub mem_flags: u32,
    /// Domain (DOMID_SELF).
    pub domid: u16,
    /// Padding.
    pub pad: [u16; 3],
}
crate::assert_size!(MemoryReservation, 32);

/// Bytes of the 32-bit ABI's struct xen_memory_reservation up to its last
/// field (20 with the tail padding).
pub const COMPAT_MEMORY_RESERVATION_SIZE: usize = 18;
/// XENMEMF_populate_on_demand: populate-on-demand (toolstack only).
pub const XENMEMF_POPULATE_ON_DEMAND: u32 = 1 << 16;

/// struct xen_memory_map: argument of XENMEM_memory_map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryMap {
    /// In: room in `buffer` (entries); out: entries written.
    pub nr_entries: u32,
    /// Padding.
    pub pad: u32,
    /// Guest address of an array of [`E820_ENTRY_SIZE`]-byte e820 entries.
    pub buffer: u64,
}
crate::assert_size!(MemoryMap, 16);

/// Size of Xen's packed `struct e820entry { u64 addr; u64 size; u32 type; }`.
pub const E820_ENTRY_SIZE: usize = 20;

