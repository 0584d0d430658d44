//! The KVM VM: its file descriptors, memory slots and the VM-wide set-up
//! that trapping the Xen ABI needs (MSR exits for the hypercall MSR, no
//! hypercall-instruction patching).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

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
    kvm: &'static Kvm,
    fd: Arc<VmFd>,
    /// The guest's memory.
    pub ram: Arc<GuestRam>,
    /// The KVM implementation in use.
    pub backend: Backend,
    slots: Arc<MemorySlots>,
    /// vCPU 0, when it came made with a spare VM.
    spare_vcpu0: Mutex<Option<VcpuFd>>,
}

/// A VM made ahead of need: KVM_CREATE_VM, the MSR filter and quirks, and
/// vCPU 0 created. Nothing in it depends on the domain (memory, CPUID and
/// registers come later), so the host service keeps one ready and a
/// `create` skips those ioctls.
struct Spare {
    fd: VmFd,
    trapped: Vec<u32>,
    vcpu0: VcpuFd,
}

static SPARE: Mutex<Option<Spare>> = Mutex::new(None);
/// Woken when the spare is taken: the thread of [`keep_spare_vms`] makes the next.
static SPARE_TAKEN: Condvar = Condvar::new();

/// A VM with no memory yet: KVM_CREATE_VM, `trapped` MSRs made to exit,
/// hypercall patching off.
fn empty_vm(trapped: &[u32]) -> Result<VmFd, VmError> {
    let kvm_fd = host_kvm()?;
    let fd = kvm_fd.create_vm().map_err(kvm("KVM_CREATE_VM"))?;
    trap_msrs(kvm_fd, &fd, trapped)?;
    disable_hypercall_patching(&fd);
    Ok(fd)
}

/// From now on keeps a spare VM ready for [`Vm::new`] with `trapped` MSRs
/// (the host service, which creates domains on request): a thread makes
/// one, waits until it is taken, and makes the next, off the path of the
/// `create` that took it. A failure leaves none, and [`Vm::new`] then makes
/// the VM itself (and reports the error).
pub fn keep_spare_vms(trapped: &[u32]) -> std::io::Result<()> {
    let trapped = trapped.to_vec();
    std::thread::Builder::new().name("spare-vm".into()).spawn(move || loop {
        let made = empty_vm(&trapped).and_then(|fd| Ok(Spare { vcpu0: fd.create_vcpu(0).map_err(kvm("KVM_CREATE_VCPU"))?, fd, trapped: trapped.clone() }));
        let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
        match made {
            Ok(made) => *spare = Some(made),
            Err(e) => log::warn!("cannot make a spare VM: {e}"),
        }
        while spare.is_some() {
            spare = SPARE_TAKEN.wait(spare).unwrap_or_else(|e| e.into_inner());
        }
    })?;
    Ok(())
}

/// /dev/kvm, opened once per process: every VM is created through it.
fn host_kvm() -> Result<&'static Kvm, VmError> {
    static KVM: OnceLock<Kvm> = OnceLock::new();
    if let Some(k) = KVM.get() {
        return Ok(k);
    }
    let k = Kvm::new().map_err(VmError::OpenKvm)?;
    Ok(KVM.get_or_init(|| k))
}

/// KVM_GET_SUPPORTED_CPUID, asked once per process.
fn host_supported_cpuid() -> Result<CpuId, VmError> {
    static SUPPORTED: OnceLock<CpuId> = OnceLock::new();
    if let Some(cpuid) = SUPPORTED.get() {
        return Ok(cpuid.clone());
    }
    let cpuid = host_kvm()?.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).map_err(kvm("KVM_GET_SUPPORTED_CPUID"))?;
    Ok(SUPPORTED.get_or_init(|| cpuid).clone())
}

/// Opens /dev/kvm and reads what the host supports ahead of the first VM
/// (the host service does this at start, so no `create` waits for it).
pub fn prefetch() -> Result<(), VmError> {
    host_supported_cpuid().map(drop)
}

