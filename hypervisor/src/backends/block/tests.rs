//! End-to-end tests of the backend against the scripted frontend of
//! [`test_utils`](super::test_utils): real threads, real xenstored, real
//! image files, guest memory without KVM.

use xen_abi::blkif::*;
use xen_abi::grant_table::*;
use xen_abi::xenbus::XenbusState;

use super::test_utils::*;

fn image(name: &str, sectors: u64) -> (std::path::PathBuf, String) {
    let dir = scratch(name);
    let path = dir.join("disk.img");
    patterned_image(&path, sectors);
    let s = path.display().to_string();
    (path, s)
}

#[test]
fn reads_and_writes_go_straight_to_guest_pages() {
    let (path, img) = image("rw", 256);
    let mut td = TestDomain::new();
    let dev = td.device(&format!("format=raw, vdev=xvda, access=rw, target={img}"));
    let mut fe =
        TestFrontend::connect(&mut td, dev, RING, Connect { protocol: xen_abi::blkif::Protocol::X86_32, ..Default::default() });
    assert_eq!(td.read(&format!("{}/sectors", fe.paths.backend)), "256");
    assert_eq!(td.read(&format!("{}/feature-max-indirect-segments", fe.paths.backend)), "256");

    // Three segments: sectors 8..16 into page A, 16..20 into half of page B, 20..21 into C.
    let (a, b, c) = (td.page(), td.page(), td.page());
    let (ga, gb, gc) = (td.grant(a, false), td.grant(b, false), td.grant(c, false));
    let st = fe.status(&td, rw(BLKIF_OP_READ, 1, 8, &[(ga, 0, 7), (gb, 4, 7), (gc, 0, 0)]));
    assert_eq!(st, BLKIF_RSP_OKAY);
    assert_eq!(td.dom.ram.read_obj::<u8>(a).unwrap(), 8);
    assert_eq!(td.dom.ram.read_obj::<u8>(a + 4095).unwrap(), 15);
    assert_eq!(td.dom.ram.read_obj::<u8>(b).unwrap(), 0, "before first_sect untouched");
    assert_eq!(td.dom.ram.read_obj::<u8>(b + 2048).unwrap(), 16);
    assert_eq!(td.dom.ram.read_obj::<u8>(c + 511).unwrap(), 20);
    assert_eq!(td.dom.ram.read_obj::<u8>(c + 512).unwrap(), 0);
    assert_eq!(td.grant_flags(ga), GTF_PERMIT_ACCESS, "unmapped after the request");

    // Write page A (now holding sectors 8..16) to sectors 100..108.
    td.dom.ram.write(a, &[0x5a; 4096]).unwrap();
    let ro = td.grant(a, true);
    assert_eq!(fe.status(&td, rw(BLKIF_OP_WRITE, 2, 100, &[(ro, 0, 7)])), BLKIF_RSP_OKAY, "read-only grant suffices for a write");
    let data = std::fs::read(&path).unwrap();
    assert!(data[100 * 512..108 * 512].iter().all(|&x| x == 0x5a));
    assert_eq!(data[108 * 512], 108);

    let m = fe.dev.metrics();
    assert_eq!((m.reads, m.writes, m.bytes_read, m.bytes_written), (1, 1, 13 * 512, 4096));
}

