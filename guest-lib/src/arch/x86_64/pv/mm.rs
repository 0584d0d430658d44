//! PV memory: the physical-to-machine list, the machine-to-physical table,
//! walking the page tables Xen built, and changing them with hypercalls.
//!
//! The invariant the rest of guest-lib relies on: virtual address = pseudo-
//! physical address for every RAM page below [`mapped_limit`]. Xen's initial
//! region already is such a map (VIRT_BASE 0, xen.h start-of-day rule 5);
//! `map_ram` extends it over the rest of RAM. Debian's Xen 4.17 supports no
//! PV superpages, so that takes 4 KiB L1 tables: one per 2 MiB, plus an L2
//! per GiB beyond the first. Their pages come from a bump allocator that
//! starts right after Xen's boot stack (the initial region guarantees at
//! least 512 KiB of free, mapped pages there) and continues into memory
//! mapped in earlier rounds.
//!
//! Xen accepts a page as a page table only when no writable mapping of it
//! exists, so each round fills new tables through their ordinary writable
//! mapping, then issues one mmu_update batch that first remaps every new
//! table read-only and then links the tables in. Filling an L1 is a loop per
//! 4 KiB page, which the PVH path avoids; PV runs only on real Xen, where
//! guest instructions run at native speed (or TCG speed), never on this
//! project's emulated KVM.
//!
//! Tables are read through the 1:1 map: a table's machine frame is turned
//! into its pseudo-physical frame with the machine-to-physical table Xen
//! maps read-only at MACH2PHYS_VIRT_START, checked against the p2m list.

use core::sync::atomic::{AtomicU64, Ordering};

use xen_abi::hypercall as nr;
use xen_abi::pv::{
    self as xpv, pte, MmuUpdate, MmuextOp, MMUEXT_TLB_FLUSH_LOCAL, MMU_NORMAL_PT_UPDATE,
};

use crate::boot::{PhysRange, PvStartInfo};
use crate::hypercall::{self, Errno};

const PAGE: u64 = xen_abi::PAGE_SIZE as u64;
const ENTRIES: u64 = 512;
/// What one L1 table maps.
const L1_REACH: u64 = PAGE * ENTRIES;
/// What one L2 table maps.
const L2_REACH: u64 = L1_REACH * ENTRIES;
/// What one L3 table (L4 slot 0) maps: the most RAM this code maps.
const L3_REACH: u64 = L2_REACH * ENTRIES;

/// Virtual address of the L4 table (start_info.pt_base).
static L4: AtomicU64 = AtomicU64::new(0);
/// Virtual address of the p2m list (start_info.mfn_list).
static P2M: AtomicU64 = AtomicU64::new(0);
/// Entries in the p2m list (start_info.nr_pages).
static NR_PAGES: AtomicU64 = AtomicU64::new(0);
/// End of the 1:1 map (exclusive).
static MAPPED: AtomicU64 = AtomicU64::new(0);
/// End of the 2 MiB chunks that have an L1 table.
static CHUNKS_END: AtomicU64 = AtomicU64::new(0);
/// End of Xen's bootstrap elements (its boot stack top): free pages follow.
static BOOTSTRAP_END: AtomicU64 = AtomicU64::new(0);

/// The end (exclusive) of the 1:1 mapped range.
pub fn mapped_limit() -> u64 {
    MAPPED.load(Ordering::Relaxed)
}

/// Before start_info is read: everything below Xen's boot stack top is in
/// the initial mapping.
pub(super) fn set_early_limit(bootstrap_end: u64) {
    MAPPED.store(bootstrap_end & !(PAGE - 1), Ordering::Relaxed);
}

