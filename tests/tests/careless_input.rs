//! Careless and damaged input (issue 9): a damaged file system, a CD-ROM
//! asked to be writable, a guest restarted forever. (Settings Xenolith
//! cannot honour and the dry run's refusals are cases of the hand-made
//! table, tests/src/hand_made.rs.) Each gets one line that says
//! where and why, and no guest needs to be built: the file systems are
//! real mke2fs/mkfs.fat/makefs images and the kernel is the tests' marker kernel.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use xenolith_tests::*;

const LIMIT: Duration = Duration::from_secs(60);

fn tool(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e} (is it installed?)"));
    assert!(out.status.success(), "{cmd} {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

fn write_at(img: &Path, offset: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(img).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

/// `xenolith fstest ARGS` with its address space capped at 1 GiB, so that
/// an allocation sized by a damaged disk fails the test instead of the host.
fn fstest_bounded(args: &[&str]) -> Run {
    let mut script = String::from("ulimit -v 1048576; exec \"$0\" fstest");
    for a in args {
        script.push_str(&format!(" '{a}'"));
    }
    let out = Command::new("sh").arg("-c").arg(&script).arg(xenolith()).output().expect("run sh");
    Run { status: out.status, stdout: String::from_utf8_lossy(&out.stdout).into_owned(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

fn assert_corrupt(run: &Run) {
    assert_eq!(run.code(), 1, "{run}");
    assert!(run.stderr.contains("corrupt file system: "), "{run}");
    assert!(run.stdout.len() < 1 << 20, "no data past the damage\n{}", run.stderr);
}

/// A directory holding /file (100 000 bytes) and /dir/x, for every image.
fn source(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("dir")).unwrap();
    std::fs::write(src.join("file"), vec![b'x'; 100_000]).unwrap();
    std::fs::write(src.join("dir/x"), b"x\n").unwrap();
    src
}

fn ext4_image(dir: &Path) -> PathBuf {
    let img = dir.join("ext4.img");
    tool("mke2fs", &["-q", "-F", "-t", "ext4", "-d", source(dir).to_str().unwrap(), img.to_str().unwrap(), "8M"]);
    img
}

fn fat_image(dir: &Path) -> PathBuf {
    let img = dir.join("fat.img");
    let src = source(dir);
    tool("mkfs.fat", &["-C", img.to_str().unwrap(), "4096"]);
    tool("mcopy", &["-s", "-i", img.to_str().unwrap(), src.join("file").to_str().unwrap(), src.join("dir").to_str().unwrap(), "::/"]);
    img
}

fn ffs_image(dir: &Path) -> PathBuf {
    let img = dir.join("ffs.img");
    tool("makefs", &["-t", "ffs", "-o", "version=2", "-s", "8m", img.to_str().unwrap(), source(dir).to_str().unwrap()]);
    img
}

/// The offset of the one `len`-byte window of `img` where `found` holds.
fn find(img: &Path, len: usize, step: usize, found: impl Fn(&[u8]) -> bool) -> u64 {
    let data = std::fs::read(img).unwrap();
    let hits: Vec<usize> = (0..data.len().saturating_sub(len)).step_by(step).filter(|&i| found(&data[i..i + len])).collect();
    assert_eq!(hits.len(), 1, "{}: expected one match, found {hits:?}", img.display());
    hits[0] as u64
}

#[test]
fn ext4_inode_claiming_4_gib_is_corrupt_not_fatal() {
    let dir = scratch("careless_ext4_size");
    let img = ext4_image(&dir);
    let ok = fstest_bounded(&[img.to_str().unwrap(), "cat", "/file"]);
    assert_eq!((ok.code(), ok.stdout.len()), (0, 100_000), "{ok}");
    // i_size_lo = 0, i_size_high = 1: 4 GiB. debugfs rewrites both and the
    // inode checksum, as a damaged but self-consistent inode would have.
    tool("debugfs", &["-w", "-R", "sif /file size 4294967296", img.to_str().unwrap()]);
    let run = fstest_bounded(&[img.to_str().unwrap(), "cat", "/file"]);
    assert_corrupt(&run);
    assert!(run.stderr.contains("file size 4294967296 is larger than the volume"), "{run}");
}

#[test]
fn fat_entry_claiming_4_gib_is_corrupt_not_fatal() {
    let dir = scratch("careless_fat_size");
    let img = fat_image(&dir);
    let entry = find(&img, 32, 32, |e| &e[..11] == b"FILE       " && e[11] & 0x10 == 0);
    write_at(&img, entry + 28, &u32::MAX.to_le_bytes());
    assert_corrupt(&fstest_bounded(&[img.to_str().unwrap(), "cat", "/file"]));
}

#[test]
fn ffs_inode_claiming_4_gib_is_corrupt_not_fatal() {
    let dir = scratch("careless_ffs_size");
    let img = ffs_image(&dir);
    // The UFS2 dinode of /file: di_mode 0100644 at 0, di_size at 16.
    let inode = find(&img, 24, 8, |d| u16::from_le_bytes([d[0], d[1]]) & 0o170000 == 0o100000 && u64::from_le_bytes(d[16..24].try_into().unwrap()) == 100_000);
    write_at(&img, inode + 16, &(4u64 << 30).to_le_bytes());
    assert_corrupt(&fstest_bounded(&[img.to_str().unwrap(), "cat", "/file"]));
}

/// POSIX: a trailing slash on a non-directory is ENOTDIR, on every file system.
#[test]
fn a_trailing_slash_on_a_file_is_not_a_directory_everywhere() {
    let dir = scratch("careless_trailing_slash");
    for img in [ext4_image(&dir.join("e")), fat_image(&dir.join("f")), ffs_image(&dir.join("u"))] {
        let img = img.to_str().unwrap();
        for path in ["/file/", "/file/.", "/file//"] {
            let run = fstest_bounded(&[img, "cat", path]);
            assert_eq!(run.code(), 1, "{img} {path}: {run}");
            assert!(run.stderr.contains(&format!("{path}: not a directory")), "{img} {path}: {run}");
        }
        for path in ["/dir/", "/dir/./", "/dir//x", "/dir/../file"] {
            let run = fstest_bounded(&[img, "ls", path]);
            assert_eq!(run.code(), 0, "{img} {path}: {run}");
        }
    }
}

#[test]
fn path_errors_say_why() {
    let dir = scratch("careless_paths");
    let img = ext4_image(&dir);
    let long = "/a".repeat(10_000);
    let run = fstest_bounded(&[img.to_str().unwrap(), "ls", &long]);
    assert_eq!(run.code(), 1, "{run}");
    assert!(run.stderr.contains("invalid path: too long: 20000 bytes (at most 4096)"), "{}", run.stderr);
}

/// An MBR whose partition 2 ends past the disk: naming it says so.
#[test]
fn a_partition_past_the_end_of_the_disk_is_named() {
    let dir = scratch("careless_partition");
    let img = dir.join("disk.img");
    std::fs::write(&img, vec![0u8; 4 << 20]).unwrap();
    let mut mbr = [0u8; 512];
    // (slot, type, start, sectors): 1 fits, 2 ends at sector 10240 of 8192.
    for (slot, ptype, start, sectors) in [(0usize, 0x83u8, 2048u32, 2048u32), (1, 0x83, 4096, 6144)] {
        let e = &mut mbr[446 + 16 * slot..446 + 16 * (slot + 1)];
        e[4] = ptype;
        e[8..12].copy_from_slice(&start.to_le_bytes());
        e[12..16].copy_from_slice(&sectors.to_le_bytes());
    }
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    write_at(&img, 0, &mbr);
    let run = fstest_bounded(&[&format!("{}:msdos2", img.display()), "ls", "/"]);
    assert_eq!(run.code(), 1, "{run}");
    assert!(run.stderr.contains("partition 2 runs past the end of the disk (ends at sector 10240, disk has 8192)"), "{}", run.stderr);
}

// --- xenolith run ---

fn kernel(dir: &Path) -> PathBuf {
    let k = dir.join("marker.elf");
    std::fs::write(&k, marker_kernel(16 * 1024, "careless marker")).unwrap();
    k
}

fn base_cfg(dir: &Path, extra: &str) -> PathBuf {
    let text = format!("name = \"careless\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 16\n{extra}", kernel(dir).display());
    write_cfg(dir, "careless.cfg", &text)
}

/// A guest that stops at once and is restarted each time (issue 9: ~175
/// rebuilds a second, forever) is restarted with a growing pause, then
/// left down. The marker kernel halts with interrupts off, which ends the
/// domain as a power-off: on_poweroff = "restart" takes the path a
/// crashing guest with on_crash = "restart" takes.
#[test]
fn a_guest_that_always_stops_is_not_restarted_forever() {
    if !Path::new("/dev/kvm").exists() {
        return;
    }
    let dir = scratch("careless_restart_loop");
    let cfg = base_cfg(&dir, "on_poweroff = \"restart\"\n");
    let log = dir.join("console.log");
    let start = Instant::now();
    let run = xenolith_run(&["run", "--console-log", log.to_str().unwrap(), cfg.to_str().unwrap()], LIMIT);
    let took = start.elapsed();
    assert_eq!(run.code(), 0, "ends as the power-off it was\n{run}");
    assert!(run.stderr.contains("not restarting it again"), "{run}");
    assert_eq!(run.stderr.matches("careless marker").count(), 6, "the first run and 5 restarts\n{run}");
    // 0.25 + 0.5 + 1 + 2 + 2 s of pauses.
    assert!(took >= Duration::from_millis(5750), "{took:?}");
}
