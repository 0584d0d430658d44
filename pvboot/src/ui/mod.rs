//! The console user interface: the boot menu with its countdown, editing an
//! entry's command line, and a GRUB-like command prompt.
//!
//! [`Ui`] is a state machine with no clock and no I/O of its own: the caller
//! feeds it console bytes ([`Ui::on_byte`]) and the time ([`Ui::on_time`],
//! when [`Ui::deadline`] has passed), and it writes the screen to an
//! [`Output`] and answers with a [`Boot`] when something should be booted.
//! [`Ui::run`] is that loop over a [`Terminal`] (the PV console and pvclock
//! in the guest, a script of timed bytes in the tests). Disks and files are
//! reached through a [`Shell`]; [`disks::DiskShell`] is the one over pvboot's
//! own disk, partition and file-system code.
//!
//! The guest's side, in outline (`Console` implements [`Terminal`] over the
//! PV console ring and pvclock; `load_and_enter` never returns on success):
//!
//! ```text
//! let mut ui = Ui::from_menu(menu);
//! let mut shell = DiskShell::new(disks, Some(config_partition));
//! loop {
//!     let entry = match ui.run(&mut console, &mut shell) {
//!         Boot::Entry { entry, .. } | Boot::Custom(entry) => entry,
//!     };
//!     let err = load_and_enter(&entry);           // "file: reason"
//!     ui.boot_failed(&err, console.now_ms(), &mut console);
//! }
//! ```
//!
//! The screen is plain text with a few ANSI codes (reverse video for the
//! selection, `ESC [ K`, cursor up/down for redrawing menu rows) so that a
//! dumb `xl console` log still reads as a menu, a countdown and a choice.
//! Everything written for one byte or one tick is bounded: titles and
//! messages are cut, at most [`MENU_ROWS`] entries are on screen, and `cat`
//! stops after [`prompt::CAT_LIMIT`] bytes.

pub mod disks;
pub mod editor;
pub mod keys;
mod menu;
pub mod prompt;

use alloc::string::String;
use alloc::vec::Vec;

use editor::{History, LineEditor};
use keys::{Key, KeyDecoder};
pub use prompt::Shell;

use crate::config::{Entry, Menu};

/// Entry rows shown at once; longer menus scroll.
pub const MENU_ROWS: usize = 16;
/// Longest title shown, in characters.
pub const TITLE_CHARS: usize = 64;
/// Longest message line (errors, banner, notes), in characters.
pub const LINE_CHARS: usize = 200;
/// Most banner lines shown above the menu.
pub const BANNER_LINES: usize = 16;
/// Most notes shown before the first screen.
pub const NOTE_LINES: usize = 64;

/// Where the screen goes.
pub trait Output {
    /// Writes bytes to the console.
    fn write(&mut self, bytes: &[u8]);
}

impl Output for Vec<u8> {
    fn write(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A console: bytes out, bytes in with a timeout, and a millisecond clock.
pub trait Terminal: Output {
    /// Waits for one input byte for at most `timeout_ms` (`None`: as long as
    /// it takes); `None` when the time ran out first.
    fn read_byte(&mut self, timeout_ms: Option<u64>) -> Option<u8>;
    /// Milliseconds on a monotonic clock.
    fn now_ms(&mut self) -> u64;
    /// Whether the toolstack asked the domain to stop (`xl shutdown`, `xl
    /// reboot`); checked each time [`read_byte`](Self::read_byte) returns,
    /// so `read_byte` should also return when such a request arrives.
    fn stop_requested(&mut self) -> Option<Stop> {
        None
    }
}

/// What the toolstack asked for instead of a boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// `xl shutdown`: power off.
    Poweroff,
    /// `xl reboot`: reboot (pvboot starts again).
    Reboot,
}

/// What the UI needs from a menu entry.
pub trait MenuEntry: Clone {
    /// The title shown in the menu.
    fn title(&self) -> &str;
    /// The kernel command line, as `e` offers it for editing.
    fn command_line(&self) -> &str;
    /// Replaces the kernel command line with an edited one.
    fn set_command_line(&mut self, line: String);
}

/// How the menu starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Index of the default entry (out of range: the first).
    pub default: usize,
    /// Seconds before the default boots; `None` waits for a choice.
    pub timeout: Option<u32>,
    /// Entries tried in order when an automatically booted one fails.
    pub fallback: Vec<usize>,
    /// Lines shown above the menu.
    pub banner: Vec<String>,
    /// Lines shown once before the first menu (e.g. config diagnostics).
    pub notes: Vec<String>,
}

