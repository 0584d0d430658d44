//! The classic PV hand-off: starts another 64-bit PV kernel in this domain,
//! as pvgrub 1 (Mini-OS kexec, xen's stubdom/grub/kexec.c) did.
//!
//! The caller has loaded the kernel's segments at their pseudo-physical
//! addresses (below our image) and describes them with a [`PvKernel`].
//! [`prepare_pv`] does steps 1 to 3 (all that can fail; the caller can
//! still carry on), [`PreparedPv::enter`] steps 4 and 5; [`kexec_pv`] is
//! both. Following the plan of [`crate::pv_handoff`]:
//!
//! 1. moves the module after the kernel if the plan says so;
//! 2. writes the p2m list (a copy of ours, except that the console and
//!    xenstore ring frames trade places with the frames at the layout's
//!    console and xenstore pages: the next kernel must reach them through
//!    its initial mapping, as pvgrub's `do_exchange` ensured), the start
//!    info (our console, xenstore and shared info frames), the hypercall page if the kernel names one
//!    (a copy of ours: the builder's domctl that fills it is privileged, and
//!    a 64-bit PV page is the same SYSCALL stubs in every domain), the new
//!    page tables, and the trampoline into the boot stack page;
//! 3. remaps the new tables read-only in our 1:1 map and pins the new L4
//!    (MMUEXT_PIN_L4_TABLE), which makes Xen validate the whole tree; on
//!    failure it undoes that and returns the error;
//! 4. updates the machine-to-physical table for the two moved rings and
//!    their trade partners (MMU_MACHPHYS_UPDATE), drains the console,
//!    masks upcalls (the PV entry state), then closes the timer's VIRQ port
//!    and stops the timer (the next kernel binds VIRQ_TIMER again), and
//!    keeps the console and xenstore ports;
//! 5. jumps to the trampoline at its old address, which is mapped at the
//!    same address in the new tables. It issues one mmuext_op with two
//!    operations: MMUEXT_NEW_BASEPTR to the new L4, then MMUEXT_UNPIN_TABLE
//!    of the old one. Unpinning is required, not tidiness: while pinned,
//!    every frame of our old tables keeps its page-table type, and the next
//!    kernel's first writable mapping of one of them (Linux maps all RAM)
//!    would be refused. Unpinned and no longer loaded, the old tables become
//!    ordinary RAM for the next kernel. No user page table is set (this
//!    domain never had one), so MMUEXT_NEW_USER_BASEPTR is not needed.
//!    Then RSP = the boot stack's top, RSI = the start info, and a jump to
//!    the entry.
//!
//! The trampoline makes its hypercall with an inline SYSCALL, the 64-bit
//! PV hypercall instruction, as pvgrub's boot page did: after the switch
//! our hypercall page is no longer mapped.

use core::convert::Infallible;
use core::fmt;
use core::mem::size_of;

use xen_abi::hypercall as nr;
use xen_abi::pv::{
    MmuUpdate, MmuextOp, StartInfo, MAX_GUEST_CMDLINE, MMUEXT_NEW_BASEPTR, MMUEXT_PIN_L4_TABLE,
    MMUEXT_UNPIN_TABLE, MMU_MACHPHYS_UPDATE, SIF_INITDOMAIN, SIF_MOD_START_PFN, SIF_PRIVILEGED,
};

use super::mm;
use crate::boot::PhysRange;
use crate::hypercall::Errno;
pub use crate::pv_handoff::PvKernel;
use crate::pv_handoff::{plan, Layout, PlanError, PAGE};

/// The 64-bit PV start info magic.
const MAGIC: &str = "xen-3.0-x86_64";

