//! The xenstore client: read, write, directory, mkdir, rm, watches and
//! transactions over the store ring (HVM params STORE_PFN / STORE_EVTCHN).
//!
//! Layout, bottom up:
//! - [`ring`]: the shared page, the only `unsafe` here;
//! - [`wire`]: framing and payload parsing (pure, host-tested);
//! - [`client`]: request ids, reply matching, watch queues and the
//!   transaction retry loop, over a [`client::Transport`] (host-tested
//!   against a fake xenstored);
//! - this file: the domain's one client behind free functions, connected
//!   on first use, and [`wait_until`], the halt-until-ready helper the
//!   frontends share.
//!
//! Waiting is event-driven: a request halts the vCPU (`sti; hlt`) until the
//! store event channel or the timeout timer fires; it never spins. The
//! event handler itself does nothing: the wake-up is the point, and all
//! ring work happens in the caller's context.
//!
//! Watch callbacks run only from [`poll`] and [`wait_events`], never from
//! inside another xenstore call or an interrupt, so they may call
//! xenstore themselves. Code that just waits for a node to change uses a
//! [`Watch`] handle instead ([`Watch::wait`]).
//!
//! The client is for the main context: interrupt handlers must not call it
//! (they would get [`XsError::Busy`] if it is in use).

pub mod client;
pub mod ring;
pub mod wire;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use xen_abi::event_channel::Port;

use crate::arch::cpu;
use crate::hypercall::Errno;
use crate::sync::IrqMutex;
use crate::{evtchn, sched, time};

use self::client::{Client, Transport};
use self::ring::StoreRing;

pub use self::client::{parse_u64, Callback};

/// A transaction id; [`Tx::NONE`] outside any transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tx(pub u32);

impl Tx {
    /// No transaction (XBT_NIL).
    pub const NONE: Tx = Tx(0);
}

/// Why a xenstore operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XsError {
    /// xenstored answered XS_ERROR with this errno (ENOENT = 2, EACCES =
    /// 13, EAGAIN = 11 ...).
    Store(i32),
    /// xenstored's traffic made no sense; the connection is not used again.
    Protocol(&'static str),
    /// No reply in time.
    Timeout,
    /// The client is in use by an interrupted context.
    Busy,
    /// A payload longer than XENSTORE_PAYLOAD_MAX.
    TooBig,
    /// A value is not what the caller expected (not UTF-8, not a number,
    /// a NUL inside a path).
    BadValue,
    /// The store ring could not be found (hypercall error).
    NoStore(Errno),
    /// The store page frame Xen named is unusable.
    BadPage(u64),
}

impl XsError {
    /// Whether xenstored said ENOENT (the node does not exist).
    pub fn is_not_found(&self) -> bool {
        *self == XsError::Store(xen_abi::errno::ENOENT as i32)
    }

    /// Whether xenstored said EAGAIN (a transaction conflict).
    pub fn is_again(&self) -> bool {
        *self == XsError::Store(xen_abi::errno::EAGAIN as i32)
    }
}

impl fmt::Display for XsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XsError::Store(e) => write!(f, "xenstore: {}", xen_abi::xenstore::error_name(*e)),
            XsError::Protocol(why) => write!(f, "xenstore protocol error: {why}"),
            XsError::Timeout => f.write_str("xenstore: no reply in time"),
            XsError::Busy => f.write_str("xenstore: client busy (called from an interrupt?)"),
            XsError::TooBig => f.write_str("xenstore: message too long"),
            XsError::BadValue => f.write_str("xenstore: unexpected value"),
            XsError::NoStore(e) => write!(f, "xenstore: no store ring: {e}"),
            XsError::BadPage(pfn) => write!(f, "xenstore: store page frame {pfn:#x} is unusable"),
        }
    }
}

/// Halts until `ready()` holds or system time reaches `deadline_ns`;
/// returns whether `ready()` held.
///
/// `ready` is checked with interrupts disabled right before `sti; hlt`, so
/// an event that makes it true between the check and the halt still ends
/// the halt. With interrupts disabled by the caller a halt would never end,
/// so then it yields to the hypervisor between checks instead.
pub fn wait_until(deadline_ns: u64, mut ready: impl FnMut() -> bool) -> bool {
    loop {
        if ready() {
            return true;
        }
        let was_enabled = cpu::irq_save();
        if ready() {
            cpu::irq_restore(was_enabled);
            return true;
        }
        if time::now_ns() >= deadline_ns {
            cpu::irq_restore(was_enabled);
            return ready();
        }
        if !was_enabled || time::set_timer(deadline_ns).is_err() {
            cpu::irq_restore(was_enabled);
            sched::yield_now();
            continue;
        }
        // Wakes on the awaited event channel, on the timer, or on any
        // other upcall; the loop re-checks.
        cpu::safe_halt();
    }
}

/// The live transport: the store ring and its event channel.
struct Live {
    ring: StoreRing,
    port: Port,
    /// `req_cons` as last seen when writing: a change means room freed.
    seen_req_cons: u32,
}

