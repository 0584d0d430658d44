//! netfront: the PV network frontend, laid out like blkfront:
//! - [`ring`]: the tx and rx rings with their persistent buffer pools;
//! - [`xenbus`]: negotiation with the backend through xenstore;
//! - [`csum`]: completing checksums the backend left blank;
//! - this file: the user API ([`NetFront`]): send a frame, take a frame.
//!
//! Negotiated: `feature-rx-copy` is required (the backend copies packets
//! into pages we posted once; nothing is flipped or re-granted per
//! packet); `feature-sg` (packets over several slots, both ways);
//! `feature-gso-tcpv4` (off unless asked: the stack above never sends
//! segments larger than its MTU, and large received segments only cost
//! copies here); split event channels when offered; several queues (ring
//! pairs, each with its own channels) when asked for with
//! `netfront.queues=N` and offered (`multi-queue-max-queues`). One queue
//! is the default: a single vCPU gains nothing from more. Frames are sent
//! on the queue their flow hashes to (so a TCP connection stays in
//! order), and received from every queue in turn.
//!
//! Checksums: transmitted packets carry the checksums the stack computed
//! in software and are marked NETTXF_DATA_VALIDATED; we do not send
//! NETTXF_CSUM_BLANK (partial checksums, whose meaning differs between
//! backends), so every backend sees complete packets. Received packets
//! flagged NETRXF_CSUM_BLANK (sent from dom0 itself with offload) get
//! their TCP/UDP checksum filled in here before the stack checks it.
//!
//! [`NetFront::close`] takes the device through Closing and Closed back to
//! Initialising, so the next kernel finds its backend waiting in InitWait.

pub mod csum;
pub mod ring;
pub mod xenbus;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use xen_abi::event_channel::Port;
use xen_abi::netif as ni;
use xen_abi::DomId;

use self::ring::{QueueSetupError, RxMeta, RxQueue, Stats, TxQueue};
use self::xenbus::Offer;
use crate::evtchn;
use crate::hypercall::Errno;
use crate::xenbus::{self as xb, Device, XenbusError};
use crate::xenstore::XsError;

pub use self::ring::MAX_PACKET;

/// Most queues a vif is opened with (Linux's default cap is 8).
pub const MAX_QUEUES: usize = 8;

/// Choices a caller may make when opening a vif.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Receive buffers (pages) posted to the backend, up to 256.
    pub rx_buffers: usize,
    /// Transmit buffers (pages), up to 256.
    pub tx_buffers: usize,
    /// Ask for `feature-sg` when offered.
    pub sg: bool,
    /// Ask for `feature-gso-tcpv4` when offered (large received segments).
    pub gso_tcpv4: bool,
    /// Use split event channels when offered.
    pub split_event_channels: bool,
    /// Queues (ring pairs) wanted; the backend's `multi-queue-max-queues`
    /// caps it.
    pub queues: usize,
    /// How long to wait for the backend at each step, in ns.
    pub timeout_ns: u64,
}

impl Config {
    /// Applies a `key=value` option that limits what is negotiated
    /// (`sg=0|1`, `gso=0|1`, `split=0|1`, `rx-buffers=N`, `tx-buffers=N`,
    /// `queues=N`).
    /// Returns whether `key` was one of them, or the value when it is not
    /// a number.
    pub fn set_option<'a>(&mut self, key: &str, value: &'a str) -> Result<bool, &'a str> {
        let n = || crate::boot::parse_number(value).ok_or(value);
        match key {
            "sg" => self.sg = n()? != 0,
            "gso" => self.gso_tcpv4 = n()? != 0,
            "split" => self.split_event_channels = n()? != 0,
            "queues" => self.queues = (n()? as usize).clamp(1, MAX_QUEUES),
            "rx-buffers" => self.rx_buffers = n()? as usize,
            "tx-buffers" => self.tx_buffers = n()? as usize,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// [`Config::from_cmdline`], printing one line for each word it could
    /// not use.
    pub fn from_cmdline_reporting(cmdline: &str) -> Config {
        let (c, bad) = Config::from_cmdline(cmdline);
        for w in bad {
            crate::println!("ignoring {w}: not a netfront option");
        }
        c
    }

    /// The defaults with every `netfront.KEY=VALUE` word of `cmdline`
    /// applied ([`Config::set_option`]); unknown keys and bad values are
    /// returned as the words they were.
    pub fn from_cmdline(cmdline: &str) -> (Config, Vec<&str>) {
        let mut c = Config::default();
        let mut bad = Vec::new();
        for w in cmdline.split_ascii_whitespace() {
            let Some((k, v)) = w
                .strip_prefix("netfront.")
                .and_then(|kv| kv.split_once('='))
            else {
                continue;
            };
            if !matches!(c.set_option(k, v), Ok(true)) {
                bad.push(w);
            }
        }
        (c, bad)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rx_buffers: 128,
            tx_buffers: 64,
            sg: true,
            gso_tcpv4: false,
            split_event_channels: true,
            queues: 1,
            timeout_ns: 30_000_000_000,
        }
    }
}