/// Why the hand-off did not happen (the domain is unchanged: the caller
/// may report it and carry on).
#[derive(Clone, Copy, Debug)]
pub enum KexecError {
    /// The layout does not work out.
    Plan(PlanError),
    /// The command line does not fit start_info.cmd_line.
    CommandLineTooLong(usize),
    /// A pseudo-physical frame the new tables map has no machine frame.
    NoMachineFrame(u64),
    /// A hypercall failed.
    Hypercall(&'static str, Errno),
    /// The trampoline code does not fit behind its data (a build problem).
    Trampoline,
    /// A ring page of the start info is not ours or lies in the new layout.
    RingFrame(&'static str, u64),
}

impl fmt::Display for KexecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KexecError::Plan(e) => e.fmt(f),
            KexecError::CommandLineTooLong(n) => write!(
                f,
                "command line is {n} bytes, a PV kernel takes at most {}",
                MAX_GUEST_CMDLINE - 1
            ),
            KexecError::NoMachineFrame(pfn) => write!(f, "page {pfn:#x} has no machine frame"),
            KexecError::Hypercall(what, e) => write!(f, "{what} failed: {e}"),
            KexecError::Trampoline => write!(f, "the hand-off trampoline does not fit"),
            KexecError::RingFrame(what, mfn) => write!(
                f,
                "the {what} ring (machine frame {mfn:#x}) is not a page of ours outside the new kernel's memory"
            ),
        }
    }
}

impl From<PlanError> for KexecError {
    fn from(e: PlanError) -> Self {
        KexecError::Plan(e)
    }
}

core::arch::global_asm!(
    r#"
    /* The trampoline, copied into the next kernel's boot stack page and run
       there; position independent. Its data comes first (struct Trampoline
       below, filled by Rust), then the code. */
    .section .rodata.pv_kexec_trampoline, "a"
    .balign 16
    .globl pv_kexec_blob
pv_kexec_blob:
pv_kexec_ops:
    .fill 48, 1, 0
pv_kexec_stack_top:
    .quad 0
pv_kexec_start_info:
    .quad 0
pv_kexec_entry:
    .quad 0
    .balign 16
    .globl pv_kexec_code
pv_kexec_code:
    /* mmuext_op(ops, 2, NULL, DOMID_SELF): new L4, unpin the old one. */
    leaq pv_kexec_ops(%rip), %rdi
    movl $2, %esi
    xorl %edx, %edx
    movq ${domid_self}, %r10
    movl ${mmuext_op}, %eax
    syscall
    testq %rax, %rax
    jnz 1f
    movq pv_kexec_stack_top(%rip), %rsp
    movq pv_kexec_start_info(%rip), %rsi
    jmpq *pv_kexec_entry(%rip)
    /* Cannot happen (the L4 was validated when pinned); if it does, the
       fault kills the domain and Xen logs it. */
1:  ud2
    .globl pv_kexec_blob_end
pv_kexec_blob_end:
    "#,
    domid_self = const xen_abi::DOMID_SELF,
    mmuext_op = const nr::MMUEXT_OP,
    options(att_syntax)
);

unsafe extern "C" {
    static pv_kexec_blob: u8;
    static pv_kexec_code: u8;
    static pv_kexec_blob_end: u8;
}

/// The trampoline's data, at the start of its blob (layout as in the asm).
#[repr(C)]
struct Trampoline {
    ops: [MmuextOp; 2],
    stack_top: u64,
    start_info: u64,
    entry: u64,
}
const _: () = assert!(size_of::<Trampoline>() == 72);

/// The bytes at pseudo-physical `[paddr, paddr + len)` for writing.
///
/// # Safety
/// The range must be RAM in the 1:1 map below our image that the plan
/// gave to the hand-off (nothing else refers to it), and not a page table.
unsafe fn ram(paddr: u64, len: u64) -> &'static mut [u8] {
    // SAFETY: forwarded to the caller.
    unsafe { core::slice::from_raw_parts_mut(paddr as *mut u8, len as usize) }
}

/// Starts `kernel` (already loaded) in this domain with `modules` (at most
/// one, where the caller loaded it) and `cmdline`: [`prepare_pv`], then
/// [`PreparedPv::enter`]. Returns only if the hand-off cannot be done, with
/// nothing changed that the caller relies on. Callers with frontends close
/// them (and quiesce) between the two steps instead.
pub fn kexec_pv(
    kernel: &PvKernel,
    modules: &[PhysRange],
    cmdline: &str,
) -> Result<Infallible, KexecError> {
    prepare_pv(kernel, modules, cmdline)?.enter()
}

