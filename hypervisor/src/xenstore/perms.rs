//! Node permissions (xenstore.txt "permissions").
//!
//! A node has one or more entries. The first names the owner, who always
//! has full access, and gives the access of every domain without an entry
//! of its own. Later entries grant `r`, `w`, `b` (both) or `n` (none) to
//! one domain. Privileged callers (domain 0) bypass all of it.

use std::fmt;

use xen_abi::DomId;

use super::XsError;

/// Read access (XS_PERM_READ).
pub const READ: u8 = 0x01;
/// Write access (XS_PERM_WRITE).
pub const WRITE: u8 = 0x02;
/// Owner rights: change permissions (XS_PERM_OWNER, internal).
pub const OWNER: u8 = 0x08;

/// What one permission entry grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`: nothing.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    /// The XS_PERM_* bits.
    pub fn bits(self) -> u8 {
        match self {
            Access::None => 0,
            Access::Read => READ,
            Access::Write => WRITE,
            Access::Both => READ | WRITE,
        }
    }

    fn letter(self) -> char {
        match self {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        }
    }
}

/// One permission entry: a domain and its access (`r1`, `n0`...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Perm {
    /// The domain the entry is about (for the first entry: the owner).
    pub domid: DomId,
    /// Its access (for the first entry: everyone else's default).
    pub access: Access,
}

impl Perm {
    /// An entry.
    pub const fn new(domid: DomId, access: Access) -> Self {
        Perm { domid, access }
    }

    /// Parses one entry as xs_strings_to_perms does: a letter then a
    /// number in C's `strtol(.., 0)` syntax (decimal, 0x hex, 0 octal).
    pub fn parse(s: &[u8]) -> Result<Perm, XsError> {
        let (&letter, num) = s.split_first().ok_or(XsError::Inval)?;
        let access = match letter {
            b'r' => Access::Read,
            b'w' => Access::Write,
            b'b' => Access::Both,
            b'n' => Access::None,
            _ => return Err(XsError::Inval),
        };
        let num = std::str::from_utf8(num).map_err(|_| XsError::Inval)?;
        let (digits, radix) = if let Some(h) = num.strip_prefix("0x").or_else(|| num.strip_prefix("0X")) {
            (h, 16)
        } else if num.len() > 1 && num.starts_with('0') {
            (&num[1..], 8)
        } else {
            (num, 10)
        };
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return Err(XsError::Inval);
        }
        let domid = u32::from_str_radix(digits, radix).ok().and_then(|d| DomId::try_from(d).ok()).ok_or(XsError::Inval)?;
        Ok(Perm { domid, access })
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.access.letter(), self.domid)
    }
}

/// A node's permission list; never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Perms(Vec<Perm>);

impl Perms {
    /// A list owned by `owner` giving everyone else `default`.
    pub fn owned(owner: DomId, default: Access) -> Self {
        Perms(vec![Perm::new(owner, default)])
    }

    /// A list from entries; `None` if empty.
    pub fn new(entries: Vec<Perm>) -> Option<Self> {
        (!entries.is_empty()).then_some(Perms(entries))
    }

    /// Parses the NUL-terminated entries of a SET_PERMS payload.
    pub fn parse_strings<'a>(strings: impl IntoIterator<Item = &'a [u8]>) -> Result<Self, XsError> {
        let entries = strings.into_iter().map(Perm::parse).collect::<Result<Vec<_>, _>>()?;
        Perms::new(entries).ok_or(XsError::Inval)
    }

    /// The entries.
    pub fn entries(&self) -> &[Perm] {
        &self.0
    }

    /// The owning domain.
    pub fn owner(&self) -> DomId {
        self.0[0].domid
    }

    /// Replaces the owner, keeping its default access (what a domain that
    /// creates a node gets, as in C xenstored's construct_node).
    pub fn set_owner(&mut self, owner: DomId) {
        self.0[0].domid = owner;
    }

    /// Whether `domid` appears anywhere in the list.
    pub fn mentions(&self, domid: DomId) -> bool {
        self.0.iter().any(|p| p.domid == domid)
    }

    /// Drops the entries (other than the owner's) that name `domid`: used
    /// when that domain goes away so a later domain with the same id does
    /// not inherit its grants.
    pub fn forget(&mut self, domid: DomId) {
        let owner = self.0[0];
        let mut rest: Vec<Perm> = self.0[1..].iter().copied().filter(|p| p.domid != domid).collect();
        rest.insert(0, owner);
        self.0 = rest;
    }

    /// The XS_PERM bits `domid` has (perm_for_conn).
    pub fn access_for(&self, domid: DomId, privileged: bool) -> u8 {
        if privileged || self.owner() == domid {
            return READ | WRITE | OWNER;
        }
        self.0[1..].iter().find(|p| p.domid == domid).unwrap_or(&self.0[0]).access.bits()
    }

    /// The GET_PERMS payload: each entry followed by a NUL.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.0 {
            out.extend_from_slice(p.to_string().as_bytes());
            out.push(0);
        }
        out
    }
}

impl fmt::Display for Perms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        assert_eq!(Perm::parse(b"r1").unwrap(), Perm::new(1, Access::Read));
        assert_eq!(Perm::parse(b"b0x10").unwrap(), Perm::new(16, Access::Both));
        assert_eq!(Perm::parse(b"w010").unwrap(), Perm::new(8, Access::Write));
        assert_eq!(Perm::parse(b"n0").unwrap().to_string(), "n0");
        for bad in [&b""[..], b"r", b"x1", b"r1x", b"r-1", b"r65536", b"r 1", b"r\xff"] {
            assert_eq!(Perm::parse(bad), Err(XsError::Inval), "{bad:?}");
        }
        let p = Perms::parse_strings([&b"n0"[..], b"r1"]).unwrap();
        assert_eq!(p.to_wire(), b"n0\0r1\0");
        assert!(Perms::parse_strings(std::iter::empty()).is_err());
    }

    #[test]
    fn access_rules() {
        // Owned by 0, default none, domain 1 may read, domain 2 may write.
        let p = Perms::parse_strings([&b"n0"[..], b"r1", b"w2"]).unwrap();
        assert_eq!(p.access_for(1, false), READ);
        assert_eq!(p.access_for(2, false), WRITE);
        assert_eq!(p.access_for(3, false), 0);
        assert_eq!(p.access_for(3, true), READ | WRITE | OWNER);
        // The owner always has full access, whatever its own entry says.
        let q = Perms::parse_strings([&b"n5"[..], b"n5"]).unwrap();
        assert_eq!(q.access_for(5, false), READ | WRITE | OWNER);
        // The first entry is everyone else's default.
        let r = Perms::owned(0, Access::Read);
        assert_eq!(r.access_for(9, false), READ);
        let mut s = Perms::parse_strings([&b"n0"[..], b"r1", b"b2"]).unwrap();
        s.forget(1);
        assert_eq!(s.to_string(), "n0 b2");
    }
}
