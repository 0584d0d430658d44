//! Where the host-side unix socket lives, and binding it.
//!
//! The rule (what `xenolith xenstore-path` prints):
//!
//! * the run directory is `$XENOLITH_RUN_DIR`, or `/run/xenolith`;
//! * the socket is `<run dir>/xenstored/socket`;
//! * if another live xenolith already serves that path, this one uses
//!   `<run dir>/xenstored/socket.<pid>` and logs it; a stale socket file
//!   (nobody listening) is replaced.
//!
//! Checking, replacing, binding and removing a socket happen under an
//! exclusive lock on `<run dir>/xenstored/socket.lock`: two xenolith
//! processes starting together, or one starting while another exits,
//! cannot remove each other's live socket (or one removed between the
//! other's check and its own removal: "cannot listen ...: No such file").
//! An exiting xenolith removes its socket only if the path still names it.
//!
//! Point Xen's tools at it with `XENSTORED_PATH` (libxenstore 4.17's
//! xs_daemon_socket() and pyxs both honour it), e.g.
//! `XENSTORED_PATH=$(xenolith xenstore-path) xenstore-ls`.
//! Clients of the socket are domain 0 (privileged), so the socket is
//! created mode 0600.

use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The environment variable that moves the run directory.
pub const RUN_DIR_ENV: &str = "XENOLITH_RUN_DIR";
/// The run directory without it.
pub const DEFAULT_RUN_DIR: &str = "/run/xenolith";

/// Why the socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The directory could not be created.
    #[error("cannot create {path}: {err}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The error.
        #[source]
        err: std::io::Error,
    },
    /// The socket could not be bound.
    #[error("cannot listen on {path}: {err}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The error.
        #[source]
        err: std::io::Error,
    },
}

/// The run directory.
pub fn run_dir() -> PathBuf {
    std::env::var_os(RUN_DIR_ENV).filter(|v| !v.is_empty()).map_or_else(|| PathBuf::from(DEFAULT_RUN_DIR), PathBuf::from)
}

/// The usual socket path: `<run dir>/xenstored/socket`.
pub fn default_path() -> PathBuf {
    run_dir().join("xenstored").join("socket")
}

/// The socket path of the xenolith with process id `pid` when the usual
/// path was taken.
pub fn per_pid_path(pid: u32) -> PathBuf {
    run_dir().join("xenstored").join(format!("socket.{pid}"))
}

/// The process serving the socket at `path`, if one is listening.
pub fn server_pid(path: &Path) -> Option<u32> {
    let s = UnixStream::connect(path).ok()?;
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    use std::os::fd::AsRawFd;
    // SAFETY: getsockopt writes at most `len` bytes into the local `cred`.
    let r = unsafe { libc::getsockopt(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PEERCRED, (&raw mut cred).cast(), &mut len) };
    (r == 0).then_some(cred.pid as u32)
}

/// The socket of xenolith `pid` (or, without one, the usual path): the
/// usual path if that process serves it or none is given, otherwise its
/// per-pid path.
pub fn locate(pid: Option<u32>) -> PathBuf {
    let usual = default_path();
    match pid {
        None => usual,
        Some(p) if server_pid(&usual) == Some(p) => usual,
        Some(p) => per_pid_path(p),
    }
}

/// A bound socket: its path and the identity of its file, so that only
/// this socket is ever removed from that path.
#[derive(Debug)]
pub struct Bound {
    /// The socket path.
    pub path: PathBuf,
    identity: FileIdentity,
}

/// Device, inode and change time: inode numbers alone are reused at once
/// once a file is removed.
type FileIdentity = (u64, u64, i64, i64);

fn identity(m: &std::fs::Metadata) -> FileIdentity {
    (m.dev(), m.ino(), m.ctime(), m.ctime_nsec())
}

impl Bound {
    /// Removes the socket file if the path still names this socket (and not
    /// one another xenolith bound since), under the directory lock.
    pub fn remove(&self) {
        let _lock = DirLock::take(&self.path);
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| identity(&m) == self.identity) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The exclusive lock that serialises socket changes in one directory;
/// released when dropped (or when the process dies).
struct DirLock(Option<std::fs::File>);

impl DirLock {
    /// Locks `<socket>.lock` beside `socket`, waiting for the holder. Without
    /// a lock file (read-only directory) it goes on unlocked: it would fail
    /// to bind there anyway.
    fn take(socket: &Path) -> DirLock {
        let mut name = socket.as_os_str().to_owned();
        name.push(".lock");
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(PathBuf::from(name));
        let Ok(file) = file else { return DirLock(None) };
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        while unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            if std::io::Error::last_os_error().kind() != ErrorKind::Interrupted {
                return DirLock(None);
            }
        }
        DirLock(Some(file))
    }
}