/// Everything of the hand-off that can fail, done: the next kernel's
/// layout is written and its L4 pinned. Either [`enter`](Self::enter) it
/// or [`cancel`](Self::cancel) it.
#[must_use = "a prepared hand-off holds a pinned page table: enter or cancel it"]
pub struct PreparedPv {
    layout: Layout,
    entry: u64,
    new_l4: u64,
    code: u64,
    m2p: [MmuUpdate; 4],
    m2p_len: usize,
}

/// Steps 1 to 3 of the module docs. Nothing the caller uses changes: the
/// writes go to the plan's pages below our image (and the module's new
/// place), and on failure the new tables are made plain RAM again.
pub fn prepare_pv(
    kernel: &PvKernel,
    modules: &[PhysRange],
    cmdline: &str,
) -> Result<PreparedPv, KexecError> {
    if cmdline.len() >= MAX_GUEST_CMDLINE {
        return Err(KexecError::CommandLineTooLong(cmdline.len()));
    }
    let si = super::start_info();
    let limit = crate::arch::image_range().start.min(mm::mapped_limit());
    let layout = plan(kernel, modules, si.nr_pages, limit)?;
    let p2m = mm::p2m_list();
    let moves = ring_moves(&layout, si, p2m)?;
    let new_p2m = |pfn: u64| {
        moves
            .iter()
            .flatten()
            .find_map(|m| {
                (pfn == m.to)
                    .then_some(m.mfn)
                    .or((pfn == m.from).then_some(m.displaced))
            })
            .or_else(|| p2m.get(pfn as usize).copied())
    };
    let mfn = |pfn: u64| new_p2m(pfn).filter(|&m| m < xen_abi::pv::MACH2PHYS_NR_ENTRIES);
    let old_l4 = mm::root_mfn().ok_or(KexecError::NoMachineFrame(si.pt_base / PAGE))?;
    let new_l4 = mfn(layout.tables.start / PAGE)
        .ok_or(KexecError::NoMachineFrame(layout.tables.start / PAGE))?;
    let blob = trampoline_blob()?;

    // 1. The module first: its old place may lie where the rest goes.
    if let (Some(to), Some(from)) = (layout.module, modules.first()) {
        if to.start != from.start {
            // SAFETY: the source is the caller's module; the destination is
            // the plan's (below our image, after the kernel); copy handles
            // an overlap.
            unsafe {
                core::ptr::copy(
                    from.start as *const u8,
                    to.start as *mut u8,
                    (to.end - to.start) as usize,
                )
            };
        }
    }
    // 2. p2m list, start info, hypercall page, tables, trampoline.
    // SAFETY (all `ram` calls below): each range is one of the plan's,
    // below our image and in the 1:1 map; the tables are still writable.
    let list = unsafe { ram(layout.p2m.start, layout.p2m.end - layout.p2m.start) };
    list.fill(0);
    for (pfn, dst) in list.chunks_exact_mut(8).take(p2m.len()).enumerate() {
        let m = new_p2m(pfn as u64).unwrap_or(xen_abi::pv::INVALID_MFN);
        dst.copy_from_slice(&m.to_le_bytes());
    }
    write_start_info(
        unsafe { ram(layout.start_info, PAGE) },
        &layout,
        si,
        cmdline,
    );
    if let Some(va) = kernel.hypercall_page {
        // SAFETY: our hypercall page is one readable page of our image.
        let ours = unsafe {
            core::slice::from_raw_parts(crate::hypercall::page_addr() as *const u8, PAGE as usize)
        };
        unsafe { ram(va - layout.virt_base, PAGE) }.copy_from_slice(ours);
    }
    for position in 0..layout.nr_tables() {
        let page = unsafe { ram(layout.tables.start + position * PAGE, PAGE) };
        for (slot, e) in page.chunks_exact_mut(8).enumerate() {
            let entry = layout
                .table_entry(position, slot as u64, mfn)
                .ok_or(KexecError::NoMachineFrame(position))?;
            e.copy_from_slice(&entry.to_le_bytes());
        }
    }
    let stack = unsafe { ram(layout.stack, PAGE) };
    stack.fill(0);
    stack[..blob.len()].copy_from_slice(blob);
    let data = Trampoline {
        ops: [
            MmuextOp {
                cmd: MMUEXT_NEW_BASEPTR,
                pad: 0,
                arg1: new_l4,
                arg2: 0,
            },
            MmuextOp {
                cmd: MMUEXT_UNPIN_TABLE,
                pad: 0,
                arg1: old_l4,
                arg2: 0,
            },
        ],
        stack_top: layout.virt(layout.bootstrap_end()),
        start_info: layout.virt(layout.start_info),
        entry: kernel.entry,
    };
    // SAFETY: the stack page starts with the blob's data area, which is
    // exactly a `Trampoline` (checked by `trampoline_blob`); unaligned write.
    unsafe { core::ptr::write_unaligned(layout.stack as *mut Trampoline, data) };

    // 3. Tables read-only in our map, then pinned (validated) as an L4.
    let tables = layout.tables;
    // SAFETY: nothing writes the tables from here on.
    if let Err(e) = unsafe { mm::set_writable(tables.start, tables.end, false) } {
        // SAFETY: none of them is a page table yet.
        let _ = unsafe { mm::set_writable(tables.start, tables.end, true) };
        return Err(KexecError::Hypercall(
            "remapping the new page tables read-only",
            e,
        ));
    }
    // SAFETY: pinning changes no mapping.
    let pinned = unsafe {
        mm::mmuext(&mut [MmuextOp {
            cmd: MMUEXT_PIN_L4_TABLE,
            pad: 0,
            arg1: new_l4,
            arg2: 0,
        }])
    };
    if let Err(e) = pinned {
        // SAFETY: the failed pin left the pages untyped: they are RAM again.
        let _ = unsafe { mm::set_writable(tables.start, tables.end, true) };
        return Err(KexecError::Hypercall(
            "pinning the new L4 table (MMUEXT_PIN_L4_TABLE)",
            e,
        ));
    }

    let mut m2p = [MmuUpdate::default(); 4];
    let mut m2p_len = 0;
    for m in moves.iter().flatten() {
        for (frame, to) in [(m.mfn, m.to), (m.displaced, m.from)] {
            m2p[m2p_len] = MmuUpdate {
                ptr: (frame * PAGE) | MMU_MACHPHYS_UPDATE,
                val: to,
            };
            m2p_len += 1;
        }
    }
    Ok(PreparedPv {
        layout,
        entry: kernel.entry,
        new_l4,
        code: layout.trampoline_va() + blob_code_offset(),
        m2p,
        m2p_len,
    })
}

