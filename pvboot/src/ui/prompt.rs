//! The command prompt (`pvboot> `), GRUB-like:
//!
//! - `ls` lists the disks and their partitions; `ls (hd0)` one disk's
//!   partitions; `ls [(dev)]path` a directory or a file (`dev:path` works too).
//!   At most [`LS_LINES`] lines are shown.
//! - `cat [(dev)]path` shows a file (at most [`CAT_LIMIT`] bytes).
//! - `root [dev]` shows or sets the device that paths without one are on.
//! - `kernel path [args]` (or `multiboot path [args]`), `initrd path`,
//!   `module path [args]` choose what `boot` boots, as a
//!   [`crate::config::Entry`]; `kernel` forgets earlier modules.
//! - `set` shows `root`, `default` and `timeout`; `set name=value` sets one
//!   (`timeout` takes effect when the menu is shown again).
//! - `help`; `menu` (or Esc) returns to the menu.
//! - Tab completes a command or a path: the whole name when one matches,
//!   else as much as all matches share, else it lists them.
//!
//! Disks and files are reached through a [`Shell`].

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::editor::Edit;
use crate::config::{Entry, FileRef, ModuleRef, RootSpec};
use super::keys::Key;
use super::{one_line, Boot, MenuEntry, Mode, Output, Reason, Ui, LINE_CHARS};

/// The prompt.
pub const PROMPT: &str = "pvboot> ";
/// Most bytes `cat` shows of one file.
pub const CAT_LIMIT: u64 = 1 << 20;
/// Most lines `ls` shows.
pub const LS_LINES: usize = 1000;
/// Most names Tab lists when several match.
pub const COMPLETION_NAMES: usize = 100;
/// The commands, for Tab completion.
const COMMANDS: &[&str] = &["boot", "cat", "help", "initrd", "kernel", "ls", "menu", "module", "multiboot", "root", "set"];
/// Most modules the prompt collects.
pub const MAX_MODULES: usize = 16;

/// What the prompt needs from the disks (the guest implements it over
/// blkfront; [`super::disks::DiskShell`] over any [`crate::disk::ReadAt`]).
///
/// `dev` is a device as typed (`(hd0,1)`, `(hd0,msdos1)`, `xbd0a`, `hd0`,
/// `xvda1`); `None` means the default volume. Errors are one line.
pub trait Shell {
    /// Lists, one line per call of `out`: the disks and their partitions
    /// (`dev` `None` and `path` empty), one disk's partitions (`dev` a whole
    /// disk, `path` empty), or a directory or file (`path` absolute).
    fn ls(&mut self, dev: Option<&str>, path: &str, out: &mut dyn FnMut(&str)) -> Result<(), String>;
    /// Streams a file's bytes to `out`, stopping early when it returns false.
    fn cat(&mut self, dev: Option<&str>, path: &str, out: &mut dyn FnMut(&[u8]) -> bool) -> Result<(), String>;
    /// The entries of directory `dir` (absolute, ending in `/`) for Tab
    /// completion: `out(name, is_directory)`, in any order.
    fn names(&mut self, dev: Option<&str>, dir: &str, out: &mut dyn FnMut(&str, bool)) -> Result<(), String>;
    /// Checks that `dev` holds a readable file system; describes it in one line.
    fn set_root(&mut self, dev: &str) -> Result<String, String>;
    /// The size of a (non-directory) file.
    fn file_size(&mut self, dev: Option<&str>, path: &str) -> Result<u64, String>;
}

/// The prompt's settings so far.
#[derive(Debug, Clone, Default)]
pub(super) struct State {
    root: Option<String>,
    /// The kernel, its command line, and whether it is a multiboot kernel.
    kernel: Option<(FileRef, String, bool)>,
    modules: Vec<ModuleRef>,
}

/// Splits `(dev)path` or `dev:path` into device and absolute path.
pub fn split_device(arg: &str) -> (Option<&str>, String) {
    let (dev, path) = if arg.starts_with('(') && arg.contains(')') {
        let end = arg.find(')').unwrap_or(0);
        // `(hd0,1)/x`, and `(hd0,1):/x` as NetBSD's form would have it.
        let path = &arg[end + 1..];
        (Some(&arg[..=end]), path.strip_prefix(':').unwrap_or(path))
    } else {
        match arg.split_once(':') {
            Some((d, p)) if !d.is_empty() && !d.contains('/') => (Some(d), p),
            _ => (None, arg),
        }
    };
    let path = if path.is_empty() || path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    (dev, path)
}

