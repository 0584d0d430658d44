//! GRUB legacy (0.97) / pvgrub 1 `menu.lst`.
//!
//! One command per line; the name ends at whitespace or `=` (`timeout=5`
//! and `timeout 5` are the same); lines starting with `#` are comments.
//! Read: `default N|saved`, `timeout N`, `fallback N [M ...]`, `title`,
//! `root` / `rootnoverify` (`(hd0,0)` counts partitions from 0 and is
//! rewritten to `(hd0,1)`), `kernel [--type=..] [--no-mem-option] [dev]path
//! args`, `initrd`, `module`, `modulenounzip`, `boot`. Display and security
//! commands (`hiddenmenu`, `color`, `splashimage`, `password`, `serial`,
//! `terminal`, ...) are ignored with a note. `root` before the first
//! `title` is the root of entries that name none.
//!
//! Modules: `initrd` and `module` are decompressed (GRUB legacy opens them
//! with its transparent gunzip), `modulenounzip` is not. An entry with
//! `module` lines is a multiboot entry (Xen's `kernel /xen.gz` plus
//! `module /vmlinuz`).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{grub_device, grub_file, small_number, split_word, timeout_value, Entry, Menu, ModuleRef, RootSpec, MAX_MODULES};

/// Commands accepted and ignored, with why.
const IGNORED: &[(&str, &str)] = &[
    ("hiddenmenu", "pvboot always shows the menu"),
    ("color", "pvboot's menu has its own colours"),
    ("splashimage", "the Xen console is text only"),
    ("foreground", "the Xen console is text only"),
    ("background", "the Xen console is text only"),
    ("gfxmenu", "the Xen console is text only"),
    ("password", "pvboot has no menu password"),
    ("lock", "pvboot has no menu password"),
    ("serial", "pvboot uses the Xen console"),
    ("terminal", "pvboot uses the Xen console"),
    ("savedefault", "pvboot does not write to disks"),
    ("makeactive", "pvboot does not write to disks"),
    ("quiet", "pvboot always prints what it loads"),
];

struct Parser<'a> {
    file: &'a str,
    menu: Menu,
    entry: Option<Entry>,
    global_root: Option<RootSpec>,
    default: Option<(usize, usize)>,
    fallback: Vec<(usize, usize)>,
}

/// Parses a `menu.lst`.
pub fn parse(file: &str, text: &str) -> Menu {
    let mut p = Parser { file, menu: Menu::default(), entry: None, global_root: None, default: None, fallback: Vec::new() };
    for (i, line) in text.lines().enumerate() {
        p.line(i + 1, line);
    }
    p.finish_entry();
    p.finish()
}

