//! blkfront's xenbus negotiation (io/blkif.h's "Feature and Parameter
//! Negotiation"): what the backend offers, what we publish, what the
//! connected disk is.
//!
//! Keys read from the backend:
//! - before InitWait: `max-ring-page-order` (multi-page rings);
//! - at Connected: `sectors` (512-byte units, required), `sector-size`,
//!   `info` (VDISK_* bits), `feature-flush-cache`, `feature-barrier`,
//!   `feature-persistent`, `feature-max-indirect-segments`; and `mode`
//!   ("r" or "w", written by the toolstack).
//!
//! Keys we write, in one transaction with our switch to Initialised:
//! `ring-ref` (one page) or `ring-page-order` and `ring-ref0..N-1`,
//! `event-channel`, `protocol` (`x86_64-abi`), `feature-persistent`.

use alloc::format;
use alloc::string::String;
use core::fmt::Write;

use xen_abi::blkif::{self as bi, BLKIF_MAX_SEGMENTS_PER_REQUEST, SEGS_PER_INDIRECT_FRAME};
use xen_abi::event_channel::Port;
use xen_abi::grant_table::GrantRef;

use crate::time;
use crate::xenbus::{connect_step, ConnectStep, Device, XenbusError, XenbusState};
use crate::xenstore::{self, Tx, XsError};

/// The most ring pages we ask for (log2): 4 pages, 128 requests.
pub const MAX_RING_ORDER: u32 = 2;

/// What the backend offers before we publish anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offer {
    /// `max-ring-page-order` (0 if absent: one page).
    pub max_ring_order: u32,
}

/// How writes are made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushMethod {
    /// BLKIF_OP_FLUSH_DISKCACHE (`feature-flush-cache`).
    FlushCache,
    /// BLKIF_OP_WRITE_BARRIER (`feature-barrier`).
    Barrier,
    /// Neither offered: the backend writes through, nothing to send.
    None,
}

/// The connected disk, as the backend describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disk {
    /// Size in 512-byte sectors.
    pub sectors_512: u64,
    /// Logical sector size in bytes.
    pub sector_size: u32,
    /// VDISK_* bits.
    pub info: u32,
    /// `mode` = "r" or VDISK_READONLY.
    pub read_only: bool,
    /// How to flush.
    pub flush: FlushMethod,
    /// `feature-persistent` offered by the backend.
    pub backend_persistent: bool,
    /// Segments per request we will use (11 without indirect requests).
    pub max_segments: usize,
}

/// Parses the Connected keys (pure, so it is tested on the host). `get`
/// reads a backend key; `max_indirect` is our own cap.
pub fn parse_disk(
    mut get: impl FnMut(&str) -> Option<String>,
    max_indirect: usize,
) -> Result<Disk, String> {
    let num = |v: Option<String>| v.and_then(|s| xenstore::parse_u64(s.as_bytes()).ok());
    let sectors_512 = num(get("sectors")).ok_or_else(|| String::from("sectors"))?;
    let sector_size = match num(get("sector-size")) {
        None => 512,
        Some(s) if (512..=65536).contains(&s) && s.is_power_of_two() => s as u32,
        Some(_) => return Err("sector-size".into()),
    };
    let info = num(get("info")).unwrap_or(0) as u32;
    let mode_ro = get("mode").is_some_and(|m| m.trim_end_matches('\0').starts_with('r'));
    let read_only = mode_ro || info & bi::VDISK_READONLY != 0;
    let flush = if num(get("feature-flush-cache")).unwrap_or(0) != 0 {
        FlushMethod::FlushCache
    } else if num(get("feature-barrier")).unwrap_or(0) != 0 {
        FlushMethod::Barrier
    } else {
        FlushMethod::None
    };
    let backend_persistent = num(get("feature-persistent")).unwrap_or(0) != 0;
    let indirect = num(get("feature-max-indirect-segments")).unwrap_or(0) as usize;
    let cap = max_indirect.min(SEGS_PER_INDIRECT_FRAME);
    let max_segments =
        if indirect > BLKIF_MAX_SEGMENTS_PER_REQUEST && cap > BLKIF_MAX_SEGMENTS_PER_REQUEST {
            indirect.min(cap)
        } else {
            BLKIF_MAX_SEGMENTS_PER_REQUEST
        };
    Ok(Disk {
        sectors_512,
        sector_size,
        info,
        read_only,
        flush,
        backend_persistent,
        max_segments,
    })
}

