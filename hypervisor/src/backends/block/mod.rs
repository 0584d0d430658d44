//! The PV block backend (blkback): serves a guest's `disk = [...]` entries
//! over the blkif protocol, acting as domain 0.
//!
//! Laid out like Firecracker's block device:
//! - [`config`]: the xl disk specification (what the user asked for);
//! - [`device`]: the device, its state and threads (control + I/O workers);
//! - [`xenbus`]: the block half of the xenstore handshake (toolstack nodes,
//!   features, reading the ring); the generic half, the shared ring pages
//!   and the control loop are in [`crate::backends::transport`];
//! - [`request`]: parsing and validating one request;
//! - [`io`]: the I/O engines (synchronous preadv/pwritev into guest pages);
//! - [`metrics`]: counters, logged at the end with `-v`.
//!
//! Features offered: READ/WRITE, FLUSH_DISKCACHE and WRITE_BARRIER
//! (fdatasync), DISCARD (hole punching), INDIRECT (256 segments),
//! multi-page rings (order 4), persistent grants, both ring ABIs
//! (x86_32-abi, x86_64-abi), 512-byte and 4 KiB logical sectors.

pub mod config;
pub mod device;
pub mod io;
pub mod metrics;
pub mod request;
pub mod xenbus;

use std::sync::Arc;

use super::Entries;
use crate::origin::Origin;
use crate::xen::Domain;
use crate::xenstore::Xenstored;

pub use device::BlockDevice;

/// A `disk` entry that cannot be served, with where it was configured.
#[derive(Debug, thiserror::Error)]
pub enum DiskConfigError {
    /// The specification is not valid (or not supported).
    #[error("{}disk: '{spec}': {err}", origin.as_ref().map(|o| format!("{o}: ")).unwrap_or_default())]
    Spec {
        /// Where `disk` was set.
        origin: Option<Origin>,
        /// The entry.
        spec: String,
        /// What is wrong.
        #[source]
        err: config::DiskSpecError,
    },
    /// Two entries use the same virtual device.
    #[error("{}disk: '{spec}': vdev {vdev} is already used by another disk", origin.as_ref().map(|o| format!("{o}: ")).unwrap_or_default())]
    Duplicate {
        /// Where `disk` was set.
        origin: Option<Origin>,
        /// The entry.
        spec: String,
        /// The vdev.
        vdev: String,
    },
    /// Disks need xenstore, which did not start.
    #[error("{}disk: the block backend needs xenstored, which is not running", origin.as_ref().map(|o| format!("{o}: ")).unwrap_or_default())]
    NoXenstore {
        /// Where `disk` was set.
        origin: Option<Origin>,
    },
    /// The image could not be opened or the device not set up.
    #[error("{}disk: '{spec}': {err}", origin.as_ref().map(|o| format!("{o}: ")).unwrap_or_default())]
    Device {
        /// Where `disk` was set.
        origin: Option<Origin>,
        /// The entry.
        spec: String,
        /// What failed.
        #[source]
        err: device::DeviceError,
    },
}

/// Parses every `disk` entry (no file is opened).
pub fn parse_disks(cfg: &Entries<'_>) -> Result<Vec<(String, config::DiskSpec)>, DiskConfigError> {
    let origin = || cfg.origin();
    let mut out: Vec<(String, config::DiskSpec)> = Vec::new();
    for spec in cfg.specs {
        let d = config::parse(spec).map_err(|err| DiskConfigError::Spec { origin: origin(), spec: spec.clone(), err })?;
        if out.iter().any(|(_, o)| o.devid == d.devid) {
            return Err(DiskConfigError::Duplicate { origin: origin(), spec: spec.clone(), vdev: d.vdev });
        }
        out.push((spec.clone(), d));
    }
    Ok(out)
}

/// A `disk` entry with its image, opened once for the whole run.
#[derive(Debug)]
pub struct OpenedDisk {
    /// The entry as written.
    pub spec: String,
    /// The entry parsed.
    pub config: config::DiskSpec,
    /// The image, open read-only for `r` and read-write for `w`, locked;
    /// every incarnation of the domain (reboots) is served from this one
    /// descriptor, so a path swapped on disk meanwhile is never reached.
    pub disk: Arc<io::sync_io::SyncDisk>,
}

/// Parses every `disk` entry and opens each image as it will be served
/// (read-only or read-write, locked, its size checked): what `create -n`
/// checks, and what the real run serves.
pub fn open_disks(cfg: &Entries<'_>) -> Result<Vec<OpenedDisk>, DiskConfigError> {
    let mut out = Vec::new();
    for (spec, d) in parse_disks(cfg)? {
        let disk = io::sync_io::SyncDisk::open(&d.target, d.readonly)
            .map_err(|err| DiskConfigError::Device { origin: cfg.origin(), spec: spec.clone(), err: err.into() })?;
        out.push(OpenedDisk { spec, config: d, disk: Arc::new(disk) });
    }
    Ok(out)
}

/// The block devices of one running domain.
#[derive(Default)]
pub struct Backends {
    devices: Vec<Arc<BlockDevice>>,
}

impl Backends {
    /// Creates a device per opened `disk` entry (`cfg`) for `dom`: each
    /// reaches InitWait before this returns, so the guest finds it ready.
    pub fn create(cfg: &Entries<'_>, disks: &[OpenedDisk], dom: &Arc<Domain>, xs: Option<&Arc<Xenstored>>) -> Result<Self, DiskConfigError> {
        let mut backends = Backends::default();
        if disks.is_empty() {
            return Ok(backends);
        }
        let xs = xs.ok_or_else(|| DiskConfigError::NoXenstore { origin: cfg.origin() })?;
        for OpenedDisk { spec, config, disk } in disks {
            match BlockDevice::create(dom, xs, config, disk.clone()) {
                Ok(dev) => backends.devices.push(dev),
                Err(err) => {
                    backends.stop();
                    return Err(DiskConfigError::Device { origin: cfg.origin(), spec: spec.clone(), err });
                }
            }
        }
        Ok(backends)
    }

    /// Stops every device and logs its counters (shown with -v).
    pub fn stop(&mut self) {
        for dev in self.devices.drain(..) {
            dev.stop();
            log::info!("blkback {}: {}", dev.name(), dev.metrics());
        }
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
pub mod test_utils;
#[cfg(test)]
mod tests;
