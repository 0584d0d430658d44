//! Grant tables (grant_table.h): how a domain lets another domain (here,
//! the backends acting as domain 0) reach some of its pages.
//!
//! Only version 1 entries are defined: Xenolith offers v1 only, and v1 is
//! what every frontend uses by default.

/// A grant reference: an index into the granting domain's table.
pub type GrantRef = u32;

/// Map a grant of another domain.
pub const GNTTABOP_MAP_GRANT_REF: u32 = 0;
/// Unmap a mapped grant.
pub const GNTTABOP_UNMAP_GRANT_REF: u32 = 1;
/// Grow the table and list its frames.
pub const GNTTABOP_SETUP_TABLE: u32 = 2;
/// Debug dump (removed from Xen; -ENOSYS).
pub const GNTTABOP_DUMP_TABLE: u32 = 3;
/// Transfer a page to another domain.
pub const GNTTABOP_TRANSFER: u32 = 4;
/// Copy between frames and granted frames.
pub const GNTTABOP_COPY: u32 = 5;
/// Current and maximum number of frames.
pub const GNTTABOP_QUERY_SIZE: u32 = 6;
/// Unmap a grant, putting another mapping in its place.
pub const GNTTABOP_UNMAP_AND_REPLACE: u32 = 7;
/// Choose the entry format (v1 or v2).
pub const GNTTABOP_SET_VERSION: u32 = 8;
/// List v2 status frames.
pub const GNTTABOP_GET_STATUS_FRAMES: u32 = 9;
/// The entry format in force.
pub const GNTTABOP_GET_VERSION: u32 = 10;
/// Swap two entries.
pub const GNTTABOP_SWAP_GRANT_REF: u32 = 11;
/// Cache maintenance on granted frames (Arm).
pub const GNTTABOP_CACHE_FLUSH: u32 = 12;
/// Bits of the command word above this shift carry continuation state.
pub const GNTTABOP_CONTINUATION_ARG_SHIFT: u32 = 12;
/// The command part of the command word.
pub const GNTTABOP_CMD_MASK: u32 = (1 << GNTTABOP_CONTINUATION_ARG_SHIFT) - 1;

/// Entries at the start of a table the toolstack may use (console, xenstore).
pub const GNTTAB_NR_RESERVED_ENTRIES: u32 = 8;
/// Reserved entry for the console ring.
pub const GNTTAB_RESERVED_CONSOLE: u32 = 0;
/// Reserved entry for the xenstore ring.
pub const GNTTAB_RESERVED_XENSTORE: u32 = 1;

/// No grant.
pub const GTF_INVALID: u16 = 0;
/// `domid` may map and access `frame`.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// `domid` may transfer a page into `frame`.
pub const GTF_ACCEPT_TRANSFER: u16 = 2;
/// A transitive grant (v2 only).
pub const GTF_TRANSITIVE: u16 = 3;
/// The entry's type bits.
pub const GTF_TYPE_MASK: u16 = 3;
/// The grantee may only read.
pub const GTF_READONLY: u16 = 1 << 2;
/// Set by Xen while the grantee has the frame mapped or in use for reading.
pub const GTF_READING: u16 = 1 << 3;
/// Set by Xen while the grantee has the frame mapped or in use for writing.
pub const GTF_WRITING: u16 = 1 << 4;
/// Cache attribute: write-through.
pub const GTF_PWT: u16 = 1 << 5;
/// Cache attribute: cache disable.
pub const GTF_PCD: u16 = 1 << 6;
/// Cache attribute: PAT.
pub const GTF_PAT: u16 = 1 << 7;
/// A sub-page grant (v2 only).
pub const GTF_SUB_PAGE: u16 = 1 << 8;
/// Transfer: Xen committed to the transfer.
pub const GTF_TRANSFER_COMMITTED: u16 = 1 << 2;
/// Transfer: the transfer completed.
pub const GTF_TRANSFER_COMPLETED: u16 = 1 << 3;

/// Map for host access.
pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
/// Map for host access.
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
/// Map read-only.
pub const GNTMAP_READONLY: u32 = 1 << 2;

/// Copy: the source is a grant reference (else a frame of the caller).
pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
/// Copy: the destination is a grant reference.
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

/// Success.
pub const GNTST_OKAY: i16 = 0;
/// Unspecified error.
pub const GNTST_GENERAL_ERROR: i16 = -1;
/// Unrecognised domain id.
pub const GNTST_BAD_DOMAIN: i16 = -2;
/// Unrecognised or inappropriate grant reference.
pub const GNTST_BAD_GNTREF: i16 = -3;
/// Unrecognised or inappropriate handle.
pub const GNTST_BAD_HANDLE: i16 = -4;
/// Inappropriate virtual address to map.
pub const GNTST_BAD_VIRT_ADDR: i16 = -5;
/// Inappropriate device address to unmap.
pub const GNTST_BAD_DEV_ADDR: i16 = -6;
/// Out of space in the I/O MMU.
pub const GNTST_NO_DEVICE_SPACE: i16 = -7;
/// Not enough privilege for the operation.
pub const GNTST_PERMISSION_DENIED: i16 = -8;
/// The page was invalid for the operation.
pub const GNTST_BAD_PAGE: i16 = -9;
/// Copy arguments cross a page boundary.
pub const GNTST_BAD_COPY_ARG: i16 = -10;
/// Transfer page address too large.
pub const GNTST_ADDRESS_TOO_BIG: i16 = -11;
/// Not done; try again.
pub const GNTST_EAGAIN: i16 = -12;
/// Out of space (handles etc.).
pub const GNTST_NO_SPACE: i16 = -13;

