//! Grant tables, version 1 (Xen's common/grant_table.c, for one HVM/PVH
//! domain whose only peer is the backends acting as domain 0).
//!
//! A guest grants a backend access to one of its pages by filling an entry
//! `{flags, domid, frame}` in its grant table. The table's frames are
//! Xen-owned pages the guest maps into its physical address space with
//! XENMEM_add_to_physmap(XENMAPSPACE_grant_table, idx, gpfn), as Linux, GRUB
//! and every PVH guest do.
//!
//! Where a frame lives is the physmap's business ([`super::physmap`]): a
//! frame placed on a RAM page frees that page, a frame moved away leaves a
//! hole, and its content goes with it, as in Xen. The table only records
//! where each frame currently is ([`GrantTable::set_frame`]). Frames grown
//! by setup_table but never mapped have no storage: their entries read as
//! "no grant", which is what the guest could observe on Xen too (it cannot
//! write them).
//!
//! Backends reach a granted page only through [`GrantTable::map`], which
//! checks the entry (type GTF_permit_access, `domid` = the backend's domain,
//! GTF_readonly against a write, frame in the guest's own memory) and sets
//! GTF_reading / GTF_writing with a bounded compare-exchange on the flags
//! word, exactly as Xen's `_set_status_v1`; [`GrantTable::unmap`] clears
//! them when the last use ends. [`GrantTable::check`] re-validates a held
//! mapping before each use, so a guest that revokes or corrupts a grant in
//! use gets an error on that request only.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard, RwLock};

use xen_abi::errno::*;
use xen_abi::grant_table::*;
use xen_abi::{DomId, DOMID_SELF, PAGE_SIZE};

use super::domain::Domain;
use super::guest_access::GuestView;
use crate::vstate::memory::GuestRam;

/// Bit of an add_to_physmap index that selects a v2 status frame.
const XENMAPIDX_GRANT_TABLE_STATUS: u64 = 1 << 31;
/// The gfn setup_table reports for a frame not mapped anywhere (INVALID_GFN).
const INVALID_GFN: u64 = u64::MAX;
/// Xen gives up on a grant entry the guest keeps changing after this many
/// failed compare-exchanges.
const CMPXCHG_RETRIES: u32 = 5;

/// Why a grant could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// The reference is beyond the table, or in a frame the guest never mapped.
    #[error("grant reference {gref} is outside the grant table")]
    BadRef {
        /// The reference.
        gref: u32,
    },
    /// The entry does not permit access (wrong type or no grant at all).
    #[error("grant reference {gref} does not permit access (flags {flags:#x})")]
    NotPermitted {
        /// The reference.
        gref: u32,
        /// The entry's flags.
        flags: u16,
    },
    /// The entry grants access to another domain.
    #[error("grant reference {gref} is for domain {domid}, not {expected}")]
    WrongDomain {
        /// The reference.
        gref: u32,
        /// The domain in the entry.
        domid: u16,
        /// The domain that tried to use it.
        expected: u16,
    },
    /// A write through a read-only grant.
    #[error("grant reference {gref} is read-only")]
    ReadOnly {
        /// The reference.
        gref: u32,
    },
    /// The granted frame is not a page of the guest's memory.
    #[error("grant reference {gref} names frame {frame:#x}, which is not guest memory")]
    BadFrame {
        /// The reference.
        gref: u32,
        /// The frame number in the entry.
        frame: u32,
    },
    /// The guest kept changing the entry while it was being pinned.
    #[error("grant reference {gref} is unstable")]
    Unstable {
        /// The reference.
        gref: u32,
    },
    /// A mapping in use no longer matches its entry (revoked or changed).
    #[error("grant reference {gref} was revoked or changed while in use")]
    Revoked {
        /// The reference.
        gref: u32,
    },
}

impl GrantError {
    /// The GNTST_* status Xen reports for this failure.
    pub fn status(&self) -> i16 {
        match self {
            GrantError::BadRef { .. } => GNTST_BAD_GNTREF,
            GrantError::BadFrame { .. } => GNTST_BAD_PAGE,
            _ => GNTST_GENERAL_ERROR,
        }
    }
}

