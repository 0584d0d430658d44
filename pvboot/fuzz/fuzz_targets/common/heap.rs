//! Fuzzing with the memory the guest really has: pvboot's heap is capped at
//! `pvboot::HEAP_MAX`, 64 MiB (above its image, never below 128 MiB; the
//! constant is included from pvboot/src/heap_size.rs, so it cannot drift),
//! so this global allocator refuses any allocation that would take the
//! target's live Rust heap past that. The refusal is what the guest would
//! see: Rust's allocation-error handler aborts, and libFuzzer records the input as a
//! crash. libFuzzer's own (C++) memory is not counted; its
//! `-malloc_limit_mb` of the same size, set by `cargo xtask fuzz`, catches single
//! allocations over the cap before they are made.
//!
//! Shared by pvboot/fuzz and fs-ffs/fuzz (by `#[path]`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

mod size {
    include!("../../../src/heap_size.rs");
}

/// pvboot's heap size, the limit every fuzz target runs under.
pub const PVBOOT_HEAP_BYTES: usize = size::HEAP_MAX as usize;

/// Bytes currently allocated through [`HeapLimit`].
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, refusing to hold more than [`PVBOOT_HEAP_BYTES`].
pub struct HeapLimit;

impl HeapLimit {
    /// Reserves `size` bytes of the budget; false if they do not fit.
    fn reserve(size: usize) -> bool {
        LIVE.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |live| {
            live.checked_add(size).filter(|&n| n <= PVBOOT_HEAP_BYTES)
        })
        .is_ok()
    }

    fn release(size: usize) {
        LIVE.fetch_sub(size, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed on to `System` unchanged (same layouts and
// pointers); this only keeps a count and returns null, as `GlobalAlloc`
// allows, when the count would pass the limit.
unsafe impl GlobalAlloc for HeapLimit {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Self::reserve(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's layout contract is passed on as is.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            Self::release(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Self::reserve(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            Self::release(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout (see `alloc`).
        unsafe { System.dealloc(ptr, layout) };
        Self::release(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old && !Self::reserve(new_size - old) {
            return std::ptr::null_mut();
        }
        // SAFETY: `ptr` and `layout` are the caller's, valid for `System`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            if new_size > old {
                Self::release(new_size - old);
            }
        } else if new_size < old {
            Self::release(old - new_size);
        }
        p
    }
}

/// Every target that includes `common` runs under pvboot's heap limit.
#[global_allocator]
static HEAP: HeapLimit = HeapLimit;
