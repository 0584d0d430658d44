//! xenstored: the control-plane database of a Xen host, in the hypervisor.
//!
//! It speaks xs_wire (io/xs_wire.h, docs/misc/xenstore.txt) with C
//! xenstored 4.17's semantics to three kinds of client:
//!
//! * guests, over their xenstore ring page (HVM_PARAM_STORE_PFN) and store
//!   event channel ([`ring`]);
//! * host tools, over a unix socket ([`socket`] gives the path rule);
//!   libxenstore's tools and pyxs work unmodified with `XENSTORED_PATH`;
//! * backends inside the hypervisor, through the [`Xenstored`] API below.
//!
//! Module map: [`path`] (validation, relative paths), [`perms`],
//! [`quota`], [`store`] (tree, nodes, generation counts, node operations),
//! [`transaction`], [`watch`], [`wire`] (framing), [`ring`], [`socket`],
//! [`daemon`] (connections and per-message dispatch), [`layout`] (what
//! xl/libxl write for a new domain).
//!
//! # Threads
//!
//! One daemon thread owns the transports: it waits in poll(2) on the
//! socket, its clients and an eventfd, serves every guest ring on each
//! wake-up, and runs API watch callbacks. A guest's notification on its
//! store channel only writes the eventfd ([`Xenstored::notify`]), so a vCPU
//! never waits for xenstored, and a slow host client never blocks anyone:
//! sockets are non-blocking with per-connection output queues.
//!
//! All state sits behind one mutex, taken for one request at a time (C
//! xenstored is single-threaded; this keeps its ordering). API calls take
//! it on the caller's thread and return when done. Watch callbacks run on
//! the daemon thread without the lock held, so they may call the API; they
//! must not block for long, since they delay every other client.

// The in-process API is the contract with the device backends; parts of it
// have no caller in the hypervisor yet, which is not dead code to remove.
#![allow(dead_code)]

pub mod daemon;
pub mod layout;
pub mod path;
pub mod perms;
pub mod quota;
pub mod ring;
pub mod socket;
pub mod store;
pub mod transaction;
pub mod watch;
pub mod wire;

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use xen_abi::xenstore::*;
use xen_abi::DomId;

pub use daemon::GuestRing;
#[allow(unused_imports)] // for backends' permission lists
pub use perms::{Access, Perm};
pub use quota::Quota;

use daemon::State;
use wire::Message;

/// An error xenstored reports: the errno names of xs_wire.h's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum XsError {
    /// EINVAL: a malformed request, path or argument.
    #[error("EINVAL (invalid argument)")]
    Inval,
    /// EACCES: permission denied.
    #[error("EACCES (permission denied)")]
    Acces,
    /// EEXIST: already exists (a duplicate watch).
    #[error("EEXIST (already exists)")]
    Exist,
    /// EISDIR.
    #[error("EISDIR (is a directory)")]
    IsDir,
    /// ENOENT: no such node, transaction or watch.
    #[error("ENOENT (no such node)")]
    NoEnt,
    /// ENOMEM (also a commit of a transaction that failed half-way).
    #[error("ENOMEM (out of memory)")]
    NoMem,
    /// ENOSPC: a node, size, permission or transaction quota.
    #[error("ENOSPC (quota exceeded)")]
    NoSpc,
    /// EIO: internal inconsistency.
    #[error("EIO (input/output error)")]
    Io,
    /// ENOTEMPTY.
    #[error("ENOTEMPTY (not empty)")]
    NotEmpty,
    /// ENOSYS: an unsupported message type.
    #[error("ENOSYS (not supported)")]
    NoSys,
    /// EROFS.
    #[error("EROFS (read-only)")]
    RoFs,
    /// EBUSY: a nested transaction.
    #[error("EBUSY (busy)")]
    Busy,
    /// EAGAIN: a transaction conflicted; retry it.
    #[error("EAGAIN (transaction conflict, retry)")]
    Again,
    /// EISCONN.
    #[error("EISCONN (already connected)")]
    IsConn,
    /// E2BIG: a reply over the payload limit, or the watch quota.
    #[error("E2BIG (too big)")]
    TooBig,
    /// EPERM: an unprivileged owner tried to change a node's owner.
    #[error("EPERM (not permitted)")]
    Perm,
}

