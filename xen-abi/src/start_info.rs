//! The boot information a domain builder hands a kernel, as bytes: PVH's
//! `hvm_start_info` block (start info, memory map, module list, command
//! lines) and classic PV's `start_info` page, encoded and decoded field by
//! field in little-endian order at the offsets the C layout gives them (no
//! transmutes: the bytes may sit anywhere, unaligned).
//!
//! One builder, [`build_hvm`], lays out the PVH block for every domain
//! builder in the project: the hypervisor's loader and pvboot's hand-off.

use core::fmt;

use crate::hvm::{HvmMemmapEntry, HvmModlistEntry, HvmStartInfo, START_MAGIC};
use crate::pv::{StartInfo, MAX_GUEST_CMDLINE};

/// Size of `struct hvm_start_info` (version 1).
pub const HVM_START_INFO_SIZE: usize = 56;
/// Size of version 0 of `struct hvm_start_info`: it ends after `rsdp_paddr`.
pub const HVM_START_INFO_V0_SIZE: usize = 40;
/// Size of `struct hvm_memmap_table_entry`.
pub const MEMMAP_ENTRY_SIZE: usize = 24;
/// Size of `struct hvm_modlist_entry`.
pub const MODLIST_ENTRY_SIZE: usize = 32;
/// Size of the x86_64 PV `struct start_info`.
pub const PV_START_INFO_SIZE: usize = 1168;

crate::assert_size!(HvmStartInfo, HVM_START_INFO_SIZE);
crate::assert_size!(HvmMemmapEntry, MEMMAP_ENTRY_SIZE);
crate::assert_size!(HvmModlistEntry, MODLIST_ENTRY_SIZE);
crate::assert_size!(StartInfo, PV_START_INFO_SIZE);
const _: () = assert!(core::mem::offset_of!(HvmStartInfo, memmap_paddr) == HVM_START_INFO_V0_SIZE);

/// Writes little-endian fields one after the other.
struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }
    fn u32(&mut self, x: u32) {
        self.put(&x.to_le_bytes());
    }
    fn u64(&mut self, x: u64) {
        self.put(&x.to_le_bytes());
    }
}

/// Reads little-endian fields one after the other; past the end of the
/// buffer every field reads as 0 (a shorter, older version of a structure).
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut v = [0u8; N];
        if let Some(b) = self.buf.get(self.at..self.at + N) {
            v.copy_from_slice(b);
        }
        self.at += N;
        v
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
}

impl HvmStartInfo {
    /// The structure's bytes.
    pub fn to_bytes(&self) -> [u8; HVM_START_INFO_SIZE] {
        let mut b = [0u8; HVM_START_INFO_SIZE];
        let mut w = Writer { buf: &mut b, at: 0 };
        w.u32(self.magic);
        w.u32(self.version);
        w.u32(self.flags);
        w.u32(self.nr_modules);
        w.u64(self.modlist_paddr);
        w.u64(self.cmdline_paddr);
        w.u64(self.rsdp_paddr);
        w.u64(self.memmap_paddr);
        w.u32(self.memmap_entries);
        w.u32(self.reserved);
        b
    }

    /// Reads one from at least [`HVM_START_INFO_V0_SIZE`] bytes; the
    /// version 1 fields read as 0 when `b` ends before them.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() < HVM_START_INFO_V0_SIZE {
            return None;
        }
        let mut r = Reader { buf: b, at: 0 };
        Some(HvmStartInfo {
            magic: r.u32(),
            version: r.u32(),
            flags: r.u32(),
            nr_modules: r.u32(),
            modlist_paddr: r.u64(),
            cmdline_paddr: r.u64(),
            rsdp_paddr: r.u64(),
            memmap_paddr: r.u64(),
            memmap_entries: r.u32(),
            reserved: r.u32(),
        })
    }
}

