//! xl disk specifications (xl-disk-configuration(5)): what a `disk = [...]`
//! entry asks for, parsed the way libxlu's disk lexer does, and the virtual
//! device numbers libxl derives from `vdev` names.

use std::path::PathBuf;

/// The image format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A raw image: a regular file or a block device.
    Raw,
    /// qcow.
    Qcow,
    /// qcow2.
    Qcow2,
    /// VHD.
    Vhd,
    /// QED.
    Qed,
    /// No medium (an empty CD-ROM drive).
    Empty,
}

impl Format {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "" | "raw" => Format::Raw,
            "qcow" => Format::Qcow,
            "qcow2" => Format::Qcow2,
            "vhd" => Format::Vhd,
            "qed" => Format::Qed,
            "empty" => Format::Empty,
            _ => return None,
        })
    }

    /// The name xl uses.
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow => "qcow",
            Format::Qcow2 => "qcow2",
            Format::Vhd => "vhd",
            Format::Qed => "qed",
            Format::Empty => "empty",
        }
    }
}

/// One parsed `disk` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpec {
    /// The image file or block device (relative paths are relative to the
    /// current directory, like `kernel`).
    pub target: PathBuf,
    /// The image format (only raw is served).
    pub format: Format,
    /// The guest's name for the disk (`xvda`, `hda`, `sdb1`, `d0p0`...).
    pub vdev: String,
    /// The virtual device number derived from `vdev` (xenstore directory name).
    pub devid: u32,
    /// Read-only (`access=ro`, `r`, or a CD-ROM).
    pub readonly: bool,
    /// `devtype=cdrom` / `cdrom`.
    pub cdrom: bool,
    /// `discard` / `no-discard` (default: offer discard).
    pub discard: bool,
    /// `direct-io-safe`.
    pub direct_io_safe: bool,
    /// `trusted` / `untrusted` (default trusted), passed to the frontend.
    pub trusted: bool,
    /// `backendtype`, if given (informational: Xenolith is the only backend).
    pub backendtype: Option<String>,
}

/// What is wrong with a disk specification.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiskSpecError {
    /// A `key=value` with an unknown key.
    #[error("unknown parameter `{0}`")]
    UnknownParameter(String),
    /// A `prefix:` xl does not know.
    #[error("unknown deprecated disk prefix `{0}`")]
    UnknownPrefix(String),
    /// A parameter given twice with different values.
    #[error("{0} respecified")]
    Respecified(&'static str),
    /// A value that is not one of the parameter's values.
    #[error("unknown value for {key}: `{value}`")]
    BadValue {
        /// The parameter.
        key: &'static str,
        /// The value.
        value: String,
    },
    /// More than target, format, vdev and access.
    #[error("too many positional parameters (at `{0}`)")]
    TooManyPositional(String),
    /// No `vdev`.
    #[error("no vdev given (e.g. `'format=raw, vdev=xvda, access=rw, target=/path'`)")]
    MissingVdev,
    /// No target for a disk that needs one.
    #[error("no target (image file or device) given")]
    MissingTarget,
    /// A `vdev` that is not a disk name libxl understands.
    #[error("invalid vdev `{0}` (expected e.g. xvda, xvdb1, hda, sda, d0p0 or a device number)")]
    BadVdev(String),
    /// A target with a NUL byte, which no file name can hold (shown escaped).
    #[error("target `{0}` contains a NUL byte")]
    NulInTarget(String),
    /// Valid xl, but not something this backend serves.
    #[error("{0} is not supported by Xenolith's block backend")]
    Unsupported(String),
}