impl Transport for Live {
    fn write(&mut self, bytes: &[u8]) -> Result<usize, XsError> {
        self.seen_req_cons = self.ring.req_cons();
        self.ring
            .write(bytes)
            .map_err(|_| XsError::Protocol("corrupt request ring indices"))
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, XsError> {
        self.ring
            .read(buf)
            .map_err(|_| XsError::Protocol("corrupt response ring indices"))
    }

    fn notify(&mut self) {
        let _ = evtchn::send(self.port);
    }

    fn wait(&mut self, deadline_ns: u64) -> bool {
        let (ring, seen) = (&self.ring, self.seen_req_cons);
        wait_until(deadline_ns, || {
            ring.has_response() || ring.req_cons() != seen
        })
    }

    fn now_ns(&self) -> u64 {
        time::now_ns()
    }
}

/// Store events since boot (see [`events_seen`]).
static STORE_EVENTS: AtomicU64 = AtomicU64::new(0);

/// The store event wakes a halted waiter (see the module docs) and is
/// counted, so a wait for something else can also end on store traffic.
fn on_store_event(_port: Port, _ctx: usize) {
    STORE_EVENTS.fetch_add(1, Ordering::Relaxed);
}

/// How many store events arrived since boot: a change means xenstored
/// sent something (a reply or a watch event), cheap to check in a
/// [`wait_until`] condition.
pub fn events_seen() -> u64 {
    STORE_EVENTS.load(Ordering::Relaxed)
}

fn connect() -> Result<Client<Live>, XsError> {
    // PVH: HVM params STORE_PFN/STORE_EVTCHN; PV: start_info's store_mfn
    // and store_evtchn, found in the 1:1 map.
    let r = crate::arch::xenstore_ring().map_err(XsError::NoStore)?;
    let page = r.addr;
    if page == 0
        || !page.is_multiple_of(xen_abi::PAGE_SIZE as u64)
        || page.saturating_add(xen_abi::PAGE_SIZE as u64) > crate::arch::mapped_limit()
    {
        return Err(XsError::BadPage(page >> xen_abi::PAGE_SHIFT));
    }
    // SAFETY: the page is the store ring Xen named, mapped (checked above)
    // and reserved (memory map / boot ranges), so nothing else in the guest
    // uses it; this client is its only user.
    let ring = unsafe { StoreRing::new(page as *mut u8) };
    evtchn::bind(r.port, on_store_event, 0).map_err(XsError::NoStore)?;
    log::debug!("xenstore: ring at {page:#x}, event channel {}", r.port);
    let seen_req_cons = ring.req_cons();
    Ok(Client::new(Live {
        ring,
        port: r.port,
        seen_req_cons,
    }))
}

enum Slot {
    /// Not connected yet (or the last attempt failed).
    Idle,
    /// Connected and free.
    Ready(Client<Live>),
    /// Taken out by a running call.
    InUse,
}

static SLOT: IrqMutex<Slot> = IrqMutex::new(Slot::Idle);

/// Runs `f` on the client, taken out of its slot for the duration so that
/// `f` may halt with interrupts enabled (the slot's lock masks them).
fn with_client<R>(f: impl FnOnce(&mut Client<Live>) -> Result<R, XsError>) -> Result<R, XsError> {
    let taken = {
        let mut slot = SLOT.lock();
        match core::mem::replace(&mut *slot, Slot::InUse) {
            Slot::Ready(c) => Some(c),
            Slot::Idle => None,
            Slot::InUse => return Err(XsError::Busy),
        }
    };
    let mut c = match taken {
        Some(c) => c,
        None => match connect() {
            Ok(c) => c,
            Err(e) => {
                *SLOT.lock() = Slot::Idle;
                return Err(e);
            }
        },
    };
    let r = f(&mut c);
    *SLOT.lock() = Slot::Ready(c);
    r
}

/// Connects to xenstore now (every other call does so on first use).
pub fn init() -> Result<(), XsError> {
    with_client(|_| Ok(()))
}

/// Sends one request of any type `ty` (even one xenstored must refuse)
/// and returns its reply's payload: for tests of xenstored's checks
/// (examples/hostile). Everything else here uses the typed calls.
pub fn request(ty: u32, tx: Tx, parts: &[&[u8]]) -> Result<Vec<u8>, XsError> {
    with_client(|c| c.request(ty, tx, parts))
}

/// XS_RESET_WATCHES: drops every watch (and transaction) this domain has,
/// so the next kernel starts with none.
pub fn reset_watches() -> Result<(), XsError> {
    with_client(|c| c.request(xen_abi::xenstore::XS_RESET_WATCHES, Tx::NONE, &[b"\0"]).map(|_| ()))
}

/// The raw value of `path`.
pub fn read_bytes(tx: Tx, path: &str) -> Result<Vec<u8>, XsError> {
    with_client(|c| c.read(tx, path))
}

/// The value of `path` as text.
pub fn read(tx: Tx, path: &str) -> Result<String, XsError> {
    String::from_utf8(read_bytes(tx, path)?).map_err(|_| XsError::BadValue)
}

/// The value of `path` as a decimal number.
pub fn read_u64(tx: Tx, path: &str) -> Result<u64, XsError> {
    parse_u64(&read_bytes(tx, path)?)
}

/// Sets `path` to `value`, creating it and missing parents.
pub fn write(tx: Tx, path: &str, value: &str) -> Result<(), XsError> {
    with_client(|c| c.write(tx, path, value.as_bytes()))
}

/// Sets `path` to raw bytes.
pub fn write_bytes(tx: Tx, path: &str, value: &[u8]) -> Result<(), XsError> {
    with_client(|c| c.write(tx, path, value))
}

/// The names of `path`'s children.
pub fn directory(tx: Tx, path: &str) -> Result<Vec<String>, XsError> {
    with_client(|c| c.directory(tx, path))
}

/// Creates `path` if it does not exist.
pub fn mkdir(tx: Tx, path: &str) -> Result<(), XsError> {
    with_client(|c| c.mkdir(tx, path))
}

/// Removes `path` and everything under it.
pub fn rm(tx: Tx, path: &str) -> Result<(), XsError> {
    with_client(|c| c.rm(tx, path))
}

/// This or another domain's home, `/local/domain/<domid>`.
pub fn domain_path(domid: u32) -> Result<String, XsError> {
    with_client(|c| c.domain_path(domid))
}

/// Starts a transaction (prefer [`transaction`], which retries).
pub fn transaction_start() -> Result<Tx, XsError> {
    with_client(|c| c.transaction_start())
}

/// Commits or aborts a transaction; EAGAIN means "run it again".
pub fn transaction_end(tx: Tx, commit: bool) -> Result<(), XsError> {
    with_client(|c| c.transaction_end(tx, commit))
}

/// Runs `body` in a transaction and commits it, running it again from the
/// start while xenstored reports a conflict (EAGAIN).
pub fn transaction<R>(mut body: impl FnMut(Tx) -> Result<R, XsError>) -> Result<R, XsError> {
    client::transaction(
        &mut (),
        |_| transaction_start(),
        |_, tx, commit| transaction_end(tx, commit),
        |_, tx| body(tx),
    )
}

/// A registered watch; unwatched when dropped.
pub struct Watch {
    token: String,
}

impl Watch {
    /// The token xenstored echoes in this watch's events.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The path of the next queued event, without blocking.
    pub fn next_event(&self) -> Result<Option<String>, XsError> {
        with_client(|c| {
            c.pump()?;
            Ok(c.take_event(&self.token))
        })
    }

