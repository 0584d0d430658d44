//! The Xen guest ABI, defined once for both sides: guest-lib's frontends and
//! the hypervisor's backends.
//!
//! Everything here is a fact from Xen's public headers (xen/include/public),
//! restated in Rust: hypercall numbers, the structures guests and Xen share,
//! and the errno values hypercalls return. Layouts are for x86_64 and checked
//! at compile time. No code with behaviour lives here beyond tiny helpers.
#![no_std]
#![warn(missing_docs)]

pub mod blkif;
pub mod console;
pub mod cpuid;
pub mod elfnote;
pub mod errno;
pub mod event_channel;
pub mod features;
pub mod grant_table;
pub mod hvm;
pub mod hypercall;
pub mod memory;
pub mod netif;
pub mod pv;
pub mod ring;
pub mod sched;
pub mod shared_info;
pub mod start_info;
pub mod vcpu;
pub mod version;
pub mod xenbus;
pub mod xenstore;

/// A domain identifier (domid_t).
pub type DomId = u16;
/// Refers to the calling domain in hypercall arguments.
pub const DOMID_SELF: DomId = 0x7ff0;
/// The size of a guest page frame.
pub const PAGE_SIZE: usize = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

/// Asserts a type's size at compile time, so a layout slip fails the build.
#[macro_export]
macro_rules! assert_size {
    ($t:ty, $n:expr) => {
        const _: () = assert!(core::mem::size_of::<$t>() == $n);
    };
}
