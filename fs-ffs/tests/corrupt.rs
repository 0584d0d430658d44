//! Corrupt and hostile images: every damage must give an error (or valid
//! data), never a panic, a hang or an unbounded allocation.

mod common;

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use fs_ffs::{Error, Ffs, FileType, Ino};

fn tree() -> &'static PathBuf {
    static TREE: OnceLock<PathBuf> = OnceLock::new();
    TREE.get_or_init(|| {
        let root = scratch_path("corrupt-tree");
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("sub/dir")).unwrap();
        fs::write(root.join("file"), pattern(100_000, 3)).unwrap();
        fs::write(root.join("sub/dir/small"), b"small\n").unwrap();
        std::os::unix::fs::symlink("sub/dir/small", root.join("fastlink")).unwrap();
        std::os::unix::fs::symlink("x".repeat(200), root.join("slowlink")).unwrap();
        root
    })
}

/// Images of every version and byte order: (version, big endian, image).
fn images() -> Vec<(u32, bool, Vec<u8>)> {
    let mut out = Vec::new();
    for version in [1, 2] {
        for be in [false, true] {
            let cfg = Config {
                version,
                big_endian: be,
                bsize: 4096,
                fsize: 512,
            };
            out.push((version, be, makefs(cfg, tree(), &["-M", "1m"])));
        }
    }
    out
}

const SB: usize = 8192;

/// Walks everything reachable, bounded, ignoring errors: what a boot loader
/// might do with a damaged disk. Must return, without panicking.
fn walk(fs: &Ffs<&[u8]>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stack = vec![(fs.root(), 0)];
    let mut visited = 0;
    let mut buf = vec![0u8; 70_000];
    while let Some((ino, depth)) = stack.pop() {
        visited += 1;
        assert!(Instant::now() < deadline, "walk took too long");
        if visited > 500 {
            break;
        }
        let _ = fs.metadata(ino);
        let _ = fs.read_at(ino, 0, &mut buf);
        let _ = fs.read_at(ino, 1 << 40, &mut buf[..10]);
        let _ = fs.read_link(ino);
        if let Ok(entries) = fs.read_dir(ino) {
            for e in entries.into_iter().take(50) {
                if depth < 6 && e.name != b"." && e.name != b".." {
                    stack.push((e.ino, depth + 1));
                }
            }
        }
    }
    for p in [
        "/file",
        "/sub/dir/small",
        "/fastlink",
        "/slowlink",
        "/sub/../sub/dir/",
        "/a/b/c",
    ] {
        let _ = fs.lookup(p);
        let _ = fs.lookup_nofollow(p);
    }
}

/// Opens and walks, whatever happens.
fn open_and_walk(img: &[u8]) -> Result<(), Error> {
    let fs = Ffs::open(img)?;
    walk(&fs);
    Ok(())
}

#[test]
fn no_superblock() {
    assert_eq!(Ffs::open(&[][..]).err(), Some(Error::NoSuperblock));
    assert_eq!(Ffs::open(&[0u8; 1][..]).err(), Some(Error::NoSuperblock));
    assert_eq!(
        Ffs::open(&vec![0u8; 1 << 20][..]).err(),
        Some(Error::NoSuperblock)
    );
    for (_, _, mut img) in images() {
        img[SB + sb::MAGIC..SB + sb::MAGIC + 4].fill(0);
        assert_eq!(Ffs::open(&img[..]).err(), Some(Error::NoSuperblock));
    }
}

