//! The domain's physical address space as Xen's p2m sees it, for the
//! memory operations a kernel makes again after another one ran in the
//! domain: where Xen's own pages (shared info, grant-table frames) are
//! placed, which frames are RAM, which are holes, and how many pages the
//! domain holds against its limit.
//!
//! The rules are Xen 4.17's (arch/x86/mm/p2m.c `xenmem_add_to_physmap_one`,
//! common/memory.c `populate_physmap` and `decrease_reservation`):
//! - placing a Xen page at a gfn frees the RAM page that was there (the
//!   domain holds one page less) or unhooks the Xen page that was there; the
//!   Xen page leaves its previous gfn, which becomes a hole (reads all ones,
//!   writes are dropped). Its content goes with it.
//! - populating a gfn gives it a fresh zeroed RAM page, while the domain
//!   holds fewer than its maximum; an extent that does not fit stops the
//!   operation, which reports how many extents it did.
//! - decreasing the reservation at a gfn frees its RAM page (or unhooks a
//!   Xen page there); a hole stops the operation.
//!
//! Xen pages not mapped anywhere keep their content here until they are
//! placed again. One difference: events raised while shared info is not
//! mapped anywhere are lost, where Xen would keep them in the page.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use xen_abi::errno::*;
use xen_abi::PAGE_SIZE;

use crate::vstate::memory::GuestRam;
use crate::vstate::vm::MemorySlots;

/// A page Xen owns and a guest may map into its physical address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XenPage {
    /// The shared info page (XENMAPSPACE_shared_info).
    SharedInfo,
    /// A grant-table frame (XENMAPSPACE_grant_table), by index.
    GrantFrame(u32),
}

/// Guest-physical addresses from here up cannot hold pages: beyond what a
/// 40-bit physical address space reaches (every x86-64 CPU KVM runs on
/// offers at least that). Xen's p2m refuses such gfns too.
pub const GPA_LIMIT: u64 = 1 << 40;

/// Largest extent order a domU may ask for (Xen's default domU max order).
pub const MAX_EXTENT_ORDER: u32 = 9;

const PAGE: u64 = PAGE_SIZE as u64;

/// Why a populate or decrease operation stopped at an extent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The domain holds its maximum number of pages.
    OverAllocation,
    /// The gfn is not one the domain may use (unaligned, or too high).
    BadGfn,
    /// The gfn is a hole (decrease_reservation).
    NotPresent,
    /// The host refused memory (or a KVM slot).
    NoMemory,
}

/// The domain's physical address space.
pub struct Physmap {
    ram: Arc<GuestRam>,
    slots: RwLock<Arc<MemorySlots>>,
    inner: Mutex<Inner>,
}

struct Inner {
    /// Pages the domain holds (Xen's tot_pages): its RAM, not Xen's pages.
    tot_pages: u64,
    /// The most it may hold (max_pages, set by the toolstack).
    max_pages: u64,
    /// Highest gfn ever mapped (Xen's p2m max_mapped_pfn).
    max_gfn: u64,
    /// Where each mapped Xen page is.
    placed: HashMap<XenPage, u64>,
    /// Content of Xen pages not mapped anywhere.
    saved: HashMap<XenPage, Box<[u8; PAGE_SIZE]>>,
}

/// What an operation on one gfn did to Xen pages: the caller updates the
/// page's owner (the grant table, the event-channel pages).
pub type Evicted = Option<XenPage>;

impl Physmap {
    /// The address space of `ram`, holding `tot_pages` of at most
    /// `max_pages`, highest gfn `max_gfn`. Until
    /// [`set_memory_slots`](Self::set_memory_slots) gives it the VM's slots,
    /// changes reach `GuestRam` only (unit tests run without KVM).
    pub fn new(ram: Arc<GuestRam>, tot_pages: u64, max_pages: u64, max_gfn: u64) -> Self {
        let slots = Arc::new(MemorySlots::new(None, ram.clone()));
        Physmap {
            ram,
            slots: RwLock::new(slots),
            inner: Mutex::new(Inner { tot_pages, max_pages, max_gfn, placed: HashMap::new(), saved: HashMap::new() }),
        }
    }

    /// Uses the VM's memory slots, so KVM sees every change.
    pub fn set_memory_slots(&self, slots: Arc<MemorySlots>) {
        *self.slots.write().unwrap_or_else(|e| e.into_inner()) = slots;
    }

