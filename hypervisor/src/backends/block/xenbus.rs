//! The backend side of the xenbus handshake for a virtual block device:
//! the nodes the toolstack writes (libxl's device_disk_add), the features
//! the backend publishes before InitWait, what it reads from the frontend
//! to connect, and the state transitions Linux's xen-blkback makes when the
//! frontend's `state` node changes.
//!
//! Paths for domain N and device D:
//! backend  `/local/domain/0/backend/vbd/N/D`,
//! frontend `/local/domain/N/device/vbd/D`.

use xen_abi::blkif::Protocol;
use xen_abi::xenbus::XenbusState;
use xen_abi::DomId;

use super::config::DiskSpec;
use crate::xenstore::{Access, Perm, Tx, Xenstored, XsError};

/// The most ring pages a frontend may use: order 4 = 16 pages, Linux's
/// default (xen_blkif_max_ring_order).
pub const MAX_RING_PAGE_ORDER: u32 = 4;
/// Segments an indirect request may carry (Linux's MAX_INDIRECT_SEGMENTS).
pub const MAX_INDIRECT_SEGMENTS: u32 = 256;

/// The two directories of one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    /// The backend directory (dom0's).
    pub backend: String,
    /// The frontend directory (the guest's).
    pub frontend: String,
}

impl Paths {
    /// The paths libxl uses for `devid` of domain `domid`.
    pub fn new(domid: DomId, devid: u32) -> Self {
        Paths {
            backend: format!("/local/domain/0/backend/vbd/{domid}/{devid}"),
            frontend: format!("/local/domain/{domid}/device/vbd/{devid}"),
        }
    }
}

/// What the backend tells the frontend before InitWait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Features {
    /// Size in 512-byte sectors.
    pub sectors: u64,
    /// VDISK_* bits.
    pub info: u32,
    /// Logical sector size.
    pub sector_size: u32,
    /// Physical sector size.
    pub physical_sector_size: u32,
    /// FLUSH_DISKCACHE and WRITE_BARRIER are offered.
    pub flush: bool,
    /// DISCARD is offered, with this granularity in bytes.
    pub discard_granularity: Option<u32>,
    /// Persistent grants are accepted.
    pub persistent: bool,
    /// Largest indirect request.
    pub max_indirect_segments: u32,
    /// Largest ring.
    pub max_ring_page_order: u32,
}

/// What the frontend published for the backend to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingInfo {
    /// log2 of the ring's pages.
    pub order: u32,
    /// The grant of each ring page, in order.
    pub refs: Vec<u32>,
    /// The frontend's unbound event channel port.
    pub port: u32,
    /// The ring ABI.
    pub protocol: Protocol,
    /// The frontend uses persistent grants.
    pub persistent: bool,
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
    /// The ring is larger than offered.
    #[error("requested ring page order {order} exceeds max {max}")]
    RingTooLarge {
        /// Requested order.
        order: u32,
        /// Offered maximum.
        max: u32,
    },
    /// An ABI this backend does not speak.
    #[error("unknown fe protocol {0}")]
    UnknownProtocol(String),
    /// A ring page could not be mapped.
    #[error("mapping ring-ref{index} (grant {gref}): {err}")]
    RingGrant {
        /// Page index.
        index: usize,
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
/// `frontend_changed` in drivers/block/xen-blkback/xenbus.c), given the
/// backend's own state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing.
    None,
    /// Go back to InitWait: the frontend restarts after a close ("prepare
    /// for reconnect"), as a boot loader's next kernel or Linux's
    /// xenbus_reset_state do.
    InitWait,
    /// Drop any old connection (rings, persistent grants, event channel),
    /// read the frontend's ring and connect.
    Connect,
    /// Switch to Closing (the frontend is closing).
    Closing,
    /// Disconnect and switch to Closed.
    Close,
    /// A state a frontend never writes: xenbus_dev_fatal.
    Fatal,
}

/// The transition for frontend state `fe` while the backend is in `own`,
/// exactly as Linux's blkback decides it. In particular a frontend that
/// writes Initialised or Connected while the backend is Connected (a new
/// kernel that did not close the old connection) is ignored, as there:
/// such a frontend must first reset the device (Closing, Closed,
/// Initialising), which is what Linux's xenbus_reset_state does at boot.
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