const HELP: &[&str] = &[
    "ls [(dev)][path]       list the disks and partitions, or a directory",
    "cat [(dev)]path        show a file",
    "root [dev]             show or set the root device: (hd0,1), (hd0,msdos1), xbd0a",
    "kernel path [args]     choose the kernel and its command line",
    "multiboot path [args]  choose a multiboot kernel (e.g. xen.gz)",
    "initrd path            add an initial ramdisk",
    "module path [args]     add a module",
    "boot                   boot the chosen kernel",
    "set [name=value]       show or set root, default, timeout",
    "menu                   back to the menu (Esc too)",
    "help                   this list",
];

fn line(out: &mut dyn Output, text: &str) {
    out.write(one_line(text, LINE_CHARS).as_bytes());
    out.write(b"\r\n");
}

/// Turns file bytes into safe terminal text: valid UTF-8 passes, lines end
/// in CR LF, tabs stay, and control characters (C0, DEL, C1, which could be
/// escape codes) and invalid bytes become '.'.
#[derive(Default)]
struct TextFilter {
    /// The start of a UTF-8 character that has not ended yet.
    pending: [u8; 4],
    len: usize,
    /// Bytes the pending character still needs.
    need: usize,
    /// The last byte shown ended a line.
    at_line_start: bool,
    /// Anything was shown.
    any: bool,
}

impl TextFilter {
    fn push(&mut self, b: u8, out: &mut Vec<u8>) {
        self.any = true;
        if self.need > 0 {
            if b & 0xc0 == 0x80 {
                self.pending[self.len] = b;
                self.len += 1;
                self.need -= 1;
                if self.need == 0 {
                    let ok = core::str::from_utf8(&self.pending[..self.len])
                        .ok()
                        .and_then(|s| s.chars().next())
                        .is_some_and(|c| !c.is_control());
                    if ok {
                        out.extend_from_slice(&self.pending[..self.len]);
                    } else {
                        out.push(b'.');
                    }
                    self.len = 0;
                }
                return;
            }
            // A character cut short: one '.', then this byte afresh.
            out.push(b'.');
            self.need = 0;
            self.len = 0;
        }
        self.at_line_start = b == b'\n';
        match b {
            b'\n' => out.extend_from_slice(b"\r\n"),
            b'\r' => {}
            b'\t' | 0x20..=0x7e => out.push(b),
            0xc2..=0xf4 => {
                self.pending[0] = b;
                self.len = 1;
                self.need = match b {
                    0xc2..=0xdf => 1,
                    0xe0..=0xef => 2,
                    _ => 3,
                };
            }
            _ => out.push(b'.'),
        }
    }

    /// Ends the text: a cut-off character and a missing last newline.
    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.need > 0 {
            out.push(b'.');
            self.need = 0;
            self.len = 0;
        }
        if self.any && !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// The longest common prefix of `a` and `b`, on a character boundary.
fn common_prefix<'a>(a: &'a str, b: &str) -> &'a str {
    // Up to the first differing character; else all of the shorter one.
    let end = a.char_indices().zip(b.chars()).find(|((_, x), y)| x != y).map_or(a.len().min(b.len()), |((i, _), _)| i);
    &a[..end]
}

/// What a command line asks of the UI.
enum Next {
    Prompt,
    Menu,
    Boot(Entry),
}

impl<E: MenuEntry> Ui<E> {
    /// Switches to the prompt.
    pub(super) fn enter_prompt(&mut self, out: &mut dyn Output) {
        if self.status_len > 0 {
            self.set_status("", out);
        }
        if self.mode != Mode::Prompt && !self.entries.is_empty() {
            out.write(b"Command prompt: 'help' lists the commands, 'menu' or Esc returns to the menu.\r\n");
        }
        self.mode = Mode::Prompt;
        self.new_prompt(out);
    }

    fn new_prompt(&mut self, out: &mut dyn Output) {
        self.editor.start(PROMPT, "", out);
    }

