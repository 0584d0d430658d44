//! blkfront: the PV block frontend, behind [`crate::blkdev::BlockDevice`].
//!
//! Split the way Mini-OS's single file is not:
//! - [`ring`]: the shared ring pages, request ids, indirect pages;
//! - [`plan`]: cutting buffers into per-page segments (pure);
//! - [`io`]: grants and the many-requests-in-flight engine;
//! - [`xenbus`]: negotiation with the backend through xenstore;
//! - this file: the user API ([`BlkFront`]).
//!
//! Negotiated when the backend offers them: multi-page rings
//! (`max-ring-page-order`, up to 4 pages), indirect requests
//! (`feature-max-indirect-segments`, up to 256 segments = 1 MiB per
//! request), persistent grants (`feature-persistent`), flushes
//! (`feature-flush-cache`, else `feature-barrier`); read-only disks
//! (`mode` = "r" or VDISK_READONLY) refuse writes before sending them.
//!
//! Data moves without guest copies: buffers aligned to the sector size are
//! granted to the backend page by page; only misaligned buffers go through
//! a bounce page. [`BlkFront::close`] (also run on drop) takes the device
//! through Closing and Closed back to Initialising, so the next kernel
//! finds its backend waiting in InitWait.

pub mod io;
pub mod plan;
pub mod ring;
pub mod xenbus;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;

use xen_abi::blkif::{BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_WRITE_BARRIER, SECTOR_SIZE};
use xen_abi::event_channel::Port;
use xen_abi::DomId;

use self::io::{DataGrants, Engine, Part};
use self::ring::{Pages, Ring, RingSetupError};
use self::xenbus::FlushMethod;
use crate::blkdev::{check_range, BlkError, BlockDevice, ReadRequest};
use crate::evtchn;
use crate::hypercall::Errno;
use crate::xenbus::{self as xb, Device, XenbusError};
use crate::xenstore::XsError;

/// Choices a caller may make when opening a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Largest ring (log2 of pages) to ask for; capped at
    /// [`xenbus::MAX_RING_ORDER`] and by the backend.
    pub max_ring_order: u32,
    /// Most segments per indirect request (up to 512; 11 or less turns
    /// indirect requests off).
    pub max_indirect_segments: usize,
    /// Offer `feature-persistent` (used when the backend offers it too).
    pub persistent_grants: bool,
    /// Flush with BLKIF_OP_WRITE_BARRIER when the backend offers
    /// `feature-barrier`, even if it offers `feature-flush-cache` too
    /// (which is otherwise preferred): the backend's other durability path.
    pub barrier: bool,
    /// How long to wait for the backend at each step, in ns.
    pub timeout_ns: u64,
}

impl Config {
    /// Applies a `key=value` command-line option that limits what is
    /// negotiated (`persistent=0|1`, `indirect=N`, `ring-order=N`,
    /// `barrier=0|1`). Returns
    /// whether `key` was one of them, or the value when it is not a number.
    pub fn set_option<'a>(&mut self, key: &str, value: &'a str) -> Result<bool, &'a str> {
        let n = || crate::boot::parse_number(value).ok_or(value);
        match key {
            "persistent" => self.persistent_grants = n()? != 0,
            "indirect" => self.max_indirect_segments = n()? as usize,
            "ring-order" => self.max_ring_order = n()? as u32,
            "barrier" => self.barrier = n()? != 0,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_ring_order: xenbus::MAX_RING_ORDER,
            max_indirect_segments: 256,
            persistent_grants: true,
            barrier: false,
            timeout_ns: 30_000_000_000,
        }
    }
}

/// The connected device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info {
    /// The virtual device number (`device/vbd/<vdev>`).
    pub vdev: u32,
    /// The backend's domain.
    pub backend_id: DomId,
    /// Logical sector size in bytes.
    pub sector_size: u32,
    /// Size in logical sectors.
    pub sectors: u64,
    /// Writes are refused.
    pub read_only: bool,
    /// VDISK_* bits.
    pub info: u32,
    /// How flushes are sent.
    pub flush: FlushMethod,
    /// Persistent grants in use.
    pub persistent: bool,
    /// Segments per request (more than 11: indirect requests).
    pub max_segments: usize,
    /// log2 of ring pages.
    pub ring_order: u32,
    /// Request slots in the ring.
    pub ring_size: u32,
}

/// Why a device could not be opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// No such device (name or number) under `device/vbd`.
    NoDevice(String),
    /// xenstore or the xenbus handshake failed.
    Xenbus(XenbusError),
    /// The ring could not be set up.
    Ring(RingSetupError),
    /// The event channel could not be set up.
    Evtchn(Errno),
}