/// Binds the socket by the rule above; `at` overrides the path (no
/// fallback then). Returns the listener (non-blocking) and what to remove.
pub fn bind(at: Option<&Path>) -> Result<(UnixListener, Bound), SocketError> {
    let usual = at.map_or_else(default_path, Path::to_path_buf);
    if let Some(dir) = usual.parent() {
        std::fs::create_dir_all(dir).map_err(|err| SocketError::Dir { path: dir.to_owned(), err })?;
    }
    // One lock (named after the usual path) covers the per-pid ones too.
    let _lock = DirLock::take(&usual);
    let path = match try_bind(&usual) {
        Ok(l) => return finish(l, usual),
        Err(err) if err.kind() == ErrorKind::AddrInUse && at.is_none() => {
            let p = per_pid_path(std::process::id());
            log::warn!("xenstored: {} is served by another xenolith; using {}", usual.display(), p.display());
            p
        }
        Err(err) => return Err(SocketError::Bind { path: usual, err }),
    };
    let l = try_bind(&path).map_err(|err| SocketError::Bind { path: path.clone(), err })?;
    finish(l, path)
}

/// Binds `path`, replacing a stale socket file; AddrInUse if it is live.
fn try_bind(path: &Path) -> std::io::Result<UnixListener> {
    match UnixListener::bind(path) {
        Err(e) if e.kind() == ErrorKind::AddrInUse => {
            if UnixStream::connect(path).is_ok() {
                return Err(e);
            }
            // Only replace a socket: never delete some unrelated file.
            use std::os::unix::fs::FileTypeExt;
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
                match std::fs::remove_file(path) {
                    // Gone already: its owner removed it as it exited.
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    r => r?,
                }
            }
            UnixListener::bind(path)
        }
        r => r,
    }
}

fn finish(l: UnixListener, path: PathBuf) -> Result<(UnixListener, Bound), SocketError> {
    let err = |err| SocketError::Bind { path: path.clone(), err };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    l.set_nonblocking(true).map_err(err)?;
    let meta = std::fs::symlink_metadata(&path).map_err(err)?;
    if let Some(dir) = path.parent() {
        sweep(dir);
    }
    Ok((l, Bound { path, identity: identity(&meta) }))
}

/// Removes the per-pid sockets of xenolith processes that no longer exist
/// (killed ones cannot remove their own).
fn sweep(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("socket.")).and_then(|p| p.parse::<libc::pid_t>().ok()) else { continue };
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        use std::os::unix::fs::FileTypeExt;
        if gone && e.file_type().is_ok_and(|t| t.is_socket()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_sockets_are_replaced_live_ones_are_not() {
        let dir = std::env::temp_dir().join(format!("xenolith-xs-sock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let p = dir.join("xenstored/socket");
        let (l, got) = bind(Some(&p)).unwrap();
        assert_eq!(got.path, p);
        assert_eq!(server_pid(&p), Some(std::process::id()));
        assert!(matches!(bind(Some(&p)), Err(SocketError::Bind { .. })), "live: not stolen");
        drop(l);
        let (_l2, got2) = bind(Some(&p)).unwrap();
        assert_eq!(got2.path, p, "stale: replaced");
        got.remove();
        assert!(p.exists(), "the first socket's removal leaves the second alone");
        got2.remove();
        assert!(!p.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Starts racing on a stale socket: exactly one wins, the others find
    /// it live (never "No such file", never two servers of which one
    /// listens on a removed path).
    #[test]
    fn concurrent_binds_on_a_stale_socket_do_not_race() {
        let dir = std::env::temp_dir().join(format!("xenolith-xs-race-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let p = dir.join("xenstored/socket");
        for _ in 0..50 {
            // A stale socket: bound, then closed without removing it.
            drop(bind(Some(&p)).unwrap());
            let barrier = std::sync::Barrier::new(6);
            let results: Vec<_> = std::thread::scope(|s| {
                let threads: Vec<_> = (0..6)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            bind(Some(&p))
                        })
                    })
                    .collect();
                threads.into_iter().map(|t| t.join().unwrap()).collect()
            });
            let mut winners = Vec::new();
            for r in results {
                match r {
                    Ok(won) => winners.push(won),
                    Err(SocketError::Bind { err, .. }) => assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}"),
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(winners.len(), 1, "one server for the path");
            let (l, b) = winners.pop().unwrap();
            assert!(std::fs::symlink_metadata(&p).is_ok_and(|m| identity(&m) == b.identity), "the winner's socket is the one at the path");
            drop(l);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
