//! The shared info page: event-channel bitmaps, per-vCPU upcall flags and
//! pvclock records, and the wallclock, all written by Xen concurrently.
//!
//! The page appears over one of our own page-aligned frames: a PVH guest
//! places it there with XENMEM_add_to_physmap, a PV guest maps the machine
//! frame start_info names at that address ([`crate::arch::map_shared_info`]
//! does either). Rust never forms references to its plain fields:
//! every access goes through an atomic or a volatile read at the xen-abi
//! offsets, because Xen may change any of them at any moment.

use core::cell::UnsafeCell;
use core::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicU8, Ordering};

use xen_abi::shared_info as si;
use xen_abi::shared_info::{VcpuInfo, VcpuTimeInfo};

use crate::hypercall::Errno;

/// The frame Xen's shared info is placed over (zeroed BSS until then).
#[repr(C, align(4096))]
struct Page(UnsafeCell<[u8; 4096]>);
// SAFETY: the page is only accessed through atomics and volatile reads.
unsafe impl Sync for Page {}
static PAGE: Page = Page(UnsafeCell::new([0; 4096]));

fn base() -> *mut u8 {
    PAGE.0.get().cast()
}

/// The address of the frame shared info is placed over (identity-mapped).
pub fn page_addr() -> u64 {
    base() as u64
}

/// Makes Xen's shared info page appear over our reserved frame.
pub fn init() -> Result<(), Errno> {
    // SAFETY: the target frame is `PAGE`, reserved for exactly this and only
    // accessed atomically, so replacing its contents breaks nothing.
    unsafe { crate::arch::map_shared_info(base()) }
}

/// An atomic view of a naturally aligned field at `offset` in the page.
///
/// # Safety
/// `offset` must be one of the xen-abi field offsets for a field of type
/// `T`'s size, so it is in bounds and aligned.
unsafe fn field<T>(offset: usize) -> &'static T {
    debug_assert!(offset + core::mem::size_of::<T>() <= 4096);
    debug_assert!(offset.is_multiple_of(core::mem::align_of::<T>()));
    // SAFETY: in bounds and aligned (caller); the page lives forever and is
    // only accessed atomically, so a shared atomic reference is sound.
    unsafe { &*base().add(offset).cast::<T>() }
}

/// `vcpu_info[vcpu].evtchn_upcall_pending`.
pub fn upcall_pending(vcpu: usize) -> &'static AtomicU8 {
    assert!(vcpu < si::LEGACY_MAX_VCPUS);
    // SAFETY: a u8 field at its xen-abi offset.
    unsafe { field(si::vcpu_info_offset(vcpu) + si::VCPU_UPCALL_PENDING) }
}

/// `vcpu_info[vcpu].evtchn_upcall_mask` (meaningful for PV only).
pub fn upcall_mask(vcpu: usize) -> &'static AtomicU8 {
    assert!(vcpu < si::LEGACY_MAX_VCPUS);
    // SAFETY: a u8 field at its xen-abi offset.
    unsafe { field(si::vcpu_info_offset(vcpu) + si::VCPU_UPCALL_MASK) }
}

/// `vcpu_info[vcpu].evtchn_pending_sel`: which pending words to scan.
pub fn pending_sel(vcpu: usize) -> &'static AtomicU64 {
    assert!(vcpu < si::LEGACY_MAX_VCPUS);
    // SAFETY: a u64 field at its xen-abi offset.
    unsafe { field(si::vcpu_info_offset(vcpu) + si::VCPU_PENDING_SEL) }
}

/// `vcpu_info[vcpu].arch.cr2`: where a PV guest's last page fault was
/// (Xen writes it there because a ring-3 kernel cannot read CR2).
pub fn cr2(vcpu: usize) -> u64 {
    assert!(vcpu < si::LEGACY_MAX_VCPUS);
    const CR2: usize = core::mem::offset_of!(VcpuInfo, cr2);
    // SAFETY: a u64 field at its xen-abi offset.
    let v: &AtomicU64 = unsafe { field(si::vcpu_info_offset(vcpu) + CR2) };
    v.load(Ordering::Relaxed)
}

/// `evtchn_pending[word]`: one bit per port.
pub fn pending(word: usize) -> &'static AtomicU64 {
    assert!(word < 64);
    // SAFETY: a u64 array element at its xen-abi offset.
    unsafe { field(si::EVTCHN_PENDING + word * 8) }
}

/// `evtchn_mask[word]`: one bit per port.
pub fn mask(word: usize) -> &'static AtomicU64 {
    assert!(word < 64);
    // SAFETY: a u64 array element at its xen-abi offset.
    unsafe { field(si::EVTCHN_MASK + word * 8) }
}

/// A consistent copy of `vcpu_info[vcpu].time` (the pvclock record).
///
/// Xen makes `version` odd while it updates the record; a copy is kept only
/// if `version` was even and unchanged around it.
pub fn vcpu_time(vcpu: usize) -> VcpuTimeInfo {
    assert!(vcpu < si::LEGACY_MAX_VCPUS);
    let off = si::vcpu_info_offset(vcpu) + si::VCPU_TIME;
    // SAFETY: u32 field at the start of the record.
    let version: &AtomicU32 = unsafe { field(off) };
    // SAFETY: the record is in bounds and 8-byte aligned.
    let rec = unsafe { base().add(off).cast::<VcpuTimeInfo>() };
    loop {
        let v1 = version.load(Ordering::Acquire);
        if v1 & 1 != 0 {
            core::hint::spin_loop();
            continue;
        }
        // SAFETY: a volatile copy of plain integers; a torn copy is thrown
        // away by the version check below.
        let copy = unsafe { core::ptr::read_volatile(rec) };
        fence(Ordering::Acquire);
        if version.load(Ordering::Relaxed) == v1 {
            return copy;
        }
    }
}

/// The wallclock at system time 0: (seconds, nanoseconds) since the epoch.
pub fn wallclock_base() -> (u64, u32) {
    // SAFETY: u32 fields at their xen-abi offsets (wc_version, wc_sec,
    // wc_nsec, wc_sec_hi are consecutive u32s).
    let (ver, sec, nsec, sec_hi): (&AtomicU32, &AtomicU32, &AtomicU32, &AtomicU32) = unsafe {
        (
            field(si::WC_VERSION),
            field(si::WC_VERSION + 4),
            field(si::WC_VERSION + 8),
            field(si::WC_VERSION + 12),
        )
    };
    loop {
        let v1 = ver.load(Ordering::Acquire);
        if v1 & 1 != 0 {
            core::hint::spin_loop();
            continue;
        }
        let s = sec.load(Ordering::Relaxed) as u64 | (sec_hi.load(Ordering::Relaxed) as u64) << 32;
        let n = nsec.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if ver.load(Ordering::Relaxed) == v1 {
            return (s, n);
        }
    }
}
