//! The classic PV hand-off's plan: where the next PV kernel's bootstrap
//! elements go and what its initial page tables hold. Pure arithmetic,
//! tested on the host; `arch::x86_64::pv::kexec` carries it out.
//!
//! The layout is the one Xen's domain builder makes (tools/libs/guest/
//! xg_dom_core.c `xc_dom_build_image`, xg_dom_x86.c), in the same domain's
//! own pages, as pvgrub 1 (Mini-OS kexec) did. In pseudo-physical order,
//! each element page-aligned, right after the kernel:
//!
//! 1. the kernel's segments (already loaded by the caller);
//! 2. the module (initrd), unless the kernel takes it by frame number
//!    (XEN_ELFNOTE_MOD_START_PFN) and it already lies outside this layout;
//! 3. the p2m list (start_info.mfn_list), one u64 machine frame per page;
//! 4. the start info page, then the xenstore and console ring pages: the
//!    kernel reaches those through its initial mapping before it maps the
//!    rest of RAM (Linux's early console does), so their frames are moved
//!    here from wherever the loader's builder put them, as pvgrub did;
//! 5. the page tables (start_info.pt_base, nr_pt_frames), L4 first, then
//!    the L3, L2 and L1 tables of the initial mapping (Linux frees the
//!    first L4, L3 and L2 pages by that order), then any tables of the
//!    trampoline alias (below);
//! 6. one boot stack page: RSP starts at its end, which is also where the
//!    bootstrap elements end.
//!
//! The initial mapping covers `[virt_base, virt_base + map_end)` with
//! `map_end` = (bootstrap end + 512 KiB) rounded up to the next 4 MiB
//! boundary (always past it, as libxenguest's `round_up(x, 4 MiB - 1) + 1`),
//! which gives the kernel at least 512 KiB of mapped, free pages after its
//! boot stack (xen.h start-of-day rule 5). Page-table pages are mapped
//! read-only (Xen refuses a writable mapping of a page table); everything
//! else read-write.
//!
//! The switch needs one page mapped at the same virtual address before and
//! after the new L4 is loaded: the trampoline. It is the boot stack page
//! (its code sits at the bottom, the stack grows down from the top, as in
//! pvgrub's boot page). The old address space maps every page 1:1, so its
//! old address is its pseudo-physical address; with VIRT_BASE 0 that is
//! also its new one. Otherwise the new tables map it a second time there
//! (the "alias"), which the next kernel never looks at.

use core::fmt;

use crate::boot::PhysRange;

/// Bytes per page.
pub const PAGE: u64 = xen_abi::PAGE_SIZE as u64;
/// The highest pseudo-physical address a layout may reach (1 TiB): far
/// beyond any domain pvboot serves, and small enough that no sum below
/// overflows.
pub const MAX_PHYS: u64 = 1 << 40;
/// Mapped free space the PV ABI promises after the bootstrap elements.
pub const PADDING: u64 = 512 * 1024;
/// The initial mapping ends on a multiple of this.
pub const MAP_ALIGN: u64 = 4 << 20;
const ENTRIES: u64 = 512;
/// The canonical 48-bit address bits.
const VA_MASK: u64 = (1 << 48) - 1;
/// L4 slots Xen keeps for itself in every 64-bit PV address space
/// (HYPERVISOR_VIRT_START..END: slots 256..272).
const XEN_L4_SLOTS: core::ops::Range<u64> = 256..272;

/// What the next kernel's ELF notes and its loaded segments say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvKernel {
    /// XEN_ELFNOTE_VIRT_BASE: virtual address of pseudo-physical 0.
    pub virt_base: u64,
    /// Pseudo-physical range its segments occupy (code, data and BSS).
    pub image: PhysRange,
    /// XEN_ELFNOTE_ENTRY (virtual).
    pub entry: u64,
    /// XEN_ELFNOTE_HYPERCALL_PAGE (virtual), if it names one.
    pub hypercall_page: Option<u64>,
    /// XEN_ELFNOTE_MOD_START_PFN: it takes the module as a frame number
    /// (SIF_MOD_START_PFN), so the module need not be mapped.
    pub mod_start_pfn: bool,
}

