//! Per-thread seccomp-bpf allowlists (rust-vmm's seccompiler), as
//! Firecracker confines its vCPU, VMM and API threads.
//!
//! Every thread that handles what a guest controls installs the filter of
//! its [`ThreadKind`] as the first thing it does once its own set-up is
//! done: the vCPU, the timer, each block device's and each vif's control
//! and I/O threads,
//! xenstored, the console input thread and the signal thread; each drops
//! every capability as it does so. The main thread, which builds (and on
//! reboot rebuilds) the VM, confines itself once the first boot is set up
//! ([`confine_main`]): it keeps only CAP_NET_ADMIN, and only when the
//! domain has vifs (a reboot creates their TAPs again), and its list holds
//! what a rebuild and the teardown need. A vif with `script=` leaves the
//! main thread unfiltered (capabilities still dropped): a forked script
//! would inherit the filter.
//!
//! A system call outside a thread's list traps: the SIGSYS handler writes
//! `xenolith: seccomp: thread T made forbidden system call N` to stderr and
//! the process dies of SIGSYS (no core dump: the process is not dumpable).
//! To debug, run with `--no-seccomp` (or `XENOLITH_NO_SECCOMP=1`) and
//! `strace -f`, then add the call to the list below if it is legitimate.
//!
//! Filters are only installed once the binary calls [`enable`]: the
//! library's own tests run backends on unfiltered threads.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use seccompiler::{BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch};

/// The kinds of confined threads, each with its own allowlist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadKind {
    /// Runs KVM_RUN and handles exits: hypercalls, I/O ports, MSRs, console output.
    Vcpu,
    /// Raises the guest's timer interrupt.
    Timer,
    /// A block device's xenbus and ring thread.
    BlockControl,
    /// A block device's I/O worker (preadv/pwritev/fdatasync/fallocate).
    BlockIo,
    /// A vif's xenbus thread.
    NetControl,
    /// A vif's I/O thread: the TAP (read, writev, TUNSETOFFLOAD) and its rings.
    NetIo,
    /// xenstored: the guest ring and the unix socket (already bound).
    Xenstored,
    /// Reads the terminal (stdin) for the console (`create -c`).
    ConsoleInput,
    /// Takes SIGHUP/SIGINT/SIGQUIT/SIGTERM with sigwait.
    Signals,
    /// The main thread once the first boot is set up: rebuilds the VM on
    /// reboot (KVM, guest memory, threads, TAPs) and tears it down.
    Main,
}

/// Every kind, for tests and for compiling all filters up front.
pub const KINDS: [ThreadKind; 10] = [
    ThreadKind::Vcpu,
    ThreadKind::Timer,
    ThreadKind::BlockControl,
    ThreadKind::BlockIo,
    ThreadKind::NetControl,
    ThreadKind::NetIo,
    ThreadKind::Xenstored,
    ThreadKind::ConsoleInput,
    ThreadKind::Signals,
    ThreadKind::Main,
];

impl ThreadKind {
    /// Its name in messages and in `XENOLITH_SECCOMP_PROBE`.
    pub fn name(self) -> &'static str {
        match self {
            ThreadKind::Vcpu => "vcpu",
            ThreadKind::Timer => "timer",
            ThreadKind::BlockControl => "blk-control",
            ThreadKind::BlockIo => "blk-io",
            ThreadKind::NetControl => "net-control",
            ThreadKind::NetIo => "net-io",
            ThreadKind::Xenstored => "xenstored",
            ThreadKind::ConsoleInput => "console-input",
            ThreadKind::Signals => "signals",
            ThreadKind::Main => "main",
        }
    }

    fn index(self) -> usize {
        KINDS.iter().position(|&k| k == self).unwrap_or(0)
    }
}

