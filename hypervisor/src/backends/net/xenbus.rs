//! The vif half of the xenbus handshake (the generic half is
//! [`crate::backends::transport::xenbus`]): the nodes the toolstack writes
//! for a vif (libxl's device_nic_add), the features netback publishes
//! before InitWait (netback_probe), and what it reads from the frontend to
//! connect (connect_data_rings, read_xenbus_vif_flags).
//!
//! Paths for domain N and device D:
//! backend  `/local/domain/0/backend/vif/N/D`,
//! frontend `/local/domain/N/device/vif/D`.

use xen_abi::xenbus::XenbusState;
use xen_abi::DomId;

use super::config::VifSpec;
use super::queue::Negotiated;
use super::vnet::RxOffloads;
use crate::backends::transport::xenbus::{
    self as transport, ConnectError, DeviceNodes, Paths, Xenbus,
};
use crate::xenstore::{Xenstored, XsError};

/// The device class in xenstore paths.
pub const KIND: &str = "vif";
/// The most queues a vif offers (multi-queue-max-queues is this or the
/// host's CPU count, whichever is smaller, as Linux's xenvif_max_queues
/// defaults to the CPU count); each queue is one TAP queue.
pub const MAX_QUEUES: u32 = 4;

/// The queues to offer on this host.
pub fn max_queues() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32).clamp(1, MAX_QUEUES)
}

/// The paths libxl uses for vif `devid` of domain `domid`.
pub fn paths(domid: DomId, devid: u32) -> Paths {
    Paths::new(KIND, domid, devid)
}

/// Writes the vif's nodes as libxl does (libxl__device_nic_add and
/// libxl__device_generic_add) for the host interface `ifname`.
pub fn write_toolstack_nodes(
    xs: &Xenstored,
    domid: DomId,
    spec: &VifSpec,
    ifname: &str,
    paths: &Paths,
) -> Result<(), XsError> {
    let mac = spec.mac_string();
    let mut bents: Vec<(&str, String)> = vec![
        ("frontend-id", domid.to_string()),
        ("online", "1".into()),
        ("state", XenbusState::Initialising.as_str().into()),
        ("mac", mac.clone()),
        ("handle", spec.devid.to_string()),
        ("type", "vif".into()),
        ("vifname", ifname.to_string()),
    ];
    if let Some(b) = &spec.bridge {
        bents.push(("bridge", b.clone()));
    }
    if let Some(s) = &spec.script {
        bents.push(("script", s.display().to_string()));
    }
    if let Some(ip) = &spec.ip {
        bents.push(("ip", ip.clone()));
    }
    if let Some(g) = &spec.gatewaydev {
        bents.push(("gatewaydev", g.clone()));
    }
    if let Some(mtu) = spec.mtu {
        bents.push(("mtu", mtu.to_string()));
    }
    let mut fents: Vec<(&str, String)> = vec![
        ("backend-id", "0".into()),
        ("state", XenbusState::Initialising.as_str().into()),
        ("handle", spec.devid.to_string()),
        ("mac", mac),
        ("trusted", if spec.trusted { "1" } else { "0" }.into()),
    ];
    if let Some(mtu) = spec.mtu {
        fents.push(("mtu", mtu.to_string()));
    }
    transport::write_toolstack_nodes(
        xs,
        domid,
        paths,
        &DeviceNodes {
            backend: &bents,
            backend_only: &[],
            frontend: &fents,
        },
    )
}

/// The features netback offers with `queues` queues, as netback_probe writes them.
pub fn features(queues: u32) -> Vec<(&'static str, String)> {
    vec![
        ("feature-sg", "1".into()),
        ("feature-gso-tcpv4", "1".into()),
        ("feature-gso-tcpv6", "1".into()),
        ("feature-ipv6-csum-offload", "1".into()),
        ("feature-rx-copy", "1".into()),
        ("feature-rx-flip", "0".into()),
        ("feature-multicast-control", "1".into()),
        ("feature-dynamic-multicast-control", "1".into()),
        ("feature-split-event-channels", "1".into()),
        ("multi-queue-max-queues", queues.to_string()),
    ]
}

/// Publishes the features (with `queues` queues), says the hotplug work is
/// done (what vif-bridge writes) and switches to InitWait.
pub fn publish(bus: &mut Xenbus, queues: u32) -> Result<(), XsError> {
    let mut entries = features(queues);
    entries.push(("hotplug-status", "connected".into()));
    bus.write_backend(&entries)?;
    bus.switch(XenbusState::InitWait)
}

/// The rings and event channels of one queue, as the frontend published them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueInfo {
    /// The tx ring's grant.
    pub tx_ring_ref: u32,
    /// The rx ring's grant.
    pub rx_ring_ref: u32,
    /// The tx event channel (the only one without split channels).
    pub tx_port: u32,
    /// The rx event channel (equal to `tx_port` without split channels).
    pub rx_port: u32,
}

/// Everything the frontend published to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontendInfo {
    /// One entry per queue.
    pub queues: Vec<QueueInfo>,
    /// What it negotiated.
    pub negotiated: Negotiated,
}

/// Reads what the frontend published (connect and connect_data_rings),
/// with at most `max` queues.
pub fn read_frontend(bus: &Xenbus, max: u32) -> Result<FrontendInfo, ConnectError> {
    let n = bus.read_u32("multi-queue-num-queues")?.unwrap_or(1);
    if n == 0 || n > max {
        return Err(ConnectError::Refused(format!("guest requested {n} queues, exceeding the maximum of {max}")));
    }
    if !bus.read_flag("request-rx-copy")? {
        return Err(ConnectError::Refused(
            "the frontend does not request rx-copy (rx-flip is not offered)".into(),
        ));
    }
    if !bus.read_flag("feature-rx-notify")? {
        return Err(ConnectError::Refused(
            "feature-rx-notify is mandatory".into(),
        ));
    }
    let mut queues = Vec::new();
    for q in 0..n {
        let dir = if n == 1 {
            String::new()
        } else {
            format!("queue-{q}/")
        };
        let tx_ring_ref = bus.require_u32(&format!("{dir}tx-ring-ref"))?;
        let rx_ring_ref = bus.require_u32(&format!("{dir}rx-ring-ref"))?;
        let (tx_port, rx_port) = match bus.read_u32(&format!("{dir}event-channel-tx"))? {
            Some(tx) => (tx, bus.require_u32(&format!("{dir}event-channel-rx"))?),
            None => {
                let p = bus.require_u32(&format!("{dir}event-channel"))?;
                (p, p)
            }
        };
        queues.push(QueueInfo {
            tx_ring_ref,
            rx_ring_ref,
            tx_port,
            rx_port,
        });
    }
    let sg = bus.read_flag("feature-sg")?;
    let rx = RxOffloads {
        ipv4_csum: !bus.read_flag("feature-no-csum-offload")?,
        ipv6_csum: bus.read_flag("feature-ipv6-csum-offload")?,
        // A GSO frame spans several slots: it needs sg too.
        tso4: sg && bus.read_flag("feature-gso-tcpv4")?,
        tso6: sg && bus.read_flag("feature-gso-tcpv6")?,
    };
    let multicast_control = bus.read_flag("request-multicast-control")?;
    Ok(FrontendInfo {
        queues,
        negotiated: Negotiated {
            sg,
            rx,
            multicast_control,
        },
    })
}
