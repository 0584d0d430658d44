//! The sched_op hypercall: yielding, polling and the raw shutdown request.
//! (Orderly shutdown with a console flush is in [`crate::shutdown`].)

use xen_abi::event_channel::Port;
use xen_abi::sched::{self as xs, Poll, Shutdown};

use crate::hypercall::{self, Errno};

/// SCHEDOP_yield: lets Xen run something else (e.g. dom0's backends).
/// Does nothing when not on Xen.
#[inline]
pub fn yield_now() {
    let mut none = 0u64;
    // SAFETY: SCHEDOP_yield ignores its argument.
    let _ = unsafe { hypercall::sched_op(xs::SCHEDOP_YIELD, &mut none) };
}

/// SCHEDOP_poll: blocks until one of `ports` is pending (masked ports
/// count too) or system time reaches `timeout_ns` (0: no timeout).
pub fn poll(ports: &[Port], timeout_ns: u64) -> Result<(), Errno> {
    let mut arg = Poll {
        ports: ports.as_ptr() as u64,
        nr_ports: ports.len() as u32,
        pad: 0,
        timeout: timeout_ns,
    };
    // SAFETY: `arg` is a struct sched_poll whose port array outlives the call.
    unsafe { hypercall::sched_op(xs::SCHEDOP_POLL, &mut arg) }?;
    Ok(())
}

/// SCHEDOP_shutdown with a SHUTDOWN_* reason. Returns only if Xen refused.
pub fn shutdown_raw(reason: u32) -> Result<(), Errno> {
    let mut arg = Shutdown { reason };
    // SAFETY: the argument is a struct sched_shutdown.
    unsafe { hypercall::sched_op(xs::SCHEDOP_SHUTDOWN, &mut arg) }?;
    Ok(())
}
