//! The network backend: xenbus nonsense on a vif before connecting, then a
//! hand-made netfront whose tx ring carries malformed packets (bogus and
//! foreign grants, buffers past their page, chains too long, too short or
//! unterminated, bad extra-info slots, sizes 0 and 65535, repeated ids),
//! slots rewritten while the backend reads them, grants revoked while in
//! use, rx requests with bogus grants, and producer indices far past both
//! rings.
//!
//! Netback answers a malformed packet NETIF_RSP_ERROR and keeps serving;
//! what Linux's xenvif_fatal_tx_err treats as fatal disables the vif until
//! the frontend reconnects, with no xenbus state change. So each
//! connection ends with one fatal abuse, and the next connection (a reset
//! through Closed and InitWait, as a frontend that restarts does) checks
//! that the vif came back: `reconnect-failed` counts the times it did not.

use alloc::format;
use alloc::vec::Vec;

use guest_lib::gnttab;
use guest_lib::xen_abi::netif::{self as ni, RxRequest, RxResponse, TxRequest, TxResponse};
use guest_lib::xen_abi::ring as r;
use guest_lib::xen_abi::xenbus::XenbusState as S;
use guest_lib::xenbus::Device;
use guest_lib::xenstore::{self, Tx};
use guest_lib::{evtchn, time};

use crate::raw::Page;
use crate::front::{self, reset, w, GREF_JUNK, PORT_JUNK, SECOND};
use crate::{Ctx, Tally};

const PAGE: usize = 4096;
/// Slots of each one-page ring.
const SIZE: u32 = 256;
/// Data pages granted for tx, and pages posted for rx.
const DATA_PAGES: usize = 4;
/// How long to wait for a batch's responses: netback answers in
/// microseconds, so a batch still unanswered after this means the vif was
/// disabled (a fatal abuse, perhaps one a rewrite made by chance).
const COLLECT_NS: u64 = SECOND / 4;
/// A domain id that is not the backend's: grants to it must not be usable
/// by the backend.
const OTHER_DOMS: [u16; 3] = [5, 0x7ff0, 0x7fff];

/// Runs the two net classes (either may be left out); returns their
/// tallies, or None if the guest has no vif (nothing to attack).
pub fn attack(cx: &mut Ctx, xenbus: bool, ring: bool) -> Option<Vec<Tally>> {
    let mut tx = Tally::new("net-xenbus");
    let mut tr = Tally::new("net-ring");
    let dev = guest_lib::xenbus::list("vif")
        .ok()
        .and_then(|ids| ids.first().cloned())
        .and_then(|id| Device::open("vif", &id).ok())?;
    let mac = mac_of(&dev);
    let (mut tx_ns, mut tr_ns) = (0, 0);
    for _ in 0..cx.rounds {
        let start = time::now_ns();
        if xenbus {
            bad_xenbus(cx, &dev, &mut tx);
        }
        let mid = time::now_ns();
        if ring {
            for n in 0..5 {
                ring_attacks(cx, &dev, mac, n, &mut tr);
            }
            // The vif must still work after all of it.
            check_alive(cx, &dev, mac, &mut tr);
        }
        tx_ns += mid - start;
        tr_ns += time::now_ns() - mid;
    }
    tx.busy_ns = Some(tx_ns);
    tr.busy_ns = Some(tr_ns);
    let mut v = Vec::new();
    if xenbus {
        v.push(tx);
    }
    if ring {
        v.push(tr);
    }
    Some(v)
}

/// The vif's MAC from our xenstore node (what the toolstack gave us).
fn mac_of(dev: &Device) -> [u8; 6] {
    let mut mac = [0x00, 0x16, 0x3e, 0, 0, 1];
    if let Ok(s) = xenstore::read(Tx::NONE, &dev.front_path("mac")) {
        for (i, part) in s.split(':').take(6).enumerate() {
            mac[i] = u8::from_str_radix(part, 16).unwrap_or(0);
        }
    }
    mac
}


/// Every key a frontend may have written, removed so each attempt starts
/// from nothing.
const FRONT_KEYS: [&str; 16] = [
    "tx-ring-ref",
    "rx-ring-ref",
    "event-channel",
    "event-channel-tx",
    "event-channel-rx",
    "multi-queue-num-queues",
    "request-rx-copy",
    "feature-rx-notify",
    "feature-sg",
    "feature-gso-tcpv4",
    "feature-gso-tcpv6",
    "feature-no-csum-offload",
    "feature-ipv6-csum-offload",
    "request-multicast-control",
    "queue-0",
    "queue-1",
];

