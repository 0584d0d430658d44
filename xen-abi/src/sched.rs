//! The sched_op hypercall (sched.h).

/// `SCHEDOP_YIELD`.
pub const SCHEDOP_YIELD: u32 = 0;
/// `SCHEDOP_BLOCK`.
pub const SCHEDOP_BLOCK: u32 = 1;
/// `SCHEDOP_SHUTDOWN`.
pub const SCHEDOP_SHUTDOWN: u32 = 2;
/// `SCHEDOP_POLL`.
pub const SCHEDOP_POLL: u32 = 3;
/// `SCHEDOP_REMOTE_SHUTDOWN`.
pub const SCHEDOP_REMOTE_SHUTDOWN: u32 = 4;
/// `SCHEDOP_SHUTDOWN_CODE`.
pub const SCHEDOP_SHUTDOWN_CODE: u32 = 5;
/// `SCHEDOP_WATCHDOG`.
pub const SCHEDOP_WATCHDOG: u32 = 6;

/// struct sched_shutdown.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Shutdown {
    /// SHUTDOWN_*.
    pub reason: u32,
}

/// struct sched_poll.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Poll {
    /// Guest address of an array of ports.
    pub ports: u64,
    /// Number of ports.
    pub nr_ports: u32,
    /// Padding.
    pub pad: u32,
    /// Absolute system time to give up at, or 0 for none.
    pub timeout: u64,
}
crate::assert_size!(Poll, 24);

/// The domain powered off.
pub const SHUTDOWN_POWEROFF: u32 = 0;
/// The domain asked to be restarted.
pub const SHUTDOWN_REBOOT: u32 = 1;
/// The domain suspended.
pub const SHUTDOWN_SUSPEND: u32 = 2;
/// The domain crashed.
pub const SHUTDOWN_CRASH: u32 = 3;
/// The watchdog fired.
pub const SHUTDOWN_WATCHDOG: u32 = 4;
/// Soft reset.
pub const SHUTDOWN_SOFT_RESET: u32 = 5;
