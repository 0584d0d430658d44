//! The domain command line (xl.cfg `extra=`), read as overrides.
//!
//! Words (blank-separated; `'...'` and `"..."` quote blanks):
//! - `root=DEV`: the partition to read config files from and to boot a
//!   `kernel=` from: `xvda1` (Linux's name: `(hd0,1)`), `(hd0,1)` or
//!   `(hd0,msdos1)` (GRUB 2, counting from 1), `xbd0a`/`hd0a` (NetBSD),
//!   `/dev/xvda1` and `/dev/xbd0a` as well,
//!   `UUID=...` and `LABEL=...` (searched for).
//! - `config=FILE`: the config file, `[(dev)]/path` or `dev:/path`.
//! - A bare `(hd0,0)/boot/grub/menu.lst` word is pv-grub's way of naming
//!   the config (xl `extra="(hd0,0)/boot/grub/menu.lst"`); it counts
//!   partitions from 0, as GRUB legacy does.
//! - `kernel=FILE`: boot this file, with no menu ([`Overrides::kernel_menu`]).
//! - `timeout=N` (seconds, `-1` waits forever), `entry=N|title|id` (`N` is
//!   the number the menu shows, counting from 1).
//! - `netboot`: boot from the network, with the server DHCP names;
//!   `netboot=URL` (`tftp://10.0.0.1/`, `http://10.0.0.1:8080/boot/`):
//!   from that server, reading the config the URL names, or looking for
//!   one in the directory it names.
//! - `ip=A.B.C.D/N`, `gw=A.B.C.D` (else DHCP) and `netfront.KEY=VALUE`:
//!   the network's settings ([`Overrides::net_words`]).
//! - `--`: everything after it is appended to the booted kernel's command line.
//!
//! Anything else is reported and ignored.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use crate::net::Url;

use super::{checked, grub_device, grub_file, small_number, timeout_value, Diagnostic, Entry, FileRef, Menu, RootSpec, SearchBy};

/// The file name diagnostics of the command line carry.
pub const CMDLINE_FILE: &str = "command line";

/// Longest command line read (Xen's is 1 KiB; this leaves room).
pub const MAX_CMDLINE_BYTES: usize = 64 << 10;

/// Which entry `entry=` picks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryChoice {
    /// By position in [`Menu::entries`] (from 0; `entry=1` is `Index(0)`).
    Index(usize),
    /// By title (or grub.cfg `--id`).
    Title(String),
}

/// Where a network boot's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetBoot {
    /// `netboot`: the server (and config file) the DHCP lease names.
    Dhcp,
    /// `netboot=URL`.
    Url(Url),
}

/// What the command line overrides.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Overrides {
    /// `root=`: where config files are looked for and a `kernel=` is read.
    pub root: Option<RootSpec>,
    /// `config=` or pv-grub's bare `(hd0,0)/path`.
    pub config: Option<FileRef>,
    /// `kernel=`.
    pub kernel: Option<FileRef>,
    /// `timeout=`: `Some(None)` waits forever.
    pub timeout: Option<Option<u32>>,
    /// `entry=`.
    pub entry: Option<EntryChoice>,
    /// `netboot` or `netboot=URL`.
    pub netboot: Option<NetBoot>,
    /// The network stack's words (`ip=`, `gw=`, `netfront.*`), verbatim,
    /// blank-separated.
    pub net_words: String,
    /// Everything after `--`, verbatim.
    pub extra_args: String,
    /// Words not understood.
    pub diagnostics: Vec<Diagnostic>,
}

/// Splits at blanks, honouring quotes; yields (word, end offset).
fn words(text: &str) -> Vec<(String, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let mut w: Vec<u8> = Vec::new();
        let mut quote: Option<u8> = None;
        while i < b.len() {
            let c = b[i];
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => w.push(c),
                None if c == b'\'' || c == b'"' => quote = Some(c),
                None if c.is_ascii_whitespace() => break,
                None => w.push(c),
            }
            i += 1;
        }
        out.push((String::from_utf8_lossy(&w).into_owned(), i));
    }
    out
}

