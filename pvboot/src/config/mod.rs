//! Boot configuration: one [`Menu`] model whatever file it came from.
//!
//! Three syntaxes are read: GRUB legacy / pvgrub 1 `menu.lst`
//! ([`menu_lst`]), NetBSD's `boot.cfg(5)` ([`boot_cfg`]) and a written-down
//! subset of GRUB 2's `grub.cfg` ([`grub_cfg`]). The domain command line
//! (xl `extra=`) is read by [`cmdline`] and applied on top. [`find`] looks
//! for the first of [`CONFIG_PATHS`] on a mounted volume; [`load`] reads one.
//!
//! Parsing never fails: what pvboot does not understand becomes a
//! [`Diagnostic`] (`file:line: message`) and parsing goes on. An entry
//! without a kernel stays in the menu (so the numbering matches the file)
//! but [`Entry::is_bootable`] is false and a diagnostic names it; the
//! runtime then tries the next entry of [`Menu::boot_order`].
//!
//! Everything is bounded: files over [`MAX_CONFIG_BYTES`] are refused, at
//! most [`MAX_ENTRIES`] entries, [`MAX_MODULES`] modules per entry,
//! [`MAX_VARIABLES`] variables, [`MAX_NESTING`] nested blocks and
//! [`MAX_DIAGNOSTICS`] diagnostics are kept, and variable expansion in
//! grub.cfg has a total budget ([`MAX_EXPANSION_BYTES`]), so parsing time
//! is linear in the file size.
//!
//! Partitions: an entry's [`RootSpec::Device`] and a [`FileRef::device`] are
//! always strings that [`crate::partition::Selector::parse`] accepts. GRUB
//! legacy numbers partitions from 0 (`(hd0,0)` is the first); those are
//! rewritten to GRUB 2's 1-based form (`(hd0,1)`), which is what
//! `Selector` reads. `root: None` means "the partition the config file was
//! read from".

pub mod boot_cfg;
pub mod cmdline;
pub mod grub_cfg;
pub mod menu_lst;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::fs::{uuid_matches, FileSystem, FileType, FsError};
use crate::partition::Selector;

/// Largest config file read; the caller refuses bigger files (and
/// [`Menu::parse`] refuses them too).
pub const MAX_CONFIG_BYTES: usize = 1 << 20;
/// Most menu entries kept; later ones are dropped with a diagnostic.
pub const MAX_ENTRIES: usize = 1024;
/// Most modules (initrds) per entry.
pub const MAX_MODULES: usize = 64;
/// Most grub.cfg variables.
pub const MAX_VARIABLES: usize = 512;
/// Deepest nesting of grub.cfg blocks (`if`, `menuentry`, `submenu`, `function`).
pub const MAX_NESTING: usize = 32;
/// Most diagnostics kept; one more says that the rest were dropped.
pub const MAX_DIAGNOSTICS: usize = 256;
/// Longest single expanded grub.cfg word or variable value.
pub const MAX_VALUE_BYTES: usize = 64 << 10;
/// Total bytes grub.cfg variable expansion may produce for one file.
pub const MAX_EXPANSION_BYTES: usize = 4 * MAX_CONFIG_BYTES;
/// Longest banner kept (boot.cfg allows 12 lines).
pub const MAX_BANNER_LINES: usize = 12;

/// Config files looked for, in this order, unless the command line names one.
pub const CONFIG_PATHS: [&str; 5] = [
    "/boot/grub/menu.lst",
    "/grub/menu.lst",
    "/boot.cfg",
    "/boot/grub/grub.cfg",
    "/grub/grub.cfg",
];

/// Reads the config file at `path` on `fs` and parses it (by its name);
/// files over [`MAX_CONFIG_BYTES`] are refused.
pub fn load(fs: &dyn FileSystem, path: &str) -> Result<Menu, FsError> {
    let bytes = fs.read_file(path, MAX_CONFIG_BYTES as u64)?;
    Ok(Menu::parse(path, &bytes))
}