#[test]
fn bad_superblock_fields() {
    for (version, be, img) in images() {
        let i32_patches: &[(usize, i32)] = &[
            (sb::BSIZE, 0),
            (sb::BSIZE, 3000),
            (sb::BSIZE, 2048),
            (sb::BSIZE, 131_072),
            (sb::BSIZE, -4096),
            (sb::FSIZE, 0),
            (sb::FSIZE, 256),
            (sb::FSIZE, 8192),
            (sb::FSIZE, 1000),
            (sb::FRAG, 4),
            (sb::NCG, 0),
            (sb::NCG, -1),
            (sb::IPG, 0),
            (sb::IPG, i32::MAX),
            (sb::FPG, 0),
            (sb::FPG, -8),
            (sb::INOPB, 7),
            (sb::SBSIZE, 0),
            (sb::SBSIZE, 1 << 20),
            (sb::MAXSYMLINKLEN, 1000),
            (16 /* fs_iblkno */, i32::MAX),
        ];
        for &(off, v) in i32_patches {
            let mut img = img.clone();
            Patcher { img: &mut img, be }.put32(SB + off, v as u32);
            let r = Ffs::open(&img[..]);
            assert!(
                matches!(r, Err(Error::Corrupt(_))),
                "v{version} be={be} field {off} = {v}: {:?}",
                r.err()
            );
        }
        for size in [0u64, 1 << 62, u64::MAX, 1 << 40] {
            let mut img = img.clone();
            Patcher { img: &mut img, be }.put64(SB + sb::SIZE, size);
            let r = Ffs::open(&img[..]);
            assert!(
                matches!(r, Err(Error::Corrupt(_))),
                "v{version} size {size}: {:?}",
                r.err()
            );
        }
    }
}

/// Locates an inode and patches fields in it.
fn with_inode(img: &mut Vec<u8>, path: &str, f: impl FnOnce(&mut Patcher, usize)) {
    let (be, off) = {
        let fs = Ffs::open(&img[..]).unwrap();
        let ino = fs.lookup_nofollow(path).unwrap();
        (
            fs.info().byte_order == fs_ffs::ByteOrder::Big,
            fs.inode_offset(ino).unwrap() as usize,
        )
    };
    f(&mut Patcher { img, be }, off);
}

fn size_off(version: u32) -> usize {
    if version == 1 {
        8
    } else {
        16
    }
}

fn db_off(version: u32) -> usize {
    if version == 1 {
        40
    } else {
        112
    }
}

fn ib_off(version: u32) -> usize {
    if version == 1 {
        88
    } else {
        208
    }
}

fn put_ptr(p: &mut Patcher, version: u32, off: usize, v: i64) {
    if version == 1 {
        p.put32(off, v as u32)
    } else {
        p.put64(off, v as u64)
    }
}

#[test]
fn root_inode_damage() {
    for (version, _, img) in images() {
        // Not a directory.
        let mut bad = img.clone();
        with_inode(&mut bad, "/", |p, off| p.put16(off, 0o100644));
        assert_eq!(
            Ffs::open(&bad[..]).err(),
            Some(Error::Corrupt("root inode is not a directory"))
        );
        // Unallocated.
        let mut bad = img.clone();
        with_inode(&mut bad, "/", |p, off| p.put16(off, 0));
        assert_eq!(Ffs::open(&bad[..]).err(), Some(Error::InvalidInode));
        // Absurd sizes: errors, quickly.
        for size in [u64::MAX, 1 << 63, 1 << 40, 1 << 20] {
            let mut bad = img.clone();
            with_inode(&mut bad, "/", |p, off| {
                p.put64(off + size_off(version), size)
            });
            let fs = Ffs::open(&bad[..]).unwrap();
            assert!(fs.read_dir(fs.root()).is_err(), "root size {size}");
            assert!(fs.lookup("/nothing").is_err());
            walk(&fs);
        }
    }
}

