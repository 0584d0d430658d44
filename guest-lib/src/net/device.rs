//! smoltcp's `phy::Device` over [`NetFront`]: one received frame per
//! receive token, one frame sent per transmit token.
//!
//! Frames are staged in two buffers owned here: the stack reads a received
//! frame from one and builds an outgoing one in the other, and netfront
//! copies between them and its granted pages. The granted pages are never
//! lent to the stack as slices, because the backend can write them at any
//! time and Rust references must not alias memory that changes under them.

use alloc::vec::Vec;

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::netfront::NetFront;

/// The Ethernet MTU the stack uses, header included (smoltcp's count).
pub const ETHERNET_MTU: usize = 1514;

/// A netfront as a smoltcp device.
pub struct NetDevice {
    nf: NetFront,
    rx_buf: Vec<u8>,
    tx_buf: Vec<u8>,
}

impl NetDevice {
    /// Wraps a connected netfront.
    pub fn new(nf: NetFront) -> NetDevice {
        NetDevice {
            nf,
            rx_buf: Vec::with_capacity(ETHERNET_MTU),
            tx_buf: Vec::with_capacity(ETHERNET_MTU),
        }
    }

    /// The netfront underneath.
    pub fn netfront(&mut self) -> &mut NetFront {
        &mut self.nf
    }

    /// Whether the backend has answered anything (the wake-up condition).
    pub fn has_work(&self) -> bool {
        self.nf.has_work()
    }
}

/// A received frame.
pub struct RxToken<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

/// Room for one frame to send.
pub struct TxToken<'a> {
    nf: &'a mut NetFront,
    buf: &'a mut Vec<u8>,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.buf.clear();
        self.buf.resize(len, 0);
        let r = f(self.buf);
        // Refused frames are counted by netfront; TCP retransmits.
        self.nf.send(self.buf);
        r
    }
}

impl phy::Device for NetDevice {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        self.nf.recv(&mut self.rx_buf)?;
        Some((
            RxToken {
                frame: &self.rx_buf,
            },
            TxToken {
                nf: &mut self.nf,
                buf: &mut self.tx_buf,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        if !self.nf.can_send(ETHERNET_MTU) {
            return None;
        }
        Some(TxToken {
            nf: &mut self.nf,
            buf: &mut self.tx_buf,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = ETHERNET_MTU;
        // Checksums are computed and verified in software (the default):
        // see netfront's notes on checksum offload.
        caps
    }
}
