//! Images made by NetBSD's makefs, read back and compared with the tree they
//! were made from: every configuration of version, byte order and block size.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;
use fs_ffs::{ByteOrder, Error, Ffs, FileType, Ino, Version};

fn file_type_of(m: &fs::Metadata) -> FileType {
    let t = m.file_type();
    if t.is_dir() {
        FileType::Directory
    } else if t.is_symlink() {
        FileType::Symlink
    } else if t.is_file() {
        FileType::Regular
    } else {
        FileType::Unknown
    }
}

/// Compares directory `ino` of the image with `src`, recursively.
fn compare_dir(fs: &Ffs<&[u8]>, ino: Ino, parent: Ino, src: &Path, checked: &mut usize) {
    let entries = fs.read_dir(ino).unwrap();
    let mut image: BTreeMap<Vec<u8>, (Ino, FileType)> = BTreeMap::new();
    for e in &entries {
        assert!(
            image.insert(e.name.clone(), (e.ino, e.file_type)).is_none(),
            "duplicate entry"
        );
    }
    assert_eq!(
        image.remove(&b"."[..]).map(|e| e.0),
        Some(ino),
        "'.' of {src:?}"
    );
    assert_eq!(
        image.remove(&b".."[..]).map(|e| e.0),
        Some(parent),
        "'..' of {src:?}"
    );
    let mut source: Vec<_> = fs::read_dir(src).unwrap().map(|e| e.unwrap()).collect();
    source.sort_by_key(|e| e.file_name());
    let names: Vec<Vec<u8>> = source
        .iter()
        .map(|e| e.file_name().as_bytes().to_vec())
        .collect();
    assert_eq!(
        image.keys().cloned().collect::<Vec<_>>(),
        names,
        "listing of {src:?}"
    );

    for e in source {
        let path = e.path();
        let smeta = fs::symlink_metadata(&path).unwrap();
        let (child, dtype) = image[e.file_name().as_bytes()];
        let meta = fs.metadata(child).unwrap();
        let ftype = file_type_of(&smeta);
        assert_eq!(dtype, ftype, "d_type of {path:?}");
        assert_eq!(meta.file_type, ftype, "type of {path:?}");
        assert_eq!(
            meta.permissions(),
            (smeta.mode() & 0o7777) as u16,
            "mode of {path:?}"
        );
        assert_eq!(meta.uid, smeta.uid(), "uid of {path:?}");
        assert_eq!(meta.gid, smeta.gid(), "gid of {path:?}");
        assert_eq!(meta.mtime.secs, smeta.mtime(), "mtime of {path:?}");
        if !smeta.is_dir() {
            assert_eq!(u64::from(meta.nlink), smeta.nlink(), "nlink of {path:?}");
            assert_eq!(meta.size, smeta.len(), "size of {path:?}");
        }
        match ftype {
            FileType::Directory => compare_dir(fs, child, ino, &path, checked),
            FileType::Symlink => {
                let target = fs::read_link(&path).unwrap();
                assert_eq!(
                    fs.read_link(child).unwrap(),
                    target.as_os_str().as_bytes(),
                    "target of {path:?}"
                );
            }
            FileType::Regular => {
                let want = fs::read(&path).unwrap();
                // One read of the whole file, with room to spare: must stop at EOF.
                let mut got = vec![0xAA; want.len() + 100];
                let n = fs.read_at(child, 0, &mut got).unwrap();
                assert_eq!(n, want.len(), "read length of {path:?}");
                assert!(got[..n] == want[..], "contents of {path:?}");
                assert_eq!(fs.read_at(child, want.len() as u64, &mut got).unwrap(), 0);
            }
            _ => unreachable!(),
        }
        *checked += 1;
    }
}

