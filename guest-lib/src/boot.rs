//! What the domain builder handed over, as safe Rust types, whatever the
//! boot mode: the command line, the memory map, boot modules, total RAM.
//!
//! PVH hands over `hvm_start_info` (xen/include/public/arch-x86/hvm/
//! start_info.h); version 1 adds the memory map. When there is none
//! (version 0, or no entries), the runtime asks Xen with XENMEM_memory_map
//! and feeds the raw E820 entries to [`BootInfo::set_e820`].
//!
//! Classic PV hands over `start_info` (xen.h) in the initial virtual
//! mapping, which guest-lib lays out as virtual = pseudo-physical (VIRT_BASE
//! 0), so the same [`PhysMem`] reads it. [`PvStartInfo`] holds its checked
//! fields (the arch code needs the machine frames and page-table facts);
//! [`BootInfo::parse_pv_start_info`] fills the same `BootInfo` from it: PV
//! has no memory map (XENMEM_memory_map is -ENOSYS for a plain PV domU), so
//! RAM is `[0, nr_pages * 4 KiB)`, and the bootstrap elements Xen placed
//! after the image are reserved.
//!
//! Everything is validated: every address and length is checked against
//! what [`PhysMem`] can reach, counts are capped, structures are read
//! byte-wise (no alignment assumptions), and garbage yields an error or a
//! warning flag, never a panic. `BootInfo` keeps slices of guest memory (the
//! command lines and module data); [`BootInfo::boot_ranges`] lists where
//! they live so that the heap stays away from them.

use core::fmt;

use xen_abi::hvm::{self, HvmMemmapEntry, HvmModlistEntry, HvmStartInfo};
use xen_abi::pv::{self as xpv, StartInfo};
use xen_abi::start_info::{
    HVM_START_INFO_SIZE as START_INFO_SIZE, HVM_START_INFO_V0_SIZE, MEMMAP_ENTRY_SIZE,
    MODLIST_ENTRY_SIZE, PV_START_INFO_SIZE,
};

/// Memory map entries kept (Xen's maps have a handful).
pub const MAX_MEMMAP: usize = 64;
/// Boot modules kept.
pub const MAX_MODULES: usize = 16;
/// Longest command line read (longer ones are truncated).
pub const MAX_CMDLINE: usize = 4096;
/// Ranges of boot data: start info, memmap, cmdline, module list, and two
/// per module (data and command line).
pub const MAX_BOOT_RANGES: usize = 4 + 2 * MAX_MODULES;

/// Read access to guest-physical memory, as the boot code may use it.
pub trait PhysMem {
    /// `len` bytes at `paddr`, or `None` if any of them is out of reach.
    /// The bytes must stay unchanged for as long as `BootInfo` lives.
    fn bytes(&self, paddr: u64, len: usize) -> Option<&'static [u8]>;
    /// The end (exclusive) of the reachable range.
    fn limit(&self) -> u64;
}

/// Why the boot information could not be read at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError {
    /// The start info itself lies outside reachable memory.
    BadAddress(u64),
    /// The start info's magic is not XEN_HVM_START_MAGIC_VALUE.
    BadMagic(u32),
    /// A PV start info whose magic does not start with "xen-".
    BadPvMagic([u8; 8]),
    /// A PV start info with no pages.
    NoPvPages,
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::BadAddress(a) => {
                write!(f, "start info at {a:#x} is outside reachable memory")
            }
            BootError::BadMagic(m) => write!(
                f,
                "start info magic {m:#x}, expected {:#x}",
                hvm::START_MAGIC
            ),
            BootError::BadPvMagic(m) => write!(
                f,
                "PV start info magic {:?}, expected \"xen-...\"",
                m.escape_ascii()
            ),
            BootError::NoPvPages => write!(f, "PV start info gives the domain no pages"),
        }
    }
}

/// What a memory map range holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    /// Usable RAM.
    Ram,
    /// Reserved (including Xen's special pages below 4 GiB).
    Reserved,
    /// ACPI tables, reclaimable after reading.
    AcpiReclaimable,
    /// ACPI non-volatile storage.
    AcpiNvs,
    /// Unusable (bad) memory.
    Unusable,
    /// A type this code does not know.
    Other(u32),
}

impl From<u32> for MemoryKind {
    fn from(t: u32) -> Self {
        match t {
            hvm::MEMMAP_TYPE_RAM => MemoryKind::Ram,
            hvm::MEMMAP_TYPE_RESERVED => MemoryKind::Reserved,
            hvm::MEMMAP_TYPE_ACPI => MemoryKind::AcpiReclaimable,
            hvm::MEMMAP_TYPE_NVS => MemoryKind::AcpiNvs,
            hvm::MEMMAP_TYPE_UNUSABLE => MemoryKind::Unusable,
            other => MemoryKind::Other(other),
        }
    }
}

impl From<MemoryKind> for u32 {
    /// The E820 type (what a memory map handed to the next kernel says).
    fn from(k: MemoryKind) -> u32 {
        match k {
            MemoryKind::Ram => hvm::MEMMAP_TYPE_RAM,
            MemoryKind::Reserved => hvm::MEMMAP_TYPE_RESERVED,
            MemoryKind::AcpiReclaimable => hvm::MEMMAP_TYPE_ACPI,
            MemoryKind::AcpiNvs => hvm::MEMMAP_TYPE_NVS,
            MemoryKind::Unusable => hvm::MEMMAP_TYPE_UNUSABLE,
            MemoryKind::Other(t) => t,
        }
    }
}

