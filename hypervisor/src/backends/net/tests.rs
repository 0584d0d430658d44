//! The ring server against a scripted frontend over in-memory rings (the
//! test domain of the block tests: guest memory and a grant table, no KVM)
//! and an in-memory packet side.

use std::sync::Arc;

use xen_abi::netif::*;
use xen_abi::ring::{FrontRing, RingMemory, REQ_PROD};

use super::device::RingServer;
use super::io::{VecIo, VNET_HDR_LEN};
use super::queue::Negotiated;
use super::vnet::{self, RxOffloads, VnetHdr};
use crate::backends::block::test_utils::{TestDomain, RING};
use crate::backends::transport::ring::GuestRingPages;

const TX: u64 = RING;
const RX: u64 = RING + 0x1000;

struct Front {
    td: TestDomain,
    tx: FrontRing<GuestRingPages>,
    rx: FrontRing<GuestRingPages>,
    server: RingServer,
    io: VecIo,
}

fn all_offloads() -> Negotiated {
    Negotiated {
        sg: true,
        rx: RxOffloads {
            ipv4_csum: true,
            ipv6_csum: true,
            tso4: true,
            tso6: true,
        },
        multicast_control: false,
    }
}

impl Front {
    fn new(neg: Negotiated) -> Front {
        let td = TestDomain::new();
        let tx = FrontRing::init(
            GuestRingPages::new(td.dom.ram.clone(), vec![TX]),
            tx_layout(),
        );
        let rx = FrontRing::init(
            GuestRingPages::new(td.dom.ram.clone(), vec![RX]),
            rx_layout(),
        );
        let server = RingServer::new(&td.dom, TX, RX, neg);
        Front {
            td,
            tx,
            rx,
            server,
            io: VecIo::default(),
        }
    }

    /// A granted page holding `data` at `offset`.
    fn buffer(&mut self, offset: usize, data: &[u8]) -> u32 {
        let p = self.td.page();
        self.td.dom.ram.write(p + offset as u64, data).unwrap();
        self.td.grant(p, true)
    }

    fn put_tx(&mut self, r: TxRequest) {
        let mut b = [0u8; TX_SLOT_SIZE];
        r.encode(&mut b);
        assert!(self.tx.put_request(&b));
    }

    fn put_extra(&mut self, e: ExtraInfo) {
        let mut b = [0u8; TX_SLOT_SIZE];
        e.encode(&mut b);
        assert!(self.tx.put_request(&b));
    }

    /// Sends `frame` in buffers of `split` bytes, with `flags` on the first.
    fn send(&mut self, id: u16, frame: &[u8], split: usize, flags: u16, gso: Option<(u8, u16)>) {
        let pieces: Vec<&[u8]> = frame.chunks(split).collect();
        for (i, p) in pieces.iter().enumerate() {
            let gref = self.buffer(100, p);
            let mut f = if i == 0 { flags } else { 0 };
            if i + 1 < pieces.len() {
                f |= NETTXF_MORE_DATA;
            }
            if i == 0 && gso.is_some() {
                f |= NETTXF_EXTRA_INFO;
            }
            let size = if i == 0 { frame.len() } else { p.len() } as u16;
            self.put_tx(TxRequest {
                gref,
                offset: 100,
                flags: f,
                id: id + i as u16,
                size,
            });
            if let (0, Some((gso_type, size))) = (i, gso) {
                self.put_extra(ExtraInfo::Gso {
                    size,
                    gso_type,
                    features: 0,
                    more: false,
                });
            }
        }
    }

    fn serve(&mut self) {
        self.tx.push_requests();
        self.rx.push_requests();
        self.server.serve(&mut self.io);
    }

    fn tx_responses(&mut self) -> Vec<TxResponse> {
        let mut out = Vec::new();
        let mut b = [0u8; TX_SLOT_SIZE];
        while self.tx.unconsumed_responses().unwrap() > 0 {
            self.tx.take_response(&mut b);
            out.push(TxResponse::decode(&b));
        }
        out
    }

