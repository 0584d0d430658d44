//! Ending the domain: power off, reboot, crash.
//!
//! Output still in the console ring is flushed first (bounded by about one
//! second of pvclock time), so the backend has read everything the guest
//! printed before Xen tears the domain down.

use xen_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT};

use crate::arch::cpu;
use crate::{console, hypercall, sched};

/// Why the domain ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A clean exit.
    Poweroff,
    /// Asks the toolstack to restart the domain.
    Reboot,
    /// Something went wrong (panic, exception).
    Crash,
}

impl Reason {
    /// The SHUTDOWN_* code.
    pub fn code(self) -> u32 {
        match self {
            Reason::Poweroff => SHUTDOWN_POWEROFF,
            Reason::Reboot => SHUTDOWN_REBOOT,
            Reason::Crash => SHUTDOWN_CRASH,
        }
    }
}

/// I/O port of QEMU's `isa-debug-exit` device (used only when not on Xen,
/// so that bare-QEMU boot tests end with a status instead of hanging).
pub const QEMU_DEBUG_EXIT_PORT: u16 = 0xF4;

/// Flushes the console and asks Xen to end the domain; never returns.
pub fn shutdown(reason: Reason) -> ! {
    if hypercall::ready() {
        console::flush(console::BACKEND_TIMEOUT);
        let _ = sched::shutdown_raw(reason.code());
    } else {
        exit_without_xen(reason);
    }
    // Xen refused or we are not on Xen: nothing else can end us.
    cpu::halt_forever()
}

/// Without Xen (bare QEMU): write the reason to isa-debug-exit, which makes
/// QEMU exit with status (code << 1) | 1: 1 for poweroff, 7 for crash.
pub fn exit_without_xen(reason: Reason) {
    // SAFETY: only reached when Xen is absent; on QEMU this port is the
    // debug-exit device (or nothing), with no effect on our memory.
    unsafe { cpu::outl(QEMU_DEBUG_EXIT_PORT, reason.code()) };
}

/// Powers the domain off.
pub fn poweroff() -> ! {
    shutdown(Reason::Poweroff)
}

/// Asks for a reboot.
pub fn reboot() -> ! {
    shutdown(Reason::Reboot)
}

/// Ends the domain as crashed.
pub fn crash() -> ! {
    shutdown(Reason::Crash)
}