fn clear_keys(dev: &Device) {
    for k in FRONT_KEYS {
        let _ = xenstore::rm(Tx::NONE, &dev.front_path(k));
    }
}

/// Ring references, event channels, queue counts and features that are
/// wrong, published as a frontend would, one set at a time.
fn bad_xenbus(cx: &mut Ctx, dev: &Device, t: &mut Tally) {
    let queues = [
        "0",
        "1",
        "2",
        "4",
        "5",
        "64",
        "4294967295",
        "99999999999",
        "-1",
        "x",
    ];
    let flags = ["0", "1", "2", "", "yes", "-1", "4294967296", "1\u{0}"];
    let features = [
        "feature-sg",
        "feature-gso-tcpv4",
        "feature-gso-tcpv6",
        "feature-no-csum-offload",
        "feature-ipv6-csum-offload",
        "request-multicast-control",
        "feature-ctrl-ring",
        "feature-split-event-channels",
        "feature-xdp-headroom",
    ];
    // Rings that are real grants, of pages filled with junk indices: a
    // backend that trusts where a ring stands reads past it.
    let ring = Page::alloc(2);
    let b = dev.backend_id;
    let real = [
        gnttab::grant_access(b, ring.gfn(0), false).ok(),
        gnttab::grant_access(b, ring.gfn(1), false).ok(),
    ];
    for _ in 0..8 {
        if !reset(t, dev) {
            break;
        }
        clear_keys(dev);
        let junk = cx.rng.bits();
        ring.fill(|i| (junk >> (i % 8 * 8)) as u8 ^ i as u8);
        // Half the sets are valid but for about one key, so the backend
        // gets as far as mapping the junk rings; the others are nonsense
        // throughout.
        let valid = cx.rng.one_in(2);
        let bad = |cx: &mut Ctx| {
            if valid {
                cx.rng.one_in(8)
            } else {
                !cx.rng.one_in(3)
            }
        };
        let multi = bad(cx);
        if multi {
            let nq = cx.rng.pick(&queues);
            w(t, dev, "multi-queue-num-queues", nq);
        }
        let dirs: &[&str] = if multi {
            &["", "queue-0/", "queue-1/"]
        } else {
            &[""]
        };
        let mut ports = Vec::new();
        for dir in dirs {
            for (k, real) in [("tx-ring-ref", real[0]), ("rx-ring-ref", real[1])] {
                let v = match real {
                    Some(g) if !bad(cx) => format!("{g}"),
                    _ => cx.rng.pick(&GREF_JUNK).into(),
                };
                w(t, dev, &format!("{dir}{k}"), &v);
            }
            // A real unbound port (for the backend, or for another domain),
            // or junk; split channels or not.
            let keys: &[&str] = if cx.rng.one_in(2) {
                &["event-channel"]
            } else {
                &["event-channel-tx", "event-channel-rx"]
            };
            for k in keys {
                let port = if bad(cx) {
                    None
                } else {
                    evtchn::alloc_unbound(if bad(cx) { 7 } else { b }).ok()
                };
                match port {
                    Some(p) => {
                        ports.push(p);
                        w(t, dev, &format!("{dir}{k}"), &format!("{p}"));
                    }
                    None => w(t, dev, &format!("{dir}{k}"), cx.rng.pick(&PORT_JUNK)),
                }
            }
        }
        // rx-copy and rx-notify (refused without), features of any value.
        for k in ["request-rx-copy", "feature-rx-notify"] {
            if !bad(cx) {
                w(t, dev, k, "1");
            } else if !cx.rng.one_in(4) {
                w(t, dev, k, cx.rng.pick(&flags));
            }
        }
        for _ in 0..cx.rng.below(6) {
            let k = cx.rng.pick(&features);
            w(t, dev, k, cx.rng.pick(&flags));
        }
        // Connected (as netfront switches), or a state that makes no sense.
        let state = if bad(cx) {
            cx.rng.pick(&["3", "5", "7", "8", "99", "-1", "x"])
        } else {
            "4"
        };
        w(t, dev, "state", state);
        let got = dev.wait_backend("a reaction", SECOND / 2, |s| {
            s == S::Closing || s == S::Closed || s == S::Connected
        });
        t.note(
            match got {
                Ok(S::Connected) => "connected",
                Ok(_) => "refused",
                Err(_) => "ignored",
            },
            1,
        );
        // Connected to rings of junk: make the backend look at them.
        for p in &ports {
            let _ = evtchn::send(*p);
        }
        time::sleep(core::time::Duration::from_millis(20));
        for p in ports {
            let _ = evtchn::close(p);
        }
    }
    reset(t, dev);
    clear_keys(dev);
    for g in real.into_iter().flatten() {
        if gnttab::end_access(g).is_err() {
            t.note("grants-held-after-close", 1);
        }
    }
}

