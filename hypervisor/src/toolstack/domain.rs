//! Domain lifecycle: build a domain from its configuration, run it until it
//! shuts down, and apply on_poweroff / on_reboot / on_crash.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use xen_abi::hvm;

use super::config::{Action, DomainConfig};
use super::registry::Lease;
use super::stop::{Running, StopCause, Stopper};
use crate::backends::{block, net, Entries};
use crate::backends::console::{Console, ConsoleOutput, Sink};
use crate::input::{self, InputError};
use crate::loader::{self, BootParams, PvhKernel};
use crate::seccomp::{self, ThreadKind};
use crate::vstate::cpuid::{self, XenLeaves};
use crate::vstate::vcpu::{Probes, Vcpu};
use crate::vstate::vm::Vm;
use crate::xen::domain::DomainInfo;
use crate::xen::sink::SinkId;
use crate::xen::time::Clock;
use crate::xen::{Domain, ShutdownReason};
use crate::xenstore::{self, Xenstored};

/// Why a domain could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// No domid for a restart.
    #[error(transparent)]
    Registry(#[from] super::registry::RegistryError),
    /// The kernel or ramdisk cannot be used (missing, not a regular file,
    /// too large).
    #[error(transparent)]
    Input(#[from] InputError),
    /// The kernel is not a loadable PVH image.
    #[error("{path}: {err}")]
    Kernel {
        /// The kernel file.
        path: PathBuf,
        /// The loader's error.
        #[source]
        err: loader::LoadError,
    },
    /// KVM could not set up the VM.
    #[error(transparent)]
    Vm(#[from] crate::vstate::vm::VmError),
    /// The vCPU failed.
    #[error(transparent)]
    Vcpu(#[from] crate::vstate::vcpu::VcpuError),
    /// A `disk` entry could not be served.
    #[error(transparent)]
    Disk(#[from] block::DiskConfigError),
    /// A `vif` entry could not be served.
    #[error(transparent)]
    Vif(#[from] net::VifConfigError),
    /// `on_*=preserve` outside the host service, which alone can keep a domain.
    #[error("{at}: {key}: preserve: not supported by `xenolith run`, whose domain ends with it (the host service keeps it: `xenolith create`)")]
    PreserveNeedsService {
        /// Where the key was set.
        at: String,
        /// The on_* key.
        key: &'static str,
    },
    /// The console log could not be opened.
    #[error("cannot open console log {path}: {err}")]
    ConsoleLog {
        /// The log file.
        path: PathBuf,
        /// The error.
        #[source]
        err: std::io::Error,
    },
}

/// Where the domain's console goes.
#[derive(Clone)]
pub enum ConsoleTarget {
    /// The terminal: output to stdout, input from stdin (`create -c`).
    Terminal,
    /// A log file; no input.
    Log(PathBuf),
    /// The host service's per-domain console, which keeps the output and
    /// streams it to an attached client (input comes through [`Stopper::current`]).
    Shared(Arc<dyn ConsoleOutput>),
}

/// Takes the domains that on_* = preserve / rename-restart keep: the host
/// service lists them as shut down until they are destroyed.
pub trait Keeper: Send + Sync {
    /// Keeps the stopped domain under `lease` (already renamed), built from
    /// `cfg`, that shut down for `reason`.
    fn keep(&self, lease: Lease, cfg: &DomainConfig, reason: ShutdownReason);
}

/// How to run a domain.
pub struct RunOptions {
    /// Its domain id, renewed on each restart (from [`super::registry::Registry`]).
    pub lease: Lease,
    /// Where its console goes.
    pub console: ConsoleTarget,
    /// Stops the run from outside (signals); the console escape uses it too.
    pub stopper: Stopper,
    /// The host's xenstored, shared by every domain (the host service);
    /// `None` starts a private one for this run.
    pub store: Option<Arc<Xenstored>>,
    /// Where preserved domains go (the host service); `None` refuses
    /// `preserve` and makes `rename-restart` a restart.
    pub keeper: Option<Arc<dyn Keeper>>,
    /// Build the first incarnation paused (xl create -p): no vCPU runs
    /// until [`Domain::unpause`].
    pub start_paused: bool,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The domain shut down for this reason and was not restarted.
    Shutdown(ShutdownReason),
    /// It was destroyed from outside: the console escape, a signal, `destroy`.
    Stopped(StopCause),
    /// It shut down for this reason and was kept ([`Keeper`]).
    Preserved(ShutdownReason),
}

/// What a domain is built from, read and checked: everything a run needs
/// that does not need the VM. `xenolith create -n` stops here, so that a
/// dry run refuses what the real run would.
pub struct Prepared {
    /// The parsed kernel.
    pub kernel: PvhKernel,
    /// The ramdisk's bytes.
    pub ramdisk: Option<Vec<u8>>,
    /// Where the kernel, start info and modules go in the guest.
    pub boot: loader::BootInfo,
    /// The disk images, each opened once with the access its entry gives.
    pub disks: Vec<block::OpenedDisk>,
    /// The vifs, parsed and checked against the host (bridges, scripts,
    /// CAP_NET_ADMIN); their TAPs are made per run, named after the domid.
    pub vifs: Vec<(String, net::config::VifSpec)>,
}

/// Reads and checks the kernel, the ramdisk, the memory layout, every
/// disk (spec, vdev), opening each image once, as it will be served, and
/// every vif (spec, bridge, script, the right to create a TAP).
pub fn prepare(cfg: &DomainConfig) -> Result<Prepared, DomainError> {
    let (kernel_bytes, ramdisk) = read_images(cfg)?;
    let kernel = PvhKernel::parse(&kernel_bytes).map_err(|err| DomainError::Kernel { path: cfg.kernel.clone(), err: err.into() })?;
    let layout = loader::MemoryLayout::new(cfg.memory_mib << 20);
    let params = BootParams { layout: &layout, cmdline: cfg.cmdline.as_deref(), ramdisk: ramdisk.as_deref() };
    let boot = loader::plan(&kernel, &params).map_err(|err| DomainError::Kernel { path: cfg.kernel.clone(), err })?;
    let disks = block::open_disks(&disk_entries(cfg))?;
    let vifs = net::check_vifs(&net_entries(cfg))?;
    Ok(Prepared { kernel, ramdisk, boot, disks, vifs })
}

/// Refuses `on_*=preserve` where no host service keeps the domain
/// (`xenolith run`, and its dry run).
pub fn refuse_preserve(cfg: &DomainConfig) -> Result<(), DomainError> {
    match cfg.preserving_key() {
        Some(key) => Err(DomainError::PreserveNeedsService { at: cfg.origin(key).map_or_else(|| cfg.file.clone(), ToString::to_string), key }),
        None => Ok(()),
    }
}

/// The `on_*` action for a shutdown `reason` (xl's
/// handle_domain_death: a watchdog has its own setting).
pub fn action_for(cfg: &DomainConfig, reason: &ShutdownReason) -> Action {
    match reason {
        ShutdownReason::Poweroff => cfg.on_poweroff,
        ShutdownReason::Reboot => cfg.on_reboot,
        ShutdownReason::Crash => cfg.on_crash,
        ShutdownReason::Watchdog => cfg.on_watchdog,
        ShutdownReason::SoftReset => cfg.on_soft_reset,
        _ => Action::Destroy,
    }
}

/// An incarnation shorter than this counts as a quick restart.
pub const QUICK_RUN: Duration = Duration::from_secs(10);
/// Quick restarts in a row after which the domain is not restarted again
/// (systemd's StartLimitBurst is 5 in 10 s too).
pub const MAX_QUICK_RESTARTS: u32 = 5;
/// Pause before the first quick restart; it doubles with each one after.
pub const FIRST_RESTART_DELAY: Duration = Duration::from_millis(250);
/// The longest pause: xl's create loop sleeps 2 s before every restart.
pub const MAX_RESTART_DELAY: Duration = Duration::from_secs(2);

/// Paces restarts, so that a guest that crashes at once is not rebuilt
/// hundreds of times a second: each restart after a run shorter than
/// [`QUICK_RUN`] waits twice as long as the one before (from
/// [`FIRST_RESTART_DELAY`] to [`MAX_RESTART_DELAY`]), and after
/// [`MAX_QUICK_RESTARTS`] of them in a row the domain stays down. A run
/// that lasts longer starts the count again.
#[derive(Default, Debug)]
pub struct RestartPacer {
    quick: u32,
}

impl RestartPacer {
    /// The pause before restarting a domain whose last run took `ran`, or
    /// `None` when it has restarted quickly too often.
    pub fn next(&mut self, ran: Duration) -> Option<Duration> {
        if ran >= QUICK_RUN {
            self.quick = 0;
            return Some(Duration::ZERO);
        }
        self.quick += 1;
        if self.quick > MAX_QUICK_RESTARTS {
            return None;
        }
        Some(FIRST_RESTART_DELAY.saturating_mul(1 << (self.quick - 1).min(16)).min(MAX_RESTART_DELAY))
    }
}

/// Runs the domain until it shuts down for good or is stopped from outside.
pub fn run(cfg: &DomainConfig, opts: &mut RunOptions) -> Result<Outcome, DomainError> {
    if opts.keeper.is_none() {
        refuse_preserve(cfg)?;
    }
    let Prepared { kernel, ramdisk, disks, vifs, .. } = prepare(cfg)?;
    let console_log = match &opts.console {
        ConsoleTarget::Log(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|err| DomainError::ConsoleLog { path: path.clone(), err })?,
        ),
        ConsoleTarget::Terminal | ConsoleTarget::Shared(_) => None,
    };
    let held = Held { console_log, vifs: !vifs.is_empty(), scripts: vifs.iter().any(|(_, v)| v.script.is_some()) };
    if matches!(opts.console, ConsoleTarget::Terminal) {
        spawn_terminal_input(opts.stopper.clone(), cfg.name.clone());
    }
    let store = XenstoreLink::start(cfg, opts.store.clone());
    let mut pacer = RestartPacer::default();
    loop {
        opts.stopper.set_domid(opts.lease.domid());
        if let Some(cause) = opts.stopper.cause() {
            return Ok(Outcome::Stopped(cause));
        }
        let started = Instant::now();
        let reason = boot(cfg, opts, &kernel, ramdisk.as_deref(), &disks, store.as_ref(), &held)?;
        opts.start_paused = false;
        if let Some(cause) = opts.stopper.cause() {
            return Ok(Outcome::Stopped(cause));
        }
        let action = action_for(cfg, &reason);
        let kept = match &opts.keeper {
            Some(keeper) if action.preserves() => {
                keep(keeper.as_ref(), cfg, &mut opts.lease, &reason, action.restarts())?;
                true
            }
            _ => false,
        };
        if kept && !action.restarts() {
            return Ok(Outcome::Preserved(reason));
        }
        if action.restarts() {
            let Some(delay) = pacer.next(started.elapsed()) else {
                log::error!(
                    "domain {}: {}: it has now stopped {} times in a row within {} s of starting; not restarting it again",
                    cfg.name,
                    reason.name(),
                    MAX_QUICK_RESTARTS + 1,
                    QUICK_RUN.as_secs()
                );
                return Ok(Outcome::Shutdown(reason));
            };
            std::thread::sleep(delay);
            // As xl: the restarted domain is a new one, with a new domid
            // (a kept one already handed its lease over).
            let old = opts.lease.domid();
            if !kept {
                opts.lease.renew()?;
            }
            log::info!("domain {} ({old}): {} -> restarted as domain {} after {} ms", opts.lease.name(), reason.name(), opts.lease.domid(), delay.as_millis());
            continue;
        }
        if let Some(why) = action.unsupported() {
            // Only on_soft_reset's default gets here (the config refuses the rest).
            log::error!("domain {}: {} -> {action}: {why}; the domain is destroyed", cfg.name, reason.name());
        }
        return Ok(Outcome::Shutdown(reason));
    }
}

/// xl's preserve_domain: the stopped domain is renamed NAME-YYYYMMDDTHHMMZ
/// (UTC, xl's suffix) and stays listed under its domid; when the action
/// also restarts, `keeper` takes its lease and `lease` becomes a new one for
/// the original name.
fn keep(keeper: &dyn Keeper, cfg: &DomainConfig, lease: &mut Lease, reason: &ShutdownReason, restarts: bool) -> Result<(), DomainError> {
    let name = lease.name();
    let renamed = format!("{name}{}", utc_suffix(std::time::SystemTime::now()));
    lease.rename(&renamed)?;
    log::info!("preserving domain {} {name} as {renamed}", lease.domid());
    if restarts {
        let fresh = lease.registry().allocate(&name)?;
        keeper.keep(std::mem::replace(lease, fresh), cfg, reason.clone());
    }
    Ok(())
}

/// `-YYYYMMDDTHHMMZ` for `time` in UTC (strftime "-%Y%m%dT%H%MZ").
pub fn utc_suffix(time: std::time::SystemTime) -> String {
    let secs = time.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("-{year:04}{month:02}{day:02}T{:02}{:02}Z", rem / 3600, rem % 3600 / 60)
}

/// The MSRs every domain's accesses exit for: the hypercall page's.
pub const TRAPPED_MSRS: [u32; 1] = [xen_abi::cpuid::HYPERCALL_MSR];

/// The largest kernel file read: an ELF vmlinux with full debug information
/// stays well below it, and its loadable part must fit in guest memory anyway.
pub const MAX_KERNEL_BYTES: u64 = 1 << 30;
/// The largest ramdisk read, whatever the guest's memory: the loader puts
/// it in RAM below 4 GiB.
pub const MAX_RAMDISK_BYTES: u64 = 4 << 30;

/// Reads the kernel and the ramdisk named by `cfg`: regular files only, the
/// kernel at most [`MAX_KERNEL_BYTES`], the ramdisk no larger than the
/// guest's memory (nor [`MAX_RAMDISK_BYTES`]).
pub fn read_images(cfg: &DomainConfig) -> Result<(Vec<u8>, Option<Vec<u8>>), InputError> {
    let kernel = input::read_regular_file(&cfg.kernel, "kernel", MAX_KERNEL_BYTES)?;
    let ramdisk = match &cfg.ramdisk {
        Some(p) => Some(input::read_regular_file(p, "ramdisk", MAX_RAMDISK_BYTES.min(cfg.memory_mib << 20))?),
        None => None,
    };
    Ok((kernel, ramdisk))
}

/// What a run holds across boots besides the images, and what the main
/// thread still needs once the first boot is set up (seccomp::confine_main).
struct Held {
    /// The console log, opened once like the images: each boot writes to a
    /// duplicate, so a reboot needs no access to its path.
    console_log: Option<std::fs::File>,
    /// The domain has vifs: each boot creates their TAPs (CAP_NET_ADMIN).
    vifs: bool,
    /// A vif has `script=`: the main thread forks and executes it.
    scripts: bool,
}

/// Builds one incarnation of the domain and runs it to shutdown.
fn boot(
    cfg: &DomainConfig,
    opts: &RunOptions,
    kernel: &PvhKernel,
    ramdisk: Option<&[u8]>,
    images: &[block::OpenedDisk],
    store: Option<&XenstoreLink>,
    held: &Held,
) -> Result<ShutdownReason, DomainError> {
    let layout = loader::MemoryLayout::new(cfg.memory_mib << 20);
    let vm = Vm::new(&layout.guest_ranges(), &TRAPPED_MSRS)?;
    log::info!("KVM backend: {}{}", vm.backend, if vm.has_xen_hvm() { "; in-kernel Xen support present (unused)" } else { "" });
    let boot = loader::load(vm.ram.mmap(), kernel, &BootParams { layout: &layout, cmdline: cfg.cmdline.as_deref(), ramdisk })
        .map_err(|err| DomainError::Kernel { path: cfg.kernel.clone(), err })?;

    // Every vCPU up to maxvcpus exists; vCPU 0 starts at the PVH entry,
    // the others when the guest initialises them and brings them up.
    let nr_vcpus = cfg.max_vcpus.max(cfg.vcpus).max(1);
    let supported = vm.supported_cpuid()?;
    let mut vcpus = Vec::new();
    let mut tsc_khz = 0;
    for id in 0..nr_vcpus {
        let vcpu = Vcpu::new(id, vm.create_vcpu(id.into())?);
        if id == 0 {
            tsc_khz = vcpu.tsc_khz()?;
        }
        let leaves = XenLeaves { version: crate::xen::XEN_VERSION, tsc_khz, domid: opts.lease.domid(), vcpu_id: id };
        vcpu.set_cpuid(&cpuid::build(&supported, &leaves))?;
        vcpus.push(vcpu);
    }
    vcpus[0].set_pvh_entry(boot.entry, boot.start_info)?;
    let clock = Clock::new(tsc_khz, vcpus[0].guest_tsc()?);

    let sink = match (&opts.console, &held.console_log) {
        (ConsoleTarget::Log(path), Some(log)) => {
            Sink::File(log.try_clone().map_err(|err| DomainError::ConsoleLog { path: path.clone(), err })?)
        }
        (ConsoleTarget::Shared(out), _) => Sink::Shared(out.clone()),
        _ => Sink::Stdout,
    };
    let info = DomainInfo {
        domid: opts.lease.domid(),
        // The registry's name: `rename` may have changed it since `cfg`.
        name: opts.lease.name(),
        memmap: layout.memory_map(),
        pages: (layout.ram_bytes() >> 12) + loader::NR_SPECIAL_PAGES,
        // libxl: xc_domain_setmaxmem(maxmem + LIBXL_MAXMEM_CONSTANT, 1 MiB).
        max_pages: (cfg.maxmem_mib.max(cfg.memory_mib) << 8) + 256,
    };
    let dom = Arc::new(Domain::with_vcpus(info, vm.ram.clone(), clock, vcpus.len()));
    // Grant-table frames (and shared info) placed in holes get KVM slots.
    dom.physmap.set_memory_slots(vm.memory_slots());
    if opts.start_paused {
        dom.pause();
    }
    let console = Arc::new(Console::new(loader::CONSOLE_RING, sink));
    let console_port = console.connect(&dom);
    let store_sink = store.map(|store| store.connect(&dom));
    // No xenstored: the store port waits for a domain 0 that never binds
    // (sends on it go nowhere, as before).
    let store_port = match store_sink {
        Some((_, port)) => port,
        None => dom.state().evtchn.alloc_unbound(0).expect("a fresh domain has free ports"),
    };
    {
        let mut st = dom.state();
        st.params[hvm::PARAM_CONSOLE_PFN as usize] = loader::CONSOLE_RING >> 12;
        st.params[hvm::PARAM_CONSOLE_EVTCHN as usize] = console_port.into();
        st.params[hvm::PARAM_STORE_PFN as usize] = loader::XENSTORE_RING >> 12;
        st.params[hvm::PARAM_STORE_EVTCHN as usize] = store_port.into();
    }
    let xs = store.zip(store_sink).and_then(|(store, (id, _))| store.attach(&dom, cfg, id));
    let mut disks = match attach_disks(cfg, images, &dom, xs.as_ref()) {
        Ok(d) => d,
        Err(e) => {
            if let Some(store) = store {
                store.detach(&dom);
            }
            return Err(e);
        }
    };
    let mut vifs = match net::Backends::create(&net_entries(cfg), &dom, xs.as_ref()) {
        Ok(v) => v,
        Err(e) => {
            disks.stop();
            if let Some(store) = store {
                store.detach(&dom);
            }
            return Err(e.into());
        }
    };
    opts.stopper.set_current(Some(Running { dom: dom.clone(), console: console.clone() }));

    let result = std::thread::scope(|s| {
        let dom = &dom;
        let mut threads = Vec::new();
        // The threads borrow their vCPUs: the fds close on this thread,
        // after the scope, not under a vCPU thread's seccomp filter.
        // vCPU threads first: their start is the domain's start-up time.
        for (id, vcpu) in vcpus.iter_mut().enumerate() {
            threads.push(s.spawn(move || {
                let _registered = dom.set_vcpu_thread(id);
                // The boot benchmark's probes watch vCPU 0 alone.
                let probes = if id == 0 { Probes::from_env() } else { Probes::default() };
                vcpu.prepare_thread()?;
                seccomp::confine(ThreadKind::Vcpu);
                let r = run_vcpu(dom, id, vcpu, &probes);
                if r.is_err() {
                    dom.shutdown(ShutdownReason::Crash);
                }
                r
            }));
        }
        for id in 0..threads.len() {
            s.spawn(move || {
                seccomp::confine(ThreadKind::Timer);
                dom.run_timer(id);
            });
        }
        // The first boot is set up and running: from here this thread only
        // waits, rebuilds the domain on reboot and tears it down (only the
        // first call confines).
        if let Some(m) = seccomp::confine_main(held.vifs, held.scripts) {
            log::debug!("main thread confined: filter {}, capabilities kept {:#x}", if m.filtered { "on" } else { "off (vif script=)" }, m.kept_caps);
        }
        let mut result = Ok(());
        for t in threads {
            // A vCPU thread returns once the domain has shut down, or on a
            // KVM error or a panic: then the domain counts as crashed (the
            // first reason wins), which also stops the others.
            let r = t.join().unwrap_or(Ok(()));
            dom.shutdown(ShutdownReason::Crash);
            result = result.and(r);
        }
        result
    });
    console.flush(&dom);
    vifs.stop();
    disks.stop();
    if let Some(store) = store {
        store.detach(&dom);
    }
    opts.stopper.set_current(None);
    result?;
    Ok(dom.shutdown_reason().unwrap_or(ShutdownReason::Crash))
}

/// One vCPU's thread: runs it while it is up, waits while it is down
/// (loading the context VCPUOP_initialise gave before it first runs),
/// until the domain stops.
fn run_vcpu(dom: &Domain, id: usize, vcpu: &mut Vcpu, probes: &Probes) -> Result<(), crate::vstate::vcpu::VcpuError> {
    while let Some(start) = dom.wait_until_up(id) {
        if let Some(start) = start {
            vcpu.set_long_mode_start(&start)?;
        }
        vcpu.run(&dom.ram, dom, probes)?;
    }
    Ok(())
}

// --- xenstore: the control plane a domain is introduced to ---

/// xenstored for the domains this process runs, and what stays the same
/// across a domain's reboots (its UUID, as libxl keeps it).
struct XenstoreLink {
    xs: Arc<Xenstored>,
    uuid: String,
}

impl XenstoreLink {
    /// Uses the host's xenstored (`shared`), or starts one for this run with
    /// its host socket (see `xenstore::socket` for the path); without the
    /// socket if it cannot be bound, and not at all if the daemon cannot
    /// start (the guest then finds no xenstore replies).
    fn start(cfg: &DomainConfig, shared: Option<Arc<Xenstored>>) -> Option<Self> {
        let uuid = cfg.uuid.as_ref().map_or_else(xenstore::layout::random_uuid, ToString::to_string);
        if let Some(xs) = shared {
            return Some(XenstoreLink { xs, uuid });
        }
        let xs = match Xenstored::start(xenstore::Options::default()) {
            Ok(xs) => xs,
            Err(e) => {
                log::warn!("{e}; serving xenstore to the guest only");
                Xenstored::start(xenstore::Options { socket: xenstore::SocketChoice::None, ..Default::default() })
                    .map_err(|e| log::warn!("{e}; the domain runs without xenstore"))
                    .ok()?
            }
        };
        Some(XenstoreLink { xs, uuid })
    }

    /// Registers xenstored as the sink of a new guest port, the store port.
    fn connect(&self, dom: &Domain) -> (SinkId, u32) {
        let id = dom.register_sink(self.xs.clone());
        (id, dom.connect_sink(id))
    }

    /// Writes the domain's standard entries (as libxl does) and introduces
    /// it to xenstored on its ring page and store port; returns xenstored
    /// once the domain is introduced (the device backends need it).
    fn attach(&self, dom: &Arc<Domain>, cfg: &DomainConfig, sink: SinkId) -> Option<Arc<Xenstored>> {
        let (store_port, console_port) = {
            let st = dom.state();
            (st.params[hvm::PARAM_STORE_EVTCHN as usize] as u32, st.params[hvm::PARAM_CONSOLE_EVTCHN as usize] as u32)
        };
        let domid = dom.info.domid;
        let info = xenstore::layout::DomainInfo {
            domid,
            name: dom.info.name.clone(),
            uuid: self.uuid.clone(),
            domain_type: "pvh",
            target_kib: cfg.memory_mib * 1024,
            max_kib: cfg.maxmem_mib * 1024,
            vcpus: cfg.vcpus,
            max_vcpus: cfg.max_vcpus,
            store_port,
            store_pfn: loader::XENSTORE_RING >> 12,
            console_port,
            console_pfn: loader::CONSOLE_RING >> 12,
        };
        if let Err(e) = xenstore::layout::create(&self.xs, &info) {
            log::warn!("xenstored: cannot write domain {domid}'s entries: {e}");
        }
        let weak = Arc::downgrade(dom);
        let ring = xenstore::GuestRing::new(dom.ram.clone(), loader::XENSTORE_RING, move || {
            if let Some(d) = weak.upgrade() {
                d.raise_from(sink, store_port);
            }
        });
        match ring.map_err(|e| e.to_string()).and_then(|r| self.xs.introduce_domain(domid, r).map_err(|e| e.to_string())) {
            Ok(()) => Some(self.xs.clone()),
            Err(e) => {
                log::warn!("xenstored: cannot introduce domain {domid}: {e}");
                None
            }
        }
    }

    /// The domain stopped: fire @releaseDomain, release it and remove its
    /// entries, as xl does when it destroys a domain.
    fn detach(&self, dom: &Domain) {
        let domid = dom.info.domid;
        self.xs.domain_shutdown(domid);
        if let Err(e) = self.xs.release_domain(domid) {
            log::debug!("xenstored: releasing domain {domid}: {e}");
        }
        xenstore::layout::destroy(&self.xs, domid);
    }
}

/// Ctrl-]: the escape that detaches from a console in xl; here it destroys the domain.
const ESCAPE: u8 = 0x1d;

/// Forwards stdin to the current domain's console, in raw mode on a terminal.
/// Ctrl-] stops the run the orderly way (the process used to exit from this
/// thread, leaving xenstored's socket behind).
fn spawn_terminal_input(stopper: Stopper, cfg_name: String) {
    let raw = super::terminal::RawTerminal::enter();
    std::thread::spawn(move || {
        seccomp::confine(ThreadKind::ConsoleInput);
        let _raw = raw;
        let mut buf = [0u8; 512];
        loop {
            // SAFETY: reading into a local buffer from fd 0.
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return;
            }
            let bytes = &buf[..n as usize];
            // Input before the domain exists (or between reboots) is
            // dropped, but not the escape.
            let running = stopper.current();
            if let Some(pos) = bytes.iter().position(|&b| b == ESCAPE) {
                if let Some(r) = &running {
                    r.console.input(&r.dom, &bytes[..pos]);
                }
                eprintln!("\r\nxenolith: console escape (Ctrl-]): destroying domain {}\r", cfg_name);
                stopper.request(StopCause::ConsoleEscape);
                return;
            }
            if let Some(r) = &running {
                r.console.input(&r.dom, bytes);
            }
        }
    });
}

// --- block devices (xl-disk-configuration(5)) ---

/// Creates a block backend per `disk` entry: writes the backend and
/// frontend directories as libxl does and brings each device to InitWait,
/// so the guest finds its disks ready when it starts.
fn attach_disks(cfg: &DomainConfig, images: &[block::OpenedDisk], dom: &Arc<Domain>, xs: Option<&Arc<Xenstored>>) -> Result<block::Backends, DomainError> {
    if images.is_empty() {
        return Ok(block::Backends::default());
    }
    Ok(block::Backends::create(&disk_entries(cfg), images, dom, xs)?)
}

/// `cfg`'s `disk` entries as the block backend takes them.
fn disk_entries(cfg: &DomainConfig) -> Entries<'_> {
    Entries { specs: &cfg.disks, origin: cfg.origin("disk") }
}

/// `cfg`'s `vif` entries as the network backend takes them.
fn net_entries(cfg: &DomainConfig) -> Entries<'_> {
    Entries { specs: &cfg.vifs, origin: cfg.origin("vif") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_restarts_back_off_then_stop() {
        let mut p = RestartPacer::default();
        let quick = Duration::from_millis(5);
        let delays: Vec<_> = (0..MAX_QUICK_RESTARTS).map(|_| p.next(quick).unwrap().as_millis()).collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 2000]);
        assert_eq!(p.next(quick), None, "the sixth quick stop in a row is not restarted");
    }

    #[test]
    fn a_long_run_starts_the_count_again() {
        let mut p = RestartPacer::default();
        for _ in 0..MAX_QUICK_RESTARTS {
            p.next(Duration::from_millis(1)).unwrap();
        }
        assert_eq!(p.next(QUICK_RUN), Some(Duration::ZERO));
        assert_eq!(p.next(Duration::from_millis(1)), Some(FIRST_RESTART_DELAY));
    }

    #[test]
    fn preserved_domains_get_xls_utc_suffix() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_796_300_000);
        assert_eq!(utc_suffix(t), "-20261203T1213Z");
        assert_eq!(utc_suffix(std::time::UNIX_EPOCH + Duration::from_secs(951_782_400)), "-20000229T0000Z");
    }

    #[test]
    fn a_watchdog_uses_on_watchdog() {
        let text = "name='x'\ntype='pvh'\nkernel='k'\non_crash='restart'\non_watchdog='destroy'\n";
        let cfg = DomainConfig::parse(text.as_bytes(), "w.cfg", &[] as &[&str]).unwrap();
        assert_eq!(action_for(&cfg, &ShutdownReason::Watchdog), Action::Destroy);
        assert_eq!(action_for(&cfg, &ShutdownReason::Crash), Action::Restart);
    }
}
