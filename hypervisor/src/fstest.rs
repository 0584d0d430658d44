//! `xenolith fstest`: pvboot's disk and file-system code run on an image file.
//!
//! `xenolith fstest IMAGE[:PARTITION] (ls|cat|stat|probe|partitions) [PATH]`
//!
//! - IMAGE is split at its last `:` unless a file of the whole name exists;
//!   PARTITION is any pvboot selector (`xbd0a`, `a`, `dk0`, `msdos1`, `gpt2`,
//!   `(hd0,msdos1,bsd1)`, `1`).
//! - Without PARTITION, a disk with a partition table uses the first
//!   partition holding a recognized file system (disklabel partitions first,
//!   raw `c`/`d` last, then MBR/GPT order); a disk without one is used whole.
//! - `ls [PATH]` prints `ls -l`-style lines (PATH defaults to `/`; a
//!   directory lists its entries sorted by name without `.` and `..`);
//!   `cat PATH` writes the file's bytes to stdout; `stat PATH` describes the
//!   path itself (symlinks not followed); `probe` prints the file system and
//!   partition table; `partitions` lists the table with NetBSD and GRUB names.
//! - Any failure prints one line, `xenolith fstest: IMAGE: <cause>`, and exits 1.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::rc::Rc;

use pvboot::disk::{Cache, FileDisk};
use pvboot::fs::{FileSystem, FileType, Metadata, Node};
use pvboot::partition::{self, gpt, mbr, disklabel, Kind, Scheme};
use pvboot::volume;

/// Arguments of `xenolith fstest IMAGE[:PARTITION] COMMAND [PATH]`.
#[derive(clap::Args)]
pub struct FstestArgs {
    /// Disk image, optionally with a partition (IMG:xbd0a, IMG:msdos1, IMG:gpt2).
    pub image: String,
    /// One of ls, cat, stat, probe, partitions.
    pub command: String,
    /// Path inside the file system.
    pub path: Option<String>,
}

/// NetBSD's name for the (first) Xen block device.
const NETBSD_DISK: &str = "xbd0";
/// GRUB's name for the first disk.
const GRUB_DISK: &str = "hd0";
/// Bytes per read for `cat`: large, so bulk data bypasses the cache.
const CAT_CHUNK: usize = 4 << 20;

type Disk = Rc<Cache<FileDisk>>;

/// Runs one fstest command and reports errors as one line.
pub fn run(args: &FstestArgs) -> ExitCode {
    let (image, part) = split_image(&args.image);
    // A panic would be a pvboot bug; still report it in the one-line format.
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(|| execute(&image, part.as_deref(), args));
    let _ = std::panic::take_hook();
    let err = match result {
        Ok(Ok(())) => return ExitCode::SUCCESS,
        Ok(Err(e)) => e,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            format!("internal error: {msg}")
        }
    };
    eprintln!("xenolith fstest: {image}: {}", err.replace('\n', " "));
    ExitCode::FAILURE
}

fn split_image(arg: &str) -> (String, Option<String>) {
    if Path::new(arg).exists() {
        return (arg.to_string(), None);
    }
    match arg.rsplit_once(':') {
        Some((img, part)) if !img.is_empty() => (img.to_string(), Some(part.to_string())),
        _ => (arg.to_string(), None),
    }
}

