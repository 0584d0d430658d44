//! Xenolith's hypervisor: a KVM VMM that speaks the Xen guest ABI.
//!
//! Layers, each talking only to the one below (docs/architecture.md):
//! [`vstate`] (KVM VM, vCPU, guest memory) → [`xen`] (hypercalls, event
//! channels, grant tables, time) → [`xenstore`] (xenstored) → [`backends`]
//! (console, block, net) → [`toolstack`] (xl.cfg, domain lifecycle), with
//! [`loader`] building the PVH boot state, [`input`] opening the files
//! a user names and [`origin`] saying where a setting was given; [`seccomp`] confines the threads that handle guest data. The `xenolith` binary is a thin CLI over this library; the
//! parsers here are also fuzzed (hypervisor/fuzz/).

#![warn(missing_docs)]

pub mod backends;
pub mod input;
pub mod loader;
pub mod origin;
pub mod seccomp;
pub mod service;
pub mod toolstack;
pub mod vstate;
pub mod xen;
pub mod xenstore;