/// The first of [`CONFIG_PATHS`] present on `fs`, with its menu or why it
/// could not be read; `None` when there is none. A read error other than
/// "not found" stops the search there, so a damaged menu.lst is reported
/// rather than silently replaced by a grub.cfg.
pub fn find(fs: &dyn FileSystem) -> Option<(&'static str, Result<Menu, FsError>)> {
    for path in CONFIG_PATHS {
        match fs.lookup(path) {
            Ok(node) if node.meta.kind == FileType::Dir => {}
            Ok(_) => return Some((path, load(fs, path))),
            Err(FsError::NotFound | FsError::NotADirectory) => {}
            Err(e) => return Some((path, Err(e))),
        }
    }
    None
}

/// One problem found while reading a config: `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The config file (as given to the parser).
    pub file: String,
    /// 1-based line number; 0 when the problem concerns the whole file.
    pub line: usize,
    /// What was wrong and what pvboot did about it.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// How `search` finds the root partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchBy {
    /// The partition holding this file.
    File,
    /// The file system with this label.
    Label,
    /// The file system with this UUID (GRUB's textual form).
    FsUuid,
}

/// Where an entry's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSpec {
    /// A partition, as [`Selector::parse`] accepts it.
    Device(String),
    /// The first partition matching, found at boot time.
    Search {
        /// What to match.
        by: SearchBy,
        /// The file path, label or UUID.
        value: String,
    },
}

impl RootSpec {
    /// Whether `fs` is the file system a [`RootSpec::Search`] looks for, as
    /// GRUB's `search` decides: the file exists, the label is equal, or the
    /// UUID is equal ignoring case. A [`RootSpec::Device`] names a
    /// partition, not contents: always `false`.
    pub fn matches(&self, fs: &dyn FileSystem) -> bool {
        match self {
            RootSpec::Device(_) => false,
            RootSpec::Search { by: SearchBy::File, value } => fs.lookup(value).is_ok(),
            RootSpec::Search { by: SearchBy::Label, value } => fs.label().as_deref() == Some(value.as_str()),
            RootSpec::Search { by: SearchBy::FsUuid, value } => fs.uuid().is_some_and(|u| uuid_matches(&u, value)),
        }
    }
}

/// A file, optionally on a named partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// The partition (`(hd0,1)`, `(hd0,msdos1)`, `xbd0a`, `hd0a`, as
    /// [`Selector::parse`] accepts it); `None` for the entry's root.
    pub device: Option<String>,
    /// The absolute path on that partition.
    pub path: String,
}

impl fmt::Display for FileRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.device {
            Some(d) if d.starts_with('(') => write!(f, "{d}{}", self.path),
            Some(d) => write!(f, "{d}:{}", self.path),
            None => f.write_str(&self.path),
        }
    }
}

/// A module (initrd, multiboot module, NetBSD kernel module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRef {
    /// The file.
    pub file: FileRef,
    /// Its command line (multiboot modules); empty for initrds.
    pub args: String,
    /// Whether the loader decompresses it (GRUB legacy `module`/`initrd`
    /// and GRUB 2 `module` do; `modulenounzip`, `module --nounzip`, GRUB 2
    /// `initrd` and boot.cfg `load` do not).
    pub decompress: bool,
}

/// One bootable choice.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// Shown in the menu (grub.cfg submenus: `Sub>Entry`).
    pub title: String,
    /// grub.cfg `--id`, for `set default=id` and `entry=id`.
    pub id: Option<String>,
    /// Line where the entry starts.
    pub line: usize,
    /// Where its files are; `None`: the partition the config came from.
    pub root: Option<RootSpec>,
    /// The kernel; `None` makes the entry unbootable.
    pub kernel: Option<FileRef>,
    /// The kernel's command line.
    pub args: String,
    /// Modules in load order.
    pub modules: Vec<ModuleRef>,
    /// The kernel is a multiboot kernel (e.g. Xen's xen.gz with modules).
    pub multiboot: bool,
}

