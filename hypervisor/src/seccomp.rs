//! Per-thread seccomp-bpf allowlists (rust-vmm's seccompiler), as
//! Firecracker confines its vCPU, VMM and API threads.
//!
//! Every thread that handles what a guest controls installs the filter of
//! its [`ThreadKind`] as the first thing it does once its own set-up is
//! done: the vCPU, the timer, each block device's and each vif's control
//! and I/O threads,
//! xenstored, the console input thread and the signal thread. The main
//! thread, which builds (and on reboot rebuilds) the VM, is not filtered; it
//! only waits while the guest runs, and never parses guest data.
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
}

/// Every kind, for tests and for compiling all filters up front.
pub const KINDS: [ThreadKind; 9] = [
    ThreadKind::Vcpu,
    ThreadKind::Timer,
    ThreadKind::BlockControl,
    ThreadKind::BlockIo,
    ThreadKind::NetControl,
    ThreadKind::NetIo,
    ThreadKind::Xenstored,
    ThreadKind::ConsoleInput,
    ThreadKind::Signals,
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
/// kvm-bindings); KVM_SET_SIGNAL_MASK and the register set-up come before
/// the thread is confined.
const KVM_IOCTLS: Ioctls = Ioctls(&[
    0xae80,     // KVM_RUN
    0x8138ae83, // KVM_GET_SREGS (the paging mode, for translations)
    0xc018ae85, // KVM_TRANSLATE (hypercall pointers)
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

/// A thread's list: calls allowed with any arguments, and ioctls.
struct Allowlist {
    calls: Vec<libc::c_long>,
    ioctls: &'static [u64],
}

fn allowlist(kind: ThreadKind) -> Allowlist {
    let extra: &[libc::c_long] = match kind {
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
    };
    let ioctls: &'static [u64] = match kind {
        ThreadKind::Vcpu => KVM_IOCTLS.0,
        // FIONBIO: set_nonblocking on an accepted client.
        ThreadKind::Xenstored => &[libc::FIONBIO],
        ThreadKind::NetIo => NET_IOCTLS.0,
        ThreadKind::ConsoleInput | ThreadKind::Signals => TERMINAL_IOCTLS.0,
        _ => &[],
    };
    Allowlist { calls: BASE.iter().chain(extra).copied().collect(), ioctls }
}

/// Compiles a thread's list: anything else traps (SIGSYS).
fn compile(kind: ThreadKind) -> Result<BpfProgram, SeccompError> {
    let err = |e: &dyn std::fmt::Display| SeccompError::Build(kind.name(), e.to_string());
    let list = allowlist(kind);
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = list.calls.iter().map(|&nr| (nr, Vec::new())).collect();
    if !list.ioctls.is_empty() {
        let mut ioctl_rules = Vec::new();
        for &req in list.ioctls {
            let cond = SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, req).map_err(|e| err(&e))?;
            ioctl_rules.push(SeccompRule::new(vec![cond]).map_err(|e| err(&e))?);
        }
        rules.insert(libc::SYS_ioctl, ioctl_rules);
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
    CURRENT.with(|c| c.set(Some(kind)));
    if let Err(e) = seccompiler::apply_filter(prog) {
        eprintln!("xenolith: {}", SeccompError::Install(kind.name(), e.to_string()));
        std::process::exit(1);
    }
    if PROBE.get().and_then(Option::as_deref) == Some(kind.name()) {
        probe_forbidden_call();
    }
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
            for nr in [DIE, libc::SYS_socket, libc::SYS_open, libc::SYS_openat, libc::SYS_execve, libc::SYS_connect] {
                assert!(!list.calls.contains(&nr), "{} allows {nr}", k.name());
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