/// Why the hand-off cannot be planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// The kernel image range is empty, unaligned at its start, or not below the limit.
    BadImage(PhysRange),
    /// VIRT_BASE is not page aligned or the mapping would leave the lower
    /// or upper canonical half, or touch Xen's reserved area.
    BadVirtBase(u64),
    /// The entry point or hypercall page lies outside the loaded image.
    OutsideImage(&'static str, u64),
    /// The module overlaps the kernel image.
    ModuleOverlapsKernel(PhysRange),
    /// More than one module (the PV start info describes one).
    TooManyModules(usize),
    /// The layout would end at `end`, past `limit` (where the loader's own
    /// memory starts) or past the domain's RAM.
    DoesNotFit {
        /// End of the initial mapping.
        end: u64,
        /// The highest end allowed.
        limit: u64,
    },
    /// The trampoline's old address is inside the new mapping at a different
    /// page (a VIRT_BASE just above 0).
    TrampolineClash(u64),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::BadImage(r) => write!(f, "bad kernel image range {:#x}..{:#x}", r.start, r.end),
            PlanError::BadVirtBase(v) => write!(f, "unsupported VIRT_BASE {v:#x}"),
            PlanError::OutsideImage(what, v) => write!(f, "{what} {v:#x} is outside the kernel image"),
            PlanError::ModuleOverlapsKernel(r) => write!(
                f,
                "module at {:#x}..{:#x} overlaps the kernel",
                r.start, r.end
            ),
            PlanError::TooManyModules(n) => {
                write!(f, "{n} modules, but a PV kernel takes at most one")
            }
            PlanError::DoesNotFit { end, limit } => write!(
                f,
                "kernel, module and boot data need memory up to {end:#x}, but only {limit:#x} is free"
            ),
            PlanError::TrampolineClash(a) => write!(
                f,
                "the hand-off page at {a:#x} falls inside the new kernel's mapping"
            ),
        }
    }
}

/// Where the next kernel's bootstrap elements go (pseudo-physical addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// VIRT_BASE.
    pub virt_base: u64,
    /// The kernel image.
    pub image: PhysRange,
    /// Where the module is to be when the kernel starts (moved or in place).
    pub module: Option<PhysRange>,
    /// Whether start_info.mod_start is a frame number (SIF_MOD_START_PFN).
    pub module_by_pfn: bool,
    /// The p2m list.
    pub p2m: PhysRange,
    /// The start info page.
    pub start_info: u64,
    /// Where the xenstore ring's frame is to be.
    pub xenstore: u64,
    /// Where the console ring's frame is to be.
    pub console: u64,
    /// The page tables.
    pub tables: PhysRange,
    /// The boot stack page, which also holds the trampoline.
    pub stack: u64,
    /// End of the initial mapping (pseudo-physical; virtual = + virt_base).
    pub map_end: u64,
    /// The table counts per level 3, 2, 1 of the initial mapping.
    main: [TableRun; 3],
    /// Tables only the trampoline alias needs, per level 3, 2, 1.
    alias: [Option<u64>; 3],
}

/// Consecutive table ids of one level: `first..first + count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TableRun {
    first: u64,
    count: u64,
}

/// The id of the level-`level` table (1 = L1) mapping 48-bit address `va`:
/// its address divided by what one such table spans.
fn table_id(va: u64, level: u32) -> u64 {
    (va & VA_MASK) >> (12 + 9 * level)
}

/// Tables of each level 3, 2, 1 needed to map `[va, va + len)`.
/// `len` is at most [`MAX_PHYS`] and a nonzero page multiple, so nothing
/// overflows; a range that leaves the 48-bit space is refused by `plan`.
fn runs(va: u64, len: u64) -> [TableRun; 3] {
    let first = va & VA_MASK;
    let last = first + len - 1;
    [3u32, 2, 1].map(|l| {
        let shift = 12 + 9 * l;
        TableRun {
            first: first >> shift,
            count: (last >> shift) - (first >> shift) + 1,
        }
    })
}

