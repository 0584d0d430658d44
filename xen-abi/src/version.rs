//! XENVER_* sub-operations of the xen_version hypercall (version.h).

/// Returns `major << 16 | minor`.
pub const XENVER_VERSION: u32 = 0;
/// Writes a 16-byte string such as ".0".
pub const XENVER_EXTRAVERSION: u32 = 1;
/// Writes a `xen_compile_info` (4 strings).
pub const XENVER_COMPILE_INFO: u32 = 2;
/// Writes a 1024-byte space-separated list such as "hvm-3.0-x86_64".
pub const XENVER_CAPABILITIES: u32 = 3;
/// Writes a 64-byte changeset string.
pub const XENVER_CHANGESET: u32 = 4;
/// Writes a `xen_platform_parameters` (virt_start).
pub const XENVER_PLATFORM_PARAMETERS: u32 = 5;
/// Reads and writes a [`FeatureInfo`].
pub const XENVER_GET_FEATURES: u32 = 6;
/// Returns the page size.
pub const XENVER_PAGESIZE: u32 = 7;
/// Writes a 16-byte guest handle.
pub const XENVER_GUEST_HANDLE: u32 = 8;
/// Writes Xen's 1024-byte command line.
pub const XENVER_COMMANDLINE: u32 = 9;
/// Writes the build id.
pub const XENVER_BUILD_ID: u32 = 10;

/// Size of the XENVER_EXTRAVERSION string buffer.
pub const EXTRAVERSION_LEN: usize = 16;
/// Size of the XENVER_CAPABILITIES string buffer.
pub const CAPABILITIES_LEN: usize = 1024;
/// Size of the XENVER_CHANGESET string buffer.
pub const CHANGESET_LEN: usize = 64;
/// Size of each of the four XENVER_COMPILE_INFO strings.
pub const COMPILE_INFO_LEN: usize = 4 * 64;
/// Size of the XENVER_COMMANDLINE buffer.
pub const COMMANDLINE_LEN: usize = 1024;

/// xen_feature_info: one 32-bit page of the feature bitmap.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FeatureInfo {
    /// Which 32-bit word of the bitmap is asked for.
    pub submap_idx: u32,
    /// The feature bits of that word.
    pub submap: u32,
}
crate::assert_size!(FeatureInfo, 8);
