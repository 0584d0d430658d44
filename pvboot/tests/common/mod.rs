//! Shared helpers for the image tests: scratch directories, the source tree
//! every file system gets, running the real tools, and comparing a mounted
//! file system with the tree it was built from.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;

use pvboot::disk::{Cache, FileDisk, ReadAt};
use pvboot::fs::{FileSystem, FileType};

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pvboot-tests").join(name);
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

/// Runs a tool, panicking with its output if it fails.
pub fn run(cmd: &str, args: &[&str]) {
    run_in(None, cmd, args)
}

/// Runs a tool in `dir`.
pub fn run_in(dir: Option<&Path>, cmd: &str, args: &[&str]) {
    let mut c = Command::new(cmd);
    c.args(args);
    if let Some(d) = dir {
        c.current_dir(d);
    }
    let out = c.output().unwrap_or_else(|e| panic!("{cmd}: {e} (is it installed?)"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deterministic pseudo-random bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// What a source tree may contain.
#[derive(Clone, Copy)]
pub struct TreeOpts {
    /// Add symlinks (not for FAT).
    pub symlinks: bool,
    /// Size of the big file.
    pub big: usize,
    /// Files in the wide directory (htree on ext4 needs a few hundred).
    pub wide: usize,
    /// Let the sparse file's hole cover whole indirect blocks (ext4-view 1.0
    /// cannot read such ext2/ext3 block-mapped files; see ext.rs).
    pub big_hole: bool,
}

/// Builds the standard source tree under `dir/src` and returns its path.
pub fn make_tree(dir: &Path, o: TreeOpts) -> PathBuf {
    let src = dir.join("src");
    fs::create_dir_all(src.join("sub dir/deeper/deepest")).unwrap();
    fs::create_dir_all(src.join("empty dir")).unwrap();
    fs::create_dir_all(src.join("wide")).unwrap();
    fs::write(src.join("hello.txt"), b"hello, pvboot\n").unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    fs::write(src.join("big.bin"), noise(o.big, 1)).unwrap();
    fs::write(src.join("odd size.dat"), noise(12_345, 2)).unwrap();
    fs::write(src.join("sub dir/Grüße, señor ☃.txt"), "non-ASCII name\n").unwrap();
    fs::write(src.join("sub dir/deeper/deepest/a rather long file name indeed.text"), noise(70_000, 3)).unwrap();
    fs::write(src.join("UPPER.TXT"), b"upper\n").unwrap();
    // Sparse: a hole, then data, then a hole to the end.
    let mut f = fs::File::create(src.join("sparse")).unwrap();
    let (len, at) = if o.big_hole { (3 << 20, 1 << 20) } else { (10 << 10, 4 << 10) };
    f.set_len(len).unwrap();
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(at)).unwrap();
    f.write_all(&noise(5000, 4)).unwrap();
    drop(f);
    for i in 0..o.wide {
        fs::write(src.join(format!("wide/file-{i:04}")), format!("{i}\n")).unwrap();
    }
    fs::set_permissions(src.join("hello.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    if o.symlinks {
        symlink("hello.txt", src.join("link")).unwrap();
        symlink("sub dir/deeper", src.join("dirlink")).unwrap();
        symlink("../../hello.txt", src.join("sub dir/deeper/up")).unwrap();
    }
    src
}

/// Opens an image through the metadata cache.
pub fn open_disk(img: &Path) -> Rc<Cache<FileDisk>> {
    Rc::new(Cache::new(FileDisk::open(img).unwrap()).unwrap())
}

/// Reads a whole file in `chunk`-byte pieces.
pub fn read_all(fs: &dyn FileSystem, path: &str, chunk: usize) -> Vec<u8> {
    let node = fs.lookup(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        let n = fs.read_at(&node, out.len() as u64, &mut buf).unwrap_or_else(|e| panic!("{path}: {e}"));
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(out.len() as u64, node.meta.size, "{path}: size");
    out
}

/// What to compare besides names, types, sizes, contents and link targets.
#[derive(Clone, Copy)]
pub struct Check {
    /// Compare permission bits, owner and mtime (not on FAT).
    pub unix: bool,
    /// Names in the file system that the source lacks (e.g. lost+found).
    pub extra: &'static [&'static str],
}

/// Compares every file and directory under `src` with `fs`, byte for byte.
pub fn compare_tree(fs: &dyn FileSystem, src: &Path, check: Check) -> usize {
    let mut count = 0;
    compare_dir(fs, src, "/", check, &mut count);
    count
}

fn compare_dir(fs: &dyn FileSystem, dir: &Path, path: &str, check: Check, count: &mut usize) {
    let node = fs.lookup(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(node.meta.kind, FileType::Dir, "{path}");
    let mut got: Vec<String> = fs.read_dir(&node).unwrap().into_iter().map(|e| e.name).collect();
    if path == "/" {
        got.retain(|n| !check.extra.contains(&n.as_str()));
    }
    got.sort();
    let mut want: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    want.sort();
    assert_eq!(got, want, "listing of {path}");
    for name in want {
        let p = dir.join(&name);
        let fpath = if path == "/" { format!("/{name}") } else { format!("{path}/{name}") };
        let lmeta = fs::symlink_metadata(&p).unwrap();
        let node = fs.lookup_nofollow(&fpath).unwrap_or_else(|e| panic!("{fpath}: {e}"));
        *count += 1;
        if check.unix {
            assert_eq!(u32::from(node.meta.perm), lmeta.mode() & 0o7777, "{fpath}: mode");
            assert_eq!(node.meta.uid, lmeta.uid(), "{fpath}: uid");
            assert_eq!(node.meta.mtime, lmeta.mtime(), "{fpath}: mtime");
        }
        if lmeta.file_type().is_symlink() {
            assert_eq!(node.meta.kind, FileType::Symlink, "{fpath}");
            let target = fs::read_link(&p).unwrap();
            assert_eq!(fs.read_link(&node).unwrap(), target.to_str().unwrap(), "{fpath}: target");
            // Following it reaches the same thing as on the host.
            let followed = fs.lookup(&fpath).unwrap_or_else(|e| panic!("{fpath} (followed): {e}"));
            let host = fs::metadata(&p).unwrap();
            assert_eq!(followed.meta.kind == FileType::Dir, host.is_dir(), "{fpath}: followed type");
        } else if lmeta.is_dir() {
            assert_eq!(node.meta.kind, FileType::Dir, "{fpath}");
            compare_dir(fs, &p, &fpath, check, count);
        } else {
            assert_eq!(node.meta.kind, FileType::File, "{fpath}");
            assert_eq!(node.meta.size, lmeta.len(), "{fpath}: size");
            let want = fs::read(&p).unwrap();
            for chunk in [1 << 20, 4097] {
                let got = read_all(fs, &fpath, chunk);
                assert!(got == want, "{fpath}: contents differ (chunk {chunk})");
            }
            // A read at an odd offset in the middle.
            if want.len() > 10_000 {
                let mut b = vec![0u8; 9000];
                let n = fs.read_at(&node, 777, &mut b).unwrap();
                assert_eq!(n, 9000);
                assert_eq!(&b[..], &want[777..9777], "{fpath}: offset read");
            }
        }
    }
}

/// The whole image as a file system (no partition table).
pub fn mount_whole(img: &Path) -> Box<dyn FileSystem> {
    let disk = open_disk(img);
    pvboot::fs::mount(disk).unwrap_or_else(|e| panic!("{}: {e}", img.display()))
}

/// Writes `data` into `img` at byte `offset`.
pub fn write_at(img: &Path, offset: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new().write(true).open(img).unwrap();
    f.write_all_at(data, offset).unwrap();
}

/// Copies file `from` into `img` at byte `offset` (dd conv=notrunc).
pub fn dd(from: &Path, img: &Path, offset: u64) {
    write_at(img, offset, &fs::read(from).unwrap());
}

/// Creates a zero-filled image of `bytes`.
pub fn blank(img: &Path, bytes: u64) {
    let f = fs::File::create(img).unwrap();
    f.set_len(bytes).unwrap();
}

/// Reads `len` bytes at `offset` through pvboot's device stack.
pub fn peek(img: &Path, offset: u64, len: usize) -> Vec<u8> {
    let d = open_disk(img);
    let mut b = vec![0u8; len];
    d.read_at(offset, &mut b).unwrap();
    b
}