/// One memory map range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    /// First byte.
    pub start: u64,
    /// Length in bytes (never 0, never overflowing).
    pub size: u64,
    /// What it holds.
    pub kind: MemoryKind,
}

impl MemoryRegion {
    const EMPTY: MemoryRegion = MemoryRegion {
        start: 0,
        size: 0,
        kind: MemoryKind::Reserved,
    };

    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.start + self.size
    }
}

/// A physical address range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl PhysRange {
    const EMPTY: PhysRange = PhysRange { start: 0, end: 0 };
}

/// A boot module (an initrd, a kernel for pvboot...).
#[derive(Clone, Copy, Debug)]
pub struct Module {
    /// Physical address.
    pub paddr: u64,
    /// Size in bytes.
    pub size: u64,
    data: &'static [u8],
    cmdline: &'static str,
}

impl Module {
    const EMPTY: Module = Module {
        paddr: 0,
        size: 0,
        data: &[],
        cmdline: "",
    };

    /// The module's contents.
    pub fn data(&self) -> &'static [u8] {
        self.data
    }

    /// The module's command line ("" if none; valid UTF-8 prefix).
    pub fn cmdline(&self) -> &'static str {
        self.cmdline
    }
}

/// Things that were wrong but not fatal while parsing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Warnings {
    /// The command line had no NUL within [`MAX_CMDLINE`] bytes or reach.
    pub cmdline_truncated: bool,
    /// The command line is not valid UTF-8 ([`BootInfo::cmdline`] is the
    /// valid prefix; [`BootInfo::cmdline_bytes`] has everything).
    pub cmdline_not_utf8: bool,
    /// More memory map entries than [`MAX_MEMMAP`].
    pub memmap_truncated: bool,
    /// More modules than [`MAX_MODULES`].
    pub modules_truncated: bool,
    /// Entries skipped because their addresses were unreachable or absurd.
    pub bad_entries: u32,
}

/// The fields of a classic PV `start_info` the guest uses, read byte-wise
/// from guest memory and checked. Addresses are virtual in the initial
/// mapping, which is pseudo-physical here (VIRT_BASE 0); `shared_info_maddr`
/// and the two `*_mfn` are machine addresses/frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PvStartInfo {
    /// Where the start info itself is.
    pub vaddr: u64,
    /// The domain's pages: pseudo-physical frames `0..nr_pages`.
    pub nr_pages: u64,
    /// Machine address of the shared info page.
    pub shared_info_maddr: u64,
    /// SIF_* flags.
    pub flags: u32,
    /// Machine frame of the xenstore ring.
    pub store_mfn: u64,
    /// Event channel of the xenstore ring.
    pub store_evtchn: u32,
    /// Machine frame of the console ring.
    pub console_mfn: u64,
    /// Event channel of the console ring.
    pub console_evtchn: u32,
    /// Virtual address of the L4 page table.
    pub pt_base: u64,
    /// Number of bootstrap page-table frames.
    pub nr_pt_frames: u64,
    /// Virtual address of the p2m list (`nr_pages` u64 machine frames).
    pub mfn_list: u64,
    /// The module's address (a PFN with SIF_MOD_START_PFN), 0 if none.
    pub mod_start: u64,
    /// The module's size in bytes.
    pub mod_len: u64,
}

impl PvStartInfo {
    /// Reads and checks the start info at virtual address `vaddr`.
    pub fn read(mem: &impl PhysMem, vaddr: u64) -> Result<PvStartInfo, BootError> {
        let b = mem
            .bytes(vaddr, PV_START_INFO_SIZE)
            .ok_or(BootError::BadAddress(vaddr))?;
        if !b.starts_with(xpv::START_INFO_MAGIC_PREFIX) {
            let mut m = [0u8; 8];
            m.copy_from_slice(&b[..8]);
            return Err(BootError::BadPvMagic(m));
        }
        // `bytes` gave the whole structure, so decoding cannot fail.
        let s = StartInfo::from_bytes(b).ok_or(BootError::BadAddress(vaddr))?;
        let si = PvStartInfo {
            vaddr,
            nr_pages: s.nr_pages,
            shared_info_maddr: s.shared_info,
            flags: s.flags,
            store_mfn: s.store_mfn,
            store_evtchn: s.store_evtchn,
            console_mfn: s.console_mfn,
            console_evtchn: s.console_evtchn,
            pt_base: s.pt_base,
            nr_pt_frames: s.nr_pt_frames,
            mfn_list: s.mfn_list,
            mod_start: s.mod_start,
            mod_len: s.mod_len,
        };
        // A domain always has pages; more than 2^52 bytes of them is garbage.
        if si.nr_pages == 0 || si.nr_pages > 1 << 40 {
            return Err(BootError::NoPvPages);
        }
        Ok(si)
    }

