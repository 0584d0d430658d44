//! XENFEAT_* bits reported by XENVER_get_features (features.h).

/// `XENFEAT_writable_page_tables`.
pub const WRITABLE_PAGE_TABLES: u32 = 0;
/// `XENFEAT_writable_descriptor_tables`.
pub const WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
/// `XENFEAT_auto_translated_physmap`.
pub const AUTO_TRANSLATED_PHYSMAP: u32 = 2;
/// `XENFEAT_supervisor_mode_kernel`.
pub const SUPERVISOR_MODE_KERNEL: u32 = 3;
/// `XENFEAT_pae_pgdir_above_4gb`.
pub const PAE_PGDIR_ABOVE_4GB: u32 = 4;
/// `XENFEAT_mmu_pt_update_preserve_ad`.
pub const MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
/// `XENFEAT_highmem_assist`.
pub const HIGHMEM_ASSIST: u32 = 6;
/// `XENFEAT_gnttab_map_avail_bits`.
pub const GNTTAB_MAP_AVAIL_BITS: u32 = 7;
/// `XENFEAT_hvm_callback_vector`.
pub const HVM_CALLBACK_VECTOR: u32 = 8;
/// `XENFEAT_hvm_safe_pvclock`.
pub const HVM_SAFE_PVCLOCK: u32 = 9;
/// `XENFEAT_hvm_pirqs`.
pub const HVM_PIRQS: u32 = 10;
/// `XENFEAT_dom0`.
pub const DOM0: u32 = 11;
/// `XENFEAT_grant_map_identity`.
pub const GRANT_MAP_IDENTITY: u32 = 12;
/// `XENFEAT_memory_op_vnode_supported`.
pub const MEMORY_OP_VNODE_SUPPORTED: u32 = 13;
/// `XENFEAT_linux_rsdp_unrestricted`.
pub const LINUX_RSDP_UNRESTRICTED: u32 = 15;
