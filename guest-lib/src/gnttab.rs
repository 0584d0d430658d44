//! Grant tables, version 1: letting a backend domain reach our pages.
//!
//! A grant is an 8-byte entry `{flags: u16, domid: u16, frame: u32}` in a
//! table the guest writes and Xen reads. Its index (the grant reference) is
//! what a frontend hands to its backend, for example in a blkif segment.
//!
//! Where the table lives: [`MAX_FRAMES`] page-aligned pages of this
//! image's BSS, reserved for nothing else (the same approach as
//! `shared_info`): they are mapped, and the heap never hands them out
//! because it excludes the image. [`crate::arch::map_grant_frames`] puts
//! Xen's frames there: PVH (auto-translated) with
//! `XENMEM_add_to_physmap(space = XENMAPSPACE_grant_table, idx = i, gpfn)`
//! per frame, as Linux's HVM/PVH code does (Xen frees the RAM page that
//! was at each such frame); PV by mapping the machine frames
//! GNTTABOP_setup_table returns at those addresses. A consequence for a
//! loader that replaces this image in place (pvboot's kexec, PVH): those
//! frames stay grant-table frames after the hand-over, so it must either
//! load the next kernel elsewhere or give the frames back
//! (XENMEM_remove_from_physmap + XENMEM_populate_physmap) first.
//!
//! Xen grows the table up to `max_nr_frames` (GNTTABOP_query_size); this
//! asks for `min(MAX_FRAMES, max_nr_frames)` frames at [`init`], fewer if
//! refused. A grant names a guest frame (PVH) or a machine frame (PV):
//! [`frame_of`].
//!
//! Granting writes `domid` and `frame` first and `flags` last (release), so
//! Xen never sees a half-written entry. Ending a grant follows Linux's
//! `gnttab_end_foreign_access_ref`: `flags` is cleared with a
//! compare-exchange only while Xen has neither GTF_reading nor GTF_writing
//! set, i.e. while the grantee has the page neither mapped nor in a copy;
//! otherwise the grant stays and the caller learns the page is still in
//! use.
//!
//! The entry accessors are this module's `unsafe`: they are reached only
//! through [`Entries`], which bounds-checks every reference.

use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::fmt;
use core::sync::atomic::{AtomicU16, AtomicU32, Ordering};

use xen_abi::grant_table::{self as gt, GrantRef};
use xen_abi::DomId;

use crate::hypercall::{self, Errno};
use crate::sync::IrqMutex;

pub use xen_abi::grant_table::Copy as CopyOp;
pub use xen_abi::grant_table::CopyPtr;

/// Most grant-table frames set up (each holds 512 v1 entries).
pub const MAX_FRAMES: usize = 16;
/// Entries of one frame.
pub const ENTRIES_PER_FRAME: u32 = gt::ENTRIES_PER_FRAME_V1;

/// Why a grant operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GnttabError {
    /// A hypercall failed.
    Hypercall(Errno),
    /// Xen answered with a GNTST_* status.
    Status(i16),
    /// The table is not set up ([`init`] failed or was not called).
    NotReady,
    /// Every grant reference is in use.
    Exhausted,
    /// The grantee still has the page mapped or in use; the grant stays.
    InUse,
    /// The frame number does not fit a v1 entry (32 bits).
    FrameTooBig(u64),
    /// A reference outside the table.
    BadRef(GrantRef),
}

impl fmt::Display for GnttabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GnttabError::Hypercall(e) => write!(f, "grant table hypercall failed: {e}"),
            GnttabError::Status(s) => {
                write!(f, "grant table operation failed: {}", status_name(*s))
            }
            GnttabError::NotReady => f.write_str("grant table not set up"),
            GnttabError::Exhausted => f.write_str("no free grant reference"),
            GnttabError::InUse => f.write_str("grant still in use by the other domain"),
            GnttabError::FrameTooBig(g) => write!(f, "frame {g:#x} does not fit a v1 grant"),
            GnttabError::BadRef(r) => write!(f, "grant reference {r} outside the table"),
        }
    }
}

