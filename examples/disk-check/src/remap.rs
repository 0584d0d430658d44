//! `remap`: what a next kernel redoes in a domain another kernel ran in,
//! done in place (PVH only): shared info and grant-table frame 0 move to a
//! hole above RAM and back, the frames they leave are holes (read as all
//! ones) until populated again, the grant table is set up again, the
//! upcall vector and the hypercall page are registered again. Every step
//! is checked against what Xen 4.17 does, so the same guest passes on
//! Xenolith and on real Xen.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use guest_lib::arch::cpu;
use guest_lib::hypercall::{self, hypercall3};
use guest_lib::xen_abi::grant_table as gt;
use guest_lib::xen_abi::{hvm, hypercall as nr, memory, shared_info as si, DOMID_SELF};
use guest_lib::{gnttab, println, shared_info, BootInfo};

const PAGE: u64 = 4096;

fn read_u64(addr: u64) -> u64 {
    // SAFETY: `addr` is identity-mapped (the guest maps 0..4 GiB) and is
    // RAM, a Xen page or a hole; a hole reads as all ones on Xen and here.
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}

fn write_u64(addr: u64, value: u64) {
    // SAFETY: as for read_u64; only called on a page just populated, which
    // nothing else uses.
    unsafe { core::ptr::write_volatile(addr as *mut u64, value) }
}

fn add_to_physmap(space: u32, idx: u64, gpa: u64) -> i64 {
    let mut x = memory::AddToPhysmap { domid: DOMID_SELF, size: 0, space, idx, gpfn: gpa / PAGE };
    // SAFETY: a struct xen_add_to_physmap; the pages it moves are shared
    // info and grant frame 0, which nothing touches while they move
    // (interrupts are off and no grant is in use).
    match unsafe { hypercall::memory_op(memory::XENMEM_ADD_TO_PHYSMAP, &mut x) } {
        Ok(_) => 0,
        Err(e) => -e.0,
    }
}

fn reservation(cmd: u32, gpa: u64) -> i64 {
    let mut gfn = gpa / PAGE;
    let mut r = memory::MemoryReservation {
        extent_start: &mut gfn as *mut u64 as u64,
        nr_extents: 1,
        extent_order: 0,
        mem_flags: 0,
        domid: DOMID_SELF,
        pad: [0; 3],
    };
    // SAFETY: a struct xen_memory_reservation naming one frame number.
    match unsafe { hypercall::memory_op(cmd, &mut r) } {
        Ok(n) => n as i64,
        Err(e) => -e.0,
    }
}

fn current_reservation() -> i64 {
    let mut dom = DOMID_SELF;
    // SAFETY: XENMEM_current_reservation takes a domid_t.
    match unsafe { hypercall::memory_op(memory::XENMEM_CURRENT_RESERVATION, &mut dom) } {
        Ok(n) => n as i64,
        Err(e) => -e.0,
    }
}

/// GNTTABOP_setup_table for one frame: its gfn, or the status.
fn setup_table() -> Result<u64, i64> {
    let mut gfn = 0u64;
    let mut op = gt::SetupTable { dom: DOMID_SELF, pad: 0, nr_frames: 1, status: 0, pad2: [0; 3], frame_list: &mut gfn as *mut u64 as u64 };
    // SAFETY: one struct gnttab_setup_table with room for one frame number.
    let rc = unsafe { hypercall3(nr::GRANT_TABLE_OP, gt::GNTTABOP_SETUP_TABLE.into(), &mut op as *mut _ as u64, 1) };
    match (rc, op.status) {
        (0, 0) => Ok(gfn),
        (0, st) => Err(st.into()),
        (rc, _) => Err(rc),
    }
}

fn set_version(version: u32) -> i64 {
    let mut op = gt::SetVersion { version };
    // SAFETY: one struct gnttab_set_version.
    unsafe { hypercall3(nr::GRANT_TABLE_OP, gt::GNTTABOP_SET_VERSION.into(), &mut op as *mut _ as u64, 1) }
}

/// A frame above RAM (and above anything the memory map names) that is
/// identity-mapped: a hole on Xen and here.
fn hole(boot: &BootInfo) -> Option<u64> {
    let top = boot.memory_map().iter().map(|r| r.end()).filter(|&e| e < 0xF000_0000).max()?;
    let gpa = (top + (1 << 20)) & !((1 << 20) - 1);
    let free = boot.memory_map().iter().all(|r| gpa + PAGE <= r.start || gpa >= r.end());
    (free && gpa < 0xF000_0000).then_some(gpa)
}

struct Checks {
    lines: Vec<String>,
    failed: u32,
}

impl Checks {
    fn expect(&mut self, what: &str, ok: bool, detail: String) {
        if !ok {
            self.failed += 1;
        }
        self.lines.push(format!("remap: {} {what}{}", if ok { "ok" } else { "FAIL" }, if ok { String::new() } else { format!(": {detail}") }));
    }
}

