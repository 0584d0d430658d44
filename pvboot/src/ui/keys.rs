//! From console bytes to keys: printable characters (UTF-8), control keys and
//! the ANSI escape sequences terminals send for arrows and editing keys.
//!
//! Bytes arrive in arbitrary pieces (the PV console ring hands over whatever
//! the backend wrote), so the decoder keeps a partial sequence across calls.
//! A lone ESC is only known to be the Esc key when nothing follows it within
//! [`ESC_TIMEOUT_MS`]; [`KeyDecoder::deadline`] says when to call
//! [`KeyDecoder::on_time`] to settle it.

/// How long a lone ESC waits for the rest of an escape sequence.
pub const ESC_TIMEOUT_MS: u64 = 100;
/// Longest escape sequence kept; longer ones are dropped unread.
const MAX_SEQUENCE: usize = 16;

/// A decoded key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A printable character.
    Char(char),
    /// Enter (CR, LF, or CR LF).
    Enter,
    /// Backspace (DEL 0x7f or BS 0x08).
    Backspace,
    /// Delete (ESC [ 3 ~, or Ctrl-D).
    Delete,
    /// Tab.
    Tab,
    /// Esc on its own.
    Esc,
    /// Arrow up (or Ctrl-P).
    Up,
    /// Arrow down (or Ctrl-N).
    Down,
    /// Arrow left (or Ctrl-B).
    Left,
    /// Arrow right (or Ctrl-F).
    Right,
    /// Home (or Ctrl-A).
    Home,
    /// End (or Ctrl-E).
    End,
    /// Page up.
    PageUp,
    /// Page down.
    PageDown,
    /// Ctrl-K: delete to the end of the line.
    KillToEnd,
    /// Ctrl-U: delete to the start of the line.
    KillToStart,
    /// Ctrl-C.
    Interrupt,
    /// Any other control byte or unknown escape sequence (still a key press:
    /// it stops the countdown).
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ground,
    /// After ESC.
    Escape,
    /// After ESC [ (CSI) or ESC O (SS3), collecting parameter bytes.
    Sequence { ss3: bool },
    /// Inside a UTF-8 character: the bytes still to come.
    Utf8 { left: u8 },
}

/// Turns console bytes into [`Key`]s.
#[derive(Debug, Clone)]
pub struct KeyDecoder {
    state: State,
    /// Parameter bytes of the current sequence, or the UTF-8 bytes so far.
    buf: [u8; MAX_SEQUENCE],
    len: usize,
    /// The current sequence overflowed `buf`: drop it when it ends.
    overflow: bool,
    /// When the pending ESC arrived.
    esc_at: u64,
    /// The previous byte was CR: a LF right after it is the same Enter.
    after_cr: bool,
}

impl Default for KeyDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyDecoder {
    /// A decoder with nothing pending.
    pub fn new() -> Self {
        KeyDecoder { state: State::Ground, buf: [0; MAX_SEQUENCE], len: 0, overflow: false, esc_at: 0, after_cr: false }
    }

    /// When [`on_time`](Self::on_time) must be called to settle a lone ESC.
    pub fn deadline(&self) -> Option<u64> {
        (self.state == State::Escape).then(|| self.esc_at.saturating_add(ESC_TIMEOUT_MS))
    }

    /// Settles a pending lone ESC once its timeout has passed.
    pub fn on_time(&mut self, now: u64) -> Option<Key> {
        match self.deadline() {
            Some(d) if now >= d => {
                self.state = State::Ground;
                Some(Key::Esc)
            }
            _ => None,
        }
    }

