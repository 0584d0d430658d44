//! Layouts makefs does not produce by itself, made by patching real makefs
//! images: triple indirect blocks and holes, the UFS2EA magic, superblocks
//! at the other standard locations, and 4.2BSD-format UFS1.

mod common;

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use common::*;
use fs_ffs::{Error, Ffs, FileType, Ino, Version};

/// A small tree: a few files and directories.
fn tiny_tree() -> &'static PathBuf {
    static TREE: OnceLock<PathBuf> = OnceLock::new();
    TREE.get_or_init(|| {
        let root = scratch_path("tiny");
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("sub/dir")).unwrap();
        fs::write(root.join("victim"), pattern(5000, 5)).unwrap();
        fs::write(root.join("sub/dir/file"), b"nested\n").unwrap();
        fs::write(root.join("sub/other"), pattern(70_000, 6)).unwrap();
        std::os::unix::fs::symlink("sub/dir/file", root.join("link")).unwrap();
        root
    })
}

fn cfg(version: u32, big_endian: bool, bsize: u32, fsize: u32) -> Config {
    Config {
        version,
        big_endian,
        bsize,
        fsize,
    }
}

/// Inode field offsets: (size, blocks, db, ib, pointer width).
fn inode_layout(version: u32) -> (usize, usize, usize, usize, usize) {
    if version == 1 {
        (8, 104, 40, 88, 4)
    } else {
        (16, 24, 112, 208, 8)
    }
}

fn put_ptr(p: &mut Patcher, off: usize, width: usize, v: u64) {
    if width == 4 {
        p.put32(off, v as u32)
    } else {
        p.put64(off, v)
    }
}

/// Builds a file using the triple indirect block, with holes at every
/// level, out of free blocks at the end of the image, and reads it back.
fn triple_indirect(version: u32, be: bool) {
    let c = cfg(version, be, 4096, 512);
    let mut img = makefs(c, tiny_tree(), &["-s", "24m"]);
    let (ino, ioff, frags_total) = {
        let fs = Ffs::open(&img[..]).unwrap();
        let ino = fs.lookup("/victim").unwrap();
        (
            ino,
            fs.inode_offset(ino).unwrap() as usize,
            fs.info().size / 512,
        )
    };
    let (o_size, _o_blocks, o_db, o_ib, w) = inode_layout(version);
    let bsize = 4096u64;
    let n = bsize / w as u64;
    // Free 4K blocks near the end of the file system (checked to be unused).
    let blk = |k: u64| (frags_total / 8 - 2 - k) * 8;
    for k in 0..6 {
        let off = (blk(k) * 512) as usize;
        assert!(
            img[off..off + 4096].iter().all(|&b| b == 0),
            "block {k} not free"
        );
    }
    let (data_a, l3, l2, l1, data_b, data_c) = (blk(0), blk(1), blk(2), blk(3), blk(5), blk(4));
    assert_eq!(data_b + 8, data_c); // contiguous: one read for both
    let triple_start = 12 + n + n * n;
    // Last block used: lbn triple_start + n*n + 7, partly.
    let size = (triple_start + n * n + 8) * bsize - 123;
    let a = pattern(4096, 11);
    let b = pattern(4096, 12);
    let cc = pattern(4096, 13);
    {
        let mut p = Patcher { img: &mut img, be };
        p.put64(ioff + o_size, size);
        for i in 0..12 {
            put_ptr(&mut p, ioff + o_db + i * w, w, 0);
        }
        put_ptr(&mut p, ioff + o_db, w, data_a);
        put_ptr(&mut p, ioff + o_ib, w, 0);
        put_ptr(&mut p, ioff + o_ib + w, w, 0);
        put_ptr(&mut p, ioff + o_ib + 2 * w, w, l3);
        // L3[1] -> L2, L2[0] -> L1, L1[5..7] -> B, C, hole.
        put_ptr(&mut p, (l3 * 512) as usize + w, w, l2);
        put_ptr(&mut p, (l2 * 512) as usize, w, l1);
        put_ptr(&mut p, (l1 * 512) as usize + 5 * w, w, data_b);
        put_ptr(&mut p, (l1 * 512) as usize + 6 * w, w, data_c);
    }
    for (blkno, data) in [(data_a, &a), (data_b, &b), (data_c, &cc)] {
        let off = (blkno * 512) as usize;
        img[off..off + 4096].copy_from_slice(data);
    }

    let dev = CountingDevice::new(img);
    let fs = Ffs::open(&dev).unwrap();
    assert_eq!(fs.metadata(ino).unwrap().size, size);
    let mut buf = vec![0xEEu8; 3 * 4096];
    // Direct block, then direct holes.
    assert_eq!(fs.read_at(ino, 0, &mut buf).unwrap(), buf.len());
    assert!(buf[..4096] == a[..] && buf[4096..].iter().all(|&x| x == 0));
    // Single and double indirect ranges are holes (ib[0] = ib[1] = 0).
    for lbn in [
        12,
        12 + n - 1,
        12 + n,
        triple_start - 1,
        triple_start,
        triple_start + n * n - 1,
    ] {
        buf.fill(0xEE);
        assert_eq!(
            fs.read_at(ino, lbn * bsize, &mut buf[..4096]).unwrap(),
            4096
        );
        assert!(buf[..4096].iter().all(|&x| x == 0), "lbn {lbn} not a hole");
    }
    // The populated end: L1[4] hole, L1[5] = B, L1[6] = C, L1[7] hole (tail).
    let start = (triple_start + n * n + 4) * bsize;
    let mut tail = vec![0xEEu8; 5 * 4096];
    // A fresh file system, so no indirect block is cached.
    let fs = Ffs::open(&dev).unwrap();
    fs.metadata(ino).unwrap();
    dev.reset();
    let got = fs.read_at(ino, start, &mut tail).unwrap();
    assert_eq!(got as u64, size - start);
    assert!(tail[..4096].iter().all(|&x| x == 0));
    assert!(tail[4096..8192] == b[..]);
    assert!(tail[8192..12288] == cc[..]);
    assert!(tail[12288..got].iter().all(|&x| x == 0));
    // Three indirect blocks, then B and C in a single read.
    assert_eq!(
        dev.reads.get(),
        4,
        "device reads for the triple indirect tail"
    );
    assert_eq!(
        fs.block_address(ino, triple_start + n * n + 5).unwrap(),
        Some(data_b)
    );
    assert_eq!(
        fs.block_address(ino, triple_start + n * n + 7).unwrap(),
        None
    );
    // Again: everything is cached now but the data.
    dev.reset();
    fs.read_at(ino, start, &mut tail).unwrap();
    assert_eq!(dev.reads.get(), 1);

    // A pointer past the end of the file system is an error, not a read.
    let mut img = dev.data;
    {
        let mut p = Patcher { img: &mut img, be };
        put_ptr(&mut p, (l1 * 512) as usize + 6 * w, w, frags_total + 100);
    }
    let fs = Ffs::open(&img[..]).unwrap();
    assert!(matches!(
        fs.read_at(ino, start, &mut tail),
        Err(Error::Corrupt(_))
    ));
}