    /// The pseudo-physical RAM size in bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.nr_pages << xen_abi::PAGE_SHIFT
    }

    /// The module as (address, size), if there is one. With
    /// SIF_MOD_START_PFN `mod_start` is a frame number.
    pub fn module(&self) -> Option<(u64, u64)> {
        if self.mod_start == 0 || self.mod_len == 0 {
            return None;
        }
        let addr = if self.flags & xpv::SIF_MOD_START_PFN != 0 {
            self.mod_start.checked_mul(xen_abi::PAGE_SIZE as u64)?
        } else {
            self.mod_start
        };
        Some((addr, self.mod_len))
    }
}

/// Boot information in safe Rust types.
pub struct BootInfo {
    cmdline_bytes: &'static [u8],
    cmdline: &'static str,
    memmap: [MemoryRegion; MAX_MEMMAP],
    memmap_len: usize,
    modules: [Module; MAX_MODULES],
    modules_len: usize,
    boot_ranges: [PhysRange; MAX_BOOT_RANGES],
    boot_ranges_len: usize,
    rsdp: Option<u64>,
    start_info_version: u32,
    warnings: Warnings,
}

fn le_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn le_u64(b: &[u8], off: usize) -> u64 {
    le_u32(b, off) as u64 | (le_u32(b, off + 4) as u64) << 32
}

/// Reads a NUL-terminated string of at most [`MAX_CMDLINE`] bytes.
/// Returns the bytes (without NUL) and whether no NUL was found.
fn read_cstr(mem: &impl PhysMem, paddr: u64) -> Option<(&'static [u8], bool)> {
    if paddr >= mem.limit() {
        return None;
    }
    let reach = (mem.limit() - paddr).min(MAX_CMDLINE as u64) as usize;
    let b = mem.bytes(paddr, reach)?;
    match b.iter().position(|&c| c == 0) {
        Some(n) => Some((&b[..n], false)),
        None => Some((b, true)),
    }
}

/// The longest valid UTF-8 prefix of `b`.
fn utf8_prefix(b: &'static [u8]) -> (&'static str, bool) {
    match core::str::from_utf8(b) {
        Ok(s) => (s, true),
        // `valid_up_to` marks a char boundary, so this cannot fail.
        Err(e) => (
            core::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or(""),
            false,
        ),
    }
}

/// Parses a number from a `key=value` command-line word: decimal, or
/// hexadecimal with a `0x` prefix.
pub fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

impl BootInfo {
    /// An empty `BootInfo` (usable as a static's initial value).
    pub const EMPTY: BootInfo = BootInfo {
        cmdline_bytes: &[],
        cmdline: "",
        memmap: [MemoryRegion::EMPTY; MAX_MEMMAP],
        memmap_len: 0,
        modules: [Module::EMPTY; MAX_MODULES],
        modules_len: 0,
        boot_ranges: [PhysRange::EMPTY; MAX_BOOT_RANGES],
        boot_ranges_len: 0,
        rsdp: None,
        start_info_version: 0,
        warnings: Warnings {
            cmdline_truncated: false,
            cmdline_not_utf8: false,
            memmap_truncated: false,
            modules_truncated: false,
            bad_entries: 0,
        },
    };

    /// Parses a PVH `hvm_start_info` at `paddr` into a new value.
    pub fn from_hvm_start_info(mem: &impl PhysMem, paddr: u64) -> Result<BootInfo, BootError> {
        let mut b = BootInfo::EMPTY;
        b.parse_hvm_start_info(mem, paddr)?;
        Ok(b)
    }

    /// Parses a PVH `hvm_start_info` at `paddr` into `self` (in place: the
    /// runtime fills a static without copying kilobytes around).
    pub fn parse_hvm_start_info(
        &mut self,
        mem: &impl PhysMem,
        paddr: u64,
    ) -> Result<(), BootError> {
        *self = BootInfo::EMPTY;
        let head = mem
            .bytes(paddr, HVM_START_INFO_V0_SIZE)
            .ok_or(BootError::BadAddress(paddr))?;
        // At least the version 0 fields are there, so decoding cannot fail.
        let info = HvmStartInfo::from_bytes(head).ok_or(BootError::BadAddress(paddr))?;
        if info.magic != hvm::START_MAGIC {
            return Err(BootError::BadMagic(info.magic));
        }
        let version = info.version;
        self.start_info_version = version;
        // Version 1+ adds the memory map fields; later versions may append
        // more, which we neither need nor read.
        let full = if version >= 1 {
            mem.bytes(paddr, START_INFO_SIZE)
        } else {
            None
        };
        self.add_boot_range(
            paddr,
            if full.is_some() {
                START_INFO_SIZE
            } else {
                HVM_START_INFO_V0_SIZE
            } as u64,
        );

        let cmdline_paddr = info.cmdline_paddr;
        if cmdline_paddr != 0 {
            match read_cstr(mem, cmdline_paddr) {
                Some((bytes, truncated)) => {
                    let (s, ok) = utf8_prefix(bytes);
                    self.cmdline_bytes = bytes;
                    self.cmdline = s;
                    self.warnings.cmdline_truncated = truncated;
                    self.warnings.cmdline_not_utf8 = !ok;
                    self.add_boot_range(cmdline_paddr, bytes.len() as u64 + 1);
                }
                None => self.warnings.bad_entries += 1,
            }
        }

        let rsdp = info.rsdp_paddr;
        self.rsdp = (rsdp != 0).then_some(rsdp);

        self.parse_modules(mem, info.modlist_paddr, info.nr_modules);

        if let Some(full) = full.and_then(HvmStartInfo::from_bytes) {
            let (map, entries) = (full.memmap_paddr, full.memmap_entries);
            if map != 0 && entries != 0 {
                self.parse_hvm_memmap(mem, map, entries);
            }
        }
        Ok(())
    }