fn page_up(x: u64) -> Option<u64> {
    x.checked_next_multiple_of(PAGE)
}

fn overlaps(a: PhysRange, b: PhysRange) -> bool {
    a.start < b.end && b.start < a.end
}

/// Plans the hand-off. `modules` are where the caller loaded them,
/// `nr_pages` is the domain's page count, and everything planned must end
/// below `limit` (the start of the loader's own memory).
pub fn plan(
    kernel: &PvKernel,
    modules: &[PhysRange],
    nr_pages: u64,
    limit: u64,
) -> Result<Layout, PlanError> {
    let image = kernel.image;
    if image.start >= image.end || !image.start.is_multiple_of(PAGE) || image.end > limit {
        return Err(PlanError::BadImage(image));
    }
    let vb = kernel.virt_base;
    if !vb.is_multiple_of(PAGE) {
        return Err(PlanError::BadVirtBase(vb));
    }
    let virt = |p: u64| vb.wrapping_add(p);
    let in_image = |va: u64| {
        let p = va.wrapping_sub(vb);
        p >= image.start && p < image.end
    };
    if !in_image(kernel.entry) {
        return Err(PlanError::OutsideImage("entry point", kernel.entry));
    }
    if let Some(h) = kernel.hypercall_page {
        if !h.is_multiple_of(PAGE) || !in_image(h) || !in_image(h + PAGE - 1) {
            return Err(PlanError::OutsideImage("hypercall page", h));
        }
    }
    let module = match modules {
        [] => None,
        [m] if m.start < m.end => Some(*m),
        [_] => None,
        more => return Err(PlanError::TooManyModules(more.len())),
    };
    if let Some(m) = module {
        if overlaps(m, image) {
            return Err(PlanError::ModuleOverlapsKernel(m));
        }
    }
    let ram_end = nr_pages.saturating_mul(PAGE);
    let limit = limit.min(ram_end).min(MAX_PHYS);
    let too_big = |end: u64| PlanError::DoesNotFit { end, limit };

    // With the module outside the layout first, then (if that is not
    // allowed or it would be in the way) with it moved after the kernel.
    let kernel_end = page_up(image.end).ok_or(too_big(u64::MAX))?;
    let in_place = |m: PhysRange| kernel.mod_start_pfn && m.start.is_multiple_of(PAGE);
    let mut layout = lay_out(kernel, None, kernel_end, nr_pages, limit)?;
    match module {
        Some(m)
            if in_place(m)
                && !overlaps(
                    m,
                    PhysRange {
                        start: image.start,
                        end: layout.map_end,
                    },
                ) =>
        {
            layout.module = Some(m);
            layout.module_by_pfn = true;
        }
        Some(m) => {
            let moved = PhysRange {
                start: kernel_end,
                end: kernel_end
                    .checked_add(m.end - m.start)
                    .ok_or(too_big(u64::MAX))?,
            };
            let after = page_up(moved.end).ok_or(too_big(u64::MAX))?;
            layout = lay_out(kernel, Some(moved), after, nr_pages, limit)?;
            layout.module_by_pfn = kernel.mod_start_pfn;
        }
        None => {}
    }
    // The mapping must stay in one canonical half, out of Xen's slots.
    let first = virt(0) & VA_MASK;
    let last = first
        .checked_add(layout.map_end - 1)
        .filter(|&l| l <= VA_MASK);
    let canonical = |a: u64| !((1 << 47)..0xFFFF_8000_0000_0000).contains(&a);
    match last {
        Some(l)
            if canonical(virt(0))
                && canonical(virt(layout.map_end - 1))
                && (first >> 47) == (l >> 47)
                && !(first >> 39..=l >> 39).any(|s| XEN_L4_SLOTS.contains(&s)) => {}
        _ => return Err(PlanError::BadVirtBase(vb)),
    }
    Ok(layout)
}