fn execute(image: &str, part: Option<&str>, args: &FstestArgs) -> Result<(), String> {
    // Through `input`: a FIFO or a device other than a disk is refused
    // before pvboot reads from it.
    let opened = xenolith::input::open_disk(Path::new(image), "disk image", false).map_err(|e| e.to_string())?;
    let file = FileDisk::from_file(opened.file, opened.size);
    let disk: Disk = Rc::new(Cache::new(file).map_err(|e| e.to_string())?);
    let mut out = io::stdout().lock();
    let path = args.path.as_deref();
    let res = match args.command.as_str() {
        "partitions" => partitions(&disk, &mut out),
        "probe" => probe(&disk, part, &mut out),
        "ls" => {
            let v = open(&disk, part)?;
            ls(&*v.fs, path.unwrap_or("/"), &mut out)
        }
        "cat" => {
            let p = path.ok_or("cat needs a PATH")?;
            let v = open(&disk, part)?;
            cat(&*v.fs, p, &mut out)
        }
        "stat" => {
            let p = path.ok_or("stat needs a PATH")?;
            let v = open(&disk, part)?;
            stat(&*v.fs, p, &mut out)
        }
        other => Err(format!("unknown command '{other}' (ls, cat, stat, probe, partitions)")),
    };
    match res {
        Err(e) => Err(e),
        Ok(()) => match out.flush() {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.to_string()),
            _ => Ok(()),
        },
    }
}

fn open(disk: &Disk, part: Option<&str>) -> Result<volume::Volume, String> {
    volume::open(disk.clone(), disk.sector_size(), part).map_err(|e| e.to_string())
}

/// Maps a write error: a closed pipe (`| head`) is a normal end.
fn write_ok(r: io::Result<()>) -> Result<(), String> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!("stdout: {e}")),
        Ok(()) => Ok(()),
    }
}

fn type_string(kind: &Kind) -> String {
    match kind {
        Kind::Primary(t) | Kind::Logical(t) => format!("0x{t:02x} {}", mbr::type_name(*t)),
        Kind::Gpt(g) => format!("{} {}", gpt::guid_string(g), gpt::type_name(g)),
        Kind::Bsd(t) => format!("{t} {}", disklabel::fstype_name(*t)),
    }
}

fn partitions(disk: &Disk, out: &mut impl Write) -> Result<(), String> {
    let table = partition::read_table(&**disk, disk.sector_size()).map_err(|e| e.to_string())?;
    let mut s = String::new();
    let backup = if table.gpt_backup_used { " (primary header bad, backup used)" } else { "" };
    let _ = writeln!(s, "table: {}{backup}", table.scheme.name());
    if table.scheme != Scheme::None {
        let _ = writeln!(s, "{:<8} {:<20} {:>12} {:>12} {:<6} TYPE", "NETBSD", "GRUB", "START", "SECTORS", "FS");
    }
    for e in &table.entries {
        let fs = volume::probe_entry(&**disk, &table, e).map_or("-", |k| k.name());
        let netbsd = e.netbsd_name(NETBSD_DISK).unwrap_or_else(|| "-".into());
        let mut ty = type_string(&e.kind);
        if !e.label.is_empty() {
            let _ = write!(ty, " \"{}\"", e.label);
        }
        let _ = writeln!(s, "{netbsd:<8} {:<20} {:>12} {:>12} {fs:<6} {ty}", e.grub_name(GRUB_DISK), e.start, e.sectors);
    }
    write_ok(out.write_all(s.as_bytes()))
}

fn probe(disk: &Disk, part: Option<&str>, out: &mut impl Write) -> Result<(), String> {
    let v = open(disk, part)?;
    let mut s = format!("fs: {}\ntable: {}\n", v.fs.kind(), v.table.scheme.name());
    if let Some(e) = &v.entry {
        let netbsd = e.netbsd_name(NETBSD_DISK).unwrap_or_else(|| "-".into());
        let _ = writeln!(s, "partition: {} {netbsd}", e.grub_name(GRUB_DISK));
    }
    write_ok(out.write_all(s.as_bytes()))
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn time_string(secs: i64, with_seconds: bool) -> String {
    let (y, mo, d) = civil_from_days(secs.div_euclid(86400));
    let t = secs.rem_euclid(86400);
    let (h, mi, se) = (t / 3600, t / 60 % 60, t % 60);
    if with_seconds {
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{se:02}")
    } else {
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}")
    }
}

fn nlink(m: &Metadata) -> String {
    m.nlink.map_or_else(|| "?".to_string(), |n| n.to_string())
}