#[test]
fn absurd_file_sizes_and_pointers() {
    for (version, _, img) in images() {
        let mut buf = vec![0u8; 8192];
        for size in [u64::MAX, 1 << 63, (1 << 63) - 1, 1 << 62] {
            let mut bad = img.clone();
            with_inode(&mut bad, "/file", |p, off| {
                p.put64(off + size_off(version), size)
            });
            let fs = Ffs::open(&bad[..]).unwrap();
            let ino = fs.lookup("/file").unwrap();
            assert_eq!(fs.metadata(ino).unwrap().size, size);
            assert!(
                matches!(fs.read_at(ino, 0, &mut buf), Err(Error::Corrupt(_))),
                "size {size}"
            );
            assert!(fs.read_at(ino, 1 << 61, &mut buf).is_err());
        }
        // Block pointers: negative, past the file system, past the device.
        for ptr in [-1i64, -8, i32::MAX as i64, 1 << 20, 1 << 40] {
            if version == 1 && ptr > i64::from(i32::MAX) {
                continue; // does not fit a UFS1 pointer
            }
            for which in [db_off(version), ib_off(version)] {
                let mut bad = img.clone();
                with_inode(&mut bad, "/file", |p, off| {
                    put_ptr(p, version, off + which, ptr)
                });
                let fs = Ffs::open(&bad[..]).unwrap();
                let ino = fs.lookup("/file").unwrap();
                let mut whole = vec![0u8; 100_000];
                assert!(
                    matches!(fs.read_at(ino, 0, &mut whole), Err(Error::Corrupt(_))),
                    "ptr {ptr}"
                );
            }
        }
        // An indirect block pointing at itself: garbage data, no loop.
        let mut bad = img.clone();
        let fs = Ffs::open(&img[..]).unwrap();
        let ino = fs.lookup("/file").unwrap();
        let first = fs.block_address(ino, 0).unwrap().unwrap();
        with_inode(&mut bad, "/file", |p, off| {
            put_ptr(p, version, off + ib_off(version), first as i64)
        });
        let fs = Ffs::open(&bad[..]).unwrap();
        let mut whole = vec![0u8; 100_000];
        let _ = fs.read_at(ino, 0, &mut whole);
    }
}

#[test]
fn slow_symlink_too_long() {
    for (version, _, img) in images() {
        let mut bad = img.clone();
        with_inode(&mut bad, "/slowlink", |p, off| {
            p.put64(off + size_off(version), 1 << 30)
        });
        let fs = Ffs::open(&bad[..]).unwrap();
        let ino = fs.lookup_nofollow("/slowlink").unwrap();
        assert_eq!(fs.read_link(ino), Err(Error::NameTooLong));
        assert_eq!(fs.lookup("/slowlink"), Err(Error::NameTooLong));
        let fs = Ffs::open(&img[..]).unwrap();
        assert_eq!(fs.read_link(ino).unwrap(), "x".repeat(200).as_bytes());
    }
}

/// Byte offset of the root directory's first block.
fn root_dir_offset(img: &[u8]) -> usize {
    let fs = Ffs::open(img).unwrap();
    let frag = fs.block_address(Ino::ROOT, 0).unwrap().unwrap();
    (frag * u64::from(fs.info().fragment_size)) as usize
}

#[test]
fn bad_directory_records() {
    for (_, be, img) in images() {
        let dir = root_dir_offset(&img);
        // (offset in the first record, 16-bit value): reclen 0, 4, odd,
        // past the chunk; name length 0 and past the record.
        let patches: &[(usize, u16, &str)] = &[
            (4, 0, "zero-length directory record"),
            (4, 4, "bad directory record length"),
            (4, 13, "bad directory record length"),
            (4, 1024, "bad directory record length"),
        ];
        for &(off, v, what) in patches {
            let mut bad = img.clone();
            Patcher { img: &mut bad, be }.put16(dir + off, v);
            let fs = Ffs::open(&bad[..]).unwrap();
            assert_eq!(
                fs.read_dir(fs.root()),
                Err(Error::Corrupt(what)),
                "{off} = {v}"
            );
            assert_eq!(fs.lookup("/file"), Err(Error::Corrupt(what)));
            walk(&fs);
        }
        for namlen in [0u8, 255] {
            let mut bad = img.clone();
            bad[dir + 7] = namlen;
            let fs = Ffs::open(&bad[..]).unwrap();
            assert_eq!(
                fs.read_dir(fs.root()),
                Err(Error::Corrupt("bad directory entry name length"))
            );
        }
        // An entry ("..") naming an inode that does not exist.
        let mut bad = img.clone();
        Patcher { img: &mut bad, be }.put32(dir + 12, 0x7fff_fff0);
        let fs = Ffs::open(&bad[..]).unwrap();
        assert!(matches!(fs.read_dir(fs.root()), Err(Error::Corrupt(_))));
        assert_eq!(fs.lookup("/.."), Err(Error::InvalidInode));
        // The whole directory block zeroed (a hole would read the same).
        let mut bad = img.clone();
        bad[dir..dir + 512].fill(0);
        let fs = Ffs::open(&bad[..]).unwrap();
        assert_eq!(
            fs.read_dir(fs.root()),
            Err(Error::Corrupt("zero-length directory record"))
        );
    }
}