/// One tx ring slot as the attacks build it.
#[derive(Clone, Copy)]
enum Slot {
    Req(TxRequest),
    /// An extra-info slot, as raw bytes (its type may be anything).
    Extra([u8; 8]),
}

/// A connected hand-made netfront: one queue, one event channel, tx data
/// pages granted read-only, rx pages granted writable.
struct Front {
    tx: Page,
    rx: Page,
    tx_ref: u32,
    rx_ref: u32,
    port: u32,
    data: Page,
    data_refs: Vec<u32>,
    rx_pages: Page,
    rx_refs: Vec<u32>,
    /// A reference granted to another domain, not the backend.
    foreign_ref: u32,
    /// A reference whose grant was ended.
    revoked_ref: u32,
    tx_prod: u32,
    tx_cons: u32,
    rx_prod: u32,
    rx_cons: u32,
}

/// A valid frame at the start of data page 0: an ARP request for
/// 10.0.0.1 (the bridge's address in the tests) from 10.0.0.99, so the
/// host answers to our MAC and the rx ring has work.
fn arp_request(mac: [u8; 6]) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&[10, 0, 0, 99]);
    f[38..42].copy_from_slice(&[10, 0, 0, 1]);
    f
}

impl Front {
    fn connect(cx: &mut Ctx, t: &mut Tally, dev: &Device, mac: [u8; 6]) -> Option<Front> {
        if !reset(t, dev) {
            return None;
        }
        clear_keys(dev);
        let b = dev.backend_id;
        let tx = Page::alloc(1);
        let rx = Page::alloc(1);
        for p in [&tx, &rx] {
            p.set_u32(r::REQ_EVENT, 1);
            p.set_u32(r::RSP_EVENT, 1);
        }
        let data = Page::alloc(DATA_PAGES);
        let rx_pages = Page::alloc(DATA_PAGES);
        // Page 0: the ARP request, then an IPv4/TCP frame (for GSO); the
        // others: an Ethernet header of a local experimental ethertype to
        // a made-up unicast MAC, then random bytes.
        let seed = cx.rng.bits();
        data.fill(|i| (seed >> (i % 8 * 8)) as u8 ^ (i / 8) as u8);
        data.write(0, &arp_request(mac));
        data.write(1024, &tcp_frame(mac));
        for i in 1..DATA_PAGES {
            data.write(i * PAGE, &[0x02, 0, 0, 0, 0, i as u8]);
            data.write(i * PAGE + 6, &mac);
            data.write(i * PAGE + 12, &[0x88, 0xb5]);
        }
        let tx_ref = gnttab::grant_access(b, tx.gfn(0), false).ok()?;
        let rx_ref = gnttab::grant_access(b, rx.gfn(0), false).ok()?;
        let data_refs: Vec<u32> = (0..DATA_PAGES)
            .filter_map(|i| gnttab::grant_access(b, data.gfn(i), true).ok())
            .collect();
        let rx_refs: Vec<u32> = (0..DATA_PAGES)
            .filter_map(|i| gnttab::grant_access(b, rx_pages.gfn(i), false).ok())
            .collect();
        let foreign_ref =
            gnttab::grant_access(cx.rng.pick(&OTHER_DOMS), data.gfn(1), false).ok()?;
        let revoked_ref = gnttab::grant_access(b, data.gfn(2), true).ok()?;
        let _ = gnttab::revoke(revoked_ref);
        let port = evtchn::alloc_unbound(b).ok()?;
        w(t, dev, "tx-ring-ref", &format!("{tx_ref}"));
        w(t, dev, "rx-ring-ref", &format!("{rx_ref}"));
        w(t, dev, "event-channel", &format!("{port}"));
        w(t, dev, "request-rx-copy", "1");
        w(t, dev, "feature-rx-notify", "1");
        w(t, dev, "feature-sg", "1");
        w(t, dev, "feature-gso-tcpv4", "1");
        w(t, dev, "state", "4");
        let ok = dev
            .wait_backend("Connected", 2 * SECOND, |s| {
                s == S::Connected || s >= S::Closing
            })
            .is_ok_and(|s| s == S::Connected);
        let f = Front {
            tx,
            rx,
            tx_ref,
            rx_ref,
            port,
            data,
            data_refs,
            rx_pages,
            rx_refs,
            foreign_ref,
            revoked_ref,
            tx_prod: 0,
            tx_cons: 0,
            rx_prod: 0,
            rx_cons: 0,
        };
        if !t.ok(ok) {
            t.note("connect-failed", 1);
            f.close(t, dev);
            return None;
        }
        Some(f)
    }

