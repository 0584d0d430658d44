//! The guest's only `unsafe`: raw hypercalls and volatile access to pages
//! it shares with the hypervisor's backends.
//!
//! Invariants:
//! - [`call`] may pass any number and any argument. The attack code only
//!   passes pointers to memory it owns and may lose ([`Scratch`]), to
//!   addresses that are not RAM (holes, past the end of RAM, non-canonical
//!   ones), or into the hypercall page (reinstalled after such a call, see
//!   `hypercalls.rs`), and it keeps away from the operations that would
//!   destroy the guest itself (moving shared info, freeing its own RAM,
//!   closing its console's port): those are in `hypercalls::allowed`.
//! - [`Page`] is a page-aligned heap allocation (or a ring page the
//!   toolstack gave us), leaked, so it stays valid for the guest's life;
//!   it is accessed only with volatile reads and writes because a backend
//!   reads and writes it concurrently.

extern crate alloc;

use alloc::alloc::{alloc_zeroed, Layout};

/// A hypercall of any number with five raw arguments (see
/// `guest_lib::hypercall::hypercall_any`).
#[cfg(target_os = "none")]
pub fn call(nr: u32, a: [u64; 5]) -> i64 {
    // SAFETY: see the module invariants: every pointer argument the attack
    // code makes is to memory the guest may lose, or not RAM at all.
    unsafe { guest_lib::hypercall::hypercall_any(nr, a) }
}

/// Host builds make no hypercalls.
#[cfg(not(target_os = "none"))]
pub fn call(_nr: u32, _a: [u64; 5]) -> i64 {
    -38
}

/// Pages shared with the hypervisor, accessed only by volatile reads and
/// writes at checked offsets.
#[derive(Clone, Copy)]
pub struct Page {
    addr: u64,
    len: usize,
}

impl Page {
    /// `count` zeroed, page-aligned pages from the heap, never freed.
    pub fn alloc(count: usize) -> Page {
        let len = count.max(1) * 4096;
        let layout = Layout::from_size_align(len, 4096).expect("page layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory for {count} pages");
        Page {
            addr: ptr as u64,
            len,
        }
    }

    /// The ring page at `addr` the toolstack set up (console, xenstore).
    ///
    /// # Safety
    /// `addr` must be a page of RAM that the guest reaches through its
    /// identity map and that Rust code uses through no reference.
    pub unsafe fn at(addr: u64) -> Page {
        Page { addr, len: 4096 }
    }

    /// The (identity-mapped) address of the first byte.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The guest frame of page `i`.
    pub fn gfn(&self, i: usize) -> u64 {
        (self.addr >> 12) + i as u64
    }

    /// Writes `bytes` at `off` (clipped to the pages).
    pub fn write(&self, off: usize, bytes: &[u8]) {
        let n = bytes.len().min(self.len.saturating_sub(off));
        for (i, b) in bytes[..n].iter().enumerate() {
            // SAFETY: off + i < len: inside the allocation (see `alloc`/`at`).
            unsafe { core::ptr::write_volatile((self.addr as *mut u8).add(off + i), *b) };
        }
    }

    /// Reads `buf.len()` bytes at `off` (zeros past the end).
    pub fn read(&self, off: usize, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = if off + i < self.len {
                // SAFETY: inside the allocation.
                unsafe { core::ptr::read_volatile((self.addr as *const u8).add(off + i)) }
            } else {
                0
            };
        }
    }

    /// The little-endian u32 at `off` (4-aligned).
    pub fn u32(&self, off: usize) -> u32 {
        assert!(off.is_multiple_of(4) && off + 4 <= self.len);
        // SAFETY: aligned and inside the allocation.
        unsafe { core::ptr::read_volatile((self.addr as *const u8).add(off).cast::<u32>()) }
    }

    /// Stores a u32 at `off` (4-aligned), ordered after earlier writes.
    pub fn set_u32(&self, off: usize, v: u32) {
        assert!(off.is_multiple_of(4) && off + 4 <= self.len);
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        // SAFETY: aligned and inside the allocation.
        unsafe { core::ptr::write_volatile((self.addr as *mut u8).add(off).cast::<u32>(), v) };
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    }

    /// Fills the pages with `f(byte offset)`.
    pub fn fill(&self, mut f: impl FnMut(usize) -> u8) {
        for i in 0..self.len {
            // SAFETY: inside the allocation.
            unsafe { core::ptr::write_volatile((self.addr as *mut u8).add(i), f(i)) };
        }
    }
}

/// The hypercall page's address (identity-mapped).
#[cfg(target_os = "none")]
pub fn hypercall_page() -> u64 {
    guest_lib::hypercall::page_addr()
}

/// Host builds have no hypercall page.
#[cfg(not(target_os = "none"))]
pub fn hypercall_page() -> u64 {
    0
}
