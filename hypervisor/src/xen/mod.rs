//! Xen ABI emulation: what a Xen PVH guest finds when it looks for Xen.
//!
//! The layers below (vstate) know nothing of Xen; the backends above talk to
//! a guest only through event channels and guest memory from here, and
//! reach this layer only as [`sink::EventSink`]s: nothing here names them.

pub mod debug;
pub mod domain;
pub mod evtchn;
pub mod gnttab;
pub mod guest_access;
pub mod hypercall;
pub mod physmap;
pub mod sink;
pub mod time;

pub use domain::{Domain, ShutdownReason};

/// The I/O port the hypercall page's stubs write the hypercall number to.
pub const HYPERCALL_PORT: u8 = 0x98;
/// Xen's debug console port: PVH guests may print early messages there.
pub const DEBUG_PORT: u16 = 0xe9;
/// The PC's POST-code port, which Linux's `io_delay` writes to wait a
/// moment: as on Xen without a device model, writes there are dropped, and
/// without a log line. It is also the cheapest exit there is, which
/// `cargo xtask bench hypercall` times against hypercalls.
pub const DELAY_PORT: u16 = 0x80;
/// The Xen version this hypervisor reports (the one Debian bookworm ships).
pub const XEN_VERSION: (u16, u16) = (4, 17);

/// Builds the hypercall page: one `mov eax, NR; out PORT, eax; ret` stub
/// per hypercall, 32 bytes apart, padded with int3. The same bytes work for
/// 32- and 64-bit callers.
pub fn hypercall_page() -> [u8; 4096] {
    let mut page = [0xccu8; 4096];
    for nr in 0..xen_abi::hypercall::MAX {
        let stub = &mut page[nr as usize * 32..][..8];
        stub[0] = 0xb8;
        stub[1..5].copy_from_slice(&nr.to_le_bytes());
        stub[5] = 0xe7;
        stub[6] = HYPERCALL_PORT;
        stub[7] = 0xc3;
    }
    page
}
