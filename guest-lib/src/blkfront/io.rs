//! The I/O engine: turns the caller's buffers into granted segments and
//! keeps as many requests in flight as the ring and the grant table allow,
//! until every part is done.
//!
//! Data is never copied here: each segment is a grant of the caller's own
//! page, so the backend reads or writes the final place directly (copying
//! in the guest costs about 1 us per byte on emulated hosts).
//!
//! Grants come in two kinds ([`DataGrants`]):
//! - one-shot (the default): granted for one request (read-only when the
//!   backend only reads the page, i.e. for a disk write) and ended when its
//!   response arrives;
//! - persistent (when both ends offer `feature-persistent`): a backend
//!   like Linux's blkback keeps every grant it sees mapped (read-write) and
//!   expects the frontend to use the same reference for the same page
//!   again. Linux's blkfront copies all data through a pool of its own
//!   pages for that; here the caller's pages are granted in place, once,
//!   and the reference is remembered per frame and reused. Those grants
//!   stay until the device closes (the backend unmaps them when it
//!   disconnects), so a page once used for I/O stays reachable by the
//!   backend until then. Past [`PERSISTENT_MAX`] frames new pages get
//!   one-shot (but writable) grants, as the backend also stops keeping
//!   grants past its own limit.
//!
//! A grant the backend still holds when it should have let go (ending it
//! fails: GTF_reading/GTF_writing set) is kept on a deferred list and
//! retried later, never reused while held.

use core::hash::{BuildHasherDefault, Hasher};

use alloc::vec::Vec;
use hashbrown::HashMap;

use xen_abi::blkif::{BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_OKAY};
use xen_abi::event_channel::Port;
use xen_abi::grant_table::GrantRef;
use xen_abi::DomId;

use super::plan::{Planner, SegSpec};
use super::ring::{GrantedSeg, Ring, Shadow};
use crate::blkdev::BlkError;
use crate::{evtchn, gnttab, time, xenstore};

/// Frames whose persistent grants are remembered.
pub const PERSISTENT_MAX: usize = 1024;

/// Hashes a frame number with one multiplication (Fibonacci hashing).
/// Frame numbers are already well-spread integers; a map lookup per page
/// of every request is the hot path, and every guest instruction counts
/// where instructions are emulated (a BTreeMap of 1024 frames cost ~160
/// instructions per lookup).
#[derive(Default)]
struct FrameHasher(u64);

impl Hasher for FrameHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Frame -> persistent grant reference.
type FrameMap = HashMap<u64, GrantRef, BuildHasherDefault<FrameHasher>>;

/// The data grants of one device.
pub struct DataGrants {
    backend: DomId,
    /// Frame -> reference, when persistent grants are in use.
    persistent: Option<FrameMap>,
    /// Grants the backend still held when they were ended.
    deferred: Vec<GrantRef>,
}

impl DataGrants {
    /// Grants for `backend`; `persistent` when both ends offered it.
    pub fn new(backend: DomId, persistent: bool) -> Self {
        DataGrants {
            backend,
            persistent: persistent
                .then(|| FrameMap::with_capacity_and_hasher(PERSISTENT_MAX, Default::default())),
            deferred: Vec::new(),
        }
    }

    /// Whether persistent grants are in use.
    pub fn persistent(&self) -> bool {
        self.persistent.is_some()
    }

    /// A grant of frame `gfn` for one request; `disk_write`: the backend
    /// only reads the page. Returns the reference and whether it must be
    /// ended when the request completes.
    fn grant(
        &mut self,
        gfn: u64,
        disk_write: bool,
    ) -> Result<(GrantRef, bool), gnttab::GnttabError> {
        match &mut self.persistent {
            Some(cache) => {
                if let Some(&r) = cache.get(&gfn) {
                    return Ok((r, false));
                }
                let r = gnttab::grant_access(self.backend, gfn, false)?;
                if cache.len() < PERSISTENT_MAX {
                    cache.insert(gfn, r);
                    Ok((r, false))
                } else {
                    Ok((r, true))
                }
            }
            None => Ok((gnttab::grant_access(self.backend, gfn, disk_write)?, true)),
        }
    }

    /// Ends one-shot grants after their request completed.
    fn release(&mut self, refs: &[GrantRef]) {
        for &r in refs {
            if gnttab::end_access(r).is_err() {
                self.deferred.push(r);
            }
        }
    }

