//! Event channels, 2-level ABI: the port table and event delivery into the
//! guest's shared info page, as Xen's event_2l.c does it.

use xen_abi::errno::*;
use xen_abi::event_channel::*;
use xen_abi::shared_info::{self, NR_EVENT_CHANNELS};

use super::sink::SinkId;
use crate::vstate::memory::GuestRam;

/// The state of one port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortState {
    /// Not allocated.
    Free,
    /// Allocated, waiting for `remote_dom` to bind.
    Unbound {
        /// The domain allowed to bind.
        remote_dom: u16,
    },
    /// Connected to a backend in domain 0.
    Interdomain {
        /// The backend, as registered with the domain's sinks.
        sink: SinkId,
    },
    /// Bound to a virtual IRQ.
    Virq {
        /// The VIRQ.
        virq: u32,
    },
    /// An IPI channel to a vCPU.
    Ipi,
    /// Connected to another port of the same domain (bind_interdomain with
    /// the domain itself as the remote end).
    Loopback {
        /// The other end.
        peer: u32,
    },
}

/// Ports the 2-level ABI lets a domain use here; Xen allows 4096, a guest
/// of ours needs few, and the table bound keeps a hostile guest from
/// growing it without limit.
pub const MAX_PORTS: u32 = 1024;

/// Ports Xen sets up at a time (EVTCHNS_PER_BUCKET: a page of 64-byte
/// `struct evtchn`). A port is valid (EVTCHNOP_status answers for it) once
/// its bucket exists: the first at domain creation, the next when a port in
/// it is first allocated; they are never freed, not even by EVTCHNOP_reset.
pub const PORTS_PER_BUCKET: u32 = 64;

/// A domain's event channels.
pub struct EventChannels {
    /// The domain these ports belong to.
    owner: u16,
    ports: Vec<PortState>,
    /// The vCPU each port notifies (Xen's `notify_vcpu_id`).
    notify: Vec<u32>,
    /// Per vCPU, the port bound to each VIRQ (0: none).
    virqs: Vec<[u32; NR_VIRQS as usize]>,
    /// Ports below this are valid (Xen's `valid_evtchns`).
    valid: u32,
}

/// Whether `virq` is bound per vCPU (Xen's `virq_is_global` is false for
/// these): the others are bound on vCPU 0 and can be moved.
fn virq_is_per_vcpu(virq: u32) -> bool {
    matches!(virq, VIRQ_TIMER | VIRQ_DEBUG | VIRQ_XENOPROF)
}

impl EventChannels {
    /// An empty table for domain `owner` with one vCPU (port 0 is
    /// reserved, never allocated).
    pub fn new(owner: u16) -> Self {
        Self::with_vcpus(owner, 1)
    }

    /// An empty table for domain `owner` with `vcpus` vCPUs.
    pub fn with_vcpus(owner: u16, vcpus: usize) -> Self {
        EventChannels {
            owner,
            ports: vec![PortState::Free; MAX_PORTS as usize],
            notify: vec![0; MAX_PORTS as usize],
            virqs: vec![[0; NR_VIRQS as usize]; vcpus.max(1)],
            valid: PORTS_PER_BUCKET,
        }
    }

    fn alloc(&mut self, state: PortState) -> Result<u32, i64> {
        self.alloc_for(state, 0)
    }

    fn alloc_for(&mut self, state: PortState, vcpu: u32) -> Result<u32, i64> {
        let port = (1..MAX_PORTS).find(|&p| self.ports[p as usize] == PortState::Free).ok_or(ENOSPC)?;
        self.ports[port as usize] = state;
        self.notify[port as usize] = vcpu;
        self.valid = self.valid.max((port / PORTS_PER_BUCKET + 1) * PORTS_PER_BUCKET).min(MAX_PORTS);
        Ok(port)
    }

    fn check_vcpu(&self, vcpu: u32) -> Result<(), i64> {
        if (vcpu as usize) < self.virqs.len() {
            Ok(())
        } else {
            Err(ENOENT)
        }
    }

