//! The client side of the verbs: connect to the host service (starting it
//! if none runs), send the verb, print what comes back, or run the console.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::control;
use super::wire::{self, Kind, Request};
use crate::toolstack::terminal::RawTerminal;
use crate::vstate::vcpu::{monotonic_ns, STAMP_ENV};

/// How long a client waits for a service it started to listen.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Ctrl-]: detaches from a console, as in xl.
pub const ESCAPE: u8 = 0x1d;

/// Why a verb could not reach the service.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No service runs (and the verb does not start one).
    #[error("no xenolith service is running (`xenolith create` starts one): {0}")]
    NotRunning(#[source] std::io::Error),
    /// No service, and none could be started.
    #[error("cannot start the xenolith service: {0}")]
    Start(#[source] std::io::Error),
    /// The service did not answer as it should.
    #[error("the xenolith service ({path}): {err}")]
    Io {
        /// The control socket.
        path: String,
        /// The error.
        #[source]
        err: std::io::Error,
    },
}

/// Sends `args` (a verb and its arguments) to the service and relays the
/// answer; returns the verb's exit status. Only `create` starts a service
/// that is not running; the other verbs have nothing to act on then.
pub fn run(args: &[String]) -> Result<u8, ClientError> {
    let io = |err| ClientError::Io { path: control::socket_path().display().to_string(), err };
    let mut stream = if args.first().is_some_and(|v| v == "create") {
        connect_or_start()?
    } else {
        control::connect().map_err(ClientError::NotRunning)?
    };
    let cwd = std::env::current_dir().map_err(io)?.to_string_lossy().into_owned();
    let req = Request { cwd, args: args.to_vec() };
    let frame = req.encode().map_err(io)?;
    if std::env::var_os(STAMP_ENV).is_some() {
        eprintln!("xenolith-bench: request-ns={}", monotonic_ns());
    }
    wire::send(&mut stream, Kind::Request, &frame).map_err(io)?;
    loop {
        match wire::recv(&mut stream).map_err(io)? {
            Some((Kind::Stdout, bytes)) => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&bytes).and_then(|()| out.flush());
            }
            Some((Kind::Stderr, bytes)) => {
                let _ = std::io::stderr().write_all(&bytes);
            }
            Some((Kind::Exit, status)) => return Ok(status.first().copied().unwrap_or(1)),
            Some((Kind::Attached, _)) => {
                console(stream);
                return Ok(0);
            }
            Some((Kind::Request, _)) | None => return Err(io(ErrorKind::UnexpectedEof.into())),
        }
    }
}

/// Connects to the service, starting `xenolith daemon` (detached, in its
/// own session, logging to `<run dir>/daemon.log`) if none listens.
pub fn connect_or_start() -> Result<UnixStream, ClientError> {
    match control::connect() {
        Ok(s) => return Ok(s),
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {}
        Err(e) => return Err(ClientError::Start(e)),
    }
    let dir = crate::xenstore::socket::run_dir();
    std::fs::create_dir_all(&dir).map_err(ClientError::Start)?;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("daemon.log")).map_err(ClientError::Start)?;
    let exe = std::env::current_exe().map_err(ClientError::Start)?;
    let mut cmd = Command::new(exe);
    cmd.args(["daemon", "-v"]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
    // SAFETY: setsid is async-signal-safe; the child leaves the client's
    // session, so the client's terminal closing does not stop it.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(ClientError::Start)?;
    let end = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(s) = control::connect() {
            // Reap it later if it exits (a service that lost the race).
            std::thread::spawn(move || child.wait());
            return Ok(s);
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Another client's service may have won the race: keep trying.
            if control::service_pid().is_none() {
                return Err(ClientError::Start(std::io::Error::other(format!("xenolith daemon exited ({status}); see {}", dir.join("daemon.log").display()))));
            }
        }
        if Instant::now() >= end {
            return Err(ClientError::Start(std::io::Error::new(ErrorKind::TimedOut, format!("no service listening after {} s; see {}", START_TIMEOUT.as_secs(), dir.join("daemon.log").display()))));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The attached console: output to stdout, stdin to the guest in raw
/// mode; Ctrl-] detaches, as does the domain going away. When stdin ends
/// (not a terminal) output keeps coming until the domain is gone.
fn console(stream: UnixStream) {
    let raw = RawTerminal::enter();
    if let Ok(mut to_guest) = stream.try_clone() {
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            loop {
                let n = match std::io::stdin().read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let bytes = &buf[..n];
                if let Some(pos) = bytes.iter().position(|&b| b == ESCAPE) {
                    let _ = to_guest.write_all(&bytes[..pos]);
                    let _ = to_guest.shutdown(std::net::Shutdown::Both);
                    return;
                }
                if to_guest.write_all(bytes).is_err() {
                    return;
                }
            }
        });
    }
    let mut from_guest = stream;
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = from_guest.read(&mut buf) {
        let mut out = std::io::stdout().lock();
        if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    drop(raw);
}