    /// Feeds one byte received at `now`; `key` is called for each key it completes
    /// (at most two: a pending Esc and the key this byte makes).
    pub fn feed(&mut self, byte: u8, now: u64, key: &mut dyn FnMut(Key)) {
        let after_cr = core::mem::replace(&mut self.after_cr, false);
        match self.state {
            State::Ground => self.ground(byte, now, after_cr, key),
            State::Escape => match byte {
                b'[' => self.begin_sequence(false),
                b'O' => self.begin_sequence(true),
                // ESC ESC: the first was a lone Esc, the second may start a sequence.
                0x1b => {
                    key(Key::Esc);
                    self.esc_at = now;
                }
                _ => {
                    // Alt-x or an Esc typed just before x: the Esc, then x.
                    self.state = State::Ground;
                    key(Key::Esc);
                    self.ground(byte, now, false, key);
                }
            },
            State::Sequence { ss3 } => match byte {
                0x40..=0x7e => {
                    self.state = State::Ground;
                    let k = if self.overflow { Key::Other } else { self.finish(ss3, byte) };
                    key(k);
                }
                0x20..=0x3f => {
                    if self.len < MAX_SEQUENCE {
                        self.buf[self.len] = byte;
                        self.len += 1;
                    } else {
                        self.overflow = true;
                    }
                }
                _ => {
                    // Not part of a sequence: drop what was collected, decode the byte afresh.
                    self.state = State::Ground;
                    key(Key::Other);
                    self.ground(byte, now, false, key);
                }
            },
            State::Utf8 { left } => {
                if byte & 0xc0 != 0x80 {
                    // A broken character: drop it and decode the byte afresh.
                    self.state = State::Ground;
                    key(Key::Other);
                    self.ground(byte, now, false, key);
                    return;
                }
                self.buf[self.len] = byte;
                self.len += 1;
                if left > 1 {
                    self.state = State::Utf8 { left: left - 1 };
                    return;
                }
                self.state = State::Ground;
                let c = core::str::from_utf8(&self.buf[..self.len]).ok().and_then(|s| s.chars().next());
                key(match c {
                    Some(c) if !c.is_control() => Key::Char(c),
                    _ => Key::Other,
                });
            }
        }
    }

    fn begin_sequence(&mut self, ss3: bool) {
        self.state = State::Sequence { ss3 };
        self.len = 0;
        self.overflow = false;
    }

    fn ground(&mut self, byte: u8, now: u64, after_cr: bool, key: &mut dyn FnMut(Key)) {
        let k = match byte {
            b'\r' => {
                self.after_cr = true;
                Key::Enter
            }
            b'\n' if after_cr => return,
            b'\n' => Key::Enter,
            0x7f | 0x08 => Key::Backspace,
            b'\t' => Key::Tab,
            0x1b => {
                self.state = State::Escape;
                self.esc_at = now;
                return;
            }
            0x01 => Key::Home,
            0x02 => Key::Left,
            0x03 => Key::Interrupt,
            0x04 => Key::Delete,
            0x05 => Key::End,
            0x06 => Key::Right,
            0x0b => Key::KillToEnd,
            0x0e => Key::Down,
            0x10 => Key::Up,
            0x15 => Key::KillToStart,
            0x20..=0x7e => Key::Char(byte as char),
            0xc2..=0xf4 => {
                self.buf[0] = byte;
                self.len = 1;
                let left = match byte {
                    0xc2..=0xdf => 1,
                    0xe0..=0xef => 2,
                    _ => 3,
                };
                self.state = State::Utf8 { left };
                return;
            }
            _ => Key::Other,
        };
        key(k);
    }

