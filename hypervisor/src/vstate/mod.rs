//! The KVM core: the VM, its guest memory, its vCPU. Knows nothing of Xen.

pub mod cpuid;
pub mod kvm_ext;
pub mod memory;
pub mod paging;
pub mod vcpu;
pub mod vm;
