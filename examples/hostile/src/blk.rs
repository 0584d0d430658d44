//! The block backend: xenbus nonsense before connecting, then a hand-made
//! frontend whose ring carries bad requests, requests rewritten while the
//! backend reads them, grants changed or ended while in use, and producer
//! indices far past the ring.

use alloc::format;
use alloc::vec::Vec;

use guest_lib::gnttab;
use guest_lib::xen_abi::blkif::{self as bi, Indirect, Protocol, ReadWrite, Request, Segment};
use guest_lib::xen_abi::ring as r;
use guest_lib::xen_abi::xenbus::XenbusState as S;
use guest_lib::xenbus::Device;
use guest_lib::xenstore::{self, Tx};
use guest_lib::{evtchn, time};

use crate::raw::Page;
use crate::front::{self, reset, w, GREF_JUNK, PORT_JUNK, SECOND};
use crate::{Ctx, Tally};

const PROTO: Protocol = Protocol::X86_64;

/// Runs the two block classes (either may be left out); returns their tallies.
pub fn attack(cx: &mut Ctx, xenbus: bool, ring: bool) -> Vec<Tally> {
    let mut tx = Tally::new("blk-xenbus");
    let mut tr = Tally::new("blk-ring");
    let dev = match guest_lib::xenbus::list("vbd")
        .ok()
        .and_then(|ids| ids.first().cloned())
        .map(|id| Device::open("vbd", &id))
    {
        Some(Ok(d)) => d,
        _ => {
            tx.ok(false);
            tx.note("no-disk", 1);
            return alloc::vec![tx, tr];
        }
    };
    let sectors = dev.backend_u64("sectors").ok().flatten().unwrap_or(0);
    let (mut tx_ns, mut tr_ns) = (0, 0);
    for _ in 0..cx.rounds {
        let start = time::now_ns();
        if xenbus {
            bad_xenbus(cx, &dev, &mut tx);
        }
        let mid = time::now_ns();
        if ring {
            for _ in 0..3 {
                ring_attacks(cx, &dev, sectors, &mut tr);
            }
        }
        tx_ns += mid - start;
        tr_ns += time::now_ns() - mid;
    }
    tx.busy_ns = Some(tx_ns);
    tr.busy_ns = Some(tr_ns);
    alloc::vec![tx, tr]
}


/// Ring references, event channels, orders and protocols that are wrong,
/// published as a frontend would, one set at a time.
fn bad_xenbus(cx: &mut Ctx, dev: &Device, t: &mut Tally) {
    let orders = ["0", "1", "4", "5", "31", "32", "4294967295", "-1", "z"];
    let protos = [
        "x86_64-abi",
        "x86_32-abi",
        "arm-abi",
        "",
        "x86_64-abi\u{0}junk",
    ];
    for _ in 0..6 {
        if !reset(t, dev) {
            return;
        }
        let order = cx.rng.pick(&orders);
        if cx.rng.one_in(2) {
            w(t, dev, "ring-page-order", order);
            for i in 0..cx.rng.below(20) {
                w(t, dev, &format!("ring-ref{i}"), cx.rng.pick(&GREF_JUNK));
            }
        } else {
            let _ = xenstore::rm(Tx::NONE, &dev.front_path("ring-page-order"));
            w(t, dev, "ring-ref", cx.rng.pick(&GREF_JUNK));
        }
        // A real unbound port now and then, else junk.
        let port = if cx.rng.one_in(3) {
            evtchn::alloc_unbound(dev.backend_id).ok()
        } else {
            None
        };
        match port {
            Some(p) => w(t, dev, "event-channel", &format!("{p}")),
            None => w(t, dev, "event-channel", cx.rng.pick(&PORT_JUNK)),
        }
        w(t, dev, "protocol", cx.rng.pick(&protos));
        w(
            t,
            dev,
            "feature-persistent",
            cx.rng.pick(&["0", "1", "2", "yes"]),
        );
        // Initialised, or a state that makes no sense here.
        let state = cx.rng.pick(&["3", "3", "4", "7", "8", "99", "-1", "x"]);
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
        if let Some(p) = port {
            let _ = evtchn::close(p);
        }
    }
    reset(t, dev);
}

