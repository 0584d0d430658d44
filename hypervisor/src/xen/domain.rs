//! A running domain's Xen-side state and the vCPU exit handling that
//! turns trapped instructions into Xen semantics.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use xen_abi::event_channel::VIRQ_TIMER;
use xen_abi::hvm::{HvmMemmapEntry, NR_PARAMS};
use xen_abi::shared_info;

use super::debug::DebugLog;
use super::evtchn::{EventChannels, EventPages, PortState};
use super::guest_access::GuestView;
use super::sink::{EventSink, SinkId, SinkRegistry};
use super::time::Clock;
use crate::vstate::kvm_ext;
use crate::vstate::memory::GuestRam;
use crate::vstate::vcpu::{Cpu, ExitHandler, GuestFault};
use xen_abi::vcpu::VcpuHvmX86_64;

/// Why a domain stopped (SHUTDOWN_* plus hypervisor-detected crashes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShutdownReason {
    /// SHUTDOWN_poweroff.
    Poweroff,
    /// SHUTDOWN_reboot.
    Reboot,
    /// SHUTDOWN_suspend.
    Suspend,
    /// SHUTDOWN_crash, or a fault the hypervisor saw.
    Crash,
    /// SHUTDOWN_watchdog.
    Watchdog,
    /// SHUTDOWN_soft_reset.
    SoftReset,
}

impl ShutdownReason {
    /// Its SHUTDOWN_* code (xl prints it as the "reason code").
    pub fn code(&self) -> u32 {
        use xen_abi::sched::*;
        match self {
            Self::Poweroff => SHUTDOWN_POWEROFF,
            Self::Reboot => SHUTDOWN_REBOOT,
            Self::Suspend => SHUTDOWN_SUSPEND,
            Self::Crash => SHUTDOWN_CRASH,
            Self::Watchdog => SHUTDOWN_WATCHDOG,
            Self::SoftReset => SHUTDOWN_SOFT_RESET,
        }
    }

    /// From a SCHEDOP_shutdown reason code.
    pub fn from_code(code: u32) -> Option<Self> {
        use xen_abi::sched::*;
        Some(match code {
            SHUTDOWN_POWEROFF => Self::Poweroff,
            SHUTDOWN_REBOOT => Self::Reboot,
            SHUTDOWN_SUSPEND => Self::Suspend,
            SHUTDOWN_CRASH => Self::Crash,
            SHUTDOWN_WATCHDOG => Self::Watchdog,
            SHUTDOWN_SOFT_RESET => Self::SoftReset,
            _ => return None,
        })
    }

    /// The word xl uses for it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Poweroff => "poweroff",
            Self::Reboot => "reboot",
            Self::Suspend => "suspend",
            Self::Crash => "crash",
            Self::Watchdog => "watchdog",
            Self::SoftReset => "soft_reset",
        }
    }
}

/// One vCPU's Xen state (Xen's `struct vcpu`), under the domain's lock.
#[derive(Clone, Debug, Default)]
pub struct VcpuState {
    /// Its vcpu_info, once registered outside shared info.
    pub registered_vcpu_info: Option<u64>,
    /// The one-shot timer deadline, in system time ns.
    pub timer: Option<u64>,
    /// Blocked in `halt` (HLT, SCHEDOP_block, SCHEDOP_poll).
    pub halted: bool,
    /// Given a context (vCPU 0 by the builder, others by VCPUOP_initialise).
    pub initialised: bool,
    /// Running (not `_VPF_down`): vCPU 0 from the start, others after VCPUOP_up.
    pub up: bool,
    /// The context VCPUOP_initialise gave, until the vCPU's thread loads it.
    pub start: Option<VcpuHvmX86_64>,
}

/// The Xen state of a domain that hypercalls change; one lock guards it.
pub struct State {
    /// Guest address of the installed hypercall page.
    pub hypercall_page: Option<u64>,
    /// Guest address of shared info, while it is mapped.
    pub shared_info: Option<u64>,
    /// The upcall vector (HVM_PARAM_CALLBACK_IRQ type vector).
    pub callback_vector: Option<u8>,
    /// HVM params.
    pub params: [u64; NR_PARAMS as usize],
    /// Event channel ports.
    pub evtchn: EventChannels,
    /// Per-vCPU state, indexed by vCPU id.
    pub vcpus: Vec<VcpuState>,
    /// Set once the domain has shut down.
    pub shutdown: Option<ShutdownReason>,
}

