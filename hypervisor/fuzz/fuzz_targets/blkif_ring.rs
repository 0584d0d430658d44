//! A hostile blkfront: arbitrary requests on the ring (bogus grant
//! references, too many segments, sectors past the disk's end, indirect
//! requests with made-up descriptor pages), a producer index anywhere, and a
//! grant table it rewrites between rounds, served by the block backend's
//! request path (`RingServer`: the same take, check, map, I/O and respond
//! steps the device's threads run) over a small disk image. Checked after
//! every round: no panic; a ring within bounds is drained, every request
//! answered once, in order, with its id and operation and a valid status;
//! nothing succeeds past the disk's end or writes a read-only disk; no
//! grant stays mapped (beyond the persistent cache, and none once closed).
#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use xen_abi::blkif::{self, Protocol, Request, Response};
use xen_abi::grant_table::{GTF_PERMIT_ACCESS, GTF_READONLY};
use xen_abi::ring::{RingLayout, REQ_PROD, RSP_PROD};
use xenolith::backends::block::device::RingServer;
use xenolith::backends::block::io::SyncDisk;
use xenolith::backends::block::request::Limits;
use xenolith::vstate::memory::GuestRam;
use xenolith::xen::domain::DomainInfo;
use xenolith::xen::time::Clock;
use xenolith::xen::Domain;

const RAM: u64 = 1 << 20;
/// Grant-table frame 0.
const GNTTAB: u64 = 0x1000;
/// First ring page (up to 4).
const RING: u64 = 0x10000;
/// Data pages, granted as references 8.. (references 0..8 are left empty).
const DATA: u64 = 0x20000;
const DATA_PAGES: u64 = 64;
const FIRST_GREF: u32 = 8;
/// The disk: 1 MiB.
const SECTORS: u64 = 2048;

fn image() -> &'static PathBuf {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let p = std::env::temp_dir().join(format!("xenolith-fuzz-blkif-ring-{}.img", std::process::id()));
        std::fs::write(&p, vec![0x5a; (SECTORS * blkif::SECTOR_SIZE) as usize]).unwrap();
        p
    })
}

