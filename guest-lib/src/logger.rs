//! A `log` backend that prints through the console: `[LEVEL] message`.

use log::{LevelFilter, Log, Metadata, Record};

struct ConsoleLogger;

impl Log for ConsoleLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            crate::console::_print(format_args!("[{}] {}\n", record.level(), record.args()));
        }
    }

    fn flush(&self) {
        crate::console::flush(crate::console::BACKEND_TIMEOUT);
    }
}

static LOGGER: ConsoleLogger = ConsoleLogger;

/// Installs the console logger with `level` as the maximum.
pub fn init(level: LevelFilter) {
    // Fails only if a logger is already set; then the level still applies.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// The level a `loglevel=` word on the command line asks for
/// (off, error, warn, info, debug, trace), if any.
pub fn level_from_cmdline(cmdline: &str) -> Option<LevelFilter> {
    let value = cmdline
        .split_ascii_whitespace()
        .rev()
        .find_map(|w| w.strip_prefix("loglevel="))?;
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loglevel_from_cmdline() {
        assert_eq!(
            level_from_cmdline("a loglevel=debug b"),
            Some(LevelFilter::Debug)
        );
        assert_eq!(
            level_from_cmdline("loglevel=warn loglevel=TRACE"),
            Some(LevelFilter::Trace)
        );
        assert_eq!(level_from_cmdline("loglevel=bogus"), None);
        assert_eq!(level_from_cmdline("nothing"), None);
    }
}