    fn tx_at(idx: u32) -> usize {
        r::HEADER_SIZE + (idx % SIZE) as usize * ni::TX_SLOT_SIZE
    }

    fn rx_at(idx: u32) -> usize {
        r::HEADER_SIZE + (idx % SIZE) as usize * ni::RX_SLOT_SIZE
    }

    /// Writes `slots` after the producer index (not yet published).
    fn put(&mut self, slots: &[Slot]) {
        for s in slots {
            let mut b = [0u8; ni::TX_SLOT_SIZE];
            match s {
                Slot::Req(q) => q.encode(&mut b),
                Slot::Extra(e) => b[..8].copy_from_slice(e),
            }
            self.tx.write(Self::tx_at(self.tx_prod), &b);
            self.tx_prod = self.tx_prod.wrapping_add(1);
        }
    }

    fn kick(&self, t: &mut Tally) {
        t.rc(evtchn::send(self.port).map_or_else(|e| -e.0, |()| 0));
    }

    fn publish_tx(&self, t: &mut Tally) {
        self.tx.set_u32(r::REQ_PROD, self.tx_prod);
        self.kick(t);
    }

    /// Posts up to `n` rx requests (as many as the ring has room for),
    /// some with bogus grants, ids repeated.
    fn post_rx(&mut self, cx: &mut Ctx, t: &mut Tally, n: u32, bogus: bool) {
        let room = SIZE - self.rx_prod.wrapping_sub(self.rx_cons).min(SIZE);
        for _ in 0..n.min(room) {
            let gref = if bogus && cx.rng.one_in(2) {
                match cx.rng.below(6) {
                    0 => cx.rng.below(8) as u32,
                    1 => u32::MAX,
                    2 => self.foreign_ref,
                    3 => self.revoked_ref,
                    // Read-only: the backend may not write there.
                    4 => cx.rng.pick(&self.data_refs),
                    _ => cx.rng.bits() as u32,
                }
            } else {
                cx.rng.pick(&self.rx_refs)
            };
            let mut b = [0u8; ni::RX_SLOT_SIZE];
            RxRequest {
                id: cx.rng.below(4) as u16,
                gref,
            }
            .encode(&mut b);
            self.rx.write(Self::rx_at(self.rx_prod), &b);
            self.rx_prod = self.rx_prod.wrapping_add(1);
        }
        self.rx.set_u32(r::REQ_PROD, self.rx_prod);
        self.kick(t);
    }

    /// Takes tx responses until `want` arrived or the time is up; returns
    /// (responses, errors among them).
    fn collect_tx(&mut self, want: u32, ns: u64) -> (u32, u32) {
        let deadline = time::now_ns() + ns;
        let (mut got, mut bad) = (0, 0);
        while got < want && time::now_ns() < deadline {
            let prod = self.tx.u32(r::RSP_PROD);
            if prod.wrapping_sub(self.tx_cons) > SIZE {
                break; // the backend's index is not ours to trust either
            }
            while self.tx_cons != prod {
                let mut b = [0u8; ni::TX_SLOT_SIZE];
                self.tx.read(Self::tx_at(self.tx_cons), &mut b);
                let s = TxResponse::decode(&b).status;
                if s != ni::NETIF_RSP_OKAY && s != ni::NETIF_RSP_NULL {
                    bad += 1;
                }
                got += 1;
                self.tx_cons = self.tx_cons.wrapping_add(1);
            }
            self.tx.set_u32(r::RSP_EVENT, self.tx_cons.wrapping_add(1));
            guest_lib::sched::yield_now();
        }
        (got, bad)
    }

    /// Takes the rx responses there are; returns (responses, errors).
    fn drain_rx(&mut self) -> (u32, u32) {
        let prod = self.rx.u32(r::RSP_PROD);
        if prod.wrapping_sub(self.rx_cons) > SIZE {
            return (0, 0);
        }
        let (mut got, mut bad) = (0, 0);
        while self.rx_cons != prod {
            let mut b = [0u8; ni::RX_SLOT_SIZE];
            self.rx.read(Self::rx_at(self.rx_cons), &mut b);
            if RxResponse::decode(&b).status < 0 {
                bad += 1;
            }
            got += 1;
            self.rx_cons = self.rx_cons.wrapping_add(1);
        }
        self.rx.set_u32(r::RSP_EVENT, self.rx_cons.wrapping_add(1));
        (got, bad)
    }

