//! Guest RAM that pvboot hands to the next kernel, as `&mut [u8]` through
//! the identity map: the one place in pvboot with `unsafe`.
//!
//! The invariant every slice rests on: [`FreeRam`] only hands out bytes
//! that are RAM in the domain's memory map, identity-mapped, at or above
//! 1 MiB, and outside everything pvboot itself uses: its image (code, data,
//! stack, page tables, the shared info and grant-table frames, all inside
//! it), its heap, and the boot data guest-lib keeps references to (start
//! info, memory map, command line, modules). Nothing in pvboot reads or
//! writes those bytes otherwise, and a `&mut self` borrow makes each slice
//! the only one alive.

use alloc::alloc::{alloc_zeroed, Layout};
use alloc::format;
use alloc::vec::Vec;
use core::ops::Range;

use guest_lib::boot::{BootInfo, MemoryKind};
use pvboot::kernel::{KernelError, Memory};

/// Kernels and modules never go below 1 MiB.
const LOW_END: u64 = 1 << 20;

/// Removes `hole` from the sorted, disjoint `ranges`.
fn punch(ranges: &mut Vec<Range<u64>>, hole: Range<u64>) {
    let mut out = Vec::with_capacity(ranges.len() + 1);
    for r in ranges.drain(..) {
        if hole.end <= r.start || r.end <= hole.start {
            out.push(r);
            continue;
        }
        if r.start < hole.start {
            out.push(r.start..hole.start);
        }
        if hole.end < r.end {
            out.push(hole.end..r.end);
        }
    }
    *ranges = out;
}

/// The RAM pvboot does not use, and what it does use.
///
/// Writes aimed at pvboot's own image (a kernel linked where pvboot runs,
/// e.g. pvboot itself) can be redirected to a staging area
/// ([`FreeRam::stage`]); the hand-off copies them into place at the very
/// end, with paging off (`guest_lib::handoff::FinalCopy`).
pub struct FreeRam {
    free: Vec<Range<u64>>,
    /// Writes to `.0` go to `.1` instead (same length).
    staged: Option<(Range<u64>, Range<u64>)>,
    /// pvboot's image.
    pub image: Range<u64>,
    /// pvboot's heap.
    pub heap: Range<u64>,
}

impl FreeRam {
    /// Computes the free RAM from the memory map (see the module docs).
    pub fn new(boot: &BootInfo) -> FreeRam {
        let limit = guest_lib::arch::mapped_limit();
        let mut free: Vec<Range<u64>> = boot
            .memory_map()
            .iter()
            .filter(|r| r.kind == MemoryKind::Ram)
            .map(|r| r.start.max(LOW_END)..r.end().min(limit))
            .filter(|r| r.start < r.end)
            .collect();
        free.sort_by_key(|r| r.start);
        let image = guest_lib::arch::image_range();
        let heap = guest_lib::heap::range().map_or(0..0, |h| h.start..h.end);
        punch(&mut free, image.start..image.end);
        punch(&mut free, heap.clone());
        for b in boot.boot_ranges() {
            punch(&mut free, b.start..b.end);
        }
        FreeRam { free, staged: None, image: image.start..image.end, heap }
    }

    /// The free ranges, sorted.
    pub fn ranges(&self) -> &[Range<u64>] {
        &self.free
    }

    /// Takes `len` bytes (page-aligned) from the top of the highest free
    /// range at or above `floor`; they are no longer free.
    pub fn take_top(&mut self, len: u64, floor: u64) -> Option<Range<u64>> {
        let len = len.checked_next_multiple_of(4096)?;
        let r = self.free.iter().rev().find_map(|f| {
            let start = f.end.checked_sub(len)? & !4095;
            (start >= f.start.max(floor)).then_some(start..start + len)
        })?;
        punch(&mut self.free, r.clone());
        Some(r)
    }

    /// Marks `r` as used (modules, once placed).
    pub fn take(&mut self, r: Range<u64>) {
        punch(&mut self.free, r);
    }

    /// Sends writes to pvboot's image range to `staging` (free RAM taken
    /// with [`FreeRam::take_top`], as long as the image).
    pub fn stage(&mut self, staging: Range<u64>) {
        self.staged = Some((self.image.clone(), staging));
    }

    fn contains(&self, r: &Range<u64>) -> bool {
        self.free.iter().any(|f| f.start <= r.start && r.end <= f.end)
    }
}

impl Memory for FreeRam {
    fn slice_mut(&mut self, paddr: u64, len: usize) -> Result<&mut [u8], KernelError> {
        let refuse = |range: Range<u64>, why: &str| KernelError::Memory {
            range,
            reason: format!(
                "{why} (pvboot's image is [{:#x}, {:#x}), its heap [{:#x}, {:#x}))",
                self.image.start, self.image.end, self.heap.start, self.heap.end
            ),
        };
        let Some(end) = paddr.checked_add(len as u64) else {
            return Err(refuse(paddr..u64::MAX, "past the end of memory"));
        };
        let mut at = paddr;
        let mut ok = false;
        if let Some((img, staging)) = &self.staged {
            if paddr < img.end && img.start < end {
                if paddr < img.start || end > img.end {
                    return Err(refuse(paddr..end, "straddles the edge of pvboot's image"));
                }
                at = staging.start + (paddr - img.start);
                ok = at + len as u64 <= staging.end;
            }
        }
        let target = at..at + len as u64;
        if at == 0 || !(ok || self.contains(&target)) {
            return Err(refuse(paddr..end, "not free RAM"));
        }
        // SAFETY: `target` is free RAM as the module docs define it (checked
        // just above; a staging area is free RAM taken out of the free list
        // for this alone): identity-mapped, used by nothing else in pvboot,
        // and `&mut self` keeps this slice the only one.
        Ok(unsafe { core::slice::from_raw_parts_mut(at as *mut u8, len) })
    }
}

/// A zeroed, page-aligned block from pvboot's heap that is never freed:
/// boot information for the next kernel (it must outlive pvboot's own use
/// of the heap, which ends at the hand-off). Returns its address too.
pub fn boot_block(len: usize) -> Option<(u64, &'static mut [u8])> {
    let layout = Layout::from_size_align(len.max(1), 4096).ok()?;
    // SAFETY: a non-zero size.
    let p = unsafe { alloc_zeroed(layout) };
    if p.is_null() {
        return None;
    }
    // SAFETY: `len` zeroed bytes just allocated and never freed or shared.
    Some((p as u64, unsafe { core::slice::from_raw_parts_mut(p, len) }))
}
