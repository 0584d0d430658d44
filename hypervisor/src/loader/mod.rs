//! PVH direct boot: put a kernel, its ramdisk and the boot information into
//! guest RAM, the way Xen's toolstack builds a PVH domain (libxl/libxc's
//! xc_dom_* for a PVH guest, minus ACPI), and say where the vCPU starts.
//!
//! Kernel formats are pvboot's (pvboot::kernel): an ELF with the PVH note,
//! as is, inside a Linux bzImage, or compressed in any format pvboot reads,
//! as Xen's xl takes them. The boot information block is xen-abi's one
//! builder (xen_abi::start_info::build_hvm).
//!
//! Use:
//! ```ignore
//! let kernel = loader::PvhKernel::parse(&std::fs::read(&cfg.kernel)?)?; // before any VM exists
//! let layout = loader::MemoryLayout::new(cfg.memory_mib << 20);
//! let params = loader::BootParams { layout: &layout, cmdline: cfg.cmdline.as_deref(), ramdisk };
//! loader::plan(&kernel, &params)?;             // every check, still no VM
//! let vm = Vm::new(&layout.guest_ranges())?;   // RAM + special pages
//! let boot = loader::load(&mem, &kernel, &params)?; // boot.entry -> EIP, boot.start_info -> EBX
//! ```
//!
//! # Guest-physical memory layout
//!
//! ```text
//! 0x0000_0000 ┬ RAM ───────────────────────────────────────────────────
//! 0x0000_1000 │   boot info: hvm_start_info, memmap, modlist, cmdline
//! 0x0000_9000 │   kernel segments (at their p_paddr), anywhere else in RAM
//!     ...     │   ramdisk, page-aligned, at the top of this range
//! min(memory, ┴
//! 0xF000_0000)   (hole: not RAM)
//! 0xFEFF_0000 ┬ special pages (16): console ring, xenstore ring, ...;
//! 0xFF00_0000 ┴   reported as reserved
//! 0x1_0000_0000 ─ RAM above 0xF000_0000's worth, when memory is larger
//! ```

use std::fmt;
use std::ops::Range;

use pvboot::compress;
use pvboot::kernel::elf::{self as kelf, Placed, Plan};
use pvboot::kernel::{BootMode, EntryPoint, Limits, Memory};
use vm_memory::{Bytes, GuestAddress, GuestMemory, Permissions};
use xen_abi::hvm::{HvmMemmapEntry, MEMMAP_TYPE_RAM, MEMMAP_TYPE_RESERVED};
use xen_abi::start_info::{self, BootModule, BuildError};

pub use pvboot::kernel::KernelError;

/// The guest page size.
pub const PAGE_SIZE: u64 = xen_abi::PAGE_SIZE as u64;
/// Start of the boot-info area: page 1, leaving page 0 unused so a null
/// pointer in the guest never lands on boot data.
pub const BOOT_INFO_START: u64 = 0x1000;
/// End of the boot-info area (8 pages: room for a long command line); kernels
/// loading into [BOOT_INFO_START, BOOT_INFO_END) are refused.
pub const BOOT_INFO_END: u64 = 0x9000;
/// RAM below 4 GiB ends here at most; the rest of the 4 GiB is left for
/// the special pages and MMIO, as on a PC.
pub const LOW_RAM_LIMIT: u64 = 0xF000_0000;
/// Where RAM beyond [`LOW_RAM_LIMIT`]'s worth continues.
pub const HIGH_RAM_START: u64 = 0x1_0000_0000;
/// Start of the special pages region (not RAM; the VMM maps it).
pub const SPECIAL_PAGES_START: u64 = 0xFEFF_0000;
/// End of the special pages region.
pub const SPECIAL_PAGES_END: u64 = 0xFF00_0000;
/// Number of special pages: console ring, xenstore ring, and spares.
pub const NR_SPECIAL_PAGES: u64 = 16;
/// The xenstore ring page (HVM_PARAM_STORE_PFN). Special pages keep the
/// indices libxc gives them (xg_dom_x86.c: SPECIALPAGE_XENSTORE = 4).
pub const XENSTORE_RING: u64 = SPECIAL_PAGES_START + 4 * PAGE_SIZE;
/// The PV console ring page (HVM_PARAM_CONSOLE_PFN; SPECIALPAGE_CONSOLE = 7).
pub const CONSOLE_RING: u64 = SPECIAL_PAGES_START + 7 * PAGE_SIZE;

const _: () = assert!(SPECIAL_PAGES_END - SPECIAL_PAGES_START == NR_SPECIAL_PAGES * PAGE_SIZE);
const _: () = assert!(LOW_RAM_LIMIT <= SPECIAL_PAGES_START);

/// The most bytes a compressed kernel may unpack to (a Linux vmlinux is ~70 MB).
pub const MAX_KERNEL_BYTES: u64 = 512 << 20;

/// A PVH kernel, unpacked and checked, ready to load: its ELF (from the file,
/// a bzImage's payload, or decompressed) and where each segment goes.
#[derive(Clone, Debug)]
pub struct PvhKernel {
    elf: Vec<u8>,
    plan: Plan,
    entry: u32,
}