/// The connected vif.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info {
    /// Our MAC address.
    pub mac: [u8; 6],
    /// The backend's domain.
    pub backend_id: DomId,
    /// What the backend offered.
    pub offer: Offer,
    /// sg in use.
    pub sg: bool,
    /// gso-tcpv4 in use.
    pub gso_tcpv4: bool,
    /// Split event channels in use.
    pub split: bool,
    /// Queues in use.
    pub queues: usize,
}

/// Why a vif could not be opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// No vif with that id (or none at all).
    NoDevice(String),
    /// xenstore or the xenbus handshake failed.
    Xenbus(XenbusError),
    /// The backend cannot copy into our pages (no `feature-rx-copy`).
    NoRxCopy,
    /// No usable `mac` node.
    NoMac,
    /// The rings or buffers could not be set up.
    Queue(QueueSetupError),
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
            OpenError::NoDevice(n) => write!(f, "no network device {n}"),
            OpenError::Xenbus(e) => e.fmt(f),
            OpenError::NoRxCopy => f.write_str("the backend does not offer feature-rx-copy"),
            OpenError::NoMac => f.write_str("no usable mac node"),
            OpenError::Queue(e) => write!(f, "cannot set up the rings: {e:?}"),
            OpenError::Evtchn(e) => write!(f, "cannot set up the event channel: {e}"),
        }
    }
}

/// Does nothing: the event only ends a halt (see [`crate::xenstore::wait_until`]).
fn on_event(_port: Port, _ctx: usize) {}

/// The ids under `device/vif`.
pub fn list() -> Result<Vec<String>, XsError> {
    xb::list("vif")
}

/// One ring pair and its event channels.
struct Queue {
    tx: TxQueue,
    rx: RxQueue,
    tx_port: Port,
    rx_port: Option<Port>,
}

impl Queue {
    /// Rings, buffers and channels for one queue; on failure, nothing is
    /// left allocated.
    fn new(backend: DomId, cfg: &Config, split: bool) -> Result<Queue, OpenError> {
        let mut tx = TxQueue::new(Some(backend), cfg.tx_buffers).map_err(OpenError::Queue)?;
        let mut rx = match RxQueue::new(Some(backend), cfg.rx_buffers) {
            Ok(rx) => rx,
            Err(e) => {
                tx.teardown();
                return Err(OpenError::Queue(e));
            }
        };
        let ports = channel(backend).and_then(|tx_port| match split {
            false => Ok((tx_port, None)),
            true => channel(backend).map(|rx_port| (tx_port, Some(rx_port))).inspect_err(|_| {
                let _ = evtchn::close(tx_port);
            }),
        });
        match ports {
            Ok((tx_port, rx_port)) => Ok(Queue { tx, rx, tx_port, rx_port }),
            Err(e) => {
                let _ = tx.teardown() + rx.teardown();
                Err(e)
            }
        }
    }

    fn publish(&self) -> xenbus::QueueKeys {
        xenbus::QueueKeys { tx_ring_ref: self.tx.ring_ref(), rx_ring_ref: self.rx.ring_ref(), tx_port: self.tx_port, rx_port: self.rx_port }
    }

