//! Event channels, 2-level ABI: ports, handlers, and the upcall.
//!
//! Xen signals a port by setting its bit in `evtchn_pending`, the word's bit
//! in vCPU 0's `evtchn_pending_sel`, and `evtchn_upcall_pending`; then, as
//! we ask with HVM_PARAM_CALLBACK_IRQ = (2 << 56) | vector, it injects that
//! vector directly (no LAPIC, no EOI) and keeps re-injecting it while
//! `evtchn_upcall_pending` is set and IF=1. The upcall clears that flag
//! first, takes the selector with an exchange, and for each unmasked pending
//! port clears the pending bit before calling the port's handler, so an
//! event arriving during the handler is seen again.
//!
//! A classic PV guest gets the same upcall as a callback Xen enters while
//! `evtchn_upcall_mask` is 0 (see `arch::x86_64::pv`); both paths end in
//! [`handle_upcall`].
//!
//! All ports start masked ([`init`], or [`mask_all`] for PV); [`bind`]
//! installs a handler and unmasks the port.

use core::sync::atomic::{AtomicU64, Ordering};

use xen_abi::event_channel::{self as ec, Port};

use crate::hypercall::{self, Errno};
use crate::shared_info;
use crate::sync::IrqMutex;

/// A port's handler, run in the upcall with interrupts disabled. Keep it
/// short; it must not allocate or block.
pub type Handler = fn(port: Port, context: usize);

/// Ports with a handler slot (enough for a library OS's few devices).
pub const MAX_PORTS: usize = 1024;

#[derive(Clone, Copy)]
struct Slot {
    handler: Handler,
    context: usize,
}

static HANDLERS: IrqMutex<[Option<Slot>; MAX_PORTS]> = IrqMutex::new([None; MAX_PORTS]);

/// Upcalls taken since boot: a cheap "did anything happen" counter.
static UPCALLS: AtomicU64 = AtomicU64::new(0);

/// Number of upcalls handled since boot.
pub fn upcall_count() -> u64 {
    UPCALLS.load(Ordering::Relaxed)
}

/// Masks every port (64 stores, not 4096 calls) and asks Xen to deliver
/// upcalls on `vector`. Interrupts must still be disabled.
///
/// # Safety
/// The IDT must have a gate for `vector` that ends in [`handle_upcall`].
pub unsafe fn init(vector: u8) -> Result<(), Errno> {
    mask_all();
    let via =
        (xen_abi::hvm::CALLBACK_TYPE_VECTOR << xen_abi::hvm::CALLBACK_TYPE_SHIFT) | vector as u64;
    // SAFETY: the caller guarantees the gate for `vector`.
    unsafe { hypercall::hvm_set_param(xen_abi::hvm::PARAM_CALLBACK_IRQ, via) }
}

/// Masks every port (64 stores). A PV guest, whose upcall is a callback
/// registered at entry rather than a vector, needs only this.
pub fn mask_all() {
    for w in 0..64 {
        shared_info::mask(w).store(u64::MAX, Ordering::Relaxed);
    }
}

/// Installs `handler` for `port` and unmasks it.
pub fn bind(port: Port, handler: Handler, context: usize) -> Result<(), Errno> {
    {
        let mut table = HANDLERS.lock();
        let slot = table
            .get_mut(port as usize)
            .ok_or(Errno(xen_abi::errno::ENOSPC))?;
        *slot = Some(Slot { handler, context });
    }
    unmask(port)
}

/// Masks `port` and removes its handler (the port itself stays open).
pub fn unbind(port: Port) {
    mask(port);
    if let Some(s) = HANDLERS.lock().get_mut(port as usize) {
        *s = None;
    }
}

/// Sets the port's mask bit: Xen then records events but does not upcall.
pub fn mask(port: Port) {
    if port < xen_abi::shared_info::NR_EVENT_CHANNELS {
        shared_info::mask(port as usize / 64).fetch_or(1 << (port % 64), Ordering::SeqCst);
    }
}

/// Clears `port`'s pending bit (for a port polled rather than upcalled).
pub fn clear_pending(port: Port) {
    if port < xen_abi::shared_info::NR_EVENT_CHANNELS {
        Live.clear_pending(port);
    }
}

