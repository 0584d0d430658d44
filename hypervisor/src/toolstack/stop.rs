//! Stopping a running domain from outside the guest: the console escape
//! (Ctrl-]) and the signals SIGHUP, SIGINT, SIGQUIT and SIGTERM.
//!
//! Both take the orderly way out of a normal shutdown: the domain is shut
//! down, [`super::domain::run`] returns, and everything is undone as on any
//! exit (the terminal's mode restored, xenstored's socket removed). The
//! signals are blocked in every thread and taken by one thread with
//! `sigwait`, so no code runs in a signal handler. A second signal while
//! the first is being handled exits at once (the terminal is still
//! restored, by the `atexit` hook; a socket left behind is replaced by the
//! next xenolith).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::backends::console::Console;
use crate::xen::{Domain, ShutdownReason};

/// The signals that destroy the domain and end xenolith.
pub const SIGNALS: [libc::c_int; 4] = [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGTERM];

/// Why the run was stopped from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopCause {
    /// Ctrl-] on the console.
    ConsoleEscape,
    /// One of [`SIGNALS`].
    Signal(libc::c_int),
    /// `xenolith destroy` (xl destroy), through the host service.
    Destroy,
}

impl StopCause {
    /// How it reads in a message: "console escape (Ctrl-])", "SIGTERM".
    pub fn describe(self) -> String {
        match self {
            StopCause::ConsoleEscape => "console escape (Ctrl-])".to_owned(),
            StopCause::Signal(libc::SIGHUP) => "SIGHUP".to_owned(),
            StopCause::Signal(libc::SIGINT) => "SIGINT".to_owned(),
            StopCause::Signal(libc::SIGQUIT) => "SIGQUIT".to_owned(),
            StopCause::Signal(libc::SIGTERM) => "SIGTERM".to_owned(),
            StopCause::Signal(n) => format!("signal {n}"),
            StopCause::Destroy => "xenolith destroy".to_owned(),
        }
    }
}

/// The running incarnation of the domain and its console.
#[derive(Clone)]
pub struct Running {
    /// The domain.
    pub dom: Arc<Domain>,
    /// Its PV console backend (terminal input goes there).
    pub console: Arc<Console>,
}

#[derive(Default)]
struct State {
    /// The running incarnation of the domain, if any.
    current: Option<Running>,
    /// Set once: the first request wins.
    cause: Option<StopCause>,
    /// The domid the run holds now (it changes on restart), also between
    /// incarnations, when `current` is `None`.
    domid: Option<u16>,
}

/// The running domain and whether it was asked to stop; shared by the run
/// loop, the console input thread and the signal thread.
#[derive(Clone, Default)]
pub struct Stopper {
    state: Arc<(Mutex<State>, Condvar)>,
}

impl Stopper {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until a domain is registered as running and returns it, or
    /// `None` once `gone()` holds or `timeout` passes (the host service's
    /// `create` waits here for the domain to be built).
    pub fn wait_running(&self, timeout: Duration, gone: impl Fn() -> bool) -> Option<Running> {
        let end = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            if let Some(r) = &st.current {
                return Some(r.clone());
            }
            let now = Instant::now();
            if gone() || now >= end {
                return None;
            }
            // Woken by set_current; `gone` is polled in case the run failed.
            let wait = (end - now).min(Duration::from_millis(20));
            st = self.state.1.wait_timeout(st, wait).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Asks the run to stop: the current domain (if any) shuts down now, a
    /// later one as soon as it is registered, and no restart follows.
    /// Returns false if a stop was already requested.
    pub fn request(&self, cause: StopCause) -> bool {
        let mut st = self.lock();
        if st.cause.is_some() {
            return false;
        }
        st.cause = Some(cause);
        if let Some(r) = &st.current {
            // The reason is not reported: the run loop sees the cause first.
            r.dom.shutdown(ShutdownReason::Poweroff);
        }
        true
    }

    /// Why the run was stopped, if it was.
    pub fn cause(&self) -> Option<StopCause> {
        self.lock().cause
    }

    /// Records the domid the run now holds.
    pub fn set_domid(&self, domid: u16) {
        self.lock().domid = Some(domid);
    }

    /// The domid the run holds, once it has started.
    pub fn domid(&self) -> Option<u16> {
        self.lock().domid
    }

    /// The running domain and its console, for console input.
    pub fn current(&self) -> Option<Running> {
        self.lock().current.clone()
    }

    /// Registers the domain that now runs (or none); one registered after a
    /// stop request is shut down at once, so no request is ever lost.
    pub fn set_current(&self, running: Option<Running>) {
        let mut st = self.lock();
        if let (Some(r), Some(_)) = (&running, st.cause) {
            r.dom.shutdown(ShutdownReason::Poweroff);
        }
        st.current = running;
        self.state.1.notify_all();
    }
}

/// The signal set of [`SIGNALS`].
fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Takes [`SIGNALS`] for `xenolith run`: the first stops `stopper`'s run
/// (see [`take_signals`]).
pub fn handle_signals(stopper: Stopper) -> std::io::Result<()> {
    take_signals(move |cause| {
        stopper.request(cause).then(|| stopper.current().map_or_else(|| "stopping".to_owned(), |r| format!("destroying domain {}", r.dom.info.name)))
    })
}

/// Blocks [`SIGNALS`] in the calling thread, and so in every thread it
/// starts afterwards, and starts the thread that takes them with `sigwait`:
/// each goes to `stop`, which starts an orderly stop and says what it does,
/// or returns `None` when one is already under way: then the process exits
/// at once with status 128 + the signal's number. Call it before any other
/// thread exists, or one of those could still take a signal with its
/// default action.
pub fn take_signals(stop: impl Fn(StopCause) -> Option<String> + Send + 'static) -> std::io::Result<()> {
    let set = signal_set();
    // SAFETY: pthread_sigmask reads the local set; the old mask is not wanted.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(std::io::Error::from_raw_os_error(r));
    }
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        crate::seccomp::confine(crate::seccomp::ThreadKind::Signals);
        loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: sigwait reads the set and writes the signal number to a local.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                continue;
            }
            let cause = StopCause::Signal(sig);
            if let Some(what) = stop(cause) {
                eprintln!("\r\nxenolith: {}: {what}\r", cause.describe());
            } else {
                eprintln!("\r\nxenolith: {} again: exiting now\r", cause.describe());
                std::process::exit(128 + sig);
            }
        }
    })?;
    Ok(())
}
