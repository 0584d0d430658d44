//! The backend side of the xenbus handshake, for any device class: the
//! nodes the toolstack writes (libxl's device_generic_add), the backend's
//! state and its transitions when the frontend's `state` node changes (as
//! Linux's backends decide them), and reading what the frontend published.
//!
//! Paths for device class K (`vbd`, `vif`), domain N and device D:
//! backend `/local/domain/0/backend/K/N/D`, frontend `/local/domain/N/device/K/D`.

use xen_abi::xenbus::XenbusState;
use xen_abi::DomId;

use crate::xenstore::{Access, Perm, Tx, Xenstored, XsError};

/// The two directories of one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    /// The device class (`vbd`, `vif`).
    pub kind: &'static str,
    /// The device number.
    pub devid: u32,
    /// The backend directory (dom0's).
    pub backend: String,
    /// The frontend directory (the guest's).
    pub frontend: String,
}

impl Paths {
    /// The paths libxl uses for device `devid` of class `kind` of domain `domid`.
    pub fn new(kind: &'static str, domid: DomId, devid: u32) -> Self {
        Paths {
            kind,
            devid,
            backend: format!("/local/domain/0/backend/{kind}/{domid}/{devid}"),
            frontend: format!("/local/domain/{domid}/device/{kind}/{devid}"),
        }
    }
}

/// Why the backend could not connect; written to the backend's `error` node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// A node the frontend must write is missing.
    #[error("reading {0}")]
    Missing(String),
    /// A node holds something that is not a number.
    #[error("{path}: not a number: {value:?}")]
    NotANumber {
        /// The node.
        path: String,
        /// Its value.
        value: String,
    },
    /// The frontend asked for something the backend does not offer (a
    /// larger ring, an unknown ABI, too many queues...).
    #[error("{0}")]
    Refused(String),
    /// A ring page could not be mapped.
    #[error("mapping {node} (grant {gref}): {err}")]
    RingGrant {
        /// The node that named the grant (`ring-ref0`, `tx-ring-ref`).
        node: String,
        /// The grant.
        gref: u32,
        /// Why.
        err: crate::xen::gnttab::GrantError,
    },
    /// The event channel could not be bound.
    #[error("binding event-channel {port}: errno {errno}")]
    EventChannel {
        /// The port.
        port: u32,
        /// The errno Xen would return.
        errno: i64,
    },
    /// The domain is gone.
    #[error("the domain is gone")]
    NoDomain,
}

/// What to do after the frontend's state changed (Linux's
/// `frontend_changed` in xen-blkback and xen-netback), given the backend's
/// own state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing.
    None,
    /// Go back to InitWait: the frontend restarts after a close ("prepare
    /// for reconnect"), as a boot loader's next kernel or Linux's
    /// xenbus_reset_state do.
    InitWait,
    /// Drop any old connection (rings, grants, event channels), read the
    /// frontend's rings and connect.
    Connect,
    /// Switch to Closing (the frontend is closing).
    Closing,
    /// Disconnect and switch to Closed.
    Close,
    /// A state a frontend never writes: xenbus_dev_fatal.
    Fatal,
}

/// The transition for frontend state `fe` while the backend is in `own`,
/// as Linux's backends decide it. In particular a frontend that writes
/// Initialised or Connected while the backend is Connected (a new kernel
/// that did not close the old connection) is ignored, as there: such a
/// frontend must first reset the device (Closing, Closed, Initialising),
/// which is what Linux's xenbus_reset_state does at boot.
pub fn on_frontend_change(own: XenbusState, fe: XenbusState) -> Action {
    use XenbusState::*;
    match fe {
        Initialising if own == Closed => Action::InitWait,
        Initialising => Action::None,
        // "Ensure we connect even when two watches fire in close succession
        // and we miss the intermediate value of frontend_state": from any
        // state but Connected (Closed included) the backend connects.
        Initialised | Connected if own == Connected => Action::None,
        Initialised | Connected => Action::Connect,
        Closing if own == Closing => Action::None,
        Closing => Action::Closing,
        Closed if own == Closed => Action::None,
        // Unknown: the frontend's directory went away.
        Closed | Unknown => Action::Close,
        InitWait | Reconfiguring | Reconfigured => Action::Fatal,
    }
}