    pub(super) fn prompt_key(
        &mut self,
        key: Key,
        now: u64,
        shell: &mut dyn Shell,
        out: &mut dyn Output,
    ) -> Option<Boot<E>> {
        if key == Key::Tab {
            self.complete(shell, out);
            return None;
        }
        match self.editor.key(key, &self.history, out) {
            Edit::Editing => None,
            Edit::Done(text) => {
                self.history.push(&text);
                match self.execute(&text, shell, out) {
                    Next::Prompt => self.new_prompt(out),
                    Next::Menu => self.leave_prompt(now, out),
                    Next::Boot(entry) => {
                        line(out, &format!("Booting {}", entry.title));
                        self.last_boot = Some((None, Reason::Chosen));
                        return Some(Boot::Custom(entry));
                    }
                }
                None
            }
            Edit::Cancel => {
                out.write(b"\r\n");
                if self.entries.is_empty() {
                    line(out, "There is no menu to go back to.");
                    self.new_prompt(out);
                } else {
                    self.leave_prompt(now, out);
                }
                None
            }
            Edit::Interrupt => {
                out.write(b"^C\r\n");
                self.new_prompt(out);
                None
            }
        }
    }

    /// Tab: completes the word before the cursor.
    fn complete(&mut self, shell: &mut dyn Shell, out: &mut dyn Output) {
        let (first, word) = self.editor.word_before_cursor();
        let mut names: Vec<(String, bool)> = Vec::new();
        let typed = if first {
            names.extend(COMMANDS.iter().map(|c| (String::from(*c), false)));
            word.clone()
        } else {
            if word.starts_with('(') && !word.contains(')') {
                return; // Devices are not completed.
            }
            let (dev, path) = split_device(&word);
            if path.is_empty() {
                // `(hd0,1)`, `xbd0a:` or nothing complete to a root directory.
                self.editor.insert("/", out);
                return;
            }
            let cut = path.rfind('/').map_or(0, |i| i + 1);
            let typed = String::from(&path[cut..]);
            let mut add = |name: &str, dir: bool| {
                if name.starts_with(typed.as_str()) {
                    names.push((String::from(name), dir));
                }
            };
            if shell.names(self.device(dev), &path[..cut], &mut add).is_err() {
                return;
            }
            typed
        };
        names.retain(|(n, _)| n.starts_with(typed.as_str()));
        names.sort();
        match names.as_slice() {
            [] => {}
            [(name, dir)] => {
                let rest = format!("{}{}", &name[typed.len()..], if *dir { "/" } else { " " });
                self.editor.insert(&rest, out);
            }
            many => {
                let shared = many.iter().skip(1).fold(many[0].0.as_str(), |acc, (n, _)| common_prefix(acc, n));
                if shared.len() > typed.len() {
                    let rest = String::from(&shared[typed.len()..]);
                    self.editor.insert(&rest, out);
                    return;
                }
                // Nothing more is shared: list them under the line, then the line again.
                out.write(b"\r\n");
                let mut width = 0;
                for (n, (name, dir)) in many.iter().enumerate() {
                    if n == COMPLETION_NAMES {
                        out.write(format!("  ... {} more", many.len() - n).as_bytes());
                        break;
                    }
                    let shown = format!("{}{}", one_line(name, LINE_CHARS / 2), if *dir { "/" } else { "" });
                    let cols = shown.chars().count() + 2;
                    if width > 0 && width + cols > super::editor::COLUMNS - 2 {
                        out.write(b"\r\n");
                        width = 0;
                    }
                    out.write(shown.as_bytes());
                    out.write(b"  ");
                    width += cols;
                }
                out.write(b"\r\n");
                self.editor.redraw_line(out);
            }
        }
    }

    fn leave_prompt(&mut self, now: u64, out: &mut dyn Output) {
        self.show_menu(out);
        if let Some(t) = self.armed_timeout.take() {
            if t == 0 {
                self.countdown = Some(super::Countdown { boot_at: now, shown: 0, fallback: false });
            } else {
                self.start_countdown(now, t, false, out);
            }
        }
    }

    /// The device a command without one uses.
    fn device<'a>(&'a self, typed: Option<&'a str>) -> Option<&'a str> {
        typed.or(self.custom.root.as_deref())
    }