#[test]
fn bad_requests_fail_alone() {
    let (_path, img) = image("bad", 64);
    let mut td = TestDomain::new();
    let dev = td.device(&format!("{img},raw,xvdb,w"));
    let mut fe = TestFrontend::connect(&mut td, dev, RING, Connect::default());
    let p = td.page();
    let g = td.grant(p, false);
    assert_eq!(fe.status(&td, rw(BLKIF_OP_READ, 1, 60, &[(g, 0, 7)])), BLKIF_RSP_ERROR, "past the end");
    assert_eq!(fe.status(&td, rw(BLKIF_OP_READ, 2, 0, &[(g, 3, 2)])), BLKIF_RSP_ERROR, "first > last");
    assert_eq!(fe.status(&td, rw(BLKIF_OP_READ, 3, 0, &[])), BLKIF_RSP_ERROR, "no segments");
    assert_eq!(fe.status(&td, Request::Unknown { operation: 4, id: 4 }), BLKIF_RSP_EOPNOTSUPP, "unknown operation");
    let other = td.grant_to(p, GTF_PERMIT_ACCESS, 7);
    assert_eq!(fe.status(&td, rw(BLKIF_OP_READ, 5, 0, &[(other, 0, 7)])), BLKIF_RSP_ERROR, "granted to another domain");
    let ro = td.grant(p, true);
    assert_eq!(fe.status(&td, rw(BLKIF_OP_READ, 6, 0, &[(ro, 0, 7)])), BLKIF_RSP_ERROR, "a read needs a writable grant");
    let outside = td.grant_to(RAM + 0x1000, GTF_PERMIT_ACCESS, 0);
    assert_eq!(fe.status(&td, rw(BLKIF_OP_READ, 7, 0, &[(outside, 0, 7)])), BLKIF_RSP_ERROR, "frame outside RAM");
    assert_eq!(fe.status(&td, rw(BLKIF_OP_READ, 8, 0, &[(99_999, 0, 7)])), BLKIF_RSP_ERROR, "reference beyond the table");
    // A failed multi-segment request releases what it had mapped.
    assert_eq!(fe.status(&td, rw(BLKIF_OP_READ, 9, 0, &[(g, 0, 7), (other, 0, 7)])), BLKIF_RSP_ERROR);
    assert_eq!(td.grant_flags(g), GTF_PERMIT_ACCESS);
    // ...and the device still works.
    assert_eq!(fe.status(&td, rw(BLKIF_OP_READ, 10, 0, &[(g, 0, 7)])), BLKIF_RSP_OKAY);
    let m = fe.dev.metrics();
    assert_eq!((m.errors, m.unsupported, m.reads), (8, 1, 1));
}

#[test]
fn read_only_disks() {
    let (_path, img) = image("ro", 64);
    let mut td = TestDomain::new();
    let dev = td.device(&format!("file:{img},xvdc,r"));
    let mut fe = TestFrontend::connect(&mut td, dev, RING, Connect::default());
    let be = fe.paths.backend.clone();
    assert_eq!(td.read(&format!("{be}/mode")), "r");
    assert_eq!(td.read(&format!("{be}/info")), VDISK_READONLY.to_string());
    assert_eq!(td.read(&format!("{be}/feature-flush-cache")), "0");
    assert_eq!(td.read(&format!("{be}/feature-discard")), "0");
    let p = td.page();
    let g = td.grant(p, false);
    assert_eq!(fe.status(&td, rw(BLKIF_OP_WRITE, 1, 0, &[(g, 0, 7)])), BLKIF_RSP_ERROR);
    assert_eq!(fe.status(&td, rw(BLKIF_OP_FLUSH_DISKCACHE, 2, 0, &[])), BLKIF_RSP_EOPNOTSUPP);
    let d = Request::Discard(Discard { flag: 0, handle: 0, id: 3, sector_number: 0, nr_sectors: 8 });
    assert_eq!(fe.status(&td, d), BLKIF_RSP_EOPNOTSUPP);
    assert_eq!(fe.status(&td, rw(BLKIF_OP_READ, 4, 0, &[(g, 0, 7)])), BLKIF_RSP_OKAY);
}

/// A CD-ROM asked for with `w` (issue 9: it was served read-write and
/// changed): the backend advertises it read-only and refuses writes.
#[test]
fn a_cdrom_is_read_only_even_when_asked_for_w() {
    for (n, spec) in ["raw,hdc,w,devtype=cdrom", "raw,hdc,rw,cdrom", "raw,hdc:cdrom,w"].into_iter().enumerate() {
        let (path, img) = image(&format!("cdrom{n}"), 64);
        let before = std::fs::read(&path).unwrap();
        let mut td = TestDomain::new();
        let dev = td.device(&format!("{img},{spec}"));
        let mut fe = TestFrontend::connect(&mut td, dev, RING, Connect::default());
        let be = fe.paths.backend.clone();
        assert_eq!(td.read(&format!("{be}/mode")), "r", "{spec}");
        assert_eq!(td.read(&format!("{be}/info")), (VDISK_READONLY | VDISK_CDROM).to_string(), "{spec}");
        let p = td.page();
        let g = td.grant(p, false);
        assert_eq!(fe.status(&td, rw(BLKIF_OP_WRITE, 1, 0, &[(g, 0, 7)])), BLKIF_RSP_ERROR, "{spec}");
        assert_eq!(std::fs::read(&path).unwrap(), before, "{spec}: the image is unchanged");
    }
}

