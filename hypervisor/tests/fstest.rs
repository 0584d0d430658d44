//! End-to-end tests of `xenolith fstest` on images made by mkfs.fat, mcopy,
//! mke2fs and sfdisk.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fstest-cli").join(name);
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn tool(cmd: &str, args: &[&str], stdin: Option<&str>) {
    let mut c = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    if let Some(s) = stdin {
        c.stdin.as_mut().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(c.stdin.take());
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn fstest(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xenolith")).arg("fstest").args(args).output().unwrap()
}

fn ok(args: &[&str]) -> Vec<u8> {
    let out = fstest(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Asserts a one-line error naming the image, exit status 1, and no panic.
fn fails(args: &[&str], image: &str, cause: &str) {
    let out = fstest(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.starts_with(&format!("xenolith fstest: {image}: ")), "{args:?}: {err}");
    assert!(err.contains(cause), "{args:?}: {err}");
    assert!(!err.contains("panick"), "{err}");
    assert!(out.stdout.is_empty());
}

fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A FAT16 image with a few files, at `dir/fat.img`.
fn fat_image(dir: &Path) -> (PathBuf, Vec<u8>) {
    let src = dir.join("src");
    fs::create_dir_all(src.join("Some Dir")).unwrap();
    fs::write(src.join("hello.txt"), b"hello\n").unwrap();
    let big = noise(5 << 20);
    fs::write(src.join("big.bin"), &big).unwrap();
    fs::write(src.join("Some Dir/Ünïcödé.txt"), b"u\n").unwrap();
    let img = dir.join("fat.img");
    tool("mkfs.fat", &["-C", "-F", "16", img.to_str().unwrap(), "32768"], None);
    let i = img.to_str().unwrap();
    for f in ["hello.txt", "big.bin", "Some Dir"] {
        tool("mcopy", &["-s", "-i", i, src.join(f).to_str().unwrap(), "::/"], None);
    }
    (img, big)
}

#[test]
fn ls_cat_stat_probe_on_a_whole_disk() {
    let dir = scratch("whole");
    let (img, big) = fat_image(&dir);
    let i = img.to_str().unwrap();

    let ls = String::from_utf8(ok(&[i, "ls"])).unwrap();
    let names: Vec<&str> = ls.lines().map(|l| l.rsplit_once(' ').unwrap().1).collect();
    assert_eq!(names, ["Dir", "big.bin", "hello.txt"], "{ls}"); // "Some Dir" ends in "Dir"
    let line = ls.lines().find(|l| l.ends_with(" hello.txt")).unwrap();
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols[0], "-rw-r--r--");
    assert_eq!(&cols[1..5], ["1", "0", "0", "6"]);
    assert!(ls.lines().any(|l| l.starts_with("drwxr-xr-x") && l.ends_with(" Some Dir")));
    assert!(String::from_utf8(ok(&[i, "ls", "/Some Dir"])).unwrap().ends_with(" Ünïcödé.txt\n"));

    assert_eq!(ok(&[i, "cat", "/big.bin"]), big);
    assert_eq!(ok(&[i, "cat", "/HELLO.TXT"]), b"hello\n");
    let stat = String::from_utf8(ok(&[i, "stat", "/hello.txt"])).unwrap();
    assert!(stat.contains("Type: regular file") && stat.contains("Size: 6"), "{stat}");
    assert_eq!(ok(&[i, "probe"]), b"fs: fat16\ntable: none\n");
    assert_eq!(ok(&[i, "partitions"]), b"table: none\n");

    fails(&[i, "cat", "/nope"], i, "/nope: no such file or directory");
    fails(&[i, "cat", "/Some Dir"], i, "is a directory");
    fails(&[i, "cat"], i, "cat needs a PATH");
    fails(&[i, "frobnicate"], i, "unknown command");
    fails(&[&format!("{i}:msdos1"), "ls"], i, "no partition 'msdos1'");
    fails(&[&format!("{i}:zz9"), "ls"], i, "bad partition name");
    let missing = dir.join("missing.img");
    let m = missing.to_str().unwrap();
    fails(&[m, "ls"], m, "No such file");
}

#[test]
fn partitioned_disk() {
    let dir = scratch("mbr");
    let (fat, big) = fat_image(&dir);
    let ext_src = dir.join("ext");
    fs::create_dir_all(&ext_src).unwrap();
    fs::write(ext_src.join("vmlinuz"), b"kernel\n").unwrap();
    std::os::unix::fs::symlink("vmlinuz", ext_src.join("link")).unwrap();
    let ext = dir.join("ext.img");
    tool("mke2fs", &["-q", "-F", "-t", "ext4", "-d", ext_src.to_str().unwrap(), ext.to_str().unwrap(), "16M"], None);

    let img = dir.join("disk.img");
    let f = fs::File::create(&img).unwrap();
    f.set_len(96 << 20).unwrap();
    tool("sfdisk", &["-q", img.to_str().unwrap()], Some("label: dos\nstart=2048, size=65536, type=6\nstart=67584, size=100000, type=5\nstart=69632, size=32768, type=83\n"));
    use std::os::unix::fs::FileExt;
    f.write_all_at(&fs::read(&fat).unwrap(), 2048 * 512).unwrap();
    f.write_all_at(&fs::read(&ext).unwrap(), 69632 * 512).unwrap();
    drop(f);
    let i = img.to_str().unwrap();

    let parts = String::from_utf8(ok(&[i, "partitions"])).unwrap();
    let lines: Vec<&str> = parts.lines().collect();
    assert_eq!(lines[0], "table: msdos");
    assert!(lines[2].starts_with("xbd0e    (hd0,msdos1)") && lines[2].contains(" fat16 "), "{parts}");
    assert!(lines[3].starts_with("-        (hd0,msdos2)") && lines[3].contains("extended"), "{parts}");
    assert!(lines[4].starts_with("xbd0i    (hd0,msdos5)") && lines[4].contains(" ext4 "), "{parts}");

    assert_eq!(ok(&[i, "probe"]), b"fs: fat16\ntable: msdos\npartition: (hd0,msdos1) xbd0e\n");
    assert_eq!(ok(&[i, "cat", "/big.bin"]), big);
    for sel in ["msdos5", "xbd0i", "(hd0,msdos5)", "5"] {
        assert_eq!(ok(&[&format!("{i}:{sel}"), "cat", "/link"]), b"kernel\n", "{sel}");
    }
    let ls = String::from_utf8(ok(&[&format!("{i}:msdos5"), "ls", "/"])).unwrap();
    assert!(ls.lines().any(|l| l.starts_with("lrwxrwxrwx") && l.ends_with(" link -> vmlinuz")), "{ls}");
    assert!(ls.contains(" lost+found\n"));
}

#[test]
fn corrupt_images_give_one_line_errors() {
    let dir = scratch("corrupt");
    // Random bytes: no table, no file system.
    let junk = dir.join("junk.img");
    fs::write(&junk, noise(1 << 20)).unwrap();
    let j = junk.to_str().unwrap();
    fails(&[j, "ls"], j, "no recognized file system");
    assert_eq!(ok(&[j, "partitions"]), b"table: none\n");

    // A GPT whose both headers are broken.
    let gpt = dir.join("gpt.img");
    fs::File::create(&gpt).unwrap().set_len(8 << 20).unwrap();
    tool("sgdisk", &["-n", "1:2048:0", gpt.to_str().unwrap()], None);
    let f = fs::OpenOptions::new().write(true).open(&gpt).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"X", 512).unwrap();
    f.write_all_at(b"X", (8 << 20) - 512).unwrap();
    let g = gpt.to_str().unwrap();
    fails(&[g, "partitions"], g, "GPT unreadable");

    // An ext4 superblock whose fields are garbage.
    let (fat, _) = fat_image(&dir);
    let ext = dir.join("ext.img");
    fs::copy(&fat, &ext).unwrap();
    let f = fs::OpenOptions::new().write(true).open(&ext).unwrap();
    f.write_all_at(&noise(1024), 1024).unwrap();
    f.write_all_at(&[0x53, 0xEF], 1080).unwrap();
    let e = ext.to_str().unwrap();
    let out = fstest(&[e, "ls"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);

    // A truncated FAT image.
    let short = dir.join("short.img");
    fs::write(&short, &fs::read(&fat).unwrap()[..4096]).unwrap();
    let s = short.to_str().unwrap();
    let out = fstest(&[s, "cat", "/big.bin"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}