fn rm_if_present(t: &Tx<'_>, path: &str) -> Result<(), XsError> {
    match t.rm(path) {
        Err(XsError::NoEnt) => Ok(()),
        r => r,
    }
}

/// The nodes of one device as the toolstack writes them.
pub struct DeviceNodes<'a> {
    /// Backend entries, also copied under `/libxl/N/device/K/D`.
    pub backend: &'a [(&'a str, String)],
    /// Backend entries that only the backend directory gets (what hotplug
    /// scripts add).
    pub backend_only: &'a [(&'a str, String)],
    /// Frontend entries.
    pub frontend: &'a [(&'a str, String)],
}

/// Writes a device's nodes as libxl does (libxl__device_generic_add), with
/// its permissions: the frontend directory belongs to the guest and dom0
/// may read it; the backend directory belongs to dom0 and the guest may
/// read it. Both directories are written afresh.
pub fn write_toolstack_nodes(
    xs: &Xenstored,
    domid: DomId,
    paths: &Paths,
    nodes: &DeviceNodes<'_>,
) -> Result<(), XsError> {
    let libxl = format!("/libxl/{domid}/device/{}/{}", paths.kind, paths.devid);
    let front_perms = [Perm::new(domid, Access::None), Perm::new(0, Access::Read)];
    let back_perms = [Perm::new(0, Access::None), Perm::new(domid, Access::Read)];
    xs.transact(|t| {
        rm_if_present(t, &libxl)?;
        t.write(&format!("{libxl}/frontend"), &paths.frontend)?;
        t.write(&format!("{libxl}/backend"), &paths.backend)?;
        for (k, v) in nodes.backend {
            t.write(&format!("{libxl}/{k}"), v)?;
        }
        rm_if_present(t, &paths.frontend)?;
        t.mknod(&paths.frontend, &front_perms)?;
        t.write(&format!("{}/backend", paths.frontend), &paths.backend)?;
        for (k, v) in nodes.frontend {
            t.write_perms(&format!("{}/{k}", paths.frontend), v, &front_perms)?;
        }
        rm_if_present(t, &paths.backend)?;
        t.mknod(&paths.backend, &back_perms)?;
        t.write(&format!("{}/frontend", paths.backend), &paths.frontend)?;
        for (k, v) in nodes.backend.iter().chain(nodes.backend_only) {
            t.write(&format!("{}/{k}", paths.backend), v)?;
        }
        Ok(())
    })
}

/// The backend's view of one device's xenbus nodes.
pub struct Xenbus {
    xs: std::sync::Arc<Xenstored>,
    paths: Paths,
    state: XenbusState,
}

impl Xenbus {
    /// For `paths`; the backend starts in Initialising.
    pub fn new(xs: std::sync::Arc<Xenstored>, paths: Paths) -> Self {
        Xenbus {
            xs,
            paths,
            state: XenbusState::Initialising,
        }
    }

    /// The directories.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The backend's current state.
    pub fn state(&self) -> XenbusState {
        self.state
    }

    /// The xenstore daemon.
    pub fn store(&self) -> &std::sync::Arc<Xenstored> {
        &self.xs
    }

    /// Writes `entries` under the backend directory in one transaction.
    pub fn write_backend(&self, entries: &[(&str, String)]) -> Result<(), XsError> {
        let be = &self.paths.backend;
        self.xs.transact(|t| {
            for (k, v) in entries {
                t.write(&format!("{be}/{k}"), v)?;
            }
            Ok(())
        })
    }

    /// Writes the backend's state (xenbus_switch_state).
    pub fn switch(&mut self, state: XenbusState) -> Result<(), XsError> {
        if state == self.state {
            return Ok(());
        }
        log::debug!(
            "{}: backend {} -> {}",
            self.paths.backend,
            self.state.name(),
            state.name()
        );
        self.state = state;
        self.xs
            .write(&format!("{}/state", self.paths.backend), state.as_str())
    }

