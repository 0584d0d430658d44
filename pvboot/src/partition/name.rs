//! Partition names, NetBSD-style and GRUB-style, and the selector parser.
//!
//! NetBSD names (disk `xbd0`, the Xen block device):
//! - disklabel partitions: the disk name plus the letter of their index
//!   (`xbd0a` is `d_partitions[0]`). On amd64 `c` is the NetBSD MBR
//!   partition and `d` (RAW_PART) the whole disk.
//! - MBR disk without a disklabel: NetBSD fakes a label from the MBR
//!   (`look_netbsd_part` in sys/kern/subr_disk_mbr.c): used non-extended
//!   primaries take `e`, `f`, `g`, `h` in slot order, logicals take `i`
//!   onwards in chain order, up to `p`; if a BSD partition has a label, only
//!   the label's letters exist.
//! - GPT disk: NetBSD attaches wedges `dk0`, `dk1`, ... in entry order; wedge
//!   numbers are global across disks, so these are the names when this is the
//!   first disk with wedges (NetBSD also accepts `NAME=<gpt label>`).
//!
//! GRUB names (disk `hd0`): `(hd0,msdos1)`, logicals from `(hd0,msdos5)`,
//! `(hd0,gpt2)` by entry index, disklabel partitions inside an MBR partition
//! `(hd0,msdos1,bsd1)` for `a` (GRUB numbers BSD partitions from 1), and
//! `(hd0,bsd1)` on a disk without MBR. An MBR's extended container is
//! listed too (under the number of its slot), though GRUB does not expose it.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use super::{Entry, Kind, Table};

/// NetBSD's MAXPARTITIONS on amd64: letters `a` to `p`.
const NETBSD_MAXPARTITIONS: u8 = 16;

/// Gives GPT entries their NetBSD wedge numbers.
pub(super) fn assign_wedges(entries: &mut [Entry]) {
    for (i, e) in entries.iter_mut().enumerate() {
        e.wedge = Some(i as u32);
    }
}

/// Gives MBR entries the letters NetBSD's faked label would.
pub(super) fn assign_mbr_letters(entries: &mut [Entry]) {
    let mut primary = 4u8;
    let mut logical = 8u8;
    for e in entries.iter_mut() {
        // Primaries stop at h; logicals stop at p.
        let (slot, limit) = match e.kind {
            Kind::Primary(t) if !super::mbr::is_extended(t) => (&mut primary, 8),
            Kind::Logical(_) => (&mut logical, NETBSD_MAXPARTITIONS),
            _ => continue,
        };
        if *slot < limit {
            e.netbsd_letter = Some(*slot);
            *slot += 1;
        }
    }
}

impl Entry {
    /// GRUB's name on disk `disk` (e.g. `hd0`): `(hd0,msdos5)`, `(hd0,msdos1,bsd1)`.
    pub fn grub_name(&self, disk: &str) -> String {
        match (&self.kind, self.parent) {
            (Kind::Gpt(_), _) => format!("({disk},gpt{})", self.number),
            (Kind::Bsd(_), Some(p)) => format!("({disk},msdos{p},bsd{})", self.number),
            (Kind::Bsd(_), None) => format!("({disk},bsd{})", self.number),
            _ => format!("({disk},msdos{})", self.number),
        }
    }

    /// NetBSD's name on disk `disk` (e.g. `xbd0`): `xbd0a`, or `dk0` for GPT.
    pub fn netbsd_name(&self, disk: &str) -> Option<String> {
        if let Some(l) = self.netbsd_letter {
            return Some(format!("{disk}{}", (b'a' + l) as char));
        }
        self.wedge.map(|w| format!("dk{w}"))
    }

    /// Size in bytes for `sector_size`.
    pub fn bytes(&self, sector_size: u32) -> u64 {
        self.sectors.saturating_mul(u64::from(sector_size))
    }
}

/// Why a selector did not pick a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectorError {
    /// The text is not a partition selector.
    Syntax(String),
    /// No partition on this disk matches.
    NotFound(String),
    /// The table names this partition, but it does not fit on the disk.
    PastEnd(super::PastEnd),
}

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectorError::Syntax(s) => write!(f, "bad partition name '{s}' (try xbd0a, a, msdos1, gpt2, (hd0,msdos1), 1)"),
            SelectorError::NotFound(s) => write!(f, "no partition '{s}' on this disk"),
            SelectorError::PastEnd(p) => write!(f, "{p}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Number(u32),
    Msdos(u32),
    Gpt(u32),
    Bsd(u32),
    Letter(u8),
}

/// A parsed partition name: `xbd0a`, `a`, `dk1`, `msdos1`, `gpt2`, `bsd1`,
/// `(hd0,msdos1)`, `(hd0,msdos1,bsd1)`, `(hd0,msdos1,a)`, `(hd0,gpt2)`, `1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    text: String,
    wedge: Option<u32>,
    parts: Vec<Part>,
}

fn number(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&n| n > 0)
}