impl XsError {
    const ALL: [XsError; 16] = [
        XsError::Inval,
        XsError::Acces,
        XsError::Exist,
        XsError::IsDir,
        XsError::NoEnt,
        XsError::NoMem,
        XsError::NoSpc,
        XsError::Io,
        XsError::NotEmpty,
        XsError::NoSys,
        XsError::RoFs,
        XsError::Busy,
        XsError::Again,
        XsError::IsConn,
        XsError::TooBig,
        XsError::Perm,
    ];

    fn index(self) -> usize {
        Self::ALL.iter().position(|&e| e == self).unwrap_or(0)
    }

    /// The name sent in XS_ERROR ("ENOENT").
    pub fn name(self) -> &'static str {
        XSD_ERRORS[self.index()].1
    }

    /// The errno value.
    pub fn errno(self) -> i32 {
        XSD_ERRORS[self.index()].0
    }

    /// The error named in an XS_ERROR payload.
    pub fn from_name(name: &[u8]) -> Option<Self> {
        XSD_ERRORS.iter().position(|(_, n)| n.as_bytes() == name).map(|i| Self::ALL[i])
    }
}

/// Where the host socket goes.
#[derive(Clone, Debug, Default)]
pub enum SocketChoice {
    /// No socket (guests and the API only).
    None,
    /// The rule in [`socket`]: `$XENOLITH_RUN_DIR` or /run/xenolith.
    #[default]
    Default,
    /// Exactly this path.
    At(PathBuf),
}

/// How to start xenstored.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The host socket.
    pub socket: SocketChoice,
    /// Limits for guests.
    pub quota: Quota,
}

/// Why xenstored could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The unix socket.
    #[error("xenstored: {0}")]
    Socket(#[from] socket::SocketError),
    /// The eventfd or the thread.
    #[error("xenstored: {0}")]
    Os(#[from] std::io::Error),
}

/// A watch set through the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WatchId(u64);

type Callback = Arc<dyn Fn(&str) + Send + Sync>;

struct Shared {
    state: Mutex<State>,
    /// eventfd that wakes the daemon thread.
    wake: OwnedFd,
    stop: AtomicBool,
    callbacks: Mutex<HashMap<u64, (String, Callback)>>,
    next_watch: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a local to the eventfd we own.
        let _ = unsafe { libc::write(self.wake.as_raw_fd(), (&raw const one).cast(), 8) };
    }
}

/// The running daemon and its in-process API.
///
/// The API acts as domain 0: no permission checks or quotas, relative
/// paths resolve against `/local/domain/0`. Every call is one xenstore
/// request with exactly the semantics a socket client gets.
pub struct Xenstored {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    socket: Option<socket::Bound>,
}

