//! The service's own log, kept for `xenolith dmesg` (xl dmesg shows Xen's
//! console ring): every record also goes to the usual logger (stderr).

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// Lines kept (the oldest go first).
pub const KEPT_LINES: usize = 4096;

static RING: OnceLock<Ring> = OnceLock::new();

struct Ring {
    lines: Mutex<VecDeque<String>>,
    start: Instant,
}

/// A logger that keeps each record at its level or above in the ring and
/// hands it to `inner`.
struct Tee {
    inner: env_logger::Logger,
    keep: log::LevelFilter,
}

impl log::Log for Tee {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        meta.level() <= self.keep || self.inner.enabled(meta)
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.level() <= self.keep {
            if let Some(ring) = RING.get() {
                let t = ring.start.elapsed();
                let line = format!("({:6}.{:03}) {}: {}", t.as_secs(), t.subsec_millis(), record.level().as_str().to_lowercase(), record.args());
                let mut lines = ring.lines.lock().unwrap_or_else(|e| e.into_inner());
                if lines.len() == KEPT_LINES {
                    lines.pop_front();
                }
                lines.push_back(line);
            }
        }
        if self.inner.enabled(record.metadata()) {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Installs the logger: `inner` as before, and records at info and above
/// (or whatever `inner` lets through) kept for [`lines`].
pub fn install(inner: env_logger::Logger) -> Result<(), log::SetLoggerError> {
    let keep = inner.filter().max(log::LevelFilter::Info);
    RING.get_or_init(|| Ring { lines: Mutex::new(VecDeque::new()), start: Instant::now() });
    log::set_max_level(keep);
    log::set_boxed_logger(Box::new(Tee { inner, keep }))
}

/// The kept lines, oldest first; `clear` empties the ring (xl dmesg -c).
pub fn lines(clear: bool) -> Vec<String> {
    let Some(ring) = RING.get() else { return Vec::new() };
    let mut lines = ring.lines.lock().unwrap_or_else(|e| e.into_inner());
    if clear {
        lines.drain(..).collect()
    } else {
        lines.iter().cloned().collect()
    }
}