/// A connected hand-made frontend: one ring page, a port, data pages.
struct Front {
    ring: Page,
    ring_ref: u32,
    port: u32,
    data: Page,
    data_refs: Vec<u32>,
    indirect: Page,
    indirect_ref: u32,
    prod: u32,
    rsp_cons: u32,
    size: u32,
}

impl Front {
    fn connect(t: &mut Tally, dev: &Device) -> Option<Front> {
        if !reset(t, dev) {
            return None;
        }
        let ring = Page::alloc(1);
        let data = Page::alloc(4);
        let indirect = Page::alloc(1);
        let b = dev.backend_id;
        let ring_ref = gnttab::grant_access(b, ring.gfn(0), false).ok()?;
        let data_refs: Vec<u32> = (0..4)
            .filter_map(|i| gnttab::grant_access(b, data.gfn(i), false).ok())
            .collect();
        let indirect_ref = gnttab::grant_access(b, indirect.gfn(0), false).ok()?;
        let port = evtchn::alloc_unbound(b).ok()?;
        let _ = xenstore::rm(Tx::NONE, &dev.front_path("ring-page-order"));
        w(t, dev, "ring-ref", &format!("{ring_ref}"));
        w(t, dev, "event-channel", &format!("{port}"));
        w(t, dev, "protocol", PROTO.name());
        w(t, dev, "feature-persistent", "0");
        w(t, dev, "state", "3");
        let ok = dev
            .wait_backend("Connected", 2 * SECOND, |s| {
                s == S::Connected || s >= S::Closing
            })
            .is_ok_and(|s| s == S::Connected);
        if !t.ok(ok) {
            t.note("connect-failed", 1);
            return None;
        }
        w(t, dev, "state", "4");
        let size = r::ring_size(4096, PROTO.slot_size());
        Some(Front {
            ring,
            ring_ref,
            port,
            data,
            data_refs,
            indirect,
            indirect_ref,
            prod: 0,
            rsp_cons: 0,
            size,
        })
    }

    fn slot(&self, idx: u32) -> usize {
        r::HEADER_SIZE + (idx % self.size) as usize * PROTO.slot_size()
    }

    /// Puts `req` in the next slot (not yet published).
    fn put(&mut self, req: &Request) {
        let mut buf = [0u8; 112];
        req.encode(PROTO, &mut buf);
        self.ring
            .write(self.slot(self.prod), &buf[..PROTO.request_size()]);
        self.prod = self.prod.wrapping_add(1);
    }

    fn publish(&self, t: &mut Tally) {
        self.ring.set_u32(r::REQ_PROD, self.prod);
        t.rc(evtchn::send(self.port).map_or_else(|e| -e.0, |()| 0));
    }

    /// Takes responses until `want` more arrived or the time is up;
    /// returns (responses, errors among them).
    fn collect(&mut self, want: u32, ns: u64) -> (u32, u32) {
        let deadline = time::now_ns() + ns;
        let (mut got, mut bad) = (0, 0);
        while got < want && time::now_ns() < deadline {
            let prod = self.ring.u32(r::RSP_PROD);
            if prod.wrapping_sub(self.rsp_cons) > self.size {
                break; // the backend's index is not ours to trust either
            }
            while self.rsp_cons != prod {
                let mut rsp = [0u8; 16];
                self.ring.read(self.slot(self.rsp_cons), &mut rsp);
                if i16::from_le_bytes([rsp[10], rsp[11]]) != bi::BLKIF_RSP_OKAY {
                    bad += 1;
                }
                got += 1;
                self.rsp_cons = self.rsp_cons.wrapping_add(1);
            }
            self.ring
                .set_u32(r::RSP_EVENT, self.rsp_cons.wrapping_add(1));
            guest_lib::sched::yield_now();
        }
        (got, bad)
    }

