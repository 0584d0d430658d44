//! Multiboot 1 kernels (the Multiboot Specification 0.6.96, section 3.1):
//! a header in the first 8 KiB, 4-byte aligned, with magic 0x1BADB002,
//! flags and a checksum; an ELF file loads by its program headers, and a
//! header with flag 16 (the "a.out kludge") gives the load addresses itself
//! (an ELF file loads by its program headers even then: GRUB-built kernels'
//! fields agree with them).
//! Xen's own xen.gz is such a kernel.

use alloc::format;

use super::elf::Placed;
use super::KernelError;

/// The header magic.
pub const HEADER_MAGIC: u32 = 0x1bad_b002;
/// What the kernel finds in EAX.
pub const BOOTLOADER_MAGIC: u32 = 0x2bad_b002;
/// The header must lie within this many bytes of the start of the file.
pub const SEARCH_BYTES: usize = 8192;
/// Flag 0: modules must be page-aligned (pvboot always aligns them).
pub const PAGE_ALIGN: u32 = 1 << 0;
/// Flag 1: memory information is required (pvboot always gives it).
pub const MEMORY_INFO: u32 = 1 << 1;
/// Flag 2: video mode information is wanted (a preference: there is no
/// display under PVH, and the info's flags say no mode was set).
pub const VIDEO_MODE: u32 = 1 << 2;
/// Flag 16: the header's address fields say where to load the file.
pub const AOUT_KLUDGE: u32 = 1 << 16;

/// The address fields of a header with [`AOUT_KLUDGE`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AoutKludge {
    /// The physical address the header itself is loaded at.
    pub header_addr: u32,
    /// Where the text segment starts (loaded from the file).
    pub load_addr: u32,
    /// Where the file data ends (0: the end of the file).
    pub load_end_addr: u32,
    /// Where the bss ends (0: no bss).
    pub bss_end_addr: u32,
    /// The entry point.
    pub entry_addr: u32,
}

/// A multiboot 1 header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Its offset in the file.
    pub offset: usize,
    /// Its flags.
    pub flags: u32,
    /// Its address fields, with [`AOUT_KLUDGE`].
    pub kludge: Option<AoutKludge>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

/// Finds the multiboot header in `head` (the first bytes of the file): the
/// first aligned magic whose checksum holds, as GRUB searches. `Ok(None)`
/// when there is none.
pub fn find(head: &[u8]) -> Result<Option<Header>, KernelError> {
    let area = &head[..head.len().min(SEARCH_BYTES)];
    let Some(offset) = (0..area.len().saturating_sub(11)).step_by(4).find(|&at| {
        let (magic, flags, sum) = (u32_at(area, at), u32_at(area, at + 4), u32_at(area, at + 8));
        magic == Some(HEADER_MAGIC)
            && matches!((flags, sum), (Some(f), Some(s)) if HEADER_MAGIC.wrapping_add(f).wrapping_add(s) == 0)
    }) else {
        return Ok(None);
    };
    let flags = u32_at(area, offset + 4).unwrap_or(0);
    // Bits 0-15 are requirements; a loader that does not know one must refuse.
    let unknown = flags & 0xffff & !(PAGE_ALIGN | MEMORY_INFO | VIDEO_MODE);
    if unknown != 0 {
        return Err(KernelError::Unsupported(format!(
            "the multiboot header requires features {unknown:#x} (flags {flags:#x}) pvboot does not know"
        )));
    }
    let kludge = if flags & AOUT_KLUDGE != 0 {
        let field = |i: usize| u32_at(head, offset + 12 + 4 * i);
        let (Some(header_addr), Some(load_addr), Some(load_end_addr), Some(bss_end_addr), Some(entry_addr)) =
            (field(0), field(1), field(2), field(3), field(4))
        else {
            return Err(KernelError::Malformed("the multiboot header's address fields are cut short".into()));
        };
        Some(AoutKludge { header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr })
    } else {
        None
    };
    Ok(Some(Header { offset, flags, kludge }))
}

/// Where an a.out-kludge kernel of `file_size` bytes goes: one segment
/// (file bytes then bss), checked as GRUB checks the fields.
pub fn kludge_segment(header: &Header, k: &AoutKludge, file_size: u64) -> Result<Placed, KernelError> {
    let bad = |what: &str| KernelError::Malformed(format!("multiboot header: {what}"));
    if k.header_addr < k.load_addr {
        return Err(bad(&format!("header_addr {:#x} is below load_addr {:#x}", k.header_addr, k.load_addr)));
    }
    // The file offset the load starts at: the header's offset minus its distance from load_addr.
    let offset = (header.offset as u64)
        .checked_sub(u64::from(k.header_addr - k.load_addr))
        .ok_or_else(|| bad(&format!("load_addr {:#x} lies before the start of the file", k.load_addr)))?;
    let filesz = if k.load_end_addr == 0 {
        file_size - offset.min(file_size)
    } else {
        u64::from(k.load_end_addr.checked_sub(k.load_addr).ok_or_else(|| {
            bad(&format!("load_end_addr {:#x} is below load_addr {:#x}", k.load_end_addr, k.load_addr))
        })?)
    };
    if offset + filesz > file_size {
        return Err(bad(&format!(
            "[load_addr, load_end_addr) needs file bytes [{offset:#x}, {:#x}); the file has {file_size:#x}",
            offset + filesz
        )));
    }
    let end = u64::from(k.load_addr) + filesz;
    let memsz = if k.bss_end_addr == 0 {
        filesz
    } else if u64::from(k.bss_end_addr) < end {
        return Err(bad(&format!("bss_end_addr {:#x} is below the end of the loaded data {end:#x}", k.bss_end_addr)));
    } else {
        u64::from(k.bss_end_addr) - u64::from(k.load_addr)
    };
    if !(u64::from(k.load_addr)..u64::from(k.load_addr) + memsz.max(1)).contains(&u64::from(k.entry_addr)) {
        return Err(bad(&format!("entry_addr {:#x} is outside the loaded image", k.entry_addr)));
    }
    Ok(Placed { index: 0, offset, filesz, memsz, dest: u64::from(k.load_addr) })
}