    /// Posts receive buffers; tells the backend if any were new.
    fn kick_rx(&mut self) {
        if self.rx.refill() {
            let _ = evtchn::send(self.rx_port.unwrap_or(self.tx_port));
        }
    }

    /// Ends the grants and closes the channels; returns the grants the
    /// backend still held.
    fn teardown(&mut self) -> usize {
        let held = self.tx.teardown() + self.rx.teardown();
        let _ = evtchn::close(self.tx_port);
        if let Some(p) = self.rx_port {
            let _ = evtchn::close(p);
        }
        held
    }
}

/// A connected PV network device.
pub struct NetFront {
    dev: Device,
    info: Info,
    queues: Vec<Queue>,
    /// The queue `recv` looks at first (turns rotate, so none starves).
    next_rx: usize,
    stats: Stats,
    timeout_ns: u64,
    closed: bool,
}

fn channel(backend: DomId) -> Result<Port, OpenError> {
    let p = evtchn::alloc_unbound(backend).map_err(OpenError::Evtchn)?;
    if let Err(e) = evtchn::bind(p, on_event, 0) {
        let _ = evtchn::close(p);
        return Err(OpenError::Evtchn(e));
    }
    Ok(p)
}

/// The queue an outgoing frame goes on: a hash of its IPv4 addresses and
/// TCP/UDP ports (so one flow stays on one queue, in order), queue 0 for
/// anything else.
pub fn queue_for(frame: &[u8], queues: usize) -> usize {
    if queues <= 1 || frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return 0;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0xf) * 4;
    let mut h: u32 = 0x811c_9dc5;
    let mut mix = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
    };
    mix(&ip[12..20]);
    mix(&[ip[9]]);
    let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
    if matches!(ip[9], 6 | 17) && !fragment && ihl >= 20 {
        if let Some(ports) = ip.get(ihl..ihl + 4) {
            mix(ports);
        }
    }
    // FNV-1a alone keeps the parity of the bytes' low bits (its prime is
    // odd), so flows differing only in even ports (Linux's connect())
    // would share a queue of two: murmur3's finaliser mixes every bit in.
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h as usize % queues
}

impl NetFront {
    /// Connects to the first vif (`device/vif/<lowest id>`).
    pub fn open_first(cfg: Config) -> Result<NetFront, OpenError> {
        let mut ids = list()?;
        ids.sort_by_key(|id| id.parse::<u64>().unwrap_or(u64::MAX));
        let id = ids
            .first()
            .ok_or_else(|| OpenError::NoDevice("device/vif".into()))?;
        Self::open(id, cfg)
    }

    /// Connects to `device/vif/<id>`.
    pub fn open(id: &str, cfg: Config) -> Result<NetFront, OpenError> {
        let dev = Device::open("vif", id)?;
        let mac = dev_mac(&dev)?;
        let mut made: Vec<Queue> = Vec::new();
        let mut used = (false, false);
        let connected = xenbus::connect(&dev, cfg.timeout_ns, |offer: &Offer| -> Result<(), OpenError> {
            if !offer.rx_copy {
                return Err(OpenError::NoRxCopy);
            }
            let split = cfg.split_event_channels && offer.split_event_channels;
            let count = cfg.queues.clamp(1, MAX_QUEUES).min(offer.max_queues as usize);
            for _ in 0..count {
                made.push(Queue::new(dev.backend_id, &cfg, split)?);
            }
            let sg = cfg.sg && offer.sg;
            used = (sg, cfg.gso_tcpv4 && offer.gso_tcpv4 && sg);
            let p = xenbus::Publish { queues: made.iter().map(Queue::publish).collect(), sg: used.0, gso_tcpv4: used.1 };
            // Posted before the backend connects, as Linux does, so the
            // first packets find buffers.
            for q in &mut made {
                q.rx.refill();
            }
            xenbus::publish(&dev, &p)?;
            Ok(())
        });
        let offer = match connected {
            Ok(o) => o,
            Err(e) => {
                if !made.is_empty() {
                    let _ = dev.close(cfg.timeout_ns.min(xb::REINIT_WAIT_NS));
                    xenbus::unpublish(&dev, made.len());
                }
                for q in &mut made {
                    q.teardown();
                }
                return Err(e);
            }
        };
        if made.is_empty() {
            return Err(OpenError::Xenbus(XenbusError::BackendFailed(xb::XenbusState::Connected)));
        }
        let info = Info {
            mac,
            backend_id: dev.backend_id,
            offer,
            sg: used.0,
            gso_tcpv4: used.1,
            split: made[0].rx_port.is_some(),
            queues: made.len(),
        };
        log::debug!("netfront: {} connected: {info:?}", dev.nodename);
        let mut nf = NetFront { dev, info, queues: made, next_rx: 0, stats: Stats::default(), timeout_ns: cfg.timeout_ns, closed: false };
        for q in &mut nf.queues {
            q.kick_rx();
        }
        Ok(nf)
    }