/// Why the filters could not be built or installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// seccompiler refused a rule (a bug in the lists below).
    #[error("cannot build the seccomp filter of the {0} thread: {1}")]
    Build(&'static str, String),
    /// The kernel refused the filter.
    #[error("cannot install the seccomp filter of the {0} thread: {1} (run with --no-seccomp to go without)")]
    Install(&'static str, String),
    /// prctl or sigaction failed.
    #[error("cannot set up confinement: {0}")]
    Setup(#[source] std::io::Error),
}

// --- the allowlists ---

/// What every confined thread may do: the Rust runtime (locks, allocation,
/// thread exit), logging to stderr and kicking the vCPU (pthread_kill).
const BASE: &[libc::c_long] = &[
    libc::SYS_futex,
    libc::SYS_restart_syscall,
    libc::SYS_close,
    libc::SYS_sched_yield,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_write,
    libc::SYS_writev,
    // The allocator (glibc malloc: arenas grow with mprotect, shrink with madvise).
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_brk,
    // HashMap keys, once per thread.
    libc::SYS_getrandom,
    // pthread_kill (the vCPU kick) and abort.
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_tgkill,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    // Thread exit: the alternate signal stack is removed, then the thread ends.
    libc::SYS_sigaltstack,
    libc::SYS_exit,
    libc::SYS_rseq,
    libc::SYS_set_robust_list,
];

/// Any ioctl allowed with one of these requests (argument 1).
struct Ioctls(&'static [u64]);

/// The KVM ioctls a running vCPU thread makes (x86_64 numbers, as in
/// kvm-bindings); KVM_SET_SIGNAL_MASK and vCPU 0's register set-up come
/// before the thread is confined.
const KVM_IOCTLS: Ioctls = Ioctls(&[
    0xae80,     // KVM_RUN
    0x8138ae83, // KVM_GET_SREGS (a secondary vCPU's start from VCPUOP_initialise)
    0x4138ae84, // KVM_SET_SREGS (a secondary vCPU's start from VCPUOP_initialise)
    0x4090ae82, // KVM_SET_REGS (the same)
    0x4004ae86, // KVM_INTERRUPT (upcalls)
    0x4048ae9b, // KVM_SET_GUEST_DEBUG (single-step bench probe)
    0x4020ae46, // KVM_SET_USER_MEMORY_REGION (grant and shared-info frames placed by the guest)
]);

/// What a vif's I/O thread asks of its TAP once the frontend connected.
const NET_IOCTLS: Ioctls = Ioctls(&[
    0x400454d0, // TUNSETOFFLOAD
]);

/// tcsetattr(0, TCSANOW) when the terminal is restored on the way out.
const TERMINAL_IOCTLS: Ioctls = Ioctls(&[libc::TCGETS, libc::TCSETS]);

/// The ioctl families the main thread uses to rebuild a domain, by type
/// (bits 8..16 of the request): KVM's (0xAE: the VM, its memory slots and
/// vCPU set-up), TUN's and the terminal's (b'T': TUNSETIFF and
/// TUNSETVNETHDRSZ for a vif's TAP, TCSETS to restore the terminal), and
/// the socket ones (0x89: SIOCSIFHWADDR, SIOCSIFMTU, SIOCGIFINDEX,
/// SIOCBRADDIF, SIOCGIFFLAGS, SIOCSIFFLAGS on the TAP).
const MAIN_IOCTL_TYPES: &[u64] = &[0xAE, 0x54, 0x89];

/// The one socket the main thread makes: the AF_INET datagram socket the
/// TAP's link ioctls go through (backends/net/io/tap.rs, closed at once).
const MAIN_SOCKET: (u64, u64) = (libc::AF_INET as u64, (libc::SOCK_DGRAM | libc::SOCK_CLOEXEC) as u64);

/// A thread's list: calls allowed with any arguments, ioctls (exact
/// requests, or whole families by type), one socket (domain, type) and
/// prctl options.
struct Allowlist {
    calls: Vec<libc::c_long>,
    ioctls: &'static [u64],
    ioctl_types: &'static [u64],
    socket: Option<(u64, u64)>,
    prctls: &'static [u64],
}

/// The threads the main thread starts for every boot. Each inherits the
/// main thread's filter once that is installed (a filter is inherited on
/// clone) and adds its own: it runs under both, so the main list must hold
/// what they need too.
const STARTED_PER_BOOT: [ThreadKind; 6] =
    [ThreadKind::Timer, ThreadKind::Vcpu, ThreadKind::BlockControl, ThreadKind::BlockIo, ThreadKind::NetControl, ThreadKind::NetIo];

/// The prctl options a thread uses to confine itself (seccompiler's
/// no_new_privs, the capability drop) and std's thread naming: the main
/// list allows these alone, for the threads above.
const CONFINING_PRCTLS: &[u64] = &[
    libc::PR_SET_NO_NEW_PRIVS as u64,
    libc::PR_CAPBSET_DROP as u64,
    libc::PR_CAP_AMBIENT as u64,
    libc::PR_SET_NAME as u64,
];

/// And the calls that go with them: installing a filter (which can only
/// narrow what a thread may do) and lowering its capabilities.
const CONFINING_CALLS: &[libc::c_long] = &[libc::SYS_seccomp, libc::SYS_capget, libc::SYS_capset];

/// A thread's own calls beyond [`BASE`].
fn extra(kind: ThreadKind) -> &'static [libc::c_long] {
    match kind {
        // rt_sigtimedwait consumes a kick after KVM_RUN returned EINTR.
        ThreadKind::Vcpu => &[libc::SYS_read, libc::SYS_rt_sigtimedwait, libc::SYS_fsync, libc::SYS_fdatasync],
        ThreadKind::Timer => &[],
        ThreadKind::BlockControl => &[libc::SYS_read],
        // write (in BASE) is the eventfd that wakes the I/O thread.
        ThreadKind::NetControl => &[libc::SYS_read],
        ThreadKind::NetIo => &[libc::SYS_read, libc::SYS_poll, libc::SYS_ppoll],
        ThreadKind::BlockIo => &[
            libc::SYS_pread64,
            libc::SYS_pwrite64,
            libc::SYS_preadv,
            libc::SYS_pwritev,
            libc::SYS_preadv2,
            libc::SYS_pwritev2,
            libc::SYS_fsync,
            libc::SYS_fdatasync,
            libc::SYS_fallocate,
        ],
        ThreadKind::Xenstored => &[
            libc::SYS_read,
            libc::SYS_poll,
            libc::SYS_ppoll,
            libc::SYS_accept4,
            libc::SYS_accept,
            libc::SYS_recvfrom,
            libc::SYS_sendto,
            libc::SYS_getsockopt,
            libc::SYS_fcntl,
        ],
        ThreadKind::ConsoleInput => &[libc::SYS_read],
        // A second signal exits at once (exit_group), restoring the terminal.
        ThreadKind::Signals => &[libc::SYS_rt_sigtimedwait, libc::SYS_exit_group],
        ThreadKind::Main => MAIN,
    }
}

fn allowlist(kind: ThreadKind) -> Allowlist {
    let main = kind == ThreadKind::Main;
    let mut calls: Vec<libc::c_long> = BASE.iter().chain(extra(kind)).copied().collect();
    if main {
        for &nr in STARTED_PER_BOOT.iter().flat_map(|&k| extra(k)).chain(CONFINING_CALLS) {
            if !calls.contains(&nr) {
                calls.push(nr);
            }
        }
    }
    let ioctls: &'static [u64] = match kind {
        ThreadKind::Vcpu => KVM_IOCTLS.0,
        // FIONBIO: set_nonblocking on an accepted client.
        ThreadKind::Xenstored => &[libc::FIONBIO],
        ThreadKind::NetIo => NET_IOCTLS.0,
        ThreadKind::ConsoleInput | ThreadKind::Signals => TERMINAL_IOCTLS.0,
        _ => &[],
    };
    Allowlist {
        calls,
        ioctls,
        ioctl_types: if main { MAIN_IOCTL_TYPES } else { &[] },
        socket: main.then_some(MAIN_SOCKET),
        prctls: if main { CONFINING_PRCTLS } else { &[] },
    }
}

/// What the main thread does after the first boot's set-up: a reboot
/// builds the domain again from the descriptors it holds (openat of
/// /dev/kvm, /dev/net/tun, and what std reads to count CPUs for the I/O
/// workers: /proc and cgroup files; KVM's ioctls and the guest
/// memory's mmap; eventfds; the threads of the next boot), and the end of
/// a run stops the backends, restores the terminal and removes the
/// xenstored socket. Found with `strace -f` over runs that restart (see
/// docs/threat-model.md); no exec, no connect, no socket but [`MAIN_SOCKET`].
const MAIN: &[libc::c_long] = &[
    libc::SYS_read,
    libc::SYS_pread64,
    libc::SYS_lseek,
    libc::SYS_openat,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_fcntl,
    // The xenstored socket's lock, taken to remove the socket at the end.
    libc::SYS_flock,
    libc::SYS_eventfd2,
    libc::SYS_poll,
    libc::SYS_ppoll,
    // Threads of the next boot.
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_sched_getaffinity,
    libc::SYS_rt_sigaction,
    // The end: the xenstored socket and its directory go, then the process.
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_rmdir,
    libc::SYS_exit_group,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
];

/// Compiles a thread's list: anything else traps (SIGSYS).
fn compile(kind: ThreadKind) -> Result<BpfProgram, SeccompError> {
    let err = |e: &dyn std::fmt::Display| SeccompError::Build(kind.name(), e.to_string());
    let list = allowlist(kind);
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = list.calls.iter().map(|&nr| (nr, Vec::new())).collect();
    // (argument, comparison, value) conditions, all of which must hold.
    let rule = |conds: &[(u8, SeccompCmpOp, u64)]| -> Result<SeccompRule, SeccompError> {
        let conds = conds
            .iter()
            .map(|&(arg, ref op, value)| SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op.clone(), value).map_err(|e| err(&e)))
            .collect::<Result<Vec<_>, _>>()?;
        SeccompRule::new(conds).map_err(|e| err(&e))
    };
    let mut ioctl_rules = Vec::new();
    for &req in list.ioctls {
        ioctl_rules.push(rule(&[(1, SeccompCmpOp::Eq, req)])?);
    }
    for &ty in list.ioctl_types {
        // (request & 0xff00) == type << 8: the whole family.
        ioctl_rules.push(rule(&[(1, SeccompCmpOp::MaskedEq(0xff00), ty << 8)])?);
    }
    if !ioctl_rules.is_empty() {
        rules.insert(libc::SYS_ioctl, ioctl_rules);
    }
    if !list.prctls.is_empty() {
        let prctl_rules = list.prctls.iter().map(|&opt| rule(&[(0, SeccompCmpOp::Eq, opt)])).collect::<Result<Vec<_>, _>>()?;
        rules.insert(libc::SYS_prctl, prctl_rules);
    }
    if let Some((domain, ty)) = list.socket {
        rules.insert(libc::SYS_socket, vec![rule(&[(0, SeccompCmpOp::Eq, domain), (1, SeccompCmpOp::Eq, ty)])?]);
    }
    let filter = SeccompFilter::new(rules, SeccompAction::Trap, SeccompAction::Allow, TargetArch::x86_64).map_err(|e| err(&e))?;
    filter.try_into().map_err(|e: seccompiler::BackendError| err(&e))
}

