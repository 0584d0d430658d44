//! A one-line editor for the prompt and for editing an entry's command line:
//! insert and delete at the cursor, cursor movement, Ctrl-A/E/K/U, and a
//! bounded history across prompt lines.
//!
//! It redraws with few, widely understood escape codes: BS and `ESC [ n D` to
//! move left, `ESC [ n C` to move right, `ESC [ K` to clear to the end of the
//! line. Characters are counted as one column each; a line wider than the
//! console scrolls sideways (see [`LineEditor`]).

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use super::keys::Key;
use super::Output;

/// Longest line accepted, in characters (Linux's x86 COMMAND_LINE_SIZE).
pub const MAX_LINE: usize = 2048;
/// Lines the prompt history keeps.
pub const HISTORY_LINES: usize = 32;

/// Earlier prompt lines, oldest first.
#[derive(Debug, Clone, Default)]
pub struct History {
    lines: VecDeque<String>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        History { lines: VecDeque::new() }
    }

    /// Remembers `line` (blank lines and repeats of the last one are not kept).
    pub fn push(&mut self, line: &str) {
        if line.trim().is_empty() || self.lines.back().is_some_and(|l| l == line) {
            return;
        }
        if self.lines.len() == HISTORY_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(String::from(line));
    }

    /// Number of lines kept.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// What a key did to the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Still editing.
    Editing,
    /// Enter: the finished line (the editor has moved to the next line).
    Done(String),
    /// Esc: editing abandoned (the cursor is still on the line).
    Cancel,
    /// Ctrl-C: editing abandoned (the cursor is still on the line).
    Interrupt,
}

/// Columns the editor assumes the console has (the PV console cannot report
/// its size; 80 is what every terminal offers).
pub const COLUMNS: usize = 80;

/// The line being edited.
///
/// A line wider than the console scrolls sideways: only the window
/// `chars[view..view + width]` is on screen after the prompt, so the cursor
/// never has to cross a wrapped line (BS and `ESC [ D` cannot). Moving out of
/// the window redraws the line with the cursor near the window's middle.
#[derive(Debug, Clone, Default)]
pub struct LineEditor {
    chars: Vec<char>,
    cursor: usize,
    /// First character on screen.
    view: usize,
    /// Characters the window shows.
    width: usize,
    prompt: String,
    /// Position in the history while browsing it (`None`: the line being typed).
    browsing: Option<usize>,
    /// The line being typed, kept while browsing the history.
    draft: Vec<char>,
}

fn put_chars(out: &mut dyn Output, chars: &[char]) {
    let mut s = String::with_capacity(chars.len());
    s.extend(chars);
    out.write(s.as_bytes());
}

fn left(out: &mut dyn Output, n: usize) {
    match n {
        0 => {}
        1 => out.write(b"\x08"),
        n => out.write(alloc::format!("\x1b[{n}D").as_bytes()),
    }
}

fn right(out: &mut dyn Output, n: usize) {
    if n > 0 {
        out.write(alloc::format!("\x1b[{n}C").as_bytes());
    }
}

impl LineEditor {
    /// Writes `prompt` and starts editing `text` (cut to [`MAX_LINE`], control
    /// characters dropped) with the cursor at its end.
    pub fn start(&mut self, prompt: &str, text: &str, out: &mut dyn Output) {
        self.prompt = super::one_line(prompt, COLUMNS / 2);
        // Leave two columns: the cursor after the last character stays on the line.
        self.width = COLUMNS - 2 - self.prompt.chars().count();
        self.chars = text.chars().filter(|c| !c.is_control()).take(MAX_LINE).collect();
        self.cursor = self.chars.len();
        self.view = self.cursor.saturating_sub(self.width);
        self.browsing = None;
        self.draft.clear();
        out.write(self.prompt.as_bytes());
        put_chars(out, &self.chars[self.view..]);
    }

    /// The text so far.
    pub fn text(&self) -> String {
        self.chars.iter().collect()
    }