impl PreparedPv {
    /// Gives the hand-off up: unpins the new L4 and makes its tables plain
    /// RAM again.
    pub fn cancel(self) {
        let tables = self.layout.tables;
        // SAFETY: the new tables are not in use; unpinned, they are RAM.
        unsafe {
            let _ = mm::mmuext(&mut [MmuextOp {
                cmd: MMUEXT_UNPIN_TABLE,
                pad: 0,
                arg1: self.new_l4,
                arg2: 0,
            }]);
            let _ = mm::set_writable(tables.start, tables.end, true);
        }
    }

    /// Steps 4 and 5: the rings move in the machine-to-physical table,
    /// the timer's port closes (if the caller has not quiesced already),
    /// the console drains, upcalls are masked, and the trampoline runs.
    /// Frontends must be closed. Nothing of guest-lib that looks frames up
    /// may run after the ring move (only the console, which has its page).
    pub fn enter(self) -> ! {
        let l = &self.layout;
        log::info!(
            "pv kexec: entry {:#x}, start info {:#x}, {} page tables at {:#x}, mapping {:#x}..{:#x}",
            self.entry,
            l.virt(l.start_info),
            l.nr_tables(),
            l.virt(l.tables.start),
            l.virt(0),
            l.virt(l.map_end)
        );
        // Drain first: the flush sleeps on the timer, which shutdown closes.
        let _ = crate::console::flush(core::time::Duration::from_secs(2));
        crate::arch::cpu::disable_interrupts();
        let _ = crate::time::shutdown();
        // SAFETY: the machine-to-physical table changes no mapping; the
        // console keeps its page pointer.
        if let Err(e) = unsafe { mm::mmu_update(&self.m2p[..self.m2p_len]) } {
            // Cannot happen for frames of our own; if it does, the next
            // kernel could not find its console: stop here, visibly.
            crate::console::emergency_print(format_args!(
                "pv kexec: moving the console and xenstore rings (MMU_MACHPHYS_UPDATE) failed: {e}\n"
            ));
            crate::shutdown::crash();
        }
        // SAFETY: `code` is the trampoline just written, mapped at this
        // address in our tables and the new ones; it never returns.
        unsafe { core::arch::asm!("jmp {}", in(reg) self.code, options(noreturn)) }
    }
}