// --- installing them ---

static ENABLED: AtomicBool = AtomicBool::new(false);
static FILTERS: OnceLock<Vec<BpfProgram>> = OnceLock::new();
/// `XENOLITH_SECCOMP_PROBE`: the thread kind that tries a forbidden call once confined.
static PROBE: OnceLock<Option<String>> = OnceLock::new();

thread_local! {
    /// The calling thread's kind, for the SIGSYS message.
    static CURRENT: Cell<Option<ThreadKind>> = const { Cell::new(None) };
}

/// Turns confinement on for this process: compiles every filter, makes the
/// process non-dumpable (no core file of guest memory, no ptrace by other
/// processes of the user) and installs the SIGSYS handler. Call it from the
/// main thread before any confined thread starts.
pub fn enable() -> Result<(), SeccompError> {
    let filters = KINDS.iter().map(|&k| compile(k)).collect::<Result<Vec<_>, _>>()?;
    let _ = FILTERS.set(filters);
    let _ = PROBE.set(std::env::var("XENOLITH_SECCOMP_PROBE").ok());
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(SeccompError::Setup(std::io::Error::last_os_error()));
    }
    // SAFETY: a handler that only calls async-signal-safe code (see on_sigsys);
    // the sigaction structure is a local, fully initialised.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigsys as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) != 0 {
            return Err(SeccompError::Setup(std::io::Error::last_os_error()));
        }
    }
    ENABLED.store(true, Ordering::SeqCst);
    Ok(())
}