/// The name of a GNTST_* status.
pub fn status_name(s: i16) -> &'static str {
    match s {
        gt::GNTST_OKAY => "GNTST_okay",
        gt::GNTST_GENERAL_ERROR => "GNTST_general_error",
        gt::GNTST_BAD_DOMAIN => "GNTST_bad_domain",
        gt::GNTST_BAD_GNTREF => "GNTST_bad_gntref",
        gt::GNTST_BAD_HANDLE => "GNTST_bad_handle",
        gt::GNTST_BAD_VIRT_ADDR => "GNTST_bad_virt_addr",
        gt::GNTST_BAD_DEV_ADDR => "GNTST_bad_dev_addr",
        gt::GNTST_NO_DEVICE_SPACE => "GNTST_no_device_space",
        gt::GNTST_PERMISSION_DENIED => "GNTST_permission_denied",
        gt::GNTST_BAD_PAGE => "GNTST_bad_page",
        gt::GNTST_BAD_COPY_ARG => "GNTST_bad_copy_arg",
        gt::GNTST_ADDRESS_TOO_BIG => "GNTST_address_too_big",
        gt::GNTST_EAGAIN => "GNTST_eagain",
        gt::GNTST_NO_SPACE => "GNTST_no_space",
        _ => "GNTST_unknown",
    }
}

/// A view of v1 grant entries in memory Xen also reads and writes.
pub struct Entries {
    base: *mut u8,
    count: u32,
}

// SAFETY: the entries are only accessed through atomics.
unsafe impl Send for Entries {}
// SAFETY: as above.
unsafe impl Sync for Entries {}

impl Entries {
    /// A view of `count` entries at `base`.
    ///
    /// # Safety
    /// `base` must be 8-byte aligned and valid for `count * 8` bytes for
    /// the life of the view, and used by nothing but Xen and this view.
    pub unsafe fn new(base: *mut u8, count: u32) -> Self {
        Entries { base, count }
    }

    /// Number of entries.
    pub fn count(&self) -> u32 {
        self.count
    }

    fn fields(&self, r: GrantRef) -> Result<(&AtomicU16, &AtomicU16, &AtomicU32), GnttabError> {
        if r >= self.count {
            return Err(GnttabError::BadRef(r));
        }
        let e = r as usize * gt::ENTRY_V1_SIZE;
        // SAFETY: `r < count`, so the entry is inside the region (see
        // `new`); the offsets are xen-abi's and naturally aligned; Xen
        // changes these words concurrently, hence atomics.
        unsafe {
            Ok((
                &*self.base.add(e + gt::ENTRY_FLAGS).cast::<AtomicU16>(),
                &*self.base.add(e + gt::ENTRY_DOMID).cast::<AtomicU16>(),
                &*self.base.add(e + gt::ENTRY_FRAME).cast::<AtomicU32>(),
            ))
        }
    }

    /// Grants `domid` access to frame `gfn` through entry `r`.
    pub fn grant(
        &self,
        r: GrantRef,
        domid: DomId,
        gfn: u64,
        readonly: bool,
    ) -> Result<(), GnttabError> {
        let frame = u32::try_from(gfn).map_err(|_| GnttabError::FrameTooBig(gfn))?;
        let (flags, d, f) = self.fields(r)?;
        d.store(domid, Ordering::Relaxed);
        f.store(frame, Ordering::Relaxed);
        let ro = if readonly { gt::GTF_READONLY } else { 0 };
        // Release: domid and frame are visible before the entry is valid.
        flags.store(gt::GTF_PERMIT_ACCESS | ro, Ordering::Release);
        Ok(())
    }

    /// Revokes entry `r` unless the grantee is using it (GTF_reading or
    /// GTF_writing set by Xen); returns whether it was revoked. An entry
    /// that is not a grant counts as revoked.
    pub fn revoke(&self, r: GrantRef) -> Result<bool, GnttabError> {
        let (flags, _, _) = self.fields(r)?;
        let mut cur = flags.load(Ordering::Acquire);
        loop {
            if cur & (gt::GTF_READING | gt::GTF_WRITING) != 0 {
                return Ok(false);
            }
            match flags.compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(true),
                Err(now) => cur = now,
            }
        }
    }

    /// The entry's current flags (for diagnostics and tests).
    pub fn flags(&self, r: GrantRef) -> Result<u16, GnttabError> {
        Ok(self.fields(r)?.0.load(Ordering::Acquire))
    }
}