    /// Fills `self` from a classic PV start info (already read with
    /// [`PvStartInfo::read`]). `bootstrap_end` is the end of Xen's bootstrap
    /// elements: the top of the boot stack it entered us on (RSP).
    ///
    /// The memory map becomes one RAM range `[0, nr_pages * 4 KiB)`. The
    /// reserved ranges are the start info page, the module, and
    /// `[mfn_list, bootstrap_end)`: xen.h fixes the order p2m list, start
    /// info, xenstore page, console page, page tables, boot stack, so that
    /// covers every bootstrap element; the p2m list and the page tables are
    /// also reserved on their own in case a builder orders them otherwise.
    pub fn parse_pv_start_info(
        &mut self,
        mem: &impl PhysMem,
        si: &PvStartInfo,
        bootstrap_end: u64,
    ) {
        *self = BootInfo::EMPTY;
        self.add_boot_range(si.vaddr, xen_abi::PAGE_SIZE as u64);
        if si.mfn_list != 0 && si.mfn_list < bootstrap_end {
            self.add_boot_range(si.mfn_list, bootstrap_end - si.mfn_list);
        }
        self.add_boot_range(si.mfn_list, si.nr_pages.saturating_mul(8));
        self.add_boot_range(
            si.pt_base,
            si.nr_pt_frames.saturating_mul(xen_abi::PAGE_SIZE as u64),
        );
        self.push_region(0, si.ram_bytes(), hvm::MEMMAP_TYPE_RAM);

        // The command line is inside the start info page; Xen NUL-terminates
        // it within MAX_GUEST_CMDLINE bytes, but do not trust that.
        let cmd_line = core::mem::offset_of!(StartInfo, cmd_line) as u64;
        if let Some(raw) = mem.bytes(si.vaddr + cmd_line, xpv::MAX_GUEST_CMDLINE) {
            let (bytes, truncated) = match raw.iter().position(|&c| c == 0) {
                Some(n) => (&raw[..n], false),
                None => (raw, true),
            };
            let (s, ok) = utf8_prefix(bytes);
            self.cmdline_bytes = bytes;
            self.cmdline = s;
            self.warnings.cmdline_truncated = truncated;
            self.warnings.cmdline_not_utf8 = !ok;
        } else {
            self.warnings.bad_entries += 1;
        }

        if let Some((paddr, size)) = si.module() {
            let data = usize::try_from(size)
                .ok()
                .and_then(|len| mem.bytes(paddr, len));
            match data {
                Some(data) => {
                    self.add_boot_range(paddr, size);
                    self.modules[0] = Module {
                        paddr,
                        size,
                        data,
                        cmdline: "",
                    };
                    self.modules_len = 1;
                }
                None => self.warnings.bad_entries += 1,
            }
        }
    }

    /// Keeps the heap away from `[start, start + len)` (memory the arch
    /// code took for itself during boot, e.g. page tables).
    pub fn reserve(&mut self, start: u64, len: u64) {
        self.add_boot_range(start, len);
    }

    fn parse_modules(&mut self, mem: &impl PhysMem, list: u64, count: u32) {
        if count == 0 || list == 0 {
            return;
        }
        let n = (count as usize).min(MAX_MODULES);
        self.warnings.modules_truncated = count as usize > MAX_MODULES;
        let Some(raw) = mem.bytes(list, n * MODLIST_ENTRY_SIZE) else {
            self.warnings.bad_entries += count;
            return;
        };
        self.add_boot_range(list, (n * MODLIST_ENTRY_SIZE) as u64);
        for e in raw
            .chunks_exact(MODLIST_ENTRY_SIZE)
            .filter_map(HvmModlistEntry::from_bytes)
        {
            let (paddr, size, cmdline_paddr) = (e.paddr, e.size, e.cmdline_paddr);
            let data = usize::try_from(size)
                .ok()
                .and_then(|len| mem.bytes(paddr, len));
            let Some(data) = data else {
                self.warnings.bad_entries += 1;
                continue;
            };
            let mut cmdline = "";
            if cmdline_paddr != 0 {
                if let Some((bytes, _)) = read_cstr(mem, cmdline_paddr) {
                    cmdline = utf8_prefix(bytes).0;
                    self.add_boot_range(cmdline_paddr, bytes.len() as u64 + 1);
                }
            }
            self.add_boot_range(paddr, size);
            self.modules[self.modules_len] = Module {
                paddr,
                size,
                data,
                cmdline,
            };
            self.modules_len += 1;
        }
    }