#[test]
fn flush_barrier_and_discard() {
    let (path, img) = image("flush", 64);
    let mut td = TestDomain::new();
    let dev = td.device(&format!("{img},raw,xvda,w"));
    let mut fe = TestFrontend::connect(&mut td, dev, RING, Connect::default());
    let p = td.page();
    td.dom.ram.write(p, &[7; 4096]).unwrap();
    let g = td.grant(p, true);
    assert_eq!(fe.status(&td, rw(BLKIF_OP_FLUSH_DISKCACHE, 1, 0, &[])), BLKIF_RSP_OKAY);
    assert_eq!(fe.status(&td, rw(BLKIF_OP_FLUSH_DISKCACHE, 2, 8, &[(g, 0, 7)])), BLKIF_RSP_OKAY, "flush with data");
    assert_eq!(fe.status(&td, rw(BLKIF_OP_WRITE_BARRIER, 3, 16, &[(g, 0, 7)])), BLKIF_RSP_OKAY);
    let data = std::fs::read(&path).unwrap();
    assert!(data[8 * 512..24 * 512].iter().all(|&x| x == 7));
    let d = Request::Discard(Discard { flag: 0, handle: 0, id: 4, sector_number: 32, nr_sectors: 16 });
    let st = fe.status(&td, d);
    assert!(st == BLKIF_RSP_OKAY || st == BLKIF_RSP_EOPNOTSUPP, "{st}");
    if st == BLKIF_RSP_OKAY {
        let data = std::fs::read(&path).unwrap();
        assert!(data[32 * 512..48 * 512].iter().all(|&x| x == 0), "discarded sectors read as zeros");
        assert_eq!(data.len(), 64 * 512, "size kept");
    }
    let d = Request::Discard(Discard { flag: 0, handle: 0, id: 5, sector_number: 60, nr_sectors: 8 });
    assert_eq!(fe.status(&td, d), BLKIF_RSP_ERROR, "discard past the end");
}

#[test]
fn indirect_requests_and_many_in_flight() {
    let (_path, img) = image("indirect", 1024);
    let mut td = TestDomain::new();
    let dev = td.device(&format!("{img},raw,xvda,w"));
    let mut fe = TestFrontend::connect(&mut td, dev, RING, Connect { order: 1, ..Default::default() });
    assert_eq!(fe.ring.layout().size(), 64, "two-page ring");
    // 20 data pages, described in one indirect page.
    let pages: Vec<u64> = (0..20).map(|_| td.page()).collect();
    let grefs: Vec<u32> = pages.iter().map(|&p| td.grant(p, false)).collect();
    let ind = td.page();
    for (i, g) in grefs.iter().enumerate() {
        let mut seg = [0u8; 8];
        Segment { gref: *g, first_sect: 0, last_sect: 7 }.encode(&mut seg);
        td.dom.ram.write(ind + i as u64 * 8, &seg).unwrap();
    }
    let ig = td.grant(ind, true);
    let req = |id, sector| {
        Request::Indirect(Indirect {
            indirect_op: BLKIF_OP_READ,
            nr_segments: 20,
            id,
            sector_number: sector,
            handle: 0,
            indirect_grefs: [ig, 0, 0, 0, 0, 0, 0, 0],
        })
    };
    assert_eq!(fe.status(&td, req(1, 160)), BLKIF_RSP_OKAY);
    assert_eq!(td.dom.ram.read_obj::<u8>(pages[0]).unwrap(), 160);
    assert_eq!(td.dom.ram.read_obj::<u8>(pages[19] + 4095).unwrap(), (160 + 159) as u8);
    // Many requests at once: all answered, out of order allowed.
    let batch: Vec<_> = (0..48u64).map(|i| rw(BLKIF_OP_READ, 100 + i, i * 8, &[(grefs[(i % 20) as usize], 0, 7)])).collect();
    let mut ids: Vec<u64> = fe
        .submit(&td, &batch)
        .iter()
        .map(|r| {
            assert_eq!(r.status, BLKIF_RSP_OKAY);
            r.id
        })
        .collect();
    ids.sort();
    assert_eq!(ids, (100..148).collect::<Vec<_>>());
    assert!(fe.dev.metrics().max_in_flight > 1, "requests overlap");
    // An indirect descriptor out of range fails that request only.
    let mut bad = [0u8; 8];
    Segment { gref: grefs[0], first_sect: 0, last_sect: 9 }.encode(&mut bad);
    td.dom.ram.write(ind + 5 * 8, &bad).unwrap();
    assert_eq!(fe.status(&td, req(2, 0)), BLKIF_RSP_ERROR);
}

