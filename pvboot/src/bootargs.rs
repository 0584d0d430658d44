//! pvboot's own command line (xl's `extra=`): which disk, partition, config
//! or kernel to use, and what to add to the kernel's command line.
//!
//! Words are `key=value` or bare; everything after a lone `--` is passed to
//! the chosen kernel. Known keys: `root=` (`xvda1`, `xvda`, `(hd0,1)`,
//! `(hd1,gpt2)`, `xbd0a`, `dk0`, `msdos1`...), `config=/path`,
//! `kernel=/path`, `module=/path` (repeatable; `initrd=` is the same),
//! `timeout=N`, `entry=N|label`. Other words (e.g. guest-lib's `loglevel=`)
//! are left to their owners.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// What the domain command line asks of pvboot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootArgs {
    /// `root=`: the disk and partition to read.
    pub root: Option<RootSpec>,
    /// `config=`: the one config file to read.
    pub config: Option<String>,
    /// `kernel=`: boot this file with no config.
    pub kernel: Option<String>,
    /// `module=` / `initrd=`, in order.
    pub modules: Vec<String>,
    /// `timeout=`: seconds the menu waits.
    pub timeout: Option<u32>,
    /// `entry=`: the entry to boot (a number from 0, or a title).
    pub entry: Option<String>,
    /// Everything after `--`, for the kernel's command line.
    pub append: String,
}

/// A bad word on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError(pub String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which disk: by position among the domain's disks (`hd0`, `xbd0`: the
/// first) or by Xen name (`xvda`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskRef {
    /// The n-th disk (0 = the first), in pvboot's order (xvda first).
    Index(u32),
    /// A Xen virtual disk name (`xvda`, `xvdb`...).
    Name(String),
}

/// `root=`: a disk, and a partition selector for
/// [`crate::partition::Selector`] (none: the first usable file system).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootSpec {
    /// The disk (`None`: every disk, in order).
    pub disk: Option<DiskRef>,
    /// The partition selector text.
    pub partition: Option<String>,
}

impl RootSpec {
    /// Parses `xvda1`, `xvda`, `(hd0,1)`, `(hd0)`, `xbd0a`, `dk0`, `msdos1`, `1`.
    pub fn parse(text: &str) -> Result<RootSpec, ArgError> {
        let t = text.trim();
        let bad = || ArgError(alloc::format!("bad root '{text}' (try xvda1, (hd0,1), xbd0a, msdos1)"));
        if t.is_empty() {
            return Err(bad());
        }
        // GRUB form: (hdN[,parts]).
        if let Some(inner) = t.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
            let (disk, parts) = inner.split_once(',').unwrap_or((inner, ""));
            let n = disk.strip_prefix("hd").and_then(small_number).ok_or_else(bad)?;
            let partition = (!parts.is_empty()).then(|| alloc::format!("(hd{n},{parts})"));
            return Ok(RootSpec { disk: Some(DiskRef::Index(n)), partition });
        }
        // Linux form: xvdX[N].
        if let Some(rest) = t.strip_prefix("xvd") {
            let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            if letters == 0 {
                return Err(bad());
            }
            let (name, num) = t.split_at(3 + letters);
            if num.is_empty() {
                return Ok(RootSpec { disk: Some(DiskRef::Name(name.to_string())), partition: None });
            }
            small_number(num).filter(|&n| n > 0).ok_or_else(bad)?;
            return Ok(RootSpec { disk: Some(DiskRef::Name(name.to_string())), partition: Some(num.to_string()) });
        }
        // NetBSD form: xbdNx (the partition letter is the selector).
        if let Some(rest) = t.strip_prefix("xbd") {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let n = small_number(&rest[..digits]).ok_or_else(bad)?;
            let letter = &rest[digits..];
            if letter.is_empty() {
                return Ok(RootSpec { disk: Some(DiskRef::Index(n)), partition: None });
            }
            return Ok(RootSpec { disk: Some(DiskRef::Index(n)), partition: Some(t.to_string()) });
        }
        // A bare selector (dk0, msdos1, gpt2, a, 1) on whichever disk has it.
        crate::partition::Selector::parse(t).map_err(|_| bad())?;
        Ok(RootSpec { disk: None, partition: Some(t.to_string()) })
    }
}