fn check_config(cfg: Config) {
    let src = source_tree();
    let image = makefs(cfg, src, &[]);
    let fs = Ffs::open(&image[..]).unwrap_or_else(|e| panic!("{cfg:?}: open: {e}"));
    let info = fs.info();
    assert_eq!(
        info.version,
        if cfg.version == 1 {
            Version::Ufs1
        } else {
            Version::Ufs2
        }
    );
    assert_eq!(
        info.byte_order,
        if cfg.big_endian {
            ByteOrder::Big
        } else {
            ByteOrder::Little
        }
    );
    assert_eq!(
        (info.block_size, info.fragment_size),
        (cfg.bsize, cfg.fsize)
    );
    assert!(!info.old_directory_format);
    assert_eq!(
        info.max_fast_symlink_len,
        if cfg.version == 1 { 60 } else { 120 }
    );

    let mut checked = 0;
    compare_dir(&fs, fs.root(), fs.root(), src, &mut checked);
    assert!(checked > 350, "only {checked} files compared");

    check_lookups(&fs, cfg);
    check_chunked_reads(&fs);
    check_read_count(&image, cfg);
}

fn check_lookups(fs: &Ffs<&[u8]>, cfg: Config) {
    let small = fs.lookup("/small.txt").unwrap();
    for p in [
        "small.txt",
        "//small.txt",
        "/./dir1/../small.txt",
        "/links/fast",
        "/links/chain1",
        "/links/todir/../small.txt",
        "/dir1/dir2/dir3/../../../small.txt",
    ] {
        assert_eq!(fs.lookup(p), Ok(small), "{cfg:?} lookup {p}");
    }
    let deep = fs.lookup("/dir1/dir2/dir3/deep.txt").unwrap();
    assert_eq!(fs.lookup("/links/todir/dir2/dir3/deep.txt"), Ok(deep));
    assert_eq!(fs.lookup("/links/abs/dir3/deep.txt"), Ok(deep));
    let target = fs
        .lookup(&format!("/links/{LONG_DIR}/inner/target.txt"))
        .unwrap();
    assert_eq!(fs.lookup("/links/slow"), Ok(target));
    assert_eq!(fs.lookup("/dir1/hard_b"), fs.lookup("/hard_a"));
    assert_eq!(fs.metadata(fs.lookup("/hard_a").unwrap()).unwrap().nlink, 2);

    // Symlinks themselves.
    let fast = fs.lookup_nofollow("/links/fast").unwrap();
    let m = fs.metadata(fast).unwrap();
    assert!(m.is_symlink());
    assert_eq!(m.size, "../small.txt".len() as u64);
    assert_eq!(fs.read_link(fast).unwrap(), b"../small.txt");
    let mut buf = [0u8; 64];
    let n = fs.read_at(fast, 3, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"small.txt");
    assert_eq!(fs.lookup_nofollow("/links/abs/"), fs.lookup("/dir1/dir2"));
    assert_eq!(
        fs.lookup_nofollow("/links/dir_that_is_not"),
        Err(Error::NotFound)
    );

    // Errors.
    assert_eq!(fs.lookup("/links/loop_a"), Err(Error::SymlinkLoop));
    assert!(fs.lookup_nofollow("/links/loop_a").is_ok());
    assert_eq!(fs.lookup("/links/dangling"), Err(Error::NotFound));
    assert_eq!(fs.lookup("/nonexistent"), Err(Error::NotFound));
    assert_eq!(fs.lookup("/small.txt/"), Err(Error::NotADirectory));
    assert_eq!(fs.lookup("/small.txt/x"), Err(Error::NotADirectory));
    assert_eq!(fs.read_link(small), Err(Error::NotASymlink));
    assert_eq!(fs.read_dir(small), Err(Error::NotADirectory));
    assert_eq!(fs.lookup(&"x".repeat(300)), Err(Error::NameTooLong));
    assert_eq!(fs.metadata(Ino(0)), Err(Error::InvalidInode));
    assert_eq!(fs.metadata(Ino(u32::MAX)), Err(Error::InvalidInode));
    assert_eq!(fs.lookup("/"), Ok(fs.root()));
    assert_eq!(fs.lookup(""), Ok(fs.root()));
    assert_eq!(fs.lookup("/.."), Ok(fs.root()));
}

