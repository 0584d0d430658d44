//! xl.cfg(5) parsing: the domain configuration `xenolith create` reads.
//!
//! Two layers, as in Xen's toolstack:
//!
//! * [`Settings`] is libxlu's generic syntax (tools/libs/util/libxlu_cfg_l.l
//!   and libxlu_cfg_y.y): `key = value` and `key += value` settings separated
//!   by new lines or `;`, where a value is an atom (a quoted string or a bare
//!   number, both kept as text, exactly as libxlu does) or a `[ ... ]` list
//!   of values that may span lines, nest, and end with a trailing comma.
//!   `#` starts a comment that runs to the end of the line. The last setting
//!   of a key wins; `+=` concatenates to the previous value of the same key
//!   (strings are joined, lists appended).
//! * [`DomainConfig`] is xl's interpretation (tools/xl/xl_parse.c,
//!   `parse_config_data`) of the keys Xenolith uses, with xl's defaults.
//!
//! Command-line overrides (`xenolith create -c guest.cfg memory=512`) are
//! parsed with the same grammar after the file, as xl appends them to the
//! file's text; they are reported as coming from the command line. Unlike
//! xl, each argument is parsed on its own, so one argument cannot continue a
//! list opened by another.
//!
//! Deliberate divergences from libxlu, each accepting a little more or
//! reporting better, never changing the meaning of a file xl accepts:
//! * `\r\n` line ends are accepted (libxlu reports a lexical error);
//! * a comment on the last line without a final new line is accepted;
//! * `\xHH` and `\ooo` escapes produce the byte they name (libxlu's
//!   implementation of them is broken: it rejects `\x` and drops the byte);
//! * a string setting given a list, or a list setting given a string, is an
//!   error (xl prints a warning and ignores the setting);
//! * the first error stops parsing (libxlu reports every error it finds).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::input::{self, InputError};

pub use crate::origin::Origin;

/// A syntax error: the text is not xl.cfg syntax.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    /// A quote without its closing quote on the same line.
    #[error("unterminated string")]
    UnterminatedString,
    /// A `[` without its `]` before the end of the input.
    #[error("unterminated list (missing `]`)")]
    UnterminatedList,
    /// A character that cannot start a token.
    #[error("unexpected character {found}{hint}")]
    UnexpectedChar {
        /// The character, quoted, or its byte value.
        found: String,
        /// Why it might be there, if we can guess.
        hint: &'static str,
    },
    /// A backslash escape libxlu does not know.
    #[error("invalid escape `\\{0}` in string")]
    BadEscape(String),
    /// A string whose bytes (after escapes) are not UTF-8.
    #[error("string is not valid UTF-8")]
    NotUtf8,
    /// A statement that does not start with a key.
    #[error("expected a setting name, found {0}")]
    ExpectedKey(String),
    /// A key not followed by `=` or `+=`.
    #[error("expected `=` after `{key}`, found {found}")]
    ExpectedAssign {
        /// The key.
        key: String,
        /// What came instead.
        found: String,
    },
    /// `=` not followed by a value.
    #[error("expected a value, found {0}")]
    ExpectedValue(String),
    /// A value followed by something other than the end of the line or `;`.
    #[error("expected a new line or `;` after the value of `{key}`, found {found}")]
    ExpectedEnd {
        /// The key being set.
        key: String,
        /// What came instead.
        found: String,
    },
    /// A list item followed by something other than `,` or `]`.
    #[error("expected `,` or `]` in list, found {0}")]
    ExpectedCommaOrBracket(String),
    /// Lists nested deeper than [`MAX_LIST_DEPTH`].
    #[error("lists nested more than {MAX_LIST_DEPTH} deep")]
    TooDeep,
}

/// What is wrong with the value of a key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A number was expected.
    #[error("expected a number, found {0}")]
    ExpectedNumber(String),
    /// A number that does not fit in a C `long`, as xl reads it.
    #[error("number {0} is out of range")]
    NumberOutOfRange(String),
    /// A single value was expected, not a list.
    #[error("expected a string, found a list")]
    ExpectedString,
    /// A list was expected.
    #[error("expected a list, found {0}")]
    ExpectedList(String),
    /// A list of strings contains a list.
    #[error("item {0} of the list is a list; expected a string")]
    NestedList(usize),
    /// `key += number`: xl refuses it too.
    #[error("can't use += with a number")]
    AppendToNumber,
    /// `key += [list]` after `key = "string"`, or the reverse.
    #[error("can't add a list to a string or a string to a list")]
    AppendMismatch,
    /// An empty string where a name or path is needed.
    #[error("must not be empty")]
    Empty,
    /// A malformed UUID.
    #[error("{0} is not a UUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")]
    BadUuid(String),
    /// A `type` xl does not know.
    #[error("unknown domain type {0} (expected \"pvh\", \"pv\" or \"hvm\")")]
    UnknownType(String),
    /// A `builder` xl does not know.
    #[error("unknown builder {0} (expected \"generic\" or \"hvm\")")]
    UnknownBuilder(String),
    /// A guest type Xenolith does not run.
    #[error("{0} guests are not supported: Xenolith runs only type = \"pvh\"")]
    UnsupportedType(&'static str),
    /// Two settings choose different guest types; names the other one as
    /// `key = value`.
    #[error("contradicts {0}")]
    Contradicts(String),
    /// An `on_*` action xl does not know.
    #[error(
        "unknown action {0} (expected destroy, restart, rename-restart, preserve, \
         coredump-destroy, coredump-restart or soft-reset)"
    )]
    UnknownAction(String),
    /// A memory size outside what Xenolith can give a guest.
    #[error("{0} MiB is out of range (1 to {MAX_MEMORY_MIB} MiB)")]
    MemoryOutOfRange(i64),
    /// `maxmem` below `memory`.
    #[error("{maxmem} MiB is less than memory ({memory} MiB)")]
    MaxmemBelowMemory {
        /// The maxmem value.
        maxmem: u64,
        /// The memory value.
        memory: u64,
    },
    /// More vCPUs than Xenolith runs.
    #[error("{0} vCPUs requested; Xenolith supports up to {MAX_VCPUS}")]
    TooManyVcpus(i64),
    /// A NUL byte, which no kernel command line or file name can carry;
    /// the value is shown escaped.
    #[error("contains a NUL byte at byte {at} ({shown})")]
    ContainsNul {
        /// Its byte offset in the value.
        at: usize,
        /// The value, escaped (`\\0` for the NUL).
        shown: String,
    },
    /// An `on_*` action xl knows that Xenolith does not carry out.
    #[error("{0}: {1}")]
    UnsupportedAction(ShutdownAction, &'static str),
    /// A `vif` entry that is not valid (or asks for what Xenolith does not do).
    #[error("'{spec}': {why}")]
    Vif {
        /// The entry, escaped.
        spec: String,
        /// What is wrong.
        why: String,
    },
    /// `maxvcpus` below `vcpus`.
    #[error("{maxvcpus} is less than vcpus ({vcpus})")]
    MaxvcpusBelowVcpus {
        /// The maxvcpus value.
        maxvcpus: i64,
        /// The vcpus value.
        vcpus: u32,
    },
}

/// Why a domain configuration cannot be used. Displays as one line naming
/// the file (and line) and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read: missing, not a regular file, or
    /// larger than [`MAX_CONFIG_BYTES`].
    #[error(transparent)]
    Read(#[from] InputError),
    /// The text is not xl.cfg syntax.
    #[error("{at}: syntax error: {error}")]
    Syntax {
        /// Where.
        at: Origin,
        /// What.
        error: SyntaxError,
    },
    /// A key has a value xl (or Xenolith) does not accept.
    #[error("{at}: {key}: {problem}")]
    Invalid {
        /// Where the value was set.
        at: Origin,
        /// The key.
        key: String,
        /// What is wrong.
        problem: Problem,
    },
    /// A required key is absent.
    #[error("{file}: {key}: missing ({why})")]
    Missing {
        /// The config file name as given.
        file: String,
        /// The key.
        key: &'static str,
        /// Why it is required.
        why: &'static str,
    },
}

impl ConfigError {
    /// An error about `key`'s value, for later parsers of raw settings (disk
    /// and vif specs) to report in the same form.
    pub fn invalid(at: &Origin, key: &str, problem: Problem) -> Self {
        ConfigError::Invalid {
            at: at.clone(),
            key: key.to_owned(),
            problem,
        }
    }
}

/// Something in the configuration Xenolith ignores or reinterprets; the CLI
/// logs these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning {
    /// A key this parser does not know; xl ignores unknown keys silently.
    UnknownKey {
        /// The key.
        key: String,
        /// Where it was (last) set.
        at: Origin,
    },
    /// `cmdline` is set, so `root` and `extra` are ignored (as xl does).
    CmdlineWins {
        /// Where `cmdline` was set.
        at: Origin,
    },
    /// No guest type given: xl would build a PV guest; we build PVH.
    DefaultType {
        /// The config file name.
        file: String,
    },
    /// The pre-4.10 `pvh = 1` form.
    DeprecatedPvh {
        /// Where it was set.
        at: Origin,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::UnknownKey { key, at } => write!(f, "{at}: ignoring unknown setting `{key}`"),
            Warning::CmdlineWins { at } => {
                write!(f, "{at}: cmdline: ignoring root and extra in favour of cmdline")
            }
            Warning::DefaultType { file } => write!(
                f,
                "{file}: type: not set; xl would default to \"pv\", Xenolith runs the guest as \"pvh\""
            ),
            Warning::DeprecatedPvh { at } => {
                write!(f, "{at}: pvh: deprecated (Xen 4.9 and older); use type = \"pvh\"")
            }
        }
    }
}

/// The largest config file read (1 MiB): real ones are a few hundred bytes,
/// and parsing is linear, so this bounds the time and memory spent on one.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Lists nested deeper than this are refused, so hostile input cannot
/// exhaust the stack of the recursive parser.
pub const MAX_LIST_DEPTH: usize = 32;
/// The largest `memory`/`maxmem` accepted, in MiB (1 TiB): far beyond any
/// test guest, and small enough that byte sizes never overflow.
pub const MAX_MEMORY_MIB: i64 = 1 << 20;
/// libxl's default memory size in MiB (libxl__domain_build_info_setdefault:
/// max_memkb defaults to 32 MiB, and target_memkb to max_memkb).
pub const DEFAULT_MEMORY_MIB: u64 = 32;
/// The most vCPUs a guest can have: those whose vcpu_info fits in shared
/// info (XEN_LEGACY_MAX_VCPUS), each a KVM vCPU with its own thread.
pub const MAX_VCPUS: u32 = 32;