/// A partition name from the command line, as a [`crate::partition::Selector`] string.
fn device(d: &str) -> Result<String, String> {
    // `root=/dev/xvda1`, as a Linux command line would say it.
    let d = d.strip_prefix("/dev/").unwrap_or(d);
    if d.starts_with('(') {
        return match grub_device(d, false)? {
            Some(s) => Ok(s),
            None => Err(format!("'{d}' is a whole disk; name a partition")),
        };
    }
    // Linux's Xen disk names: xvda1 is the first partition of the first disk.
    if let Some(rest) = d.strip_prefix("xvd") {
        let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
        let (disk, part) = rest.split_at(letters);
        let unit = match disk.as_bytes() {
            [a] => Some(u32::from(a - b'a')),
            [a, b] => Some(26 * (u32::from(a - b'a') + 1) + u32::from(b - b'a')),
            _ => None,
        };
        return match (unit, small_number(part)) {
            (Some(u), Some(p)) if p > 0 => checked(format!("(hd{u},{p})")),
            (Some(_), None) if part.is_empty() => Err(format!("'{d}' is a whole disk; name a partition (xvda1)")),
            _ => Err(format!("bad disk name '{d}'")),
        };
    }
    checked(d.to_string())
}

/// A file with an optional device: `(dev)/path`, `dev:/path` or `/path`.
fn file(v: &str) -> Result<FileRef, String> {
    if v.starts_with('(') {
        return grub_file(v, false);
    }
    if let Some((d, p)) = v.split_once(':') {
        if !d.contains('/') {
            return Ok(FileRef { device: Some(device(d)?), path: super::absolute(p) });
        }
    }
    grub_file(v, false)
}

fn root(v: &str) -> Result<RootSpec, String> {
    if let Some(u) = v.strip_prefix("UUID=") {
        return Ok(RootSpec::Search { by: SearchBy::FsUuid, value: u.to_string() });
    }
    if let Some(l) = v.strip_prefix("LABEL=") {
        return Ok(RootSpec::Search { by: SearchBy::Label, value: l.to_string() });
    }
    device(v).map(RootSpec::Device)
}

/// Reads the domain command line.
pub fn parse(cmdline: &str) -> Overrides {
    let mut o = Overrides::default();
    let diag = |o: &mut Overrides, message: String| {
        if o.diagnostics.len() < super::MAX_DIAGNOSTICS {
            o.diagnostics.push(Diagnostic { file: CMDLINE_FILE.to_string(), line: 1, message });
        }
    };
    if cmdline.len() > MAX_CMDLINE_BYTES {
        diag(&mut o, format!("longer than {MAX_CMDLINE_BYTES} bytes; ignored"));
        return o;
    }
    for (w, end) in words(cmdline) {
        if w == "--" {
            o.extra_args = cmdline[end..].trim().to_string();
            break;
        }
        let result = match w.split_once('=') {
            None if w == "netboot" => {
                o.netboot = Some(NetBoot::Dhcp);
                Ok(())
            }
            Some(("netboot", v)) => Url::parse(v).map(|u| o.netboot = Some(NetBoot::Url(u))).map_err(|e| format!("netboot={v}: {e}")),
            Some(("ip" | "gw", _)) => {
                o.add_net_word(&w);
                Ok(())
            }
            Some((k, _)) if k.starts_with("netfront.") => {
                o.add_net_word(&w);
                Ok(())
            }
            Some(("root", v)) => root(v).map(|r| o.root = Some(r)),
            Some(("config", v)) => file(v).map(|f| o.config = Some(f)),
            Some(("kernel", v)) => file(v).map(|f| o.kernel = Some(f)),
            Some(("timeout", v)) => match timeout_value(v) {
                Some(t) => {
                    o.timeout = Some(t);
                    Ok(())
                }
                None => Err(format!("timeout '{v}' is not a number")),
            },
            Some(("entry", v)) if !v.is_empty() => match small_number(v) {
                Some(0) => Err("entry=0: entries are numbered from 1, as the menu shows them".to_string()),
                Some(n) => {
                    o.entry = Some(EntryChoice::Index(n as usize - 1));
                    Ok(())
                }
                None => {
                    o.entry = Some(EntryChoice::Title(v.to_string()));
                    Ok(())
                }
            },
            _ if w.starts_with('(') => grub_file(&w, true).map(|f| o.config = Some(f)),
            _ => Err(format!("unknown word '{w}' (kernel arguments go after --)")),
        };
        if let Err(e) = result {
            diag(&mut o, format!("{e}; ignored"));
        }
    }
    o
}

