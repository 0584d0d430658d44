//! The PVH boot information block: `struct hvm_start_info` (version 1)
//! followed by the memory map, the module list and the command line, as a
//! PVH kernel finds them through EBX (xen/include/public/arch-x86/hvm/start_info.h).
//!
//! The block is built as bytes here and written to guest memory by the
//! loader. Structures are serialised field by field in little-endian order
//! (no `unsafe` transmutes of the xen-abi types), at the offsets the C
//! layout gives them; xen-abi asserts those sizes at compile time.

use xen_abi::hvm::{HvmMemmapEntry, HvmModlistEntry, HvmStartInfo, START_MAGIC};

/// Size of `struct hvm_start_info`.
pub const START_INFO_SIZE: usize = 56;
/// Size of `struct hvm_memmap_table_entry`.
pub const MEMMAP_ENTRY_SIZE: usize = 24;
/// Size of `struct hvm_modlist_entry`.
pub const MODLIST_ENTRY_SIZE: usize = 32;

const _: () = assert!(std::mem::size_of::<HvmStartInfo>() == START_INFO_SIZE);
const _: () = assert!(std::mem::size_of::<HvmMemmapEntry>() == MEMMAP_ENTRY_SIZE);
const _: () = assert!(std::mem::size_of::<HvmModlistEntry>() == MODLIST_ENTRY_SIZE);

/// Why the boot information cannot be built. Displays as one line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BootInfoError {
    /// The command line does not fit in the boot-info area.
    #[error("command line is {len} bytes; at most {max} fit in the boot-info area")]
    CmdlineTooLong {
        /// Its length.
        len: usize,
        /// The most that fits (without the terminating NUL).
        max: usize,
    },
    /// A NUL inside the command line would silently truncate it.
    #[error("command line contains a NUL byte at offset {0}")]
    CmdlineNul(usize),
    /// The fixed structures alone do not fit (only with absurd inputs).
    #[error("boot info needs {need} bytes; the boot-info area holds {have}")]
    TooBig {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
}

/// A boot module (the ramdisk) as the guest sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Module {
    /// Its guest-physical address.
    pub paddr: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// Where each part of the block went, as guest-physical addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootInfoBlock {
    /// The bytes to write at `base`: the whole area, zero-filled past the
    /// content so stale data from a previous boot never leaks through.
    pub bytes: Vec<u8>,
    /// The start_info structure (what EBX points at).
    pub start_info: u64,
    /// The memory map array.
    pub memmap: u64,
    /// The module list, or 0 without modules.
    pub modlist: u64,
    /// The NUL-terminated command line, or 0 without one.
    pub cmdline: u64,
}

/// The longest command line that fits with `memmap_entries` memory map
/// entries and `modules` modules (excluding the terminating NUL).
pub fn max_cmdline_len(area_size: usize, memmap_entries: usize, modules: usize) -> usize {
    let fixed = fixed_size(memmap_entries, modules);
    area_size.saturating_sub(fixed).saturating_sub(1)
}

/// Bytes used before the command line.
fn fixed_size(memmap_entries: usize, modules: usize) -> usize {
    // Every part is a multiple of 8 bytes long, so each stays 8-aligned.
    START_INFO_SIZE
        .saturating_add(memmap_entries.saturating_mul(MEMMAP_ENTRY_SIZE))
        .saturating_add(modules.saturating_mul(MODLIST_ENTRY_SIZE))
}

