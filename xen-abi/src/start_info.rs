//! The PVH boot information block, built once for everyone who starts a
//! PVH kernel (the hypervisor's domain builder and pvboot's hand-off):
//! `struct hvm_start_info` (version 1) followed by the memory map, the
//! module list and the command line, as a PVH kernel finds them through EBX
//! (xen/include/public/arch-x86/hvm/start_info.h).
//!
//! [`write`] serialises field by field in little-endian order (no `unsafe`
//! transmutes), at the offsets the C layout gives them, into a caller's
//! buffer that will sit at guest-physical `base`.

use core::fmt;

use crate::hvm::{HvmMemmapEntry, HvmModlistEntry, HvmStartInfo, START_MAGIC};

/// Size of `struct hvm_start_info`.
pub const START_INFO_SIZE: usize = 56;
/// Size of `struct hvm_memmap_table_entry`.
pub const MEMMAP_ENTRY_SIZE: usize = 24;
/// Size of `struct hvm_modlist_entry`.
pub const MODLIST_ENTRY_SIZE: usize = 32;

const _: () = assert!(core::mem::size_of::<HvmStartInfo>() == START_INFO_SIZE);
const _: () = assert!(core::mem::size_of::<HvmMemmapEntry>() == MEMMAP_ENTRY_SIZE);
const _: () = assert!(core::mem::size_of::<HvmModlistEntry>() == MODLIST_ENTRY_SIZE);

/// Why the boot information cannot be built. Displays as one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootInfoError {
    /// The command line does not fit in the boot-info area.
    CmdlineTooLong {
        /// Its length.
        len: usize,
        /// The most that fits (without the terminating NUL).
        max: usize,
    },
    /// A NUL inside the command line would silently truncate it.
    CmdlineNul(usize),
    /// The fixed structures alone do not fit (only with absurd inputs).
    TooBig {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
}

impl fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BootInfoError::CmdlineTooLong { len, max } => {
                write!(f, "command line is {len} bytes; at most {max} fit in the boot-info area")
            }
            BootInfoError::CmdlineNul(at) => write!(f, "command line contains a NUL byte at offset {at}"),
            BootInfoError::TooBig { need, have } => {
                write!(f, "boot info needs {need} bytes; the boot-info area holds {have}")
            }
        }
    }
}

impl core::error::Error for BootInfoError {}

/// A boot module (a ramdisk) as the kernel sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Module {
    /// Its guest-physical address.
    pub paddr: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// Where each part of the block went, as guest-physical addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The start_info structure (what EBX points at): `base`.
    pub start_info: u64,
    /// The memory map array.
    pub memmap: u64,
    /// The module list, or 0 without modules.
    pub modlist: u64,
    /// The NUL-terminated command line, or 0 without one.
    pub cmdline: u64,
}

/// Bytes used before the command line.
fn fixed_size(memmap_entries: usize, modules: usize) -> usize {
    // Every part is a multiple of 8 bytes long, so each stays 8-aligned.
    START_INFO_SIZE
        .saturating_add(memmap_entries.saturating_mul(MEMMAP_ENTRY_SIZE))
        .saturating_add(modules.saturating_mul(MODLIST_ENTRY_SIZE))
}

/// The longest command line that fits in `area_size` bytes with
/// `memmap_entries` memory map entries and `modules` modules (excluding
/// the terminating NUL).
pub fn max_cmdline_len(area_size: usize, memmap_entries: usize, modules: usize) -> usize {
    area_size.saturating_sub(fixed_size(memmap_entries, modules)).saturating_sub(1)
}

/// Bytes a block with these parts needs (command line and its NUL included).
pub fn size_needed(memmap_entries: usize, modules: usize, cmdline: Option<&str>) -> usize {
    fixed_size(memmap_entries, modules).saturating_add(cmdline.map_or(0, |c| c.len().saturating_add(1)))
}

/// Appends `x` at `*at`.
fn put(buf: &mut [u8], at: &mut usize, x: &[u8]) {
    buf[*at..*at + x.len()].copy_from_slice(x);
    *at += x.len();
}

/// Writes the block into `buf`, which will be at guest-physical `base`:
/// start_info first (so EBX = `base`), then the memory map, the module
/// list, the command line; the rest of `buf` is zeroed. `rsdp` is the ACPI
/// RSDP's address, 0 for none.
pub fn write(
    buf: &mut [u8],
    base: u64,
    memmap: &[HvmMemmapEntry],
    modules: &[Module],
    cmdline: Option<&str>,
    rsdp: u64,
) -> Result<Layout, BootInfoError> {
    let need = fixed_size(memmap.len(), modules.len());
    if need > buf.len() {
        return Err(BootInfoError::TooBig { need, have: buf.len() });
    }
    if let Some(line) = cmdline {
        if let Some(at) = line.bytes().position(|b| b == 0) {
            return Err(BootInfoError::CmdlineNul(at));
        }
        let max = max_cmdline_len(buf.len(), memmap.len(), modules.len());
        if line.len() > max {
            return Err(BootInfoError::CmdlineTooLong { len: line.len(), max });
        }
    }
    // Offsets are below buf.len() (checked above), so these cannot overflow.
    let memmap_off = START_INFO_SIZE;
    let modlist_off = memmap_off + memmap.len() * MEMMAP_ENTRY_SIZE;
    let cmdline_off = modlist_off + modules.len() * MODLIST_ENTRY_SIZE;
    let paddr = |off: usize| base + off as u64;
    let layout = Layout {
        start_info: base,
        memmap: paddr(memmap_off),
        modlist: if modules.is_empty() { 0 } else { paddr(modlist_off) },
        cmdline: if cmdline.is_some() { paddr(cmdline_off) } else { 0 },
    };
    buf.fill(0);
    let at = &mut 0;
    put(buf, at, &START_MAGIC.to_le_bytes());
    put(buf, at, &1u32.to_le_bytes()); // version
    put(buf, at, &0u32.to_le_bytes()); // flags
    put(buf, at, &(modules.len() as u32).to_le_bytes());
    put(buf, at, &layout.modlist.to_le_bytes());
    put(buf, at, &layout.cmdline.to_le_bytes());
    put(buf, at, &rsdp.to_le_bytes());
    put(buf, at, &layout.memmap.to_le_bytes());
    put(buf, at, &(memmap.len() as u32).to_le_bytes());
    put(buf, at, &0u32.to_le_bytes()); // reserved
    for e in memmap {
        put(buf, at, &e.addr.to_le_bytes());
        put(buf, at, &e.size.to_le_bytes());
        put(buf, at, &e.kind.to_le_bytes());
        put(buf, at, &e.reserved.to_le_bytes());
    }
    for m in modules {
        put(buf, at, &m.paddr.to_le_bytes());
        put(buf, at, &m.size.to_le_bytes());
        put(buf, at, &0u64.to_le_bytes()); // cmdline_paddr
        put(buf, at, &0u64.to_le_bytes()); // reserved
    }
    if let Some(line) = cmdline {
        // The NUL after it is already there: the buffer was zeroed.
        put(buf, at, line.as_bytes());
    }
    Ok(layout)
}
