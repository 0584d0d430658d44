//! xenbus: finding split devices in xenstore and walking a frontend
//! through the connection states (io/xenbus.h) with its backend.
//!
//! The toolstack lists a domain's devices under `device/<kind>/<id>` (paths
//! relative to the domain's home): `backend` (the backend's directory),
//! `backend-id`, and `state`. Each end writes its own `state`:
//!
//! ```text
//! frontend            backend
//! Initialising (1)    InitWait (2)      backend published its features
//! Initialised (3)                       frontend published rings, channel
//!                     Connected (4)     backend published the disk's size
//! Connected (4)
//! Closing (5)  ->     Closing (5)       clean shutdown (Mini-OS's order)
//! Closed (6)   ->     Closed (6)
//! Initialising (1) -> InitWait (2)      ready for the next kernel
//! ```
//!
//! The decisions are pure functions ([`connect_step`]) tested on the host;
//! [`Device`] does the xenstore reads, writes and watch waits. Waiting on
//! the backend halts on a xenstore watch of its `state` node, never spins.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use xen_abi::DomId;

use crate::time;
use crate::xenstore::{self, Tx, XsError};

pub use xen_abi::xenbus::XenbusState;

/// Why a xenbus step failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XenbusError {
    /// A xenstore operation failed.
    Xs(XsError),
    /// A node the protocol requires is missing or malformed.
    BadNode(String),
    /// The backend did not reach the awaited state in time.
    Timeout {
        /// What was awaited.
        waiting_for: &'static str,
        /// The backend's last state.
        backend: XenbusState,
    },
    /// The backend went away or failed the connection.
    BackendFailed(XenbusState),
    /// No such device in xenstore.
    NoDevice(String),
}

impl From<XsError> for XenbusError {
    fn from(e: XsError) -> Self {
        XenbusError::Xs(e)
    }
}

impl fmt::Display for XenbusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XenbusError::Xs(e) => e.fmt(f),
            XenbusError::BadNode(p) => write!(f, "xenbus: missing or malformed node {p}"),
            XenbusError::Timeout {
                waiting_for,
                backend,
            } => write!(
                f,
                "xenbus: backend did not reach {waiting_for} in time (it is {})",
                backend.name()
            ),
            XenbusError::BackendFailed(s) => write!(f, "xenbus: backend is {}", s.name()),
            XenbusError::NoDevice(p) => write!(f, "xenbus: no device {p}"),
        }
    }
}

/// How long [`Device::close`] waits for the backend to come back to
/// InitWait (a courtesy to the next kernel, not required).
pub const REINIT_WAIT_NS: u64 = 2_000_000_000;

/// What a connecting frontend does next, given the backend's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectStep {
    /// Wait for the backend's next state change.
    Wait,
    /// The backend published its features (InitWait): publish our rings
    /// and event channel and switch to Initialised.
    Publish,
    /// The backend is Connected to what we published: read the device's
    /// details and switch to Connected.
    Connect,
    /// The backend is left over from an earlier frontend (Connected before
    /// we published, or Closing/Closed): take it through Closed back to
    /// InitWait first.
    Reset,
    /// Give up: the backend stays closed even after a reset.
    Fail,
}

/// The frontend's connection logic. `published`: we wrote our rings and
/// switched to Initialised; `reset_done`: a [`ConnectStep::Reset`] already ran.
pub fn connect_step(backend: XenbusState, published: bool, reset_done: bool) -> ConnectStep {
    use XenbusState as S;
    match backend {
        S::InitWait if !published => ConnectStep::Publish,
        S::Connected if published => ConnectStep::Connect,
        S::Connected | S::Closing | S::Closed if !published && !reset_done => ConnectStep::Reset,
        S::Closing | S::Closed if published => ConnectStep::Fail,
        // A reset backend that stays Closed, or that connected without
        // us, is not going to serve us.
        S::Connected | S::Closing | S::Closed => ConnectStep::Fail,
        _ => ConnectStep::Wait,
    }
}

