//! A scripted blkfront for the backend's tests: a domain with plain guest
//! memory (no KVM), a real xenstored, and a frontend that grants pages,
//! publishes its ring through xenstore and speaks the ring protocol with the
//! same `xen_abi::ring` code a guest uses. Nothing in it is GRUB-specific.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xen_abi::blkif::{self, Protocol, Request, Response};
use xen_abi::grant_table::{GTF_PERMIT_ACCESS, GTF_READONLY};
use xen_abi::ring::{FrontRing, RingLayout};
use xen_abi::xenbus::XenbusState;

use super::config;
use super::io::SyncDisk;
use super::device::BlockDevice;
use crate::backends::transport::ring::GuestRingPages;
use crate::backends::transport::xenbus::Paths;
use crate::vstate::memory::GuestRam;
use crate::xen::domain::DomainInfo;
use crate::xen::time::Clock;
use crate::xen::Domain;
use crate::xenstore::{self, Xenstored};

/// Guest RAM size of the test domain.
pub const RAM: u64 = 8 << 20;
/// Where grant-table frame 0 lives (a RAM page).
pub const GNTTAB: u64 = 0x10000;
/// First ring page.
pub const RING: u64 = 0x20000;
/// First data page handed out by [`TestDomain::page`].
pub const DATA: u64 = 0x100000;

/// A scratch directory under the system temp dir, unique per test.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xenolith-blk-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes an image whose 512-byte sector `n` is filled with `n as u8`.
pub fn patterned_image(path: &Path, sectors: u64) {
    let data: Vec<u8> = (0..sectors).flat_map(|n| std::iter::repeat_n(n as u8, 512)).collect();
    std::fs::write(path, data).unwrap();
}

/// A domain (id 1) with guest memory, its grant table on a RAM page, and xenstored.
pub struct TestDomain {
    /// The domain.
    pub dom: Arc<Domain>,
    /// xenstored (no socket).
    pub xs: Arc<Xenstored>,
    next_gref: u32,
    next_page: u64,
}

impl Default for TestDomain {
    fn default() -> Self {
        Self::new()
    }
}

impl TestDomain {
    /// A fresh domain.
    pub fn new() -> Self {
        let ram = Arc::new(GuestRam::new(&[(0, RAM as usize)]).unwrap());
        let info = DomainInfo { domid: 1, name: "blktest".into(), memmap: Vec::new(), pages: RAM >> 12, max_pages: RAM >> 12 };
        let dom = Arc::new(Domain::new(info, ram, Clock::new(1_000_000, 0)));
        dom.gnttab.set_frame(0, Some(GNTTAB));
        let xs = Xenstored::start(xenstore::Options { socket: xenstore::SocketChoice::None, ..Default::default() }).unwrap();
        TestDomain { dom, xs, next_gref: 8, next_page: DATA }
    }

    /// Creates a block device from an xl disk spec.
    pub fn device(&self, spec: &str) -> Arc<BlockDevice> {
        let spec = config::parse(spec).unwrap();
        BlockDevice::create(&self.dom, &self.xs, &spec, Arc::new(SyncDisk::open(&spec.target, spec.readonly).unwrap())).unwrap()
    }

    /// A fresh zeroed data page.
    pub fn page(&mut self) -> u64 {
        let p = self.next_page;
        self.next_page += 4096;
        p
    }

    /// Grants `gpa`'s page to domain `domid` with `flags`; returns the reference.
    pub fn grant_to(&mut self, gpa: u64, flags: u16, domid: u16) -> u32 {
        let gref = self.next_gref;
        self.next_gref += 1;
        self.set_grant(gref, gpa, flags, domid);
        gref
    }

