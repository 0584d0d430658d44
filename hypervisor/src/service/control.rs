//! The control socket's place and its owner: `<run dir>/control`, served
//! by the one service that holds the exclusive lock on
//! `<run dir>/daemon.lock` (which also holds its pid).
//!
//! The kernel drops the lock when the service dies, even by kill -9, so a
//! socket file left behind never blocks the next start: whoever takes the
//! lock knows the socket is stale and replaces it. Two services started at
//! once (two `create`s racing to start one) cannot both run: the second
//! finds the lock taken and exits, and its client connects to the first.

use std::io::{ErrorKind, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use crate::xenstore::socket::run_dir;

/// Why the control socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another service holds the lock.
    #[error("a xenolith service is already running (pid {0})")]
    AlreadyRunning(u32),
    /// A file system operation failed.
    #[error("{what} {path}: {err}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        err: std::io::Error,
    },
}

/// The control socket: `<run dir>/control`.
pub fn socket_path() -> PathBuf {
    run_dir().join("control")
}

/// The service's lock and pid file: `<run dir>/daemon.lock`.
pub fn lock_path() -> PathBuf {
    run_dir().join("daemon.lock")
}

/// The pid of the running service, if one holds the lock.
pub fn service_pid() -> Option<u32> {
    let mut file = std::fs::File::open(lock_path()).ok()?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
        return None; // nobody holds it
    }
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// The service's hold on the run directory: the lock, the listener and the
/// socket it removes when dropped.
pub struct Control {
    /// The listening socket.
    pub listener: UnixListener,
    path: PathBuf,
    _lock: std::fs::File,
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Takes the lock and binds the control socket, mode 0600, or 0660 owned
/// by `group` so that its members may use it too.
pub fn bind(group: Option<libc::gid_t>) -> Result<Control, ControlError> {
    let io = |what, path: &PathBuf| {
        let path = path.clone();
        move |err| ControlError::Io { what, path, err }
    };
    let dir = run_dir();
    std::fs::create_dir_all(&dir).map_err(io("cannot create", &dir))?;
    let lock_path = lock_path();
    let mut lock = std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).mode(0o644).open(&lock_path).map_err(io("cannot open", &lock_path))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.kind() == ErrorKind::WouldBlock {
            return Err(ControlError::AlreadyRunning(service_pid().unwrap_or(0)));
        }
        return Err(io("cannot lock", &lock_path)(err));
    }
    let write_pid = |lock: &mut std::fs::File| {
        lock.set_len(0)?;
        lock.rewind()?;
        writeln!(lock, "{}", std::process::id())
    };
    write_pid(&mut lock).map_err(io("cannot write", &lock_path))?;
    // We hold the lock: any socket file here is a dead service's.
    let path = socket_path();
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(io("cannot remove the stale", &path)(e)),
        _ => {}
    }
    let listener = UnixListener::bind(&path).map_err(io("cannot listen on", &path))?;
    // Until the mode is set the directory's mode guards the socket: the run
    // directory is root's.
    let mode = match group {
        Some(gid) => {
            let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| io("bad path", &path)(ErrorKind::InvalidInput.into()))?;
            // SAFETY: chown with a NUL-terminated path and plain ids.
            if unsafe { libc::chown(c.as_ptr(), u32::MAX, gid) } != 0 {
                return Err(io("cannot give the group", &path)(std::io::Error::last_os_error()));
            }
            0o660
        }
        None => 0o600,
    };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(io("cannot set the mode of", &path))?;
    Ok(Control { listener, path, _lock: lock })
}

/// Connects to the running service.
pub fn connect() -> std::io::Result<UnixStream> {
    UnixStream::connect(socket_path())
}

/// The id of group `name` (for `daemon --group`).
pub fn group_id(name: &str) -> Option<libc::gid_t> {
    if let Ok(id) = name.parse() {
        return Some(id);
    }
    let group = std::fs::read_to_string("/etc/group").ok()?;
    group.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then(|| f.nth(1)?.parse().ok())?
    })
}
