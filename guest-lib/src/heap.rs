//! The global allocator: a linked-list heap over the largest free RAM range.
//!
//! "Free" means RAM in the memory map, above a floor (by default 1 MiB: low
//! memory holds firmware-ish leftovers and, on some builders, the start
//! info), inside the identity map, and outside the kernel image and every
//! boot data range (start info, memory map, command lines, module list,
//! modules). The heap is not zeroed: allocations that need zeroes ask for
//! them.
//!
//! An application can move the floor up to its own image and cap the heap's
//! size ([`Placement`], given to [`main!`](crate::main)): pvboot, linked at
//! 128 MiB, keeps its heap above its image so that RAM below it stays free
//! for the kernels it loads.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{null_mut, NonNull};

use linked_list_allocator::hole::HoleList;
use linked_list_allocator::Heap;

use crate::boot::{BootInfo, MemoryKind, MemoryRegion, PhysRange};
use crate::sync::IrqMutex;

/// Memory below this is never used for the heap.
pub const LOW_MEMORY_END: u64 = 1 << 20;
/// Smaller free ranges are not worth a heap.
pub const MIN_HEAP: u64 = 64 * 1024;
const PAGE: u64 = 4096;

/// The lowest address the heap may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Floor {
    /// [`LOW_MEMORY_END`] (1 MiB).
    LowMemory,
    /// The start of the guest's own image (the heap then lies above it).
    ImageStart,
}

/// Where an application wants its heap: given to [`main!`](crate::main) as
/// `heap = ...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The lowest address the heap may use.
    pub floor: Floor,
    /// The most bytes the heap may take (its lowest part is used).
    pub max_bytes: Option<u64>,
}

impl Placement {
    /// The largest free range above 1 MiB, uncapped (what every guest gets
    /// unless it asks otherwise).
    pub const DEFAULT: Placement = Placement {
        floor: Floor::LowMemory,
        max_bytes: None,
    };

    /// Above the guest's image, at most `max_bytes`.
    pub const fn above_image(max_bytes: u64) -> Placement {
        Placement {
            floor: Floor::ImageStart,
            max_bytes: Some(max_bytes),
        }
    }
}

impl Default for Placement {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Picks the largest page-aligned range of RAM in `map` that lies in
/// `[max(floor, LOW_MEMORY_END), limit)` and overlaps none of `excluded`
/// (which this sorts), cut to its first `max_bytes` (rounded down to a page)
/// when given. `None` if nothing of at least [`MIN_HEAP`] bytes is left.
pub fn choose_heap(
    map: &[MemoryRegion],
    excluded: &mut [PhysRange],
    floor: u64,
    limit: u64,
    max_bytes: Option<u64>,
) -> Option<PhysRange> {
    let floor = floor.max(LOW_MEMORY_END);
    excluded.sort_unstable_by_key(|r| r.start);
    let mut best: Option<PhysRange> = None;
    let mut consider = |start: u64, end: u64| {
        let start = start.checked_next_multiple_of(PAGE).unwrap_or(u64::MAX);
        let end = end & !(PAGE - 1);
        if end > start
            && end - start >= MIN_HEAP
            && best.is_none_or(|b| end - start > b.end - b.start)
        {
            best = Some(PhysRange { start, end });
        }
    };
    for r in map.iter().filter(|r| r.kind == MemoryKind::Ram) {
        let start = r.start.max(floor);
        let end = r.end().min(limit);
        if start >= end {
            continue;
        }
        let mut cursor = start;
        for ex in excluded.iter() {
            if ex.end <= cursor {
                continue;
            }
            if ex.start >= end {
                break;
            }
            if ex.start > cursor {
                consider(cursor, ex.start);
            }
            cursor = cursor.max(ex.end);
        }
        if cursor < end {
            consider(cursor, end);
        }
    }
    let mut best = best?;
    if let Some(max) = max_bytes {
        let max = max & !(PAGE - 1);
        if max < MIN_HEAP {
            return None;
        }
        best.end = best.end.min(best.start.saturating_add(max));
    }
    Some(best)
}

/// A [`linked_list_allocator::Heap`] behind an interrupt-masking lock.
pub struct GuestHeap(IrqMutex<Heap>);

impl GuestHeap {
    /// A heap with no memory yet (every allocation fails until [`init`]).
    pub const fn empty() -> Self {
        GuestHeap(IrqMutex::new(Heap::empty()))
    }

