//! net-echo: the echo service of RFC 862 over TCP and UDP on the domain's
//! first vif, for the network tests, and for the network benchmark the TCP
//! discard (RFC 863, port 9: a sink) and a chargen-like source (RFC 864,
//! port 19: a fixed pattern sent as fast as the connection takes it until
//! the client closes).
//!
//! Command line: `ip=A.B.C.D/N gw=A.B.C.D` (else DHCP), `port=N` (7),
//! `clients=N` (TCP connections served at once, 8), `netfront.gso=1` and
//! the other netfront options; `stop-after=N` powers off once N discard or
//! chargen connections have ended (the benchmark counts the instructions of
//! a whole domain that way). Once it has an address it prints `net-echo:
//! listening on <ip> tcp/<port> udp/<port>` and `net-echo: discard tcp/9
//! chargen tcp/19`. It powers off (or reboots) when the toolstack asks
//! (`xl shutdown` / `xl reboot`: control/shutdown), printing its counters
//! first, and closes the vif cleanly.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![cfg_attr(not(target_os = "none"), allow(dead_code, unused_imports))]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use guest_lib::net::{self, Stack};
use guest_lib::netfront::{self, NetFront};
use guest_lib::shutdown::{self, Reason};
use guest_lib::{println, BootInfo};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::{tcp, udp};

#[cfg(target_os = "none")]
guest_lib::main!(net_echo);

/// Each TCP connection's buffers: a 16 KiB window each way.
const TCP_BUF: usize = 16 * 1024;
/// The discard and chargen sockets' buffers: a 64 KiB window (no scaling
/// needed), so a transfer is not held to one 16 KiB window per round trip.
const BULK_BUF: usize = 64 * 1024;
/// Sockets listening for each of discard and chargen: two, so a new
/// connection finds one listening while the last one finishes closing.
const BULK_SOCKETS: usize = 2;
/// RFC 863's port.
const DISCARD_PORT: u16 = 9;
/// RFC 864's port.
const CHARGEN_PORT: u16 = 19;

/// What a discard or chargen socket serves.
#[derive(Clone, Copy, PartialEq)]
enum Bulk {
    Discard,
    Chargen,
}

/// One discard or chargen socket and its connection's progress.
struct BulkSocket {
    handle: SocketHandle,
    kind: Bulk,
    /// Whether a connection was established and has not ended yet.
    active: bool,
    /// chargen: where in the pattern the next byte comes from.
    at: usize,
}