/// Takes the page-table facts from start_info and finds the end of the
/// initial mapping: the first 2 MiB chunk past the boot stack whose L2
/// entry is empty (the region ends on a 4 MiB boundary, so every L1 table
/// Xen built is full).
pub(super) fn init(si: &PvStartInfo, bootstrap_end: u64) -> Result<(), Errno> {
    let early = mapped_limit();
    let p2m_end = si
        .nr_pages
        .checked_mul(8)
        .and_then(|n| si.mfn_list.checked_add(n));
    if !si.pt_base.is_multiple_of(PAGE)
        || si.pt_base + PAGE > early
        || !si.mfn_list.is_multiple_of(8)
        || p2m_end.is_none_or(|e| e > early)
    {
        return Err(Errno(xen_abi::errno::EINVAL));
    }
    L4.store(si.pt_base, Ordering::Relaxed);
    P2M.store(si.mfn_list, Ordering::Relaxed);
    NR_PAGES.store(si.nr_pages, Ordering::Relaxed);
    BOOTSTRAP_END.store(bootstrap_end.next_multiple_of(PAGE), Ordering::Relaxed);

    let ram_end = si.ram_bytes().min(L3_REACH);
    let mut end = (bootstrap_end - 1) & !(L1_REACH - 1);
    while end < ram_end
        && table_for(end, 2).is_some_and(|l2| l2.entry(index(end, 2)) & pte::PRESENT != 0)
    {
        end += L1_REACH;
    }
    if end < bootstrap_end {
        return Err(Errno(xen_abi::errno::EFAULT));
    }
    CHUNKS_END.store(end, Ordering::Relaxed);
    MAPPED.store(end.min(si.ram_bytes()), Ordering::Relaxed);
    Ok(())
}

/// The machine frame behind pseudo-physical frame `pfn`.
pub fn p2m(pfn: u64) -> Option<u64> {
    if pfn >= NR_PAGES.load(Ordering::Relaxed) {
        return None;
    }
    let at = P2M.load(Ordering::Relaxed) + pfn * 8;
    // SAFETY: the p2m list is mapped (checked in `init`) and `pfn` is in it.
    let mfn = unsafe { core::ptr::read_volatile(at as *const u64) };
    (mfn < xpv::MACH2PHYS_NR_ENTRIES).then_some(mfn)
}

/// The pseudo-physical frame of our machine frame `mfn`, from Xen's
/// read-only machine-to-physical table, checked against the p2m list (a
/// frame that is not ours gives `None`).
pub fn m2p(mfn: u64) -> Option<u64> {
    if mfn >= xpv::MACH2PHYS_NR_ENTRIES {
        return None;
    }
    let at = xpv::MACH2PHYS_VIRT_START + mfn * 8;
    // SAFETY: Xen maps the whole machine-to-physical table read-only into
    // every 64-bit PV guest; `mfn` is inside it.
    let pfn = unsafe { core::ptr::read_volatile(at as *const u64) };
    (p2m(pfn) == Some(mfn)).then_some(pfn)
}

/// Where our machine frame `mfn` is in the 1:1 map, if it is mapped.
pub fn frame_addr(mfn: u64) -> Option<u64> {
    let addr = m2p(mfn)? * PAGE;
    (addr + PAGE <= mapped_limit()).then_some(addr)
}

/// The machine frame of the mapped RAM page at `va`.
fn mfn_of(va: u64) -> Result<u64, Errno> {
    p2m(va / PAGE).ok_or(Errno(xen_abi::errno::EFAULT))
}

/// The index into the level-`level` table (1 = L1) of `va`.
fn index(va: u64, level: u32) -> u64 {
    (va >> (12 + 9 * (level - 1))) & (ENTRIES - 1)
}

/// One of our page tables, read through the 1:1 map.
#[derive(Clone, Copy)]
struct Table {
    va: u64,
    mfn: u64,
}

impl Table {
    fn root() -> Option<Table> {
        let va = L4.load(Ordering::Relaxed);
        Some(Table {
            va,
            mfn: p2m(va / PAGE)?,
        })
    }

    fn entry(self, i: u64) -> u64 {
        // SAFETY: page tables are mapped read-only in the 1:1 map (`child`
        // checks the address) and `i` < 512.
        unsafe { core::ptr::read_volatile((self.va as *const u64).add(i as usize)) }
    }

    /// The machine address of entry `i`, for mmu_update.
    fn entry_maddr(self, i: u64) -> u64 {
        self.mfn * PAGE + i * 8
    }