impl Overrides {
    fn add_net_word(&mut self, w: &str) {
        if !self.net_words.is_empty() {
            self.net_words.push(' ');
        }
        self.net_words.push_str(w);
    }

    /// Applies `timeout=`, `entry=` and the `--` arguments to a menu, and
    /// adds the command line's diagnostics to it.
    pub fn apply(&self, menu: &mut Menu) {
        if let Some(t) = self.timeout {
            menu.timeout = t;
        }
        match &self.entry {
            Some(EntryChoice::Index(n)) if *n < menu.entries.len() => menu.default = *n,
            Some(EntryChoice::Title(t)) if menu.find(t).is_some() => menu.default = menu.find(t).unwrap_or(0),
            Some(choice) => {
                let shown = match choice {
                    EntryChoice::Index(n) => format!("{}", n + 1),
                    EntryChoice::Title(t) => t.clone(),
                };
                menu.diag(CMDLINE_FILE, 1, format_args!("entry={shown}: no such entry; keeping the default"));
            }
            None => {}
        }
        if !self.extra_args.is_empty() {
            for e in &mut menu.entries {
                if !e.args.is_empty() {
                    e.args.push(' ');
                }
                e.args.push_str(&self.extra_args);
            }
        }
        for d in &self.diagnostics {
            menu.diag(&d.file, d.line, format_args!("{}", d.message));
        }
    }

    /// The menu for `kernel=`: one entry booting it at once (unless
    /// `timeout=` says otherwise) with the `--` arguments. `None` without `kernel=`.
    pub fn kernel_menu(&self) -> Option<Menu> {
        let kernel = self.kernel.clone()?;
        let entry = Entry {
            title: format!("kernel={kernel}"),
            line: 1,
            root: self.root.clone(),
            kernel: Some(kernel),
            args: self.extra_args.clone(),
            ..Entry::default()
        };
        Some(Menu {
            entries: vec![entry],
            timeout: self.timeout.unwrap_or(Some(0)),
            diagnostics: self.diagnostics.clone(),
            ..Menu::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices() {
        assert_eq!(device("xvda1"), Ok("(hd0,1)".into()));
        assert_eq!(device("xvdb3"), Ok("(hd1,3)".into()));
        assert_eq!(device("/dev/xvdb3"), Ok("(hd1,3)".into()));
        assert_eq!(device("/dev/xbd0e"), Ok("xbd0e".into()));
        assert_eq!(device("xvdaa1"), Ok("(hd26,1)".into()));
        assert!(device("xvda").is_err());
        assert!(device("xvda0").is_err());
        assert_eq!(device("(hd0,1)"), Ok("(hd0,1)".into()));
        assert_eq!(device("xbd0a"), Ok("xbd0a".into()));
        assert!(device("(hd0)").is_err());
        assert!(device("sda1").is_err());
    }

    #[test]
    fn quoted_words() {
        let w: Vec<String> = words(" a 'b c'  \"d e\"f ").into_iter().map(|(w, _)| w).collect();
        assert_eq!(w, ["a", "b c", "d ef"]);
    }

    #[test]
    fn network_words() {
        let o = parse("netboot ip=10.0.0.2/24 gw=10.0.0.1 netfront.gso=1 -- ip=1.2.3.4");
        assert_eq!(o.netboot, Some(NetBoot::Dhcp));
        assert_eq!(o.net_words, "ip=10.0.0.2/24 gw=10.0.0.1 netfront.gso=1");
        assert!(o.diagnostics.is_empty(), "{:?}", o.diagnostics);
        let o = parse("netboot=http://10.0.0.1:8080/boot/grub/grub.cfg kernel=/hello");
        assert_eq!(o.netboot, Some(NetBoot::Url(Url::parse("http://10.0.0.1:8080/boot/grub/grub.cfg").unwrap())));
        let o = parse("netboot=ftp://x/");
        assert_eq!(o.netboot, None);
        assert!(o.diagnostics[0].message.contains("netboot=ftp://x/: only tftp:// and http://"), "{:?}", o.diagnostics);
    }
}
