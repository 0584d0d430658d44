//! The other ends of a domain's interdomain event channels: backends
//! (console, xenstored, block, net) register here as event sinks, so the
//! Xen layer delivers a guest's notifications without knowing any device.

use std::sync::{Arc, Mutex};

use super::Domain;

/// A backend acting as domain 0 at the other end of a guest's ports.
pub trait EventSink: Send + Sync {
    /// The guest sent an event (EVTCHNOP_send) on `port`, bound to this
    /// sink. Runs on the vCPU thread: wake the sink's own thread, never wait.
    fn notify(&self, dom: &Domain, port: u32);

    /// The domain has shut down: wake whatever waits on the guest so it
    /// notices now rather than at its next poll. Called once, on the
    /// thread that shut the domain down.
    fn domain_stopped(&self, _dom: &Domain) {}

    /// Whether the guest has written output through this sink (the boot
    /// benchmark counts guest instructions up to the first output).
    fn has_output(&self) -> bool {
        false
    }
}

/// A registered sink's handle. Ids are never reused within a domain, so a
/// port still naming an unregistered sink can never reach a newer one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SinkId(u32);

impl SinkId {
    /// A number for EVTCHNOP_status's remote port (dom0's ports are not
    /// modelled; 1, 2, 3... in registration order, as before the registry).
    pub fn remote_port(self) -> u32 {
        self.0 + 1
    }

    /// An id without a registry, for the port table's tests.
    #[cfg(test)]
    pub(crate) fn new(n: u32) -> Self {
        SinkId(n)
    }
}

#[derive(Default)]
struct Inner {
    sinks: Vec<(SinkId, Arc<dyn EventSink>)>,
    next: u32,
}

/// A domain's registered sinks.
#[derive(Default)]
pub struct SinkRegistry {
    inner: Mutex<Inner>,
}

impl SinkRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `sink` and returns its id.
    pub fn register(&self, sink: Arc<dyn EventSink>) -> SinkId {
        let mut inner = self.lock();
        let id = SinkId(inner.next);
        inner.next += 1;
        inner.sinks.push((id, sink));
        id
    }

    /// Removes `id`; returns the sink if it was registered.
    pub fn unregister(&self, id: SinkId) -> Option<Arc<dyn EventSink>> {
        let mut inner = self.lock();
        let at = inner.sinks.iter().position(|(i, _)| *i == id)?;
        Some(inner.sinks.remove(at).1)
    }

    /// The sink registered as `id`.
    pub fn get(&self, id: SinkId) -> Option<Arc<dyn EventSink>> {
        self.lock().sinks.iter().find(|(i, _)| *i == id).map(|(_, s)| s.clone())
    }

    /// Every registered sink, in registration order (a copy: callers run
    /// the sinks without the registry's lock held).
    pub fn all(&self) -> Vec<Arc<dyn EventSink>> {
        self.lock().sinks.iter().map(|(_, s)| s.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::vstate::memory::GuestRam;
    use crate::xen::domain::DomainInfo;
    use crate::xen::evtchn::PortState;
    use crate::xen::time::Clock;

    /// Counts notifications and remembers the last port.
    #[derive(Default)]
    struct Counter {
        events: AtomicU32,
        last_port: AtomicU32,
        stopped: AtomicU32,
    }

    impl EventSink for Counter {
        fn notify(&self, _dom: &Domain, port: u32) {
            self.events.fetch_add(1, Ordering::SeqCst);
            self.last_port.store(port, Ordering::SeqCst);
        }

        fn domain_stopped(&self, _dom: &Domain) {
            self.stopped.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn domain() -> Domain {
        let ram = Arc::new(GuestRam::new(&[(0, 0x10000)]).unwrap());
        let info = DomainInfo { domid: 1, name: "t".into(), memmap: Vec::new(), pages: 16, max_pages: 16 };
        Domain::new(info, ram, Clock::new(1_000_000, 0))
    }

    #[test]
    fn sends_reach_the_bound_sink_only_and_unregistering_unbinds() {
        let dom = domain();
        let (a, b) = (Arc::new(Counter::default()), Arc::new(Counter::default()));
        let ida = dom.register_sink(a.clone());
        let idb = dom.register_sink(b.clone());
        let pa = dom.connect_sink(ida);
        // b binds a port the guest left unbound for domain 0, as blkback does.
        let pb = dom.state().evtchn.alloc_unbound(0).unwrap();
        dom.bind_sink(pb, idb).unwrap();
        dom.notify_sink(pb);
        dom.notify_sink(pb);
        dom.notify_sink(pa);
        assert_eq!((a.events.load(Ordering::SeqCst), b.events.load(Ordering::SeqCst)), (1, 2));
        assert_eq!(b.last_port.load(Ordering::SeqCst), pb);
        assert!(dom.unregister_sink(idb));
        assert!(!dom.unregister_sink(idb), "once");
        assert_eq!(dom.state().evtchn.state(pb), Some(PortState::Unbound { remote_dom: 0 }), "the guest's port waits again");
        dom.notify_sink(pb);
        assert_eq!(b.events.load(Ordering::SeqCst), 2, "an unregistered sink hears nothing");
        // A new sink never takes an old one's id, so a stale id reaches nobody.
        let idc = dom.register_sink(Arc::new(Counter::default()));
        assert_ne!(idc, idb);
        assert_eq!(dom.bind_sink(pb, idb), Ok(()), "the port table holds ids, not sinks");
        dom.notify_sink(pb);
        assert_eq!(b.events.load(Ordering::SeqCst), 2);
        dom.shutdown(crate::xen::ShutdownReason::Poweroff);
        dom.shutdown(crate::xen::ShutdownReason::Poweroff);
        assert_eq!(a.stopped.load(Ordering::SeqCst), 1, "teardown reaches each registered sink once");
        assert_eq!(b.stopped.load(Ordering::SeqCst), 0);
    }
}