    fn child(self, i: u64) -> Option<Table> {
        let e = self.entry(i);
        if e & pte::PRESENT == 0 || e & pte::PSE != 0 {
            return None;
        }
        let mfn = (e & pte::FRAME_MASK) / PAGE;
        Some(Table {
            va: frame_addr(mfn)?,
            mfn,
        })
    }
}

/// The level-`level` table whose entry maps `va`, if the tables above it
/// are present.
fn table_for(va: u64, level: u32) -> Option<Table> {
    let mut t = Table::root()?;
    for l in (level + 1..=4).rev() {
        t = t.child(index(va, l))?;
    }
    Some(t)
}

/// The request that remaps our mapped RAM page `va` read-only.
fn read_only(va: u64) -> Result<MmuUpdate, Errno> {
    let l1 = table_for(va, 1).ok_or(Errno(xen_abi::errno::EFAULT))?;
    Ok(MmuUpdate {
        ptr: l1.entry_maddr(index(va, 1)) | MMU_NORMAL_PT_UPDATE,
        val: (mfn_of(va)? * PAGE) | (pte::L1_KERNEL & !pte::RW),
    })
}

/// Requests per mmu_update call: 4 KiB of them, 128 tables per round.
const BATCH: usize = 256;

/// A list of mmu_update requests sent in one hypercall.
struct Batch {
    reqs: [MmuUpdate; BATCH],
    len: usize,
}

impl Batch {
    const fn new() -> Self {
        Batch {
            reqs: [MmuUpdate { ptr: 0, val: 0 }; BATCH],
            len: 0,
        }
    }

    fn push(&mut self, r: MmuUpdate) {
        self.reqs[self.len] = r;
        self.len += 1;
    }

    /// Sends the requests (Xen applies them in order, stopping at the first
    /// failure) and empties the batch.
    ///
    /// # Safety
    /// The requests must leave everything Rust uses mapped as before.
    unsafe fn submit(&mut self) -> Result<(), Errno> {
        if self.len == 0 {
            return Ok(());
        }
        let mut done = 0u32;
        // SAFETY: `reqs[..len]` are initialised mmu_update requests and
        // `done` a u32, both live for the call; the effect on our mappings
        // is the caller's promise.
        let rc = unsafe {
            hypercall::hypercall4(
                nr::MMU_UPDATE,
                self.reqs.as_ptr() as u64,
                self.len as u64,
                &mut done as *mut u32 as u64,
                xen_abi::DOMID_SELF.into(),
            )
        };
        self.len = 0;
        Errno::check(rc).map(drop)
    }
}

/// Takes the next page of the bump allocator.
fn take(bump: &mut u64) -> u64 {
    let p = *bump;
    *bump += PAGE;
    p
}

/// Fills the table page at `va` with `entry(i)` for each of its 512 slots.
fn fill(va: u64, entry: impl Fn(u64) -> u64) {
    let t = va as *mut u64;
    for i in 0..ENTRIES {
        // SAFETY: `va` is a page of mapped RAM the bump allocator took for
        // this table; it is still writable and nothing else uses it.
        unsafe { core::ptr::write_volatile(t.add(i as usize), entry(i)) };
    }
}

/// Where the L2 entry for a new L1 table goes.
enum L2Slot {
    /// In a live L2 table: written with mmu_update at this machine address.
    Live(u64),
    /// In an L2 table being built this round (not linked yet): a plain
    /// store into its page at `va`.
    Building(u64),
}

