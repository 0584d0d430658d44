//! The PV network backend (netback): serves a guest's `vif = [...]`
//! entries over the netif protocol, acting as domain 0, each on a TAP
//! device of the host.
//!
//! Laid out like the block backend:
//! - [`config`]: the xl vif specification (what the user asked for);
//! - [`device`]: the vif, its state and threads (control + I/O);
//! - [`xenbus`]: the vif half of the xenstore handshake (the generic half,
//!   the ring pages and the control loop are [`crate::backends::transport`]);
//! - [`queue`]: the ring server, tx packet assembly and rx placement;
//! - [`vnet`]: the TAP's virtio-net header and the netif offload flags;
//! - [`io`]: the packet side (the TAP; an in-memory one for tests);
//! - [`metrics`]: counters, logged at the end with -v.
//!
//! Features offered: rx-copy, scatter-gather, checksum offload both ways
//! (IPv4 and IPv6), TCPv4/TCPv6 segmentation offload both ways,
//! multicast control, split event channels, multi-queue (one TAP queue per
//! ring pair, up to the host's CPU count and at most 4).

pub mod config;
pub mod device;
pub mod io;
pub mod metrics;
pub mod queue;
pub mod vnet;
pub mod xenbus;

use std::path::PathBuf;
use std::sync::Arc;

use super::Entries;
use crate::origin::Origin;
use crate::xen::Domain;
use crate::xenstore::Xenstored;

pub use device::NetDevice;

/// The host side's MAC, as Xen's vif-bridge sets it, so that a bridge never
/// takes a vif's address as its own.
pub const HOST_MAC: [u8; 6] = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff];

fn at(origin: &Option<Origin>) -> String {
    origin
        .as_ref()
        .map(|o| format!("{o}: "))
        .unwrap_or_default()
}

/// A `vif` entry that cannot be served, with where it was configured.
#[derive(Debug, thiserror::Error)]
pub enum VifConfigError {
    /// The specification is not valid (or not supported).
    #[error("{}vif: '{spec}': {err}", at(origin))]
    Spec {
        /// Where `vif` was set.
        origin: Option<Origin>,
        /// The entry.
        spec: String,
        /// What is wrong.
        #[source]
        err: config::VifSpecError,
    },
    /// Two entries with the same devid or interface name.
    #[error("{}vif: '{spec}': {what} is already used by another vif", at(origin))]
    Duplicate {
        /// Where `vif` was set.
        origin: Option<Origin>,
        /// The entry.
        spec: String,
        /// What is shared.
        what: String,
    },
    /// The host cannot provide the interface.
    #[error("{}vif: '{spec}': {why}", at(origin))]
    Host {
        /// Where `vif` was set.
        origin: Option<Origin>,
        /// The entry.
        spec: String,
        /// What is missing.
        why: String,
    },
    /// Vifs need xenstore, which did not start.
    #[error(
        "{}vif: the network backend needs xenstored, which is not running",
        at(origin)
    )]
    NoXenstore {
        /// Where `vif` was set.
        origin: Option<Origin>,
    },
}

/// Parses every `vif` entry (nothing on the host is touched).
pub fn parse_vifs(cfg: &Entries<'_>) -> Result<Vec<(String, config::VifSpec)>, VifConfigError> {
    let origin = || cfg.origin();
    let mut out: Vec<(String, config::VifSpec)> = Vec::new();
    for (i, spec) in cfg.specs.iter().enumerate() {
        let v = config::parse(spec, i as u32).map_err(|err| VifConfigError::Spec {
            origin: origin(),
            spec: spec.clone(),
            err,
        })?;
        if out.iter().any(|(_, o)| o.devid == v.devid) {
            return Err(VifConfigError::Duplicate {
                origin: origin(),
                spec: spec.clone(),
                what: format!("devid {}", v.devid),
            });
        }
        if let Some(name) = &v.vifname {
            if out.iter().any(|(_, o)| o.vifname.as_ref() == Some(name)) {
                return Err(VifConfigError::Duplicate {
                    origin: origin(),
                    spec: spec.clone(),
                    what: format!("vifname {name}"),
                });
            }
        }
        out.push((spec.clone(), v));
    }
    Ok(out)
}

/// Parses every `vif` entry and checks what the host must provide: the
/// bridges exist, the scripts are executable files, and the process may
/// create network interfaces (CAP_NET_ADMIN). What `create -n` checks.
pub fn check_vifs(cfg: &Entries<'_>) -> Result<Vec<(String, config::VifSpec)>, VifConfigError> {
    let vifs = parse_vifs(cfg)?;
    let host = |spec: &str, why: String| VifConfigError::Host {
        origin: cfg.origin(),
        spec: spec.to_string(),
        why,
    };
    for (spec, v) in &vifs {
        if let Some(script) = &v.script {
            let ok = std::fs::metadata(script).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            });
            if !ok {
                return Err(host(
                    spec,
                    format!("script {} is not an executable file", script.display()),
                ));
            }
        } else if let Some(b) = &v.bridge {
            if !io::tap::is_bridge(b) {
                return Err(host(
                    spec,
                    io::tap::TapError::NoBridge(b.clone()).to_string(),
                ));
            }
        }
    }
    if !vifs.is_empty() && !io::tap::has_net_admin() {
        let spec = &vifs[0].0;
        return Err(host(spec, "creating the TAP device needs CAP_NET_ADMIN (run xenolith as root or give it the capability)".into()));
    }
    Ok(vifs)
}