    /// Ends what can be ended; grants the backend still holds are counted.
    fn close(self, t: &mut Tally, dev: &Device) {
        front::close(t, dev, self.port, self.data_refs.iter().chain(&self.rx_refs).chain([&self.tx_ref, &self.rx_ref]));
        let _ = gnttab::end_access(self.foreign_ref);
        let _ = gnttab::end_access(self.revoked_ref);
    }
}

/// An Ethernet/IPv4/TCP frame of 60 bytes to a made-up MAC (for GSO and
/// checksum offload requests), at offset 1024 of data page 0.
fn tcp_frame(mac: [u8; 6]) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 9]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    // IPv4, 20-byte header, total length 46, TCP, 10.0.0.99 -> 10.0.0.77.
    f[14..24].copy_from_slice(&[0x45, 0, 0, 46, 0, 1, 0x40, 0, 64, 6]);
    f[26..34].copy_from_slice(&[10, 0, 0, 99, 10, 0, 0, 77]);
    // TCP: ports 9/9, data offset 5, flags ACK.
    f[34..38].copy_from_slice(&[0, 9, 0, 9]);
    f[46] = 0x50;
    f[47] = 0x10;
    f
}

fn req(gref: u32, offset: u16, flags: u16, id: u16, size: u16) -> Slot {
    Slot::Req(TxRequest {
        gref,
        offset,
        flags,
        id,
        size,
    })
}

fn extra(kind: u8, more: bool, rest: [u8; 6]) -> Slot {
    let mut b = [0u8; 8];
    b[0] = kind;
    b[1] = u8::from(more);
    b[2..].copy_from_slice(&rest);
    Slot::Extra(b)
}

/// A chain of `n` data slots (n >= 1) carrying `total` bytes from data
/// pages 1.. (the first slot's size is the whole packet's, as the
/// protocol says), each buffer within its page.
fn chain(cx: &mut Ctx, f: &Front, n: usize, flags0: u16) -> Vec<Slot> {
    let sizes: Vec<u16> = (0..n).map(|_| 60 + cx.rng.below(4000) as u16).collect();
    let total: u32 = sizes.iter().map(|s| u32::from(*s)).sum();
    let total = total.min(0xffff) as u16;
    let id = cx.rng.below(8) as u16; // repeated ids
    let mut v = Vec::new();
    for (i, s) in sizes.iter().enumerate() {
        let more = if i + 1 < n { ni::NETTXF_MORE_DATA } else { 0 };
        let page = 1 + i % (DATA_PAGES - 1);
        let size = if i == 0 { total } else { *s };
        v.push(req(
            f.data_refs[page.min(f.data_refs.len() - 1)],
            0,
            more | if i == 0 { flags0 } else { 0 },
            id,
            size,
        ));
    }
    v
}