/// Reads what the backend offers before we publish.
pub fn read_offer(dev: &Device) -> Result<Offer, XsError> {
    let max_ring_order = dev.backend_u64("max-ring-page-order")?.unwrap_or(0).min(31) as u32;
    Ok(Offer { max_ring_order })
}

/// The ring order to use: ours capped by the backend's.
pub fn ring_order(offer: &Offer, ours: u32) -> u32 {
    offer.max_ring_order.min(ours).min(MAX_RING_ORDER)
}

/// Publishes the ring, event channel and features and switches to
/// Initialised, in one transaction.
pub fn publish(
    dev: &Device,
    refs: &[GrantRef],
    order: u32,
    port: Port,
    persistent: bool,
) -> Result<(), XsError> {
    let ignore_missing = |r: Result<(), XsError>| match r {
        Err(e) if e.is_not_found() => Ok(()),
        r => r,
    };
    xenstore::transaction(|tx| {
        if order == 0 {
            xenstore::write(
                tx,
                &dev.front_path("ring-ref"),
                &num(refs.first().copied().unwrap_or(0) as u64),
            )?;
            // A previous kernel's multi-page keys would contradict ours.
            ignore_missing(xenstore::rm(tx, &dev.front_path("ring-page-order")))?;
        } else {
            xenstore::write(tx, &dev.front_path("ring-page-order"), &num(order as u64))?;
            for (i, r) in refs.iter().enumerate() {
                xenstore::write(
                    tx,
                    &dev.front_path(&format!("ring-ref{i}")),
                    &num(*r as u64),
                )?;
            }
            ignore_missing(xenstore::rm(tx, &dev.front_path("ring-ref")))?;
        }
        xenstore::write(tx, &dev.front_path("event-channel"), &num(port as u64))?;
        xenstore::write(tx, &dev.front_path("protocol"), bi::Protocol::X86_64.name())?;
        xenstore::write(
            tx,
            &dev.front_path("feature-persistent"),
            if persistent { "1" } else { "0" },
        )?;
        dev.switch_state(tx, XenbusState::Initialised)
    })
}

/// Removes what [`publish`] wrote (after the backend closed), as Mini-OS
/// does, so the next frontend starts clean.
pub fn unpublish(dev: &Device, order: u32) {
    let mut keys: alloc::vec::Vec<String> = ["ring-ref", "ring-page-order", "event-channel"]
        .iter()
        .map(|k| dev.front_path(k))
        .collect();
    for i in 0..(1u32 << order.min(MAX_RING_ORDER)) {
        keys.push(dev.front_path(&format!("ring-ref{i}")));
    }
    for k in keys {
        let _ = xenstore::rm(Tx::NONE, &k);
    }
}

/// Drives the connection (see [`connect_step`]): resets a left-over
/// backend, calls `publish` once the backend is in InitWait (it sets up
/// the ring and writes our keys), then, when the backend is Connected,
/// reads the disk and switches us to Connected.
pub fn connect<E: From<XenbusError> + From<XsError>>(
    dev: &Device,
    timeout_ns: u64,
    max_indirect: usize,
    mut publish: impl FnMut(&Offer) -> Result<(), E>,
) -> Result<Disk, E> {
    let deadline = time::now_ns().saturating_add(timeout_ns);
    if dev.state()? != XenbusState::Initialising {
        dev.switch_state(Tx::NONE, XenbusState::Initialising)?;
    }
    let watch = xenstore::watch(&dev.back_path("state"))?;
    let (mut published, mut reset_done) = (false, false);
    loop {
        let s = dev.backend_state()?;
        match connect_step(s, published, reset_done) {
            ConnectStep::Wait => {
                if watch.wait(deadline)?.is_none() {
                    let s = dev.backend_state()?;
                    if connect_step(s, published, reset_done) == ConnectStep::Wait {
                        let waiting_for = if published { "Connected" } else { "InitWait" };
                        return Err(XenbusError::Timeout {
                            waiting_for,
                            backend: s,
                        }
                        .into());
                    }
                }
            }
            ConnectStep::Publish => {
                publish(&read_offer(dev)?)?;
                published = true;
            }
            ConnectStep::Connect => {
                let disk = parse_disk(|k| dev.backend_read(k).ok().flatten(), max_indirect)
                    .map_err(|k| XenbusError::BadNode(dev.back_path(&k)))?;
                dev.switch_state(Tx::NONE, XenbusState::Connected)?;
                return Ok(disk);
            }
            ConnectStep::Reset => {
                dev.reset(deadline.saturating_sub(time::now_ns()))?;
                reset_done = true;
            }
            ConnectStep::Fail => return Err(XenbusError::BackendFailed(s).into()),
        }
    }
}