fn letter(s: &str) -> Option<u8> {
    match s.as_bytes() {
        [c @ b'a'..=b'v'] => Some(c - b'a'),
        _ => None,
    }
}

fn component(s: &str) -> Option<Part> {
    if let Some(n) = number(s) {
        return Some(Part::Number(n));
    }
    if let Some(l) = letter(s) {
        return Some(Part::Letter(l));
    }
    for (prefix, make) in [
        ("msdos", Part::Msdos as fn(u32) -> Part),
        ("gpt", Part::Gpt),
        ("bsd", Part::Bsd),
    ] {
        if let Some(n) = s.strip_prefix(prefix).and_then(number) {
            return Some(make(n));
        }
    }
    None
}

impl Selector {
    /// Parses a selector.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let t = text.trim();
        let bad = || SelectorError::Syntax(text.to_string());
        let mut sel = Selector { text: t.to_string(), wedge: None, parts: Vec::new() };
        if let Some(inner) = t.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
            let mut it = inner.split(',');
            let disk = it.next().unwrap_or("");
            if disk.is_empty() || !disk.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(bad());
            }
            for c in it {
                sel.parts.push(component(c.trim()).ok_or_else(bad)?);
            }
        } else if let Some(w) = t.strip_prefix("dk").and_then(|r| {
            (!r.is_empty() && r.len() < 10 && r.bytes().all(|b| b.is_ascii_digit())).then(|| r.parse().ok()).flatten()
        }) {
            sel.wedge = Some(w);
            return Ok(sel);
        } else if let Some(p) = component(t) {
            sel.parts.push(p);
        } else if t.contains(',') {
            for c in t.split(',') {
                sel.parts.push(component(c.trim()).ok_or_else(bad)?);
            }
        } else {
            // A NetBSD device name: letters, a unit number, a partition letter.
            let b = t.as_bytes();
            let name_len = b.iter().take_while(|c| c.is_ascii_lowercase()).count();
            let digits = b[name_len..].iter().take_while(|c| c.is_ascii_digit()).count();
            let rest = &t[name_len + digits..];
            match (name_len > 0, digits > 0, letter(rest)) {
                (true, true, Some(l)) => sel.parts.push(Part::Letter(l)),
                _ => return Err(bad()),
            }
        }
        match sel.parts.as_slice() {
            [_] => Ok(sel),
            [Part::Number(_) | Part::Msdos(_), Part::Bsd(_) | Part::Letter(_)] => Ok(sel),
            _ => Err(bad()),
        }
    }

    /// The entry of `table` this selector names.
    pub fn resolve<'t>(&self, table: &'t Table) -> Result<&'t Entry, SelectorError> {
        let found = if let Some(w) = self.wedge {
            table.entries.iter().find(|e| e.wedge == Some(w))
        } else {
            let top = |e: &&Entry, n: u32, want: Option<bool>| {
                e.parent.is_none()
                    && e.number == n
                    && match want {
                        None => true,
                        Some(gpt) => matches!(e.kind, Kind::Gpt(_)) == gpt && !matches!(e.kind, Kind::Bsd(_)),
                    }
            };
            let bsd = |e: &&Entry, parent: Option<u32>, p: Part| {
                matches!(e.kind, Kind::Bsd(_))
                    && parent.is_none_or(|n| e.parent == Some(n))
                    && match p {
                        Part::Bsd(n) => e.number == n,
                        Part::Letter(l) => e.netbsd_letter == Some(l),
                        _ => false,
                    }
            };
            match *self.parts.as_slice() {
                [Part::Number(n)] => table.entries.iter().find(|e| top(e, n, None)),
                [Part::Msdos(n)] => table.entries.iter().find(|e| top(e, n, Some(false))),
                [Part::Gpt(n)] => table.entries.iter().find(|e| top(e, n, Some(true))),
                [Part::Bsd(n)] => table.entries.iter().find(|e| bsd(e, None, Part::Bsd(n))),
                [Part::Letter(l)] => table.entries.iter().find(|e| e.netbsd_letter == Some(l)),
                [Part::Number(n) | Part::Msdos(n), p] => table.entries.iter().find(|e| bsd(e, Some(n), p)),
                _ => None,
            }
        };
        found.ok_or_else(|| {
            let primary = match *self.parts.as_slice() {
                [Part::Number(n) | Part::Msdos(n), ..] if self.wedge.is_none() => Some(n),
                _ => None,
            };
            match table.past_end.iter().find(|p| Some(p.number) == primary) {
                Some(p) => SelectorError::PastEnd(*p),
                None => SelectorError::NotFound(self.text.clone()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        for ok in ["xbd0a", "a", "wd1e", "dk0", "msdos1", "gpt2", "bsd1", "(hd0,msdos1)", "(hd0,msdos1,bsd1)", "(hd0,msdos1,a)", "(hd0,gpt2)", "1", "(hd0,1)", "msdos1,a"] {
            Selector::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["", "()", "(hd0,x9)", "xbd0", "0", "gpt", "q1", "(hd0,gpt1,gpt2)", "a,b", "(,1)", "xbd0z"] {
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
    }
}