    /// The vCPU `port` notifies.
    pub fn notify_vcpu(&self, port: u32) -> usize {
        self.notify.get(port as usize).copied().unwrap_or(0) as usize
    }

    /// The state of `port`, if it is valid (port 0, reserved, reads as free).
    pub fn state(&self, port: u32) -> Option<PortState> {
        (port < self.valid).then(|| self.ports[port as usize])
    }

    /// Connects a new guest port to `sink` (what the toolstack and the
    /// backend's bind_interdomain do together at domain creation).
    pub fn connect_backend(&mut self, sink: SinkId) -> Result<u32, i64> {
        self.alloc(PortState::Interdomain { sink })
    }

    /// A backend in domain 0 binds to the guest's unbound `port`
    /// (EVTCHNOP_bind_interdomain issued by the backend side).
    pub fn bind_backend(&mut self, port: u32, sink: SinkId) -> Result<(), i64> {
        match self.state(port) {
            Some(PortState::Unbound { remote_dom: 0 }) => {
                self.ports[port as usize] = PortState::Interdomain { sink };
                Ok(())
            }
            Some(PortState::Unbound { .. }) => Err(EPERM),
            _ => Err(EINVAL),
        }
    }

    /// EVTCHNOP_bind_interdomain to `remote_port` of this same domain `me`:
    /// that port must be unbound and waiting for `me`; both become connected.
    pub fn bind_loopback(&mut self, me: u16, remote_port: u32) -> Result<u32, i64> {
        if self.state(remote_port) != Some(PortState::Unbound { remote_dom: me }) {
            return Err(EINVAL);
        }
        let port = self.alloc(PortState::Loopback { peer: remote_port })?;
        self.ports[remote_port as usize] = PortState::Loopback { peer: port };
        Ok(port)
    }

    /// EVTCHNOP_alloc_unbound.
    pub fn alloc_unbound(&mut self, remote_dom: u16) -> Result<u32, i64> {
        self.alloc(PortState::Unbound { remote_dom })
    }

    /// EVTCHNOP_bind_virq: a per-vCPU VIRQ (the timer) on any vCPU, a
    /// global one on vCPU 0 (as Xen: EINVAL elsewhere).
    pub fn bind_virq(&mut self, virq: u32, vcpu: u32) -> Result<u32, i64> {
        if virq >= NR_VIRQS {
            return Err(EINVAL);
        }
        self.check_vcpu(vcpu)?;
        if vcpu != 0 && !virq_is_per_vcpu(virq) {
            return Err(EINVAL);
        }
        if self.virqs[vcpu as usize][virq as usize] != 0 {
            return Err(EEXIST);
        }
        let port = self.alloc_for(PortState::Virq { virq }, vcpu)?;
        self.virqs[vcpu as usize][virq as usize] = port;
        Ok(port)
    }

    /// EVTCHNOP_bind_ipi: a port that notifies `vcpu`.
    pub fn bind_ipi(&mut self, vcpu: u32) -> Result<u32, i64> {
        self.check_vcpu(vcpu)?;
        self.alloc_for(PortState::Ipi, vcpu)
    }

    /// EVTCHNOP_bind_vcpu: `port` notifies `vcpu` from now on. As in Xen,
    /// IPIs and per-vCPU VIRQs stay where they were bound (EINVAL).
    pub fn bind_vcpu(&mut self, port: u32, vcpu: u32) -> Result<(), i64> {
        self.check_vcpu(vcpu)?;
        match self.state(port).ok_or(EINVAL)? {
            PortState::Free | PortState::Ipi => Err(EINVAL),
            PortState::Virq { virq } if virq_is_per_vcpu(virq) => Err(EINVAL),
            _ => {
                self.notify[port as usize] = vcpu;
                Ok(())
            }
        }
    }

