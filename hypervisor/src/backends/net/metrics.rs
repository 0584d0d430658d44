//! Counters of one vif, updated with relaxed atomics on the I/O thread and
//! logged at the end (with -v).

use std::sync::atomic::{AtomicU64, Ordering};

/// A vif's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    tx_malformed: AtomicU64,
    tx_dropped: AtomicU64,
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    rx_dropped: AtomicU64,
    rx_errors: AtomicU64,
    notifications: AtomicU64,
    fatal: AtomicU64,
}

/// What can be counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A guest packet written to the TAP, with its bytes.
    TxPacket(u64),
    /// A malformed tx request (bad grant, slots, size, offset, offload): the
    /// packet was answered NETIF_RSP_ERROR.
    TxMalformed,
    /// A guest packet the host side refused (TAP write failed).
    TxDropped,
    /// A frame copied into the guest, with its bytes.
    RxPacket(u64),
    /// A frame the guest could not take (too large without sg, offloads it
    /// did not ask for, multicast it did not subscribe to).
    RxDropped,
    /// A frame lost to a bad rx grant.
    RxError,
    /// An event sent to the guest.
    Notified,
    /// The frontend broke the protocol and the vif was disabled.
    Fatal,
}

impl Metrics {
    /// Counts `e`.
    pub fn count(&self, e: Event) {
        let add = |c: &AtomicU64, n: u64| {
            c.fetch_add(n, Ordering::Relaxed);
        };
        match e {
            Event::TxPacket(b) => {
                add(&self.tx_packets, 1);
                add(&self.tx_bytes, b);
            }
            Event::TxMalformed => add(&self.tx_malformed, 1),
            Event::TxDropped => add(&self.tx_dropped, 1),
            Event::RxPacket(b) => {
                add(&self.rx_packets, 1);
                add(&self.rx_bytes, b);
            }
            Event::RxDropped => add(&self.rx_dropped, 1),
            Event::RxError => add(&self.rx_errors, 1),
            Event::Notified => add(&self.notifications, 1),
            Event::Fatal => add(&self.fatal, 1),
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            tx_packets: g(&self.tx_packets),
            tx_bytes: g(&self.tx_bytes),
            tx_malformed: g(&self.tx_malformed),
            tx_dropped: g(&self.tx_dropped),
            rx_packets: g(&self.rx_packets),
            rx_bytes: g(&self.rx_bytes),
            rx_dropped: g(&self.rx_dropped),
            rx_errors: g(&self.rx_errors),
            notifications: g(&self.notifications),
            fatal: g(&self.fatal),
        }
    }
}

/// The counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Packets the guest sent.
    pub tx_packets: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Malformed tx packets answered with an error.
    pub tx_malformed: u64,
    /// Guest packets the TAP refused.
    pub tx_dropped: u64,
    /// Frames delivered to the guest.
    pub rx_packets: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Frames the guest could not take.
    pub rx_dropped: u64,
    /// Frames lost to bad rx grants.
    pub rx_errors: u64,
    /// Events sent to the guest.
    pub notifications: u64,
    /// Times the vif was disabled for a broken protocol.
    pub fatal: u64,
}

impl std::fmt::Display for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tx {} packets {} bytes ({} malformed, {} dropped), rx {} packets {} bytes ({} dropped, {} grant errors), {} notifications{}",
            self.tx_packets,
            self.tx_bytes,
            self.tx_malformed,
            self.tx_dropped,
            self.rx_packets,
            self.rx_bytes,
            self.rx_dropped,
            self.rx_errors,
            self.notifications,
            if self.fatal > 0 { ", disabled for a broken ring" } else { "" }
        )
    }
}
