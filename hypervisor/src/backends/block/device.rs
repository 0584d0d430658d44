//! One virtual block device: its state, its control thread (xenbus
//! handshake and ring consumer) and its I/O workers.
//!
//! Threads:
//! - the control thread waits for a wake-up (the frontend's event channel
//!   via [`crate::xen::sink::EventSink::notify`], a watch on the frontend's `state` node, or
//!   responses freeing ring space), runs the xenbus state machine, and
//!   takes requests off the ring (with RING_FINAL_CHECK_FOR_REQUESTS);
//! - a few worker threads execute requests (map grants, preadv/pwritev
//!   straight into guest pages, unmap) and push each response with the
//!   notify check, so many requests are in flight at once.
//!
//! Nothing here trusts guest data: a bad request gets an error response; a
//! ring whose producer index is impossible closes this device only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::JoinHandle;

use xen_abi::blkif::{self, Protocol, Request, Response, Segment};
use xen_abi::ring::{BackRing, RingLayout, RingMemory};

use super::config::DiskSpec;
use super::io::{Engine, SyncDisk};
use super::metrics::{self, Metrics};
use super::request::{self, Kind, Limits, Parsed, Transfer};
use super::xenbus::{self, Features, RingInfo};
use crate::backends::transport::control::{self, Driver, Waker};
use crate::backends::transport::ring::{self, GuestRingPages};
use crate::backends::transport::xenbus::{ConnectError, Xenbus};
use crate::seccomp::{self, ThreadKind};
use crate::xen::sink::{EventSink, SinkId};
use crate::xen::gnttab::{GrantError, MappedGrant};
use crate::xen::Domain;
use crate::xenstore::Xenstored;

/// Worker threads per device: enough to keep several requests in flight
/// with synchronous I/O.
const WORKERS: usize = 4;
/// Most grants kept mapped for a persistent-grant frontend (Linux's
/// xen_blkif_max_pgrants default).
const MAX_PERSISTENT_GRANTS: usize = 1056;

/// A live connection to the frontend's ring.
struct Connection {
    ring: Mutex<BackRing<GuestRingPages>>,
    protocol: Protocol,
    port: u32,
    ring_grants: Mutex<Vec<MappedGrant>>,
    /// Grants kept mapped (feature-persistent), by reference.
    persistent: Option<Mutex<HashMap<u32, MappedGrant>>>,
    /// Requests taken off the ring and not yet answered.
    in_flight: Mutex<u32>,
    drained: Condvar,
    /// Set when the device is closing: responses are no longer pushed.
    closed: AtomicBool,
}