impl Xenstored {
    /// Starts the daemon thread (and the socket, as `opts` says).
    pub fn start(opts: Options) -> Result<Arc<Xenstored>, StartError> {
        let listener = match &opts.socket {
            SocketChoice::None => None,
            SocketChoice::Default => Some(socket::bind(None)?),
            SocketChoice::At(p) => Some(socket::bind(Some(p))?),
        };
        // SAFETY: eventfd has no memory-safety preconditions; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let wake = unsafe { OwnedFd::from_raw_fd(fd) };
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(opts.quota)),
            wake,
            stop: AtomicBool::new(false),
            callbacks: Mutex::new(HashMap::new()),
            next_watch: AtomicU64::new(1),
        });
        let (listener, socket) = match listener {
            Some((l, bound)) => {
                log::info!("xenstored: listening on {}", bound.path.display());
                (Some(l), Some(bound))
            }
            None => (None, None),
        };
        let s2 = shared.clone();
        let thread = std::thread::Builder::new().name("xenstored".into()).spawn(move || {
            crate::seccomp::confine(crate::seccomp::ThreadKind::Xenstored);
            run(&s2, listener.as_ref());
        })?;
        let xs = Arc::new(Xenstored { shared, thread: Mutex::new(Some(thread)), socket });
        layout::init_dom0(&xs);
        Ok(xs)
    }

    /// The unix socket path, if serving one.
    pub fn socket_path(&self) -> Option<&Path> {
        self.socket.as_ref().map(|b| b.path.as_path())
    }

    /// The guest's store event channel fired: wake the daemon thread. Never
    /// blocks; safe to call from a vCPU thread.
    pub fn notify(&self) {
        self.shared.wake();
    }

    /// Sends one request as domain 0 and returns its reply payload.
    fn request(&self, ty: u32, tx: u32, payload: Vec<u8>) -> Result<Vec<u8>, XsError> {
        let msg = Message { header: Header { ty, req_id: 0, tx_id: tx, len: payload.len() as u32 }, payload };
        let mut st = self.shared.lock();
        let id = st.internal();
        let reply = st.handle(id, &msg);
        st.flush_after_reply();
        let dirty = std::mem::take(&mut st.dirty);
        drop(st);
        if dirty {
            self.shared.wake();
        }
        match reply.as_error() {
            Some(e) => Err(e),
            None => Ok(reply.payload),
        }
    }

    /// A node's value.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, XsError> {
        ops::read(self, 0, path)
    }

    /// A node's value as text (invalid UTF-8 replaced).
    pub fn read_string(&self, path: &str) -> Result<String, XsError> {
        self.read(path).map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// Sets a node's value, creating it and missing parents (which inherit
    /// their parent's permissions).
    pub fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Result<(), XsError> {
        ops::write(self, 0, path, value.as_ref())
    }

    /// Creates a node (and missing parents) if it does not exist.
    pub fn mkdir(&self, path: &str) -> Result<(), XsError> {
        ops::simple(self, 0, XS_MKDIR, path)
    }

    /// Removes a node and everything below it (fine if already gone).
    pub fn rm(&self, path: &str) -> Result<(), XsError> {
        ops::simple(self, 0, XS_RM, path)
    }

    /// A node's children's names.
    pub fn directory(&self, path: &str) -> Result<Vec<String>, XsError> {
        ops::directory(self, 0, path)
    }

    /// Whether a node exists.
    pub fn exists(&self, path: &str) -> Result<bool, XsError> {
        ops::exists(self, 0, path)
    }

    /// A node's permissions.
    pub fn get_perms(&self, path: &str) -> Result<Vec<Perm>, XsError> {
        ops::get_perms(self, 0, path)
    }

    /// Replaces a node's permissions (the first entry is the owner and
    /// everyone else's default).
    pub fn set_perms(&self, path: &str, perms: &[Perm]) -> Result<(), XsError> {
        ops::set_perms(self, 0, path, perms)
    }

    /// Watches `path` (a node path, or `@introduceDomain` /
    /// `@releaseDomain`): `callback` gets the changed path for every change
    /// at or below it, and once right away with `path` itself, as xenstored
    /// fires every new watch. It runs on the daemon thread (see the module
    /// documentation).
    pub fn watch(&self, path: &str, callback: impl Fn(&str) + Send + Sync + 'static) -> Result<WatchId, XsError> {
        let n = self.shared.next_watch.fetch_add(1, Ordering::Relaxed);
        self.callbacks().insert(n, (path.to_owned(), Arc::new(callback)));
        let r = self.request(XS_WATCH, 0, args(&[path.as_bytes(), State::api_token(n).as_bytes()]));
        if let Err(e) = r {
            self.callbacks().remove(&n);
            return Err(e);
        }
        Ok(WatchId(n))
    }

    /// Removes a watch; its callback is not called again once this returns
    /// (unless it is running right now on the daemon thread).
    pub fn unwatch(&self, id: WatchId) -> Result<(), XsError> {
        let (path, _) = self.callbacks().remove(&id.0).ok_or(XsError::NoEnt)?;
        self.request(XS_UNWATCH, 0, args(&[path.as_bytes(), State::api_token(id.0).as_bytes()])).map(drop)
    }

    fn callbacks(&self) -> MutexGuard<'_, HashMap<u64, (String, Callback)>> {
        self.shared.callbacks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a transaction (aborted if dropped without [`Tx::commit`]).
    pub fn transaction(&self) -> Result<Tx<'_>, XsError> {
        let reply = self.request(XS_TRANSACTION_START, 0, vec![0])?;
        let id = std::str::from_utf8(&reply).ok().and_then(|s| s.trim_end_matches('\0').parse().ok()).ok_or(XsError::Io)?;
        Ok(Tx { xs: self, id, done: false })
    }

    /// Runs `f` in a transaction and commits it, starting over while the
    /// commit conflicts (EAGAIN), as libxl's retry loops do (at most 100
    /// times). An error from `f` aborts the transaction.
    pub fn transact<T>(&self, mut f: impl FnMut(&Tx<'_>) -> Result<T, XsError>) -> Result<T, XsError> {
        for _ in 0..100 {
            let tx = self.transaction()?;
            let value = f(&tx)?;
            match tx.commit() {
                Ok(()) => return Ok(value),
                Err(XsError::Again) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(XsError::Again)
    }

    /// Starts serving domain `domid` on `ring` (XS_INTRODUCE): resets the
    /// ring page and fires @introduceDomain.
    pub fn introduce_domain(&self, domid: DomId, ring: GuestRing) -> Result<(), XsError> {
        self.with_state(|st| st.introduce(domid, Some(Arc::new(ring))))
    }

    /// The domain shut down or crashed: fires @releaseDomain (once).
    pub fn domain_shutdown(&self, domid: DomId) {
        self.with_state(|st| st.domain_shutdown(domid));
    }

    /// Stops serving the domain (XS_RELEASE): drops its connection, the
    /// nodes it owns and its permission entries; fires @releaseDomain.
    pub fn release_domain(&self, domid: DomId) -> Result<(), XsError> {
        self.with_state(|st| st.release(domid.into()))
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut st = self.shared.lock();
        let r = f(&mut st);
        let dirty = std::mem::take(&mut st.dirty);
        drop(st);
        if dirty {
            self.shared.wake();
        }
        r
    }
}

/// xenstored is the sink of each guest's store port.
impl crate::xen::sink::EventSink for Xenstored {
    fn notify(&self, _dom: &crate::xen::Domain, _port: u32) {
        Xenstored::notify(self);
    }
}

impl Drop for Xenstored {
    fn drop(&mut self) {
        // The path goes first, while the socket still listens: a xenolith
        // starting now binds a fresh one rather than replacing ours.
        if let Some(bound) = &self.socket {
            bound.remove();
        }
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake();
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// A transaction of the API. Reads see a snapshot of what it touched;
/// changes become visible (and fire watches) at [`Tx::commit`], which
/// fails with [`XsError::Again`] if anything it touched changed meanwhile.
pub struct Tx<'a> {
    xs: &'a Xenstored,
    id: u32,
    done: bool,
}

impl Tx<'_> {
    /// A node's value.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, XsError> {
        ops::read(self.xs, self.id, path)
    }

    /// A node's value as text.
    pub fn read_string(&self, path: &str) -> Result<String, XsError> {
        self.read(path).map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// Sets a node's value (creating it and missing parents).
    pub fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Result<(), XsError> {
        ops::write(self.xs, self.id, path, value.as_ref())
    }

    /// Creates a node if absent.
    pub fn mkdir(&self, path: &str) -> Result<(), XsError> {
        ops::simple(self.xs, self.id, XS_MKDIR, path)
    }

    /// Removes a node and its subtree.
    pub fn rm(&self, path: &str) -> Result<(), XsError> {
        ops::simple(self.xs, self.id, XS_RM, path)
    }

    /// A node's children.
    pub fn directory(&self, path: &str) -> Result<Vec<String>, XsError> {
        ops::directory(self.xs, self.id, path)
    }

    /// Whether a node exists.
    pub fn exists(&self, path: &str) -> Result<bool, XsError> {
        ops::exists(self.xs, self.id, path)
    }

    /// A node's permissions.
    pub fn get_perms(&self, path: &str) -> Result<Vec<Perm>, XsError> {
        ops::get_perms(self.xs, self.id, path)
    }

    /// Replaces a node's permissions.
    pub fn set_perms(&self, path: &str, perms: &[Perm]) -> Result<(), XsError> {
        ops::set_perms(self.xs, self.id, path, perms)
    }

    /// `mkdir` then `set_perms`: libxl's xs_mknod.
    pub fn mknod(&self, path: &str, perms: &[Perm]) -> Result<(), XsError> {
        self.mkdir(path)?;
        self.set_perms(path, perms)
    }

    /// Writes `value` and sets the permissions of the node.
    pub fn write_perms(&self, path: &str, value: impl AsRef<[u8]>, perms: &[Perm]) -> Result<(), XsError> {
        self.write(path, value)?;
        self.set_perms(path, perms)
    }

    /// Commits; EAGAIN on conflict (start over).
    pub fn commit(mut self) -> Result<(), XsError> {
        self.done = true;
        self.xs.request(XS_TRANSACTION_END, self.id, b"T\0".to_vec()).map(drop)
    }

    /// Discards the transaction.
    pub fn abort(mut self) {
        self.end_abort();
    }

    fn end_abort(&mut self) {
        if !self.done {
            self.done = true;
            let _ = self.xs.request(XS_TRANSACTION_END, self.id, b"F\0".to_vec());
        }
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        self.end_abort();
    }
}

/// NUL-terminated arguments.
fn args(parts: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in parts {
        v.extend_from_slice(p);
        v.push(0);
    }
    v
}

/// The API's requests, shared by [`Xenstored`] and [`Tx`].
mod ops {
    use super::*;

    pub fn read(xs: &Xenstored, tx: u32, path: &str) -> Result<Vec<u8>, XsError> {
        xs.request(XS_READ, tx, args(&[path.as_bytes()]))
    }

    pub fn write(xs: &Xenstored, tx: u32, path: &str, value: &[u8]) -> Result<(), XsError> {
        let mut p = args(&[path.as_bytes()]);
        p.extend_from_slice(value);
        xs.request(XS_WRITE, tx, p).map(drop)
    }

    pub fn simple(xs: &Xenstored, tx: u32, ty: u32, path: &str) -> Result<(), XsError> {
        xs.request(ty, tx, args(&[path.as_bytes()])).map(drop)
    }

    pub fn directory(xs: &Xenstored, tx: u32, path: &str) -> Result<Vec<String>, XsError> {
        let reply = xs.request(XS_DIRECTORY, tx, args(&[path.as_bytes()]))?;
        Ok(wire::strings(&reply).into_iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect())
    }

    pub fn exists(xs: &Xenstored, tx: u32, path: &str) -> Result<bool, XsError> {
        match read(xs, tx, path) {
            Ok(_) => Ok(true),
            Err(XsError::NoEnt) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn get_perms(xs: &Xenstored, tx: u32, path: &str) -> Result<Vec<Perm>, XsError> {
        let reply = xs.request(XS_GET_PERMS, tx, args(&[path.as_bytes()]))?;
        wire::strings(&reply).into_iter().map(Perm::parse).collect()
    }

    pub fn set_perms(xs: &Xenstored, tx: u32, path: &str, perms: &[Perm]) -> Result<(), XsError> {
        let strs: Vec<String> = perms.iter().map(Perm::to_string).collect();
        let mut parts: Vec<&[u8]> = vec![path.as_bytes()];
        parts.extend(strs.iter().map(|s| s.as_bytes()));
        xs.request(XS_SET_PERMS, tx, args(&parts)).map(drop)
    }
}

/// The daemon thread: waits for the socket, its clients and wake-ups, and
/// serves everything that is ready.
fn run(shared: &Shared, listener: Option<&UnixListener>) {
    let mut fds: Vec<libc::pollfd> = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        let sockets = shared.lock().sockets();
        fds.clear();
        fds.push(libc::pollfd { fd: shared.wake.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        if let Some(l) = listener {
            fds.push(libc::pollfd { fd: l.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        }
        for &(_, fd, events) in &sockets {
            fds.push(libc::pollfd { fd, events, revents: 0 });
        }
        // SAFETY: `fds` is a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                log::error!("xenstored: poll failed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            continue;
        }
        let mut counter = 0u64;
        // SAFETY: reads 8 bytes into a local from our non-blocking eventfd.
        let _ = unsafe { libc::read(shared.wake.as_raw_fd(), (&raw mut counter).cast(), 8) };
        serve(shared, listener, &sockets);
    }
}

/// One pass: accept clients, serve sockets and rings, then notify guests
/// and run API callbacks outside the lock.
fn serve(shared: &Shared, listener: Option<&UnixListener>, sockets: &[(daemon::ConnId, i32, i16)]) {
    let mut st = shared.lock();
    if let Some(l) = listener {
        loop {
            match l.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_ok() {
                        let id = st.add_socket(stream);
                        log::debug!("xenstored: socket client {id} connected");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("xenstored: accept: {e}");
                    break;
                }
            }
        }
    }
    // Everything is served on every pass: reading a non-blocking socket
    // with nothing there costs one syscall, and there are few clients.
    let mut all: Vec<_> = sockets.iter().map(|s| s.0).collect();
    all.extend(st.sockets().into_iter().map(|s| s.0).filter(|id| !sockets.iter().any(|s| s.0 == *id)));
    let mut notify = Vec::new();
    for _ in 0..2 {
        // A second round delivers what the first round's requests fired.
        for &id in &all {
            st.pump_socket(id);
        }
        for id in st.rings() {
            if let Some(r) = st.pump_ring(id) {
                if !notify.iter().any(|n: &Arc<GuestRing>| Arc::ptr_eq(n, &r)) {
                    notify.push(r);
                }
            }
        }
        if !std::mem::take(&mut st.dirty) {
            break;
        }
    }
    let events = st.take_api_events();
    drop(st);
    for r in notify {
        r.notify();
    }
    if events.is_empty() {
        return;
    }
    for (n, path) in events {
        let cb = shared.callbacks.lock().unwrap_or_else(|e| e.into_inner()).get(&n).map(|(_, cb)| cb.clone());
        if let Some(cb) = cb {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(&path))).is_err() {
                log::error!("xenstored: a watch callback for {path} panicked");
            }
        }
    }
    // Callbacks may have changed the tree: serve again soon.
    if shared.lock().dirty {
        shared.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    fn xs() -> Arc<Xenstored> {
        Xenstored::start(Options { socket: SocketChoice::None, quota: Quota::default() }).unwrap()
    }

    #[test]
    fn api_round_trip() {
        let xs = xs();
        xs.write("/local/domain/0/backend/vbd/1/51712/state", "1").unwrap();
        assert_eq!(xs.read_string("/local/domain/0/backend/vbd/1/51712/state").unwrap(), "1");
        assert_eq!(xs.directory("/local/domain/0/backend/vbd/1").unwrap(), vec!["51712"]);
        assert_eq!(xs.read_string("name").unwrap(), "Domain-0", "relative to /local/domain/0");
        assert_eq!(xs.read("/nope"), Err(XsError::NoEnt));
        assert!(!xs.exists("/nope").unwrap() && xs.exists("/local").unwrap());
        xs.set_perms("/local/domain/0/backend/vbd/1", &[Perm::new(0, Access::None), Perm::new(1, Access::Read)]).unwrap();
        assert_eq!(xs.get_perms("/local/domain/0/backend/vbd/1").unwrap(), vec![Perm::new(0, Access::None), Perm::new(1, Access::Read)]);
        xs.rm("/local/domain/0/backend").unwrap();
        assert_eq!(xs.read("/local/domain/0/backend/vbd"), Err(XsError::NoEnt));
        assert_eq!(XsError::from_name(b"EAGAIN"), Some(XsError::Again));
        assert_eq!((XsError::Again.name(), XsError::Again.errno()), ("EAGAIN", 11));
    }

    #[test]
    fn api_watches_run_on_the_daemon_thread() {
        let xs = xs();
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let id = xs
            .watch("/local/domain/0/backend/vbd", move |p| {
                let _ = tx.lock().unwrap().send((p.to_owned(), std::thread::current().name().map(str::to_owned)));
            })
            .unwrap();
        let got = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(got, ("/local/domain/0/backend/vbd".to_owned(), Some("xenstored".to_owned())), "fires once when set");
        xs.write("/local/domain/0/backend/vbd/1/0/state", "4").unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap().0, "/local/domain/0/backend/vbd/1/0/state");
        xs.unwatch(id).unwrap();
        xs.write("/local/domain/0/backend/vbd/1/0/state", "5").unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        assert_eq!(xs.unwatch(id), Err(XsError::NoEnt));
    }

    #[test]
    fn api_transactions_commit_and_conflict() {
        let xs = xs();
        xs.write("/x", "0").unwrap();
        let t = xs.transaction().unwrap();
        t.write("/x", "1").unwrap();
        assert_eq!(xs.read_string("/x").unwrap(), "0");
        xs.write("/x", "2").unwrap();
        assert_eq!(t.commit(), Err(XsError::Again));
        let mut tries = 0;
        xs.transact(|t| {
            tries += 1;
            let v: u32 = t.read_string("/x")?.parse().map_err(|_| XsError::Inval)?;
            if tries == 1 {
                xs.write("/x", "10").unwrap(); // a conflicting write: retried
            }
            t.write("/x", (v + 1).to_string())
        })
        .unwrap();
        assert_eq!(tries, 2);
        assert_eq!(xs.read_string("/x").unwrap(), "11");
        {
            let t = xs.transaction().unwrap();
            t.write("/y", "dropped").unwrap();
        } // dropped: aborted
        assert_eq!(xs.read("/y"), Err(XsError::NoEnt));
    }
}
