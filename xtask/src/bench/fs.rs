//! File-system read throughput against reading the image directly.
//!
//! For each file system (FFSv2 32K/4K, FFSv1, FAT32, ext4) an image holding
//! one 256 MiB file is made once in `target/bench/` with the real tools and
//! reused. Each run warms the page cache by reading the image, then times
//! reading the file through pvboot (`FileDisk` + `Cache` + the file system,
//! 1 MiB `read_at` calls) against plain `pread`s of the same number of bytes
//! of the image file with the same chunk size, best of several rounds each.
//! The ratio is pvboot's share of the raw speed (target >= 0.7 for FFSv2);
//! "device reads" counts the `read_sectors` calls pvboot issued for one
//! whole-file read, mount included.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use pvboot::disk::{Cache, FileDisk};

/// Size of the benchmark file.
const FILE_BYTES: usize = 256 << 20;
/// Bytes per read, for pvboot and for the raw image alike.
const CHUNK: usize = 1 << 20;
/// Timed rounds per measurement; the best one counts.
const ROUNDS: usize = 5;

struct Case {
    name: &'static str,
    image: &'static str,
}

const CASES: [Case; 4] = [
    Case {
        name: "ffs2-32k/4k",
        image: "ffs2-32k.img",
    },
    Case {
        name: "ffs1-16k/2k",
        image: "ffs1-16k.img",
    },
    Case {
        name: "fat32",
        image: "fat32.img",
    },
    Case {
        name: "ext4",
        image: "ext4.img",
    },
];

fn tool(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?} (is it installed?)"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// The source tree: one 256 MiB file of pseudo-random bytes.
fn source(dir: &Path) -> Result<PathBuf> {
    let src = dir.join("src");
    let file = src.join("big.bin");
    if fs::metadata(&file)
        .map(|m| m.len() as usize == FILE_BYTES)
        .unwrap_or(false)
    {
        return Ok(src);
    }
    fs::create_dir_all(&src)?;
    let mut f = File::create(&file)?;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut buf = vec![0u8; CHUNK];
    for _ in 0..FILE_BYTES / CHUNK {
        for w in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&buf)?;
    }
    Ok(src)
}

fn make_image(dir: &Path, src: &Path, case: &Case) -> Result<PathBuf> {
    let img = dir.join(case.image);
    if img.exists() {
        return Ok(img);
    }
    let tmp = dir.join(format!("{}.tmp", case.image));
    let _ = fs::remove_file(&tmp);
    let (t, s) = (tmp.to_str().unwrap(), src.to_str().unwrap());
    match case.image {
        "ffs2-32k.img" => tool(Command::new("makefs").args([
            "-t",
            "ffs",
            "-o",
            "version=2,bsize=32768,fsize=4096",
            t,
            s,
        ]))?,
        "ffs1-16k.img" => tool(Command::new("makefs").args([
            "-t",
            "ffs",
            "-o",
            "version=1,bsize=16384,fsize=2048",
            t,
            s,
        ]))?,
        "fat32.img" => {
            tool(Command::new("mkfs.fat").args(["-C", "-F", "32", t, &(300 << 10).to_string()]))?;
            tool(Command::new("mcopy").args(["-i", t, &format!("{s}/big.bin"), "::/big.bin"]))?;
        }
        "ext4.img" => {
            tool(Command::new("mke2fs").args(["-q", "-F", "-t", "ext4", "-d", s, t, "300M"]))?
        }
        other => bail!("unknown image {other}"),
    }
    fs::rename(&tmp, &img)?;
    Ok(img)
}

/// Reads the image once so both contenders find it in the page cache.
fn best(mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed());
    }
    Ok(best)
}

fn raw_read(img: &Path, buf: &mut [u8]) -> Result<()> {
    let f = File::open(img)?;
    let mut off = 0u64;
    while (off as usize) < FILE_BYTES {
        let n = (FILE_BYTES - off as usize).min(buf.len());
        f.read_exact_at(&mut buf[..n], off)?;
        off += n as u64;
    }
    Ok(())
}

/// One whole read of /big.bin through pvboot; returns device reads issued.
fn pvboot_read(img: &Path, buf: &mut [u8], check: Option<&[u8]>) -> Result<u64> {
    let disk = Rc::new(Cache::new(FileDisk::open(img)?).map_err(|e| anyhow::anyhow!("{e}"))?);
    let fs =
        pvboot::fs::mount(disk.clone()).map_err(|e| anyhow::anyhow!("{}: {e}", img.display()))?;
    let node = fs.lookup("/big.bin").map_err(|e| anyhow::anyhow!("{e}"))?;
    ensure!(
        node.meta.size as usize == FILE_BYTES,
        "{}: wrong file size",
        img.display()
    );
    let mut off = 0u64;
    while (off as usize) < FILE_BYTES {
        let n = fs
            .read_at(&node, off, buf)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        ensure!(n > 0, "short read at {off}");
        if let Some(want) = check {
            ensure!(
                buf[..n] == want[off as usize..off as usize + n],
                "{}: data differs at {off}",
                img.display()
            );
        }
        off += n as u64;
    }
    Ok(disk.stats().device_reads)
}

fn mbps(d: Duration) -> f64 {
    FILE_BYTES as f64 / 1e6 / d.as_secs_f64()
}

/// Runs the file-system benchmark.
pub fn run() -> Result<()> {
    let dir = crate::root().join("target/bench");
    fs::create_dir_all(&dir)?;
    let src = source(&dir)?;
    let want = fs::read(src.join("big.bin"))?;
    let mut report = String::new();
    let mut buf = vec![0u8; CHUNK];
    for case in &CASES {
        let img = make_image(&dir, &src, case)?;
        super::warm_page_cache(&img)?;
        // One checked read first: a fast wrong answer is no result.
        let reads = pvboot_read(&img, &mut buf, Some(&want))?;
        let fs_time = best(|| pvboot_read(&img, &mut buf, None).map(|_| ()))?;
        let raw_time = best(|| raw_read(&img, &mut buf))?;
        let line = format!(
            "fs-read {}: {:.0} MB/s, image {:.0} MB/s, ratio {:.2}, device reads {}\n",
            case.name,
            mbps(fs_time),
            mbps(raw_time),
            raw_time.as_secs_f64() / fs_time.as_secs_f64(),
            reads
        );
        print!("{line}");
        report.push_str(&line);
    }
    super::record("fs", &report)
}