    fn parse_hvm_memmap(&mut self, mem: &impl PhysMem, paddr: u64, entries: u32) {
        let n = (entries as usize).min(MAX_MEMMAP);
        self.warnings.memmap_truncated = entries as usize > MAX_MEMMAP;
        let Some(raw) = mem.bytes(paddr, n * MEMMAP_ENTRY_SIZE) else {
            self.warnings.bad_entries += entries;
            return;
        };
        self.add_boot_range(paddr, (n * MEMMAP_ENTRY_SIZE) as u64);
        for e in raw
            .chunks_exact(MEMMAP_ENTRY_SIZE)
            .filter_map(HvmMemmapEntry::from_bytes)
        {
            self.push_region(e.addr, e.size, e.kind);
        }
        self.sort_memmap();
    }

    /// Replaces the memory map with `count` packed 20-byte E820 entries
    /// (what XENMEM_memory_map returns).
    pub fn set_e820(&mut self, raw: &[u8], count: usize) {
        const E: usize = xen_abi::memory::E820_ENTRY_SIZE;
        self.memmap_len = 0;
        let n = count.min(raw.len() / E);
        self.warnings.memmap_truncated = n > MAX_MEMMAP;
        for e in raw[..n * E].chunks_exact(E) {
            self.push_region(le_u64(e, 0), le_u64(e, 8), le_u32(e, 16));
        }
        self.sort_memmap();
    }

    fn push_region(&mut self, start: u64, size: u64, kind: u32) {
        if size == 0 || start.checked_add(size).is_none() {
            self.warnings.bad_entries += 1;
            return;
        }
        if self.memmap_len == MAX_MEMMAP {
            self.warnings.memmap_truncated = true;
            return;
        }
        self.memmap[self.memmap_len] = MemoryRegion {
            start,
            size,
            kind: kind.into(),
        };
        self.memmap_len += 1;
    }

    fn sort_memmap(&mut self) {
        self.memmap[..self.memmap_len].sort_unstable_by_key(|r| r.start);
    }

    fn add_boot_range(&mut self, start: u64, len: u64) {
        if len == 0 || self.boot_ranges_len == MAX_BOOT_RANGES {
            return;
        }
        let end = start.saturating_add(len);
        self.boot_ranges[self.boot_ranges_len] = PhysRange { start, end };
        self.boot_ranges_len += 1;
    }