fn small_number(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl BootArgs {
    /// Parses the domain command line.
    pub fn parse(cmdline: &str) -> Result<BootArgs, ArgError> {
        let mut a = BootArgs::default();
        let (own, append) = match cmdline.split_once(" -- ") {
            Some((own, rest)) => (own, rest.trim()),
            None => match cmdline.trim_end().strip_suffix(" --") {
                Some(own) => (own, ""),
                None if cmdline.trim() == "--" => ("", ""),
                None => match cmdline.trim_start().strip_prefix("-- ") {
                    Some(rest) => ("", rest.trim()),
                    None => (cmdline, ""),
                },
            },
        };
        a.append = append.to_string();
        for w in own.split_ascii_whitespace() {
            let Some((k, v)) = w.split_once('=') else { continue };
            let need = |v: &str| {
                if v.is_empty() {
                    Err(ArgError(alloc::format!("{k}= needs a value")))
                } else {
                    Ok(v.to_string())
                }
            };
            match k {
                "root" => a.root = Some(RootSpec::parse(v)?),
                "config" => a.config = Some(need(v)?),
                "kernel" => a.kernel = Some(need(v)?),
                "module" | "initrd" => a.modules.push(need(v)?),
                "timeout" => {
                    a.timeout = Some(
                        small_number(v).ok_or_else(|| ArgError(alloc::format!("bad timeout '{v}' (seconds, 0-9999)")))?,
                    )
                }
                "entry" => a.entry = Some(need(v)?),
                _ => {}
            }
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_root_and_append() {
        let a = BootArgs::parse("loglevel=debug kernel=/boot/hello root=xvda1 -- console=hvc0 quiet").unwrap();
        assert_eq!(a.kernel.as_deref(), Some("/boot/hello"));
        assert_eq!(
            a.root,
            Some(RootSpec { disk: Some(DiskRef::Name("xvda".into())), partition: Some("1".into()) })
        );
        assert_eq!(a.append, "console=hvc0 quiet");
        let a = BootArgs::parse("kernel=/k --").unwrap();
        assert_eq!((a.kernel.as_deref(), a.append.as_str()), (Some("/k"), ""));
        let a = BootArgs::parse("-- a=b").unwrap();
        assert_eq!((a.kernel, a.append.as_str()), (None, "a=b"));
        let a = BootArgs::parse("initrd=/i module=/m timeout=3 entry=Linux config=/boot.cfg").unwrap();
        assert_eq!(a.modules, ["/i", "/m"]);
        assert_eq!((a.timeout, a.entry.as_deref(), a.config.as_deref()), (Some(3), Some("Linux"), Some("/boot.cfg")));
    }

    #[test]
    fn root_forms() {
        let r = |s| RootSpec::parse(s).unwrap();
        assert_eq!(r("xvdb"), RootSpec { disk: Some(DiskRef::Name("xvdb".into())), partition: None });
        assert_eq!(r("(hd0,1)"), RootSpec { disk: Some(DiskRef::Index(0)), partition: Some("(hd0,1)".into()) });
        assert_eq!(r("(hd1)"), RootSpec { disk: Some(DiskRef::Index(1)), partition: None });
        assert_eq!(r("xbd0a"), RootSpec { disk: Some(DiskRef::Index(0)), partition: Some("xbd0a".into()) });
        assert_eq!(r("msdos1"), RootSpec { disk: None, partition: Some("msdos1".into()) });
        for bad in ["", "xvd", "xvda0", "(sd0,1)", "(hd,1)", "xbdq", "nonsense!", "xvda99999"] {
            assert!(RootSpec::parse(bad).is_err(), "{bad}");
        }
        assert!(BootArgs::parse("timeout=x").is_err());
        assert!(BootArgs::parse("kernel=").is_err());
    }
}