/// Runs the checks; returns how many failed (their lines are printed).
pub fn run(boot: &BootInfo) -> u32 {
    if guest_lib::arch::mode() == guest_lib::arch::Mode::Pv {
        println!("remap: skipped (PV guests have no physmap to move pages in)");
        return 0;
    }
    let Some(hole) = hole(boot) else {
        println!("remap: FAIL no hole above RAM in the memory map");
        return 1;
    };
    let mut c = Checks { lines: Vec::new(), failed: 0 };
    let si_page = shared_info::page_addr();
    let held = current_reservation();

    // A grant whose entry must travel with frame 0.
    let gref = match gnttab::grant_access(0, si_page / PAGE + 1, true) {
        Ok(r) => r,
        Err(e) => {
            println!("remap: FAIL cannot grant a page: {e}");
            return 1;
        }
    };
    let frame0 = setup_table();
    c.expect("setup_table names grant frame 0's gfn", frame0.is_ok(), format!("{frame0:?}"));
    let frame0 = frame0.unwrap_or(0) * PAGE;
    let entry = read_u64(frame0 + u64::from(gref) * 8);

    // Shared info: nothing may read it while it moves (no upcalls, no clock).
    let irq = cpu::irq_save();
    let mask0 = read_u64(si_page + si::EVTCHN_MASK as u64);
    let moved = add_to_physmap(memory::XENMAPSPACE_SHARED_INFO, 0, hole);
    let at_hole = read_u64(hole + si::EVTCHN_MASK as u64);
    let left = read_u64(si_page + si::EVTCHN_MASK as u64);
    let populated = reservation(memory::XENMEM_POPULATE_PHYSMAP, si_page);
    write_u64(si_page + 8, 0x5eed);
    let ram_again = read_u64(si_page + 8);
    let back = add_to_physmap(memory::XENMAPSPACE_SHARED_INFO, 0, si_page);
    let hole_again = read_u64(hole + si::EVTCHN_MASK as u64);
    let mask_back = read_u64(si_page + si::EVTCHN_MASK as u64);
    cpu::irq_restore(irq);
    c.expect("shared info moves to a hole above RAM", moved == 0, format!("add_to_physmap returned {moved}"));
    c.expect("its content moves with it", at_hole == mask0, format!("mask word {at_hole:#x}, was {mask0:#x}"));
    c.expect("the frame it left is a hole (reads all ones)", left == u64::MAX, format!("read {left:#x}"));
    c.expect("populate_physmap fills that hole with RAM", populated == 1 && ram_again == 0x5eed, format!("returned {populated}, read back {ram_again:#x}"));
    c.expect("shared info moves back over that RAM", back == 0 && mask_back == mask0, format!("returned {back}, mask word {mask_back:#x}"));
    c.expect("and the hole above RAM is a hole again", hole_again == u64::MAX, format!("read {hole_again:#x}"));

    // Grant frame 0, with no grant in use.
    let moved = add_to_physmap(memory::XENMAPSPACE_GRANT_TABLE, 0, hole);
    let at_hole = read_u64(hole + u64::from(gref) * 8);
    let left = read_u64(frame0);
    let gfn_moved = setup_table();
    let populated = reservation(memory::XENMEM_POPULATE_PHYSMAP, frame0);
    let back = add_to_physmap(memory::XENMAPSPACE_GRANT_TABLE, 0, frame0);
    let gfn_back = setup_table();
    let entry_back = read_u64(frame0 + u64::from(gref) * 8);
    c.expect("grant frame 0 moves to the hole with its entries", moved == 0 && at_hole == entry, format!("returned {moved}, entry {at_hole:#x}, was {entry:#x}"));
    c.expect("the frame it left is a hole", left == u64::MAX, format!("read {left:#x}"));
    c.expect("setup_table follows it", gfn_moved == Ok(hole / PAGE), format!("{gfn_moved:?}"));
    c.expect("populate_physmap and a move back restore it", populated == 1 && back == 0 && entry_back == entry, format!("populate {populated}, add_to_physmap {back}, entry {entry_back:#x}"));
    c.expect("setup_table names its old gfn again", gfn_back == Ok(frame0 / PAGE), format!("{gfn_back:?}"));
    let v = set_version(1);
    c.expect("set_version(1) again is accepted", v == 0, format!("returned {v}"));
    let ended = gnttab::end_access(gref);
    c.expect("the grant made before the moves ends", ended.is_ok(), format!("{ended:?}"));
    let now = current_reservation();
    c.expect("the domain holds as many pages as before", now == held && held > 0, format!("{now}, was {held}"));

    // The upcall vector and the hypercall page, registered again.
    let cb = hypercall::hvm_get_param(hvm::PARAM_CALLBACK_IRQ);
    // SAFETY: the same vector the runtime registered, whose gate is installed.
    let again = cb.and_then(|v| unsafe { hypercall::hvm_set_param(hvm::PARAM_CALLBACK_IRQ, v) }.map(|()| v));
    c.expect("HVM_PARAM_CALLBACK_IRQ set again", again.is_ok_and(|v| v != 0), format!("{again:?}"));
    c.expect("hypercall page written again elsewhere", hypercall_page_again(), String::from("no stub for hypercall 1 in the new page"));

    for l in &c.lines {
        println!("{l}");
    }
    c.failed
}

/// Writes the hypercall MSR with a fresh page, checks Xen filled it (each
/// stub starts `mov eax, NR` on Xen and here), and writes the original back.
fn hypercall_page_again() -> bool {
    let Some(xen) = hypercall::detect() else { return false };
    let layout = core::alloc::Layout::from_size_align(4096, 4096).expect("a page");
    // SAFETY: non-zero size.
    let page = unsafe { alloc::alloc::alloc_zeroed(layout) };
    if page.is_null() {
        return false;
    }
    // SAFETY: the MSR is the one Xen named; `page` is ours, page-aligned and
    // identity-mapped; the original page is put back right after.
    unsafe { cpu::wrmsr(xen.msr, page as u64) };
    // SAFETY: 4096 bytes we own; Xen wrote them before WRMSR returned.
    let stub = unsafe { core::slice::from_raw_parts(page.add(32), 2) };
    let ok = stub == [0xb8, 1];
    // SAFETY: as above, the page the runtime installed.
    unsafe { cpu::wrmsr(xen.msr, hypercall::page_addr()) };
    // SAFETY: allocated above with this layout; no longer the hypercall page.
    unsafe { alloc::alloc::dealloc(page, layout) };
    ok
}
