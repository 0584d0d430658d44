//! The toolstack: xl.cfg parsing and the domain lifecycle (what xl and
//! libxl do on a Xen host).

pub mod config;
pub mod domain;
pub mod registry;
pub mod stop;
pub mod terminal;

/// Exit status: the domain powered off.
pub const EXIT_POWEROFF: u8 = 0;
/// Exit status: the command line (usage), the configuration, the kernel or
/// the hypervisor failed. Never 2, which means the domain crashed.
pub const EXIT_ERROR: u8 = 1;
/// Exit status: the domain crashed.
pub const EXIT_CRASH: u8 = 2;
/// Exit status: the domain rebooted and on_reboot did not restart it.
pub const EXIT_REBOOT: u8 = 3;
/// Exit status: the domain stopped for another reason (suspend, watchdog, soft reset).
pub const EXIT_OTHER: u8 = 4;
/// Exit status: destroyed from the console (Ctrl-]).
pub const EXIT_DESTROYED: u8 = 5;
/// Exit status on signal N (one of [`stop::SIGNALS`]): this plus N, as a
/// shell reports a command killed by N.
pub const EXIT_SIGNAL_BASE: u8 = 128;

/// An error and its causes on one line (each cause once): what the CLI and
/// the host service print.
pub fn describe(err: &dyn std::error::Error) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = s.source();
    }
    line
}