impl Parser<'_> {
    fn diag(&mut self, line: usize, message: String) {
        self.menu.diag(self.file, line, message);
    }

    fn line(&mut self, n: usize, raw: &str) {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            return;
        }
        let end = line.find(|c: char| c.is_ascii_whitespace() || c == '=').unwrap_or(line.len());
        let (name, rest) = line.split_at(end);
        let rest = rest.trim_start();
        let arg = rest.strip_prefix('=').unwrap_or(rest).trim();
        match name {
            "title" => {
                self.finish_entry();
                self.entry = Some(Entry { title: arg.to_string(), line: n, ..Entry::default() });
            }
            "default" => self.default_cmd(n, arg),
            "timeout" => match timeout_value(arg) {
                Some(t) => self.menu.timeout = t,
                None => self.diag(n, format!("timeout '{arg}' is not a number, ignored")),
            },
            "fallback" => {
                for w in arg.split(|c: char| c.is_ascii_whitespace() || c == ',').filter(|w| !w.is_empty()) {
                    match small_number(w) {
                        Some(i) if self.fallback.len() < super::MAX_ENTRIES => self.fallback.push((n, i as usize)),
                        Some(_) => {}
                        None => self.diag(n, format!("fallback '{w}' is not an entry number, ignored")),
                    }
                }
            }
            "root" | "rootnoverify" => self.root_cmd(n, name, arg),
            "kernel" | "initrd" | "module" | "modulenounzip" | "boot" => {
                let Some(mut e) = self.entry.take() else {
                    self.diag(n, format!("'{name}' outside a title entry, skipped"));
                    return;
                };
                self.entry_cmd(&mut e, n, name, arg);
                self.entry = Some(e);
            }
            "chainloader" => self.diag(n, "chainloader is not supported by pvboot, skipped".to_string()),
            "configfile" => self.diag(n, format!("configfile {arg} is not followed; name it with config= on the command line")),
            _ => match IGNORED.iter().find(|(k, _)| *k == name) {
                Some((_, why)) => self.diag(n, format!("'{name}' ignored: {why}")),
                None => self.diag(n, format!("unknown directive '{name}', skipped")),
            },
        }
    }

    fn default_cmd(&mut self, n: usize, arg: &str) {
        if arg == "saved" {
            self.diag(n, "default saved: pvboot keeps no saved entry, using entry 0".to_string());
            self.default = Some((n, 0));
        } else if let Some(d) = small_number(arg) {
            self.default = Some((n, d as usize));
        } else {
            self.diag(n, format!("default '{arg}' is not an entry number, ignored"));
        }
    }

    fn root_cmd(&mut self, n: usize, name: &str, arg: &str) {
        let (dev, _) = split_word(arg);
        let root = match grub_device(dev, true) {
            Ok(Some(d)) => Some(RootSpec::Device(d)),
            Ok(None) => {
                self.diag(n, format!("{name} {dev}: the whole disk; pvboot picks its volume itself"));
                None
            }
            Err(e) => {
                self.diag(n, format!("{name}: {e}, ignored"));
                return;
            }
        };
        match &mut self.entry {
            Some(e) => e.root = root,
            None => self.global_root = root,
        }
    }

    fn entry_cmd(&mut self, e: &mut Entry, n: usize, name: &str, arg: &str) {
        if name == "boot" {
            return;
        }
        let mut rest = arg;
        // kernel's own options: --type=TYPE, --no-mem-option.
        while name == "kernel" && rest.starts_with("--") {
            rest = split_word(rest).1;
        }
        let (path, args) = split_word(rest);
        let file = match grub_file(path, true) {
            Ok(f) => f,
            Err(err) => {
                self.diag(n, format!("{name}: {err}, skipped"));
                return;
            }
        };
        if name == "kernel" {
            if e.kernel.is_some() {
                self.diag(n, "a second kernel replaces the first (and its modules)".to_string());
                e.modules.clear();
                e.multiboot = false;
            }
            e.kernel = Some(file);
            e.args = args.to_string();
            return;
        }
        if e.kernel.is_none() {
            self.diag(n, format!("'{name}' before 'kernel'; GRUB would refuse it, pvboot keeps it"));
        }
        if e.modules.len() >= MAX_MODULES {
            self.diag(n, format!("more than {MAX_MODULES} modules, '{path}' skipped"));
            return;
        }
        let is_module = name != "initrd";
        e.multiboot |= is_module;
        e.modules.push(ModuleRef {
            file,
            args: if is_module { args.to_string() } else { String::new() },
            decompress: name != "modulenounzip",
        });
    }

    fn finish_entry(&mut self) {
        if let Some(e) = self.entry.take() {
            self.menu.push_entry(self.file, e);
        }
    }

    fn finish(mut self) -> Menu {
        if let Some(root) = self.global_root.take() {
            for e in self.menu.entries.iter_mut().filter(|e| e.root.is_none()) {
                e.root = Some(root.clone());
            }
        }
        if let Some((n, d)) = self.default {
            self.menu.set_default_index(self.file, n, d);
        }
        for (n, f) in core::mem::take(&mut self.fallback) {
            if f < self.menu.entries.len() {
                self.menu.fallback.push(f);
            } else {
                self.diag(n, format!("fallback entry {f} does not exist, ignored"));
            }
        }
        self.menu
    }
}