/// Virtual device number of a `vdev` name, as libxl's
/// `libxl__device_disk_dev_number` computes it: `xvdX[N]` and `dXpN` give
/// `(202 << 8) | (disk << 4) | part` for small numbers and the extended
/// `(1 << 28) | (disk << 8) | part` otherwise; `hdX[N]` and `sdX[N]` use
/// the IDE and SCSI majors; a plain number is taken as is.
pub fn vdev_number(vdev: &str) -> Option<u32> {
    let xen = |disk: u32, part: u32| {
        if disk <= 15 && part <= 15 {
            (202 << 8) | (disk << 4) | part
        } else {
            (1 << 28) | (disk << 8) | part
        }
    };
    if let Some((disk, part)) = parse_dp(vdev) {
        return Some(xen(disk, part));
    }
    if let Some((disk, part)) = virtdisk(vdev, "xvd", (1 << 20) - 1, 255) {
        return Some(xen(disk, part));
    }
    if let Some(n) = parse_c_ulong(vdev) {
        return u32::try_from(n).ok().filter(|&n| n <= i32::MAX as u32);
    }
    if let Some((disk, part)) = virtdisk(vdev, "hd", 3, 63) {
        return Some((if disk < 2 { 3 } else { 22 } << 8) | ((disk & 1) << 6) | part);
    }
    if let Some((disk, part)) = virtdisk(vdev, "sd", 15, 15) {
        return Some((8 << 8) | (disk << 4) | part);
    }
    None
}

/// `d<disk>p<part>` with disk < 2^20 and part < 256.
fn parse_dp(s: &str) -> Option<(u32, u32)> {
    let rest = s.strip_prefix('d')?;
    let (d, p) = rest.split_once('p')?;
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    if !digits(d) || !digits(p) {
        return None;
    }
    let (disk, part) = (d.parse::<u32>().ok()?, p.parse::<u32>().ok()?);
    (disk < (1 << 20) && part < 256).then_some((disk, part))
}

/// strtoul(s, &end, 0) consuming all of `s`: decimal, 0x hex or 0 octal.
fn parse_c_ulong(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().next()?.is_ascii_digit() {
        return None;
    }
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

/// `<prefix><letters>[<partition>]`: letters are a bijective base-26 disk
/// index (a = 0, z = 25, aa = 26), the partition has no leading zero.
fn virtdisk(s: &str, prefix: &str, max_disk: u32, max_part: u32) -> Option<(u32, u32)> {
    let rest = s.strip_prefix(prefix)?;
    let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    if letters == 0 {
        return None;
    }
    let mut disk: i64 = -1;
    for b in rest[..letters].bytes() {
        disk = (disk + 1) * 26 + i64::from(b - b'a');
        if disk > i64::from(max_disk) {
            return None;
        }
    }
    let part = &rest[letters..];
    let part = if part.is_empty() {
        0
    } else {
        if part.starts_with('0') || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse::<u32>().ok().filter(|&p| p <= max_part)?
    };
    Some((disk as u32, part))
}

/// The state of a parse, as libxlu's DiskParseContext.
#[derive(Default)]
struct Parse {
    target: Option<String>,
    format: Option<Format>,
    vdev: Option<String>,
    access: Option<bool>,
    access_set: bool,
    had_depr_prefix: bool,
    cdrom: Option<bool>,
    discard: Option<bool>,
    direct_io_safe: bool,
    trusted: Option<bool>,
    backend: Option<String>,
    backendtype: Option<String>,
    script: Option<String>,
    specification: Option<String>,
    colo: bool,
}

/// Sets a string once; an empty earlier value may be overwritten (savestring).
fn save(slot: &mut Option<String>, what: &'static str, value: &str) -> Result<(), DiskSpecError> {
    match slot {
        Some(old) if !old.is_empty() => Err(DiskSpecError::Respecified(what)),
        _ => {
            *slot = Some(value.to_string());
            Ok(())
        }
    }
}

fn set_format(p: &mut Parse, value: &str) -> Result<(), DiskSpecError> {
    let f = Format::parse(value).ok_or_else(|| DiskSpecError::BadValue { key: "format", value: value.into() })?;
    match p.format {
        Some(old) if old != f => Err(DiskSpecError::Respecified("format")),
        _ => {
            p.format = Some(f);
            Ok(())
        }
    }
}

fn set_access(p: &mut Parse, value: &str) -> Result<(), DiskSpecError> {
    p.access = Some(match value {
        "r" | "ro" => false,
        "rw" | "w" | "" => true,
        _ => return Err(DiskSpecError::BadValue { key: "access", value: value.into() }),
    });
    Ok(())
}

/// `vdev:devtype` (deprecated): returns false if there is no colon.
fn vdev_and_devtype(p: &mut Parse, s: &str) -> Result<bool, DiskSpecError> {
    let Some((vdev, devtype)) = s.rsplit_once(':') else { return Ok(false) };
    save(&mut p.vdev, "vdev", vdev)?;
    p.cdrom = Some(match devtype {
        "cdrom" => true,
        "disk" => false,
        _ => return Err(DiskSpecError::BadValue { key: "devtype", value: devtype.into() }),
    });
    Ok(true)
}

fn positional(p: &mut Parse, s: &str) -> Result<(), DiskSpecError> {
    if p.target.is_none() {
        save(&mut p.target, "target", s)
    } else if !p.had_depr_prefix && p.format.is_none() {
        if p.target.as_deref() == Some("") && vdev_and_devtype(p, s)? {
            p.format = Some(Format::Empty);
            Ok(())
        } else {
            set_format(p, s)
        }
    } else if p.vdev.is_none() {
        if !vdev_and_devtype(p, s)? {
            save(&mut p.vdev, "vdev", s)?;
        }
        Ok(())
    } else if !p.access_set {
        p.access_set = true;
        set_access(p, s)
    } else {
        Err(DiskSpecError::TooManyPositional(s.into()))
    }
}

/// The deprecated `prefix:` at the start of `s`, if any: `(prefix, known)`.
fn prefix(s: &str) -> Option<(&str, bool)> {
    let colon = s.find(':')?;
    let name = &s[..colon];
    let mut bytes = name.bytes();
    if !bytes.next().is_some_and(|b| b.is_ascii_lowercase()) || !bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return None;
    }
    const KNOWN: [&str; 14] =
        ["raw", "qcow", "qcow2", "vhd", "iscsi", "nbd", "enbd", "drbd", "tapdisk", "tap", "tap2", "aio", "ioemu", "file"];
    if KNOWN.contains(&name) || name == "phy" {
        return Some((name, true));
    }
    // Unknown prefixes only count when not followed by [a-z0-9] (so that
    // `hdc:cdrom` stays a vdev with a devtype).
    let next = s.as_bytes().get(colon + 1);
    if next.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        None
    } else {
        Some((name, false))
    }
}

