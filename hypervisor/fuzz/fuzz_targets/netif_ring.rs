//! A hostile netfront: arbitrary tx requests and extra-info slots (bogus
//! grants, chains longer than the limits or than the queued slots, sizes
//! and offsets past the page, first sizes smaller than their chains),
//! arbitrary rx requests, producer indices anywhere, a grant table it
//! rewrites between rounds, and frames arriving from the host side with
//! arbitrary virtio-net headers, served by the vif's ring server
//! (`RingServer`: the same steps the I/O thread runs) against an in-memory
//! packet sink. Checked after every round: no panic; no grant stays mapped;
//! a tx ring within bounds is either fully answered (every slot, with a
//! valid status) or the vif is disabled, and an impossible producer
//! disables it; every frame sent to the host has a sane size; rx responses
//! never claim more than a page.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use xen_abi::grant_table::{GTF_PERMIT_ACCESS, GTF_READONLY};
use xen_abi::netif::{self, RxResponse, TxResponse};
use xen_abi::ring::{REQ_PROD, RSP_PROD};
use xenolith::backends::net::device::RingServer;
use xenolith::backends::net::io::{VecIo, VNET_HDR_LEN};
use xenolith::backends::net::queue::Negotiated;
use xenolith::backends::net::vnet::RxOffloads;
use xenolith::vstate::memory::GuestRam;
use xenolith::xen::domain::DomainInfo;
use xenolith::xen::time::Clock;
use xenolith::xen::Domain;

