//! The KVM VM: its file descriptors, memory slots and the VM-wide set-up
//! that trapping the Xen ABI needs (MSR exits for the hypercall MSR, no
//! hypercall-instruction patching).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kvm_bindings::{
    kvm_enable_cap, kvm_userspace_memory_region, CpuId, KVM_CAP_DISABLE_QUIRKS2,
    KVM_CAP_X86_USER_SPACE_MSR, KVM_MAX_CPUID_ENTRIES, KVM_MSR_EXIT_REASON_FILTER,
    KVM_X86_QUIRK_FIX_HYPERCALL_INSN,
};
use kvm_ioctls::{Cap, Kvm, MsrFilterDefaultAction, MsrFilterRange, MsrFilterRangeFlags, VcpuFd, VmFd};

use super::memory::GuestRam;

/// An error setting up the VM.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// /dev/kvm could not be opened.
    #[error("cannot open /dev/kvm: {0} (is KVM available and are you allowed to use it?)")]
    OpenKvm(#[source] kvm_ioctls::Error),
    /// A KVM ioctl failed.
    #[error("KVM {what} failed: {err}")]
    Kvm {
        /// Which operation.
        what: &'static str,
        /// The error.
        #[source]
        err: kvm_ioctls::Error,
    },
    /// A capability this VMM needs is missing.
    #[error("this KVM lacks {0}, which xenolith needs")]
    MissingCap(&'static str),
    /// Guest memory could not be mapped.
    #[error("{0}")]
    Memory(#[from] std::io::Error),
}

fn kvm(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmError {
    move |err| VmError::Kvm { what, err }
}

/// Which KVM implementation runs the guest: it decides how fast guest code is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// VMX or SVM: guests run at native speed.
    Hardware,
    /// A software backend (such as kvm_pvm) that emulates guest instructions.
    Software,
}

impl Backend {
    /// Looks at the host: hardware virtualization shows as vmx/svm in cpuinfo.
    pub fn detect() -> Self {
        let software_module = std::path::Path::new("/sys/module/kvm_pvm").exists();
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let hw = cpuinfo.lines().any(|l| {
            l.starts_with("flags") && l.split_whitespace().any(|f| f == "vmx" || f == "svm")
        });
        if hw && !software_module {
            Backend::Hardware
        } else {
            Backend::Software
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Hardware => "hardware (VMX/SVM)",
            Backend::Software => "software (instructions are emulated)",
        })
    }
}

/// A KVM virtual machine with its memory.
pub struct Vm {
    kvm: Kvm,
    fd: Arc<VmFd>,
    /// The guest's memory.
    pub ram: Arc<GuestRam>,
    /// The KVM implementation in use.
    pub backend: Backend,
    slots: Arc<MemorySlots>,
}

impl Vm {
    /// Creates a VM whose guest-physical memory is `ranges`, trapping `trapped_msrs`.
    pub fn new(ranges: &[(u64, usize)], trapped_msrs: &[u32]) -> Result<Self, VmError> {
        let kvm_fd = Kvm::new().map_err(VmError::OpenKvm)?;
        let fd = kvm_fd.create_vm().map_err(kvm("KVM_CREATE_VM"))?;
        let ram = Arc::new(GuestRam::new(ranges)?);
        for (slot, (guest, host, size)) in ram.regions().into_iter().enumerate() {
            let region = kvm_userspace_memory_region {
                slot: slot as u32,
                flags: 0,
                guest_phys_addr: guest,
                memory_size: size,
                userspace_addr: host,
            };
            // SAFETY: the host range is a live mapping owned by `ram`, which
            // the Vm keeps alive for as long as the VM fd exists.
            unsafe { fd.set_user_memory_region(region) }.map_err(kvm("KVM_SET_USER_MEMORY_REGION"))?;
        }
        let fd = Arc::new(fd);
        let slots = Arc::new(MemorySlots {
            fd: fd.clone(),
            ram: ram.clone(),
            table: Mutex::new(SlotTable { next: ram.regions().len() as u32, free: Vec::new(), by_addr: HashMap::new() }),
        });
        let vm = Vm { kvm: kvm_fd, fd, ram, backend: Backend::detect(), slots };
        vm.trap_msrs(trapped_msrs)?;
        vm.disable_hypercall_patching();
        Ok(vm)
    }

    /// Makes guest accesses to `msrs` exit to user space.
    fn trap_msrs(&self, msrs: &[u32]) -> Result<(), VmError> {
        if !self.kvm.check_extension(Cap::X86UserSpaceMsr) {
            return Err(VmError::MissingCap("KVM_CAP_X86_USER_SPACE_MSR"));
        }
        let cap = kvm_enable_cap {
            cap: KVM_CAP_X86_USER_SPACE_MSR,
            args: [KVM_MSR_EXIT_REASON_FILTER.into(), 0, 0, 0],
            ..Default::default()
        };
        self.fd.enable_cap(&cap).map_err(kvm("enable KVM_CAP_X86_USER_SPACE_MSR"))?;
        // A zero bit denies the access, which the exit reason FILTER turns into an exit.
        let deny = [0u8; 1];
        let ranges: Vec<_> = msrs
            .iter()
            .map(|&base| MsrFilterRange {
                flags: MsrFilterRangeFlags::READ | MsrFilterRangeFlags::WRITE,
                base,
                msr_count: 1,
                bitmap: &deny,
            })
            .collect();
        self.fd
            .set_msr_filter(MsrFilterDefaultAction::ALLOW, &ranges)
            .map_err(kvm("KVM_X86_SET_MSR_FILTER"))
    }

    /// Stops KVM from rewriting VMCALL/VMMCALL in guest memory: a stray one
    /// must fault in the guest, not spin inside KVM_RUN (seen on software KVM).
    fn disable_hypercall_patching(&self) {
        let cap = kvm_enable_cap {
            cap: KVM_CAP_DISABLE_QUIRKS2,
            args: [KVM_X86_QUIRK_FIX_HYPERCALL_INSN.into(), 0, 0, 0],
            ..Default::default()
        };
        if let Err(e) = self.fd.enable_cap(&cap) {
            log::debug!("KVM_CAP_DISABLE_QUIRKS2 not available: {e}");
        }
    }

    /// The CPUID entries KVM can offer.
    pub fn supported_cpuid(&self) -> Result<CpuId, VmError> {
        self.kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).map_err(kvm("KVM_GET_SUPPORTED_CPUID"))
    }

    /// Creates vCPU `id`.
    pub fn create_vcpu(&self, id: u64) -> Result<VcpuFd, VmError> {
        self.fd.create_vcpu(id).map_err(kvm("KVM_CREATE_VCPU"))
    }

    /// The handle that backs holes with memory after boot (grant-table frames).
    pub fn memory_slots(&self) -> Arc<MemorySlots> {
        self.slots.clone()
    }

    /// Whether KVM offers in-kernel Xen support (used only for logging today).
    pub fn has_xen_hvm(&self) -> bool {
        self.kvm.check_extension_raw(kvm_bindings::KVM_CAP_XEN_HVM.into()) > 0
    }
}

