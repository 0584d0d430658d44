//! net-echo: the echo service of RFC 862 over TCP and UDP on the domain's
//! first vif, for the network tests.
//!
//! Command line: `ip=A.B.C.D/N gw=A.B.C.D` (else DHCP), `port=N` (7),
//! `clients=N` (TCP connections served at once, 8), `netfront.gso=1` and
//! the other netfront options. Once it has an
//! address it prints `net-echo: listening on <ip> tcp/<port> udp/<port>`.
//! It powers off when the toolstack asks (`xl shutdown`: control/shutdown
//! = poweroff), printing its counters first, and closes the vif cleanly.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![cfg_attr(not(target_os = "none"), allow(dead_code, unused_imports))]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use guest_lib::net::{self, Stack};
use guest_lib::netfront::{self, NetFront};
use guest_lib::xenstore;
use guest_lib::{println, BootInfo};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::{tcp, udp};

#[cfg(target_os = "none")]
guest_lib::main!(net_echo);

/// Each TCP connection's buffers: a 16 KiB window each way.
const TCP_BUF: usize = 16 * 1024;

fn net_echo(boot: &BootInfo) {
    let cmdline = boot.cmdline();
    let port: u16 = boot.cmdline_value("port=")
        .and_then(|p| p.parse().ok())
        .unwrap_or(7);
    let clients: usize = boot.cmdline_value("clients=")
        .and_then(|p| p.parse().ok())
        .unwrap_or(8)
        .clamp(1, 64);
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
    let udp_handle = stack.sockets.add(udp::Socket::new(
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 32], vec![0; 32 * 1024]),
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 32], vec![0; 32 * 1024]),
    ));
    if let Err(e) = stack.sockets.get_mut::<udp::Socket>(udp_handle).bind(port) {
        println!("net-echo: error: udp bind {port}: {e}");
        return;
    }
    // The toolstack's shutdown request; the watch fires once at once.
    let watch = xenstore::watch("control/shutdown").ok();
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
        if guest_lib::xenbus::poweroff_requested(watch.as_ref()) {
            break;
        }
        stack.wait(1_000_000_000);
    }
    let st = stack.netfront().stats();
    println!(
        "net-echo: stopping: {tcp_conns} tcp connections ({tcp_bytes} bytes), {udp_dgrams} udp datagrams echoed; rx {} packets ({} multi-slot, {} csum-blank), tx {} packets; dropped rx {} bad rx {} tx bad ids {} tx errors {} tx refused {}",
        st.rx_packets, st.rx_multi_slot, st.rx_csum_blank, st.tx_packets, st.rx_dropped, st.rx_bad_responses, st.tx_bad_ids, st.tx_errors, st.tx_refused
    );
    let queues = stack.netfront().info().queues;
    println!("net-echo: packets per queue (rx/tx): {:?} / {:?}", &st.rx_per_queue[..queues], &st.tx_per_queue[..queues]);
    match stack.netfront().close() {
        Ok(()) => println!("net-echo: vif closed"),
        Err(e) => println!("net-echo: error: closing the vif: {e}"),
    }
}

/// On the host there is nothing to run: net-echo is a Xen guest.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("net-echo is a Xen guest: build it with cargo xtask build");
}