/// Packets that netback must answer (NETIF_RSP_OKAY or _ERROR) without
/// giving up on the ring; returns the packet and its kind.
fn packet(cx: &mut Ctx, f: &Front) -> (Vec<Slot>, &'static str) {
    let d = |cx: &mut Ctx| cx.rng.pick(&f.data_refs);
    let id = cx.rng.below(8) as u16;
    match cx.rng.below(16) {
        0 => (alloc::vec![req(f.data_refs[0], 0, 0, id, 60)], "arp"),
        1 => {
            let n = 2 + cx.rng.below(6) as usize;
            (chain(cx, f, n, 0), "chain")
        }
        2 => {
            let g = match cx.rng.below(4) {
                0 => cx.rng.below(8) as u32,
                1 => u32::MAX,
                2 => cx.rng.bits() as u32,
                _ => 1 << 20,
            };
            let n = 1 + cx.rng.below(3) as usize;
            let mut v = chain(cx, f, n, 0);
            let i = cx.rng.below(v.len() as u64) as usize;
            if let Slot::Req(q) = &mut v[i] {
                q.gref = g;
            }
            (v, "bogus-grant")
        }
        3 => (
            alloc::vec![req(f.foreign_ref, 0, 0, id, 100)],
            "foreign-grant",
        ),
        4 => (
            alloc::vec![req(f.revoked_ref, 0, 0, id, 100)],
            "revoked-grant",
        ),
        // The ring pages themselves, granted writable to the backend.
        5 => (
            alloc::vec![req(cx.rng.pick(&[f.tx_ref, f.rx_ref]), 0, 0, id, 64)],
            "ring-as-data",
        ),
        // Chains of 18 and 19 slots: over XEN_NETBK_LEGACY_SLOTS_MAX, under
        // the fatal limit: dropped.
        6 => {
            let n = cx
                .rng
                .pick(&[ni::XEN_NETIF_NR_SLOTS_MIN, ni::XEN_NETIF_NR_SLOTS_MIN + 1]);
            let mut v = Vec::new();
            for i in 0..n {
                let more = if i + 1 < n { ni::NETTXF_MORE_DATA } else { 0 };
                v.push(req(
                    d(cx),
                    0,
                    more,
                    id,
                    if i == 0 { (n * 100) as u16 } else { 100 },
                ));
            }
            (v, "too-many-slots")
        }
        // The first slot's size smaller than the rest.
        7 => {
            let n = 2 + cx.rng.below(3) as usize;
            let mut v = chain(cx, f, n, 0);
            if let Slot::Req(q) = &mut v[0] {
                q.size = cx.rng.pick(&[14, 20, 60, 100]);
            }
            (v, "first-smaller")
        }
        8 => (
            alloc::vec![req(
                d(cx),
                cx.rng.below(4096) as u16,
                0,
                id,
                cx.rng.pick(&[0, 1, 13])
            )],
            "size-0",
        ),
        // 65535 bytes: the largest legal packet (16 slots), and one whose
        // pieces add up to more.
        9 => {
            let mut v = alloc::vec![req(d(cx), 1, ni::NETTXF_MORE_DATA, id, 0xffff)];
            for i in 0..15 {
                let more = if i < 14 { ni::NETTXF_MORE_DATA } else { 0 };
                v.push(req(d(cx), 0, more, id, 4096));
            }
            if cx.rng.one_in(2) {
                if let Some(Slot::Req(q)) = v.last_mut() {
                    q.flags |= ni::NETTXF_MORE_DATA;
                }
                v.push(req(d(cx), 0, 0, id, 4096));
            }
            (v, "size-65535")
        }
        // Extra-info slots the backend skips or obeys: hash and XDP (types
        // it ignores), multicast add/delete (a flood past the filter's 64).
        10 => {
            let kind = cx.rng.pick(&[
                ni::XEN_NETIF_EXTRA_TYPE_HASH,
                ni::XEN_NETIF_EXTRA_TYPE_XDP,
                ni::XEN_NETIF_EXTRA_TYPE_MCAST_ADD,
                ni::XEN_NETIF_EXTRA_TYPE_MCAST_ADD,
                ni::XEN_NETIF_EXTRA_TYPE_MCAST_DEL,
            ]);
            let mut addr = [1, 0, 0x5e, 0, 0, 0];
            addr[3..].copy_from_slice(&(cx.rng.bits() as u32).to_le_bytes()[..3]);
            let mut v = alloc::vec![req(f.data_refs[0], 0, ni::NETTXF_EXTRA_INFO, id, 60)];
            v.push(extra(kind, false, addr));
            (v, "extra-ok")
        }
        // GSO and checksum offload on a frame that is not TCP, or is with
        // a segment size of 1: refused or left to the host's kernel.
        11 => {
            let (g, off) = (
                f.data_refs[cx.rng.below(2) as usize],
                cx.rng.pick(&[0u16, 1024]),
            );
            let mss = cx.rng.pick(&[1u16, 8, 536, 0xffff]);
            let v = alloc::vec![
                req(
                    g,
                    off,
                    ni::NETTXF_EXTRA_INFO | ni::NETTXF_CSUM_BLANK,
                    id,
                    60
                ),
                extra(
                    ni::XEN_NETIF_EXTRA_TYPE_GSO,
                    false,
                    [mss as u8, (mss >> 8) as u8, 1, 0, 0, 0]
                ),
            ];
            (v, "gso")
        }
        12 => (
            alloc::vec![req(
                f.data_refs[0],
                1024,
                cx.rng
                    .pick(&[ni::NETTXF_CSUM_BLANK, ni::NETTXF_DATA_VALIDATED, 0xfff3]),
                id,
                cx.rng.pick(&[34, 40, 60])
            )],
            "csum",
        ),
        // Junk frames of any size the page allows.
        _ => {
            let off = cx.rng.below(4096 - 14) as u16;
            let size = 14 + cx.rng.below(4096 - u64::from(off) - 14) as u16;
            (alloc::vec![req(d(cx), off, 0, id, size)], "junk")
        }
    }
}