/// Builds the block for an area of `area_size` bytes at guest-physical
/// `base`: start_info first (so EBX = `base`), then the memory map, then
/// the module list, then the command line.
pub fn build(
    base: u64,
    area_size: usize,
    memmap: &[HvmMemmapEntry],
    modules: &[Module],
    cmdline: Option<&str>,
) -> Result<BootInfoBlock, BootInfoError> {
    let need = fixed_size(memmap.len(), modules.len());
    if need > area_size {
        return Err(BootInfoError::TooBig {
            need,
            have: area_size,
        });
    }
    if let Some(line) = cmdline {
        if let Some(at) = line.bytes().position(|b| b == 0) {
            return Err(BootInfoError::CmdlineNul(at));
        }
        let max = max_cmdline_len(area_size, memmap.len(), modules.len());
        if line.len() > max {
            return Err(BootInfoError::CmdlineTooLong {
                len: line.len(),
                max,
            });
        }
    }
    // Offsets are below area_size (checked above), so these cannot overflow.
    let memmap_off = START_INFO_SIZE;
    let modlist_off = memmap_off + memmap.len() * MEMMAP_ENTRY_SIZE;
    let cmdline_off = modlist_off + modules.len() * MODLIST_ENTRY_SIZE;
    let paddr = |off: usize| base + off as u64;

    let info = HvmStartInfo {
        magic: START_MAGIC,
        version: 1,
        flags: 0,
        nr_modules: modules.len() as u32,
        modlist_paddr: if modules.is_empty() {
            0
        } else {
            paddr(modlist_off)
        },
        cmdline_paddr: if cmdline.is_some() {
            paddr(cmdline_off)
        } else {
            0
        },
        // No ACPI tables: the guest finds none and does without.
        rsdp_paddr: 0,
        memmap_paddr: paddr(memmap_off),
        memmap_entries: memmap.len() as u32,
        reserved: 0,
    };
    let mut bytes = vec![0u8; area_size];
    write_start_info(&mut bytes[..START_INFO_SIZE], &info);
    for (i, e) in memmap.iter().enumerate() {
        let at = memmap_off + i * MEMMAP_ENTRY_SIZE;
        write_memmap_entry(&mut bytes[at..at + MEMMAP_ENTRY_SIZE], e);
    }
    for (i, m) in modules.iter().enumerate() {
        let at = modlist_off + i * MODLIST_ENTRY_SIZE;
        let entry = HvmModlistEntry {
            paddr: m.paddr,
            size: m.size,
            cmdline_paddr: 0,
            reserved: 0,
        };
        write_modlist_entry(&mut bytes[at..at + MODLIST_ENTRY_SIZE], &entry);
    }
    if let Some(line) = cmdline {
        // The NUL after it is already there: the buffer is zero-filled.
        bytes[cmdline_off..cmdline_off + line.len()].copy_from_slice(line.as_bytes());
    }
    Ok(BootInfoBlock {
        bytes,
        start_info: base,
        memmap: info.memmap_paddr,
        modlist: info.modlist_paddr,
        cmdline: info.cmdline_paddr,
    })
}

/// Appends `x`'s little-endian bytes at `*at`.
fn put(buf: &mut [u8], at: &mut usize, x: &[u8]) {
    buf[*at..*at + x.len()].copy_from_slice(x);
    *at += x.len();
}

/// Serialises `struct hvm_start_info` into a 56-byte buffer.
fn write_start_info(buf: &mut [u8], s: &HvmStartInfo) {
    let at = &mut 0;
    put(buf, at, &s.magic.to_le_bytes());
    put(buf, at, &s.version.to_le_bytes());
    put(buf, at, &s.flags.to_le_bytes());
    put(buf, at, &s.nr_modules.to_le_bytes());
    put(buf, at, &s.modlist_paddr.to_le_bytes());
    put(buf, at, &s.cmdline_paddr.to_le_bytes());
    put(buf, at, &s.rsdp_paddr.to_le_bytes());
    put(buf, at, &s.memmap_paddr.to_le_bytes());
    put(buf, at, &s.memmap_entries.to_le_bytes());
    put(buf, at, &s.reserved.to_le_bytes());
    debug_assert_eq!(*at, START_INFO_SIZE);
}

/// Serialises `struct hvm_memmap_table_entry` into a 24-byte buffer.
fn write_memmap_entry(buf: &mut [u8], e: &HvmMemmapEntry) {
    let at = &mut 0;
    put(buf, at, &e.addr.to_le_bytes());
    put(buf, at, &e.size.to_le_bytes());
    put(buf, at, &e.kind.to_le_bytes());
    put(buf, at, &e.reserved.to_le_bytes());
    debug_assert_eq!(*at, MEMMAP_ENTRY_SIZE);
}

/// Serialises `struct hvm_modlist_entry` into a 32-byte buffer.
fn write_modlist_entry(buf: &mut [u8], m: &HvmModlistEntry) {
    let at = &mut 0;
    put(buf, at, &m.paddr.to_le_bytes());
    put(buf, at, &m.size.to_le_bytes());
    put(buf, at, &m.cmdline_paddr.to_le_bytes());
    put(buf, at, &m.reserved.to_le_bytes());
    debug_assert_eq!(*at, MODLIST_ENTRY_SIZE);
}

/// Decoders for tests: what a guest would read back.
#[cfg(test)]
pub(crate) mod decode {
    use super::*;

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    /// Reads a start_info from its 56 bytes.
    pub fn start_info(b: &[u8]) -> HvmStartInfo {
        HvmStartInfo {
            magic: u32_at(b, 0),
            version: u32_at(b, 4),
            flags: u32_at(b, 8),
            nr_modules: u32_at(b, 12),
            modlist_paddr: u64_at(b, 16),
            cmdline_paddr: u64_at(b, 24),
            rsdp_paddr: u64_at(b, 32),
            memmap_paddr: u64_at(b, 40),
            memmap_entries: u32_at(b, 48),
            reserved: u32_at(b, 52),
        }
    }

