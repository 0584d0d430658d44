//! Memory shared with a backend: page-aligned [`Pages`] from the heap, the
//! [`SharedMem`] view that xen-abi's ring code reads and writes through,
//! and [`GrantedPages`], pages together with the grants that give one
//! backend domain access to them.
//!
//! Every frontend (blkfront, netfront) builds its rings and data buffers
//! from these, so the rules live in one place: the backend reaches the
//! memory concurrently, hence indices are atomics and data moves only by
//! bounds-checked copies; memory is handed back to the heap only once every
//! grant of it has ended, and is leaked on purpose otherwise.
//!
//! The `unsafe` of all frontends' shared memory is confined to this module.

use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};

use xen_abi::grant_table::GrantRef;
use xen_abi::ring::RingMemory;
use xen_abi::{DomId, PAGE_SIZE};

use crate::gnttab;

/// Page-aligned, zeroed memory shared with a backend.
pub struct Pages {
    ptr: NonNull<u8>,
    bytes: usize,
}

// SAFETY: the memory is owned by this value; the backend's concurrent
// access is through atomics (indices) or copies of plain bytes.
unsafe impl Send for Pages {}

impl Pages {
    /// Allocates `count` zeroed pages from the heap.
    pub fn alloc(count: usize) -> Option<Pages> {
        let bytes = count.checked_mul(PAGE_SIZE)?;
        let layout = Layout::from_size_align(bytes, PAGE_SIZE).ok()?;
        if bytes == 0 {
            return None;
        }
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) })?;
        Some(Pages { ptr, bytes })
    }

    /// The address of the first byte.
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// Whether it is empty (never, once allocated).
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Number of pages.
    pub fn count(&self) -> usize {
        self.bytes / PAGE_SIZE
    }

    /// The guest frame of page `i` (what a grant of it carries).
    pub fn gfn(&self, i: usize) -> u64 {
        gnttab::virt_to_gfn(self.addr() + i * PAGE_SIZE)
    }

    /// A handle for ring code (valid while `self` lives, which the owner of
    /// both guarantees by keeping them together).
    pub fn mem(&self) -> SharedMem {
        SharedMem {
            ptr: self.ptr,
            bytes: self.bytes,
        }
    }

    /// Copies `buf` to `offset`; out-of-range parts are dropped.
    pub fn write(&self, offset: usize, buf: &[u8]) {
        self.mem().write(offset, buf)
    }

    /// Copies from `offset` into `buf`; out-of-range parts are left alone.
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        self.mem().read(offset, buf)
    }

    /// Gives the memory back to the heap.
    ///
    /// # Safety
    /// The backend must no longer be able to reach it (every grant of it
    /// ended), or the heap would hand out memory it still writes.
    pub unsafe fn free(self) {
        if let Ok(layout) = Layout::from_size_align(self.bytes, PAGE_SIZE) {
            // SAFETY: allocated in `alloc` with this (then valid) layout;
            // the caller guarantees nobody else uses it any more.
            unsafe { dealloc(self.ptr.as_ptr(), layout) };
        }
        core::mem::forget(self);
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // Dropped without `free`: the backend may still reach the memory,
        // so it is leaked on purpose rather than reused.
    }
}

/// A copyable view of [`Pages`] for xen-abi's `FrontRing`: bounds-checked
/// copies and atomic 32-bit index accesses, nothing else.
#[derive(Clone, Copy)]
pub struct SharedMem {
    ptr: NonNull<u8>,
    bytes: usize,
}

impl SharedMem {
    fn index(&self, offset: usize) -> Option<&AtomicU32> {
        if !offset.is_multiple_of(4) || offset.saturating_add(4) > self.bytes {
            return None;
        }
        // SAFETY: in bounds and aligned (checked; the allocation is
        // page-aligned); shared with the backend, hence atomic.
        Some(unsafe { &*self.ptr.as_ptr().add(offset).cast::<AtomicU32>() })
    }
}

impl RingMemory for SharedMem {
    fn load_index(&self, offset: usize) -> u32 {
        self.index(offset).map_or(0, |a| a.load(Ordering::Acquire))
    }

    fn store_index(&self, offset: usize, value: u32) {
        if let Some(a) = self.index(offset) {
            a.store(value, Ordering::Release)
        }
    }

    fn read(&self, offset: usize, buf: &mut [u8]) {
        let n = buf.len().min(self.bytes.saturating_sub(offset));
        if n == 0 {
            return;
        }
        // SAFETY: `offset + n <= bytes`; plain bytes the backend finished
        // writing before publishing the index the caller acquired.
        unsafe {
            core::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(offset), buf.as_mut_ptr(), n)
        }
    }

    fn write(&self, offset: usize, buf: &[u8]) {
        let n = buf.len().min(self.bytes.saturating_sub(offset));
        if n == 0 {
            return;
        }
        // SAFETY: `offset + n <= bytes`; the backend reads these bytes only
        // after the producer index that publishes them.
        unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), self.ptr.as_ptr().add(offset), n) }
    }
}

/// Why pages could not be shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareError {
    /// No memory for the pages.
    NoMemory,
    /// No grant reference for them.
    Grant(gnttab::GnttabError),
}

/// Pages with one grant each to one backend domain, made together and
/// ended together: rings (their references go to xenstore) and buffer
/// pools whose pages stay granted for the device's life.
pub struct GrantedPages {
    pages: Option<Pages>,
    refs: Vec<GrantRef>,
}

impl GrantedPages {
    /// Allocates `count` pages and grants each to `backend` (read-only when
    /// `readonly`). On failure the grants made so far are ended and the
    /// memory freed.
    pub fn new(count: usize, backend: DomId, readonly: bool) -> Result<GrantedPages, ShareError> {
        let pages = Pages::alloc(count).ok_or(ShareError::NoMemory)?;
        let mut refs = Vec::with_capacity(count);
        for i in 0..count {
            match gnttab::grant_access(backend, pages.gfn(i), readonly) {
                Ok(r) => refs.push(r),
                Err(e) => {
                    for r in refs {
                        let _ = gnttab::end_access(r);
                    }
                    // SAFETY: the grants made were just ended; a backend
                    // that never saw the references cannot have mapped them.
                    unsafe { pages.free() };
                    return Err(ShareError::Grant(e));
                }
            }
        }
        Ok(GrantedPages {
            pages: Some(pages),
            refs,
        })
    }

    /// Pages without grants, for host tests of the ring code (the host has
    /// no grant table).
    pub fn ungranted(count: usize) -> Option<GrantedPages> {
        Some(GrantedPages {
            pages: Some(Pages::alloc(count)?),
            refs: Vec::new(),
        })
    }

    /// The grant of each page, in order (empty once torn down).
    pub fn refs(&self) -> &[GrantRef] {
        &self.refs
    }

    /// The pages (`None` once torn down).
    pub fn pages(&self) -> Option<&Pages> {
        self.pages.as_ref()
    }

    /// Ends every grant and frees the pages; if the backend still holds a
    /// grant the memory is leaked rather than reused. Returns how many
    /// grants could not be ended. Idempotent.
    pub fn teardown(&mut self) -> usize {
        let mut held = 0;
        for r in self.refs.drain(..) {
            if gnttab::end_access(r).is_err() {
                held += 1;
            }
        }
        if let Some(p) = self.pages.take() {
            if held == 0 {
                // SAFETY: every grant of these pages ended: the backend
                // can no longer reach them.
                unsafe { p.free() };
            }
        }
        held
    }
}