/// Adds KVM memory slots after boot, for Xen-owned pages a guest maps into
/// holes of its physical address space (XENMEM_add_to_physmap of a
/// grant-table frame at a guest frame that is not RAM).
///
/// Each region is fresh host memory registered both as a KVM slot (so the
/// guest sees it) and as an extra region of [`GuestRam`] (so every accessor
/// in the VMM reaches it).
pub struct MemorySlots {
    // Declared first so the VM fd closes before this struct's `ram` handle
    // is released: KVM must never point at unmapped memory.
    fd: Arc<VmFd>,
    ram: Arc<GuestRam>,
    table: Mutex<SlotTable>,
}

struct SlotTable {
    next: u32,
    free: Vec<u32>,
    by_addr: HashMap<u64, (u32, u64)>,
}

impl MemorySlots {
    /// Backs `[addr, addr + len)` with zeroed memory. Fails if any of it is
    /// already backed or KVM refuses the slot.
    pub fn map(&self, addr: u64, len: usize) -> Result<(), VmError> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let host = self.ram.map_extra(addr, len)?;
        let slot = table.free.pop().unwrap_or(table.next);
        let region = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: addr,
            memory_size: len as u64,
            userspace_addr: host,
        };
        // SAFETY: `host` is a live mapping of `len` bytes owned by `ram`,
        // which keeps it mapped (even once taken out of view) for as long as
        // `ram` lives, and `ram` outlives the VM fd (field order above).
        if let Err(err) = unsafe { self.fd.set_user_memory_region(region) } {
            self.ram.unmap_extra(addr);
            table.free.push(slot);
            return Err(VmError::Kvm { what: "KVM_SET_USER_MEMORY_REGION (extra page)", err });
        }
        if slot == table.next {
            table.next += 1;
        }
        table.by_addr.insert(addr, (slot, len as u64));
        Ok(())
    }

    /// Removes the region [`map`](Self::map) placed at `addr`; returns whether there was one.
    pub fn unmap(&self, addr: u64) -> bool {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let Some((slot, _)) = table.by_addr.remove(&addr) else { return false };
        let region = kvm_userspace_memory_region { slot, flags: 0, guest_phys_addr: addr, memory_size: 0, userspace_addr: 0 };
        // SAFETY: a zero-sized region deletes the slot; no memory is named.
        if let Err(e) = unsafe { self.fd.set_user_memory_region(region) } {
            log::warn!("cannot remove KVM slot {slot} at {addr:#x}: {e}");
            return false;
        }
        table.free.push(slot);
        self.ram.unmap_extra(addr);
        true
    }
}