    /// Retries ending deferred grants; returns how many are still held.
    pub fn retry_deferred(&mut self) -> usize {
        self.deferred.retain(|&r| gnttab::end_access(r).is_err());
        self.deferred.len()
    }

    /// Ends every grant (after the backend disconnected); returns how many
    /// the backend still holds (left granted, their pages unusable for
    /// nothing but this device).
    pub fn teardown(&mut self) -> usize {
        if let Some(cache) = &mut self.persistent {
            for (_, r) in core::mem::take(cache) {
                if gnttab::end_access(r).is_err() {
                    self.deferred.push(r);
                }
            }
        }
        self.retry_deferred()
    }
}

/// One contiguous, 512-byte aligned buffer and where it goes on the disk.
#[derive(Clone, Copy, Debug)]
pub struct Part {
    /// First 512-byte sector.
    pub sector: u64,
    /// Address of the buffer.
    pub addr: usize,
    /// Length in bytes.
    pub len: usize,
}

/// How long the engine waits for a response before it looks at the ring
/// unprompted and notifies the backend again.
const RENOTIFY_NS: u64 = 1_000_000_000;

/// What the engine needs from the device.
pub struct Engine<'a> {
    /// The ring.
    pub ring: &'a mut Ring,
    /// The data grants.
    pub grants: &'a mut DataGrants,
    /// The event channel to notify.
    pub port: Port,
    /// Segments per request.
    pub max_segs: usize,
    /// How long without any response before giving up.
    pub timeout_ns: u64,
}

/// An error that leaves the ring unusable (the caller marks the device
/// disconnected).
fn fatal(e: BlkError) -> bool {
    matches!(e, BlkError::Disconnected | BlkError::Timeout)
}