/// EVTCHNOP_bind_ipi: a port that signals `vcpu` (it starts masked here;
/// the vCPU polls it).
pub fn bind_ipi(vcpu: u32) -> Result<Port, Errno> {
    let mut arg = ec::BindIpi { vcpu, port: 0 };
    // SAFETY: the argument is a struct evtchn_bind_ipi.
    unsafe { hypercall::event_channel_op(ec::EVTCHNOP_BIND_IPI, &mut arg) }?;
    mask(arg.port);
    Ok(arg.port)
}

/// EVTCHNOP_unmask: clears the mask and has Xen re-raise the upcall if the
/// port is already pending.
pub fn unmask(port: Port) -> Result<(), Errno> {
    let mut arg = port;
    // SAFETY: EVTCHNOP_unmask takes struct evtchn_unmask { port }.
    unsafe { hypercall::event_channel_op(ec::EVTCHNOP_UNMASK, &mut arg) }?;
    Ok(())
}

/// EVTCHNOP_send: notifies the other end of `port`.
#[inline]
pub fn send(port: Port) -> Result<(), Errno> {
    let mut arg = port;
    // SAFETY: EVTCHNOP_send takes struct evtchn_send { port }.
    unsafe { hypercall::event_channel_op(ec::EVTCHNOP_SEND, &mut arg) }?;
    Ok(())
}

/// EVTCHNOP_close: closes `port` (after removing its handler).
pub fn close(port: Port) -> Result<(), Errno> {
    unbind(port);
    let mut arg = port;
    // SAFETY: EVTCHNOP_close takes struct evtchn_close { port }.
    unsafe { hypercall::event_channel_op(ec::EVTCHNOP_CLOSE, &mut arg) }?;
    Ok(())
}

/// Closes every port that has a handler except those in `keep`; returns
/// how many were closed and the first error. For the hand-off to another
/// kernel, which must find only the ports the domain builder made.
pub fn close_all_except(keep: &[Port]) -> (usize, Option<Errno>) {
    let ports: alloc::vec::Vec<Port> = {
        let table = HANDLERS.lock();
        (0..MAX_PORTS as Port)
            .filter(|p| table[*p as usize].is_some() && !keep.contains(p))
            .collect()
    };
    let mut first = None;
    for &p in &ports {
        if let Err(e) = close(p) {
            first.get_or_insert(e);
        }
    }
    (ports.len(), first)
}

/// EVTCHNOP_bind_virq: a port for a virtual IRQ (e.g. VIRQ_TIMER) on `vcpu`.
pub fn bind_virq(virq: u32, vcpu: u32) -> Result<Port, Errno> {
    let mut arg = ec::BindVirq {
        virq,
        vcpu,
        port: 0,
    };
    // SAFETY: the argument is a struct evtchn_bind_virq.
    unsafe { hypercall::event_channel_op(ec::EVTCHNOP_BIND_VIRQ, &mut arg) }?;
    Ok(arg.port)
}

/// EVTCHNOP_alloc_unbound: a new port that `remote_dom` may bind to.
pub fn alloc_unbound(remote_dom: xen_abi::DomId) -> Result<Port, Errno> {
    let mut arg = ec::AllocUnbound {
        dom: xen_abi::DOMID_SELF,
        remote_dom,
        port: 0,
    };
    // SAFETY: the argument is a struct evtchn_alloc_unbound.
    unsafe { hypercall::event_channel_op(ec::EVTCHNOP_ALLOC_UNBOUND, &mut arg) }?;
    Ok(arg.port)
}

/// EVTCHNOP_bind_interdomain: connects to `remote_port` of `remote_dom`.
pub fn bind_interdomain(remote_dom: xen_abi::DomId, remote_port: Port) -> Result<Port, Errno> {
    let mut arg = ec::BindInterdomain {
        remote_dom,
        pad: 0,
        remote_port,
        local_port: 0,
    };
    // SAFETY: the argument is a struct evtchn_bind_interdomain.
    unsafe { hypercall::event_channel_op(ec::EVTCHNOP_BIND_INTERDOMAIN, &mut arg) }?;
    Ok(arg.local_port)
}

/// EVTCHNOP_status: what `port` is connected to.
pub fn status(port: Port) -> Result<ec::Status, Errno> {
    let mut arg = ec::Status {
        dom: xen_abi::DOMID_SELF,
        port,
        ..Default::default()
    };
    // SAFETY: the argument is a struct evtchn_status.
    unsafe { hypercall::event_channel_op(ec::EVTCHNOP_STATUS, &mut arg) }?;
    Ok(arg)
}

