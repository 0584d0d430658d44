//! Counters of one block device, updated with relaxed atomics on the I/O
//! path and read at the end (logged with -v) or by a benchmark.

use std::sync::atomic::{AtomicU64, Ordering};

/// A device's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    reads: AtomicU64,
    writes: AtomicU64,
    flushes: AtomicU64,
    discards: AtomicU64,
    errors: AtomicU64,
    unsupported: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    notifications: AtomicU64,
}

/// The request kinds counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// READ (direct or indirect).
    Read,
    /// WRITE (direct or indirect, with or without a flush).
    Write,
    /// FLUSH_DISKCACHE or WRITE_BARRIER without data.
    Flush,
    /// DISCARD.
    Discard,
}

impl Metrics {
    /// A request was taken off the ring.
    pub fn started(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Ordering::Relaxed);
    }

    /// A request completed successfully, moving `bytes` of data.
    pub fn completed(&self, op: Op, bytes: u64) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        match op {
            Op::Read => {
                self.reads.fetch_add(1, Ordering::Relaxed);
                self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
            }
            Op::Write => {
                self.writes.fetch_add(1, Ordering::Relaxed);
                self.bytes_written.fetch_add(bytes, Ordering::Relaxed);
            }
            Op::Flush => {
                self.flushes.fetch_add(1, Ordering::Relaxed);
            }
            Op::Discard => {
                self.discards.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A request failed (`unsupported`: answered EOPNOTSUPP).
    pub fn failed(&self, unsupported: bool) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if unsupported {
            self.unsupported.fetch_add(1, Ordering::Relaxed);
        } else {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The frontend was notified of responses.
    pub fn notified(&self) {
        self.notifications.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> Snapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Snapshot {
            reads: g(&self.reads),
            writes: g(&self.writes),
            flushes: g(&self.flushes),
            discards: g(&self.discards),
            errors: g(&self.errors),
            unsupported: g(&self.unsupported),
            bytes_read: g(&self.bytes_read),
            bytes_written: g(&self.bytes_written),
            max_in_flight: g(&self.max_in_flight),
            notifications: g(&self.notifications),
        }
    }
}

/// The counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Successful reads.
    pub reads: u64,
    /// Successful writes.
    pub writes: u64,
    /// Successful flushes and barriers without data.
    pub flushes: u64,
    /// Successful discards.
    pub discards: u64,
    /// Requests answered BLKIF_RSP_ERROR.
    pub errors: u64,
    /// Requests answered BLKIF_RSP_EOPNOTSUPP.
    pub unsupported: u64,
    /// Bytes read into the guest.
    pub bytes_read: u64,
    /// Bytes written from the guest.
    pub bytes_written: u64,
    /// The most requests taken off the ring and not yet answered.
    pub max_in_flight: u64,
    /// Event-channel notifications sent to the frontend.
    pub notifications: u64,
}

impl Snapshot {
    /// All requests answered.
    pub fn requests(&self) -> u64 {
        self.reads + self.writes + self.flushes + self.discards + self.errors + self.unsupported
    }

    /// Average bytes per successful read or write (0 if none).
    pub fn average_request_bytes(&self) -> u64 {
        (self.bytes_read + self.bytes_written).checked_div(self.reads + self.writes).unwrap_or(0)
    }
}

impl std::fmt::Display for Snapshot {
    /// One line of `key=value` pairs, stable for scripts and benchmarks.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "requests={} reads={} writes={} flushes={} discards={} errors={} unsupported={} bytes_read={} bytes_written={} avg_request_bytes={} max_in_flight={} notifications={}",
            self.requests(),
            self.reads,
            self.writes,
            self.flushes,
            self.discards,
            self.errors,
            self.unsupported,
            self.bytes_read,
            self.bytes_written,
            self.average_request_bytes(),
            self.max_in_flight,
            self.notifications
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_averages() {
        let m = Metrics::default();
        m.started();
        m.started();
        m.completed(Op::Read, 4096);
        m.started();
        m.completed(Op::Write, 8192);
        m.failed(true);
        let s = m.snapshot();
        assert_eq!((s.requests(), s.max_in_flight, s.average_request_bytes(), s.unsupported), (3, 2, 6144, 1));
        assert!(s.to_string().starts_with("requests=3 reads=1 writes=1"));
    }
}
