//! The block backend against a real peer: GRUB's PVH image, whose Xen PV
//! block driver (grub-core/disk/xen/xendisk.c) is a 32-bit blkfront
//! (x86_32-abi ring, one page, no persistent grants). Its disks are images
//! made by mkfs.fat/mtools, mke2fs and sfdisk; the assertions read what
//! GRUB prints on the console and what it wrote to the image.
//!
//! Needs /dev/kvm and grub-mkimage with the i386-xen_pvh modules (Debian:
//! grub-xen-bin, grub-common).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

use common::{Run, XENOLITH};

const LIMIT: Duration = Duration::from_secs(120);

fn scratch(name: &str) -> PathBuf {
    common::scratch("block", name)
}

fn tool(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e} (is it installed?)"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// GRUB's PVH image with `script` as its embedded configuration.
fn grub(dir: &Path, script: &str) -> PathBuf {
    let modules = ["normal", "echo", "ls", "cat", "fat", "ext2", "part_msdos", "loadenv", "halt"];
    common::grub_image(dir, "grub", "(memdisk)/boot/grub", script, &modules)
}

/// A FAT image of `kib` KiB holding `files` (name, content).
fn fat_image(dir: &Path, name: &str, kib: u32, files: &[(&str, &[u8])]) -> PathBuf {
    let img = dir.join(name);
    tool("mkfs.fat", &["-C", img.to_str().unwrap(), &kib.to_string()]);
    for (f, data) in files {
        let src = dir.join(f);
        fs::write(&src, data).unwrap();
        tool("mcopy", &["-i", img.to_str().unwrap(), src.to_str().unwrap(), &format!("::/{f}")]);
    }
    img
}

/// `xenolith -v create -c CFG`, killed after LIMIT.
fn create(dir: &Path, cfg_text: &str) -> Run {
    let cfg = dir.join("guest.cfg");
    fs::write(&cfg, cfg_text).unwrap();
    let mut cmd = Command::new(XENOLITH);
    cmd.args(["-v", "run", "-c", cfg.to_str().unwrap()]).env("XENOLITH_RUN_DIR", dir).stdin(Stdio::null());
    common::run(&mut cmd, b"", LIMIT)
}

fn cfg(kernel: &Path, disks: &[String]) -> String {
    let list: Vec<String> = disks.iter().map(|d| format!("'{d}'")).collect();
    format!(
        "name = \"blk-test\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 64\ndisk = [ {} ]\n",
        kernel.display(),
        list.join(", ")
    )
}

/// The metrics line blkback logs for `vdev` at the end (with -v).
fn metrics<'a>(run: &'a Run, vdev: &str) -> &'a str {
    run.stderr
        .lines()
        .find(|l| l.contains(&format!("blkback vbd {vdev} (")))
        .unwrap_or_else(|| panic!("no metrics for {vdev}\n{run}"))
}

#[test]
fn grub_reads_files_from_a_read_only_fat_disk() {
    let dir = scratch("grub_read");
    let kernel = grub(&dir, "echo blk-test: start\nls\ncat (xen/xvda)/hello.txt\necho blk-test: done\nhalt\n");
    let img = fat_image(&dir, "disk.img", 1024, &[("hello.txt", b"hello from the xen disk\n")]);
    let run = create(&dir, &cfg(&kernel, &[format!("file:{},xvda,r", img.display())]));
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("(xen/xvda)"), "GRUB lists the disk\n{run}");
    assert!(run.stdout.contains("hello from the xen disk"), "GRUB reads the file\n{run}");
    assert!(run.stdout.contains("blk-test: done"), "{run}");
    let m = metrics(&run, "xvda");
    assert!(m.contains("errors=0 unsupported=0") && m.contains("writes=0"), "{m}");
    assert!(run.stderr.contains("connected (x86_32-abi ring of 1 page(s)"), "{run}");
    assert!(!run.stderr.contains("panicked"), "{run}");
}