    /// Reads a memory map entry from its 24 bytes.
    pub fn memmap_entry(b: &[u8]) -> HvmMemmapEntry {
        HvmMemmapEntry {
            addr: u64_at(b, 0),
            size: u64_at(b, 8),
            kind: u32_at(b, 16),
            reserved: u32_at(b, 20),
        }
    }

    /// Reads a module list entry from its 32 bytes.
    pub fn modlist_entry(b: &[u8]) -> HvmModlistEntry {
        HvmModlistEntry {
            paddr: u64_at(b, 0),
            size: u64_at(b, 8),
            cmdline_paddr: u64_at(b, 16),
            reserved: u64_at(b, 24),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::decode;
    use super::*;
    use xen_abi::hvm::{MEMMAP_TYPE_RAM, MEMMAP_TYPE_RESERVED};

    fn map() -> Vec<HvmMemmapEntry> {
        vec![
            HvmMemmapEntry {
                addr: 0,
                size: 0x100_0000,
                kind: MEMMAP_TYPE_RAM,
                reserved: 0,
            },
            HvmMemmapEntry {
                addr: 0xfeff_0000,
                size: 0x1_0000,
                kind: MEMMAP_TYPE_RESERVED,
                reserved: 0,
            },
        ]
    }

    #[test]
    fn layout_of_the_block() {
        let m = [Module {
            paddr: 0xf0_0000,
            size: 0x1234,
        }];
        let b = build(0x1000, 0x8000, &map(), &m, Some("console=hvc0")).unwrap();
        assert_eq!(b.bytes.len(), 0x8000);
        let info = decode::start_info(&b.bytes);
        assert_eq!(info.magic, 0x336e_c578);
        assert_eq!(
            (info.version, info.flags, info.nr_modules, info.rsdp_paddr),
            (1, 0, 1, 0)
        );
        assert_eq!(info.memmap_paddr, 0x1000 + 56);
        assert_eq!(info.memmap_entries, 2);
        assert_eq!(info.modlist_paddr, 0x1000 + 56 + 48);
        assert_eq!(info.cmdline_paddr, 0x1000 + 56 + 48 + 32);
        assert_eq!(
            (b.start_info, b.memmap, b.modlist, b.cmdline),
            (0x1000, 0x1038, 0x1068, 0x1088)
        );
        assert_eq!(decode::memmap_entry(&b.bytes[56..]), map()[0]);
        assert_eq!(decode::memmap_entry(&b.bytes[80..]), map()[1]);
        let module = decode::modlist_entry(&b.bytes[104..]);
        assert_eq!(
            (
                module.paddr,
                module.size,
                module.cmdline_paddr,
                module.reserved
            ),
            (0xf0_0000, 0x1234, 0, 0)
        );
        assert_eq!(&b.bytes[136..136 + 13], b"console=hvc0\0");
        assert!(b.bytes[136 + 12..].iter().all(|&x| x == 0));
    }

    #[test]
    fn no_modules_no_cmdline() {
        let b = build(0x1000, 0x8000, &map(), &[], None).unwrap();
        let info = decode::start_info(&b.bytes);
        assert_eq!(
            (info.nr_modules, info.modlist_paddr, info.cmdline_paddr),
            (0, 0, 0)
        );
        // An empty command line is still a command line.
        let b = build(0x1000, 0x8000, &map(), &[], Some("")).unwrap();
        assert_eq!(decode::start_info(&b.bytes).cmdline_paddr, 0x1000 + 56 + 48);
    }

    #[test]
    fn cmdline_limits() {
        let max = max_cmdline_len(0x8000, 2, 1);
        assert_eq!(max, 0x8000 - 56 - 48 - 32 - 1);
        let m = [Module { paddr: 0, size: 0 }];
        let fits = "x".repeat(max);
        let b = build(0x1000, 0x8000, &map(), &m, Some(&fits)).unwrap();
        assert_eq!(*b.bytes.last().unwrap(), 0, "the NUL fits too");
        let long = "x".repeat(max + 1);
        assert_eq!(
            build(0x1000, 0x8000, &map(), &m, Some(&long))
                .unwrap_err()
                .to_string(),
            format!(
                "command line is {} bytes; at most {max} fit in the boot-info area",
                max + 1
            )
        );
        assert_eq!(
            build(0x1000, 0x8000, &map(), &[], Some("a\0b"))
                .unwrap_err()
                .to_string(),
            "command line contains a NUL byte at offset 1"
        );
        assert_eq!(
            build(0x1000, 64, &map(), &[], None)
                .unwrap_err()
                .to_string(),
            "boot info needs 104 bytes; the boot-info area holds 64"
        );
    }
}