/// The three bitmaps the upcall reads, abstracted so the scan can be tested
/// on the host.
pub trait EventBitmaps {
    /// Takes (and clears) the selector of words that may have pending bits.
    fn take_selector(&self) -> u64;
    /// `evtchn_pending[word]`.
    fn pending(&self, word: usize) -> u64;
    /// `evtchn_mask[word]`.
    fn mask(&self, word: usize) -> u64;
    /// Clears `port`'s pending bit.
    fn clear_pending(&self, port: Port);
}

/// Calls `f` for every port that is pending and not masked, clearing each
/// pending bit first; returns how many ports fired.
pub fn scan(bits: &impl EventBitmaps, mut f: impl FnMut(Port)) -> usize {
    let mut fired = 0;
    let mut sel = bits.take_selector();
    while sel != 0 {
        let word = sel.trailing_zeros() as usize;
        sel &= sel - 1;
        let mut ready = bits.pending(word) & !bits.mask(word);
        while ready != 0 {
            let bit = ready.trailing_zeros();
            ready &= ready - 1;
            let port = (word * 64) as Port + bit;
            bits.clear_pending(port);
            f(port);
            fired += 1;
        }
    }
    fired
}

/// The live bitmaps of vCPU 0 in the shared info page.
struct Live;

impl EventBitmaps for Live {
    fn take_selector(&self) -> u64 {
        shared_info::pending_sel(0).swap(0, Ordering::AcqRel)
    }
    fn pending(&self, word: usize) -> u64 {
        shared_info::pending(word).load(Ordering::Acquire)
    }
    fn mask(&self, word: usize) -> u64 {
        shared_info::mask(word).load(Ordering::Relaxed)
    }
    fn clear_pending(&self, port: Port) {
        shared_info::pending(port as usize / 64).fetch_and(!(1 << (port % 64)), Ordering::AcqRel);
    }
}

/// The event-channel upcall, called from the interrupt stub with
/// interrupts disabled.
pub fn handle_upcall() {
    UPCALLS.fetch_add(1, Ordering::Relaxed);
    // Cleared before scanning: an event that arrives during the scan sets
    // it again and Xen re-injects the vector after IRET.
    shared_info::upcall_pending(0).store(0, Ordering::SeqCst);
    scan(&Live, |port| {
        let slot = HANDLERS.lock().get(port as usize).copied().flatten();
        if let Some(s) = slot {
            (s.handler)(port, s.context);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::{Cell, RefCell};

    struct Fake {
        sel: Cell<u64>,
        pending: RefCell<[u64; 64]>,
        mask: [u64; 64],
    }

    impl EventBitmaps for Fake {
        fn take_selector(&self) -> u64 {
            self.sel.replace(0)
        }
        fn pending(&self, w: usize) -> u64 {
            self.pending.borrow()[w]
        }
        fn mask(&self, w: usize) -> u64 {
            self.mask[w]
        }
        fn clear_pending(&self, p: Port) {
            self.pending.borrow_mut()[p as usize / 64] &= !(1 << (p % 64));
        }
    }

    #[test]
    fn scan_calls_unmasked_pending_ports_and_clears_them() {
        let mut pending = [0u64; 64];
        pending[0] = 0b1011; // ports 0, 1, 3
        pending[2] = 1 << 63; // port 191
        pending[5] = 1; // port 320, but its word is not selected
        let mut mask = [0u64; 64];
        mask[0] = 0b10; // port 1 masked
        let f = Fake {
            sel: Cell::new(0b101),
            pending: RefCell::new(pending),
            mask,
        };
        let mut seen = Vec::new();
        assert_eq!(scan(&f, |p| seen.push(p)), 3);
        assert_eq!(seen, vec![0, 3, 191]);
        let p = f.pending.borrow();
        assert_eq!(p[0], 0b10, "masked port stays pending");
        assert_eq!(p[2], 0);
        assert_eq!(p[5], 1, "unselected word untouched");
        assert_eq!(f.sel.get(), 0);
    }

    #[test]
    fn empty_selector_does_nothing() {
        let f = Fake {
            sel: Cell::new(0),
            pending: RefCell::new([u64::MAX; 64]),
            mask: [0; 64],
        };
        assert_eq!(scan(&f, |_| panic!()), 0);
    }
}