impl HvmMemmapEntry {
    /// The entry's bytes.
    pub fn to_bytes(&self) -> [u8; MEMMAP_ENTRY_SIZE] {
        let mut b = [0u8; MEMMAP_ENTRY_SIZE];
        let mut w = Writer { buf: &mut b, at: 0 };
        w.u64(self.addr);
        w.u64(self.size);
        w.u32(self.kind);
        w.u32(self.reserved);
        b
    }

    /// Reads one from at least [`MEMMAP_ENTRY_SIZE`] bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let mut r = Reader { buf: b.get(..MEMMAP_ENTRY_SIZE)?, at: 0 };
        Some(HvmMemmapEntry { addr: r.u64(), size: r.u64(), kind: r.u32(), reserved: r.u32() })
    }
}

impl HvmModlistEntry {
    /// The entry's bytes.
    pub fn to_bytes(&self) -> [u8; MODLIST_ENTRY_SIZE] {
        let mut b = [0u8; MODLIST_ENTRY_SIZE];
        let mut w = Writer { buf: &mut b, at: 0 };
        w.u64(self.paddr);
        w.u64(self.size);
        w.u64(self.cmdline_paddr);
        w.u64(self.reserved);
        b
    }

    /// Reads one from at least [`MODLIST_ENTRY_SIZE`] bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let mut r = Reader { buf: b.get(..MODLIST_ENTRY_SIZE)?, at: 0 };
        Some(HvmModlistEntry { paddr: r.u64(), size: r.u64(), cmdline_paddr: r.u64(), reserved: r.u64() })
    }
}

impl StartInfo {
    /// A start info with `magic` ("xen-3.0-x86_64") and every other field 0.
    pub fn new(magic: &str) -> Self {
        let mut m = [0u8; 32];
        let n = magic.len().min(31);
        m[..n].copy_from_slice(&magic.as_bytes()[..n]);
        StartInfo {
            magic: m,
            nr_pages: 0,
            shared_info: 0,
            flags: 0,
            pad0: 0,
            store_mfn: 0,
            store_evtchn: 0,
            pad1: 0,
            console_mfn: 0,
            console_evtchn: 0,
            pad2: 0,
            pt_base: 0,
            nr_pt_frames: 0,
            mfn_list: 0,
            mod_start: 0,
            mod_len: 0,
            cmd_line: [0; MAX_GUEST_CMDLINE],
            first_p2m_pfn: 0,
            nr_p2m_frames: 0,
        }
    }

    /// Sets the command line, truncated to fit with its NUL; returns whether it fit whole.
    pub fn set_cmdline(&mut self, line: &[u8]) -> bool {
        let n = line.len().min(MAX_GUEST_CMDLINE - 1);
        self.cmd_line = [0; MAX_GUEST_CMDLINE];
        self.cmd_line[..n].copy_from_slice(&line[..n]);
        n == line.len()
    }

    /// The structure's bytes.
    pub fn to_bytes(&self) -> [u8; PV_START_INFO_SIZE] {
        let mut b = [0u8; PV_START_INFO_SIZE];
        let mut w = Writer { buf: &mut b, at: 0 };
        w.put(&self.magic);
        w.u64(self.nr_pages);
        w.u64(self.shared_info);
        w.u32(self.flags);
        w.u32(self.pad0);
        w.u64(self.store_mfn);
        w.u32(self.store_evtchn);
        w.u32(self.pad1);
        w.u64(self.console_mfn);
        w.u32(self.console_evtchn);
        w.u32(self.pad2);
        w.u64(self.pt_base);
        w.u64(self.nr_pt_frames);
        w.u64(self.mfn_list);
        w.u64(self.mod_start);
        w.u64(self.mod_len);
        w.put(&self.cmd_line);
        w.u64(self.first_p2m_pfn);
        w.u64(self.nr_p2m_frames);
        b
    }