#[test]
fn triple_indirect_ufs1_le() {
    triple_indirect(1, false);
}

#[test]
fn triple_indirect_ufs1_be() {
    triple_indirect(1, true);
}

#[test]
fn triple_indirect_ufs2_le() {
    triple_indirect(2, false);
}

#[test]
fn triple_indirect_ufs2_be() {
    triple_indirect(2, true);
}

/// Checks the tiny tree reads back right.
fn check_tiny(fs: &Ffs<&[u8]>) {
    let src = tiny_tree();
    let ino = fs.lookup("/link").unwrap();
    let mut buf = vec![0u8; 100_000];
    let n = fs.read_at(ino, 0, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"nested\n");
    for name in ["victim", "sub/other"] {
        let want = fs::read(src.join(name)).unwrap();
        let ino = fs.lookup(name).unwrap();
        let n = fs.read_at(ino, 0, &mut buf).unwrap();
        assert!(buf[..n] == want[..]);
    }
    let names: Vec<_> = fs
        .read_dir(fs.root())
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    for want in [&b"."[..], b"..", b"victim", b"sub", b"link"] {
        assert!(names.iter().any(|n| n == want));
    }
}

/// Byte offset of the primary superblock (makefs puts both versions at 8K).
const MAKEFS_SB: usize = 8192;

#[test]
fn ufs2ea_magic() {
    for be in [false, true] {
        let mut img = makefs(cfg(2, be, 8192, 1024), tiny_tree(), &["-M", "4m"]);
        Patcher { img: &mut img, be }.put32(MAKEFS_SB + sb::MAGIC, 0x1901_2038);
        let fs = Ffs::open(&img[..]).unwrap();
        assert_eq!(fs.info().version, Version::Ufs2Ea);
        check_tiny(&fs);
    }
}

/// Moves the superblock to `loc` (which must hold only free or unused
/// bytes) and wipes the magic of the original.
fn move_superblock(img: &mut [u8], be: bool, loc: usize, set_sblockloc: bool) {
    assert!(
        img[loc..loc + 8192].iter().all(|&b| b == 0) || loc == 65536,
        "target area in use"
    );
    let sbcopy = img[MAKEFS_SB..MAKEFS_SB + 8192].to_vec();
    img[MAKEFS_SB + sb::MAGIC..MAKEFS_SB + sb::MAGIC + 4].fill(0);
    img[loc..loc + 8192].copy_from_slice(&sbcopy);
    if set_sblockloc {
        Patcher { img, be }.put64(loc + sb::SBLOCKLOC, loc as u64);
    }
}

