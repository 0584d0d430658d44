//! XENFEAT_* bits reported by XENVER_get_features (features.h).

pub const WRITABLE_PAGE_TABLES: u32 = 0;
pub const WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
pub const AUTO_TRANSLATED_PHYSMAP: u32 = 2;
pub const SUPERVISOR_MODE_KERNEL: u32 = 3;
pub const PAE_PGDIR_ABOVE_4GB: u32 = 4;
pub const MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
pub const HIGHMEM_ASSIST: u32 = 6;
pub const GNTTAB_MAP_AVAIL_BITS: u32 = 7;
pub const HVM_CALLBACK_VECTOR: u32 = 8;
pub const HVM_SAFE_PVCLOCK: u32 = 9;
pub const HVM_PIRQS: u32 = 10;
pub const DOM0: u32 = 11;
pub const GRANT_MAP_IDENTITY: u32 = 12;
pub const MEMORY_OP_VNODE_SUPPORTED: u32 = 13;
pub const LINUX_RSDP_UNRESTRICTED: u32 = 15;