impl State {
    /// Where vCPU `vcpu`'s event bits live, while shared info is mapped:
    /// its registered vcpu_info, or its slot in shared info.
    pub fn events(&self, vcpu: usize) -> Option<EventPages> {
        let shared_info = self.shared_info?;
        let vcpu_info = self.vcpus.get(vcpu)?.registered_vcpu_info.or_else(|| vcpu_slot(shared_info, vcpu))?;
        Some(EventPages { shared_info, vcpu_info })
    }
}

/// vCPU `vcpu`'s vcpu_info in shared info: only the first
/// XEN_LEGACY_MAX_VCPUS have one there; the rest must register theirs.
fn vcpu_slot(shared_info: u64, vcpu: usize) -> Option<u64> {
    (vcpu < shared_info::LEGACY_MAX_VCPUS).then(|| shared_info + (vcpu * std::mem::size_of::<shared_info::VcpuInfo>()) as u64)
}

/// A vCPU thread's registration ([`Domain::set_vcpu_thread`]), cleared
/// when dropped.
pub struct VcpuThread<'a> {
    dom: &'a Domain,
    vcpu: usize,
}

impl Drop for VcpuThread<'_> {
    fn drop(&mut self) {
        *self.dom.vcpu_thread(self.vcpu) = None;
    }
}

/// A thread's CPU time (user and system) from /proc/self/task/TID/stat.
fn thread_cpu_time(tid: libc::pid_t) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ').skip(11);
    let ticks: u64 = fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?;
    // SAFETY: sysconf with a valid name.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_nanos(ticks.saturating_mul(1_000_000_000 / hz)))
}

/// What wakes one vCPU and its timer thread (with the state lock), and
/// where to kick it out of KVM_RUN.
#[derive(Default)]
struct VcpuSignals {
    wake: Condvar,
    timer_wake: Condvar,
    /// The vCPU's thread and its kernel id while it runs: kicks go there,
    /// under this lock, and the thread clears it before it ends, so no
    /// kick ever reaches an ended thread (or one that reused its handle).
    thread: Mutex<Option<(libc::pthread_t, libc::pid_t)>>,
}

/// Static facts about the domain the hypercalls report.
pub struct DomainInfo {
    /// The domain id.
    pub domid: u16,
    /// The domain's name.
    pub name: String,
    /// The E820 map XENMEM_memory_map returns.
    pub memmap: Vec<HvmMemmapEntry>,
    /// Pages the domain holds at boot (its RAM and special pages).
    pub pages: u64,
    /// The most pages it may hold (xl's maxmem plus libxl's slack).
    pub max_pages: u64,
}

/// A running domain.
pub struct Domain {
    /// What hypercalls report about the domain.
    pub info: DomainInfo,
    /// Guest memory.
    pub ram: Arc<GuestRam>,
    /// System time.
    pub clock: Clock,
    /// Xen's own console: the guest's port 0xE9 and console_io output.
    pub debug: DebugLog,
    /// The grant table (its own locking: backends use it off the vCPU thread).
    pub gnttab: super::gnttab::GrantTable,
    /// The physical address space: RAM, holes, Xen pages, page counts.
    pub physmap: super::physmap::Physmap,
    state: Mutex<State>,
    /// Per vCPU, indexed like [`State::vcpus`].
    signals: Vec<VcpuSignals>,
    stopped: AtomicBool,
    /// Paused by the toolstack (xl pause): no vCPU enters the guest.
    paused: AtomicBool,
    /// What `log_once` has logged: hypercalls, I/O ports, physical addresses.
    logged: Mutex<HashSet<u64>>,
    /// The backends at the other ends of the guest's interdomain ports.
    sinks: SinkRegistry,
}

impl Domain {
    /// A domain with one vCPU and nothing mapped yet.
    pub fn new(info: DomainInfo, ram: Arc<GuestRam>, clock: Clock) -> Self {
        Self::with_vcpus(info, ram, clock, 1)
    }