    /// Grants `gpa`'s page to the backends (domain 0).
    pub fn grant(&mut self, gpa: u64, readonly: bool) -> u32 {
        self.grant_to(gpa, GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 }, 0)
    }

    /// Rewrites entry `gref`.
    pub fn set_grant(&self, gref: u32, gpa: u64, flags: u16, domid: u16) {
        let e = GNTTAB + u64::from(gref) * 8;
        self.dom.ram.write_obj(e + 4, &((gpa >> 12) as u32)).unwrap();
        self.dom.ram.write_obj(e + 2, &domid).unwrap();
        self.dom.ram.write_obj(e, &flags).unwrap();
    }

    /// The flags of entry `gref`.
    pub fn grant_flags(&self, gref: u32) -> u16 {
        self.dom.ram.read_obj(GNTTAB + u64::from(gref) * 8).unwrap()
    }

    /// Reads a xenstore node (empty if missing).
    pub fn read(&self, path: &str) -> String {
        self.xs.read_string(path).unwrap_or_default()
    }

    /// Waits until `path` reads `value`.
    pub fn wait_for(&self, path: &str, value: &str) {
        let until = Instant::now() + Duration::from_secs(10);
        while self.read(path) != value {
            assert!(Instant::now() < until, "{path} is {:?}, expected {value:?}", self.read(path));
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// How the frontend connects.
#[derive(Clone, Copy, Debug)]
pub struct Connect {
    /// Ring ABI (written as `protocol`).
    pub protocol: Protocol,
    /// log2 of ring pages.
    pub order: u32,
    /// Ask for persistent grants.
    pub persistent: bool,
}

impl Default for Connect {
    fn default() -> Self {
        Connect { protocol: Protocol::X86_64, order: 0, persistent: false }
    }
}

/// A connected frontend for one device.
pub struct TestFrontend {
    /// The device.
    pub dev: Arc<BlockDevice>,
    /// Its paths.
    pub paths: Paths,
    /// The ring.
    pub ring: FrontRing<GuestRingPages>,
    /// The ring ABI.
    pub protocol: Protocol,
    /// The ring's grants.
    pub ring_refs: Vec<u32>,
    /// The frontend's event channel.
    pub port: u32,
}

impl TestFrontend {
    /// Publishes a ring for `dev` (ring pages from `ring_base`) and waits
    /// for the backend to connect.
    pub fn connect(td: &mut TestDomain, dev: Arc<BlockDevice>, ring_base: u64, c: Connect) -> Self {
        Self::connect_from(td, dev, ring_base, c, "2")
    }

    /// As [`TestFrontend::connect`], once the backend is in state `from`
    /// (InitWait normally; Closed for a frontend that skips Initialising).
    pub fn connect_from(td: &mut TestDomain, dev: Arc<BlockDevice>, ring_base: u64, c: Connect, from: &str) -> Self {
        let paths = super::xenbus::paths(1, dev.devid());
        td.wait_for(&format!("{}/state", paths.backend), from);
        assert!(!td.read(&format!("{}/sectors", paths.backend)).is_empty());
        let pages: Vec<u64> = (0..1u64 << c.order).map(|i| ring_base + i * 4096).collect();
        let ring_refs: Vec<u32> = pages.iter().map(|&p| td.grant(p, false)).collect();
        let layout = RingLayout::with_order(c.order, c.protocol.slot_size()).unwrap();
        let ring = FrontRing::init(GuestRingPages::new(td.dom.ram.clone(), pages), layout);
        let port = td.dom.state().evtchn.alloc_unbound(0).unwrap();
        let fe = &paths.frontend;
        let w = |k: &str, v: String| td.xs.write(&format!("{fe}/{k}"), v).unwrap();
        if c.order == 0 {
            w("ring-ref", ring_refs[0].to_string());
        } else {
            w("ring-page-order", c.order.to_string());
            for (i, r) in ring_refs.iter().enumerate() {
                w(&format!("ring-ref{i}"), r.to_string());
            }
        }
        w("event-channel", port.to_string());
        w("protocol", c.protocol.name().to_string());
        w("feature-persistent", if c.persistent { "1" } else { "0" }.to_string());
        w("state", XenbusState::Initialised.as_str().to_string());
        td.wait_for(&format!("{}/state", paths.backend), "4");
        TestFrontend { dev, paths, ring, protocol: c.protocol, ring_refs, port }
    }

    /// Removes the ring's keys, as a frontend does once the backend closed
    /// (guest-lib's and Mini-OS's unpublish), so the next one starts clean.
    pub fn unpublish(&self, td: &TestDomain) {
        let fe = &self.paths.frontend;
        let mut keys = vec!["ring-ref".to_string(), "ring-page-order".into(), "event-channel".into()];
        keys.extend((0..self.ring_refs.len()).map(|i| format!("ring-ref{i}")));
        for k in keys {
            let _ = td.xs.rm(&format!("{fe}/{k}"));
        }
    }

    /// Puts requests on the ring, notifies the backend and collects one
    /// response per request (in completion order).
    pub fn submit(&mut self, td: &TestDomain, reqs: &[Request]) -> Vec<Response> {
        for r in reqs {
            let mut slot = vec![0u8; self.protocol.slot_size()];
            r.encode(self.protocol, &mut slot);
            assert!(self.ring.put_request(&slot), "ring full");
        }
        if self.ring.push_requests() {
            td.dom.notify_sink(self.port);
        }
        let mut out = Vec::new();
        let until = Instant::now() + Duration::from_secs(10);
        while out.len() < reqs.len() {
            assert!(Instant::now() < until, "no response after {} of {}", out.len(), reqs.len());
            if self.ring.final_check_for_responses().unwrap() {
                let mut b = [0u8; 16];
                self.ring.take_response(&mut b);
                out.push(Response::decode(&b).unwrap());
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        out
    }

    /// One request, one status.
    pub fn status(&mut self, td: &TestDomain, req: Request) -> i16 {
        let r = self.submit(td, &[req]);
        assert_eq!((r[0].id, r[0].operation), (req.id(), req.operation()));
        r[0].status
    }
}

/// A READ or WRITE of whole pages `(gref, first_sect, last_sect)` at `sector`.
pub fn rw(op: u8, id: u64, sector: u64, segs: &[(u32, u8, u8)]) -> Request {
    let mut seg = [blkif::Segment::default(); blkif::BLKIF_MAX_SEGMENTS_PER_REQUEST];
    for (s, &(gref, first_sect, last_sect)) in seg.iter_mut().zip(segs) {
        *s = blkif::Segment { gref, first_sect, last_sect };
    }
    Request::ReadWrite(blkif::ReadWrite {
        operation: op,
        nr_segments: segs.len() as u8,
        handle: 0,
        id,
        sector_number: sector,
        seg,
    })
}

/// Sends the frontend's state.
pub fn set_frontend_state(td: &TestDomain, fe: &TestFrontend, state: XenbusState) {
    td.xs.write(&format!("{}/state", fe.paths.frontend), state.as_str()).unwrap();
}

/// The backend's error node, if any.
pub fn backend_error(td: &TestDomain, paths: &Paths) -> String {
    td.read(&format!("{}/error", paths.backend))
}

/// Sleeps a little (for "nothing should happen" checks).
pub fn settle() {
    std::thread::sleep(Duration::from_millis(50));
}

impl Drop for TestDomain {
    fn drop(&mut self) {
        self.dom.shutdown(crate::xen::ShutdownReason::Poweroff);
    }
}