/// Runs a hotplug script as libxl does: `script online|offline
/// type_if=vif` with the environment Xen's hotplug scripts get.
fn run_script(
    script: &std::path::Path,
    action: &str,
    domid: u16,
    v: &config::VifSpec,
    ifname: &str,
    xs: &Xenstored,
) -> Result<(), String> {
    let mut cmd = std::process::Command::new(script);
    cmd.arg(action)
        .arg("type_if=vif")
        .env("script", script)
        .env("XENBUS_TYPE", "vif")
        .env("XENBUS_PATH", format!("backend/vif/{domid}/{}", v.devid))
        .env("XENBUS_BASE_PATH", "backend")
        .env("netdev", v.gatewaydev.as_deref().unwrap_or(""))
        .env("vif", ifname)
        .stdin(std::process::Stdio::null());
    if let Some(p) = xs.socket_path() {
        cmd.env("XENSTORED_PATH", p);
    }
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("script {} {action} failed ({s})", script.display())),
        Err(e) => Err(format!("running script {} {action}: {e}", script.display())),
    }
}

/// A vif being served, with what to undo when it stops.
struct Served {
    dev: Arc<NetDevice>,
    script: Option<(PathBuf, config::VifSpec, String)>,
    domid: u16,
    xs: Arc<Xenstored>,
}

/// The vifs of one running domain.
#[derive(Default)]
pub struct Backends {
    vifs: Vec<Served>,
}

impl Backends {
    /// For each `vif` entry of `cfg`: creates its TAP, sets it up as Xen's
    /// vif-bridge does (host MAC fe:ff:ff:ff:ff:ff, MTU, attached to the
    /// bridge, up) or runs its `script=`, and starts its backend, which
    /// reaches InitWait before this returns. Any failure undoes the rest.
    pub fn create(
        cfg: &Entries<'_>,
        dom: &Arc<Domain>,
        xs: Option<&Arc<Xenstored>>,
    ) -> Result<Self, VifConfigError> {
        let mut backends = Backends::default();
        if cfg.specs.is_empty() {
            return Ok(backends);
        }
        let xs = xs.ok_or_else(|| VifConfigError::NoXenstore {
            origin: cfg.origin(),
        })?;
        let domid = dom.info.domid;
        for (spec, v) in check_vifs(cfg)? {
            let fail = |why: String| VifConfigError::Host {
                origin: cfg.origin(),
                spec: spec.clone(),
                why,
            };
            let ifname = v.ifname(domid);
            let tap = match set_up_tap(&ifname, &v) {
                Ok(t) => t,
                Err(e) => {
                    backends.stop();
                    return Err(fail(e.to_string()));
                }
            };
            let ports = tap.into_iter().map(|t| Box::new(t) as Box<dyn io::PacketPort>).collect();
            let dev = match NetDevice::create(dom, xs, &v, ports) {
                Ok(d) => d,
                Err(e) => {
                    backends.stop();
                    return Err(fail(e.to_string()));
                }
            };
            let mut served = Served {
                dev,
                script: None,
                domid,
                xs: xs.clone(),
            };
            if let Some(script) = &v.script {
                if let Err(why) = run_script(script, "online", domid, &v, &ifname, xs) {
                    served.dev.stop();
                    backends.stop();
                    return Err(fail(why));
                }
                served.script = Some((script.clone(), v.clone(), ifname));
            }
            backends.vifs.push(served);
        }
        Ok(backends)
    }

    /// Stops every vif (its TAP goes away), runs `script offline` where a
    /// script brought it online, and logs its counters (shown with -v).
    pub fn stop(&mut self) {
        for s in self.vifs.drain(..) {
            if let Some((script, v, ifname)) = &s.script {
                if let Err(e) = run_script(script, "offline", s.domid, v, ifname, &s.xs) {
                    log::warn!("{}: {e}", s.dev.name());
                }
            }
            s.dev.stop();
            log::info!("netback {}: {}", s.dev.name(), s.dev.metrics());
        }
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Frames the host may queue for a vif's guest (each TAP queue), as
/// Linux's netback gives its vif devices (XENVIF_QUEUE_LENGTH). tun's
/// default, 1000, let a flood leave seconds of stale frames in front of a
/// guest that takes a thousand a second (docs/reliability.md, "Hostile
/// networks"); a short queue drops the excess at once instead.
pub const TX_QUEUE_LEN: u32 = 32;

/// Creates the TAP and, without a script, does what vif-bridge does.
/// One TAP queue per queue offered.
fn set_up_tap(ifname: &str, v: &config::VifSpec) -> Result<Vec<io::Tap>, io::tap::TapError> {
    let queues = io::Tap::create_queues(ifname, xenbus::max_queues() as usize)?;
    let tap = &queues[0];
    tap.set_mac(HOST_MAC)?;
    tap.set_txqueuelen(TX_QUEUE_LEN)?;
    if let Some(mtu) = v.mtu {
        tap.set_mtu(mtu)?;
    }
    if v.script.is_none() {
        if let Some(b) = &v.bridge {
            tap.attach(b)?;
        }
        tap.up()?;
    }
    Ok(queues)
}

#[cfg(test)]
mod tests;