/// Closes every descriptor above stderr that xenolith inherited (a
/// parent's pipes, sockets or files are none of the guest's business).
/// Call it first thing, before xenolith opens anything itself.
pub fn close_inherited_fds() {
    // SAFETY: close_range with integer arguments; nothing in this process
    // holds a descriptor above 2 yet.
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if r != 0 {
        log::debug!("close_range: {}", std::io::Error::last_os_error());
    }
}

/// Whether [`enable`] was called.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::SeqCst)
}

/// Confines the calling thread to the list of `kind` (sets no_new_privs,
/// which seccomp requires). Does nothing unless [`enable`] was called. A
/// filter that cannot be installed ends the process: running unconfined
/// when confinement was asked for is not an option.
pub fn confine(kind: ThreadKind) {
    if !enabled() {
        return;
    }
    let Some(prog) = FILTERS.get().and_then(|f| f.get(kind.index())) else { return };
    if kind != ThreadKind::Main {
        // Capabilities are per thread: a confined thread needs none.
        if let Err(e) = drop_capabilities(0) {
            eprintln!("xenolith: cannot drop the capabilities of the {} thread: {e}", kind.name());
            std::process::exit(1);
        }
    }
    CURRENT.with(|c| c.set(Some(kind)));
    if let Err(e) = seccompiler::apply_filter(prog) {
        eprintln!("xenolith: {}", SeccompError::Install(kind.name(), e.to_string()));
        std::process::exit(1);
    }
    if PROBE.get().and_then(Option::as_deref) == Some(kind.name()) {
        probe_forbidden_call();
    }
}