/// A pinned grant: the guest page a backend may access until it calls
/// [`GrantTable::unmap`]. Not `Clone`: each mapping is unmapped once.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a mapped grant stays pinned until unmapped"]
pub struct MappedGrant {
    gref: u32,
    gpa: u64,
    frame: u32,
    writable: bool,
    grantee: DomId,
}

impl MappedGrant {
    /// The grant reference.
    pub fn gref(&self) -> u32 {
        self.gref
    }

    /// Guest-physical address of the granted page.
    pub fn gpa(&self) -> u64 {
        self.gpa
    }

    /// Whether the backend may write the page.
    pub fn writable(&self) -> bool {
        self.writable
    }
}

struct Frames {
    /// Current number of frames (grows, never shrinks).
    nr_frames: u32,
    /// Guest-physical address of each frame, if mapped.
    at: Vec<Option<u64>>,
}

/// Use counts of a pinned entry (Xen's active grant entry).
#[derive(Clone, Copy, Debug)]
struct Active {
    gpa: u64,
    frame: u32,
    grantee: DomId,
    pins: u32,
    writers: u32,
}

/// A domain's grant table.
pub struct GrantTable {
    frames: RwLock<Frames>,
    active: Mutex<HashMap<u32, Active>>,
    max_frames: u32,
}

impl Default for GrantTable {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_GRANT_FRAMES)
    }
}

impl GrantTable {
    /// An empty v1 table of INITIAL_NR_GRANT_FRAMES frames that may grow to `max_frames`.
    pub fn new(max_frames: u32) -> Self {
        GrantTable {
            frames: RwLock::new(Frames { nr_frames: INITIAL_NR_GRANT_FRAMES.min(max_frames), at: Vec::new() }),
            active: Mutex::new(HashMap::new()),
            max_frames,
        }
    }

    /// The current and maximum number of frames.
    pub fn size(&self) -> (u32, u32) {
        (self.read_frames().nr_frames, self.max_frames)
    }