    fn execute(&mut self, text: &str, shell: &mut dyn Shell, out: &mut dyn Output) -> Next {
        let text = text.trim();
        let (cmd, rest) = match text.split_once(char::is_whitespace) {
            Some((c, r)) => (c, r.trim()),
            None => (text, ""),
        };
        let result = match cmd {
            "" => Ok(()),
            "help" => {
                for h in HELP {
                    line(out, h);
                }
                Ok(())
            }
            "menu" if self.entries.is_empty() => Err(String::from("there are no menu entries")),
            "menu" => return Next::Menu,
            "ls" => self.ls(rest, shell, out),
            "cat" => self.cat(rest, shell, out),
            "root" => self.root(rest, shell, out),
            "kernel" | "multiboot" => self.kernel(cmd, rest, shell, out),
            "initrd" | "module" => self.module(cmd, rest, shell, out),
            "boot" => match &self.custom.kernel {
                Some((k, args, multiboot)) => {
                    return Next::Boot(Entry {
                        title: k.to_string(),
                        root: self.custom.root.clone().map(RootSpec::Device),
                        kernel: Some(k.clone()),
                        args: args.clone(),
                        modules: self.custom.modules.clone(),
                        multiboot: *multiboot,
                        ..Entry::default()
                    })
                }
                None => Err(String::from("no kernel chosen (use 'kernel PATH [ARGS]' first)")),
            },
            "set" => self.set(rest, shell, out),
            _ => {
                line(out, &format!("unknown command '{cmd}' ('help' lists the commands)"));
                return Next::Prompt;
            }
        };
        if let Err(e) = result {
            line(out, &format!("{cmd}: {e}"));
        }
        Next::Prompt
    }

    fn ls(&mut self, arg: &str, shell: &mut dyn Shell, out: &mut dyn Output) -> Result<(), String> {
        let mut lines = 0usize;
        let mut show = |l: &str| {
            lines += 1;
            if lines <= LS_LINES {
                line(out, l);
            }
        };
        let r = if arg.is_empty() {
            shell.ls(None, "", &mut show)
        } else {
            let (dev, path) = split_device(arg);
            shell.ls(self.device(dev), &path, &mut show)
        };
        if lines > LS_LINES {
            line(out, &format!("({} more lines not shown)", lines - LS_LINES));
        }
        r
    }

    fn cat(&mut self, arg: &str, shell: &mut dyn Shell, out: &mut dyn Output) -> Result<(), String> {
        let (dev, path) = split_device(arg);
        if path.is_empty() {
            return Err(String::from("which file? (cat [(dev)]path)"));
        }
        let mut shown = 0u64;
        let mut text = TextFilter::default();
        let mut cut = false;
        let r = shell.cat(self.device(dev), &path, &mut |data: &[u8]| {
            let room = (CAT_LIMIT - shown).min(data.len() as u64) as usize;
            let mut shown_text = Vec::with_capacity(room + room / 8);
            for &b in &data[..room] {
                text.push(b, &mut shown_text);
            }
            out.write(&shown_text);
            shown += room as u64;
            cut = room < data.len();
            !cut && shown < CAT_LIMIT
        });
        let mut rest = Vec::new();
        text.finish(&mut rest);
        out.write(&rest);
        if cut {
            line(out, &format!("(stopped after {CAT_LIMIT} bytes)"));
        }
        r
    }

    fn root(&mut self, arg: &str, shell: &mut dyn Shell, out: &mut dyn Output) -> Result<(), String> {
        if arg.is_empty() {
            match &self.custom.root {
                Some(r) => line(out, &format!("root is {r}")),
                None => line(out, "root is not set (paths without a device use the default volume)"),
            }
            return Ok(());
        }
        let about = shell.set_root(arg)?;
        line(out, &format!("root is {arg}: {about}"));
        self.custom.root = Some(arg.to_string());
        Ok(())
    }

    /// Splits `path [args]` and checks the file; returns it, its args and its size.
    fn file_arg(&self, rest: &str, shell: &mut dyn Shell) -> Result<(FileRef, String, u64), String> {
        let (file, args) = match rest.split_once(char::is_whitespace) {
            Some((f, a)) => (f, a.trim()),
            None => (rest, ""),
        };
        let (dev, path) = split_device(file);
        if path.is_empty() {
            return Err(String::from("which file?"));
        }
        let size = shell.file_size(self.device(dev), &path)?;
        Ok((FileRef { device: dev.map(String::from), path }, args.to_string(), size))
    }