#[test]
fn superblock_at_every_location() {
    for version in [1, 2] {
        for be in [false, true] {
            // 0: the boot block area makefs leaves empty.
            let mut img = makefs(cfg(version, be, 8192, 1024), tiny_tree(), &["-M", "4m"]);
            move_superblock(&mut img, be, 0, true);
            let fs = Ffs::open(&img[..]).unwrap();
            assert_eq!(fs.info().superblock_offset, 0);
            check_tiny(&fs);

            // 65536: with 64K blocks, cylinder group 0's superblock copy.
            let mut img = makefs(cfg(version, be, 65536, 8192), tiny_tree(), &["-M", "4m"]);
            move_superblock(&mut img, be, 65536, true);
            let fs = Ffs::open(&img[..]).unwrap();
            assert_eq!(fs.info().superblock_offset, 65536);
            check_tiny(&fs);

            // 262144: free blocks of a roomy 8K-block file system.
            let mut img = makefs(cfg(version, be, 8192, 1024), tiny_tree(), &["-M", "4m"]);
            move_superblock(&mut img, be, 262_144, true);
            let fs = Ffs::open(&img[..]).unwrap();
            assert_eq!(fs.info().superblock_offset, 262_144);
            check_tiny(&fs);
        }
    }
}

#[test]
fn backup_superblock_is_not_primary() {
    // A 64K-block image whose primary superblock is gone: the copy at 64K
    // names 8K as the primary's home and must not be taken for it.
    for version in [1, 2] {
        let mut img = makefs(cfg(version, false, 65536, 8192), tiny_tree(), &["-M", "4m"]);
        img[MAKEFS_SB + sb::MAGIC..MAKEFS_SB + sb::MAGIC + 4].fill(0);
        assert_eq!(Ffs::open(&img[..]).err(), Some(Error::NoSuperblock));
    }
}

/// Rewrites every directory record of `dir` (recursively) in the 4.2BSD
/// layout: a 16-bit namlen where 4.4BSD has d_type and an 8-bit namlen.
fn to_old_dirs(img: &mut [u8], be: bool, fs_img: &[u8], ino: Ino, seen: &mut Vec<Ino>) {
    let fs = Ffs::open(fs_img).unwrap();
    if seen.contains(&ino) {
        return;
    }
    seen.push(ino);
    let meta = fs.metadata(ino).unwrap();
    let fsize = u64::from(fs.info().fragment_size);
    let bsize = u64::from(fs.info().block_size);
    for lbn in 0..meta.size.div_ceil(bsize) {
        let frag = fs.block_address(ino, lbn).unwrap().unwrap();
        let len = (meta.size - lbn * bsize).min(bsize) as usize;
        let start = (frag * fsize) as usize;
        let mut pos = 0;
        while pos < len {
            let rec = start + pos;
            let reclen = Patcher { img, be }.get32(rec + 4);
            let reclen = if be { reclen >> 16 } else { reclen & 0xffff } as usize;
            let namlen = img[rec + 7];
            Patcher { img, be }.put16(rec + 6, u16::from(namlen));
            pos += reclen;
        }
    }
    for e in fs.read_dir(ino).unwrap() {
        if e.file_type == FileType::Directory && e.name != b"." && e.name != b".." {
            to_old_dirs(img, be, fs_img, e.ino, seen);
        }
    }
}

#[test]
fn old_format_ufs1() {
    for be in [false, true] {
        let orig = makefs(cfg(1, be, 8192, 1024), tiny_tree(), &["-M", "4m"]);
        let mut img = orig.clone();
        to_old_dirs(&mut img, be, &orig, Ino::ROOT, &mut Vec::new());
        {
            let mut p = Patcher { img: &mut img, be };
            // A 4.2BSD superblock: no FS_FLAGS_UPDATED, no fast symlinks
            // (-1 in the old rotational tables), 4.2BSD inodes.
            let old_flags = MAKEFS_SB + sb::OLD_FLAGS;
            p.img[old_flags] &= !0x80;
            p.put64(MAKEFS_SB + sb::SBLOCKLOC, 0xdead_beef);
            p.put64(MAKEFS_SB + sb::SIZE, 0);
            p.put32(MAKEFS_SB + sb::MAXSYMLINKLEN, u32::MAX);
            p.put32(MAKEFS_SB + sb::OLD_INODEFMT, u32::MAX);
        }
        let fs = Ffs::open(&img[..]).unwrap();
        let info = fs.info();
        assert!(info.old_directory_format);
        assert_eq!(info.max_fast_symlink_len, 0);
        // Without d_type, types come from the inodes.
        let entries = fs.read_dir(fs.root()).unwrap();
        let ty = |n: &[u8]| entries.iter().find(|e| e.name == n).unwrap().file_type;
        assert_eq!(ty(b"sub"), FileType::Directory);
        assert_eq!(ty(b"victim"), FileType::Regular);
        assert_eq!(ty(b"link"), FileType::Symlink);
        // makefs stored the link inline with no blocks: still readable, as
        // NetBSD reads such links on old file systems.
        check_tiny(&fs);
        // Wrongly treating the old records as new ones finds no names.
        let fs = Ffs::open(&orig[..]).unwrap();
        assert!(!fs.info().old_directory_format);
    }
}

#[test]
fn into_inner_returns_device() {
    let img = makefs(cfg(2, false, 8192, 1024), tiny_tree(), &["-M", "4m"]);
    let len = img.len();
    let fs = Ffs::open(img).unwrap();
    assert_eq!(fs.into_inner().len(), len);
}