/// Xen's default limit on a domain's grant-table frames (gnttab_max_frames,
/// 64 since Xen 4.13 and in 4.17).
pub const DEFAULT_MAX_GRANT_FRAMES: u32 = 64;
/// Frames a table starts with (INITIAL_NR_GRANT_FRAMES).
pub const INITIAL_NR_GRANT_FRAMES: u32 = 1;

/// struct grant_entry_v1.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV1 {
    /// GTF_* type and flags.
    pub flags: u16,
    /// The domain granted access.
    pub domid: u16,
    /// The granted frame (a guest frame number for auto-translated guests).
    pub frame: u32,
}
crate::assert_size!(GrantEntryV1, 8);

/// Bytes in one v1 entry.
pub const ENTRY_V1_SIZE: usize = 8;
/// v1 entries in one frame.
pub const ENTRIES_PER_FRAME_V1: u32 = (crate::PAGE_SIZE / ENTRY_V1_SIZE) as u32;
/// Byte offset of `flags` in an entry (the 16-bit word Xen updates).
pub const ENTRY_FLAGS: usize = 0;
/// Byte offset of `domid` in an entry.
pub const ENTRY_DOMID: usize = 2;
/// Byte offset of `frame` in an entry.
pub const ENTRY_FRAME: usize = 4;

/// struct gnttab_setup_table, 64-bit layout (the 32-bit one is
/// [`COMPAT_SETUP_TABLE_SIZE`] bytes with a 4-byte handle).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SetupTable {
    /// Domain (DOMID_SELF).
    pub dom: u16,
    /// Padding.
    pub pad: u16,
    /// Frames wanted.
    pub nr_frames: u32,
    /// Out: GNTST_*.
    pub status: i16,
    /// Padding.
    pub pad2: [u16; 3],
    /// Guest address of an array of `nr_frames` xen_pfn_t.
    pub frame_list: u64,
}
crate::assert_size!(SetupTable, 24);
/// Size of the 32-bit (compat) gnttab_setup_table; xen_pfn_t is 4 bytes there.
pub const COMPAT_SETUP_TABLE_SIZE: usize = 16;
/// Offset of `status` in both layouts.
pub const SETUP_TABLE_STATUS: usize = 8;

/// struct gnttab_query_size (same in both ABIs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct QuerySize {
    /// Domain (DOMID_SELF).
    pub dom: u16,
    /// Padding.
    pub pad: u16,
    /// Out: current frames.
    pub nr_frames: u32,
    /// Out: the most frames the table may grow to.
    pub max_nr_frames: u32,
    /// Out: GNTST_*.
    pub status: i16,
    /// Padding.
    pub pad2: u16,
}
crate::assert_size!(QuerySize, 16);

/// struct gnttab_set_version (in/out).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SetVersion {
    /// In: the version wanted; out: the version in force.
    pub version: u32,
}
crate::assert_size!(SetVersion, 4);

/// struct gnttab_get_version.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GetVersion {
    /// Domain (DOMID_SELF).
    pub dom: u16,
    /// Padding.
    pub pad: u16,
    /// Out: the version.
    pub version: u32,
}
crate::assert_size!(GetVersion, 8);

/// struct gnttab_copy_ptr, 64-bit layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyPtr {
    /// A grant reference (GNTCOPY_*_gref) or a frame number of the caller.
    pub u: u64,
    /// The domain owning the grant or frame.
    pub domid: u16,
    /// Byte offset in the page.
    pub offset: u16,
    /// Padding.
    pub pad: u32,
}
crate::assert_size!(CopyPtr, 16);

/// struct gnttab_copy, 64-bit layout (the 32-bit one is
/// [`COMPAT_COPY_SIZE`] bytes: each pointer is `{u32, u16, u16}`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Copy {
    /// Where to copy from.
    pub source: CopyPtr,
    /// Where to copy to.
    pub dest: CopyPtr,
    /// Bytes to copy (within one page at each end).
    pub len: u16,
    /// GNTCOPY_*.
    pub flags: u16,
    /// Out: GNTST_*.
    pub status: i16,
    /// Padding.
    pub pad: u16,
}
crate::assert_size!(Copy, 40);
/// Size of the 32-bit (compat) gnttab_copy.
pub const COMPAT_COPY_SIZE: usize = 24;
/// Offset of `status` in the 64-bit gnttab_copy.
pub const COPY_STATUS: usize = 36;
/// Offset of `status` in the 32-bit gnttab_copy.
pub const COMPAT_COPY_STATUS: usize = 20;

impl Copy {
    /// Decodes the 32-bit layout: `{u32 u; u16 domid; u16 offset}` twice,
    /// then len, flags, status.
    pub fn from_compat(b: &[u8; COMPAT_COPY_SIZE]) -> Self {
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let ptr = |o: usize| CopyPtr { u: u32_at(o).into(), domid: u16_at(o + 4), offset: u16_at(o + 6), pad: 0 };
        Copy { source: ptr(0), dest: ptr(8), len: u16_at(16), flags: u16_at(18), status: u16_at(20) as i16, pad: 0 }
    }
}
