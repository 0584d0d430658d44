//! Backends: the devices a guest reaches through rings and event channels.
//! They act as domain 0 and see the guest only through guest memory and
//! event channels.

pub mod console;

use crate::xen::evtchn::Backend;
use crate::xen::Domain;

/// The guest sent an event to `backend`.
pub fn notify(dom: &Domain, backend: Backend) {
    match backend {
        Backend::Console => dom.console.on_guest_event(dom),
        // xenstored arrives with the control plane; its port stays quiet until then.
        Backend::Store => {}
    }
}