#[test]
fn persistent_grants_are_kept_and_rechecked() {
    let (_path, img) = image("persist", 64);
    let mut td = TestDomain::new();
    let dev = td.device(&format!("{img},raw,xvda,w"));
    let mut fe = TestFrontend::connect(&mut td, dev, RING, Connect { persistent: true, ..Default::default() });
    let p = td.page();
    let g = td.grant(p, false);
    assert_eq!(fe.status(&td, rw(BLKIF_OP_READ, 1, 8, &[(g, 0, 7)])), BLKIF_RSP_OKAY);
    assert_eq!(td.grant_flags(g), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING, "kept mapped");
    assert_eq!(fe.status(&td, rw(BLKIF_OP_READ, 2, 16, &[(g, 0, 7)])), BLKIF_RSP_OKAY);
    assert_eq!(td.dom.ram.read_obj::<u8>(p).unwrap(), 16);
    // The guest revokes it behind the backend's back: that request fails.
    td.set_grant(g, p, GTF_INVALID, 0);
    assert_eq!(fe.status(&td, rw(BLKIF_OP_READ, 3, 24, &[(g, 0, 7)])), BLKIF_RSP_ERROR);
    // Re-granted, it works again.
    td.set_grant(g, p, GTF_PERMIT_ACCESS, 0);
    assert_eq!(fe.status(&td, rw(BLKIF_OP_READ, 4, 24, &[(g, 0, 7)])), BLKIF_RSP_OKAY);
    // Closing releases every grant, ring pages included.
    set_frontend_state(&td, &fe, XenbusState::Closed);
    td.wait_for(&format!("{}/state", fe.paths.backend), "6");
    assert_eq!(td.grant_flags(g) & (GTF_READING | GTF_WRITING), 0);
    assert_eq!(td.grant_flags(fe.ring_refs[0]) & (GTF_READING | GTF_WRITING), 0);
    assert_eq!(td.dom.gnttab.pinned(), 0);
}

#[test]
fn a_broken_ring_closes_only_its_device() {
    let (_p1, img1) = image("broken1", 64);
    let (_p2, img2) = image("broken2", 64);
    let mut td = TestDomain::new();
    let d1 = td.device(&format!("{img1},raw,xvda,w"));
    let d2 = td.device(&format!("{img2},raw,xvdb,w"));
    let mut f1 = TestFrontend::connect(&mut td, d1, RING, Connect::default());
    let mut f2 = TestFrontend::connect(&mut td, d2, RING + 0x4000, Connect::default());
    // The frontend claims 100 requests on a 32-slot ring.
    let ram = td.dom.ram.clone();
    let req_prod = ram.atomic_u32(RING).unwrap();
    req_prod.store(100, std::sync::atomic::Ordering::SeqCst);
    use crate::xen::sink::EventSink;
    f1.dev.notify(&td.dom, 0);
    td.wait_for(&format!("{}/state", f1.paths.backend), "6");
    assert!(backend_error(&td, &f1.paths).contains("broke the ring"), "{}", backend_error(&td, &f1.paths));
    // The other device, and the domain, carry on.
    assert!(!td.dom.is_stopped());
    let p = td.page();
    let g = td.grant(p, false);
    assert_eq!(f2.status(&td, rw(BLKIF_OP_READ, 1, 8, &[(g, 0, 7)])), BLKIF_RSP_OKAY);
    // The broken device answers nothing more.
    req_prod.store(1, std::sync::atomic::Ordering::SeqCst);
    f1.dev.notify(&td.dom, 0);
    settle();
    assert_eq!(f1.ring.unconsumed_responses(), Ok(0));
    let _ = &mut f1;
}