fn num(v: u64) -> String {
    let mut s = String::new();
    let _ = write!(s, "{v}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    fn disk(keys: &[(&str, &str)], cap: usize) -> Result<Disk, String> {
        let m: BTreeMap<String, String> = keys
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_disk(|k| m.get(k).cloned(), cap)
    }

    #[test]
    fn a_minimal_backend() {
        let d = disk(&[("sectors", "512")], 256).unwrap();
        assert_eq!(d.sectors_512, 512);
        assert_eq!(d.sector_size, 512);
        assert!(!d.read_only);
        assert_eq!(d.flush, FlushMethod::None);
        assert!(!d.backend_persistent);
        assert_eq!(d.max_segments, 11);
        assert_eq!(disk(&[], 256), Err("sectors".into()));
        assert_eq!(disk(&[("sectors", "x")], 256), Err("sectors".into()));
    }

    #[test]
    fn a_linux_blkback() {
        let d = disk(
            &[
                ("sectors", "2097152"),
                ("sector-size", "512"),
                ("info", "0"),
                ("mode", "w"),
                ("feature-flush-cache", "1"),
                ("feature-persistent", "1"),
                ("feature-max-indirect-segments", "256"),
            ],
            256,
        )
        .unwrap();
        assert_eq!(
            (d.flush, d.backend_persistent, d.max_segments),
            (FlushMethod::FlushCache, true, 256)
        );
        // Our cap wins, and a cap at or under 11 means direct requests only.
        assert_eq!(
            disk(
                &[("sectors", "1"), ("feature-max-indirect-segments", "256")],
                32
            )
            .unwrap()
            .max_segments,
            32
        );
        assert_eq!(
            disk(
                &[("sectors", "1"), ("feature-max-indirect-segments", "256")],
                8
            )
            .unwrap()
            .max_segments,
            11
        );
        assert_eq!(
            disk(
                &[("sectors", "1"), ("feature-max-indirect-segments", "4096")],
                9999
            )
            .unwrap()
            .max_segments,
            512
        );
    }

    #[test]
    fn read_only_sector_size_and_barrier() {
        assert!(
            disk(&[("sectors", "8"), ("mode", "r")], 0)
                .unwrap()
                .read_only
        );
        assert!(
            disk(&[("sectors", "8"), ("info", "4")], 0)
                .unwrap()
                .read_only
        );
        assert!(
            disk(&[("sectors", "8"), ("info", "5")], 0)
                .unwrap()
                .read_only
        );
        assert_eq!(
            disk(&[("sectors", "8"), ("sector-size", "4096")], 0)
                .unwrap()
                .sector_size,
            4096
        );
        assert_eq!(
            disk(&[("sectors", "8"), ("sector-size", "1000")], 0),
            Err("sector-size".into())
        );
        assert_eq!(
            disk(&[("sectors", "8"), ("sector-size", "0")], 0),
            Err("sector-size".into())
        );
        assert_eq!(
            disk(&[("sectors", "8"), ("feature-barrier", "1")], 0)
                .unwrap()
                .flush,
            FlushMethod::Barrier
        );
    }

    #[test]
    fn ring_order_is_capped_both_ways() {
        assert_eq!(ring_order(&Offer { max_ring_order: 0 }, 2), 0);
        assert_eq!(ring_order(&Offer { max_ring_order: 4 }, 2), 2);
        assert_eq!(ring_order(&Offer { max_ring_order: 1 }, 2), 1);
        assert_eq!(ring_order(&Offer { max_ring_order: 4 }, 9), MAX_RING_ORDER);
    }
}