impl From<XenbusError> for OpenError {
    fn from(e: XenbusError) -> Self {
        OpenError::Xenbus(e)
    }
}

impl From<XsError> for OpenError {
    fn from(e: XsError) -> Self {
        OpenError::Xenbus(XenbusError::Xs(e))
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::NoDevice(n) => write!(f, "no block device {n}"),
            OpenError::Xenbus(e) => e.fmt(f),
            OpenError::Ring(RingSetupError::NoMemory) => f.write_str("no memory for the ring"),
            OpenError::Ring(RingSetupError::Grant(e)) => write!(f, "cannot grant the ring: {e}"),
            OpenError::Evtchn(e) => write!(f, "cannot set up the event channel: {e}"),
        }
    }
}

/// Bounce pages for misaligned buffers (64 KiB, allocated on first use).
const BOUNCE_PAGES: usize = 16;

enum State {
    Connected,
    /// A timeout or protocol violation: the ring cannot be trusted.
    Broken,
    Closed,
}

struct Inner {
    ring: Ring,
    grants: DataGrants,
    port: Port,
    flush: FlushMethod,
    state: State,
    bounce: Option<Pages>,
    timeout_ns: u64,
    max_segments: usize,
}

/// A connected PV block device.
pub struct BlkFront {
    dev: Device,
    info: Info,
    inner: RefCell<Inner>,
}

/// Does nothing: the event only ends a halt in [`crate::xenstore::wait_until`].
fn on_event(_port: Port, _ctx: usize) {}

/// Resolves `xvda`-style names and plain numbers to a `device/vbd` id.
pub fn resolve(name: &str) -> Option<String> {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        return Some(name.into());
    }
    xb::vbd_id_from_name(name).map(|n| n.to_string())
}

/// The ids under `device/vbd`.
pub fn list() -> Result<Vec<String>, XsError> {
    xb::list("vbd")
}

impl BlkFront {
    /// Connects to the disk `name` (`xvda`, or a number like `51712`).
    pub fn open(name: &str, cfg: Config) -> Result<BlkFront, OpenError> {
        let id = resolve(name).ok_or_else(|| OpenError::NoDevice(name.into()))?;
        Self::open_id(&id, cfg).map_err(|e| match e {
            OpenError::Xenbus(XenbusError::NoDevice(_)) => OpenError::NoDevice(name.into()),
            e => e,
        })
    }

    /// Connects to `device/vbd/<id>`.
    pub fn open_id(id: &str, cfg: Config) -> Result<BlkFront, OpenError> {
        let dev = Device::open("vbd", id)?;
        let vdev: u32 = id.parse().unwrap_or(0);
        let mut made: Option<(Ring, Port)> = None;
        let connected = xenbus::connect(&dev, cfg.timeout_ns, cfg.max_indirect_segments, |offer| {
            let order = xenbus::ring_order(offer, cfg.max_ring_order);
            // The handle field is 16 bits; backends do not use it.
            let ring = Ring::new(order, vdev as u16, dev.backend_id).map_err(OpenError::Ring)?;
            let port = match evtchn::alloc_unbound(dev.backend_id) {
                Ok(p) => p,
                Err(e) => {
                    let mut ring = ring;
                    ring.teardown();
                    return Err(OpenError::Evtchn(e));
                }
            };
            let refs: Vec<_> = ring.refs().to_vec();
            made = Some((ring, port));
            evtchn::bind(port, on_event, 0).map_err(OpenError::Evtchn)?;
            xenbus::publish(&dev, &refs, order, port, cfg.persistent_grants)?;
            Ok(())
        });
        let disk = match connected {
            Ok(d) => d,
            Err(e) => {
                // Whatever we published is withdrawn; grants the backend
                // may have mapped are leaked rather than reused.
                if let Some((mut ring, port)) = made {
                    let _ = dev.close(cfg.timeout_ns.min(xb::REINIT_WAIT_NS));
                    ring.teardown();
                    let _ = evtchn::close(port);
                }
                return Err(e);
            }
        };
        let Some((mut ring, port)) = made else {
            return Err(OpenError::Xenbus(XenbusError::BackendFailed(
                xb::XenbusState::Connected,
            )));
        };
        let mut disk = disk;
        if cfg.barrier && disk.flush == FlushMethod::FlushCache {
            // parse_disk prefers flush-cache; a barrier was asked for by name.
            let offered = dev.backend_read("feature-barrier").ok().flatten();
            if offered.as_deref().map(str::trim) == Some("1") {
                disk.flush = FlushMethod::Barrier;
            }
        }
        let persistent = cfg.persistent_grants && disk.backend_persistent;
        ring.set_indirect_writable(persistent);
        let info = Info {
            vdev,
            backend_id: dev.backend_id,
            sector_size: disk.sector_size,
            sectors: disk.sectors_512.saturating_mul(SECTOR_SIZE) / disk.sector_size as u64,
            read_only: disk.read_only,
            info: disk.info,
            flush: disk.flush,
            persistent,
            max_segments: disk.max_segments,
            ring_order: ring.order(),
            ring_size: ring.size(),
        };
        log::debug!("blkfront: {} connected: {info:?}", dev.nodename);
        let inner = Inner {
            ring,
            grants: DataGrants::new(dev.backend_id, persistent),
            port,
            flush: disk.flush,
            state: State::Connected,
            bounce: None,
            timeout_ns: cfg.timeout_ns,
            max_segments: disk.max_segments,
        };
        Ok(BlkFront {
            dev,
            info,
            inner: RefCell::new(inner),
        })
    }

