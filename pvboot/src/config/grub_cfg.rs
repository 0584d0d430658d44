//! A written-down subset of GRUB 2's `grub.cfg`.
//!
//! pvboot does not run GRUB script; it reads the file once, top to bottom,
//! the way the menu grub-mkconfig writes would come out, and reports what
//! it skips. The subset:
//!
//! - Lexing as GRUB: words split at blanks; `;` and newlines end commands;
//!   `#` at a word's start comments to the end of the line; `'...'` is
//!   literal; `"..."` expands variables and takes `\$ \" \\` escapes;
//!   outside quotes `\` escapes the next character and `\` newline joins
//!   lines. `$name` and `${name}` expand everywhere outside single quotes;
//!   an unquoted expansion is split at blanks and vanishes when empty.
//! - `set name=value`, `name=value`, `unset name`. Special names: `default`
//!   (an entry number, title, `Sub>Entry` title path or `--id`; resolved
//!   when the file ends), `timeout` (seconds, `-1` waits forever), `root`
//!   (`hd0,msdos1`, `(hd0,1)`: the entry's [`RootSpec::Device`]).
//!   Preset, as GRUB's normal mode has them: `feature_menuentry_id=y`,
//!   `feature_timeout_style=y`, `grub_platform=xen`, `grub_cpu=x86_64`.
//! - `menuentry 'Title' [--class C] [--users U] [--hotkey K] [--id ID]
//!   [--unrestricted] {` ... `}`; `submenu 'Title' ... {` ... `}` (its
//!   entries are flattened into the menu, titled `Title>Entry`).
//! - In entries: `linux`/`linux16`/`linuxefi FILE ARGS`,
//!   `initrd`/`initrd16`/`initrdefi FILE...` (not decompressed, as GRUB 2),
//!   `multiboot`/`multiboot2 FILE ARGS` and `module`/`module2 [--nounzip]
//!   FILE ARGS` (decompressed unless `--nounzip`, as GRUB 2). `FILE` may
//!   start with a device, `(hd0,msdos1)/boot/vmlinuz` or `($root)/...`.
//! - `search [--no-floppy] [--set[=VAR]] [--file|--label|--fs-uuid]
//!   [--hint...] KEY` (by file when no kind is given) and `search.file`,
//!   `search.fs_label`, `search.fs_uuid KEY [VAR]`: with VAR `root` (the
//!   default) the entry's root becomes a [`RootSpec::Search`].
//! - `if COND; then ...; [elif COND; then ...;] [else ...;] fi`, where COND
//!   is `[ ... ]` or `test ...` with `A = B`, `A == B`, `A != B`, `-n A`,
//!   `-z A`, `A`, `! ...`, on expanded words. That covers Debian's
//!   `if [ x$feature_platform_search_hint = xy ]; then search --hint...;
//!   else search ...; fi` (the hint feature is not preset, so the plain
//!   `else` branch is taken). Any other condition (a command, `-s FILE`,
//!   `-a`) skips the whole `if` with a diagnostic.
//! - `function NAME { ... }` bodies are not run; calling them is ignored.
//!   Loops (`for`, `while`, `until`) are skipped with a diagnostic.
//! - Ignored without a note, as they only affect GRUB's own screen or
//!   modules: `insmod`, `load_video`, `gfxmode`, `echo`, `terminal_output`,
//!   `terminal_input`, `loadfont`, `load_env`, `save_env`, `savedefault`,
//!   `export`, `set gfxpayload` and the like. Everything else is reported
//!   as an unknown directive and skipped.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{
    grub_device, grub_file, small_number, timeout_value, Entry, Menu, ModuleRef, RootSpec, SearchBy,
    MAX_EXPANSION_BYTES, MAX_MODULES, MAX_NESTING, MAX_VALUE_BYTES, MAX_VARIABLES,
};

/// Commands that only matter to GRUB itself.
const IGNORED: &[&str] = &[
    "insmod",
    "load_video",
    "gfxmode",
    "echo",
    "terminal_output",
    "terminal_input",
    "terminal",
    "loadfont",
    "load_env",
    "save_env",
    "savedefault",
    "export",
    "serial",
    "background_image",
    "background_color",
    "play",
    "clear",
    "true",
    "gettext",
    "boot",
    "recordfail",
    "sleep",
];

/// Variables GRUB's normal mode sets before reading grub.cfg.
const PRESET: &[(&str, &str)] = &[
    ("feature_menuentry_id", "y"),
    ("feature_timeout_style", "y"),
    ("grub_platform", "xen"),
    ("grub_cpu", "x86_64"),
];