/// A value as libxlu stores it: numbers and strings are both text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A quoted string (escapes resolved) or a bare number, as written.
    Atom(String),
    /// A `[ ... ]` list.
    List(Vec<Value>),
}

impl Value {
    /// How error messages show the value: atoms quoted, lists summarised.
    fn describe(&self) -> String {
        match self {
            Value::Atom(s) => format!("{s:?}"),
            Value::List(_) => "a list".to_owned(),
        }
    }
}

/// One key's value and where it was last set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The value, after any `+=` concatenation.
    pub value: Value,
    /// Where it was last set.
    pub origin: Origin,
    /// Whether the last setting used `+=` (xl then refuses to read a number).
    pub appended: bool,
}

/// Parsed xl.cfg settings, before interpretation: libxlu's layer.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Keys in order of first appearance, so warnings come in file order.
    order: Vec<String>,
    map: HashMap<String, Setting>,
}

/// Which text is being parsed, to build [`Origin`]s.
#[derive(Clone, Copy)]
enum Src<'a> {
    File(&'a str),
    Arg(&'a str),
}

impl Src<'_> {
    fn at(self, line: u32) -> Origin {
        match self {
            Src::File(file) => Origin::File {
                file: file.to_owned(),
                line,
            },
            Src::Arg(arg) => Origin::CommandLine {
                arg: arg.to_owned(),
            },
        }
    }
}

impl Settings {
    /// Parses a config file's text; `file` names it in messages.
    pub fn parse_file(&mut self, text: &[u8], file: &str) -> Result<(), ConfigError> {
        Parser::new(text, Src::File(file)).run(self)
    }

    /// Parses one command-line override (`key=value`, or several separated
    /// by `;`), applied after what was parsed before.
    pub fn parse_override(&mut self, arg: &str) -> Result<(), ConfigError> {
        Parser::new(arg.as_bytes(), Src::Arg(arg)).run(self)
    }

    /// The setting of `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Setting> {
        self.map.get(key)
    }

    /// The keys set, in order of first appearance.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// Records `key = value` or `key += value` (libxlu's xlu__cfg_set_store).
    ///
    /// `+=` extends the stored value in place, so a file of n appends takes
    /// time linear in its length (copying the value on each append made it
    /// quadratic: 2.6 MB of `extra += "x"` took seconds).
    fn store(
        &mut self,
        key: String,
        value: Value,
        origin: Origin,
        append: bool,
    ) -> Result<(), ConfigError> {
        if let Some(prev) = self.map.get_mut(&key) {
            if append {
                match (&mut prev.value, value) {
                    (Value::Atom(p), Value::Atom(s)) => p.push_str(&s),
                    (Value::List(p), Value::List(items)) => p.extend(items),
                    _ => {
                        return Err(ConfigError::Invalid {
                            at: origin,
                            key,
                            problem: Problem::AppendMismatch,
                        })
                    }
                }
            } else {
                prev.value = value;
            }
            prev.origin = origin;
            prev.appended = append;
            return Ok(());
        }
        self.order.push(key.clone());
        self.map.insert(
            key,
            Setting {
                value,
                origin,
                appended: append,
            },
        );
        Ok(())
    }

    /// The string value of `key`, or an error if it is a list.
    fn string(&self, key: &str) -> Result<Option<(&str, &Origin)>, ConfigError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Setting {
                value: Value::Atom(s),
                origin,
                ..
            }) => Ok(Some((s, origin))),
            Some(Setting { origin, .. }) => {
                Err(ConfigError::invalid(origin, key, Problem::ExpectedString))
            }
        }
    }

    /// The numeric value of `key`, read as xl does (C `strtol` with base 0:
    /// decimal, 0x hex, or leading-0 octal; surrounding text refused).
    fn number(&self, key: &str) -> Result<Option<(i64, &Origin)>, ConfigError> {
        let Some((text, origin)) = self.string(key)? else {
            return Ok(None);
        };
        if self.map[key].appended {
            return Err(ConfigError::invalid(origin, key, Problem::AppendToNumber));
        }
        match parse_c_long(text) {
            Ok(n) => Ok(Some((n, origin))),
            Err(problem) => Err(ConfigError::invalid(origin, key, problem)),
        }
    }

    /// The value of `key` as a list of strings.
    fn string_list(&self, key: &str) -> Result<Option<(Vec<String>, &Origin)>, ConfigError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Setting {
                value: Value::List(items),
                origin,
                ..
            }) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::Atom(s) => out.push(s.clone()),
                        Value::List(_) => {
                            return Err(ConfigError::invalid(
                                origin,
                                key,
                                Problem::NestedList(i + 1),
                            ))
                        }
                    }
                }
                Ok(Some((out, origin)))
            }
            Some(Setting { value, origin, .. }) => Err(ConfigError::invalid(
                origin,
                key,
                Problem::ExpectedList(value.describe()),
            )),
        }
    }
}

/// `strtol(text, &end, 0)` that must consume all of `text`, as
/// xlu_cfg_get_long requires.
fn parse_c_long(text: &str) -> Result<i64, Problem> {
    let bad = || Problem::ExpectedNumber(format!("{text:?}"));
    // strtol skips leading isspace().
    let s = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = if (s.starts_with("0x") || s.starts_with("0X"))
        && s.as_bytes().get(2).is_some_and(u8::is_ascii_hexdigit)
    {
        (16, &s[2..])
    } else if s.starts_with('0') {
        (8, s)
    } else {
        (10, s)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(bad());
    }
    // Accumulate negatively so i64::MIN parses, as strtol's LONG_MIN does.
    let mut value: i64 = 0;
    for c in digits.chars() {
        let d = i64::from(c.to_digit(radix).unwrap_or(0));
        value = value
            .checked_mul(i64::from(radix))
            .and_then(|v| v.checked_sub(d))
            .ok_or_else(|| Problem::NumberOutOfRange(format!("{text:?}")))?;
    }
    if negative {
        Ok(value)
    } else {
        value
            .checked_neg()
            .ok_or_else(|| Problem::NumberOutOfRange(format!("{text:?}")))
    }
}

/// A token of libxlu's lexer.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Number(String),
    Str(String),
    Comma,
    LBracket,
    RBracket,
    Assign,
    Append,
    Semi,
    Newline,
    Eof,
}

impl Tok {
    /// How error messages name the token.
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) | Tok::Number(s) => format!("`{s}`"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Comma => "`,`".to_owned(),
            Tok::LBracket => "`[`".to_owned(),
            Tok::RBracket => "`]`".to_owned(),
            Tok::Assign => "`=`".to_owned(),
            Tok::Append => "`+=`".to_owned(),
            Tok::Semi => "`;`".to_owned(),
            Tok::Newline => "end of line".to_owned(),
            Tok::Eof => "end of input".to_owned(),
        }
    }
}

/// libxlu_cfg_l.l, by hand.
struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    line: u32,
}

impl<'a> Lexer<'a> {
    fn peek_byte(&self, ahead: usize) -> Option<u8> {
        self.src.get(self.pos.checked_add(ahead)?).copied()
    }

    /// The next token and the line it starts on.
    fn next(&mut self) -> Result<(Tok, u32), (SyntaxError, u32)> {
        loop {
            let line = self.line;
            let Some(c) = self.peek_byte(0) else {
                return Ok((Tok::Eof, line));
            };
            let single = |t| Ok((t, line));
            match c {
                b' ' | b'\t' => self.pos += 1,
                b'\r' if self.peek_byte(1) == Some(b'\n') => self.pos += 1,
                b'\n' => {
                    self.pos += 1;
                    self.line = self.line.saturating_add(1);
                    return single(Tok::Newline);
                }
                // The new line ending a comment is a token of its own, so a
                // comment after a value ends the setting, as in libxlu.
                b'#' => {
                    while self.peek_byte(0).is_some_and(|b| b != b'\n') {
                        self.pos += 1;
                    }
                }
                b'a'..=b'z' => {
                    let text =
                        self.take_while(|b| matches!(b, b'.' | b'_' | b'0'..=b'9' | b'a'..=b'z'));
                    return single(Tok::Ident(text));
                }
                b'0'..=b'9' => {
                    let text = self.take_while(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'x'));
                    return single(Tok::Number(text));
                }
                b'"' | b'\'' => {
                    return self
                        .string(c)
                        .map(|s| (Tok::Str(s), line))
                        .map_err(|e| (e, line))
                }
                b',' => return self.punct(Tok::Comma, 1, line),
                b'[' => return self.punct(Tok::LBracket, 1, line),
                b']' => return self.punct(Tok::RBracket, 1, line),
                b'=' => return self.punct(Tok::Assign, 1, line),
                b';' => return self.punct(Tok::Semi, 1, line),
                b'+' if self.peek_byte(1) == Some(b'=') => return self.punct(Tok::Append, 2, line),
                _ => {
                    let found = if c.is_ascii_graphic() {
                        format!("`{}`", c as char)
                    } else {
                        format!("byte {c:#04x}")
                    };
                    // libxlu flags these as signs of a Python-era config.
                    let hint = match c {
                        b'+' | b'-' | b'.' | b'(' | b')' | b':' => {
                            " (xl.cfg is not Python: quote values that are not plain numbers)"
                        }
                        b'A'..=b'Z' => " (xl.cfg keys and numbers are lower case)",
                        _ => "",
                    };
                    return Err((SyntaxError::UnexpectedChar { found, hint }, line));
                }
            }
        }
    }

    fn punct(&mut self, tok: Tok, len: usize, line: u32) -> Result<(Tok, u32), (SyntaxError, u32)> {
        self.pos += len;
        Ok((tok, line))
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> String {
        let start = self.pos;
        while self.peek_byte(0).is_some_and(&f) {
            self.pos += 1;
        }
        // Only ASCII bytes were taken.
        String::from_utf8_lossy(&self.src[start..self.pos]).into_owned()
    }

    /// A quoted string, with libxlu's escapes (xlu__cfgl_dequote).
    fn string(&mut self, quote: u8) -> Result<String, SyntaxError> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let c = match self.peek_byte(0) {
                None | Some(b'\n') => return Err(SyntaxError::UnterminatedString),
                Some(c) => c,
            };
            self.pos += 1;
            if c == quote {
                break;
            }
            if c != b'\\' {
                out.push(c);
                continue;
            }
            let e = match self.peek_byte(0) {
                None | Some(b'\n') => return Err(SyntaxError::UnterminatedString),
                Some(e) => e,
            };
            self.pos += 1;
            let byte = match e {
                b'"' | b'\'' | b'\\' => e,
                b'a' => 0x07,
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'v' => 0x0b,
                b'x' => {
                    let digits = [self.peek_byte(0), self.peek_byte(1)];
                    match digits {
                        [Some(h), Some(l)] if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                            self.pos += 2;
                            hex_value(h) * 16 + hex_value(l)
                        }
                        _ => return Err(SyntaxError::BadEscape(self.escape_text(e))),
                    }
                }
                b'0'..=b'7' => {
                    let mut value = u32::from(e - b'0');
                    for _ in 0..2 {
                        match self.peek_byte(0) {
                            Some(d @ b'0'..=b'7') => {
                                value = value * 8 + u32::from(d - b'0');
                                self.pos += 1;
                            }
                            _ => break,
                        }
                    }
                    u8::try_from(value).map_err(|_| SyntaxError::BadEscape(format!("{value:o}")))?
                }
                _ => return Err(SyntaxError::BadEscape(self.escape_text(e))),
            };
            out.push(byte);
        }
        String::from_utf8(out).map_err(|_| SyntaxError::NotUtf8)
    }

    /// The escape `\e...` as written, for error messages.
    fn escape_text(&self, e: u8) -> String {
        if e.is_ascii_graphic() {
            let mut s = String::from(e as char);
            if e == b'x' {
                for b in self.src[self.pos..]
                    .iter()
                    .take(2)
                    .take_while(|b| b.is_ascii_graphic())
                {
                    s.push(*b as char);
                }
            }
            s
        } else {
            format!("<byte {e:#04x}>")
        }
    }
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b.to_ascii_lowercase().wrapping_sub(b'a').wrapping_add(10),
    }
}