const RAM: u64 = 1 << 20;
const GNTTAB: u64 = 0x1000;
const TX: u64 = 0x10000;
const RX: u64 = 0x11000;
const DATA: u64 = 0x20000;
const DATA_PAGES: u64 = 64;
const FIRST_GREF: u32 = 8;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else { return };
    let negotiated = Negotiated {
        sg: flags & 1 != 0,
        rx: RxOffloads { ipv4_csum: flags & 2 != 0, ipv6_csum: flags & 4 != 0, tso4: flags & 8 != 0, tso6: flags & 16 != 0 },
        multicast_control: flags & 32 != 0,
    };
    let ram = Arc::new(GuestRam::new(&[(0, RAM as usize)]).unwrap());
    let info = DomainInfo { domid: 1, name: "fuzz".into(), memmap: Vec::new(), pages: RAM >> 12, max_pages: RAM >> 12 };
    let dom = Arc::new(Domain::new(info, ram.clone(), Clock::new(1_000_000, 0)));
    dom.gnttab.set_frame(0, Some(GNTTAB));
    for i in 0..DATA_PAGES as u32 {
        let e = GNTTAB + u64::from(FIRST_GREF + i) * 8;
        let gpa = DATA + u64::from(i) * 4096;
        ram.write_obj(e + 4, &((gpa >> 12) as u32)).unwrap();
        ram.write_obj(e + 2, &0u16).unwrap();
        ram.write_obj(e, &(GTF_PERMIT_ACCESS | if i % 4 == 3 { GTF_READONLY } else { 0 })).unwrap();
    }
    let mut server = RingServer::new(&dom, TX, RX, negotiated);
    let mut io = VecIo { keep: 64, ..Default::default() };
    let (tx_layout, rx_layout) = (netif::tx_layout(), netif::rx_layout());

    let mut tx_prod = 0u32;
    let mut rx_prod = 0u32;
    let mut rx_seen = 0u32;
    let mut aliased = false;
    let mut serve = |server: &mut RingServer, io: &mut VecIo, tx_prod: u32, rx_prod: u32, rx_seen: &mut u32, aliased: bool| {
        let was_disabled = server.disabled();
        let before: u32 = ram.read_obj(TX + RSP_PROD as u64).unwrap();
        server.serve(io);
        assert_eq!(dom.gnttab.pinned(), 0, "grants left mapped");
        for p in &io.sent {
            assert!(p.len() >= VNET_HDR_LEN + 14 && p.len() <= VNET_HDR_LEN + 0xffff, "a frame of {} bytes sent", p.len());
        }
        io.sent.clear();
        if aliased || was_disabled {
            return;
        }
        let tx_rsp: u32 = ram.read_obj(TX + RSP_PROD as u64).unwrap();
        if tx_prod.wrapping_sub(before) > tx_layout.size() {
            assert!(server.disabled(), "a producer {} slots ahead accepted", tx_prod.wrapping_sub(before));
        } else if !server.disabled() {
            assert_eq!(tx_rsp, tx_prod, "every tx slot answered");
        }
        for i in before..tx_rsp {
            let mut b = [0u8; netif::TX_SLOT_SIZE];
            ram.read(TX + tx_layout.offset(i) as u64, &mut b).unwrap();
            let r = TxResponse::decode(&b);
            assert!([netif::NETIF_RSP_OKAY, netif::NETIF_RSP_ERROR, netif::NETIF_RSP_NULL].contains(&r.status), "{r:?}");
        }
        let rx_rsp: u32 = ram.read_obj(RX + RSP_PROD as u64).unwrap();
        if rx_prod.wrapping_sub(*rx_seen) <= rx_layout.size() && !server.disabled() {
            assert!(rx_rsp.wrapping_sub(*rx_seen) <= rx_prod.wrapping_sub(*rx_seen), "more rx responses than requests");
            for i in *rx_seen..rx_rsp {
                let mut b = [0u8; netif::RX_SLOT_SIZE];
                ram.read(RX + rx_layout.offset(i) as u64, &mut b).unwrap();
                let r = RxResponse::decode(&b);
                assert!(r.status <= 4096, "{r:?}");
            }
            *rx_seen = rx_rsp;
        }
    };

    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 6 {
            0 | 1 => {
                // A tx slot (request or extra info) in the next place.
                let Some((b, tail)) = rest.split_first_chunk::<{ netif::TX_SLOT_SIZE }>() else { break };
                rest = tail;
                let mut s = *b;
                if op % 6 == 0 {
                    // Mostly grants that exist, so data moves.
                    let gref = FIRST_GREF + u32::from(s[0]) % DATA_PAGES as u32;
                    s[0..4].copy_from_slice(&gref.to_le_bytes());
                }
                ram.write(TX + tx_layout.offset(tx_prod) as u64, &s).unwrap();
                tx_prod = tx_prod.wrapping_add(1);
                ram.write_obj(TX + REQ_PROD as u64, &tx_prod).unwrap();
            }
            2 => {
                // An rx request.
                let Some((b, tail)) = rest.split_first_chunk::<3>() else { break };
                rest = tail;
                let mut s = [0u8; netif::RX_SLOT_SIZE];
                netif::RxRequest { id: u16::from(b[0]), gref: if b[2] & 1 != 0 { u32::from(b[1]) } else { FIRST_GREF + u32::from(b[1]) % DATA_PAGES as u32 } }
                    .encode(&mut s);
                ram.write(RX + rx_layout.offset(rx_prod) as u64, &s).unwrap();
                rx_prod = rx_prod.wrapping_add(1);
                ram.write_obj(RX + REQ_PROD as u64, &rx_prod).unwrap();
            }
            3 => {
                // A producer index anywhere, on either ring.
                let Some((b, tail)) = rest.split_first_chunk::<5>() else { break };
                rest = tail;
                let p = u32::from_le_bytes([b[1], b[2], b[3], b[4]]);
                if b[0] & 1 == 0 {
                    tx_prod = p;
                    ram.write_obj(TX + REQ_PROD as u64, &p).unwrap();
                } else {
                    rx_prod = p;
                    ram.write_obj(RX + REQ_PROD as u64, &p).unwrap();
                }
            }
            4 => {
                // Rewrites a grant entry.
                let Some((b, tail)) = rest.split_first_chunk::<9>() else { break };
                rest = tail;
                ram.write(GNTTAB + u64::from(b[0]) * 8, &b[1..]).unwrap();
                let gpa = u64::from(u32::from_le_bytes([b[5], b[6], b[7], b[8]])) << 12;
                aliased |= gpa == GNTTAB || gpa == TX || gpa == RX;
            }
            _ => {
                // A frame from the host side: vnet header + frame, up to 9 KiB.
                let Some((b, tail)) = rest.split_first_chunk::<2>() else { break };
                rest = tail;
                let n = (usize::from(u16::from_le_bytes(*b)) % 9216).min(rest.len());
                io.incoming.push_back(rest[..n].to_vec());
                rest = &rest[n..];
            }
        }
        if op & 0x80 != 0 {
            serve(&mut server, &mut io, tx_prod, rx_prod, &mut rx_seen, aliased);
        }
    }
    serve(&mut server, &mut io, tx_prod, rx_prod, &mut rx_seen, aliased);
});