    /// What was negotiated.
    pub fn info(&self) -> Info {
        self.info
    }

    /// Our MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.info.mac
    }

    /// The device's xenstore directory (`device/vif/<id>`).
    pub fn nodename(&self) -> &str {
        &self.dev.nodename
    }

    /// Counters of what moved and what was dropped.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether the rings still work (no protocol violation, not closed).
    pub fn is_up(&self) -> bool {
        !self.closed && self.queues.iter().all(|q| q.tx.broken().is_none() && q.rx.broken().is_none())
    }

    /// Whether a frame of `len` bytes can be sent now on queue `q` (after
    /// reclaiming buffers the backend is done with).
    fn can_send_on(&mut self, q: usize, len: usize) -> bool {
        if self.closed || (!self.info.sg && len > xen_abi::PAGE_SIZE) {
            return false;
        }
        let tx = &mut self.queues[q].tx;
        if !tx.has_room(len) {
            let _ = tx.reap(&mut self.stats);
        }
        tx.has_room(len)
    }

    /// Whether a frame of `len` bytes can be sent now on every queue
    /// (smoltcp asks before it knows the frame).
    pub fn can_send(&mut self, len: usize) -> bool {
        (0..self.queues.len()).all(|q| self.can_send_on(q, len))
    }

    /// Sends one Ethernet frame (without FCS); false when it could not be
    /// queued (ring or pool full, too big, device down), counted in
    /// [`Stats::tx_refused`].
    pub fn send(&mut self, frame: &[u8]) -> bool {
        let q = queue_for(frame, self.queues.len());
        if !self.can_send_on(q, frame.len()) {
            self.stats.tx_refused += 1;
            return false;
        }
        let queue = &mut self.queues[q];
        if !queue.tx.send(frame, ni::NETTXF_DATA_VALIDATED, &mut self.stats) {
            return false;
        }
        if queue.tx.push() {
            let _ = evtchn::send(queue.tx_port);
        }
        self.stats.tx_per_queue[q] += 1;
        true
    }

    /// Takes the next received frame into `out`; `None` when there is
    /// none. Buffers go straight back to the backend.
    pub fn recv(&mut self, out: &mut Vec<u8>) -> Option<RxMeta> {
        if self.closed {
            return None;
        }
        let n = self.queues.len();
        let meta = (0..n).find_map(|i| {
            let q = (self.next_rx + i) % n;
            let queue = &mut self.queues[q];
            let got = match queue.rx.next_packet(out, &mut self.stats) {
                Ok(m) => m,
                Err(e) => {
                    log::warn!("netfront: {}: queue {q}: rx ring broken: {e:?}", self.dev.nodename);
                    None
                }
            };
            queue.kick_rx();
            got.map(|m| (q, m))
        });
        let (q, meta) = meta?;
        self.next_rx = (q + 1) % n;
        self.stats.rx_per_queue[q] += 1;
        if meta.flags & ni::NETRXF_CSUM_BLANK != 0 && csum::complete_ipv4_l4(out) {
            self.stats.rx_csum_blank += 1;
        }
        Some(meta)
    }

    /// Whether anything waits to be taken (received frames or finished
    /// transmissions): the poll loop's wake-up condition.
    pub fn has_work(&self) -> bool {
        !self.closed && self.queues.iter().any(|q| q.rx.has_responses() || q.tx.has_responses())
    }

    /// Reclaims transmit buffers the backend is done with.
    pub fn reap_tx(&mut self) {
        if !self.closed {
            for q in &mut self.queues {
                let _ = q.tx.reap(&mut self.stats);
            }
        }
    }

    /// Takes the device through Closing and Closed (and back to
    /// Initialising for the next kernel), then ends every grant and frees
    /// the rings and buffers. Later sends fail and receives find nothing.
    pub fn close(&mut self) -> Result<(), XenbusError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let r = self.dev.close(self.timeout_ns);
        // The backend unmapped everything on its way to Closed; grants it
        // still holds (a backend that never closed) leak their pages.
        let held: usize = self.queues.iter_mut().map(Queue::teardown).sum();
        if held > 0 {
            log::warn!(
                "netfront: {}: backend still holds {held} grants",
                self.dev.nodename
            );
        }
        xenbus::unpublish(&self.dev, self.queues.len());
        r
    }
}