    /// The cursor position, in characters.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// The word before the cursor (from the last space), and whether it is
    /// the line's first word.
    pub fn word_before_cursor(&self) -> (bool, String) {
        let before = &self.chars[..self.cursor];
        let start = before.iter().rposition(|c| c.is_whitespace()).map_or(0, |i| i + 1);
        let first = before[..start].iter().all(|c| c.is_whitespace());
        (first, before[start..].iter().collect())
    }

    /// Inserts `text` at the cursor as if typed.
    pub fn insert(&mut self, text: &str, out: &mut dyn Output) {
        let none = History::new();
        for c in text.chars().filter(|c| !c.is_control()) {
            self.key(Key::Char(c), &none, out);
        }
    }

    /// Writes the prompt and the line again (after other output), cursor in place.
    pub fn redraw_line(&mut self, out: &mut dyn Output) {
        self.redraw(out);
    }

    /// End of the part of the line on screen.
    fn window_end(&self) -> usize {
        self.chars.len().min(self.view + self.width)
    }

    /// Whether the cursor is inside the window.
    fn cursor_shown(&self) -> bool {
        self.cursor >= self.view && self.cursor - self.view <= self.width
    }

    /// Applies one key, echoing the change.
    pub fn key(&mut self, key: Key, history: &History, out: &mut dyn Output) -> Edit {
        let len = self.chars.len();
        match key {
            Key::Char(c) => {
                if len >= MAX_LINE {
                    return Edit::Editing;
                }
                self.chars.insert(self.cursor, c);
                self.cursor += 1;
                if self.cursor_shown() {
                    put_chars(out, &self.chars[self.cursor - 1..self.window_end()]);
                    left(out, self.window_end() - self.cursor);
                } else {
                    self.redraw(out);
                }
            }
            Key::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                self.chars.remove(self.cursor);
                if self.cursor_shown() {
                    out.write(b"\x08");
                    self.redraw_tail(out);
                } else {
                    self.redraw(out);
                }
            }
            Key::Delete if self.cursor < len => {
                self.chars.remove(self.cursor);
                self.redraw_tail(out);
            }
            Key::Left if self.cursor > 0 => self.move_to(self.cursor - 1, out),
            Key::Right if self.cursor < len => self.move_to(self.cursor + 1, out),
            Key::Home => self.move_to(0, out),
            Key::End => self.move_to(len, out),
            Key::KillToEnd if self.cursor < len => {
                self.chars.truncate(self.cursor);
                out.write(b"\x1b[K");
            }
            Key::KillToStart if self.cursor > 0 => {
                let at = self.cursor;
                self.chars.drain(..at);
                self.cursor = 0;
                if self.view == 0 {
                    left(out, at);
                    self.redraw_tail(out);
                } else {
                    self.redraw(out);
                }
            }
            Key::Up => self.browse(history, true, out),
            Key::Down => self.browse(history, false, out),
            Key::Enter => {
                out.write(b"\r\n");
                let line = self.text();
                self.browsing = None;
                return Edit::Done(line);
            }
            Key::Esc => return Edit::Cancel,
            Key::Interrupt => return Edit::Interrupt,
            _ => {}
        }
        Edit::Editing
    }

    /// Moves the cursor to `to`, within the window if it can.
    fn move_to(&mut self, to: usize, out: &mut dyn Output) {
        let from = self.cursor;
        self.cursor = to;
        if !self.cursor_shown() {
            self.redraw(out);
        } else if to < from {
            left(out, from - to);
        } else if to == from + 1 {
            // Writing the character under the cursor moves past it in a byte or so.
            put_chars(out, &self.chars[from..to]);
        } else {
            right(out, to - from);
        }
    }

    /// Rewrites the window from the cursor on, clears what is left of the old
    /// line, and puts the cursor back.
    fn redraw_tail(&mut self, out: &mut dyn Output) {
        let end = self.window_end();
        put_chars(out, &self.chars[self.cursor..end]);
        out.write(b"\x1b[K");
        left(out, end - self.cursor);
    }

    /// Scrolls the window so the cursor is in its middle (or the line's start
    /// is at its left edge) and rewrites the whole line.
    fn redraw(&mut self, out: &mut dyn Output) {
        self.view = if self.cursor <= self.width { 0 } else { self.cursor - self.width / 2 };
        out.write(b"\r");
        out.write(self.prompt.as_bytes());
        let end = self.window_end();
        put_chars(out, &self.chars[self.view..end]);
        out.write(b"\x1b[K");
        left(out, end - self.cursor);
    }

    /// Replaces the whole line with `chars`, cursor at the end.
    fn replace(&mut self, chars: Vec<char>, out: &mut dyn Output) {
        let old_len = self.chars.len();
        self.chars = chars;
        let at = core::mem::replace(&mut self.cursor, self.chars.len());
        if self.view == 0 && self.chars.len() <= self.width {
            left(out, at);
            put_chars(out, &self.chars);
            if self.chars.len() < old_len {
                out.write(b"\x1b[K");
            }
        } else {
            self.redraw(out);
        }
    }

    fn browse(&mut self, history: &History, older: bool, out: &mut dyn Output) {
        let n = history.lines.len();
        let next = match (self.browsing, older) {
            (None, true) if n > 0 => Some(n - 1),
            (Some(i), true) if i > 0 => Some(i - 1),
            (Some(i), false) if i + 1 < n => Some(i + 1),
            (Some(_), false) => None,
            _ => return,
        };
        if self.browsing.is_none() {
            self.draft = core::mem::take(&mut self.chars);
        }
        self.browsing = next;
        let chars = match next {
            Some(i) => history.lines[i].chars().take(MAX_LINE).collect(),
            None => core::mem::take(&mut self.draft),
        };
        self.replace(chars, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn type_keys(ed: &mut LineEditor, h: &History, keys: &[Key]) -> (Edit, String) {
        let mut out = Vec::new();
        let mut last = Edit::Editing;
        for &k in keys {
            last = ed.key(k, h, &mut out);
        }
        (last, String::from_utf8(out).unwrap())
    }

    fn chars(s: &str) -> Vec<Key> {
        s.chars().map(Key::Char).collect()
    }

    #[test]
    fn typing_echoes_exactly() {
        let mut ed = LineEditor::default();
        let h = History::new();
        ed.start("pvboot> ", "", &mut Vec::new());
        let (_, out) = type_keys(&mut ed, &h, &chars("ls"));
        assert_eq!(out, "ls");
        // Insert in the middle: the tail is rewritten and the cursor goes back.
        let (_, out) = type_keys(&mut ed, &h, &[Key::Left, Key::Char('X')]);
        assert_eq!(out, "\x08Xs\x08");
        assert_eq!(ed.text(), "lXs");
        let (_, out) = type_keys(&mut ed, &h, &[Key::Backspace]);
        assert_eq!(out, "\x08s\x1b[K\x08");
        let (_, out) = type_keys(&mut ed, &h, &[Key::Home, Key::Delete, Key::End]);
        assert_eq!(out, "\x08s\x1b[K\x08s");
        assert_eq!((ed.text().as_str(), ed.cursor()), ("s", 1));
        let (r, out) = type_keys(&mut ed, &h, &[Key::Enter]);
        assert_eq!((r, out.as_str()), (Edit::Done("s".to_string()), "\r\n"));
    }

    #[test]
    fn kills_and_bounds() {
        let mut ed = LineEditor::default();
        let h = History::new();
        let mut out = Vec::new();
        ed.start("> ", "console=hvc0 root=/dev/xvda1", &mut out);
        assert_eq!(out, b"> console=hvc0 root=/dev/xvda1");
        let mut keys = alloc::vec![Key::Left; 16];
        keys.push(Key::KillToEnd);
        let (_, out) = type_keys(&mut ed, &h, &keys);
        assert!(out.ends_with("\x1b[K"));
        assert_eq!(ed.text(), "console=hvc0");
        let (_, out) = type_keys(&mut ed, &h, &[Key::Left, Key::Left, Key::KillToStart]);
        assert_eq!(out, "\x08\x08\x1b[10Dc0\x1b[K\x1b[2D");
        assert_eq!((ed.text().as_str(), ed.cursor()), ("c0", 0));
        // Nothing to the left: backspace, left and Ctrl-U do nothing and print nothing.
        let (_, out) = type_keys(&mut ed, &h, &[Key::Backspace, Key::Left, Key::KillToStart, Key::Home]);
        assert_eq!(out, "");
        // The length cap; typing past the window scrolls it every half width.
        let mut out = Vec::new();
        ed.start("", "", &mut out);
        for _ in 0..MAX_LINE + 10 {
            ed.key(Key::Char('a'), &h, &mut out);
        }
        assert_eq!(ed.text().len(), MAX_LINE);
        let redraws = out.iter().filter(|&&b| b == b'\r').count();
        // The first at offset width + 1, then every width / 2 + 1 characters.
        let w = COLUMNS - 2;
        assert_eq!(redraws, (MAX_LINE - (w + 1)) / (w / 2 + 1) + 1);
        assert!(out.len() < 3 * MAX_LINE);
    }

    #[test]
    fn long_lines_scroll_sideways() {
        let h = History::new();
        let mut ed = LineEditor::default();
        let line: String = (0..200).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        let mut out = Vec::new();
        ed.start("> ", &line, &mut out);
        // 80 columns less the prompt and two: the last 76 characters are shown.
        let w = COLUMNS - 4;
        assert_eq!(String::from_utf8(out).unwrap(), alloc::format!("> {}", &line[200 - w..]));
        // Home: the line's start, redrawn from the left edge.
        let (_, s) = type_keys(&mut ed, &h, &[Key::Home]);
        assert_eq!(s, alloc::format!("\r> {}\x1b[K\x1b[{w}D", &line[..w]));
        // Moving within the window is cheap; past its right edge, it scrolls
        // so the cursor is in the middle.
        let (_, s) = type_keys(&mut ed, &h, &[Key::Right]);
        assert_eq!(s, "a");
        let mut keys = alloc::vec![Key::Right; w - 1];
        keys.push(Key::Right);
        let (_, s) = type_keys(&mut ed, &h, &keys);
        let view = (w + 1) - w / 2;
        assert!(s.ends_with(&alloc::format!("\r> {}\x1b[K\x1b[{}D", &line[view..view + w], w - w / 2)), "{s:?}");
        assert_eq!(ed.cursor(), w + 1);
        // Typing in the middle of a scrolled line rewrites only the window's tail.
        let (_, s) = type_keys(&mut ed, &h, &[Key::Char('X')]);
        assert_eq!(s, alloc::format!("X{}\x1b[{}D", &line[w + 1..view + w - 1], view + w - 1 - (w + 1)));
        let mut want = line.clone();
        want.insert(w + 1, 'X');
        assert_eq!(ed.text(), want);
    }

    #[test]
    fn history_browsing() {
        let mut h = History::new();
        h.push("ls /");
        h.push("cat /hello.txt");
        h.push("cat /hello.txt");
        h.push("   ");
        assert_eq!(h.len(), 2);
        let mut ed = LineEditor::default();
        ed.start("pvboot> ", "", &mut Vec::new());
        let (_, out) = type_keys(&mut ed, &h, &chars("ro"));
        assert_eq!(out, "ro");
        let (_, out) = type_keys(&mut ed, &h, &[Key::Up]);
        assert_eq!(out, "\x1b[2Dcat /hello.txt");
        assert_eq!(ed.text(), "cat /hello.txt");
        type_keys(&mut ed, &h, &[Key::Up, Key::Up]);
        assert_eq!(ed.text(), "ls /");
        type_keys(&mut ed, &h, &[Key::Down]);
        assert_eq!(ed.text(), "cat /hello.txt");
        // Past the newest line: the draft comes back.
        let (_, out) = type_keys(&mut ed, &h, &[Key::Down]);
        assert_eq!(ed.text(), "ro");
        assert_eq!(out, "\x1b[14Dro\x1b[K");
        let (_, out) = type_keys(&mut ed, &h, &[Key::Down]);
        assert_eq!(out, "");
        for i in 0..100 {
            h.push(&alloc::format!("line {i}"));
        }
        assert_eq!(h.len(), HISTORY_LINES);
    }
}