impl Engine<'_> {
    /// Reads (`write` false) or writes all `parts`, keeping requests in
    /// flight across parts. Returns after every request finished; the
    /// first error is returned, with the 512-byte sector of its request.
    pub fn transfer(&mut self, write: bool, parts: &[Part]) -> Result<(), BlkError> {
        let mut next_part = 0;
        let mut cur: Option<(usize, Planner)> = None;
        let mut segs: Vec<SegSpec> = Vec::new();
        let mut granted: Vec<GrantedSeg> = Vec::new();
        let mut err: Option<BlkError> = None;
        let mut deadline = time::now_ns().saturating_add(self.timeout_ns);
        let op = if write {
            xen_abi::blkif::BLKIF_OP_WRITE
        } else {
            xen_abi::blkif::BLKIF_OP_READ
        };
        loop {
            // Queue as much as fits.
            let mut queued = false;
            while err.is_none() && self.ring.has_room() {
                let (part, planner) = match &mut cur {
                    Some((i, p)) if !p.done() => (*i, p),
                    _ => {
                        let Some(p) = parts.get(next_part) else { break };
                        let Some(planner) = Planner::new(p.addr, p.len, p.sector) else {
                            err = Some(BlkError::Unaligned);
                            break;
                        };
                        cur = Some((next_part, planner));
                        next_part += 1;
                        continue;
                    }
                };
                let mut trial = planner.clone();
                let Some((sector, bytes)) = trial.next(self.max_segs, &mut segs) else {
                    break;
                };
                granted.clear();
                let mut owned = Vec::with_capacity(segs.len());
                let mut out_of_grants = false;
                for s in &segs {
                    match self.grants.grant(s.gfn, write) {
                        Ok((gref, own)) => {
                            granted.push(GrantedSeg {
                                gref,
                                first_sect: s.first_sect,
                                last_sect: s.last_sect,
                            });
                            if own {
                                owned.push(gref);
                            }
                        }
                        Err(_) => {
                            out_of_grants = true;
                            break;
                        }
                    }
                }
                if out_of_grants {
                    self.grants.release(&owned);
                    if self.ring.in_flight() == 0 {
                        err = Some(BlkError::NoResources);
                    }
                    break;
                }
                let shadow = Shadow {
                    op,
                    sector,
                    grants: owned,
                    part,
                    bytes,
                };
                match self.ring.queue_rw(write, sector, &granted, shadow) {
                    Ok(()) => {
                        *planner = trial;
                        queued = true;
                    }
                    Err(sh) => {
                        self.grants.release(&sh.grants);
                        if self.ring.in_flight() == 0 {
                            err = Some(BlkError::NoResources);
                        }
                        break;
                    }
                }
            }
            if queued && self.ring.push() {
                let _ = evtchn::send(self.port);
            }
            if self.ring.in_flight() == 0 {
                // Nothing in flight and nothing queued this round: done, or
                // stuck (a broken ring, no grant or memory for even one
                // request), which must not spin.
                let more = next_part < parts.len() || cur.as_ref().is_some_and(|(_, p)| !p.done());
                if more && err.is_none() {
                    err = Some(if self.ring.broken().is_some() {
                        BlkError::Disconnected
                    } else {
                        BlkError::NoResources
                    });
                }
                break;
            }
            // Collect what completed.
            let grants = &mut *self.grants;
            let got = self.ring.take_responses(|sh, status| {
                grants.release(&sh.grants);
                if status != BLKIF_RSP_OKAY && err.is_none() {
                    err = Some(status_error(status, sh.sector, "this operation"));
                }
            });
            match got {
                Err(_) => return Err(self.fail(BlkError::Disconnected)),
                Ok(0) => self.await_responses(deadline)?,
                Ok(_) => deadline = time::now_ns().saturating_add(self.timeout_ns),
            }
        }
        if !self.grants.deferred.is_empty() {
            self.grants.retry_deferred();
        }
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Halts until the backend has responded, or gives the device up when
    /// `deadline` (pvclock ns) passes first.
    ///
    /// It wakes every [`RENOTIFY_NS`] to look at the ring itself and
    /// notify the backend again: a notification lost on either side then
    /// costs a second, not the whole timeout (a boot loader that hangs
    /// leaves a VPS unbootable). Spurious notifications are harmless to
    /// every backend. The first re-notification is logged, since it means
    /// an event went missing somewhere.
    fn await_responses(&mut self, deadline: u64) -> Result<(), BlkError> {
        let mut renotified = false;
        loop {
            let ring = &*self.ring;
            let slice_end = time::now_ns().saturating_add(RENOTIFY_NS).min(deadline);
            if xenstore::wait_until(slice_end, || ring.has_responses()) {
                return Ok(());
            }
            if time::now_ns() >= deadline {
                return Err(self.fail(BlkError::Timeout));
            }
            if !renotified {
                renotified = true;
                log::warn!(
                    "blkfront: {} request(s) unanswered for 1 s; notifying the backend again",
                    self.ring.in_flight()
                );
            }
            let _ = evtchn::send(self.port);
        }
    }

    /// Gives the device up (the ring is broken or the backend went quiet).
    fn fail(&mut self, err: BlkError) -> BlkError {
        self.abandon();
        err
    }

    /// Sends one request without data (FLUSH_DISKCACHE or WRITE_BARRIER)
    /// and waits for it.
    pub fn flush(&mut self, op: u8) -> Result<(), BlkError> {
        let deadline = time::now_ns().saturating_add(self.timeout_ns);
        let shadow = Shadow {
            op,
            ..Default::default()
        };
        if self.ring.queue_flush(op, shadow).is_err() {
            return Err(if self.ring.broken().is_some() {
                BlkError::Disconnected
            } else {
                BlkError::NoResources
            });
        }
        if self.ring.push() {
            let _ = evtchn::send(self.port);
        }
        let mut status = None;
        while status.is_none() {
            match self.ring.take_responses(|sh, s| {
                if sh.op == op {
                    status = Some(s);
                }
            }) {
                Err(_) => return Err(self.fail(BlkError::Disconnected)),
                Ok(0) => self.await_responses(deadline)?,
                Ok(_) => {}
            }
        }
        match status {
            Some(BLKIF_RSP_OKAY) => Ok(()),
            Some(s) => Err(status_error(s, 0, "flush")),
            None => Err(BlkError::Disconnected),
        }
    }

    /// Gives up on every request in flight: their one-shot grants are
    /// revoked where the backend does not hold them (else deferred).
    fn abandon(&mut self) {
        for sh in self.ring.abandon_all() {
            self.grants.release(&sh.grants);
        }
    }
}

/// Whether a transfer error means the ring can no longer be used.
pub fn is_fatal(e: &BlkError) -> bool {
    fatal(*e)
}

fn status_error(status: i16, sector: u64, what: &'static str) -> BlkError {
    if status == BLKIF_RSP_EOPNOTSUPP {
        BlkError::Unsupported(what)
    } else {
        BlkError::Io {
            lba: sector,
            status,
        }
    }
}