#[derive(Debug)]
enum Piece {
    Lit(String),
    Var { name: String, quoted: bool },
}

#[derive(Debug, Default)]
struct Word {
    pieces: Vec<Piece>,
    quoted: bool,
}

impl Word {
    /// The word's text if it is one plain literal (keywords, braces).
    fn literal(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [Piece::Lit(s)] if !self.quoted => Some(s),
            _ => None,
        }
    }
}

struct Command {
    line: usize,
    words: Vec<Word>,
}

/// Splits the text into commands; linear in its length.
struct Lexer<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
    pending_close: Option<usize>,
    unterminated: Option<usize>,
    /// Up to here no `}` closes a `${`: later `${` before it are literal at
    /// once (so a line of `${${${...` is not rescanned, quadratically).
    no_brace_before: usize,
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl Lexer<'_> {
    fn next_command(&mut self) -> Option<Command> {
        if let Some(line) = self.pending_close.take() {
            return Some(Command { line, words: alloc::vec![close_word()] });
        }
        let mut cmd = Command { line: self.line, words: Vec::new() };
        loop {
            let Some(&c) = self.text.get(self.pos) else {
                return (!cmd.words.is_empty()).then_some(cmd);
            };
            match c {
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'\n' | b';' => {
                    if c == b'\n' {
                        self.line += 1;
                    }
                    self.pos += 1;
                    if !cmd.words.is_empty() {
                        return Some(cmd);
                    }
                }
                b'#' => {
                    while self.text.get(self.pos).is_some_and(|&b| b != b'\n') {
                        self.pos += 1;
                    }
                }
                b'\\' if self.text.get(self.pos + 1) == Some(&b'\n') => {
                    self.pos += 2;
                    self.line += 1;
                }
                _ => {
                    if cmd.words.is_empty() {
                        cmd.line = self.line;
                    }
                    let line = self.line;
                    let w = self.word();
                    match w.literal() {
                        Some("{") => {
                            cmd.words.push(w);
                            return Some(cmd);
                        }
                        Some("}") if cmd.words.is_empty() => {
                            cmd.words.push(w);
                            return Some(cmd);
                        }
                        Some("}") => {
                            self.pending_close = Some(line);
                            return Some(cmd);
                        }
                        _ => cmd.words.push(w),
                    }
                }
            }
        }
    }

    fn word(&mut self) -> Word {
        let mut w = Word::default();
        let mut lit: Vec<u8> = Vec::new();
        while let Some(&c) = self.text.get(self.pos) {
            match c {
                b' ' | b'\t' | b'\r' | b'\n' | b';' => break,
                b'\'' => {
                    w.quoted = true;
                    let start_line = self.line;
                    self.pos += 1;
                    loop {
                        match self.text.get(self.pos) {
                            None => {
                                self.unterminated.get_or_insert(start_line);
                                break;
                            }
                            Some(b'\'') => {
                                self.pos += 1;
                                break;
                            }
                            Some(&b) => {
                                if b == b'\n' {
                                    self.line += 1;
                                }
                                lit.push(b);
                                self.pos += 1;
                            }
                        }
                    }
                }
                b'"' => {
                    w.quoted = true;
                    let start_line = self.line;
                    self.pos += 1;
                    loop {
                        match self.text.get(self.pos) {
                            None => {
                                self.unterminated.get_or_insert(start_line);
                                break;
                            }
                            Some(b'"') => {
                                self.pos += 1;
                                break;
                            }
                            Some(b'\\') if matches!(self.text.get(self.pos + 1), Some(b'$' | b'"' | b'\\')) => {
                                lit.push(self.text[self.pos + 1]);
                                self.pos += 2;
                            }
                            Some(b'\\') if self.text.get(self.pos + 1) == Some(&b'\n') => {
                                self.line += 1;
                                self.pos += 2;
                            }
                            Some(b'$') => self.variable(&mut w, &mut lit, true),
                            Some(&b) => {
                                if b == b'\n' {
                                    self.line += 1;
                                }
                                lit.push(b);
                                self.pos += 1;
                            }
                        }
                    }
                }
                b'\\' => {
                    match self.text.get(self.pos + 1) {
                        Some(b'\n') => self.line += 1,
                        Some(&b) => lit.push(b),
                        None => {}
                    }
                    self.pos += 2;
                }
                b'$' => self.variable(&mut w, &mut lit, false),
                _ => {
                    lit.push(c);
                    self.pos += 1;
                }
            }
        }
        flush(&mut w, &mut lit);
        w
    }

    /// Reads `$name` or `${name}` at `pos`; a lone `$` is literal.
    fn variable(&mut self, w: &mut Word, lit: &mut Vec<u8>, quoted: bool) {
        let start = self.pos + 1;
        let (name_start, name_end, next) = if self.text.get(start) == Some(&b'{') {
            if start < self.no_brace_before {
                lit.push(b'$');
                self.pos += 1;
                return;
            }
            let mut end = start + 1;
            while self.text.get(end).is_some_and(|&b| b != b'}' && b != b'\n') {
                end += 1;
            }
            if self.text.get(end) != Some(&b'}') {
                self.no_brace_before = end;
                lit.push(b'$');
                self.pos += 1;
                return;
            }
            (start + 1, end, end + 1)
        } else {
            let mut end = start;
            if self.text.get(start).is_some_and(|&b| matches!(b, b'?' | b'#' | b'@' | b'*')) {
                end += 1;
            } else {
                while self.text.get(end).is_some_and(|&b| is_name_byte(b)) {
                    end += 1;
                }
            }
            (start, end, end)
        };
        if name_end == name_start {
            lit.push(b'$');
            self.pos += 1;
            return;
        }
        flush(w, lit);
        let name = String::from_utf8_lossy(&self.text[name_start..name_end]).into_owned();
        w.pieces.push(Piece::Var { name, quoted });
        self.pos = next;
    }
}

