//! Shared test helpers: a source tree exercising every FFS feature, images
//! built from it by NetBSD's makefs, and devices that count reads.
#![allow(dead_code)]

use std::cell::Cell;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use fs_ffs::{BlockRead, IoError};

/// Where tests put their trees and images (inside the cargo target dir).
/// Leftovers of earlier runs (over an hour old) are removed on first use.
pub fn scratch_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fs-ffs-tests");
        fs::create_dir_all(&dir).unwrap();
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 3600));
            if old {
                let _ = fs::remove_dir_all(entry.path()).or_else(|_| fs::remove_file(entry.path()));
            }
        }
        dir
    })
    .clone()
}

/// A unique path in the scratch dir.
pub fn scratch_path(name: &str) -> PathBuf {
    scratch_dir().join(format!("{name}-{}", std::process::id()))
}

/// Deterministic pseudo-random bytes (xorshift), different per seed.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
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

/// Symlink targets longer than any fast-symlink area (120 bytes in UFS2).
pub const LONG_DIR: &str = "a_directory_with_a_rather_long_name_so_that_symlinks_pointing_through_it_are_stored_in_data_blocks_0123456789";

/// File sizes around every fragment/block boundary the configurations use.
pub const SIZES: &[usize] = &[
    1, 100, 511, 512, 513, 1023, 1024, 2047, 2048, 2049, 4095, 4096, 4097, 8191, 8192, 8193, 12288,
    16383, 16384, 16385, 32767, 32768, 32769, 49152, 65535, 65536, 65537, 100_000, 200_001,
];

/// Size of the file that needs double indirect blocks with 4K blocks
/// (UFS1: 12 + 1024 direct+single blocks = 4.2 MiB; UFS2: 2.1 MiB).
pub const BIG_SIZE: usize = 6 * 1024 * 1024 + 123;

/// Builds (once per test process) the source tree the images are made from.
pub fn source_tree() -> &'static Path {
    static TREE: OnceLock<PathBuf> = OnceLock::new();
    TREE.get_or_init(|| {
        let root = scratch_path("tree");
        let _ = fs::remove_dir_all(&root);
        build_tree(&root);
        root
    })
}

fn write(path: &Path, data: &[u8], mode: u32) {
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn build_tree(root: &Path) {
    let mk = |p: &str| fs::create_dir_all(root.join(p)).unwrap();
    mk("");
    write(&root.join("empty"), b"", 0o644);
    write(&root.join("small.txt"), b"hello, ffs\n", 0o644);
    mk("sizes");
    for (i, &size) in SIZES.iter().enumerate() {
        write(
            &root.join(format!("sizes/f_{size}")),
            &pattern(size, i as u64 + 1),
            0o644,
        );
    }
    write(&root.join("big.bin"), &pattern(BIG_SIZE, 1000), 0o644);
    // Mostly zeros with islands of data (makefs allocates the zeros; the
    // holes tests patch real holes into images).
    let mut sparse = vec![0u8; 3 * 1024 * 1024];
    sparse[..10].copy_from_slice(b"beginning!");
    sparse[1 << 20..(1 << 20) + 5000].copy_from_slice(&pattern(5000, 77));
    let n = sparse.len();
    sparse[n - 3..].copy_from_slice(b"end");
    write(&root.join("sparse.bin"), &sparse, 0o600);

    mk("dir1/dir2/dir3");
    write(&root.join("dir1/dir2/dir3/deep.txt"), b"deep down\n", 0o444);
    mk("emptydir");
    mk("many");
    for i in 0..300 {
        write(
            &root.join(format!("many/file_{i:03}_with_some_padding")),
            format!("{i}\n").as_bytes(),
            0o644,
        );
    }
    mk("names");
    write(&root.join("names/with space.txt"), b"space", 0o644);
    write(
        &root.join("names/ünïcødé-файл-名前.txt"),
        "ünïcødé".as_bytes(),
        0o644,
    );
    write(
        &root.join(format!("names/{}.txt", "n".repeat(251))),
        b"longest name",
        0o644,
    );
    write(&root.join("names/.hidden"), b"hidden", 0o644);
    write(&root.join("names/-dash"), b"dash", 0o644);

    mk(&format!("links/{LONG_DIR}/inner"));
    write(
        &root.join(format!("links/{LONG_DIR}/inner/target.txt")),
        b"reached through a slow symlink\n",
        0o644,
    );
    symlink("../small.txt", root.join("links/fast")).unwrap();
    let slow = format!("{LONG_DIR}/inner/../inner/./target.txt");
    assert!(slow.len() > 120);
    symlink(&slow, root.join("links/slow")).unwrap();
    symlink("/dir1/dir2", root.join("links/abs")).unwrap();
    symlink("../dir1", root.join("links/todir")).unwrap();
    symlink("chain2", root.join("links/chain1")).unwrap();
    symlink("chain3", root.join("links/chain2")).unwrap();
    symlink("../small.txt", root.join("links/chain3")).unwrap();
    symlink("loop_b", root.join("links/loop_a")).unwrap();
    symlink("loop_a", root.join("links/loop_b")).unwrap();
    symlink("does/not/exist", root.join("links/dangling")).unwrap();
    // Lengths straddling both formats' fast-symlink limits (60 and 120).
    for len in [59, 60, 61, 119, 120, 121, 1000] {
        symlink("t".repeat(len), root.join(format!("links/len_{len}"))).unwrap();
    }

    write(&root.join("hard_a"), b"one inode, two names\n", 0o640);
    fs::hard_link(root.join("hard_a"), root.join("dir1/hard_b")).unwrap();

    mk("modes");
    for mode in [0o600, 0o644, 0o755, 0o4755, 0o2711, 0o400] {
        write(&root.join(format!("modes/m{mode:o}")), b"m", mode);
    }
    mk("modes/sticky");
    fs::set_permissions(
        root.join("modes/sticky"),
        fs::Permissions::from_mode(0o1777),
    )
    .unwrap();
}

/// makefs options for one image.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub version: u32,
    pub big_endian: bool,
    pub bsize: u32,
    pub fsize: u32,
}