    fn read_frames(&self) -> std::sync::RwLockReadGuard<'_, Frames> {
        self.frames.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_frames(&self) -> std::sync::RwLockWriteGuard<'_, Frames> {
        self.frames.write().unwrap_or_else(|e| e.into_inner())
    }

    fn active(&self) -> MutexGuard<'_, HashMap<u32, Active>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Guest address of entry `gref`, if its frame is mapped.
    fn entry_addr(frames: &Frames, gref: u32) -> Result<u64, GrantError> {
        let idx = gref / ENTRIES_PER_FRAME_V1;
        if idx >= frames.nr_frames {
            return Err(GrantError::BadRef { gref });
        }
        let frame = frames.at.get(idx as usize).copied().flatten().ok_or(GrantError::BadRef { gref })?;
        Ok(frame + u64::from(gref % ENTRIES_PER_FRAME_V1) * ENTRY_V1_SIZE as u64)
    }

    /// Pins grant `gref` for domain `grantee` (0 for the backends): checks
    /// the entry and sets GTF_reading (and GTF_writing if `writable`), as
    /// Xen's map_grant_ref / acquire_grant_for_copy do.
    pub fn map(&self, ram: &GuestRam, gref: u32, writable: bool, grantee: DomId) -> Result<MappedGrant, GrantError> {
        let frames = self.read_frames();
        let entry = Self::entry_addr(&frames, gref)?;
        let word = ram.atomic_u32(entry).map_err(|_| GrantError::BadRef { gref })?;
        let mut active = self.active();
        let existing = active.get(&gref).copied();
        if let Some(act) = existing {
            if act.grantee != grantee {
                return Err(GrantError::WrongDomain { gref, domid: act.grantee, expected: grantee });
            }
            if writable && act.writers == 0 {
                set_status(word, gref, writable, grantee, true)?;
            }
            let act = active.get_mut(&gref).expect("present");
            act.pins += 1;
            act.writers += u32::from(writable);
            return Ok(MappedGrant { gref, gpa: act.gpa, frame: act.frame, writable, grantee });
        }
        set_status(word, gref, writable, grantee, false)?;
        // Xen reads the frame after pinning, so the guest cannot swap it in between.
        let frame = ram.read_obj::<u32>(entry + ENTRY_FRAME as u64).unwrap_or(u32::MAX);
        let gpa = u64::from(frame) << 12;
        if !ram.is_ram(gpa, PAGE_SIZE) {
            clear_flags(word, GTF_READING | if writable { GTF_WRITING } else { 0 });
            return Err(GrantError::BadFrame { gref, frame });
        }
        active.insert(gref, Active { gpa, frame, grantee, pins: 1, writers: u32::from(writable) });
        Ok(MappedGrant { gref, gpa, frame, writable, grantee })
    }

    /// Checks that a held mapping still matches its entry: still a grant to
    /// the same domain of the same frame, still writable if mapped so.
    /// Backends call it before each use of a long-lived mapping.
    pub fn check(&self, ram: &GuestRam, m: &MappedGrant) -> Result<(), GrantError> {
        let frames = self.read_frames();
        let entry = Self::entry_addr(&frames, m.gref).map_err(|_| GrantError::Revoked { gref: m.gref })?;
        let raw = ram.atomic_u32(entry).map_err(|_| GrantError::Revoked { gref: m.gref })?.load(Ordering::Acquire);
        let (flags, domid) = (raw as u16, (raw >> 16) as u16);
        let frame = ram.read_obj::<u32>(entry + ENTRY_FRAME as u64).unwrap_or(u32::MAX);
        let ok = flags & GTF_TYPE_MASK == GTF_PERMIT_ACCESS
            && domid == m.grantee
            && frame == m.frame
            && !(m.writable && flags & GTF_READONLY != 0);
        if ok {
            Ok(())
        } else {
            Err(GrantError::Revoked { gref: m.gref })
        }
    }

    /// Releases a mapping; the last one clears GTF_writing / GTF_reading.
    pub fn unmap(&self, ram: &GuestRam, m: MappedGrant) {
        let frames = self.read_frames();
        let mut active = self.active();
        let Some(act) = active.get_mut(&m.gref) else { return };
        act.pins = act.pins.saturating_sub(1);
        if m.writable {
            act.writers = act.writers.saturating_sub(1);
        }
        let mut clear = 0;
        if m.writable && act.writers == 0 {
            clear |= GTF_WRITING;
        }
        if act.pins == 0 {
            clear |= GTF_READING | GTF_WRITING;
            active.remove(&m.gref);
        }
        if clear != 0 {
            // A frame the guest unmapped meanwhile has no entry to clear.
            if let Ok(entry) = Self::entry_addr(&frames, m.gref) {
                if let Ok(word) = ram.atomic_u32(entry) {
                    clear_flags(word, clear);
                }
            }
        }
    }

    /// Number of grants currently pinned (for tests and teardown checks).
    pub fn pinned(&self) -> usize {
        self.active().len()
    }

    /// Checks an XENMAPSPACE_grant_table index for XENMEM_add_to_physmap
    /// (Xen's gnttab_map_frame): a v1 frame below the maximum; the table
    /// grows to hold it. Returns the frame index.
    pub fn frame_index(&self, idx: u64) -> Result<u32, i64> {
        if idx & XENMAPIDX_GRANT_TABLE_STATUS != 0 {
            return Err(EINVAL); // status frames exist in v2 only
        }
        let idx = u32::try_from(idx).map_err(|_| EINVAL)?;
        if idx >= self.max_frames {
            return Err(EINVAL);
        }
        Ok(idx)
    }

    /// Records where frame `idx` is now (None: not mapped anywhere).
    pub fn set_frame(&self, idx: u32, gpa: Option<u64>) {
        let mut frames = self.write_frames();
        if frames.at.len() <= idx as usize {
            frames.at.resize(idx as usize + 1, None);
        }
        frames.at[idx as usize] = gpa;
        if gpa.is_some() {
            frames.nr_frames = frames.nr_frames.max(idx + 1);
        }
    }

    /// The gfn of each of the first `n` frames (INVALID_GFN if unmapped).
    fn frame_gfns(&self, n: u32) -> Vec<u64> {
        let frames = self.read_frames();
        (0..n).map(|i| frames.at.get(i as usize).copied().flatten().map_or(INVALID_GFN, |gpa| gpa >> 12)).collect()
    }

    /// Grows the table to `n` frames (setup_table); false if over the limit.
    fn grow(&self, n: u32) -> bool {
        if n > self.max_frames {
            return false;
        }
        let mut frames = self.write_frames();
        frames.nr_frames = frames.nr_frames.max(n);
        true
    }
}