impl PvhKernel {
    /// Recognises and checks a kernel file (the whole file): everything
    /// that does not depend on the RAM size, including that no segment
    /// touches the boot-info area, so a bad kernel is refused before any VM
    /// exists.
    pub fn parse(file: &[u8]) -> Result<Self, KernelError> {
        let unpacked = pvboot::kernel::unpack(file, MAX_KERNEL_BYTES, compress::detect)?;
        let mut plan = kelf::inspect(&mut &unpacked.elf[..], BootMode::Pvh)?;
        let entry = match plan.entry {
            EntryPoint::Pvh { entry32 } => entry32,
            _ => {
                return Err(KernelError::Unsupported(
                    "a multiboot kernel: xenolith enters kernels by PVH (boot it through pvboot)".into(),
                ))
            }
        };
        let around_boot_info = Limits::new(vec![0..BOOT_INFO_START, BOOT_INFO_END..u64::MAX], u64::MAX)
            .reserve(BOOT_INFO_START..BOOT_INFO_END, "the boot-info area");
        plan.check(&around_boot_info)?;
        plan.description = unpacked.describe(&plan.description);
        let elf = unpacked.elf.into_owned();
        Ok(PvhKernel { elf, plan, entry })
    }

    /// The 32-bit physical entry point from XEN_ELFNOTE_PHYS32_ENTRY.
    pub fn entry(&self) -> u32 {
        self.entry
    }

    /// The non-empty PT_LOAD segments, sorted by address, not overlapping.
    pub fn segments(&self) -> &[Placed] {
        &self.plan.segments
    }

    /// What it is: "bzImage 2.15, ELF64 PVH (xz)".
    pub fn description(&self) -> &str {
        &self.plan.description
    }
}

/// A one-line summary for logs: "ELF64 PVH, entry 0x100000, 3 segments in [0x100000, 0x157088)".
impl fmt::Display for PvhKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.plan.fmt(f)
    }
}

/// pvboot's [`Memory`] over vm-memory guest RAM. vm-memory hands out
/// volatile slices, not `&mut [u8]`, so each slice asked for is staged in a
/// buffer (read from guest memory first) and written back when the next one
/// is asked for or at [`Staged::flush`]; this keeps the adapter free of
/// `unsafe` at the cost of a host-side copy.
struct Staged<'m, M: GuestMemory + ?Sized> {
    mem: &'m M,
    pending: Option<u64>,
    buf: Vec<u8>,
}

impl<M: GuestMemory + ?Sized> Staged<'_, M> {
    /// Writes the staged slice, if any, to guest memory.
    fn flush(&mut self) -> Result<(), KernelError> {
        if let Some(paddr) = self.pending.take() {
            self.mem.write_slice(&self.buf, GuestAddress(paddr)).map_err(|e| KernelError::Memory {
                range: paddr..paddr + self.buf.len() as u64,
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }
}

impl<M: GuestMemory + ?Sized> Memory for Staged<'_, M> {
    fn slice_mut(&mut self, paddr: u64, len: usize) -> Result<&mut [u8], KernelError> {
        self.flush()?;
        let range = paddr..paddr.saturating_add(len as u64);
        if !self.mem.check_range(GuestAddress(paddr), len, Permissions::ReadWrite) {
            return Err(KernelError::Memory { range, reason: "not backed by guest memory".into() });
        }
        self.buf.resize(len, 0);
        self.mem
            .read_slice(&mut self.buf, GuestAddress(paddr))
            .map_err(|e| KernelError::Memory { range, reason: e.to_string() })?;
        self.pending = Some(paddr);
        Ok(&mut self.buf)
    }
}

/// The guest-physical layout for a RAM size: where RAM is, what the guest's
/// memory map says, and what the VMM must back with host memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryLayout {
    memory: u64,
}

impl MemoryLayout {
    /// The layout for `memory` bytes of RAM (xl's `memory` MiB << 20).
    /// Any size is accepted here; [`plan`] and [`load`] refuse sizes that
    /// are not whole pages, too small for the boot info, or too large.
    pub fn new(memory: u64) -> Self {
        MemoryLayout { memory }
    }

    /// The RAM size in bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.memory
    }

    /// The RAM: `[0, min(memory, LOW_RAM_LIMIT))`, then the rest from
    /// [`HIGH_RAM_START`], in address order (saturating, never overflowing).
    pub fn ram_ranges(&self) -> Vec<Range<u64>> {
        let low = self.memory.min(LOW_RAM_LIMIT);
        let mut ranges = Vec::with_capacity(2);
        ranges.push(0..low);
        if self.memory > LOW_RAM_LIMIT {
            let high = self.memory - LOW_RAM_LIMIT;
            ranges.push(HIGH_RAM_START..HIGH_RAM_START.saturating_add(high));
        }
        ranges
    }

    /// What the VMM backs with host memory, as `(guest address, size)`: the
    /// RAM ranges and the special pages, in address order.
    pub fn guest_ranges(&self) -> Vec<(u64, usize)> {
        let mut ranges = self.ram_ranges();
        ranges.insert(1, SPECIAL_PAGES_START..SPECIAL_PAGES_END);
        ranges
            .into_iter()
            .filter(|r| r.end > r.start)
            .map(|r| {
                (
                    r.start,
                    usize::try_from(r.end - r.start).unwrap_or(usize::MAX),
                )
            })
            .collect()
    }

    /// The memory map the guest gets: its RAM and, between low and high RAM,
    /// the special pages as reserved, in address order.
    pub fn memory_map(&self) -> Vec<HvmMemmapEntry> {
        let entry = |r: Range<u64>, kind| HvmMemmapEntry {
            addr: r.start,
            size: r.end - r.start,
            kind,
            reserved: 0,
        };
        let mut ram = self.ram_ranges().into_iter();
        let mut map = Vec::with_capacity(3);
        if let Some(low) = ram.next() {
            map.push(entry(low, MEMMAP_TYPE_RAM));
        }
        map.push(entry(
            SPECIAL_PAGES_START..SPECIAL_PAGES_END,
            MEMMAP_TYPE_RESERVED,
        ));
        map.extend(ram.map(|r| entry(r, MEMMAP_TYPE_RAM)));
        map
    }

    /// The RAM for error messages: "256 MiB: [0x0, 0x10000000)".
    fn describe(&self) -> String {
        let ranges: Vec<String> = self
            .ram_ranges()
            .iter()
            .map(|r| format!("[{:#x}, {:#x})", r.start, r.end))
            .collect();
        format!("{}: {}", size(self.memory), ranges.join(" and "))
    }
}