fn flush(w: &mut Word, lit: &mut Vec<u8>) {
    if !lit.is_empty() {
        w.pieces.push(Piece::Lit(String::from_utf8_lossy(lit).into_owned()));
        lit.clear();
    }
}

fn close_word() -> Word {
    Word { pieces: alloc::vec![Piece::Lit("}".to_string())], quoted: false }
}

/// An open block.
enum Frame {
    If { line: usize, outer: bool, taken: bool, active: bool, unknown: bool },
    Entry { entry: Entry, active: bool, undo: usize },
    Submenu { title: String, line: usize, active: bool, undo: usize },
    Function { line: usize },
    Loop { line: usize },
}

impl Frame {
    fn active(&self) -> bool {
        match self {
            Frame::If { active, .. } | Frame::Entry { active, .. } | Frame::Submenu { active, .. } => *active,
            Frame::Function { .. } | Frame::Loop { .. } => false,
        }
    }

    fn line(&self) -> usize {
        match self {
            Frame::If { line, .. } | Frame::Submenu { line, .. } | Frame::Function { line } | Frame::Loop { line } => *line,
            Frame::Entry { entry, .. } => entry.line,
        }
    }
}

struct Parser<'a> {
    file: &'a str,
    menu: Menu,
    vars: BTreeMap<String, String>,
    /// Values to restore when the current entry or submenu closes.
    undo: Vec<(String, Option<String>)>,
    root: Option<RootSpec>,
    root_undo: Vec<Option<RootSpec>>,
    functions: BTreeSet<String>,
    frames: Vec<Frame>,
    /// Blocks opened beyond [`MAX_NESTING`]: skipped, only counted.
    too_deep: usize,
    expanded: usize,
    budget_reported: bool,
    default: Option<(usize, String)>,
}

/// Parses a `grub.cfg`.
pub fn parse(file: &str, text: &str) -> Menu {
    let mut p = Parser {
        file,
        menu: Menu::default(),
        vars: PRESET.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        undo: Vec::new(),
        root: None,
        root_undo: Vec::new(),
        functions: BTreeSet::new(),
        frames: Vec::new(),
        too_deep: 0,
        expanded: 0,
        budget_reported: false,
        default: None,
    };
    let mut lex = Lexer { text: text.as_bytes(), pos: 0, line: 1, pending_close: None, unterminated: None, no_brace_before: 0 };
    while let Some(cmd) = lex.next_command() {
        p.command(cmd.line, &cmd.words);
    }
    if let Some(line) = lex.unterminated {
        p.diag(line, "quote not closed before the end of the file".to_string());
    }
    p.finish()
}