/// Sets GTF_reading (and GTF_writing) in an entry after checking it, with a
/// bounded compare-exchange loop (Xen's `_set_status_v1`). `pinned` skips
/// the type/domain check for an entry already in use, as Xen does.
fn set_status(
    word: &std::sync::atomic::AtomicU32,
    gref: u32,
    writable: bool,
    grantee: DomId,
    pinned: bool,
) -> Result<(), GrantError> {
    let mut cur = word.load(Ordering::Acquire);
    for _ in 0..CMPXCHG_RETRIES {
        let (flags, domid) = (cur as u16, (cur >> 16) as u16);
        if !pinned {
            if flags & (GTF_TYPE_MASK | GTF_SUB_PAGE) != GTF_PERMIT_ACCESS {
                return Err(GrantError::NotPermitted { gref, flags });
            }
            if domid != grantee {
                return Err(GrantError::WrongDomain { gref, domid, expected: grantee });
            }
        }
        let mut new = flags | GTF_READING;
        if writable {
            if flags & GTF_READONLY != 0 {
                return Err(GrantError::ReadOnly { gref });
            }
            new |= GTF_WRITING;
        }
        let new_raw = (cur & 0xffff_0000) | u32::from(new);
        match word.compare_exchange(cur, new_raw, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(()),
            Err(actual) => cur = actual,
        }
    }
    Err(GrantError::Unstable { gref })
}

/// Clears flag bits atomically (gnttab_clear_flags), leaving the rest of the
/// entry to whatever the guest wrote meanwhile.
fn clear_flags(word: &std::sync::atomic::AtomicU32, bits: u16) {
    word.fetch_and(!u32::from(bits), Ordering::AcqRel);
}

type HcResult = Result<i64, i64>;

/// Whether `dom` names the caller.
fn is_self(dom: &Domain, domid: u16) -> bool {
    domid == DOMID_SELF || domid == dom.info.domid
}

/// The grant_table_op hypercall.
pub fn grant_table_op(dom: &Domain, g: &GuestView<'_, '_>, cmd: u32, uop: u64, count: u32) -> HcResult {
    if (count as i32) < 0 {
        return Err(EINVAL);
    }
    // Continuation bits are only ever set by Xen itself; we never create any.
    if cmd & !GNTTABOP_CMD_MASK != 0 {
        return Err(EINVAL);
    }
    match cmd {
        GNTTABOP_QUERY_SIZE => {
            if count != 1 {
                return Err(EINVAL);
            }
            let mut op: QuerySize = g.read_obj(uop)?;
            if is_self(dom, op.dom) {
                (op.nr_frames, op.max_nr_frames) = dom.gnttab.size();
                op.status = GNTST_OKAY;
            } else {
                op.status = GNTST_BAD_DOMAIN;
            }
            g.write_obj(uop, &op)?;
            Ok(0)
        }
        GNTTABOP_SETUP_TABLE => setup_table(dom, g, uop, count),
        GNTTABOP_SET_VERSION => {
            let mut op: SetVersion = g.read_obj(uop)?;
            let rc = match op.version {
                1 => Ok(0),
                // Xen's answer when v2 is disabled (max_version 1): behave
                // as before set_version existed.
                2 => Err(ENOSYS),
                _ => Err(EINVAL),
            };
            op.version = 1;
            g.write_obj(uop, &op)?;
            rc
        }
        GNTTABOP_GET_VERSION => {
            let mut op: GetVersion = g.read_obj(uop)?;
            if !is_self(dom, op.dom) {
                return Err(ESRCH);
            }
            op.version = 1;
            g.write_obj(uop, &op)?;
            Ok(0)
        }
        GNTTABOP_COPY => {
            for i in 0..u64::from(count) {
                copy_one(dom, g, uop, i)?;
            }
            Ok(0)
        }
        // Removed from Xen long ago (4.17 answers -ENOSYS too), but GRUB's
        // blkfront calls it for every disk: answer without the
        // unimplemented-hypercall warning.
        GNTTABOP_DUMP_TABLE => Ok(-ENOSYS),
        // There is no other domain whose grants this one could map.
        _ => Err(ENOSYS),
    }
}