impl Connection {
    fn lock_ring(&self) -> MutexGuard<'_, BackRing<GuestRingPages>> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn in_flight(&self) -> MutexGuard<'_, u32> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until no request is in flight.
    fn drain(&self) {
        let mut n = self.in_flight();
        while *n > 0 {
            n = self.drained.wait(n).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A request handed to a worker.
struct Job {
    conn: Arc<Connection>,
    parsed: Parsed,
}

/// State shared by the device's threads.
struct Shared {
    name: String,
    #[cfg_attr(not(test), allow(dead_code))]
    devid: u32,
    dom: Weak<Domain>,
    disk: Arc<SyncDisk>,
    limits: Limits,
    persistent: bool,
    metrics: Metrics,
    sink: OnceLock<SinkId>,
    waker: Arc<Waker>,
}

/// A virtual block device backend.
pub struct BlockDevice {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Why a device could not be created.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The image.
    #[error(transparent)]
    Disk(#[from] super::io::DiskError),
    /// Xenstore.
    #[error("xenstore: {0}")]
    Store(#[from] crate::xenstore::XsError),
    /// A thread could not be started.
    #[error("cannot start the backend thread: {0}")]
    Thread(#[source] std::io::Error),
}

impl BlockDevice {
    /// Serves `disk` (the image of `spec`, opened with its access), writes
    /// the toolstack's xenstore nodes, registers the device with `dom`,
    /// publishes the features and reaches InitWait (all before the guest
    /// runs), then starts the threads.
    pub fn create(dom: &Arc<Domain>, xs: &Arc<Xenstored>, spec: &DiskSpec, disk: Arc<SyncDisk>) -> Result<Arc<BlockDevice>, DeviceError> {
        let domid = dom.info.domid;
        let paths = xenbus::paths(domid, spec.devid);
        let physical = if disk.is_block_device() { block_device_numbers(&spec.target) } else { None };
        xenbus::write_toolstack_nodes(xs, domid, spec, &paths, physical)?;

        let writable = !spec.readonly;
        let sectors = disk.size() / blkif::SECTOR_SIZE;
        let limits = Limits {
            sectors,
            sector_size: disk.logical_sector_size(),
            readonly: spec.readonly,
            flush: writable,
            barrier: writable,
            discard: writable && spec.discard,
            max_indirect_segments: xenbus::MAX_INDIRECT_SEGMENTS,
        };
        let mut info = 0;
        if spec.readonly {
            info |= blkif::VDISK_READONLY;
        }
        if spec.cdrom {
            info |= blkif::VDISK_CDROM;
        }
        let features = Features {
            sectors,
            info,
            sector_size: disk.logical_sector_size(),
            physical_sector_size: disk.physical_sector_size(),
            flush: writable,
            discard_granularity: limits.discard.then(|| disk.physical_sector_size()),
            persistent: true,
            max_indirect_segments: xenbus::MAX_INDIRECT_SEGMENTS,
            max_ring_page_order: xenbus::MAX_RING_PAGE_ORDER,
        };
        let shared = Arc::new(Shared {
            name: format!("vbd {} ({})", spec.vdev, spec.devid),
            devid: spec.devid,
            dom: Arc::downgrade(dom),
            disk,
            limits,
            persistent: features.persistent,
            metrics: Metrics::default(),
            sink: OnceLock::new(),
            waker: Arc::new(Waker::default()),
        });
        let dev = Arc::new(BlockDevice { shared: shared.clone(), threads: Mutex::new(Vec::new()) });
        let _ = shared.sink.set(dom.register_sink(dev.clone()));

        let mut bus = Xenbus::new(xs.clone(), paths);
        xenbus::publish(&mut bus, &features)?;
        log::info!(
            "{}: {} ({} sectors, {}{})",
            shared.name,
            spec.target.display(),
            sectors,
            if spec.readonly { "read-only" } else { "read-write" },
            if spec.cdrom { ", cdrom" } else { "" }
        );

        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        for i in 0..WORKERS {
            let (sh, rx) = (shared.clone(), rx.clone());
            let t = std::thread::Builder::new()
                .name(format!("blk{}-io{i}", spec.devid))
                .spawn(move || {
                    seccomp::confine(ThreadKind::BlockIo);
                    worker(&sh, &rx);
                })
                .map_err(DeviceError::Thread)?;
            threads.push(t);
        }
        let sh = shared.clone();
        let ctl = std::thread::Builder::new()
            .name(format!("blk{}", spec.devid))
            .spawn(move || {
                seccomp::confine(ThreadKind::BlockControl);
                control::run(&mut BlockControl { sh: sh.clone(), jobs: tx }, &sh.waker.clone(), bus);
            })
            .map_err(DeviceError::Thread)?;
        threads.push(ctl);
        *dev.threads.lock().unwrap_or_else(|e| e.into_inner()) = threads;
        Ok(dev)
    }

    /// The device's name for logs ("vbd xvda (51712)").
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The virtual device number.
    #[cfg(test)]
    pub fn devid(&self) -> u32 {
        self.shared.devid
    }

    /// The counters so far.
    pub fn metrics(&self) -> metrics::Snapshot {
        self.shared.metrics.snapshot()
    }

    /// Stops the threads (disconnecting and unmapping everything) and waits for them.
    pub fn stop(&self) {
        self.shared.waker.kick(|w| w.stop = true);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
        // The domain no longer reaches this device (nor keeps it alive).
        if let (Some(dom), Some(&id)) = (self.shared.dom.upgrade(), self.shared.sink.get()) {
            dom.unregister_sink(id);
        }
    }
}

impl EventSink for BlockDevice {
    fn notify(&self, _dom: &Domain, _port: u32) {
        self.shared.waker.kick(|w| w.ring = true);
    }

    /// The control thread sees the domain gone and disconnects.
    fn domain_stopped(&self, _dom: &Domain) {
        self.shared.waker.kick(|w| w.ring = true);
    }
}

/// `(major, minor)` of a block device, for `physical-device`.
fn block_device_numbers(path: &std::path::Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let rdev = std::fs::metadata(path).ok()?.rdev();
    Some((libc::major(rdev), libc::minor(rdev)))
}

/// The control thread's side of the device: the [`Driver`] of the
/// generic control loop, which hands requests to the workers.
struct BlockControl {
    sh: Arc<Shared>,
    jobs: mpsc::Sender<Job>,
}

impl Driver for BlockControl {
    type Conn = Arc<Connection>;

    fn name(&self) -> &str {
        &self.sh.name
    }

    fn domain(&self) -> Option<Arc<Domain>> {
        self.sh.dom.upgrade()
    }

    fn connect(&mut self, dom: &Arc<Domain>, bus: &Xenbus) -> Result<Arc<Connection>, ConnectError> {
        connect(&self.sh, dom, bus)
    }

    fn describe(&self, c: &Arc<Connection>) -> String {
        format!(
            "{} ring of {} page(s), {}persistent grants",
            c.protocol.name(),
            c.ring_grants.lock().map(|g| g.len()).unwrap_or(0),
            if c.persistent.is_some() { "" } else { "no " }
        )
    }

    fn disconnect(&mut self, dom: &Domain, c: Arc<Connection>) {
        disconnect(&self.sh, dom, &mut Some(c));
    }

    fn service(&mut self, dom: &Arc<Domain>, c: &Arc<Connection>) -> Result<(), String> {
        let submit = |job| self.jobs.send(job).map_err(|mpsc::SendError(job)| job);
        consume(&self.sh, dom, c, &submit)
    }
}

/// Maps the frontend's ring and binds its event channel.
fn connect(sh: &Shared, dom: &Arc<Domain>, bus: &Xenbus) -> Result<Arc<Connection>, ConnectError> {
    let RingInfo { order, refs, port, protocol, persistent } = xenbus::read_ring_info(bus, xenbus::MAX_RING_PAGE_ORDER)?;
    let grants = ring::map_ring(dom, &refs, |i| format!("ring-ref{i}"))?;
    let sink = *sh.sink.get().ok_or(ConnectError::NoDomain)?;
    if let Err(e) = control::bind_port(dom, sink, port) {
        ring::unmap_all(dom, grants);
        return Err(e);
    }
    let layout = RingLayout::with_order(order, protocol.slot_size()).expect("orders up to 4 hold many slots");
    let pages = GuestRingPages::over(dom.ram.clone(), &grants);
    // Attach where the ring stands: a frontend reconnecting to a live ring
    // (rare) keeps its indices; a fresh one has zeros there.
    let start = pages.load_index(xen_abi::ring::RSP_PROD);
    Ok(Arc::new(Connection {
        ring: Mutex::new(BackRing::attach(pages, layout, start)),
        protocol,
        port,
        ring_grants: Mutex::new(grants),
        persistent: (persistent && sh.persistent).then(|| Mutex::new(HashMap::new())),
        in_flight: Mutex::new(0),
        drained: Condvar::new(),
        closed: AtomicBool::new(false),
    }))
}

/// Waits for requests in flight, then releases the ring and every grant.
fn disconnect(sh: &Shared, dom: &Domain, conn: &mut Option<Arc<Connection>>) {
    let Some(c) = conn.take() else { return };
    c.drain();
    c.closed.store(true, Ordering::SeqCst);
    if let Some(p) = &c.persistent {
        ring::unmap_all(dom, p.lock().unwrap_or_else(|e| e.into_inner()).drain().map(|(_, m)| m));
    }
    ring::unmap_all(dom, c.ring_grants.lock().unwrap_or_else(|e| e.into_inner()).drain(..));
    if let Some(&sink) = sh.sink.get() {
        control::unbind_port(dom, sink, c.port);
    }
    log::debug!("{}: disconnected ({} grants of the domain still pinned)", sh.name, dom.gnttab.pinned());
}

/// Takes every available request off the ring, answers those that fail
/// the checks, and hands the others to `submit` (the workers; it gives a
/// job back if it cannot take it). Barriers run here, after the ring
/// drains. Errors: the ring is broken.
fn consume(sh: &Shared, dom: &Arc<Domain>, c: &Arc<Connection>, submit: &dyn Fn(Job) -> Result<(), Job>) -> Result<(), String> {
    let slot = c.protocol.slot_size();
    let mut buf = vec![0u8; slot];
    loop {
        let mut batch = Vec::new();
        {
            let mut ring = c.lock_ring();
            let mut n = ring.unconsumed_requests().map_err(|e| format!("frontend broke the ring: {e}"))?;
            if n == 0 {
                if !ring.final_check_for_requests().map_err(|e| format!("frontend broke the ring: {e}"))? {
                    return Ok(());
                }
                n = ring.unconsumed_requests().map_err(|e| format!("frontend broke the ring: {e}"))?;
            }
            for _ in 0..n {
                ring.take_request(&mut buf);
                // A slot always holds a full request; decode copies it once.
                if let Some(req) = Request::decode(c.protocol, &buf) {
                    batch.push(req);
                }
            }
        }
        for req in batch {
            sh.metrics.started();
            *c.in_flight() += 1;
            match request::parse(&req, &sh.limits) {
                Err(e) => {
                    log::debug!("{}: request {:#x} (op {}) refused: {e}", sh.name, req.id(), req.operation());
                    finish(sh, dom, c, req.id(), req.operation(), Err(e.status()), None);
                }
                Ok(parsed) if is_barrier(&parsed) => {
                    // WRITE_BARRIER: everything before it completes first,
                    // nothing after it starts until it is done. It runs on
                    // a worker like any request: this (control) thread's
                    // seccomp filter allows no I/O (a guest's barrier once
                    // made it call pwritev and killed the process).
                    c.in_flight_except_self_drain();
                    match submit(Job { conn: c.clone(), parsed }) {
                        Ok(()) => c.idle_drain(),
                        Err(job) => finish(sh, dom, c, job.parsed.id, job.parsed.operation, Err(blkif::BLKIF_RSP_ERROR), None),
                    }
                }
                Ok(parsed) => {
                    if let Err(job) = submit(Job { conn: c.clone(), parsed }) {
                        finish(sh, dom, c, job.parsed.id, job.parsed.operation, Err(blkif::BLKIF_RSP_ERROR), None);
                    }
                }
            }
        }
    }
}

impl Connection {
    /// Waits until this (barrier) request is the only one in flight.
    fn in_flight_except_self_drain(&self) {
        let mut n = self.in_flight();
        while *n > 1 {
            n = self.drained.wait(n).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Waits until nothing is in flight (the barrier handed to a worker is done).
    fn idle_drain(&self) {
        let mut n = self.in_flight();
        while *n > 0 {
            n = self.drained.wait(n).unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn is_barrier(p: &Parsed) -> bool {
    matches!(p.kind, Kind::Flush { drain: true } | Kind::Write { drain: true, .. })
}

/// A worker: executes jobs until the control thread goes away.
fn worker(sh: &Arc<Shared>, rx: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(j) => j,
            Err(_) => return,
        };
        let Some(dom) = sh.dom.upgrade() else {
            finish_without_domain(&job.conn);
            continue;
        };
        run(sh, &dom, job);
    }
}

/// Executes a job and answers it.
fn run(sh: &Shared, dom: &Domain, job: Job) {
    let (id, op) = (job.parsed.id, job.parsed.operation);
    let (status, m) = execute(sh, dom, &job.conn, job.parsed);
    finish(sh, dom, &job.conn, id, op, status, m);
}

/// A frontend's ring served on the caller's thread: the request path of
/// the control thread and the workers (take each request off the ring,
/// check it, map its grants, do the I/O, push the response), without
/// xenbus, event channels or threads. The fuzz target drives it with a
/// made-up ring and grant table in a domain's memory.
pub struct RingServer {
    sh: Shared,
    dom: Arc<Domain>,
    conn: Option<Arc<Connection>>,
}

impl RingServer {
    /// Serves the ring on `pages` (guest addresses, in ring order; a power
    /// of two of them, at most 16) in `protocol`'s ABI, over `disk` with
    /// `limits`; `persistent` caches grant mappings as feature-persistent
    /// does. The ring's indices are taken as they stand.
    pub fn new(dom: &Arc<Domain>, disk: SyncDisk, limits: Limits, pages: Vec<u64>, protocol: Protocol, persistent: bool) -> Option<Self> {
        let order = pages.len().trailing_zeros();
        if !pages.len().is_power_of_two() || pages.len() > 1 << xenbus::MAX_RING_PAGE_ORDER {
            return None;
        }
        let layout = RingLayout::with_order(order, protocol.slot_size())?;
        let pages = GuestRingPages::new(dom.ram.clone(), pages);
        let start = pages.load_index(xen_abi::ring::RSP_PROD);
        let sh = Shared {
            name: "vbd fuzz".into(),
            devid: 0,
            dom: Arc::downgrade(dom),
            disk: Arc::new(disk),
            limits,
            persistent,
            metrics: Metrics::default(),
            sink: OnceLock::new(),
            waker: Arc::new(Waker::default()),
        };
        let conn = Arc::new(Connection {
            ring: Mutex::new(BackRing::attach(pages, layout, start)),
            protocol,
            port: 0,
            ring_grants: Mutex::new(Vec::new()),
            persistent: persistent.then(|| Mutex::new(HashMap::new())),
            in_flight: Mutex::new(0),
            drained: Condvar::new(),
            closed: AtomicBool::new(false),
        });
        Some(RingServer { sh, dom: dom.clone(), conn: Some(conn) })
    }

    /// Answers every request on the ring. Errors: the ring is broken (the
    /// device would close).
    pub fn serve(&self) -> Result<(), String> {
        let Some(c) = &self.conn else { return Ok(()) };
        consume(&self.sh, &self.dom, c, &|job| {
            run(&self.sh, &self.dom, job);
            Ok(())
        })
    }

    /// Requests taken and not yet answered (0 between calls to `serve`).
    pub fn in_flight(&self) -> u32 {
        self.conn.as_ref().map_or(0, |c| *c.in_flight())
    }

    /// The counters so far.
    pub fn metrics(&self) -> metrics::Snapshot {
        self.sh.metrics.snapshot()
    }
}

impl Drop for RingServer {
    /// Unmaps the grants it still holds, as a disconnection does.
    fn drop(&mut self) {
        disconnect(&self.sh, &self.dom, &mut self.conn);
    }
}

fn finish_without_domain(c: &Connection) {
    let mut n = c.in_flight();
    *n = n.saturating_sub(1);
    c.drained.notify_all();
}

/// The outcome of executing a request: OK with what to count, or a status.
type Outcome = (Result<(), i16>, Option<(metrics::Op, u64)>);

/// Pushes the response (with the notify check), counts it, and wakes the
/// control thread if requests wait for ring space.
fn finish(
    sh: &Shared,
    dom: &Domain,
    c: &Connection,
    id: u64,
    operation: u8,
    status: Result<(), i16>,
    m: Option<(metrics::Op, u64)>,
) {
    match (status, m) {
        (Ok(()), Some((op, bytes))) => sh.metrics.completed(op, bytes),
        (Ok(()), None) => sh.metrics.completed(metrics::Op::Flush, 0),
        (Err(s), _) => sh.metrics.failed(s == blkif::BLKIF_RSP_EOPNOTSUPP),
    }
    let rsp = Response { id, operation, status: status.err().unwrap_or(blkif::BLKIF_RSP_OKAY) };
    let mut bytes = [0u8; 16];
    rsp.encode(c.protocol, &mut bytes);
    let (notify, more) = {
        let mut ring = c.lock_ring();
        if c.closed.load(Ordering::SeqCst) {
            (false, false)
        } else {
            ring.put_response(&bytes[..c.protocol.response_size()]);
            let notify = ring.push_responses();
            (notify, ring.unconsumed_requests().is_ok_and(|n| n > 0))
        }
    };
    if notify {
        sh.metrics.notified();
        if let Some(&sink) = sh.sink.get() {
            dom.raise_from(sink, c.port);
        }
    }
    if more {
        sh.waker.kick(|w| w.ring = true);
    }
    let mut n = c.in_flight();
    *n = n.saturating_sub(1);
    c.drained.notify_all();
}

/// Runs one checked request.
fn execute(sh: &Shared, dom: &Domain, c: &Connection, p: Parsed) -> Outcome {
    let err = |s| (Err(s), None);
    match p.kind {
        Kind::Read(t) => match transfer(sh, dom, c, &t, false) {
            Ok(()) => (Ok(()), Some((metrics::Op::Read, t.bytes()))),
            Err(s) => err(s),
        },
        Kind::Write { transfer: t, flush, .. } => {
            if let Err(s) = transfer(sh, dom, c, &t, true) {
                return err(s);
            }
            if flush {
                if let Err(e) = sh.disk.flush() {
                    log::warn!("{}: flush: {e}", sh.name);
                    return err(blkif::BLKIF_RSP_ERROR);
                }
            }
            (Ok(()), Some((metrics::Op::Write, t.bytes())))
        }
        Kind::Flush { .. } => match sh.disk.flush() {
            Ok(()) => (Ok(()), Some((metrics::Op::Flush, 0))),
            Err(e) => {
                log::warn!("{}: flush: {e}", sh.name);
                err(blkif::BLKIF_RSP_ERROR)
            }
        },
        Kind::Discard { sector, count } => match sh.disk.discard(sector * blkif::SECTOR_SIZE, count * blkif::SECTOR_SIZE) {
            Ok(()) => (Ok(()), Some((metrics::Op::Discard, 0))),
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => err(blkif::BLKIF_RSP_EOPNOTSUPP),
            Err(e) => {
                log::warn!("{}: discard: {e}", sh.name);
                err(blkif::BLKIF_RSP_ERROR)
            }
        },
        Kind::Indirect { write, sector, nr_segments, pages } => {
            let segments = match read_indirect(dom, &pages, nr_segments as usize) {
                Ok(s) => s,
                Err(e) => {
                    log::debug!("{}: indirect request {:#x}: {e}", sh.name, p.id);
                    return err(blkif::BLKIF_RSP_ERROR);
                }
            };
            let t = match request::indirect_transfer(sector, &segments, &sh.limits) {
                Ok(t) => t,
                Err(e) => {
                    log::debug!("{}: indirect request {:#x} refused: {e}", sh.name, p.id);
                    return err(e.status());
                }
            };
            match transfer(sh, dom, c, &t, write) {
                Ok(()) => (Ok(()), Some((if write { metrics::Op::Write } else { metrics::Op::Read }, t.bytes()))),
                Err(s) => err(s),
            }
        }
    }
}

/// Reads the segment descriptors from an indirect request's granted pages.
fn read_indirect(dom: &Domain, pages: &[u32], n: usize) -> Result<Vec<Segment>, GrantError> {
    let mut segments = Vec::with_capacity(n);
    for &gref in pages {
        let m = dom.gnttab.map(&dom.ram, gref, false, 0)?;
        let count = (n - segments.len()).min(blkif::SEGS_PER_INDIRECT_FRAME);
        let mut raw = vec![0u8; count * blkif::SEGMENT_SIZE];
        let ok = dom.ram.read(m.gpa(), &mut raw).is_ok();
        dom.gnttab.unmap(&dom.ram, m);
        if !ok {
            return Err(GrantError::Revoked { gref });
        }
        segments.extend(raw.chunks_exact(blkif::SEGMENT_SIZE).map(Segment::decode));
    }
    Ok(segments)
}

/// A grant used by one transfer: held persistently or mapped for it alone.
enum Held {
    Persistent(u64),
    Mapped(MappedGrant),
}

/// Moves a transfer's data: maps the segments' grants (re-checking
/// persistent ones), then one preadv/pwritev for the whole contiguous disk
/// range with guest-adjacent segments merged, then unmaps.
fn transfer(sh: &Shared, dom: &Domain, c: &Connection, t: &Transfer, write: bool) -> Result<(), i16> {
    // A read from disk writes the guest page, and the other way round.
    let guest_writes = !write;
    let mut held = Vec::with_capacity(t.segments.len());
    let mut failed = None;
    for s in &t.segments {
        match hold(dom, c, s.gref, guest_writes) {
            Ok(h) => held.push(h),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let result = match failed {
        Some(e) => {
            log::debug!("{}: grant: {e}", sh.name);
            Err(blkif::BLKIF_RSP_ERROR)
        }
        None => {
            let mut iov: Vec<(u64, usize)> = Vec::with_capacity(held.len());
            for (s, h) in t.segments.iter().zip(&held) {
                let base = match h {
                    Held::Persistent(gpa) => *gpa,
                    Held::Mapped(m) => m.gpa(),
                };
                let gpa = base + u64::from(s.first_sect) * blkif::SECTOR_SIZE;
                let len = (usize::from(s.last_sect - s.first_sect) + 1) * blkif::SECTOR_SIZE as usize;
                match iov.last_mut() {
                    Some(last) if last.0 + last.1 as u64 == gpa => last.1 += len,
                    _ => iov.push((gpa, len)),
                }
            }
            let offset = t.sector * blkif::SECTOR_SIZE;
            let r = if write { sh.disk.write(&dom.ram, offset, &iov) } else { sh.disk.read(&dom.ram, offset, &iov) };
            r.map_err(|e| {
                log::warn!("{}: {} at sector {}: {e}", sh.name, if write { "write" } else { "read" }, t.sector);
                blkif::BLKIF_RSP_ERROR
            })
        }
    };
    for h in held {
        if let Held::Mapped(m) = h {
            release(dom, c, m);
        }
    }
    result
}

/// Maps `gref` for one transfer, through the persistent cache if in use.
fn hold(dom: &Domain, c: &Connection, gref: u32, writable: bool) -> Result<Held, GrantError> {
    let Some(cache) = &c.persistent else {
        return dom.gnttab.map(&dom.ram, gref, writable, 0).map(Held::Mapped);
    };
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(m) = cache.get(&gref) {
        match dom.gnttab.check(&dom.ram, m) {
            Ok(()) if m.writable() || !writable => return Ok(Held::Persistent(m.gpa())),
            _ => {
                // Revoked or changed since it was cached: drop it and map afresh.
                let m = cache.remove(&gref).expect("present");
                log::debug!("persistent grant {} changed; mapping it again", m.gref());
                dom.gnttab.unmap(&dom.ram, m);
            }
        }
    }
    // Persistent grants are mapped writable (blkif.h: the frontend allows
    // it); a read-only grant falls back to a one-off read-only mapping.
    if cache.len() < MAX_PERSISTENT_GRANTS {
        if let Ok(m) = dom.gnttab.map(&dom.ram, gref, true, 0) {
            let gpa = m.gpa();
            cache.insert(gref, m);
            return Ok(Held::Persistent(gpa));
        }
    }
    dom.gnttab.map(&dom.ram, gref, writable, 0).map(Held::Mapped)
}

fn release(dom: &Domain, _c: &Connection, m: MappedGrant) {
    dom.gnttab.unmap(&dom.ram, m);
}
