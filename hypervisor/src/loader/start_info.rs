//! The PVH boot information block for the domain builder: the one builder
//! in xen-abi ([`xen_abi::start_info`], which pvboot's hand-off uses too)
//! writing into a buffer the loader then copies into guest RAM.

use xen_abi::hvm::HvmMemmapEntry;
#[cfg(test)]
use xen_abi::hvm::{HvmModlistEntry, HvmStartInfo};
use xen_abi::start_info::{build_hvm, BootModule};

pub use xen_abi::start_info::{BuildError as BootInfoError, HVM_START_INFO_SIZE as START_INFO_SIZE, MEMMAP_ENTRY_SIZE, MODLIST_ENTRY_SIZE};

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
/// entries and `modules` modules without command lines (excluding the NUL).
pub fn max_cmdline_len(area_size: usize, memmap_entries: usize, modules: usize) -> usize {
    let none = BootModule { paddr: 0, size: 0, cmdline: None };
    let mods = vec![none; modules.min(area_size / MODLIST_ENTRY_SIZE + 1)];
    xen_abi::start_info::max_cmdline_len(area_size, memmap_entries, &mods)
}

/// Builds the block for an area of `area_size` bytes at guest-physical
/// `base` with the one builder in xen-abi ([`xen_abi::start_info::build_hvm`],
/// which pvboot's hand-off uses too): start_info first (so EBX = `base`),
/// then the memory map, the module list and the command line. No ACPI
/// tables: the guest finds none and does without.
pub fn build(
    base: u64,
    area_size: usize,
    memmap: &[HvmMemmapEntry],
    modules: &[Module],
    cmdline: Option<&str>,
) -> Result<BootInfoBlock, BootInfoError> {
    let mods: Vec<BootModule<'_>> = modules.iter().map(|m| BootModule { paddr: m.paddr, size: m.size, cmdline: None }).collect();
    // Refused before the allocation, so an absurd size never drives it.
    let need = START_INFO_SIZE + memmap.len() * MEMMAP_ENTRY_SIZE + mods.len() * MODLIST_ENTRY_SIZE;
    if need > area_size {
        return Err(BootInfoError::TooBig { need, have: area_size });
    }
    let mut bytes = vec![0u8; area_size];
    let l = build_hvm(&mut bytes, base, memmap, &mods, cmdline, 0)?;
    Ok(BootInfoBlock { bytes, start_info: l.start_info, memmap: l.memmap, modlist: l.modlist, cmdline: l.cmdline })
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