/// RFC 864's pattern: 95 lines of 72 printable characters, each starting
/// one character further along the 95 printable ASCII characters, CRLF ended.
fn chargen_pattern() -> Vec<u8> {
    let mut v = Vec::with_capacity(95 * 74);
    for line in 0..95u8 {
        v.extend((0..72u8).map(|i| b' ' + (line + i) % 95));
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// Serves one discard or chargen socket; returns (whether anything moved,
/// bytes received, bytes sent, whether its connection just ended).
fn serve_bulk(stack: &mut Stack, b: &mut BulkSocket, pattern: &[u8]) -> (bool, u64, u64, bool) {
    let s = stack.sockets.get_mut::<tcp::Socket>(b.handle);
    if !s.is_open() {
        let ended = core::mem::take(&mut b.active);
        let port = if b.kind == Bulk::Discard { DISCARD_PORT } else { CHARGEN_PORT };
        // A fresh socket listens again; listen fails only on a bad port.
        let _ = s.listen(port);
        b.at = 0;
        return (ended, 0, 0, ended);
    }
    if s.state() == tcp::State::Established {
        b.active = true;
    }
    let mut received = 0u64;
    // Both services take what the client sends without copying it (discard's
    // whole job; chargen's clients send nothing).
    while s.can_recv() {
        match s.recv(|d| (d.len(), d.len())) {
            Ok(0) | Err(_) => break,
            Ok(n) => received += n as u64,
        }
    }
    let mut sent = 0u64;
    if b.kind == Bulk::Chargen && s.may_send() && s.may_recv() {
        while s.can_send() {
            match s.send_slice(&pattern[b.at..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    sent += n as u64;
                    b.at = (b.at + n) % pattern.len();
                }
            }
        }
    }
    if !s.may_recv() && s.state() == tcp::State::CloseWait {
        // The client closed: nothing more to take or give.
        s.close();
    }
    (received > 0 || sent > 0, received, sent, false)
}

fn net_echo(boot: &BootInfo) {
    let cmdline = boot.cmdline();
    let port: u16 = boot.cmdline_value("port=")
        .and_then(|p| p.parse().ok())
        .unwrap_or(7);
    let clients: usize = boot.cmdline_value("clients=")
        .and_then(|p| p.parse().ok())
        .unwrap_or(8)
        .clamp(1, 64);
    let stop_after: Option<u64> = boot.cmdline_value("stop-after=").and_then(|p| p.parse().ok());
    let addr = match net::parse_cmdline(cmdline) {
        Ok(a) => a,
        Err(e) => {
            println!("net-echo: error: {e}");
            return;
        }
    };
    let nf = match NetFront::open_first(netfront::Config::from_cmdline_reporting(cmdline)) {
        Ok(nf) => nf,
        Err(e) => {
            println!("net-echo: error: {e}");
            return;
        }
    };
    let i = nf.info();
    let m = i.mac;
    println!(
        "net-echo: {} mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} sg={} gso-tcpv4={} split-evtchn={} queues={} (backend offers rx-copy={} sg={} gso-tcpv4={} split={} queues={})",
        nf.nodename(), m[0], m[1], m[2], m[3], m[4], m[5], i.sg as u8, i.gso_tcpv4 as u8, i.split as u8, i.queues,
        i.offer.rx_copy as u8, i.offer.sg as u8, i.offer.gso_tcpv4 as u8, i.offer.split_event_channels as u8, i.offer.max_queues
    );
    let mut stack = Stack::new(nf, addr);
    let tcp_handles: Vec<SocketHandle> = (0..clients)
        .map(|_| {
            stack.sockets.add(tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; TCP_BUF]),
                tcp::SocketBuffer::new(vec![0; TCP_BUF]),
            ))
        })
        .collect();
    let mut bulk: Vec<BulkSocket> = [Bulk::Discard, Bulk::Chargen]
        .into_iter()
        .flat_map(|kind| core::iter::repeat_n(kind, BULK_SOCKETS))
        .map(|kind| BulkSocket {
            handle: stack.sockets.add(tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; BULK_BUF]),
                tcp::SocketBuffer::new(vec![0; BULK_BUF]),
            )),
            kind,
            active: false,
            at: 0,
        })
        .collect();
    let pattern = chargen_pattern();
    let (mut bulk_ended, mut discarded, mut generated) = (0u64, 0u64, 0u64);
    let udp_handle = stack.sockets.add(udp::Socket::new(
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 32], vec![0; 32 * 1024]),
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 32], vec![0; 32 * 1024]),
    ));
    if let Err(e) = stack.sockets.get_mut::<udp::Socket>(udp_handle).bind(port) {
        println!("net-echo: error: udp bind {port}: {e}");
        return;
    }
    // The toolstack's shutdown request; the watch fires once at once.
    let shutdown_watch = guest_lib::xenbus::ShutdownWatch::new();
    // What the toolstack asked for; a power-off unless it asked to reboot.
    let mut requested = Reason::Poweroff;
    let mut announced = false;
    let (mut tcp_conns, mut tcp_bytes, mut udp_dgrams) = (0u64, 0u64, 0u64);
    let mut buf = vec![0u8; TCP_BUF];
    loop {
        stack.poll();
        if let (false, Some(a)) = (announced, stack.address()) {
            println!(
                "net-echo: listening on {} tcp/{port} udp/{port}",
                a.address()
            );
            // A line of its own: test-xen matches the line above exactly.
            println!("net-echo: discard tcp/{DISCARD_PORT} chargen tcp/{CHARGEN_PORT}");
            announced = true;
        }
        let mut moved = false;
        for &h in &tcp_handles {
            let s = stack.sockets.get_mut::<tcp::Socket>(h);
            if !s.is_open() {
                if s.listen(port).is_err() {
                    println!("net-echo: error: tcp listen {port}");
                    return;
                }
                continue;
            }
            if s.may_recv() && s.can_recv() && s.can_send() {
                let room = s.send_capacity() - s.send_queue();
                if let Ok(n) = s.recv_slice(&mut buf[..room.min(TCP_BUF)]) {
                    if n > 0 {
                        let _ = s.send_slice(&buf[..n]);
                        tcp_bytes += n as u64;
                        moved = true;
                    }
                }
            } else if !s.may_recv() && s.send_queue() == 0 && s.state() == tcp::State::CloseWait {
                // The client is done and everything was echoed.
                s.close();
                tcp_conns += 1;
                moved = true;
            }
        }
        for b in bulk.iter_mut() {
            let (m, received, sent, ended) = serve_bulk(&mut stack, b, &pattern);
            moved |= m;
            discarded += received;
            generated += sent;
            bulk_ended += u64::from(ended);
        }
        if stop_after.is_some_and(|n| bulk_ended >= n) {
            break;
        }
        let u = stack.sockets.get_mut::<udp::Socket>(udp_handle);
        while u.can_send() {
            let Ok((n, meta)) = u.recv_slice(&mut buf) else {
                break;
            };
            let _ = u.send_slice(&buf[..n], meta.endpoint);
            udp_dgrams += 1;
            moved = true;
        }
        if moved {
            continue; // send what was queued before halting
        }
        if let Some(r) = shutdown_watch.requested() {
            requested = r;
            break;
        }
        stack.wait(1_000_000_000);
    }
    let st = stack.netfront().stats();
    println!(
        "net-echo: stopping: {tcp_conns} tcp connections ({tcp_bytes} bytes), {udp_dgrams} udp datagrams echoed; {bulk_ended} discard/chargen connections ({discarded} bytes discarded, {generated} generated); rx {} packets ({} multi-slot, {} csum-blank), tx {} packets; dropped rx {} bad rx {} tx bad ids {} tx errors {} tx refused {}",
        st.rx_packets, st.rx_multi_slot, st.rx_csum_blank, st.tx_packets, st.rx_dropped, st.rx_bad_responses, st.tx_bad_ids, st.tx_errors, st.tx_refused
    );
    let queues = stack.netfront().info().queues;
    println!("net-echo: packets per queue (rx/tx): {:?} / {:?}", &st.rx_per_queue[..queues], &st.tx_per_queue[..queues]);
    match stack.netfront().close() {
        Ok(()) => println!("net-echo: vif closed"),
        Err(e) => println!("net-echo: error: closing the vif: {e}"),
    }
    if requested == Reason::Reboot {
        println!("net-echo: rebooting");
        shutdown::shutdown(Reason::Reboot);
    }
}

/// On the host there is nothing to run: net-echo is a Xen guest.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("net-echo is a Xen guest: build it with cargo xtask build");
}