/// Runs NetBSD's makefs; panics with a hint when it is missing.
pub fn makefs(cfg: Config, src: &Path, extra: &[&str]) -> Vec<u8> {
    let img = scratch_path(&format!(
        "img-v{}-{}-{}-{}-{}",
        cfg.version,
        if cfg.big_endian { "be" } else { "le" },
        cfg.bsize,
        cfg.fsize,
        fastrand_suffix()
    ));
    let opts = format!(
        "version={},bsize={},fsize={}",
        cfg.version, cfg.bsize, cfg.fsize
    );
    let out = Command::new("makefs")
        .args([
            "-t",
            "ffs",
            "-B",
            if cfg.big_endian { "be" } else { "le" },
            "-o",
            &opts,
        ])
        .args(extra)
        .arg(&img)
        .arg(src)
        .output()
        .expect("running makefs (Debian/Ubuntu: apt-get install makefs)");
    assert!(
        out.status.success(),
        "makefs {cfg:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = fs::read(&img).unwrap();
    fs::remove_file(&img).unwrap();
    data
}

fn fastrand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// An in-memory device counting the reads issued to it.
pub struct CountingDevice {
    pub data: Vec<u8>,
    pub reads: Cell<u64>,
    pub bytes: Cell<u64>,
}

impl CountingDevice {
    pub fn new(data: Vec<u8>) -> Self {
        CountingDevice {
            data,
            reads: Cell::new(0),
            bytes: Cell::new(0),
        }
    }

    pub fn reset(&self) {
        self.reads.set(0);
        self.bytes.set(0);
    }
}

impl BlockRead for CountingDevice {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.reads.set(self.reads.get() + 1);
        self.bytes.set(self.bytes.get() + buf.len() as u64);
        self.data.as_slice().read_at(offset, buf)
    }

    fn size(&self) -> u64 {
        self.data.len() as u64
    }
}

/// Field offsets used by tests that patch superblocks.
pub mod sb {
    pub const MAGIC: usize = 1372;
    pub const SBLOCKLOC: usize = 1000;
    pub const OLD_FLAGS: usize = 211;
    pub const NCG: usize = 44;
    pub const BSIZE: usize = 48;
    pub const FSIZE: usize = 52;
    pub const FRAG: usize = 56;
    pub const IPG: usize = 184;
    pub const FPG: usize = 188;
    pub const SIZE: usize = 1080;
    pub const OLD_SIZE: usize = 36;
    pub const MAXSYMLINKLEN: usize = 1320;
    pub const OLD_INODEFMT: usize = 1324;
    pub const INOPB: usize = 120;
    pub const SBSIZE: usize = 104;
}

/// Endian-aware patching of an image.
pub struct Patcher<'a> {
    pub img: &'a mut [u8],
    pub be: bool,
}

impl Patcher<'_> {
    pub fn put32(&mut self, off: usize, v: u32) {
        let b = if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.img[off..off + 4].copy_from_slice(&b);
    }
    pub fn put64(&mut self, off: usize, v: u64) {
        let b = if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.img[off..off + 8].copy_from_slice(&b);
    }
    pub fn put16(&mut self, off: usize, v: u16) {
        let b = if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.img[off..off + 2].copy_from_slice(&b);
    }
    pub fn get32(&self, off: usize) -> u32 {
        let b: [u8; 4] = self.img[off..off + 4].try_into().unwrap();
        if self.be {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }
    pub fn get64(&self, off: usize) -> u64 {
        let b: [u8; 8] = self.img[off..off + 8].try_into().unwrap();
        if self.be {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        }
    }
}