    /// Reads one from at least [`PV_START_INFO_SIZE`] bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let mut r = Reader { buf: b.get(..PV_START_INFO_SIZE)?, at: 0 };
        Some(StartInfo {
            magic: r.take(),
            nr_pages: r.u64(),
            shared_info: r.u64(),
            flags: r.u32(),
            pad0: r.u32(),
            store_mfn: r.u64(),
            store_evtchn: r.u32(),
            pad1: r.u32(),
            console_mfn: r.u64(),
            console_evtchn: r.u32(),
            pad2: r.u32(),
            pt_base: r.u64(),
            nr_pt_frames: r.u64(),
            mfn_list: r.u64(),
            mod_start: r.u64(),
            mod_len: r.u64(),
            cmd_line: r.take(),
            first_p2m_pfn: r.u64(),
            nr_p2m_frames: r.u64(),
        })
    }
}

/// A boot module as the next kernel sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootModule<'a> {
    /// Its guest-physical address.
    pub paddr: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Its command line, if any.
    pub cmdline: Option<&'a str>,
}

/// Where [`build_hvm`] put each part, as guest-physical addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HvmLayout {
    /// The start info (what EBX points at): the area's base.
    pub start_info: u64,
    /// The memory map array.
    pub memmap: u64,
    /// The module list, or 0 without modules.
    pub modlist: u64,
    /// The kernel command line, or 0 without one.
    pub cmdline: u64,
    /// Bytes of the area used (the rest was zeroed).
    pub used: usize,
}

/// Why the block cannot be built. Displays as one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The kernel command line does not fit in the area.
    CmdlineTooLong {
        /// Its length.
        len: usize,
        /// The most that fits (without the terminating NUL).
        max: usize,
    },
    /// A NUL inside the kernel command line would silently truncate it.
    CmdlineNul(usize),
    /// A NUL inside a module's command line.
    ModuleCmdlineNul {
        /// The module's index.
        module: usize,
        /// Where the NUL is.
        at: usize,
    },
    /// The structures and module command lines alone do not fit.
    TooBig {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::CmdlineTooLong { len, max } => {
                write!(f, "command line is {len} bytes; at most {max} fit in the boot-info area")
            }
            BuildError::CmdlineNul(at) => write!(f, "command line contains a NUL byte at offset {at}"),
            BuildError::ModuleCmdlineNul { module, at } => {
                write!(f, "module {module}'s command line contains a NUL byte at offset {at}")
            }
            BuildError::TooBig { need, have } => {
                write!(f, "boot info needs {need} bytes; the boot-info area holds {have}")
            }
        }
    }
}