/// The ids listed under `device/<kind>` (e.g. "51712" for vbd), in
/// xenstore's order; empty when the domain has no such devices.
pub fn list(kind: &str) -> Result<Vec<String>, XsError> {
    match xenstore::directory(Tx::NONE, &format!("device/{kind}")) {
        Ok(v) => Ok(v),
        Err(e) if e.is_not_found() => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// A frontend device's xenstore nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Our directory, e.g. `device/vbd/51712`.
    pub nodename: String,
    /// The id (last component), e.g. `51712`.
    pub id: String,
    /// The backend's directory, e.g. `/local/domain/0/backend/vbd/5/51712`.
    pub backend: String,
    /// The backend's domain.
    pub backend_id: DomId,
}

impl Device {
    /// Reads `device/<kind>/<id>`'s backend and backend-id.
    pub fn open(kind: &str, id: &str) -> Result<Device, XenbusError> {
        let nodename = format!("device/{kind}/{id}");
        let backend = match xenstore::read(Tx::NONE, &format!("{nodename}/backend")) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Err(XenbusError::NoDevice(nodename)),
            Err(e) => return Err(e.into()),
        };
        let backend_id = xenstore::read_u64(Tx::NONE, &format!("{nodename}/backend-id"))
            .ok()
            .and_then(|d| DomId::try_from(d).ok())
            .ok_or_else(|| XenbusError::BadNode(format!("{nodename}/backend-id")))?;
        if backend.is_empty() {
            return Err(XenbusError::BadNode(format!("{nodename}/backend")));
        }
        Ok(Device {
            nodename,
            id: id.into(),
            backend,
            backend_id,
        })
    }

    /// `<nodename>/<key>`.
    pub fn front_path(&self, key: &str) -> String {
        format!("{}/{key}", self.nodename)
    }

    /// `<backend>/<key>`.
    pub fn back_path(&self, key: &str) -> String {
        format!("{}/{key}", self.backend)
    }

    /// Our own state node.
    pub fn state(&self) -> Result<XenbusState, XsError> {
        state_at(&self.front_path("state"))
    }

    /// The backend's state node (Unknown if absent).
    pub fn backend_state(&self) -> Result<XenbusState, XsError> {
        state_at(&self.back_path("state"))
    }

    /// Writes our state (in `tx`, or alone with [`Tx::NONE`]).
    pub fn switch_state(&self, tx: Tx, s: XenbusState) -> Result<(), XsError> {
        xenstore::write(tx, &self.front_path("state"), s.as_str())
    }

    /// A backend node as text; `None` if absent.
    pub fn backend_read(&self, key: &str) -> Result<Option<String>, XsError> {
        optional(xenstore::read(Tx::NONE, &self.back_path(key)))
    }

    /// A backend node as a number; `None` if absent or not a number (a
    /// malformed feature is treated like a missing one).
    pub fn backend_u64(&self, key: &str) -> Result<Option<u64>, XsError> {
        match xenstore::read_u64(Tx::NONE, &self.back_path(key)) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() || e == XsError::BadValue => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether a boolean backend feature (`feature-*` = 1) is offered.
    pub fn backend_feature(&self, key: &str) -> Result<bool, XsError> {
        Ok(self.backend_u64(key)?.unwrap_or(0) != 0)
    }

    /// Waits (halting on a watch) until the backend's state satisfies
    /// `done`, for at most `timeout_ns`; returns that state.
    pub fn wait_backend(
        &self,
        waiting_for: &'static str,
        timeout_ns: u64,
        mut done: impl FnMut(XenbusState) -> bool,
    ) -> Result<XenbusState, XenbusError> {
        let deadline = time::now_ns().saturating_add(timeout_ns);
        let watch = xenstore::watch(&self.back_path("state"))?;
        loop {
            let s = self.backend_state()?;
            if done(s) {
                return Ok(s);
            }
            if watch.wait(deadline)?.is_none() {
                let s = self.backend_state()?;
                return if done(s) {
                    Ok(s)
                } else {
                    Err(XenbusError::Timeout {
                        waiting_for,
                        backend: s,
                    })
                };
            }
        }
    }

    /// Takes a backend left over from an earlier frontend back to InitWait:
    /// Closed, wait for its Closed, Initialising, wait for InitWait.
    pub fn reset(&self, timeout_ns: u64) -> Result<(), XenbusError> {
        log::debug!(
            "xenbus: resetting {} (backend {})",
            self.nodename,
            self.backend_state()?.name()
        );
        self.switch_state(Tx::NONE, XenbusState::Closed)?;
        self.wait_backend("Closed", timeout_ns, |s| s == XenbusState::Closed)?;
        self.switch_state(Tx::NONE, XenbusState::Initialising)?;
        self.wait_backend("InitWait", timeout_ns, |s| s == XenbusState::InitWait)?;
        Ok(())
    }

    /// The clean shutdown Mini-OS performs, so that the next kernel finds
    /// the backend waiting (InitWait): Closing, wait for the backend to
    /// close, Closed, wait for Closed, Initialising, wait for InitWait.
    /// Only the first two waits are required; a backend that does not come
    /// back to InitWait is reported but the device is closed all the same.
    pub fn close(&self, timeout_ns: u64) -> Result<(), XenbusError> {
        use XenbusState as S;
        self.switch_state(Tx::NONE, S::Closing)?;
        self.wait_backend("Closing", timeout_ns, |s| {
            s >= S::Closing || s == S::Unknown
        })?;
        self.switch_state(Tx::NONE, S::Closed)?;
        self.wait_backend("Closed", timeout_ns, |s| s == S::Closed || s == S::Unknown)?;
        self.switch_state(Tx::NONE, S::Initialising)?;
        match self.wait_backend("InitWait", timeout_ns.min(REINIT_WAIT_NS), |s| {
            s == S::InitWait
        }) {
            Ok(_) => Ok(()),
            Err(XenbusError::Timeout { backend, .. }) => {
                log::debug!(
                    "xenbus: {} backend stays {} after close",
                    self.nodename,
                    backend.name()
                );
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

fn state_at(path: &str) -> Result<XenbusState, XsError> {
    match xenstore::read_bytes(Tx::NONE, path) {
        Ok(v) => Ok(XenbusState::parse(&v)),
        Err(e) if e.is_not_found() => Ok(XenbusState::Unknown),
        Err(e) => Err(e),
    }
}

fn optional(r: Result<String, XsError>) -> Result<Option<String>, XsError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The virtual device number of a Linux-style disk name (`xvda` =
/// 51712, `xvdb` = 51728, `hda` = 768, `sda` = 2048, `xvdq`.. use the
/// extended 1 << 28 scheme), as the toolstack numbers `device/vbd/<id>`
/// (docs/misc/vbd-interface.txt). Partitions are not accepted.
pub fn vbd_id_from_name(name: &str) -> Option<u32> {
    let (major, first_minor_shift, letters) = if let Some(l) = name.strip_prefix("xvd") {
        (202u32, 4u32, l)
    } else if let Some(l) = name.strip_prefix("hd") {
        (0, 6, l)
    } else if let Some(l) = name.strip_prefix("sd") {
        (8, 4, l)
    } else {
        return None;
    };
    if letters.is_empty() || !letters.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    // Letters count like a spreadsheet column: a..z, aa..zz, aaa...
    let mut index: u32 = 0;
    for b in letters.bytes() {
        index = index.checked_mul(26)?.checked_add((b - b'a' + 1) as u32)?;
    }
    let disk = index - 1;
    match major {
        202 if disk < 16 => Some((202 << 8) | (disk << first_minor_shift)),
        202 => (disk < (1 << 20)).then_some((1 << 28) | (disk << 8)),
        0 => {
            // hda..hdd on IDE major 3, hde..hdh on major 22.
            let m = match disk {
                0..=1 => 3,
                2..=3 => 22,
                _ => return None,
            };
            Some((m << 8) | ((disk % 2) << first_minor_shift))
        }
        _ if disk < 16 => Some((8 << 8) | (disk << first_minor_shift)),
        _ => None,
    }
}


/// The toolstack's shutdown requests: a watch on `control/shutdown`, where
/// `xl shutdown` / `xl reboot` write `poweroff`, `halt` or `reboot`.
pub struct ShutdownWatch(Option<xenstore::Watch>);

impl ShutdownWatch {
    /// Starts watching (without a xenstore, never reports anything).
    pub fn new() -> Self {
        Self(xenstore::watch("control/shutdown").ok())
    }

    /// What is asked for now, if anything (cheap when the watch has not
    /// fired): `poweroff` and `halt` are a power-off, `reboot` a reboot;
    /// anything else (`suspend`, which needs a suspend-capable guest) is
    /// left alone. A request is acknowledged by clearing the node, as
    /// Linux does; the caller then closes its devices and calls
    /// `shutdown::shutdown` with the reason.
    pub fn requested(&self) -> Option<crate::shutdown::Reason> {
        let w = self.0.as_ref()?;
        let mut fired = false;
        while let Ok(Some(_)) = w.next_event() {
            fired = true;
        }
        if !fired {
            return None;
        }
        let value = xenstore::read(Tx::NONE, "control/shutdown").ok()?;
        let reason = shutdown_request(&value)?;
        let _ = xenstore::write(Tx::NONE, "control/shutdown", "");
        Some(reason)
    }
}

impl Default for ShutdownWatch {
    fn default() -> Self {
        Self::new()
    }
}

/// A `control/shutdown` value as a request (pure, tested on the host).
pub fn shutdown_request(value: &str) -> Option<crate::shutdown::Reason> {
    use crate::shutdown::Reason;
    match value.trim_end_matches('\0') {
        "poweroff" | "halt" => Some(Reason::Poweroff),
        "reboot" => Some(Reason::Reboot),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use XenbusState as S;

    #[test]
    fn shutdown_requests_as_xl_writes_them() {
        use crate::shutdown::Reason;
        assert_eq!(shutdown_request("poweroff"), Some(Reason::Poweroff));
        assert_eq!(shutdown_request("halt\0"), Some(Reason::Poweroff));
        assert_eq!(shutdown_request("reboot"), Some(Reason::Reboot));
        assert_eq!(shutdown_request("suspend"), None);
        assert_eq!(shutdown_request(""), None);
    }

    #[test]
    fn connecting_follows_the_backend() {
        assert_eq!(connect_step(S::Unknown, false, false), ConnectStep::Wait);
        assert_eq!(
            connect_step(S::Initialising, false, false),
            ConnectStep::Wait
        );
        assert_eq!(
            connect_step(S::InitWait, false, false),
            ConnectStep::Publish
        );
        assert_eq!(connect_step(S::InitWait, true, false), ConnectStep::Wait);
        assert_eq!(
            connect_step(S::Connected, true, false),
            ConnectStep::Connect
        );
        assert_eq!(connect_step(S::Connected, true, true), ConnectStep::Connect);
        // Left over from an earlier kernel: reset once, then give up.
        assert_eq!(connect_step(S::Connected, false, false), ConnectStep::Reset);
        assert_eq!(connect_step(S::Closed, false, false), ConnectStep::Reset);
        assert_eq!(connect_step(S::Closing, false, false), ConnectStep::Reset);
        assert_eq!(connect_step(S::Closed, false, true), ConnectStep::Fail);
        assert_eq!(connect_step(S::Connected, false, true), ConnectStep::Fail);
        // The backend failing after we published.
        assert_eq!(connect_step(S::Closing, true, false), ConnectStep::Fail);
        assert_eq!(connect_step(S::Closed, true, true), ConnectStep::Fail);
        assert_eq!(
            connect_step(S::Reconfiguring, true, false),
            ConnectStep::Wait
        );
    }

    #[test]
    fn disk_names_map_to_vbd_numbers() {
        assert_eq!(vbd_id_from_name("xvda"), Some(51712));
        assert_eq!(vbd_id_from_name("xvdb"), Some(51728));
        assert_eq!(vbd_id_from_name("xvdp"), Some(51952));
        assert_eq!(vbd_id_from_name("xvdq"), Some((1 << 28) | (16 << 8)));
        assert_eq!(vbd_id_from_name("xvdaa"), Some((1 << 28) | (26 << 8)));
        assert_eq!(vbd_id_from_name("hda"), Some(768));
        assert_eq!(vbd_id_from_name("hdb"), Some(832));
        assert_eq!(vbd_id_from_name("hdc"), Some(22 << 8));
        assert_eq!(vbd_id_from_name("sda"), Some(2048));
        assert_eq!(vbd_id_from_name("sdb"), Some(2064));
        assert_eq!(vbd_id_from_name("xvda1"), None);
        assert_eq!(vbd_id_from_name("xvd"), None);
        assert_eq!(vbd_id_from_name("vda"), None);
    }
}