/// libxlu_cfg_y.y, by hand (recursive descent over the same grammar).
struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<(Tok, u32)>,
    src: Src<'a>,
}

impl<'a> Parser<'a> {
    fn new(text: &'a [u8], src: Src<'a>) -> Self {
        Parser {
            lexer: Lexer {
                src: text,
                pos: 0,
                line: 1,
            },
            peeked: None,
            src,
        }
    }

    fn syntax(&self, error: SyntaxError, line: u32) -> ConfigError {
        ConfigError::Syntax {
            at: self.src.at(line),
            error,
        }
    }

    fn next(&mut self) -> Result<(Tok, u32), ConfigError> {
        if let Some(t) = self.peeked.take() {
            return Ok(t);
        }
        self.lexer.next().map_err(|(e, line)| self.syntax(e, line))
    }

    fn peek(&mut self) -> Result<&Tok, ConfigError> {
        if self.peeked.is_none() {
            let t = self.next()?;
            self.peeked = Some(t);
        }
        Ok(&self.peeked.as_ref().expect("just filled").0)
    }

    fn skip_newlines(&mut self) -> Result<(), ConfigError> {
        while *self.peek()? == Tok::Newline {
            self.next()?;
        }
        Ok(())
    }

    /// `file: stmts | stmts assignment` — the last setting needs no new line.
    fn run(mut self, settings: &mut Settings) -> Result<(), ConfigError> {
        loop {
            let (tok, line) = self.next()?;
            let key = match tok {
                Tok::Newline | Tok::Semi => continue,
                Tok::Eof => return Ok(()),
                Tok::Ident(key) => key,
                other => return Err(self.syntax(SyntaxError::ExpectedKey(other.describe()), line)),
            };
            let (op, op_line) = self.next()?;
            let append = match op {
                Tok::Assign => false,
                Tok::Append => true,
                other => {
                    let error = SyntaxError::ExpectedAssign {
                        key,
                        found: other.describe(),
                    };
                    return Err(self.syntax(error, op_line));
                }
            };
            let value = self.value(0)?;
            let (end, end_line) = self.next()?;
            match end {
                Tok::Newline | Tok::Semi | Tok::Eof => {}
                other => {
                    let error = SyntaxError::ExpectedEnd {
                        key,
                        found: other.describe(),
                    };
                    return Err(self.syntax(error, end_line));
                }
            }
            settings.store(key, value, self.src.at(line), append)?;
            if end == Tok::Eof {
                return Ok(());
            }
        }
    }

    /// `value: atom | '[' nlok valuelist ']'`.
    fn value(&mut self, depth: usize) -> Result<Value, ConfigError> {
        let (tok, line) = self.next()?;
        match tok {
            Tok::Number(s) | Tok::Str(s) => Ok(Value::Atom(s)),
            Tok::LBracket => self.list(depth + 1, line),
            Tok::Eof if depth > 0 => Err(self.syntax(SyntaxError::UnterminatedList, line)),
            other => Err(self.syntax(SyntaxError::ExpectedValue(other.describe()), line)),
        }
    }

    /// The rest of a list after its `[` (on `open_line`): values separated
    /// by commas, new lines anywhere between, a trailing comma allowed.
    fn list(&mut self, depth: usize, open_line: u32) -> Result<Value, ConfigError> {
        if depth > MAX_LIST_DEPTH {
            return Err(self.syntax(SyntaxError::TooDeep, open_line));
        }
        let mut items = Vec::new();
        self.skip_newlines()?;
        if *self.peek()? == Tok::RBracket {
            self.next()?;
            return Ok(Value::List(items));
        }
        loop {
            if *self.peek()? == Tok::Eof {
                return Err(self.syntax(SyntaxError::UnterminatedList, open_line));
            }
            items.push(self.value(depth)?);
            self.skip_newlines()?;
            let (tok, line) = self.next()?;
            match tok {
                Tok::RBracket => return Ok(Value::List(items)),
                Tok::Comma => {
                    self.skip_newlines()?;
                    if *self.peek()? == Tok::RBracket {
                        self.next()?;
                        return Ok(Value::List(items));
                    }
                }
                Tok::Eof => return Err(self.syntax(SyntaxError::UnterminatedList, open_line)),
                other => {
                    return Err(
                        self.syntax(SyntaxError::ExpectedCommaOrBracket(other.describe()), line)
                    )
                }
            }
        }
    }
}

/// What a domain does when it stops (xl.cfg `on_poweroff` and friends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownAction {
    /// Destroy the domain.
    Destroy,
    /// Destroy it and create a new one from the same configuration.
    Restart,
    /// Rename the old domain, then restart.
    RenameRestart,
    /// Keep the domain for inspection.
    Preserve,
    /// Dump its core, then destroy it.
    CoredumpDestroy,
    /// Dump its core, then restart it.
    CoredumpRestart,
    /// Reset it in place, keeping its memory (kexec-style).
    SoftReset,
}

impl ShutdownAction {
    /// Every action, for lookup by name.
    pub const ALL: [ShutdownAction; 7] = [
        ShutdownAction::Destroy,
        ShutdownAction::Restart,
        ShutdownAction::RenameRestart,
        ShutdownAction::Preserve,
        ShutdownAction::CoredumpDestroy,
        ShutdownAction::CoredumpRestart,
        ShutdownAction::SoftReset,
    ];

    /// The xl.cfg name.
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownAction::Destroy => "destroy",
            ShutdownAction::Restart => "restart",
            ShutdownAction::RenameRestart => "rename-restart",
            ShutdownAction::Preserve => "preserve",
            ShutdownAction::CoredumpDestroy => "coredump-destroy",
            ShutdownAction::CoredumpRestart => "coredump-restart",
            ShutdownAction::SoftReset => "soft-reset",
        }
    }

    /// Whether the domain is built again afterwards.
    pub fn restarts(self) -> bool {
        matches!(
            self,
            ShutdownAction::Restart
                | ShutdownAction::RenameRestart
                | ShutdownAction::CoredumpRestart
        )
    }

    /// Why Xenolith cannot carry out this action, if it cannot: it writes
    /// no core dumps (`coredump-*`), and a soft reset needs the domain's
    /// memory kept across a rebuild, which `restart` does not do.
    /// `preserve` and `rename-restart` keep the old domain in the host
    /// service (`xenolith create`); `xenolith run` refuses `preserve`
    /// ([`DomainConfig::preserving_key`]) and restarts on `rename-restart`.
    pub fn unsupported(self) -> Option<&'static str> {
        match self {
            ShutdownAction::Destroy | ShutdownAction::Restart | ShutdownAction::RenameRestart | ShutdownAction::Preserve => None,
            ShutdownAction::CoredumpDestroy | ShutdownAction::CoredumpRestart => {
                Some("not supported: Xenolith writes no core dumps (use destroy or restart)")
            }
            ShutdownAction::SoftReset => Some("not supported: Xenolith cannot reset a domain in place (use destroy or restart)"),
        }
    }

    /// Whether the stopped domain is kept (renamed, listed as shut down
    /// until destroyed), as xl's preserve_domain does.
    pub fn preserves(self) -> bool {
        matches!(self, ShutdownAction::Preserve | ShutdownAction::RenameRestart)
    }

    /// The action named `name` exactly, as xl's parse_action_on_shutdown.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// Short name for [`ShutdownAction`].
pub type Action = ShutdownAction;

impl fmt::Display for ShutdownAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A domain UUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// Parses the 36-character hyphenated form, either case (as uuid_parse).
    pub fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() != 36 {
            return None;
        }
        let mut out = [0u8; 16];
        let mut n = 0;
        let mut i = 0;
        while i < 36 {
            if matches!(i, 8 | 13 | 18 | 23) {
                if b[i] != b'-' {
                    return None;
                }
                i += 1;
                continue;
            }
            let (h, l) = (b[i], b[i + 1]);
            if !h.is_ascii_hexdigit() || !l.is_ascii_hexdigit() {
                return None;
            }
            out[n] = hex_value(h.to_ascii_lowercase()) * 16 + hex_value(l.to_ascii_lowercase());
            n += 1;
            i += 2;
        }
        Some(Uuid(out))
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The guest types xl knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GuestType {
    Pv,
    Pvh,
    Hvm,
}

/// Keys [`DomainConfig`] reads; any other key draws a [`Warning::UnknownKey`].
pub const KNOWN_KEYS: &[&str] = &[
    "name",
    "uuid",
    "type",
    "builder",
    "pvh",
    "kernel",
    "ramdisk",
    "cmdline",
    "root",
    "extra",
    "memory",
    "maxmem",
    "vcpus",
    "maxvcpus",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "on_watchdog",
    "on_soft_reset",
    "disk",
    "vif",
];