    /// What was negotiated.
    pub fn info(&self) -> Info {
        self.info
    }

    /// The device's xenstore directory (`device/vbd/<vdev>`).
    pub fn nodename(&self) -> &str {
        &self.dev.nodename
    }

    /// Takes the device through Closing and Closed (and back to
    /// Initialising for the next kernel), then ends every grant and frees
    /// the ring. Later operations fail with [`BlkError::Disconnected`].
    pub fn close(&self) -> Result<(), XenbusError> {
        let mut inner = self.inner.borrow_mut();
        if matches!(inner.state, State::Closed) {
            return Ok(());
        }
        let r = self.dev.close(inner.timeout_ns);
        inner.state = State::Closed;
        // The backend unmapped everything on its way to Closed; grants it
        // still holds (a backend that never closed) stay and their pages
        // are leaked.
        let held = inner.grants.teardown();
        if held > 0 {
            log::warn!(
                "blkfront: {}: backend still holds {held} grants",
                self.dev.nodename
            );
        }
        inner.ring.teardown();
        if let Some(b) = inner.bounce.take() {
            if held == 0 {
                // SAFETY: bounce pages are granted one-shot or through the
                // persistent cache, and every such grant was just ended
                // (`held == 0`); otherwise the pages are leaked instead.
                unsafe { b.free() };
            }
        }
        let _ = evtchn::close(inner.port);
        xenbus::unpublish(&self.dev, inner.ring.order());
        r
    }

    fn lba_of(&self, sector_512: u64) -> u64 {
        sector_512 / (self.info.sector_size as u64 / SECTOR_SIZE)
    }

    fn to_sector_512(&self, lba: u64) -> u64 {
        lba * (self.info.sector_size as u64 / SECTOR_SIZE)
    }

    /// Runs a transfer of whole-sector, sector-aligned parts.
    fn transfer(&self, inner: &mut Inner, write: bool, parts: &[Part]) -> Result<(), BlkError> {
        match inner.state {
            State::Connected => {}
            _ => return Err(BlkError::Disconnected),
        }
        let Inner {
            ring,
            grants,
            port,
            timeout_ns,
            max_segments,
            ..
        } = inner;
        let mut engine = Engine {
            ring,
            grants,
            port: *port,
            max_segs: *max_segments,
            timeout_ns: *timeout_ns,
        };
        let r = engine.transfer(write, parts);
        if let Err(e) = &r {
            if io::is_fatal(e) {
                log::warn!("blkfront: {}: {e}; device unusable", self.dev.nodename);
                inner.state = State::Broken;
            }
        }
        r.map_err(|e| match e {
            BlkError::Io { lba, status } => BlkError::Io {
                lba: self.lba_of(lba),
                status,
            },
            e => e,
        })
    }

    fn aligned(&self, buf_addr: usize) -> bool {
        buf_addr.is_multiple_of(self.info.sector_size as usize)
    }

    /// Moves a misaligned buffer through the bounce pages, a chunk at a
    /// time (the only path on which the guest copies data).
    /// One read or write of `buf` at `lba`: straight from/to the caller's
    /// pages when they are aligned for the backend, else through the bounce
    /// pages.
    fn rw(&self, lba: u64, mut buf: BufRef<'_>) -> Result<(), BlkError> {
        let (addr, write) = match &mut buf {
            BufRef::Read(b) => (b.as_mut_ptr() as usize, false),
            BufRef::Write(b) => (b.as_ptr() as usize, true),
        };
        check_range(lba, buf.len(), self.info.sector_size, self.info.sectors)?;
        if write && self.info.read_only {
            return Err(BlkError::ReadOnly);
        }
        if buf.len() == 0 {
            return Ok(());
        }
        let mut inner = self.inner.borrow_mut();
        if self.aligned(addr) {
            let part = Part {
                sector: self.to_sector_512(lba),
                addr,
                len: buf.len(),
            };
            self.transfer(&mut inner, write, &[part])
        } else {
            self.bounced(&mut inner, lba, buf)
        }
    }