/// Parses one `disk` entry.
pub fn parse(spec: &str) -> Result<DiskSpec, DiskSpecError> {
    let mut p = Parse::default();
    let mut rest = spec;
    loop {
        rest = rest.trim_start_matches([' ', '\t', '\n']);
        if rest.is_empty() {
            break;
        }
        // target= swallows the rest of the spec, commas included.
        if let Some(t) = rest.strip_prefix("target=") {
            save(&mut p.target, "target", t.strip_suffix(',').unwrap_or(t))?;
            break;
        }
        if let Some((name, known)) = prefix(rest) {
            if !known {
                return Err(DiskSpecError::UnknownPrefix(format!("{name}:")));
            }
            p.had_depr_prefix = true;
            match name {
                "raw" | "qcow" | "qcow2" | "vhd" => set_format(&mut p, name)?,
                "iscsi" | "nbd" | "enbd" | "drbd" => save(&mut p.script, "script", &format!("block-{name}"))?,
                _ => {} // tap:, aio:, file:, phy:... are ignored, as in xl
            }
            rest = &rest[name.len() + 1..];
            continue;
        }
        let (token, next) = match rest.find(',') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        rest = next;
        if let Some((key, value)) = token.split_once('=') {
            match key {
                "format" => set_format(&mut p, value)?,
                "access" => set_access(&mut p, value)?,
                "vdev" => save(&mut p.vdev, "vdev", value)?,
                "devtype" => {
                    p.cdrom = Some(match value {
                        "cdrom" => true,
                        "disk" => false,
                        _ => return Err(DiskSpecError::BadValue { key: "devtype", value: value.into() }),
                    })
                }
                "backend" => save(&mut p.backend, "backend", value)?,
                "backendtype" => match value {
                    "phy" | "qdisk" | "tap" | "standalone" => save(&mut p.backendtype, "backendtype", value)?,
                    _ => return Err(DiskSpecError::BadValue { key: "backendtype", value: value.into() }),
                },
                "specification" => match value {
                    "xen" | "virtio" => save(&mut p.specification, "specification", value)?,
                    _ => return Err(DiskSpecError::BadValue { key: "specification", value: value.into() }),
                },
                "script" => save(&mut p.script, "script", value)?,
                "grant_usage" if value == "0" || value == "1" => {}
                "colo-host" | "colo-port" | "colo-export" | "active-disk" | "hidden-disk" => p.colo = true,
                _ => return Err(DiskSpecError::UnknownParameter(token.into())),
            }
            continue;
        }
        match token {
            "cdrom" => p.cdrom = Some(true),
            "direct-io-safe" => p.direct_io_safe = true,
            "discard" => p.discard = Some(true),
            "no-discard" => p.discard = Some(false),
            "colo" => p.colo = true,
            "no-colo" => {}
            "trusted" => p.trusted = Some(true),
            "untrusted" => p.trusted = Some(false),
            _ => positional(&mut p, token)?,
        }
    }
    finish(p)
}