    fn slots(&self) -> Arc<MemorySlots> {
        self.slots.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pages the domain holds (XENMEM_current_reservation).
    pub fn tot_pages(&self) -> u64 {
        self.inner().tot_pages
    }

    /// The most it may hold (XENMEM_maximum_reservation).
    pub fn max_pages(&self) -> u64 {
        self.inner().max_pages
    }

    /// The highest gfn ever mapped (XENMEM_maximum_gpfn).
    pub fn max_gfn(&self) -> u64 {
        self.inner().max_gfn
    }

    /// Where `page` is mapped, if anywhere.
    pub fn location(&self, page: XenPage) -> Option<u64> {
        self.inner().placed.get(&page).copied()
    }

    /// XENMEM_add_to_physmap: maps `page` at `gpa` (page-aligned) with its
    /// content; returns the Xen page it displaced there, if any.
    pub fn place(&self, page: XenPage, gpa: u64) -> Result<Evicted, i64> {
        if !gpa.is_multiple_of(PAGE) || gpa >= GPA_LIMIT {
            return Err(EINVAL);
        }
        let slots = self.slots();
        let mut inner = self.inner();
        let old = inner.placed.get(&page).copied();
        if old == Some(gpa) {
            return Ok(None);
        }
        let mut content = Box::new([0u8; PAGE_SIZE]);
        match old {
            Some(old) => self.ram.read(old, &mut content[..]).map_err(|_| EFAULT)?,
            None => {
                if let Some(saved) = inner.saved.remove(&page) {
                    content = saved;
                }
            }
        }
        let evicted = self.clear(&slots, &mut inner, gpa);
        let evicted = match evicted {
            Ok(e) => e,
            Err(e) => {
                if old.is_none() {
                    inner.saved.insert(page, content);
                }
                return Err(e);
            }
        };
        if let Some(old) = inner.placed.remove(&page) {
            slots.unmap(old);
        }
        if let Err(e) = slots.map(gpa, PAGE_SIZE, false) {
            log::warn!("cannot back {page:?} at {gpa:#x}: {e}");
            inner.saved.insert(page, content);
            return Err(ENOMEM);
        }
        self.ram.write(gpa, &content[..]).map_err(|_| EFAULT)?;
        inner.placed.insert(page, gpa);
        inner.max_gfn = inner.max_gfn.max(gpa / PAGE);
        log::debug!("{page:?} at {gpa:#x}");
        Ok(evicted)
    }

    /// Empties the gfn at `gpa` for a Xen page: a Xen page there is
    /// unhooked (content saved), a RAM page freed.
    fn clear(&self, slots: &MemorySlots, inner: &mut Inner, gpa: u64) -> Result<Evicted, i64> {
        if let Some(other) = inner.placed.iter().find(|(_, &at)| at == gpa).map(|(&p, _)| p) {
            let mut content = Box::new([0u8; PAGE_SIZE]);
            let _ = self.ram.read(gpa, &mut content[..]);
            inner.saved.insert(other, content);
            inner.placed.remove(&other);
            slots.unmap(gpa);
            return Ok(Some(other));
        }
        if self.ram.is_ram(gpa, PAGE_SIZE) {
            self.free_ram(slots, inner, gpa)?;
        }
        Ok(None)
    }

    /// Frees the RAM page at `gpa` (a boot page or a populated one).
    fn free_ram(&self, slots: &MemorySlots, inner: &mut Inner, gpa: u64) -> Result<(), i64> {
        let freed = if self.ram.is_boot_page(gpa) {
            slots.remove_boot_page(gpa).map_err(|e| {
                log::warn!("cannot remove RAM page {gpa:#x}: {e}");
                ENOMEM
            })?
        } else {
            slots.unmap(gpa)
        };
        if freed {
            inner.tot_pages = inner.tot_pages.saturating_sub(1);
        }
        Ok(())
    }

    /// XENMEM_populate_physmap of one extent of `1 << order` pages at `gpa`.
    /// Returns the Xen pages it displaced.
    pub fn populate(&self, gpa: u64, order: u32) -> Result<Vec<XenPage>, Stop> {
        let pages = 1u64 << order.min(MAX_EXTENT_ORDER);
        let len = pages * PAGE;
        if order > MAX_EXTENT_ORDER || !gpa.is_multiple_of(len) || gpa.checked_add(len).is_none_or(|end| end > GPA_LIMIT) {
            return Err(Stop::BadGfn);
        }
        let slots = self.slots();
        let mut inner = self.inner();
        if inner.tot_pages + pages > inner.max_pages {
            log::debug!("populate at {gpa:#x}: over-allocation ({} + {pages} > {})", inner.tot_pages, inner.max_pages);
            return Err(Stop::OverAllocation);
        }
        let mut evicted = Vec::new();
        for p in (gpa..gpa + len).step_by(PAGE_SIZE) {
            if let Ok(Some(e)) = self.clear_xen_page(&slots, &mut inner, p) {
                evicted.push(e);
            }
            let ok = if self.ram.is_ram(p, PAGE_SIZE) {
                // Already RAM: Xen puts a fresh page there; the old one stays
                // allocated to the domain (and counted) until it dies.
                self.ram.zero(p, PAGE_SIZE).is_ok()
            } else if self.ram.is_removed_boot_page(p) {
                slots.restore_boot_page(p).unwrap_or(false)
            } else {
                slots.map(p, PAGE_SIZE, true).is_ok()
            };
            if !ok {
                return Err(Stop::NoMemory);
            }
            inner.tot_pages += 1;
            inner.max_gfn = inner.max_gfn.max(p / PAGE);
        }
        Ok(evicted)
    }

    /// Unhooks the Xen page at `p`, if any.
    fn clear_xen_page(&self, slots: &MemorySlots, inner: &mut Inner, p: u64) -> Result<Evicted, i64> {
        if inner.placed.values().any(|&at| at == p) {
            return self.clear(slots, inner, p);
        }
        Ok(None)
    }

    /// XENMEM_decrease_reservation of one extent of `1 << order` pages at
    /// `gpa`: frees each RAM page (unhooks Xen pages); a hole stops it.
    pub fn decrease(&self, gpa: u64, order: u32) -> Result<Vec<XenPage>, Stop> {
        if order > MAX_EXTENT_ORDER {
            return Err(Stop::BadGfn);
        }
        let len = (1u64 << order) * PAGE;
        let end = gpa.checked_add(len).ok_or(Stop::BadGfn)?;
        let slots = self.slots();
        let mut inner = self.inner();
        let mut evicted = Vec::new();
        for p in (gpa & !(PAGE - 1)..end).step_by(PAGE_SIZE) {
            if let Some(e) = self.clear_xen_page(&slots, &mut inner, p).map_err(|_| Stop::NoMemory)? {
                evicted.push(e);
                continue;
            }
            if !self.ram.is_ram(p, PAGE_SIZE) {
                return Err(Stop::NotPresent);
            }
            self.free_ram(&slots, &mut inner, p).map_err(|_| Stop::NoMemory)?;
        }
        Ok(evicted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 64 KiB of RAM, 16 pages held of at most 20.
    fn physmap() -> (Arc<GuestRam>, Physmap) {
        let ram = Arc::new(GuestRam::new(&[(0, 0x10000)]).unwrap());
        let pm = Physmap::new(ram.clone(), 16, 20, 15);
        (ram, pm)
    }

    #[test]
    fn a_xen_page_replaces_ram_and_leaves_a_hole_when_moved() {
        let (ram, pm) = physmap();
        ram.write_obj(0x3000, &0x1111u64).unwrap();
        assert_eq!(pm.place(XenPage::SharedInfo, 0x3000), Ok(None));
        assert_eq!(pm.tot_pages(), 15, "the RAM page there was freed");
        assert_eq!(ram.read_obj::<u64>(0x3000).unwrap(), 0, "shared info's content, not the RAM's");
        assert!(!ram.is_ram(0x3000, 1) && ram.contains(0x3000, 1));
        ram.write_obj(0x3008, &0xabcdu64).unwrap();
        // Moved above RAM: the content goes along, the old gfn is a hole.
        assert_eq!(pm.place(XenPage::SharedInfo, 0x20000), Ok(None));
        assert_eq!(ram.read_obj::<u64>(0x20008).unwrap(), 0xabcd);
        assert!(!ram.contains(0x3000, 1), "a hole");
        assert_eq!(pm.tot_pages(), 15, "moving frees nothing more");
        assert_eq!(pm.max_gfn(), 0x20);
        assert_eq!(pm.location(XenPage::SharedInfo), Some(0x20000));
        assert_eq!(pm.place(XenPage::SharedInfo, 0x20001), Err(EINVAL));
        assert_eq!(pm.place(XenPage::SharedInfo, GPA_LIMIT), Err(EINVAL));
    }

    #[test]
    fn a_xen_page_displaces_another_which_keeps_its_content() {
        let (ram, pm) = physmap();
        pm.place(XenPage::GrantFrame(0), 0x4000).unwrap();
        ram.write_obj(0x4010, &77u64).unwrap();
        assert_eq!(pm.place(XenPage::SharedInfo, 0x4000), Ok(Some(XenPage::GrantFrame(0))));
        assert_eq!(pm.location(XenPage::GrantFrame(0)), None);
        assert_eq!(ram.read_obj::<u64>(0x4010).unwrap(), 0, "shared info is there now");
        assert_eq!(pm.tot_pages(), 15, "only one RAM page was freed");
        pm.place(XenPage::GrantFrame(0), 0x30000).unwrap();
        assert_eq!(ram.read_obj::<u64>(0x30010).unwrap(), 77, "the frame's content came back");
    }

    #[test]
    fn populate_fills_holes_within_the_limit() {
        let (ram, pm) = physmap();
        pm.place(XenPage::SharedInfo, 0x3000).unwrap();
        pm.place(XenPage::SharedInfo, 0x20000).unwrap();
        assert_eq!(pm.tot_pages(), 15);
        assert_eq!(pm.populate(0x3000, 0), Ok(vec![]));
        assert!(ram.is_ram(0x3000, 0x1000));
        assert_eq!(ram.read_obj::<u64>(0x3000).unwrap(), 0);
        assert_eq!(pm.tot_pages(), 16);
        // Above RAM, an aligned extent of 2 pages; then the limit (20).
        assert_eq!(pm.populate(0x40000, 1), Ok(vec![]));
        assert!(ram.is_ram(0x40000, 0x1000) && ram.is_ram(0x41000, 0x1000));
        assert_eq!(pm.populate(0x43000, 1), Err(Stop::BadGfn), "unaligned extent");
        assert_eq!(pm.populate(0x44000, 10), Err(Stop::BadGfn), "order above the domU maximum");
        assert_eq!(pm.populate(0x44000, 2), Err(Stop::OverAllocation), "18 + 4 > 20");
        assert_eq!(pm.populate(0x44000, 1), Ok(vec![]));
        assert_eq!(pm.populate(0x46000, 0), Err(Stop::OverAllocation));
        assert_eq!(pm.tot_pages(), 20);
        // Populating where shared info sits unhooks it.
        pm.decrease(0x40000, 0).unwrap();
        assert_eq!(pm.populate(0x20000, 0), Ok(vec![XenPage::SharedInfo]));
        assert_eq!(pm.location(XenPage::SharedInfo), None);
        assert!(ram.is_ram(0x20000, 0x1000));
    }

    #[test]
    fn decrease_frees_ram_unhooks_xen_pages_and_stops_at_holes() {
        let (ram, pm) = physmap();
        ram.write_obj(0x5000, &3u64).unwrap();
        assert_eq!(pm.decrease(0x5000, 0), Ok(vec![]));
        assert!(!ram.contains(0x5000, 1));
        assert_eq!(pm.tot_pages(), 15);
        assert_eq!(pm.decrease(0x5000, 0), Err(Stop::NotPresent), "already a hole");
        assert_eq!(pm.decrease(0x80000, 0), Err(Stop::NotPresent), "never RAM");
        pm.place(XenPage::GrantFrame(1), 0x6000).unwrap();
        assert_eq!(pm.tot_pages(), 14);
        assert_eq!(pm.decrease(0x6000, 0), Ok(vec![XenPage::GrantFrame(1)]));
        assert_eq!(pm.tot_pages(), 14, "a Xen page is not the domain's");
        assert_eq!(pm.populate(0x5000, 0), Ok(vec![]));
        assert_eq!(ram.read_obj::<u64>(0x5000).unwrap(), 0, "fresh, zeroed");
    }
}