    /// Posts `n` rx buffers; returns their pages by id.
    fn post_rx(&mut self, n: u16) -> Vec<u64> {
        let mut pages = Vec::new();
        for id in 0..n {
            let p = self.td.page();
            let gref = self.td.grant(p, false);
            let mut b = [0u8; RX_SLOT_SIZE];
            RxRequest { id, gref }.encode(&mut b);
            assert!(self.rx.put_request(&b));
            pages.push(p);
        }
        pages
    }

    fn rx_responses(&mut self) -> Vec<[u8; RX_SLOT_SIZE]> {
        let mut out = Vec::new();
        let mut b = [0u8; RX_SLOT_SIZE];
        while self.rx.unconsumed_responses().unwrap() > 0 {
            self.rx.take_response(&mut b);
            out.push(b);
        }
        out
    }
}

fn hdr_of(p: &[u8]) -> VnetHdr {
    VnetHdr::decode(p[..VNET_HDR_LEN].try_into().unwrap())
}

fn ok(id: u16) -> TxResponse {
    TxResponse {
        id,
        status: NETIF_RSP_OKAY,
    }
}

fn error(id: u16) -> TxResponse {
    TxResponse {
        id,
        status: NETIF_RSP_ERROR,
    }
}

#[test]
fn a_one_slot_packet_reaches_the_tap_with_a_plain_header() {
    let mut f = Front::new(all_offloads());
    let frame = vnet::tests::ipv4_frame(17, 50);
    f.send(7, &frame, 4096, NETTXF_DATA_VALIDATED, None);
    f.serve();
    assert_eq!(f.tx_responses(), vec![ok(7)]);
    assert_eq!(f.io.sent.len(), 1);
    assert_eq!(
        hdr_of(&f.io.sent[0]).flags,
        vnet::VIRTIO_NET_HDR_F_DATA_VALID
    );
    assert_eq!(&f.io.sent[0][VNET_HDR_LEN..], &frame[..]);
    assert_eq!(f.server.metrics().tx_packets, 1);
    assert_eq!(
        f.td.grant_flags(8),
        xen_abi::grant_table::GTF_PERMIT_ACCESS | xen_abi::grant_table::GTF_READONLY,
        "unmapped"
    );
}

#[test]
fn a_chained_gso_packet_is_gathered_with_its_offloads() {
    let mut f = Front::new(all_offloads());
    let frame = vnet::tests::ipv4_frame(6, 9000);
    f.send(
        1,
        &frame,
        1000,
        NETTXF_CSUM_BLANK,
        Some((XEN_NETIF_GSO_TYPE_TCPV4, 1448)),
    );
    f.serve();
    let rsps = f.tx_responses();
    assert_eq!(rsps.len(), 10 + 1, "ten buffers and one extra-info slot");
    assert_eq!(rsps[0], ok(1));
    assert_eq!(
        rsps[1],
        TxResponse {
            id: 0,
            status: NETIF_RSP_NULL
        }
    );
    assert!(rsps[2..].iter().zip(2u16..).all(|(r, id)| *r == ok(id)));
    let sent = &f.io.sent[0];
    assert_eq!(&sent[VNET_HDR_LEN..], &frame[..]);
    let h = hdr_of(sent);
    assert_eq!(
        (
            h.flags,
            h.gso_type,
            h.gso_size,
            h.hdr_len,
            h.csum_start,
            h.csum_offset
        ),
        (1, 1, 1448, 54, 34, 16)
    );
}

