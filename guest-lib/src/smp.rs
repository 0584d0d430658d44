//! Secondary vCPUs: bringing them up and running work on each.
//!
//! vCPU 0 runs the library (event upcalls, frontends, the console, the
//! timer). A secondary vCPU only runs jobs: it waits in SCHEDOP_poll on an
//! IPI port bound to it and kept masked (so no upcall ever runs there, and
//! it needs no timer or event routing of its own), runs the job it was
//! sent, and goes back to waiting. Secondaries keep interrupts disabled;
//! they may allocate, print and read the clock (those are SMP-safe), but
//! should not drive frontends.
//!
//! ```ignore
//! let n = guest_lib::smp::start_all();
//! let sums = guest_lib::smp::on_each_vcpu(|vcpu| work(vcpu));
//! ```

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU8, Ordering};

use xen_abi::errno;
use xen_abi::event_channel::Port;
use xen_abi::vcpu::VCPUOP_IS_UP;

use crate::hypercall::{self, Errno};
use crate::sync::IrqMutex;
use crate::{arch, evtchn, sched, time};

/// vCPUs this library brings up at most: those whose vcpu_info lives in
/// the shared info page (XEN_LEGACY_MAX_VCPUS).
pub const MAX_VCPUS: usize = 32;
/// Each secondary vCPU's stack.
const STACK_SIZE: usize = 64 * 1024;
/// How long a started vCPU has to report in.
const START_TIMEOUT_NS: u64 = 5_000_000_000;

/// A slot's states.
const OFFLINE: u8 = 0;
const STARTING: u8 = 1;
const IDLE: u8 = 2;
const BUSY: u8 = 3;

/// What a secondary vCPU runs: `run(vcpu)`, borrowed from
/// [`on_each_vcpu`]'s frame, which outlives every use (it waits for all).
struct Job<'a> {
    run: &'a (dyn Fn(usize) + Sync),
}

/// One secondary vCPU, shared between it and vCPU 0.
struct Slot {
    state: AtomicU8,
    /// Its IPI port (valid from STARTING on).
    port: AtomicU32,
    /// The job to run while BUSY (a `*const Job` erased to `()`).
    job: AtomicPtr<()>,
}

#[allow(clippy::declare_interior_mutable_const)]
const SLOT: Slot = Slot {
    state: AtomicU8::new(OFFLINE),
    port: AtomicU32::new(0),
    job: AtomicPtr::new(core::ptr::null_mut()),
};
static SLOTS: [Slot; MAX_VCPUS] = [SLOT; MAX_VCPUS];
/// Held by the one caller of [`try_start_all`] or [`on_each_vcpu`] at a
/// time (not an [`IrqMutex`]: vCPU 0's share of a job may need interrupts).
static CONTROL: AtomicBool = AtomicBool::new(false);

/// Holds [`CONTROL`] while alive.
struct Control;

impl Control {
    fn take() -> Self {
        while CONTROL.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            sched::yield_now();
        }
        Control
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        CONTROL.store(false, Ordering::Release);
    }
}

/// Why a vCPU could not be brought up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmpError {
    /// A hypercall failed (`what`, Xen's error).
    Hypercall(&'static str, Errno),
    /// The vCPU was started but never reported in.
    NoReport(u32),
}

impl core::fmt::Display for SmpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SmpError::Hypercall(what, e) => write!(f, "{what} failed: {e}"),
            SmpError::NoReport(v) => write!(f, "vCPU {v} was started but did not report in"),
        }
    }
}

/// vCPUs running: vCPU 0 and every secondary brought up.
pub fn online() -> usize {
    1 + SLOTS[1..].iter().filter(|s| s.state.load(Ordering::Acquire) >= IDLE).count()
}

/// Brings up every vCPU the domain has (xl.cfg `vcpus=`), in order, until
/// Xen says there is no next one. Returns how many run (at least 1). An
/// error on one vCPU stops there and is logged; those already up stay up.
pub fn start_all() -> usize {
    match try_start_all() {
        Ok(n) => n,
        Err(e) => {
            log::warn!("smp: {e}; running on {} vCPU(s)", online());
            online()
        }
    }
}