impl Vm {
    /// Creates a VM whose guest-physical memory is `ranges`, trapping `trapped_msrs`.
    pub fn new(ranges: &[(u64, usize)], trapped_msrs: &[u32]) -> Result<Self, VmError> {
        let kvm_fd = host_kvm()?;
        let spare = SPARE.lock().unwrap_or_else(|e| e.into_inner()).take_if(|s| s.trapped == trapped_msrs);
        let (fd, spare_vcpu0) = match spare {
            Some(s) => {
                SPARE_TAKEN.notify_all();
                (s.fd, Some(s.vcpu0))
            }
            None => (empty_vm(trapped_msrs)?, None),
        };
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
        let slots = Arc::new(MemorySlots::new(Some(fd.clone()), ram.clone()));
        Ok(Vm { kvm: kvm_fd, fd, ram, backend: Backend::detect(), slots, spare_vcpu0: Mutex::new(spare_vcpu0) })
    }
}

/// Makes guest accesses to `msrs` exit to user space.
fn trap_msrs(kvm_fd: &Kvm, fd: &VmFd, msrs: &[u32]) -> Result<(), VmError> {
    if !kvm_fd.check_extension(Cap::X86UserSpaceMsr) {
        return Err(VmError::MissingCap("KVM_CAP_X86_USER_SPACE_MSR"));
    }
    let cap = kvm_enable_cap {
        cap: KVM_CAP_X86_USER_SPACE_MSR,
        args: [KVM_MSR_EXIT_REASON_FILTER.into(), 0, 0, 0],
        ..Default::default()
    };
    fd.enable_cap(&cap).map_err(kvm("enable KVM_CAP_X86_USER_SPACE_MSR"))?;
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
    fd.set_msr_filter(MsrFilterDefaultAction::ALLOW, &ranges).map_err(kvm("KVM_X86_SET_MSR_FILTER"))
}

/// Stops KVM from rewriting VMCALL/VMMCALL in guest memory: a stray one
/// must fault in the guest, not spin inside KVM_RUN (seen on software KVM).
fn disable_hypercall_patching(fd: &VmFd) {
    let cap = kvm_enable_cap {
        cap: KVM_CAP_DISABLE_QUIRKS2,
        args: [KVM_X86_QUIRK_FIX_HYPERCALL_INSN.into(), 0, 0, 0],
        ..Default::default()
    };
    if let Err(e) = fd.enable_cap(&cap) {
        log::debug!("KVM_CAP_DISABLE_QUIRKS2 not available: {e}");
    }
}

impl Vm {
    /// The CPUID entries KVM can offer.
    /// (Asked of KVM once per process: it describes the host, which does
    /// not change, and a service creating many domains saves the ioctl.)
    pub fn supported_cpuid(&self) -> Result<CpuId, VmError> {
        host_supported_cpuid()
    }

