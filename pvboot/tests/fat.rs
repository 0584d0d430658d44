//! FAT12/16/32 images made by mkfs.fat, filled by mcopy (long names included).

mod common;

use common::*;
use pvboot::fs::{FileType, FsError, FsKind};
use std::path::Path;

fn fat_image(name: &str, bits: &str, kib: u64, extra: &[&str], o: TreeOpts) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = scratch(name);
    let src = make_tree(&dir, o);
    let img = dir.join("fat.img");
    let kib_s = kib.to_string();
    let mut args = vec!["-C", "-F", bits];
    args.extend_from_slice(extra);
    args.push(img.to_str().unwrap());
    args.push(&kib_s);
    run("mkfs.fat", &args);
    copy_in(&img, &src);
    (img, src)
}

/// Copies the children of `src` into the image root with mcopy (keeps long names).
pub fn copy_in(img: &Path, src: &Path) {
    let mut args = vec!["-s".to_string(), "-p".to_string(), "-m".to_string(), "-i".to_string(), img.to_str().unwrap().to_string()];
    for e in std::fs::read_dir(src).unwrap() {
        args.push(e.unwrap().file_name().into_string().unwrap());
    }
    args.push("::/".to_string());
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    run_in(Some(src), "mcopy", &a);
}

const FAT_CHECK: Check = Check { unix: false, extra: &[] };

#[test]
fn fat12() {
    let (img, src) = fat_image("fat12", "12", 8 * 1024, &[], TreeOpts { symlinks: false, big: 2 << 20, wide: 40, big_hole: true });
    let fs = mount_whole(&img);
    assert_eq!(fs.kind(), FsKind::Fat12);
    assert!(compare_tree(&*fs, &src, FAT_CHECK) > 50);
}

#[test]
fn fat16() {
    let (img, src) = fat_image("fat16", "16", 32 * 1024, &[], TreeOpts { symlinks: false, big: 3 << 20, wide: 300, big_hole: true });
    let fs = mount_whole(&img);
    assert_eq!(fs.kind(), FsKind::Fat16);
    compare_tree(&*fs, &src, FAT_CHECK);
}

#[test]
fn fat32() {
    let (img, src) = fat_image("fat32", "32", 64 * 1024, &["-s", "1"], TreeOpts { symlinks: false, big: 5 << 20, wide: 300, big_hole: true });
    let fs = mount_whole(&img);
    assert_eq!(fs.kind(), FsKind::Fat32);
    compare_tree(&*fs, &src, FAT_CHECK);

    // FAT lookups ignore case and accept the 8.3 alias of a long name.
    assert_eq!(fs.lookup("/HELLO.TXT").unwrap().meta.size, 14);
    assert_eq!(fs.lookup("/Sub Dir/DEEPER").unwrap().meta.kind, FileType::Dir);
    assert!(fs.lookup("/SUBDIR~1").is_ok());
    assert_eq!(fs.lookup("/sub dir/../hello.txt").unwrap().meta.size, 14);
    assert_eq!(fs.lookup("/nope").unwrap_err(), FsError::NotFound);
    assert_eq!(fs.lookup("/hello.txt/x").unwrap_err(), FsError::NotADirectory);
    let root = fs.lookup("/").unwrap();
    assert_eq!(fs.read_at(&root, 0, &mut [0u8; 4]).unwrap_err(), FsError::IsADirectory);
    // Reads past the end return 0; reads crossing it are short.
    let h = fs.lookup("/hello.txt").unwrap();
    let mut b = [0u8; 64];
    assert_eq!(fs.read_at(&h, 14, &mut b).unwrap(), 0);
    assert_eq!(fs.read_at(&h, 10, &mut b).unwrap(), 4);
}

#[test]
fn fat32_big_clusters_fragmented() {
    // Files written in interleaved order fragment their cluster chains, so
    // reads must follow non-contiguous runs.
    let dir = scratch("fat32frag");
    let img = dir.join("fat.img");
    run("mkfs.fat", &["-C", "-F", "32", "-s", "8", img.to_str().unwrap(), "300000"]);
    let a = dir.join("a");
    let b = dir.join("b");
    let mut da = Vec::new();
    let mut db = Vec::new();
    for i in 0..6u64 {
        da.extend(noise(40_000, 10 + i));
        db.extend(noise(50_000, 20 + i));
        std::fs::write(&a, &da).unwrap();
        std::fs::write(&b, &db).unwrap();
        // Overwrite each file in turn: mtools appends new clusters after the other's.
        run("mcopy", &["-o", "-i", img.to_str().unwrap(), a.to_str().unwrap(), "::/a"]);
        run("mcopy", &["-o", "-i", img.to_str().unwrap(), b.to_str().unwrap(), "::/b"]);
    }
    let fs = mount_whole(&img);
    assert_eq!(read_all(&*fs, "/a", 65536), da);
    assert_eq!(read_all(&*fs, "/b", 1 << 20), db);
}

#[test]
fn corrupt_chains_fail_cleanly() {
    // A real FAT16 image, then its FAT patched: a directory chain looping on
    // itself, and a file chain running into a free cluster.
    let (img, _src) = fat_image("fatcorrupt", "16", 32 * 1024, &["-s", "1"], TreeOpts { symlinks: false, big: 100_000, wide: 100, big_hole: true });
    let bs = peek(&img, 0, 512);
    let bps = u64::from(u16::from_le_bytes([bs[11], bs[12]]));
    let rsvd = u64::from(u16::from_le_bytes([bs[14], bs[15]]));
    let fatsz = u64::from(u16::from_le_bytes([bs[22], bs[23]]));
    let fs = mount_whole(&img);
    let wide = fs.lookup("/wide").unwrap();
    let big = fs.lookup("/big.bin").unwrap();
    drop(fs);
    let fat = rsvd * bps;
    // wide's first cluster points to itself, in both FAT copies.
    for copy in 0..2 {
        write_at(&img, fat + copy * fatsz * bps + wide.handle * 2, &(wide.handle as u16).to_le_bytes());
        write_at(&img, fat + copy * fatsz * bps + big.handle * 2, &0u16.to_le_bytes());
    }
    let fs = mount_whole(&img);
    let w = fs.lookup("/wide").unwrap();
    // The loop is refused where it comes round (wide's clusters are full of
    // entries, so no end marker stops the walk first): no hang, no panic.
    let looped = |r: Result<_, FsError>| matches!(r, Err(FsError::Corrupt(m)) if m.contains("loops"));
    assert!(looped(fs.read_dir(&w).map(|_| ())));
    assert!(looped(fs.lookup("/wide/nonexistent").map(|_| ())));
    let b = fs.lookup("/big.bin").unwrap();
    let mut buf = vec![0u8; 200_000];
    assert!(matches!(fs.read_at(&b, 0, &mut buf), Err(FsError::Corrupt(_))));
}
