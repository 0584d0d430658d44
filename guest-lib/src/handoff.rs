//! Handing the domain to another kernel (a boot loader's last act), PVH.
//!
//! The next kernel must find the domain as a domain builder leaves it: only
//! the console and xenstore event channels open, no xenstore watches, no
//! grants, upcalls not routed anywhere, and every RAM page in the memory
//! map really RAM. The steps, in order:
//!
//! 1. the caller closes its frontends first ([`crate::blkfront::BlkFront::close`]:
//!    xenbus Closing -> Closed, every grant ended, persistent ones included,
//!    ring freed, its port closed);
//! 2. [`quiesce`]: XS_RESET_WATCHES; the console drained; interrupts off,
//!    the one-shot timer stopped; every port guest-lib bound closed
//!    (VIRQ_TIMER and anything left) except the console's and xenstore's,
//!    which the domain builder made and the next kernel finds through
//!    the HVM params; every port masked and HVM_PARAM_CALLBACK_IRQ = 0;
//! 3. [`enter`]: the shared info page and the
//!    grant-table frames are moved out of RAM, to gpfns just past the end
//!    of RAM below 4 GiB that no memory-map entry covers (as GRUB's PVH
//!    image places them), and the RAM frames they covered are refilled with
//!    XENMEM_populate_physmap; then the jump (`arch::x86_64::handoff`).
//!
//! Why move them: on Xen, XENMEM_add_to_physmap puts the shared info or
//! grant frame *instead of* the RAM page at that gpfn (the RAM page is
//! freed). Left there, the next kernel would see Xen's page where its
//! memory map promises RAM, and when it places shared info elsewhere Xen
//! removes the old mapping, leaving a hole in its RAM that faults on first
//! touch. Moving them to a hole and repopulating makes every RAM gpfn plain
//! RAM again; the frames themselves stay at the hole until the next kernel
//! places them where it wants (Xen then moves them again). A populate that
//! fails is reported on the console: the kernel may still boot if it never
//! touches that page, but the line says which.
//!
//! Nothing is printed after the move except such failures (one line each):
//! sleeping and time need the pvclock, which lives in the shared info page;
//! the console ring itself does not.

use crate::boot::{MemoryKind, MemoryRegion};

/// The first page-aligned gpfn of a run of `pages` free gpfns just past
/// the end of RAM below 4 GiB (no memory-map entry of any kind covers it),
/// or `None`.
pub fn hole_after_ram(map: &[MemoryRegion], pages: u64) -> Option<u64> {
    const PAGE: u64 = 4096;
    const LIMIT: u64 = 1 << 32;
    let len = pages.checked_mul(PAGE)?;
    let ram_end = map
        .iter()
        .filter(|r| r.kind == MemoryKind::Ram && r.start < LIMIT)
        .map(|r| r.end().min(LIMIT))
        .max()?;
    let mut start = ram_end.checked_next_multiple_of(PAGE)?;
    // Step over any entries in the way (reserved ranges, ACPI tables).
    loop {
        let end = start.checked_add(len)?;
        if end > LIMIT {
            return None;
        }
        match map.iter().find(|r| r.start < end && r.end() > start) {
            Some(r) => start = r.end().checked_next_multiple_of(PAGE)?,
            None => return Some(start / PAGE),
        }
    }
}

#[cfg(target_os = "none")]
pub use imp::*;

#[cfg(target_os = "none")]
mod imp {
    use core::sync::atomic::Ordering;
    use core::time::Duration;

    use xen_abi::memory::{
        AddToPhysmap, MemoryReservation, XENMAPSPACE_GRANT_TABLE, XENMAPSPACE_SHARED_INFO,
        XENMEM_ADD_TO_PHYSMAP, XENMEM_POPULATE_PHYSMAP,
    };

    use crate::arch::{self, cpu};
    use crate::boot::BootInfo;
    use crate::hypercall::{self, Errno};
    use crate::{console, evtchn, gnttab, shared_info, time, xenstore};

    /// What [`quiesce`] could not do (it goes on regardless: a hand-off
    /// half done is worse than one with a stray watch).
    #[derive(Debug, Default, Clone, Copy)]
    pub struct Quiesced {
        /// Event channels closed.
        pub ports_closed: usize,
        /// XS_RESET_WATCHES failed with this.
        pub reset_watches_failed: Option<crate::xenstore::XsError>,
        /// Closing a port failed with this.
        pub close_failed: Option<Errno>,
    }