    /// The command line (its longest valid UTF-8 prefix; "" if none).
    pub fn cmdline(&self) -> &'static str {
        self.cmdline
    }

    /// The value of the command line's last `key=value` word (`key` given
    /// with its `=`), as kernel parameters are read.
    pub fn cmdline_value(&self, key: &str) -> Option<&'static str> {
        self.cmdline.split_ascii_whitespace().filter_map(|w| w.strip_prefix(key)).next_back()
    }

    /// The command line's raw bytes, without the NUL.
    pub fn cmdline_bytes(&self) -> &'static [u8] {
        self.cmdline_bytes
    }

    /// The memory map, sorted by start address.
    pub fn memory_map(&self) -> &[MemoryRegion] {
        &self.memmap[..self.memmap_len]
    }

    /// Boot modules.
    pub fn modules(&self) -> &[Module] {
        &self.modules[..self.modules_len]
    }

    /// Where boot data lives (start info, tables, command lines, modules):
    /// memory the heap must not hand out.
    pub fn boot_ranges(&self) -> &[PhysRange] {
        &self.boot_ranges[..self.boot_ranges_len]
    }

    /// The ACPI RSDP's physical address, if any.
    pub fn rsdp(&self) -> Option<u64> {
        self.rsdp
    }

    /// hvm_start_info's version field (0 for a classic PV start info).
    pub fn start_info_version(&self) -> u32 {
        self.start_info_version
    }

    /// Non-fatal problems found while parsing.
    pub fn warnings(&self) -> Warnings {
        self.warnings
    }

    /// Bytes of RAM in the memory map.
    pub fn total_ram(&self) -> u64 {
        self.memory_map()
            .iter()
            .filter(|r| r.kind == MemoryKind::Ram)
            .map(|r| r.size)
            .sum()
    }

    /// The end of the highest RAM range (0 without a memory map).
    pub fn ram_end(&self) -> u64 {
        self.memory_map()
            .iter()
            .filter(|r| r.kind == MemoryKind::Ram)
            .map(|r| r.end())
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    /// Offsets in the PV start_info, for building test images.
    mod pvsi {
        use core::mem::offset_of;
        use xen_abi::pv::StartInfo as S;
        pub const NR_PAGES: usize = offset_of!(S, nr_pages);
        pub const SHARED_INFO: usize = offset_of!(S, shared_info);
        pub const FLAGS: usize = offset_of!(S, flags);
        pub const STORE_MFN: usize = offset_of!(S, store_mfn);
        pub const STORE_EVTCHN: usize = offset_of!(S, store_evtchn);
        pub const CONSOLE_MFN: usize = offset_of!(S, console_mfn);
        pub const CONSOLE_EVTCHN: usize = offset_of!(S, console_evtchn);
        pub const PT_BASE: usize = offset_of!(S, pt_base);
        pub const NR_PT_FRAMES: usize = offset_of!(S, nr_pt_frames);
        pub const MFN_LIST: usize = offset_of!(S, mfn_list);
        pub const MOD_START: usize = offset_of!(S, mod_start);
        pub const MOD_LEN: usize = offset_of!(S, mod_len);
        pub const CMD_LINE: usize = offset_of!(S, cmd_line);
    }

    /// Offsets in hvm_start_info, for building test images.
    mod si {
        use core::mem::offset_of;
        use xen_abi::hvm::HvmStartInfo as S;
        pub const MAGIC: usize = offset_of!(S, magic);
        pub const VERSION: usize = offset_of!(S, version);
        pub const NR_MODULES: usize = offset_of!(S, nr_modules);
        pub const MODLIST: usize = offset_of!(S, modlist_paddr);
        pub const CMDLINE: usize = offset_of!(S, cmdline_paddr);
        pub const MEMMAP: usize = offset_of!(S, memmap_paddr);
        pub const MEMMAP_ENTRIES: usize = offset_of!(S, memmap_entries);
    }

    use super::*;

    #[test]
    fn command_line_numbers_are_decimal_or_0x_hex() {
        assert_eq!(parse_number("4096"), Some(4096));
        assert_eq!(parse_number("0x1000"), Some(4096));
        assert_eq!(parse_number("0x"), None);
        assert_eq!(parse_number("-1"), None);
        assert_eq!(parse_number("12k"), None);
    }

    /// Guest memory for tests: `data` at physical address `base`.
    struct Fake {
        base: u64,
        data: &'static [u8],
    }

    impl PhysMem for Fake {
        fn bytes(&self, paddr: u64, len: usize) -> Option<&'static [u8]> {
            let off = usize::try_from(paddr.checked_sub(self.base)?).ok()?;
            self.data.get(off..off.checked_add(len)?)
        }
        fn limit(&self) -> u64 {
            self.base + self.data.len() as u64
        }
    }

    const BASE: u64 = 0x1000;
    const SI: usize = 0x000;
    const CMD: usize = 0x100;
    const MAP: usize = 0x200;
    const MODS: usize = 0x400;
    const MOD0: usize = 0x500;
    const MODCMD: usize = 0x600;

    fn put32(m: &mut [u8], off: usize, v: u32) {
        m[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn put64(m: &mut [u8], off: usize, v: u64) {
        m[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }
    fn pa(off: usize) -> u64 {
        BASE + off as u64
    }

    /// A version-1 start info with a cmdline, a 3-entry memmap, one module.
    fn image() -> Vec<u8> {
        let mut m = vec![0u8; 0x1000];
        put32(&mut m, SI + si::MAGIC, hvm::START_MAGIC);
        put32(&mut m, SI + si::VERSION, 1);
        put32(&mut m, SI + si::NR_MODULES, 1);
        put64(&mut m, SI + si::MODLIST, pa(MODS));
        put64(&mut m, SI + si::CMDLINE, pa(CMD));
        put64(&mut m, SI + si::MEMMAP, pa(MAP));
        put32(&mut m, SI + si::MEMMAP_ENTRIES, 3);
        m[CMD..CMD + 12].copy_from_slice(b"hello panic\0");
        // Deliberately unsorted: high RAM, reserved special pages, low RAM.
        let entries: [(u64, u64, u32); 3] = [
            (0x100000, 63 << 20, 1),
            (0xFEFF_0000, 0x10000, 2),
            (0, 0xA0000, 1),
        ];
        for (i, (a, s, t)) in entries.iter().enumerate() {
            let o = MAP + i * 24;
            put64(&mut m, o, *a);
            put64(&mut m, o + 8, *s);
            put32(&mut m, o + 16, *t);
        }
        put64(&mut m, MODS, pa(MOD0));
        put64(&mut m, MODS + 8, 16);
        put64(&mut m, MODS + 16, pa(MODCMD));
        m[MOD0..MOD0 + 16].copy_from_slice(b"0123456789abcdef");
        m[MODCMD..MODCMD + 7].copy_from_slice(b"initrd\0");
        m
    }

    fn fake(m: Vec<u8>) -> Fake {
        Fake {
            base: BASE,
            data: Box::leak(m.into_boxed_slice()),
        }
    }

    #[test]
    fn parses_a_full_v1_start_info() {
        let b = BootInfo::from_hvm_start_info(&fake(image()), pa(SI)).unwrap();
        assert_eq!(b.cmdline(), "hello panic");
        assert_eq!(b.start_info_version(), 1);
        let map = b.memory_map();
        assert_eq!(map.len(), 3);
        assert_eq!(
            map[0],
            MemoryRegion {
                start: 0,
                size: 0xA0000,
                kind: MemoryKind::Ram
            }
        );
        assert_eq!(map[2].kind, MemoryKind::Reserved);
        assert_eq!(b.total_ram(), 0xA0000 + (63 << 20));
        assert_eq!(b.ram_end(), 0x100000 + (63 << 20));
        assert_eq!(b.modules().len(), 1);
        assert_eq!(b.modules()[0].data(), b"0123456789abcdef");
        assert_eq!(b.modules()[0].cmdline(), "initrd");
        assert_eq!(b.rsdp(), None);
        assert_eq!(b.warnings(), Warnings::default());
        // start info, cmdline, module list, module cmdline, module, memmap
        let r = b.boot_ranges();
        assert_eq!(r.len(), 6);
        assert!(r.contains(&PhysRange {
            start: pa(CMD),
            end: pa(CMD) + 12
        }));
        assert!(r.contains(&PhysRange {
            start: pa(MOD0),
            end: pa(MOD0) + 16
        }));
    }

    #[test]
    fn version_0_has_no_memmap() {
        let mut m = image();
        put32(&mut m, SI + si::VERSION, 0);
        let b = BootInfo::from_hvm_start_info(&fake(m), pa(SI)).unwrap();
        assert!(b.memory_map().is_empty());
        assert_eq!(b.total_ram(), 0);
        assert_eq!(b.cmdline(), "hello panic");
    }

    #[test]
    fn rejects_bad_magic_and_bad_address() {
        let mut m = image();
        put32(&mut m, SI, 0xdead_beef);
        let f = fake(m);
        assert_eq!(
            BootInfo::from_hvm_start_info(&f, pa(SI)).err(),
            Some(BootError::BadMagic(0xdead_beef))
        );
        assert_eq!(
            BootInfo::from_hvm_start_info(&f, 0x10).err(),
            Some(BootError::BadAddress(0x10))
        );
        assert_eq!(
            BootInfo::from_hvm_start_info(&f, pa(0xFF0)).err(),
            Some(BootError::BadAddress(pa(0xFF0))),
            "a start info running off the end"
        );
    }

    #[test]
    fn garbage_pointers_become_warnings() {
        let mut m = image();
        put64(&mut m, SI + si::CMDLINE, 0xFFFF_FFFF_FFFF_FFF0);
        put64(&mut m, SI + si::MEMMAP, u64::MAX);
        put32(&mut m, SI + si::NR_MODULES, 1000);
        put64(&mut m, MODS + 8, u64::MAX); // module size overflows
        let b = BootInfo::from_hvm_start_info(&fake(m), pa(SI)).unwrap();
        assert_eq!(b.cmdline(), "");
        assert!(b.memory_map().is_empty());
        assert!(b.modules().is_empty());
        let w = b.warnings();
        assert!(w.modules_truncated);
        assert!(w.bad_entries >= 3);
    }

    #[test]
    fn cmdline_without_nul_or_utf8() {
        let mut m = image();
        m[CMD..CMD + 6].copy_from_slice(b"ab\xffcd\0");
        let b = BootInfo::from_hvm_start_info(&fake(m), pa(SI)).unwrap();
        assert_eq!(b.cmdline(), "ab");
        assert_eq!(b.cmdline_bytes(), b"ab\xffcd");
        assert!(b.warnings().cmdline_not_utf8);

        // A command line running to the end of memory with no NUL.
        let mut m = image();
        put64(&mut m, SI + si::CMDLINE, pa(0xFFC));
        m[0xFFC..].copy_from_slice(b"tail");
        let b = BootInfo::from_hvm_start_info(&fake(m), pa(SI)).unwrap();
        assert_eq!(b.cmdline(), "tail");
        assert!(b.warnings().cmdline_truncated);
    }

    #[test]
    fn zero_sized_and_overflowing_regions_are_skipped() {
        let mut m = image();
        put64(&mut m, MAP + 8, 0); // size 0
        put64(&mut m, MAP + 24, u64::MAX - 5); // start + size overflows
        let b = BootInfo::from_hvm_start_info(&fake(m), pa(SI)).unwrap();
        assert_eq!(b.memory_map().len(), 1);
        assert_eq!(b.warnings().bad_entries, 2);
    }

    #[test]
    fn e820_fallback() {
        let mut raw = vec![0u8; 3 * 20];
        let entries: [(u64, u64, u32); 3] = [
            (0x100000, 0x300000, 1),
            (0, 0x9f000, 1),
            (0xfc000000, 0x1000, 2),
        ];
        for (i, (a, s, t)) in entries.iter().enumerate() {
            put64(&mut raw, i * 20, *a);
            put64(&mut raw, i * 20 + 8, *s);
            put32(&mut raw, i * 20 + 16, *t);
        }
        let mut b = BootInfo::EMPTY;
        b.set_e820(&raw, 3);
        assert_eq!(b.memory_map().len(), 3);
        assert_eq!(b.memory_map()[0].start, 0);
        assert_eq!(b.total_ram(), 0x9f000 + 0x300000);
        // A count larger than the buffer is clipped to it.
        b.set_e820(&raw, 100);
        assert_eq!(b.memory_map().len(), 3);
    }

    /// A PV start info at `pa(SI)` with a command line and one module.
    fn pv_image() -> Vec<u8> {
        let mut m = vec![0u8; 0x1000 + 0x800];
        m[SI..SI + 14].copy_from_slice(b"xen-3.0-x86_64");
        put64(&mut m, SI + pvsi::NR_PAGES, 8192);
        put64(&mut m, SI + pvsi::SHARED_INFO, 0x1234_5000);
        put64(&mut m, SI + pvsi::STORE_MFN, 0x777);
        put32(&mut m, SI + pvsi::STORE_EVTCHN, 1);
        put64(&mut m, SI + pvsi::CONSOLE_MFN, 0x778);
        put32(&mut m, SI + pvsi::CONSOLE_EVTCHN, 2);
        put64(&mut m, SI + pvsi::PT_BASE, 0x40_0000);
        put64(&mut m, SI + pvsi::NR_PT_FRAMES, 5);
        put64(&mut m, SI + pvsi::MFN_LIST, 0x30_0000);
        put64(&mut m, SI + pvsi::MOD_START, pa(0x1600));
        put64(&mut m, SI + pvsi::MOD_LEN, 16);
        m[SI + pvsi::CMD_LINE..SI + pvsi::CMD_LINE + 12].copy_from_slice(b"hello panic\0");
        m[0x1600..0x1610].copy_from_slice(b"0123456789abcdef");
        m
    }

    #[test]
    fn parses_a_pv_start_info() {
        let f = fake(pv_image());
        let si = PvStartInfo::read(&f, pa(SI)).unwrap();
        assert_eq!(si.nr_pages, 8192);
        assert_eq!(si.shared_info_maddr, 0x1234_5000);
        assert_eq!((si.store_mfn, si.store_evtchn), (0x777, 1));
        assert_eq!((si.console_mfn, si.console_evtchn), (0x778, 2));
        assert_eq!(
            (si.pt_base, si.nr_pt_frames, si.mfn_list),
            (0x40_0000, 5, 0x30_0000)
        );
        assert_eq!(si.module(), Some((pa(0x1600), 16)));

        let mut b = BootInfo::EMPTY;
        b.parse_pv_start_info(&f, &si, 0x40_6000);
        assert_eq!(b.cmdline(), "hello panic");
        assert_eq!(
            b.memory_map(),
            &[MemoryRegion {
                start: 0,
                size: 32 << 20,
                kind: MemoryKind::Ram
            }]
        );
        assert_eq!(b.total_ram(), 32 << 20);
        assert_eq!(b.modules().len(), 1);
        assert_eq!(b.modules()[0].data(), b"0123456789abcdef");
        let r = b.boot_ranges();
        for want in [
            PhysRange {
                start: pa(SI),
                end: pa(SI) + 4096,
            },
            PhysRange {
                start: 0x30_0000,
                end: 0x40_6000,
            },
            PhysRange {
                start: 0x30_0000,
                end: 0x30_0000 + 8192 * 8,
            },
            PhysRange {
                start: 0x40_0000,
                end: 0x40_5000,
            },
            PhysRange {
                start: pa(0x1600),
                end: pa(0x1610),
            },
        ] {
            assert!(r.contains(&want), "{want:?} missing from {r:?}");
        }
        assert_eq!(b.warnings(), Warnings::default());
        b.reserve(0x50_0000, 0x1000);
        assert!(b.boot_ranges().contains(&PhysRange {
            start: 0x50_0000,
            end: 0x50_1000
        }));
    }

    #[test]
    fn pv_module_by_pfn_and_bad_module() {
        let mut m = pv_image();
        put32(&mut m, SI + pvsi::FLAGS, xpv::SIF_MOD_START_PFN);
        put64(&mut m, SI + pvsi::MOD_START, 2); // pfn 2 = 0x2000: in the fake
        let f = fake(m);
        let si = PvStartInfo::read(&f, pa(SI)).unwrap();
        assert_eq!(si.module(), Some((0x2000, 16)));
        let mut b = BootInfo::EMPTY;
        b.parse_pv_start_info(&f, &si, 0);
        assert_eq!(b.modules()[0].data(), &f.data[0x1000..0x1010]);

        let mut m = pv_image();
        put64(&mut m, SI + pvsi::MOD_LEN, u64::MAX);
        let f = fake(m);
        let si = PvStartInfo::read(&f, pa(SI)).unwrap();
        b.parse_pv_start_info(&f, &si, 0);
        assert!(b.modules().is_empty());
        assert_eq!(b.warnings().bad_entries, 1);
    }

    #[test]
    fn pv_rejects_bad_magic_no_pages_and_unterminated_cmdline() {
        let mut m = pv_image();
        m[SI..SI + 4].copy_from_slice(b"XEN-");
        assert!(matches!(
            PvStartInfo::read(&fake(m), pa(SI)),
            Err(BootError::BadPvMagic(_))
        ));
        let mut m = pv_image();
        put64(&mut m, SI + pvsi::NR_PAGES, 0);
        assert_eq!(
            PvStartInfo::read(&fake(m), pa(SI)),
            Err(BootError::NoPvPages)
        );
        assert_eq!(
            PvStartInfo::read(&fake(pv_image()), pa(0x1700)),
            Err(BootError::BadAddress(pa(0x1700)))
        );

        let mut m = pv_image();
        m[SI + pvsi::CMD_LINE..SI + pvsi::CMD_LINE + 1024].fill(b'x');
        let f = fake(m);
        let si = PvStartInfo::read(&f, pa(SI)).unwrap();
        let mut b = BootInfo::EMPTY;
        b.parse_pv_start_info(&f, &si, 0);
        assert_eq!(b.cmdline().len(), 1024);
        assert!(b.warnings().cmdline_truncated);
    }
}