impl Entry {
    /// Whether the entry names a kernel.
    pub fn is_bootable(&self) -> bool {
        self.kernel.is_some()
    }
}

/// A parsed config file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Menu {
    /// Entries in file order.
    pub entries: Vec<Entry>,
    /// Index into `entries` of the default entry.
    pub default: usize,
    /// Seconds before the default boots; `None`: wait for the user.
    pub timeout: Option<u32>,
    /// Entries to try, in order, when the default fails (menu.lst `fallback`).
    pub fallback: Vec<usize>,
    /// Text shown above the menu (boot.cfg `banner`).
    pub banner: Vec<String>,
    /// Everything pvboot skipped or could not use.
    pub diagnostics: Vec<Diagnostic>,
}

/// Which syntax a config file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// GRUB legacy / pvgrub 1 `menu.lst` (also `grub.conf`).
    MenuLst,
    /// NetBSD `boot.cfg`.
    BootCfg,
    /// GRUB 2 `grub.cfg`.
    GrubCfg,
}

impl Syntax {
    /// The syntax a file name implies (`menu.lst`, `grub.conf`, `boot.cfg`, `grub.cfg`).
    pub fn from_path(path: &str) -> Option<Syntax> {
        let name = path.rsplit('/').next().unwrap_or(path);
        match name {
            "menu.lst" | "grub.conf" => Some(Syntax::MenuLst),
            "boot.cfg" => Some(Syntax::BootCfg),
            "grub.cfg" => Some(Syntax::GrubCfg),
            _ => None,
        }
    }

    /// A guess from the contents, for files with other names.
    fn guess(text: &str) -> Syntax {
        if text.contains("menuentry") {
            Syntax::GrubCfg
        } else if text.lines().any(|l| l.trim_start().starts_with("menu=")) {
            Syntax::BootCfg
        } else {
            Syntax::MenuLst
        }
    }
}

impl Menu {
    /// Parses a config file, choosing the syntax by its name (and, for other
    /// names, by its contents, with a diagnostic). Never fails: problems are
    /// in [`Menu::diagnostics`]. Files over [`MAX_CONFIG_BYTES`] give an
    /// empty menu with one diagnostic; invalid UTF-8 is read as U+FFFD.
    pub fn parse(path: &str, text: &[u8]) -> Menu {
        if text.len() > MAX_CONFIG_BYTES {
            let mut m = Menu::default();
            m.diag(path, 0, format_args!("file is {} bytes, over the {MAX_CONFIG_BYTES}-byte limit; not read", text.len()));
            return m;
        }
        // A byte-order mark (Windows editors write one) is not part of the first line.
        let text = String::from_utf8_lossy(text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text));
        match Syntax::from_path(path) {
            Some(s) => Self::parse_as(s, path, &text),
            None => {
                let s = Syntax::guess(&text);
                let mut m = Self::parse_as(s, path, &text);
                let note = Diagnostic {
                    file: path.to_string(),
                    line: 0,
                    message: format!("not a known config file name; read as {}", s.name()),
                };
                m.diagnostics.insert(0, note);
                m
            }
        }
    }

    /// Parses `text` in the given syntax.
    pub fn parse_as(syntax: Syntax, path: &str, text: &str) -> Menu {
        match syntax {
            Syntax::MenuLst => menu_lst::parse(path, text),
            Syntax::BootCfg => boot_cfg::parse(path, text),
            Syntax::GrubCfg => grub_cfg::parse(path, text),
        }
    }

    /// Entries to try in order: the default, then the fallbacks, each once,
    /// skipping entries without a kernel.
    pub fn boot_order(&self) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        for i in core::iter::once(self.default).chain(self.fallback.iter().copied()) {
            if self.entries.get(i).is_some_and(Entry::is_bootable) && !out.contains(&i) {
                out.push(i);
            }
        }
        out
    }

    /// Index of the entry titled `title` (exactly), or with that grub.cfg id.
    pub fn find(&self, title: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.title == title)
            .or_else(|| self.entries.iter().position(|e| e.id.as_deref() == Some(title)))
    }

    /// Records a diagnostic, up to [`MAX_DIAGNOSTICS`].
    /// The message is formatted only when kept, so floods of junk cost little.
    pub(crate) fn diag(&mut self, file: &str, line: usize, message: fmt::Arguments<'_>) {
        if self.diagnostics.len() < MAX_DIAGNOSTICS {
            self.diagnostics.push(Diagnostic { file: file.to_string(), line, message: alloc::fmt::format(message) });
        } else if self.diagnostics.len() == MAX_DIAGNOSTICS {
            self.diagnostics.push(Diagnostic {
                file: file.to_string(),
                line,
                message: "too many problems; the rest are not reported".to_string(),
            });
        }
    }

    /// Adds an entry (up to [`MAX_ENTRIES`]), reporting one without a kernel.
    pub(crate) fn push_entry(&mut self, file: &str, entry: Entry) {
        self.push_entry_reported(file, entry, false);
    }

    /// [`Menu::push_entry`], where `reported` says a missing kernel was already reported.
    pub(crate) fn push_entry_reported(&mut self, file: &str, entry: Entry, reported: bool) {
        if self.entries.len() >= MAX_ENTRIES {
            self.diag(file, entry.line, format_args!("more than {MAX_ENTRIES} entries; '{}' dropped", entry.title));
            return;
        }
        if entry.kernel.is_none() && !reported {
            self.diag(file, entry.line, format_args!("entry '{}' has no kernel; it cannot boot", entry.title));
        }
        self.entries.push(entry);
    }

    /// Sets `default` to `n` if it names an entry, else reports it.
    pub(crate) fn set_default_index(&mut self, file: &str, line: usize, n: usize) {
        if n < self.entries.len() {
            self.default = n;
        } else {
            self.default = 0;
            self.diag(file, line, format_args!("default entry {n} does not exist; using the first"));
        }
    }
}

