//! The packet side of a vif: where the frames the guest sends go and where
//! the frames it receives come from. In production a TAP device
//! ([`tap::Tap`]); in tests and the fuzz target a [`VecIo`] that keeps what
//! was sent and hands out what it was given.

pub mod tap;

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;

pub use tap::{SocketIo, Tap};

/// Bytes of `struct virtio_net_hdr` (the TAP's default vnet header size).
pub const VNET_HDR_LEN: usize = 10;
/// Largest frame read from the packet side: a 64 KiB GSO frame plus its header.
pub const MAX_FRAME: usize = 65536 + VNET_HDR_LEN + 14;

/// A packet sink and source carrying frames with a leading
/// `virtio_net_hdr` ([`VNET_HDR_LEN`] bytes).
pub trait PacketIo {
    /// Sends one frame: `hdr` then `frame`, as one packet.
    fn send(&mut self, hdr: &[u8; VNET_HDR_LEN], frame: &[u8]) -> io::Result<()>;
    /// Receives one packet (vnet header + frame) into `buf`; `Ok(None)` when
    /// none is waiting.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;
    /// Tells the packet side which offloads the guest can take on receive
    /// (TUN_F_* bits).
    fn set_offload(&mut self, _tun_flags: u32) -> io::Result<()> {
        Ok(())
    }
}

/// A packet side a vif's I/O thread can own and poll: a TAP in
/// production, a datagram socket in tests.
pub trait PacketPort: PacketIo + Send {
    /// The host interface's name (for logs and xenstore's `vifname`).
    fn name(&self) -> &str;
    /// The descriptor to poll for received frames.
    fn fd(&self) -> RawFd;
}

/// An in-memory packet side: what was sent is kept (up to a bound, so a
/// fuzzer's flood cannot grow it without end), and frames pushed into
/// `incoming` are received in order.
#[derive(Default)]
pub struct VecIo {
    /// Packets sent, each as vnet header + frame.
    pub sent: Vec<Vec<u8>>,
    /// Packets to receive, each as vnet header + frame.
    pub incoming: VecDeque<Vec<u8>>,
    /// The offload flags last set.
    pub offload: u32,
    /// Most packets kept in `sent` (0: no bound).
    pub keep: usize,
}

impl PacketIo for VecIo {
    fn send(&mut self, hdr: &[u8; VNET_HDR_LEN], frame: &[u8]) -> io::Result<()> {
        if self.keep == 0 || self.sent.len() < self.keep {
            let mut p = hdr.to_vec();
            p.extend_from_slice(frame);
            self.sent.push(p);
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        Ok(self.incoming.pop_front().map(|p| {
            let n = p.len().min(buf.len());
            buf[..n].copy_from_slice(&p[..n]);
            n
        }))
    }

    fn set_offload(&mut self, tun_flags: u32) -> io::Result<()> {
        self.offload = tun_flags;
        Ok(())
    }
}