fn ls_line(fs: &dyn FileSystem, name: &str, node: &Node) -> String {
    let m = &node.meta;
    let mut line = format!(
        "{} {:>3} {:>5} {:>5} {:>10} {} {name}",
        m.mode_string(),
        nlink(m),
        m.uid,
        m.gid,
        m.size,
        time_string(m.mtime, false)
    );
    if m.kind == FileType::Symlink {
        match fs.read_link(node) {
            Ok(t) => {
                let _ = write!(line, " -> {t}");
            }
            Err(e) => {
                let _ = write!(line, " -> ({e})");
            }
        }
    }
    line
}

fn ls(fs: &dyn FileSystem, path: &str, out: &mut impl Write) -> Result<(), String> {
    let at = |e: pvboot::fs::FsError| format!("{path}: {e}");
    let mut node = fs.lookup_nofollow(path).map_err(at)?;
    // Like ls, a trailing slash lists the directory a symlink points to.
    if node.meta.kind == FileType::Symlink && path.ends_with('/') {
        node = fs.lookup(path).map_err(at)?;
    }
    let mut s = String::new();
    if node.meta.kind == FileType::Dir {
        let mut entries = fs.read_dir(&node).map_err(at)?;
        entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        for e in &entries {
            s.push_str(&ls_line(fs, &e.name, &e.node));
            s.push('\n');
        }
    } else {
        s.push_str(&ls_line(fs, path, &node));
        s.push('\n');
    }
    write_ok(out.write_all(s.as_bytes()))
}

fn cat(fs: &dyn FileSystem, path: &str, out: &mut impl Write) -> Result<(), String> {
    let at = |e: pvboot::fs::FsError| format!("{path}: {e}");
    let node = fs.lookup(path).map_err(at)?;
    if node.meta.kind == FileType::Dir {
        return Err(format!("{path}: is a directory"));
    }
    let mut buf = vec![0u8; CAT_CHUNK.min(node.meta.size as usize).max(1)];
    let mut off = 0u64;
    while off < node.meta.size {
        let n = fs.read_at(&node, off, &mut buf).map_err(at)?;
        if n == 0 {
            return Err(format!("{path}: file ends early at byte {off}"));
        }
        if let Err(e) = out.write_all(&buf[..n]) {
            return write_ok(Err(e));
        }
        off += n as u64;
    }
    Ok(())
}

fn stat(fs: &dyn FileSystem, path: &str, out: &mut impl Write) -> Result<(), String> {
    let node = fs.lookup_nofollow(path).map_err(|e| format!("{path}: {e}"))?;
    let m = &node.meta;
    let kind = match m.kind {
        FileType::File => "regular file",
        FileType::Dir => "directory",
        FileType::Symlink => "symbolic link",
        FileType::CharDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::Other => "other",
    };
    let mut s = format!("  File: {path}");
    if m.kind == FileType::Symlink {
        if let Ok(t) = fs.read_link(&node) {
            let _ = write!(s, " -> {t}");
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "  Type: {kind}");
    let _ = writeln!(s, "  Size: {}", m.size);
    let _ = writeln!(s, "  Mode: {:04o} ({})", m.perm, m.mode_string());
    let _ = writeln!(s, " Links: {}", nlink(m));
    let _ = writeln!(s, "   Uid: {}", m.uid);
    let _ = writeln!(s, "   Gid: {}", m.gid);
    let _ = writeln!(s, " Inode: {}", m.ino.map_or_else(|| "?".to_string(), |i| i.to_string()));
    let _ = writeln!(s, "Modify: {}.{:09} UTC ({})", time_string(m.mtime, true), m.mtime_nsec, m.mtime);
    let _ = writeln!(s, "    FS: {}", fs.kind());
    write_ok(out.write_all(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(time_string(0, true), "1970-01-01 00:00:00");
        assert_eq!(time_string(951_782_400, false), "2000-02-29 00:00");
        assert_eq!(time_string(-1, true), "1969-12-31 23:59:59");
    }
}