#[test]
fn close_and_reconnect_like_a_boot_loader_handing_over() {
    use crate::xen::evtchn::PortState;
    let (_path, img) = image("reconnect", 64);
    let mut td = TestDomain::new();
    let dev = td.device(&format!("{img},raw,xvda,w"));
    // The boot loader: a big ring, persistent grants, an indirect request.
    let mut fe = TestFrontend::connect(
        &mut td,
        dev.clone(),
        RING,
        Connect { protocol: xen_abi::blkif::Protocol::X86_32, order: 2, persistent: true },
    );
    let p = td.page();
    let g = td.grant(p, false);
    assert_eq!(fe.status(&td, rw(BLKIF_OP_READ, 1, 8, &[(g, 0, 7)])), BLKIF_RSP_OKAY);
    assert_eq!(td.grant_flags(g), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING, "kept persistently");
    set_frontend_state(&td, &fe, XenbusState::Closing);
    td.wait_for(&format!("{}/state", fe.paths.backend), "5");
    set_frontend_state(&td, &fe, XenbusState::Closed);
    td.wait_for(&format!("{}/state", fe.paths.backend), "6");
    // Everything of the old connection is released: ring pages, persistent
    // grants, and the backend's end of the event channel.
    assert_eq!(td.dom.gnttab.pinned(), 0);
    assert_eq!(td.grant_flags(g), GTF_PERMIT_ACCESS);
    assert_eq!(td.dom.state().evtchn.state(fe.port), Some(PortState::Unbound { remote_dom: 0 }));
    assert_eq!(td.dom.state().evtchn.close(fe.port), Ok(()), "the frontend closes its port");
    fe.unpublish(&td);
    set_frontend_state(&td, &fe, XenbusState::Initialising);
    td.wait_for(&format!("{}/state", fe.paths.backend), "2");
    // The next kernel connects afresh: new ring pages and grants, a new
    // port (maybe the old number again), a one-page ring, no persistence.
    let mut fe2 = TestFrontend::connect(&mut td, dev.clone(), RING + 0x8000, Connect::default());
    assert_eq!(fe2.ring.layout().size(), 32);
    let p2 = td.page();
    let g2 = td.grant(p2, false);
    assert_eq!(fe2.status(&td, rw(BLKIF_OP_READ, 1, 40, &[(g2, 0, 7)])), BLKIF_RSP_OKAY);
    assert_eq!(td.dom.ram.read_obj::<u8>(p2).unwrap(), 40);
    assert_eq!(td.grant_flags(g2), GTF_PERMIT_ACCESS, "not persistent this time");
    assert_eq!(td.dom.ram.read_obj::<u8>(p).unwrap(), 8, "the old ring's pages are left alone");
    let _ = &mut fe;
}

#[test]
fn a_kernel_that_did_not_close_resets_the_device_first() {
    let (_path, img) = image("reset", 64);
    let mut td = TestDomain::new();
    let dev = td.device(&format!("{img},raw,xvda,w"));
    let fe = TestFrontend::connect(&mut td, dev.clone(), RING, Connect { persistent: true, ..Default::default() });
    let p = td.page();
    let g = td.grant(p, false);
    let mut fe = fe;
    assert_eq!(fe.status(&td, rw(BLKIF_OP_READ, 1, 8, &[(g, 0, 7)])), BLKIF_RSP_OKAY);
    // A crashed kernel's successor writes Initialising while the backend is
    // Connected: Linux's blkback ignores it, and so do we.
    set_frontend_state(&td, &fe, XenbusState::Initialising);
    settle();
    assert_eq!(td.read(&format!("{}/state", fe.paths.backend)), "4");
    // What Linux's xenbus_reset_state does then: Closing, Closed,
    // Initialising, each waiting for the backend to follow.
    set_frontend_state(&td, &fe, XenbusState::Closing);
    td.wait_for(&format!("{}/state", fe.paths.backend), "5");
    set_frontend_state(&td, &fe, XenbusState::Closed);
    td.wait_for(&format!("{}/state", fe.paths.backend), "6");
    assert_eq!(td.dom.gnttab.pinned(), 0, "old ring and persistent grants released");
    fe.unpublish(&td);
    set_frontend_state(&td, &fe, XenbusState::Initialising);
    td.wait_for(&format!("{}/state", fe.paths.backend), "2");
    let mut fe2 = TestFrontend::connect(&mut td, dev, RING + 0x8000, Connect { order: 1, ..Default::default() });
    let g2 = td.grant(p, false);
    assert_eq!(fe2.status(&td, rw(BLKIF_OP_READ, 7, 16, &[(g2, 0, 7)])), BLKIF_RSP_OKAY);
    assert_eq!(td.dom.ram.read_obj::<u8>(p).unwrap(), 16);
}