/// The abuses Linux treats as fatal (xenvif_fatal_tx_err): each ends the
/// connection's service; returns the slots to publish and the kind.
fn fatal(cx: &mut Ctx, f: &Front) -> (Vec<Slot>, &'static str) {
    let id = 0;
    let g = f.data_refs[1];
    match cx.rng.below(7) {
        // Past the page: offset + size > 4096, first slot or later ones.
        0 => {
            if cx.rng.one_in(2) {
                (
                    alloc::vec![req(g, cx.rng.pick(&[4000, 4095, 0xffff]), 0, id, 200)],
                    "past-page",
                )
            } else {
                (
                    alloc::vec![
                        req(g, 0, ni::NETTXF_MORE_DATA, id, 3000),
                        req(g, 3000, 0, id, 2000)
                    ],
                    "past-page",
                )
            }
        }
        // A chain of more than FATAL_SKB_SLOTS (20) slots.
        1 => {
            let n = cx.rng.pick(&[21usize, 22, 45, 200]);
            let mut v = Vec::new();
            for i in 0..n {
                let more = if i + 1 < n { ni::NETTXF_MORE_DATA } else { 0 };
                v.push(req(g, 0, more, id, if i == 0 { 0xffff } else { 64 }));
            }
            (v, "long-chain")
        }
        // A chain that never ends at the producer index.
        2 => {
            let n = 1 + cx.rng.below(5) as usize;
            let v = (0..n)
                .map(|_| req(g, 0, ni::NETTXF_MORE_DATA, id, 100))
                .collect();
            (v, "unterminated")
        }
        // Extra-info of bad types (0, past XDP), or chained without end.
        3 => {
            let kind = cx
                .rng
                .pick(&[ni::XEN_NETIF_EXTRA_TYPE_NONE, 6, 7, 200, 255]);
            let more = cx.rng.one_in(3);
            let mut v = alloc::vec![
                req(g, 0, ni::NETTXF_EXTRA_INFO, id, 60),
                extra(kind, false, [0; 6])
            ];
            if more {
                v[1] = extra(ni::XEN_NETIF_EXTRA_TYPE_HASH, true, [0; 6]);
            }
            (
                v,
                if more {
                    "extra-unterminated"
                } else {
                    "extra-bad-type"
                },
            )
        }
        // GSO with a bad type or no size.
        4 => {
            let (ty, mss) = if cx.rng.one_in(2) {
                (cx.rng.pick(&[0u8, 3, 255]), 1448u16)
            } else {
                (1, 0)
            };
            let v = alloc::vec![
                req(f.data_refs[0], 1024, ni::NETTXF_EXTRA_INFO, id, 60),
                extra(
                    ni::XEN_NETIF_EXTRA_TYPE_GSO,
                    false,
                    [mss as u8, (mss >> 8) as u8, ty, 0, 0, 0]
                ),
            ];
            (v, "gso-bad")
        }
        // Producer indices far past the ring (published by the caller).
        5 => (Vec::new(), "tx-index"),
        _ => (Vec::new(), "rx-index"),
    }
}

/// Rewrites the published tx slots while the backend reads them (the
/// double fetch): sizes, flags, grants and offsets flip under it.
fn rewrite(cx: &mut Ctx, f: &Front, k: u32, t: &mut Tally) {
    for i in 0..300u32 {
        let at = Front::tx_at(f.tx_prod.wrapping_sub(1 + i % k.max(1)));
        match cx.rng.below(4) {
            0 => f.tx.write(
                at + 10,
                &cx.rng.pick(&[0u16, 1, 4096, 0xffff]).to_le_bytes(),
            ),
            1 => f.tx.write(
                at + 6,
                &cx.rng
                    .pick(&[0u16, ni::NETTXF_MORE_DATA, ni::NETTXF_EXTRA_INFO, 0xffff])
                    .to_le_bytes(),
            ),
            2 => f.tx.write(
                at,
                &cx.rng
                    .pick(&[0u32, u32::MAX, f.foreign_ref, f.data_refs[0]])
                    .to_le_bytes(),
            ),
            _ => {
                f.tx.write(at + 4, &cx.rng.pick(&[0u16, 4000, 0xffff]).to_le_bytes())
            }
        }
    }
    t.note("rewrites", 300);
}

/// Grants changed or ended under the backend: revoked, pointed elsewhere
/// or at another domain, then restored.
fn churn_grants(cx: &mut Ctx, f: &Front, dev: &Device, t: &mut Tally) {
    for _ in 0..40 {
        let all = [
            f.data_refs[cx.rng.below(f.data_refs.len() as u64) as usize],
            f.rx_refs[0],
        ];
        let g = cx.rng.pick(&all);
        match cx.rng.below(3) {
            0 => {
                let _ = gnttab::revoke(g);
            }
            1 => {
                let _ = gnttab::grant_access_ref(
                    g,
                    dev.backend_id,
                    cx.rng.pick(&[0xfeff0, u64::from(u32::MAX)]),
                    cx.rng.one_in(2),
                );
            }
            _ => {
                let _ = gnttab::grant_access_ref(g, cx.rng.pick(&OTHER_DOMS), f.data.gfn(0), false);
            }
        }
    }
    for (i, g) in f.data_refs.iter().enumerate() {
        let _ = gnttab::grant_access_ref(*g, dev.backend_id, f.data.gfn(i), true);
    }
    for (i, g) in f.rx_refs.iter().enumerate() {
        let _ = gnttab::grant_access_ref(*g, dev.backend_id, f.rx_pages.gfn(i), false);
    }
    t.note("grant-changes", 40);
}