    /// A domain with `vcpus` vCPUs (at least one): vCPU 0 up, the others
    /// down until the guest initialises them and brings them up.
    pub fn with_vcpus(info: DomainInfo, ram: Arc<GuestRam>, clock: Clock, vcpus: usize) -> Self {
        let vcpus = vcpus.max(1);
        let domid = info.domid;
        let max_gfn = info.memmap.iter().map(|e| (e.addr + e.size) >> 12).max().unwrap_or(1).saturating_sub(1);
        let physmap = super::physmap::Physmap::new(ram.clone(), info.pages, info.max_pages, max_gfn);
        Domain {
            info,
            ram,
            clock,
            debug: DebugLog::default(),
            gnttab: super::gnttab::GrantTable::default(),
            physmap,
            state: Mutex::new(State {
                hypercall_page: None,
                shared_info: None,
                callback_vector: None,
                params: [0; NR_PARAMS as usize],
                evtchn: EventChannels::with_vcpus(domid, vcpus),
                vcpus: (0..vcpus).map(|v| VcpuState { initialised: v == 0, up: v == 0, ..Default::default() }).collect(),
                shutdown: None,
            }),
            signals: (0..vcpus).map(|_| VcpuSignals::default()).collect(),
            stopped: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            logged: Mutex::new(HashSet::new()),
            sinks: SinkRegistry::default(),
        }
    }

    /// Locks the Xen state.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many vCPUs the domain has.
    pub fn nr_vcpus(&self) -> usize {
        self.signals.len()
    }