/// What to boot besides the kernel.
#[derive(Clone, Copy, Debug)]
pub struct BootParams<'a> {
    /// The guest's memory layout (its RAM size).
    pub layout: &'a MemoryLayout,
    /// The kernel command line, or none (cmdline_paddr 0).
    pub cmdline: Option<&'a str>,
    /// The initial ramdisk, passed as boot module 0.
    pub ramdisk: Option<&'a [u8]>,
}

/// Where things went, for the vCPU setup and for logging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootInfo {
    /// The 32-bit physical entry point (EIP, in 32-bit protected mode with
    /// paging off, as the PVH ABI says).
    pub entry: u32,
    /// The hvm_start_info address (EBX: PVH enters in 32-bit mode, and the
    /// boot-info area is below 4 GiB).
    pub start_info: u32,
    /// The kernel's loaded segments, in address order.
    pub kernel: Vec<Range<u64>>,
    /// Where the ramdisk is, if any.
    pub ramdisk: Option<Range<u64>>,
    /// The boot-info area written.
    pub boot_info: Range<u64>,
}

/// Why a kernel cannot be loaded into this guest. Displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The kernel image is not a loadable PVH kernel, or does not fit the RAM.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The RAM size is not whole pages.
    #[error("RAM size {0:#x} is not a multiple of the 4 KiB page size")]
    UnalignedRam(u64),
    /// The RAM does not even hold the boot-info area.
    #[error("RAM ({}) is too small: the boot info alone needs [{BOOT_INFO_START:#x}, {BOOT_INFO_END:#x})", size(*.0))]
    RamTooSmall(u64),
    /// The RAM size overflows the guest-physical address space.
    #[error("RAM size {0:#x} is too large")]
    RamTooLarge(u64),
    /// The ramdisk is larger than the RAM below 4 GiB allows.
    #[error("ramdisk ({} bytes) does not fit in RAM ({ram})", .size)]
    RamdiskTooBig {
        /// Its size.
        size: u64,
        /// The RAM, described.
        ram: String,
    },
    /// The ramdisk, at the top of low RAM, would land on the kernel.
    #[error(
        "ramdisk at [{start:#x}, {end:#x}) would overlap kernel segment {index} \
         [{k_start:#x}, {k_end:#x}): RAM ({ram}) is too small for both"
    )]
    RamdiskOverlapsKernel {
        /// Ramdisk start.
        start: u64,
        /// Ramdisk end.
        end: u64,
        /// The segment's program header index.
        index: usize,
        /// Segment start.
        k_start: u64,
        /// Segment end.
        k_end: u64,
        /// The RAM, described.
        ram: String,
    },
    /// The command line or memory map does not fit the boot-info area.
    #[error("{0}")]
    BootInfo(BuildError),
    /// Guest memory refused a write (it does not cover the planned RAM).
    #[error("cannot write {what} to guest memory at [{start:#x}, {end:#x}): {error}")]
    Memory {
        /// What was being written.
        what: String,
        /// Start address.
        start: u64,
        /// End address.
        end: u64,
        /// vm-memory's reason.
        error: String,
    },
}

impl From<BuildError> for LoadError {
    fn from(e: BuildError) -> Self {
        LoadError::BootInfo(e)
    }
}

/// "N MiB" when whole, else bytes in hex: sizes as a user wrote them.
fn size(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes:#x} bytes")
    }
}

/// Everything [`load`] will write, decided without touching memory.
struct LoadPlan {
    info: BootInfo,
    /// The boot-info area's bytes.
    block: Vec<u8>,
    /// Where kernel segments may go.
    limits: Limits,
}

