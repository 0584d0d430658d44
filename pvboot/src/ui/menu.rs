//! The menu screen: entry rows, the countdown line, selection and `e` editing.
//!
//! Layout, top to bottom: the banner, a blank line, up to [`MENU_ROWS`] entry
//! rows (and a position line when there are more entries), a help line, and
//! the status line the cursor rests on (the countdown, written over with
//! `\r`). A changed row is rewritten in place by moving up to it and back.

use alloc::format;
use alloc::string::String;

use super::editor::{Edit, History};
use super::keys::Key;
use super::{one_line, Boot, Countdown, MenuEntry, Mode, Output, Reason, Ui, LINE_CHARS, MENU_ROWS, TITLE_CHARS};

/// The line under the entries.
const HELP: &str = "Up/Down or a number selects, Enter boots, e edits the command line, c opens a prompt.";

impl<E: MenuEntry> Ui<E> {
    /// Entry rows on screen.
    fn rows(&self) -> usize {
        self.entries.len().min(MENU_ROWS)
    }

    /// Whether a position line follows the rows.
    fn scrolls(&self) -> bool {
        self.entries.len() > MENU_ROWS
    }

    fn row_text(&self, i: usize) -> String {
        let width = digits(self.entries.len());
        let marker = if i == self.selected { '>' } else { ' ' };
        let default = if i == self.default { " (default)" } else { "" };
        let text = format!("{marker} {:>width$}. {}{default}", i + 1, one_line(self.entries[i].title(), TITLE_CHARS));
        if i == self.selected {
            format!("\x1b[7m{text}\x1b[0m")
        } else {
            text
        }
    }

    fn position_text(&self) -> String {
        format!(
            "  (entries {}-{} of {}; PageUp/PageDown scroll)",
            self.top + 1,
            self.top + self.rows(),
            self.entries.len()
        )
    }

    /// Draws the whole menu; the cursor ends on the (empty) status line.
    pub(super) fn draw_menu(&mut self, out: &mut dyn Output) {
        self.scroll_to_selection();
        for line in &self.settings.banner {
            out.write(one_line(line, LINE_CHARS).as_bytes());
            out.write(b"\r\n");
        }
        out.write(b"\r\n");
        for i in self.top..self.top + self.rows() {
            out.write(self.row_text(i).as_bytes());
            out.write(b"\r\n");
        }
        if self.scrolls() {
            out.write(self.position_text().as_bytes());
            out.write(b"\r\n");
        }
        out.write(HELP.as_bytes());
        out.write(b"\r\n");
        self.status_len = 0;
    }

    /// Moves `top` so the selection is on screen; whether it moved.
    fn scroll_to_selection(&mut self) -> bool {
        let old = self.top;
        if self.selected < self.top {
            self.top = self.selected;
        } else if self.selected >= self.top + MENU_ROWS {
            self.top = self.selected + 1 - MENU_ROWS;
        }
        self.top = self.top.min(self.entries.len().saturating_sub(MENU_ROWS));
        self.top != old
    }

    /// Lines from the status line up to `row` (0 = the first row on screen).
    fn lines_up(&self, row: usize) -> usize {
        1 + usize::from(self.scrolls()) + self.rows() - row
    }

    /// Rewrites one screen line `up` lines above the (empty) status line.
    fn rewrite_line(&self, up: usize, text: &str, out: &mut dyn Output) {
        out.write(format!("\x1b[{up}A\r{text}\x1b[K\x1b[{up}B\r").as_bytes());
    }

    fn rewrite_row(&self, i: usize, out: &mut dyn Output) {
        if (self.top..self.top + self.rows()).contains(&i) {
            self.rewrite_line(self.lines_up(i - self.top), &self.row_text(i), out);
        }
    }

    /// Highlights entry `i`, rewriting only the rows that change.
    fn select(&mut self, i: usize, out: &mut dyn Output) {
        if i == self.selected || i >= self.entries.len() {
            return;
        }
        let old = self.selected;
        self.selected = i;
        if self.scroll_to_selection() {
            for i in self.top..self.top + self.rows() {
                self.rewrite_row(i, out);
            }
            self.rewrite_line(1, &self.position_text(), out);
        } else {
            self.rewrite_row(old, out);
            self.rewrite_row(i, out);
        }
    }

    /// Writes `text` over the status line.
    pub(super) fn set_status(&mut self, text: &str, out: &mut dyn Output) {
        let len = text.chars().count();
        if self.status_len > 0 {
            out.write(b"\r");
        }
        out.write(text.as_bytes());
        if len < self.status_len {
            out.write(b"\x1b[K");
        }
        self.status_len = len;
    }