#[test]
fn malformed_packets_are_answered_with_errors_and_counted() {
    let mut f = Front::new(all_offloads());
    let frame = vnet::tests::ipv4_frame(17, 200);
    // A grant that does not exist.
    f.put_tx(TxRequest {
        gref: 5000,
        offset: 0,
        flags: 0,
        id: 1,
        size: 100,
    });
    // Nineteen slots (more than XEN_NETIF_NR_SLOTS_MIN, fewer than fatal).
    f.send(10, &vnet::tests::ipv4_frame(17, 19 * 20 - 42), 20, 0, None);
    // A chained buffer larger than the packet's size.
    let g = f.buffer(0, &frame);
    f.put_tx(TxRequest {
        gref: g,
        offset: 0,
        flags: NETTXF_MORE_DATA,
        id: 40,
        size: 60,
    });
    f.put_tx(TxRequest {
        gref: g,
        offset: 0,
        flags: 0,
        id: 41,
        size: 100,
    });
    // A first buffer shorter than an Ethernet header.
    f.put_tx(TxRequest {
        gref: g,
        offset: 0,
        flags: NETTXF_MORE_DATA,
        id: 50,
        size: 100,
    });
    f.put_tx(TxRequest {
        gref: g,
        offset: 0,
        flags: 0,
        id: 51,
        size: 90,
    });
    // Checksum offload of something that is not TCP/UDP.
    let mut arp = vec![0u8; 60];
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    f.send(60, &arp, 4096, NETTXF_CSUM_BLANK, None);
    // And a good one after all that.
    f.send(70, &frame, 4096, 0, None);
    f.serve();
    let rsps = f.tx_responses();
    assert_eq!(rsps[0], error(1));
    assert!(
        rsps[1..20]
            .iter()
            .zip(10u16..)
            .all(|(r, id)| *r == error(id)),
        "{:?}",
        &rsps[1..20]
    );
    assert_eq!(
        &rsps[20..],
        &[
            error(40),
            error(41),
            error(50),
            error(51),
            error(60),
            ok(70)
        ]
    );
    assert_eq!(f.io.sent.len(), 1);
    let m = f.server.metrics();
    assert_eq!((m.tx_malformed, m.tx_packets), (5, 1));
    assert!(!f.server.disabled());
}

/// What Linux's netback treats as fatal (xenvif_fatal_tx_err).
#[test]
fn a_broken_tx_ring_disables_the_vif() {
    type Setup = Box<dyn Fn(&mut Front)>;
    let cases: Vec<(&str, Setup)> = vec![
        (
            "buffer crosses its page",
            Box::new(|f: &mut Front| {
                let g = f.buffer(0, &[0; 64]);
                f.put_tx(TxRequest {
                    gref: g,
                    offset: 4090,
                    flags: 0,
                    id: 1,
                    size: 64,
                });
            }),
        ),
        (
            "21 slots",
            Box::new(|f: &mut Front| {
                f.send(1, &vnet::tests::ipv4_frame(17, 21 * 20 - 42), 20, 0, None)
            }),
        ),
        (
            "chain past the queued slots",
            Box::new(|f: &mut Front| {
                let g = f.buffer(0, &[0; 64]);
                f.put_tx(TxRequest {
                    gref: g,
                    offset: 0,
                    flags: NETTXF_MORE_DATA,
                    id: 1,
                    size: 64,
                });
            }),
        ),
        (
            "invalid extra type",
            Box::new(|f: &mut Front| {
                let g = f.buffer(0, &[0; 64]);
                f.put_tx(TxRequest {
                    gref: g,
                    offset: 0,
                    flags: NETTXF_EXTRA_INFO,
                    id: 1,
                    size: 64,
                });
                f.put_extra(ExtraInfo::Other {
                    kind: 9,
                    more: false,
                });
            }),
        ),
        (
            "missing extra info",
            Box::new(|f: &mut Front| {
                let g = f.buffer(0, &[0; 64]);
                f.put_tx(TxRequest {
                    gref: g,
                    offset: 0,
                    flags: NETTXF_EXTRA_INFO,
                    id: 1,
                    size: 64,
                });
            }),
        ),
    ];
    for (what, setup) in cases {
        let mut f = Front::new(all_offloads());
        setup(&mut f);
        f.serve();
        assert!(f.server.disabled(), "{what}");
        assert_eq!(f.server.metrics().fatal, 1, "{what}");
        // Nothing more is served.
        f.send(100, &vnet::tests::ipv4_frame(17, 20), 4096, 0, None);
        f.serve();
        assert!(f.io.sent.is_empty(), "{what}");
    }
    // A producer index beyond the ring.
    let mut f = Front::new(all_offloads());
    f.tx.memory().store_index(REQ_PROD, 1000);
    f.server.serve(&mut f.io);
    assert!(f.server.disabled());
}