/// Sectors a direct READ or WRITE moves, if it is one.
fn direct_sectors(req: &Request) -> Option<(u8, u64)> {
    match req {
        Request::ReadWrite(rw) if matches!(rw.operation, blkif::BLKIF_OP_READ | blkif::BLKIF_OP_WRITE) => {
            let n = usize::from(rw.nr_segments).min(blkif::BLKIF_MAX_SEGMENTS_PER_REQUEST);
            Some((rw.operation, rw.seg[..n].iter().map(|s| u64::from(s.last_sect.wrapping_sub(s.first_sect)) + 1).sum()))
        }
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else { return };
    let proto = if flags & 1 != 0 { Protocol::X86_64 } else { Protocol::X86_32 };
    let persistent = flags & 2 != 0;
    let readonly = flags & 4 != 0;
    let pages = 1usize << ((flags >> 4) & 3).min(2);
    let limits = Limits {
        sectors: SECTORS,
        sector_size: 512,
        readonly,
        flush: !readonly,
        barrier: !readonly,
        discard: !readonly && flags & 8 != 0,
        max_indirect_segments: if flags & 64 != 0 { blkif::MAX_INDIRECT_SEGMENTS as u32 } else { 0 },
    };

    let ram = Arc::new(GuestRam::new(&[(0, RAM as usize)]).unwrap());
    let info = DomainInfo { domid: 1, name: "fuzz".into(), memmap: Vec::new(), pages: RAM >> 12, max_pages: RAM >> 12 };
    let dom = Arc::new(Domain::new(info, ram.clone(), Clock::new(1_000_000, 0)));
    dom.gnttab.set_frame(0, Some(GNTTAB));
    let grant = |gref: u32, gpa: u64, flags: u16| {
        let e = GNTTAB + u64::from(gref) * 8;
        ram.write_obj(e + 4, &((gpa >> 12) as u32)).unwrap();
        ram.write_obj(e + 2, &0u16).unwrap();
        ram.write_obj(e, &flags).unwrap();
    };
    for i in 0..DATA_PAGES as u32 {
        grant(FIRST_GREF + i, DATA + u64::from(i) * 4096, GTF_PERMIT_ACCESS | if i % 4 == 3 { GTF_READONLY } else { 0 });
    }
    let disk = SyncDisk::open(image(), readonly).unwrap();
    let ring_pages: Vec<u64> = (0..pages as u64).map(|i| RING + i * 4096).collect();
    let server = RingServer::new(&dom, disk, limits, ring_pages, proto, persistent).expect("a valid ring");
    let slot = proto.slot_size();
    let layout = RingLayout::with_order(pages.trailing_zeros(), slot).unwrap();
    let slots = layout.size();
    let slot_at = |idx: u32| RING + layout.offset(idx) as u64;

    let mut prod = 0u32;
    let mut answered = 0u32;
    let mut broken = false;
    let mut aliased = false;
    let check_pinned = || {
        let pinned = dom.gnttab.pinned();
        if persistent {
            assert!(pinned <= 512, "{pinned} grants pinned (one table frame holds 512)");
        } else {
            assert_eq!(pinned, 0, "grants left mapped");
        }
    };
    let serve = |prod: u32, answered: &mut u32, broken: &mut bool, aliased: bool| {
        if *broken {
            return;
        }
        if aliased {
            // The guest granted its ring or grant-table page: a read from
            // the disk may rewrite them mid-round, which only harms the
            // guest. The ring can no longer be predicted; the rest holds.
            let _ = server.serve();
            assert_eq!(server.in_flight(), 0, "everything taken is answered");
            check_pinned();
            return;
        }
        // What the backend will find: the requests it has not answered.
        let pending = prod.wrapping_sub(*answered);
        let expected: Vec<Request> = if pending <= slots {
            (0..pending)
                .map(|i| {
                    let mut b = vec![0u8; slot];
                    ram.read(slot_at(answered.wrapping_add(i)), &mut b).unwrap();
                    Request::decode(proto, &b).unwrap()
                })
                .collect()
        } else {
            Vec::new()
        };
        let r = server.serve();
        assert_eq!(server.in_flight(), 0, "everything taken is answered");
        let rsp_prod: u32 = ram.read_obj(RING + RSP_PROD as u64).unwrap();
        if r.is_err() {
            assert!(pending > slots, "a ring within bounds refused: {r:?}");
            *broken = true;
            return;
        }
        assert!(pending <= slots, "a producer {pending} requests ahead accepted");
        assert_eq!(rsp_prod, prod, "every request answered");
        for (i, req) in expected.iter().enumerate() {
            let mut b = vec![0u8; slot];
            ram.read(slot_at(answered.wrapping_add(i as u32)), &mut b).unwrap();
            let rsp = Response::decode(&b).unwrap();
            assert_eq!((rsp.id, rsp.operation), (req.id(), req.operation()), "response {i} answers its request");
            assert!([blkif::BLKIF_RSP_OKAY, blkif::BLKIF_RSP_ERROR, blkif::BLKIF_RSP_EOPNOTSUPP].contains(&rsp.status));
            if rsp.status == blkif::BLKIF_RSP_OKAY {
                if let (Request::ReadWrite(rw), Some((op, n))) = (req, direct_sectors(req)) {
                    assert!(rw.sector_number.checked_add(n).is_some_and(|end| end <= SECTORS), "past the end: {rw:?}");
                    assert!(!(readonly && op == blkif::BLKIF_OP_WRITE), "wrote a read-only disk");
                    assert!((1..=blkif::BLKIF_MAX_SEGMENTS_PER_REQUEST).contains(&usize::from(rw.nr_segments)));
                }
                let writes = match req {
                    Request::Indirect(i) => i.indirect_op != blkif::BLKIF_OP_READ,
                    _ => matches!(req.operation(), blkif::BLKIF_OP_WRITE | blkif::BLKIF_OP_WRITE_BARRIER | blkif::BLKIF_OP_DISCARD),
                };
                assert!(!(readonly && writes), "changed a read-only disk: {req:?}");
            }
        }
        *answered = prod;
        check_pinned();
    };

    // Each step: one op byte, then its arguments.
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 4 {
            0 => {
                // A request in the next slot.
                let n = slot.min(rest.len());
                let mut b = vec![0u8; slot];
                b[..n].copy_from_slice(&rest[..n]);
                rest = &rest[n..];
                ram.write(slot_at(prod), &b).unwrap();
                prod = prod.wrapping_add(1);
                ram.write_obj(RING + REQ_PROD as u64, &prod).unwrap();
            }
            1 => {
                // A producer index anywhere.
                let Some((b, tail)) = rest.split_first_chunk::<4>() else { break };
                rest = tail;
                prod = u32::from_le_bytes(*b);
                ram.write_obj(RING + REQ_PROD as u64, &prod).unwrap();
            }
            2 => {
                // Rewrites a grant entry (references 0..256: some out of use).
                let Some((b, tail)) = rest.split_first_chunk::<9>() else { break };
                rest = tail;
                ram.write(GNTTAB + u64::from(b[0]) * 8, &b[1..]).unwrap();
                let gpa = u64::from(u32::from_le_bytes([b[5], b[6], b[7], b[8]])) << 12;
                aliased |= gpa == GNTTAB || (RING..RING + 4 * 4096).contains(&gpa);
            }
            _ => {
                // Bytes in a data page: indirect descriptors, say.
                let Some((b, tail)) = rest.split_first_chunk::<4>() else { break };
                rest = tail;
                let at = DATA + (u64::from(b[0]) % DATA_PAGES) * 4096 + u64::from(u16::from_le_bytes([b[1], b[2]]) % 4096);
                let n = usize::from(b[3]).min(rest.len()).min((DATA + DATA_PAGES * 4096 - at) as usize);
                ram.write(at, &rest[..n]).unwrap();
                rest = &rest[n..];
            }
        }
        if op & 0x80 != 0 {
            serve(prod, &mut answered, &mut broken, aliased);
        }
    }
    serve(prod, &mut answered, &mut broken, aliased);
    drop(server);
    assert_eq!(dom.gnttab.pinned(), 0, "grants left mapped after closing");
});