impl Syntax {
    fn name(self) -> &'static str {
        match self {
            Syntax::MenuLst => "menu.lst",
            Syntax::BootCfg => "boot.cfg",
            Syntax::GrubCfg => "grub.cfg",
        }
    }
}

/// Parses a decimal number of at most 9 digits.
pub(crate) fn small_number(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A timeout in seconds: a negative number (-1) is "wait forever".
pub(crate) fn timeout_value(s: &str) -> Option<Option<u32>> {
    if let Some(neg) = s.strip_prefix('-') {
        return small_number(neg).map(|_| None);
    }
    small_number(s).map(Some)
}

/// Checks that `dev` is a partition name [`Selector`] accepts.
fn checked(dev: String) -> Result<String, String> {
    match Selector::parse(&dev) {
        Ok(_) => Ok(dev),
        Err(e) => Err(format!("{e}")),
    }
}

/// Normalises a GRUB device name (with or without parentheses) to a
/// [`Selector`] string. `legacy`: GRUB 0.97 numbering, partitions from 0.
/// `Ok(None)`: the whole disk, `(hd0)`, which pvboot resolves itself.
pub(crate) fn grub_device(dev: &str, legacy: bool) -> Result<Option<String>, String> {
    if let Some(net) = crate::net::NetDevice::parse(dev) {
        return net.map(|d| Some(d.to_string())).map_err(|e| format!("device '{dev}': {e}"));
    }
    let inner = dev.strip_prefix('(').and_then(|d| d.strip_suffix(')')).unwrap_or(dev);
    let mut parts = inner.split(',');
    let disk = parts.next().unwrap_or("");
    let unit = disk.strip_prefix("hd").and_then(small_number);
    if unit.is_none() {
        return Err(format!("device '{dev}' is not a hard disk (hdN) pvboot can read"));
    }
    let rest: Vec<&str> = parts.collect();
    if rest.is_empty() {
        return Ok(None);
    }
    let mut out = String::with_capacity(inner.len() + 3);
    out.push('(');
    out.push_str(disk);
    for (i, p) in rest.iter().enumerate() {
        out.push(',');
        match small_number(p) {
            // GRUB legacy's first component counts from 0, its BSD letter stays.
            Some(n) if legacy && i == 0 => out.push_str(&format!("{}", u64::from(n) + 1)),
            _ => out.push_str(p),
        }
    }
    out.push(')');
    checked(out).map(Some)
}

/// Splits a GRUB path `(dev)/path` into a [`FileRef`]; paths without a
/// device stay on the entry's root.
pub(crate) fn grub_file(word: &str, legacy: bool) -> Result<FileRef, String> {
    if let Some(rest) = word.strip_prefix('(') {
        let Some(close) = rest.find(')') else {
            return Err(format!("'{word}': missing ')'"));
        };
        let dev = &word[..close + 2];
        let path = &rest[close + 1..];
        let device = if dev == "()" { None } else { grub_device(dev, legacy)? };
        return Ok(FileRef { device, path: absolute(path) });
    }
    if word.is_empty() {
        return Err("missing file name".to_string());
    }
    Ok(FileRef { device: None, path: absolute(word) })
}

/// Makes a path absolute (`netbsd` is `/netbsd`).
pub(crate) fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

/// Splits `text` at the first run of ASCII whitespace.
pub(crate) fn split_word(text: &str) -> (&str, &str) {
    let t = text.trim_start();
    match t.find(|c: char| c.is_ascii_whitespace()) {
        Some(i) => (&t[..i], t[i..].trim()),
        None => (t, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_devices_count_from_zero() {
        assert_eq!(grub_device("(hd0,0)", true), Ok(Some("(hd0,1)".into())));
        assert_eq!(grub_device("(hd1,4)", true), Ok(Some("(hd1,5)".into())));
        assert_eq!(grub_device("(hd0,0,a)", true), Ok(Some("(hd0,1,a)".into())));
        assert_eq!(grub_device("(hd0)", true), Ok(None));
        assert!(grub_device("(fd0)", true).is_err());
        assert!(grub_device("(hd0,x)", true).is_err());
    }

    #[test]
    fn grub2_devices_count_from_one() {
        assert_eq!(grub_device("(hd0,1)", false), Ok(Some("(hd0,1)".into())));
        assert_eq!(grub_device("hd0,msdos1", false), Ok(Some("(hd0,msdos1)".into())));
        assert_eq!(grub_device("(hd0,gpt2)", false), Ok(Some("(hd0,gpt2)".into())));
        assert_eq!(grub_device("(hd0,msdos1,bsd1)", false), Ok(Some("(hd0,msdos1,bsd1)".into())));
        assert!(grub_device("(hd0,0)", false).is_err(), "GRUB 2 has no partition 0");
        assert!(grub_device("(lvm/vg-root)", false).is_err());
        for d in ["(hd0,1)", "(hd0,msdos1)", "(hd0,gpt2)", "(hd0,msdos1,bsd1)"] {
            Selector::parse(d).unwrap();
        }
    }

    #[test]
    fn files() {
        assert_eq!(
            grub_file("(hd0,0)/boot/vmlinuz", true),
            Ok(FileRef { device: Some("(hd0,1)".into()), path: "/boot/vmlinuz".into() })
        );
        assert_eq!(grub_file("/vmlinuz", false), Ok(FileRef { device: None, path: "/vmlinuz".into() }));
        assert_eq!(grub_file("()/vmlinuz", false), Ok(FileRef { device: None, path: "/vmlinuz".into() }));
        assert!(grub_file("(hd0,1/vmlinuz", false).is_err());
        assert_eq!(
            format!("{}", FileRef { device: Some("xbd0a".into()), path: "/netbsd".into() }),
            "xbd0a:/netbsd"
        );
    }

    #[test]
    fn timeouts() {
        assert_eq!(timeout_value("5"), Some(Some(5)));
        assert_eq!(timeout_value("-1"), Some(None));
        assert_eq!(timeout_value("x"), None);
        assert_eq!(timeout_value("99999999999"), None);
    }
}