#[test]
fn directory_loop() {
    for (_, be, img) in images() {
        // Make "sub/dir"'s ".." and its only file name the root: cycles.
        let fs = Ffs::open(&img[..]).unwrap();
        let d = fs.lookup("/sub/dir").unwrap();
        let frag = fs.block_address(d, 0).unwrap().unwrap();
        let off = (frag * u64::from(fs.info().fragment_size)) as usize;
        let mut bad = img.clone();
        Patcher { img: &mut bad, be }.put32(off + 12, 2); // ".." -> root
        Patcher { img: &mut bad, be }.put32(off + 24, 2); // "small" -> root
        let fs = Ffs::open(&bad[..]).unwrap();
        assert_eq!(fs.lookup("/sub/dir/../sub/dir/../file"), fs.lookup("/file"));
        assert_eq!(
            fs.lookup("/sub/dir/small/sub/dir/small/sub/dir/small"),
            Ok(fs.root())
        );
        walk(&fs);
    }
}

#[test]
fn truncated_images() {
    for (_, _, img) in images() {
        let mut len = 0;
        while len < img.len() {
            let _ = open_and_walk(&img[..len]);
            len += if len < 80_000 { 1021 } else { 16_411 };
        }
        // Cut inside file data: reads fail with an error.
        let fs = Ffs::open(&img[..]).unwrap();
        let ino = fs.lookup("/file").unwrap();
        let last = fs.block_address(ino, 20).unwrap().unwrap();
        let cut = (last * 512) as usize + 100;
        let fs = Ffs::open(&img[..cut]).unwrap();
        let mut whole = vec![0u8; 100_000];
        assert!(matches!(
            fs.read_at(ino, 0, &mut whole),
            Err(Error::Corrupt(_))
        ));
        assert_eq!(fs.read_at(ino, 0, &mut whole[..4096]), Ok(4096));
    }
}

/// Random byte damage in the metadata areas; the walk must survive it all.
#[test]
fn random_damage() {
    let deadline = Instant::now() + Duration::from_secs(20);
    for (_, _, img) in images() {
        let fs = Ffs::open(&img[..]).unwrap();
        // Interesting areas: the superblock, the first inodes, the root directory.
        let inodes = fs.inode_offset(Ino::ROOT).unwrap() as usize;
        let dir = root_dir_offset(&img);
        let areas = [
            (SB, SB + 1400),
            (inodes - 512, inodes + 2048),
            (dir, dir + 512),
        ];
        let mut rng = 0x1234_5678_9abc_def1u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..300 {
            if Instant::now() > deadline {
                break;
            }
            let mut bad = img.clone();
            for _ in 0..1 + round % 8 {
                let (lo, hi) = areas[(next() % 3) as usize];
                let at = lo + (next() as usize) % (hi - lo);
                bad[at] = match next() % 4 {
                    0 => 0,
                    1 => 0xff,
                    _ => next() as u8,
                };
            }
            let _ = open_and_walk(&bad);
        }
    }
}

#[test]
fn file_types_survive_unknown_dtype() {
    // DT_UNKNOWN in new-format directories: the type comes from the inode.
    for (_, _, img) in images() {
        let dir = root_dir_offset(&img);
        let mut bad = img.clone();
        bad[dir + 6] = 0; // "." d_type
        let fs = Ffs::open(&bad[..]).unwrap();
        let dot = fs
            .read_dir(fs.root())
            .unwrap()
            .into_iter()
            .find(|e| e.name == b".")
            .unwrap();
        assert_eq!(dot.file_type, FileType::Directory);
    }
}