/// Writes the device's nodes as libxl does (libxl__device_disk_add and
/// libxl__device_generic_add), with its permissions: the frontend
/// directory belongs to the guest and dom0 may read it; the backend
/// directory belongs to dom0 and the guest may read it.
pub fn write_toolstack_nodes(
    xs: &Xenstored,
    domid: DomId,
    spec: &DiskSpec,
    paths: &Paths,
    physical_device: Option<(u32, u32)>,
) -> Result<(), XsError> {
    let libxl = format!("/libxl/{domid}/device/vbd/{}", spec.devid);
    let front_perms = [Perm::new(domid, Access::None), Perm::new(0, Access::Read)];
    let back_perms = [Perm::new(0, Access::None), Perm::new(domid, Access::Read)];
    let device_type = if spec.cdrom { "cdrom" } else { "disk" };
    let target = spec.target.display().to_string();
    let mut bents: Vec<(&str, String)> = vec![
        ("params", target.clone()),
        ("frontend-id", domid.to_string()),
        ("online", "1".into()),
        ("removable", "0".into()),
        ("bootable", "1".into()),
        ("state", XenbusState::Initialising.as_str().into()),
        ("dev", spec.vdev.clone()),
        ("type", "phy".into()),
        ("mode", if spec.readonly { "r" } else { "w" }.into()),
        ("device-type", device_type.into()),
        ("discard-enable", if spec.discard { "1" } else { "0" }.into()),
        ("specification", "xen".into()),
    ];
    if spec.direct_io_safe {
        bents.push(("direct-io-safe", "1".into()));
    }
    let fents: [(&str, String); 5] = [
        ("backend-id", "0".into()),
        ("state", XenbusState::Initialising.as_str().into()),
        ("virtual-device", spec.devid.to_string()),
        ("device-type", device_type.into()),
        ("trusted", if spec.trusted { "1" } else { "0" }.into()),
    ];
    xs.transact(|t| {
        rm_if_present(t, &libxl)?;
        t.write(&format!("{libxl}/frontend"), &paths.frontend)?;
        t.write(&format!("{libxl}/backend"), &paths.backend)?;
        for (k, v) in &bents {
            t.write(&format!("{libxl}/{k}"), v)?;
        }
        rm_if_present(t, &paths.frontend)?;
        t.mknod(&paths.frontend, &front_perms)?;
        t.write(&format!("{}/backend", paths.frontend), &paths.backend)?;
        for (k, v) in &fents {
            t.write_perms(&format!("{}/{k}", paths.frontend), v, &front_perms)?;
        }
        rm_if_present(t, &paths.backend)?;
        t.mknod(&paths.backend, &back_perms)?;
        t.write(&format!("{}/frontend", paths.backend), &paths.frontend)?;
        for (k, v) in &bents {
            t.write(&format!("{}/{k}", paths.backend), v)?;
        }
        // What the block hotplug script adds once the device is ready.
        if let Some((major, minor)) = physical_device {
            t.write(&format!("{}/physical-device", paths.backend), format!("{major:x}:{minor:x}"))?;
        }
        t.write(&format!("{}/physical-device-path", paths.backend), &target)
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
        Xenbus { xs, paths, state: XenbusState::Initialising }
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

    /// Publishes the features and switches to InitWait (xen_blkbk_probe
    /// plus what blkback writes once the device is opened).
    pub fn publish(&mut self, f: &Features) -> Result<(), XsError> {
        let be = &self.paths.backend;
        let b = |x: bool| if x { "1" } else { "0" };
        self.xs.transact(|t| {
            let w = |k: &str, v: String| t.write(&format!("{be}/{k}"), v);
            w("feature-max-indirect-segments", f.max_indirect_segments.to_string())?;
            w("max-ring-page-order", f.max_ring_page_order.to_string())?;
            w("feature-flush-cache", b(f.flush).into())?;
            w("feature-barrier", b(f.flush).into())?;
            w("feature-persistent", b(f.persistent).into())?;
            match f.discard_granularity {
                Some(g) => {
                    w("feature-discard", "1".into())?;
                    w("discard-granularity", g.to_string())?;
                    w("discard-alignment", "0".into())?;
                    w("discard-secure", "0".into())?;
                }
                None => w("feature-discard", "0".into())?,
            }
            w("sectors", f.sectors.to_string())?;
            w("info", f.info.to_string())?;
            w("sector-size", f.sector_size.to_string())?;
            w("physical-sector-size", f.physical_sector_size.to_string())
        })?;
        self.switch(XenbusState::InitWait)
    }

    /// Writes the backend's state (xenbus_switch_state).
    pub fn switch(&mut self, state: XenbusState) -> Result<(), XsError> {
        if state == self.state {
            return Ok(());
        }
        log::debug!("{}: backend {} -> {}", self.paths.backend, self.state.name(), state.name());
        self.state = state;
        self.xs.write(&format!("{}/state", self.paths.backend), state.as_str())
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
        self.xs.read(&format!("{}/state", self.paths.frontend)).map(|v| XenbusState::parse(&v)).unwrap_or(XenbusState::Unknown)
    }

    fn read_opt(&self, key: &str) -> Option<String> {
        self.xs.read_string(&format!("{}/{key}", self.paths.frontend)).ok()
    }

    fn read_u32(&self, key: &str) -> Result<Option<u32>, ConnectError> {
        match self.read_opt(key) {
            None => Ok(None),
            Some(v) => parse_u32(&v)
                .map(Some)
                .ok_or_else(|| ConnectError::NotANumber { path: format!("{}/{key}", self.paths.frontend), value: v }),
        }
    }

    fn require_u32(&self, key: &str) -> Result<u32, ConnectError> {
        self.read_u32(key)?.ok_or_else(|| ConnectError::Missing(format!("{}/{key}", self.paths.frontend)))
    }

    /// Reads what the frontend published (Linux's connect_ring).
    pub fn read_ring_info(&self, max_order: u32) -> Result<RingInfo, ConnectError> {
        let order = self.read_u32("ring-page-order")?.unwrap_or(0);
        if order > max_order {
            return Err(ConnectError::RingTooLarge { order, max: max_order });
        }
        let refs = if order == 0 {
            vec![self.require_u32("ring-ref")?]
        } else {
            (0..1u32 << order).map(|i| self.require_u32(&format!("ring-ref{i}"))).collect::<Result<_, _>>()?
        };
        let port = self.require_u32("event-channel")?;
        let protocol = match self.read_opt("protocol") {
            None => Protocol::X86_64,
            Some(p) => {
                let name = p.trim_end_matches('\0');
                Protocol::from_name(name).ok_or_else(|| ConnectError::UnknownProtocol(name.to_string()))?
            }
        };
        let persistent = self.read_u32("feature-persistent")?.unwrap_or(0) != 0;
        Ok(RingInfo { order, refs, port, protocol, persistent })
    }
}

/// A decimal number as xenbus_scanf("%u") reads it (blanks around allowed).
fn parse_u32(s: &str) -> Option<u32> {
    s.trim_matches(|c: char| c.is_whitespace() || c == '\0').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use XenbusState::*;

    #[test]
    fn frontend_transitions_follow_blkback() {
        assert_eq!(on_frontend_change(InitWait, Initialised), Action::Connect);
        assert_eq!(on_frontend_change(InitWait, Connected), Action::Connect);
        assert_eq!(on_frontend_change(Connected, Connected), Action::None);
        assert_eq!(on_frontend_change(Connected, Closing), Action::Closing);
        assert_eq!(on_frontend_change(Closing, Closed), Action::Close);
        assert_eq!(on_frontend_change(Connected, Closed), Action::Close);
        assert_eq!(on_frontend_change(Closed, Initialising), Action::InitWait, "GRUB's hand-over");
        assert_eq!(on_frontend_change(InitWait, Initialising), Action::None);
        assert_eq!(on_frontend_change(Closed, Connected), Action::Connect, "a missed Initialising still connects");
        assert_eq!(on_frontend_change(Closed, Initialised), Action::Connect);
        assert_eq!(on_frontend_change(Connected, Initialising), Action::None, "a restart without a close is ignored");
        assert_eq!(on_frontend_change(Connected, Initialised), Action::None);
        assert_eq!(on_frontend_change(Closed, Closing), Action::Closing, "as xenbus_switch_state does");
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
}
