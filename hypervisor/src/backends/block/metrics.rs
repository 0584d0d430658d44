//! Counters of one block device, updated with relaxed atomics on the I/O
//! path and read at the end (logged with -v) or by a benchmark.
//!
//! Besides the counts, the device keeps the time-weighted number of
//! requests in flight: the integral of "requests taken off the ring and not
//! yet answered" over the time at least one was, so `avg_in_flight` is the
//! queue depth the backend actually saw while busy (`cargo xtask bench
//! block` reads it from the -v line).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

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
    occupancy: Mutex<Occupancy>,
}

/// The in-flight integral (one short lock per request start and end).
#[derive(Debug, Default)]
struct Occupancy {
    in_flight: u64,
    last: Option<Instant>,
    /// Sum of in-flight count x ns.
    area_ns: u128,
    /// ns with at least one request in flight.
    busy_ns: u64,
}

impl Occupancy {
    fn step(&mut self, up: bool) {
        let now = Instant::now();
        if let Some(last) = self.last {
            if self.in_flight > 0 {
                let dt = now.saturating_duration_since(last).as_nanos();
                self.area_ns += dt * u128::from(self.in_flight);
                self.busy_ns = self.busy_ns.saturating_add(dt as u64);
            }
        }
        self.last = Some(now);
        self.in_flight = if up { self.in_flight + 1 } else { self.in_flight.saturating_sub(1) };
    }
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
        self.occupancy(true);
    }

    fn occupancy(&self, up: bool) {
        self.occupancy.lock().unwrap_or_else(|e| e.into_inner()).step(up);
    }

    /// A request completed successfully, moving `bytes` of data.
    pub fn completed(&self, op: Op, bytes: u64) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.occupancy(false);
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
        self.occupancy(false);
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
        let (in_flight_ns, busy_ns) = {
            let o = self.occupancy.lock().unwrap_or_else(|e| e.into_inner());
            (o.area_ns, o.busy_ns)
        };
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
            in_flight_ns,
            busy_ns,
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
    /// Requests in flight integrated over time (count x ns).
    pub in_flight_ns: u128,
    /// Time with at least one request in flight, in ns.
    pub busy_ns: u64,
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

    /// Average requests in flight while at least one was, in hundredths
    /// (0 if none ever was).
    pub fn average_in_flight_centi(&self) -> u64 {
        (self.in_flight_ns * 100).checked_div(u128::from(self.busy_ns)).unwrap_or(0) as u64
    }
}

impl std::fmt::Display for Snapshot {
    /// One line of `key=value` pairs, stable for scripts and benchmarks.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "requests={} reads={} writes={} flushes={} discards={} errors={} unsupported={} bytes_read={} bytes_written={} avg_request_bytes={} max_in_flight={} avg_in_flight={}.{:02} busy_us={} notifications={}",
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
            self.average_in_flight_centi() / 100,
            self.average_in_flight_centi() % 100,
            self.busy_ns / 1000,
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
        assert!(s.busy_ns > 0 && s.in_flight_ns >= u128::from(s.busy_ns));
        assert!(s.to_string().contains(" avg_in_flight="));
    }

    #[test]
    fn average_in_flight_is_time_weighted() {
        let s = Snapshot { in_flight_ns: 3_000, busy_ns: 1_000, ..Default::default() };
        assert_eq!(s.average_in_flight_centi(), 300);
        let s = Snapshot { in_flight_ns: 2_500, busy_ns: 1_000, ..Default::default() };
        assert!(s.to_string().contains(" avg_in_flight=2.50 busy_us=1 "));
        assert_eq!(Snapshot::default().average_in_flight_centi(), 0);
    }
}