    /// Step 2 of the module docs. Frontends must be closed already. Leaves
    /// interrupts disabled; only [`enter`] may follow (printing still
    /// works, sleeping does not).
    pub fn quiesce() -> Quiesced {
        let mut q = Quiesced::default();
        if let Err(e) = xenstore::reset_watches() {
            q.reset_watches_failed = Some(e);
        }
        console::flush(Duration::from_secs(1));
        cpu::disable_interrupts();
        let _ = time::stop_timer();
        let keep: alloc::vec::Vec<_> = [arch::console_ring(), arch::xenstore_ring()]
            .into_iter()
            .filter_map(|r| r.ok().map(|r| r.port))
            .collect();
        let (n, err) = evtchn::close_all_except(&keep);
        q.ports_closed = n;
        q.close_failed = err;
        evtchn::mask_all();
        shared_info::upcall_mask(0).store(1, Ordering::SeqCst);
        if !arch::x86_64::is_pv() {
            // SAFETY: 0 turns upcall delivery off; nothing is lost, every
            // port is masked and the next kernel routes them again.
            let _ = unsafe { hypercall::hvm_set_param(xen_abi::hvm::PARAM_CALLBACK_IRQ, 0) };
        }
        q
    }

    fn add_to_physmap(space: u32, idx: u64, gpfn: u64) -> Result<(), Errno> {
        let mut arg = AddToPhysmap { domid: xen_abi::DOMID_SELF, size: 0, space, idx, gpfn };
        // SAFETY: moves a Xen page to a gpfn outside RAM; nothing of ours
        // is at that gpfn.
        unsafe { hypercall::memory_op(XENMEM_ADD_TO_PHYSMAP, &mut arg) }.map(|_| ())
    }

    fn populate(gpfn: u64) -> Result<(), Errno> {
        let mut frame = gpfn;
        let mut arg = MemoryReservation {
            extent_start: (&raw mut frame) as u64,
            nr_extents: 1,
            extent_order: 0,
            mem_flags: 0,
            domid: xen_abi::DOMID_SELF,
            pad: [0; 3],
        };
        // SAFETY: one gpfn in a local array; Xen fills the (now empty)
        // gpfn with a fresh page.
        let done = unsafe { hypercall::memory_op(XENMEM_POPULATE_PHYSMAP, &mut arg) }?;
        if done == 1 {
            Ok(())
        } else {
            Err(Errno(xen_abi::errno::ENOMEM))
        }
    }

    /// Moves shared info and the grant frames to a hole past RAM and refills
    /// their RAM frames (PVH; a PV guest's frames are machine frames, not
    /// part of its pseudo-physical RAM). Failures are printed, not fatal.
    fn move_xen_pages(boot: &BootInfo) {
        if arch::x86_64::is_pv() {
            return;
        }
        let grants = gnttab::mapped_frames();
        let nr_grant = grants.map_or(0, |(_, n)| u64::from(n));
        let Some(hole) = super::hole_after_ram(boot.memory_map(), 1 + nr_grant) else {
            crate::println!("handoff: no free gpfns past RAM; shared info and grant frames stay in RAM");
            return;
        };
        let mut moved: [(u64, bool); 1 + gnttab::MAX_FRAMES] = [(0, false); 1 + gnttab::MAX_FRAMES];
        let si_pfn = shared_info::page_addr() >> xen_abi::PAGE_SHIFT;
        moved[0] = (si_pfn, add_to_physmap(XENMAPSPACE_SHARED_INFO, 0, hole).is_ok());
        if let Some((base, n)) = grants {
            for i in 0..n as usize {
                let pfn = (base >> xen_abi::PAGE_SHIFT) + i as u64;
                let ok = add_to_physmap(XENMAPSPACE_GRANT_TABLE, i as u64, hole + 1 + i as u64).is_ok();
                if let Some(m) = moved.get_mut(1 + i) {
                    *m = (pfn, ok);
                }
            }
        }
        let (mut unmoved, mut unfilled, mut first_err) = (0, 0, None);
        for &(pfn, was_moved) in moved.iter().take(1 + nr_grant as usize) {
            if !was_moved {
                unmoved += 1;
                continue;
            }
            if let Err(e) = populate(pfn) {
                unfilled += 1;
                first_err.get_or_insert((pfn, e));
            }
        }
        // One line each at most. Printing needs no pvclock (console ring
        // and an event-channel send only).
        if unmoved > 0 {
            crate::println!("handoff: {unmoved} Xen page(s) could not be moved out of RAM");
        }
        if let Some((pfn, e)) = first_err {
            // Our hypervisor keeps RAM behind a moved page; Xen does not.
            crate::println!(
                "handoff: XENMEM_populate_physmap failed for {unfilled} of {} frames (first gpfn {pfn:#x}: {e})",
                1 + nr_grant
            );
        }
    }

