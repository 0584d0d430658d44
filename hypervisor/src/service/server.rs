//! `xenolith daemon`: the host service's process. It takes the control
//! socket, starts the one xenstored, and serves each client connection on
//! its own thread until SIGTERM (or SIGINT, SIGHUP, SIGQUIT), which
//! destroys every domain and removes both sockets.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::control::{self, ControlError};
use super::host::{Host, Managed};
use super::verbs;
use super::wire::{self, Kind, Request};
use crate::toolstack::stop;
use crate::xenstore::{self, Xenstored};

/// How long a stopping service waits for its domains to go.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How the service runs.
pub struct DaemonOptions {
    /// Members of this group may use the control socket too.
    pub group: Option<libc::gid_t>,
    /// Where the domains' console logs go.
    pub log_dir: PathBuf,
    /// Run without the per-thread seccomp filters.
    pub no_seccomp: bool,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The control socket or its lock.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// xenstored.
    #[error(transparent)]
    Xenstored(#[from] xenstore::StartError),
    /// The seccomp filters.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    /// Something else the process needs (a pipe, the signal thread).
    #[error("{0}: {1}")]
    Os(&'static str, #[source] std::io::Error),
}

/// Runs the service until a signal stops it.
pub fn serve(opts: &DaemonOptions) -> Result<(), ServiceError> {
    let control = control::bind(opts.group)?;
    // The filters first: every confined thread, the signal thread's too,
    // installs its own as it starts.
    if opts.no_seccomp {
        log::warn!("running without seccomp filters (--no-seccomp)");
    } else {
        crate::seccomp::enable()?;
    }
    // Signals first, while this is the only thread: every later thread
    // inherits the blocked set.
    let (wake_read, wake_write) = pipe().map_err(|e| ServiceError::Os("cannot make a pipe", e))?;
    let stopping = AtomicBool::new(false);
    stop::take_signals(move |_| {
        if stopping.swap(true, Ordering::SeqCst) {
            return None;
        }
        // SAFETY: writes one byte from a local to a pipe we own.
        unsafe { libc::write(wake_write.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
        Some("destroying every domain and stopping the service".into())
    })
    .map_err(|e| ServiceError::Os("cannot handle signals", e))?;
    // What every domain's build asks of KVM, asked once now, and a VM
    // made ahead of each create.
    if let Err(e) = crate::vstate::vm::prefetch() {
        log::warn!("{e}");
    }
    crate::vstate::vm::keep_spare_vms(&crate::toolstack::domain::TRAPPED_MSRS).map_err(|e| ServiceError::Os("cannot start the spare-VM thread", e))?;
    let xs = Xenstored::start(xenstore::Options::default())?;
    let host = Host::new(xs, opts.log_dir.clone());
    log::info!(
        "xenolith service (pid {}) listening on {}; xenstored on {}",
        std::process::id(),
        control::socket_path().display(),
        host.xs.socket_path().map_or_else(|| "no socket".to_owned(), |p| p.display().to_string())
    );
    loop {
        let mut fds = [
            libc::pollfd { fd: control.listener.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: wake_read.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: poll reads and writes the local array of two entries.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            continue; // EINTR
        }
        if fds[1].revents != 0 {
            break;
        }
        if fds[0].revents & libc::POLLIN != 0 {
            if let Ok((stream, _)) = control.listener.accept() {
                let host = host.clone();
                let spawned = std::thread::Builder::new().name("control".into()).spawn(move || serve_client(&host, stream));
                if let Err(e) = spawned {
                    log::error!("cannot serve a client: {e}");
                }
            }
        }
    }
    log::info!("stopping: destroying {} domain(s)", host.live().len());
    host.destroy_all(STOP_TIMEOUT);
    drop(control);
    Ok(())
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the local array with two new descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// One client: its request, the verb's output and status, or the console.
fn serve_client(host: &Arc<Host>, mut stream: UnixStream) {
    let started = Instant::now();
    let req = match wire::recv(&mut stream) {
        Ok(Some((Kind::Request, payload))) => Request::decode(&payload),
        Ok(_) => return,
        Err(e) => Err(e),
    };
    let req = match req {
        Ok(req) => req,
        Err(e) => {
            let _ = wire::send(&mut stream, Kind::Stderr, format!("xenolith: bad request: {e}\n").as_bytes());
            let _ = wire::send(&mut stream, Kind::Exit, &[1]);
            return;
        }
    };
    let reply = match verbs::parse(&req.args) {
        Ok(verb) => verbs::execute(host, Path::new(&req.cwd), verb),
        Err(e) => verbs::Reply { err: e.render().to_string(), status: 1, ..Default::default() },
    };
    log::debug!("{} -> {} in {} us", req.args.join(" "), reply.status, started.elapsed().as_micros());
    let mut send = |kind, bytes: &[u8]| if bytes.is_empty() { Ok(()) } else { wire::send(&mut stream, kind, bytes) };
    if send(Kind::Stdout, reply.out.as_bytes()).and_then(|()| send(Kind::Stderr, reply.err.as_bytes())).is_err() {
        return;
    }
    match reply.attach {
        Some(managed) => {
            if wire::send(&mut stream, Kind::Attached, &[]).is_ok() {
                console_session(&managed, stream);
            }
        }
        None => {
            let _ = wire::send(&mut stream, Kind::Exit, &[reply.status]);
        }
    }
}

/// Streams a domain's console to the client and its keystrokes to the
/// guest, until the client detaches, another attaches, or the domain is gone.
fn console_session(managed: &Arc<Managed>, mut stream: UnixStream) {
    let ticket = managed.console.attach();
    let Ok(mut input) = stream.try_clone() else { return };
    let m = managed.clone();
    let reader = std::thread::Builder::new().name("console-in".into()).spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = input.read(&mut buf) {
            if let Some(run) = m.stopper.current() {
                run.console.input(&run.dom, &buf[..n]);
            }
        }
        m.console.detach(ticket);
    });
    if reader.is_err() {
        managed.console.detach(ticket);
        return;
    }
    while let Some(bytes) = managed.console.next(ticket) {
        if stream.write_all(&bytes).is_err() {
            break;
        }
    }
    managed.console.detach(ticket);
    let _ = stream.shutdown(std::net::Shutdown::Both);
}