/// A ring full of packets uses up the tx budget (256 packets) without the
/// backend ever finding it empty, so `req_event` is not moved on and the
/// frontend's next packet raises no event: the I/O thread must come back
/// by itself, not 200 ms later when its idle poll times out.
#[test]
fn a_tx_budget_used_up_is_served_again_without_an_event() {
    let mut f = Front::new(all_offloads());
    let frame = vnet::tests::ipv4_frame(17, 20);
    let g = f.buffer(0, &frame);
    let one = |f: &mut Front, id: u16| {
        f.put_tx(TxRequest {
            gref: g,
            offset: 0,
            flags: 0,
            id,
            size: frame.len() as u16,
        })
    };
    for id in 0..256 {
        one(&mut f, id);
    }
    f.tx.push_requests();
    let more = f.server.serve(&mut f.io);
    assert_eq!(f.tx_responses().len(), 256);
    // The frontend queues one more; RING_PUSH_REQUESTS_AND_CHECK_NOTIFY
    // says no event is needed.
    one(&mut f, 256);
    let notified = f.tx.push_requests();
    assert!(!notified, "req_event was moved on after all");
    assert!(more, "the budget ran out but the I/O thread was not told to serve again");
    // Served again (no event), the packet goes out, and the ring found
    // empty asks for an event next time.
    assert!(!f.server.serve(&mut f.io));
    assert_eq!(f.tx_responses(), vec![ok(256)]);
    assert_eq!(f.io.sent.len(), 257);
    one(&mut f, 257);
    assert!(f.tx.push_requests(), "the next packet raises an event");
}

#[test]
fn received_frames_fill_posted_pages_across_slots() {
    let mut f = Front::new(all_offloads());
    let pages = f.post_rx(8);
    let small = vnet::tests::ipv4_frame(17, 100);
    let big = vnet::tests::ipv4_frame(17, 9000 - 42);
    for fr in [&small, &big] {
        let mut p = VnetHdr {
            flags: vnet::VIRTIO_NET_HDR_F_DATA_VALID,
            ..Default::default()
        }
        .encode()
        .to_vec();
        p.extend_from_slice(fr);
        f.io.incoming.push_back(p);
    }
    f.serve();
    let rsps: Vec<RxResponse> = f
        .rx_responses()
        .iter()
        .map(|b| RxResponse::decode(b))
        .collect();
    assert_eq!(rsps.len(), 1 + 3);
    assert_eq!(
        rsps[0],
        RxResponse {
            id: 0,
            offset: 0,
            flags: NETRXF_DATA_VALIDATED,
            status: small.len() as i16
        }
    );
    assert_eq!(
        rsps[1],
        RxResponse {
            id: 1,
            offset: 0,
            flags: NETRXF_DATA_VALIDATED | NETRXF_MORE_DATA,
            status: 4096
        }
    );
    assert_eq!(
        rsps[2],
        RxResponse {
            id: 2,
            offset: 0,
            flags: NETRXF_MORE_DATA,
            status: 4096
        }
    );
    assert_eq!(
        rsps[3],
        RxResponse {
            id: 3,
            offset: 0,
            flags: 0,
            status: (big.len() - 8192) as i16
        }
    );
    let mut got = vec![0u8; big.len()];
    for (i, chunk) in got.chunks_mut(4096).enumerate() {
        f.td.dom.ram.read(pages[1 + i], chunk).unwrap();
    }
    assert_eq!(got, big);
    let m = f.server.metrics();
    assert_eq!(
        (m.rx_packets, m.rx_bytes),
        (2, (small.len() + big.len()) as u64)
    );
}