/// CAP_NET_ADMIN (linux/capability.h): creating a TAP, putting it on a bridge.
const CAP_NET_ADMIN: u32 = 12;

/// What the main thread keeps confined in [`confine_main`]: whether the
/// filter went on, and the capabilities kept (a bit per capability).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MainConfinement {
    /// The seccomp filter of [`ThreadKind::Main`] is installed.
    pub filtered: bool,
    /// Capabilities left in the effective and permitted sets.
    pub kept_caps: u64,
}

/// Confines a domain's supervising thread (the main thread of `xenolith
/// run`, a domain's thread in the host service) once its first boot is set
/// up (later calls on the same thread do nothing): no_new_privs, every capability dropped (bounding, ambient,
/// inheritable, permitted and effective sets) but CAP_NET_ADMIN when
/// `vifs` (a reboot creates the TAPs again), then the [`ThreadKind::Main`]
/// filter, unless `scripts`: a vif's `script=` is forked and executed by
/// this thread and would inherit the filter (it still runs under
/// no_new_privs with at most CAP_NET_ADMIN, all a hotplug script needs to
/// set up a link). Does nothing unless [`enable`] was called; a failure
/// ends the process, as in [`confine`].
pub fn confine_main(vifs: bool, scripts: bool) -> Option<MainConfinement> {
    thread_local! {
        static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if !enabled() || DONE.with(|d| d.replace(true)) {
        return None;
    }
    let keep = if vifs { 1u64 << CAP_NET_ADMIN } else { 0 };
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        eprintln!("xenolith: cannot set no_new_privs: {}", std::io::Error::last_os_error());
        std::process::exit(1);
    }
    let kept_caps = match drop_capabilities(keep) {
        Ok(kept) => kept,
        Err(e) => {
            eprintln!("xenolith: cannot drop the main thread's capabilities: {e}");
            std::process::exit(1);
        }
    };
    if !scripts {
        confine(ThreadKind::Main);
    }
    Some(MainConfinement { filtered: !scripts, kept_caps })
}

/// The capability sets of capget/capset (linux/capability.h, version 3:
/// two 32-bit words per set).
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

/// _LINUX_CAPABILITY_VERSION_3.
const CAP_VERSION_3: u32 = 0x2008_0522;

/// Drops the calling thread's capabilities to those in `keep` (a bit per
/// capability): from the bounding set first (while CAP_SETPCAP, if held,
/// still allows it; without it, as for a non-root user, the bounding set
/// stays and no_new_privs keeps execve from using it), the ambient set,
/// then the inheritable, permitted and effective sets. Returns what is
/// left effective.
fn drop_capabilities(keep: u64) -> std::io::Result<u64> {
    for cap in 0..64u32 {
        if keep & (1 << cap) != 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            match std::io::Error::last_os_error().raw_os_error() {
                // Past the kernel's last capability, or no CAP_SETPCAP.
                Some(libc::EINVAL) | Some(libc::EPERM) => break,
                _ => return Err(std::io::Error::last_os_error()),
            }
        }
    }
    // SAFETY: prctl with integer arguments only; EINVAL on kernels without
    // ambient capabilities, which then have none to clear.
    unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0) };
    let mut header = CapHeader { version: CAP_VERSION_3, pid: 0 };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two CapData for version 3 into `data`.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header as *mut CapHeader, data.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    for (i, d) in data.iter_mut().enumerate() {
        let k = (keep >> (32 * i)) as u32;
        d.effective &= k;
        d.permitted &= k;
        d.inheritable = 0;
    }
    // SAFETY: capset reads the header and two CapData; it only lowers sets here.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut CapHeader, data.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(u64::from(data[0].effective) | (u64::from(data[1].effective) << 32))
}

/// The test hook behind `XENOLITH_SECCOMP_PROBE=KIND`: a confined thread
/// opens an IPv4 socket, which no list allows, so the process must die of
/// SIGSYS (tests/tests/confinement.rs). Without filters it merely opens and
/// closes a socket.
fn probe_forbidden_call() {
    // SAFETY: socket/close with integer arguments on a descriptor we own.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        if fd >= 0 {
            libc::close(fd);
        }
    }
}

