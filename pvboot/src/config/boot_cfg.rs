//! NetBSD `boot.cfg(5)`.
//!
//! `keyword=value` lines; `#` starts a comment anywhere in a line (as
//! NetBSD's libsa bootcfg.c reads it). Read: `banner` (up to 12 lines),
//! `menu=Label:command;command` (an empty label shows the commands),
//! `default=N` (1-based; out of range is clamped to the first or last entry,
//! as bootcfg.c does), `timeout=N` (10 when absent; anything not starting
//! with a digit, such as `-1`, waits forever), `load=file [args]` (a module
//! for every entry), and `clear`, `consdev`, `format`, `userconf` (accepted,
//! with a note where it matters).
//!
//! Menu commands: `boot [dev:][file] [args]` (file defaults to `netbsd`),
//! `multiboot [dev:]file [args]` (earlier `load`s become its modules, as
//! NetBSD's boot passes them: the Xen HOWTO's `load /netbsd-XEN3_DOM0.gz
//! console=pc;multiboot /xen.gz dom0_mem=512M`), `load [dev:]file [args]`
//! (not decompressed), `dev dev:` (the device of later commands);
//! `userconf`, `rndseed`, `fs`, `es`, `consdev`, `vesa`, `gop`, `splash`,
//! `text`, `modules` and the commands that only print are ignored with a
//! note; `prompt` (NetBSD's "go to the boot prompt" entry) cannot boot. Commands after `boot` or `multiboot` never run
//! (both start the kernel), and are reported. A `menu` that never boots
//! gets a diagnostic.
//!
//! Files without `dev:` are on the partition the boot.cfg came from
//! (`root: None`). `hd0:` means partition `a`, as in NetBSD's boot.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{absolute, checked, small_number, split_word, timeout_value, Entry, FileRef, Menu, ModuleRef, MAX_BANNER_LINES, MAX_MODULES};

/// Menu commands accepted and ignored, with why.
const IGNORED: &[(&str, &str)] = &[
    ("userconf", "pvboot passes no userconf commands"),
    ("rndseed", "pvboot passes no entropy file"),
    ("fs", "pvboot passes no file-system image"),
    ("es", "pvboot passes no EFI memory map"),
    ("consdev", "pvboot uses the Xen console"),
    ("vesa", "the Xen console is text only"),
    ("gop", "the Xen console is text only"),
    ("splash", "the Xen console is text only"),
    ("text", "the Xen console is text only"),
    ("modules", "pvboot loads the modules an entry names"),
    ("version", "it only prints"),
    ("help", "it only prints"),
    ("ls", "it only prints"),
    ("memmap", "it only prints"),
];

struct Parser<'a> {
    file: &'a str,
    menu: Menu,
    global_loads: Vec<ModuleRef>,
    default: Option<(usize, usize)>,
}

/// Parses a `boot.cfg`.
pub fn parse(file: &str, text: &str) -> Menu {
    let mut p = Parser { file, menu: Menu::default(), global_loads: Vec::new(), default: None };
    // bootcfg.c's DEFAULT_TIMEOUT.
    p.menu.timeout = Some(10);
    let mut saw_menu = false;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.split('#').next().unwrap_or("").trim_end_matches('\r');
        let trimmed = line.trim_start();
        if trimmed.trim_end().is_empty() {
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            p.diag(n, format!("'{}' is not keyword=value, skipped", trimmed.trim_end()));
            continue;
        };
        let key = key.trim_end();
        match key {
            "banner" => {
                if p.menu.banner.len() < MAX_BANNER_LINES {
                    p.menu.banner.push(value.to_string());
                } else {
                    p.diag(n, format!("more than {MAX_BANNER_LINES} banner lines, skipped"));
                }
            }
            "menu" => {
                saw_menu = true;
                p.menu_line(n, value);
            }
            "default" => match small_number(value.trim()) {
                Some(d) if d >= 1 => p.default = Some((n, d as usize - 1)),
                _ => {
                    p.diag(n, format!("default '{}' is not a menu number (1, 2, ...); using the first", value.trim()));
                    p.default = None;
                    p.menu.default = 0;
                }
            },
            "timeout" => match small_number(value.trim()) {
                Some(t) => p.menu.timeout = Some(t),
                None => {
                    p.menu.timeout = None;
                    if timeout_value(value.trim()).is_none() {
                        p.diag(n, format!("timeout '{}' is not a number; waiting for a choice, as NetBSD's boot does", value.trim()));
                    }
                }
            },
            "load" => {
                if let Some(m) = p.module(n, value.trim(), None) {
                    if p.global_loads.len() < MAX_MODULES {
                        p.global_loads.push(m);
                    }
                }
            }
            "clear" | "format" => {}
            "consdev" => p.diag(n, "consdev ignored: pvboot uses the Xen console".to_string()),
            "rndseed" | "fs" | "es" | "modules" => p.diag(n, format!("'{key}' ignored: pvboot does not pass it on")),
            "userconf" => p.diag(n, "userconf ignored: pvboot passes no userconf commands".to_string()),
            _ => p.diag(n, format!("unknown directive '{key}', skipped")),
        }
    }
    if !saw_menu {
        // NetBSD's boot then boots `netbsd` from its own partition.
        p.menu.diagnostics.push(super::Diagnostic {
            file: file.to_string(),
            line: 0,
            message: "no menu= lines: the menu has one entry booting /netbsd".to_string(),
        });
        let entry = Entry {
            title: "Boot normally".to_string(),
            kernel: Some(FileRef { device: None, path: "/netbsd".to_string() }),
            ..Entry::default()
        };
        p.menu.push_entry(file, entry);
    }
    p.finish()
}

