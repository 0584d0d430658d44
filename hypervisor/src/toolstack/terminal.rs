//! The terminal a console runs on: raw mode while attached, restored on
//! every way out (drop, exit, a second signal).

use std::sync::Mutex;

/// Puts the terminal in raw mode for the console and restores it on drop or exit.
pub struct RawTerminal;

static SAVED_TERMIOS: Mutex<Option<libc::termios>> = Mutex::new(None);

impl RawTerminal {
    /// Puts standard input in raw mode (keeping output's newline
    /// translation) if it is a terminal.
    pub fn enter() -> Option<RawTerminal> {
        // SAFETY: isatty/tcgetattr/tcsetattr on fd 0 with a local termios.
        unsafe {
            if libc::isatty(0) == 0 {
                return None;
            }
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return None;
            }
            *SAVED_TERMIOS.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
            libc::atexit(restore_terminal);
            let mut raw = t;
            libc::cfmakeraw(&mut raw);
            raw.c_oflag |= libc::OPOST; // keep \n -> \r\n for guest output
            libc::tcsetattr(0, libc::TCSANOW, &raw);
        }
        Some(RawTerminal)
    }
}

extern "C" fn restore_terminal() {
    if let Some(t) = *SAVED_TERMIOS.lock().unwrap_or_else(|e| e.into_inner()) {
        // SAFETY: restoring the attributes saved from the same fd.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        restore_terminal();
    }
}