#[test]
fn a_missed_initialising_still_connects_and_odd_states_are_fatal() {
    let (_path, img) = image("missed", 64);
    let mut td = TestDomain::new();
    let dev = td.device(&format!("{img},raw,xvda,w"));
    let fe = TestFrontend::connect(&mut td, dev.clone(), RING, Connect::default());
    set_frontend_state(&td, &fe, XenbusState::Closed);
    td.wait_for(&format!("{}/state", fe.paths.backend), "6");
    fe.unpublish(&td);
    // The frontend publishes a new ring and goes straight to Initialised
    // (the Initialising in between coalesced into one watch event).
    let mut fe2 = TestFrontend::connect_from(&mut td, dev, RING + 0x8000, Connect::default(), "6");
    let p = td.page();
    let g = td.grant(p, false);
    assert_eq!(fe2.status(&td, rw(BLKIF_OP_READ, 2, 24, &[(g, 0, 7)])), BLKIF_RSP_OKAY);
    set_frontend_state(&td, &fe2, XenbusState::InitWait);
    td.wait_for(&format!("{}/state", fe2.paths.backend), "5");
    assert!(backend_error(&td, &fe2.paths).contains("saw state 2 at frontend"), "{}", backend_error(&td, &fe2.paths));
}

#[test]
fn connection_errors_are_reported_in_xenstore() {
    let (_path, img) = image("connerr", 64);
    let mut td = TestDomain::new();
    let dev = td.device(&format!("{img},raw,xvda,w"));
    let paths = super::xenbus::paths(1, dev.devid());
    td.wait_for(&format!("{}/state", paths.backend), "2");
    // A ring page granted to someone else.
    let g = td.grant_to(RING, GTF_PERMIT_ACCESS, 5);
    let port = td.dom.state().evtchn.alloc_unbound(0).unwrap();
    td.xs.write(&format!("{}/ring-ref", paths.frontend), g.to_string()).unwrap();
    td.xs.write(&format!("{}/event-channel", paths.frontend), port.to_string()).unwrap();
    td.xs.write(&format!("{}/state", paths.frontend), "3").unwrap();
    td.wait_for(&format!("{}/state", paths.backend), "5");
    assert!(backend_error(&td, &paths).contains("ring-ref0"), "{}", backend_error(&td, &paths));
}

/// The request path without threads (what the fuzz target drives): a
/// frontend's requests on a ring in guest memory, answered in order with
/// their ids; a bogus grant, a range past the end and a producer far past
/// the ring are refused, and no grant stays mapped.
#[test]
fn ring_server_answers_on_the_callers_thread() {
    use super::device::RingServer;
    use crate::backends::transport::ring::GuestRingPages;
    use super::io::SyncDisk;
    use super::request::Limits;
    use xen_abi::ring::{FrontRing, RingLayout, RingMemory, REQ_PROD};

    let (path, _) = image("server", 64);
    let mut td = TestDomain::new();
    let limits = Limits { sectors: 64, sector_size: 512, readonly: false, flush: true, barrier: true, discard: false, max_indirect_segments: 0 };
    let disk = SyncDisk::open(&path, false).unwrap();
    let server = RingServer::new(&td.dom, disk, limits, vec![RING], Protocol::X86_64, false).unwrap();
    let layout = RingLayout::with_order(0, Protocol::X86_64.slot_size()).unwrap();
    let mut front = FrontRing::init(GuestRingPages::new(td.dom.ram.clone(), vec![RING]), layout);
    let p = td.page();
    let g = td.grant(p, false);
    let reqs = [
        rw(BLKIF_OP_READ, 1, 3, &[(g, 0, 0)]),
        rw(BLKIF_OP_READ, 2, 3, &[(7, 0, 0)]),
        rw(BLKIF_OP_READ, 3, 60, &[(g, 0, 7)]),
        rw(BLKIF_OP_WRITE_BARRIER, 4, 0, &[]),
    ];
    let mut buf = [0u8; 112];
    for r in &reqs {
        r.encode(Protocol::X86_64, &mut buf);
        assert!(front.put_request(&buf[..Protocol::X86_64.slot_size()]));
    }
    front.push_requests();
    server.serve().unwrap();
    let mut got = Vec::new();
    while front.unconsumed_responses().unwrap() > 0 {
        front.take_response(&mut buf);
        let r = Response::decode(&buf).unwrap();
        got.push((r.id, r.status));
    }
    assert_eq!(got, vec![(1, BLKIF_RSP_OKAY), (2, BLKIF_RSP_ERROR), (3, BLKIF_RSP_ERROR), (4, BLKIF_RSP_OKAY)]);
    assert_eq!(td.dom.ram.read_obj::<u8>(p).unwrap(), 3, "sector 3 read");
    assert_eq!((server.in_flight(), td.dom.gnttab.pinned()), (0, 0));
    // A producer far past the ring breaks it.
    front.memory().store_index(REQ_PROD, 0x8000_0000);
    assert!(server.serve().is_err());
}
