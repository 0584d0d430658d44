//! [`DiskShell`]: the prompt's [`Shell`] over pvboot's own disk, partition
//! and file-system code, for any disks behind [`ReadAt`] (blkfront in the
//! guest, image files on the host).
//!
//! Disk `i` is `hdi`, `xbdi` and `xvd` + letter; a device is a whole disk
//! (`(hd0)`, `hd0`, `xbd0`, `xvda`) or a partition on one (`(hd0,1)`,
//! `(hd1,msdos1,bsd1)`, `xbd0a`, `xvda1`, or `msdos1`, `gpt2`, `a`, `dk0` on
//! the first disk).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::Shell;
use crate::disk::ReadAt;
use crate::fs::{FileSystem, FileType};
use crate::partition::{self, Scheme};
use crate::volume::{self, Volume};

/// Bytes per read for `cat`.
const CAT_CHUNK: usize = 64 << 10;

/// One disk the shell can see.
#[derive(Clone)]
pub struct ShellDisk<R> {
    /// The disk's bytes.
    pub disk: R,
    /// Its sector size.
    pub sector_size: u32,
}

/// The prompt's view of a set of disks.
pub struct DiskShell<R> {
    disks: Vec<ShellDisk<R>>,
    /// The volume used for paths without a device (`None`: the first disk's default).
    default: Option<String>,
}

/// `1234` bytes as a short size: `1 KiB`, `64 MiB`, `3 GiB`.
fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// The disk number in `hd3`, `xbd3`, `xvdd` (`None` for other names).
fn disk_number(name: &str) -> Option<usize> {
    if let Some(l) = name.strip_prefix("xvd") {
        return match l.as_bytes() {
            [c @ b'a'..=b'z'] => Some(usize::from(c - b'a')),
            _ => None,
        };
    }
    let digits = name.trim_start_matches(|c: char| c.is_ascii_lowercase());
    let prefix = &name[..name.len() - digits.len()];
    if !matches!(prefix, "hd" | "xbd") || digits.is_empty() || digits.len() > 3 {
        return None;
    }
    digits.parse().ok()
}

impl<R: ReadAt + Clone + 'static> DiskShell<R> {
    /// A shell over `disks` (disk 0 first); `default` is the device for paths
    /// without one (e.g. where the menu was found), `None` for the first disk's
    /// first file system.
    pub fn new(disks: Vec<ShellDisk<R>>, default: Option<String>) -> Self {
        DiskShell { disks, default }
    }

    /// Which disk and which partition selector (`None`: the whole disk) `dev` names.
    fn resolve(&self, dev: &str) -> Result<(usize, Option<String>), String> {
        let t = dev.trim();
        let (disk, part) = if let Some(inner) = t.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
            let (name, rest) = inner.split_once(',').unwrap_or((inner, ""));
            let n = disk_number(name.trim()).ok_or_else(|| format!("unknown disk '{}'", name.trim()))?;
            (n, (!rest.trim().is_empty()).then(|| t.to_string()))
        } else if let Some(n) = disk_number(t) {
            (n, None)
        } else if let Some((letter, number)) = t.strip_prefix("xvd").and_then(|r| {
            let b = r.as_bytes();
            (b.len() > 1 && b[0].is_ascii_lowercase()).then(|| (b[0], &r[1..]))
        }) {
            // Linux: xvda1 is partition 1 of disk a.
            (usize::from(letter - b'a'), Some(number.to_string()))
        } else {
            // NetBSD xbd1a names a disk; msdos1, gpt2, a, dk0 are on the first.
            let letters = t.trim_start_matches(|c: char| c.is_ascii_lowercase());
            let digits = letters.trim_start_matches(|c: char| c.is_ascii_digit());
            let name = &t[..t.len() - digits.len()];
            let n = if !digits.is_empty() && name.starts_with("xbd") { disk_number(name) } else { None };
            (n.unwrap_or(0), Some(t.to_string()))
        };
        if disk >= self.disks.len() {
            return Err(format!("no disk {disk} (there are {})", self.disks.len()));
        }
        Ok((disk, part))
    }

    fn open(&self, dev: Option<&str>) -> Result<Volume, String> {
        let dev = dev.or(self.default.as_deref());
        let (disk, part) = match dev {
            Some(d) => self.resolve(d)?,
            None if self.disks.is_empty() => return Err(String::from("no disks")),
            None => (0, None),
        };
        let d = &self.disks[disk];
        volume::open(d.disk.clone(), d.sector_size, part.as_deref()).map_err(|e| match dev {
            Some(dev) => format!("{dev}: {e}"),
            None => e.to_string(),
        })
    }

    /// Lines describing disk `i` and its partitions.
    fn describe_disk(&self, i: usize, out: &mut dyn FnMut(&str)) -> Result<(), String> {
        let d = &self.disks[i];
        let table = partition::read_table(&d.disk, d.sector_size).map_err(|e| format!("(hd{i}): {e}"))?;
        let size = human(d.disk.size());
        if table.scheme == Scheme::None {
            let fs = crate::fs::probe(&d.disk).ok().flatten().map_or("no file system", |k| k.name());
            out(&format!("(hd{i}) xbd{i}: {size}, no partition table, {fs}"));
            return Ok(());
        }
        out(&format!("(hd{i}) xbd{i}: {size}, {} partition table", table.scheme.name()));
        for e in &table.entries {
            let fs = volume::probe_entry(d.disk.clone(), &table, e).map_or("no file system", |k| k.name());
            let netbsd = e.netbsd_name(&format!("xbd{i}")).unwrap_or_default();
            let label = if e.label.is_empty() { String::new() } else { format!(" \"{}\"", e.label) };
            out(&format!("  {} {netbsd}: {fs}, {}{label}", e.grub_name(&format!("hd{i}")), human(e.bytes(table.sector_size))));
        }
        Ok(())
    }
}