#[test]
fn gso_and_partial_checksums_are_passed_to_the_guest() {
    let mut f = Front::new(all_offloads());
    f.post_rx(4);
    let fr = vnet::tests::ipv4_frame(6, 5000);
    let h = VnetHdr {
        flags: 1,
        gso_type: vnet::VIRTIO_NET_HDR_GSO_TCPV4,
        gso_size: 1448,
        hdr_len: 54,
        csum_start: 34,
        csum_offset: 16,
    };
    let mut p = h.encode().to_vec();
    p.extend_from_slice(&fr);
    f.io.incoming.push_back(p);
    f.serve();
    let raw = f.rx_responses();
    assert_eq!(raw.len(), 3, "data, GSO extra, data");
    let first = RxResponse::decode(&raw[0]);
    assert_eq!(
        first.flags,
        NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED | NETRXF_MORE_DATA | NETRXF_EXTRA_INFO
    );
    assert_eq!(
        ExtraInfo::decode(&raw[1]),
        ExtraInfo::Gso {
            size: 1448,
            gso_type: XEN_NETIF_GSO_TYPE_TCPV4,
            features: 0,
            more: false
        }
    );
    assert_eq!(RxResponse::decode(&raw[2]).status as usize, fr.len() - 4096);
    assert_eq!(
        f.io.offload,
        libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6
    );
}

#[test]
fn without_sg_a_large_frame_is_dropped_and_without_buffers_one_waits() {
    let mut f = Front::new(Negotiated::default());
    let big = vnet::tests::ipv4_frame(17, 5000);
    let small = vnet::tests::ipv4_frame(17, 64);
    for fr in [&big, &small] {
        let mut p = VnetHdr::default().encode().to_vec();
        p.extend_from_slice(fr);
        f.io.incoming.push_back(p);
    }
    f.serve();
    assert!(
        f.rx_responses().is_empty(),
        "no buffers posted: the small frame waits"
    );
    assert_eq!(f.server.metrics().rx_dropped, 1);
    assert_eq!(f.io.offload, 0);
    f.post_rx(1);
    f.serve();
    let rsps = f.rx_responses();
    assert_eq!(RxResponse::decode(&rsps[0]).status as usize, small.len());
}

#[test]
fn a_bad_rx_grant_costs_only_its_frame() {
    let mut f = Front::new(all_offloads());
    let mut b = [0u8; RX_SLOT_SIZE];
    RxRequest { id: 3, gref: 4000 }.encode(&mut b);
    assert!(f.rx.put_request(&b));
    f.post_rx(1);
    for _ in 0..2 {
        let mut p = VnetHdr::default().encode().to_vec();
        p.extend_from_slice(&vnet::tests::ipv4_frame(17, 10));
        f.io.incoming.push_back(p);
    }
    f.serve();
    let rsps: Vec<RxResponse> = f
        .rx_responses()
        .iter()
        .map(|b| RxResponse::decode(b))
        .collect();
    assert_eq!(rsps[0].status, NETIF_RSP_ERROR);
    assert!(rsps[1].status > 0);
    assert_eq!(f.server.metrics().rx_errors, 1);
}

#[test]
fn multicast_control_filters_what_was_not_subscribed() {
    let mut f = Front::new(Negotiated {
        multicast_control: true,
        ..all_offloads()
    });
    let group = [0x01, 0x00, 0x5e, 0, 0, 1];
    let g = f.buffer(0, &[0; 16]);
    f.put_tx(TxRequest {
        gref: g,
        offset: 0,
        flags: NETTXF_EXTRA_INFO,
        id: 9,
        size: 0,
    });
    f.put_extra(ExtraInfo::Multicast {
        add: true,
        addr: group,
        more: false,
    });
    f.post_rx(4);
    for dst in [group, [0x01, 0x00, 0x5e, 0, 0, 2], [0xff; 6]] {
        let mut fr = vnet::tests::ipv4_frame(17, 10);
        fr[..6].copy_from_slice(&dst);
        let mut p = VnetHdr::default().encode().to_vec();
        p.extend_from_slice(&fr);
        f.io.incoming.push_back(p);
    }
    f.serve();
    assert_eq!(
        f.tx_responses(),
        vec![
            ok(9),
            TxResponse {
                id: 0,
                status: NETIF_RSP_NULL
            }
        ]
    );
    assert_eq!(
        f.rx_responses().len(),
        2,
        "the subscribed group and broadcast"
    );
    assert_eq!(f.server.metrics().rx_dropped, 1);
    let _ = Arc::strong_count(&f.td.dom);
}