fn setup_table(dom: &Domain, g: &GuestView<'_, '_>, uop: u64, count: u32) -> HcResult {
    if count != 1 {
        return Err(EINVAL);
    }
    // compat: dom u16, pad, nr_frames u32, status i16, pad, frame_list u32.
    let (domid, nr_frames, list, entry) = if g.compat() {
        let mut raw = [0u8; COMPAT_SETUP_TABLE_SIZE];
        g.read(uop, &mut raw)?;
        let u32_at = |o: usize| u32::from_le_bytes([raw[o], raw[o + 1], raw[o + 2], raw[o + 3]]);
        (u16::from_le_bytes([raw[0], raw[1]]), u32_at(4), u64::from(u32_at(12)), 4usize)
    } else {
        let op: SetupTable = g.read_obj(uop)?;
        (op.dom, op.nr_frames, op.frame_list, 8usize)
    };
    let status = if !is_self(dom, domid) {
        GNTST_BAD_DOMAIN
    } else if !dom.gnttab.grow(nr_frames) {
        log::debug!("domain {}: setup_table of {nr_frames} frames refused (max {})", dom.info.domid, dom.gnttab.max_frames);
        GNTST_GENERAL_ERROR
    } else {
        let mut st = GNTST_OKAY;
        for (i, gfn) in dom.gnttab.frame_gfns(nr_frames).into_iter().enumerate() {
            let bytes = gfn.to_le_bytes();
            if list.checked_add((i * entry) as u64).is_none_or(|at| g.write(at, &bytes[..entry]).is_err()) {
                st = GNTST_BAD_VIRT_ADDR;
                break;
            }
        }
        st
    };
    g.write_obj_at(uop, SETUP_TABLE_STATUS as u64, &(status as u16))?;
    Ok(0)
}

/// One GNTTABOP_copy element: between the caller's own frames and grants
/// in its own table (a domU has no other peer here).
fn copy_one(dom: &Domain, g: &GuestView<'_, '_>, uop: u64, i: u64) -> Result<(), i64> {
    let (op, at, status_at) = if g.compat() {
        let at = uop.checked_add(i * COMPAT_COPY_SIZE as u64).ok_or(EFAULT)?;
        let mut raw = [0u8; COMPAT_COPY_SIZE];
        g.read(at, &mut raw)?;
        (Copy::from_compat(&raw), at, COMPAT_COPY_STATUS)
    } else {
        let at = uop.checked_add(i * std::mem::size_of::<Copy>() as u64).ok_or(EFAULT)?;
        (g.read_obj::<Copy>(at)?, at, COPY_STATUS)
    };
    let status = copy(dom, &op);
    g.write_obj_at(at, status_at as u64, &(status as u16))
}

