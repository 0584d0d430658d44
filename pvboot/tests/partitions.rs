//! Partitioned images: MBR with logicals (sfdisk), GPT (sgdisk) including a
//! broken primary, and BSD disklabels on a bare disk and inside MBR
//! partitions. File systems are made by the real tools and copied in at the
//! partition offsets. makefs writes no disklabel, so the tests write one with
//! `pvboot::partition::disklabel::build` (NetBSD's `struct disklabel`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use pvboot::disk::{Cache, MemDisk, ReadAt};
use pvboot::fs::{FileType, FsKind};
use pvboot::partition::{disklabel, read_table, Kind, PartError, Scheme, Selector, Table};
use pvboot::volume::{self, VolumeError};

const SECTOR: u64 = 512;

fn sfdisk(img: &Path, script: &str) {
    let mut c = Command::new("sfdisk").args(["-q", img.to_str().unwrap()]).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    std::io::Write::write_all(c.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
    assert!(c.wait().unwrap().success(), "sfdisk failed");
}

fn fat_fs(dir: &Path, name: &str, bits: &str, sectors: u64, file: &str, body: &[u8]) -> PathBuf {
    let img = dir.join(name);
    let _ = std::fs::remove_file(&img);
    run("mkfs.fat", &["-C", "-F", bits, img.to_str().unwrap(), &(sectors / 2).to_string()]);
    let f = dir.join(file);
    std::fs::write(&f, body).unwrap();
    run("mcopy", &["-i", img.to_str().unwrap(), f.to_str().unwrap(), &format!("::/{file}")]);
    img
}

fn ext_fs(dir: &Path, name: &str, sectors: u64, file: &str, body: &[u8]) -> PathBuf {
    let img = dir.join(name);
    let src = dir.join(format!("{name}.src"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join(file), body).unwrap();
    run("mke2fs", &["-q", "-F", "-t", "ext4", "-d", src.to_str().unwrap(), img.to_str().unwrap(), &format!("{}k", sectors / 2)]);
    img
}

fn ffs_fs(dir: &Path, name: &str, file: &str, body: &[u8]) -> (PathBuf, u64) {
    let img = dir.join(name);
    let src = dir.join(format!("{name}.src"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join(file), body).unwrap();
    run("makefs", &["-t", "ffs", "-s", "4m", "-o", "version=2", img.to_str().unwrap(), src.to_str().unwrap()]);
    let sectors = std::fs::metadata(&img).unwrap().len().div_ceil(SECTOR);
    (img, sectors)
}

fn table(img: &Path) -> Table {
    read_table(&*open_disk(img), 512).unwrap()
}

fn names(t: &Table) -> Vec<(Option<String>, String)> {
    t.entries.iter().map(|e| (e.netbsd_name("xbd0"), e.grub_name("hd0"))).collect()
}

fn read_via(img: &Path, sel: Option<&str>, path: &str) -> (FsKind, Vec<u8>) {
    let v = volume::open(open_disk(img), 512, sel).unwrap_or_else(|e| panic!("{sel:?}: {e}"));
    let data = v.fs.read_file(path, 1 << 30).unwrap_or_else(|e| panic!("{sel:?} {path}: {e}"));
    (v.fs.kind(), data)
}

#[test]
fn mbr_with_logicals() {
    let dir = scratch("mbr");
    let img = dir.join("disk.img");
    blank(&img, 64 << 20);
    sfdisk(&img, "label: dos\nstart=2048, size=32768, type=6\nstart=34816, size=65536, type=5\nstart=36864, size=32768, type=83\nstart=71680, size=16384, type=1\n");
    let p1 = fat_fs(&dir, "p1", "16", 32768, "one.txt", b"first primary\n");
    let p5 = ext_fs(&dir, "p5", 32768, "five.txt", b"first logical\n");
    let p6 = fat_fs(&dir, "p6", "12", 16384, "six.txt", b"second logical\n");
    dd(&p1, &img, 2048 * SECTOR);
    dd(&p5, &img, 36864 * SECTOR);
    dd(&p6, &img, 71680 * SECTOR);

    let t = table(&img);
    assert_eq!(t.scheme, Scheme::Mbr);
    let n = names(&t);
    let s = |a: &str, b: &str| (Some(a.to_string()), b.to_string());
    assert_eq!(n, vec![s("xbd0e", "(hd0,msdos1)"), (None, "(hd0,msdos2)".into()), s("xbd0i", "(hd0,msdos5)"), s("xbd0j", "(hd0,msdos6)")]);
    assert_eq!(t.entries[2].kind, Kind::Logical(0x83));
    assert_eq!((t.entries[3].start, t.entries[3].sectors), (71680, 16384));

    // Default: the first partition with a file system.
    assert_eq!(read_via(&img, None, "/one.txt"), (FsKind::Fat16, b"first primary\n".to_vec()));
    for sel in ["msdos5", "(hd0,msdos5)", "5", "xbd0i", "i"] {
        assert_eq!(read_via(&img, Some(sel), "/five.txt"), (FsKind::Ext4, b"first logical\n".to_vec()), "{sel}");
    }
    assert_eq!(read_via(&img, Some("(hd0,msdos6)"), "/SIX.TXT").1, b"second logical\n");
    for bad in ["msdos3", "gpt1", "xbd0a", "(hd0,msdos1,bsd1)"] {
        assert!(matches!(volume::open(open_disk(&img), 512, Some(bad)), Err(VolumeError::Selector(_))), "{bad}");
    }
}

fn gpt_image(dir: &Path) -> PathBuf {
    let img = dir.join("disk.img");
    blank(&img, 80 << 20);
    run("sgdisk", &["-n", "1:2048:+16M", "-t", "1:0700", "-c", "1:data", "-n", "2:0:+32M", "-t", "2:8300", "-c", "2:root fs", "-n", "3:0:+20M", "-t", "3:a902", img.to_str().unwrap()]);
    let t = table(&img);
    let p1 = fat_fs(dir, "p1", "16", t.entries[0].sectors, "boot.cfg", b"menu\n");
    let p2 = ext_fs(dir, "p2", t.entries[1].sectors, "vmlinuz", &noise(300_000, 9));
    let (p3, _) = ffs_fs(dir, "p3", "netbsd", b"kernel\n");
    dd(&p1, &img, t.entries[0].start * SECTOR);
    dd(&p2, &img, t.entries[1].start * SECTOR);
    dd(&p3, &img, t.entries[2].start * SECTOR);
    img
}

#[test]
fn gpt_and_backup() {
    let dir = scratch("gpt");
    let img = gpt_image(&dir);
    let t = table(&img);
    assert_eq!(t.scheme, Scheme::Gpt);
    assert!(!t.gpt_backup_used);
    let n = names(&t);
    assert_eq!(n[1], (Some("dk1".into()), "(hd0,gpt2)".into()));
    assert_eq!(t.entries[1].label, "root fs");
    assert_eq!(read_via(&img, None, "/boot.cfg"), (FsKind::Fat16, b"menu\n".to_vec()));
    assert_eq!(read_via(&img, Some("gpt2"), "/vmlinuz").1, noise(300_000, 9));
    assert_eq!(read_via(&img, Some("dk2"), "/netbsd"), (FsKind::Ffs2, b"kernel\n".to_vec()));

    // Corrupt the primary header: the backup at the last LBA takes over.
    write_at(&img, SECTOR + 40, &[0xAB]);
    let t2 = table(&img);
    assert!(t2.gpt_backup_used);
    assert_eq!(t2.entries, t.entries);
    assert_eq!(read_via(&img, Some("(hd0,gpt2)"), "/vmlinuz").1, noise(300_000, 9));

    // Primary header fine but its entry array corrupt: backup again.
    let dir2 = scratch("gpt-entries");
    let img2 = gpt_image(&dir2);
    write_at(&img2, 2 * SECTOR + 20, &[0x5A, 0x5A]);
    assert!(table(&img2).gpt_backup_used);

    // Both headers broken: a clear error.
    let total = std::fs::metadata(&img).unwrap().len() / SECTOR;
    write_at(&img, (total - 1) * SECTOR + 40, &[0xCD]);
    let err = read_table(&*open_disk(&img), 512).unwrap_err();
    assert!(matches!(err, PartError::GptBad { .. }), "{err}");
    assert!(err.to_string().contains("CRC"), "{err}");
}

/// A NetBSD-style label: a = FFS at `a_off`, b = swap, c = container, d = whole disk.
fn netbsd_label(base: u64, len: u64, a_off: u64, a_len: u64, total: u64, be: bool) -> Vec<u8> {
    disklabel::build(
        &[
            (a_len as u32, a_off as u32, 7),
            (2048, (a_off + a_len) as u32, 1),
            (len as u32, base as u32, 0),
            (total as u32, 0, 0),
        ],
        512,
        total as u32,
        be,
    )
}

#[test]
fn bare_disklabel_both_byte_orders() {
    for be in [false, true] {
        let dir = scratch(if be { "label-be" } else { "label-le" });
        let img = dir.join("disk.img");
        let total = 40 << 11; // 40 MiB in sectors
        blank(&img, total * SECTOR);
        let (ffs, n) = ffs_fs(&dir, "a", "netbsd", b"netbsd kernel\n");
        dd(&ffs, &img, 64 * SECTOR);
        write_at(&img, SECTOR, &netbsd_label(0, total, 64, n, total, be));
        let t = table(&img);
        assert_eq!(t.scheme, Scheme::Disklabel);
        let n = names(&t);
        assert_eq!(n[0], (Some("xbd0a".into()), "(hd0,bsd1)".into()));
        assert_eq!(n[3], (Some("xbd0d".into()), "(hd0,bsd4)".into()));
        assert_eq!(t.entries[0].kind, Kind::Bsd(7));
        for sel in [None, Some("xbd0a"), Some("a"), Some("(hd0,bsd1)"), Some("bsd1"), Some("1")] {
            assert_eq!(read_via(&img, sel, "/netbsd"), (FsKind::Ffs2, b"netbsd kernel\n".to_vec()), "{sel:?}");
        }
    }
}

#[test]
fn disklabel_inside_mbr_partitions() {
    let dir = scratch("mbr-label");
    let img = dir.join("disk.img");
    let total: u64 = 96 << 11;
    blank(&img, total * SECTOR);
    sfdisk(&img, "label: dos\nstart=2048, size=32768, type=6\nstart=34816, size=61440, type=a9\n");
    let p1 = fat_fs(&dir, "p1", "16", 32768, "dos.txt", b"dos\n");
    dd(&p1, &img, 2048 * SECTOR);
    let (ffs, n) = ffs_fs(&dir, "a", "netbsd", b"in a label\n");
    let base = 34816;
    dd(&ffs, &img, (base + 64) * SECTOR);
    write_at(&img, (base + 1) * SECTOR, &netbsd_label(base, 61440, base + 64, n, total, false));

    let t = table(&img);
    assert_eq!(t.scheme, Scheme::Mbr);
    let nm = names(&t);
    // With a label, NetBSD names only the label's partitions.
    assert_eq!(nm[0], (None, "(hd0,msdos1)".into()));
    assert_eq!(nm[2], (Some("xbd0a".into()), "(hd0,msdos2,bsd1)".into()));
    assert_eq!(t.entries[2].start, base + 64);
    // Default prefers the label's partitions.
    assert_eq!(read_via(&img, None, "/netbsd"), (FsKind::Ffs2, b"in a label\n".to_vec()));
    for sel in ["(hd0,msdos2,bsd1)", "(hd0,msdos2,a)", "msdos2,a", "xbd0a"] {
        assert_eq!(read_via(&img, Some(sel), "/netbsd").1, b"in a label\n", "{sel}");
    }
    assert_eq!(read_via(&img, Some("msdos1"), "/dos.txt").1, b"dos\n");
    assert!(volume::open(open_disk(&img), 512, Some("xbd0e")).is_err());

    // FreeBSD (0xA5): offsets relative to the slice, counted from c's.
    sfdisk(&img, "label: dos\nstart=2048, size=32768, type=6\nstart=34816, size=61440, type=a5\n");
    let label = disklabel::build(&[(n as u32, 64, 7), (0, 0, 0), (61440, 0, 0)], 512, total as u32, false);
    write_at(&img, (base + 1) * SECTOR, &label);
    let t = table(&img);
    assert_eq!(t.entries[2].start, base + 64);
    assert_eq!(read_via(&img, Some("(hd0,msdos2,bsd1)"), "/netbsd").1, b"in a label\n");
}

fn mem_table(data: Vec<u8>) -> Result<Table, PartError> {
    let c = Cache::new(MemDisk::new(data)).unwrap();
    read_table(&c, 512)
}

fn mbr_entry(s: &mut [u8], i: usize, ptype: u8, start: u32, size: u32) {
    let e = &mut s[446 + 16 * i..][..16];
    e[4] = ptype;
    e[8..12].copy_from_slice(&start.to_le_bytes());
    e[12..16].copy_from_slice(&size.to_le_bytes());
}

#[test]
fn hostile_mbr_chains_end() {
    // Hand-assembled corrupt tables: an EBR linking to itself, and one
    // linking backwards, must end the chain rather than loop.
    let mut d = vec![0u8; 4 << 20];
    d[510] = 0x55;
    d[511] = 0xAA;
    mbr_entry(&mut d, 0, 0x05, 100, 4000);
    for (ebr, link) in [(100usize, 0u32), (300, 200)] {
        let s = &mut d[ebr * 512..][..512];
        s[510] = 0x55;
        s[511] = 0xAA;
        mbr_entry(s, 0, 0x83, 10, 50);
        mbr_entry(s, 1, 0x05, link, 100);
    }
    let t = mem_table(d.clone()).unwrap();
    assert_eq!(t.entries.len(), 2); // the container and one logical
    // A partition past the end of the disk is dropped.
    mbr_entry(&mut d, 1, 0x83, 8000, 1 << 30);
    assert_eq!(mem_table(d).unwrap().entries.len(), 2);
    // A FAT boot sector is not an MBR.
    let mut f = vec![0u8; 1 << 20];
    f[0] = 0xEB;
    f[54..62].copy_from_slice(b"FAT16   ");
    f[510] = 0x55;
    f[511] = 0xAA;
    assert_eq!(mem_table(f).unwrap().scheme, Scheme::None);
}

#[test]
fn hostile_gpt_is_an_error() {
    let mut d = vec![0u8; 1 << 20];
    d[510] = 0x55;
    d[511] = 0xAA;
    mbr_entry(&mut d, 0, 0xEE, 1, 2047);
    d[512..520].copy_from_slice(b"EFI PART");
    assert!(matches!(mem_table(d), Err(PartError::GptBad { .. })));
}

#[test]
fn selectors_and_probe_of_whole_disk() {
    let dir = scratch("whole");
    let img = fat_fs(&dir, "whole.img", "12", 4096, "x.txt", b"x\n");
    let t = table(&img);
    assert_eq!(t.scheme, Scheme::None);
    let v = volume::open(open_disk(&img), 512, None).unwrap();
    assert!(v.entry.is_none());
    assert_eq!(v.fs.lookup("/x.txt").unwrap().meta.kind, FileType::File);
    assert!(Selector::parse("(hd0,msdos1)").unwrap().resolve(&t).is_err());
    let mut junk = vec![0u8; 1 << 20];
    junk[..4].copy_from_slice(b"junk");
    assert!(matches!(
        volume::open(std::rc::Rc::new(Cache::new(MemDisk::new(junk)).unwrap()), 512, None),
        Err(VolumeError::NoFileSystem)
    ));
    let _ = ReadAt::size(&*open_disk(&img));
}