    /// Reports a fatal error as xenbus_dev_fatal does: an `error` node
    /// with the message, and the backend goes to Closing.
    pub fn fatal(&mut self, msg: &str) {
        log::warn!("{}: {msg}", self.paths.backend);
        let _ = self.xs.write(&format!("{}/error", self.paths.backend), msg);
        let _ = self.switch(XenbusState::Closing);
    }

    /// The frontend's state (Unknown if the node is missing).
    pub fn frontend_state(&self) -> XenbusState {
        self.xs
            .read(&format!("{}/state", self.paths.frontend))
            .map(|v| XenbusState::parse(&v))
            .unwrap_or(XenbusState::Unknown)
    }

    /// A frontend node (relative to its directory), if present.
    pub fn read_opt(&self, key: &str) -> Option<String> {
        self.xs
            .read_string(&format!("{}/{key}", self.paths.frontend))
            .ok()
    }

    /// A frontend number, if present.
    pub fn read_u32(&self, key: &str) -> Result<Option<u32>, ConnectError> {
        match self.read_opt(key) {
            None => Ok(None),
            Some(v) => parse_u32(&v)
                .map(Some)
                .ok_or_else(|| ConnectError::NotANumber {
                    path: format!("{}/{key}", self.paths.frontend),
                    value: v,
                }),
        }
    }

    /// A frontend flag (`feature-*`: absent means 0).
    pub fn read_flag(&self, key: &str) -> Result<bool, ConnectError> {
        Ok(self.read_u32(key)?.unwrap_or(0) != 0)
    }

    /// A frontend number that must be there.
    pub fn require_u32(&self, key: &str) -> Result<u32, ConnectError> {
        self.read_u32(key)?
            .ok_or_else(|| ConnectError::Missing(format!("{}/{key}", self.paths.frontend)))
    }
}

/// A decimal number as xenbus_scanf("%u") reads it (blanks around allowed).
pub fn parse_u32(s: &str) -> Option<u32> {
    s.trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use XenbusState::*;

    #[test]
    fn frontend_transitions_follow_linux_backends() {
        assert_eq!(on_frontend_change(InitWait, Initialised), Action::Connect);
        assert_eq!(on_frontend_change(InitWait, Connected), Action::Connect);
        assert_eq!(on_frontend_change(Connected, Connected), Action::None);
        assert_eq!(on_frontend_change(Connected, Closing), Action::Closing);
        assert_eq!(on_frontend_change(Closing, Closed), Action::Close);
        assert_eq!(on_frontend_change(Connected, Closed), Action::Close);
        assert_eq!(
            on_frontend_change(Closed, Initialising),
            Action::InitWait,
            "GRUB's hand-over"
        );
        assert_eq!(on_frontend_change(InitWait, Initialising), Action::None);
        assert_eq!(
            on_frontend_change(Closed, Connected),
            Action::Connect,
            "a missed Initialising still connects"
        );
        assert_eq!(on_frontend_change(Closed, Initialised), Action::Connect);
        assert_eq!(
            on_frontend_change(Connected, Initialising),
            Action::None,
            "a restart without a close is ignored"
        );
        assert_eq!(on_frontend_change(Connected, Initialised), Action::None);
        assert_eq!(
            on_frontend_change(Closed, Closing),
            Action::Closing,
            "as xenbus_switch_state does"
        );
        assert_eq!(on_frontend_change(Connected, Unknown), Action::Close);
        assert_eq!(on_frontend_change(Closed, Closed), Action::None);
        assert_eq!(on_frontend_change(Connected, InitWait), Action::Fatal);
        assert_eq!(on_frontend_change(InitWait, Reconfiguring), Action::Fatal);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u32("8"), Some(8));
        assert_eq!(parse_u32(" 12\0"), Some(12));
        assert_eq!(parse_u32("x"), None);
        assert_eq!(parse_u32("-1"), None);
    }

    #[test]
    fn paths_name_the_class() {
        let p = Paths::new("vif", 3, 0);
        assert_eq!(p.backend, "/local/domain/0/backend/vif/3/0");
        assert_eq!(p.frontend, "/local/domain/3/device/vif/0");
    }
}