impl MenuEntry for Entry {
    fn title(&self) -> &str {
        &self.title
    }
    fn command_line(&self) -> &str {
        &self.args
    }
    fn set_command_line(&mut self, line: String) {
        self.args = line;
    }
}

impl Settings {
    /// The settings a parsed config gives: its default, timeout, fallbacks
    /// and banner, with its diagnostics (`file:line: message`) as notes.
    pub fn from_menu(menu: &Menu) -> Self {
        Settings {
            default: menu.default,
            timeout: menu.timeout,
            fallback: menu.fallback.clone(),
            banner: menu.banner.clone(),
            notes: menu.diagnostics.iter().map(|d| alloc::format!("{d}")).collect(),
        }
    }
}

/// Why an entry is being booted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The countdown ran out (or the timeout was 0).
    Timeout,
    /// The user chose it with Enter.
    Chosen,
    /// The user edited its command line and pressed Enter.
    Edited,
    /// An automatically booted entry failed and this is the next fallback.
    Fallback,
}

/// What to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot<E> {
    /// A menu entry (with its command line edited when `reason` is `Edited`).
    Entry {
        /// Its index in the menu.
        index: usize,
        /// The entry to boot.
        entry: E,
        /// Why.
        reason: Reason,
    },
    /// What the prompt's `root`, `kernel`, `initrd` and `module` commands set
    /// up (titled with the kernel's name; `root` as a [`crate::config::RootSpec::Device`]).
    Custom(Entry),
    /// Nothing: the toolstack asked the domain to stop while the menu waited.
    Stop(Stop),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Menu,
    Edit,
    Prompt,
}

/// The countdown to booting the default entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Countdown {
    /// When the entry boots.
    boot_at: u64,
    /// Seconds shown on the status line.
    shown: u64,
    /// Whether this is a fallback after a failure.
    fallback: bool,
}

/// The console user interface (see the module documentation).
pub struct Ui<E> {
    entries: Vec<E>,
    settings: Settings,
    default: usize,
    mode: Mode,
    decoder: KeyDecoder,
    started: bool,
    /// Highlighted entry.
    selected: usize,
    /// First entry row on screen.
    top: usize,
    /// Digits typed so far as an entry number.
    number: usize,
    countdown: Option<Countdown>,
    /// Characters on the status line under the menu (to clear what is left).
    status_len: usize,
    editor: LineEditor,
    history: History,
    /// The prompt's state: root device, kernel, modules.
    custom: prompt::State,
    /// Countdown the next menu display runs (`set timeout=` at the prompt).
    armed_timeout: Option<u32>,
    /// Index into `settings.fallback` of the next entry to fall back to.
    next_fallback: usize,
    /// What the last [`Boot`] was, for [`Ui::boot_failed`].
    last_boot: Option<(Option<usize>, Reason)>,
}

/// Cuts `text` to `max` characters (ending in "..." when cut) and replaces
/// control characters, so one item is one bounded line.
pub fn one_line(text: &str, max: usize) -> String {
    let mut s = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == max {
            s.push_str("...");
            break;
        }
        s.push(if c.is_control() { '?' } else { c });
    }
    s
}

impl Ui<Entry> {
    /// The UI for a parsed config file.
    pub fn from_menu(menu: Menu) -> Self {
        let settings = Settings::from_menu(&menu);
        Ui::new(menu.entries, settings)
    }
}