    /// The port bound to `virq` on `vcpu`, if any.
    pub fn virq_port(&self, virq: u32, vcpu: usize) -> Option<u32> {
        self.virqs.get(vcpu)?.get(virq as usize).copied().filter(|&p| p != 0)
    }

    /// The backend in domain 0 closes its end of `port` (Linux's
    /// unbind_from_irqhandler when blkback disconnects): as in Xen's
    /// evtchn_close, the guest's end goes back to waiting for domain 0.
    /// Returns whether `port` was connected to `sink`.
    pub fn unbind_backend(&mut self, port: u32, sink: SinkId) -> bool {
        if self.state(port) != Some(PortState::Interdomain { sink }) {
            return false;
        }
        self.ports[port as usize] = PortState::Unbound { remote_dom: 0 };
        true
    }

    /// Whether `port` is connected to `sink`: a backend raises an event
    /// only through a channel that is still bound to it (after the guest
    /// closed it, Xen's send from the other end goes nowhere).
    pub fn is_bound_to(&self, port: u32, sink: SinkId) -> bool {
        self.state(port) == Some(PortState::Interdomain { sink })
    }

    /// The ports connected to `sink`.
    pub fn bound_to(&self, sink: SinkId) -> Vec<u32> {
        (1..self.valid).filter(|&p| self.ports[p as usize] == PortState::Interdomain { sink }).collect()
    }

    /// EVTCHNOP_reset: closes every port of the domain, as Xen's
    /// evtchn_reset does with evtchn_close on each. The other ends of
    /// interdomain channels (console, xenstore, device backends) are left
    /// unbound: nothing reaches the guest through them until a backend
    /// binds afresh. Returns the ports that were open.
    pub fn reset(&mut self) -> Vec<u32> {
        let open: Vec<u32> = (1..MAX_PORTS).filter(|&p| self.ports[p as usize] != PortState::Free).collect();
        for &p in &open {
            // Cannot fail: the port is allocated (a loopback peer closed
            // before it is merely unbound again).
            let _ = self.close(p);
        }
        open
    }

    /// EVTCHNOP_close.
    pub fn close(&mut self, port: u32) -> Result<(), i64> {
        let state = self.state(port).ok_or(EINVAL)?;
        match state {
            PortState::Free => return Err(EINVAL),
            PortState::Virq { virq } => {
                let vcpu = self.notify[port as usize] as usize;
                if let Some(slot) = self.virqs.get_mut(vcpu).and_then(|v| v.get_mut(virq as usize)) {
                    *slot = 0;
                }
            }
            // As in Xen, the other end falls back to waiting for a partner.
            PortState::Loopback { peer } => self.ports[peer as usize] = PortState::Unbound { remote_dom: self.owner },
            _ => {}
        }
        self.ports[port as usize] = PortState::Free;
        self.notify[port as usize] = 0;
        Ok(())
    }

    /// EVTCHNOP_status.
    pub fn status(&self, port: u32) -> Result<Status, i64> {
        let state = self.state(port).ok_or(EINVAL)?;
        let mut st = Status { port, vcpu: self.notify[port as usize], ..Default::default() };
        match state {
            PortState::Free => st.status = EVTCHNSTAT_CLOSED,
            PortState::Unbound { remote_dom } => {
                st.status = EVTCHNSTAT_UNBOUND;
                st.u0 = remote_dom.into();
            }
            PortState::Interdomain { sink } => {
                st.status = EVTCHNSTAT_INTERDOMAIN;
                st.u0 = 0; // domain 0
                st.u1 = sink.remote_port();
            }
            PortState::Virq { virq } => {
                st.status = EVTCHNSTAT_VIRQ;
                st.u0 = virq;
            }
            PortState::Ipi => st.status = EVTCHNSTAT_IPI,
            PortState::Loopback { peer } => {
                st.status = EVTCHNSTAT_INTERDOMAIN;
                st.u0 = self.owner.into();
                st.u1 = peer;
            }
        }
        Ok(st)
    }
}