    /// Records the calling thread as vCPU `vcpu`'s thread (kicks go there)
    /// until the returned guard is dropped, which the thread must do before
    /// it ends.
    pub fn set_vcpu_thread(&self, vcpu: usize) -> VcpuThread<'_> {
        // SAFETY: pthread_self and gettid have no preconditions.
        let me = unsafe { (libc::pthread_self(), libc::gettid()) };
        *self.vcpu_thread(vcpu) = Some(me);
        VcpuThread { dom: self, vcpu }
    }

    fn vcpu_thread(&self, vcpu: usize) -> MutexGuard<'_, Option<(libc::pthread_t, libc::pid_t)>> {
        self.signals[vcpu].thread.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Kicks vCPU `vcpu` out of KVM_RUN, if its thread runs.
    fn kick(&self, vcpu: usize) {
        if vcpu < self.signals.len() {
            if let Some((t, _)) = *self.vcpu_thread(vcpu) {
                kvm_ext::kick(t);
            }
        }
    }

    /// The CPU time vCPU `vcpu`'s thread has used (Xen's vcpu_time), from
    /// /proc: zero before the thread starts and once it has ended.
    pub fn vcpu_cpu_time(&self, vcpu: usize) -> Duration {
        let tid = if vcpu < self.signals.len() { self.vcpu_thread(vcpu).map(|(_, tid)| tid) } else { None };
        tid.and_then(thread_cpu_time).unwrap_or_default()
    }

    /// Pauses the domain (XEN_DOMCTL_pausedomain): every vCPU leaves the
    /// guest and waits, keeping its registers, until [`Domain::unpause`].
    pub fn pause(&self) {
        let _st = self.state();
        self.paused.store(true, Ordering::SeqCst);
        for v in 0..self.signals.len() {
            self.kick(v);
        }
    }

    /// Lets a paused domain's vCPUs run again.
    pub fn unpause(&self) {
        let _st = self.state();
        self.paused.store(false, Ordering::SeqCst);
        for v in &self.signals {
            v.wake.notify_all();
        }
    }

    /// Whether the domain is paused.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Registers a backend as an event sink; ports are then bound to it
    /// with [`Domain::connect_sink`] or [`Domain::bind_sink`].
    pub fn register_sink(&self, sink: Arc<dyn EventSink>) -> SinkId {
        self.sinks.register(sink)
    }

    /// Removes a sink: the guest's ports still bound to it wait for
    /// domain 0 again, as when a backend closes its end. Returns whether
    /// it was registered.
    pub fn unregister_sink(&self, id: SinkId) -> bool {
        {
            let mut st = self.state();
            for port in st.evtchn.bound_to(id) {
                st.evtchn.unbind_backend(port, id);
            }
        }
        self.sinks.unregister(id).is_some()
    }

    /// Connects a new guest port to sink `id` and returns it (what the
    /// toolstack and a backend's bind_interdomain do at domain creation).
    pub fn connect_sink(&self, id: SinkId) -> u32 {
        self.state().evtchn.connect_backend(id).expect("a fresh domain has free ports")
    }

    /// Binds the guest's unbound `port` (waiting for domain 0) to sink `id`.
    pub fn bind_sink(&self, port: u32, id: SinkId) -> Result<(), i64> {
        self.state().evtchn.bind_backend(port, id)
    }

    /// Closes sink `id`'s end of `port`: the guest's port waits for domain 0
    /// again (or stays closed if the guest closed it first).
    pub fn unbind_sink(&self, port: u32, id: SinkId) {
        self.state().evtchn.unbind_backend(port, id);
    }

    /// The guest sent an event on `port`, bound to a backend: hands it to
    /// that backend's sink. The sink runs without the state lock held.
    pub fn notify_sink(&self, port: u32) {
        let Some(PortState::Interdomain { sink }) = self.state().evtchn.state(port) else { return };
        if let Some(s) = self.sinks.get(sink) {
            s.notify(self, port);
        }
    }

    /// Raises an event on the guest's `port` (from a backend or a timer).
    pub fn raise(&self, port: u32) {
        let st = self.state();
        self.raise_locked(&st, port);
    }

    /// Raises `port` for sink `id`, the other end of an interdomain
    /// channel: only while the port is still connected to it (a guest that
    /// closed the port, or reset its channels, and maybe reused the number
    /// for something else, must not see the old backend's events).
    pub fn raise_from(&self, id: SinkId, port: u32) {
        let st = self.state();
        if st.evtchn.is_bound_to(port, id) {
            self.raise_locked(&st, port);
        }
    }

    /// Raises `port` with the state lock already held, for the vCPU the
    /// port notifies.
    pub fn raise_locked(&self, st: &State, port: u32) {
        let vcpu = st.evtchn.notify_vcpu(port);
        if vcpu >= self.signals.len() {
            return;
        }
        if let Some(events) = st.events(vcpu) {
            if events.set_pending(&self.ram, port) {
                self.wake_vcpu(st, vcpu);
            } else if st.vcpus[vcpu].halted {
                // A vCPU in SCHEDOP_poll waits for its ports even when they
                // are masked (Xen's evtchn_check_pollers): let it look.
                self.signals[vcpu].wake.notify_all();
            }
        }
    }

    /// Makes halted vCPU `vcpu` re-check, or kicks it out of KVM_RUN.
    pub fn wake_vcpu(&self, st: &State, vcpu: usize) {
        if st.vcpus[vcpu].halted {
            self.signals[vcpu].wake.notify_all();
        } else {
            self.kick(vcpu);
        }
    }

    /// Wakes every vCPU that has an upcall pending (after something that
    /// changes where or whether upcalls are delivered).
    pub fn wake_pending_vcpus(&self, st: &State) {
        for vcpu in 0..st.vcpus.len() {
            if self.upcall_pending(st, vcpu) {
                self.wake_vcpu(st, vcpu);
            }
        }
    }

    /// Arms (Some) or cancels (None) vCPU `vcpu`'s one-shot timer.
    pub fn set_timer(&self, st: &mut State, vcpu: usize, deadline_ns: Option<u64>) {
        st.vcpus[vcpu].timer = deadline_ns;
        self.signals[vcpu].timer_wake.notify_all();
    }

    /// Shuts the domain down (first reason wins) and stops every thread.
    pub fn shutdown(&self, reason: ShutdownReason) {
        let mut st = self.state();
        if st.shutdown.is_none() {
            log::info!("domain {} ({}) shut down: {}", self.info.domid, self.info.name, reason.name());
            st.shutdown = Some(reason);
        }
        let first = !self.stopped.swap(true, Ordering::SeqCst);
        for (id, v) in self.signals.iter().enumerate() {
            v.wake.notify_all();
            v.timer_wake.notify_all();
            self.kick(id);
        }
        drop(st);
        if first {
            for sink in self.sinks.all() {
                sink.domain_stopped(self);
            }
        }
    }

    /// The reason the domain shut down, once it has.
    pub fn shutdown_reason(&self) -> Option<ShutdownReason> {
        self.state().shutdown.clone()
    }

    /// Whether the domain has shut down.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Blocks the calling vCPU `vcpu` until `done` (an upcall pending, a
    /// polled port), the domain stops, or (if given) the deadline passes.
    /// Used by HLT and SCHEDOP_block/poll.
    pub fn block(&self, vcpu: usize, until: Option<Instant>, mut done: impl FnMut(&State) -> bool) {
        let wake = &self.signals[vcpu].wake;
        let mut st = self.state();
        st.vcpus[vcpu].halted = true;
        loop {
            if self.is_stopped() || done(&st) {
                break;
            }
            match until {
                Some(t) => {
                    let now = Instant::now();
                    if now >= t {
                        break;
                    }
                    st = wake.wait_timeout(st, t - now).unwrap_or_else(|e| e.into_inner()).0;
                }
                None => st = wake.wait(st).unwrap_or_else(|e| e.into_inner()),
            }
        }
        st.vcpus[vcpu].halted = false;
    }

    /// VCPUOP_initialise: vCPU `vcpu` starts at `start` when brought up.
    /// EEXIST if it already has a context (as Xen's `is_initialised`).
    pub fn initialise_vcpu(&self, vcpu: usize, start: VcpuHvmX86_64) -> Result<(), i64> {
        let mut st = self.state();
        let v = st.vcpus.get_mut(vcpu).ok_or(xen_abi::errno::ENOENT)?;
        if v.initialised {
            return Err(xen_abi::errno::EEXIST);
        }
        v.initialised = true;
        v.start = Some(start);
        Ok(())
    }

    /// VCPUOP_up: EINVAL before VCPUOP_initialise; its thread then runs it.
    pub fn vcpu_up(&self, vcpu: usize) -> Result<(), i64> {
        let mut st = self.state();
        let v = st.vcpus.get_mut(vcpu).ok_or(xen_abi::errno::ENOENT)?;
        if !v.initialised {
            return Err(xen_abi::errno::EINVAL);
        }
        v.up = true;
        self.signals[vcpu].wake.notify_all();
        Ok(())
    }

    /// VCPUOP_down (and a halt with interrupts off): vCPU `vcpu` leaves
    /// KVM_RUN and waits to be brought up again, keeping its registers.
    /// Returns how many vCPUs are still up.
    pub fn vcpu_down(&self, vcpu: usize) -> usize {
        let mut st = self.state();
        if let Some(v) = st.vcpus.get_mut(vcpu) {
            v.up = false;
        }
        self.kick(vcpu);
        st.vcpus.iter().filter(|v| v.up).count()
    }

    /// Whether vCPU `vcpu` is up (VCPUOP_is_up).
    pub fn vcpu_is_up(&self, vcpu: usize) -> bool {
        self.state().vcpus.get(vcpu).is_some_and(|v| v.up)
    }

    /// Blocks vCPU `vcpu`'s thread until the vCPU is up; returns the
    /// context to load first, if VCPUOP_initialise gave a new one, or
    /// `None` once the domain has stopped.
    pub fn wait_until_up(&self, vcpu: usize) -> Option<Option<VcpuHvmX86_64>> {
        let mut st = self.state();
        loop {
            if self.is_stopped() {
                return None;
            }
            if st.vcpus[vcpu].up && !self.is_paused() {
                return Some(st.vcpus[vcpu].start.take());
            }
            st = self.signals[vcpu].wake.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Whether vCPU `vcpu` has an upcall pending.
    pub fn upcall_pending(&self, st: &State, vcpu: usize) -> bool {
        st.events(vcpu).is_some_and(|e| e.upcall_pending(&self.ram))
    }

    /// vCPU `vcpu`'s timer thread: fires VIRQ_TIMER when its one-shot
    /// deadline passes.
    pub fn run_timer(&self, vcpu: usize) {
        let timer_wake = &self.signals[vcpu].timer_wake;
        let mut st = self.state();
        while !self.is_stopped() {
            match st.vcpus[vcpu].timer {
                Some(deadline) if self.clock.now_ns() >= deadline => {
                    st.vcpus[vcpu].timer = None;
                    if let Some(port) = st.evtchn.virq_port(VIRQ_TIMER, vcpu) {
                        self.raise_locked(&st, port);
                    }
                }
                Some(deadline) => {
                    let wait = self.clock.instant_at(deadline).saturating_duration_since(Instant::now());
                    st = timer_wake.wait_timeout(st, wait).unwrap_or_else(|e| e.into_inner()).0;
                }
                None => st = timer_wake.wait(st).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }

    /// Writes each vCPU's pvclock record (in its shared-info slot and its
    /// registered vcpu_info) and the wallclock into shared info, with the
    /// odd/even version protocol.
    pub fn publish_time(&self, st: &State) {
        let Some(shared) = st.shared_info else { return };
        let time_at = |vcpu_info: u64| vcpu_info + shared_info::VCPU_TIME as u64;
        let mut targets = Vec::new();
        for vcpu in 0..st.vcpus.len() {
            let slot = vcpu_slot(shared, vcpu);
            targets.extend(slot.map(time_at));
            if let Some(events) = st.events(vcpu).filter(|e| Some(e.vcpu_info) != slot) {
                targets.push(time_at(events.vcpu_info));
            }
        }
        for addr in targets {
            let old: u32 = self.ram.read_obj(addr).unwrap_or(0);
            let next = (old | 1).wrapping_add(1); // even, newer than before
            let _ = self.ram.write_obj(addr, &self.clock.time_info(next.wrapping_sub(1)));
            let _ = self.ram.write_obj(addr, &next);
        }
        let wc = shared + shared_info::WC_VERSION as u64;
        let (sec, nsec) = self.clock.wallclock_base();
        let old: u32 = self.ram.read_obj(wc).unwrap_or(0);
        let next = (old | 1).wrapping_add(1);
        let _ = self.ram.write_obj(wc, &(next.wrapping_sub(1)));
        let _ = self.ram.write_obj(wc + 4, &(sec as u32));
        let _ = self.ram.write_obj(wc + 8, &nsec);
        let _ = self.ram.write_obj(wc + 12, &((sec >> 32) as u32));
        let _ = self.ram.write_obj(wc, &next);
    }

    /// Warns about something the guest did that is not emulated, once per
    /// `key` (bits 63:62 say what it is: 0 a port, 1 an address, 2 a
    /// hypercall), and at most 256 times in all, so a guest cannot flood the log.
    pub fn log_once(&self, key: u64, what: std::fmt::Arguments<'_>) {
        let mut seen = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() < 256 && seen.insert(key) {
            log::warn!("domain {}: {what}", self.info.domid);
        }
    }
}

impl ExitHandler for Domain {
    fn io_out(&self, cpu: &mut Cpu<'_>, port: u16, data: &[u8]) {
        if port == u16::from(super::HYPERCALL_PORT) && data.len() == 4 {
            let nr = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            let ram = self.ram.clone();
            let result = {
                let view = GuestView { ram: &ram, cpu: &*cpu };
                super::hypercall::dispatch(self, &view, nr)
            };
            cpu.set_rax(result as u64);
        } else if port == super::DEBUG_PORT {
            self.debug.write(data);
        } else if port == super::DELAY_PORT {
            // Nothing to do and nothing worth a warning (see DELAY_PORT).
        } else {
            self.log_once(u64::from(port), format_args!("ignored write to I/O port {port:#x}"));
        }
    }

    fn io_in(&self, port: u16, data: &mut [u8]) {
        // No device: the bus floats high.
        data.fill(0xff);
        self.log_once(u64::from(port), format_args!("read of unemulated I/O port {port:#x}"));
    }

    fn mmio(&self, addr: u64, data: &mut [u8], write: bool) {
        if !write {
            data.fill(0xff);
        }
        self.log_once(
            (1 << 62) | (addr & ((1 << 62) - 1)),
            format_args!("{} of unbacked physical address {addr:#x}", if write { "write" } else { "read" }),
        );
    }

    fn wrmsr(&self, cpu: &mut Cpu<'_>, index: u32, value: u64) -> bool {
        if index != xen_abi::cpuid::HYPERCALL_MSR {
            return false;
        }
        // Bits 11:0 select the page of a multi-page area; there is one page.
        let (gpa, page) = (value & !0xfff, value & 0xfff);
        if page != 0 || self.ram.write(gpa, &super::hypercall_page()).is_err() {
            log::warn!("domain {}: bad hypercall page address {value:#x}", self.info.domid);
            return false;
        }
        log::debug!("hypercall page at {gpa:#x} ({}-bit guest)", if cpu.long_mode() { 64 } else { 32 });
        self.state().hypercall_page = Some(gpa);
        true
    }

    fn out_label(&self, cpu: &Cpu<'_>, port: u16, data: &[u8]) -> String {
        match <[u8; 4]>::try_from(data) {
            Ok(nr) if port == u16::from(super::HYPERCALL_PORT) => {
                // The sub-op is the first argument, in the calling ABI's register.
                let nr = u32::from_le_bytes(nr);
                let r = cpu.regs();
                let sub = if cpu.long_mode() { r.rdi } else { r.rbx } as u32;
                format!("hypercall {}({sub})", xen_abi::hypercall::name(nr))
            }
            _ => format!("out {port:#x}"),
        }
    }

    fn rdmsr(&self, _index: u32) -> Option<u64> {
        None // The hypercall MSR is write-only, as on Xen.
    }

    fn pending_vector(&self, vcpu: u32) -> Option<u8> {
        let st = self.state();
        let vector = st.callback_vector?;
        self.upcall_pending(&st, vcpu as usize).then_some(vector)
    }

    fn halt(&self, vcpu: u32, interrupts_on: bool) {
        if !interrupts_on {
            // Xen's hvm_hlt: with interrupts off nothing can wake the vCPU, so it
            // goes down, and a domain with no vCPU up powers off.
            if self.vcpu_down(vcpu as usize) == 0 {
                log::info!("domain {}: every vCPU halted with interrupts disabled; powering off, as Xen does", self.info.domid);
                self.shutdown(ShutdownReason::Poweroff);
            }
            return;
        }
        let vcpu = vcpu as usize;
        self.block(vcpu, None, |st| self.upcall_pending(st, vcpu));
    }

    fn should_stop(&self, vcpu: u32) -> bool {
        self.is_stopped() || self.is_paused() || !self.vcpu_is_up(vcpu as usize)
    }

    fn counting_done(&self) -> bool {
        self.is_stopped() || self.sinks.all().iter().any(|s| s.has_output())
    }

    fn fault(&self, fault: GuestFault) {
        let rip = match fault {
            GuestFault::EmulationFailure { rip } | GuestFault::TripleFault { rip } => rip,
            GuestFault::FailEntry(_) => 0,
        };
        let mut bytes = [0u8; 16];
        let shown = if self.ram.read(rip, &mut bytes).is_ok() { format!(" bytes at RIP (if identity-mapped): {bytes:02x?}") } else { String::new() };
        eprintln!("xenolith: domain {} ({}) crashed: {fault}.{shown}", self.info.domid, self.info.name);
        self.shutdown(ShutdownReason::Crash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_vcpu_finds_its_events_in_its_own_vcpu_info() {
        let ram = Arc::new(GuestRam::new(&[(0, 0x10000)]).unwrap());
        let info = DomainInfo { domid: 1, name: "t".into(), memmap: Vec::new(), pages: 16, max_pages: 16 };
        let dom = Domain::new(info, ram, Clock::new(1_000_000, 0));
        assert_eq!(dom.nr_vcpus(), 1);
        let mut st = dom.state();
        assert!(st.events(0).is_none(), "no shared info yet");
        st.shared_info = Some(0x2000);
        // A second vCPU's slot is the next vcpu_info in shared info.
        st.vcpus.push(VcpuState::default());
        assert_eq!(st.events(0).map(|e| e.vcpu_info), Some(0x2000));
        assert_eq!(st.events(1).map(|e| e.vcpu_info), Some(0x2040));
        st.vcpus[1].registered_vcpu_info = Some(0x5000);
        assert_eq!(st.events(1).map(|e| (e.shared_info, e.vcpu_info)), Some((0x2000, 0x5000)));
        assert_eq!(st.events(0).map(|e| e.vcpu_info), Some(0x2000), "vCPU 0 is unaffected");
        assert!(st.events(2).is_none(), "no such vCPU");
        st.vcpus.resize(33, VcpuState::default());
        assert!(st.events(32).is_none(), "past the legacy slots a vCPU must register its vcpu_info");
    }
}