/// Maps all RAM (up to 512 GiB) 1:1, and returns the pages the new page
/// tables took (right after Xen's boot stack), which must stay reserved.
pub(super) fn map_ram() -> Result<PhysRange, Errno> {
    let nr_pages = NR_PAGES.load(Ordering::Relaxed);
    let ram_end = (nr_pages * PAGE).min(L3_REACH);
    let start = BOOTSTRAP_END.load(Ordering::Relaxed);
    let mut bump = start;
    let mut mapped = CHUNKS_END.load(Ordering::Relaxed);
    let mut batch = Batch::new();
    let mut links = Batch::new();
    while mapped < ram_end {
        // Table pages must be mapped (and writable) already.
        let usable = mapped.min(ram_end);
        // An L2 table built this round: (GiB base, its address).
        let mut building: Option<(u64, u64)> = None;
        // Each step adds at most two remaps and two links to one call.
        while mapped < ram_end && batch.len + links.len + 4 <= BATCH {
            let gib = mapped & !(L2_REACH - 1);
            let slot = match (table_for(mapped, 2), building) {
                (Some(l2), _) => L2Slot::Live(l2.entry_maddr(index(mapped, 2))),
                (None, Some((g, va))) if g == gib => L2Slot::Building(va),
                (None, _) => {
                    if bump + 2 * PAGE > usable {
                        break;
                    }
                    let l3 = table_for(mapped, 3).ok_or(Errno(xen_abi::errno::EFAULT))?;
                    let l2 = take(&mut bump);
                    fill(l2, |_| 0);
                    batch.push(read_only(l2)?);
                    links.push(MmuUpdate {
                        ptr: l3.entry_maddr(index(mapped, 3)) | MMU_NORMAL_PT_UPDATE,
                        val: (mfn_of(l2)? * PAGE) | pte::TABLE,
                    });
                    building = Some((gib, l2));
                    L2Slot::Building(l2)
                }
            };
            if bump + PAGE > usable {
                break;
            }
            let l1 = take(&mut bump);
            let first_pfn = mapped / PAGE;
            fill(l1, |i| {
                let pfn = first_pfn + i;
                match p2m(pfn) {
                    Some(mfn) if pfn < nr_pages => (mfn * PAGE) | pte::L1_KERNEL,
                    _ => 0,
                }
            });
            batch.push(read_only(l1)?);
            let entry = (mfn_of(l1)? * PAGE) | pte::TABLE;
            match slot {
                L2Slot::Live(maddr) => links.push(MmuUpdate {
                    ptr: maddr | MMU_NORMAL_PT_UPDATE,
                    val: entry,
                }),
                L2Slot::Building(l2) => {
                    // SAFETY: `l2` is this round's new L2 page, still
                    // writable, and the index is < 512.
                    unsafe {
                        core::ptr::write_volatile(
                            (l2 as *mut u64).add(index(mapped, 2) as usize),
                            entry,
                        )
                    }
                }
            }
            mapped += L1_REACH;
        }
        if batch.len == 0 {
            return Err(Errno(xen_abi::errno::ENOMEM));
        }
        // Read-only remaps first: Xen refuses to link a table that still
        // has a writable mapping.
        for r in &links.reqs[..links.len] {
            batch.push(*r);
        }
        links.len = 0;
        // SAFETY: the batch only makes the new table pages read-only (we
        // no longer write them) and links tables for unmapped addresses.
        unsafe { batch.submit() }?;
        CHUNKS_END.store(mapped, Ordering::Relaxed);
        MAPPED.store(mapped.min(nr_pages * PAGE), Ordering::Relaxed);
    }
    Ok(PhysRange { start, end: bump })
}

/// Maps machine frame `mfn` (ours or one Xen shares with us) at `va`
/// with update_va_mapping, flushing the old translation.
///
/// # Safety
/// `va` must be a mapped page whose old contents nothing uses any more.
pub unsafe fn map_frame(va: u64, mfn: u64) -> Result<(), Errno> {
    // SAFETY: the caller gave up the old page at `va`.
    let rc = unsafe {
        hypercall::hypercall3(
            nr::UPDATE_VA_MAPPING,
            va,
            (mfn * PAGE) | pte::L1_KERNEL,
            xpv::UVMF_INVLPG | xpv::UVMF_LOCAL,
        )
    };
    Errno::check(rc).map(drop)
}