fn make_plan(kernel: &PvhKernel, params: &BootParams<'_>) -> Result<LoadPlan, LoadError> {
    let layout = params.layout;
    let memory = layout.ram_bytes();
    if !memory.is_multiple_of(PAGE_SIZE) {
        return Err(LoadError::UnalignedRam(memory));
    }
    if memory < BOOT_INFO_END {
        return Err(LoadError::RamTooSmall(memory));
    }
    if memory
        .checked_sub(LOW_RAM_LIMIT)
        .is_some_and(|high| HIGH_RAM_START.checked_add(high).is_none())
    {
        return Err(LoadError::RamTooLarge(memory));
    }
    let ram = layout.ram_ranges();

    // Kernels may use the RAM around the boot-info area.
    let mut allowed = Vec::with_capacity(ram.len() + 1);
    for r in &ram {
        if r.start < BOOT_INFO_END && BOOT_INFO_START < r.end {
            allowed.push(r.start..BOOT_INFO_START);
            allowed.push(BOOT_INFO_END..r.end);
        } else {
            allowed.push(r.clone());
        }
    }
    let limits = Limits::new(allowed, memory).reserve(BOOT_INFO_START..BOOT_INFO_END, "the boot-info area");
    kernel.plan.check(&limits)?;

    // The ramdisk goes at the top of low RAM, below the hole, where it is
    // out of the way of a kernel loaded low and its early allocations.
    let low_end = ram[0].end;
    let ramdisk = match params.ramdisk {
        None => None,
        Some(bytes) => {
            let len = bytes.len() as u64;
            let start = low_end
                .checked_sub(len)
                .map(|s| s & !(PAGE_SIZE - 1))
                .filter(|&s| s >= BOOT_INFO_END)
                .ok_or_else(|| LoadError::RamdiskTooBig {
                    size: len,
                    ram: layout.describe(),
                })?;
            let r = start..start + len;
            if let Some(s) = kernel
                .segments()
                .iter()
                .find(|s| s.dest < r.end && r.start < s.range().end)
            {
                return Err(LoadError::RamdiskOverlapsKernel {
                    start: r.start,
                    end: r.end,
                    index: s.index,
                    k_start: s.dest,
                    k_end: s.range().end,
                    ram: layout.describe(),
                });
            }
            Some(r)
        }
    };

    let modules: Vec<BootModule<'_>> =
        ramdisk.iter().map(|r| BootModule { paddr: r.start, size: r.end - r.start, cmdline: None }).collect();
    let mut block = vec![0u8; (BOOT_INFO_END - BOOT_INFO_START) as usize];
    let layout_of_block =
        start_info::build_hvm(&mut block, BOOT_INFO_START, &layout.memory_map(), &modules, params.cmdline, 0)?;
    let info = BootInfo {
        entry: kernel.entry(),
        // BOOT_INFO_START is a small constant.
        start_info: layout_of_block.start_info as u32,
        kernel: kernel.segments().iter().map(Placed::range).collect(),
        ramdisk,
        boot_info: BOOT_INFO_START..BOOT_INFO_END,
    };
    Ok(LoadPlan { info, block, limits })
}

/// Checks that `kernel` and `params` can be loaded into a guest of
/// `params.layout`, and says where everything would go, without any
/// guest memory: call it before creating the VM.
pub fn plan(kernel: &PvhKernel, params: &BootParams<'_>) -> Result<BootInfo, LoadError> {
    make_plan(kernel, params).map(|p| p.info)
}

/// Loads `kernel`, the ramdisk and the boot info into `mem`, which must
/// cover `params.layout`'s RAM (only the parts written are touched). Kernel bytes past each segment's file size, and the unused
/// rest of the boot-info area, are zeroed, so loading again after a reboot
/// leaves nothing stale behind. Everything is checked before the first
/// write.
pub fn load<M: GuestMemory + ?Sized>(
    mem: &M,
    kernel: &PvhKernel,
    params: &BootParams<'_>,
) -> Result<BootInfo, LoadError> {
    let LoadPlan { info, block, limits } = make_plan(kernel, params)?;
    write(mem, "boot info", BOOT_INFO_START, &block)?;
    // pvboot's loader: file bytes into place, bss zeroed (so a reboot leaves nothing stale).
    let mut staged = Staged { mem, pending: None, buf: Vec::new() };
    kelf::load(&mut &kernel.elf[..], &mut staged, &limits, BootMode::Pvh)?;
    staged.flush()?;
    if let (Some(r), Some(bytes)) = (&info.ramdisk, params.ramdisk) {
        write(mem, "ramdisk", r.start, bytes)?;
    }
    log::debug!(
        "PVH boot: entry {:#x}, start_info {:#x}, kernel {:x?}, ramdisk {:x?}",
        info.entry,
        info.start_info,
        info.kernel,
        info.ramdisk
    );
    Ok(info)
}

fn write<M: GuestMemory + ?Sized>(
    mem: &M,
    what: &str,
    addr: u64,
    bytes: &[u8],
) -> Result<(), LoadError> {
    mem.write_slice(bytes, GuestAddress(addr))
        .map_err(|e| LoadError::Memory {
            what: what.to_owned(),
            start: addr,
            end: addr.saturating_add(bytes.len() as u64),
            error: e.to_string(),
        })
}

/// Hand-made ELF images for the loader's tests.
#[cfg(test)]
mod test_image {
    /// A PT_LOAD segment to put in an image.
    pub struct Load {
        /// p_paddr.
        pub paddr: u64,
        /// The file bytes.
        pub data: Vec<u8>,
        /// p_memsz.
        pub memsz: u64,
    }

    /// Where the image keeps its notes: a PT_NOTE segment after the PT_LOAD headers.
    pub enum Notes {
        /// The note records.
        Segment(Vec<u8>),
    }

