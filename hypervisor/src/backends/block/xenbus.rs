//! The block-specific half of the xenbus handshake (the generic half is
//! [`crate::backends::transport::xenbus`]): the nodes the toolstack writes
//! for a disk (libxl's device_disk_add), the features blkback publishes
//! before InitWait, and what it reads from the frontend to connect.
//!
//! Paths for domain N and device D:
//! backend  `/local/domain/0/backend/vbd/N/D`,
//! frontend `/local/domain/N/device/vbd/D`.

use xen_abi::blkif::Protocol;
use xen_abi::xenbus::XenbusState;
use xen_abi::DomId;

use super::config::DiskSpec;
use crate::backends::transport::xenbus::{self as transport, ConnectError, DeviceNodes, Paths, Xenbus};
use crate::xenstore::{Xenstored, XsError};

/// The device class in xenstore paths.
pub const KIND: &str = "vbd";
/// The most ring pages a frontend may use: order 4 = 16 pages, Linux's
/// default (xen_blkif_max_ring_order).
pub const MAX_RING_PAGE_ORDER: u32 = 4;
/// Segments an indirect request may carry (Linux's MAX_INDIRECT_SEGMENTS).
pub const MAX_INDIRECT_SEGMENTS: u32 = 256;

/// The paths libxl uses for disk `devid` of domain `domid`.
pub fn paths(domid: DomId, devid: u32) -> Paths {
    Paths::new(KIND, domid, devid)
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


/// Writes the device's nodes as libxl does (libxl__device_disk_add and
/// libxl__device_generic_add).
pub fn write_toolstack_nodes(
    xs: &Xenstored,
    domid: DomId,
    spec: &DiskSpec,
    paths: &Paths,
    physical_device: Option<(u32, u32)>,
) -> Result<(), XsError> {
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
    // What the block hotplug script adds once the device is ready.
    let mut hotplug = Vec::new();
    if let Some((major, minor)) = physical_device {
        hotplug.push(("physical-device", format!("{major:x}:{minor:x}")));
    }
    hotplug.push(("physical-device-path", target));
    transport::write_toolstack_nodes(xs, domid, paths, &DeviceNodes { backend: &bents, backend_only: &hotplug, frontend: &fents })
}

/// Publishes the features and switches to InitWait (xen_blkbk_probe
/// plus what blkback writes once the device is opened).
pub fn publish(bus: &mut Xenbus, f: &Features) -> Result<(), XsError> {
    let b = |x: bool| if x { "1" } else { "0" }.to_string();
    let mut entries: Vec<(&str, String)> = vec![
        ("feature-max-indirect-segments", f.max_indirect_segments.to_string()),
        ("max-ring-page-order", f.max_ring_page_order.to_string()),
        ("feature-flush-cache", b(f.flush)),
        ("feature-barrier", b(f.flush)),
        ("feature-persistent", b(f.persistent)),
    ];
    match f.discard_granularity {
        Some(g) => entries.extend([
            ("feature-discard", "1".into()),
            ("discard-granularity", g.to_string()),
            ("discard-alignment", "0".into()),
            ("discard-secure", "0".into()),
        ]),
        None => entries.push(("feature-discard", "0".into())),
    }
    entries.extend([
        ("sectors", f.sectors.to_string()),
        ("info", f.info.to_string()),
        ("sector-size", f.sector_size.to_string()),
        ("physical-sector-size", f.physical_sector_size.to_string()),
    ]);
    bus.write_backend(&entries)?;
    bus.switch(XenbusState::InitWait)
}

/// Reads what the frontend published (Linux's connect_ring).
pub fn read_ring_info(bus: &Xenbus, max_order: u32) -> Result<RingInfo, ConnectError> {
    let order = bus.read_u32("ring-page-order")?.unwrap_or(0);
    if order > max_order {
        return Err(ConnectError::Refused(format!("requested ring page order {order} exceeds max {max_order}")));
    }
    let refs = if order == 0 {
        vec![bus.require_u32("ring-ref")?]
    } else {
        (0..1u32 << order).map(|i| bus.require_u32(&format!("ring-ref{i}"))).collect::<Result<_, _>>()?
    };
    let port = bus.require_u32("event-channel")?;
    let protocol = match bus.read_opt("protocol") {
        None => Protocol::X86_64,
        Some(p) => {
            let name = p.trim_end_matches('\0');
            Protocol::from_name(name).ok_or_else(|| ConnectError::Refused(format!("unknown fe protocol {name}")))?
        }
    };
    let persistent = bus.read_flag("feature-persistent")?;
    Ok(RingInfo { order, refs, port, protocol, persistent })
}