    /// Ends what can be ended; grants the backend still holds are leaked.
    fn close(self, t: &mut Tally, dev: &Device) {
        front::close(t, dev, self.port, self.data_refs.iter().chain([&self.ring_ref, &self.indirect_ref]));
    }
}

fn seg(cx: &mut Ctx, f: &Front, bogus: bool) -> Segment {
    if !bogus {
        let first = cx.rng.below(8) as u8;
        return Segment {
            gref: cx.rng.pick(&f.data_refs),
            first_sect: first,
            last_sect: first + cx.rng.below(8 - u64::from(first)) as u8,
        };
    }
    let gref = match cx.rng.below(5) {
        0 => cx.rng.below(8) as u32,
        1 => u32::MAX,
        2 => f.ring_ref,
        3 => cx.rng.bits() as u32,
        _ => cx.rng.pick(&f.data_refs),
    };
    Segment {
        gref,
        first_sect: cx.rng.pick(&[0, 7, 8, 9, 255]),
        last_sect: cx.rng.pick(&[0, 3, 7, 8, 255]),
    }
}

fn rw(cx: &mut Ctx, f: &Front, sectors: u64, bogus: bool) -> Request {
    let mut seg_arr = [Segment::default(); bi::BLKIF_MAX_SEGMENTS_PER_REQUEST];
    let n = if bogus && cx.rng.one_in(2) {
        cx.rng.pick(&[0u8, 12, 100, 255])
    } else {
        1 + cx.rng.below(11) as u8
    };
    for s in seg_arr.iter_mut() {
        let b = bogus && cx.rng.one_in(3);
        *s = seg(cx, f, b);
    }
    let sector = if bogus && cx.rng.one_in(2) {
        cx.rng.pick(&[
            sectors,
            sectors.wrapping_sub(1),
            u64::MAX,
            u64::MAX - 6,
            1 << 55,
        ])
    } else {
        cx.rng.below(sectors.saturating_sub(88).max(1))
    };
    let op = if bogus && cx.rng.one_in(3) {
        cx.rng.pick(&[
            bi::BLKIF_OP_WRITE_BARRIER,
            bi::BLKIF_OP_FLUSH_DISKCACHE,
            bi::BLKIF_OP_RESERVED_1,
            7,
            200,
        ])
    } else {
        cx.rng
            .pick(&[bi::BLKIF_OP_READ, bi::BLKIF_OP_READ, bi::BLKIF_OP_WRITE])
    };
    Request::ReadWrite(ReadWrite {
        operation: op,
        nr_segments: n,
        handle: cx.rng.bits() as u16,
        id: cx.rng.bits(),
        sector_number: sector,
        seg: seg_arr,
    })
}