    /// One note record, padded to 4 bytes.
    pub fn note(name: &[u8], n_type: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32).to_le_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        v.extend_from_slice(&n_type.to_le_bytes());
        v.extend_from_slice(name);
        v.resize(v.len().next_multiple_of(4), 0);
        v.extend_from_slice(desc);
        v.resize(v.len().next_multiple_of(4), 0);
        v
    }

    /// Xen's PHYS32_ENTRY note.
    pub fn pvh_note(entry: u32) -> Vec<u8> {
        note(b"Xen\0", 18, &entry.to_le_bytes())
    }

    /// The ELF header size.
    pub fn ehsize(elf64: bool) -> usize {
        if elf64 {
            64
        } else {
            52
        }
    }

    /// The program header size.
    pub fn phentsize(elf64: bool) -> usize {
        if elf64 {
            56
        } else {
            32
        }
    }

    fn put(v: &mut [u8], off: usize, bytes: &[u8]) {
        v[off..off + bytes.len()].copy_from_slice(bytes);
    }

    fn word(v: &mut [u8], elf64: bool, off: usize, x: u64) {
        if elf64 {
            put(v, off, &x.to_le_bytes());
        } else {
            put(v, off, &(x as u32).to_le_bytes());
        }
    }

    /// Program header `i`'s file offset.
    pub fn phdr_at(elf64: bool, i: usize) -> usize {
        ehsize(elf64) + i * phentsize(elf64)
    }

    /// Builds an image: header, program headers (loads, then the PT_NOTE),
    /// the segment bytes, and section headers when notes are in a section.
    pub fn build(elf64: bool, loads: &[Load], notes: Notes) -> Vec<u8> {
        let nph = loads.len() + usize::from(matches!(notes, Notes::Segment(_)));
        let mut v = vec![0u8; ehsize(elf64) + nph * phentsize(elf64)];
        put(&mut v, 0, b"\x7fELF");
        v[4] = if elf64 { 2 } else { 1 };
        v[5] = 1;
        v[6] = 1;
        put(&mut v, 16, &2u16.to_le_bytes());
        put(
            &mut v,
            18,
            &(if elf64 { 62u16 } else { 3u16 }).to_le_bytes(),
        );
        put(&mut v, 20, &1u32.to_le_bytes());
        let (phoff_at, sizes_at) = if elf64 { (32, 52) } else { (28, 40) };
        word(&mut v, elf64, phoff_at, ehsize(elf64) as u64);
        put(&mut v, sizes_at, &(ehsize(elf64) as u16).to_le_bytes());
        put(
            &mut v,
            sizes_at + 2,
            &(phentsize(elf64) as u16).to_le_bytes(),
        );
        put(&mut v, sizes_at + 4, &(nph as u16).to_le_bytes());

        let phdr = |v: &mut Vec<u8>,
                    i: usize,
                    p_type: u32,
                    data: &[u8],
                    paddr: u64,
                    memsz: u64,
                    align: u64| {
            let offset = v.len().next_multiple_of(16);
            v.resize(offset, 0);
            v.extend_from_slice(data);
            let at = phdr_at(elf64, i);
            put(v, at, &p_type.to_le_bytes());
            let f = |o32: usize, o64: usize| at + if elf64 { o64 } else { o32 };
            word(v, elf64, f(4, 8), offset as u64);
            word(
                v,
                elf64,
                f(8, 16),
                paddr.wrapping_add(0xffff_ffff_8000_0000),
            );
            word(v, elf64, f(12, 24), paddr);
            word(v, elf64, f(16, 32), data.len() as u64);
            word(v, elf64, f(20, 40), memsz);
            word(v, elf64, f(28, 48), align);
        };
        for (i, l) in loads.iter().enumerate() {
            phdr(&mut v, i, 1, &l.data, l.paddr, l.memsz, 0x1000);
        }
        match notes {
            Notes::Segment(n) => phdr(&mut v, loads.len(), 4, &n, 0, n.len() as u64, 4),
        }
        v
    }
}


#[cfg(test)]
mod tests {
    use super::test_image::{build, pvh_note, Load, Notes};
    use super::*;
    use xen_abi::hvm::{HvmModlistEntry, HvmStartInfo};

    /// What a guest reads back from the boot-info area.
    mod decode {
        use super::*;
        pub fn start_info(b: &[u8]) -> HvmStartInfo {
            HvmStartInfo::from_bytes(b).unwrap()
        }
        pub fn memmap_entry(b: &[u8]) -> HvmMemmapEntry {
            HvmMemmapEntry::from_bytes(b).unwrap()
        }
        pub fn modlist_entry(b: &[u8]) -> HvmModlistEntry {
            HvmModlistEntry::from_bytes(b).unwrap()
        }
    }
    use vm_memory::GuestMemoryMmap;

    const MIB: u64 = 1 << 20;

    fn mem(ranges: &[(u64, u64)]) -> GuestMemoryMmap {
        let ranges: Vec<_> = ranges
            .iter()
            .map(|&(a, s)| (GuestAddress(a), s as usize))
            .collect();
        let mem = GuestMemoryMmap::from_ranges(&ranges).unwrap();
        // Dirty it, so zeroing is visible.
        for &(a, s) in &ranges {
            mem.write_slice(&vec![0xaa; s], a).unwrap();
        }
        mem
    }

    fn read(mem: &GuestMemoryMmap, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
        v
    }

    fn load_seg(paddr: u64, data: &[u8], memsz: u64) -> Load {
        Load {
            paddr,
            data: data.to_vec(),
            memsz,
        }
    }

    /// A kernel with text at 1 MiB and data + bss at 2 MiB.
    fn kernel(elf64: bool) -> PvhKernel {
        let text: Vec<u8> = (0..0x100u32).map(|i| i as u8).collect();
        PvhKernel::parse(&build(
            elf64,
            &[
                load_seg(0x10_0000, &text, 0x100),
                load_seg(0x20_0000, b"data", 0x3_0000),
            ],
            Notes::Segment(pvh_note(0x10_0040)),
        ))
        .unwrap()
    }