/// Lays the elements out from `next` (the end of the kernel or module).
fn lay_out(
    kernel: &PvKernel,
    module: Option<PhysRange>,
    next: u64,
    nr_pages: u64,
    limit: u64,
) -> Result<Layout, PlanError> {
    let too_big = |end: u64| PlanError::DoesNotFit { end, limit };
    let p2m_bytes = nr_pages
        .checked_mul(8)
        .and_then(page_up)
        .ok_or(too_big(u64::MAX))?;
    let p2m = PhysRange {
        start: next,
        end: next.checked_add(p2m_bytes).ok_or(too_big(u64::MAX))?,
    };
    let start_info = p2m.end;
    let tables_start = start_info.saturating_add(3 * PAGE);
    if tables_start > limit {
        return Err(too_big(tables_start));
    }
    let vb = kernel.virt_base;
    // libxenguest's loop: grow the mapping until it holds its own tables,
    // the boot stack and the padding.
    let mut extra = 1 + PADDING / PAGE;
    loop {
        let end = ((tables_start + extra * PAGE) | (MAP_ALIGN - 1)) + 1;
        if end > limit {
            return Err(too_big(end));
        }
        let main = runs(vb, end);
        let count = 1 + main.iter().map(|r| r.count).sum::<u64>();
        // Room for up to 3 alias tables too (see below).
        let needed = tables_start + (count + 3) * PAGE + PAGE + PADDING;
        if needed <= end {
            let mut l = Layout {
                virt_base: vb,
                image: kernel.image,
                module,
                module_by_pfn: false,
                p2m,
                start_info,
                xenstore: start_info + PAGE,
                console: start_info + 2 * PAGE,
                tables: PhysRange {
                    start: tables_start,
                    end: 0,
                },
                stack: 0,
                map_end: end,
                main,
                alias: [None; 3],
            };
            // The alias tables (at most 3) depend on where the stack lands,
            // which depends on how many there are: settle it.
            let mut alias_count = 0;
            let mut settled = false;
            for _ in 0..4 {
                let n = l.plan_alias(tables_start + (count + alias_count) * PAGE)?;
                if n == alias_count {
                    settled = true;
                    break;
                }
                alias_count = n;
            }
            if !settled {
                return Err(PlanError::TrampolineClash(tables_start));
            }
            l.tables.end = tables_start + (count + alias_count) * PAGE;
            l.stack = l.tables.end;
            return Ok(l);
        }
        extra = count + 3 + 1 + PADDING / PAGE;
    }
}