    /// Creates vCPU `id` (vCPU 0 may come ready with a spare VM).
    pub fn create_vcpu(&self, id: u64) -> Result<VcpuFd, VmError> {
        if id == 0 {
            if let Some(v) = self.spare_vcpu0.lock().unwrap_or_else(|e| e.into_inner()).take() {
                return Ok(v);
            }
        }
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

/// Changes the guest's physical memory after boot, in KVM and in
/// [`GuestRam`] together:
/// - Xen-owned pages a guest maps into its physical address space
///   (XENMEM_add_to_physmap of shared info or a grant-table frame) and RAM
///   it populates into holes get fresh host memory as a new KVM slot and an
///   extra region of `GuestRam` ([`map`](Self::map), [`unmap`](Self::unmap));
/// - a boot page the guest gives up (a Xen page placed over it,
///   XENMEM_decrease_reservation) leaves the guest's view: its KVM slot is
///   split around it ([`remove_boot_page`](Self::remove_boot_page)), and it
///   comes back zeroed, slots merged again, when populated
///   ([`restore_boot_page`](Self::restore_boot_page)).
///
/// Without a VM (unit tests) only `GuestRam` changes.
pub struct MemorySlots {
    // Declared first so the VM fd closes before this struct's `ram` handle
    // is released: KVM must never point at unmapped memory.
    fd: Option<Arc<VmFd>>,
    ram: Arc<GuestRam>,
    table: Mutex<SlotTable>,
}

struct SlotTable {
    next: u32,
    free: Vec<u32>,
    /// Extra regions: start address -> (slot, length).
    by_addr: HashMap<u64, (u32, u64)>,
    /// Slots over boot memory: start address -> (slot, length, host address).
    boot: BTreeMap<u64, (u32, u64, u64)>,
}

impl SlotTable {
    fn alloc(&mut self) -> u32 {
        self.free.pop().unwrap_or_else(|| {
            self.next += 1;
            self.next - 1
        })
    }
}

impl MemorySlots {
    /// The slots of `ram`'s boot regions (numbered 0.. as [`Vm::new`]
    /// registers them), for the VM `fd` if any.
    pub fn new(fd: Option<Arc<VmFd>>, ram: Arc<GuestRam>) -> Self {
        let regions = ram.regions();
        let boot = regions.iter().enumerate().map(|(i, &(guest, host, size))| (guest, (i as u32, size, host))).collect();
        MemorySlots {
            fd,
            ram,
            table: Mutex::new(SlotTable { next: regions.len() as u32, free: Vec::new(), by_addr: HashMap::new(), boot }),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, SlotTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Points KVM slot `slot` at `[guest, guest + size)` backed by `host` (size 0 deletes it).
    fn set_slot(&self, slot: u32, guest: u64, size: u64, host: u64, what: &'static str) -> Result<(), VmError> {
        let Some(fd) = &self.fd else { return Ok(()) };
        let region = kvm_userspace_memory_region { slot, flags: 0, guest_phys_addr: guest, memory_size: size, userspace_addr: host };
        // SAFETY: `host` is a live mapping of `size` bytes owned by `ram`
        // (boot memory, or an extra region that stays mapped, even once
        // taken out of view, for as long as `ram` lives), and `ram` outlives
        // the VM fd (field order above). Size 0 names no memory.
        unsafe { fd.set_user_memory_region(region) }.map_err(|err| VmError::Kvm { what, err })
    }

    /// Backs `[addr, addr + len)` with zeroed memory: RAM the guest
    /// populated (`ram`) or a Xen page. Fails if any of it is already
    /// present or KVM refuses the slot.
    pub fn map(&self, addr: u64, len: usize, ram: bool) -> Result<(), VmError> {
        let mut table = self.table();
        let host = self.ram.map_extra(addr, len, ram)?;
        let slot = table.alloc();
        if let Err(e) = self.set_slot(slot, addr, len as u64, host, "KVM_SET_USER_MEMORY_REGION (extra page)") {
            self.ram.unmap_extra(addr);
            table.free.push(slot);
            return Err(e);
        }
        table.by_addr.insert(addr, (slot, len as u64));
        Ok(())
    }

    /// Removes the region [`map`](Self::map) placed at `addr`; returns whether there was one.
    pub fn unmap(&self, addr: u64) -> bool {
        let mut table = self.table();
        let Some(&(slot, _)) = table.by_addr.get(&addr) else { return false };
        if let Err(e) = self.set_slot(slot, addr, 0, 0, "remove an extra slot") {
            log::warn!("cannot remove KVM slot {slot} at {addr:#x}: {e}");
            return false;
        }
        table.by_addr.remove(&addr);
        table.free.push(slot);
        self.ram.unmap_extra(addr);
        true
    }

    /// Takes boot page `addr` out of the guest's view: the KVM slot holding
    /// it is split in the slots before and after it. Returns false if it is
    /// not a present boot page.
    pub fn remove_boot_page(&self, addr: u64) -> Result<bool, VmError> {
        let page = addr & !0xfff;
        let mut table = self.table();
        let Some((&start, &(slot, size, host))) = table.boot.range(..=page).next_back() else { return Ok(false) };
        if page >= start + size || self.ram.is_removed_boot_page(page) {
            return Ok(false);
        }
        self.set_slot(slot, start, 0, 0, "remove a boot slot")?;
        table.boot.remove(&start);
        table.free.push(slot);
        let before = (start, page - start, host);
        let after = (page + 4096, start + size - page - 4096, host + (page + 4096 - start));
        for (guest, len, h) in [before, after] {
            if len == 0 {
                continue;
            }
            let s = table.alloc();
            self.set_slot(s, guest, len, h, "split a boot slot")?;
            table.boot.insert(guest, (s, len, h));
        }
        Ok(self.ram.remove_boot_page(page))
    }

    /// Gives boot page `addr`, removed earlier, back to the guest zeroed,
    /// merging it with the slots around it. Returns false if it was not removed.
    pub fn restore_boot_page(&self, addr: u64) -> Result<bool, VmError> {
        let page = addr & !0xfff;
        if !self.ram.is_removed_boot_page(page) || self.ram.contains(page, 4096) {
            return Ok(false); // present, or a Xen page sits there
        }
        let Some(host) = self.ram.boot_host_addr(page) else { return Ok(false) };
        let mut table = self.table();
        let (mut start, mut size, mut h) = (page, 4096u64, host);
        // Merge with a neighbour whose host memory is contiguous with ours.
        if let Some((&ls, &(lslot, lsize, lhost))) = table.boot.range(..page).next_back() {
            if ls + lsize == page && lhost + lsize == host {
                self.set_slot(lslot, ls, 0, 0, "merge boot slots")?;
                table.boot.remove(&ls);
                table.free.push(lslot);
                (start, size, h) = (ls, lsize + 4096, lhost);
            }
        }
        if let Some(&(rslot, rsize, rhost)) = table.boot.get(&(page + 4096)) {
            if host + 4096 == rhost {
                self.set_slot(rslot, page + 4096, 0, 0, "merge boot slots")?;
                table.boot.remove(&(page + 4096));
                table.free.push(rslot);
                size += rsize;
            }
        }
        let slot = table.alloc();
        self.set_slot(slot, start, size, h, "restore a boot page")?;
        table.boot.insert(start, (slot, size, h));
        Ok(self.ram.restore_boot_page(page))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_slots_split_and_merge_back() {
        let ram = Arc::new(GuestRam::new(&[(0, 0x10000)]).unwrap());
        let slots = MemorySlots::new(None, ram.clone());
        assert!(slots.remove_boot_page(0x3000).unwrap());
        assert!(!slots.remove_boot_page(0x3000).unwrap(), "already gone");
        assert!(slots.remove_boot_page(0x4000).unwrap());
        assert!(!slots.remove_boot_page(0x20000).unwrap(), "not boot memory");
        let layout = |t: &SlotTable| t.boot.iter().map(|(&a, &(_, l, _))| (a, l)).collect::<Vec<_>>();
        assert_eq!(layout(&slots.table()), [(0, 0x3000), (0x5000, 0xb000)]);
        assert!(!ram.contains(0x3000, 1));
        slots.map(0x3000, 0x1000, false).unwrap();
        assert!(!slots.restore_boot_page(0x3000).unwrap(), "a Xen page is there");
        assert!(slots.unmap(0x3000));
        assert!(slots.restore_boot_page(0x3000).unwrap());
        assert!(slots.restore_boot_page(0x4000).unwrap());
        assert_eq!(layout(&slots.table()), [(0, 0x10000)], "one slot again");
        assert!(ram.is_ram(0, 0x10000));
    }
}