    /// Bytes in use and bytes free.
    pub fn usage(&self) -> (usize, usize) {
        let h = self.0.lock();
        (h.used(), h.free())
    }
}

impl Default for GuestHeap {
    fn default() -> Self {
        Self::empty()
    }
}

// SAFETY: linked_list_allocator returns blocks that fit the layout and do
// not overlap; the lock serialises all access to its free list.
unsafe impl GlobalAlloc for GuestHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate_first_fit(layout)
            .map_or(null_mut(), |p| p.as_ptr())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: the caller passes a block this allocator returned.
            unsafe { self.0.lock().deallocate(p, layout) }
        }
    }

    /// Grows a block in place when the free memory right after it is where
    /// first fit puts the extra bytes; otherwise allocates, copies, frees.
    /// Buffers that double as they fill (a decompressor's window, a Vec)
    /// would otherwise leave every smaller copy behind as a hole too small
    /// for the next: a window growing to 32 MiB would span 64 MiB of heap.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if self.grow_in_place(ptr, layout, new_size) {
            return ptr;
        }
        // SAFETY: `GlobalAlloc::realloc`'s contract: new_size is non-zero
        // and, rounded up to the alignment, does not overflow isize.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a non-zero size.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct, and at least this long.
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

impl GuestHeap {
    /// Takes the memory right after the block at `ptr` (allocated with
    /// `layout`) so that it holds `new_size` bytes; whether it did.
    ///
    /// linked_list_allocator keeps no per-block headers: a block is only
    /// its (rounded) size, so a block and the extension allocated right
    /// after it are freed later as one block of the rounded new size.
    fn grow_in_place(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> bool {
        let rounded = |size| {
            Layout::from_size_align(size, layout.align())
                .ok()
                .and_then(|l| HoleList::align_layout(l).ok())
                .map(|l| l.size())
        };
        let (Some(old), Some(new)) = (rounded(layout.size()), rounded(new_size)) else {
            return false;
        };
        let Some(extra) = new.checked_sub(old) else { return false };
        // Smaller extensions would be rounded up and no longer add up.
        if extra < HoleList::min_size() {
            return false;
        }
        let Ok(extension) = Layout::from_size_align(extra, core::mem::align_of::<usize>()) else {
            return false;
        };
        let mut heap = self.0.lock();
        let Ok(got) = heap.allocate_first_fit(extension) else { return false };
        if got.as_ptr() as usize == ptr as usize + old {
            return true;
        }
        // SAFETY: the block was just allocated with this layout.
        unsafe { heap.deallocate(got, extension) };
        false
    }
}

/// The guest's allocator.
#[cfg(all(target_os = "none", not(test)))]
#[global_allocator]
pub static HEAP: GuestHeap = GuestHeap::empty();

/// The guest's allocator (a stand-in on the host, where std allocates).
#[cfg(not(all(target_os = "none", not(test))))]
pub static HEAP: GuestHeap = GuestHeap::empty();

static RANGE: IrqMutex<Option<PhysRange>> = IrqMutex::new(None);

/// The range the heap was given (`None` before [`init`] or without a heap).
pub fn range() -> Option<PhysRange> {
    *RANGE.lock()
}

/// Gives the heap the largest free RAM range `placement` allows; returns it.
pub fn init(boot: &BootInfo, placement: Placement) -> Option<PhysRange> {
    let mut excluded = [PhysRange { start: 0, end: 0 }; crate::boot::MAX_BOOT_RANGES + 1];
    let ranges = boot.boot_ranges();
    excluded[..ranges.len()].copy_from_slice(ranges);
    let image = crate::arch::image_range();
    excluded[ranges.len()] = image;
    let floor = match placement.floor {
        Floor::LowMemory => LOW_MEMORY_END,
        Floor::ImageStart => image.start,
    };
    let r = choose_heap(
        boot.memory_map(),
        &mut excluded[..=ranges.len()],
        floor,
        crate::arch::mapped_limit(),
        placement.max_bytes,
    )?;
    // SAFETY: the range is RAM, identity-mapped, and overlaps neither the
    // image nor any boot data BootInfo refers to, so nothing else uses it.
    unsafe {
        HEAP.0
            .lock()
            .init(r.start as *mut u8, (r.end - r.start) as usize)
    };
    *RANGE.lock() = Some(r);
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A heap over `size` bytes of leaked host memory.
    fn host_heap(size: usize) -> GuestHeap {
        let heap = GuestHeap::empty();
        let mem = Box::leak(alloc::vec![0u64; size / 8].into_boxed_slice());
        // SAFETY: leaked memory, used by nothing else.
        unsafe { heap.0.lock().init(mem.as_mut_ptr().cast(), size) };
        heap
    }

    #[test]
    fn a_doubling_buffer_grows_in_place() {
        // 64 KiB doubling to 8 MiB behind a 1 MiB block in 10 MiB: copying
        // each time would need 1 + 4 + 8 MiB.
        let heap = host_heap(10 << 20);
        let below = Layout::from_size_align(1 << 20, 8).unwrap();
        // SAFETY (all calls): blocks this heap returned, with their layouts.
        let first = unsafe { heap.alloc(below) };
        assert!(!first.is_null());
        let mut layout = Layout::from_size_align(64 << 10, 8).unwrap();
        let mut p = unsafe { heap.alloc(layout) };
        unsafe { p.write_bytes(0x5A, layout.size()) };
        let start = p;
        while layout.size() < 8 << 20 {
            let new_size = layout.size() * 2;
            p = unsafe { heap.realloc(p, layout, new_size) };
            assert_eq!(p, start, "grown in place to {new_size}");
            layout = Layout::from_size_align(new_size, 8).unwrap();
        }
        assert!(unsafe { core::slice::from_raw_parts(p, 64 << 10) }.iter().all(|&b| b == 0x5A));
        unsafe { heap.dealloc(p, layout) };
        unsafe { heap.dealloc(first, below) };
        assert_eq!(heap.usage().0, 0, "the grown block is freed whole");
    }

    #[test]
    fn a_block_with_a_neighbour_moves_and_keeps_its_bytes() {
        let heap = host_heap(1 << 20);
        let l = Layout::from_size_align(4096, 8).unwrap();
        // SAFETY (all calls): blocks this heap returned, with their layouts.
        let a = unsafe { heap.alloc(l) };
        let b = unsafe { heap.alloc(l) };
        unsafe { a.write_bytes(7, 4096) };
        let a2 = unsafe { heap.realloc(a, l, 8192) };
        assert_ne!(a2, a, "b is in the way");
        assert!(unsafe { core::slice::from_raw_parts(a2, 4096) }.iter().all(|&x| x == 7));
        unsafe {
            heap.dealloc(a2, Layout::from_size_align(8192, 8).unwrap());
            heap.dealloc(b, l);
        }
        assert_eq!(heap.usage().0, 0);
    }

    const MIB: u64 = 1 << 20;

    fn ram(start: u64, size: u64) -> MemoryRegion {
        MemoryRegion {
            start,
            size,
            kind: MemoryKind::Ram,
        }
    }
    fn r(start: u64, end: u64) -> PhysRange {
        PhysRange { start, end }
    }

    #[test]
    fn skips_low_memory_image_and_boot_data() {
        let map = [ram(0, 0xA0000), ram(MIB, 63 * MIB)];
        // Image 1 MiB..1.5 MiB, start info + cmdline at 2 MiB, a 20 MiB module at 40 MiB.
        let mut ex = [
            r(40 * MIB, 60 * MIB),
            r(MIB, MIB + MIB / 2),
            r(2 * MIB, 2 * MIB + 100),
        ];
        let h = choose_heap(&map, &mut ex, 0, 4 << 30, None).unwrap();
        assert_eq!(h, r(2 * MIB + 4096, 40 * MIB));
    }

    #[test]
    fn respects_the_mapped_limit_and_kinds() {
        let map = [
            ram(MIB, 3 * MIB),
            MemoryRegion {
                start: 8 * MIB,
                size: 100 * MIB,
                kind: MemoryKind::Reserved,
            },
            ram(200 * MIB, 100 * MIB),
        ];
        let h = choose_heap(&map, &mut [], 0, 210 * MIB, None).unwrap();
        assert_eq!(h, r(200 * MIB, 210 * MIB));
    }

    #[test]
    fn aligns_to_pages_and_refuses_tiny_ranges() {
        let map = [ram(MIB + 1, 200 * 1024)];
        let h = choose_heap(&map, &mut [], 0, u64::MAX, None).unwrap();
        assert_eq!(h.start, MIB + 4096);
        assert_eq!(h.end, (MIB + 1 + 200 * 1024) & !4095);
        assert_eq!(choose_heap(&[ram(MIB, 4096)], &mut [], 0, u64::MAX, None), None);
        assert_eq!(choose_heap(&[], &mut [], 0, u64::MAX, None), None);
    }

    #[test]
    fn overlapping_exclusions() {
        let map = [ram(0, 100 * MIB)];
        let mut ex = [
            r(10 * MIB, 50 * MIB),
            r(5 * MIB, 20 * MIB),
            r(90 * MIB, 200 * MIB),
        ];
        let h = choose_heap(&map, &mut ex, 0, u64::MAX, None).unwrap();
        assert_eq!(h, r(50 * MIB, 90 * MIB));
    }

    #[test]
    fn a_floor_and_a_cap_keep_the_heap_above_the_image() {
        // pvboot's layout: 256 MiB of RAM, the image at 128 MiB..130 MiB,
        // the start info low; the heap must not go below the image and must
        // take at most 48 MiB, leaving the rest for modules.
        let map = [ram(0, 0xA0000), ram(MIB, 255 * MIB)];
        let mut ex = [r(128 * MIB, 130 * MIB), r(MIB, MIB + 4096)];
        let h = choose_heap(&map, &mut ex, 128 * MIB, 4 << 30, Some(48 * MIB)).unwrap();
        assert_eq!(h, r(130 * MIB, 178 * MIB));
        // Without the floor the larger range below the image would win.
        let h = choose_heap(&map, &mut ex, 0, 4 << 30, None).unwrap();
        assert_eq!(h, r(MIB + 4096, 128 * MIB));
        // A cap below the minimum heap is no heap; a floor above RAM neither.
        assert_eq!(choose_heap(&map, &mut ex, 128 * MIB, 4 << 30, Some(4096)), None);
        assert_eq!(choose_heap(&map, &mut ex, 300 * MIB, 4 << 30, None), None);
    }

    #[test]
    fn allocates_from_a_chosen_range() {
        static mut ARENA: [u64; 8192] = [0; 8192];
        let heap = GuestHeap::empty();
        // SAFETY: the test owns ARENA.
        unsafe { heap.0.lock().init((&raw mut ARENA).cast(), 8192 * 8) };
        let layout = Layout::from_size_align(100, 16).unwrap();
        // SAFETY: a valid layout; the block is freed with the same layout.
        unsafe {
            let p = heap.alloc(layout);
            assert!(!p.is_null());
            assert_eq!(p as usize % 16, 0);
            assert!(heap.usage().0 >= 100);
            heap.dealloc(p, layout);
        }
        assert_eq!(heap.usage().0, 0);
    }
}
