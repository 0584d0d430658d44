//! `cargo xtask demo`: what a VPS user sees. A demo disk like a domU's own
//! (GPT: a FAT32 /boot holding GRUB legacy's menu.lst, as some VPS hosts
//! require, and a NetBSD FFSv2 root holding compressed kernels and a
//! boot.cfg), pvboot given as the domain's kernel, its console on this
//! terminal: the menu counts down, and the default entry boots.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};

use crate::root;

/// Sector size of the demo disk.
const SECTOR: u64 = 512;
/// The FAT32 /boot partition: start sector and size.
const BOOT_START: u64 = 2048;
const BOOT_BYTES: u64 = 40 << 20;
/// The FFSv2 root partition: size (it follows /boot).
const ROOT_BYTES: u64 = 16 << 20;

fn tool(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {shown} (cargo xtask setup installs it)"))?;
    ensure!(
        out.status.success(),
        "{shown} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn gzip_to(src: &Path, dst: &Path, tool_name: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(tool_name)
        .args(args)
        .arg("-c")
        .arg(src)
        .output()
        .with_context(|| format!("cannot run {tool_name}"))?;
    ensure!(
        out.status.success(),
        "{tool_name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::write(dst, out.stdout)?;
    Ok(())
}

/// Copies `part` into `disk` at byte `offset`.
fn place(part: &Path, disk: &Path, offset: u64) -> Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let data = fs::read(part)?;
    let mut f = fs::OpenOptions::new().write(true).open(disk)?;
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(&data)?;
    Ok(())
}

/// Builds target/demo/disk.img and its xl.cfg; returns the cfg.
pub fn build_disk() -> Result<PathBuf> {
    let dir = root().join("target/demo");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let guests = root().join("target/guests");

    // The FFSv2 root: kernels compressed as users ship them, and a boot.cfg.
    let tree = dir.join("root.d");
    fs::create_dir_all(&tree)?;
    gzip_to(
        &guests.join("hello"),
        &tree.join("hello.gz"),
        "gzip",
        &["-9"],
    )?;
    gzip_to(
        &guests.join("hello"),
        &tree.join("hello.xz"),
        "xz",
        &["--check=crc32", "-9"],
    )?;
    fs::write(
        tree.join("boot.cfg"),
        "banner=pvboot demo: NetBSD's boot.cfg on the FFSv2 root\n\
         menu=Hello (gzip):boot hello.gz greetings from boot.cfg\n\
         menu=Hello (xz):boot hello.xz xz-compressed\n\
         default=1\ntimeout=5\n",
    )?;
    let root_img = dir.join("root.img");
    tool(
        Command::new("makefs")
            .args([
                "-t",
                "ffs",
                "-o",
                "version=2,bsize=32768,fsize=4096",
                "-s",
                &ROOT_BYTES.to_string(),
            ])
            .arg(&root_img)
            .arg(&tree),
    )?;

    // The FAT32 /boot with GRUB legacy's menu.lst (pvgrub 1 syntax).
    let boot_img = dir.join("boot.img");
    fs::write(&boot_img, [])?;
    fs::File::options()
        .write(true)
        .open(&boot_img)?
        .set_len(BOOT_BYTES)?;
    tool(
        Command::new("mkfs.fat")
            .args(["-F", "32", "-n", "BOOT"])
            .arg(&boot_img),
    )?;
    let menu = dir.join("menu.lst");
    fs::write(
        &menu,
        "# pvboot demo: pvgrub 1's menu.lst on a FAT32 /boot\n\
         default 0\n\
         timeout 5\n\
         \n\
         title Hello (gzip kernel on the FFSv2 root)\n\
         \troot (hd0,1)\n\
         \tkernel /hello.gz greetings from menu.lst\n\
         \n\
         title Hello (uncompressed, on this FAT partition)\n\
         \troot (hd0,0)\n\
         \tkernel /hello second entry\n",
    )?;
    let img_arg = boot_img.to_str().context("non-UTF-8 path")?;
    tool(Command::new("mmd").args(["-i", img_arg, "::/grub"]))?;
    tool(
        Command::new("mcopy")
            .args(["-i", img_arg])
            .arg(&menu)
            .arg("::/grub/menu.lst"),
    )?;
    tool(
        Command::new("mcopy")
            .args(["-i", img_arg])
            .arg(guests.join("hello"))
            .arg("::/hello"),
    )?;

    // The disk: GPT with /boot (EFI system type, as FAT /boot partitions are) and the NetBSD FFS root.
    let disk = dir.join("disk.img");
    let root_start = BOOT_START + BOOT_BYTES / SECTOR;
    let total = (root_start + ROOT_BYTES / SECTOR + 2048) * SECTOR;
    fs::write(&disk, [])?;
    fs::File::options()
        .write(true)
        .open(&disk)?
        .set_len(total)?;
    tool(
        Command::new("sgdisk")
            // Explicit last sectors (inclusive), so each partition is exactly its file system.
            .arg(format!("--new=1:{BOOT_START}:{}", BOOT_START + BOOT_BYTES / SECTOR - 1))
            .args(["--typecode=1:ef00", "--change-name=1:boot"])
            .arg(format!("--new=2:{root_start}:{}", root_start + ROOT_BYTES / SECTOR - 1))
            .args(["--typecode=2:a902", "--change-name=2:root"])
            .arg(&disk),
    )?;
    place(&boot_img, &disk, BOOT_START * SECTOR)?;
    place(&root_img, &disk, root_start * SECTOR)?;

    let cfg = dir.join("pvboot.cfg");
    fs::write(
        &cfg,
        format!(
            "# pvboot as the domain's kernel, as a VPS host gives it (cargo xtask demo)\n\
             name = \"pvboot-demo\"\n\
             type = \"pvh\"\n\
             kernel = \"{}\"\n\
             memory = 256\n\
             disk = [ 'file:{},xvda,r' ]\n",
            guests.join("pvboot").display(),
            disk.display()
        ),
    )?;
    Ok(cfg)
}

/// Builds the demo disk and boots pvboot on it with the console attached.
pub fn run() -> Result<()> {
    let cfg = build_disk()?;
    println!("booting pvboot on target/demo/disk.img (GPT: FAT32 /boot with menu.lst, FFSv2 root with boot.cfg); console attached, Ctrl-] leaves:");
    crate::run(
        Command::new(root().join("target/release/xenolith"))
            .args(["run", "-c"])
            .arg(&cfg),
    )
}