fn entry_line(fs: &dyn FileSystem, name: &str, node: &crate::fs::Node) -> String {
    match node.meta.kind {
        FileType::Dir => format!("{:>12}  {name}/", "<dir>"),
        FileType::Symlink => {
            let target = fs.read_link(node).unwrap_or_else(|e| format!("({e})"));
            format!("{:>12}  {name} -> {target}", "<link>")
        }
        _ => format!("{:>12}  {name}", node.meta.size),
    }
}

impl<R: ReadAt + Clone + 'static> Shell for DiskShell<R> {
    fn ls(&mut self, dev: Option<&str>, path: &str, out: &mut dyn FnMut(&str)) -> Result<(), String> {
        if path.is_empty() {
            match dev {
                None => {
                    for i in 0..self.disks.len() {
                        self.describe_disk(i, out)?;
                    }
                    return Ok(());
                }
                Some(d) => {
                    if let (disk, None) = self.resolve(d)? {
                        return self.describe_disk(disk, out);
                    }
                }
            }
        }
        let v = self.open(dev)?;
        let path = if path.is_empty() { "/" } else { path };
        let at = |e: crate::fs::FsError| format!("{path}: {e}");
        let mut node = v.fs.lookup_nofollow(path).map_err(at)?;
        if node.meta.kind == FileType::Symlink && path.ends_with('/') {
            node = v.fs.lookup(path).map_err(at)?;
        }
        if node.meta.kind != FileType::Dir {
            out(&entry_line(&*v.fs, path, &node));
            return Ok(());
        }
        let mut entries = v.fs.read_dir(&node).map_err(at)?;
        entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        for e in &entries {
            out(&entry_line(&*v.fs, &e.name, &e.node));
        }
        Ok(())
    }

    fn cat(&mut self, dev: Option<&str>, path: &str, out: &mut dyn FnMut(&[u8]) -> bool) -> Result<(), String> {
        let v = self.open(dev)?;
        let at = |e: crate::fs::FsError| format!("{path}: {e}");
        let node = v.fs.lookup(path).map_err(at)?;
        if node.meta.kind == FileType::Dir {
            return Err(format!("{path}: is a directory"));
        }
        let mut buf = vec![0u8; CAT_CHUNK.min(node.meta.size as usize).max(1)];
        let mut off = 0u64;
        while off < node.meta.size {
            let n = v.fs.read_at(&node, off, &mut buf).map_err(at)?;
            if n == 0 {
                return Err(format!("{path}: file ends early at byte {off}"));
            }
            if !out(&buf[..n]) {
                break;
            }
            off += n as u64;
        }
        Ok(())
    }

    fn names(&mut self, dev: Option<&str>, dir: &str, out: &mut dyn FnMut(&str, bool)) -> Result<(), String> {
        let v = self.open(dev)?;
        let at = |e: crate::fs::FsError| format!("{dir}: {e}");
        let node = v.fs.lookup(dir).map_err(at)?;
        for e in v.fs.read_dir(&node).map_err(at)? {
            // A symlink to a directory completes like one.
            let is_dir = match e.node.meta.kind {
                FileType::Dir => true,
                FileType::Symlink => {
                    let path = format!("{}/{}", dir.trim_end_matches('/'), e.name);
                    v.fs.lookup(&path).is_ok_and(|n| n.meta.kind == FileType::Dir)
                }
                _ => false,
            };
            out(&e.name, is_dir);
        }
        Ok(())
    }

    fn set_root(&mut self, dev: &str) -> Result<String, String> {
        let v = self.open(Some(dev))?;
        let mut s = v.fs.kind().name().to_string();
        if let Some(e) = &v.entry {
            let (disk, _) = self.resolve(dev)?;
            s.push_str(&format!(" on {}", e.grub_name(&format!("hd{disk}"))));
            if let Some(n) = e.netbsd_name(&format!("xbd{disk}")) {
                s.push_str(&format!(" ({n})"));
            }
        }
        Ok(s)
    }

    fn file_size(&mut self, dev: Option<&str>, path: &str) -> Result<u64, String> {
        let v = self.open(dev)?;
        let node = v.fs.lookup(path).map_err(|e| format!("{path}: {e}"))?;
        if node.meta.kind == FileType::Dir {
            return Err(format!("{path}: is a directory"));
        }
        Ok(node.meta.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_names() {
        assert_eq!(disk_number("hd0"), Some(0));
        assert_eq!(disk_number("xbd12"), Some(12));
        assert_eq!(disk_number("xvdc"), Some(2));
        assert_eq!(disk_number("sd0"), None);
        assert_eq!(disk_number("hd"), None);
        assert_eq!(disk_number("hd99999"), None);
        assert_eq!(human(512), "512 bytes");
        assert_eq!(human(64 << 20), "64 MiB");
    }
}