impl Drop for NetFront {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Our MAC: our own `mac` node (what Linux reads), else the backend's.
fn dev_mac(dev: &Device) -> Result<[u8; 6], OpenError> {
    let front = crate::xenstore::read(crate::xenstore::Tx::NONE, &dev.front_path("mac")).ok();
    front
        .as_deref()
        .and_then(xenbus::parse_mac)
        .or_else(|| {
            dev.backend_read("mac")
                .ok()
                .flatten()
                .as_deref()
                .and_then(xenbus::parse_mac)
        })
        .ok_or(OpenError::NoMac)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP/IPv4 frame from `src` port to port 80.
    fn frame(src: u8, port: u16) -> Vec<u8> {
        let mut f = alloc::vec![0u8; 54];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[23] = 6;
        f[26..30].copy_from_slice(&[10, 0, 0, src]);
        f[30..34].copy_from_slice(&[10, 0, 0, 1]);
        f[34..36].copy_from_slice(&port.to_be_bytes());
        f[36..38].copy_from_slice(&80u16.to_be_bytes());
        f
    }

    #[test]
    fn flows_keep_their_queue_and_spread_over_queues() {
        assert_eq!(queue_for(&frame(2, 1000), 1), 0);
        let q = queue_for(&frame(2, 1000), 4);
        for _ in 0..3 {
            assert_eq!(queue_for(&frame(2, 1000), 4), q, "one flow, one queue");
        }
        let used: alloc::collections::BTreeSet<usize> = (0..64).map(|p| queue_for(&frame(2, 40000 + p), 4)).collect();
        assert_eq!(used.len(), 4, "64 flows use every queue: {used:?}");
        // Even ports only, as Linux's connect() picks them, over two queues.
        let on_1 = (0..16).filter(|p| queue_for(&frame(2, 40000 + 2 * p), 2) == 1).count();
        assert!((4..=12).contains(&on_1), "{on_1} of 16 even-port flows on queue 1");
        // Not IPv4, or too short: queue 0; a garbage header length never
        // reads past the frame.
        let mut arp = frame(2, 1000);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(queue_for(&arp, 4), 0);
        assert_eq!(queue_for(&frame(2, 1000)[..20], 4), 0);
        let mut bad = frame(2, 1000);
        bad[14] = 0x4f;
        assert!(queue_for(&bad, 4) < 4);
    }

    #[test]
    fn command_line_options() {
        let (c, bad) = Config::from_cmdline("ip=1.2.3.4 netfront.gso=1 netfront.split=0 netfront.rx-buffers=32 netfront.x=1 netfront.sg=y netfront.queues=99");
        assert!(c.gso_tcpv4 && !c.split_event_channels && c.sg);
        assert_eq!(c.queues, MAX_QUEUES);
        assert_eq!(c.rx_buffers, 32);
        assert_eq!(bad, ["netfront.x=1", "netfront.sg=y"]);
    }
}