/// Reads big.bin in odd-sized pieces at odd offsets.
fn check_chunked_reads(fs: &Ffs<&[u8]>) {
    let want = fs::read(source_tree().join("big.bin")).unwrap();
    let ino = fs.lookup("/big.bin").unwrap();
    let mut off = 0usize;
    let mut step = 1usize;
    let mut buf = vec![0u8; 300_000];
    while off < want.len() {
        let len = step.min(buf.len());
        let n = fs.read_at(ino, off as u64, &mut buf[..len]).unwrap();
        assert_eq!(n, len.min(want.len() - off));
        assert!(buf[..n] == want[off..off + n], "chunk at {off}+{len}");
        off += n;
        step = step * 7 + 3;
        if step > 250_000 {
            step = step % 9973 + 1;
        }
    }
    // Reads past the end.
    assert_eq!(fs.read_at(ino, want.len() as u64 + 5, &mut buf).unwrap(), 0);
    assert_eq!(fs.read_at(ino, u64::MAX, &mut buf).unwrap(), 0);
}

/// Reading a whole file must cost one device read per contiguous run plus
/// one per indirect block, and nothing else.
fn check_read_count(image: &[u8], cfg: Config) {
    let dev = CountingDevice::new(image.to_vec());
    let fs = Ffs::open(&dev).unwrap();
    let ino = fs.lookup("/big.bin").unwrap();
    let info = fs.info();
    let bsize = u64::from(info.block_size);
    let blocks = (BIG_SIZE as u64).div_ceil(bsize);
    let frags_per_block = bsize / u64::from(info.fragment_size);
    let mut runs = 0;
    let mut prev: Option<u64> = None;
    for lbn in 0..blocks {
        let a = fs
            .block_address(ino, lbn)
            .unwrap()
            .expect("big.bin has no holes");
        if prev.map(|p| p + frags_per_block) != Some(a) {
            runs += 1;
        }
        prev = Some(a);
    }
    let nindir = bsize / if cfg.version == 1 { 4 } else { 8 };
    let indirect_blocks = match blocks.saturating_sub(12) {
        0 => 0,
        b if b <= nindir => 1,
        b => 1 + 1 + (b - nindir).div_ceil(nindir),
    };
    // A fresh file system, so no indirect block is cached yet.
    let fs = Ffs::open(&dev).unwrap();
    let ino = fs.lookup("/big.bin").unwrap();
    fs.metadata(ino).unwrap();
    dev.reset();
    let mut buf = vec![0u8; BIG_SIZE];
    assert_eq!(fs.read_at(ino, 0, &mut buf).unwrap(), BIG_SIZE);
    assert_eq!(
        dev.bytes.get(),
        BIG_SIZE as u64 + indirect_blocks * bsize,
        "{cfg:?}: bytes read"
    );
    assert_eq!(
        dev.reads.get(),
        runs + indirect_blocks,
        "{cfg:?}: device reads"
    );
    eprintln!(
        "{cfg:?}: big.bin ({BIG_SIZE} bytes) in {} device reads ({runs} data runs, {indirect_blocks} indirect blocks)",
        dev.reads.get()
    );
}

macro_rules! configs {
    ($($name:ident: $version:expr, $be:expr, $bsize:expr, $fsize:expr;)*) => {$(
        #[test]
        fn $name() {
            check_config(Config { version: $version, big_endian: $be, bsize: $bsize, fsize: $fsize });
        }
    )*};
}

configs! {
    ufs1_le_4k: 1, false, 4096, 512;
    ufs1_be_4k: 1, true, 4096, 512;
    ufs1_le_8k: 1, false, 8192, 1024;
    ufs1_be_16k: 1, true, 16384, 2048;
    ufs1_le_16k: 1, false, 16384, 2048;
    ufs1_le_32k: 1, false, 32768, 4096;
    ufs1_be_32k: 1, true, 32768, 4096;
    ufs1_le_64k: 1, false, 65536, 8192;
    ufs1_be_64k: 1, true, 65536, 8192;
    ufs1_le_16k_full_frags: 1, false, 16384, 16384;
    ufs2_le_4k: 2, false, 4096, 512;
    ufs2_be_4k: 2, true, 4096, 512;
    ufs2_le_8k: 2, false, 8192, 1024;
    ufs2_le_16k: 2, false, 16384, 2048;
    ufs2_be_16k: 2, true, 16384, 2048;
    ufs2_le_32k: 2, false, 32768, 4096;
    ufs2_be_32k: 2, true, 32768, 4096;
    ufs2_le_64k: 2, false, 65536, 8192;
    ufs2_be_64k: 2, true, 65536, 8192;
    ufs2_be_4k_4k: 2, true, 4096, 4096;
}
