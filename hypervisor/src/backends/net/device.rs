//! One vif: its state, its control thread (the generic xenbus control
//! loop) and its I/O thread (the TAP and the rings).
//!
//! Threads:
//! - the control thread runs [`control::run`]: the handshake with the
//!   frontend, mapping and releasing its rings and binding its event
//!   channels; it hands a connection to the I/O thread and takes it back;
//! - the I/O thread polls the TAP's queues (each only while a received
//!   frame can be placed) and an eventfd the frontend's event channels
//!   write through [`crate::xen::sink::EventSink::notify`]; it serves every
//!   queue's tx and rx rings and raises the frontend's event channels.
//!
//! Queue i of the frontend is served by TAP queue i; a TAP queue beyond
//! the frontend's count (it asked for fewer than offered) feeds queue
//! i mod count, so no frame the kernel steers there is lost.
//!
//! A frontend that breaks the protocol (see [`super::queue`]) gets its vif
//! disabled until it reconnects; other vifs and devices keep running.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::JoinHandle;

use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};
use xen_abi::netif;
use xen_abi::ring::{BackRing, RingMemory};

use super::config::VifSpec;
use super::io::{PacketIo, PacketPort};
use super::metrics::{self, Event, Metrics};
use super::queue::{Negotiated, Notify, Queue};
use super::xenbus::{self, FrontendInfo, QueueInfo};
use crate::backends::transport::control::{self, Driver, Waker};
use crate::backends::transport::ring::{self, GuestRingPages};
use crate::backends::transport::xenbus::{ConnectError, Xenbus};
use crate::seccomp::{self, ThreadKind};
use crate::xen::sink::{EventSink, SinkId};
use crate::xen::gnttab::MappedGrant;
use crate::xen::Domain;
use crate::xenstore::Xenstored;

/// How long the I/O thread sleeps without events before it checks whether
/// its domain went away.
const IDLE_POLL_MS: i32 = 200;

/// One queue of a live connection: its rings, their pages, its event channels.
struct QueueConn {
    queue: Queue,
    tx_port: u32,
    rx_port: u32,
    grants: Vec<MappedGrant>,
}

/// A live connection.
struct Connection {
    queues: Vec<QueueConn>,
    /// TUNSETOFFLOAD still to be applied by the I/O thread.
    offload: Option<u32>,
    /// The frontend broke the protocol: nothing more is served (Linux's
    /// vif->disabled).
    disabled: bool,
}

impl Connection {
    /// Whether TAP queue `port` of `ports` should be read.
    fn wants_frames(&self, port: usize) -> bool {
        !self.disabled && !self.queues.is_empty() && self.queues[port % self.queues.len()].queue.wants_frames()
    }
}

/// State shared by the vif's threads.
struct Shared {
    name: String,
    dom: Weak<Domain>,
    metrics: Metrics,
    sink: OnceLock<SinkId>,
    waker: Arc<Waker>,
    /// Wakes the I/O thread.
    kick: EventFd,
    stop: AtomicBool,
    conn: Mutex<Option<Connection>>,
    /// Queues offered (one per TAP queue).
    max_queues: u32,
}

impl Shared {
    fn conn(&self) -> MutexGuard<'_, Option<Connection>> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake_io(&self) {
        let _ = self.kick.write(1);
    }
}

