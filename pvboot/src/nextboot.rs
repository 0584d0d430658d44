//! What the next kernel is given besides its own image: where its modules
//! (initrd) go, and the multiboot 1 information structure. (The PVH
//! `hvm_start_info` has one builder, shared with the hypervisor.)
//!
//! Placement rule (docs: the pvboot team brief): modules go top-down in
//! free RAM above pvboot's heap; if they do not fit there, after the kernel
//! below pvboot's image. Every module starts on a page boundary.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

const PAGE: u64 = 4096;

/// Why modules or boot information could not be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceError {
    /// No free RAM large enough for the module of this size.
    NoRoom {
        /// Which module (0 = the first).
        index: usize,
        /// Its size in bytes.
        size: u64,
    },
    /// An address does not fit the 32 bits the boot ABI has for it.
    Above4G(&'static str),
}

impl fmt::Display for PlaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlaceError::NoRoom { index, size } => {
                write!(f, "not enough memory for module {} ({size} bytes)", index + 1)
            }
            PlaceError::Above4G(what) => write!(f, "{what} lies above 4 GiB, out of reach of a 32-bit entry"),
        }
    }
}

/// Subtracts `taken` from the sorted, disjoint `free` ranges.
fn subtract(free: &mut Vec<Range<u64>>, taken: &Range<u64>) {
    let mut out = Vec::with_capacity(free.len() + 1);
    for r in free.drain(..) {
        if taken.end <= r.start || r.end <= taken.start {
            out.push(r);
            continue;
        }
        if r.start < taken.start {
            out.push(r.start..taken.start);
        }
        if taken.end < r.end {
            out.push(taken.end..r.end);
        }
    }
    *free = out;
}

/// Places modules of `sizes` bytes. `high` are the free ranges above
/// pvboot's heap (filled top-down), `low` the free range after the kernel
/// below pvboot's image (filled bottom-up). Returns one range per module.
pub fn place_modules(
    high: &[Range<u64>],
    low: Range<u64>,
    sizes: &[u64],
) -> Result<Vec<Range<u64>>, PlaceError> {
    let mut high: Vec<Range<u64>> = high.iter().filter(|r| r.start < r.end).cloned().collect();
    high.sort_by_key(|r| r.start);
    let mut low_cursor = low.start.checked_next_multiple_of(PAGE).unwrap_or(u64::MAX);
    let mut placed = Vec::with_capacity(sizes.len());
    for (index, &size) in sizes.iter().enumerate() {
        let span = size.max(1).checked_next_multiple_of(PAGE).ok_or(PlaceError::NoRoom { index, size })?;
        // Top-down: the highest free range with room, at its top.
        let top = high.iter().rev().find_map(|r| {
            let start = r.end.checked_sub(span)? & !(PAGE - 1);
            (start >= r.start).then_some(start)
        });
        let start = match top {
            Some(s) => {
                subtract(&mut high, &(s..s + span));
                s
            }
            None => {
                let s = low_cursor;
                match s.checked_add(span) {
                    Some(end) if end <= low.end => low_cursor = end,
                    _ => return Err(PlaceError::NoRoom { index, size }),
                }
                s
            }
        };
        placed.push(start..start + size);
    }
    Ok(placed)
}

/// One memory-map entry as E820 has it (type 1 = RAM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820 {
    /// First byte.
    pub addr: u64,
    /// Length.
    pub size: u64,
    /// E820 type.
    pub kind: u32,
}

/// A module as multiboot 1 describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MbModule {
    /// Where it was loaded.
    pub range: Range<u64>,
    /// Its command line (usually its path and arguments).
    pub cmdline: String,
}

/// multiboot_info flags.
const MB_MEM: u32 = 1 << 0;
const MB_CMDLINE: u32 = 1 << 2;
const MB_MODS: u32 = 1 << 3;
const MB_MMAP: u32 = 1 << 6;
const MB_LOADER_NAME: u32 = 1 << 9;
/// The fixed part of multiboot_info (through the framebuffer fields).
const MB_INFO_SIZE: usize = 116;

fn u32_addr(v: u64, what: &'static str) -> Result<u32, PlaceError> {
    u32::try_from(v).map_err(|_| PlaceError::Above4G(what))
}