/// A ring frame that moves from pseudo-physical frame `from` to `to`,
/// trading places with the frame `displaced` that is at `to` now.
#[derive(Clone, Copy)]
struct RingMove {
    mfn: u64,
    from: u64,
    to: u64,
    displaced: u64,
}

/// The xenstore and console ring moves (none for a ring already in place).
fn ring_moves(
    layout: &Layout,
    si: &crate::boot::PvStartInfo,
    p2m: &[u64],
) -> Result<[Option<RingMove>; 2], KexecError> {
    let mut moves = [None; 2];
    let rings = [
        ("xenstore", si.store_mfn, layout.xenstore),
        ("console", si.console_mfn, layout.console),
    ];
    for (slot, (what, mfn, to)) in moves.iter_mut().zip(rings) {
        let from = mm::m2p(mfn).ok_or(KexecError::RingFrame(what, mfn))?;
        let to = to / PAGE;
        if from == to {
            continue;
        }
        if from < layout.map_end / PAGE {
            return Err(KexecError::RingFrame(what, mfn));
        }
        let displaced = *p2m.get(to as usize).ok_or(KexecError::NoMachineFrame(to))?;
        *slot = Some(RingMove {
            mfn,
            from,
            to,
            displaced,
        });
    }
    Ok(moves)
}

/// The trampoline template, checked to have room for its data.
fn trampoline_blob() -> Result<&'static [u8], KexecError> {
    let start = &raw const pv_kexec_blob as usize;
    let end = &raw const pv_kexec_blob_end as usize;
    if blob_code_offset() < size_of::<Trampoline>() as u64 || end <= start || end - start > 1024 {
        return Err(KexecError::Trampoline);
    }
    // SAFETY: the blob is read-only data of our image between two labels.
    Ok(unsafe { core::slice::from_raw_parts(start as *const u8, end - start) })
}

fn blob_code_offset() -> u64 {
    (&raw const pv_kexec_code as u64) - (&raw const pv_kexec_blob as u64)
}

/// Fills the start info page (zeroed first), as libxenguest's
/// `start_info_x86_64` does; xen-abi encodes the layout.
fn write_start_info(
    page: &mut [u8],
    layout: &Layout,
    si: &crate::boot::PvStartInfo,
    cmdline: &str,
) {
    let mut info = StartInfo::new(MAGIC);
    info.flags = si.flags & (SIF_PRIVILEGED | SIF_INITDOMAIN);
    match layout.module {
        Some(m) if layout.module_by_pfn => {
            info.flags |= SIF_MOD_START_PFN;
            info.mod_start = m.start / PAGE;
            info.mod_len = m.end - m.start;
        }
        Some(m) => {
            info.mod_start = layout.virt(m.start);
            info.mod_len = m.end - m.start;
        }
        None => {}
    }
    info.nr_pages = si.nr_pages;
    info.shared_info = si.shared_info_maddr;
    info.store_mfn = si.store_mfn;
    info.store_evtchn = si.store_evtchn;
    info.console_mfn = si.console_mfn;
    info.console_evtchn = si.console_evtchn;
    info.pt_base = layout.virt(layout.tables.start);
    info.nr_pt_frames = layout.nr_tables();
    info.mfn_list = layout.virt(layout.p2m.start);
    // The caller checked the length: nothing is cut.
    info.set_cmdline(cmdline.as_bytes());
    page.fill(0);
    let bytes = info.to_bytes();
    page[..bytes.len()].copy_from_slice(&bytes);
}