/// A PVH domain's configuration, as xl would build it from an xl.cfg file.
#[derive(Clone, Debug)]
pub struct DomainConfig {
    /// The config file name as given, for messages.
    pub file: String,
    /// `name`: required, as in xl.
    pub name: String,
    /// `uuid`; `None` means the toolstack generates one, as xl does.
    pub uuid: Option<Uuid>,
    /// `kernel`: the PVH kernel image, relative to the current directory as
    /// in xl (not to the config file).
    pub kernel: PathBuf,
    /// `ramdisk`: an initial ramdisk, passed to the guest as a module.
    pub ramdisk: Option<PathBuf>,
    /// The guest command line: `cmdline`, else `root=ROOT EXTRA` from `root`
    /// and `extra` (xl's parse_cmdline), else none.
    pub cmdline: Option<String>,
    /// `memory` in MiB (default [`DEFAULT_MEMORY_MIB`]).
    pub memory_mib: u64,
    /// `maxmem` in MiB (default: `memory`); never below `memory`.
    pub maxmem_mib: u64,
    /// `vcpus` (default 1; values below 1 mean 1, as in xl).
    pub vcpus: u32,
    /// `maxvcpus` (default: `vcpus`).
    pub max_vcpus: u32,
    /// `on_poweroff` (default destroy).
    pub on_poweroff: ShutdownAction,
    /// `on_reboot` (default restart).
    pub on_reboot: ShutdownAction,
    /// `on_crash` (default destroy).
    pub on_crash: ShutdownAction,
    /// `on_watchdog` (default destroy).
    pub on_watchdog: ShutdownAction,
    /// `on_soft_reset` (default soft-reset).
    pub on_soft_reset: ShutdownAction,
    /// `disk`: raw disk specs (xl-disk-configuration(5)), parsed later.
    pub disks: Vec<String>,
    /// `vif`: raw network interface specs (xl-network-configuration(5)).
    pub vifs: Vec<String>,
    /// Things ignored or reinterpreted, for the CLI to log.
    pub warnings: Vec<Warning>,
    /// Every setting, for [`DomainConfig::origin`] and later parsers.
    pub settings: Settings,
}

impl DomainConfig {
    /// Reads and interprets the config file at `path`, then the command-line
    /// `overrides` (`key=value` strings) on top of it.
    pub fn load<S: AsRef<str>>(
        path: impl AsRef<Path>,
        overrides: &[S],
    ) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = input::read_regular_file(path, "config file", MAX_CONFIG_BYTES)?;
        Self::parse(&text, &path.display().to_string(), overrides)
    }

    /// Interprets config text; `file` names it in messages.
    pub fn parse<S: AsRef<str>>(
        text: &[u8],
        file: &str,
        overrides: &[S],
    ) -> Result<Self, ConfigError> {
        let mut settings = Settings::default();
        settings.parse_file(text, file)?;
        for arg in overrides {
            settings.parse_override(arg.as_ref())?;
        }
        Self::from_settings(settings, file)
    }

    /// The first `on_*` key set to `preserve`, which only the host service
    /// can carry out (a domain kept after its run).
    pub fn preserving_key(&self) -> Option<&'static str> {
        [("on_poweroff", self.on_poweroff), ("on_reboot", self.on_reboot), ("on_crash", self.on_crash), ("on_watchdog", self.on_watchdog)]
            .into_iter()
            .find(|(_, a)| *a == ShutdownAction::Preserve)
            .map(|(k, _)| k)
    }

    /// Where `key` was last set, to report errors about its value.
    pub fn origin(&self, key: &str) -> Option<&Origin> {
        self.settings.get(key).map(|s| &s.origin)
    }

    /// xl's parse_config_data, for the keys Xenolith uses.
    pub fn from_settings(settings: Settings, file: &str) -> Result<Self, ConfigError> {
        let mut warnings = Vec::new();
        let s = &settings;

        check_guest_type(s, file, &mut warnings)?;

        let name = match s.string("name")? {
            None => return Err(missing(file, "name", "every domain needs a name")),
            Some(("", at)) => return Err(ConfigError::invalid(at, "name", Problem::Empty)),
            Some((name, at)) => {
                no_nul(name, at, "name")?;
                name.to_owned()
            }
        };
        let uuid = match s.string("uuid")? {
            None => None,
            Some((text, at)) => Some(Uuid::parse(text).ok_or_else(|| {
                ConfigError::invalid(at, "uuid", Problem::BadUuid(format!("{text:?}")))
            })?),
        };
        let kernel = match s.string("kernel")? {
            None => return Err(missing(file, "kernel", "required for type \"pvh\"")),
            Some(("", at)) => return Err(ConfigError::invalid(at, "kernel", Problem::Empty)),
            Some((path, at)) => {
                no_nul(path, at, "kernel")?;
                PathBuf::from(path)
            }
        };
        let ramdisk = match s.string("ramdisk")? {
            None => None,
            Some(("", at)) => return Err(ConfigError::invalid(at, "ramdisk", Problem::Empty)),
            Some((path, at)) => {
                no_nul(path, at, "ramdisk")?;
                Some(PathBuf::from(path))
            }
        };
        let cmdline = build_cmdline(s, &mut warnings)?;

        let memory_mib = match s.number("memory")? {
            None => DEFAULT_MEMORY_MIB,
            Some((n, at)) => memory_size(n, at, "memory")?,
        };
        let maxmem_mib = match s.number("maxmem")? {
            None => memory_mib,
            Some((n, at)) => {
                let maxmem = memory_size(n, at, "maxmem")?;
                if maxmem < memory_mib {
                    let problem = Problem::MaxmemBelowMemory {
                        maxmem,
                        memory: memory_mib,
                    };
                    return Err(ConfigError::invalid(at, "maxmem", problem));
                }
                maxmem
            }
        };

        let vcpus = match s.number("vcpus")? {
            None => 1,
            // xl: "Default to 1 vCPU" when vcpus < 1.
            Some((n, _)) if n < 1 => 1,
            Some((n, at)) => vcpu_count(n, at, "vcpus")?,
        };
        let max_vcpus = match s.number("maxvcpus")? {
            // xl: max_vcpus == 0 means "same as vcpus".
            None => vcpus,
            Some((0, _)) => vcpus,
            Some((n, at)) if n < i64::from(vcpus) => {
                let problem = Problem::MaxvcpusBelowVcpus { maxvcpus: n, vcpus };
                return Err(ConfigError::invalid(at, "maxvcpus", problem));
            }
            Some((n, at)) => vcpu_count(n, at, "maxvcpus")?,
        };

        // An action xl knows but Xenolith cannot carry out is refused here,
        // not ignored when the domain stops. on_soft_reset keeps xl's
        // default, soft-reset: the run reports a soft reset it cannot do.
        let action = |key: &str, default: ShutdownAction| -> Result<ShutdownAction, ConfigError> {
            match s.string(key)? {
                None => Ok(default),
                Some((name, at)) => {
                    let a = ShutdownAction::from_name(name).ok_or_else(|| {
                        ConfigError::invalid(at, key, Problem::UnknownAction(format!("{name:?}")))
                    })?;
                    match a.unsupported() {
                        Some(why) if !(key == "on_soft_reset" && a == ShutdownAction::SoftReset) => {
                            Err(ConfigError::invalid(at, key, Problem::UnsupportedAction(a, why)))
                        }
                        _ => Ok(a),
                    }
                }
            }
        };
        let on_poweroff = action("on_poweroff", ShutdownAction::Destroy)?;
        let on_reboot = action("on_reboot", ShutdownAction::Restart)?;
        let on_crash = action("on_crash", ShutdownAction::Destroy)?;
        let on_watchdog = action("on_watchdog", ShutdownAction::Destroy)?;
        let on_soft_reset = action("on_soft_reset", ShutdownAction::SoftReset)?;

        let disks = match s.string_list("disk")? {
            None => Vec::new(),
            Some((list, at)) => {
                for d in &list {
                    no_nul(d, at, "disk")?;
                }
                list
            }
        };
        let vifs = match s.string_list("vif")? {
            None => Vec::new(),
            Some((list, at)) => {
                for (i, v) in list.iter().enumerate() {
                    check_vif(v, at, i)?;
                }
                list
            }
        };

        for key in s.keys() {
            if !KNOWN_KEYS.contains(&key) {
                warnings.push(Warning::UnknownKey {
                    key: key.to_owned(),
                    at: s.map[key].origin.clone(),
                });
            }
        }

        Ok(DomainConfig {
            file: file.to_owned(),
            name,
            uuid,
            kernel,
            ramdisk,
            cmdline,
            memory_mib,
            maxmem_mib,
            vcpus,
            max_vcpus,
            on_poweroff,
            on_reboot,
            on_crash,
            on_watchdog,
            on_soft_reset,
            disks,
            vifs,
            warnings,
            settings,
        })
    }
}

/// Refuses a NUL in `value`: no file name or kernel command line can carry
/// one, and caught later it would be reported against the kernel or the
/// image rather than this setting.
fn no_nul(value: &str, at: &Origin, key: &str) -> Result<(), ConfigError> {
    match value.find('\0') {
        None => Ok(()),
        Some(pos) => {
            let shown = value.escape_debug().to_string();
            Err(ConfigError::invalid(at, key, Problem::ContainsNul { at: pos, shown }))
        }
    }
}

/// A `vif` entry, checked as xl-network-configuration(5) reads it (the
/// network backend's own parser), so a bad key is reported with its
/// file and line; the host side (bridges, scripts, CAP_NET_ADMIN) is
/// checked when the domain is prepared.
fn check_vif(spec: &str, at: &Origin, index: usize) -> Result<(), ConfigError> {
    no_nul(spec, at, "vif")?;
    crate::backends::net::config::parse(spec, index as u32)
        .map(drop)
        .map_err(|e| ConfigError::invalid(at, "vif", Problem::Vif { spec: spec.escape_debug().to_string(), why: e.to_string() }))
}

fn missing(file: &str, key: &'static str, why: &'static str) -> ConfigError {
    ConfigError::Missing {
        file: file.to_owned(),
        key,
        why,
    }
}

fn memory_size(n: i64, at: &Origin, key: &str) -> Result<u64, ConfigError> {
    if !(1..=MAX_MEMORY_MIB).contains(&n) {
        return Err(ConfigError::invalid(at, key, Problem::MemoryOutOfRange(n)));
    }
    Ok(n as u64)
}

fn vcpu_count(n: i64, at: &Origin, key: &str) -> Result<u32, ConfigError> {
    match u32::try_from(n) {
        Ok(v) if v <= MAX_VCPUS => Ok(v),
        _ => Err(ConfigError::invalid(at, key, Problem::TooManyVcpus(n))),
    }
}