    /// A copy done with paging off just before the jump (a kernel staged
    /// away from where it runs because this image is there now).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct FinalCopy {
        /// Where the staged bytes are.
        pub src: u32,
        /// Where they go.
        pub dst: u32,
        /// How many bytes (rounded up to 4).
        pub len: u32,
    }

    /// How the next kernel is entered.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Abi {
        /// PVH: EBX = the `hvm_start_info`.
        Pvh,
        /// Multiboot 1: EAX = 0x2BADB002, EBX = the multiboot information.
        Multiboot1,
    }

    /// Puts the copy stub in a heap block outside both copy ranges.
    fn place_stub(copy: &FinalCopy) -> Option<u32> {
        use alloc::alloc::{alloc, Layout};
        let stub = arch::x86_64::handoff::COPY_STUB;
        let layout = Layout::from_size_align(stub.len(), 16).ok()?;
        // SAFETY: a non-zero size; the block is never freed (the heap ends
        // with this image).
        let p = unsafe { alloc(layout) };
        if p.is_null() {
            return None;
        }
        let at = p as u64;
        let end = at + stub.len() as u64;
        let image = arch::image_range();
        let clear = |start: u32| end <= u64::from(start) || at >= u64::from(start) + u64::from(copy.len);
        if !clear(copy.src) || !clear(copy.dst) || !(end <= image.start || at >= image.end) || end > 1 << 32 {
            return None;
        }
        // SAFETY: `stub.len()` bytes just allocated.
        unsafe { core::ptr::copy_nonoverlapping(stub.as_ptr(), p, stub.len()) };
        Some(at as u32)
    }

    /// Moves the Xen pages out of RAM (see the module docs), does `copy`
    /// if any, and enters the kernel at `entry` with EBX = `info` as `abi`
    /// says, in 32-bit protected mode with paging off.
    ///
    /// # Safety
    /// [`quiesce`] ran (and every frontend was closed before it); the
    /// kernel is loaded (or staged for `copy`) with its entry at `entry`;
    /// `info` and what it points at lie in memory this image no longer
    /// needs, outside the kernel and `copy`'s destination.
    pub unsafe fn enter(boot: &BootInfo, abi: Abi, entry: u32, info: u32, copy: Option<FinalCopy>) -> ! {
        let mut jump = arch::x86_64::handoff::Jump {
            entry,
            ebx: info,
            eax: match abi {
                Abi::Pvh => 0,
                Abi::Multiboot1 => 0x2BAD_B002,
            },
            ..Default::default()
        };
        if let Some(c) = copy {
            let Some(stub) = place_stub(&c) else {
                console::emergency_print(format_args!("handoff: no room for the copy stub\n"));
                crate::shutdown::crash()
            };
            jump.copy_src = c.src;
            jump.copy_dst = c.dst;
            jump.copy_dwords = c.len.div_ceil(4);
            jump.copy_stub = stub;
        }
        move_xen_pages(boot);
        // SAFETY: forwarded to the caller.
        unsafe { arch::x86_64::handoff::enter32(jump) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn region(start: u64, size: u64, kind: MemoryKind) -> MemoryRegion {
        MemoryRegion { start, size, kind }
    }

    #[test]
    fn the_hole_is_just_past_ram() {
        // Our hypervisor's map for memory = 256: RAM, then the special pages.
        let map = [
            region(0, 256 * MIB, MemoryKind::Ram),
            region(0xFEFF_0000, 0x1_0000, MemoryKind::Reserved),
        ];
        assert_eq!(hole_after_ram(&map, 17), Some(0x10000));
        // Something reserved right after RAM is stepped over.
        let map = [
            region(0, 256 * MIB, MemoryKind::Ram),
            region(256 * MIB, 4096 * 3, MemoryKind::Reserved),
        ];
        assert_eq!(hole_after_ram(&map, 1), Some(0x10003));
        // RAM to 4 GiB (and above) leaves no hole below 4 GiB.
        let map = [region(0, 4096 * MIB, MemoryKind::Ram), region(4096 * MIB, MIB, MemoryKind::Ram)];
        assert_eq!(hole_after_ram(&map, 1), None);
        assert_eq!(hole_after_ram(&[], 1), None);
    }
}