    fn kernel(&mut self, cmd: &str, rest: &str, shell: &mut dyn Shell, out: &mut dyn Output) -> Result<(), String> {
        let (file, args, size) = self.file_arg(rest, shell)?;
        line(out, &format!("{cmd} {file}: {size} bytes"));
        self.custom.kernel = Some((file, args, cmd == "multiboot"));
        self.custom.modules.clear();
        Ok(())
    }

    fn module(&mut self, cmd: &str, rest: &str, shell: &mut dyn Shell, out: &mut dyn Output) -> Result<(), String> {
        if self.custom.modules.len() >= MAX_MODULES {
            return Err(format!("at most {MAX_MODULES} modules"));
        }
        let (file, args, size) = self.file_arg(rest, shell)?;
        let args = if cmd == "initrd" { String::new() } else { args };
        line(out, &format!("{cmd} {file}: {size} bytes"));
        // As GRUB legacy, pvboot decompresses modules and initrds it loads.
        self.custom.modules.push(ModuleRef { file, args, decompress: true });
        Ok(())
    }

    fn set(&mut self, arg: &str, shell: &mut dyn Shell, out: &mut dyn Output) -> Result<(), String> {
        if arg.is_empty() {
            let root = self.custom.root.clone().unwrap_or_default();
            line(out, &format!("root={root}"));
            if !self.entries.is_empty() {
                line(out, &format!("default={}", self.default + 1));
            }
            let timeout = self.armed_timeout.or(self.settings.timeout);
            line(out, &format!("timeout={}", timeout.map_or(String::from("none"), |t| t.to_string())));
            return Ok(());
        }
        let Some((name, value)) = arg.split_once('=') else {
            return Err(String::from("use set NAME=VALUE (root, default, timeout)"));
        };
        let (name, value) = (name.trim(), value.trim());
        match name {
            "root" => self.root(value, shell, out),
            "default" => {
                let n = value.parse::<usize>().ok().filter(|n| (1..=self.entries.len()).contains(n));
                let n = n.ok_or_else(|| format!("default must be an entry number from 1 to {}", self.entries.len()))?;
                self.default = n - 1;
                self.selected = n - 1;
                Ok(())
            }
            "timeout" => {
                let t = match value {
                    "" | "none" => None,
                    v => Some(v.parse::<u32>().map_err(|_| String::from("timeout must be seconds or 'none'"))?),
                };
                self.settings.timeout = t;
                self.armed_timeout = t;
                Ok(())
            }
            _ => Err(format!("unknown variable '{}' (root, default, timeout)", one_line(name, 32))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(data: &[&[u8]]) -> String {
        let mut f = TextFilter::default();
        let mut out = Vec::new();
        for piece in data {
            for &b in *piece {
                f.push(b, &mut out);
            }
        }
        f.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn cat_text_is_safe() {
        assert_eq!(filter(&[b"a\tb\r\nc"]), "a\tb\r\nc\r\n");
        assert_eq!(filter(&[b"\x1b[31m\x9b2J\x7f\x00"]), ".[31m.2J..\r\n");
        // UTF-8 split across chunks passes; C1 controls and broken characters do not.
        let snow = "☃".as_bytes();
        assert_eq!(filter(&[&snow[..2], &snow[2..], b"\n"]), "☃\r\n");
        assert_eq!(filter(&[b"\xc2\x9b", b"\xe2\x98x", b"\xf0"]), "..x.\r\n");
        assert_eq!(filter(&[b""]), "");
    }

    #[test]
    fn prefixes() {
        assert_eq!(common_prefix("netbsd", "netbsd.link"), "netbsd");
        assert_eq!(common_prefix("menu", "module"), "m");
        assert_eq!(common_prefix("Grüße", "Grün"), "Grü");
        assert_eq!(common_prefix("a", "b"), "");
    }

    #[test]
    fn device_split() {
        assert_eq!(split_device("(hd0,1)/boot"), (Some("(hd0,1)"), String::from("/boot")));
        assert_eq!(split_device("(hd0)"), (Some("(hd0)"), String::new()));
        assert_eq!(split_device("(hd0,1):/x"), (Some("(hd0,1)"), String::from("/x")));
        assert_eq!(split_device("xbd0a:/netbsd"), (Some("xbd0a"), String::from("/netbsd")));
        assert_eq!(split_device("/a:b"), (None, String::from("/a:b")));
        assert_eq!(split_device("boot/x"), (None, String::from("/boot/x")));
        assert_eq!(split_device("(hd0"), (None, String::from("/(hd0")));
    }
}