/// The call the SIGSYS handler makes to die of SIGSYS: no list allows it.
const DIE: libc::c_long = libc::SYS_getppid;

/// SIGSYS from a filter: names the thread and the call on stderr, then
/// dies of SIGSYS. Only async-signal-safe work: a stack buffer, write(2),
/// and a second forbidden call: SIGSYS is blocked inside its handler, so the
/// kernel delivers that one with the default action, killing the process
/// only after the message is out. (SA_RESETHAND would race: a second thread
/// trapping meanwhile would die before the first one's message.)
extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // siginfo_t for SIGSYS: si_call_addr (8 bytes at offset 16), then
    // si_syscall (int, offset 24) and si_arch.
    // SAFETY: the kernel passes a valid siginfo_t (SA_SIGINFO), 128 bytes long.
    let nr = unsafe { *(info.cast::<u8>().add(24).cast::<i32>()) };
    let thread = CURRENT.try_with(Cell::get).ok().flatten().map_or("unknown", ThreadKind::name);
    let mut buf = [0u8; 256];
    let mut len = 0;
    for part in [&b"\nxenolith: seccomp: the "[..], thread.as_bytes(), b" thread made forbidden system call ", &decimal(nr)] {
        for &b in part.iter().take_while(|&&b| b != 0) {
            if len < buf.len() {
                buf[len] = b;
                len += 1;
            }
        }
    }
    let tail = b"; killing xenolith (see docs/threat-model.md: debug with --no-seccomp and strace -f)\n";
    // SAFETY: write(2) from stack buffers, and plain system calls.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), len);
        libc::write(2, tail.as_ptr().cast(), tail.len());
        libc::syscall(DIE);
        libc::syscall(libc::SYS_exit_group, 128 + libc::SIGSYS);
    }
}

/// `n` in decimal, NUL-padded.
fn decimal(n: i32) -> [u8; 12] {
    let mut out = [0u8; 12];
    let mut digits = [0u8; 11];
    let mut v = i64::from(n).unsigned_abs();
    let mut i = 0;
    loop {
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        i += 1;
        if v == 0 || i == digits.len() {
            break;
        }
    }
    let mut o = 0;
    if n < 0 {
        out[0] = b'-';
        o = 1;
    }
    for d in digits[..i].iter().rev() {
        out[o] = *d;
        o += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_compiles() {
        for k in KINDS {
            let prog = compile(k).unwrap();
            assert!(!prog.is_empty(), "{}", k.name());
        }
    }

    #[test]
    fn no_list_allows_the_calls_used_to_die_and_to_probe() {
        for k in KINDS {
            let list = allowlist(k);
            for nr in [DIE, libc::SYS_socket, libc::SYS_execve, libc::SYS_execveat, libc::SYS_connect, libc::SYS_bind] {
                assert!(!list.calls.contains(&nr), "{} allows {nr}", k.name());
            }
            // Only the main thread opens files again (a reboot's /dev/kvm and TAPs).
            assert!(!list.calls.contains(&libc::SYS_open), "{}", k.name());
            assert_eq!(list.calls.contains(&libc::SYS_openat), k == ThreadKind::Main, "{}", k.name());
            // Its one socket is not the probe's (AF_INET, SOCK_STREAM).
            assert!(list.socket.is_none_or(|s| s != (libc::AF_INET as u64, libc::SOCK_STREAM as u64)), "{}", k.name());
        }
    }

    /// Threads started after the main thread confined itself run under its
    /// filter and their own: a call missing from the main list would kill
    /// them on the second boot only.
    #[test]
    fn the_main_list_covers_the_threads_it_starts() {
        let main = allowlist(ThreadKind::Main);
        for k in STARTED_PER_BOOT {
            let list = allowlist(k);
            for nr in &list.calls {
                assert!(main.calls.contains(nr), "{} calls {nr}, which the main list lacks", k.name());
            }
            for req in list.ioctls {
                assert!(main.ioctl_types.contains(&((req >> 8) & 0xff)), "{} makes ioctl {req:#x}", k.name());
            }
        }
    }

    #[test]
    fn decimal_prints_numbers() {
        assert_eq!(&decimal(41)[..3], b"41\0");
        assert_eq!(&decimal(0)[..2], b"0\0");
        assert_eq!(&decimal(-7)[..3], b"-7\0");
    }
}