#[test]
fn grub_saves_its_environment_through_the_backend() {
    let dir = scratch("grub_write");
    let env = dir.join("grubenv");
    tool("grub-editenv", &[env.to_str().unwrap(), "create"]);
    let envblock = fs::read(&env).unwrap();
    let img = fat_image(&dir, "disk.img", 1024, &[("grubenv", &envblock)]);
    let kernel = grub(
        &dir,
        "set colour=blue\nsave_env -f (xen/xvda)/grubenv colour\nunset colour\nload_env -f (xen/xvda)/grubenv\necho \"blk-test: colour=$colour\"\nhalt\n",
    );
    let run = create(&dir, &cfg(&kernel, &[format!("format=raw, vdev=xvda, access=rw, target={}", img.display())]));
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("blk-test: colour=blue"), "{run}");
    let data = fs::read(&img).unwrap();
    assert!(data.windows(11).any(|w| w == b"colour=blue"), "GRUB's write reached the image");
    let m = metrics(&run, "xvda");
    assert!(m.contains("writes=1 ") && m.contains("errors=0"), "{m}");
}

#[test]
fn grub_sees_several_disks_and_their_partitions() {
    let dir = scratch("grub_two_disks");
    // xvda: ext2 from a directory (mke2fs -d).
    let tree = dir.join("tree");
    fs::create_dir_all(tree.join("boot")).unwrap();
    fs::write(tree.join("boot/ext.txt"), "on ext2\n").unwrap();
    let ext = dir.join("ext.img");
    tool("mke2fs", &["-q", "-F", "-t", "ext2", "-d", tree.to_str().unwrap(), ext.to_str().unwrap(), "2M"]);
    // xvdb: an MBR disk whose first partition is FAT.
    let part = dir.join("part.img");
    fs::write(&part, vec![0u8; 4 << 20]).unwrap();
    let mut sfdisk = Command::new("sfdisk").arg("-q").arg(&part).stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    std::io::Write::write_all(sfdisk.stdin.as_mut().unwrap(), b"label: dos\nstart=2048, type=c\n").unwrap();
    drop(sfdisk.stdin.take());
    assert!(sfdisk.wait().unwrap().success());
    tool("mkfs.fat", &["--offset=2048", part.to_str().unwrap(), "2047"]);
    let src = dir.join("part.txt");
    fs::write(&src, "in a partition\n").unwrap();
    tool("mcopy", &["-i", &format!("{}@@1048576", part.display()), src.to_str().unwrap(), "::/part.txt"]);

    let kernel = grub(&dir, "ls\ncat (xen/xvda)/boot/ext.txt\ncat (xen/xvdb,msdos1)/part.txt\nhalt\n");
    let run = create(
        &dir,
        &cfg(&kernel, &[format!("vdev=xvda, access=ro, target={}", ext.display()), format!("{},raw,xvdb,r", part.display())]),
    );
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("(xen/xvda)") && run.stdout.contains("(xen/xvdb,msdos1)"), "{run}");
    assert!(run.stdout.contains("on ext2"), "{run}");
    assert!(run.stdout.contains("in a partition"), "{run}");
    metrics(&run, "xvda");
    metrics(&run, "xvdb");
}

#[test]
fn bad_disk_entries_name_the_file_line_and_entry() {
    let dir = scratch("bad_disks");
    // The kernel is checked first: a real one, so that the disk is what fails.
    let kernel = grub(&dir, "halt\n");
    let text = format!(
        "name = \"blk-test\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 64\n\ndisk = [ 'file:/x.img,xvda,rx' ]\n",
        kernel.display()
    );
    let run = create(&dir, &text);
    assert_eq!(run.code, Some(1), "{run}");
    let line = run.stderr.lines().find(|l| l.starts_with("xenolith:")).unwrap_or_else(|| panic!("{run}"));
    assert!(line.contains("guest.cfg:6: disk: 'file:/x.img,xvda,rx': unknown value for access"), "{line}");

    let missing = dir.join("missing.img");
    let run = create(&dir, &cfg(&kernel, &[format!("file:{},xvda,r", missing.display())]));
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("cannot open") && run.stderr.contains("missing.img"), "{run}");

    let img = fat_image(&dir, "d.img", 1024, &[]);
    let run = create(&dir, &cfg(&kernel, &[format!("{},raw,xvda,r", img.display()), format!("{},raw,d0p0,r", img.display())]));
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("vdev d0p0 is already used"), "d0p0 is xvda\n{run}");
}