/// The whole device: xenbus handshake, threads, event channels and a
/// packet side (a socket pair standing in for the TAP), through a close
/// and a reconnection with split event channels.
#[test]
fn a_frontend_connects_exchanges_packets_closes_and_reconnects() {
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    use super::config;
    use super::io::SocketIo;
    use super::NetDevice;
    use crate::xen::sink::EventSink;

    let mut td = TestDomain::new();
    let (sock, peer) = SocketIo::pair("vtest0").unwrap();
    let spec = config::parse("mac=00:16:3e:01:02:03", 0).unwrap();
    let dev = NetDevice::create(&td.dom, &td.xs, &spec, vec![Box::new(sock)]).unwrap();
    let be = "/local/domain/0/backend/vif/1/0";
    let fe = "/local/domain/1/device/vif/0";
    td.wait_for(&format!("{be}/state"), "2");
    for (k, v) in [("feature-rx-copy", "1"), ("feature-sg", "1"), ("feature-split-event-channels", "1"), ("multi-queue-max-queues", "1")] {
        assert_eq!(td.read(&format!("{be}/{k}")), v, "{k}");
    }
    assert_eq!(td.read(&format!("{fe}/mac")), "00:16:3e:01:02:03");
    assert_eq!(td.read(&format!("{be}/vifname")), "vtest0");
    assert_eq!(td.read(&format!("{be}/hotplug-status")), "connected");

    let wait = |what: &str, f: &mut dyn FnMut() -> bool| {
        let until = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let peer_fd = peer.as_raw_fd();
    let xs = td.xs.clone();

    for round in 0..2u32 {
        let split = round == 1;
        let (tx_page, rx_page) = (TX + u64::from(round) * 0x2000, RX + u64::from(round) * 0x2000);
        let mut tx = FrontRing::init(GuestRingPages::new(td.dom.ram.clone(), vec![tx_page]), tx_layout());
        let mut rx = FrontRing::init(GuestRingPages::new(td.dom.ram.clone(), vec![rx_page]), rx_layout());
        let (tg, rg) = (td.grant(tx_page, false), td.grant(rx_page, false));
        let p1 = td.dom.state().evtchn.alloc_unbound(0).unwrap();
        let p2 = td.dom.state().evtchn.alloc_unbound(0).unwrap();
        let w = |k: &str, v: String| xs.write(&format!("{fe}/{k}"), v).unwrap();
        w("tx-ring-ref", tg.to_string());
        w("rx-ring-ref", rg.to_string());
        if split {
            w("event-channel-tx", p1.to_string());
            w("event-channel-rx", p2.to_string());
        } else {
            w("event-channel", p1.to_string());
        }
        w("request-rx-copy", "1".into());
        w("feature-rx-notify", "1".into());
        w("feature-sg", "1".into());
        w("state", "4".into());
        td.wait_for(&format!("{be}/state"), "4");

        // Host -> guest: a frame written to the packet side lands in a posted page.
        let page = td.page();
        let g = td.grant(page, false);
        let mut b = [0u8; RX_SLOT_SIZE];
        RxRequest { id: 5, gref: g }.encode(&mut b);
        rx.put_request(&b);
        rx.push_requests();
        dev.notify(&td.dom, 0);
        let frame = vnet::tests::ipv4_frame(17, 300 + round as usize);
        let mut pkt = VnetHdr::default().encode().to_vec();
        pkt.extend_from_slice(&frame);
        // SAFETY: writes a live buffer to our own socket.
        assert_eq!(unsafe { libc::write(peer_fd, pkt.as_ptr().cast(), pkt.len()) }, pkt.len() as isize);
        wait("the rx response", &mut || rx.unconsumed_responses().unwrap() > 0);
        rx.take_response(&mut b);
        let r = RxResponse::decode(&b);
        assert_eq!((r.id, r.status as usize), (5, frame.len()));
        let mut got = vec![0u8; frame.len()];
        td.dom.ram.read(page, &mut got).unwrap();
        assert_eq!(got, frame);

        // Guest -> host: a tx packet arrives on the other end, answered OKAY.
        let data = vnet::tests::ipv4_frame(6, 1000);
        let src = td.page();
        td.dom.ram.write(src, &data).unwrap();
        let g = td.grant(src, true);
        let mut t = [0u8; TX_SLOT_SIZE];
        TxRequest { gref: g, offset: 0, flags: NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED, id: 9, size: data.len() as u16 }.encode(&mut t);
        tx.put_request(&t);
        tx.push_requests();
        dev.notify(&td.dom, 0);
        let mut buf = vec![0u8; 4096];
        let mut n = 0;
        wait("the packet on the host side", &mut || {
            // SAFETY: reads into a live buffer of its length from our own socket.
            n = unsafe { libc::read(peer_fd, buf.as_mut_ptr().cast(), buf.len()) };
            n > 0
        });
        let sent = &buf[..n as usize];
        assert_eq!(&sent[VNET_HDR_LEN..], &data[..]);
        assert_eq!(hdr_of(sent).flags, vnet::VIRTIO_NET_HDR_F_NEEDS_CSUM);
        wait("the tx response", &mut || tx.unconsumed_responses().unwrap() > 0);
        tx.take_response(&mut t);
        assert_eq!(TxResponse::decode(&t), ok(9));

        // The frontend closes: everything is released; then it starts over.
        w("state", "6".into());
        td.wait_for(&format!("{be}/state"), "6");
        wait("the rings to be unmapped", &mut || td.dom.gnttab.pinned() == 0);
        for k in ["event-channel", "event-channel-tx", "event-channel-rx"] {
            let _ = xs.rm(&format!("{fe}/{k}"));
        }
        w("state", "1".into());
        td.wait_for(&format!("{be}/state"), "2");
    }
    let m = dev.metrics();
    assert_eq!((m.tx_packets, m.rx_packets, m.fatal), (2, 2, 0));
    dev.stop();
}

#[test]
fn a_frontend_without_rx_copy_or_rx_notify_is_refused() {
    use super::config;
    use super::io::SocketIo;
    use super::NetDevice;

    let mut td = TestDomain::new();
    let (sock, _peer) = SocketIo::pair("vtest1").unwrap();
    let dev = NetDevice::create(&td.dom, &td.xs, &config::parse("", 0).unwrap(), vec![Box::new(sock)]).unwrap();
    let be = "/local/domain/0/backend/vif/1/0";
    let fe = "/local/domain/1/device/vif/0";
    td.wait_for(&format!("{be}/state"), "2");
    let (tg, rg) = (td.grant(TX, false), td.grant(RX, false));
    let port = td.dom.state().evtchn.alloc_unbound(0).unwrap();
    for (k, v) in [("tx-ring-ref", tg), ("rx-ring-ref", rg), ("event-channel", port), ("feature-rx-notify", 1)] {
        td.xs.write(&format!("{fe}/{k}"), v.to_string()).unwrap();
    }
    td.xs.write(&format!("{fe}/state"), "4").unwrap();
    td.wait_for(&format!("{be}/state"), "5");
    assert_eq!(td.read(&format!("{be}/error")), "the frontend does not request rx-copy (rx-flip is not offered)");
    assert_eq!(td.dom.gnttab.pinned(), 0);
    dev.stop();
}

/// Two queues, each with its rings and its TAP queue (socket pairs here);
/// then a frontend that uses one queue gets the frames of both TAP queues.
#[test]
fn multi_queue_serves_each_ring_pair_from_its_own_tap_queue() {
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::time::{Duration, Instant};

    use super::config;
    use super::io::SocketIo;
    use super::NetDevice;
    use crate::xen::sink::EventSink;

    let mut td = TestDomain::new();
    let (s0, p0) = SocketIo::pair("vmq0").unwrap();
    let (s1, p1) = SocketIo::pair("vmq0").unwrap();
    let dev = NetDevice::create(&td.dom, &td.xs, &config::parse("", 0).unwrap(), vec![Box::new(s0), Box::new(s1)]).unwrap();
    let be = "/local/domain/0/backend/vif/1/0";
    let fe = "/local/domain/1/device/vif/0";
    td.wait_for(&format!("{be}/state"), "2");
    assert_eq!(td.read(&format!("{be}/multi-queue-max-queues")), "2");
    let xs = td.xs.clone();
    let w = |k: &str, v: String| xs.write(&format!("{fe}/{k}"), v).unwrap();
    let wait = |what: &str, f: &mut dyn FnMut() -> bool| {
        let until = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let inject = |peer: &OwnedFd, payload: usize| {
        let mut pkt = VnetHdr::default().encode().to_vec();
        pkt.extend_from_slice(&vnet::tests::ipv4_frame(17, payload));
        // SAFETY: writes a live buffer to our own socket.
        assert_eq!(unsafe { libc::write(peer.as_raw_fd(), pkt.as_ptr().cast(), pkt.len()) }, pkt.len() as isize);
    };

    // Too many queues is refused.
    w("multi-queue-num-queues", "3".into());
    w("request-rx-copy", "1".into());
    w("feature-rx-notify", "1".into());
    w("state", "4".into());
    td.wait_for(&format!("{be}/state"), "5");
    assert_eq!(td.read(&format!("{be}/error")), "guest requested 3 queues, exceeding the maximum of 2");
    w("state", "6".into());
    td.wait_for(&format!("{be}/state"), "6");
    w("state", "1".into());
    td.wait_for(&format!("{be}/state"), "2");

    let mut rings = Vec::new();
    for q in 0..2u64 {
        let (txp, rxp) = (TX + q * 0x2000, RX + q * 0x2000);
        let tx = FrontRing::init(GuestRingPages::new(td.dom.ram.clone(), vec![txp]), tx_layout());
        let mut rx = FrontRing::init(GuestRingPages::new(td.dom.ram.clone(), vec![rxp]), rx_layout());
        let (tg, rg) = (td.grant(txp, false), td.grant(rxp, false));
        let port = td.dom.state().evtchn.alloc_unbound(0).unwrap();
        w(&format!("queue-{q}/tx-ring-ref"), tg.to_string());
        w(&format!("queue-{q}/rx-ring-ref"), rg.to_string());
        w(&format!("queue-{q}/event-channel"), port.to_string());
        let page = td.page();
        let g = td.grant(page, false);
        let mut b = [0u8; RX_SLOT_SIZE];
        RxRequest { id: q as u16, gref: g }.encode(&mut b);
        rx.put_request(&b);
        rx.push_requests();
        rings.push((tx, rx));
    }
    w("multi-queue-num-queues", "2".into());
    w("state", "4".into());
    td.wait_for(&format!("{be}/state"), "4");
    inject(&p1, 200);
    wait("queue 1's rx response", &mut || rings[1].1.unconsumed_responses().unwrap() > 0);
    assert_eq!(rings[0].1.unconsumed_responses().unwrap(), 0, "queue 0 got nothing");
    inject(&p0, 100);
    wait("queue 0's rx response", &mut || rings[0].1.unconsumed_responses().unwrap() > 0);

    // A tx packet on queue 1 leaves by TAP queue 1.
    let data = vnet::tests::ipv4_frame(17, 64);
    let src = td.page();
    td.dom.ram.write(src, &data).unwrap();
    let g = td.grant(src, true);
    let mut t = [0u8; TX_SLOT_SIZE];
    TxRequest { gref: g, offset: 0, flags: 0, id: 4, size: data.len() as u16 }.encode(&mut t);
    rings[1].0.put_request(&t);
    rings[1].0.push_requests();
    dev.notify(&td.dom, 0);
    let mut buf = vec![0u8; 2048];
    let mut n = 0;
    wait("the packet on TAP queue 1", &mut || {
        // SAFETY: reads into a live buffer of its length from our own socket.
        n = unsafe { libc::read(p1.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        n > 0
    });
    assert_eq!(&buf[VNET_HDR_LEN..n as usize], &data[..]);
    dev.stop();
    assert_eq!(td.dom.gnttab.pinned(), 0);
}