/// Free references, a stack: the most recently freed is reused first,
/// which keeps a persistent-grant backend's working set small.
struct Table {
    entries: Entries,
    free: Vec<GrantRef>,
}

static TABLE: IrqMutex<Option<Table>> = IrqMutex::new(None);

/// The frames the table is placed over (see the module docs).
#[repr(C, align(4096))]
struct Frames(UnsafeCell<[[u8; 4096]; MAX_FRAMES]>);
// SAFETY: only reached through `Entries`, with atomics.
unsafe impl Sync for Frames {}
static FRAMES: Frames = Frames(UnsafeCell::new([[0; 4096]; MAX_FRAMES]));

/// `grant_table_op(cmd, arg, count)`.
///
/// # Safety
/// `arg` must point to `count` structures of the type `cmd` expects.
unsafe fn grant_table_op<T>(cmd: u32, arg: *mut T, count: u32) -> Result<u64, Errno> {
    if !hypercall::ready() {
        return Err(Errno(xen_abi::errno::ENOSYS));
    }
    // SAFETY: forwarded to the caller; the hypercall page is installed.
    Errno::check(unsafe {
        hypercall::hypercall3(
            xen_abi::hypercall::GRANT_TABLE_OP,
            cmd as u64,
            arg as u64,
            count as u64,
        )
    })
}

/// GNTTABOP_query_size for this domain: (current frames, maximum frames).
pub fn query_size() -> Result<(u32, u32), GnttabError> {
    let mut q = gt::QuerySize {
        dom: xen_abi::DOMID_SELF,
        ..Default::default()
    };
    // SAFETY: one struct gnttab_query_size.
    unsafe { grant_table_op(gt::GNTTABOP_QUERY_SIZE, &mut q, 1) }
        .map_err(GnttabError::Hypercall)?;
    if q.status != gt::GNTST_OKAY {
        return Err(GnttabError::Status(q.status));
    }
    Ok((q.nr_frames, q.max_nr_frames))
}

/// Sets the table up (idempotent); returns the number of entries.
pub fn init() -> Result<u32, GnttabError> {
    if let Some(t) = TABLE.lock().as_ref() {
        return Ok(t.entries.count());
    }
    // v1 is every domain's default; asking explicitly undoes a v2 choice a
    // previous kernel in this domain may have made. Failure is harmless
    // (Xen without v2 support, or our hypervisor's v1-only table).
    let mut v = gt::SetVersion { version: 1 };
    // SAFETY: one struct gnttab_set_version.
    if let Err(e) = unsafe { grant_table_op(gt::GNTTABOP_SET_VERSION, &mut v, 1) } {
        log::debug!("gnttab: set_version(1): {e}");
    }
    let want = match query_size() {
        Ok((_, max)) => (max as usize).clamp(1, MAX_FRAMES),
        Err(e) => {
            log::debug!("gnttab: query_size: {e}; trying {MAX_FRAMES} frames");
            MAX_FRAMES
        }
    };
    let base = FRAMES.0.get() as *mut u8;
    // Fewer frames if Xen refuses that many (halving: PV's setup_table
    // fails as a whole past the domain's limit).
    let mut mapped = want;
    loop {
        // SAFETY: FRAMES is page-aligned BSS reserved for the grant table
        // and only reached through `Entries`, so Xen's frames replacing it
        // invalidate nothing Rust uses.
        match unsafe { crate::arch::map_grant_frames(base, mapped as u32) } {
            Ok(()) => break,
            Err(e) if mapped > 1 => {
                log::debug!("gnttab: {mapped} frames: {e}; trying fewer");
                mapped /= 2;
            }
            Err(e) => return Err(GnttabError::Hypercall(e)),
        }
    }
    let count = mapped as u32 * ENTRIES_PER_FRAME;
    // SAFETY: FRAMES is page-aligned, `mapped` frames long, and used only
    // by Xen and this view.
    let entries = unsafe { Entries::new(base, count) };
    // Reserved entries (console, xenstore) are the toolstack's; pushed in
    // reverse so the lowest references come out first.
    let free: Vec<GrantRef> = (gt::GNTTAB_NR_RESERVED_ENTRIES..count).rev().collect();
    let mut t = TABLE.lock();
    if t.is_none() {
        *t = Some(Table { entries, free });
    }
    log::debug!("gnttab: {mapped} frames at {base:p}, {count} entries");
    Ok(count)
}