/// A port's words in the 2-level bitmaps, and its bit in them.
struct PortBits {
    pending: u64,
    mask: u64,
    bit: u32,
}

/// Where a domain's event bits live in guest memory.
#[derive(Clone, Copy, Debug)]
pub struct EventPages {
    /// Guest address of the shared info page.
    pub shared_info: u64,
    /// Guest address of vCPU 0's vcpu_info.
    pub vcpu_info: u64,
}

impl EventPages {
    /// Marks `port` pending; returns true when the vCPU newly has an upcall
    /// pending (the caller must wake it). Mirrors evtchn_2l_set_pending.
    pub fn set_pending(&self, ram: &GuestRam, port: u32) -> bool {
        let Some(PortBits { pending, mask, bit }) = self.bits(port) else { return false };
        if ram.test_and_set_bit(pending, bit).unwrap_or(true) {
            return false;
        }
        if ram.test_bit(mask, bit).unwrap_or(true) {
            return false;
        }
        self.mark_word_pending(ram, port / 64)
    }

    /// EVTCHNOP_unmask: clears the mask and re-raises a pending event.
    pub fn unmask(&self, ram: &GuestRam, port: u32) -> bool {
        let Some(PortBits { pending, mask, bit }) = self.bits(port) else { return false };
        let was_masked = ram.test_and_clear_bit(mask, bit).unwrap_or(false);
        if was_masked && ram.test_bit(pending, bit).unwrap_or(false) {
            return self.mark_word_pending(ram, port / 64);
        }
        false
    }

    fn mark_word_pending(&self, ram: &GuestRam, word: u32) -> bool {
        let sel = self.vcpu_info + shared_info::VCPU_PENDING_SEL as u64;
        if ram.test_and_set_bit(sel, word).unwrap_or(true) {
            return false;
        }
        self.mark_upcall_pending(ram)
    }

    /// Sets evtchn_upcall_pending; true if it was clear.
    pub fn mark_upcall_pending(&self, ram: &GuestRam) -> bool {
        let flag = self.vcpu_info + shared_info::VCPU_UPCALL_PENDING as u64;
        match ram.atomic_u8(flag) {
            Ok(f) => f.swap(1, std::sync::atomic::Ordering::SeqCst) == 0,
            Err(_) => false,
        }
    }

    /// Whether an upcall is pending for vCPU 0.
    pub fn upcall_pending(&self, ram: &GuestRam) -> bool {
        let flag = self.vcpu_info + shared_info::VCPU_UPCALL_PENDING as u64;
        ram.atomic_u8(flag).map(|f| f.load(std::sync::atomic::Ordering::SeqCst) != 0).unwrap_or(false)
    }

    /// Clears `port`'s pending bit: Xen's evtchn_close does it so that a
    /// port bound again does not fire at once (evtchn_port_clear_pending).
    pub fn clear_pending(&self, ram: &GuestRam, port: u32) {
        if let Some(PortBits { pending, bit, .. }) = self.bits(port) {
            let _ = ram.test_and_clear_bit(pending, bit);
        }
    }

    /// Whether `port` is pending (for SCHEDOP_poll).
    pub fn is_pending(&self, ram: &GuestRam, port: u32) -> bool {
        self.bits(port).is_some_and(|b| ram.test_bit(b.pending, b.bit).unwrap_or(false))
    }