/// Builds a multiboot 1 information structure to live at guest-physical
/// `base`: the fixed part, then the module list, the memory map, and the
/// strings. EBX = `base` at entry.
pub fn multiboot1_info(base: u64, memmap: &[E820], cmdline: &str, modules: &[MbModule]) -> Result<Vec<u8>, PlaceError> {
    const KIB: u64 = 1024;
    let mut out = alloc::vec![0u8; MB_INFO_SIZE];
    let put = |out: &mut Vec<u8>, off: usize, v: u32| out[off..off + 4].copy_from_slice(&v.to_le_bytes());
    let ram = |e: &&E820| e.kind == 1;
    let mem_lower = memmap
        .iter()
        .filter(ram)
        .find(|e| e.addr == 0)
        .map_or(0, |e| e.size.min(640 * KIB) / KIB);
    let mem_upper = memmap
        .iter()
        .filter(ram)
        .find(|e| e.addr <= 1 << 20 && e.addr.saturating_add(e.size) > 1 << 20)
        .map_or(0, |e| (e.addr + e.size - (1 << 20)) / KIB);
    let mut flags = MB_MEM | MB_MMAP | MB_LOADER_NAME;
    put(&mut out, 4, u32::try_from(mem_lower).unwrap_or(640));
    put(&mut out, 8, u32::try_from(mem_upper).unwrap_or(u32::MAX));

    let here = |out: &Vec<u8>| base + out.len() as u64;
    // Modules: {mod_start, mod_end, string, reserved}; strings come later.
    let mods_at = here(&out);
    for m in modules {
        let mut e = [0u8; 16];
        e[0..4].copy_from_slice(&u32_addr(m.range.start, "a module")?.to_le_bytes());
        e[4..8].copy_from_slice(&u32_addr(m.range.end, "a module")?.to_le_bytes());
        out.extend_from_slice(&e);
    }
    if !modules.is_empty() {
        flags |= MB_MODS;
        put(&mut out, 20, modules.len() as u32);
        put(&mut out, 24, u32_addr(mods_at, "the module list")?);
    }
    // Memory map: {size = 20, base_addr, length, type}.
    let mmap_at = here(&out);
    for e in memmap {
        out.extend_from_slice(&20u32.to_le_bytes());
        out.extend_from_slice(&e.addr.to_le_bytes());
        out.extend_from_slice(&e.size.to_le_bytes());
        out.extend_from_slice(&e.kind.to_le_bytes());
    }
    put(&mut out, 44, (memmap.len() * 24) as u32);
    put(&mut out, 48, u32_addr(mmap_at, "the memory map")?);
    // Strings.
    let string = |out: &mut Vec<u8>, s: &str| -> Result<u32, PlaceError> {
        let at = u32_addr(here(out), "a string")?;
        out.extend(s.bytes().filter(|&b| b != 0));
        out.push(0);
        Ok(at)
    };
    let c = string(&mut out, cmdline)?;
    put(&mut out, 16, c);
    flags |= MB_CMDLINE;
    let name = string(&mut out, "pvboot")?;
    put(&mut out, 64, name);
    for (i, m) in modules.iter().enumerate() {
        let at = string(&mut out, &m.cmdline)?;
        let off = (mods_at - base) as usize + i * 16 + 8;
        put(&mut out, off, at);
    }
    put(&mut out, 0, flags);
    u32_addr(here(&out), "the multiboot information")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn modules_go_top_down_above_the_heap_then_after_the_kernel() {
        // 256 MiB domain: heap ends at 178 MiB; the kernel ends at 3 MiB.
        let high = alloc::vec![178 * MIB..256 * MIB];
        let p = place_modules(&high, 3 * MIB..128 * MIB, &[10 * MIB + 1, 4096]).unwrap();
        assert_eq!(p[0], 256 * MIB - 10 * MIB - 4096..256 * MIB - 4096 + 1);
        assert_eq!(p[1], p[0].start - 4096..p[0].start);
        // Too big for above the heap: after the kernel, page-aligned.
        let p = place_modules(&high, 3 * MIB + 5..128 * MIB, &[100 * MIB]).unwrap();
        assert_eq!(p[0], 3 * MIB + 4096..3 * MIB + 4096 + 100 * MIB);
        // Nowhere.
        assert_eq!(
            place_modules(&high, 3 * MIB..128 * MIB, &[200 * MIB]),
            Err(PlaceError::NoRoom { index: 0, size: 200 * MIB })
        );
        assert!(place_modules(&high, 0..0, &[u64::MAX]).is_err());
    }

    #[test]
    fn multiboot_info_layout() {
        let base = 0x0A00_0000;
        let map = [
            E820 { addr: 0, size: 0xA0000, kind: 1 },
            E820 { addr: MIB, size: 255 * MIB, kind: 1 },
            E820 { addr: 0xFEFF_0000, size: 0x10000, kind: 2 },
        ];
        let mods = [MbModule { range: 0x0F00_0000..0x0F00_1234, cmdline: "/initrd x=1".into() }];
        let b = multiboot1_info(base, &map, "console=hvc0", &mods).unwrap();
        let w = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        assert_eq!(w(0), MB_MEM | MB_CMDLINE | MB_MODS | MB_MMAP | MB_LOADER_NAME);
        assert_eq!((w(4), w(8)), (640, 255 * 1024));
        let s = |addr: u32| {
            let o = (u64::from(addr) - base) as usize;
            let end = b[o..].iter().position(|&c| c == 0).unwrap();
            String::from(core::str::from_utf8(&b[o..o + end]).unwrap())
        };
        assert_eq!(s(w(16)), "console=hvc0");
        assert_eq!(s(w(64)), "pvboot");
        assert_eq!(w(20), 1);
        let m = (u64::from(w(24)) - base) as usize;
        assert_eq!((w(m), w(m + 4)), (0x0F00_0000, 0x0F00_1234));
        assert_eq!(s(w(m + 8)), "/initrd x=1");
        assert_eq!(w(44), 3 * 24);
        let mm = (u64::from(w(48)) - base) as usize;
        assert_eq!(w(mm), 20);
        assert_eq!(u64::from_le_bytes(b[mm + 28..mm + 36].try_into().unwrap()), MIB);
        assert_eq!(multiboot1_info(1 << 32, &map, "", &[]), Err(PlaceError::Above4G("the memory map")));
    }
}