/// Where the grant table is placed: the address of its first frame and how
/// many frames (`None` before [`init`]). The hand-off moves them.
pub fn mapped_frames() -> Option<(u64, u32)> {
    let t = TABLE.lock();
    let t = t.as_ref()?;
    Some((FRAMES.0.get() as u64, t.entries.count() / ENTRIES_PER_FRAME))
}

fn with_table<R>(f: impl FnOnce(&mut Table) -> Result<R, GnttabError>) -> Result<R, GnttabError> {
    if TABLE.lock().is_none() {
        init()?;
    }
    let mut t = TABLE.lock();
    f(t.as_mut().ok_or(GnttabError::NotReady)?)
}

/// Takes a free reference without granting anything yet.
pub fn alloc_ref() -> Result<GrantRef, GnttabError> {
    with_table(|t| t.free.pop().ok_or(GnttabError::Exhausted))
}

/// Returns a reference whose grant was ended (or never made).
pub fn free_ref(r: GrantRef) {
    let _ = with_table(|t| {
        if r >= gt::GNTTAB_NR_RESERVED_ENTRIES && r < t.entries.count() {
            t.free.push(r);
        }
        Ok(())
    });
}

/// Free references left.
pub fn free_count() -> usize {
    TABLE.lock().as_ref().map_or(0, |t| t.free.len())
}

/// Grants `domid` access to frame `gfn` through the already allocated `r`.
pub fn grant_access_ref(
    r: GrantRef,
    domid: DomId,
    gfn: u64,
    readonly: bool,
) -> Result<(), GnttabError> {
    with_table(|t| t.entries.grant(r, domid, gfn, readonly))
}

/// Grants `domid` access to frame `gfn` with a new reference.
pub fn grant_access(domid: DomId, gfn: u64, readonly: bool) -> Result<GrantRef, GnttabError> {
    with_table(|t| {
        let r = t.free.pop().ok_or(GnttabError::Exhausted)?;
        match t.entries.grant(r, domid, gfn, readonly) {
            Ok(()) => Ok(r),
            Err(e) => {
                t.free.push(r);
                Err(e)
            }
        }
    })
}

/// Ends the grant `r` but keeps the reference allocated (for reuse).
/// Fails with [`GnttabError::InUse`] while the grantee uses the page.
pub fn revoke(r: GrantRef) -> Result<(), GnttabError> {
    with_table(|t| match t.entries.revoke(r)? {
        true => Ok(()),
        false => Err(GnttabError::InUse),
    })
}

/// Ends the grant `r` and frees the reference. While the grantee still
/// uses the page it fails with [`GnttabError::InUse`], leaving the grant in
/// place: the caller must not reuse the page and should try again later.
pub fn end_access(r: GrantRef) -> Result<(), GnttabError> {
    with_table(|t| {
        if !t.entries.revoke(r)? {
            return Err(GnttabError::InUse);
        }
        t.free.push(r);
        Ok(())
    })
}

/// GNTTABOP_copy: performs `ops` (at most a page at each end per op).
/// Fails with the first op's non-zero status.
pub fn copy(ops: &mut [CopyOp]) -> Result<(), GnttabError> {
    if ops.is_empty() {
        return Ok(());
    }
    let count =
        u32::try_from(ops.len()).map_err(|_| GnttabError::Status(gt::GNTST_BAD_COPY_ARG))?;
    // SAFETY: `ops` is `count` struct gnttab_copy, live for the call.
    unsafe { grant_table_op(gt::GNTTABOP_COPY, ops.as_mut_ptr(), count) }
        .map_err(GnttabError::Hypercall)?;
    match ops.iter().find(|o| o.status != gt::GNTST_OKAY) {
        Some(o) => Err(GnttabError::Status(o.status)),
        None => Ok(()),
    }
}