impl<E: MenuEntry> Ui<E> {
    /// A UI over `entries`, not yet drawn.
    pub fn new(entries: Vec<E>, settings: Settings) -> Self {
        let default = if settings.default < entries.len() { settings.default } else { 0 };
        Ui {
            entries,
            default,
            settings,
            mode: Mode::Menu,
            decoder: KeyDecoder::new(),
            started: false,
            selected: default,
            top: 0,
            number: 0,
            countdown: None,
            status_len: 0,
            editor: LineEditor::default(),
            history: History::new(),
            custom: prompt::State::default(),
            armed_timeout: None,
            next_fallback: 0,
            last_boot: None,
        }
    }

    /// Adds lines to show once before the first screen (e.g. what the
    /// command line overrode); no effect once started.
    pub fn add_notes(&mut self, notes: impl IntoIterator<Item = String>) {
        self.settings.notes.extend(notes);
    }

    /// The entries.
    pub fn entries(&self) -> &[E] {
        &self.entries
    }

    /// The highlighted entry.
    pub fn selected(&self) -> usize {
        self.selected
    }

    /// Whether the countdown is running.
    pub fn counting_down(&self) -> bool {
        self.countdown.is_some()
    }

    /// Draws the first screen at `now`: notes, banner, menu and countdown (or,
    /// without entries, the prompt). A timeout of 0 boots at once.
    pub fn start(&mut self, now: u64, out: &mut dyn Output) -> Option<Boot<E>> {
        if self.started {
            return None;
        }
        self.started = true;
        for n in self.settings.notes.iter().take(NOTE_LINES) {
            out.write(one_line(n, LINE_CHARS).as_bytes());
            out.write(b"\r\n");
        }
        if self.settings.notes.len() > NOTE_LINES {
            let more = alloc::format!("({} more notes not shown)\r\n", self.settings.notes.len() - NOTE_LINES);
            out.write(more.as_bytes());
        }
        if self.entries.is_empty() {
            out.write(b"pvboot: no boot entries; the prompt can find and boot a kernel ('help' lists the commands).\r\n");
            self.enter_prompt(out);
            return None;
        }
        self.draw_menu(out);
        match self.settings.timeout {
            Some(0) => Some(self.boot_entry(self.default, Reason::Timeout, out)),
            Some(t) => {
                self.start_countdown(now, t, false, out);
                None
            }
            None => None,
        }
    }

