//! The transport every split-driver backend shares, whatever its device:
//! - [`ring`]: the frontend's shared ring pages, mapped through the
//!   checked grant path and read through `GuestRam`;
//! - [`xenbus`]: the backend side of the xenstore handshake (toolstack
//!   nodes, states, what Linux's backends do when the frontend's state
//!   changes, reading the frontend's numbers);
//! - [`control`]: the per-device control loop (wake-ups, the watch on the
//!   frontend's state, connect/disconnect, servicing the ring).
//!
//! A device (block/, net/) supplies only what is its own: its features,
//! what it reads to connect, and how it serves requests.

pub mod control;
pub mod ring;
pub mod xenbus;