fn indirect(cx: &mut Ctx, f: &Front, sectors: u64) -> Request {
    // The indirect page: segments, some bogus.
    let n = cx.rng.pick(&[0u16, 1, 8, 256, 257, 512, 4096, u16::MAX]);
    for i in 0..512usize {
        let b = cx.rng.one_in(4);
        let s = seg(cx, f, b);
        let mut b = [0u8; 8];
        s.encode(&mut b);
        f.indirect.write(i * 8, &b);
    }
    let mut grefs = [0u32; bi::BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
    for g in grefs.iter_mut() {
        *g = match cx.rng.below(4) {
            0 => f.ring_ref,
            1 => cx.rng.bits() as u32,
            _ => f.indirect_ref,
        };
    }
    Request::Indirect(Indirect {
        indirect_op: cx.rng.pick(&[
            bi::BLKIF_OP_READ,
            bi::BLKIF_OP_READ,
            bi::BLKIF_OP_WRITE,
            bi::BLKIF_OP_INDIRECT,
            9,
        ]),
        nr_segments: n,
        id: cx.rng.bits(),
        sector_number: if cx.rng.one_in(3) {
            u64::MAX - 3
        } else {
            cx.rng.below(sectors.max(1))
        },
        handle: 0,
        indirect_grefs: grefs,
    })
}

/// One connection's worth of ring attacks; ends with a producer index far
/// past the ring (which closes the device), then closes.
fn ring_attacks(cx: &mut Ctx, dev: &Device, sectors: u64, t: &mut Tally) {
    let Some(mut f) = Front::connect(t, dev) else {
        return;
    };
    // Reads and writes alike: the disk is this guest's own scratch image.
    let mut sent = 0;
    for batch in 0..12 {
        let k = 1 + cx.rng.below(u64::from(f.size)) as u32;
        for _ in 0..k {
            let req = match cx.rng.below(8) {
                0 => indirect(cx, &f, sectors),
                1 => Request::Discard(bi::Discard {
                    flag: cx.rng.bits() as u8,
                    handle: 0,
                    id: cx.rng.bits(),
                    sector_number: cx.rng.wild(),
                    nr_sectors: cx.rng.wild(),
                }),
                2 => Request::Unknown {
                    operation: cx.rng.pick(&[4, 7, 8, 99, 255]),
                    id: cx.rng.bits(),
                },
                3 | 4 => rw(cx, &f, sectors, false),
                _ => rw(cx, &f, sectors, true),
            };
            f.put(&req);
        }
        f.publish(t);
        sent += k;
        match batch % 4 {
            // The double fetch: rewrite the slots the backend is reading,
            // flipping segment counts, grants and sectors.
            1 => {
                for i in 0..400u32 {
                    let idx = f.prod.wrapping_sub(1 + i % k);
                    let at = f.slot(idx);
                    f.ring.write(at + 1, &[cx.rng.pick(&[1u8, 11, 12, 255, 0])]);
                    f.ring.write(
                        at + 16,
                        &cx.rng.pick(&[0u64, u64::MAX, sectors]).to_le_bytes(),
                    );
                    f.ring.write(at + 24, &cx.rng.wild().to_le_bytes());
                }
                t.note("rewrites", 400);
            }
            // A grant changed or ended under the backend: flags cleared,
            // frame pointed elsewhere, readonly set, then restored.
            2 => {
                for _ in 0..50 {
                    let r = cx.rng.pick(&f.data_refs);
                    match cx.rng.below(3) {
                        0 => {
                            let _ = gnttab::revoke(r);
                        }
                        1 => {
                            let _ = gnttab::grant_access_ref(
                                r,
                                dev.backend_id,
                                cx.rng.pick(&[f.ring.gfn(0), 0xfeff0, u64::from(u32::MAX)]),
                                cx.rng.one_in(2),
                            );
                        }
                        _ => {
                            let _ = gnttab::grant_access_ref(
                                r,
                                cx.rng.pick(&[0x7ff0, 5, 0xffff]),
                                f.data.gfn(0),
                                false,
                            );
                        }
                    }
                }
                for (i, r) in f.data_refs.iter().enumerate() {
                    let _ = gnttab::grant_access_ref(*r, dev.backend_id, f.data.gfn(i), false);
                }
                t.note("grant-changes", 50);
            }
            _ => {}
        }
        let (got, bad) = f.collect(k, SECOND / 2);
        t.calls += u64::from(k);
        t.errors += u64::from(bad + (k - got.min(k)));
        t.note("responses", u64::from(got));
    }
    t.note("requests", u64::from(sent));
    // Indices far past the ring: the backend must give up on this ring
    // (and only on it).
    let jump = cx.rng.pick(&[f.size + 1, 1000, 0x8000_0000, u32::MAX]);
    f.prod = f.ring.u32(r::REQ_PROD).wrapping_add(jump);
    f.publish(t);
    let gone = dev
        .wait_backend("Closing", SECOND, |s| s >= S::Closing)
        .is_ok();
    t.note("ring-index-closed-device", u64::from(gone));
    f.close(t, dev);
}