/// The frame number a grant of our page at `addr` carries: the guest frame
/// (PVH: virtual = guest physical), or the machine frame behind the
/// pseudo-physical one (PV, from the p2m list). `None` for an address
/// outside our RAM.
pub fn frame_of(addr: usize) -> Option<u64> {
    let pfn = addr as u64 >> xen_abi::PAGE_SHIFT;
    #[cfg(target_os = "none")]
    if crate::arch::mode() == crate::arch::Mode::Pv {
        return crate::arch::pv::mm::p2m(pfn);
    }
    Some(pfn)
}

/// The frame number of `addr` for a grant ([`frame_of`]), or an
/// impossible frame (which every grant call refuses) when it has none.
pub fn virt_to_gfn(addr: usize) -> u64 {
    frame_of(addr).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);

    #[test]
    fn grant_writes_the_v1_entry() {
        let mut page = Box::new(Page([0; 4096]));
        // SAFETY: the boxed page outlives the view and nothing else uses it.
        let e = unsafe { Entries::new(page.0.as_mut_ptr(), 512) };
        e.grant(9, 0, 0x1234, true).unwrap();
        e.grant(10, 7, 0xfffff, false).unwrap();
        assert_eq!(e.grant(512, 0, 1, false), Err(GnttabError::BadRef(512)));
        assert_eq!(
            e.grant(11, 0, 1 << 32, false),
            Err(GnttabError::FrameTooBig(1 << 32))
        );
        let ent = &page.0[9 * 8..9 * 8 + 8];
        assert_eq!(
            u16::from_le_bytes([ent[0], ent[1]]),
            gt::GTF_PERMIT_ACCESS | gt::GTF_READONLY
        );
        assert_eq!(u16::from_le_bytes([ent[2], ent[3]]), 0);
        assert_eq!(u32::from_le_bytes([ent[4], ent[5], ent[6], ent[7]]), 0x1234);
        let ent = &page.0[80..88];
        assert_eq!(u16::from_le_bytes([ent[0], ent[1]]), gt::GTF_PERMIT_ACCESS);
        assert_eq!(u16::from_le_bytes([ent[2], ent[3]]), 7);
    }

    #[test]
    fn revoke_refuses_while_mapped() {
        let mut page = Box::new(Page([0; 4096]));
        // SAFETY: as above.
        let e = unsafe { Entries::new(page.0.as_mut_ptr(), 512) };
        e.grant(8, 0, 5, false).unwrap();
        // Xen marks the entry in use while the backend has it mapped.
        let (flags, _, _) = e.fields(8).unwrap();
        flags.fetch_or(gt::GTF_WRITING, Ordering::SeqCst);
        assert_eq!(e.revoke(8), Ok(false));
        assert_ne!(
            e.flags(8).unwrap() & gt::GTF_PERMIT_ACCESS,
            0,
            "grant stays"
        );
        flags.fetch_and(!gt::GTF_WRITING, Ordering::SeqCst);
        flags.fetch_or(gt::GTF_READING, Ordering::SeqCst);
        assert_eq!(e.revoke(8), Ok(false));
        flags.fetch_and(!gt::GTF_READING, Ordering::SeqCst);
        assert_eq!(e.revoke(8), Ok(true));
        assert_eq!(e.flags(8).unwrap(), 0);
        assert_eq!(e.revoke(8), Ok(true), "an empty entry counts as revoked");
        assert_eq!(page.0[64], 0);
    }

    #[test]
    fn host_has_no_table() {
        assert!(matches!(init(), Err(GnttabError::Hypercall(_))));
        assert!(matches!(
            grant_access(0, 1, false),
            Err(GnttabError::Hypercall(_))
        ));
        assert_eq!(status_name(gt::GNTST_BAD_GNTREF), "GNTST_bad_gntref");
        assert_eq!(virt_to_gfn(0x12345678), 0x12345);
    }
}