/// Applies defaults and refuses what this backend cannot serve.
fn finish(p: Parse) -> Result<DiskSpec, DiskSpecError> {
    let vdev = p.vdev.filter(|v| !v.is_empty()).ok_or(DiskSpecError::MissingVdev)?;
    let devid = vdev_number(&vdev).ok_or_else(|| DiskSpecError::BadVdev(vdev.clone()))?;
    let cdrom = p.cdrom.unwrap_or(false);
    let format = p.format.unwrap_or(Format::Raw);
    if let Some(s) = p.script {
        return Err(DiskSpecError::Unsupported(format!("script `{s}` (hotplug scripts)")));
    }
    if p.specification.as_deref() == Some("virtio") || p.backendtype.as_deref() == Some("standalone") {
        return Err(DiskSpecError::Unsupported("specification=virtio".into()));
    }
    if let Some(b) = p.backend.filter(|b| !b.is_empty() && b != "0" && b != "Domain-0") {
        return Err(DiskSpecError::Unsupported(format!("backend domain `{b}` (driver domains)")));
    }
    if p.colo {
        return Err(DiskSpecError::Unsupported("COLO".into()));
    }
    let target = p.target.filter(|t| !t.is_empty());
    if let Some(t) = target.as_deref().filter(|t| t.contains('\0')) {
        return Err(DiskSpecError::NulInTarget(t.escape_debug().to_string()));
    }
    if cdrom && p.access == Some(true) {
        log::warn!("disk '{}': a CD-ROM is read-only; serving it read-only although access is rw (as xl does)", target.as_deref().unwrap_or_default().escape_debug());
    }
    if format == Format::Empty || target.is_none() {
        return Err(if cdrom {
            DiskSpecError::Unsupported("an empty CD-ROM drive".into())
        } else {
            DiskSpecError::MissingTarget
        });
    }
    if format != Format::Raw {
        return Err(DiskSpecError::Unsupported(format!("format {}", format.name())));
    }
    Ok(DiskSpec {
        target: PathBuf::from(target.unwrap_or_default()),
        format,
        vdev,
        devid,
        // A CD-ROM is read-only whatever `access` says, as in xl (and as
        // the medium is); the backend advertises it so.
        readonly: cdrom || !p.access.unwrap_or(true),
        cdrom,
        discard: p.discard.unwrap_or(true),
        direct_io_safe: p.direct_io_safe,
        trusted: p.trusted.unwrap_or(true),
        backendtype: p.backendtype,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> DiskSpec {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn vdev_numbers_match_libxl() {
        assert_eq!(vdev_number("xvda"), Some(51712));
        assert_eq!(vdev_number("xvdb"), Some(51728));
        assert_eq!(vdev_number("xvda1"), Some(51713));
        assert_eq!(vdev_number("xvdp15"), Some((202 << 8) | (15 << 4) | 15));
        assert_eq!(vdev_number("xvdq"), Some((1 << 28) | (16 << 8)), "disk 16 is extended");
        assert_eq!(vdev_number("xvda16"), Some((1 << 28) | 16), "partition 16 is extended");
        assert_eq!(vdev_number("xvdaa"), Some((1 << 28) | (26 << 8)));
        assert_eq!(vdev_number("d0p0"), Some(51712));
        assert_eq!(vdev_number("d1p2"), Some(51730));
        assert_eq!(vdev_number("d16p0"), Some((1 << 28) | (16 << 8)));
        assert_eq!(vdev_number("hda"), Some(3 << 8));
        assert_eq!(vdev_number("hdb"), Some((3 << 8) | 64));
        assert_eq!(vdev_number("hdc"), Some(22 << 8));
        assert_eq!(vdev_number("hdd1"), Some((22 << 8) | 64 | 1));
        assert_eq!(vdev_number("sda"), Some(8 << 8));
        assert_eq!(vdev_number("sdb2"), Some((8 << 8) | 16 | 2));
        assert_eq!(vdev_number("0x1"), Some(1));
        assert_eq!(vdev_number("51712"), Some(51712));
        assert_eq!(vdev_number("010"), Some(8), "octal, like strtoul base 0");
        for bad in ["", "xvd", "xvda0", "xvdA", "hde", "hda64", "sdq", "sda16", "d0p256", "dxp1", "vda", "xvda1x", "-1"] {
            assert_eq!(vdev_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn positional_forms() {
        let d = ok("/dev/vg/guest-volume,,hda");
        assert_eq!(
            (d.target.to_str(), d.format, d.vdev.as_str(), d.readonly),
            (Some("/dev/vg/guest-volume"), Format::Raw, "hda", false)
        );
        let d = ok("/dev/vg/guest-volume,raw,hda,rw");
        assert_eq!((d.devid, d.readonly), (768, false));
        let d = ok("/img/disk.img,raw,xvdb,ro");
        assert_eq!((d.vdev.as_str(), d.devid, d.readonly), ("xvdb", 51728, true));
        let d = ok("  /img/a.img , raw,xvda,r");
        assert_eq!(d.target.to_str(), Some("/img/a.img "), "trailing blanks are part of a positional value, as in xl");
    }

    #[test]
    fn deprecated_prefixes() {
        let d = ok("file:/path/disk.img,xvda,w");
        assert_eq!((d.target.to_str(), d.vdev.as_str(), d.readonly), (Some("/path/disk.img"), "xvda", false));
        let d = ok("phy:/dev/sdb,0x1,w");
        assert_eq!((d.target.to_str(), d.devid), (Some("/dev/sdb"), 1));
        let d = ok("tap:aio:/x.img,xvdc,r");
        assert_eq!((d.target.to_str(), d.readonly), (Some("/x.img"), true));
        let d = ok("raw:/x.img,hdc:cdrom,ro");
        assert!(d.cdrom && d.readonly && d.format == Format::Raw);
        assert_eq!(parse("qcow2:/x.img,xvda,w"), Err(DiskSpecError::Unsupported("format qcow2".into())));
        assert_eq!(parse("foo:/x.img,xvda,w"), Err(DiskSpecError::UnknownPrefix("foo:".into())));
        assert!(matches!(parse("nbd:host:1234,xvda,w"), Err(DiskSpecError::Unsupported(_))));
    }

    #[test]
    fn keyword_forms() {
        let d = ok("format=raw, vdev=xvda, access=ro, target=/path");
        assert_eq!((d.target.to_str(), d.vdev.as_str(), d.readonly), (Some("/path"), "xvda", true));
        let d = ok("vdev=xvdb, target=/a,b:c.img");
        assert_eq!(d.target.to_str(), Some("/a,b:c.img"), "target= takes the rest");
        let d = ok("/root/image.iso,raw,hdc,devtype=cdrom");
        assert!(d.cdrom && d.readonly, "CD-ROMs default to read-only");
        let d = ok("/root/image.iso,,hdc,cdrom");
        assert!(d.cdrom && d.readonly);
        let d = ok("/x.img,raw,xvda,w,no-discard,direct-io-safe,untrusted,backendtype=qdisk");
        assert!(!d.discard && d.direct_io_safe && !d.trusted);
        assert_eq!(d.backendtype.as_deref(), Some("qdisk"));
        // Nothing after target= is a parameter: this has no vdev.
        assert_eq!(parse("target=/x.img,vdev=xvda"), Err(DiskSpecError::MissingVdev));
    }

    /// xl serves every CD-ROM read-only, whichever spelling makes it one
    /// and whatever access is asked for.
    #[test]
    fn cdroms_are_read_only_in_every_spelling() {
        for spec in [
            "/i.iso,raw,hdc,w,devtype=cdrom",
            "/i.iso,raw,hdc,rw,cdrom",
            "/i.iso,,hdc,cdrom,access=rw",
            "devtype=cdrom,access=w,vdev=hdc,target=/i.iso",
            "cdrom,access=rw,vdev=xvdc,target=/i.iso",
            "/i.iso,raw,hdc:cdrom,w",
            "/i.iso,raw,hdc:cdrom,rw",
            "raw:/i.iso,hdc:cdrom,w",
            "file:/i.iso,hdc:cdrom,w",
            "phy:/i.iso,xvdc:cdrom,rw",
        ] {
            let d = ok(spec);
            assert!(d.cdrom, "{spec}: is a CD-ROM");
            assert!(d.readonly, "{spec}: must be read-only");
        }
        let d = ok("/i.img,raw,hdc,w,devtype=disk");
        assert!(!d.cdrom && !d.readonly);
    }

    #[test]
    fn errors() {
        assert_eq!(parse("/x.img,raw"), Err(DiskSpecError::MissingVdev));
        assert_eq!(parse("/x.img,xvda,w"), Err(DiskSpecError::BadValue { key: "format", value: "xvda".into() }));
        assert_eq!(parse("/x.img,raw,xvda,rx"), Err(DiskSpecError::BadValue { key: "access", value: "rx".into() }));
        assert_eq!(parse("/x.img,raw,xvda,r,extra"), Err(DiskSpecError::TooManyPositional("extra".into())));
        assert_eq!(parse("vdev=xvda,vdev=xvdb,target=/x"), Err(DiskSpecError::Respecified("vdev")));
        assert_eq!(parse("format=raw,format=vhd,vdev=xvda,target=/x"), Err(DiskSpecError::Respecified("format")));
        assert_eq!(parse("colour=blue,vdev=xvda,target=/x"), Err(DiskSpecError::UnknownParameter("colour=blue".into())));
        assert_eq!(parse("vdev=xvda"), Err(DiskSpecError::MissingTarget));
        assert_eq!(parse("/x,raw,vda"), Err(DiskSpecError::BadVdev("vda".into())));
        assert_eq!(parse(",raw,hdc:cdrom,r"), Err(DiskSpecError::Unsupported("an empty CD-ROM drive".into())));
        assert!(matches!(parse("/x,raw,xvda,w,script=block-foo"), Err(DiskSpecError::Unsupported(_))));
        assert!(matches!(parse("/x,raw,xvda,w,specification=virtio"), Err(DiskSpecError::Unsupported(_))));
        assert!(matches!(parse("/x,raw,xvda,w,backend=driverdom"), Err(DiskSpecError::Unsupported(_))));
        assert!(matches!(parse("/x,raw,hdc,devtype=floppy"), Err(DiskSpecError::BadValue { key: "devtype", .. })));
        assert_eq!(parse(""), Err(DiskSpecError::MissingVdev));
    }
}
