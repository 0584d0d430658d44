//! Backends: the devices a guest reaches through rings and event channels.
//! They act as domain 0 and see the guest only through guest memory and
//! event channels.

pub mod block;
pub mod console;
pub mod net;
pub mod transport;

/// A device backend that a guest notifies through an event channel.
pub trait Device: Send + Sync {
    /// The guest sent an event on the device's channel (runs on the vCPU thread: keep it short).
    fn notify(&self, dom: &Domain);
}

use crate::xen::evtchn::Backend;
use crate::xen::Domain;

/// The guest sent an event to `backend`.
pub fn notify(dom: &Domain, backend: Backend) {
    match backend {
        Backend::Console => dom.console.on_guest_event(dom),
        // Only wakes xenstored's thread: the vCPU never waits for it.
        Backend::Store => {
            if let Some(xs) = dom.store.get() {
                xs.notify();
            }
        }
        Backend::Device(index) => {
            if let Some(dev) = dom.device(index) {
                dev.notify(dom);
            }
        }
    }
}