/// [`start_all`], with the error.
pub fn try_start_all() -> Result<usize, SmpError> {
    let _serial = Control::take();
    for vcpu in 1..MAX_VCPUS as u32 {
        let slot = &SLOTS[vcpu as usize];
        if slot.state.load(Ordering::Acquire) != OFFLINE {
            continue;
        }
        let mut none = 0u64;
        // SAFETY: VCPUOP_is_up takes no argument.
        match unsafe { hypercall::vcpu_op(VCPUOP_IS_UP, vcpu, &mut none) } {
            Ok(0) => {}
            // Up already, but not by us (a previous kernel's): leave it.
            Ok(_) => continue,
            // No such vCPU: the domain has no more.
            Err(Errno(errno::ENOENT)) | Err(Errno(errno::EINVAL)) => break,
            Err(e) => return Err(SmpError::Hypercall("VCPUOP_is_up", e)),
        }
        let port = evtchn::bind_ipi(vcpu).map_err(|e| SmpError::Hypercall("EVTCHNOP_bind_ipi", e))?;
        slot.port.store(port, Ordering::Relaxed);
        // The stack is the vCPU's for good: a vCPU is never taken down.
        let stack: &'static mut [u8] = Vec::leak(alloc::vec![0u8; STACK_SIZE]);
        let top = (stack.as_ptr() as u64 + STACK_SIZE as u64) & !0xf;
        slot.state.store(STARTING, Ordering::Release);
        // SAFETY: the stack is the vCPU's alone and 16-byte aligned at
        // `top`; Xen said the vCPU exists and is down.
        if let Err(e) = unsafe { arch::start_vcpu(vcpu, top) } {
            slot.state.store(OFFLINE, Ordering::Release);
            let _ = evtchn::close(port);
            return Err(SmpError::Hypercall("VCPUOP_initialise/up", e));
        }
        let deadline = time::now_ns().saturating_add(START_TIMEOUT_NS);
        while slot.state.load(Ordering::Acquire) == STARTING {
            if time::now_ns() >= deadline {
                return Err(SmpError::NoReport(vcpu));
            }
            sched::yield_now();
        }
    }
    Ok(online())
}

/// Runs `f(vcpu)` on every online vCPU at once (vCPU 0 too, on the
/// caller's stack) and returns the results in vCPU order. Returns when all
/// have finished; vCPU 0 yields to Xen while it waits.
pub fn on_each_vcpu<T: Send>(f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let _serial = Control::take();
    let results: Vec<IrqMutex<Option<T>>> = (0..MAX_VCPUS).map(|_| IrqMutex::new(None)).collect();
    let run = |vcpu: usize| {
        let r = f(vcpu);
        *results[vcpu].lock() = Some(r);
    };
    let job = Job { run: &run };
    let mut sent = Vec::new();
    for (vcpu, slot) in SLOTS.iter().enumerate().skip(1) {
        if slot.state.load(Ordering::Acquire) != IDLE {
            continue;
        }
        slot.job.store(&job as *const Job<'_> as *mut (), Ordering::Relaxed);
        slot.state.store(BUSY, Ordering::Release);
        let _ = evtchn::send(slot.port.load(Ordering::Relaxed));
        sent.push(vcpu);
    }
    run(0);
    for &vcpu in &sent {
        while SLOTS[vcpu].state.load(Ordering::Acquire) == BUSY {
            sched::yield_now();
        }
    }
    // Every job ended: nothing refers to `job` or `results` any more.
    results.iter().filter_map(|r| r.lock().take()).collect()
}

/// A secondary vCPU's life, from its arch entry: report in, then run each
/// job it is sent. Never returns.
pub fn secondary_main(vcpu: u32) -> ! {
    let Some(slot) = SLOTS.get(vcpu as usize) else {
        crate::shutdown::crash()
    };
    let port: Port = slot.port.load(Ordering::Relaxed);
    slot.state.store(IDLE, Ordering::Release);
    loop {
        // Cleared before looking, so a job posted after the look leaves
        // the port pending and the poll returns at once.
        evtchn::clear_pending(port);
        if slot.state.load(Ordering::Acquire) == BUSY {
            let job = slot.job.load(Ordering::Relaxed) as *const Job<'_>;
            // SAFETY: vCPU 0 stored a pointer to a Job that lives until this
            // slot leaves BUSY, which only the store below does.
            let run = unsafe { (*job).run };
            run(vcpu as usize);
            slot.state.store(IDLE, Ordering::Release);
            continue;
        }
        let _ = sched::poll(&[port], 0);
    }
}