/// Bytes used before the kernel command line: the structures, then each
/// module's command line with its NUL.
fn fixed_size(memmap_entries: usize, modules: &[BootModule<'_>]) -> usize {
    // Every structure is a multiple of 8 bytes long, so each stays 8-aligned.
    let module_lines = modules.iter().filter_map(|m| m.cmdline).fold(0usize, |n, l| n.saturating_add(l.len() + 1));
    HVM_START_INFO_SIZE
        .saturating_add(memmap_entries.saturating_mul(MEMMAP_ENTRY_SIZE))
        .saturating_add(modules.len().saturating_mul(MODLIST_ENTRY_SIZE))
        .saturating_add(module_lines)
}

/// The longest kernel command line that fits in an area of `area_size`
/// bytes beside `memmap_entries` memory map entries and `modules`
/// (excluding the terminating NUL).
pub fn max_cmdline_len(area_size: usize, memmap_entries: usize, modules: &[BootModule<'_>]) -> usize {
    area_size.saturating_sub(fixed_size(memmap_entries, modules)).saturating_sub(1)
}

/// Builds the PVH boot block in `area`, which the kernel will find at
/// guest-physical `base`: `hvm_start_info` (version 1) first, so EBX =
/// `base`, then the memory map, the module list, the modules' command lines
/// and the kernel's command line. The whole area is written (zeros past the
/// content), so nothing stale from an earlier boot shows through.
/// `rsdp` is the ACPI RSDP's address, or 0 for none.
pub fn build_hvm(
    area: &mut [u8],
    base: u64,
    memmap: &[HvmMemmapEntry],
    modules: &[BootModule<'_>],
    cmdline: Option<&str>,
    rsdp: u64,
) -> Result<HvmLayout, BuildError> {
    let have = area.len();
    let need = fixed_size(memmap.len(), modules);
    if need > have {
        return Err(BuildError::TooBig { need, have });
    }
    for (module, m) in modules.iter().enumerate() {
        if let Some(at) = m.cmdline.and_then(|l| l.bytes().position(|b| b == 0)) {
            return Err(BuildError::ModuleCmdlineNul { module, at });
        }
    }
    if let Some(line) = cmdline {
        if let Some(at) = line.bytes().position(|b| b == 0) {
            return Err(BuildError::CmdlineNul(at));
        }
        let max = max_cmdline_len(have, memmap.len(), modules);
        if line.len() > max {
            return Err(BuildError::CmdlineTooLong { len: line.len(), max });
        }
    }
    area.fill(0);
    // Offsets are below the area's size (checked above), so none overflows.
    let paddr = |off: usize| base + off as u64;
    let memmap_off = HVM_START_INFO_SIZE;
    let modlist_off = memmap_off + memmap.len() * MEMMAP_ENTRY_SIZE;
    let mut at = modlist_off + modules.len() * MODLIST_ENTRY_SIZE;
    for (i, e) in memmap.iter().enumerate() {
        let o = memmap_off + i * MEMMAP_ENTRY_SIZE;
        area[o..o + MEMMAP_ENTRY_SIZE].copy_from_slice(&e.to_bytes());
    }
    for (i, m) in modules.iter().enumerate() {
        let cmdline_paddr = match m.cmdline {
            Some(line) => {
                area[at..at + line.len()].copy_from_slice(line.as_bytes());
                let p = paddr(at);
                at += line.len() + 1;
                p
            }
            None => 0,
        };
        let entry = HvmModlistEntry { paddr: m.paddr, size: m.size, cmdline_paddr, reserved: 0 };
        let o = modlist_off + i * MODLIST_ENTRY_SIZE;
        area[o..o + MODLIST_ENTRY_SIZE].copy_from_slice(&entry.to_bytes());
    }
    let cmdline_paddr = match cmdline {
        Some(line) => {
            // The NUL after it is already there: the area was zeroed.
            area[at..at + line.len()].copy_from_slice(line.as_bytes());
            let p = paddr(at);
            at += line.len() + 1;
            p
        }
        None => 0,
    };
    let info = HvmStartInfo {
        magic: START_MAGIC,
        version: 1,
        flags: 0,
        nr_modules: modules.len() as u32,
        modlist_paddr: if modules.is_empty() { 0 } else { paddr(modlist_off) },
        cmdline_paddr,
        rsdp_paddr: rsdp,
        memmap_paddr: paddr(memmap_off),
        memmap_entries: memmap.len() as u32,
        reserved: 0,
    };
    area[..HVM_START_INFO_SIZE].copy_from_slice(&info.to_bytes());
    Ok(HvmLayout {
        start_info: base,
        memmap: info.memmap_paddr,
        modlist: info.modlist_paddr,
        cmdline: info.cmdline_paddr,
        used: at,
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::hvm::{MEMMAP_TYPE_RAM, MEMMAP_TYPE_RESERVED};
    use std::string::ToString;

    fn map() -> [HvmMemmapEntry; 2] {
        [
            HvmMemmapEntry { addr: 0, size: 0x100_0000, kind: MEMMAP_TYPE_RAM, reserved: 0 },
            HvmMemmapEntry { addr: 0xfeff_0000, size: 0x1_0000, kind: MEMMAP_TYPE_RESERVED, reserved: 0 },
        ]
    }

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn layout_of_the_block() {
        let m = [BootModule { paddr: 0xf0_0000, size: 0x1234, cmdline: None }];
        let mut area = [0xaau8; 0x8000];
        let l = build_hvm(&mut area, 0x1000, &map(), &m, Some("console=hvc0"), 0xe_0000).unwrap();
        // The C layout, checked field by field at fixed offsets.
        assert_eq!(u32::from_le_bytes(area[0..4].try_into().unwrap()), 0x336e_c578);
        assert_eq!(u32::from_le_bytes(area[4..8].try_into().unwrap()), 1);
        assert_eq!(u32::from_le_bytes(area[12..16].try_into().unwrap()), 1);
        assert_eq!(u64_at(&area, 16), 0x1000 + 56 + 48);
        assert_eq!(u64_at(&area, 24), 0x1000 + 56 + 48 + 32);
        assert_eq!(u64_at(&area, 32), 0xe_0000);
        assert_eq!(u64_at(&area, 40), 0x1000 + 56);
        assert_eq!(u32::from_le_bytes(area[48..52].try_into().unwrap()), 2);
        assert_eq!((l.start_info, l.memmap, l.modlist, l.cmdline, l.used), (0x1000, 0x1038, 0x1068, 0x1088, 136 + 13));
        let info = HvmStartInfo::from_bytes(&area).unwrap();
        assert_eq!((info.magic, info.nr_modules, info.memmap_entries), (START_MAGIC, 1, 2));
        assert_eq!(HvmMemmapEntry::from_bytes(&area[56..]).unwrap(), map()[0]);
        assert_eq!(HvmMemmapEntry::from_bytes(&area[80..]).unwrap(), map()[1]);
        let module = HvmModlistEntry::from_bytes(&area[104..]).unwrap();
        assert_eq!((module.paddr, module.size, module.cmdline_paddr, module.reserved), (0xf0_0000, 0x1234, 0, 0));
        assert_eq!(&area[136..136 + 13], b"console=hvc0\0");
        assert!(area[136 + 12..].iter().all(|&x| x == 0), "the rest of the area is cleared");
    }

    #[test]
    fn module_command_lines() {
        let m = [
            BootModule { paddr: 0x20_0000, size: 10, cmdline: Some("initrd") },
            BootModule { paddr: 0x30_0000, size: 20, cmdline: None },
            BootModule { paddr: 0x40_0000, size: 30, cmdline: Some("") },
        ];
        let mut area = [0u8; 0x1000];
        let l = build_hvm(&mut area, 0x2000, &map()[..1], &m, Some("root=/dev/xvda1"), 0).unwrap();
        let lines = 56 + 24 + 3 * 32;
        let entry = |i: usize| HvmModlistEntry::from_bytes(&area[56 + 24 + 32 * i..]).unwrap();
        assert_eq!(entry(0).cmdline_paddr, 0x2000 + lines as u64);
        assert_eq!(&area[lines..lines + 7], b"initrd\0");
        assert_eq!(entry(1).cmdline_paddr, 0);
        assert_eq!(entry(2).cmdline_paddr, 0x2000 + lines as u64 + 7);
        assert_eq!(area[lines + 7], 0);
        assert_eq!(l.cmdline, 0x2000 + lines as u64 + 8);
        assert_eq!(&area[lines + 8..lines + 8 + 16], b"root=/dev/xvda1\0");
        assert_eq!(
            build_hvm(&mut area, 0, &[], &[BootModule { paddr: 0, size: 0, cmdline: Some("a\0") }], None, 0)
                .unwrap_err()
                .to_string(),
            "module 0's command line contains a NUL byte at offset 1"
        );
    }

    #[test]
    fn limits() {
        let m = [BootModule { paddr: 0, size: 0, cmdline: None }];
        let max = max_cmdline_len(0x8000, 2, &m);
        assert_eq!(max, 0x8000 - 56 - 48 - 32 - 1);
        let mut area = [0u8; 0x8000];
        let fits = "x".repeat(max);
        build_hvm(&mut area, 0x1000, &map(), &m, Some(&fits), 0).unwrap();
        assert_eq!(area[0x7fff], 0, "the NUL fits too");
        let long = "x".repeat(max + 1);
        assert_eq!(
            build_hvm(&mut area, 0x1000, &map(), &m, Some(&long), 0).unwrap_err(),
            BuildError::CmdlineTooLong { len: max + 1, max }
        );
        assert_eq!(
            build_hvm(&mut area, 0x1000, &map(), &[], Some("a\0b"), 0).unwrap_err().to_string(),
            "command line contains a NUL byte at offset 1"
        );
        assert_eq!(
            build_hvm(&mut area[..64], 0x1000, &map(), &[], None, 0).unwrap_err().to_string(),
            "boot info needs 104 bytes; the boot-info area holds 64"
        );
        // No modules, no command line: both addresses 0. An empty command line is still one.
        let l = build_hvm(&mut area, 0x1000, &map(), &[], None, 0).unwrap();
        assert_eq!((l.modlist, l.cmdline), (0, 0));
        let l = build_hvm(&mut area, 0x1000, &map(), &[], Some(""), 0).unwrap();
        assert_eq!(l.cmdline, 0x1000 + 56 + 48);
    }

    #[test]
    fn start_info_round_trips_and_version_0() {
        let info = HvmStartInfo {
            magic: START_MAGIC,
            version: 1,
            flags: 2,
            nr_modules: 3,
            modlist_paddr: 4,
            cmdline_paddr: 5,
            rsdp_paddr: 6,
            memmap_paddr: 7,
            memmap_entries: 8,
            reserved: 0,
        };
        let b = info.to_bytes();
        let back = HvmStartInfo::from_bytes(&b).unwrap();
        assert_eq!(back.to_bytes(), b);
        let v0 = HvmStartInfo::from_bytes(&b[..HVM_START_INFO_V0_SIZE]).unwrap();
        assert_eq!((v0.rsdp_paddr, v0.memmap_paddr, v0.memmap_entries), (6, 0, 0));
        assert!(HvmStartInfo::from_bytes(&b[..39]).is_none());
    }

    #[test]
    fn pv_start_info_layout() {
        let mut si = StartInfo::new("xen-3.0-x86_64");
        si.nr_pages = 0x1_0000;
        si.shared_info = 0x1234_5000;
        si.flags = crate::pv::SIF_MOD_START_PFN;
        si.store_mfn = 0x111;
        si.store_evtchn = 1;
        si.console_mfn = 0x222;
        si.console_evtchn = 2;
        si.pt_base = 0x40_0000;
        si.nr_pt_frames = 6;
        si.mfn_list = 0x30_0000;
        si.mod_start = 0x500;
        si.mod_len = 0x4000;
        si.first_p2m_pfn = 9;
        si.nr_p2m_frames = 10;
        assert!(si.set_cmdline(b"console=hvc0"));
        let b = si.to_bytes();
        // Offsets from xen.h's struct start_info on x86_64.
        use core::mem::offset_of;
        let at = |o: usize| u64_at(&b, o);
        assert_eq!(&b[..15], b"xen-3.0-x86_64\0");
        assert_eq!(at(offset_of!(StartInfo, nr_pages)), 0x1_0000);
        assert_eq!(at(32), 0x1_0000);
        assert_eq!(at(40), 0x1234_5000);
        assert_eq!(u32::from_le_bytes(b[48..52].try_into().unwrap()), crate::pv::SIF_MOD_START_PFN);
        assert_eq!(at(56), 0x111);
        assert_eq!(at(72), 0x222);
        assert_eq!(at(88), 0x40_0000);
        assert_eq!(at(96), 6);
        assert_eq!(at(104), 0x30_0000);
        assert_eq!(at(112), 0x500);
        assert_eq!(at(120), 0x4000);
        assert_eq!(&b[128..141], b"console=hvc0\0");
        assert_eq!(at(128 + 1024), 9);
        assert_eq!(at(136 + 1024), 10);
        let back = StartInfo::from_bytes(&b).unwrap();
        assert_eq!(back.to_bytes(), b);
        assert!(!si.set_cmdline(&[b'x'; 2000]));
        assert_eq!(si.cmd_line[1022], b'x');
        assert_eq!(si.cmd_line[1023], 0);
    }
}