/// A vif backend.
pub struct NetDevice {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Why a vif could not be created.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Xenstore.
    #[error("xenstore: {0}")]
    Store(#[from] crate::xenstore::XsError),
    /// A thread or its eventfd could not be started.
    #[error("cannot start the backend thread: {0}")]
    Thread(#[source] std::io::Error),
}

impl NetDevice {
    /// Serves `ports` (the host side of `spec`, already set up: its TAP's
    /// queues, one per queue offered) for `dom`:
    /// writes the toolstack's nodes, registers the device, publishes the
    /// features and reaches InitWait (all before the guest runs), then
    /// starts the threads.
    pub fn create(
        dom: &Arc<Domain>,
        xs: &Arc<Xenstored>,
        spec: &VifSpec,
        ports: Vec<Box<dyn PacketPort>>,
    ) -> Result<Arc<NetDevice>, DeviceError> {
        let name = ports.first().map_or_else(|| "vif".to_string(), |p| p.name().to_string());
        let max_queues = (ports.len() as u32).clamp(1, xenbus::MAX_QUEUES);
        let domid = dom.info.domid;
        let paths = xenbus::paths(domid, spec.devid);
        xenbus::write_toolstack_nodes(xs, domid, spec, &name, &paths)?;
        let shared = Arc::new(Shared {
            name: format!("vif {} ({})", name, spec.mac_string()),
            dom: Arc::downgrade(dom),
            metrics: Metrics::default(),
            sink: OnceLock::new(),
            waker: Arc::new(Waker::default()),
            kick: EventFd::new(EFD_NONBLOCK).map_err(DeviceError::Thread)?,
            stop: AtomicBool::new(false),
            conn: Mutex::new(None),
            max_queues,
        });
        let dev = Arc::new(NetDevice {
            shared: shared.clone(),
            threads: Mutex::new(Vec::new()),
        });
        let _ = shared.sink.set(dom.register_sink(dev.clone()));
        let mut bus = Xenbus::new(xs.clone(), paths);
        xenbus::publish(&mut bus, max_queues)?;
        log::info!(
            "{}: {}",
            shared.name,
            spec.bridge
                .as_deref()
                .map_or("not on a bridge".into(), |b| format!("on bridge {b}"))
        );

        let mut threads = Vec::new();
        let sh = shared.clone();
        let io = std::thread::Builder::new()
            .name(format!("vif{}-io", spec.devid))
            .spawn(move || {
                seccomp::confine(ThreadKind::NetIo);
                io_thread(&sh, ports);
            })
            .map_err(DeviceError::Thread)?;
        threads.push(io);
        let sh = shared.clone();
        let ctl = std::thread::Builder::new()
            .name(format!("vif{}", spec.devid))
            .spawn(move || {
                seccomp::confine(ThreadKind::NetControl);
                control::run(&mut NetControl { sh: sh.clone() }, &sh.waker.clone(), bus);
            })
            .map_err(DeviceError::Thread)?;
        threads.push(ctl);
        *dev.threads.lock().unwrap_or_else(|e| e.into_inner()) = threads;
        Ok(dev)
    }

    /// The device's name for logs ("vif vif1.0 (00:16:3e:..)").
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The counters so far.
    pub fn metrics(&self) -> metrics::Snapshot {
        self.shared.metrics.snapshot()
    }

    /// Stops the threads (disconnecting, unmapping everything, closing the
    /// TAP) and waits for them.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.waker.kick(|w| w.stop = true);
        self.shared.wake_io();
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

impl EventSink for NetDevice {
    /// Only wakes the I/O thread (an eventfd write): the vCPU never waits.
    fn notify(&self, _dom: &Domain, _port: u32) {
        self.shared.wake_io();
    }

    /// The control thread sees the domain gone and disconnects.
    fn domain_stopped(&self, _dom: &Domain) {
        self.shared.waker.kick(|w| w.ring = true);
    }
}

/// The control thread's side of the vif.
struct NetControl {
    sh: Arc<Shared>,
}

impl Driver for NetControl {
    type Conn = ();

    fn name(&self) -> &str {
        &self.sh.name
    }

    fn domain(&self) -> Option<Arc<Domain>> {
        self.sh.dom.upgrade()
    }

    fn connect(&mut self, dom: &Arc<Domain>, bus: &Xenbus) -> Result<(), ConnectError> {
        let FrontendInfo { queues, negotiated } = xenbus::read_frontend(bus, self.sh.max_queues)?;
        let sink = *self.sh.sink.get().ok_or(ConnectError::NoDomain)?;
        let mut conn = Connection { queues: Vec::new(), offload: Some(negotiated.rx.tun_flags()), disabled: false };
        for (i, q) in queues.iter().enumerate() {
            match connect_queue(dom, sink, q, negotiated) {
                Ok(qc) => conn.queues.push(qc),
                Err(e) => {
                    release(dom, Some(sink), conn);
                    return Err(match e {
                        ConnectError::RingGrant { node, gref, err } if queues.len() > 1 => {
                            ConnectError::RingGrant { node: format!("queue-{i}/{node}"), gref, err }
                        }
                        e => e,
                    });
                }
            }
        }
        *self.sh.conn() = Some(conn);
        self.sh.wake_io();
        Ok(())
    }

    fn describe(&self, _: &()) -> String {
        match &*self.sh.conn() {
            Some(c) => {
                let n = c.queues[0].queue.negotiated();
                let split = c.queues.iter().any(|q| q.tx_port != q.rx_port);
                format!(
                    "{} queue(s), {} event channels, {}sg, rx offloads {:#x}{}",
                    c.queues.len(),
                    if split { "split" } else { "shared" },
                    if n.sg { "" } else { "no " },
                    n.rx.tun_flags(),
                    if n.multicast_control { ", multicast control" } else { "" }
                )
            }
            None => "no queue".into(),
        }
    }

    fn disconnect(&mut self, dom: &Domain, _: ()) {
        let Some(c) = self.sh.conn().take() else { return };
        release(dom, self.sh.sink.get().copied(), c);
        log::debug!("{}: disconnected ({} grants of the domain still pinned)", self.sh.name, dom.gnttab.pinned());
    }

    /// The I/O thread serves the rings; a wake-up here is passed on.
    fn service(&mut self, _dom: &Arc<Domain>, _: &()) -> Result<(), String> {
        self.sh.wake_io();
        Ok(())
    }
}

/// Maps one queue's rings and binds its event channel(s).
fn connect_queue(dom: &Arc<Domain>, sink: SinkId, q: &QueueInfo, negotiated: Negotiated) -> Result<QueueConn, ConnectError> {
    let names = ["tx-ring-ref", "rx-ring-ref"];
    let grants = ring::map_ring(dom, &[q.tx_ring_ref, q.rx_ring_ref], |i| names[i].into())?;
    let mut bound = Vec::new();
    for port in [q.tx_port, q.rx_port] {
        if bound.contains(&port) {
            continue;
        }
        if let Err(e) = control::bind_port(dom, sink, port) {
            for p in bound {
                control::unbind_port(dom, sink, p);
            }
            ring::unmap_all(dom, grants);
            return Err(e);
        }
        bound.push(port);
    }
    let tx = attach(dom, grants[0].gpa(), netif::tx_layout());
    let rx = attach(dom, grants[1].gpa(), netif::rx_layout());
    Ok(QueueConn { queue: Queue::new(tx, rx, negotiated), tx_port: q.tx_port, rx_port: q.rx_port, grants })
}

/// A back ring over the page at `gpa`, attached where it stands (a fresh
/// ring has zeros there), as blkback attaches.
fn attach(dom: &Domain, gpa: u64, layout: xen_abi::ring::RingLayout) -> BackRing<GuestRingPages> {
    let pages = GuestRingPages::new(dom.ram.clone(), vec![gpa]);
    let start = pages.load_index(xen_abi::ring::RSP_PROD);
    BackRing::attach(pages, layout, start)
}

/// Unbinds the connection's event channels and unmaps its ring pages.
fn release(dom: &Domain, sink: Option<SinkId>, c: Connection) {
    for q in c.queues {
        if let Some(sink) = sink {
            control::unbind_port(dom, sink, q.tx_port);
            if q.rx_port != q.tx_port {
                control::unbind_port(dom, sink, q.rx_port);
            }
        }
        ring::unmap_all(dom, q.grants);
    }
}

/// Serves a connection once: for each queue, its tx ring into its TAP
/// queue, then the frames of the TAP queues that feed it into its rx ring;
/// raises the event channels the responses call for. A broken protocol
/// disables the whole vif, as Linux's xenvif_fatal_tx_err does. True if a
/// tx ring still has requests its budget left (serve again at once: no
/// event will come for them).
fn serve(name: &str, dom: &Domain, sink: Option<SinkId>, c: &mut Connection, ports: &mut [&mut dyn PacketIo], m: &Metrics) -> bool {
    if c.disabled || c.queues.is_empty() || ports.is_empty() {
        return false;
    }
    let mut more = false;
    if let Some(flags) = c.offload.take() {
        for p in ports.iter_mut() {
            if let Err(e) = p.set_offload(flags) {
                log::warn!("{name}: TUNSETOFFLOAD {flags:#x}: {e}");
            }
        }
    }
    let nq = c.queues.len();
    for (qi, q) in c.queues.iter_mut().enumerate() {
        let mut notify = Notify::default();
        let mut r = q.queue.serve_tx(dom, &mut *ports[qi % ports.len()], m).map(|n| {
            notify.tx = n.tx;
            more |= n.more_tx;
        });
        let mut pi = qi;
        while r.is_ok() && pi < ports.len() {
            r = q.queue.serve_rx(dom, &mut *ports[pi], m).map(|n| notify.rx |= n.rx);
            pi += nq;
        }
        if let Err(e) = r {
            log::error!("{name}: queue {qi}: {e}; fatal error, disabling the vif until the frontend reconnects");
            m.count(Event::Fatal);
            c.disabled = true;
        }
        if let Some(sink) = sink {
            let ports = if q.tx_port == q.rx_port {
                [(notify.tx || notify.rx).then_some(q.tx_port), None]
            } else {
                [notify.tx.then_some(q.tx_port), notify.rx.then_some(q.rx_port)]
            };
            for port in ports.into_iter().flatten() {
                m.count(Event::Notified);
                dom.raise_from(sink, port);
            }
        }
        if c.disabled {
            return false;
        }
    }
    more
}

/// The I/O thread: waits on the eventfd and (when a frame can be placed)
/// the TAP's queues, and serves the connection. Drops the TAP (removing the
/// interface) when it ends.
fn io_thread(sh: &Shared, mut ports: Vec<Box<dyn PacketPort>>) {
    let mut fds: Vec<libc::pollfd> = Vec::with_capacity(ports.len() + 1);
    // A tx ring left with requests by its budget: poll without waiting.
    let mut more = false;
    loop {
        if sh.stop.load(Ordering::SeqCst) {
            break;
        }
        fds.clear();
        fds.push(libc::pollfd { fd: sh.kick.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        {
            let conn = sh.conn();
            for (i, p) in ports.iter().enumerate() {
                let want = conn.as_ref().is_some_and(|c| c.wants_frames(i));
                fds.push(libc::pollfd { fd: p.fd(), events: if want { libc::POLLIN } else { 0 }, revents: 0 });
            }
        }
        // SAFETY: `fds` is a live array of fds.len() pollfds for the whole call.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, if more { 0 } else { IDLE_POLL_MS }) };
        if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            log::error!("{}: poll: {}", sh.name, std::io::Error::last_os_error());
            break;
        }
        if fds[0].revents & libc::POLLIN != 0 {
            let _ = sh.kick.read();
        }
        let Some(dom) = sh.dom.upgrade() else { break };
        if dom.is_stopped() || sh.stop.load(Ordering::SeqCst) {
            break;
        }
        if let Some(c) = sh.conn().as_mut() {
            let mut io: Vec<&mut dyn PacketIo> = ports.iter_mut().map(|p| &mut **p as &mut dyn PacketIo).collect();
            more = serve(&sh.name, &dom, sh.sink.get().copied(), c, &mut io, &sh.metrics);
        } else {
            more = false;
        }
    }
    log::debug!("{}: I/O stopped; removing the interface", sh.name);
}

/// A vif's rings served on the caller's thread, without xenbus, event
/// channels, threads or a TAP: the fuzz target and the tests drive it with
/// made-up rings and grants in a domain's memory and a [`super::io::VecIo`].
pub struct RingServer {
    dom: Arc<Domain>,
    conn: Connection,
    metrics: Metrics,
}

impl RingServer {
    /// Serves the tx ring at guest page `tx` and the rx ring at `rx` with
    /// what `negotiated` says; their indices are taken as they stand.
    pub fn new(dom: &Arc<Domain>, tx: u64, rx: u64, negotiated: Negotiated) -> Self {
        let queue = Queue::new(attach(dom, tx, netif::tx_layout()), attach(dom, rx, netif::rx_layout()), negotiated);
        let conn = Connection {
            queues: vec![QueueConn { queue, tx_port: 0, rx_port: 0, grants: Vec::new() }],
            offload: Some(negotiated.rx.tun_flags()),
            disabled: false,
        };
        RingServer { dom: dom.clone(), conn, metrics: Metrics::default() }
    }

    /// Serves both rings once against `io`, as the I/O thread does; true
    /// if the tx budget left requests (the I/O thread serves again at once).
    pub fn serve(&mut self, io: &mut dyn PacketIo) -> bool {
        serve("vif fuzz", &self.dom, None, &mut self.conn, &mut [io], &self.metrics)
    }

    /// Whether the frontend broke the protocol (the vif is disabled).
    pub fn disabled(&self) -> bool {
        self.conn.disabled
    }

    /// The counters so far.
    pub fn metrics(&self) -> metrics::Snapshot {
        self.metrics.snapshot()
    }
}