/// One connection's worth of ring attacks, ending with one fatal abuse.
fn ring_attacks(cx: &mut Ctx, dev: &Device, mac: [u8; 6], n: u32, t: &mut Tally) {
    let Some(mut f) = Front::connect(cx, t, dev, mac) else {
        if n > 0 {
            t.note("reconnect-failed", 1);
        }
        return;
    };
    // rx: pages posted, a third of them bogus, more after each batch.
    f.post_rx(cx, t, 64, true);
    let (mut packets, mut sent) = (0u64, 0u32);
    for batch in 0..10 {
        let mut slots = Vec::new();
        while slots.len() < 100 {
            let (p, kind) = packet(cx, &f);
            t.note(kind, 1);
            packets += 1;
            slots.extend(p);
        }
        let k = slots.len() as u32;
        f.put(&slots);
        f.publish_tx(t);
        sent += k;
        // The double fetch once, last (a rewrite may by chance make a
        // fatal packet, which ends the connection); grants changed twice.
        match batch {
            9 => rewrite(cx, &f, k, t),
            3 | 6 => churn_grants(cx, &f, dev, t),
            _ => {}
        }
        let (got, bad) = f.collect_tx(k, COLLECT_NS);
        t.calls += u64::from(k);
        t.errors += u64::from(bad);
        t.note("responses", u64::from(got));
        let (rg, rb) = f.drain_rx();
        t.note("rx-responses", u64::from(rg));
        t.note("rx-errors", u64::from(rb));
        f.post_rx(cx, t, rg.max(8), true);
        if got < k {
            // A rewrite made a packet fatal: the vif is disabled.
            t.note("disabled-by-rewrite", 1);
            f.close(t, dev);
            return;
        }
    }
    t.note("packets", packets);
    t.note("slots", u64::from(sent));
    let (slots, kind) = fatal(cx, &f);
    t.note(kind, 1);
    match kind {
        "tx-index" => {
            let jump = cx.rng.pick(&[SIZE + 1, 1000, 0x8000_0000, u32::MAX]);
            f.tx_prod = f.tx.u32(r::REQ_PROD).wrapping_add(jump);
            f.publish_tx(t);
        }
        "rx-index" => {
            let jump = cx.rng.pick(&[SIZE + 1, 1000, 0x8000_0000, u32::MAX]);
            f.rx.set_u32(r::REQ_PROD, f.rx_prod.wrapping_add(jump));
            f.kick(t);
            // The rx ring is checked when there is a frame to place: ask
            // the host for one.
            f.put(&[req(f.data_refs[0], 0, 0, 0, 60)]);
            f.publish_tx(t);
        }
        _ => {
            f.put(&slots);
            f.publish_tx(t);
        }
    }
    // The fatal packet is not answered (nor anything after it): a packet
    // published now must stay unanswered.
    time::sleep(core::time::Duration::from_millis(50));
    f.put(&[req(f.data_refs[0], 0, 0, 1, 60)]);
    f.publish_tx(t);
    let (got, _) = f.collect_tx(SIZE, COLLECT_NS);
    t.note("answered-after-fatal", u64::from(got));
    f.close(t, dev);
}

/// A last, proper connection: ARP requests sent must be answered on tx and
/// bring ARP replies on rx (the host's bridge answers 10.0.0.1).
fn check_alive(cx: &mut Ctx, dev: &Device, mac: [u8; 6], t: &mut Tally) {
    let Some(mut f) = Front::connect(cx, t, dev, mac) else {
        t.note("reconnect-failed", 1);
        return;
    };
    f.post_rx(cx, t, 32, false);
    let (mut sent, mut rx) = (0, 0);
    for _ in 0..5 {
        f.put(&[req(f.data_refs[0], 0, 0, 7, 60)]);
        f.publish_tx(t);
        let (got, bad) = f.collect_tx(1, SECOND / 2);
        sent += u64::from(t.ok(got == 1 && bad == 0));
        let deadline = time::now_ns() + SECOND / 5;
        while time::now_ns() < deadline && rx == 0 {
            rx += f.drain_rx().0;
            guest_lib::sched::yield_now();
        }
    }
    // Both must be non-zero: the vif still sends and receives.
    t.note("alive-tx", sent);
    t.note("alive-rx", u64::from(rx));
    f.close(t, dev);
}