impl Parser<'_> {
    fn diag(&mut self, line: usize, message: String) {
        self.menu.diag(self.file, line, message);
    }

    fn active(&self) -> bool {
        self.too_deep == 0 && self.frames.last().is_none_or(Frame::active)
    }

    fn in_entry(&self) -> bool {
        self.frames.iter().any(|f| matches!(f, Frame::Entry { .. }))
    }

    /// Expands words: variables substituted, unquoted expansions split at
    /// blanks, empty unquoted words dropped; bounded by the budgets.
    fn expand(&mut self, line: usize, words: &[Word]) -> Vec<String> {
        let mut out = Vec::with_capacity(words.len());
        for w in words {
            let mut cur = String::new();
            for piece in &w.pieces {
                match piece {
                    Piece::Lit(s) => cur.push_str(s),
                    Piece::Var { name, quoted } => {
                        let value = self.vars.get(name.as_str()).map(String::as_str).unwrap_or("");
                        if self.expanded + value.len() > MAX_EXPANSION_BYTES || cur.len() + value.len() > MAX_VALUE_BYTES {
                            if !self.budget_reported {
                                self.budget_reported = true;
                                self.menu.diag(self.file, line, "variable expansion too large; expanded as empty".to_string());
                            }
                            continue;
                        }
                        self.expanded += value.len();
                        if *quoted {
                            cur.push_str(value);
                            continue;
                        }
                        if !value.bytes().any(|b| matches!(b, b' ' | b'\t' | b'\n')) {
                            cur.push_str(value);
                            continue;
                        }
                        for (i, part) in value.split([' ', '\t', '\n']).enumerate() {
                            if i > 0 && !cur.is_empty() {
                                out.push(core::mem::take(&mut cur));
                            }
                            cur.push_str(part);
                        }
                    }
                }
            }
            if !cur.is_empty() || w.quoted {
                out.push(cur);
            }
        }
        out
    }

    fn command(&mut self, line: usize, words: &[Word]) {
        let Some(first) = words.first() else { return };
        let rest = &words[1..];
        match first.literal() {
            Some("then" | "do") => return self.command(line, rest),
            Some("else") => {
                self.else_branch(line);
                return self.command(line, rest);
            }
            Some("if") => return self.open_if(line, rest),
            Some("elif") => return self.elif(line, rest),
            Some("fi") => return self.close(line, "fi"),
            Some("done") => return self.close(line, "done"),
            Some("}") => return self.close(line, "}"),
            Some("menuentry" | "submenu" | "function") => return self.open_block(line, words),
            Some("for" | "while" | "until") => {
                if self.active() {
                    self.diag(line, "loops are not supported, skipped".to_string());
                }
                return self.push(Frame::Loop { line });
            }
            _ => {}
        }
        if !self.active() {
            return;
        }
        let args = self.expand(line, words);
        let Some((name, args)) = args.split_first() else { return };
        self.simple(line, name, args);
    }

    fn push(&mut self, frame: Frame) {
        if self.too_deep > 0 || self.frames.len() >= MAX_NESTING {
            if self.too_deep == 0 {
                let line = frame.line();
                self.diag(line, format!("blocks nested deeper than {MAX_NESTING}, skipped"));
            }
            self.too_deep += 1;
            return;
        }
        self.frames.push(frame);
    }

    fn open_if(&mut self, line: usize, cond: &[Word]) {
        let outer = self.active();
        let value = if outer { self.condition(line, cond) } else { Some(false) };
        let (active, unknown) = match value {
            Some(v) => (outer && v, false),
            None => (false, true),
        };
        self.push(Frame::If { line, outer, taken: active, active, unknown });
    }

    fn elif(&mut self, line: usize, cond: &[Word]) {
        if self.too_deep > 0 {
            return;
        }
        let Some(Frame::If { outer, taken, unknown, .. }) = self.frames.last() else {
            return self.diag(line, "'elif' without 'if', skipped".to_string());
        };
        let (outer, taken, unknown) = (*outer, *taken, *unknown);
        let v = if outer && !taken && !unknown { self.condition(line, cond) } else { Some(false) };
        if let Some(Frame::If { taken, active, unknown, .. }) = self.frames.last_mut() {
            match v {
                Some(v) => {
                    *active = v;
                    *taken |= v;
                }
                None => {
                    *active = false;
                    *unknown = true;
                }
            }
        }
    }

    fn else_branch(&mut self, line: usize) {
        if self.too_deep > 0 {
            return;
        }
        match self.frames.last_mut() {
            Some(Frame::If { outer, taken, active, unknown, .. }) => *active = *outer && !*taken && !*unknown,
            _ => self.diag(line, "'else' without 'if', skipped".to_string()),
        }
    }

    /// `Some(value)` for conditions pvboot evaluates, else `None` (reported).
    fn condition(&mut self, line: usize, cond: &[Word]) -> Option<bool> {
        let words = self.expand(line, cond);
        let negated = words.first().is_some_and(|w| w == "!");
        let inner = match words[usize::from(negated)..].split_first() {
            Some((first, rest)) if first == "[" => match rest.split_last() {
                Some((last, inner)) if last == "]" => Some(inner),
                _ => None,
            },
            Some((first, rest)) if first == "test" => Some(rest),
            _ => None,
        };
        let v = inner.and_then(test).map(|v| v != negated);
        if v.is_none() {
            let shown: Vec<&str> = words.iter().map(String::as_str).take(8).collect();
            self.diag(line, format!("cannot evaluate 'if {}', the whole if is skipped", shown.join(" ")));
        }
        v
    }

    fn open_block(&mut self, line: usize, words: &[Word]) {
        let kind = words[0].literal().unwrap_or("");
        let has_brace = words.last().and_then(Word::literal) == Some("{") && words.len() > 1;
        if !has_brace {
            if self.active() {
                self.diag(line, format!("'{kind}' without '{{' at the end of its line, skipped"));
            }
            return;
        }
        let active = self.active();
        if kind == "function" {
            if active {
                let args = self.expand(line, &words[1..words.len() - 1]);
                if let Some(name) = args.first() {
                    if self.functions.len() < MAX_VARIABLES {
                        self.functions.insert(name.clone());
                    }
                }
            }
            return self.push(Frame::Function { line });
        }
        if self.too_deep > 0 || self.frames.len() >= MAX_NESTING {
            return self.push(Frame::Function { line });
        }
        let (title, id) = if active { self.block_title(line, kind, &words[1..words.len() - 1]) } else { (String::new(), None) };
        if active {
            self.root_undo.push(self.root.clone());
        }
        let undo = self.undo.len();
        if kind == "submenu" {
            self.push(Frame::Submenu { title, line, active, undo });
        } else {
            let mut full = String::new();
            for f in &self.frames {
                if let Frame::Submenu { title, .. } = f {
                    full.push_str(title);
                    full.push('>');
                }
            }
            full.push_str(&title);
            let entry = Entry { title: full, id, line, root: self.root.clone(), ..Entry::default() };
            self.push(Frame::Entry { entry, active, undo });
        }
    }

    /// A menuentry's or submenu's title and `--id`.
    fn block_title(&mut self, line: usize, kind: &str, words: &[Word]) -> (String, Option<String>) {
        let args = self.expand(line, words);
        let mut title = None;
        let mut id = None;
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--class" | "--users" | "--hotkey" | "--source" => {
                    it.next();
                }
                "--id" => id = it.next(),
                "--unrestricted" => {}
                _ if a.starts_with("--id=") => id = Some(a[5..].to_string()),
                _ if a.starts_with("--") => self.diag(line, format!("{kind} option '{a}' ignored")),
                _ if title.is_none() => title = Some(a),
                _ => {}
            }
        }
        let title = title.unwrap_or_else(|| {
            self.diag(line, format!("{kind} without a title"));
            "(untitled)".to_string()
        });
        (title, id)
    }

    fn close(&mut self, line: usize, word: &str) {
        if self.too_deep > 0 {
            self.too_deep -= 1;
            return;
        }
        let want_if = word == "fi";
        let want_loop = word == "done";
        loop {
            let Some(top) = self.frames.last() else {
                return self.diag(line, format!("'{word}' without an open block, skipped"));
            };
            let matches = match top {
                Frame::If { .. } => want_if,
                Frame::Loop { .. } => want_loop,
                _ => !want_if && !want_loop,
            };
            if matches {
                break;
            }
            if matches!(top, Frame::If { .. } | Frame::Loop { .. }) && !want_if && !want_loop {
                // A `}` closing a block whose `if` was never closed.
                let l = top.line();
                self.diag(l, "block not closed before '}'".to_string());
                self.frames.pop();
                continue;
            }
            return self.diag(line, format!("'{word}' does not close the open block (line {}), skipped", top.line()));
        }
        let Some(frame) = self.frames.pop() else { return };
        self.finish_frame(frame);
    }

    fn finish_frame(&mut self, frame: Frame) {
        match frame {
            Frame::Entry { entry, active: true, undo } => {
                self.restore(undo);
                self.menu.push_entry(self.file, entry);
            }
            Frame::Submenu { active: true, undo, .. } => self.restore(undo),
            _ => {}
        }
    }

    fn restore(&mut self, undo: usize) {
        while self.undo.len() > undo {
            if let Some((name, old)) = self.undo.pop() {
                match old {
                    Some(v) => {
                        self.vars.insert(name, v);
                    }
                    None => {
                        self.vars.remove(&name);
                    }
                }
            }
        }
        if let Some(r) = self.root_undo.pop() {
            self.root = r;
        }
    }

    fn set_var(&mut self, line: usize, name: &str, value: String) {
        if !self.vars.contains_key(name) && self.vars.len() >= MAX_VARIABLES {
            return self.diag(line, format!("more than {MAX_VARIABLES} variables; '{name}' not set"));
        }
        let old = self.vars.insert(name.to_string(), value);
        if self.in_entry_or_submenu() {
            self.undo.push((name.to_string(), old));
        }
    }

    fn in_entry_or_submenu(&self) -> bool {
        self.frames.iter().any(|f| matches!(f, Frame::Entry { .. } | Frame::Submenu { .. }))
    }

    fn assign(&mut self, line: usize, name: &str, value: &str) {
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) || !name.bytes().all(is_name_byte) {
            return self.diag(line, format!("bad variable name '{name}', skipped"));
        }
        let value = if name == "root" {
            value.strip_prefix('(').and_then(|v| v.strip_suffix(')')).unwrap_or(value)
        } else {
            value
        };
        match name {
            "root" => self.set_root(line, value),
            "default" if !self.in_entry() => self.default = Some((line, value.to_string())),
            "timeout" if !self.in_entry() => match timeout_value(value) {
                Some(t) => self.menu.timeout = t,
                None => self.diag(line, format!("timeout '{value}' is not a number, ignored")),
            },
            _ => {}
        }
        self.set_var(line, name, value.to_string());
    }

    fn set_root(&mut self, line: usize, value: &str) {
        if value.is_empty() {
            self.root = None;
            return;
        }
        match grub_device(value, false) {
            Ok(Some(d)) => self.root = Some(RootSpec::Device(d)),
            Ok(None) => {
                self.diag(line, format!("root {value}: the whole disk; pvboot picks its volume itself"));
                self.root = None;
            }
            Err(e) => self.diag(line, format!("root: {e}, ignored")),
        }
        self.sync_entry_root();
    }

    fn sync_entry_root(&mut self) {
        let root = self.root.clone();
        if let Some(Frame::Entry { entry, .. }) = self.frames.iter_mut().rev().find(|f| matches!(f, Frame::Entry { .. })) {
            entry.root = root;
        }
    }

    fn current_entry(&mut self) -> Option<&mut Entry> {
        self.frames.iter_mut().rev().find_map(|f| match f {
            Frame::Entry { entry, .. } => Some(entry),
            _ => None,
        })
    }

    fn simple(&mut self, line: usize, name: &str, args: &[String]) {
        match name {
            "set" => match args.first() {
                None => {}
                Some(a) => match a.split_once('=') {
                    Some((n, v)) => self.assign(line, n, v),
                    None => self.assign(line, a, ""),
                },
            },
            "unset" => {
                for a in args {
                    if a == "root" {
                        self.root = None;
                        self.sync_entry_root();
                    }
                    if let Some(old) = self.vars.remove(a.as_str()) {
                        if self.in_entry_or_submenu() {
                            self.undo.push((a.clone(), Some(old)));
                        }
                    }
                }
            }
            "search" | "search.file" | "search.fs_label" | "search.fs_uuid" => self.search(line, name, args),
            "linux" | "linux16" | "linuxefi" | "multiboot" | "multiboot2" => self.kernel(line, name, args),
            "initrd" | "initrd16" | "initrdefi" | "module" | "module2" => self.module(line, name, args),
            "chainloader" => self.diag(line, "chainloader is not supported by pvboot, skipped".to_string()),
            "source" | "configfile" | "normal" => {
                self.diag(line, format!("'{name}' is not followed; name the file with config= on the command line"))
            }
            _ if name.contains('=') && !name.starts_with('=') => {
                let (n, v) = name.split_once('=').unwrap_or((name, ""));
                self.assign(line, n, v);
            }
            _ if IGNORED.contains(&name) || self.functions.contains(name) => {}
            _ => self.diag(line, format!("unknown directive '{name}', skipped")),
        }
    }

    fn search(&mut self, line: usize, name: &str, args: &[String]) {
        let mut by = match name {
            "search.fs_label" => SearchBy::Label,
            "search.fs_uuid" => SearchBy::FsUuid,
            _ => SearchBy::File,
        };
        let mut var: Option<String> = None;
        let mut key: Option<&String> = None;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "-f" | "--file" => by = SearchBy::File,
                "-l" | "--label" => by = SearchBy::Label,
                "-u" | "--fs-uuid" => by = SearchBy::FsUuid,
                "-s" | "--set" => var = Some("root".to_string()),
                "-n" | "--no-floppy" | "--efidisk-only" => {}
                "-h" | "--hint" => {
                    it.next();
                }
                _ if a.starts_with("--set=") => var = Some(a[6..].to_string()),
                _ if a.starts_with("--hint") => {}
                _ if a.starts_with('-') && name == "search" => self.diag(line, format!("search option '{a}' ignored")),
                _ if key.is_none() => key = Some(a),
                // search.*'s second word is the variable; later ones are hints.
                _ if name != "search" && var.is_none() => var = Some(a.clone()),
                _ => {}
            }
        }
        if name != "search" && var.is_none() {
            var = Some("root".to_string());
        }
        let Some(key) = key else {
            return self.diag(line, format!("{name} without a key, skipped"));
        };
        match var.as_deref() {
            Some("root") => {
                self.root = Some(RootSpec::Search { by, value: key.clone() });
                // `($root)/file` then means the entry's root.
                self.set_var(line, "root", String::new());
                self.sync_entry_root();
            }
            Some(v) => self.diag(line, format!("{name} --set={v}: only root is used, skipped")),
            None => self.diag(line, format!("{name} without --set does nothing, skipped")),
        }
    }

    fn kernel(&mut self, line: usize, name: &str, args: &[String]) {
        if !self.in_entry() {
            return self.diag(line, format!("'{name}' outside a menuentry, skipped"));
        }
        let multiboot = name.starts_with("multiboot");
        let mut rest = args;
        // multiboot's own options (--quirk-..., --nounzip).
        while multiboot && rest.first().is_some_and(|a| a.starts_with("--")) {
            rest = &rest[1..];
        }
        let Some((path, kargs)) = rest.split_first() else {
            return self.diag(line, format!("{name} without a file, skipped"));
        };
        let file = match grub_file(path, false) {
            Ok(f) => f,
            Err(e) => return self.diag(line, format!("{name}: {e}, skipped")),
        };
        let args = kargs.join(" ");
        if let Some(e) = self.current_entry() {
            e.kernel = Some(file);
            e.args = args;
            e.multiboot = multiboot;
        }
    }

    fn module(&mut self, line: usize, name: &str, args: &[String]) {
        if !self.in_entry() {
            return self.diag(line, format!("'{name}' outside a menuentry, skipped"));
        }
        let is_initrd = name.starts_with("initrd");
        let mut rest = args;
        let mut decompress = !is_initrd;
        while let Some(opt) = rest.first().filter(|a| a.starts_with("--")) {
            if opt == "--nounzip" {
                decompress = false;
            } else {
                self.diag(line, format!("{name} option '{opt}' ignored"));
            }
            rest = &rest[1..];
        }
        // initrd takes several files; module takes one file and its arguments.
        let (files, margs): (&[String], String) = if is_initrd {
            (rest, String::new())
        } else {
            match rest.split_first() {
                Some((f, a)) => (core::slice::from_ref(f), a.join(" ")),
                None => (&[], String::new()),
            }
        };
        if files.is_empty() {
            return self.diag(line, format!("{name} without a file, skipped"));
        }
        if self.current_entry().is_some_and(|e| e.kernel.is_none()) {
            self.diag(line, format!("'{name}' before the kernel; GRUB would refuse it, pvboot keeps it"));
        }
        let mut refs = Vec::new();
        for f in files {
            match grub_file(f, false) {
                Ok(r) => refs.push(r),
                Err(e) => return self.diag(line, format!("{name}: {e}, skipped")),
            }
        }
        let mut overflow = false;
        if let Some(e) = self.current_entry() {
            for file in refs {
                if e.modules.len() >= MAX_MODULES {
                    overflow = true;
                    break;
                }
                e.modules.push(ModuleRef { file, args: margs.clone(), decompress });
            }
        }
        if overflow {
            self.diag(line, format!("more than {MAX_MODULES} modules, the rest skipped"));
        }
    }

    fn finish(mut self) -> Menu {
        while let Some(frame) = self.frames.pop() {
            let line = frame.line();
            self.diag(line, "block not closed before the end of the file".to_string());
            self.finish_frame(frame);
        }
        if self.too_deep > 0 {
            self.diag(0, "blocks not closed before the end of the file".to_string());
        }
        if let Some((line, d)) = self.default.take() {
            self.resolve_default(line, &d);
        }
        self.menu
    }

    fn resolve_default(&mut self, line: usize, d: &str) {
        if d.is_empty() {
            return;
        }
        if let Some(n) = small_number(d) {
            return self.menu.set_default_index(self.file, line, n as usize);
        }
        let found = self.menu.find(d).or_else(|| {
            // An id path `submenu-id>entry-id`: the entry's id is enough.
            let last = d.rsplit('>').next().unwrap_or(d);
            self.menu.entries.iter().position(|e| e.id.as_deref() == Some(last))
        });
        match found {
            Some(i) => self.menu.default = i,
            None => self.diag(line, format!("default entry '{d}' not found; using the first")),
        }
    }
}

