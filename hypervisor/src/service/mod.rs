//! The host service: one long-running process per host (`xenolith
//! daemon`) that holds the one xenstored, every domain and its backends,
//! and carries out xl's verbs for clients on a control socket — what xl,
//! libxl, xenconsoled and xenstored do together on a Xen dom0.
//!
//! `xenolith create` and the other verbs are clients; `create` starts the
//! service if none runs ([`client::connect_or_start`]).

pub mod client;
pub mod console;
pub mod control;
pub mod dmesg;
pub mod host;
pub mod server;
pub mod verbs;
pub mod wire;