    /// Where `port`'s pending and mask bits live, if it is a 2-level port.
    fn bits(&self, port: u32) -> Option<PortBits> {
        if port >= NR_EVENT_CHANNELS {
            return None;
        }
        let word = u64::from(port / 64) * 8;
        Some(PortBits {
            pending: self.shared_info + shared_info::EVTCHN_PENDING as u64 + word,
            mask: self.shared_info + shared_info::EVTCHN_MASK as u64 + word,
            bit: port % 64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_lifecycle() {
        let mut e = EventChannels::new(1);
        let p = e.bind_virq(VIRQ_TIMER, 0).unwrap();
        assert_eq!(e.bind_virq(VIRQ_TIMER, 0), Err(EEXIST));
        assert_eq!(e.virq_port(VIRQ_TIMER, 0), Some(p));
        assert_eq!(e.status(p).unwrap().status, EVTCHNSTAT_VIRQ);
        e.close(p).unwrap();
        assert_eq!(e.close(p), Err(EINVAL));
        assert_eq!(e.close(0), Err(EINVAL));
        assert_eq!(e.close(MAX_PORTS + 5), Err(EINVAL));
        // Port 0 is reserved: closed, never allocated. Ports past the first
        // bucket are invalid until one of them is allocated.
        assert_eq!(e.status(0).unwrap().status, EVTCHNSTAT_CLOSED);
        assert_eq!(e.status(63).unwrap().status, EVTCHNSTAT_CLOSED);
        assert_eq!(e.status(64).err(), Some(EINVAL));
        for _ in 0..70 {
            e.alloc_unbound(0).unwrap();
        }
        assert_eq!(e.status(127).unwrap().status, EVTCHNSTAT_CLOSED, "the second bucket exists now");
        assert_eq!(e.status(128).err(), Some(EINVAL));
        e.reset();
        assert_eq!(e.status(127).unwrap().status, EVTCHNSTAT_CLOSED, "reset keeps the buckets");
        assert_eq!(e.bind_virq(NR_VIRQS, 0), Err(EINVAL));
        let u = e.alloc_unbound(0).unwrap();
        assert_eq!(e.status(u).unwrap().status, EVTCHNSTAT_UNBOUND);
    }

    #[test]
    fn ports_notify_the_vcpu_they_are_bound_to() {
        let mut e = EventChannels::with_vcpus(1, 2);
        let t0 = e.bind_virq(VIRQ_TIMER, 0).unwrap();
        let t1 = e.bind_virq(VIRQ_TIMER, 1).unwrap();
        assert_eq!((e.virq_port(VIRQ_TIMER, 0), e.virq_port(VIRQ_TIMER, 1)), (Some(t0), Some(t1)));
        assert_eq!((e.notify_vcpu(t0), e.notify_vcpu(t1)), (0, 1));
        assert_eq!(e.status(t1).unwrap().vcpu, 1);
        assert_eq!(e.bind_virq(VIRQ_TIMER, 2), Err(ENOENT), "no vCPU 2");
        assert_eq!(e.bind_virq(VIRQ_DOM_EXC, 1), Err(EINVAL), "a global VIRQ is bound on vCPU 0");
        let ipi = e.bind_ipi(1).unwrap();
        assert_eq!(e.notify_vcpu(ipi), 1);
        assert_eq!(e.bind_ipi(2), Err(ENOENT));
        // EVTCHNOP_bind_vcpu moves other ports, not IPIs or per-vCPU VIRQs.
        let u = e.alloc_unbound(0).unwrap();
        e.bind_vcpu(u, 1).unwrap();
        assert_eq!(e.notify_vcpu(u), 1);
        assert_eq!(e.bind_vcpu(u, 2), Err(ENOENT));
        assert_eq!(e.bind_vcpu(ipi, 0), Err(EINVAL));
        assert_eq!(e.bind_vcpu(t1, 0), Err(EINVAL));
        assert_eq!(e.bind_vcpu(MAX_PORTS + 1, 0), Err(EINVAL));
        // Closing vCPU 1's timer frees its VIRQ slot, not vCPU 0's; a port
        // allocated again notifies vCPU 0.
        e.close(t1).unwrap();
        assert_eq!((e.virq_port(VIRQ_TIMER, 0), e.virq_port(VIRQ_TIMER, 1)), (Some(t0), None));
        let again = e.alloc_unbound(0).unwrap();
        assert_eq!((again, e.notify_vcpu(again)), (t1, 0));
    }

    #[test]
    fn loopback_binds_to_own_unbound_port_and_unbinds_on_close() {
        let mut e = EventChannels::new(3);
        let a = e.alloc_unbound(3).unwrap();
        let other = e.alloc_unbound(0).unwrap();
        assert_eq!(e.bind_loopback(3, other), Err(EINVAL), "waiting for domain 0, not us");
        let b = e.bind_loopback(3, a).unwrap();
        assert_eq!(e.state(a), Some(PortState::Loopback { peer: b }));
        assert_eq!(e.status(b).unwrap().status, EVTCHNSTAT_INTERDOMAIN);
        assert_eq!(e.bind_loopback(3, a), Err(EINVAL), "already bound");
        e.close(b).unwrap();
        assert_eq!(e.state(a), Some(PortState::Unbound { remote_dom: 3 }));
    }

    #[test]
    fn reset_closes_every_port_and_backends_unbind() {
        let (con, xs, dev0, dev1) = (SinkId::new(0), SinkId::new(1), SinkId::new(2), SinkId::new(3));
        let mut e = EventChannels::new(2);
        let console = e.connect_backend(con).unwrap();
        let store = e.connect_backend(xs).unwrap();
        let timer = e.bind_virq(VIRQ_TIMER, 0).unwrap();
        let blk = e.alloc_unbound(0).unwrap();
        e.bind_backend(blk, dev0).unwrap();
        assert!(e.is_bound_to(blk, dev0));
        assert!(!e.is_bound_to(blk, dev1));
        assert_eq!(e.bound_to(dev0), vec![blk]);
        // The backend disconnects: the guest's port waits for domain 0 again.
        assert!(e.unbind_backend(blk, dev0));
        assert_eq!(e.state(blk), Some(PortState::Unbound { remote_dom: 0 }));
        assert!(!e.unbind_backend(blk, dev0), "once");
        e.bind_backend(blk, dev0).unwrap();
        let own = e.alloc_unbound(2).unwrap();
        let peer = e.bind_loopback(2, own).unwrap();
        let mut open = e.reset();
        open.sort();
        let mut want = vec![console, store, timer, blk, own, peer];
        want.sort();
        assert_eq!(open, want);
        assert!((1..PORTS_PER_BUCKET).all(|p| e.state(p) == Some(PortState::Free)));
        assert!(!e.is_bound_to(console, con), "the console can no longer raise it");
        assert_eq!(e.virq_port(VIRQ_TIMER, 0), None);
        assert_eq!(e.bind_virq(VIRQ_TIMER, 0), Ok(1), "VIRQ_TIMER binds again, on the lowest free port");
        assert!(!e.is_bound_to(1, con), "a reused port number is not the console's");
        assert_eq!(e.reset(), vec![1]);
    }

    #[test]
    fn delivery_follows_2l_rules() {
        let ram = GuestRam::new(&[(0, 0x2000)]).unwrap();
        let pages = EventPages { shared_info: 0x1000, vcpu_info: 0x1000 };
        assert!(pages.set_pending(&ram, 5), "first event raises the upcall");
        assert!(!pages.set_pending(&ram, 6), "upcall already pending");
        assert!(pages.upcall_pending(&ram));
        // Masked port: pending but no upcall.
        ram.write_obj::<u8>(0x1000, &0).unwrap();
        ram.write_obj::<u64>(0x1000 + 8, &0).unwrap();
        let mask = 0x1000 + shared_info::EVTCHN_MASK as u64;
        ram.write_obj::<u64>(mask + 8, &(1 << 6)).unwrap(); // port 70
        assert!(!pages.set_pending(&ram, 70));
        assert!(pages.is_pending(&ram, 70));
        assert!(pages.unmask(&ram, 70), "unmask re-raises");
        assert!(!pages.set_pending(&ram, NR_EVENT_CHANNELS + 1));
        pages.clear_pending(&ram, 70);
        assert!(!pages.is_pending(&ram, 70), "closing a port clears its pending bit");
    }
}