impl Layout {
    /// Decides the alias tables for a boot stack at `stack`; returns how
    /// many tables they add.
    fn plan_alias(&mut self, stack: u64) -> Result<u64, PlanError> {
        self.alias = [None; 3];
        if self.virt_base == 0 {
            return Ok(0);
        }
        // The old (1:1) address of the stack page must not be a different
        // page of the new mapping.
        let main_va = self.virt_base & VA_MASK;
        if stack < main_va + self.map_end && main_va < stack + PAGE {
            return Err(PlanError::TrampolineClash(stack));
        }
        let mut n = 0;
        for (i, level) in [3u32, 2, 1].into_iter().enumerate() {
            let id = table_id(stack, level);
            let run = self.main[i];
            if !(run.first..run.first + run.count).contains(&id) {
                self.alias[i] = Some(id);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Number of page-table pages (start_info.nr_pt_frames).
    pub fn nr_tables(&self) -> u64 {
        (self.tables.end - self.tables.start) / PAGE
    }

    /// The end of the bootstrap elements: the boot stack's top.
    pub fn bootstrap_end(&self) -> u64 {
        self.stack + PAGE
    }

    /// The virtual address of pseudo-physical `paddr` in the new mapping.
    pub fn virt(&self, paddr: u64) -> u64 {
        self.virt_base.wrapping_add(paddr)
    }

    /// The virtual address where the trampoline runs in both address spaces.
    pub fn trampoline_va(&self) -> u64 {
        self.stack
    }

    /// The position (0 = the L4) of the level-`level` table with id `id`.
    fn position(&self, level: u32, id: u64) -> Option<u64> {
        if level == 4 {
            return Some(0);
        }
        let i = (3 - level) as usize;
        let mut before = 1;
        for r in &self.main[..i] {
            before += r.count;
        }
        let run = self.main[i];
        if (run.first..run.first + run.count).contains(&id) {
            return Some(before + id - run.first);
        }
        let main_total: u64 = self.main.iter().map(|r| r.count).sum();
        let mut pos = 1 + main_total;
        for (j, a) in self.alias.iter().enumerate() {
            if let Some(a) = a {
                if j == i && *a == id {
                    return Some(pos);
                }
                pos += 1;
            }
        }
        None
    }

    /// Level and id of the table at `position`.
    fn table_at(&self, position: u64) -> Option<(u32, u64)> {
        if position == 0 {
            return Some((4, 0));
        }
        let mut p = position - 1;
        for (i, r) in self.main.iter().enumerate() {
            if p < r.count {
                return Some((3 - i as u32, r.first + p));
            }
            p -= r.count;
        }
        for (i, a) in self.alias.iter().enumerate() {
            if let Some(a) = a {
                if p == 0 {
                    return Some((3 - i as u32, *a));
                }
                p -= 1;
            }
        }
        None
    }

    /// Entry `slot` of the page-table page at `position` (0 = the L4), with
    /// `mfn` giving the machine frame of a pseudo-physical frame. `None`
    /// if `position` is past the last table or `mfn` fails.
    pub fn table_entry(
        &self,
        position: u64,
        slot: u64,
        mfn: impl Fn(u64) -> Option<u64>,
    ) -> Option<u64> {
        use xen_abi::pv::pte;
        let (level, id) = self.table_at(position)?;
        let child = id * ENTRIES + slot;
        if level > 1 {
            if level == 4 && XEN_L4_SLOTS.contains(&slot) {
                return Some(0);
            }
            return Some(match self.position(level - 1, child) {
                Some(p) => (mfn((self.tables.start + p * PAGE) / PAGE)? * PAGE) | pte::TABLE,
                None => 0,
            });
        }
        let va = child * PAGE;
        let main = self.virt_base & VA_MASK;
        let pfn = if va >= main && va - main < self.map_end {
            (va - main) / PAGE
        } else if self.virt_base != 0 && va == self.stack {
            self.stack / PAGE
        } else {
            return Some(0);
        };
        let paddr = pfn * PAGE;
        let flags = if paddr >= self.tables.start && paddr < self.tables.end {
            pte::L1_KERNEL & !pte::RW
        } else {
            pte::L1_KERNEL
        };
        Some((mfn(pfn)? * PAGE) | flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen_abi::pv::pte;

    const MIB: u64 = 1 << 20;

    fn hello() -> PvKernel {
        PvKernel {
            virt_base: 0,
            image: PhysRange {
                start: MIB,
                end: MIB + 300 * 1024 + 12,
            },
            entry: MIB + 0x40,
            hypercall_page: Some(MIB + 0x1000),
            mod_start_pfn: false,
        }
    }

    fn linux() -> PvKernel {
        let vb = 0xFFFF_FFFF_8000_0000;
        PvKernel {
            virt_base: vb,
            image: PhysRange {
                start: 16 * MIB,
                end: 60 * MIB,
            },
            entry: vb + 16 * MIB + 0x1234,
            hypercall_page: Some(vb + 17 * MIB),
            mod_start_pfn: true,
        }
    }

    /// 256 MiB of RAM, the loader at 128 MiB.
    const PAGES: u64 = 65536;
    const LIMIT: u64 = 128 * MIB;

    /// Walks the planned tables from the L4 like the MMU (mfn = pfn + 0x10000).
    fn walk(l: &Layout, va: u64) -> Option<u64> {
        let mfn = |pfn| Some(pfn + 0x10000);
        let mut pos = 0;
        for level in (1..=4u32).rev() {
            let slot = (va & VA_MASK) >> (12 + 9 * (level - 1)) & 511;
            let e = l.table_entry(pos, slot, mfn)?;
            if e & pte::PRESENT == 0 {
                return None;
            }
            let frame = (e & pte::FRAME_MASK) / PAGE;
            if level == 1 {
                return Some(e);
            }
            pos = frame - 0x10000 - l.tables.start / PAGE;
        }
        None
    }

    #[test]
    fn hello_layout_follows_libxenguest() {
        let l = plan(&hello(), &[], PAGES, LIMIT).unwrap();
        let kend = MIB + 304 * 1024;
        assert_eq!(
            l.p2m,
            PhysRange {
                start: kend,
                end: kend + 512 * 1024
            }
        );
        assert_eq!(l.start_info, kend + 512 * 1024);
        assert_eq!(l.xenstore, l.start_info + PAGE);
        assert_eq!(l.console, l.start_info + 2 * PAGE);
        assert_eq!(l.tables.start, l.start_info + 3 * PAGE);
        // One L4, L3, L2 and two L1s (the mapping is 4 MiB).
        assert_eq!(l.nr_tables(), 5);
        assert_eq!(l.stack, l.tables.end);
        assert_eq!(l.map_end, 4 * MIB);
        assert!(l.map_end >= l.bootstrap_end() + PADDING);
        assert_eq!(l.trampoline_va(), l.stack);
    }

    #[test]
    fn tables_map_everything_and_themselves_read_only() {
        for k in [hello(), linux()] {
            let l = plan(&k, &[], PAGES, LIMIT).unwrap();
            for p in (0..l.map_end).step_by(PAGE as usize) {
                let e = walk(&l, l.virt(p)).unwrap_or_else(|| panic!("{:#x} unmapped", l.virt(p)));
                assert_eq!((e & pte::FRAME_MASK) / PAGE, p / PAGE + 0x10000);
                let table = p >= l.tables.start && p < l.tables.end;
                assert_eq!(e & pte::RW == 0, table, "{p:#x}");
            }
            assert_eq!(walk(&l, l.virt(l.map_end)), None);
            // The trampoline page at its old address.
            let e = walk(&l, l.trampoline_va()).unwrap();
            assert_eq!((e & pte::FRAME_MASK) / PAGE, l.stack / PAGE + 0x10000);
            assert_ne!(e & pte::RW, 0);
        }
    }

    #[test]
    fn linux_alias_tables_come_last() {
        let l = plan(&linux(), &[], PAGES, LIMIT).unwrap();
        // Kernel L4 slot 511: L4, L3, L2 first (Linux frees them), the
        // L1s, then three alias tables for the low address.
        assert_eq!(l.table_at(0), Some((4, 0)));
        assert_eq!(l.table_at(1).unwrap().0, 3);
        assert_eq!(l.table_at(2).unwrap().0, 2);
        assert_eq!(l.alias.iter().flatten().count(), 3);
        let n = l.nr_tables();
        assert_eq!(l.table_at(n - 1).unwrap().0, 1);
        assert_eq!(l.table_at(n), None);
        assert!(l.map_end >= l.bootstrap_end() + PADDING);
        assert_eq!(l.map_end % MAP_ALIGN, 0);
        // 64 MiB mapped: 32 L1s.
        assert_eq!(l.main[2].count, l.map_end / (2 * MIB));
    }

    #[test]
    fn modules_move_or_stay() {
        let m = PhysRange {
            start: 200 * MIB,
            end: 210 * MIB,
        };
        // Linux takes a frame number: the module stays where it is.
        let l = plan(&linux(), &[m], PAGES, LIMIT).unwrap();
        assert_eq!(l.module, Some(m));
        assert!(l.module_by_pfn);
        // hello needs it mapped: it moves after the kernel.
        let l = plan(&hello(), &[m], PAGES, LIMIT).unwrap();
        let kend = MIB + 304 * 1024;
        assert_eq!(
            l.module,
            Some(PhysRange {
                start: kend,
                end: kend + 10 * MIB
            })
        );
        assert!(!l.module_by_pfn);
        assert_eq!(l.p2m.start, kend + 10 * MIB);
        // A module in the way of the layout moves too.
        let low = PhysRange {
            start: 61 * MIB,
            end: 62 * MIB,
        };
        let l = plan(&linux(), &[low], PAGES, LIMIT).unwrap();
        assert_eq!(l.module.unwrap().start, 60 * MIB);
        assert!(l.module_by_pfn);
    }

    /// Random inputs never panic (overflow checks are on in tests), and
    /// every layout accepted keeps the ABI's promises.
    #[test]
    fn random_inputs_never_panic() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let pick = |r: u64, choices: &[u64]| choices[(r % choices.len() as u64) as usize];
        let mut accepted = 0;
        for _ in 0..20_000 {
            let vb = pick(
                next(),
                &[
                    0,
                    0xFFFF_FFFF_8000_0000,
                    0xFFFF_8000_0000_0000,
                    0x1000,
                    !0xfff,
                    next() & !0xfff,
                    next(),
                ],
            );
            let start = pick(next(), &[MIB, 16 * MIB, next() % (256 * MIB), next()]) & !0xfff;
            let end = start.wrapping_add(pick(
                next(),
                &[PAGE, 40 * MIB, next() % (200 * MIB), next()],
            ));
            let k = PvKernel {
                virt_base: vb,
                image: PhysRange { start, end },
                entry: vb.wrapping_add(start),
                hypercall_page: [None, Some(vb.wrapping_add(start)), Some(next())]
                    [(next() % 3) as usize],
                mod_start_pfn: next() % 2 == 0,
            };
            let m = PhysRange {
                start: next() % (512 * MIB),
                end: next() % (512 * MIB),
            };
            let two = [m, m];
            let mods = &two[..(next() % 3) as usize];
            let pages = pick(next(), &[PAGES, 1, 1 << 40, u64::MAX, next() % (1 << 20)]);
            let limit = pick(next(), &[LIMIT, u64::MAX, next()]);
            if let Ok(l) = plan(&k, mods, pages, limit) {
                accepted += 1;
                assert!(l.map_end >= l.bootstrap_end() + PADDING);
                assert!(l.map_end <= limit.min(pages.saturating_mul(PAGE)));
                assert!(l.image.end <= l.p2m.start || l.module.is_some());
                for p in 0..l.nr_tables() {
                    for slot in [0, 1, 255, 256, 511] {
                        let _ = l.table_entry(p, slot, Some);
                    }
                }
            }
        }
        // The generator reaches the accepting paths too, not only refusals.
        assert!(accepted > 200, "only {accepted} layouts accepted");
    }

    #[test]
    fn refusals() {
        let m = PhysRange {
            start: 200 * MIB,
            end: 210 * MIB,
        };
        assert_eq!(
            plan(&hello(), &[m, m], PAGES, LIMIT),
            Err(PlanError::TooManyModules(2))
        );
        let over = PhysRange {
            start: MIB,
            end: 2 * MIB,
        };
        assert_eq!(
            plan(&hello(), &[over], PAGES, LIMIT),
            Err(PlanError::ModuleOverlapsKernel(over))
        );
        let mut big = linux();
        big.image.end = 127 * MIB;
        assert!(matches!(
            plan(&big, &[], PAGES, LIMIT),
            Err(PlanError::DoesNotFit { .. })
        ));
        // Too little RAM for the layout.
        assert!(matches!(
            plan(&hello(), &[], 512, LIMIT),
            Err(PlanError::DoesNotFit { .. })
        ));
        let mut k = hello();
        k.entry = 0x10;
        assert!(matches!(
            plan(&k, &[], PAGES, LIMIT),
            Err(PlanError::OutsideImage(..))
        ));
        k = hello();
        k.virt_base = 0xFFFF_8000_0000_0000; // Xen's own slots
        k.entry += k.virt_base;
        k.hypercall_page = None;
        assert_eq!(
            plan(&k, &[], PAGES, LIMIT),
            Err(PlanError::BadVirtBase(k.virt_base))
        );
        k = hello();
        k.virt_base = 0x1000; // the stack's old address is another new page
        k.entry += 0x1000;
        k.hypercall_page = None;
        assert!(matches!(
            plan(&k, &[], PAGES, LIMIT),
            Err(PlanError::TrampolineClash(_))
        ));
        let mut k = hello();
        k.image.start += 1;
        assert!(matches!(
            plan(&k, &[], PAGES, LIMIT),
            Err(PlanError::BadImage(_))
        ));
    }
}