    fn bounced(&self, inner: &mut Inner, lba: u64, mut buf: BufRef<'_>) -> Result<(), BlkError> {
        if inner.bounce.is_none() {
            inner.bounce = Some(Pages::alloc(BOUNCE_PAGES).ok_or(BlkError::NoResources)?);
        }
        let (addr, room) = match &inner.bounce {
            Some(b) => (b.addr(), b.len()),
            None => return Err(BlkError::NoResources),
        };
        let ss = self.info.sector_size as usize;
        let chunk = room - room % ss;
        let len = buf.len();
        let mut done = 0;
        while done < len {
            let n = chunk.min(len - done);
            let part = [Part {
                sector: self.to_sector_512(lba + (done / ss) as u64),
                addr,
                len: n,
            }];
            match &mut buf {
                BufRef::Write(src) => {
                    if let Some(b) = &inner.bounce {
                        b.write(0, &src[done..done + n]);
                    }
                    self.transfer(inner, true, &part)?;
                }
                BufRef::Read(dst) => {
                    self.transfer(inner, false, &part)?;
                    if let Some(b) = &inner.bounce {
                        b.read(0, &mut dst[done..done + n]);
                    }
                }
            }
            done += n;
        }
        Ok(())
    }
}

/// A misaligned buffer for [`BlkFront::bounced`].
enum BufRef<'a> {
    /// Sectors are read into it.
    Read(&'a mut [u8]),
    /// Sectors are written from it.
    Write(&'a [u8]),
}

impl BufRef<'_> {
    fn len(&self) -> usize {
        match self {
            BufRef::Read(b) => b.len(),
            BufRef::Write(b) => b.len(),
        }
    }
}

impl BlockDevice for BlkFront {
    fn sector_size(&self) -> u32 {
        self.info.sector_size
    }

    fn sector_count(&self) -> u64 {
        self.info.sectors
    }

    fn read_only(&self) -> bool {
        self.info.read_only
    }

    fn read_sectors(&self, lba: u64, buf: &mut [u8]) -> Result<(), BlkError> {
        self.rw(lba, BufRef::Read(buf))
    }

    fn write_sectors(&self, lba: u64, buf: &[u8]) -> Result<(), BlkError> {
        self.rw(lba, BufRef::Write(buf))
    }

    fn flush(&self) -> Result<(), BlkError> {
        let mut inner = self.inner.borrow_mut();
        match inner.state {
            State::Connected => {}
            _ => return Err(BlkError::Disconnected),
        }
        let op = match inner.flush {
            FlushMethod::FlushCache => BLKIF_OP_FLUSH_DISKCACHE,
            FlushMethod::Barrier => BLKIF_OP_WRITE_BARRIER,
            FlushMethod::None => return Ok(()),
        };
        let Inner {
            ring,
            grants,
            port,
            timeout_ns,
            max_segments,
            ..
        } = &mut *inner;
        let mut engine = Engine {
            ring,
            grants,
            port: *port,
            max_segs: *max_segments,
            timeout_ns: *timeout_ns,
        };
        let r = engine.flush(op);
        match r {
            Err(BlkError::Unsupported(_)) => {
                // Not offered after all: later flushes report it at once.
                inner.flush = FlushMethod::None;
                Err(BlkError::Unsupported("flush"))
            }
            Err(e) if io::is_fatal(&e) => {
                inner.state = State::Broken;
                Err(e)
            }
            r => r,
        }
    }

    fn read_many(&self, reqs: &mut [ReadRequest<'_>]) -> Result<(), BlkError> {
        let ss = self.info.sector_size;
        let mut parts = Vec::with_capacity(reqs.len());
        for r in reqs.iter() {
            check_range(r.lba, r.buf.len(), ss, self.info.sectors)?;
        }
        let mut first_err = None;
        let mut inner = self.inner.borrow_mut();
        for r in reqs.iter_mut() {
            if r.buf.is_empty() {
                continue;
            }
            if self.aligned(r.buf.as_ptr() as usize) {
                parts.push(Part {
                    sector: self.to_sector_512(r.lba),
                    addr: r.buf.as_mut_ptr() as usize,
                    len: r.buf.len(),
                });
            } else if let Err(e) = self.bounced(&mut inner, r.lba, BufRef::Read(&mut *r.buf)) {
                first_err.get_or_insert(e);
            }
        }
        let r = self.transfer(&mut inner, false, &parts);
        match first_err {
            Some(e) => Err(e),
            None => r,
        }
    }
}

impl Drop for BlkFront {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::warn!("blkfront: closing {}: {e}", self.dev.nodename);
        }
    }
}
