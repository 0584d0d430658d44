//! Xen's CPUID leaves (arch-x86/cpuid.h), found at 0x40000000 + 0x100 * n.

/// The first leaf where a hypervisor signature may appear.
pub const FIRST_LEAF: u32 = 0x4000_0000;
/// Leaves are searched in steps of this size up to [`LAST_BASE`].
pub const LEAF_STEP: u32 = 0x100;
/// The last base searched for the Xen signature.
pub const LAST_BASE: u32 = 0x4001_0000;
/// "XenV" in EBX of the base leaf.
pub const SIGNATURE_EBX: u32 = 0x566e_6558;
/// "MMXe" in ECX of the base leaf.
pub const SIGNATURE_ECX: u32 = 0x6558_4d4d;
/// "nVMM" in EDX of the base leaf.
pub const SIGNATURE_EDX: u32 = 0x4d4d_566e;
/// Number of Xen leaves after the base (XEN_CPUID_MAX_NUM_LEAVES).
pub const MAX_NUM_LEAVES: u32 = 5;
/// The MSR a guest writes its hypercall page's address to (leaf 2 EBX).
pub const HYPERCALL_MSR: u32 = 0x4000_0000;

/// Leaf 4 EAX: virtualized APIC registers.
pub const HVM_APIC_ACCESS_VIRT: u32 = 1 << 0;
/// Leaf 4 EAX: virtualized x2APIC accesses.
pub const HVM_X2APIC_VIRT: u32 = 1 << 1;
/// Leaf 4 EAX: EBX holds the vCPU id.
pub const HVM_VCPU_ID_PRESENT: u32 = 1 << 3;
/// Leaf 4 EAX: ECX holds the domain id.
pub const HVM_DOMID_PRESENT: u32 = 1 << 4;
/// Leaf 3 sub-leaf 0 EAX: the TSC is reliable across the host.
pub const HOST_TSC_RELIABLE: u32 = 1 << 1;
/// Leaf 3 sub-leaf 0 EBX: TSC mode "never emulate".
pub const TSC_MODE_NEVER_EMULATE: u32 = 2;