    /// When [`on_time`](Self::on_time) must next be called (`None`: only
    /// input can change anything).
    pub fn deadline(&self) -> Option<u64> {
        let countdown = self.countdown.map(|c| self.next_tick(c));
        match (countdown, self.decoder.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Advances the clock to `now`: the countdown line and a pending lone ESC
    /// (before [`start`](Self::start), it starts).
    pub fn on_time(&mut self, now: u64, shell: &mut dyn Shell, out: &mut dyn Output) -> Option<Boot<E>> {
        if !self.started {
            return self.start(now, out);
        }
        if let Some(k) = self.decoder.on_time(now) {
            if let Some(b) = self.on_key(k, now, shell, out) {
                return Some(b);
            }
        }
        self.tick(now, out)
    }

    /// Handles one console byte received at `now` (before [`start`](Self::start), it starts first).
    pub fn on_byte(&mut self, byte: u8, now: u64, shell: &mut dyn Shell, out: &mut dyn Output) -> Option<Boot<E>> {
        if !self.started {
            // Input before the first screen: draw it first (the byte then counts as a key).
            if let Some(b) = self.start(now, out) {
                return Some(b);
            }
        }
        // A byte is a key press even before it decodes to a key (ESC, half a
        // sequence): the countdown stops at once.
        if self.countdown.is_some() {
            self.stop_countdown(out);
        }
        let mut keys: [Option<Key>; 2] = [None, None];
        let mut n = 0;
        self.decoder.feed(byte, now, &mut |k| {
            if n < keys.len() {
                keys[n] = Some(k);
                n += 1;
            }
        });
        for k in keys.into_iter().flatten() {
            if let Some(b) = self.on_key(k, now, shell, out) {
                return Some(b);
            }
        }
        None
    }

    /// Shows why the last boot failed (one line) and brings the menu (or the
    /// prompt, if the prompt booted) back. After an automatic boot, the next
    /// `fallback` entry boots at once.
    pub fn boot_failed(&mut self, message: &str, now: u64, out: &mut dyn Output) {
        let last = self.last_boot.take();
        let (index, reason) = last.unwrap_or((None, Reason::Chosen));
        let what = match (last, index.and_then(|i| self.entries.get(i))) {
            (_, Some(e)) => alloc::format!(" '{}'", one_line(e.title(), TITLE_CHARS)),
            (Some(_), None) => String::from(" the prompt's kernel"),
            (None, None) => String::new(),
        };
        self.decoder = KeyDecoder::new();
        out.write(alloc::format!("\r\nError booting{what}: {}\r\n", one_line(message, LINE_CHARS)).as_bytes());
        if self.mode == Mode::Prompt || self.entries.is_empty() {
            self.enter_prompt(out);
            return;
        }
        self.mode = Mode::Menu;
        let automatic = matches!(reason, Reason::Timeout | Reason::Fallback);
        let next = if automatic { self.take_fallback(index) } else { None };
        if let Some(next) = next {
            self.default = next;
            self.selected = next;
        }
        self.draw_menu(out);
        if next.is_some() {
            self.start_countdown(now, 0, true, out);
        }
    }

    /// Runs until something is to be booted: draws the first screen if not
    /// yet done, then reads the terminal, waiting no longer than the next
    /// deadline, so the default boots exactly when its timeout ends.
    pub fn run(&mut self, term: &mut dyn Terminal, shell: &mut dyn Shell) -> Boot<E> {
        let now = term.now_ms();
        if let Some(b) = self.start(now, as_output(term)) {
            return b;
        }
        loop {
            let now = term.now_ms();
            let deadline = self.deadline();
            if deadline.is_some_and(|d| now >= d) {
                if let Some(b) = self.on_time(now, shell, as_output(term)) {
                    return b;
                }
                continue;
            }
            let wait = deadline.map(|d| d - now);
            let byte = term.read_byte(wait);
            if let Some(stop) = term.stop_requested() {
                let line = match stop {
                    Stop::Poweroff => "Powering off (asked by the toolstack)",
                    Stop::Reboot => "Rebooting (asked by the toolstack)",
                };
                self.final_line(line, as_output(term));
                return Boot::Stop(stop);
            }
            if let Some(byte) = byte {
                let now = term.now_ms();
                if let Some(b) = self.on_byte(byte, now, shell, as_output(term)) {
                    return b;
                }
            }
        }
    }

    fn on_key(&mut self, key: Key, now: u64, shell: &mut dyn Shell, out: &mut dyn Output) -> Option<Boot<E>> {
        match self.mode {
            Mode::Menu => self.menu_key(key, now, out),
            Mode::Edit => self.edit_key(key, now, out),
            Mode::Prompt => self.prompt_key(key, now, shell, out),
        }
    }

    /// The next fallback entry after `failed`, skipping invalid ones and the one that failed.
    fn take_fallback(&mut self, failed: Option<usize>) -> Option<usize> {
        while let Some(&i) = self.settings.fallback.get(self.next_fallback) {
            self.next_fallback += 1;
            if i < self.entries.len() && Some(i) != failed {
                return Some(i);
            }
        }
        None
    }

    fn boot_entry(&mut self, index: usize, reason: Reason, out: &mut dyn Output) -> Boot<E> {
        let entry = self.entries[index].clone();
        self.finish_boot(index, entry, reason, out)
    }

    fn finish_boot(&mut self, index: usize, entry: E, reason: Reason, out: &mut dyn Output) -> Boot<E> {
        let line = alloc::format!("Booting '{}'", one_line(entry.title(), TITLE_CHARS));
        self.final_line(&line, out);
        self.last_boot = Some((Some(index), reason));
        Boot::Entry { index, entry, reason }
    }

    /// The last line before leaving the menu: on the status line in the
    /// menu, else on a line of its own.
    fn final_line(&mut self, line: &str, out: &mut dyn Output) {
        if self.mode == Mode::Menu {
            self.set_status(line, out);
            out.write(b"\r\n");
            self.status_len = 0;
        } else {
            out.write(line.as_bytes());
            out.write(b"\r\n");
        }
    }
}

fn as_output(t: &mut dyn Terminal) -> &mut dyn Output {
    t
}