    fn params<'a>(
        memory: u64,
        cmdline: Option<&'a str>,
        ramdisk: Option<&'a [u8]>,
    ) -> BootParams<'a> {
        // Leaked so the helper can hand out a borrow; tests are short-lived.
        let layout = Box::leak(Box::new(MemoryLayout::new(memory)));
        BootParams {
            layout,
            cmdline,
            ramdisk,
        }
    }

    fn ram_ranges(memory: u64) -> Vec<Range<u64>> {
        MemoryLayout::new(memory).ram_ranges()
    }

    fn memory_map(memory: u64) -> Vec<HvmMemmapEntry> {
        MemoryLayout::new(memory).memory_map()
    }

    #[test]
    fn ram_layout() {
        assert_eq!(ram_ranges(16 * MIB), vec![(0..16 * MIB)]);
        assert_eq!(ram_ranges(LOW_RAM_LIMIT), vec![(0..LOW_RAM_LIMIT)]);
        assert_eq!(
            ram_ranges(4096 * MIB),
            [0..LOW_RAM_LIMIT, HIGH_RAM_START..HIGH_RAM_START + 256 * MIB]
        );
        let map = memory_map(16 * MIB);
        assert_eq!(
            map,
            [
                HvmMemmapEntry {
                    addr: 0,
                    size: 16 * MIB,
                    kind: MEMMAP_TYPE_RAM,
                    reserved: 0
                },
                HvmMemmapEntry {
                    addr: 0xfeff_0000,
                    size: 0x1_0000,
                    kind: MEMMAP_TYPE_RESERVED,
                    reserved: 0
                },
            ]
        );
        let map = memory_map(4096 * MIB);
        assert_eq!(map.len(), 3);
        assert_eq!((map[0].addr, map[0].size), (0, 0xf000_0000));
        assert_eq!(
            (map[1].addr, map[1].kind),
            (SPECIAL_PAGES_START, MEMMAP_TYPE_RESERVED)
        );
        assert_eq!(
            (map[2].addr, map[2].size, map[2].kind),
            (0x1_0000_0000, 0x1000_0000, MEMMAP_TYPE_RAM)
        );

        // Host memory backs the RAM and the special pages.
        let l = MemoryLayout::new(16 * MIB);
        assert_eq!(l.ram_bytes(), 16 * MIB);
        assert_eq!(l.guest_ranges(), [(0, 16 << 20), (0xfeff_0000, 0x1_0000)]);
        assert_eq!(
            MemoryLayout::new(4096 * MIB).guest_ranges(),
            [
                (0, 0xf000_0000),
                (0xfeff_0000, 0x1_0000),
                (0x1_0000_0000, 0x1000_0000)
            ]
        );
        assert_eq!((XENSTORE_RING, CONSOLE_RING), (0xfeff_4000, 0xfeff_7000));
        for page in [XENSTORE_RING, CONSOLE_RING] {
            assert!(
                (SPECIAL_PAGES_START..SPECIAL_PAGES_END).contains(&page) && page % PAGE_SIZE == 0
            );
        }
    }

    #[test]
    fn kernel_errors_convert() {
        let e: LoadError = PvhKernel::parse(b"nope").unwrap_err().into();
        assert_eq!(
            e.to_string(),
            "unknown kernel format: starts with 6e 6f 70 65 (not ELF, a bzImage, multiboot or a known compression)"
        );
        assert!(matches!(e, LoadError::Kernel(KernelError::UnknownFormat(_))));
    }

    #[test]
    fn loads_elf32_and_elf64() {
        for elf64 in [false, true] {
            let k = kernel(elf64);
            let m = mem(&[(0, 16 * MIB)]);
            let ramdisk: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
            let p = params(
                16 * MIB,
                Some("console=hvc0 root=/dev/xvda"),
                Some(&ramdisk),
            );
            let boot = load(&m, &k, &p).unwrap();
            assert_eq!(boot, plan(&k, &p).unwrap());
            assert_eq!(boot.entry, 0x10_0040);
            assert_eq!(boot.start_info, 0x1000);
            assert_eq!(boot.kernel, [0x10_0000..0x10_0100, 0x20_0000..0x23_0000]);
            assert_eq!(boot.boot_info, 0x1000..0x9000);

            // Segments: file bytes copied, the rest zeroed, neighbours untouched.
            assert_eq!(
                read(&m, 0x10_0000, 0x100),
                (0..0x100u32).map(|i| i as u8).collect::<Vec<_>>()
            );
            assert_eq!(read(&m, 0x10_0100, 1), [0xaa]);
            assert_eq!(read(&m, 0x20_0000, 4), b"data");
            assert!(read(&m, 0x20_0004, 0x3_0000 - 4).iter().all(|&b| b == 0));
            assert_eq!(read(&m, 0x23_0000, 1), [0xaa]);

            // Ramdisk: page-aligned at the top of RAM.
            let rd = boot.ramdisk.clone().unwrap();
            assert_eq!(rd, 0xff_e000..0xff_e000 + 5000);
            assert_eq!(read(&m, rd.start, 5000), ramdisk);

            // start_info and what it points at.
            let area = read(&m, 0x1000, 0x8000);
            let info = decode::start_info(&area);
            assert_eq!(info.magic, xen_abi::hvm::START_MAGIC);
            assert_eq!((info.version, info.nr_modules, info.rsdp_paddr), (1, 1, 0));
            assert_eq!(info.memmap_entries, 2);
            let at = |paddr: u64| (paddr - 0x1000) as usize;
            assert_eq!(
                decode::memmap_entry(&area[at(info.memmap_paddr)..]),
                memory_map(16 * MIB)[0]
            );
            assert_eq!(
                decode::memmap_entry(&area[at(info.memmap_paddr) + 24..]),
                memory_map(16 * MIB)[1]
            );
            let module = decode::modlist_entry(&area[at(info.modlist_paddr)..]);
            assert_eq!(
                (module.paddr, module.size, module.cmdline_paddr),
                (0xff_e000, 5000, 0)
            );
            let cmd = &area[at(info.cmdline_paddr)..];
            assert_eq!(&cmd[..28], b"console=hvc0 root=/dev/xvda\0");
            // The rest of the area was cleared, not left dirty.
            assert!(cmd[28..].iter().all(|&b| b == 0));
            assert_eq!(read(&m, 0x9000, 1), [0xaa]);
        }
    }

    /// pvboot is linked at 128 MiB (its heap above it, its kernels below):
    /// with memory = 256 the loader takes it, with 128 it says why not.
    #[test]
    fn a_kernel_linked_at_128_mib() {
        const BASE: u64 = 0x0800_0000;
        let text: Vec<u8> = (0..0x2000u32).map(|i| (i % 253) as u8).collect();
        let k = PvhKernel::parse(&build(
            true,
            &[load_seg(BASE, &text, 0x2000), load_seg(BASE + 0x10_0000, b"bss next", 0x40_0000)],
            Notes::Segment(pvh_note(BASE as u32 + 0x40)),
        ))
        .unwrap();
        let m = mem(&[(0, 256 * MIB)]);
        let ramdisk = vec![7u8; 3 * 4096];
        let p = params(256 * MIB, Some("pvboot"), Some(&ramdisk));
        let boot = load(&m, &k, &p).unwrap();
        assert_eq!(boot.entry, BASE as u32 + 0x40);
        assert_eq!(boot.kernel, [BASE..BASE + 0x2000, BASE + 0x10_0000..BASE + 0x50_0000]);
        assert_eq!(read(&m, BASE, 0x2000), text);
        assert_eq!(read(&m, BASE + 0x10_0000, 8), b"bss next");
        assert!(read(&m, BASE + 0x10_0008, 0x40_0000 - 8).iter().all(|&b| b == 0));
        // The ramdisk goes to the top of RAM, far above the image; RAM below
        // 128 MiB (where pvboot puts kernels) is left alone.
        assert_eq!(boot.ramdisk, Some(256 * MIB - 3 * 4096..256 * MIB));
        assert_eq!(read(&m, 0x10_0000, 1), [0xaa]);
        assert_eq!(read(&m, BASE - 1, 1), [0xaa]);
        assert_eq!(
            plan(&k, &params(128 * MIB, None, None)).unwrap_err().to_string(),
            "kernel segment 0 [0x8000000, 0x8002000) is outside the RAM kernels may use ([0x0, 0x1000), [0x9000, 0x8000000))"
        );
    }

    #[test]
    fn without_ramdisk_or_cmdline() {
        let m = mem(&[(0, 4 * MIB)]);
        let boot = load(&m, &kernel(true), &params(4 * MIB, None, None)).unwrap();
        assert_eq!(boot.ramdisk, None);
        let info = decode::start_info(&read(&m, 0x1000, 56));
        assert_eq!(
            (info.nr_modules, info.modlist_paddr, info.cmdline_paddr),
            (0, 0, 0)
        );
    }

    #[test]
    fn reloading_clears_old_boot_info() {
        let m = mem(&[(0, 4 * MIB)]);
        let k = kernel(true);
        load(&m, &k, &params(4 * MIB, Some(&"x".repeat(1000)), None)).unwrap();
        load(&m, &k, &params(4 * MIB, Some("short"), None)).unwrap();
        let area = read(&m, 0x1000, 0x8000);
        let at = (decode::start_info(&area).cmdline_paddr - 0x1000) as usize;
        assert_eq!(&area[at..at + 6], b"short\0");
        assert!(area[at + 6..].iter().all(|&b| b == 0));
    }

    #[test]
    fn high_memory() {
        // RAM beyond 0xF000_0000: the kernel may load above 4 GiB, the ramdisk
        // goes below the hole. Only the touched parts need backing here.
        let memory = LOW_RAM_LIMIT + 64 * MIB;
        let k = PvhKernel::parse(&build(
            true,
            &[
                load_seg(0x10_0000, &[1; 16], 16),
                load_seg(0x1_0000_0000, &[2; 16], 0x2000),
            ],
            Notes::Segment(pvh_note(0x10_0000)),
        ))
        .unwrap();
        let m = mem(&[
            (0, 2 * MIB),
            (LOW_RAM_LIMIT - MIB, MIB),
            (HIGH_RAM_START, MIB),
        ]);
        let boot = load(&m, &k, &params(memory, None, Some(&[7; 100]))).unwrap();
        assert_eq!(
            boot.ramdisk,
            Some(LOW_RAM_LIMIT - 0x1000..LOW_RAM_LIMIT - 0x1000 + 100)
        );
        assert_eq!(read(&m, LOW_RAM_LIMIT - 0x1000, 100), [7; 100]);
        assert_eq!(read(&m, HIGH_RAM_START, 16), [2; 16]);
        let info = decode::start_info(&read(&m, 0x1000, 56));
        assert_eq!(info.memmap_entries, 3);
        let high = decode::memmap_entry(&read(&m, info.memmap_paddr + 48, 24));
        assert_eq!(
            (high.addr, high.size, high.kind),
            (HIGH_RAM_START, memory - LOW_RAM_LIMIT, MEMMAP_TYPE_RAM)
        );
    }

    #[test]
    fn ram_size_errors() {
        let k = kernel(false);
        assert_eq!(
            plan(&k, &params(16 * MIB + 1, None, None))
                .unwrap_err()
                .to_string(),
            "RAM size 0x1000001 is not a multiple of the 4 KiB page size"
        );
        assert_eq!(
            plan(&k, &params(0x8000, None, None))
                .unwrap_err()
                .to_string(),
            "RAM (0x8000 bytes) is too small: the boot info alone needs [0x1000, 0x9000)"
        );
        assert_eq!(
            plan(&k, &params(!0xfff, None, None))
                .unwrap_err()
                .to_string(),
            "RAM size 0xfffffffffffff000 is too large"
        );
    }

    #[test]
    fn segments_outside_ram() {
        let k = kernel(true);
        assert_eq!(
            plan(&k, &params(MIB, None, None)).unwrap_err().to_string(),
            "kernel segment 0 [0x100000, 0x100100) is outside the RAM kernels may use \
             ([0x0, 0x1000), [0x9000, 0x100000))"
        );
        assert_eq!(
            plan(&k, &params(2 * MIB + 0x1000, None, None)).unwrap_err().to_string(),
            "kernel segment 1 [0x200000, 0x230000) is outside the RAM kernels may use \
             ([0x0, 0x1000), [0x9000, 0x201000))"
        );
        // In the hole between low RAM and 4 GiB, or in the special pages.
        for paddr in [LOW_RAM_LIMIT, SPECIAL_PAGES_START, HIGH_RAM_START - 0x1000] {
            let k = PvhKernel::parse(&build(
                true,
                &[load_seg(paddr, &[0; 16], 16)],
                Notes::Segment(pvh_note(paddr as u32)),
            ))
            .unwrap();
            let e = plan(&k, &params(8192 * MIB, None, None))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(
                    "is outside the RAM kernels may use \
                     ([0x0, 0x1000), [0x9000, 0xf0000000), [0x100000000, 0x210000000))"
                ),
                "{e}"
            );
        }
        // Straddling the end of low RAM.
        let k = PvhKernel::parse(&build(
            true,
            &[load_seg(LOW_RAM_LIMIT - 0x1000, &[0; 16], 0x2000)],
            Notes::Segment(pvh_note((LOW_RAM_LIMIT - 0x1000) as u32)),
        ))
        .unwrap();
        assert!(matches!(
            plan(&k, &params(8192 * MIB, None, None)),
            Err(LoadError::Kernel(KernelError::Placement(_)))
        ));
    }

    #[test]
    fn ramdisk_errors() {
        let k = kernel(true);
        let big = vec![0; 4 * MIB as usize];
        assert_eq!(
            plan(&k, &params(4 * MIB, None, Some(&big)))
                .unwrap_err()
                .to_string(),
            format!(
                "ramdisk ({} bytes) does not fit in RAM (4 MiB: [0x0, 0x400000))",
                4 * MIB
            )
        );
        let e = plan(&k, &params(4 * MIB, None, Some(&big[..2 * MIB as usize])))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "ramdisk at [0x200000, 0x400000) would overlap kernel segment 1 [0x200000, 0x230000): \
             RAM (4 MiB: [0x0, 0x400000)) is too small for both"
        );
        // Just fits above the kernel.
        let fits = (4 * MIB - 0x23_0000) as usize;
        assert_eq!(
            plan(&k, &params(4 * MIB, None, Some(&big[..fits])))
                .unwrap()
                .ramdisk,
            Some(0x23_0000..4 * MIB)
        );
        // An empty ramdisk is still a module, of size 0.
        assert_eq!(
            plan(&k, &params(4 * MIB, None, Some(&[]))).unwrap().ramdisk,
            Some(4 * MIB..4 * MIB)
        );
    }

    #[test]
    fn cmdline_errors() {
        let k = kernel(true);
        let long = "x".repeat(0x8000);
        let e = plan(&k, &params(4 * MIB, Some(&long), None))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "command line is 32768 bytes; at most {} fit in the boot-info area",
                0x8000 - 56 - 48 - 1
            )
        );
        assert!(plan(
            &k,
            &params(4 * MIB, Some(&long[..0x8000 - 56 - 48 - 1]), None)
        )
        .is_ok());
        assert_eq!(
            plan(&k, &params(4 * MIB, Some("a\0b"), None))
                .unwrap_err()
                .to_string(),
            "command line contains a NUL byte at offset 1"
        );
    }

    #[test]
    fn memory_that_does_not_cover_ram() {
        let k = kernel(true);
        // The plan says 16 MiB, but only 2 MiB are backed: the second
        // segment and the ramdisk cannot be written.
        let m = mem(&[(0, 2 * MIB)]);
        let e = load(&m, &k, &params(16 * MIB, None, None))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "cannot write guest memory [0x200000, 0x200004): not backed by guest memory"
            ),
            "{e}"
        );
        let m = mem(&[(0, 0x20_4000)]);
        let e = load(&m, &k, &params(16 * MIB, None, None))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "cannot write guest memory [0x200004, 0x230000): not backed by guest memory"
            ),
            "{e}"
        );
        let m = mem(&[(0, 4 * MIB)]);
        let e = load(&m, &k, &params(16 * MIB, None, Some(&[1; 10])))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot write ramdisk to guest memory at [0xfff000, 0xfff00a): "),
            "{e}"
        );
        let m = mem(&[(0x10_0000, 4 * MIB)]);
        let e = load(&m, &k, &params(16 * MIB, None, None))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot write boot info to guest memory at [0x1000, 0x9000): "),
            "{e}"
        );
    }
}