/// Maps `mfns` at consecutive pages from `va` with one mmu_update, then
/// flushes this vCPU's TLB (one mmuext_op).
///
/// # Safety
/// The pages must be mapped pages whose old contents nothing uses any more.
pub unsafe fn map_frames(va: u64, mfns: &[u64]) -> Result<(), Errno> {
    for chunk in mfns.chunks(BATCH).enumerate() {
        let (n, mfns) = chunk;
        let mut batch = Batch::new();
        for (i, &mfn) in mfns.iter().enumerate() {
            let page = va + ((n * BATCH + i) as u64) * PAGE;
            let l1 = table_for(page, 1).ok_or(Errno(xen_abi::errno::EFAULT))?;
            batch.push(MmuUpdate {
                ptr: l1.entry_maddr(index(page, 1)) | MMU_NORMAL_PT_UPDATE,
                val: (mfn * PAGE) | pte::L1_KERNEL,
            });
        }
        // SAFETY: the caller gave up the old pages.
        unsafe { batch.submit() }?;
    }
    let mut op = MmuextOp {
        cmd: MMUEXT_TLB_FLUSH_LOCAL,
        ..Default::default()
    };
    let mut done = 0u32;
    // SAFETY: one mmuext_op and its done counter, live for the call; a TLB
    // flush changes no mapping.
    let rc = unsafe {
        hypercall::hypercall4(
            nr::MMUEXT_OP,
            &mut op as *mut MmuextOp as u64,
            1,
            &mut done as *mut u32 as u64,
            xen_abi::DOMID_SELF.into(),
        )
    };
    Errno::check(rc).map(drop)
}

/// The p2m list Xen handed over: the machine frame of each of the
/// domain's `nr_pages` pseudo-physical frames.
pub(super) fn p2m_list() -> &'static [u64] {
    let at = P2M.load(Ordering::Relaxed) as *const u64;
    let n = NR_PAGES.load(Ordering::Relaxed) as usize;
    // SAFETY: `init` checked that the list is mapped, aligned and holds
    // `nr_pages` entries; nothing writes it (the runtime never changes the
    // p2m).
    unsafe { core::slice::from_raw_parts(at, n) }
}

/// The machine frame of the L4 table in use.
pub(super) fn root_mfn() -> Option<u64> {
    Table::root().map(|t| t.mfn)
}

/// Remaps the RAM pages of `[start, end)` in the 1:1 map read-only or
/// read-write (mmu_update batches), then flushes this vCPU's TLB.
///
/// # Safety
/// Read-only: nothing may write the pages afterwards. Read-write: the
/// pages must not be page tables Xen still uses (it refuses them anyway).
pub(super) unsafe fn set_writable(start: u64, end: u64, writable: bool) -> Result<(), Errno> {
    let mut batch = Batch::new();
    let mut va = start & !(PAGE - 1);
    while va < end {
        let mut r = read_only(va)?;
        if writable {
            r.val |= pte::RW;
        }
        batch.push(r);
        if batch.len == BATCH {
            // SAFETY: the caller's promise about the pages.
            unsafe { batch.submit() }?;
        }
        va += PAGE;
    }
    // SAFETY: as above.
    unsafe { batch.submit() }?;
    // SAFETY: a TLB flush changes no mapping.
    unsafe {
        mmuext(&mut [MmuextOp {
            cmd: MMUEXT_TLB_FLUSH_LOCAL,
            ..Default::default()
        }])
    }
}

/// Issues `ops` in one mmuext_op hypercall (Xen stops at the first failure).
///
/// # Safety
/// The operations must leave everything Rust uses mapped as before.
pub(super) unsafe fn mmuext(ops: &mut [MmuextOp]) -> Result<(), Errno> {
    let mut done = 0u32;
    // SAFETY: `ops` and `done` are live for the call; the effect of the
    // operations is the caller's promise.
    let rc = unsafe {
        hypercall::hypercall4(
            nr::MMUEXT_OP,
            ops.as_mut_ptr() as u64,
            ops.len() as u64,
            &mut done as *mut u32 as u64,
            xen_abi::DOMID_SELF.into(),
        )
    };
    Errno::check(rc).map(drop)
}

/// Sends `reqs` (at most one batch) in one mmu_update hypercall.
///
/// # Safety
/// The requests must leave everything Rust uses mapped as before.
pub(super) unsafe fn mmu_update(reqs: &[MmuUpdate]) -> Result<(), Errno> {
    let mut batch = Batch::new();
    for r in reqs.iter().take(BATCH) {
        batch.push(*r);
    }
    // SAFETY: forwarded to the caller.
    unsafe { batch.submit() }
}
