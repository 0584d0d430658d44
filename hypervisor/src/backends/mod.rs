//! Backends: the devices a guest reaches through rings and event channels.
//! They act as domain 0 and see the guest only through guest memory and
//! event channels; each registers with the domain as a
//! [`crate::xen::sink::EventSink`] for the ports it binds.

pub mod block;
pub mod console;
pub mod net;
pub mod transport;

use crate::origin::Origin;

/// One device class's entries of a domain's configuration (`disk = [...]`
/// or `vif = [...]`) as the toolstack hands them down: the specs as
/// written, and where they were set for error messages.
#[derive(Clone, Copy, Debug)]
pub struct Entries<'a> {
    /// The entries as written.
    pub specs: &'a [String],
    /// Where the key was set.
    pub origin: Option<&'a Origin>,
}

impl Entries<'_> {
    /// Where the key was set, for an error.
    fn origin(&self) -> Option<Origin> {
        self.origin.cloned()
    }
}