    /// Waits (halting) for this watch's next event until system time
    /// `deadline_ns`; `Ok(None)` on timeout.
    pub fn wait(&self, deadline_ns: u64) -> Result<Option<String>, XsError> {
        with_client(|c| loop {
            c.pump()?;
            if let Some(p) = c.take_event(&self.token) {
                return Ok(Some(p));
            }
            if !c.wait_incoming(deadline_ns)? {
                return Ok(c.take_event(&self.token));
            }
        })
    }

    /// Removes the watch now, reporting errors (dropping ignores them).
    pub fn unwatch(self) -> Result<(), XsError> {
        let r = with_client(|c| c.unwatch(&self.token));
        core::mem::forget(self);
        r
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = with_client(|c| c.unwatch(&self.token));
    }
}

/// Watches `path` (and everything under it). xenstored fires a new watch
/// once at once, so the first event comes without any change.
pub fn watch(path: &str) -> Result<Watch, XsError> {
    with_client(|c| c.watch(path, None)).map(|token| Watch { token })
}

/// Watches `path` and has `callback(path, token)` run for each event from
/// [`poll`] or [`wait_events`].
pub fn watch_with(path: &str, callback: Callback) -> Result<Watch, XsError> {
    with_client(|c| c.watch(path, Some(callback))).map(|token| Watch { token })
}

static DISPATCHING: AtomicBool = AtomicBool::new(false);

/// Runs the callbacks of queued watch events; returns how many ran. A
/// callback may call xenstore (but a nested dispatch does nothing).
fn dispatch() -> usize {
    if DISPATCHING.swap(true, Ordering::Acquire) {
        return 0;
    }
    let mut ran = 0;
    while let Ok(Some((token, path, mut cb))) = with_client(|c| Ok(c.take_callback_job())) {
        cb(&path, &token);
        let _ = with_client(|c| {
            c.restore_callback(&token, cb);
            Ok(())
        });
        ran += 1;
    }
    DISPATCHING.store(false, Ordering::Release);
    ran
}

/// Reads what xenstored sent and runs due watch callbacks, without
/// blocking; returns how many callbacks ran.
pub fn poll() -> Result<usize, XsError> {
    with_client(|c| c.pump())?;
    Ok(dispatch())
}

/// Waits (halting) until xenstored sends something or system time
/// `deadline_ns`, then runs due watch callbacks; returns how many ran.
pub fn wait_events(deadline_ns: u64) -> Result<usize, XsError> {
    with_client(|c| c.wait_incoming(deadline_ns))?;
    Ok(dispatch())
}

/// Keeps a callback boxed for [`watch_with`] (a convenience for closures).
pub fn callback(f: impl FnMut(&str, &str) + Send + 'static) -> Callback {
    Box::new(f)
}