    /// The key a complete CSI (`ESC [ params final`) or SS3 (`ESC O final`) sequence means.
    fn finish(&self, ss3: bool, last: u8) -> Key {
        let params = &self.buf[..self.len];
        match last {
            b'A' => Key::Up,
            b'B' => Key::Down,
            b'C' => Key::Right,
            b'D' => Key::Left,
            b'H' => Key::Home,
            b'F' => Key::End,
            b'~' if !ss3 => {
                // ESC [ n ~ or ESC [ n ; modifier ~
                let n = params.split(|&b| b == b';').next().unwrap_or(&[]);
                match n {
                    b"1" | b"7" => Key::Home,
                    b"3" => Key::Delete,
                    b"4" | b"8" => Key::End,
                    b"5" => Key::PageUp,
                    b"6" => Key::PageDown,
                    _ => Key::Other,
                }
            }
            _ => Key::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn decode(pieces: &[(u64, &[u8])]) -> Vec<Key> {
        let mut d = KeyDecoder::new();
        let mut keys = Vec::new();
        for &(t, bytes) in pieces {
            if let Some(k) = d.on_time(t) {
                keys.push(k);
            }
            for &b in bytes {
                d.feed(b, t, &mut |k| keys.push(k));
            }
        }
        keys
    }

    #[test]
    fn printable_and_control() {
        assert_eq!(
            decode(&[(0, b"a Z~\x7f\x08\t\x01\x05\x0b\x15\x03")]),
            [
                Key::Char('a'),
                Key::Char(' '),
                Key::Char('Z'),
                Key::Char('~'),
                Key::Backspace,
                Key::Backspace,
                Key::Tab,
                Key::Home,
                Key::End,
                Key::KillToEnd,
                Key::KillToStart,
                Key::Interrupt
            ]
        );
    }

    #[test]
    fn enter_forms() {
        // CR, LF, and CR LF are one Enter each.
        assert_eq!(decode(&[(0, b"\r\n\r\n\n\r")]), [Key::Enter, Key::Enter, Key::Enter, Key::Enter]);
    }

    #[test]
    fn escape_sequences() {
        let keys = decode(&[(0, b"\x1b[A\x1b[B\x1b[C\x1b[D\x1bOA\x1bOH\x1b[F\x1b[3~\x1b[1~\x1b[4~\x1b[5~\x1b[6~\x1b[1;5C\x1b[Z")]);
        assert_eq!(
            keys,
            [
                Key::Up,
                Key::Down,
                Key::Right,
                Key::Left,
                Key::Up,
                Key::Home,
                Key::End,
                Key::Delete,
                Key::Home,
                Key::End,
                Key::PageUp,
                Key::PageDown,
                Key::Right,
                Key::Other
            ]
        );
    }

    #[test]
    fn split_sequences() {
        // Every split point of ESC [ 3 ~ gives one Delete, within the timeout.
        let seq = b"\x1b[3~";
        for cut in 1..seq.len() {
            assert_eq!(decode(&[(0, &seq[..cut]), (ESC_TIMEOUT_MS - 1, &seq[cut..])]), [Key::Delete], "cut {cut}");
        }
    }

    #[test]
    fn lone_escape() {
        let mut d = KeyDecoder::new();
        let mut keys = Vec::new();
        d.feed(0x1b, 1000, &mut |k| keys.push(k));
        assert_eq!(d.deadline(), Some(1000 + ESC_TIMEOUT_MS));
        assert_eq!(d.on_time(1000 + ESC_TIMEOUT_MS - 1), None);
        assert_eq!(d.on_time(1000 + ESC_TIMEOUT_MS), Some(Key::Esc));
        assert_eq!(d.deadline(), None);
        assert!(keys.is_empty());
        // ESC then a letter: Esc and the letter; ESC ESC [ A: Esc and Up.
        assert_eq!(decode(&[(0, b"\x1bx")]), [Key::Esc, Key::Char('x')]);
        assert_eq!(decode(&[(0, b"\x1b\x1b[A")]), [Key::Esc, Key::Up]);
        // A late rest of a sequence is an Esc and then plain characters.
        assert_eq!(
            decode(&[(0, b"\x1b"), (ESC_TIMEOUT_MS, b"[A")]),
            [Key::Esc, Key::Char('['), Key::Char('A')]
        );
    }

    #[test]
    fn utf8_and_garbage() {
        assert_eq!(decode(&[(0, "ü☃".as_bytes())]), [Key::Char('ü'), Key::Char('☃')]);
        // A character split across reads.
        let snow = "☃".as_bytes();
        assert_eq!(decode(&[(0, &snow[..1]), (5, &snow[1..])]), [Key::Char('☃')]);
        // A broken character, a stray continuation byte, an overlong sequence.
        assert_eq!(decode(&[(0, b"\xe2a\x80\xff")]), [Key::Other, Key::Char('a'), Key::Other, Key::Other]);
        let mut long = alloc::vec![0x1b, b'['];
        long.extend(core::iter::repeat_n(b'1', 100));
        long.push(b'A');
        assert_eq!(decode(&[(0, &long)]), [Key::Other]);
    }
}