    fn countdown_text(&self, seconds: u64) -> String {
        format!(
            "Booting '{}' in {seconds} s; press any key to stop",
            one_line(self.entries[self.default].title(), TITLE_CHARS)
        )
    }

    /// Starts counting `seconds` down to booting the default entry.
    pub(super) fn start_countdown(&mut self, now: u64, seconds: u32, fallback: bool, out: &mut dyn Output) {
        let shown = u64::from(seconds);
        self.countdown = Some(Countdown { boot_at: now.saturating_add(shown * 1000), shown, fallback });
        if shown > 0 {
            let text = self.countdown_text(shown);
            self.set_status(&text, out);
        }
    }

    /// When the countdown line next changes (or the default boots).
    pub(super) fn next_tick(&self, c: Countdown) -> u64 {
        if c.shown <= 1 {
            c.boot_at
        } else {
            c.boot_at.saturating_sub((c.shown - 1) * 1000)
        }
    }

    pub(super) fn stop_countdown(&mut self, out: &mut dyn Output) {
        self.countdown = None;
        self.set_status("", out);
    }

    /// Updates the countdown at `now`; boots the default when it has run out.
    pub(super) fn tick(&mut self, now: u64, out: &mut dyn Output) -> Option<Boot<E>> {
        let mut c = self.countdown?;
        if now >= c.boot_at {
            self.countdown = None;
            let reason = if c.fallback { Reason::Fallback } else { Reason::Timeout };
            return Some(self.boot_entry(self.default, reason, out));
        }
        let left = (c.boot_at - now).div_ceil(1000);
        if left != c.shown {
            c.shown = left;
            self.countdown = Some(c);
            let text = self.countdown_text(left);
            self.set_status(&text, out);
        }
        None
    }

    pub(super) fn menu_key(&mut self, key: Key, _now: u64, out: &mut dyn Output) -> Option<Boot<E>> {
        let last = self.entries.len().saturating_sub(1);
        if !matches!(key, Key::Char('0'..='9')) {
            self.number = 0;
        }
        match key {
            Key::Up => self.select(self.selected.saturating_sub(1), out),
            Key::Down => self.select((self.selected + 1).min(last), out),
            Key::PageUp | Key::Home => {
                let to = if key == Key::Home { 0 } else { self.selected.saturating_sub(MENU_ROWS) };
                self.select(to, out)
            }
            Key::PageDown | Key::End => {
                let to = if key == Key::End { last } else { (self.selected + MENU_ROWS).min(last) };
                self.select(to, out)
            }
            Key::Char(c @ '0'..='9') => {
                let d = c as usize - '0' as usize;
                let n = self.entries.len();
                // Digits build up a number while it still names an entry (1, 12).
                let more = self.number.saturating_mul(10).saturating_add(d);
                self.number = if self.number > 0 && more <= n { more } else if (1..=n).contains(&d) { d } else { 0 };
                if self.number > 0 {
                    self.select(self.number - 1, out);
                }
            }
            Key::Enter => return Some(self.boot_entry(self.selected, Reason::Chosen, out)),
            Key::Char('e') => self.enter_edit(out),
            Key::Char('c') => self.enter_prompt(out),
            _ => {}
        }
        None
    }

    fn enter_edit(&mut self, out: &mut dyn Output) {
        self.mode = Mode::Edit;
        let e = &self.entries[self.selected];
        let head = format!(
            "Command line of '{}' (Enter boots it, Esc goes back):\r\n",
            one_line(e.title(), TITLE_CHARS)
        );
        out.write(head.as_bytes());
        let line = String::from(e.command_line());
        self.editor.start("> ", &line, out);
    }

    pub(super) fn edit_key(&mut self, key: Key, _now: u64, out: &mut dyn Output) -> Option<Boot<E>> {
        match self.editor.key(key, &History::new(), out) {
            Edit::Editing => None,
            Edit::Done(line) => {
                let mut entry = self.entries[self.selected].clone();
                entry.set_command_line(line);
                Some(self.finish_boot(self.selected, entry, Reason::Edited, out))
            }
            Edit::Cancel | Edit::Interrupt => {
                out.write(b"\r\n");
                self.show_menu(out);
                None
            }
        }
    }

    /// Back to the menu from the editor or the prompt.
    pub(super) fn show_menu(&mut self, out: &mut dyn Output) {
        self.mode = Mode::Menu;
        self.draw_menu(out);
    }
}

/// Decimal digits of `n` (at least 1).
fn digits(n: usize) -> usize {
    let mut d = 1;
    let mut n = n / 10;
    while n > 0 {
        d += 1;
        n /= 10;
    }
    d
}