/// `type`, the deprecated `builder`, and the pre-4.10 `pvh = 1`, resolved as
/// xl does (including its prefix matching: `type = "p"` means "pv"); only
/// PVH passes.
fn check_guest_type(
    s: &Settings,
    file: &str,
    warnings: &mut Vec<Warning>,
) -> Result<(), ConfigError> {
    // (type, key that chose it, value as written, origin)
    let mut chosen: Option<(GuestType, &'static str, String, Origin)> = None;
    if let Some((text, at)) = s.string("type")? {
        let prefix_of = |full: &str| !text.is_empty() && full.starts_with(text);
        let t = if prefix_of("hvm") {
            GuestType::Hvm
        } else if prefix_of("pv") {
            GuestType::Pv
        } else if prefix_of("pvh") {
            GuestType::Pvh
        } else {
            return Err(ConfigError::invalid(
                at,
                "type",
                Problem::UnknownType(format!("{text:?}")),
            ));
        };
        chosen = Some((t, "type", text.to_owned(), at.clone()));
    }
    if let Some((text, at)) = s.string("builder")? {
        let prefix_of = |full: &str| !text.is_empty() && full.starts_with(text);
        let t = if prefix_of("hvm") {
            GuestType::Hvm
        } else if prefix_of("generic") {
            GuestType::Pv
        } else {
            return Err(ConfigError::invalid(
                at,
                "builder",
                Problem::UnknownBuilder(format!("{text:?}")),
            ));
        };
        if let Some((prev, key, value, _)) = &chosen {
            if *prev != t {
                let problem = Problem::Contradicts(format!("{key} = {value:?}"));
                return Err(ConfigError::invalid(at, "builder", problem));
            }
        }
        chosen = Some((t, "builder", text.to_owned(), at.clone()));
    }
    if let Some((n, at)) = s.number("pvh")? {
        warnings.push(Warning::DeprecatedPvh { at: at.clone() });
        if n != 0 {
            match &chosen {
                // PVHv1 was a PV guest with pvh = 1: builder "generic" fits;
                // an explicit type = "pv" or an HVM builder does not.
                Some((prev, key, value, _))
                    if *prev == GuestType::Hvm || *key == "type" && *prev != GuestType::Pvh =>
                {
                    let problem = Problem::Contradicts(format!("{key} = {value:?}"));
                    return Err(ConfigError::invalid(at, "pvh", problem));
                }
                _ => chosen = Some((GuestType::Pvh, "pvh", n.to_string(), at.clone())),
            }
        }
    }
    match chosen {
        None => {
            warnings.push(Warning::DefaultType {
                file: file.to_owned(),
            });
            Ok(())
        }
        Some((GuestType::Pvh, ..)) => Ok(()),
        Some((t, key, _, at)) => {
            let what = if t == GuestType::Hvm { "HVM" } else { "PV" };
            Err(ConfigError::invalid(
                &at,
                key,
                Problem::UnsupportedType(what),
            ))
        }
    }
}

/// xl's parse_cmdline: `cmdline` wins; else "root=ROOT EXTRA", with the
/// pieces that are absent left out.
fn build_cmdline(s: &Settings, warnings: &mut Vec<Warning>) -> Result<Option<String>, ConfigError> {
    let cmdline = s.string("cmdline")?;
    let root = s.string("root")?;
    let extra = s.string("extra")?;
    // A command line is a C string: a NUL would cut it short in the guest.
    for (key, piece) in [("cmdline", cmdline), ("root", root), ("extra", extra)] {
        if let Some((text, at)) = piece {
            no_nul(text, at, key)?;
        }
    }
    Ok(match (cmdline, root, extra) {
        (Some((c, at)), root, extra) => {
            if root.is_some() || extra.is_some() {
                warnings.push(Warning::CmdlineWins { at: at.clone() });
            }
            Some(c.to_owned())
        }
        (None, Some((root, _)), Some((extra, _))) => Some(format!("root={root} {extra}")),
        (None, Some((root, _)), None) => Some(format!("root={root}")),
        (None, None, Some((extra, _))) => Some(extra.to_owned()),
        (None, None, None) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: &[&str] = &[];

    fn settings(text: &str) -> Settings {
        let mut s = Settings::default();
        s.parse_file(text.as_bytes(), "guest.cfg")
            .unwrap_or_else(|e| panic!("{e}"));
        s
    }

    fn syntax_err(text: &str) -> String {
        let mut s = Settings::default();
        match s.parse_file(text.as_bytes(), "guest.cfg") {
            Err(e @ ConfigError::Syntax { .. }) => e.to_string(),
            other => panic!("expected a syntax error for {text:?}, got {other:?}"),
        }
    }

    fn atom(s: &Settings, key: &str) -> String {
        match &s.get(key).unwrap_or_else(|| panic!("{key} unset")).value {
            Value::Atom(a) => a.clone(),
            v => panic!("{key} is {v:?}"),
        }
    }

    fn list(items: &[&str]) -> Value {
        Value::List(items.iter().map(|s| Value::Atom((*s).to_owned())).collect())
    }

    fn cfg(text: &str) -> DomainConfig {
        DomainConfig::parse(text.as_bytes(), "guest.cfg", NONE).unwrap_or_else(|e| panic!("{e}"))
    }

    fn cfg_err(text: &str) -> String {
        cfg_err_with(text, NONE)
    }

    fn cfg_err_with(text: &str, overrides: &[&str]) -> String {
        match DomainConfig::parse(text.as_bytes(), "guest.cfg", overrides) {
            Err(e) => e.to_string(),
            Ok(c) => panic!("expected an error for {text:?}, got {c:?}"),
        }
    }

    const BASE: &str = "name = \"g\"\ntype = \"pvh\"\nkernel = \"k.elf\"\n";

    // ---- syntax ----

    #[test]
    fn atoms_strings_and_numbers() {
        let s = settings("a = \"x y\"\nb = 'single'\nc = 42\nd = 0x1f\ne=\"\"");
        assert_eq!(atom(&s, "a"), "x y");
        assert_eq!(atom(&s, "b"), "single");
        assert_eq!(atom(&s, "c"), "42");
        assert_eq!(atom(&s, "d"), "0x1f");
        assert_eq!(atom(&s, "e"), "");
        assert_eq!(
            s.get("a").unwrap().origin,
            Origin::File {
                file: "guest.cfg".into(),
                line: 1
            }
        );
        assert_eq!(
            s.get("e").unwrap().origin,
            Origin::File {
                file: "guest.cfg".into(),
                line: 5
            }
        );
    }

    #[test]
    fn keys_may_contain_dots_digits_underscores() {
        let s = settings("on_poweroff = 'destroy'\ndevice.model_v2 = 1\n");
        assert_eq!(atom(&s, "on_poweroff"), "destroy");
        assert_eq!(atom(&s, "device.model_v2"), "1");
        assert_eq!(
            s.keys().collect::<Vec<_>>(),
            ["on_poweroff", "device.model_v2"]
        );
    }

    #[test]
    fn escapes() {
        let s = settings(r#"a = "q\"q\'\\ \t\n\r\a\b\f\v""#);
        assert_eq!(atom(&s, "a"), "q\"q'\\ \t\n\r\x07\x08\x0c\x0b");
        let s = settings(r"a = 'it\'s' ; b = '\x41\102\0\7z'");
        assert_eq!(atom(&s, "a"), "it's");
        assert_eq!(atom(&s, "b"), "AB\0\x07z");
        // Quotes of the other kind need no escape; `#` in a string is text.
        let s = settings("a = \"it's # not a comment\"");
        assert_eq!(atom(&s, "a"), "it's # not a comment");
    }

    #[test]
    fn bad_escapes() {
        assert_eq!(
            syntax_err(r#"a = "\q""#),
            "guest.cfg:1: syntax error: invalid escape `\\q` in string"
        );
        assert_eq!(
            syntax_err(r#"a = "\xg1""#),
            "guest.cfg:1: syntax error: invalid escape `\\xg1` in string"
        );
        assert_eq!(
            syntax_err(r#"a = "\777""#),
            "guest.cfg:1: syntax error: invalid escape `\\777` in string"
        );
        assert_eq!(
            syntax_err("a = \"\\xff\""),
            "guest.cfg:1: syntax error: string is not valid UTF-8"
        );
        assert!(syntax_err("a = \"\\\nb\"").contains("unterminated string"));
    }

    #[test]
    fn comments_and_separators() {
        let s = settings("# leading\n\n  a = 1 # trailing\n;;b=2;c=3\n# last line without newline");
        assert_eq!(atom(&s, "a"), "1");
        assert_eq!(atom(&s, "b"), "2");
        assert_eq!(atom(&s, "c"), "3");
        assert_eq!(
            s.get("c").unwrap().origin,
            Origin::File {
                file: "guest.cfg".into(),
                line: 4
            }
        );
        // Empty input and comment-only input are fine.
        assert_eq!(settings("").keys().count(), 0);
        assert_eq!(settings("#").keys().count(), 0);
    }

    #[test]
    fn crlf_and_tabs() {
        let s = settings("a\t=\t1\r\nb = [ 'x',\r\n 'y' ]\r\n");
        assert_eq!(atom(&s, "a"), "1");
        assert_eq!(s.get("b").unwrap().value, list(&["x", "y"]));
        assert!(syntax_err("a = 1\r b = 2").contains("unexpected character byte 0x0d"));
    }

    #[test]
    fn lists() {
        let s = settings(
            "disk = [ 'a', \"b\" ]\n\
             empty = []\n\
             blank = [\n\n]\n\
             multi = [\n  'x', # first\n\n  'y',\n  # trailing comma next\n]\n\
             nested = [ ['a', 1], [], 2 ]\n\
             after = 1",
        );
        assert_eq!(s.get("disk").unwrap().value, list(&["a", "b"]));
        assert_eq!(s.get("empty").unwrap().value, list(&[]));
        assert_eq!(s.get("blank").unwrap().value, list(&[]));
        assert_eq!(s.get("multi").unwrap().value, list(&["x", "y"]));
        assert_eq!(
            s.get("nested").unwrap().value,
            Value::List(vec![list(&["a", "1"]), list(&[]), Value::Atom("2".into())])
        );
        assert_eq!(
            s.get("multi").unwrap().origin,
            Origin::File {
                file: "guest.cfg".into(),
                line: 6
            }
        );
        assert_eq!(
            s.get("after").unwrap().origin,
            Origin::File {
                file: "guest.cfg".into(),
                line: 13
            }
        );
    }

    #[test]
    fn list_syntax_errors() {
        assert_eq!(
            syntax_err("a = [ 'x'"),
            "guest.cfg:1: syntax error: unterminated list (missing `]`)"
        );
        assert_eq!(
            syntax_err("a = [ 'x',\n"),
            "guest.cfg:1: syntax error: unterminated list (missing `]`)"
        );
        assert_eq!(
            syntax_err("\na = [\n"),
            "guest.cfg:2: syntax error: unterminated list (missing `]`)"
        );
        assert_eq!(
            syntax_err("a = [ , ]"),
            "guest.cfg:1: syntax error: expected a value, found `,`"
        );
        assert_eq!(
            syntax_err("a = [ 'x',, ]"),
            "guest.cfg:1: syntax error: expected a value, found `,`"
        );
        assert_eq!(
            syntax_err("a = [ 'x'\n 'y' ]"),
            "guest.cfg:2: syntax error: expected `,` or `]` in list, found string \"y\""
        );
        assert_eq!(
            syntax_err("a = [ 'x' = ]"),
            "guest.cfg:1: syntax error: expected `,` or `]` in list, found `=`"
        );
        let deep = format!("a = {}{}", "[".repeat(40), "]".repeat(40));
        assert!(syntax_err(&deep).contains("nested more than 32 deep"));
        let ok = format!("a = {}{}", "[".repeat(32), "]".repeat(32));
        settings(&ok);
    }

    #[test]
    fn statement_syntax_errors() {
        assert_eq!(
            syntax_err("a = 'x"),
            "guest.cfg:1: syntax error: unterminated string"
        );
        assert_eq!(
            syntax_err("\n\na = \"x\ny\""),
            "guest.cfg:3: syntax error: unterminated string"
        );
        assert_eq!(
            syntax_err("a = "),
            "guest.cfg:1: syntax error: expected a value, found end of input"
        );
        assert_eq!(
            syntax_err("a =\n1"),
            "guest.cfg:1: syntax error: expected a value, found end of line"
        );
        assert_eq!(
            syntax_err("a 1"),
            "guest.cfg:1: syntax error: expected `=` after `a`, found `1`"
        );
        assert_eq!(
            syntax_err("a"),
            "guest.cfg:1: syntax error: expected `=` after `a`, found end of input"
        );
        assert_eq!(
            syntax_err("= 1"),
            "guest.cfg:1: syntax error: expected a setting name, found `=`"
        );
        assert_eq!(
            syntax_err("1 = 1"),
            "guest.cfg:1: syntax error: expected a setting name, found `1`"
        );
        assert_eq!(
            syntax_err("a = 1 2"),
            "guest.cfg:1: syntax error: expected a new line or `;` after the value of `a`, found `2`"
        );
        assert_eq!(
            syntax_err("a = 'x' 'y'"),
            "guest.cfg:1: syntax error: expected a new line or `;` after the value of `a`, found string \"y\""
        );
        assert_eq!(
            syntax_err("a = b"),
            "guest.cfg:1: syntax error: expected a value, found `b`"
        );
    }

    #[test]
    fn lexical_errors_with_hints() {
        assert_eq!(
            syntax_err("ok = 1\nName = 'x'"),
            "guest.cfg:2: syntax error: unexpected character `N` (xl.cfg keys and numbers are lower case)"
        );
        assert_eq!(
            syntax_err("memory = 0x1F"),
            "guest.cfg:1: syntax error: unexpected character `F` (xl.cfg keys and numbers are lower case)"
        );
        assert!(
            syntax_err("memory = -5").contains("unexpected character `-` (xl.cfg is not Python")
        );
        assert!(syntax_err("disk = ('a', 'b')").contains("unexpected character `(`"));
        assert!(syntax_err("a = 1 % 2").contains("unexpected character `%`"));
        assert!(syntax_err("a = \u{e9}").contains("unexpected character byte 0xc3"));
        assert!(syntax_err("_a = 1").contains("unexpected character `_`"));
        assert!(syntax_err("a + 1").contains("unexpected character `+`"));
    }

    #[test]
    fn last_setting_wins() {
        let s = settings("a = 1\nb = 2\na = 'three'\n");
        assert_eq!(atom(&s, "a"), "three");
        assert_eq!(
            s.get("a").unwrap().origin,
            Origin::File {
                file: "guest.cfg".into(),
                line: 3
            }
        );
        assert_eq!(s.keys().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn append_concatenates() {
        let s = settings(
            "extra = 'a'\nextra += ' b'\nextra += \" c\"\nl = ['x']\nl += ['y', 'z']\nnew += 'v'\n",
        );
        assert_eq!(atom(&s, "extra"), "a b c");
        assert_eq!(s.get("l").unwrap().value, list(&["x", "y", "z"]));
        assert_eq!(atom(&s, "new"), "v");
        assert!(s.get("new").unwrap().appended);
        let mut s = Settings::default();
        let e = s
            .parse_file(b"a = 'x'\na += ['y']", "guest.cfg")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "guest.cfg:2: a: can't add a list to a string or a string to a list"
        );
    }

    #[test]
    fn overrides_are_parsed_after_the_file() {
        let text = format!("{BASE}memory = 128\nextra = 'quiet'\n");
        let c = DomainConfig::parse(
            text.as_bytes(),
            "guest.cfg",
            &[
                "memory=512",
                "extra+=\" debug\"",
                "vcpus=1;on_crash='rename-restart'",
                "disk=['a','b']",
            ],
        )
        .unwrap();
        assert_eq!(c.memory_mib, 512);
        assert_eq!(c.cmdline.as_deref(), Some("quiet debug"));
        assert_eq!(c.on_crash, ShutdownAction::RenameRestart);
        assert_eq!(c.disks, ["a", "b"]);
        assert_eq!(
            c.origin("memory"),
            Some(&Origin::CommandLine {
                arg: "memory=512".into()
            })
        );
        assert_eq!(
            c.origin("name"),
            Some(&Origin::File {
                file: "guest.cfg".into(),
                line: 1
            })
        );
        // Overrides alone can supply everything.
        let c = DomainConfig::parse(b"", "guest.cfg", &["name='x'", "kernel='k'", "type='pvh'"])
            .unwrap();
        assert_eq!(c.name, "x");
    }

    #[test]
    fn override_errors_name_the_command_line() {
        assert_eq!(
            cfg_err_with(BASE, &["memory=lots"]),
            "command line (memory=lots): syntax error: expected a value, found `lots`"
        );
        assert_eq!(
            cfg_err_with(BASE, &["memory='lots'"]),
            "command line (memory='lots'): memory: expected a number, found \"lots\""
        );
        assert_eq!(
            cfg_err_with(BASE, &["extra=\"unterminated"]),
            "command line (extra=\"unterminated): syntax error: unterminated string"
        );
        // A list cannot continue into the next argument.
        assert!(cfg_err_with(BASE, &["disk=['a',", "'b']"]).contains("unterminated list"));
    }

    // ---- numbers ----

    #[test]
    fn c_long_parsing() {
        assert_eq!(parse_c_long("256"), Ok(256));
        assert_eq!(parse_c_long("0x100"), Ok(256));
        assert_eq!(parse_c_long("0X100"), Ok(256));
        assert_eq!(parse_c_long("0400"), Ok(256));
        assert_eq!(parse_c_long("0"), Ok(0));
        assert_eq!(parse_c_long("  -7"), Ok(-7));
        assert_eq!(parse_c_long("+7"), Ok(7));
        assert_eq!(parse_c_long("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_c_long("9223372036854775807"), Ok(i64::MAX));
        assert!(matches!(
            parse_c_long("9223372036854775808"),
            Err(Problem::NumberOutOfRange(_))
        ));
        assert!(matches!(
            parse_c_long("0xffffffffffffffffff"),
            Err(Problem::NumberOutOfRange(_))
        ));
        for bad in [
            "", " ", "-", "0x", "08", "1b", "12 ", "0xg", "lots", "1.5", "--1",
        ] {
            assert!(
                matches!(parse_c_long(bad), Err(Problem::ExpectedNumber(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn numbers_in_config() {
        assert_eq!(cfg(&format!("{BASE}memory = 0x100")).memory_mib, 256);
        // Quoted numbers are numbers to xl too.
        assert_eq!(cfg(&format!("{BASE}memory = '512'")).memory_mib, 512);
        assert_eq!(
            cfg_err(&format!("{BASE}\n\n\nmemory = \"lots\"")),
            "guest.cfg:7: memory: expected a number, found \"lots\""
        );
        assert_eq!(
            cfg_err(&format!("{BASE}memory = 1b")),
            "guest.cfg:4: memory: expected a number, found \"1b\""
        );
        assert_eq!(
            cfg_err(&format!("{BASE}memory = 99999999999999999999")),
            "guest.cfg:4: memory: number \"99999999999999999999\" is out of range"
        );
        assert_eq!(
            cfg_err(&format!("{BASE}memory = [1]")),
            "guest.cfg:4: memory: expected a string, found a list"
        );
        assert_eq!(
            cfg_err(&format!("{BASE}memory += 5")),
            "guest.cfg:4: memory: can't use += with a number"
        );
    }

    // ---- interpretation ----

    #[test]
    fn minimal_config_and_defaults() {
        let c = cfg(BASE);
        assert_eq!(c.name, "g");
        assert_eq!(c.kernel, PathBuf::from("k.elf"));
        assert_eq!(c.ramdisk, None);
        assert_eq!(c.cmdline, None);
        assert_eq!(c.uuid, None);
        assert_eq!(c.memory_mib, DEFAULT_MEMORY_MIB);
        assert_eq!(c.maxmem_mib, DEFAULT_MEMORY_MIB);
        assert_eq!((c.vcpus, c.max_vcpus), (1, 1));
        assert_eq!(c.on_poweroff, ShutdownAction::Destroy);
        assert_eq!(c.on_reboot, ShutdownAction::Restart);
        assert_eq!(c.on_crash, ShutdownAction::Destroy);
        assert_eq!(c.on_watchdog, ShutdownAction::Destroy);
        assert_eq!(c.on_soft_reset, ShutdownAction::SoftReset);
        assert!(c.disks.is_empty() && c.vifs.is_empty());
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.file, "guest.cfg");
    }

    #[test]
    fn full_config() {
        let c = cfg(concat!(
            "# A typical PVH guest\n",
            "name = \"web1\"\n",
            "type = \"pvh\"\n",
            "uuid = \"3F2504E0-4F89-11D3-9A0C-0305E82C3301\"\n",
            "kernel = \"/boot/vmlinuz\"\n",
            "ramdisk = \"/boot/initrd.img\"\n",
            "memory = 1024\n",
            "maxmem = 2048\n",
            "vcpus = 1\n",
            "maxvcpus = 1\n",
            "on_poweroff = \"restart\"\n",
            "on_reboot = \"rename-restart\"\n",
            "on_crash = \"destroy\"\n",
            "disk = [ 'format=raw, vdev=xvda, access=rw, target=/img/web1.img',\n",
            "         'phy:/dev/vg/data,xvdb,w', ]\n",
            "vif = [ 'mac=00:16:3e:12:34:56,bridge=xenbr0' ]\n",
            "root = \"/dev/xvda1 ro\"\n",
            "extra = \"console=hvc0\"\n",
            "vnc = 1\n",
        ));
        assert_eq!(c.name, "web1");
        assert_eq!(
            c.uuid.unwrap().to_string(),
            "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
        );
        assert_eq!(c.ramdisk, Some(PathBuf::from("/boot/initrd.img")));
        assert_eq!(
            c.cmdline.as_deref(),
            Some("root=/dev/xvda1 ro console=hvc0")
        );
        assert_eq!((c.memory_mib, c.maxmem_mib), (1024, 2048));
        assert_eq!(c.on_poweroff, ShutdownAction::Restart);
        assert_eq!(c.on_reboot, ShutdownAction::RenameRestart);
        assert_eq!(c.on_crash, ShutdownAction::Destroy);
        assert_eq!(
            c.disks,
            [
                "format=raw, vdev=xvda, access=rw, target=/img/web1.img",
                "phy:/dev/vg/data,xvdb,w"
            ]
        );
        assert_eq!(c.vifs, vec!["mac=00:16:3e:12:34:56,bridge=xenbr0".to_string()]);
        assert_eq!(
            c.origin("disk"),
            Some(&Origin::File {
                file: "guest.cfg".into(),
                line: 14
            })
        );
        assert_eq!(
            c.warnings,
            [Warning::UnknownKey {
                key: "vnc".into(),
                at: Origin::File {
                    file: "guest.cfg".into(),
                    line: 19
                }
            }]
        );
        assert_eq!(
            c.warnings[0].to_string(),
            "guest.cfg:19: ignoring unknown setting `vnc`"
        );
    }

    #[test]
    fn cmdline_rules() {
        let line = |extra: &str| cfg(&format!("{BASE}{extra}")).cmdline;
        assert_eq!(line(""), None);
        assert_eq!(line("root = '/dev/xvda'"), Some("root=/dev/xvda".into()));
        assert_eq!(line("extra = 'quiet'"), Some("quiet".into()));
        assert_eq!(
            line("root = '/dev/xvda'\nextra = 'quiet'"),
            Some("root=/dev/xvda quiet".into())
        );
        assert_eq!(line("cmdline = ''"), Some(String::new()));
        let c = cfg(&format!(
            "{BASE}cmdline = 'console=hvc0'\nroot = 'x'\nextra = 'y'"
        ));
        assert_eq!(c.cmdline.as_deref(), Some("console=hvc0"));
        assert_eq!(
            c.warnings,
            [Warning::CmdlineWins {
                at: Origin::File {
                    file: "guest.cfg".into(),
                    line: 4
                }
            }]
        );
        assert_eq!(
            c.warnings[0].to_string(),
            "guest.cfg:4: cmdline: ignoring root and extra in favour of cmdline"
        );
        assert_eq!(
            cfg_err(&format!("{BASE}extra = ['a']")),
            "guest.cfg:4: extra: expected a string, found a list"
        );
    }

    #[test]
    fn required_keys() {
        assert_eq!(
            cfg_err("type = 'pvh'\nkernel = 'k'"),
            "guest.cfg: name: missing (every domain needs a name)"
        );
        assert_eq!(
            cfg_err("name = 'g'\ntype = 'pvh'"),
            "guest.cfg: kernel: missing (required for type \"pvh\")"
        );
        assert_eq!(
            cfg_err("name = ''\ntype = 'pvh'\nkernel='k'"),
            "guest.cfg:1: name: must not be empty"
        );
        assert_eq!(
            cfg_err("name = 'g'\nkernel = ''"),
            "guest.cfg:2: kernel: must not be empty"
        );
        assert_eq!(
            cfg_err(&format!("{BASE}ramdisk = ''")),
            "guest.cfg:4: ramdisk: must not be empty"
        );
        assert_eq!(
            cfg_err("name = ['g']\nkernel = 'k'"),
            "guest.cfg:1: name: expected a string, found a list"
        );
    }

    #[test]
    fn guest_types() {
        let k = "name = 'g'\nkernel = 'k'\n";
        // xl's prefix matching.
        assert!(cfg(&format!("{k}type = \"pvh\"")).warnings.is_empty());
        assert!(cfg(&format!("{k}type = 'pvh'")).warnings.is_empty());
        assert_eq!(
            cfg_err(&format!("{k}type = 'hvm'")),
            "guest.cfg:3: type: HVM guests are not supported: Xenolith runs only type = \"pvh\""
        );
        assert_eq!(
            cfg_err(&format!("{k}type = 'pv'")),
            "guest.cfg:3: type: PV guests are not supported: Xenolith runs only type = \"pvh\""
        );
        assert!(cfg_err(&format!("{k}type = 'p'")).contains("PV guests are not supported"));
        assert!(cfg_err(&format!("{k}type = 'h'")).contains("HVM guests are not supported"));
        assert_eq!(
            cfg_err(&format!("{k}type = 'pvhx'")),
            "guest.cfg:3: type: unknown domain type \"pvhx\" (expected \"pvh\", \"pv\" or \"hvm\")"
        );
        assert!(cfg_err(&format!("{k}type = ''")).contains("unknown domain type \"\""));
        // Deprecated builder.
        assert_eq!(
            cfg_err(&format!("{k}builder = 'hvm'")),
            "guest.cfg:3: builder: HVM guests are not supported: Xenolith runs only type = \"pvh\""
        );
        assert!(cfg_err(&format!("{k}builder = 'generic'"))
            .contains("builder: PV guests are not supported"));
        assert!(cfg_err(&format!("{k}builder = 'linux'")).contains("unknown builder \"linux\""));
        assert_eq!(
            cfg_err(&format!("{k}type = 'pvh'\nbuilder = 'hvm'")),
            "guest.cfg:4: builder: contradicts type = \"pvh\""
        );
        // Legacy pvh = 1, alone or with builder = "generic" (PVHv1's form).
        let c = cfg(&format!("{k}pvh = 1"));
        assert_eq!(
            c.warnings,
            [Warning::DeprecatedPvh {
                at: Origin::File {
                    file: "guest.cfg".into(),
                    line: 3
                }
            }]
        );
        assert!(c.warnings[0].to_string().contains("pvh: deprecated"));
        cfg(&format!("{k}builder = 'generic'\npvh = 1"));
        cfg(&format!("{k}type = 'pvh'\npvh = 1"));
        assert!(cfg_err(&format!("{k}builder = 'hvm'\npvh = 1"))
            .contains("guest.cfg:4: pvh: contradicts builder = \"hvm\""));
        assert!(cfg_err(&format!("{k}type = 'pv'\npvh = 1"))
            .contains("guest.cfg:4: pvh: contradicts type = \"pv\""));
        // pvh = 0 leaves the default.
        let c = cfg(&format!("{k}pvh = 0"));
        assert_eq!(c.warnings.len(), 2);
        assert!(cfg_err(&format!("{k}pvh = 'yes'")).contains("pvh: expected a number"));
        // No type at all: PVH, with a warning (xl would build PV).
        let c = cfg(k);
        assert_eq!(
            c.warnings,
            [Warning::DefaultType {
                file: "guest.cfg".into()
            }]
        );
        assert_eq!(
            c.warnings[0].to_string(),
            "guest.cfg: type: not set; xl would default to \"pv\", Xenolith runs the guest as \"pvh\""
        );
    }

    #[test]
    fn memory_limits() {
        assert_eq!(
            cfg_err(&format!("{BASE}memory = 0")),
            "guest.cfg:4: memory: 0 MiB is out of range (1 to 1048576 MiB)"
        );
        assert!(cfg_err(&format!("{BASE}memory = 2000000")).contains("2000000 MiB is out of range"));
        assert_eq!(
            cfg_err(&format!("{BASE}memory = 256\nmaxmem = 128")),
            "guest.cfg:5: maxmem: 128 MiB is less than memory (256 MiB)"
        );
        assert!(cfg_err(&format!("{BASE}maxmem = 0")).contains("maxmem: 0 MiB is out of range"));
        let c = cfg(&format!("{BASE}maxmem = 64\nmemory = 64"));
        assert_eq!((c.memory_mib, c.maxmem_mib), (64, 64));
        // maxmem defaults to memory, not to 32.
        assert_eq!(cfg(&format!("{BASE}memory = 4096")).maxmem_mib, 4096);
    }

    #[test]
    fn vcpu_limits() {
        assert_eq!(cfg(&format!("{BASE}vcpus = 0")).vcpus, 1);
        // (Negative numbers must be quoted: `-` is not a token.)
        assert_eq!(cfg(&format!("{BASE}vcpus = '-3'")).vcpus, 1);
        assert_eq!(cfg(&format!("{BASE}vcpus = 1\nmaxvcpus = 0")).max_vcpus, 1);
        let c = cfg(&format!("{BASE}vcpus = 2\nmaxvcpus = 4"));
        assert_eq!((c.vcpus, c.max_vcpus), (2, 4));
        assert_eq!(
            cfg_err(&format!("{BASE}vcpus = 33")),
            "guest.cfg:4: vcpus: 33 vCPUs requested; Xenolith supports up to 32"
        );
        assert!(cfg_err(&format!("{BASE}maxvcpus = 64")).contains("maxvcpus: 64 vCPUs requested"));
        assert_eq!(
            cfg_err(&format!("{BASE}maxvcpus = '-1'")),
            "guest.cfg:4: maxvcpus: -1 is less than vcpus (1)"
        );
        assert!(cfg_err(&format!("{BASE}vcpus = 99999999999")).contains("99999999999 vCPUs"));
    }

    #[test]
    fn actions() {
        for a in ShutdownAction::ALL {
            let text = format!("{BASE}on_poweroff = '{a}'\non_reboot = '{a}'\non_crash = '{a}'\non_watchdog = '{a}'");
            match a.unsupported() {
                None => {
                    let c = cfg(&text);
                    assert_eq!((c.on_poweroff, c.on_reboot, c.on_crash, c.on_watchdog), (a, a, a, a));
                }
                // Refused, not ignored when the domain stops (issue 9).
                Some(why) => assert_eq!(cfg_err(&text), format!("guest.cfg:4: on_poweroff: {a}: {why}")),
            }
        }
        for key in ["on_crash", "on_watchdog"] {
            for a in ["coredump-destroy", "coredump-restart", "soft-reset"] {
                let e = cfg_err(&format!("{BASE}{key} = '{a}'"));
                assert!(e.starts_with(&format!("guest.cfg:4: {key}: {a}: not supported")), "{e}");
            }
        }
        assert_eq!(cfg(BASE).on_soft_reset, ShutdownAction::SoftReset, "xl's default stays");
        assert_eq!(
            cfg_err(&format!("{BASE}on_crash = 'explode'")),
            "guest.cfg:4: on_crash: unknown action \"explode\" (expected destroy, restart, rename-restart, \
             preserve, coredump-destroy, coredump-restart or soft-reset)"
        );
        // Exact names only (xl uses strcmp).
        assert!(
            cfg_err(&format!("{BASE}on_reboot = 'Restart'")).contains("on_reboot: unknown action")
        );
        assert!(
            cfg_err(&format!("{BASE}on_watchdog = 'x'")).contains("on_watchdog: unknown action")
        );
        assert!(cfg_err(&format!("{BASE}on_soft_reset = 'x'"))
            .contains("on_soft_reset: unknown action"));
        let restarting: Vec<_> = ShutdownAction::ALL
            .into_iter()
            .filter(|a| a.restarts())
            .collect();
        assert_eq!(
            restarting,
            [
                Action::Restart,
                Action::RenameRestart,
                Action::CoredumpRestart
            ]
        );
    }

    #[test]
    fn uuids() {
        let u = Uuid::parse("00112233-4455-6677-8899-aabbccddeeff").unwrap();
        assert_eq!(
            u.0,
            [
                0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
                0xee, 0xff
            ]
        );
        assert_eq!(u.to_string(), "00112233-4455-6677-8899-aabbccddeeff");
        for bad in [
            "",
            "00112233445566778899aabbccddeeff",
            "00112233-4455-6677-8899-aabbccddeefg",
            "00112233-4455-6677-8899_aabbccddeeff",
            "00112233-4455-6677-8899-aabbccddeeff0",
            "é0112233-4455-6677-8899-aabbccddeef",
        ] {
            assert_eq!(Uuid::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            cfg_err(&format!("{BASE}uuid = 'nope'")),
            "guest.cfg:4: uuid: \"nope\" is not a UUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
        );
    }

    #[test]
    fn device_lists() {
        assert_eq!(cfg(&format!("{BASE}disk = []")).disks, Vec::<String>::new());
        assert_eq!(
            cfg_err(&format!("{BASE}disk = 'a.img'")),
            "guest.cfg:4: disk: expected a list, found \"a.img\""
        );
        assert_eq!(
            cfg_err(&format!("{BASE}vif = ['a', ['b']]")),
            "guest.cfg:4: vif: item 2 of the list is a list; expected a string"
        );
        assert_eq!(cfg(&format!("{BASE}vif = []")).vifs, Vec::<String>::new());
    }

    /// A vif entry is checked where it is set: an unknown parameter, and
    /// what Xenolith does not do, are named with the file and line.
    #[test]
    fn vif_specs_are_checked_where_they_are_set() {
        assert_eq!(
            cfg_err(&format!("{BASE}vif = ['mac=00:16:3e:00:00:01,colour=blue']")),
            "guest.cfg:4: vif: 'mac=00:16:3e:00:00:01,colour=blue': unknown parameter `colour=blue` \
             (xl-network-configuration(5) lists the known ones)"
        );
        assert_eq!(cfg(&format!("{BASE}vif = ['bridge=xenbr0', 'mac=00:16:3e:00:00:02']")).vifs, vec!["bridge=xenbr0", "mac=00:16:3e:00:00:02"]);
        assert_eq!(
            cfg_err(&format!("{BASE}vif = ['bridge=xenbr0', 'rate=10Mb/s']")),
            "guest.cfg:4: vif: 'rate=10Mb/s': rate= (credit-based rate limiting) is not implemented by Xenolith's network backend"
        );
        assert_eq!(
            cfg_err(&format!("{BASE}vif = ['type=ioemu']")),
            "guest.cfg:4: vif: 'type=ioemu': type=ioemu: Xenolith has no emulated NICs; use type=vif"
        );
        assert!(cfg_err(&format!("{BASE}vif = ['backend=dd']")).contains("backend= (a driver domain) is not supported"));
        assert!(cfg_err(&format!("{BASE}vif = [1]")).contains("unknown parameter `1`"));
    }

    /// A NUL names the file, line and key it is in, shown escaped.
    #[test]
    fn nul_bytes_are_refused_where_they_are_set() {
        for key in ["extra", "root", "cmdline", "kernel", "ramdisk", "name"] {
            let e = cfg_err(&format!("{BASE}{key} = 'ab\\x00c'"));
            assert_eq!(e, format!("guest.cfg:4: {key}: contains a NUL byte at byte 2 (ab\\0c)"));
        }
        let e = cfg_err(&format!("{BASE}disk = ['/a\\x00b,raw,xvda,w']"));
        assert_eq!(e, "guest.cfg:4: disk: contains a NUL byte at byte 2 (/a\\0b,raw,xvda,w)");
    }

    #[test]
    fn unknown_keys_warn_in_file_order() {
        let c = cfg(&format!("zeta = 1\n{BASE}alpha = [1]\nzeta = 2\n"));
        let keys: Vec<_> = c
            .warnings
            .iter()
            .map(|w| match w {
                Warning::UnknownKey { key, at } => (key.as_str(), at.to_string()),
                w => panic!("{w:?}"),
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("zeta", "guest.cfg:6".to_owned()),
                ("alpha", "guest.cfg:5".to_owned())
            ]
        );
    }

    /// Parses `n` lines of `extra += "12345678"` and returns the fastest of
    /// two runs, so a busy machine disturbs the measure less.
    fn time_appends(n: usize) -> std::time::Duration {
        let mut text = String::from(BASE);
        text.push_str("extra = \"\"\n");
        for _ in 0..n {
            text.push_str("extra += \"12345678\"\n");
        }
        (0..2)
            .map(|_| {
                let start = std::time::Instant::now();
                let c = DomainConfig::parse(text.as_bytes(), "guest.cfg", NONE).unwrap();
                let took = start.elapsed();
                assert_eq!(c.cmdline.map(|l| l.len()), Some(8 * n));
                took
            })
            .min()
            .unwrap()
    }

    #[test]
    fn appends_parse_in_linear_time() {
        // Copying the value on each `+=` made 200k lines move 160 GB
        // (minutes); in place, it is well under a second even unoptimised.
        let small = time_appends(50_000);
        let large = time_appends(200_000);
        assert!(large < std::time::Duration::from_secs(5), "200k appends took {large:?}");
        // Linear: about 4 times as long; quadratic would be 16 times.
        assert!(
            large < small * 10 + std::time::Duration::from_millis(500),
            "50k appends: {small:?}, 200k: {large:?}"
        );
    }

    #[test]
    fn config_files_are_capped() {
        let dir = std::env::temp_dir().join(format!("xenolith-config-cap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("huge.cfg");
        let mut text = String::from(BASE);
        while text.len() as u64 <= MAX_CONFIG_BYTES {
            text.push_str("# padding padding padding padding padding padding\n");
        }
        std::fs::write(&path, &text).unwrap();
        let e = DomainConfig::load(&path, NONE).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "config file {} is too large: {} bytes, more than the limit of {MAX_CONFIG_BYTES} bytes",
                path.display(),
                text.len()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_reads_files() {
        let dir = std::env::temp_dir().join(format!("xenolith-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("guest.cfg");
        std::fs::write(&path, BASE).unwrap();
        let c = DomainConfig::load(&path, &["memory=64"]).unwrap();
        assert_eq!((c.name.as_str(), c.memory_mib), ("g", 64));
        assert_eq!(c.file, path.display().to_string());
        let missing = dir.join("missing.cfg");
        let e = DomainConfig::load(&missing, NONE).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("cannot open config file {}: ", missing.display())),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errors_are_one_line() {
        let texts = [
            "a = 'x",
            "a = [",
            "A = 1",
            "memory = 'x'\nname='g'\nkernel='k'",
            "name='g'",
            "a = \"\\q\"",
        ];
        for t in texts {
            let e = DomainConfig::parse(t.as_bytes(), "guest.cfg", NONE)
                .unwrap_err()
                .to_string();
            assert!(!e.contains('\n') && e.starts_with("guest.cfg"), "{e:?}");
        }
    }

    /// xorshift64*: deterministic pseudo-random bytes without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn arbitrary_input_never_panics() {
        const ALPHABET: &[u8] = b"[[]]==,,;;##\"\"''\\\\\n\n\r\t +-_.abcxyz0189fAZ\x00\xff\xc3\xa9";
        let valid = format!("{BASE}disk = [ 'a', \"b\\n\" ]\nmemory = 0x40 # c\nextra += 'x'\n");
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..20_000 {
            let len = (rng.next() % 64) as usize;
            let text: Vec<u8> = match round % 3 {
                // Raw bytes.
                0 => (0..len).map(|_| rng.next() as u8).collect(),
                // Bytes that mean something to the lexer.
                1 => (0..len)
                    .map(|_| ALPHABET[(rng.next() as usize) % ALPHABET.len()])
                    .collect(),
                // A valid file with a few bytes mutated, inserted or removed.
                _ => {
                    let mut t = valid.as_bytes().to_vec();
                    for _ in 0..1 + rng.next() % 4 {
                        let at = (rng.next() as usize) % (t.len() + 1);
                        let b = ALPHABET[(rng.next() as usize) % ALPHABET.len()];
                        match rng.next() % 3 {
                            0 if at < t.len() => t[at] = b,
                            1 if at < t.len() => {
                                t.remove(at);
                            }
                            _ => t.insert(at, b),
                        }
                    }
                    t
                }
            };
            let arg = String::from_utf8_lossy(&text).into_owned();
            let _ = DomainConfig::parse(&text, "fuzz.cfg", &[arg.as_str()]);
        }
    }
}