/// Evaluates `test` arguments pvboot understands.
fn test(args: &[String]) -> Option<bool> {
    // -o binds looser than -a; both need a test on each side.
    for op in ["-o", "-a"] {
        if let Some(i) = args.iter().rposition(|a| a == op).filter(|&i| i > 0 && i + 1 < args.len()) {
            let (l, r) = (test(&args[..i])?, test(&args[i + 1..])?);
            return Some(if op == "-o" { l || r } else { l && r });
        }
    }
    match args {
        [not, rest @ ..] if not == "!" => test(rest).map(|v| !v),
        [] => Some(false),
        [a] => Some(!a.is_empty()),
        [op, a] if op == "-n" => Some(!a.is_empty()),
        [op, a] if op == "-z" => Some(a.is_empty()),
        [a, op, b] if op == "=" || op == "==" => Some(a == b),
        [a, op, b] if op == "!=" => Some(a != b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(text: &str) -> Vec<(usize, Vec<String>)> {
        let mut l = Lexer { text: text.as_bytes(), pos: 0, line: 1, pending_close: None, unterminated: None, no_brace_before: 0 };
        let mut out = Vec::new();
        while let Some(c) = l.next_command() {
            let words = c
                .words
                .iter()
                .map(|w| {
                    w.pieces
                        .iter()
                        .map(|p| match p {
                            Piece::Lit(s) => s.clone(),
                            Piece::Var { name, quoted: true } => format!("<\"{name}\">"),
                            Piece::Var { name, quoted: false } => format!("<{name}>"),
                        })
                        .collect::<String>()
                })
                .collect();
            out.push((c.line, words));
        }
        out
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn lexes_quotes_escapes_and_variables() {
        let got = lex("set a='x y' b=\"$c d\" e\\ f ${g}h # comment\n  menuentry 'T' {\nlinux /v; initrd /i }\n");
        assert_eq!(got[0], (1, s(&["set", "a=x y", "b=<\"c\"> d", "e f", "<g>h"])));
        assert_eq!(got[1], (2, s(&["menuentry", "T", "{"])));
        assert_eq!(got[2], (3, s(&["linux", "/v"])));
        assert_eq!(got[3], (3, s(&["initrd", "/i"])));
        assert_eq!(got[4], (3, s(&["}"])));
        assert_eq!(got.len(), 5);
    }

    #[test]
    fn lexes_continuations_and_lone_dollars() {
        let got = lex("linux /v \\\n  quiet $ ${unclosed\nx\n");
        assert_eq!(got[0], (1, s(&["linux", "/v", "quiet", "$", "${unclosed"])));
        assert_eq!(got[1], (3, s(&["x"])));
    }

    #[test]
    fn tests_conditions() {
        assert_eq!(test(&s(&["x", "=", "xy"])), Some(false));
        assert_eq!(test(&s(&["xy", "==", "xy"])), Some(true));
        assert_eq!(test(&s(&["a", "!=", "b"])), Some(true));
        assert_eq!(test(&s(&["-z", ""])), Some(true));
        assert_eq!(test(&s(&["-n", ""])), Some(false));
        assert_eq!(test(&s(&[""])), Some(false));
        assert_eq!(test(&s(&["!", "a"])), Some(false));
        assert_eq!(test(&s(&["-s", "/grubenv"])), None);
        assert_eq!(test(&s(&["a", "=", "b", "-a", "-f", "x"])), None);
        assert_eq!(test(&s(&["a", "=", "b", "-a", "c"])), Some(false));
        assert_eq!(test(&s(&["a", "=", "b", "-o", "c"])), Some(true));
        assert_eq!(test(&s(&["a", "-o", "", "-a", "b"])), Some(true), "-a binds tighter");
        assert_eq!(test(&s(&["", "-o", "b", "-a", ""])), Some(false));
    }
}