fn copy(dom: &Domain, op: &Copy) -> i16 {
    if op.len == 0 {
        return GNTST_OKAY;
    }
    let resolve = |p: &CopyPtr, is_gref: bool, writable: bool| -> Result<(u64, Option<MappedGrant>), i16> {
        // Only DOMID_SELF may name a frame directly (gnttab_copy_lock_domain).
        if p.domid != DOMID_SELF && !is_gref {
            return Err(GNTST_PERMISSION_DENIED);
        }
        if !is_self(dom, p.domid) {
            return Err(GNTST_BAD_DOMAIN);
        }
        if is_gref {
            let gref = u32::try_from(p.u).map_err(|_| GNTST_BAD_GNTREF)?;
            let m = dom.gnttab.map(&dom.ram, gref, writable, dom.info.domid).map_err(|e| e.status())?;
            Ok((m.gpa(), Some(m)))
        } else {
            let gpa = p.u.checked_mul(PAGE_SIZE as u64).ok_or(GNTST_BAD_PAGE)?;
            if !dom.ram.is_ram(gpa, PAGE_SIZE) {
                return Err(GNTST_BAD_PAGE);
            }
            Ok((gpa, None))
        }
    };
    if usize::from(op.source.offset) + usize::from(op.len) > PAGE_SIZE
        || usize::from(op.dest.offset) + usize::from(op.len) > PAGE_SIZE
    {
        return GNTST_BAD_COPY_ARG;
    }
    let (src, src_map) = match resolve(&op.source, op.flags & GNTCOPY_SOURCE_GREF != 0, false) {
        Ok(x) => x,
        Err(st) => return st,
    };
    let (dst, dst_map) = match resolve(&op.dest, op.flags & GNTCOPY_DEST_GREF != 0, true) {
        Ok(x) => x,
        Err(st) => {
            if let Some(m) = src_map {
                dom.gnttab.unmap(&dom.ram, m);
            }
            return st;
        }
    };
    let mut buf = vec![0u8; usize::from(op.len)];
    let ok = dom.ram.read(src + u64::from(op.source.offset), &mut buf).is_ok()
        && dom.ram.write(dst + u64::from(op.dest.offset), &buf).is_ok();
    for m in [src_map, dst_map].into_iter().flatten() {
        dom.gnttab.unmap(&dom.ram, m);
    }
    if ok {
        GNTST_OKAY
    } else {
        GNTST_GENERAL_ERROR
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RAM [0, 1 MiB); grant frame 0 on the RAM page at 0x10000.
    fn table() -> (GuestRam, GrantTable) {
        let ram = GuestRam::new(&[(0, 0x10_0000)]).unwrap();
        let gt = GrantTable::new(4);
        gt.set_frame(0, Some(0x10000));
        (ram, gt)
    }

    fn grant(ram: &GuestRam, gref: u32, flags: u16, domid: u16, frame: u32) {
        let e = 0x10000 + u64::from(gref) * 8;
        ram.write_obj(e + 4, &frame).unwrap();
        ram.write_obj(e + 2, &domid).unwrap();
        ram.write_obj(e, &flags).unwrap();
    }

    fn flags(ram: &GuestRam, gref: u32) -> u16 {
        ram.read_obj(0x10000 + u64::from(gref) * 8).unwrap()
    }

    #[test]
    fn checks_type_domain_readonly_and_frame() {
        let (ram, gt) = table();
        grant(&ram, 8, GTF_PERMIT_ACCESS, 0, 0x20);
        grant(&ram, 9, GTF_PERMIT_ACCESS, 5, 0x20);
        grant(&ram, 10, GTF_INVALID, 0, 0x20);
        grant(&ram, 11, GTF_PERMIT_ACCESS | GTF_READONLY, 0, 0x20);
        grant(&ram, 12, GTF_PERMIT_ACCESS, 0, 0x1000); // beyond RAM
        grant(&ram, 13, GTF_ACCEPT_TRANSFER, 0, 0x20);
        assert_eq!(gt.map(&ram, 9, false, 0), Err(GrantError::WrongDomain { gref: 9, domid: 5, expected: 0 }));
        assert_eq!(gt.map(&ram, 10, false, 0), Err(GrantError::NotPermitted { gref: 10, flags: 0 }));
        assert!(matches!(gt.map(&ram, 13, false, 0), Err(GrantError::NotPermitted { .. })));
        assert_eq!(gt.map(&ram, 11, true, 0), Err(GrantError::ReadOnly { gref: 11 }));
        assert_eq!(flags(&ram, 11), GTF_PERMIT_ACCESS | GTF_READONLY, "refusal leaves flags alone");
        assert_eq!(gt.map(&ram, 12, false, 0), Err(GrantError::BadFrame { gref: 12, frame: 0x1000 }));
        assert_eq!(flags(&ram, 12), GTF_PERMIT_ACCESS, "status undone");
        assert_eq!(gt.map(&ram, 512, false, 0), Err(GrantError::BadRef { gref: 512 }), "frame 1 not mapped");
        assert_eq!(gt.map(&ram, 4 * 512, false, 0), Err(GrantError::BadRef { gref: 2048 }));
        let r = gt.map(&ram, 11, false, 0).unwrap();
        assert_eq!(r.gpa(), 0x20000);
        assert_eq!(flags(&ram, 11), GTF_PERMIT_ACCESS | GTF_READONLY | GTF_READING);
        gt.unmap(&ram, r);
        let w = gt.map(&ram, 8, true, 0).unwrap();
        assert_eq!(flags(&ram, 8), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
        gt.unmap(&ram, w);
        assert_eq!(flags(&ram, 8), GTF_PERMIT_ACCESS);
        assert_eq!(gt.pinned(), 0);
    }

    #[test]
    fn pins_are_counted_and_the_last_unmap_clears() {
        let (ram, gt) = table();
        grant(&ram, 8, GTF_PERMIT_ACCESS, 0, 0x20);
        let a = gt.map(&ram, 8, false, 0).unwrap();
        let b = gt.map(&ram, 8, true, 0).unwrap();
        assert_eq!(flags(&ram, 8), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
        gt.unmap(&ram, b);
        assert_eq!(flags(&ram, 8), GTF_PERMIT_ACCESS | GTF_READING, "writer gone, reader stays");
        // The guest changing the frame under a pin does not move the mapping.
        ram.write_obj(0x10000 + 8 * 8 + 4, &0x30u32).unwrap();
        let c = gt.map(&ram, 8, false, 0).unwrap();
        assert_eq!(c.gpa(), 0x20000);
        assert_eq!(gt.check(&ram, &c), Err(GrantError::Revoked { gref: 8 }), "but a check sees the change");
        gt.unmap(&ram, a);
        gt.unmap(&ram, c);
        assert_eq!(flags(&ram, 8), GTF_PERMIT_ACCESS);
    }

    #[test]
    fn revocation_is_seen_by_check() {
        let (ram, gt) = table();
        grant(&ram, 8, GTF_PERMIT_ACCESS, 0, 0x20);
        let m = gt.map(&ram, 8, true, 0).unwrap();
        assert_eq!(gt.check(&ram, &m), Ok(()));
        ram.write_obj(0x10000 + 8 * 8, &GTF_READONLY).unwrap();
        assert_eq!(gt.check(&ram, &m), Err(GrantError::Revoked { gref: 8 }));
        grant(&ram, 8, GTF_PERMIT_ACCESS | GTF_READONLY, 0, 0x20);
        assert!(gt.check(&ram, &m).is_err(), "made read-only under a write mapping");
        gt.unmap(&ram, m);
    }

    #[test]
    fn frames_are_found_where_the_physmap_put_them() {
        let (ram, gt) = table();
        grant(&ram, 8, GTF_PERMIT_ACCESS, 0, 0x20);
        assert_eq!(gt.size(), (1, 4));
        assert_eq!(gt.frame_index(2), Ok(2));
        assert_eq!(gt.frame_index(4), Err(EINVAL), "beyond max");
        assert_eq!(gt.frame_index(XENMAPIDX_GRANT_TABLE_STATUS), Err(EINVAL), "v2 status frames");
        gt.set_frame(2, Some(0x12000));
        assert_eq!(gt.size(), (3, 4), "mapping frame 2 grows the table");
        // Frame 0 unhooked (displaced or moved): its grants are unreachable.
        gt.set_frame(0, None);
        assert_eq!(gt.map(&ram, 8, false, 0), Err(GrantError::BadRef { gref: 8 }));
        ram.write(0x14000, &[0; 64]).unwrap();
        ram.write_obj(0x14000 + 64 + 4, &0x20u32).unwrap();
        ram.write_obj(0x14000 + 64, &GTF_PERMIT_ACCESS).unwrap();
        gt.set_frame(0, Some(0x14000));
        assert!(gt.map(&ram, 8, false, 0).map(|m| gt.unmap(&ram, m)).is_ok());
        assert_eq!(gt.frame_gfns(4), vec![0x14, INVALID_GFN, 0x12, INVALID_GFN]);
    }

    #[test]
    fn copy_between_own_frames_and_self_grants() {
        let ram = std::sync::Arc::new(GuestRam::new(&[(0, 0x10_0000)]).unwrap());
        let info = crate::xen::domain::DomainInfo { domid: 1, name: "t".into(), memmap: Vec::new(), pages: 256, max_pages: 256 };
        let dom = Domain::new(info, ram.clone(), crate::xen::time::Clock::new(1_000_000, 0));
        dom.gnttab.set_frame(0, Some(0x10000));
        grant(&ram, 8, GTF_PERMIT_ACCESS, 1, 0x21); // to itself
        grant(&ram, 9, GTF_PERMIT_ACCESS | GTF_READONLY, 1, 0x22);
        ram.write(0x20000 + 100, b"copied").unwrap();
        let ptr = |u: u64, domid: u16, offset: u16| CopyPtr { u, domid, offset, pad: 0 };
        let op = |source, dest, len, flags| Copy { source, dest, len, flags, status: 0, pad: 0 };
        let ok = op(ptr(0x20, DOMID_SELF, 100), ptr(8, DOMID_SELF, 10), 6, GNTCOPY_DEST_GREF);
        assert_eq!(copy(&dom, &ok), GNTST_OKAY);
        let mut b = [0u8; 6];
        ram.read(0x21000 + 10, &mut b).unwrap();
        assert_eq!(&b, b"copied");
        assert_eq!(flags(&ram, 8), GTF_PERMIT_ACCESS, "released after the copy");
        let ro = op(ptr(0x20, DOMID_SELF, 0), ptr(9, DOMID_SELF, 0), 6, GNTCOPY_DEST_GREF);
        assert_eq!(copy(&dom, &ro), GNTST_GENERAL_ERROR, "read-only grant as destination");
        let cross = op(ptr(0x20, DOMID_SELF, 4000), ptr(8, DOMID_SELF, 0), 200, GNTCOPY_DEST_GREF);
        assert_eq!(copy(&dom, &cross), GNTST_BAD_COPY_ARG);
        let foreign_frame = op(ptr(0x20, 0, 0), ptr(8, DOMID_SELF, 0), 6, GNTCOPY_DEST_GREF);
        assert_eq!(copy(&dom, &foreign_frame), GNTST_PERMISSION_DENIED);
        let foreign_grant = op(ptr(0x20, DOMID_SELF, 0), ptr(8, 0, 0), 6, GNTCOPY_DEST_GREF);
        assert_eq!(copy(&dom, &foreign_grant), GNTST_BAD_DOMAIN);
        let bad_frame = op(ptr(0x5000, DOMID_SELF, 0), ptr(8, DOMID_SELF, 0), 6, GNTCOPY_DEST_GREF);
        assert_eq!(copy(&dom, &bad_frame), GNTST_BAD_PAGE);
        assert_eq!(copy(&dom, &op(ptr(0, 0, 0), ptr(0, 0, 0), 0, 0)), GNTST_OKAY, "empty copies succeed");
        assert_eq!(dom.gnttab.pinned(), 0);
    }

    #[test]
    fn only_ram_can_be_granted() {
        use super::super::physmap::{Physmap, XenPage};
        let ram = std::sync::Arc::new(GuestRam::new(&[(0, 0x10_0000)]).unwrap());
        let pm = Physmap::new(ram.clone(), 256, 256, 255);
        let gt = GrantTable::new(4);
        // Frame 0 in a hole above RAM (as GRUB places it), frame 1 over RAM.
        pm.place(XenPage::GrantFrame(0), 0x10_0000).unwrap();
        gt.set_frame(0, Some(0x10_0000));
        pm.place(XenPage::GrantFrame(1), 0x30000).unwrap();
        gt.set_frame(1, Some(0x30000));
        let entry = |gref: u64, frame: u32| {
            ram.write_obj(0x10_0000 + gref * 8 + 4, &frame).unwrap();
            ram.write_obj(0x10_0000 + gref * 8, &GTF_PERMIT_ACCESS).unwrap();
        };
        entry(8, 0x20);
        let m = gt.map(&ram, 8, false, 0).unwrap();
        assert_eq!(m.gpa(), 0x20000);
        gt.unmap(&ram, m);
        entry(9, 0x100); // the frame itself
        assert!(matches!(gt.map(&ram, 9, false, 0), Err(GrantError::BadFrame { .. })));
        entry(10, 0x30); // the RAM page frame 1 replaced
        assert!(matches!(gt.map(&ram, 10, false, 0), Err(GrantError::BadFrame { .. })));
        pm.decrease(0x40000, 0).unwrap();
        entry(11, 0x40); // a page given back to Xen
        assert!(matches!(gt.map(&ram, 11, false, 0), Err(GrantError::BadFrame { .. })));
        assert_eq!(gt.pinned(), 0);
    }
}