impl Parser<'_> {
    fn diag(&mut self, line: usize, message: String) {
        self.menu.diag(self.file, line, message);
    }

    /// `[dev:]file` into a file reference, `dev` being the `dev` command's device.
    fn file(&mut self, n: usize, word: &str, dev: Option<&String>) -> Option<FileRef> {
        let (device, path) = match word.split_once(':') {
            Some((d, p)) if !d.contains('/') => (Some(d), p),
            _ => (None, word),
        };
        let device = match device {
            Some(d) => match netbsd_device(d) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.diag(n, e);
                    return None;
                }
            },
            None => dev.cloned(),
        };
        if path.is_empty() {
            return Some(FileRef { device, path: "/netbsd".to_string() });
        }
        Some(FileRef { device, path: absolute(path) })
    }

    fn module(&mut self, n: usize, arg: &str, dev: Option<&String>) -> Option<ModuleRef> {
        let (word, args) = split_word(arg);
        if word.is_empty() {
            self.diag(n, "load without a file, skipped".to_string());
            return None;
        }
        let file = self.file(n, word, dev)?;
        Some(ModuleRef { file, args: args.to_string(), decompress: false })
    }

    fn menu_line(&mut self, n: usize, value: &str) {
        let Some((label, commands)) = value.split_once(':') else {
            self.diag(n, "menu without ':' between label and commands, skipped".to_string());
            return;
        };
        let title = if label.is_empty() { commands.trim() } else { label.trim() };
        let mut e = Entry { title: title.to_string(), line: n, ..Entry::default() };
        let mut dev: Option<String> = None;
        let mut booted = false;
        let mut boot_seen = false;
        for cmd in commands.split(';').map(str::trim).filter(|c| !c.is_empty()) {
            let (name, arg) = split_word(cmd);
            if booted {
                self.diag(n, format!("'{cmd}' after the kernel starts never runs, ignored"));
                continue;
            }
            match name {
                "boot" | "multiboot" => {
                    boot_seen = true;
                    // `boot -s` boots the default kernel with flags.
                    let (word, args) = if arg.starts_with('-') { ("", arg) } else { split_word(arg) };
                    if name == "multiboot" && word.is_empty() {
                        self.diag(n, "multiboot without a kernel file".to_string());
                        continue;
                    }
                    if let Some(f) = self.file(n, word, dev.as_ref()) {
                        e.kernel = Some(f);
                        e.args = args.to_string();
                        e.multiboot = name == "multiboot";
                        booted = true;
                    }
                }
                "load" => {
                    if e.modules.len() >= MAX_MODULES {
                        self.diag(n, format!("more than {MAX_MODULES} modules, '{arg}' skipped"));
                    } else if let Some(m) = self.module(n, arg, dev.as_ref()) {
                        e.modules.push(m);
                    }
                }
                "prompt" => self.diag(n, "'prompt' drops to NetBSD's boot prompt; pvboot's prompt is 'c' in the menu".to_string()),
                "dev" => match netbsd_device(arg.trim_end_matches(':')) {
                    Ok(d) => dev = Some(d),
                    Err(err) => self.diag(n, err),
                },
                _ => match IGNORED.iter().find(|(k, _)| *k == name) {
                    Some((_, why)) => self.diag(n, format!("'{name}' ignored: {why}")),
                    None => self.diag(n, format!("unknown command '{name}' in menu '{title}', skipped")),
                },
            }
        }
        if !boot_seen {
            self.diag(n, format!("menu '{title}' has no boot or multiboot command; it cannot boot"));
        }
        self.menu.push_entry_reported(self.file, e, !boot_seen);
    }

    fn finish(mut self) -> Menu {
        if !self.global_loads.is_empty() {
            for e in &mut self.menu.entries {
                let mut mods = self.global_loads.clone();
                mods.append(&mut e.modules);
                mods.truncate(MAX_MODULES);
                e.modules = mods;
            }
        }
        if let Some((n, d)) = self.default {
            let last = self.menu.entries.len().saturating_sub(1);
            if d > last {
                self.diag(n, format!("default entry {} does not exist; using the last ({})", d + 1, last + 1));
            }
            self.menu.default = d.min(last);
        }
        self.menu
    }
}

/// A NetBSD boot device (`hd0a`, `xbd0a`, `wd0e`; `hd0` is `hd0a`).
fn netbsd_device(d: &str) -> Result<String, String> {
    let d = d.trim();
    if d.starts_with("NAME=") {
        return Err(format!("device '{d}': wedge names are not supported, use hd0a-style names"));
    }
    let dev = if d.ends_with(|c: char| c.is_ascii_digit()) { format!("{d}a") } else { d.to_string() };
    checked(dev).map_err(|e| format!("device '{d}': {e}"))
}
